"""Sentence states and token matching, on hand-made token states (no model)."""

from __future__ import annotations

import math

import numpy as np

from qa.runtime import sentence_states, token_matches


def test_token_matches_scores_each_sentence_by_its_own_tokens() -> None:
    rng = np.random.default_rng(0)
    dim = 16
    states = rng.normal(size=(9, dim)).astype(np.float32)
    starts = np.arange(9) * 2  # token n starts at character 2n
    words = np.array([False] + [True] * 7 + [False])  # [CLS] ... [SEP]
    # Sentences: no token (past truncation), tokens 1-2, none again, tokens 3-7.
    spans = [(100, 120), (2, 6), (6, 6), (6, 16)]
    fallback = np.ones(dim, np.float32) / 4
    own = sentence_states(states, starts, words, spans, fallback)
    assert own.counts.tolist() == [0, 2, 0, 5]
    assert own.signs.shape == (7, 2)
    assert np.allclose(own.vectors[0], fallback) and np.allclose(own.vectors[2], fallback)
    # A second passage, scored in the same call, must not change the first one's scores.
    other = sentence_states(states[::-1].copy(), starts, words, [(2, 8)], fallback)
    question = states[[2, 5]] / np.linalg.norm(states[[2, 5]], axis=1, keepdims=True)
    together = token_matches(question, [own, other])
    alone = token_matches(question, [own])
    assert np.allclose(together[0], alone[0])
    # By hand: each question token's best q . sign(p) / sqrt(dim) in the sentence, averaged.
    signs = np.sign(states)
    best = [
        (question @ signs[a:b].T).max(axis=1).mean() / math.sqrt(dim) for a, b in ((1, 3), (3, 8))
    ]
    assert np.allclose(alone[0], [0.0, best[0], 0.0, best[1]], atol=1e-6)


def test_a_question_without_word_tokens_matches_nothing() -> None:
    rng = np.random.default_rng(1)
    states = rng.normal(size=(4, 8)).astype(np.float32)
    own = sentence_states(states, np.arange(4), np.ones(4, bool), [(0, 2), (2, 4)], states[0])
    [match] = token_matches(np.empty((0, 8), np.float32), [own])
    assert match.tolist() == [0.0, 0.0]

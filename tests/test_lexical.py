from __future__ import annotations

import math

import bm25s
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.lexical import K1, Analyzer, B, build_lexical, default_analyzer


def test_bm25_matches_a_hand_computed_score() -> None:
    index = build_lexical(["apple banana apple", "banana cherry"], Analyzer(frozenset(), None))
    # "apple" in doc 0: tf 2, df 1, N 2, len 3, mean len 2.5
    idf = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))
    expected = idf * 2 / (2 + K1 * (1 - B + B * 3 / 2.5))
    assert index.scores("apple") == pytest.approx([expected, 0.0], rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from("ab bc cd de ef fg gh hi".split()), min_size=1, max_size=12),
        min_size=1,
        max_size=20,
    )
)
def test_bm25_equals_bm25s(docs: list[list[str]]) -> None:
    texts = [" ".join(d) for d in docs]
    analyzer = Analyzer(frozenset(), None)
    ours = build_lexical(texts, analyzer)
    reference = bm25s.BM25(k1=K1, b=B, method="lucene")
    reference.index([analyzer.terms(t) for t in texts], show_progress=False)
    for query in ("ab", "cd ef", "gh hi ab"):
        ids = [reference.vocab_dict[t] for t in analyzer.terms(query) if t in reference.vocab_dict]
        expected = reference.get_scores_from_ids(ids) if ids else np.zeros(len(texts))
        assert np.allclose(ours.scores(query), expected, atol=1e-5)


def test_an_update_reuses_terms_and_equals_a_fresh_build() -> None:
    texts = ["volcanoes erupt lava", "penguins live on ice", "rockets fly to the moon"]
    first = build_lexical(texts)
    changed = [texts[0], "penguins swim in cold seas", texts[2], "a brand new text"]
    updated = build_lexical(changed, previous=first, reuse=[0, None, 2, None])
    fresh = build_lexical(changed, default_analyzer())
    for query in ("penguins", "lava moon", "brand new", "ice"):
        assert np.allclose(updated.scores(query), fresh.scores(query))


def test_localised_weights_drop_terms_every_candidate_shares() -> None:
    index = build_lexical(["normans conquered england", "normans ruled sicily", "a third text"])
    matcher = index.matcher("when did the normans conquer england")
    candidates = [{"norman", "conquer", "england"}, {"norman", "rule", "sicili"}]
    local = matcher.localised(candidates)
    # n = 2 candidates: "norman" is in both (df 2), "conquer" and "england" in one (df 1).
    assert local.weights["norman"] == pytest.approx(
        matcher.weights["norman"] * math.log(1 + 0.5 / 2.5)
    )
    rare = math.log(1 + 1.5 / 1.5)
    assert local.weights["england"] == pytest.approx(matcher.weights["england"] * rare)
    # The shared topic word barely counts: the sibling that holds only it drops from 0.19 of the
    # question to 0.06, while the candidate that holds every term keeps all of it.
    first, second = (sorted(c) for c in candidates)
    assert local.coverage(first)[0] == pytest.approx(matcher.coverage(first)[0]) == 1.0
    assert local.coverage(second)[0] < 0.1 < 0.15 < matcher.coverage(second)[0]

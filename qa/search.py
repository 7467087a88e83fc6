"""Answering questions: retrieve passages, then highlight the sentence that best answers."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from qa import embed as embedding
from qa.answers import Answer, Answers, Hit, Paragraph, SentenceMatch
from qa.calibration import ANSWER_THRESHOLD, calibration
from qa.config import MODES, Settings
from qa.corpus import Chunk, paragraph_spans
from qa.errors import InputError
from qa.filters import Filters
from qa.indexer import Progress, current_index
from qa.lexical import Matcher
from qa.runtime import OnnxEmbedder, SentenceStates, token_matches
from qa.store import StoredIndex

__all__ = ["Answer", "Answers", "Hit", "Paragraph", "SentenceMatch", "ask", "search"]


def check_question(question: str) -> str:
    # A lone surrogate (from a JSON escape) cannot be encoded: U+FFFD in its place.
    question = re.sub("[\ud800-\udfff]", "\ufffd", question).strip()
    if not question:
        raise InputError('The question is empty: ask something, e.g. qa ask "Who founded JD.com?"')
    return question


POOL = 100  # candidates each side contributes before fusion
# Hybrid candidates re-ranked. SQuAD hit@5 / SciFact nDCG@10 at depth 10: 0.9691 / 0.7272,
# 15: 0.9702 / 0.7283, 20: 0.9707 / 0.7250 (int8 index with sentence vectors)
RERANK_DEPTH = 15
TERM_WEIGHT, PHRASE_WEIGHT = 0.1, 0.2  # without sentence vectors: coverage bonus
# With sentence states (indexes whose encoder gives them), a candidate gains SENTENCE_WEIGHT *
# max over its sentences of: cosine + TOKEN_MATCH * token match (qa.runtime.token_matches) +
# SENTENCE_TERMS * term coverage + SENTENCE_PHRASES * phrase coverage + LOCAL_TERMS * term
# coverage + LOCAL_PHRASES * phrase coverage with weights localised to the candidates
# (Matcher.localised). The same sentence must match in meaning, token by token and in words,
# in the words that tell the candidates apart (bench/results/rerank.txt).
SENTENCE_WEIGHT, TOKEN_MATCH = 2.0, 3.0
SENTENCE_TERMS, SENTENCE_PHRASES = 0.15, 0.3
LOCAL_TERMS, LOCAL_PHRASES = 0.3, 0.1
PER_DOCUMENT: float | None = 0.6  # share of the k slots one document may keep (diversify)
# Passages at this cosine or above are relevant enough to take a crowded document's slot
# (diversify); it was the no-answer threshold before relevance (bench/results/answerable.txt).
WAITING_COSINE = 0.30


def retrieve(
    index: StoredIndex,
    query_vectors: np.ndarray,
    questions: Sequence[str],
    k: int,
    mode: str,
    query_tokens: Sequence[np.ndarray] | None = None,
    mask: np.ndarray | None = None,
    filters: Filters | None = None,
) -> list[list[tuple[int, float]]]:
    """(row, score) of the k best passages per question, best first; query_tokens are the
    questions' token states (embed_questions), for the re-rank; mask, the rows that may
    answer (qa.filters), applied by both sides before either chooses its best (a store on a
    server applies the filters it was made from instead). The keyword candidates come from
    the store's own BM25 where it has one, else from qa's; both are scored by qa's BM25 for
    fusion. RERANK_DEPTH and PER_DOCUMENT are read at each call, so a benchmark can switch
    either off."""
    if mode not in MODES:
        raise InputError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
    if mode == "dense":
        return index.search(query_vectors, k, mask, filters)
    pool = max(k, POOL)
    dense = index.search(query_vectors, pool, mask, filters) if mode == "hybrid" else None
    out = []
    for n, question in enumerate(questions):
        lexical = index.lexical.scores(question)
        if mask is not None:
            lexical[~mask] = 0.0  # _top keeps positive scores only
        if mode == "lexical":
            out.append(_top(lexical, k))
            continue
        assert dense is not None
        served = index.keyword_search(question, pool, filters)
        keyword = _top(lexical, pool) if served is None else served
        candidates = {row for row, _ in dense[n]} | {row for row, _ in keyword}
        if not candidates:
            out.append([])
            continue
        rows = np.fromiter(candidates, dtype=np.int64)
        fused = fuse(index.dense_scores(query_vectors[n], rows), lexical[rows])
        order = np.argsort(-fused, kind="stable")
        ranked = [(int(rows[i]), float(fused[i])) for i in order[: max(2 * k, RERANK_DEPTH)]]
        tokens = None if query_tokens is None else query_tokens[n]
        ranked = rerank(index, question, query_vectors[n], tokens, ranked)
        out.append(diversify(index, query_vectors[n], ranked, k, PER_DOCUMENT))
    return out


def diversify(
    index: StoredIndex,
    query_vector: np.ndarray,
    ranked: list[tuple[int, float]],
    k: int,
    per_document: float | None,
) -> list[tuple[int, float]]:
    """The top k, where no document keeps more than ceil(per_document * k) slots while
    passages of other documents that are relevant (cosine >= WAITING_COSINE) wait below."""
    top, rest = ranked[:k], ranked[k:]
    if per_document is None or not rest:
        return top
    cap = math.ceil(per_document * k)

    def doc(row: int) -> tuple[str, str | None]:
        return index.chunks[row].source, index.chunks[row].doc_id

    counts = Counter(doc(row) for row, _ in top)
    if max(counts.values()) <= cap:
        return top
    cosines = index.dense_scores(query_vector, np.array([row for row, _ in rest]))
    waiting = [pair for pair, c in zip(rest, cosines, strict=True) if c >= WAITING_COSINE]
    for row, score in waiting:
        crowded = [i for i, (r, _) in enumerate(top) if counts[doc(r)] > cap]
        if not crowded:
            break
        if counts[doc(row)] >= cap:
            continue
        dropped = top.pop(crowded[-1])  # the crowded document's weakest passage gives way
        counts[doc(dropped[0])] -= 1
        counts[doc(row)] += 1
        top.append((row, score))
    return top


def rerank(
    index: StoredIndex,
    question: str,
    query_vector: np.ndarray,
    query_tokens: np.ndarray | None,
    ranked: list[tuple[int, float]],
) -> list[tuple[int, float]]:
    """Re-order the best RERANK_DEPTH candidates by fused score plus how well their best
    sentence matches the question: in meaning, token by token and in words where the index
    has sentence states, else in words (bench/results/rerank.txt)."""
    matcher = index.lexical.matcher(question)
    top = ranked[:RERANK_DEPTH]
    sentences = [index.passage_sentences(row) for row, _ in top]
    states = index.sentence_states_of([row for row, _ in top])
    known = [s for s in states if s is not None]
    if query_tokens is None or len(known) < len(states):
        head = []  # no sentence states: words only
        for row, score in top:
            cover = _coverage(index, matcher, row)
            bonus = _weighted(max(c[1] for c in cover), max(c[2] for c in cover))
            head.append((row, score + bonus))
    else:
        local = matcher.localised([{t for _, terms in s for t in terms} for s in sentences])
        head = [
            (row, score + _sentence_bonus(matcher, local, query_vector, passage, own, match))
            for (row, score), passage, own, match in zip(
                top, sentences, known, token_matches(query_tokens, known), strict=True
            )
        ]
    head.sort(key=lambda pair: -pair[1])
    return head + ranked[RERANK_DEPTH:]


def _sentence_bonus(
    matcher: Matcher,
    local: Matcher,
    query_vector: np.ndarray,
    passage: list[tuple[tuple[int, int], list[str]]],
    states: SentenceStates,
    match: np.ndarray,
) -> float:
    """SENTENCE_WEIGHT * the best of the passage's sentences, in meaning, tokens and words."""
    best = -math.inf
    for (_, terms), cosine, tokens in zip(
        passage, states.vectors @ query_vector, match, strict=True
    ):
        found = matcher.found(terms)
        (words, phrases), (local_words, local_phrases) = matcher.score(found), local.score(found)
        best = max(
            best,
            float(cosine)
            + TOKEN_MATCH * float(tokens)
            + SENTENCE_TERMS * words
            + SENTENCE_PHRASES * phrases
            + LOCAL_TERMS * local_words
            + LOCAL_PHRASES * local_phrases,
        )
    return SENTENCE_WEIGHT * best


def _weighted(terms: float, phrases: float) -> float:
    return TERM_WEIGHT * terms + PHRASE_WEIGHT * phrases


def _coverage(
    index: StoredIndex, matcher: Matcher, row: int
) -> list[tuple[tuple[int, int], float, float]]:
    """(span, term coverage, phrase coverage) of each sentence of a passage."""
    return [(span, *matcher.coverage(terms)) for span, terms in index.passage_sentences(row)]


def fuse(dense: np.ndarray, lexical: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Convex combination of min-max normalised scores over the candidates."""
    return weight * _minmax(dense) + (1 - weight) * _minmax(lexical)


def _minmax(scores: np.ndarray) -> np.ndarray:
    low, high = float(scores.min()), float(scores.max())
    return (scores - low) / (high - low) if high > low else np.zeros_like(scores)


def _top(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    k = min(k, len(scores))
    rows = np.argpartition(-scores, k - 1)[:k]
    rows = rows[np.argsort(-scores[rows], kind="stable")]
    return [(int(r), float(scores[r])) for r in rows if scores[r] > 0]


def search(
    index: StoredIndex,
    embedder: embedding.Embedder,
    questions: Sequence[str],
    k: int,
    mode: str = "hybrid",
    filters: Filters | None = None,
    min_score: float = 0.0,
) -> list[Answer]:
    """The k best passages for each question, each with its relevance and its best sentence
    marked; with filters, the best of the passages whose documents pass them; those under
    min_score dropped (after ranking: an answer may hold fewer than k)."""
    if k < 1:
        raise InputError(f"-k must be at least 1 (got {k}).")
    if not 0.0 <= min_score <= 1.0:
        raise InputError(f"--min-score is a relevance from 0 to 1 (got {min_score}).")
    questions = [check_question(q) for q in questions]
    mask = row_mask(index, filters)
    query_vectors, query_tokens = embed_questions(embedder, questions)
    results = retrieve(index, query_vectors, questions, k, mode, query_tokens, mask, filters)
    answers = []
    for n, (question, rows) in enumerate(zip(questions, results, strict=True)):
        tokens = None if query_tokens is None else query_tokens[n]
        hits = marked_hits(index, question, rows, query_vectors[n], tokens, mode)
        kept = [hit for hit in hits if hit.score >= min_score]
        answers.append(Answer(question, kept, answered=answerable(hits)))
    return answers


def row_mask(index: StoredIndex, filters: Filters | None) -> np.ndarray | None:
    """The rows filters allow (None: no filter); InputError for an index without metadata."""
    if not filters:
        return None
    table = index.table()
    if table is None:
        raise InputError(
            f"Index {index.index_dir or index.path} keeps no metadata to filter on (built by "
            "qa 0.1): run `qa index` once to add it."
        )
    return table.row_mask(filters)


def embed_questions(
    embedder: embedding.Embedder, questions: Sequence[str], progress: Any = None
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """The questions' vectors, and their token states where the embedder gives them."""
    if isinstance(embedder, (OnnxEmbedder, embedding.SentenceTransformerEmbedder)):
        return embedder.embed_with_tokens(questions, progress=progress)
    return embedder.embed(questions, progress=progress), None


def answerable(hits: Sequence[Hit]) -> bool:
    """Whether some hit is relevant enough to answer the question (ANSWER_THRESHOLD)."""
    return any(hit.score >= ANSWER_THRESHOLD for hit in hits)


def marked_hits(
    index: StoredIndex,
    question: str,
    found: list[tuple[int, float]],
    query_vector: np.ndarray,
    query_tokens: np.ndarray | None = None,
    mode: str = "hybrid",
) -> list[Hit]:
    """Hits for the (row, score) pairs that retrieve() found in this mode: each with its
    measures, its relevance (qa.calibration), and the sentence that best answers the question
    marked: the one holding the most of the question's terms and phrases (IDF-weighted).
    Measured on SQuAD: it holds the answer in 84% of correct top passages."""
    if not found:
        return []
    matcher = index.lexical.matcher(question)
    rows = np.array([row for row, _ in found], dtype=np.int64)
    dense = index.dense_scores(query_vector, rows)
    bm25 = share = None
    if mode != "dense":
        bm25 = index.lexical.scores(question)[rows]
        most = math.fsum(index.lexical.idf(t) for t in index.lexical.analyzer.terms(question))
        share = bm25 / most if most else np.zeros_like(bm25)
    covers = [_coverage(index, matcher, row) for row, _ in found]
    states = index.sentence_states_of([row for row, _ in found])
    known = [s for s in states if s is not None]
    with_states = mode == "hybrid" and query_tokens is not None and len(known) == len(states)
    sentences: list[SentenceMatch | None] = [None] * len(found)
    if with_states:
        assert query_tokens is not None
        sentences = [
            _best_sentence(cover, own.vectors @ query_vector, match)
            for cover, own, match in zip(
                covers, known, token_matches(query_tokens, known), strict=True
            )
        ]
    elif mode != "dense":
        sentences = [_best_sentence(cover) for cover in covers]
    model = calibration(mode, sentence_states=with_states)
    table = index.table()
    hits = []
    for n, ((row, score), cover) in enumerate(zip(found, covers, strict=True)):
        # max() keeps the first of equals: the earliest sentence wins a tie.
        span, _, _ = max(cover, key=lambda c: _weighted(c[1], c[2]))
        hit = Hit(
            index.chunks[row],
            0.0,
            n + 1,
            span,
            fused=score if mode == "hybrid" else None,
            dense=float(dense[n]),
            lexical=None if bm25 is None else float(bm25[n]),
            lexical_share=None if share is None else float(share[n]),
            sentence=sentences[n],
            about=None if table is None else table.info(int(table.doc_of_row[row])),
        )
        hits.append(replace(hit, score=model.relevance(hit.features())))
    return hits


def _best_sentence(
    cover: list[tuple[tuple[int, int], float, float]],
    cosines: np.ndarray | None = None,
    matches: np.ndarray | None = None,
) -> SentenceMatch:
    """A passage's best sentence (see SentenceMatch), given its sentences' coverage
    (_coverage) and, with sentence states, their cosines and token matches."""
    if cosines is None or matches is None:
        _, terms, phrases = max(cover, key=lambda c: _weighted(c[1], c[2]))
        return SentenceMatch(None, None, terms, phrases)
    cosine, match, (_, terms, phrases) = max(
        zip(cosines, matches, cover, strict=True),
        key=lambda m: (
            float(m[0])
            + TOKEN_MATCH * float(m[1])
            + SENTENCE_TERMS * m[2][1]
            + SENTENCE_PHRASES * m[2][2]
        ),
    )
    return SentenceMatch(float(cosine), float(match), terms, phrases)


def ask(
    settings: Settings,
    questions: Sequence[str],
    *,
    k: int = 5,
    mode: str = "hybrid",
    min_score: float = 0.0,
    ids: Sequence[str | None] | None = None,
    update: bool = True,
    embedder: embedding.Embedder | None = None,
    notify: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    context: int = 0,
    filters: Filters | None = None,
) -> Answers:
    """Answer questions from the index, building or updating it first unless update=False;
    with context=N, each hit carries N paragraphs of its document on either side; hits whose
    relevance is under min_score are left out."""
    if k < 1:
        raise InputError(f"-k must be at least 1 (got {k}).")
    if not 0.0 <= min_score <= 1.0:
        raise InputError(f"--min-score is a relevance from 0 to 1 (got {min_score}).")
    questions = [check_question(q) for q in questions]
    index = current_index(
        settings, update=update, embedder=embedder, notify=notify, progress=progress
    )
    if embedder is None:
        embedder = embedding.index_embedder(index.path, index.manifest.model, settings.batch_size)
    found = search(index, embedder, questions, k, mode, filters, min_score)
    return answers_of(index, found, ids, context)


def answers_of(
    index: StoredIndex, found: list[Answer], ids: Sequence[str | None] | None, context: int
) -> Answers:
    """search()'s answers as Answers: each with its id, each hit with `context` paragraphs of
    its document on either side (none for 0)."""
    if context > 0:
        found = [
            replace(a, hits=[replace(h, context=around(index, h.chunk, context)) for h in a.hits])
            for a in found
        ]
    return Answers(
        corpus=index.corpus(),
        model=index.manifest.model,
        answers=[replace(a, id=i) for a, i in zip(found, ids or [None] * len(found), strict=True)],
    )


def around(index: StoredIndex, chunk: Chunk, n: int) -> tuple[list[Paragraph], list[Paragraph]]:
    """Up to n paragraphs of a passage's document before it and after it (none when the index
    keeps no documents, as one built by qa 0.1 until its next build)."""
    doc = index.document(chunk.source, chunk.doc_id)
    if doc is None:
        return [], []
    paragraphs = [
        Paragraph(number, start, end, doc.text[start:end])
        for number, (start, end) in enumerate(paragraph_spans(doc.text, doc.body_start), 1)
    ]
    first = next((i for i, p in enumerate(paragraphs) if p.end > chunk.start), len(paragraphs))
    last = next((i for i, p in enumerate(paragraphs) if p.end >= chunk.end), len(paragraphs) - 1)
    return paragraphs[max(0, first - n) : first], paragraphs[last + 1 : last + 1 + n]

"""Answering questions: retrieve passages, then highlight the sentence that best answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa import embed as embedding
from qa.config import DEFAULT_MODEL, Settings
from qa.corpus import Chunk, sentence_spans
from qa.errors import InputError, QAError
from qa.indexer import Progress, current_index
from qa.store import StoredIndex, read_manifest


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    rank: int  # 1-based
    highlight: tuple[int, int]  # [start, end) of the best sentence, in document coordinates


@dataclass(frozen=True)
class Answer:
    question: str
    hits: list[Hit]
    id: str | None = None  # echoed from a questions file


@dataclass(frozen=True)
class Answers:
    corpus: Path  # the corpus root that every hit's chunk.source is relative to
    model: str
    answers: list[Answer]


def check_question(question: str) -> str:
    question = question.strip()
    if not question:
        raise InputError("The question is empty: ask something, e.g. qa ask \"Who founded JD.com?\"")
    return question


MODES = ("hybrid", "dense", "lexical")
POOL = 100  # candidates each side contributes before fusion


def retrieve(
    index: StoredIndex, query_vectors: np.ndarray, questions: Sequence[str], k: int, mode: str
) -> list[list[tuple[int, float]]]:
    """(row, score) of the k best passages per question, best first."""
    if mode not in MODES:
        raise InputError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
    if mode == "dense":
        return index.search(query_vectors, k)
    pool = max(k, POOL)
    dense = index.search(query_vectors, pool) if mode == "hybrid" else None
    out = []
    for n, question in enumerate(questions):
        lexical = index.lexical.scores(question)
        if mode == "lexical":
            out.append(_top(lexical, k))
            continue
        assert dense is not None
        candidates = {row for row, _ in dense[n]} | {row for row, _ in _top(lexical, pool)}
        rows = np.fromiter(candidates, dtype=np.int64)
        fused = fuse(index.dense_scores(query_vectors[n], rows), lexical[rows])
        order = np.argsort(-fused, kind="stable")[:k]
        out.append([(int(rows[i]), float(fused[i])) for i in order])
    return out


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
) -> list[list[Hit]]:
    """The k best passages for each question, each with its best sentence marked."""
    if k < 1:
        raise InputError(f"-k must be at least 1 (got {k}).")
    questions = [check_question(q) for q in questions]
    query_vectors = embedder.embed(questions)
    results = retrieve(index, query_vectors, questions, k, mode)
    hits = [
        [Hit(index.chunks[row], score, rank, (0, 0)) for rank, (row, score) in
         enumerate(found, start=1)]
        for found in results
    ]
    return highlight(embedder, query_vectors, hits)


def highlight(
    embedder: embedding.Embedder, query_vectors: np.ndarray, hits: list[list[Hit]]
) -> list[list[Hit]]:
    """Mark in each hit the sentence closest to the question (all sentences embedded at once)."""
    spans: list[list[tuple[int, int]]] = []
    texts: list[str] = []
    for found in hits:
        for hit in found:
            chunk = hit.chunk
            sentences = [
                (chunk.start + s, chunk.start + e) for s, e in sentence_spans(chunk.text)
            ] or [(chunk.start, chunk.end)]
            spans.append(sentences)
            if len(sentences) > 1:
                texts.extend(chunk.text[s - chunk.start : e - chunk.start] for s, e in sentences)
    vectors = embedder.embed(texts) if texts else np.empty((0, 0), np.float32)
    out: list[list[Hit]] = []
    at = flat = 0
    for query, found in zip(query_vectors, hits, strict=True):
        marked = []
        for hit in found:
            sentences = spans[flat]
            flat += 1
            best = sentences[0]
            if len(sentences) > 1:
                scores = vectors[at : at + len(sentences)] @ query
                best = sentences[int(np.argmax(scores))]
                at += len(sentences)
            marked.append(Hit(hit.chunk, hit.score, hit.rank, best))
        out.append(marked)
    return out


def ask(
    settings: Settings,
    questions: Sequence[str],
    *,
    k: int = 5,
    mode: str = "hybrid",
    ids: Sequence[str | None] | None = None,
    update: bool = True,
    embedder: embedding.Embedder | None = None,
    notify: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> Answers:
    """Answer questions from the index, building or updating it first unless update=False."""
    if k < 1:
        raise InputError(f"-k must be at least 1 (got {k}).")
    questions = [check_question(q) for q in questions]
    if embedder is None:  # one embedder (loaded lazily) serves both the update and the questions
        embedder = embedding.load_embedder(_model_name(settings), settings.batch_size)
    index = current_index(
        settings, update=update, embedder=embedder, notify=notify, progress=progress
    )
    ids = ids or [None] * len(questions)
    found = search(index, embedder, questions, k, mode)
    return Answers(
        corpus=index.manifest.corpus_path(index.path),
        model=index.manifest.model,
        answers=[Answer(q, h, i) for q, h, i in zip(questions, found, ids, strict=True)],
    )


def _model_name(settings: Settings) -> str:
    if settings.model:
        return settings.model
    try:
        return read_manifest(settings.index).model
    except QAError:
        return DEFAULT_MODEL

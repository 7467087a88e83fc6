"""Passage vectors in FAISS files inside the generation's folder: the default VectorIndex, and
the only importer of faiss.

    vectors.faiss       the index (Flat, or IVF with 8-bit scalar quantisation: see
                        qa.store.choose_index)
    vectors.npy         the exact float32 vectors beside a quantised index (memory-mapped)
    sentences.npy ...   every passage's sentence vectors and token sign bits (the re-rank's
                        qa.runtime.SentenceStates), memory-mapped, with where each row's start
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.runtime import SentenceStates

if TYPE_CHECKING:
    from qa.filters import Filters

VECTORS = "vectors.faiss"
EXACT = "vectors.npy"  # exact float32 vectors, kept beside an approximate (quantised) index
# Every passage's sentence vectors (float16, in row order) and the index of each row's first
SENTENCES, SENTENCE_STARTS = "sentences.npy", "sentence_starts.npy"
# Every sentence's token sign bits (qa.runtime.SentenceStates, in sentence order) and the index
# of each sentence's first token
TOKENS, TOKEN_STARTS = "tokens.npy", "token_starts.npy"
TRAINING_SAMPLE = 100_000
# Filtered dense search is exact while the rows a filter allows are at most this many: 50,000
# rows cost about as much as an approximate search over 1M (bench/filters.py).
EXACT_FILTERED = 50_000

_FAISS_THREADS = threading.Lock()


def k_exact(mask: np.ndarray) -> bool:
    return int(mask.sum()) <= EXACT_FILTERED


@dataclass
class SentenceArrays:
    """Memory-mapped sentence vectors, and row r's first at sentence_starts[r]; memory-mapped
    token sign bits, and sentence s's first at token_starts[s]."""

    sentence_matrix: np.ndarray
    sentence_starts: np.ndarray
    token_signs: np.ndarray
    token_starts: np.ndarray

    def states(self, row: int) -> SentenceStates:
        return self._states(self.sentence_matrix, self.token_signs, row)

    def all_states(self, rows: Sequence[int]) -> list[SentenceStates]:
        """Read whole once, not row by row (0.3 s for SciFact's)."""
        vectors = np.asarray(self.sentence_matrix, dtype=np.float32)  # float16 on disk: a copy
        signs = np.array(self.token_signs)
        return [self._states(vectors, signs, row) for row in rows]

    def _states(self, vectors: np.ndarray, signs: np.ndarray, row: int) -> SentenceStates:
        begin, end = int(self.sentence_starts[row]), int(self.sentence_starts[row + 1])
        first, last = int(self.token_starts[begin]), int(self.token_starts[end])
        return SentenceStates(
            np.asarray(vectors[begin:end], dtype=np.float32),
            np.asarray(signs[first:last]),
            np.diff(self.token_starts[begin : end + 1]),
        )

    def problem(self, rows: int, dim: int) -> bool:
        """Whether the arrays do not fit `rows` passages of dimension dim."""
        starts, sentences = self.sentence_starts, self.sentence_matrix
        token_starts = self.token_starts
        return (
            len(starts) != rows + 1
            or int(starts[-1]) != len(sentences)
            or sentences.shape[1] != dim
            or len(token_starts) != len(sentences) + 1
            or int(token_starts[-1]) != len(self.token_signs)
            or self.token_signs.shape[1] != (dim + 7) // 8
        )


@dataclass
class FaissIndex:
    """A VectorIndex over FAISS: exact when the index is Flat or a filter leaves few rows,
    else IVF (restricted by an IDSelectorBitmap under a filter)."""

    index: Any  # the faiss index
    # exact vectors: memory-mapped when the index quantises, else a copy of its own
    exact: np.ndarray
    kind: str = "Flat"  # faiss index_factory string (qa.store.choose_index)
    nprobe: int = 0
    sentences: SentenceArrays | None = None

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def describe(self) -> str:
        return f"faiss {self.kind}{f', nprobe {self.nprobe}' if self.nprobe else ''}"

    def search(
        self,
        queries: np.ndarray,
        k: int,
        mask: np.ndarray | None = None,
        filters: Filters | None = None,
    ) -> list[list[tuple[int, float]]]:
        """faiss's -1 padding removed. With a mask, only rows it allows: exactly over them
        while they are few (or the index is exact anyway), else the approximate index
        restricted to them, with more lists probed the fewer they are (bench/filters.py
        measured both). filters are not read: the mask says the same."""
        k = min(k, int(self.index.ntotal) if mask is None else int(mask.sum()))
        if k <= 0:
            return [[] for _ in range(len(queries))]
        queries = np.ascontiguousarray(queries, np.float32)
        if mask is not None and (self.kind == "Flat" or k_exact(mask)):
            return self._exact_search(queries, k, np.flatnonzero(mask))
        import faiss

        # One thread for a question or a few: OpenMP's start-up costs more than it saves
        # (single-query Flat at 10k: 1.2 ms with one thread, 24 ms with two on a busy machine).
        # The setting is process-wide: threads (qa serve) set it and search under one lock, so
        # a batch's many threads never leak into another thread's single question.
        with _FAISS_THREADS:
            faiss.omp_set_num_threads(1 if len(queries) <= 4 else os.cpu_count() or 1)
            scores, rows = self._faiss_search(faiss, queries, k, mask)
        return [
            [(int(r), float(s)) for r, s in zip(row, score, strict=True) if r >= 0]
            for row, score in zip(rows, scores, strict=True)
        ]

    def _faiss_search(
        self, faiss: Any, queries: np.ndarray, k: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if mask is None:
            scores, rows = self.index.search(queries, k)
        else:
            bits = np.packbits(mask, bitorder="little")
            nprobe = min(4096, int(self.nprobe / max(float(mask.mean()), 1e-6)))
            selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # n: bytes
            params = faiss.SearchParametersIVF()
            params.sel, params.nprobe = selector, nprobe
            scores, rows = self.index.search(queries, k, params=params)
        return scores, rows

    def _exact_search(
        self, queries: np.ndarray, k: int, rows: np.ndarray
    ) -> list[list[tuple[int, float]]]:
        scores = np.asarray(self.exact[rows], dtype=np.float32) @ queries.T  # (rows, queries)
        out = []
        for column in scores.T:
            top = np.argpartition(-column, k - 1)[:k] if k < len(column) else np.arange(len(column))
            top = top[np.argsort(-column[top], kind="stable")]
            out.append([(int(rows[i]), float(column[i])) for i in top])
        return out

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.exact[rows] @ query, dtype=np.float32)

    def vectors(self, rows: Sequence[int] | None = None) -> np.ndarray:
        if rows is None:
            return np.asarray(self.exact, dtype=np.float32)
        return np.asarray(self.exact[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def sentence_states(self, row: int) -> SentenceStates | None:
        return None if self.sentences is None else self.sentences.states(row)

    def all_sentence_states(self, rows: Sequence[int]) -> list[SentenceStates] | None:
        return None if self.sentences is None else self.sentences.all_states(rows)


def read_faiss(folder: Path, kind: str, nprobe: int, with_states: bool) -> FaissIndex:
    """The generation's FaissIndex; whatever a damaged file makes its reader raise propagates
    with the file's name as its last note (for the caller's message)."""
    import faiss

    name = VECTORS
    try:
        vectors = faiss.read_index(str(folder / VECTORS))
        if nprobe:
            faiss.extract_index_ivf(vectors).nprobe = nprobe
        if kind == "Flat":
            # A copy of the flat index's vectors (at most FLAT_LIMIT rows, 38 MB): a question
            # reads its 200 candidates' by numpy indexing, not by 200 reconstruct() calls
            exact = vectors.reconstruct_n(0, vectors.ntotal).reshape(vectors.ntotal, vectors.d)
        else:
            name = EXACT
            exact = np.load(folder / EXACT, mmap_mode="r", allow_pickle=False)
        sentences = None
        if with_states:  # written with the sentence vectors, never alone
            loaded = []
            for name in (SENTENCES, SENTENCE_STARTS, TOKENS, TOKEN_STARTS):
                mapped = name in (SENTENCES, TOKENS)
                loaded.append(
                    np.load(folder / name, mmap_mode="r" if mapped else None, allow_pickle=False)
                )
            sentences = SentenceArrays(*loaded)
    except Exception as exc:
        exc.add_note(name)
        raise
    return FaissIndex(vectors, exact, kind, nprobe, sentences)


def write_faiss(
    folder: Path,
    kind: str,
    dim: int,
    vectors: np.ndarray,
    sentences: list[SentenceStates] | None,
) -> None:
    """The generation's FAISS files (and its sentence states, when given)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.index_factory(dim, kind, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        rng = np.random.default_rng(0)
        sample = rng.choice(len(vectors), min(len(vectors), TRAINING_SAMPLE), replace=False)
        index.train(vectors[np.sort(sample)])
    if len(vectors):
        index.add(vectors)
    faiss.write_index(index, str(folder / VECTORS))
    if kind != "Flat":
        np.save(folder / EXACT, vectors, allow_pickle=False)
    if sentences is not None:
        save_states(folder, sentences, dim)


def save_states(directory: Path, sentences: list[SentenceStates], dim: int) -> None:
    """SENTENCES and TOKENS, each with the index of every passage's (sentence's) first."""
    vectors = np.concatenate([s.vectors for s in sentences] or [np.empty((0, dim))])
    signs = np.concatenate([s.signs for s in sentences] or [np.empty((0, (dim + 7) // 8))])
    tokens = np.concatenate([s.counts for s in sentences] or [np.empty(0, np.int64)])
    for (name, starts_name), matrix, sizes in (
        (
            (SENTENCES, SENTENCE_STARTS),
            vectors.astype(np.float16),
            [len(s.vectors) for s in sentences],
        ),
        ((TOKENS, TOKEN_STARTS), signs.astype(np.uint8), tokens.tolist()),
    ):
        np.save(directory / name, matrix, allow_pickle=False)
        starts = np.cumsum([0, *sizes], dtype=np.int64)
        np.save(directory / starts_name, starts, allow_pickle=False)

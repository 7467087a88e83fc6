"""The vector-index seam: where passage vectors live and how the nearest are found.

An index generation (qa.store) holds its chunks, documents, metadata and keyword index itself
and reaches its vectors through one VectorIndex: FAISS files in the generation's own folder
(qa.faiss_store, the default) or a Milvus collection (qa.milvus_store). Rows are the
generation's passage rows (chunks.jsonl order) on both sides of the seam; a store that keeps
its own ids maps them back to rows before answering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from qa.filters import Filters
    from qa.runtime import SentenceStates

FAISS = "faiss"  # the store a manifest without one names


class VectorIndex(Protocol):
    """One generation's passage vectors (and the re-rank's sentence states), read-only."""

    @property
    def size(self) -> int:
        """How many rows (passages) it holds."""
        ...

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        ...

    def search(
        self,
        queries: np.ndarray,
        k: int,
        mask: np.ndarray | None = None,
        filters: Filters | None = None,
    ) -> list[list[tuple[int, float]]]:
        """(row, score) pairs per query, best first, at most k; with a mask (a bool per row)
        or the filters it was made from, only the rows they allow, applied before the top k
        is chosen. A store may use either: both say the same."""
        ...

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact inner products of one query with the given rows' vectors."""
        ...

    def vectors(self, rows: Sequence[int] | None = None) -> np.ndarray:
        """The exact vectors of the given rows (every row in order by default)."""
        ...

    def sentence_states(self, row: int) -> SentenceStates | None:
        """A passage's SentenceStates, if the index keeps them."""
        ...

    def all_sentence_states(self, rows: Sequence[int]) -> list[SentenceStates] | None:
        """SentenceStates of many rows at once (an update reuses every kept passage's)."""
        ...

    def describe(self) -> str:
        """One line for `qa status`: what holds the vectors and how it searches them."""
        ...

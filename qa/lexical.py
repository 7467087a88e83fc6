"""The keyword side: BM25 over passages (title included), built with bm25s, scored with numpy.

bm25s (and the scipy it imports, ~0.5 s) is needed only to build. The index keeps bm25s's
sparse score matrix as plain .npy arrays plus a JSON vocabulary and stopword list, so a
question is scored with numpy alone: a token's column is a slice of the matrix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

LEXICAL = "lexical.json"
ARRAYS = ("data", "indices", "indptr")
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s's default pattern
K1, B = 1.2, 0.75


@cache
def _stemmer(language: str) -> Any:
    import Stemmer  # PyStemmer: Snowball stemmers in C, 0.03 s to import

    return Stemmer.Stemmer(language)


@dataclass(frozen=True)
class Analyzer:
    """Text -> terms: lowercase words of 2+ characters, stopwords dropped, Snowball-stemmed."""

    stopwords: frozenset[str]
    stemmer: str | None = "english"

    def terms(self, text: str) -> list[str]:
        words = [w for w in TOKEN.findall(text.lower()) if w not in self.stopwords]
        return _stemmer(self.stemmer).stemWords(words) if self.stemmer else words


def default_analyzer() -> Analyzer:
    from bm25s.stopwords import STOPWORDS_EN

    return Analyzer(frozenset(STOPWORDS_EN))


@dataclass
class LexicalIndex:
    analyzer: Analyzer
    vocab: dict[str, int]
    data: np.ndarray  # CSC matrix of BM25 term scores: column = term, row = passage
    indices: np.ndarray
    indptr: np.ndarray
    size: int  # passages

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage for the question (zeros where no term matches)."""
        out = np.zeros(self.size, dtype=np.float32)
        for term in self.analyzer.terms(question):
            column = self.vocab.get(term)
            if column is not None:
                lo, hi = int(self.indptr[column]), int(self.indptr[column + 1])
                out[self.indices[lo:hi]] += self.data[lo:hi]  # rows are unique in a column
        return out

    def save(self, directory: Path) -> None:
        for name in ARRAYS:
            np.save(directory / f"lexical.{name}.npy", getattr(self, name), allow_pickle=False)
        meta = {
            "k1": K1,
            "b": B,
            "method": "lucene",
            "stemmer": self.analyzer.stemmer,
            "stopwords": sorted(self.analyzer.stopwords),
            "size": self.size,
            "vocab": self.vocab,
        }
        (directory / LEXICAL).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        meta = json.loads((directory / LEXICAL).read_text(encoding="utf-8"))
        arrays = [np.load(directory / f"lexical.{n}.npy", allow_pickle=False) for n in ARRAYS]
        analyzer = Analyzer(frozenset(meta["stopwords"]), meta["stemmer"])
        return cls(analyzer, meta["vocab"], *arrays, size=int(meta["size"]))


def build_lexical(texts: Sequence[str], analyzer: Analyzer | None = None) -> LexicalIndex:
    import bm25s

    analyzer = analyzer or default_analyzer()
    corpus = [analyzer.terms(text) for text in texts]
    retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
    retriever.index(corpus, show_progress=False)
    scores = retriever.scores
    return LexicalIndex(
        analyzer,
        {str(term): int(column) for term, column in retriever.vocab_dict.items()},
        np.asarray(scores["data"], dtype=np.float32),
        np.asarray(scores["indices"], dtype=np.int32),
        np.asarray(scores["indptr"], dtype=np.int64),
        size=len(texts),
    )

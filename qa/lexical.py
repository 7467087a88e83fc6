"""The keyword side: BM25 over passages (title included), built and scored with numpy.

The index keeps the sparse BM25 score matrix (Lucene's variant, the one bm25s computes; a test
holds ours equal to bm25s's) as plain .npy arrays with a JSON vocabulary and stopword list, so
a question is scored by slicing its terms' columns. Each passage's terms are kept as ids, so an
update analyses only new passages. bm25s was the first builder; computing the matrix from the
cached ids takes a fraction of its time and spares its 0.4 s scipy import.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np

LEXICAL = "lexical.json"
ARRAYS = ("data", "indices", "indptr", "term_ids", "term_offsets")
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

    def terms_by_span(self, text: str, spans: Sequence[tuple[int, int]]) -> list[list[str]]:
        """terms() of each text[start:end], stemming the whole text in one call."""
        found = [
            (m.start(), m.group())
            for m in TOKEN.finditer(text.lower())
            if m.group() not in self.stopwords
        ]
        stems = (
            _stemmer(self.stemmer).stemWords([w for _, w in found])
            if self.stemmer
            else [w for _, w in found]
        )
        starts = [at for at, _ in found]
        return [stems[bisect_left(starts, s) : bisect_left(starts, e)] for s, e in spans]


# Lucene's English stopwords plus question words, which match nothing a reader wants
# (measured in bench/results/lexical.txt: +1.7 points SQuAD hit@1, +0.003 SciFact nDCG@10).
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with "
    "what which who whom whose when where why how did does do were".split()
)


def default_analyzer() -> Analyzer:
    return Analyzer(STOPWORDS)


def idf(n: int, df: Any) -> Any:
    """BM25's (Lucene's) idf of a term in df of n texts; df may be a numpy array."""
    return np.log(1 + (n - df + 0.5) / (df + 0.5))


Found = tuple[set[str], set[tuple[str, str]]]  # question terms and term pairs a sentence holds


@dataclass(frozen=True)
class Matcher:
    """How much of a question a sentence holds: IDF-weighted coverage of its terms and of its
    adjacent term pairs (a copied phrase), each from 0 to 1."""

    analyzer: Analyzer
    weights: dict[str, float]
    bigrams: set[tuple[str, str]]

    def coverage(self, terms: list[str]) -> tuple[float, float]:
        """Coverage by a sentence, given as its terms (Analyzer.terms)."""
        return self.score(self.found(terms))

    def found(self, terms: list[str]) -> Found:
        """The question's terms and term pairs that a sentence (its terms) holds."""
        return self.weights.keys() & set(terms), self.bigrams & set(
            zip(terms, terms[1:], strict=False)
        )

    def score(self, found: Found) -> tuple[float, float]:
        """(term coverage, phrase coverage) of what found() found, under these weights."""
        terms, pairs = found
        w = self.weights
        return (  # fsum: exact in any order, and a set's order changes from run to run
            math.fsum(w[t] for t in terms) / self._totals[0],
            math.fsum(w[a] + w[b] for a, b in pairs) / self._totals[1],
        )

    @cached_property
    def _totals(self) -> tuple[float, float]:
        w = self.weights
        return sum(w.values()) or 1.0, sum(w[a] + w[b] for a, b in self.bigrams) or 1.0

    def localised(self, candidates: list[set[str]]) -> Matcher:
        """The same question with each term's weight scaled by how rare it is among the
        candidates' terms (BM25's idf over them): a term every candidate holds, such as the
        topic of the article they share, no longer tells them apart."""
        n = len(candidates)
        weights = {
            t: w * float(idf(n, sum(t in terms for terms in candidates)))
            for t, w in self.weights.items()
        }
        return Matcher(self.analyzer, weights, self.bigrams)


@dataclass
class LexicalIndex:
    analyzer: Analyzer
    vocab: dict[str, int]
    data: np.ndarray  # CSC matrix of BM25 term scores: column = term, row = passage
    indices: np.ndarray
    indptr: np.ndarray
    size: int  # passages
    # Each passage's terms as vocabulary ids, concatenated, and where each passage's begin:
    # an update re-analyses only new passages.
    term_ids: np.ndarray
    term_offsets: np.ndarray

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage for the question (zeros where no term matches)."""
        out = np.zeros(self.size, dtype=np.float32)
        for term in self.analyzer.terms(question):
            column = self.vocab.get(term)
            if column is not None:
                lo, hi = int(self.indptr[column]), int(self.indptr[column + 1])
                out[self.indices[lo:hi]] += self.data[lo:hi]  # rows are unique in a column
        return out

    def matcher(self, question: str) -> Matcher:
        terms = self.analyzer.terms(question)
        return Matcher(
            self.analyzer, {t: self.idf(t) for t in terms}, set(zip(terms, terms[1:], strict=False))
        )

    def idf(self, term: str) -> float:
        column = self.vocab.get(term)
        df = 0 if column is None else int(self.indptr[column + 1] - self.indptr[column])
        return float(idf(self.size, df))

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
        data, indices, indptr, term_ids, term_offsets = arrays
        return cls(
            analyzer,
            meta["vocab"],
            data,
            indices,
            indptr,
            int(meta["size"]),
            term_ids,
            term_offsets,
        )


def build_lexical(
    texts: Sequence[str],
    analyzer: Analyzer | None = None,
    previous: LexicalIndex | None = None,
    reuse: Sequence[int | None] | None = None,
) -> LexicalIndex:
    """BM25 (Lucene's variant, as bm25s computes it) over texts. reuse[i], when given, is the
    row of previous whose terms texts[i] has: only the other texts are analysed."""
    analyzer = analyzer or default_analyzer()
    if previous is not None and previous.analyzer != analyzer:
        previous = None
    vocab = dict(previous.vocab) if previous is not None else {}
    pieces = []
    for text, row in zip(texts, reuse or [None] * len(texts), strict=True):
        if previous is not None and row is not None:
            pieces.append(
                previous.term_ids[previous.term_offsets[row] : previous.term_offsets[row + 1]]
            )
        else:
            ids = [vocab.setdefault(term, len(vocab)) for term in analyzer.terms(text)]
            pieces.append(np.asarray(ids, dtype=np.int32))
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    term_ids = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    data, indices, indptr = bm25_matrix(term_ids, lengths, len(vocab))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return LexicalIndex(analyzer, vocab, data, indices, indptr, len(texts), term_ids, offsets)


def bm25_matrix(
    term_ids: np.ndarray, lengths: np.ndarray, vocabulary: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSC matrix (data, row indices, column pointers) of BM25 term scores:
    idf(t) * tf / (tf + k1 * (1 - b + b * len / mean len)),
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))."""
    n = len(lengths)
    docs = np.repeat(np.arange(n, dtype=np.int64), lengths)
    pairs, tf = np.unique(term_ids.astype(np.int64) * max(n, 1) + docs, return_counts=True)
    terms, rows = pairs // max(n, 1), pairs % max(n, 1)  # sorted by term, then row: CSC order
    per_term = np.bincount(terms, minlength=vocabulary)
    weight = idf(n, per_term)
    norm = K1 * (1 - B + B * lengths / max(float(lengths.mean()) if n else 1.0, 1e-9))
    data = weight[terms] * tf / (tf + norm[rows])
    indptr = np.concatenate([[0], np.cumsum(per_term)])
    return data.astype(np.float32), rows.astype(np.int32), indptr.astype(np.int64)

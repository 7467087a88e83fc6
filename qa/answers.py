"""What an answer is: the hits of a question, with their passages and highlights. Pure
Python (no numpy), so that a client can render answers it got as JSON from a server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.corpus import Chunk


@dataclass(frozen=True)
class Paragraph:
    number: int  # 1-based, as Chunk.paragraph counts
    start: int  # [start, end) in the document's text, as the chunk's offsets
    end: int
    text: str


@dataclass(frozen=True)
class SentenceMatch:
    """How the passage's best sentence matches the question. Best by the re-rank's own measure
    without its candidate-local terms (cosine + TOKEN_MATCH * token match + SENTENCE_TERMS *
    terms + SENTENCE_PHRASES * phrases) where the index has sentence states, else by term and
    phrase coverage (the highlighted sentence)."""

    cosine: float | None  # its vector . the question's; None without sentence states
    token_match: float | None  # qa.runtime.token_matches; None without token states
    terms: float  # IDF-weighted share of the question's terms it holds, 0 to 1
    phrases: float  # the same for the question's adjacent term pairs, 0 to 1


@dataclass(frozen=True)
class Hit:
    """A passage found for a question. score is its relevance, the estimated probability that
    it answers the question (qa.calibration); the other measures are what retrieval computed,
    None where the mode did not compute them. The order of hits is the retrieval's own."""

    chunk: Chunk
    score: float  # relevance, 0 to 1
    rank: int  # 1-based
    highlight: tuple[int, int]  # [start, end) of the best sentence, in document coordinates
    # with ask(context=N): up to N paragraphs of its document before the passage, and after
    context: tuple[list[Paragraph], list[Paragraph]] | None = None
    # its document's date, url, author and tags (qa.filters.DocumentTable.info), when known
    about: dict[str, Any] | None = None
    fused: float | None = None  # hybrid's ordering score: min-max fusion + re-rank bonus
    dense: float | None = None  # cosine of the passage's vector with the question's
    lexical: float | None = None  # BM25 (Lucene's variant)
    lexical_share: float | None = None  # BM25 / the most the question's terms could give, [0, 1)
    sentence: SentenceMatch | None = None

    @property
    def relevance(self) -> float:
        return self.score

    def features(self) -> dict[str, float]:
        """The measures that mean the same from question to question, by name, for
        qa.calibration: absolute cosines and shares, no min-max or rank-relative score."""
        s = self.sentence
        named = {
            "dense": self.dense,
            "lexical_share": self.lexical_share,
            "sentence_cosine": None if s is None else s.cosine,
            "token_match": None if s is None else s.token_match,
            "terms": None if s is None else s.terms,
            "phrases": None if s is None else s.phrases,
        }
        return {name: value for name, value in named.items() if value is not None}


@dataclass(frozen=True)
class Answer:
    question: str
    hits: list[Hit]
    id: str | None = None  # echoed from a questions file
    answered: bool = True  # False when no passage is close enough to the question to answer it


@dataclass(frozen=True)
class Answers:
    corpus: Path  # the corpus root that every hit's chunk.source is relative to
    model: str
    answers: list[Answer]

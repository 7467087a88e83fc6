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
class Hit:
    chunk: Chunk
    score: float
    rank: int  # 1-based
    highlight: tuple[int, int]  # [start, end) of the best sentence, in document coordinates
    # with ask(context=N): up to N paragraphs of its document before the passage, and after
    context: tuple[list[Paragraph], list[Paragraph]] | None = None
    # its document's date, url, author and tags (qa.filters.DocumentTable.info), when known
    about: dict[str, Any] | None = None


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

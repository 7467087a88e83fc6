"""One bad file never stops the run: any text becomes passages that fit and cite exactly.

Every test checks what a user relies on: each passage fits the model (title included, as
count_tokens counts it), its offsets slice the document to exactly its text, the passages of a
paragraph cover all of its non-whitespace in order without overlap, and nothing raises.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections.abc import Sequence

import pytest

from qa.corpus import (
    Chunk,
    ChunkingParams,
    Document,
    TokenCounter,
    chunk_documents,
    read_documents,
)

from .conftest import FakeEmbedder

_PIECE = re.compile(r"\w{1,4}|[^\w\s]")


def pieces(texts: Sequence[str]) -> list[int]:
    """WordPiece-like: a token per 4 word characters or per punctuation mark, plus 2 specials."""
    return [len(_PIECE.findall(text)) + 2 for text in texts]


def unknown_words(texts: Sequence[str]) -> list[int]:
    """As pieces(), but a word of over 20 letters or digits is one unknown token, as in BERT: a
    prefix can count more tokens than the whole."""
    return [
        sum(
            1 if len(word) > 20 and word.isalnum() else len(_PIECE.findall(word))
            for word in text.split()
        )
        + 2
        for text in texts
    ]


def words(texts: Sequence[str]) -> list[int]:
    return FakeEmbedder().count_tokens(texts)


COUNTERS: dict[str, TokenCounter] = {
    "pieces": pieces,
    "unknown_words": unknown_words,
    "words": words,
}


def covered(chunks: Sequence[Chunk]) -> str:
    """The non-whitespace the passages hold, in order."""
    return "".join("".join(chunk.text.split()) for chunk in chunks)


def check(
    docs: Sequence[Document], params: ChunkingParams, count: TokenCounter
) -> dict[int, list[Chunk]]:
    """Chunk docs and assert what holds for any input; the chunks of each document, by index."""
    chunks = chunk_documents(docs, params, count)
    by_doc: dict[int, list[Chunk]] = {}
    for chunk in chunks:
        index = next(
            i for i, d in enumerate(docs) if (d.source, d.doc_id) == (chunk.source, chunk.doc_id)
        )
        by_doc.setdefault(index, []).append(chunk)
    for index, own in by_doc.items():
        text = docs[index].text
        newlines = [match.start() for match in re.finditer("\n", text)]
        for chunk in own:
            assert text[chunk.start : chunk.end] == chunk.text
            assert chunk.text and chunk.text.strip() == chunk.text
            assert count([chunk.embed_text()])[0] <= params.max_tokens, chunk.id
            chunk.embed_text().encode("utf-8")  # raises on a lone surrogate
            if chunk.line_start is not None:
                assert chunk.line_start == bisect_left(newlines, chunk.start) + 1
                assert chunk.line_end == bisect_left(newlines, chunk.end - 1) + 1
        assert all(a.end <= b.start for a, b in zip(own, own[1:], strict=False))
        assert len({chunk.id for chunk in own}) == len(own)
    return by_doc


def whole(text: str, params: ChunkingParams, count: TokenCounter) -> list[Chunk]:
    """The chunks of a one-paragraph text file, checked to hold all of its text."""
    docs = read_documents("a.txt", text.encode())
    chunks = check(docs, params, count).get(0, [])
    assert covered(chunks) == "".join(text.split())
    return chunks


def test_long_runs_that_once_backtracked_are_read_quickly() -> None:
    # Each took minutes: sentence ends over a run of dots, titles over a run of spaces.
    whole("Dots" + "." * 100_000 + " and more", ChunkingParams(max_tokens=64), words)
    [doc] = read_documents("h.md", ("# a" + " " * 50_000 + "b\n\nBody text.").encode())
    assert doc.title is not None and doc.title.startswith("a ")
    [doc] = read_documents("f.md", ("---\ntitle: a" + " " * 50_000 + "b\n---\nBody.").encode())
    assert doc.title is not None and doc.title.endswith(" b")


# --- JSONL -----------------------------------------------------------------------------------


def test_lone_surrogates_become_replacement_characters_in_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = [
        '{"_id": "a\\ud800", "title": "T\\udfff", "text": "Broken \\ud83d here.", '
        '"url": "\\udc00"}',
        '{"_id": "b", "text": "A good pair \\ud83d\\ude00 stays."}',
    ]
    with caplog.at_level(logging.WARNING):
        docs = read_documents("s.jsonl", "\n".join(lines).encode())
    assert [(d.doc_id, d.title, d.text, d.url) for d in docs] == [
        ("a\ufffd", "T\ufffd", "Broken \ufffd here.", "\ufffd"),
        ("b", None, "A good pair \U0001f600 stays.", None),
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "s.jsonl:1: lone surrogates replaced by U+FFFD"
    ]
    by_doc = check(docs, ChunkingParams(max_tokens=64, min_words=0), pieces)
    assert by_doc[0][0].text == "Broken \ufffd here."


def test_unreadable_json_lines_are_skipped_with_their_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = [
        "[" * 100_000,
        '{"_id": 1, "text": "' + "x" * 10 + '", "n": ' + "9" * 5000 + "}",
        '{"_id": [1], "text": "an id that is a list"}',
        '{"_id": true, "text": "an id that is a boolean"}',
        '{"_id": 2, "text": 5}',
        '{"_id": 3, "title": {"a": 1}, "url": [1], "date": 20240101, "text": "Kept."}',
        '{"_id": 4, "title": 7, "text": "Kept too."}',
    ]
    with caplog.at_level(logging.WARNING):
        docs = read_documents("odd.jsonl", "\n".join(lines).encode())
    assert [(d.doc_id, d.title, d.url, d.date) for d in docs] == [
        ("3", None, None, "20240101"),
        ("4", "7", None, None),
    ]
    text = caplog.text
    assert "odd.jsonl:1: JSON nested too deeply" in text
    assert "odd.jsonl:2: not readable JSON" in text
    for number in (3, 4, 5):
        assert f'odd.jsonl:{number}: needs an "_id"' in text
    assert "odd.jsonl:6: 'title' is not a string, ignored" in text
    assert "odd.jsonl:6: 'url' is not a string, ignored" in text

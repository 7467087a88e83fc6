"""One bad file never stops the run: any text becomes passages that fit and cite exactly.

Every test checks what a user relies on: each passage fits the model (title included, as
count_tokens counts it), its offsets slice the document to exactly its text, the passages of a
paragraph cover all of its non-whitespace in order without overlap, and nothing raises.
"""

from __future__ import annotations

import json
import logging
import re
from bisect import bisect_left
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.corpus import (
    Chunk,
    ChunkingParams,
    Document,
    SkippedSource,
    TokenCounter,
    chunk_documents,
)
from qa.errors import CorpusError
from qa.readers import read_documents

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


UNSPLITTABLE = {
    "url": "See https://example.com/" + "path/to-a_page?query=value&" * 80 + " for more.",
    "numbers": "|".join(str(n * 7919 % 100_000) for n in range(600)),
    "punctuation": "." * 3000 + "!?" * 500 + "-" * 2000,
    "one word": "x" * 20_000,
    "cjk": "日本語の文章には単語の間に空白がありません" * 150,
    "long words in prose": ("plain word " * 20 + "Z" * 2500 + " ") * 6,
}


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize("case", UNSPLITTABLE)
def test_paragraphs_without_sentence_or_word_breaks_are_cut_at_token_boundaries(
    case: str, counter: str
) -> None:
    text = UNSPLITTABLE[case]
    chunks = whole(text, ChunkingParams(max_tokens=24), COUNTERS[counter])
    assert chunks


def test_cuts_inside_a_word_only_where_the_word_is_too_long_for_a_passage() -> None:
    text = ("plain word " * 20 + "Z" * 2500 + " ") * 6
    chunks = whole(text, ChunkingParams(max_tokens=24), pieces)
    assert {w for chunk in chunks for w in chunk.text.split() if "Z" not in w} == {"plain", "word"}


def test_a_short_word_before_a_long_url_goes_with_it() -> None:
    chunks = whole(UNSPLITTABLE["url"], ChunkingParams(max_tokens=24), pieces)
    assert chunks[0].text.startswith("See https://")


def test_a_title_too_long_for_the_passages_is_left_out_and_its_line_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heading = "# " + "-".join(["title"] * 40)
    text = heading + "\n\nThe body of this document has quite a few words in it, enough.\n"
    [doc] = read_documents("t.md", text.encode())
    assert doc.title is not None
    chunks = check([doc], ChunkingParams(max_tokens=32), pieces)[0]
    assert all(chunk.title is None for chunk in chunks)
    assert covered(chunks) == "".join(text.split())  # the heading is a passage now
    assert "t.md: title too long" in caplog.text


def test_the_counter_sees_bounded_texts_and_batches_however_long_the_line() -> None:
    calls: list[list[int]] = []

    def counting(texts: Sequence[str]) -> list[int]:
        calls.append([len(text) for text in texts])
        return words(texts)

    # 1.5 MB in one paragraph: a sentence without an end, then a word the fake counts as 1.
    line = "one long sentence without an end " * 30_000 + "a" * 500_000
    chunks = whole(line, ChunkingParams(max_tokens=64), counting)
    assert max(max(call) for call in calls) <= 64_000  # a real tokenizer's memory grows with it
    assert max(sum(call) for call in calls) <= 600_000
    assert max(len(chunk.text) for chunk in chunks) <= 64_000  # even where the tokens would fit
    assert len(calls) < 40 * len(chunks)


def test_long_runs_that_once_backtracked_are_read_quickly() -> None:
    # Each took minutes: sentence ends over a run of dots, titles over a run of spaces.
    whole("Dots" + "." * 100_000 + " and more", ChunkingParams(max_tokens=64), words)
    [doc] = read_documents("h.md", ("# a" + " " * 50_000 + "b\n\nBody text.").encode())
    assert doc.title is not None and doc.title.startswith("a ")
    [doc] = read_documents("f.md", ("---\ntitle: a" + " " * 50_000 + "b\n---\nBody.").encode())
    assert doc.title is not None and doc.title.endswith(" b")


def test_a_limit_that_cannot_hold_one_character_is_an_error_not_a_loop() -> None:
    with pytest.raises(CorpusError, match="too small"):
        chunk_documents(read_documents("a.txt", b"x" * 100), ChunkingParams(max_tokens=2), words)


def test_the_real_tokenizer_fits_and_covers_a_hostile_line() -> None:
    from qa.embed import SentenceTransformerEmbedder

    tokens = SentenceTransformerEmbedder("all-MiniLM-L6-v2")  # tokenizer only: nothing loaded
    line = "".join(UNSPLITTABLE.values()) + "1234567890" * 2000 + " end."  # ~130 KB, one line
    chunks = whole(line, ChunkingParams(max_tokens=tokens.max_tokens), tokens.count_tokens)
    assert len(chunks) > 20  # fewer than pieces would give: long runs are one [UNK] token


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
        ("3", None, None, "2024-01-01"),
        ("4", "7", None, None),
    ]
    text = caplog.text
    assert "odd.jsonl:1: JSON nested too deeply" in text
    assert "odd.jsonl:2: not readable JSON" in text
    for number in (3, 4, 5):
        assert f'odd.jsonl:{number}: needs an "_id"' in text
    assert "odd.jsonl:6: 'title' is not a string, ignored" in text
    assert "odd.jsonl:6: 'url' is not a string, ignored" in text


# --- any text at all -------------------------------------------------------------------------

runs = st.builds(
    str.__mul__,
    st.sampled_from(
        [".", "a", "Z", " ", "\n", "\r", "\r\n", "\t", "\x00", "\x0b", "\u200b", "\u2028"]
        + ["\x1f", "\x85", "漢", "-", "/", "#", "!?", "'", "\ufeff", "é", "9"]
    ),
    st.integers(1, 3000),
)
scraps = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
prose = st.lists(st.sampled_from(["The", "cat", "sat.", "On", "it", "Dr.", "x", "## h"])).map(
    " ".join
)
hostile = st.lists(st.one_of(runs, scraps, prose), max_size=12).map("".join)
# Text with lone surrogates, which json.dumps writes as "\ud800" escapes.
surrogates = st.text(
    st.characters(min_codepoint=0xD700, max_codepoint=0xE100, exclude_categories=())
    | st.characters(codec="utf-8"),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(
    text=hostile,
    suffix=st.sampled_from(["doc.txt", "doc.md"]),
    counter=st.sampled_from(list(COUNTERS)),
    max_tokens=st.integers(8, 48),
    padded=st.booleans(),
)
def test_any_text_file_gives_passages_that_fit_and_cover_it(
    text: str, suffix: str, counter: str, max_tokens: int, padded: bool
) -> None:
    if padded:  # NULs past the first 8 KB do not make a file binary
        text = "Plain words. " * 700 + text
    try:
        docs = read_documents(suffix, text.encode("utf-8"))
    except SkippedSource:
        assert "\x00" in text[:8192]
        return
    [doc] = docs
    count = COUNTERS[counter]
    # min_words=0: every paragraph is a passage, so the passages must hold all of the body.
    chunks = check(docs, ChunkingParams(max_tokens=max_tokens, min_words=0), count).get(0, [])
    body = doc.text[doc.body_start :]
    if doc.title_end and (not chunks or chunks[0].title is not None):
        body = doc.text[doc.title_end :]  # the title line is context, not a passage
    assert covered(chunks) == "".join(body.split())
    # With fragments merged and dropped, what is kept still fits and slices exactly.
    check(docs, ChunkingParams(max_tokens=max_tokens), count)


@settings(max_examples=100, deadline=None)
@given(
    records=st.lists(
        st.dictionaries(
            st.sampled_from(["_id", "id", "title", "text", "url", "date"]),
            st.one_of(
                surrogates,
                hostile,
                st.integers(),
                st.floats(),
                st.booleans(),
                st.none(),
                st.lists(st.integers(), max_size=2),
            ),
        ),
        max_size=6,
    ),
    junk=st.lists(st.text(max_size=20).map(lambda s: s.replace("\n", " ")), max_size=3),
)
def test_any_jsonl_gives_documents_that_chunk_and_encode(
    records: list[dict[str, object]], junk: list[str]
) -> None:
    lines = [json.dumps(record) for record in records] + junk
    data = "\n".join(lines).encode("utf-8")
    try:
        docs = read_documents("c.jsonl", data)
    except SkippedSource:
        return  # junk that is not UTF-8, or a NUL early on
    for doc in docs:
        for value in (doc.doc_id, doc.title, doc.text, doc.url, doc.date):
            (value or "").encode("utf-8")  # raises on a lone surrogate
    check(docs, ChunkingParams(max_tokens=24), pieces)

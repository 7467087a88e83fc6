"""Documents and passages: reading a corpus and cutting it into citable chunks.

Pure Python (no ML imports). Every offset is a Python ``str`` index into the document's decoded
text: the file read as UTF-8 with any BOM removed and ``\\r\\n``/``\\r`` turned into ``\\n``
(what ``Path.read_text(encoding="utf-8-sig")`` gives), or a JSONL document's ``text`` field.
So ``text[chunk.start:chunk.end] == chunk.text`` always holds.
"""

from __future__ import annotations

import hashlib
import logging
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

from qa.errors import CorpusError

log = logging.getLogger(__name__)
_WORD = re.compile(r"\S+")


# Counts tokens (special tokens included) for each text, as the embedding model would.
TokenCounter = Callable[[Sequence[str]], list[int]]

# A real tokenizer's memory grows with what it is given (one 20 MB text took 3 GB), so the counter
# never sees a text longer than _WINDOW characters, title included, nor batches of more than
# _BATCH_CHARS. No passage is longer than _WINDOW either: with the real model that takes 256
# unknown "words" of over 100 characters each, so a passage of prose never comes near it.
_WINDOW = 32_768
_TITLE_CHARS = 4_096
_BATCH_CHARS = 1 << 20


@dataclass(frozen=True)
class Document:
    """What a reader (qa.readers) makes of a file: the text every offset indexes, and what
    is known about it."""

    source: str  # path relative to the corpus root, with forward slashes
    doc_id: str | None  # the JSONL "_id"/"id"; None for plain files
    title: str | None  # None when the document has no title we can trust
    text: str
    body_start: int = 0  # where paragraphs begin (after front matter)
    title_end: int = 0  # the title line ends here when it is part of the text (else 0)
    url: str | None = None
    date: str | None = None  # ISO 8601 (YYYY-MM-DD, or with a time) when known
    author: str | None = None
    tags: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)  # any other scalar metadata, as text
    encoding: str | None = None  # how the file's bytes were decoded (None: not from bytes)
    # offsets in text where each page begins (page n starts at pages[n - 1]), for PDFs
    pages: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Chunk:
    """One passage: the unit that is embedded, retrieved and cited."""

    id: str  # citable: "notes/a.md#3", "notes/a.md#3.2" (part 2 of a split ¶), "c.jsonl:42#1"
    source: str
    doc_id: str | None
    title: str | None
    paragraph: int  # 1-based, counted as a reader counts blank-line separated paragraphs
    part: int  # 0 when the paragraph is whole, else 1-based part of a split paragraph
    start: int
    end: int
    line_start: int | None  # 1-based, inclusive; None for JSONL documents
    line_end: int | None
    text: str
    sha256: str  # of embed_text(): the key under which its vector is cached
    # 1-based pages the passage's [start, end) touches, for documents with pages (PDF); a
    # default, so indexes written before pages existed still load
    page_start: int | None = None
    page_end: int | None = None

    def embed_text(self) -> str:
        return embed_text(self.title, self.text)

    def embed_sentences(self) -> list[tuple[int, int]]:
        """passage_sentences() as [start, end) in embed_text()."""
        shift = len(self.title) + 1 if self.title else 0
        return [(shift + a, shift + b) for a, b in passage_sentences(self.text)]


@dataclass(frozen=True)
class ChunkingParams:
    """How documents become passages; part of the index fingerprint."""

    max_tokens: int  # a passage, title included, never exceeds this (model's own tokenizer)
    min_words: int = 8  # shorter paragraphs are fragments: merged forward, or dropped if trailing
    version: int = 1  # bump when the rules below change


def embed_text(title: str | None, text: str) -> str:
    """What the embedder sees: the title as context, then the passage (BEIR's convention)."""
    return f"{title} {text}" if title else text


def passage_sentences(text: str) -> list[tuple[int, int]]:
    """A passage's sentences, as [start, end) in text: the whole passage if it has none."""
    return sentence_spans(text) or [(0, len(text))]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- reading ---------------------------------------------------------------------------------


class SkippedSource(Exception):
    """A source file that cannot be read; the run warns and goes on."""


# --- spans -----------------------------------------------------------------------------------

_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")
# A sentence ends at . ! or ? (closing quotes/brackets included) before whitespace and a capital,
# digit or opening quote. Only a run's first mark starts a match: trying every mark of a long run
# of dots is quadratic (20,000 took 7.8 s), and the run's first mark finds all there is.
_SENTENCE_END = re.compile(
    r"(?<![.!?])([.!?]+)([\"'\u201d\u2019)\]]*)\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])"
)
_LAST_WORD = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt inc ltd co corp vs etc e.g i.e u.s u.k no nos fig figs al "
    "jan feb mar apr jun jul aug sep sept oct nov dec approx dept est gen gov rev sgt capt "
    "col".split()
)


def _add_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Blank-line separated paragraphs of text[start:end], whitespace trimmed."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for match in _BLANK_LINES.finditer(text, start, end):
        _add_trimmed(text, pos, match.start(), spans)
        pos = match.end()
    _add_trimmed(text, pos, end, spans)
    return spans


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentences of text[start:end] (paragraph breaks always end one), whitespace trimmed."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for p_start, p_end in paragraph_spans(text, start, end):
        pos = p_start
        for match in _SENTENCE_END.finditer(text, p_start, p_end):
            if match.group(1) == "." and _is_abbreviation(
                text[max(pos, match.start() - 24) : match.start()]
            ):
                continue
            _add_trimmed(text, pos, match.end(2), spans)
            pos = match.end()
        _add_trimmed(text, pos, p_end, spans)
    return spans


def has_words(text: str, start: int, end: int, count: int) -> bool:
    """Whether text[start:end] has at least count words, reading no further than that."""
    return (
        count <= 0
        or next(islice(_WORD.finditer(text, start, end), count - 1, None), None) is not None
    )


def _is_abbreviation(before_dot: str) -> bool:
    match = _LAST_WORD.search(before_dot)
    if not match:
        return False
    word = match.group(1).lower()
    return len(word) == 1 or word in _ABBREVIATIONS


class LineIndex:
    """1-based line numbers of offsets."""

    def __init__(self, text: str) -> None:
        self._starts = [0] + [match.end() for match in re.finditer("\n", text)]

    def line(self, offset: int) -> int:
        return bisect_right(self._starts, offset)


# --- chunking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    paragraph: int
    start: int
    end: int


def _units(doc: Document, min_words: int, title_end: int) -> list[_Unit]:
    """Paragraphs that stand as passages, with fragments (< min_words words) merged forward.

    Fragments at the end of a document (a footer, a sign-off) are dropped, unless the document
    has nothing else, in which case it is kept whole. The title line (ending at title_end) is
    never a passage of its own: it reaches every passage as embedding context instead.
    """
    units: list[_Unit] = []
    pending: list[tuple[int, int, int]] = []
    paragraphs = paragraph_spans(doc.text, doc.body_start)
    for number, (start, end) in enumerate(paragraphs, start=1):
        if end == title_end and number == 1:
            continue
        if not has_words(doc.text, start, end, min_words):
            pending.append((number, start, end))
            continue
        first = pending[0] if pending else (number, start, end)
        units.append(_Unit(first[0], first[1], end))
        pending = []
    if not units and pending:
        units.append(_Unit(pending[0][0], pending[0][1], pending[-1][2]))
    return units


def chunk_documents(
    docs: Sequence[Document], params: ChunkingParams, count_tokens: TokenCounter
) -> list[Chunk]:
    """Cut documents into passages that fit the model, never silently truncated.

    Any text gives passages: a paragraph too long for one is split at sentences, else at words,
    else wherever its tokens allow, and its passages cover all of it.
    """
    limits = _limits(docs, params.max_tokens, count_tokens)
    planned = [
        (doc, limit, unit)
        for doc, limit in zip(docs, limits, strict=True)
        # A title left out of the passages' context is a paragraph like any other.
        for unit in _units(doc, params.min_words, doc.title_end if limit.title else 0)
    ]
    # A unit longer than a passage may be (_WINDOW) is split without being counted whole.
    short = [unit.end - unit.start <= _WINDOW for _, _, unit in planned]
    sizes = iter(
        _count(
            count_tokens,
            (
                embed_text(limit.title, doc.text[unit.start : unit.end])
                for (doc, limit, unit), fits in zip(planned, short, strict=True)
                if fits
            ),
        )
    )
    lines = {id(doc): LineIndex(doc.text) for doc in docs if doc.doc_id is None}
    chunks: list[Chunk] = []
    for (doc, limit, unit), fits in zip(planned, short, strict=True):
        if fits and next(sizes) <= params.max_tokens:
            parts = [(unit.start, unit.end)]
        else:
            parts = [
                part
                for start, end in _sections(doc.text, unit.start, unit.end)
                for part in _split(doc.text, start, end, limit)
            ]
        for part, (start, end) in enumerate(parts, start=1 if len(parts) > 1 else 0):
            chunks.append(
                _chunk(doc, limit.title, unit.paragraph, part, start, end, lines.get(id(doc)))
            )
    return chunks


def _count(count_tokens: TokenCounter, texts: Iterable[str]) -> list[int]:
    """count_tokens over texts in batches of at most _BATCH_CHARS characters (or one text)."""
    sizes: list[int] = []
    batch: list[str] = []
    chars = 0
    for text in texts:
        if batch and chars + len(text) > _BATCH_CHARS:
            sizes.extend(count_tokens(batch))
            batch, chars = [], 0
        batch.append(text)
        chars += len(text)
    if batch:
        sizes.extend(count_tokens(batch))
    return sizes


@dataclass(frozen=True)
class _Limit:
    """What every passage of one document must fit: the model's limit, its title included."""

    title: str | None  # the title the passages are embedded with
    title_tokens: int  # the title's tokens, or the 2 special tokens alone without one
    max_tokens: int
    count_tokens: TokenCounter

    def fits(self, text: str) -> bool:
        return self.count_tokens([embed_text(self.title, text)])[0] <= self.max_tokens


def _limits(docs: Sequence[Document], max_tokens: int, count_tokens: TokenCounter) -> list[_Limit]:
    """Each document's _Limit. A title that would take over half of every passage is left out
    (a warning says so): it would crowd the passages out, or leave no room for them at all."""
    titles = [doc.title if doc.title and len(doc.title) <= _TITLE_CHARS else None for doc in docs]
    sizes = iter(_count(count_tokens, (title for title in titles if title)))
    limits = []
    for doc, title in zip(docs, titles, strict=True):
        size = next(sizes) if title else 0
        if title and size <= max_tokens // 2:
            limits.append(_Limit(title, size, max_tokens, count_tokens))
            continue
        if doc.title:
            log.warning(
                "%s: title too long to go with every %d-token passage (%d characters), "
                "passages embedded without it",
                _prefix(doc),
                max_tokens,
                len(doc.title),
            )
        limits.append(_Limit(None, 2, max_tokens, count_tokens))
    return limits


def _prefix(doc: Document) -> str:
    return f"{doc.source}:{doc.doc_id}" if doc.doc_id is not None else doc.source


def _chunk(
    doc: Document,
    title: str | None,
    paragraph: int,
    part: int,
    start: int,
    end: int,
    lines: LineIndex | None,
) -> Chunk:
    text = doc.text[start:end]
    pages = doc.pages
    return Chunk(
        id=f"{_prefix(doc)}#{paragraph}" + (f".{part}" if part else ""),
        source=doc.source,
        doc_id=doc.doc_id,
        title=title,
        paragraph=paragraph,
        part=part,
        start=start,
        end=end,
        line_start=lines.line(start) if lines else None,
        line_end=lines.line(end - 1) if lines else None,
        text=text,
        sha256=sha256_text(embed_text(title, text)),
        page_start=bisect_right(pages, start) if pages else None,
        page_end=bisect_right(pages, end - 1) if pages else None,
    )


# The last run of whitespace in what is searched (only a run's first character starts a match,
# so a long run is not tried from each of its characters).
_LAST_SPACE = re.compile(r"(?<!\s)\s+(?=\S*\Z)")
_NON_SPACE = re.compile(r"\S")


def _sections(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """text[start:end] (trimmed) in sections of at most _WINDOW characters and about equal length,
    each ending at the last sentence break in the second half of its reach, else at the last
    whitespace there, else anywhere (that half is one long word then).

    Each section is split on its own, so memory and counting stay bounded by a section however
    long the paragraph (a 20 MB line).
    """
    while end - start > _WINDOW:
        remaining = end - start
        reach = start + -(-remaining // -(-remaining // _WINDOW))
        half = (start + reach) // 2
        sentences = sentence_spans(text, half, reach)
        if len(sentences) > 1:
            stop, after = sentences[-2][1], sentences[-1][0]
        elif space := _LAST_SPACE.search(text, half, reach):
            stop, after = space.start(), space.end()
        else:
            stop, after = reach, reach
        yield start, stop
        start = _skip_space(text, after)
    yield start, end


def _skip_space(text: str, pos: int) -> int:
    found = _NON_SPACE.search(text, pos)
    return found.start() if found else len(text)


def _rstrip(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _split(text: str, start: int, end: int, limit: _Limit) -> list[tuple[int, int]]:
    """Split a too-long section into balanced parts that each fit, at sentence boundaries where
    it can."""
    pieces = sentence_spans(text, start, end)
    # Tokens of "title passage" = title tokens + the pieces' tokens, specials counted once.
    budget = limit.max_tokens - limit.title_tokens
    cuts: dict[tuple[int, int], list[tuple[tuple[int, int], int]]] = {}
    for _ in range(8):
        parts = _pack(text, pieces, budget, limit, cuts)
        sizes = _count(limit.count_tokens, (embed_text(limit.title, text[s:e]) for s, e in parts))
        if all(size <= limit.max_tokens for size in sizes):
            return parts
        budget = int(budget * 0.9)  # joins can tokenise a little longer than their pieces
    # Joins that still tokenise too long (a counter unlike the model's): cut those by tokens.
    return [
        piece
        for (s, e), size in zip(parts, sizes, strict=True)
        for piece in ([(s, e)] if size <= limit.max_tokens else _cut(text, s, e, limit))
    ]


def _pack(
    text: str,
    pieces: list[tuple[int, int]],
    budget: int,
    limit: _Limit,
    cuts: dict[tuple[int, int], list[tuple[tuple[int, int], int]]],
) -> list[tuple[int, int]]:
    sizes = [n - 2 for n in _count(limit.count_tokens, (text[s:e] for s, e in pieces))]
    spans: list[tuple[int, int]] = []
    costs: list[int] = []
    for (start, end), size in zip(pieces, sizes, strict=True):
        if size <= budget:
            spans.append((start, end))
            costs.append(size)
            continue
        # A sentence longer than a passage: fall back to word boundaries, or if it has a word
        # too long for any passage (a URL, a table of numbers, text without spaces) to tokens.
        words = [match.span() for match in _WORD.finditer(text, start, end)]
        if words == [(start, end)]:  # one word: counted already
            word_sizes = [size]
        else:
            word_sizes = [n - 2 for n in _count(limit.count_tokens, (text[s:e] for s, e in words))]
        if max(word_sizes) <= limit.max_tokens - limit.title_tokens:
            spans.extend(words)
            costs.extend(word_sizes)
            continue
        if (start, end) not in cuts:
            parts = _cut(text, start, end, limit)
            part_sizes = _count(limit.count_tokens, (text[s:e] for s, e in parts))
            cuts[start, end] = [(part, n - 2) for part, n in zip(parts, part_sizes, strict=True)]
        for part, part_size in cuts[start, end]:
            spans.append(part)
            costs.append(part_size)
    # As few parts as fit the budget, then the smallest cap that still gives that many parts:
    # balanced passages instead of full ones and a scrap.
    fewest = len(_greedy(costs, budget))
    low, high = max(costs), budget
    while low < high:
        middle = (low + high) // 2
        if len(_greedy(costs, middle)) <= fewest:
            high = middle
        else:
            low = middle + 1
    return [(spans[first][0], spans[last][1]) for first, last in _greedy(costs, low)]


def _cut(text: str, start: int, end: int, limit: _Limit) -> list[tuple[int, int]]:
    """text[start:end] (trimmed, at most a section) as consecutive parts that each fit, cut
    wherever its tokens allow: the longest prefix found to fit, moved back to its last
    whitespace when it would end inside a word, if that keeps half of it and fits too (so a
    word is cut only where it is too long for much else, and "See" is not a passage of its own
    before a long URL).

    The search steps out from the last part's length in doubling steps, then bisects. A prefix's
    tokens need not grow with its length (a long word can be one unknown token and its first half
    several), so it relies only on what it has counted: text[pos:low] fits, text[pos:high] not.
    """

    def fits(pos: int, stop: int) -> bool:
        return limit.fits(text[pos : _rstrip(text, pos, stop)])

    parts: list[tuple[int, int]] = []
    pos, guess = start, 4 * limit.max_tokens
    while True:
        low, high = pos, end + 1  # low == pos: the empty prefix; high > end: none failed yet
        probe, step = min(pos + guess, end), 1
        while low < probe < high:  # steps that double away from the guess, till one fails
            if fits(pos, probe):
                low, probe = probe, min(probe + step, end)
            else:
                high, probe = probe, max(probe - step, pos)
            step *= 2
        if low == end:
            parts.append((pos, end))
            return parts
        while high - low > 1:
            middle = (low + high) // 2
            if fits(pos, middle):
                low = middle
            else:
                high = middle
        if low == pos:
            raise CorpusError(
                f"A passage of {limit.max_tokens} tokens cannot hold even {text[pos]!r}: "
                "the model's limit is too small."
            )
        stop = _rstrip(text, pos, low)
        if stop == low and not text[low].isspace():  # inside a word: back to a space if any
            space = _LAST_SPACE.search(text, pos, stop)
            if space and 2 * (space.start() - pos) >= stop - pos:
                if limit.fits(text[pos : space.start()]):
                    stop = space.start()
        parts.append((pos, stop))
        pos, guess = _skip_space(text, stop), max(1, stop - pos)


def _greedy(costs: list[int], cap: int) -> list[tuple[int, int]]:
    """Index ranges [first, last] of consecutive pieces, each part costing at most cap."""
    parts: list[tuple[int, int]] = []
    first, used = 0, 0
    for i, cost in enumerate(costs):
        if used and used + cost > cap:
            parts.append((first, i - 1))
            first, used = i, 0
        used += cost
    parts.append((first, len(costs) - 1))
    return parts


def passage_words(text: str) -> int:
    return len(text.split())

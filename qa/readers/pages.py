"""Laid-out pages to text: lines put in reading order (columns), running headers, footers and
page numbers left out, lines joined into blank-line separated paragraphs with hyphenation at line
ends undone, and where each page begins in the text.

Pure Python over `Line`s (a line's text and box in PDF points, y upwards), so any source of lines
(qa.readers.pdf) and any test can use it. Every step is linear or n log n in the lines of a page
but the reading order, which is quadratic at worst and so bounded by MAX_LAYOUT_LINES.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

MAX_LAYOUT_LINES = 4_000  # a page with more (a hostile file) is read in the order it was drawn
GUTTER = 0.9  # a vertical gap of this many line heights between lines separates columns
EDGE_ROWS = 2  # rows at the top and at the bottom of a page that may be a running header/footer
_PAGE_NUMBER = re.compile(
    r"[-–—(\[]?\s*(?:page|p\.|pg\.?|seite|pagina)?\s*(?:\d{1,5}|[ivxlcdm]{1,8})"
    r"(?:\s*(?:of|/|von|de)\s*\d{1,5})?\s*[-–—)\]]?",
    re.I,
)
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_ENDS_SENTENCE = re.compile(r"[.!?:][\"'\u201d\u2019)\]]*$")
_HYPHENS = "-\u2010\u00ad\x02\ufffe"  # ASCII, Unicode hyphen, soft hyphen, PDFium's marks
_LAST_WORD = re.compile(r"([^\W\d_]+)[" + _HYPHENS + r"]$")
_FIRST_WORD = re.compile(r"[^\W\d_]+")
_WORDS = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


@dataclass(frozen=True)
class Line:
    """A line of text (or a run of it, when a wide gap splits one) and its box."""

    text: str  # whitespace collapsed, stripped; never empty
    x0: float
    bottom: float
    x1: float
    top: float
    page: int = 0  # 0-based

    @property
    def height(self) -> float:
        return max(self.top - self.bottom, 0.1)


@dataclass(frozen=True)
class PageText:
    text: str
    pages: list[int]  # where each page begins in text (page n at pages[n - 1])
    first_paragraph: tuple[int, int] | None  # page 1's first paragraph, when it stands alone
    first_is_largest: bool  # whether that paragraph is in the largest type on its page


def page_text(pages: Sequence[Sequence[Line]]) -> PageText:
    """The text of pages of lines (each page's lines in the order they were drawn)."""
    kept = drop_furniture(pages)
    ordered = [reading_order(lines) for lines in kept]
    return _assemble(ordered, len(pages))


# --- running headers and footers -------------------------------------------------------------


def _rows(lines: Sequence[Line]) -> list[list[Line]]:
    """Lines grouped into rows that share a baseline band, top to bottom, each left to right."""
    rows: list[list[Line]] = []
    band = (0.0, 0.0)
    for line in sorted(lines, key=lambda line: -line.top):
        middle = (line.top + line.bottom) / 2
        if rows and band[0] <= middle <= band[1]:
            rows[-1].append(line)
        else:
            rows.append([line])
            band = (line.bottom, line.top)
    return [sorted(row, key=lambda line: line.x0) for row in rows]


def _key(text: str) -> str:
    return _SPACES.sub(" ", _DIGITS.sub("#", text.lower()))


def is_page_number(text: str) -> bool:
    return len(text) <= 24 and _PAGE_NUMBER.fullmatch(text) is not None


def drop_furniture(pages: Sequence[Sequence[Line]]) -> list[list[Line]]:
    """Each page's lines without its running header and footer: lines in a page's top or bottom
    EDGE_ROWS rows that are a page number, or whose text (numbers aside) is at an edge of
    another page too."""
    edges: list[list[tuple[Line, str]]] = []
    seen: Counter[tuple[str, str]] = Counter()
    for lines in pages:
        rows = _rows(lines)
        top = [line for row in rows[:EDGE_ROWS] for line in row]
        bottom = [line for row in rows[max(EDGE_ROWS, len(rows) - EDGE_ROWS) :] for line in row]
        marked = [(line, "top") for line in top] + [(line, "bottom") for line in bottom]
        edges.append(marked)
        for key in {(edge, _key(line.text)) for line, edge in marked}:
            seen[key] += 1
    kept: list[list[Line]] = []
    for lines, marked in zip(pages, edges, strict=True):
        drop = {
            id(line)
            for line, edge in marked
            if is_page_number(line.text) or seen[edge, _key(line.text)] >= 2
        }
        kept.append([line for line in lines if id(line) not in drop])
    return kept


# --- reading order ---------------------------------------------------------------------------


def reading_order(lines: Sequence[Line]) -> list[Line]:
    """Lines in reading order by recursive XY-cut: the widest gap splits a group of lines,
    a vertical one into columns read left to right, else the widest horizontal ones into bands
    read top to bottom; what no gap splits is read row by row."""
    if len(lines) > MAX_LAYOUT_LINES:
        return list(lines)
    out: list[Line] = []
    stack: list[list[Line]] = [list(lines)]
    while stack:
        group = stack.pop()
        pieces = _split(group)
        if pieces is None:
            out.extend(line for row in _rows(group) for line in row)
        else:
            stack.extend(reversed(pieces))
    return out


def _split(lines: list[Line]) -> list[list[Line]] | None:
    if len(lines) < 2:
        return None
    height = median(line.height for line in lines)
    across = sorted(lines, key=lambda line: line.x0)
    best_v, v_at, reach = 0.0, 0, across[0].x1
    for i in range(1, len(across)):
        gap = across[i].x0 - reach
        if gap > best_v:
            best_v, v_at = gap, i
        reach = max(reach, across[i].x1)
    down = sorted(lines, key=lambda line: -line.top)
    gaps: list[float] = []
    low = down[0].bottom
    for line in down[1:]:
        gaps.append(low - line.top)
        low = min(low, line.bottom)
    best_h = max(gaps, default=0.0)
    if best_v >= GUTTER * height and best_v >= best_h:
        return [across[:v_at], across[v_at:]]
    if best_h <= 0:
        return None
    pieces, start = [], 0
    for i, gap in enumerate(gaps, start=1):
        if gap >= 0.9 * best_h:
            pieces.append(down[start:i])
            start = i
    pieces.append(down[start:])
    return pieces


# --- paragraphs ------------------------------------------------------------------------------


def _below(a: Line, b: Line) -> bool:
    """b is the next line of a's column: under it, overlapping it across, not far down."""
    return (
        a.page == b.page
        and b.top < (a.top + a.bottom) / 2
        and min(a.x1, b.x1) > max(a.x0, b.x0)
        and a.bottom - b.bottom < 3 * a.height
    )


def _same_row(a: Line, b: Line) -> bool:
    overlap = min(a.top, b.top) - max(a.bottom, b.bottom)
    return a.page == b.page and overlap >= 0.5 * min(a.height, b.height) and b.x0 >= a.x1 - 1


def _spacing(pages: Sequence[Sequence[Line]]) -> float:
    """The usual baseline-to-baseline distance, in line heights."""
    ratios = [
        (a.bottom - b.bottom) / a.height
        for lines in pages
        for a, b in zip(lines, lines[1:], strict=False)
        if _below(a, b) and abs(a.height - b.height) <= 0.1 * a.height
    ]
    return median(ratios) if ratios else 1.2


def _breaks(a: Line, b: Line, right: float, spacing: float, width: float) -> bool:
    """Whether b starts a new paragraph after a (right: the right edge of a's column as far
    as it has been read; width: a full line's): a line set apart (a heading, a wider gap), or
    a line that ends where b's first word would still have fitted, after a sentence (or well
    short)."""
    if _same_row(a, b):
        return False
    if abs(a.height - b.height) > 0.15 * max(a.height, b.height):
        return True  # a heading, or back from one
    below = _below(a, b)
    if below:
        if a.bottom - b.bottom > 1.3 * spacing * a.height:
            return True
        right = max(right, b.x1)
    else:  # the column's first line may be all that is known of it: a full line's width
        right = max(right, a.x0 + width)
    if a.text[-1] in _HYPHENS:
        return False
    room = right - a.x1
    char = (b.x1 - b.x0) / len(b.text)  # b's mean character width
    fits = room > char * (len(b.text.split(" ", 1)[0]) + 1.5)
    ends = _ENDS_SENTENCE.search(a.text) is not None
    if fits and (ends or room > 0.3 * (right - a.x0)):
        return True
    return below and ends and b.x0 - a.x0 > 0.8 * a.height  # an indented first line


def _join(before: str, after: str, words: set[str]) -> tuple[str, str]:
    """How the end of a paragraph's text so far and its next line meet: (kept part of before's
    tail, separator). A word hyphenated at the line end is joined again; the hyphen stays when
    the next part is not lower case, when the word had a hyphen already (over-the-|air), and
    when the document spells the word with it elsewhere, or uses both parts as words of their
    own and never the whole (home-|field)."""
    if before[-1] not in _HYPHENS or len(before) < 2 or before[-2].isspace():
        return before, " "
    kept = before[:-1] + "-"
    tail = _LAST_WORD.search(before)
    rest = _FIRST_WORD.match(after)
    if tail is None or rest is None or not after[0].islower():
        return kept, ""  # 18-|yard, Mercedes-|Benz
    head = tail.group(1)
    if tail.start() > 0 and before[tail.start() - 1] == "-":
        return kept, ""
    whole = (head + rest.group()).lower()
    if whole in words:
        return before[:-1], ""
    if f"{head}-{rest.group()}".lower() in words:
        return kept, ""
    if head.lower() in words and rest.group().lower() in words:
        return kept, ""
    return before[:-1], ""


def _vocabulary(pages: Sequence[Sequence[Line]]) -> set[str]:
    """Words as the document spells them inside its lines (not where a line breaks one)."""
    words: set[str] = set()
    for lines in pages:
        for line in lines:
            found = _WORDS.findall(line.text)
            if line.text[-1] in _HYPHENS and found:
                found.pop()
            words.update(word.lower() for word in found[1:])
    return words


def _assemble(pages: list[list[Line]], count: int) -> PageText:
    spacing = _spacing(pages)
    words = _vocabulary(pages)
    widths = sorted(line.x1 - line.x0 for lines in pages for line in lines)
    full = widths[int(0.9 * (len(widths) - 1))] if widths else 0.0
    out: list[str] = []  # pieces of the text
    size = 0  # characters in out
    starts = [-1] * count
    column_right = 0.0  # the right edge of the paragraph's column, as far as it has been read
    prev: Line | None = None
    first: tuple[int, int] | None = None
    first_height = 0.0
    for line in (line for lines in pages for line in lines):
        if prev is None:
            sep = ""
        elif _breaks(prev, line, column_right, spacing, full):
            sep = "\n\n"
            if first is None and prev.page == 0:
                first = (0, size)
        else:
            kept, sep = _join(out[-1], line.text, words)
            size += len(kept) - len(out[-1])
            out[-1] = kept
        if prev is None:
            first_height = line.height
        if sep == "\n\n" or prev is None or not (_below(prev, line) or _same_row(prev, line)):
            column_right = line.x1
        else:
            column_right = max(column_right, line.x1)
        size += len(sep)
        out.append(sep)
        if starts[line.page] < 0:
            starts[line.page] = size
        out.append(line.text)
        size += len(line.text)
        prev = line
    text = "".join(out)
    for n in range(count - 1, -1, -1):  # a page with no text begins where the next one does
        if starts[n] < 0:
            starts[n] = starts[n + 1] if n + 1 < count else len(text)
    largest = max((line.height for line in pages[0]), default=0.0) if pages else 0.0
    return PageText(text, starts, first, first_height >= largest > 0)

"""PDFs laid out as articles are, for the format benchmarks: two columns, a running header and a
footer with the page number, words hyphenated at line ends. Drawn line by line with reportlab's
canvas, so the true reading order of every line is known (`Written.lines`).

`order` decides the order lines are drawn in, which is the order a naive extractor reads them:
"reading" (header, column 1, column 2, footer, as LaTeX and Word write them) or "rows" (row by row
across both columns, header and footer last, as some generators and converted scans do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PAGE_W, PAGE_H = 612.0, 792.0  # US Letter, points
MARGIN, GUTTER = 54.0, 18.0
BODY_TOP, BODY_BOTTOM = PAGE_H - 66.0, 58.0
HEADER_Y, FOOTER_Y = PAGE_H - 42.0, 34.0
FONTS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
)


@dataclass(frozen=True)
class Layout:
    columns: int = 2
    order: str = "reading"  # or "rows"
    size: float = 9.5
    leading: float = 12.0
    gap: float = 6.0  # extra space between paragraphs
    hyphenate: bool = True


@dataclass
class Written:
    """What was drawn: the body's lines in reading order (header and footer excluded), the
    running header and footer texts, the words split at line ends, and the page count."""

    lines: list[str] = field(default_factory=list)
    furniture: list[str] = field(default_factory=list)
    split_words: list[str] = field(default_factory=list)
    pages: int = 0


def _fonts() -> tuple[str, str]:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    regular, bold = FONTS
    if not regular.exists():  # reportlab's own Vera: no Greek or CJK, but always there
        import reportlab

        base = Path(reportlab.__file__).parent / "fonts"
        regular, bold = base / "Vera.ttf", base / "VeraBd.ttf"
    if "Body" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("Body", str(regular)))
        pdfmetrics.registerFont(TTFont("Body-Bold", str(bold)))
    return "Body", "Body-Bold"


def _break(
    words: list[str], width: float, measure: object, hyphenate: bool
) -> tuple[list[str], list[str]]:
    """Greedy line breaking; a word that does not fit is hyphenated where its first part (and
    a hyphen) fits, keeping 3 letters each side, or broken after a hyphen it already has."""
    fit = measure  # (text) -> width
    lines: list[str] = []
    split: list[str] = []
    line = ""
    queue = list(words)
    while queue:
        word = queue.pop(0)
        candidate = f"{line} {word}" if line else word
        if fit(candidate) <= width:  # type: ignore[operator]
            line = candidate
            continue
        cut = _cut_point(line, word, width, fit) if hyphenate else None
        if cut is not None:
            head, tail = word[:cut], word[cut:]
            shown = head if head.endswith("-") else head + "-"
            lines.append(f"{line} {shown}" if line else shown)
            split.append(word)
            line = ""
            queue.insert(0, tail)
            continue
        if line:
            lines.append(line)
            line = ""
            queue.insert(0, word)
        else:  # one word wider than the column: it overflows
            lines.append(word)
    if line:
        lines.append(line)
    return lines, split


def _cut_point(line: str, word: str, width: float, fit: object) -> int | None:
    prefix = f"{line} " if line else ""
    for cut in range(len(word) - 3, 2, -1):
        head = word[:cut]
        natural = head.endswith("-")
        if not natural and not (word[cut - 1].isalpha() and word[cut].islower()):
            continue
        if not natural and not word[:cut].isalpha():
            continue
        shown = head if natural else head + "-"
        if fit(prefix + shown) <= width:  # type: ignore[operator]
            return cut
    return None


def write_pdf(
    target: Path | object,
    title: str,
    paragraphs: Sequence[str],
    layout: Layout = Layout(),
    *,
    author: str | None = None,
) -> Written:
    """Write title and paragraphs as a PDF to target (a path or a binary file)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.pdfgen.canvas import Canvas

    body, bold = _fonts()
    canvas = Canvas(target, pagesize=(PAGE_W, PAGE_H), invariant=1)  # type: ignore[arg-type]
    canvas.setTitle(title)
    canvas.setAuthor(author or "qa format bench")
    column_w = (PAGE_W - 2 * MARGIN - GUTTER * (layout.columns - 1)) / layout.columns
    written = Written()

    def measure(text: str) -> float:
        return float(stringWidth(text, body, layout.size))

    # (column, y, text) for each body line, page by page
    pages: list[list[tuple[int, float, str, str, float]]] = [[]]
    column, y = 0, BODY_TOP
    title_lines, _ = _break(
        title.split(), PAGE_W - 2 * MARGIN, lambda t: stringWidth(t, bold, 15), False
    )
    for text in title_lines:
        pages[0].append((-1, y, text, bold, 15.0))
        written.lines.append(text)
        y -= 19
    y -= layout.gap
    top = y  # page 1's columns start under the title
    for paragraph in paragraphs:
        lines, split = _break(paragraph.split(), column_w, measure, layout.hyphenate)
        written.split_words.extend(split)
        for text in lines:
            if y < BODY_BOTTOM:
                column += 1
                y = top
                if column == layout.columns:
                    pages.append([])
                    column, y = 0, BODY_TOP
                    top = BODY_TOP
            pages[-1].append((column, y, text, body, layout.size))
            written.lines.append(text)
            y -= layout.leading
        y -= layout.gap
    count = len(pages)
    for number, lines in enumerate(pages, start=1):
        header = (f"{title} — a format-invariance test", f"{number}")
        footer = f"qa bench · page {number} of {count}"
        written.furniture.extend([header[0], footer])
        ordered = lines if layout.order == "reading" else sorted(lines, key=lambda r: (-r[1], r[0]))
        if layout.order == "reading":
            _header(canvas, header, body)
        for col, line_y, text, font, size in ordered:
            x = MARGIN if col < 0 else MARGIN + col * (column_w + GUTTER)
            canvas.setFont(font, size)
            canvas.drawString(x, line_y, text)
        if layout.order != "reading":
            _header(canvas, header, body)
        canvas.setFont(body, 8)
        canvas.drawCentredString(PAGE_W / 2, FOOTER_Y, footer)
        canvas.showPage()
    canvas.save()
    written.pages = count
    return written


def _header(canvas: object, header: tuple[str, str], font: str) -> None:
    canvas.setFont(font, 8)  # type: ignore[attr-defined]
    canvas.drawString(MARGIN, HEADER_Y, header[0])  # type: ignore[attr-defined]
    canvas.drawRightString(PAGE_W - MARGIN, HEADER_Y, header[1])  # type: ignore[attr-defined]


def article(path: Path) -> tuple[str, list[str]]:
    """A SQuAD article's title (its first line) and paragraphs."""
    text = path.read_text(encoding="utf-8")
    title, _, rest = text.partition("\n\n")
    return title.strip(), [p.strip() for p in rest.split("\n\n") if p.strip()]

"""PDF: the text layer read with PDFium (pypdfium2), laid out by qa.readers.pages (reading
order, running headers/footers and page numbers out, paragraphs, de-hyphenation); where each
page begins is kept (Document.pages), so citations carry page numbers. Title, author, date and
keywords from the document info, else from an XMP packet. A PDF without a text layer (a scan)
is skipped: qa does not OCR.

PDFium was chosen by measurement (bench/pdf_readers.py, two-column PDFs): its text comes 5-9x
faster than pypdf's and ~25x faster than pdfminer.six's, and its character boxes come cheap
enough to lay pages out from geometry, so a page drawn out of reading order still reads in
order (0.01 s a page, all told, against pdfminer.six's 0.1 s for its own layout analysis).
"""

from __future__ import annotations

import ctypes
import logging
import re
from typing import Any

from qa.corpus import Document, SkippedSource
from qa.readers.meta import iso_date, tag_list
from qa.readers.pages import Line, page_text

log = logging.getLogger(__name__)

SUFFIXES = (".pdf",)
MAX_PAGES = 10_000
MAX_CHARS = 20_000_000  # about 5,000 dense pages; more from one file is not an article
_XMP_MAX = 1 << 20
# Placeholders PDF writers fill the info with when nobody gave a value.
_PLACEHOLDERS = {"", "untitled", "anonymous", "unknown", "unspecified", "none", "title"}
_PDF_DATE = re.compile(
    r"(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:(Z)|([+-])(\d{2})'?(\d{2})?'?)?"
)
# Ligatures as letters; PDFium's marks of a hyphen at a line end as one; soft hyphens out.
_LETTERS = str.maketrans(
    {
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\x02": "-",
        "\ufffe": "-",
        "\u00ad": None,
    }
)
# A word as PDFium spells it, ending at a hyphen it marks as a line end's (it joins the lines).
_WORD = re.compile("[^\\s\x02\ufffe]+[\x02\ufffe]?|[\x02\ufffe]")
_CONTROLS = re.compile("[\x00-\x01\x03-\x1f\x7f-\x9f]")


def read(source: str, data: bytes) -> list[Document]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise SkippedSource(f"{source}: {_load_error(exc)}, skipped") from None
    try:
        pages, info = _extract(source, pdf)
    except SkippedSource:
        raise
    except Exception as exc:  # PDFium (C) on a damaged file: whatever it says, it is unreadable
        log.debug("%s: PDFium failed", source, exc_info=True)
        raise SkippedSource(f"{source}: not a readable PDF ({exc}), skipped") from None
    finally:
        pdf.close()
    if not any(pages):
        raise SkippedSource(f"{source}: no text layer (a scan? qa does not OCR), skipped")
    laid = page_text(pages)
    meta = _merged(info, _xmp(data))
    title = meta.get("title")
    title_end = 0
    if laid.first_paragraph is not None:
        start, end = laid.first_paragraph
        first = laid.text[start:end]
        if title and _same(first, title):
            title_end = end
        elif title is None and laid.first_is_largest and len(first.split()) <= 25:
            title, title_end = first, end  # page 1's first line in its largest type
    return [
        Document(
            source,
            None,
            title,
            laid.text,
            title_end=title_end,
            date=meta.get("date"),
            author=meta.get("author"),
            tags=tag_list(meta.get("keywords")),
            meta={k: v for k, v in meta.items() if k in ("subject",)},
            pages=laid.pages,
        )
    ]


def _load_error(exc: Exception) -> str:
    import pypdfium2.raw as raw

    code = getattr(exc, "err_code", None)
    if code == raw.FPDF_ERR_PASSWORD:
        return "encrypted (needs a password)"
    if code == raw.FPDF_ERR_SECURITY:
        return "encrypted (an unsupported security handler)"
    if code == raw.FPDF_ERR_SUCCESS:
        return "a PDF without pages"
    return "not a readable PDF"


def _extract(source: str, pdf: Any) -> tuple[list[list[Line]], dict[str, str]]:
    """Each page's lines in the order they were drawn, and the document info."""
    count = len(pdf)
    if count > MAX_PAGES:
        raise SkippedSource(f"{source}: {count:,} pages, more than qa reads ({MAX_PAGES:,})")
    info = {key.lower(): value for key, value in pdf.get_metadata_dict(skip_empty=True).items()}
    pages: list[list[Line]] = []
    chars = 0
    for number in range(count):
        page = pdf[number]
        try:
            textpage = page.get_textpage()
            try:
                chars += textpage.count_chars()
                if chars > MAX_CHARS:
                    raise SkippedSource(
                        f"{source}: more than {MAX_CHARS:,} characters of text, skipped"
                    )
                pages.append(_lines(textpage, number))
            finally:
                textpage.close()
        finally:
            page.close()
    return pages, info


def _lines(textpage: Any, page: int) -> list[Line]:
    """A page's words (with the boxes of their first and last characters) grouped into lines:
    a word that is not on the current line's band, goes back, or lies a wide gap to its right
    starts a new line. Text drawn at an angle (a margin stamp) is left out."""
    import pypdfium2.raw as raw

    count = textpage.count_chars()
    text = textpage.get_text_range(errors="replace") if count else ""
    if len(text) != count:  # PDFium inserted or left out characters: ask for each one
        text = "".join(chr(raw.FPDFText_GetUnicode(textpage.raw, i) or 32) for i in range(count))
    handle = textpage.raw
    rect = raw.FS_RECTF()
    box = ctypes.byref(rect)
    lines: list[Line] = []
    words: list[str] = []
    x0 = bottom = x1 = top = 0.0
    tilted = False

    def close() -> None:
        raw_line = " ".join(words)
        hyphen = "-" if raw_line.endswith(("\x02", "\ufffe", "\u00ad")) else ""
        line = " ".join(_CONTROLS.sub("", raw_line).translate(_LETTERS).split())
        line = line + hyphen if hyphen and not line.endswith("-") else line
        if line and not tilted:
            lines.append(Line(line, x0, bottom, x1, top, page))

    for match in _WORD.finditer(text):
        first, last = match.start(), match.end() - 1
        if not raw.FPDFText_GetLooseCharBox(handle, first, box):
            continue
        left, low, high = rect.left, rect.bottom, rect.top
        right = rect.right
        if last != first and raw.FPDFText_GetLooseCharBox(handle, last, box):
            right = rect.right
            low, high = min(low, rect.bottom), max(high, rect.top)
        if high < low:
            low, high = high, low
        height = high - low if high - low > 0.1 else 0.1
        if words:
            overlap = (high if high < top else top) - (low if low > bottom else bottom)
            line_height = top - bottom if top - bottom > 0.1 else 0.1
            if (
                overlap >= 0.5 * (height if height < line_height else line_height)
                and left >= x1 - 0.5 * height
                and left - x1 <= 0.9 * (height if height > line_height else line_height)
            ):
                words.append(match.group())
                x1 = right if right > x1 else x1
                bottom = low if low < bottom else bottom
                top = high if high > top else top
                continue
            close()
        angle = raw.FPDFText_GetCharAngle(handle, first)
        tilted = 0.05 < angle < 6.23  # radians: not upright
        words = [match.group()]
        x0, bottom, x1, top = left, low, right, high
    if words:
        close()
    return lines


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _value(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return None if text.casefold() in _PLACEHOLDERS else text


def pdf_date(value: str | None) -> str | None:
    """A PDF date ("D:20240305093000+01'00'") as ISO 8601; None when it is not one."""
    if not value:
        return None
    match = _PDF_DATE.match(value.strip())
    if match is None:
        return iso_date(value)
    year, month, day, hour, minute, second, zulu, sign, zh, zm = match.groups()
    if month is None or day is None:
        return iso_date(f"{year}-{month}" if month else year)
    text = f"{year}-{month}-{day}"
    if hour is not None:
        text += f"T{hour}:{minute or '00'}:{second or '00'}"
        if zulu:
            text += "+00:00"
        elif sign:
            text += f"{sign}{zh}:{zm or '00'}"
    return iso_date(text)


def _merged(info: dict[str, str], xmp: dict[str, str]) -> dict[str, str]:
    """Document info first (what most readers show), XMP where the info has nothing."""
    found = {
        "title": _value(info.get("title")),
        "author": _value(info.get("author")),
        "date": pdf_date(info.get("creationdate")),
        "keywords": _value(info.get("keywords")),
        "subject": _value(info.get("subject")),
    }
    for key, value in xmp.items():
        if found.get(key) is None:
            found[key] = value
    return {k: v for k, v in found.items() if v is not None}


_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "pdf": "http://ns.adobe.com/pdf/1.3/",
}


def _xmp(data: bytes) -> dict[str, str]:
    """Title, author, date and keywords of the file's XMP packet when it is stored
    uncompressed, as the XMP specification asks so that tools can find it."""
    start = data.find(b"<x:xmpmeta")
    end = data.find(b"</x:xmpmeta>", start)
    if start < 0 or end < 0 or end - start > _XMP_MAX:
        return {}
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data[start : end + len(b"</x:xmpmeta>")], parser)
    except etree.LxmlError:
        return {}

    def items(path: str) -> list[str]:
        return [" ".join(t.split()) for t in root.xpath(path, namespaces=_NS) if t.strip()]

    titles = items("//dc:title//rdf:li/text()")
    authors = items("//dc:creator//rdf:li/text()")
    dates = items("//xmp:CreateDate/text() | //rdf:Description/@xmp:CreateDate")
    dates += items("//dc:date//rdf:li/text()")
    keywords = items("//dc:subject//rdf:li/text()") or items(
        "//pdf:Keywords/text() | //rdf:Description/@pdf:Keywords"
    )
    found = {
        "title": _value(titles[0]) if titles else None,
        "author": _value(", ".join(authors)) if authors else None,
        "date": next((d for d in map(iso_date, dates) if d), None),
        "keywords": ", ".join(keywords) if keywords else None,
    }
    return {k: v for k, v in found.items() if v is not None}

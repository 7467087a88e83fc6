"""Word (.docx): paragraphs, headings and tables (a row a line, cells between " | ") in document
order, content controls and tracked insertions included, blank-line separated; title, author,
date and keywords from the core properties (python-docx). The archive is inflated within
qa.readers.archive's limits before python-docx reads it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from qa.corpus import Document, SkippedSource
from qa.readers.archive import check_members, open_zip
from qa.readers.meta import iso_date, tag_list

log = logging.getLogger(__name__)

SUFFIXES = (".docx",)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
# Containers whose children are blocks of the body (content controls, custom XML).
_CONTAINERS = {f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}smartTag"}
_TEXT = {f"{_W}t": None, f"{_W}tab": " ", f"{_W}br": " ", f"{_W}cr": " "}
_TEXT[f"{_W}noBreakHyphen"] = "-"


def read(source: str, data: bytes) -> list[Document]:
    archive = open_zip(source, data, "a Word file")
    with archive:
        check_members(source, archive)
    import docx

    try:
        document = docx.Document(_stream(data))
        body = document.element.body
        styles = {style.style_id: (style.name or "") for style in document.styles}
        core = document.core_properties
        meta = {
            "title": core.title,
            "author": core.author,
            "date": core.created,
            "keywords": core.keywords,
            "subject": core.subject,
        }
    except Exception as exc:  # python-docx on a damaged or foreign package: unreadable
        log.debug("%s: python-docx failed", source, exc_info=True)
        why = _reason(exc)
        raise SkippedSource(f"{source}: not a readable Word file ({why}), skipped") from None
    for fallback in list(body.iter(_FALLBACK)):  # the same content as its mc:Choice
        fallback.getparent().remove(fallback)
    blocks = list(_blocks(body, styles))
    text = "\n\n".join(block for block, _ in blocks)
    title = _plain(meta["title"])
    if title is None:
        title = next((block for block, style in blocks if style == "title"), None)
    title_end = len(blocks[0][0]) if blocks and title and _same(blocks[0][0], title) else 0
    return [
        Document(
            source,
            None,
            title,
            text,
            title_end=title_end,
            date=iso_date(meta["date"]),
            author=_plain(meta["author"]),
            tags=tag_list(_plain(meta["keywords"])),
            meta={"subject": s} if (s := _plain(meta["subject"])) else {},
        )
    ]


def _stream(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def _reason(exc: Exception) -> str:
    return str(exc).split("\n", 1)[0][:200] or type(exc).__name__


def _plain(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None


def _same(a: str, b: str) -> bool:
    return a.casefold() == " ".join(b.split()).casefold()


def _blocks(body: Any, styles: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(text, style: "title", "heading" or "") of each non-empty paragraph or table, in order."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        tag = node.tag
        if tag == f"{_W}p":
            text = _paragraph(node)
            if text:
                yield text, _style(node, styles)
        elif tag == f"{_W}tbl":
            rows = [_row(tr) for tr in node.iterchildren(f"{_W}tr")]
            text = "\n".join(row for row in rows if row)
            if text:
                yield text, ""
        elif tag in _CONTAINERS:
            stack.extend(reversed(node))


def _paragraph(p: Any) -> str:
    pieces = []
    for node in p.iter(*_TEXT):
        shown = _TEXT[node.tag]
        pieces.append(node.text or "" if shown is None else shown)
    return " ".join("".join(pieces).split())


def _row(tr: Any) -> str:
    cells = []
    for tc in tr.iter(f"{_W}tc"):
        if tc.getparent() is not tr and tc.getparent().tag != f"{_W}sdtContent":
            continue  # a nested table's cell: its paragraphs are in its outer cell's text
        text = " ".join(t for p in tc.iter(f"{_W}p") if (t := _paragraph(p)))
        if text:
            cells.append(text)
    return " | ".join(cells)


def _style(p: Any, styles: dict[str, str]) -> str:
    ids = p.xpath("./w:pPr/w:pStyle/@w:val")
    name = styles.get(str(ids[0]), str(ids[0])).lower() if ids else ""
    if name == "title":
        return "title"
    return "heading" if name.startswith("heading") else ""

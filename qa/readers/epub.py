"""EPUB (2 and 3): the chapters in spine order, each opening with its title as a heading
paragraph (its first heading, else its table-of-contents label, else its <title>), then its
blocks (paragraphs, headings, list items, table rows), blank-line separated; title, author,
date and subjects from the OPF metadata.

An EPUB is a zip of XHTML files with an OPF manifest and spine, read here with zipfile and lxml
(ebooklib, the usual library, is AGPL-3.0). Members are inflated within qa.readers.archive's
limits; XML is parsed without entities, DTDs or the network.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urldefrag

from qa.corpus import Document, SkippedSource
from qa.readers.archive import MAX_UNZIPPED, open_zip, read_member
from qa.readers.meta import iso_date, tag_list

SUFFIXES = (".epub",)
MAX_CHARS = 20_000_000
_NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
    "ncx": "http://www.daisy.org/z3986/2005/ncx/",
}
_BLOCKS = {
    "p", "div", "section", "article", "blockquote", "pre", "li", "dt", "dd", "tr", "table",
    "h1", "h2", "h3", "h4", "h5", "h6", "figcaption", "caption", "header", "footer", "aside",
    "ul", "ol", "dl", "body", "hr", "address", "center",
}  # fmt: skip
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SKIP = {"script", "style", "head", "title", "nav", "svg", "math", "rt", "rp", "template"}
_CELLS = {"td", "th"}


def read(source: str, data: bytes) -> list[Document]:
    archive = open_zip(source, data, "an EPUB")
    with archive:
        budget = [MAX_UNZIPPED]
        names = set(archive.namelist())

        def member(name: str) -> bytes | None:
            return read_member(source, archive, name, budget) if name in names else None

        container = member("META-INF/container.xml")
        root = _xml(container) if container is not None else None
        paths = root.xpath("//c:rootfile/@full-path", namespaces=_NS) if root is not None else []
        opf_path = str(paths[0]) if paths else None
        opf_data = member(opf_path) if opf_path else None
        opf = _xml(opf_data) if opf_data is not None else None
        if opf is None or opf_path is None:
            raise SkippedSource(f"{source}: not an EPUB (no readable OPF package), skipped")
        base = posixpath.dirname(opf_path)
        manifest = {
            str(item.get("id")): item
            for item in opf.xpath("//opf:manifest/opf:item[@id and @href]", namespaces=_NS)
        }
        labels = _toc_labels(opf, manifest, base, member)
        chapters: list[str] = []
        size = 0
        for idref in opf.xpath("//opf:spine/opf:itemref/@idref", namespaces=_NS):
            item = manifest.get(str(idref))
            if item is None or "nav" in (item.get("properties") or "").split():
                continue
            path = _resolve(base, str(item.get("href")))
            content = member(path)
            if content is None:
                continue
            blocks = list(_chapter(content, labels.get(path)))
            size += sum(len(b) + 2 for b in blocks)
            if size > MAX_CHARS:
                raise SkippedSource(f"{source}: more than {MAX_CHARS:,} characters, skipped")
            chapters.extend(blocks)
    meta = _metadata(opf)
    title = meta.get("title")
    title_end = len(chapters[0]) if chapters and title and _same(chapters[0], title) else 0
    return [
        Document(
            source,
            None,
            title,
            "\n\n".join(chapters),
            title_end=title_end,
            date=iso_date(meta.get("date")),
            author=meta.get("author"),
            tags=tag_list(meta.get("subjects")),
            meta={k: v for k, v in meta.items() if k in ("language", "publisher")},
        )
    ]


def _xml(data: bytes) -> Any:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=True)
    try:
        root = etree.fromstring(data, parser)
    except (etree.LxmlError, ValueError):
        return None
    return root


def _resolve(base: str, href: str) -> str:
    path = unquote(urldefrag(href)[0])
    return posixpath.normpath(posixpath.join(base, path)) if base else posixpath.normpath(path)


def _text(value: str | None) -> str:
    return " ".join((value or "").split())


def _same(a: str, b: str) -> bool:
    return a.casefold() == _text(b).casefold()


def _metadata(opf: Any) -> dict[str, str]:
    def values(name: str) -> list[str]:
        found = opf.xpath(f"//opf:metadata//dc:{name}", namespaces=_NS)
        return [t for node in found if (t := _text(node.xpath("string()")))]

    found = {
        "title": next(iter(values("title")), None),
        "author": ", ".join(values("creator")) or None,
        "date": next(iter(values("date")), None),
        "subjects": ", ".join(values("subject")) or None,
        "language": next(iter(values("language")), None),
        "publisher": next(iter(values("publisher")), None),
    }
    return {k: v for k, v in found.items() if v}


def _toc_labels(opf: Any, manifest: dict[str, Any], base: str, member: Any) -> dict[str, str]:
    """The first table-of-contents label of each chapter file: from the EPUB 3 nav document,
    else the EPUB 2 NCX."""
    labels: dict[str, str] = {}
    for item in manifest.values():
        if "nav" in (item.get("properties") or "").split():
            path = _resolve(base, str(item.get("href")))
            root = _html(member(path) or b"")
            if root is not None:
                here = posixpath.dirname(path)
                for link in root.iter("{*}a", "a"):
                    href, label = link.get("href"), _text(link.xpath("string()"))
                    if href and label:
                        labels.setdefault(_resolve(here, href), label)
    toc = opf.xpath("//opf:spine/@toc", namespaces=_NS)
    ncx_item = manifest.get(str(toc[0])) if toc else None
    if not labels and ncx_item is not None:
        path = _resolve(base, str(ncx_item.get("href")))
        ncx = _xml(member(path) or b"<x/>")
        here = posixpath.dirname(path)
        for point in ncx.xpath("//ncx:navPoint", namespaces=_NS) if ncx is not None else []:
            label = _text(point.xpath("string(ncx:navLabel/ncx:text)", namespaces=_NS))
            src = point.xpath("string(ncx:content/@src)", namespaces=_NS)
            if src and label:
                labels.setdefault(_resolve(here, src), label)
    return labels


def _html(data: bytes) -> Any:
    """A chapter's XHTML, parsed as HTML (lenient: entities like &nbsp;, unclosed tags)."""
    from lxml import etree, html

    if not data.strip():
        return None
    try:
        return html.fromstring(data, parser=html.HTMLParser(no_network=True))
    except (etree.LxmlError, ValueError):
        return None


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _chapter(data: bytes, label: str | None) -> Iterator[str]:
    """A chapter's blocks, its title first."""
    root = _html(data)
    if root is None:
        return
    body = next(root.iter("{*}body", "body"), root)
    blocks = list(_blocks(body))
    heading = next((text for text, tag in blocks[:1] if tag in _HEADINGS), None)
    if heading is None:
        titles = [_text(t.xpath("string()")) for t in root.iter("{*}title", "title")]
        title = label or next((t for t in titles if t), None)
        if title and blocks:
            yield title
    for text, _ in blocks:
        yield text


def _blocks(body: Any) -> Iterator[tuple[str, str]]:
    """(text, tag) of each block: inline text gathered until a block element starts or ends;
    table cells of a row between " | ". Walked with a stack, so depth costs no recursion."""
    pieces: list[str] = []
    opened: list[str] = [""]

    def flush() -> Iterator[tuple[str, str]]:
        text = _text("".join(pieces)).strip(" |")
        pieces.clear()
        if text:
            yield text, opened[0]
        opened[0] = ""

    stack: list[tuple[Any, bool]] = [(body, False)]
    while stack:
        node, leaving = stack.pop()
        tag = _local(node.tag)
        if leaving:
            if tag in _BLOCKS:
                yield from flush()
            elif tag in _CELLS:
                pieces.append(" | ")
            if node.tail and node is not body:
                pieces.append(node.tail)
            continue
        if tag in _SKIP or not isinstance(node.tag, str):  # comments, processing instructions
            if node.tail and node is not body:
                pieces.append(node.tail)
            continue
        if tag in _BLOCKS:
            yield from flush()
            opened[0] = tag
        elif tag == "br":
            pieces.append(" ")
        if node.text:
            pieces.append(node.text)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node))
    yield from flush()

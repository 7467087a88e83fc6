"""Saved web pages: the article body alone (no navigation, ads, cookie notices, share bars,
comments or footers) as the text offsets index, and the page's metadata.

The body comes from trafilatura with favor_precision and without comments, chosen on the 91
annotated news pages of ../shared/data/html-articles (bench/html.py, bench/results/html.md):
F1 0.976 here, against 0.962 for trafilatura's defaults, 0.965 for readability-lxml, 0.924
for resiliparse and 0.974 for a vote of three extractors at twice the time. Its metadata (Open
Graph, JSON-LD, <meta> tags, the canonical link, htmldate for the date) gives the title, date,
author, URL and tags. The text is a paragraph per block: headings, paragraphs, quotes, table
rows and whole lists, separated by blank lines (qa.corpus.paragraph_spans); a line break
inside a block stays a single newline.
"""

from __future__ import annotations

import codecs
import logging
import re
from datetime import date
from typing import TYPE_CHECKING

from qa.corpus import Document, SkippedSource, has_words
from qa.readers.meta import SNIFF, decode, iso_date, tag_list

if TYPE_CHECKING:
    from lxml.html import HtmlElement

log = logging.getLogger(__name__)

SUFFIXES = (".html", ".htm", ".xhtml")

# What one page may cost (the corpus caps its bytes: --max-file-size). A page saved whole
# (SingleFile, one-file "Web page, complete") inlines its images as data: URIs, so the cap is on
# the markup left once long tags lose their attributes. Dense prose costs about 2 s and 60x in
# memory a million characters here (7.5 million: 16 s, 550 MB peak); the benchmark's largest
# page is 1.4 MB.
MAX_MARKUP = 5_000_000  # characters, once long tags are cut
# Fewer words than a sentence is a login form, an error page or a page of links, from which
# trafilatura's last resort keeps a word or two of the navigation ("Home"): not an article.
MIN_WORDS = 8
# A tag with more attribute text than this keeps its name alone: an inlined image, a srcset,
# a framework's JSON props; never what tells an article from boilerplate. libxml2 and
# trafilatura take time quadratic in one tag's attributes (50,000 took 188 s); this caps it.
_LONG_TAG = re.compile(r"<([A-Za-z][A-Za-z0-9:-]{0,40})([^<>]{4096,})>")
# Characters libxml2 stops parsing at or lxml refuses in text (XML 1.0 excludes them): spaces.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# The charset a page declares: <meta charset>, <meta http-equiv content="...; charset=">, or
# an XML declaration, looked for in the first SNIFF bytes as a browser's prescan does (which
# reads 1024; pages with long inline scripts before the <meta> need more). Bounded repeats:
# each <meta costs at most 512 steps whatever follows it.
_META_CHARSET = re.compile(
    rb"<meta\b[^>]{0,512}?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]{1,40})", re.I
)
_XML_ENCODING = re.compile(
    rb"\s{0,64}<\?xml\b[^>]{0,200}?encoding\s*=\s*[\"']([A-Za-z0-9._:-]{1,40})"
)
# WHATWG Encoding: labels that mean something else on the web than in Python's codecs.
_WEB_NAMES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
}

# Blocks of trafilatura's output tree; each is a paragraph of the text.
_BLOCKS = frozenset({"head", "p", "quote", "code", "list", "table", "row", "div"})


def read(source: str, data: bytes) -> list[Document]:
    html, encoding = decode_page(data, source)
    html = _CONTROL.sub(" ", _LONG_TAG.sub(r"<\1>", html))
    if len(html) > MAX_MARKUP:
        raise SkippedSource(
            f"{source}: {len(html) / 1e6:.0f} million characters of markup, over the "
            f"{MAX_MARKUP // 1_000_000} million qa reads, skipped"
        )
    import trafilatura
    from lxml import etree
    from lxml.html import HTMLParser, document_fromstring

    parser = HTMLParser(
        encoding="utf-8",  # what we hand it, whatever the page declares
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
        default_doctype=False,
        no_network=True,
    )
    try:
        tree = document_fromstring(html.encode("utf-8", "surrogatepass"), parser=parser)
    except (etree.ParserError, ValueError):
        tree = None  # "Document is empty"
    if tree is None:
        raise SkippedSource(f"{source}: no article text found, skipped")
    try:
        found = trafilatura.bare_extraction(
            tree,
            favor_precision=True,
            include_comments=False,
            with_metadata=True,
            # dates from the markup and the URL only; a date in the prose is not the page's
            date_extraction_params={
                "original_date": True,
                "extensive_search": False,
                "max_date": date.today().isoformat(),
            },
        )
    except RecursionError:
        # trafilatura walks some trees recursively; deep nesting that lxml accepts ends here
        log.debug("%s: trafilatura recursed too deep", source)
        found = None
    if found is None or isinstance(found, dict):  # dict only with the deprecated as_dict
        raise SkippedSource(f"{source}: no article text found, skipped")
    title = _clean(found.title)
    paragraphs = _paragraphs(found.body)
    if title and paragraphs and _same(paragraphs[0], title):
        paragraphs = paragraphs[1:]  # the headline is the title, not a passage of the body
    text = "\n\n".join(paragraphs)
    if not has_words(text, 0, len(text), MIN_WORDS):
        raise SkippedSource(f"{source}: no article text found, skipped")
    tags = [t for raw in found.tags or [] for t in tag_list(raw)]
    meta = {
        "site_name": _clean(found.sitename),
        "description": _clean(found.description),
        "language": _clean(found.language),
        "categories": ", ".join(c for raw in found.categories or [] for c in tag_list(raw)),
        "license": _clean(found.license),
        "page_type": _clean(found.pagetype),
        "image": _clean(found.image),
    }
    return [
        Document(
            source,
            None,
            title,
            text,
            url=_canonical(tree) or _clean(found.url) or _og_url(tree),
            date=iso_date(found.date),
            author=_clean(found.author),
            tags=list(dict.fromkeys(tags)),
            meta={k: v for k, v in meta.items() if v},
            encoding=encoding,
        )
    ]


def decode_page(data: bytes, source: str) -> tuple[str, str]:
    """A page's text and the encoding it was read in: a BOM's, else the charset the page
    declares, else what qa.readers.meta.decode finds (UTF-8, else detected). A declared
    legacy charset gives way to UTF-8 when the bytes are valid UTF-8 with non-ASCII in them
    (a page re-saved as UTF-8 keeps its old <meta>; legacy text is almost never valid UTF-8);
    a declaration the bytes do not decode in is ignored."""
    head = data[:SNIFF]
    has_bom = head.startswith((codecs.BOM_UTF8, b"\xff\xfe", b"\xfe\xff"))
    declared = None if has_bom else _declared(head)
    if declared is None or b"\x00" in head:
        return decode(data, source)  # BOMs, binary files and undeclared pages
    if declared != "utf-8" and not data.isascii():
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode(declared), declared
    except UnicodeDecodeError:
        log.debug("%s: not valid %s as declared; detecting", source, declared)
        return decode(data, source)


def _declared(head: bytes) -> str | None:
    match = _XML_ENCODING.match(head) or _META_CHARSET.search(head)
    if match is None:
        return None
    label = match.group(1).decode("ascii").lower()
    if label.startswith("utf-16") or label.startswith("utf-32"):
        return "utf-8"  # WHATWG: a <meta> cannot declare UTF-16, the bytes it is in are ASCII
    try:
        return codecs.lookup(_WEB_NAMES.get(label, label)).name
    except LookupError:
        return None


def _paragraphs(body: HtmlElement | None) -> list[str]:
    """trafilatura's output tree as paragraphs: a block's words with whitespace collapsed, a
    <lb/> or an item of a list a single newline. Iterative, so nesting depth costs no stack."""
    if body is None:
        return []
    from lxml import etree

    paragraphs: list[str] = []
    words: list[str] = []
    in_row = in_list = 0

    def flush() -> None:
        lines = ("".join(words)).split("\n")
        text = "\n".join(" ".join(line.split()) for line in lines if line.strip())
        if text:
            paragraphs.append(text)
        words.clear()

    for event, element in etree.iterwalk(body, events=("start", "end")):
        tag = element.tag
        if not isinstance(tag, str):  # a comment or processing instruction: no text of the page
            continue
        if event == "start":
            if tag == "row" and not in_row:
                flush()
            elif tag == "list" and not in_list and not in_row:
                flush()
            elif tag in _BLOCKS and not in_row and not in_list:
                flush()
            elif tag == "cell" and element.getprevious() is not None:
                words.append(" | ")
            elif tag in ("lb", "item") or (tag in _BLOCKS and in_list):
                words.append("\n")
            elif tag in _BLOCKS:
                words.append(" ")
            in_row += tag == "row"
            in_list += tag == "list"
            if element.text and tag != "graphic":
                words.append(element.text)
        else:
            in_row -= tag == "row"
            in_list -= tag == "list"
            if tag in _BLOCKS and not in_row and not in_list:
                flush()
            elif tag == "item":
                words.append("\n")
            if element.tail and element is not body:
                words.append(element.tail)
    flush()
    return paragraphs


def _canonical(tree: HtmlElement) -> str | None:
    """The page's canonical link, wherever the parser put it (trafilatura looks in <head>
    alone, and a stray element before it moves the rest of <head> into <body>)."""
    for link in tree.iterfind(".//link[@rel][@href]"):
        if "canonical" in (link.get("rel") or "").lower().split():
            return _absolute(link.get("href"))
    return None


def _og_url(tree: HtmlElement) -> str | None:
    for element in tree.iterfind(".//meta[@property][@content]"):
        if (element.get("property") or "").lower() == "og:url":
            return _absolute(element.get("content"))
    return None


def _absolute(url: str | None) -> str | None:
    url = (url or "").strip()
    if url.startswith("//"):
        url = "https:" + url
    return url if url.startswith(("http://", "https://")) and " " not in url else None


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None


def _same(heading: str, title: str) -> bool:
    return heading.casefold() == title.casefold()

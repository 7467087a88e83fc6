"""Plain text, Markdown and reStructuredText: the decoded file is the text (offsets index it),
its title from YAML front matter, a leading heading or a short first line standing alone; the
front matter's other keys become metadata."""

from __future__ import annotations

import logging
import re

from qa.corpus import Document, has_words, paragraph_spans
from qa.readers.meta import decode, iso_date, scalar, tag_list

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".markdown", ".rst")

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.S)
# Both take the rest of the line and trim it in Python: a lazy group before optional trailing
# blanks backtracks quadratically over a long run of spaces (20,000 took 1.5 s).
_FRONT_TITLE = re.compile(r"^title:(.+)$", re.M)
_HEADING = re.compile(r"#{1,6}[ \t]++([^\n]++)")
_RST_UNDERLINE = re.compile(r"[=\-~^\"'`#*+]{3,}")


def read(source: str, data: bytes) -> list[Document]:
    text, encoding = decode(data, source)
    return [text_document(source, text, encoding)]


def text_document(source: str, text: str, encoding: str | None = None) -> Document:
    body_start, title = 0, None
    fields: dict[str, object] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        body_start = match.end()
        fields = _front_matter(source, match.group(1))
        title = scalar(fields.pop("title", None))
        title = title.strip().strip("'\"") or None if title else None
    title_end = 0
    paragraphs = paragraph_spans(text, body_start)
    if paragraphs:
        start, end = paragraphs[0]
        heading = _HEADING.fullmatch(text, start, end)
        lines = text[start:end].split("\n", 2)[:2] if end - start < 400 else []
        if heading:
            words = heading.group(1)
            title = title or words.rstrip(" \t#") or words[0]
            title_end = end
        elif len(lines) == 2 and _RST_UNDERLINE.fullmatch(lines[1].strip()) and lines[0].strip():
            title = title or lines[0].strip()  # reStructuredText: a title over its underline
            title_end = end
        elif (
            text.find("\n", start, end) < 0
            and not has_words(text, start, end, 13)
            and len(paragraphs) > 1
        ):
            # A short first line standing alone, like the titles of the SQuAD articles.
            if not text.endswith((".", "!", "?", ":", ";", ","), start, end):
                title = title or text[start:end]
                title_end = end
    return Document(
        source,
        None,
        title,
        text,
        body_start=body_start,
        title_end=title_end,
        url=scalar(fields.pop("url", None)),
        date=iso_date(fields.pop("date", None)),
        author=scalar(fields.pop("author", None)),
        tags=tag_list(fields.pop("tags", None)),
        meta={k: v for k, raw in fields.items() if (v := scalar(raw)) is not None},
        encoding=encoding,
    )


def _front_matter(source: str, block: str) -> dict[str, object]:
    """YAML front matter as a flat dict of its top-level keys ({} when it is not YAML; the
    title line is still read then, as qa always has)."""
    import yaml

    try:
        raw = yaml.safe_load(block)
    except yaml.YAMLError:
        raw = None
    except RecursionError:
        raw = None
    if isinstance(raw, dict):
        return {str(k).lower(): v for k, v in raw.items()}
    found = _FRONT_TITLE.search(block)
    if found is None:
        return {}
    log.warning("%s: front matter is not YAML; only its title is read", source)
    return {"title": found.group(1)}

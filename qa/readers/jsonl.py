"""JSONL collections: one document a line, {"_id" or "id", "title", "text"} and any metadata:
"url", "date", "author", "tags", and other scalar fields. A bad line is skipped with a
warning naming it; the rest is read."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

from qa.corpus import Document
from qa.readers.meta import decode, iso_date, scalar, tag_list

log = logging.getLogger(__name__)

SUFFIXES = (".jsonl",)
_OWN = {"_id", "id", "title", "text", "url", "date", "author", "tags"}
# JSON's "\ud800" escapes decode to lone surrogates, which no UTF-8 encoder (the tokenizer's,
# the index writer's) accepts.
_SURROGATE = re.compile("[\ud800-\udfff]")


def read(source: str, data: bytes) -> list[Document]:
    text, encoding = decode(data, source)
    return list(_documents(source, text, encoding))


def _documents(source: str, text: str, encoding: str) -> Iterator[Document]:
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            log.warning("%s:%d: not valid JSON (%s), line skipped", source, number, exc.msg)
            continue
        except RecursionError:
            log.warning("%s:%d: JSON nested too deeply, line skipped", source, number)
            continue
        except ValueError as exc:  # an integer of more than 4,300 digits
            log.warning("%s:%d: not readable JSON (%s), line skipped", source, number, exc)
            continue
        if not isinstance(record, dict):
            log.warning("%s:%d: not a JSON object, line skipped", source, number)
            continue
        doc_id = _text(record.get("_id", record.get("id")))
        body = record.get("text")
        if doc_id is None or not isinstance(body, str):
            log.warning('%s:%d: needs an "_id" (or "id") and a "text", skipped', source, number)
            continue
        fields = {name: record.get(name) for name in ("title", "url", "author")}
        for name, value in fields.items():
            if value is not None and _text(value) is None:
                log.warning("%s:%d: %r is not a string, ignored", source, number, name)
        title, url, author = (_text(value) for value in fields.values())
        date = iso_date(record.get("date"))
        if record.get("date") is not None and date is None:
            log.warning("%s:%d: 'date' is not a date, ignored", source, number)
        tags = tag_list(record.get("tags"))
        meta = {
            str(k): v
            for k, raw in record.items()
            if k not in _OWN and (v := scalar(raw)) is not None
        }
        body = body.replace("\r\n", "\n").replace("\r", "\n")
        strings = [doc_id, body, title, url, author, date, *tags, *meta.values(), *meta]
        if any(_SURROGATE.search(v) for v in strings if v):
            log.warning("%s:%d: lone surrogates replaced by U+FFFD", source, number)
            # One character for one, so every offset into the text still holds.
            doc_id, body = _clean(doc_id), _clean(body)
            title, url, author = (_clean(v) if v else v for v in (title, url, author))
            tags = [_clean(t) for t in tags]
            meta = {_clean(k): _clean(v) for k, v in meta.items()}
        if doc_id in seen:
            log.warning("%s:%d: duplicate id %r, skipped", source, number, doc_id)
            continue
        seen.add(doc_id)
        yield Document(
            source,
            doc_id,
            title.strip() or None if title else None,
            body,
            url=url,
            date=date,
            author=author,
            tags=tags,
            meta=meta,
            encoding=encoding,
        )


def _clean(value: str) -> str:
    return _SURROGATE.sub("\ufffd", value)


def _text(value: object) -> str | None:
    """A JSON string or number as text; None for null, true/false, arrays and objects."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None

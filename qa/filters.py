"""Which passages may answer: filters on the documents' metadata, turned into a row mask that
both the dense and the lexical side apply BEFORE they choose their top k (so a selective
filter still returns the best matching passages, never "the top 100, filtered")."""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qa.errors import InputError
from qa.readers.meta import iso_date


@dataclass(frozen=True)
class Filters:
    sources: tuple[str, ...] = ()  # globs over the source path; any may match
    since: str | None = None  # ISO date, inclusive
    until: str | None = None  # ISO date, inclusive (a bare date takes in its whole day)
    tags: tuple[str, ...] = ()  # every one must be among the document's tags
    where: tuple[tuple[str, str], ...] = ()  # KEY=VALUE on metadata; every one must hold

    def __bool__(self) -> bool:
        return bool(self.sources or self.since or self.until or self.tags or self.where)

    @classmethod
    def parse(
        cls,
        sources: Iterable[str] = (),
        since: str | None = None,
        until: str | None = None,
        tags: Iterable[str] = (),
        where: Iterable[str] = (),
    ) -> Filters:
        """From the command line's strings; InputError naming what is wrong."""
        pairs = []
        for item in where:
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise InputError(
                    f"--where takes KEY=VALUE, e.g. --where author=Smith (not {item!r})."
                )
            pairs.append((key.strip(), value.strip()))
        return cls(
            sources=tuple(sources),
            since=_date("--since", since),
            until=_date("--until", until),
            tags=tuple(t.strip() for t in tags if t.strip()),
            where=tuple(pairs),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "source": list(self.sources),
            "since": self.since,
            "until": self.until,
            "tag": list(self.tags),
            "where": {k: v for k, v in self.where},
        }


def _date(flag: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    found = iso_date(value)
    if found is None:
        raise InputError(f"{flag} takes a date, e.g. 2024-03-01 or 'March 2024' (not {value!r}).")
    # 'March 2024' is a month, not its first day: keep only what was said, so that --until
    # takes in the whole month (and --since starts at its first day either way)
    if len(found) == 10:
        said = _said(value)
        return found[: {"year": 4, "month": 7}.get(said, 10)]
    return found


def _said(value: str) -> str:
    """Whether a date names its day, or only its month or year: what dateutil fills in from
    two different defaults is what was not said."""
    from datetime import datetime

    from dateutil import parser

    try:
        a = parser.parse(value, default=datetime(2000, 1, 1))
        b = parser.parse(value, default=datetime(2000, 2, 28))
    except (ValueError, OverflowError):
        return "day"
    return "year" if a.month != b.month else "month" if a.day != b.day else "day"


@dataclass
class DocumentTable:
    """Every document's metadata, in columns, and which document each passage row is of;
    what filters read and every hit shows. Inverted lookups are built when first asked for."""

    sources: list[str]
    doc_ids: list[str | None]
    titles: list[str | None]
    dates: list[str | None]
    urls: list[str | None]
    authors: list[str | None]
    tags: list[list[str]]
    meta: list[dict[str, str]]
    encodings: list[str | None]
    doc_of_row: np.ndarray  # int32: row -> document number
    _date_keys: np.ndarray | None = field(default=None, repr=False)
    _tag_docs: dict[str, np.ndarray] | None = field(default=None, repr=False)
    # the last few masks made, by filter: a server asked again with the same filters (a web
    # page's filter settings) does not make them again (9 ms at 1M passages)
    _masks: dict[Filters, np.ndarray] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # qa serve's threads

    def info(self, doc: int) -> dict[str, Any]:
        return {
            "date": self.dates[doc],
            "url": self.urls[doc],
            "author": self.authors[doc],
            "tags": self.tags[doc],
        }

    def row_mask(self, filters: Filters) -> np.ndarray:
        """A bool per passage row: whether its document passes every filter (read-only)."""
        with self._lock:
            mask = self._masks.get(filters)
            if mask is None:
                mask = self._row_mask(filters)
                mask.flags.writeable = False
                if len(self._masks) >= 8:
                    self._masks.pop(next(iter(self._masks)))
                self._masks[filters] = mask
            return mask

    def _row_mask(self, filters: Filters) -> np.ndarray:
        docs = np.ones(len(self.sources), dtype=bool)
        if filters.sources:
            patterns = [re.compile(fnmatch.translate(p)) for p in filters.sources]
            unique = {s: any(p.match(s) for p in patterns) for s in set(self.sources)}
            docs &= np.fromiter((unique[s] for s in self.sources), bool, len(self.sources))
        if filters.since or filters.until:
            keys = self._dates()
            low = _key(filters.since) if filters.since else 1
            high = _key(filters.until, end=True) if filters.until else np.iinfo(np.int64).max
            docs &= (keys >= low) & (keys <= high)
        for tag in filters.tags:
            docs &= self._tagged(tag)
        for key, value in filters.where:
            docs &= self._where(key, value)
        return np.asarray(docs[self.doc_of_row], dtype=bool)

    def _dates(self) -> np.ndarray:
        if self._date_keys is None:
            self._date_keys = np.array([_key(d) if d else 0 for d in self.dates], dtype=np.int64)
        return self._date_keys

    def _tagged(self, tag: str) -> np.ndarray:
        if self._tag_docs is None:
            inverted: dict[str, list[int]] = {}
            for doc, own in enumerate(self.tags):
                for t in own:
                    inverted.setdefault(t.casefold(), []).append(doc)
            self._tag_docs = {t: np.array(d, dtype=np.int64) for t, d in inverted.items()}
        out = np.zeros(len(self.sources), dtype=bool)
        out[self._tag_docs.get(tag.casefold(), np.empty(0, dtype=np.int64))] = True
        return out

    def _where(self, key: str, value: str) -> np.ndarray:
        columns: dict[str, list[str | None]] = {
            "title": self.titles,
            "author": self.authors,
            "url": self.urls,
            "doc_id": self.doc_ids,
            "source": list(self.sources),
            "encoding": self.encodings,
            "date": self.dates,
        }
        wanted = value.casefold()
        if key in columns:
            values: Iterable[str | None] = columns[key]
        elif key in ("tag", "tags"):
            return self._tagged(value)
        else:
            values = (m.get(key) for m in self.meta)
        return np.fromiter(
            (v is not None and v.casefold() == wanted for v in values), bool, len(self.sources)
        )


def _key(date: str, end: bool = False) -> int:
    """An ISO date or date-time as a sortable whole number, YYYYMMDDhhmmss; a bare date with
    end=True is its last second, so --until 2024-03-01 takes in all of that day."""
    digits = re.sub(r"\D", "", date)[:14]
    if len(digits) <= 8:
        digits = digits.ljust(8, "9" if end else "0")[:8] + ("235959" if end else "000000")
    return int(digits.ljust(14, "0"))

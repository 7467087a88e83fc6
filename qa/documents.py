"""Documents as the index read them: `qa show SOURCE` (a document), `qa show CITATION` (a
passage in its context), and a file not yet indexed, extracted on the spot, so a user can see
exactly what qa reads from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qa.answers import Paragraph
from qa.config import Settings
from qa.corpus import Chunk, Document, SkippedSource
from qa.errors import InputError
from qa.readers import read_documents
from qa.search import around
from qa.store import StoredIndex, load_index


@dataclass(frozen=True)
class Shown:
    documents: list[Document]  # the document(s) shown (a JSONL file may hold many)
    indexed: bool  # False: extracted from a file on the spot, not from the index
    passage: Chunk | None = None  # for a citation: the passage, and its context
    before: list[Paragraph] | None = None
    after: list[Paragraph] | None = None


def show(settings: Settings, target: str, context: int = 2) -> Shown:
    """A source of the index, a citation (SOURCE#3, SOURCE:ID#3.2), or a file's path."""
    index = _index(settings)
    if index is not None:
        found = in_index(index, target, context)
        if found is not None:
            return found
    path = Path(target)
    if path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"Cannot read {target}: {exc.strerror or exc}.") from None
        try:
            return Shown(read_documents(path.name, data), indexed=False)
        except SkippedSource as exc:
            raise InputError(f"qa cannot read this file: {exc}") from None
    where = f"in index {settings.index}" if index is not None else "(and there is no index)"
    raise InputError(
        f"{target!r} is not a source or citation {where}, nor a file: pass a source as `qa ask` "
        "cites it (e.g. notes/a.md, notes/a.md#3, c.jsonl:42#1) or a file's path."
    )


def _index(settings: Settings) -> StoredIndex | None:
    from qa.errors import IndexMissingError

    try:
        return load_index(settings.index)
    except IndexMissingError:
        return None


def in_index(index: StoredIndex, target: str, context: int) -> Shown | None:
    """A source or citation of the index (None if it is neither): what a server shows."""
    chunk = next((c for c in index.chunks if c.id == target), None)
    if chunk is not None:
        doc = index.document(chunk.source, chunk.doc_id)
        before, after = around(index, chunk, context)
        return Shown([doc] if doc else [], True, passage=chunk, before=before, after=after)
    lines = index.document_lines(target)
    if lines:
        return Shown([Document(**json.loads(line)) for line in lines], True)
    source, found, doc_id = target.partition(".jsonl:")  # c.jsonl:42, as citations name it
    if found:
        doc = index.document(source + ".jsonl", doc_id)
        return Shown([doc], True) if doc else None
    return None

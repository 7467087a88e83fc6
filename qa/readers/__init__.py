"""Readers: a file's bytes in, Documents out. One module a format, found by suffix.

A reader module defines SUFFIXES (lower-case, with the dot) and `read(source, data) ->
list[Document]`, raising qa.corpus.SkippedSource for a file it cannot read (the run warns and
goes on). Its library is imported inside read(), so listing a corpus never pays for it.
Adding a format is one module and one line in MODULES.

Every reader keeps the promise of qa.corpus: a Document's `text` is what offsets index, so
`doc.text[chunk.start:chunk.end] == chunk.text`; for extracted formats (HTML, PDF, DOCX, EPUB)
it is the extracted text, which the index stores, so a citation is always checkable.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

from qa.corpus import Document, SkippedSource

# module name -> the suffixes it reads; order decides nothing (a suffix has one reader)
MODULES = {
    "qa.readers.text": (".txt", ".md", ".markdown", ".rst"),
    "qa.readers.jsonl": (".jsonl",),
    "qa.readers.html": (".html", ".htm", ".xhtml"),
    "qa.readers.pdf": (".pdf",),
    "qa.readers.docx": (".docx",),
    "qa.readers.epub": (".epub",),
}
SUFFIXES = frozenset(s for suffixes in MODULES.values() for s in suffixes)


def suffix_of(source: str) -> str:
    dot = source.rfind(".")
    return source[dot:].lower() if dot > source.rfind("/") else ""


@cache
def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def reader_for(source: str) -> ModuleType | None:
    suffix = suffix_of(source)
    for name, suffixes in MODULES.items():
        if suffix in suffixes:
            return _module(name)
    return None


def read_documents(source: str, data: bytes) -> list[Document]:
    """The documents in one source file's bytes; SkippedSource with the reason otherwise."""
    reader = reader_for(source)
    if reader is None:
        raise SkippedSource(f"{source}: not an article format, skipped")
    documents: list[Document] = reader.read(source, data)
    return documents

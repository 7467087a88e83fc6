"""The JSON every face of qa speaks (the CLI's --json/--format, and servers after it): one
function per object. Keys are stable; new ones are only ever added."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.answers import Answer, Hit, Paragraph
from qa.corpus import Chunk, Document
from qa.errors import (
    ClusterError,
    CorpusError,
    IndexBusyError,
    IndexCorruptError,
    IndexMissingError,
    IndexWriteError,
    InputError,
    ModelError,
    QAError,
)

if TYPE_CHECKING:
    from qa.config import Settings
    from qa.documents import Shown
    from qa.evaluate import Report
    from qa.indexer import IndexReport, Status

# error class -> the "code" scripts can branch on (README "Output formats")
ERROR_CODES: list[tuple[type[QAError], str]] = [
    (IndexMissingError, "no_index"),
    (IndexCorruptError, "index_damaged"),
    (IndexWriteError, "index_not_writable"),
    (IndexBusyError, "index_busy"),
    (CorpusError, "corpus"),
    (ModelError, "model"),
    (InputError, "bad_input"),
    (ClusterError, "cluster"),
]


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_code(exc: QAError) -> str:
    return next((code for kind, code in ERROR_CODES if isinstance(exc, kind)), "error")


def passage(chunk: Chunk) -> dict[str, Any]:
    return {
        "source": chunk.source,
        "doc_id": chunk.doc_id,
        "title": chunk.title,
        "paragraph": chunk.paragraph,
        "start": chunk.start,
        "end": chunk.end,
        "line_start": chunk.line_start,
        "line_end": chunk.line_end,
        "page_start": chunk.page_start,
        "page_end": chunk.page_end,
        "text": chunk.text,
    }


def paragraph(p: Paragraph) -> dict[str, Any]:
    return {"paragraph": p.number, "start": p.start, "end": p.end, "text": p.text}


def hit(h: Hit) -> dict[str, Any]:
    body: dict[str, Any] = {"rank": h.rank, "score": round(h.score, 6), **passage(h.chunk)}
    body["citation"] = h.chunk.id  # what `qa show` and /api/show take: notes/a.md#3, c.jsonl:42#1
    body["highlight"] = {"start": h.highlight[0], "end": h.highlight[1]}
    body["relevance"] = round(h.relevance, 6)
    body.update(measures(h))
    about = h.about or {}
    for key in ("date", "url", "author"):
        body[key] = about.get(key)
    body["tags"] = about.get("tags", [])
    if h.context is not None:
        before, after = h.context
        body["context"] = {
            "before": [paragraph(p) for p in before],
            "after": [paragraph(p) for p in after],
        }
    return body


def measures(h: Hit) -> dict[str, Any]:
    """What retrieval measured, under its own names; null where the mode did not compute it."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 6)

    sentence = h.sentence
    return {
        "fused": rounded(h.fused),
        "dense": rounded(h.dense),
        "lexical": rounded(h.lexical),
        "lexical_share": rounded(h.lexical_share),
        "sentence": None
        if sentence is None
        else {name: rounded(value) for name, value in vars(sentence).items()},
    }


def answer(a: Answer) -> dict[str, Any]:
    body: dict[str, Any] = {} if a.id is None else {"id": a.id}
    body["question"] = a.question
    body["answered"] = a.answered
    body["results"] = [hit(h) for h in a.hits]
    return body


def answer_lines(a: Answer) -> list[dict[str, Any]]:
    """--format jsonl: one object a hit, each carrying its question."""
    head: dict[str, Any] = {} if a.id is None else {"id": a.id}
    head = {**head, "question": a.question, "answered": a.answered}
    return [{**head, **hit(h)} for h in a.hits]


def report(r: IndexReport, index_dir: Path) -> dict[str, Any]:
    """What `qa index` did."""
    return {
        "index": str(index_dir),
        "documents": r.documents,
        "passages": r.chunks,
        "files": r.files,
        "changed_files": r.changed_files,
        "embedded": r.embedded,
        "reused": r.reused,
        "removed": r.removed,
        "skipped": r.skipped,
        "rebuilt": r.rebuilt,
        "seconds": round(r.seconds, 3),
    }


def status(s: Status, settings: Settings) -> dict[str, Any]:
    m = s.manifest
    return {
        "index": str(settings.index),
        "corpus": str(s.corpus),
        "model": m.model,
        "dim": m.dim,
        "vector_index": m.vector_index,
        "store": m.store,
        "keywords": (m.extra.get("store") or {}).get("keywords", "qa"),
        "precision": m.precision,
        "documents": m.documents,
        "chunks": m.chunks,
        "files": len(m.files),
        "skipped": sorted(n for n, f in m.files.items() if f.skipped),
        "created": m.created,
        "updated": m.updated,
        "qa_version": m.qa_version,
        "stale": bool(s.changes),
        "changes": {
            "added": s.changes.added,
            "changed": s.changes.changed,
            "removed": s.changes.removed,
        },
        "problem": s.problem,
        "damaged": s.damage,
        "checksums": bool(m.contents),
        "settings": {
            name: {"value": _plain(getattr(settings, name)), "from": origin}
            for name, origin in sorted(settings.origins.items())
        },
    }


def evaluation(r: Report) -> dict[str, Any]:
    return {
        "dataset": r.dataset,
        "mode": r.mode,
        "questions": r.questions,
        "seconds": round(r.seconds, 3),
        **r.metrics,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def document(d: Document, indexed: bool = True) -> dict[str, Any]:
    """A document as qa read it (`qa show SOURCE`): its metadata, then the text offsets index."""
    return {
        "source": d.source,
        "doc_id": d.doc_id,
        "title": d.title,
        "date": d.date,
        "url": d.url,
        "author": d.author,
        "tags": d.tags,
        "encoding": d.encoding,
        "meta": d.meta,
        "pages": len(d.pages) or None,
        "indexed": indexed,
        "text": d.text,
    }


def cited(shown: Shown) -> dict[str, Any]:
    """A citation (`qa show SOURCE#3`): the passage, its paragraphs around, its document's
    metadata (not its whole text)."""
    assert shown.passage is not None
    body: dict[str, Any] = {"citation": shown.passage.id}
    if shown.documents:
        body.update({k: v for k, v in document(shown.documents[0]).items() if k != "text"})
    body["passage"] = passage(shown.passage)
    body["context"] = {
        "before": [paragraph(p) for p in shown.before or []],
        "after": [paragraph(p) for p in shown.after or []],
    }
    return body

"""One generation of the index on disk: manifest.json, chunks.jsonl, the keyword index, the
documents and their metadata, and its passage vectors through a VectorIndex (qa.vector_index):
FAISS files beside the rest (qa.faiss_store), or a Milvus collection (qa.milvus_store) that the
manifest names.

A generation is written whole into a staging folder inside the index and published by
qa.layout, so a crash or Ctrl-C leaves the previous generation or the new one, never half of
either. Its manifest records the size and checksum of every file (qa.integrity) and its own
checksum; loading checks the sizes at once and the contents in a thread beside the loading.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa import __version__, layout
from qa.corpus import Chunk, ChunkingParams, Document, passage_sentences
from qa.errors import IndexCorruptError, IndexMissingError
from qa.faiss_store import (
    EXACT,
    EXACT_FILTERED,
    SENTENCE_STARTS,
    SENTENCES,
    TOKEN_STARTS,
    TOKENS,
    VECTORS,
    FaissIndex,
    k_exact,
    read_faiss,
    write_faiss,
)
from qa.integrity import (
    FileSum,
    Verification,
    damaged,
    file_sum,
    manifest_checksum,
    shallow_problems,
)
from qa.lexical import LexicalIndex
from qa.runtime import PASSAGE_ENCODER, SentenceStates
from qa.vector_index import FAISS, VectorIndex

if TYPE_CHECKING:
    from qa.filters import DocumentTable, Filters

__all__ = [
    "EXACT",
    "EXACT_FILTERED",
    "SENTENCES",
    "SENTENCE_STARTS",
    "TOKENS",
    "TOKEN_STARTS",
    "VECTORS",
    "k_exact",
]

FORMAT_VERSION = 1
MANIFEST = layout.MANIFEST
CHUNKS = "chunks.jsonl"
# Every document as it was read (qa.corpus.Document: the text that offsets index, its title and
# metadata), one JSON line each, and where each line starts, for `ask -C` and `qa show`
DOCUMENTS, DOCUMENT_OFFSETS = "documents.jsonl", "documents.offsets.json"
# Every document's metadata in columns (qa.filters.DocumentTable) and each row's document
METADATA, DOCUMENT_ROWS = "metadata.json", "document_rows.npy"

# Exact search while it is fast enough; past that, IVF with 8-bit scalar quantisation
# (bench/results/large.md has the measurements behind these numbers).
FLAT_LIMIT = 25_000  # Flat: 1.2 ms a question at 10k, 15 ms at 100k (bench/results/large.md)
NPROBE = 64  # IVF4096,SQ8 at 1M: recall@10 0.978, p50 1.4 ms (32: 0.968, 0.8 ms)
# A question checks the contents of every file it reads while they add up to this; past it,
# the memory-mapped arrays (of which a question reads a few rows) are checked by size only,
# and in full by `qa index` and `qa status --verify`. SciFact's 9882 passages: 258 MB.
VERIFY_ON_ASK = 1 << 30
MAPPED = ("sentences.npy", "tokens.npy", "vectors.npy")


def choose_index(n: int) -> tuple[str, int]:
    """(faiss index_factory string, nprobe) for n vectors."""
    if n <= FLAT_LIMIT:
        return "Flat", 0
    lists = 1 << round(math.log2(4 * math.sqrt(n)))  # ~4 sqrt(n) lists: 4096 at 1M
    return f"IVF{lists},SQ8", NPROBE


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int
    chunks: int = 0
    skipped: str | None = None  # why the file could not be read, if it could not


@dataclass(frozen=True)
class Manifest:
    model: str
    dim: int
    chunking: ChunkingParams
    corpus: str  # the corpus root, relative to the index directory
    files: dict[str, FileEntry]
    documents: int
    chunks: int
    created: str
    updated: str
    fingerprint: str = ""
    corpus_absolute: str = ""  # the corpus root's absolute path when built (a moved index)
    # how the corpus folder was read: exclude patterns, follow_symlinks, max_file_size
    reading: dict[str, Any] = field(default_factory=dict)
    vector_index: str = "Flat"  # faiss index_factory string (choose_index)
    nprobe: int = 0  # IVF lists searched per question
    precision: str = "fp32"  # passage vectors: "int8" encoder, or "fp32" (as the model gives)
    # SENTENCES and TOKENS kept (encoders that give token states). Always equal; this qa reads
    # only sentence_tokens, sentence_vectors is still written for the qa before it
    sentence_vectors: bool = False
    sentence_tokens: bool = False
    documents_kept: bool = False  # DOCUMENTS written (qa 0.2 on)
    unlisted: list[str] = field(default_factory=list)  # what listing the corpus could not read
    format_version: int = FORMAT_VERSION
    qa_version: str = __version__
    # "store": where the vectors are when not in this folder's FAISS files (qa.milvus_store)
    extra: dict[str, Any] = field(default_factory=dict)
    # every other file of the generation: size and checksum (empty in a qa 0.1 index)
    contents: dict[str, FileSum] = field(default_factory=dict)

    def corpus_candidates(self, index_dir: Path) -> list[Path]:
        """Where the corpus may be: beside the index as it was (a moved folder keeps both),
        then where it was when built (a copied or moved index)."""
        found = [Path(os.path.normpath(index_dir / self.corpus))]
        if self.corpus_absolute and Path(self.corpus_absolute) not in found:
            found.append(Path(self.corpus_absolute))
        return found

    def corpus_path(self, index_dir: Path) -> Path:
        candidates = self.corpus_candidates(index_dir)
        return next((p for p in candidates if p.exists()), candidates[0])

    @property
    def store(self) -> str:
        """The URI of the store that holds the vectors ("faiss": this generation's files)."""
        own = self.extra.get("store")
        return str(own["uri"]) if isinstance(own, dict) and "uri" in own else FAISS


def fingerprint(model: str, chunking: ChunkingParams, precision: str = "fp32") -> str:
    """What the vectors depend on: same fingerprint, same vector for the same text."""
    spec: dict[str, Any] = {"format": FORMAT_VERSION, "model": model, "chunking": asdict(chunking)}
    if precision != "fp32":  # so fp32 indexes keep the fingerprint they had before int8
        spec["precision"] = precision
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def relative_corpus(corpus: Path, index_dir: Path) -> str:
    return os.path.relpath(corpus.resolve(), index_dir.resolve())


@dataclass
class StoredIndex:
    path: Path  # the generation's folder, where its files (the encoder too) are
    manifest: Manifest
    chunks: list[Chunk]
    vector_store: VectorIndex  # the passage vectors and sentence states (qa.vector_index)
    lexical: LexicalIndex
    # row -> its sentences' spans (document coordinates) and terms; filled as questions need it
    sentences: dict[int, list[tuple[tuple[int, int], list[str]]]] = field(default_factory=dict)
    index_dir: Path | None = None  # the index folder the generation is in
    # source -> the byte range of its documents' lines in DOCUMENTS, read when first needed
    _document_offsets: dict[str, tuple[int, int]] | None = None
    _table: DocumentTable | None = None
    # the lazy reads above happen once even when threads (qa serve) ask at the same time
    _lazy: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def corpus(self) -> Path:
        """The corpus root that every chunk's source is relative to."""
        return self.manifest.corpus_path(self.index_dir or self.path)

    def passage_sentences(self, row: int) -> list[tuple[tuple[int, int], list[str]]]:
        """A passage's sentences (the whole passage if it has none) with their BM25 terms."""
        if row not in self.sentences:
            chunk = self.chunks[row]
            spans = passage_sentences(chunk.text)
            terms = self.lexical.analyzer.terms_by_span(chunk.text, spans)
            found = [
                ((chunk.start + s, chunk.start + e), t)
                for (s, e), t in zip(spans, terms, strict=True)
            ]
            return self.sentences.setdefault(row, found)  # atomic: a racing thread's is equal
        return self.sentences[row]

    def adopt(self, older: StoredIndex) -> int:
        """Take over older's passage_sentences for the passages both generations hold as they
        were (same source, document, place and text; same analyzer), so that a server's new
        generation answers as fast as the old one at once. How many rows it took over."""
        if older.lexical.analyzer != self.lexical.analyzer or not older.sentences:
            return 0
        rows = {(c.source, c.doc_id, c.start, c.sha256): n for n, c in enumerate(self.chunks)}
        taken = 0
        for old_row, found in list(older.sentences.items()):
            c = older.chunks[old_row]
            row = rows.get((c.source, c.doc_id, c.start, c.sha256))
            if row is not None:
                self.sentences.setdefault(row, found)
                taken += 1
        return taken

    @property
    def exact(self) -> np.ndarray | None:
        """A FAISS index's exact vectors (memory-mapped beside a quantised index)."""
        return self.vector_store.exact if isinstance(self.vector_store, FaissIndex) else None

    def sentence_states(self, row: int) -> SentenceStates | None:
        """A passage's SentenceStates (passage_sentences order), if the index has them."""
        return self.vector_store.sentence_states(row)

    def sentence_states_of(self, rows: Sequence[int]) -> list[SentenceStates | None]:
        """Several passages' SentenceStates (None for each when the index has none): one
        request to a store on a server, not one per passage."""
        if not self.manifest.sentence_tokens:
            return [None] * len(rows)
        if isinstance(self.vector_store, FaissIndex):
            return [self.vector_store.sentence_states(row) for row in rows]
        found = self.vector_store.all_sentence_states(rows)
        return [None] * len(rows) if found is None else list(found)

    def all_sentence_states(self, rows: Sequence[int]) -> list[SentenceStates] | None:
        """SentenceStates of many rows (an update reuses every kept passage's), if the index
        has them: read whole once, not row by row."""
        return self.vector_store.all_sentence_states(rows)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        mask: np.ndarray | None = None,
        filters: Filters | None = None,
    ) -> list[list[tuple[int, float]]]:
        """(row, score) pairs per query, best first (VectorIndex.search): with a mask (a bool
        per row) and the filters it was made from, only rows they allow, before the top k."""
        return self.vector_store.search(queries, k, mask, filters)

    def keyword_search(
        self, question: str, k: int, filters: Filters | None
    ) -> list[tuple[int, float]] | None:
        """The store's own keyword (BM25) candidates for a question, when it has a keyword
        index (Milvus >= 2.5, Milvus Lite); None: qa's own BM25 finds them."""
        search = getattr(self.vector_store, "keyword_search", None)
        return None if search is None else search(question, k, filters)

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact inner products of one query with the given rows' vectors."""
        return self.vector_store.dense_scores(query, rows)

    def vectors(self, rows: Sequence[int] | None = None) -> np.ndarray:
        """Every passage's exact vector, in row order (or the given rows')."""
        return self.vector_store.vectors(rows)

    def table(self) -> DocumentTable | None:
        """The documents' metadata in columns (None for an index from before qa 0.2 until its
        next build), read when first needed."""
        with self._lazy:
            if self._table is None and (self.path / METADATA).is_file():
                from qa.filters import DocumentTable

                columns = json.loads((self.path / METADATA).read_text(encoding="utf-8"))
                rows = np.load(self.path / DOCUMENT_ROWS, allow_pickle=False)
                self._table = DocumentTable(**columns, doc_of_row=rows)
            return self._table

    def document(self, source: str, doc_id: str | None) -> Document | None:
        """A document as it was indexed (None if the index keeps no documents or not it)."""
        lines = self._document_lines(source)
        for line in lines:
            raw = json.loads(line)
            if raw["doc_id"] == doc_id:
                return Document(**raw)
        return None

    def document_lines(self, source: str) -> list[bytes] | None:
        """The stored JSON lines of a source's documents, None if the index keeps none."""
        if not self.manifest.documents_kept:
            return None
        return self._document_lines(source)

    def _document_lines(self, source: str) -> list[bytes]:
        if not self.manifest.documents_kept:
            return []
        with self._lazy:
            if self._document_offsets is None:
                raw = json.loads((self.path / DOCUMENT_OFFSETS).read_text(encoding="utf-8"))
                self._document_offsets = {
                    s: (int(a), int(b)) for s, a, b in zip(*raw.values(), strict=True)
                }
            offsets = self._document_offsets
        span = offsets.get(source)
        if span is None:
            return []
        with (self.path / DOCUMENTS).open("rb") as f:
            f.seek(span[0])
            return f.read(span[1] - span[0]).splitlines()


def read_manifest(index_dir: Path) -> Manifest:
    """The current generation's manifest (checked against its own checksum)."""
    return manifest_of(index_dir, layout.current(index_dir))


def manifest_of(index_dir: Path, generation: layout.Generation) -> Manifest:
    """A generation's manifest, checked against its own checksum."""
    path = generation.folder / MANIFEST
    fix = f"run `qa index --index {index_dir}` to rebuild it"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(
            f"Index {index_dir} is damaged ({MANIFEST} is missing): {fix}."
        ) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise IndexCorruptError(
            f"Index {index_dir} is damaged ({MANIFEST} is unreadable: {exc}): {fix}."
        ) from None
    try:
        if generation.name and raw.pop("checksum", None) != manifest_checksum(raw):
            raise IndexCorruptError(
                f"Index {index_dir} is damaged ({MANIFEST} does not match its checksum): {fix}."
            )
        if raw.get("format_version") != FORMAT_VERSION:
            raise IndexCorruptError(
                f"Index {index_dir} has format {raw.get('format_version')}, this qa reads "
                f"{FORMAT_VERSION}: run `qa index --rebuild --index {index_dir}`."
            )
        raw["chunking"] = ChunkingParams(**raw["chunking"])
        raw["files"] = {name: FileEntry(**entry) for name, entry in raw["files"].items()}
        raw["contents"] = {n: FileSum(**e) for n, e in raw.get("contents", {}).items()}
        return Manifest(**raw)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise IndexCorruptError(
            f"Index {index_dir} is damaged ({MANIFEST}: {type(exc).__name__}): {fix}."
        ) from None


def load_index(index_dir: Path, *, verify_all: bool = False) -> StoredIndex:
    """The current generation, its files' sizes checked and their contents verified while it
    loads (all of them with verify_all, as `qa index` does before reusing anything). A writer
    that publishes a new generation meanwhile never makes this fail: it opens the new one."""
    for attempt in range(4):
        generation = layout.current(index_dir)
        try:
            return _load(index_dir, generation, verify_all)
        except (IndexCorruptError, IndexMissingError):
            try:
                moved = layout.current(index_dir) != generation
            except (IndexCorruptError, IndexMissingError):
                moved = False
            if not moved or attempt == 3:
                raise
    raise AssertionError("unreachable")


def verification(
    index_dir: Path, folder: Path, manifest: Manifest, verify_all: bool
) -> Verification:
    """Sizes checked now (IndexCorruptError); contents checked in a thread (its wait())."""
    sums = manifest.contents
    problems = shallow_problems(folder, sums)
    if problems:
        raise damaged(index_dir, problems)
    names = [n for n in sums if verify_all or n != PASSAGE_ENCODER]
    if not verify_all and sum(sums[n].size for n in names) > VERIFY_ON_ASK:
        names = [n for n in names if n not in MAPPED]
    return Verification(index_dir, folder, sums, names)


def _load(index_dir: Path, generation: layout.Generation, verify_all: bool) -> StoredIndex:
    folder = generation.folder
    manifest = manifest_of(index_dir, generation)
    verifying = verification(index_dir, folder, manifest, verify_all)
    try:
        index = _read(index_dir, folder, manifest)
    except IndexCorruptError:
        verifying.wait()  # a checksum names the damaged file better than its reader can
        raise
    verifying.wait()
    return index


def _read(index_dir: Path, folder: Path, manifest: Manifest) -> StoredIndex:
    fix = f"run `qa index --index {index_dir}` to repair it"
    name = CHUNKS
    store: VectorIndex
    try:
        with (folder / CHUNKS).open(encoding="utf-8") as f:
            chunks = [Chunk(**json.loads(line)) for line in f]
        if manifest.store == FAISS:
            store = read_faiss(
                folder, manifest.vector_index, manifest.nprobe, manifest.sentence_tokens
            )
        name = "the lexical index"
        lexical = LexicalIndex.load(folder)
    except Exception as exc:  # whatever a damaged file makes its reader raise
        name = (getattr(exc, "__notes__", None) or [name])[-1]
        reason = "is missing" if isinstance(exc, FileNotFoundError) else "is unreadable"
        raise IndexCorruptError(f"Index {index_dir} is damaged ({name} {reason}): {fix}.") from None
    if manifest.store != FAISS:
        from qa.milvus_store import open_milvus

        store = open_milvus(index_dir, folder, manifest)  # StoreError when it cannot
    ntotal, dim = store.size, store.dim
    if isinstance(store, FaissIndex):
        if store.sentences is not None and store.sentences.problem(len(chunks), manifest.dim):
            raise IndexCorruptError(
                f"Index {index_dir} is damaged (its sentence states do not match its "
                f"{len(chunks)} passages): {fix}."
            )
    counts = {ntotal, lexical.size, manifest.chunks}
    if counts != {len(chunks)} or dim != manifest.dim:
        raise IndexCorruptError(
            f"Index {index_dir} is damaged ({len(chunks)} passages, {ntotal} "
            f"vectors of dimension {dim}): {fix}."
        )
    return StoredIndex(folder, manifest, chunks, store, lexical, index_dir=index_dir)


def write_generation(
    folder: Path,
    manifest: Manifest,
    chunks: list[Chunk],
    vectors: np.ndarray,
    lexical: LexicalIndex,
    encoder: Path | None = None,
    sentences: list[SentenceStates] | None = None,
    documents: dict[str, list[bytes]] | None = None,
) -> None:
    """Write a generation's files into folder (a staging folder, which may already hold the
    encoder files), then its manifest with every file's checksum; qa.layout.publish makes it
    current. `encoder` is a folder whose ONNX encoder files the generation keeps (hard-linked
    when possible); `sentences`, each passage's SentenceStates, when manifest.sentence_tokens.
    The vectors go where manifest.store says: FAISS files in folder, or a Milvus collection
    (whose rows of this generation stay invisible until the generation is published)."""
    states = sentences if manifest.sentence_tokens else None
    if manifest.store == FAISS:
        write_faiss(folder, manifest.vector_index, manifest.dim, vectors, states)
    else:  # the Milvus rows first: a failure there leaves nothing published
        from qa.milvus_store import write_milvus

        info = write_milvus(folder, manifest, chunks, vectors, states, documents)
        manifest = replace(manifest, extra={**manifest.extra, "store": info})
    lexical.save(folder)
    from qa.runtime import ENCODER_FILES, encoder_files

    if encoder is not None and encoder.resolve() != folder.resolve():
        keep = encoder_files(encoder) if manifest.precision == "int8" else ENCODER_FILES
        for name in keep:
            link_or_copy(encoder / name, folder / name)
    elif manifest.precision == "fp32":
        (folder / PASSAGE_ENCODER).unlink(missing_ok=True)
    if documents is not None:
        _save_documents(folder, documents)
        _save_metadata(folder, documents, chunks)
    with (folder / CHUNKS).open("w", encoding="utf-8") as f:
        for chunk in chunks:
            # vars(), not asdict(): a flat dataclass needs no deep copy (1.2 s -> 0.1 s
            # for SciFact's 9882 passages)
            f.write(json.dumps(vars(chunk), ensure_ascii=False) + "\n")
    contents = {p.name: file_sum(p) for p in sorted(folder.iterdir()) if p.name != MANIFEST}
    raw = asdict(replace(manifest, contents=contents))
    raw["checksum"] = manifest_checksum(raw)
    (folder / MANIFEST).write_text(
        json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _save_documents(folder: Path, documents: dict[str, list[bytes]]) -> None:
    """DOCUMENTS, and DOCUMENT_OFFSETS: each source's byte range in it."""
    sources, starts, ends = [], [], []
    with (folder / DOCUMENTS).open("wb") as f:
        for source, lines in documents.items():
            sources.append(source)
            starts.append(f.tell())
            for line in lines:
                f.write(line + b"\n")
            ends.append(f.tell())
    offsets = {"sources": sources, "starts": starts, "ends": ends}
    (folder / DOCUMENT_OFFSETS).write_text(json.dumps(offsets, ensure_ascii=False), "utf-8")


def _save_metadata(folder: Path, documents: dict[str, list[bytes]], chunks: list[Chunk]) -> None:
    """METADATA: each document's metadata as columns; DOCUMENT_ROWS: each row's document."""
    columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    number: dict[tuple[str, str | None], int] = {}
    for lines in documents.values():
        for line in lines:
            raw = json.loads(line)
            number[(raw["source"], raw["doc_id"])] = len(number)
            for name, key in _COLUMNS.items():
                columns[name].append(
                    raw.get(key, [] if key == "tags" else {} if key == "meta" else None)
                )
    (folder / METADATA).write_text(json.dumps(columns, ensure_ascii=False), "utf-8")
    rows = np.array([number.get((c.source, c.doc_id), -1) for c in chunks], dtype=np.int32)
    np.save(folder / DOCUMENT_ROWS, rows, allow_pickle=False)


# DocumentTable field -> Document field
_COLUMNS = {
    "sources": "source",
    "doc_ids": "doc_id",
    "titles": "title",
    "dates": "date",
    "urls": "url",
    "authors": "author",
    "tags": "tags",
    "meta": "meta",
    "encodings": "encoding",
}


def document_line(document: Document) -> bytes:
    return json.dumps(vars(document), ensure_ascii=False).encode("utf-8")


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows one (no bytes copied), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)

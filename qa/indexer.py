"""Building and updating the index incrementally: unchanged text is never embedded again."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from qa import embed as embedding
from qa import layout
from qa.config import DEFAULT_MODEL, DEFAULT_PRECISION, PRECISIONS, Reading, Settings
from qa.corpus import Chunk, ChunkingParams, SkippedSource, chunk_documents
from qa.errors import (
    CorpusError,
    IndexCorruptError,
    IndexMissingError,
    IndexWriteError,
    InputError,
    ModelError,
)
from qa.integrity import content_problems, shallow_problems
from qa.lexical import build_lexical
from qa.readers import SUFFIXES, read_documents
from qa.runtime import (
    ENCODER_FILES,
    PASSAGE_ENCODER,
    EncoderSpec,
    OnnxEmbedder,
    SentenceStates,
    can_export,
    export_onnx,
    has_encoder,
    quantize_passage_encoder,
)
from qa.sources import IGNORE_FILE, Source, list_sources, read_source
from qa.store import (
    FileEntry,
    Manifest,
    StoredIndex,
    choose_index,
    document_line,
    fingerprint,
    link_or_copy,
    load_index,
    manifest_of,
    now,
    read_manifest,
    relative_corpus,
    write_generation,
)
from qa.vector_index import FAISS

log = logging.getLogger(__name__)

# Texts on which an exported encoder must agree with its model: a question, a text past the
# model's length limit, a passage.
SAMPLE = [
    "How much is JD.com paying for its stake in Farfetch?",
    "word " * 400,
    "Emperor penguins breed in the Antarctic winter, when the sea ice is thickest, and the "
    "males keep the eggs warm for two months while the females feed at sea.",
]
# The int8 passage encoder's least cosine to fp32 on SAMPLE (0.985 was the least over SciFact's
# 9882 passages, mean 0.993; bench/speed.md)
INT8_AGREEMENT = 0.97

Progress = Callable[[str, int, int], None]  # (stage, done, total); total 0: a step with no count


@dataclass(frozen=True)
class IndexReport:
    documents: int
    chunks: int
    embedded: int  # passages whose vectors were computed in this run
    reused: int  # passages whose vectors came from the previous index
    removed: int  # passages of the previous index that are gone
    files: int
    changed_files: int
    skipped: list[str] = field(default_factory=list)  # why each unreadable file was skipped
    rebuilt: str | None = None  # why every passage was re-embedded, when it was
    seconds: float = 0.0


@dataclass(frozen=True)
class Changes:
    added: list[str]
    changed: list[str]
    removed: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        return ", ".join(
            f"{len(names)} {label}"
            for names, label in (
                (self.changed, "changed"),
                (self.added, "added"),
                (self.removed, "removed"),
            )
            if names
        )


def resolve_corpus(settings: Settings, manifest: Manifest | None) -> Path:
    """The corpus to read: the one asked for, else the index's (found beside the index as it
    was, else where it was when built), else corpus/ for a new index."""
    if settings.corpus is not None:
        return settings.corpus
    if manifest is not None:
        candidates = manifest.corpus_candidates(settings.index)
        for path in candidates:
            if path.exists():
                return path
        looked = " or ".join(str(p) for p in candidates)
        raise CorpusError(
            f"Index {settings.index} was built from a corpus that is no longer there (looked "
            f"in {looked}): pass its new place with --corpus, e.g. "
            f"`qa index CORPUS --index {settings.index}`."
        )
    marked = layout.read_marker(settings.index).get("corpus") if settings.index.is_dir() else None
    if isinstance(marked, str) and marked:  # a damaged manifest: the marker still knows
        return Path(os.path.normpath(settings.index / marked))
    return Path("corpus")


def reading_of(settings: Settings, manifest: Manifest | None) -> Reading:
    base = Reading.from_json(manifest.reading) if manifest is not None else Reading()
    return base.updated(settings.exclude, settings.follow_symlinks, settings.max_file_size)


def corpus_sources(root: Path, reading: Reading, index_dir: Path) -> tuple[list[Source], list[str]]:
    """The corpus's source files (never the index) and what could not be listed, and why;
    CorpusError if it is missing, a plain file, or holds no article."""
    listing = list_sources(root, reading, skip=[index_dir])
    if not listing.sources:
        raise CorpusError(
            f"Corpus {root} has no files qa reads ({' '.join(sorted(SUFFIXES))}): add some "
            "articles."
        )
    return listing.sources, listing.skipped


def corpus_changes(root: Path, manifest: Manifest, index_dir: Path) -> Changes:
    """What differs between the corpus on disk and the one the index was built from."""
    reading = Reading.from_json(manifest.reading)
    sources, _ = corpus_sources(root, reading, index_dir)
    current = {s.name: read_source(s, reading).digest for s in sources}
    return Changes(
        added=sorted(set(current) - set(manifest.files)),
        changed=sorted(
            n for n in current if n in manifest.files and manifest.files[n].sha256 != current[n]
        ),
        removed=sorted(set(manifest.files) - set(current)),
    )


def _previous(index_dir: Path) -> tuple[StoredIndex | None, str | None, Manifest | None]:
    """The index there now, fully verified, or None with the reason it cannot be reused (and
    its manifest, when that much is readable: it still says where the corpus is)."""
    try:
        return load_index(index_dir, verify_all=True), None, None
    except IndexMissingError:
        return None, None, None
    except IndexCorruptError as exc:
        try:
            manifest = read_manifest(index_dir)
        except (IndexCorruptError, IndexMissingError):
            manifest = None
        return None, f"the previous index was damaged ({exc})", manifest


def build_index(
    settings: Settings,
    *,
    embedder: embedding.Embedder | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
    notify: Callable[[str], None] | None = None,
    wait: bool = True,
    quiet: bool = False,
) -> IndexReport:
    """Build or update the index at settings.index from its corpus. The index folder must be
    new, empty or a qa index: anything else is refused and left as it was."""
    started = time.perf_counter()
    index_dir = settings.index
    if settings.ray is not None:  # a missing extra or a wrong address fails before any work
        from qa.cluster import check

        check(settings.ray)
    layout.claim(index_dir)
    with layout.writer_lock(index_dir, wait=wait, notify=notify):
        layout.clean_stale(index_dir)
        staged = layout.staging(index_dir)
        try:
            report = _build(settings, embedder, rebuild, progress, staged, quiet)
        except OSError as exc:
            raise IndexWriteError(
                f"Cannot write the index in {index_dir}: {exc.strerror or exc}; the index is "
                "as it was."
            ) from None
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return replace(report, seconds=time.perf_counter() - started)


def _build(
    settings: Settings,
    embedder: embedding.Embedder | None,
    rebuild: bool,
    progress: Progress | None,
    staged: Path,
    quiet: bool,
) -> IndexReport:
    old, reason, damaged = _previous(settings.index)
    known = old.manifest if old is not None else damaged
    root = resolve_corpus(settings, known)
    reading = reading_of(settings, known)
    sources, unlisted = corpus_sources(root, reading, settings.index)
    precision = settings.precision or (known.precision if known else DEFAULT_PRECISION)
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision {precision!r}: use {' or '.join(PRECISIONS)}.")
    if embedder is None:
        model = settings.model or (known.model if known else DEFAULT_MODEL)
        if old is not None and not rebuild:  # its ONNX encoder, if it has one: no torch
            embedder = embedding.index_embedder(old.path, model, settings.batch_size)
        else:
            embedder = embedding.load_embedder(model, batch_size=settings.batch_size)
    model = embedder.name
    if old is not None and rebuild:
        reason, old = "--rebuild was asked for", None
    # The encoder first: whether passages can be embedded in int8 decides the fingerprint.
    embedder, encoder, precision = _with_encoder(
        embedder,
        old if old is not None and old.manifest.model == model else None,
        staged,
        precision,
        progress,
    )
    if settings.ray is not None:
        embedder = _on_cluster(embedder, encoder, precision, settings.ray)
    params = ChunkingParams(max_tokens=embedder.max_tokens)
    print_ = fingerprint(model, params, precision)
    if old is not None and old.manifest.fingerprint != print_:
        reason, old = _rebuild_reason(old.manifest, model, params, precision), None
    elif old is not None and not old.manifest.sentence_tokens:
        if isinstance(embedder, OnnxEmbedder):  # chunks are kept; vectors are made again
            reason = "the index has no sentence token states yet (built by an older qa)"
    store = _store(settings, known)  # a new store reuses every vector, written there
    build = _Build(
        settings,
        root,
        reading,
        old,
        reason,
        params,
        print_,
        precision,
        staged,
        tuple(unlisted),
        quiet,
        store,
    )
    return _update(build, sources, unlisted, embedder, encoder, progress)


@dataclass(frozen=True)
class _Build:
    """What one build writes: where, from what, and how."""

    settings: Settings
    root: Path
    reading: Reading
    old: StoredIndex | None
    reason: str | None  # why every passage is re-embedded, when it is
    params: ChunkingParams
    fingerprint: str
    precision: str
    staged: Path  # the generation being written
    unlisted: tuple[str, ...] = ()  # what the folder's listing could not read, and why
    quiet: bool = False  # warn only of files that became unreadable since the last build
    store: str = FAISS  # where the vectors go (qa.vector_index): "faiss" or a Milvus URI


def _store(settings: Settings, known: Manifest | None) -> str:
    """The store asked for (a Milvus URI checked and made absolute), else the index's."""
    chosen = settings.store or (known.store if known is not None else FAISS)
    if chosen == FAISS:
        return FAISS
    from qa.milvus_store import parse_uri

    return parse_uri(chosen).uri


def _rebuild_reason(was: Manifest, model: str, params: ChunkingParams, precision: str) -> str:
    if was.model != model:
        return f"model changed from {was.model} to {model}"
    if was.chunking != params:
        return f"chunking changed from {was.chunking} to {params}"
    if was.precision != precision:
        return f"passage precision changed from {was.precision} to {precision}"
    return "the index was built differently by another version of qa"


def _update(
    build: _Build,
    sources: list[Source],
    unlisted: list[str],
    embedder: embedding.Embedder,
    encoder: Path | None,
    progress: Progress | None,
) -> IndexReport:
    """Chunk what changed, one file at a time, then write the index (see _finish)."""
    old = build.old
    old_by_source: dict[str, list[int]] = defaultdict(list)
    if old is not None:
        for row, chunk in enumerate(old.chunks):
            old_by_source[chunk.source].append(row)

    files: dict[str, FileEntry] = {}
    chunks: list[Chunk] = []
    documents: dict[str, list[bytes]] = {}  # each source's documents (store.document_line)
    skipped: list[str] = list(unlisted)
    changed_files = 0
    for number, source in enumerate(sources, start=1):
        if progress:
            progress("reading", number, len(sources))
        name = source.name
        content = read_source(source, build.reading)
        before = old.manifest.files.get(name) if old else None
        if old is not None and before is not None and before.sha256 == content.digest:
            files[name] = before
            if before.skipped:
                skipped.append(before.skipped)
                continue
            chunks.extend(old.chunks[row] for row in old_by_source.get(name, []))
            kept = old.document_lines(name)
            if kept is None and content.data is not None:  # an index from before documents
                kept = [document_line(d) for d in read_documents(name, content.data)]
            documents[name] = kept or []
            continue
        changed_files += 1
        if content.data is None:
            why = content.skipped or f"{name}: skipped"
            skipped.append(why)
            files[name] = FileEntry(sha256=content.digest, size=0, skipped=why)
            continue
        try:
            docs = read_documents(name, content.data)
        except SkippedSource as exc:
            skipped.append(str(exc))
            files[name] = FileEntry(sha256=content.digest, size=len(content.data), skipped=str(exc))
            continue
        own = chunk_documents(docs, build.params, embedder.count_tokens)
        chunks.extend(own)
        documents[name] = [document_line(d) for d in docs]
        files[name] = FileEntry(sha256=content.digest, size=len(content.data), chunks=len(own))
    # A quiet build (the update before an ask) warns only of what is new since the last one:
    # a file that changed and cannot be read, a link that appeared.
    before_notes = set(old.manifest.unlisted) if old is not None else set()
    unchanged = {
        f.skipped
        for n, f in files.items()
        if f.skipped and old and n in old.manifest.files and old.manifest.files[n] == f
    }
    for why in skipped:
        if not build.quiet or (why not in before_notes and why not in unchanged):
            log.warning("%s", why)
    if not chunks:
        raise CorpusError(f"Corpus {build.root} has no text to index: add some articles.")
    report = _finish(build, files, chunks, documents, embedder, encoder, progress)
    return replace(report, files=len(sources), changed_files=changed_files, skipped=skipped)


def _with_encoder(
    embedder: embedding.Embedder,
    old: StoredIndex | None,
    staging: Path,
    precision: str,
    progress: Progress | None,
) -> tuple[embedding.Embedder, Path | None, str]:
    """The embedder for this build's passages, the folder whose ONNX encoder files the new
    index keeps, and the precision its passages are embedded in.

    A sentence-transformers model we can export is exported once (into staging), checked
    against sentence-transformers, and then embeds this build too (faster, same vectors).
    An index of the same model keeps its encoder. For int8, the fp32 encoder is quantised
    once (into staging too), so only models with an ONNX encoder can have int8 passages.
    """
    if old is not None and has_encoder(old.path):  # same model: keep its encoder
        folder: Path | None = old.path
    elif isinstance(embedder, OnnxEmbedder):
        folder = None  # an encoder the new index cannot keep: embed with it all the same
    else:
        folder = _export(embedder, staging, progress)
    if folder is None:
        if precision == "int8":
            log.info("%s has no ONNX encoder: passages are embedded in fp32", embedder.name)
        return embedder, None, "fp32"
    if precision == "fp32":
        return OnnxEmbedder(folder), folder, "fp32"
    if not (folder / PASSAGE_ENCODER).is_file():
        if folder != staging:  # an old index's encoder: link it beside the int8 copy
            staging.mkdir(parents=True, exist_ok=True)
            for name in ENCODER_FILES:
                link_or_copy(folder / name, staging / name)
            folder = staging
        if progress:
            progress("quantising the encoder to int8", 0, 0)
        quantize_passage_encoder(folder)
        vectors = OnnxEmbedder(folder, precision="int8").embed(SAMPLE)
        agreement = float((vectors * OnnxEmbedder(folder).embed(SAMPLE)).sum(axis=1).min())
        if agreement < INT8_AGREEMENT:
            log.warning(
                "the int8 encoder of %s strays from fp32 (cosine %.3f): passages are embedded "
                "in fp32",
                embedder.name,
                agreement,
            )
            (folder / PASSAGE_ENCODER).unlink()
            return OnnxEmbedder(folder), folder, "fp32"
    return OnnxEmbedder(folder, precision="int8"), folder, "int8"


def _on_cluster(
    embedder: embedding.Embedder, encoder: Path | None, precision: str, address: str
) -> embedding.Embedder:
    """The build's embedder, with its passages embedded on the Ray cluster at address by the
    same encoder file (qa.cluster: the same vectors)."""
    if encoder is None or not isinstance(embedder, OnnxEmbedder):
        raise ModelError(
            f"--ray embeds with the index's ONNX encoder, and {embedder.name} has none: "
            "index without --ray."
        )
    from qa.cluster import RayEmbedder

    return RayEmbedder(encoder, address, precision, embedder.batch_size)


def _export(embedder: embedding.Embedder, staging: Path, progress: Progress | None) -> Path | None:
    """Export a sentence-transformers model to ONNX in staging; None when it cannot be done
    exactly (any failure leaves the slower, exact sentence-transformers path)."""
    if not isinstance(embedder, embedding.SentenceTransformerEmbedder):
        return None
    location = embedder.location
    if location is None or not can_export(location):
        return None
    if progress:
        progress("exporting the model to ONNX", 0, 0)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        export_onnx(
            location, staging, EncoderSpec(embedder.name, embedder.max_tokens, embedder.dim)
        )
        vectors = OnnxEmbedder(staging).embed(SAMPLE)
        agreement = float((vectors * embedder.embed(SAMPLE)).sum(axis=1).min())
        if agreement < 0.9999:
            raise ValueError(f"its vectors differ from sentence-transformers' (cosine {agreement})")
    except Exception as exc:
        for leftover in staging.iterdir():  # nothing half-exported goes into the index
            leftover.unlink()
        log.warning(
            "could not export %s to ONNX (%s); questions will load sentence-transformers",
            embedder.name,
            exc,
        )
        return None
    return staging


def _finish(
    build: _Build,
    files: dict[str, FileEntry],
    chunks: list[Chunk],
    documents: dict[str, list[bytes]],
    embedder: embedding.Embedder,
    encoder: Path | None,
    progress: Progress | None,
) -> IndexReport:
    old, index_dir = build.old, build.settings.index
    corpus = relative_corpus(build.root, index_dir)
    if (
        old is not None
        and chunks == old.chunks
        and files == old.manifest.files
        and encoder == old.path
        and (old.manifest.sentence_tokens or not isinstance(embedder, OnnxEmbedder))
        and old.manifest.corpus == corpus
        and old.manifest.reading == build.reading.as_json()
        and old.manifest.contents  # a qa 0.1 index gets its checksums and new layout
        and old.manifest.documents_kept
        and old.manifest.unlisted == list(build.unlisted)
        and old.manifest.store == build.store
    ):  # nothing to do: leave the index on disk untouched
        n = len(chunks)
        return IndexReport(old.manifest.documents, n, 0, n, 0, files=0, changed_files=0)
    vectors, sentences, embedded, reused = _vectors(chunks, old, embedder, progress)
    removed = 0
    if old is not None:
        kept = {c.sha256 for c in chunks}
        removed = sum(1 for c in old.chunks if c.sha256 not in kept)
    created = old.manifest.created if old else now()
    manifest = Manifest(
        model=embedder.name,
        dim=int(vectors.shape[1]),
        chunking=build.params,
        corpus=corpus,
        corpus_absolute=str(build.root.resolve()),
        reading=build.reading.as_json(),
        files=files,
        documents=len({(c.source, c.doc_id) for c in chunks}),
        chunks=len(chunks),
        created=created,
        updated=now(),
        fingerprint=build.fingerprint,
        vector_index=(kind := choose_index(len(chunks)) if build.store == FAISS else ("HNSW", 0))[
            0
        ],
        nprobe=kind[1],
        precision=build.precision,
        sentence_vectors=sentences is not None,
        sentence_tokens=sentences is not None,
        documents_kept=True,
        unlisted=list(build.unlisted),
        extra=_store_extra(build, index_dir),
    )
    if old is not None and chunks == old.chunks:
        lexical = old.lexical
    else:
        if progress:
            progress("keyword index", 0, 0)
        old_rows = {c.sha256: row for row, c in enumerate(old.chunks)} if old else {}
        lexical = build_lexical(
            [c.embed_text() for c in chunks],
            previous=old.lexical if old else None,
            reuse=[old_rows.get(c.sha256) for c in chunks],
        )
    write_generation(
        build.staged, manifest, chunks, vectors, lexical, encoder, sentences, documents
    )
    owner = manifest.extra.get("store", {}).get("owner") or layout.read_marker(index_dir).get(
        "owner"
    )
    about = {"corpus": corpus, **({"owner": owner} if owner else {})}
    layout.publish(index_dir, build.staged, about)
    return IndexReport(
        documents=manifest.documents,
        chunks=len(chunks),
        embedded=embedded,
        reused=reused,
        removed=removed,
        files=0,
        changed_files=0,
        rebuilt=build.reason,
    )


def _store_extra(build: _Build, index_dir: Path) -> dict[str, Any]:
    """The manifest's record of a Milvus store: its URI, the generation this build writes
    there, and the id that marks the collection as this index's (kept in the marker too)."""
    if build.store == FAISS:
        return {}
    import secrets

    owner = layout.read_marker(index_dir).get("owner") or secrets.token_hex(8)
    number = layout.next_number(index_dir)
    return {"store": {"uri": build.store, "generation": number, "owner": str(owner)}}


def _vectors(
    chunks: list[Chunk],
    old: StoredIndex | None,
    embedder: embedding.Embedder,
    progress: Progress | None,
) -> tuple[np.ndarray, list[SentenceStates] | None, int, int]:
    """Vectors for chunks, and each chunk's SentenceStates when the embedder gives them
    (qa.runtime.OnnxEmbedder.embed_spans): reused by text hash where the old index has them,
    else embedded."""
    onnx = embedder if isinstance(embedder, OnnxEmbedder) else None  # gives sentence states
    known: dict[str, tuple[np.ndarray, SentenceStates | None]] = {}
    if old is not None and (old.manifest.sentence_tokens or onnx is None):
        wanted = {c.sha256 for c in chunks}
        rows = [row for row, c in enumerate(old.chunks) if c.sha256 in wanted]
        if rows:
            old_vectors = old.vectors(rows)  # only these: a server store sends no others
            states = None if onnx is None else old.all_sentence_states(rows)
            for n, row in enumerate(rows):
                own = None if states is None else states[n]
                known[old.chunks[row].sha256] = (old_vectors[n], own)
    todo: dict[str, Chunk] = {}
    for chunk in chunks:
        if chunk.sha256 not in known:
            todo.setdefault(chunk.sha256, chunk)
    if todo:

        def embedding_progress(done: int, total: int) -> None:
            if progress:
                progress("embedding", done, total)

        texts = [c.embed_text() for c in todo.values()]
        if onnx is not None:
            where = [c.embed_sentences() for c in todo.values()]
            fresh, parts = onnx.embed_spans(texts, where, progress=embedding_progress)
            known.update(zip(todo, zip(fresh, parts, strict=True), strict=True))
        else:
            fresh = embedder.embed(texts, progress=embedding_progress)
            known.update((sha, (vector, None)) for sha, vector in zip(todo, fresh, strict=True))
    dim = len(next(iter(known.values()))[0])
    vectors = np.empty((len(chunks), dim), dtype=np.float32)
    for row, chunk in enumerate(chunks):
        vectors[row] = known[chunk.sha256][0]
    sentences = [known[c.sha256][1] for c in chunks]
    embedded = sum(1 for c in chunks if c.sha256 in todo)
    kept = None if any(s is None for s in sentences) else [s for s in sentences if s is not None]
    return vectors, kept, embedded, len(chunks) - embedded


def current_index(
    settings: Settings,
    *,
    update: bool = True,
    embedder: embedding.Embedder | None = None,
    notify: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> StoredIndex:
    """The index, brought up to date first when its corpus changed. A missing index is built
    only when it is the default one (index/): one that was named must exist."""
    index_dir = settings.index
    try:
        manifest = read_manifest(index_dir)
    except IndexMissingError:
        if not update or settings.index_given:
            raise
        root = resolve_corpus(settings, None)
        corpus_sources(root, reading_of(settings, None), index_dir)
        if notify:
            notify(f"No index in {index_dir}/: building it from {root}/ (once).")
        build_index(
            replace(settings, ray=None), embedder=embedder, progress=progress, notify=notify
        )
        return load_index(index_dir)
    if settings.model and settings.model != manifest.model:
        raise ModelError(
            f"Index {index_dir} was built with {manifest.model}, not {settings.model}: "
            f"drop --model, or run `qa index --model {settings.model}` to rebuild it."
        )
    if update:
        root = resolve_corpus(settings, manifest)
        changes = corpus_changes(root, manifest, index_dir)
        if changes:
            if manifest.files and not _still_there(root, manifest):
                raise CorpusError(
                    f"None of the files index {index_dir} was built from is in {root} any more, "
                    "so it will not be updated from there without being asked: run "
                    f"`qa index {root} --index {index_dir}` if that is the corpus, or "
                    "`qa ask --no-update` to use the index as it is."
                )
            if notify:
                notify(f"Corpus changed ({changes.summary()}): updating {index_dir}.")
            build_index(
                replace(settings, corpus=root, ray=None),  # a few passages: here is faster
                embedder=embedder,
                progress=progress,
                notify=notify,
                quiet=True,
            )
    return load_index(index_dir)


def _still_there(root: Path, manifest: Manifest) -> bool:
    """Whether the corpus at root is the one indexed: some file it had is still there. An
    automatic update never reads a folder that merely took its place (an edited manifest)."""
    base = root if root.is_dir() else root.parent
    return any((base / name).exists() for name in manifest.files)


@dataclass(frozen=True)
class Status:
    manifest: Manifest
    corpus: Path
    changes: Changes
    problem: str | None = None  # why changes could not be checked
    damage: list[str] = field(default_factory=list)  # damaged or missing index files


def index_status(settings: Settings, *, verify: bool = False) -> Status:
    """What the index holds and whether its corpus changed since; loads no model or vectors.
    Damage that a stat can see is always reported; with verify, every file's checksum too."""
    index_dir = settings.index
    generation = layout.current(index_dir)
    manifest = manifest_of(index_dir, generation)  # the same generation's, whatever is published
    damage = shallow_problems(generation.folder, manifest.contents)
    if verify and not damage:
        damage = content_problems(generation.folder, manifest.contents, manifest.contents)
    try:
        root = resolve_corpus(settings, manifest)
        return Status(manifest, root, corpus_changes(root, manifest, index_dir), damage=damage)
    except CorpusError as exc:
        root = manifest.corpus_path(index_dir)
        return Status(manifest, root, Changes([], [], []), problem=str(exc), damage=damage)


def watched_changes(settings: Settings, stop: threading.Event | None = None) -> Iterator[set[str]]:
    """Each burst of changes to the corpus of the index (debounced by watchfiles: one update
    per burst), until stop is set; never the index's own writes, nor hidden files."""
    from watchfiles import watch

    manifest = read_manifest(settings.index)
    root = resolve_corpus(settings, manifest)
    folder = root if root.is_dir() else root.parent
    index = os.path.realpath(settings.index)

    def relevant(change: object, path: str) -> bool:
        real = os.path.realpath(path)
        if real == index or real.startswith(index + os.sep):
            return False
        rel = os.path.relpath(path, folder)
        return not any(part.startswith(".") and part != IGNORE_FILE for part in Path(rel).parts)

    for changes in watch(
        folder, watch_filter=relevant, debounce=800, raise_interrupt=True, stop_event=stop
    ):
        yield {path for _, path in changes}

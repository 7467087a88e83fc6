"""The index on disk: manifest.json, chunks.jsonl and vectors.faiss. The only importer of faiss.

An index is written whole into a temporary directory beside its target and swapped in, so a
crash or Ctrl-C leaves the previous index or the new one, never half of either.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from qa import __version__
from qa.corpus import Chunk, ChunkingParams, passage_sentences
from qa.errors import IndexCorruptError, IndexMissingError
from qa.lexical import LexicalIndex
from qa.runtime import SentenceStates

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
VECTORS = "vectors.faiss"
EXACT = "vectors.npy"  # exact float32 vectors, kept beside an approximate (quantised) index
# Every passage's sentence vectors (float16, in row order) and the index of each row's first
SENTENCES, SENTENCE_STARTS = "sentences.npy", "sentence_starts.npy"
# Every sentence's token sign bits (qa.runtime.SentenceStates, in sentence order) and the index
# of each sentence's first token
TOKENS, TOKEN_STARTS = "tokens.npy", "token_starts.npy"

# Exact search while it is fast enough; past that, IVF with 8-bit scalar quantisation
# (bench/results/large.md has the measurements behind these numbers).
FLAT_LIMIT = 25_000  # Flat: 1.2 ms a question at 10k, 15 ms at 100k (bench/results/large.md)
NPROBE = 64  # IVF4096,SQ8 at 1M: recall@10 0.978, p50 1.4 ms (32: 0.968, 0.8 ms)
TRAINING_SAMPLE = 100_000


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
    vector_index: str = "Flat"  # faiss index_factory string (choose_index)
    nprobe: int = 0  # IVF lists searched per question
    precision: str = "fp32"  # passage vectors: "int8" encoder, or "fp32" (as the model gives)
    # SENTENCES and TOKENS kept (encoders that give token states). Always equal; this qa reads
    # only sentence_tokens, sentence_vectors is still written for the qa before it
    sentence_vectors: bool = False
    sentence_tokens: bool = False
    format_version: int = FORMAT_VERSION
    qa_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    def corpus_path(self, index_dir: Path) -> Path:
        return Path(os.path.normpath(index_dir / self.corpus))


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
    path: Path
    manifest: Manifest
    chunks: list[Chunk]
    faiss_index: Any
    lexical: LexicalIndex
    # exact vectors: memory-mapped when faiss_index quantises, else a copy of its own
    exact: np.ndarray
    # memory-mapped sentence vectors, and row r's first at sentence_starts[r]; memory-mapped
    # token sign bits, and sentence s's first at token_starts[s] (manifest.sentence_tokens)
    sentence_matrix: np.ndarray | None = None
    sentence_starts: np.ndarray | None = None
    token_signs: np.ndarray | None = None
    token_starts: np.ndarray | None = None
    # row -> its sentences' spans (document coordinates) and terms; filled as questions need it
    sentences: dict[int, list[tuple[tuple[int, int], list[str]]]] = field(default_factory=dict)

    def passage_sentences(self, row: int) -> list[tuple[tuple[int, int], list[str]]]:
        """A passage's sentences (the whole passage if it has none) with their BM25 terms."""
        if row not in self.sentences:
            chunk = self.chunks[row]
            spans = passage_sentences(chunk.text)
            terms = self.lexical.analyzer.terms_by_span(chunk.text, spans)
            self.sentences[row] = [
                ((chunk.start + s, chunk.start + e), t)
                for (s, e), t in zip(spans, terms, strict=True)
            ]
        return self.sentences[row]

    def sentence_states(self, row: int) -> SentenceStates | None:
        """A passage's SentenceStates (passage_sentences order), if the index has them."""
        if self.sentence_matrix is None or self.token_signs is None:
            return None
        return self._states(self.sentence_matrix, self.token_signs, row)

    def all_sentence_states(self, rows: Sequence[int]) -> list[SentenceStates] | None:
        """SentenceStates of many rows (an update reuses every kept passage's), if the index
        has them: the arrays are read whole once, not row by row (0.3 s for SciFact's)."""
        if self.sentence_matrix is None or self.token_signs is None:
            return None
        vectors = np.asarray(self.sentence_matrix, dtype=np.float32)  # float16 on disk: a copy
        signs = np.array(self.token_signs)
        return [self._states(vectors, signs, row) for row in rows]

    def _states(self, vectors: np.ndarray, signs: np.ndarray, row: int) -> SentenceStates:
        assert self.sentence_starts is not None and self.token_starts is not None
        begin, end = int(self.sentence_starts[row]), int(self.sentence_starts[row + 1])
        first, last = int(self.token_starts[begin]), int(self.token_starts[end])
        return SentenceStates(
            np.asarray(vectors[begin:end], dtype=np.float32),
            np.asarray(signs[first:last]),
            np.diff(self.token_starts[begin : end + 1]),
        )

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """(row, score) pairs per query, best first; faiss's -1 padding removed."""
        k = min(k, len(self.chunks))
        if k <= 0:
            return [[] for _ in range(len(queries))]
        import faiss

        # One thread for a question or a few: OpenMP's start-up costs more than it saves
        # (single-query Flat at 10k: 1.2 ms with one thread, 24 ms with two on a busy machine).
        faiss.omp_set_num_threads(1 if len(queries) <= 4 else os.cpu_count() or 1)
        scores, rows = self.faiss_index.search(np.ascontiguousarray(queries, np.float32), k)
        return [
            [(int(r), float(s)) for r, s in zip(row, score, strict=True) if r >= 0]
            for row, score in zip(rows, scores, strict=True)
        ]

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact inner products of one query with the given rows' vectors."""
        return np.asarray(self.exact[rows] @ query, dtype=np.float32)

    def vectors(self) -> np.ndarray:
        """Every passage's exact vector, in row order."""
        return np.asarray(self.exact, dtype=np.float32)


def read_manifest(index_dir: Path) -> Manifest:
    _recover(index_dir)
    path = index_dir / MANIFEST
    if not path.is_file():
        if index_dir.is_dir() and any(index_dir.iterdir()):
            raise IndexCorruptError(
                f"Index {index_dir} has no {MANIFEST}: run `qa index --rebuild`."
            )
        raise IndexMissingError(f"No index in {index_dir}: run `qa index` first.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format_version") != FORMAT_VERSION:
            raise IndexCorruptError(
                f"Index {index_dir} has format {raw.get('format_version')}, this qa reads "
                f"{FORMAT_VERSION}: run `qa index --rebuild`."
            )
        raw["chunking"] = ChunkingParams(**raw["chunking"])
        raw["files"] = {name: FileEntry(**entry) for name, entry in raw["files"].items()}
        return Manifest(**raw)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise IndexCorruptError(
            f"Index {index_dir}: {MANIFEST} is damaged ({exc}): run `qa index --rebuild`."
        ) from None


def load_index(index_dir: Path) -> StoredIndex:
    manifest = read_manifest(index_dir)
    import faiss

    name = CHUNKS
    try:
        with (index_dir / CHUNKS).open(encoding="utf-8") as f:
            chunks = [Chunk(**json.loads(line)) for line in f]
        name = VECTORS
        vectors = faiss.read_index(str(index_dir / VECTORS))
        if manifest.nprobe:
            faiss.extract_index_ivf(vectors).nprobe = manifest.nprobe
        if manifest.vector_index == "Flat":
            # A copy of the flat index's vectors (at most FLAT_LIMIT rows, 38 MB): a question
            # reads its 200 candidates' by numpy indexing, not by 200 reconstruct() calls
            exact = vectors.reconstruct_n(0, vectors.ntotal).reshape(vectors.ntotal, vectors.d)
        else:
            name = EXACT
            exact = np.load(index_dir / EXACT, mmap_mode="r", allow_pickle=False)
        sentences = starts = signs = token_starts = None
        if manifest.sentence_tokens:  # written with the sentence vectors, never alone
            name = SENTENCES
            sentences = np.load(index_dir / SENTENCES, mmap_mode="r", allow_pickle=False)
            starts = np.load(index_dir / SENTENCE_STARTS, allow_pickle=False)
            name = TOKENS
            signs = np.load(index_dir / TOKENS, mmap_mode="r", allow_pickle=False)
            token_starts = np.load(index_dir / TOKEN_STARTS, allow_pickle=False)
        name = "lexical index"
        lexical = LexicalIndex.load(index_dir)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        reason = "is missing" if isinstance(exc, FileNotFoundError) else "is unreadable"
        raise IndexCorruptError(
            f"Index {index_dir} is damaged ({name} {reason}): run `qa index --rebuild`."
        ) from None
    counts = {vectors.ntotal, lexical.size, manifest.chunks}
    if (
        sentences is not None
        and starts is not None
        and signs is not None
        and token_starts is not None
        and (
            len(starts) != len(chunks) + 1
            or int(starts[-1]) != len(sentences)
            or sentences.shape[1] != manifest.dim
            or len(token_starts) != len(sentences) + 1
            or int(token_starts[-1]) != len(signs)
            or signs.shape[1] != (manifest.dim + 7) // 8
        )
    ):
        raise IndexCorruptError(
            f"Index {index_dir}: its sentence states do not match its {len(chunks)} passages: "
            "run `qa index --rebuild`."
        )
    if counts != {len(chunks)} or vectors.d != manifest.dim:
        raise IndexCorruptError(
            f"Index {index_dir} is inconsistent ({len(chunks)} passages, {vectors.ntotal} "
            f"vectors of dimension {vectors.d}): run `qa index --rebuild`."
        )
    return StoredIndex(
        index_dir,
        manifest,
        chunks,
        vectors,
        lexical,
        exact=exact,
        sentence_matrix=sentences,
        sentence_starts=starts,
        token_signs=signs,
        token_starts=token_starts,
    )


def write_index(
    index_dir: Path,
    manifest: Manifest,
    chunks: list[Chunk],
    vectors: np.ndarray,
    lexical: LexicalIndex,
    encoder: Path | None = None,
    sentences: list[SentenceStates] | None = None,
) -> None:
    """Write the index into a temporary directory and swap it in; `encoder` is a folder
    whose ONNX encoder files the new index keeps (hard-linked when possible); `sentences`,
    each passage's SentenceStates, when manifest.sentence_tokens."""
    import faiss

    index_dir = index_dir.resolve()
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_dir.with_name(f".{index_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.index_factory(manifest.dim, manifest.vector_index, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            rng = np.random.default_rng(0)
            sample = rng.choice(len(vectors), min(len(vectors), TRAINING_SAMPLE), replace=False)
            index.train(vectors[np.sort(sample)])
        if len(vectors):
            index.add(vectors)
        faiss.write_index(index, str(tmp / VECTORS))
        if manifest.vector_index != "Flat":
            np.save(tmp / EXACT, vectors, allow_pickle=False)
        if manifest.sentence_tokens and sentences is not None:
            _save_states(tmp, sentences, manifest.dim)
        lexical.save(tmp)
        if encoder is not None:
            from qa.runtime import ENCODER_FILES, encoder_files

            keep = encoder_files(encoder) if manifest.precision == "int8" else ENCODER_FILES
            for name in keep:
                link_or_copy(encoder / name, tmp / name)
        with (tmp / CHUNKS).open("w", encoding="utf-8") as f:
            for chunk in chunks:
                # vars(), not asdict(): a flat dataclass needs no deep copy (1.2 s -> 0.1 s
                # for SciFact's 9882 passages)
                f.write(json.dumps(vars(chunk), ensure_ascii=False) + "\n")
        (tmp / MANIFEST).write_text(
            json.dumps(asdict(manifest), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        _swap(tmp, index_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_states(directory: Path, sentences: list[SentenceStates], dim: int) -> None:
    """SENTENCES and TOKENS, each with the index of every passage's (sentence's) first."""
    vectors = np.concatenate([s.vectors for s in sentences] or [np.empty((0, dim))])
    signs = np.concatenate([s.signs for s in sentences] or [np.empty((0, (dim + 7) // 8))])
    tokens = np.concatenate([s.counts for s in sentences] or [np.empty(0, np.int64)])
    for (name, starts_name), matrix, sizes in (
        (
            (SENTENCES, SENTENCE_STARTS),
            vectors.astype(np.float16),
            [len(s.vectors) for s in sentences],
        ),
        ((TOKENS, TOKEN_STARTS), signs.astype(np.uint8), tokens.tolist()),
    ):
        np.save(directory / name, matrix, allow_pickle=False)
        starts = np.cumsum([0, *sizes], dtype=np.int64)
        np.save(directory / starts_name, starts, allow_pickle=False)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows one (no bytes copied), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _old(index_dir: Path) -> Path:
    return index_dir.with_name(f".{index_dir.name}.old")


def _swap(new: Path, target: Path) -> None:
    old = _old(target)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)  # between the two renames only `old` exists; _recover() handles it
    shutil.rmtree(old, ignore_errors=True)


def _recover(index_dir: Path) -> None:
    old = _old(index_dir)
    if not index_dir.exists() and old.is_dir():
        os.replace(old, index_dir)

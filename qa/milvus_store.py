"""Passage vectors in Milvus: a VectorIndex on a Milvus server (standalone or cluster) or a
Milvus Lite file, through pymilvus's MilvusClient (the same code for all three).

    qa index --store milvus://HOST:PORT/COLLECTION
    qa index --store milvus-lite:PATH.db            (collection "qa"; PATH.db#NAME names one)

What lives where. The collection holds, per passage: its vector (HNSW, inner product), what
the filters read (its source, its document's date as a number, and its document's tags and
--where-able metadata as casefolded "key=value" strings), its sentence states for the re-rank
(base64), and on servers with a BM25 function (Milvus >= 2.5, Milvus Lite) its text, whose
BM25 index gives the keyword side's candidates. Each local generation (DIR/gNNNNNN) keeps what
it kept before except the vectors: chunks, documents, metadata, qa's own BM25 index (which
scores every candidate, highlights, and is the keyword side itself on a server without BM25),
and PASSAGE_IDS: each row's passage id, to map Milvus's hits back to rows.

Generations. ONE collection per index, rows keyed by a stable 63-bit passage id (a hash of the
fingerprint, source, document id, text hash, occurrence and document metadata), each with the
generation it was born in and the one it died in (ALIVE while it lives). A reader of
generation N searches `born <= N and died > N`. An update to N+1 inserts only new passages
(born N+1) and marks the removed ones died N+1 (an upsert), flushes, and only then does qa
publish the local generation that records N+1: until that moment readers of N see exactly N,
and a failed update's rows are invisible to every reader. The next writer first undoes what a
failed one left (rows born after the published generation deleted, deaths after it revived)
and deletes rows dead before the oldest generation still kept (the previous one). A collection
per generation with an alias swap would be simpler but re-inserts every passage each build
(1M passages: minutes), where an update here writes only what changed.

qa never drops or alters a collection it did not create: its own carry a description naming
the index they belong to, and any other is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.errors import IndexCorruptError, InputError, StoreError
from qa.runtime import SentenceStates

if TYPE_CHECKING:
    from qa.corpus import Chunk
    from qa.filters import Filters
    from qa.store import Manifest

log = logging.getLogger(__name__)

PASSAGE_IDS = "passage_ids.npy"  # int64 per row: the row's passage id in the collection
ALIVE = (1 << 62) - 1  # `died` of a passage still in the index
LITE_COLLECTION = "qa"
# HNSW, chosen by measurement (bench/vector_stores.py, bench/results/milvus.md)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF = 16, 200, 64
KEY_LENGTH, KEYS = 512, 4096  # a "key=value" filter entry's most bytes; most entries a row
STATES_LENGTH = 65_535  # most characters of a row's base64 sentence states (VARCHAR's limit)
TEXT_LENGTH = 60_000  # most bytes of a passage's text kept for the server's BM25
SOURCE_LENGTH = 8192
BATCH_BYTES = 16 << 20  # one insert's rough size (gRPC's limit is 64 MB)
GET_BATCH = 1000  # ids per get()
QUERY_BATCH = 256  # questions per search request (gRPC messages stay small)
# Every write is flushed and its HNSW index waited for (a flush costs 2.5 s on Milvus 2.3.5):
# rows left in a growing segment are searched through Milvus's interim IVF index, which gave
# SciFact dense recall@10 0.933 against exact whatever the ef (bench/results/milvus.md)
INDEX_WAIT = 3600.0  # seconds
# Until the query nodes take over a flushed segment with its HNSW index (10-15 s after the
# index is built, on 2.3.5), they search it as they searched it growing: through the interim
# IVF index that Milvus builds over every 1024 rows (SciFact dense recall@10 0.934 against
# exact, whatever the ef; 1.000 once served indexed). A write of that many rows waits for it.
INTERIM_ROWS = 1024
SERVE_WAIT = 300.0  # seconds
TIMEOUT = 10.0  # seconds to reach a server
MARKER = "qa-index"  # what a collection description made by qa starts with
# The row that marks a collection as qa's and names the index that owns it (Milvus Lite keeps
# no collection description): never visible (born and died -1), never cleaned up
MARKER_ID = 0
FIELDS = {"pid", "vector", "born", "died", "source", "date", "keys", "states"}
# columns --where reads before the document's own metadata (qa.filters.DocumentTable._where)
_COLUMNS = ("title", "author", "url", "doc_id", "source", "encoding", "date")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


@dataclass(frozen=True)
class StoreURI:
    """Where a Milvus store is: `uri` as the manifest records it, `address` as pymilvus
    connects to it (http://HOST:PORT, or a Milvus Lite file)."""

    uri: str
    address: str
    collection: str
    lite: bool


def parse_uri(text: str, base: Path | None = None) -> StoreURI:
    """A --store value that names Milvus (InputError, naming the forms, if it is not one); a
    Milvus Lite path is made absolute against base (the current folder)."""
    hint = (
        "use milvus://HOST:PORT/COLLECTION (a Milvus server) or milvus-lite:PATH.db "
        f"(a Milvus Lite file; PATH.db#COLLECTION names its collection), not {text!r}"
    )
    if text.startswith("milvus-lite:"):
        path, _, name = text.removeprefix("milvus-lite:").partition("#")
        name = name or LITE_COLLECTION
        if not path.strip() or not _NAME.fullmatch(name):
            raise InputError(f"--store: {hint}.")
        if not path.endswith(".db"):
            raise InputError(f"--store: a Milvus Lite file's name ends in .db ({hint}).")
        where = Path(path).expanduser()
        if not where.is_absolute():
            where = (base or Path.cwd()) / where
        where = where.resolve()
        return StoreURI(f"milvus-lite:{where}#{name}", str(where), name, True)
    found = re.fullmatch(r"milvus://([^/:\s]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})/([^/\s]+)/?", text)
    if found is None or not _NAME.fullmatch(found[3]) or not 0 < int(found[2]) < 65536:
        raise InputError(f"--store: {hint}.")
    host, port, name = found[1], found[2], found[3]
    return StoreURI(f"milvus://{host}:{port}/{name}", f"http://{host}:{port}", name, False)


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def connect(spec: StoreURI) -> Any:
    """A MilvusClient for the store, made once per process; StoreError when pymilvus is not
    installed or the server cannot be reached."""
    with _clients_lock:
        client = _clients.get(spec.address)
        if client is not None:
            return client
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise StoreError(
                f"The index's vectors are in Milvus ({spec.uri}) and pymilvus is not "
                "installed: pip install 'qa[milvus]'."
            ) from None
        if spec.lite:
            try:
                import milvus_lite  # noqa: F401
            except ImportError:
                raise StoreError(
                    f"{spec.uri} is a Milvus Lite file and milvus-lite is not installed: "
                    "pip install 'qa[milvus]'."
                ) from None
            Path(spec.address).parent.mkdir(parents=True, exist_ok=True)
        try:
            client = MilvusClient(uri=spec.address, timeout=TIMEOUT)
        except Exception as exc:
            what = "open the Milvus Lite file" if spec.lite else "reach the Milvus server at"
            where = spec.address.removeprefix("http://")
            raise StoreError(
                f"Cannot {what} {where} ({_reason(exc)}): "
                + (
                    "is another process using it?"
                    if spec.lite
                    else "start it (`milvus-server`, or Docker) or pass another --store."
                )
            ) from None
        _clients[spec.address] = client
        return client


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def server_has_bm25(client: Any, spec: StoreURI) -> bool:
    """Whether the server has Milvus's BM25 function (2.5 on; Milvus Lite has it)."""
    if spec.lite:
        return True
    found = re.match(r"v?(\d+)\.(\d+)", str(client.get_server_version()))
    return found is not None and (int(found[1]), int(found[2])) >= (2, 5)


# ---- what a row holds -----------------------------------------------------------------


def date_key(date: str | None) -> int:
    """qa.filters' sortable number of a document's date (0: none)."""
    from qa.filters import _key

    return _key(date) if date else 0


def entry(key: str, value: str) -> str:
    """A filter entry as stored and as asked for: "key=value" casefolded in its value; a long
    one as its hash (ARRAY elements have a length limit)."""
    text = f"{key}={value.casefold()}"
    if len(text.encode("utf-8")) > KEY_LENGTH:
        return "#" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    return text


def document_entries(raw: dict[str, Any]) -> list[str]:
    """A document's filter entries: its tags (tag=...), the columns --where reads first, then
    its own metadata (never a key that holds "=", which --where cannot name)."""
    out = [entry("tag", str(t)) for t in raw.get("tags") or []]
    for column in _COLUMNS:
        if raw.get(column) is not None:
            out.append(entry(column, str(raw[column])))
    for key, value in (raw.get("meta") or {}).items():
        if key not in _COLUMNS and key not in ("tag", "tags") and "=" not in key:
            if value is not None:
                out.append(entry(key, str(value)))
    if len(out) > KEYS:
        log.warning(
            "%s: only %d of its %d metadata entries can be filtered on", raw, KEYS, len(out)
        )
    return list(dict.fromkeys(out))[:KEYS]


def passage_ids(
    fingerprint: str, chunks: Sequence[Chunk], documents: dict[str, list[bytes]] | None
) -> tuple[np.ndarray, dict[tuple[str, str | None], dict[str, Any]]]:
    """Each row's stable passage id, and each document's parsed line. Same passage, same
    metadata, same vectors: same id; a changed document's metadata gives new ids."""
    docs: dict[tuple[str, str | None], dict[str, Any]] = {}
    digests: dict[tuple[str, str | None], str] = {}
    for lines in (documents or {}).values():
        for line in lines:
            raw = json.loads(line)
            key = (raw["source"], raw["doc_id"])
            docs[key] = raw
            own = {k: raw.get(k) for k in ("tags", "meta", *_COLUMNS)}
            digests[key] = hashlib.sha256(json.dumps(own, sort_keys=True).encode()).hexdigest()
    seen: dict[tuple[str, str | None, str], int] = {}
    ids = np.empty(len(chunks), dtype=np.int64)
    for row, chunk in enumerate(chunks):
        same = (chunk.source, chunk.doc_id, chunk.sha256)
        occurrence = seen[same] = seen.get(same, -1) + 1
        meta = digests.get((chunk.source, chunk.doc_id), "")
        text = "\0".join(
            [fingerprint, chunk.source, str(chunk.doc_id), chunk.sha256, str(occurrence), meta]
        )
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
        ids[row] = (int.from_bytes(digest, "little") & ((1 << 63) - 1)) or 1  # 0: MARKER_ID
    return ids, docs


def encode_states(states: SentenceStates) -> str:
    """SentenceStates as base64 ("" when it would pass VARCHAR's limit: no re-rank by
    sentence states for questions where that passage is a candidate)."""
    counts = np.asarray(states.counts, dtype="<u2")
    header = np.array([len(states.vectors), len(states.signs)], dtype="<u4").tobytes()
    body = (
        header
        + counts.tobytes()
        + np.asarray(states.vectors, dtype="<f2").tobytes()
        + np.ascontiguousarray(states.signs, dtype=np.uint8).tobytes()
    )
    text = base64.b64encode(body).decode("ascii")
    return text if len(text) <= STATES_LENGTH else ""


def decode_states(text: str, dim: int) -> SentenceStates | None:
    if not text:
        return None
    body = base64.b64decode(text)
    sentences, tokens = (int(n) for n in np.frombuffer(body[:8], dtype="<u4"))
    at = 8
    counts = np.frombuffer(body, dtype="<u2", count=sentences, offset=at).astype(np.int64)
    at += 2 * sentences
    vectors = np.frombuffer(body, dtype="<f2", count=sentences * dim, offset=at)
    at += 2 * sentences * dim
    signs = np.frombuffer(body, dtype=np.uint8, count=tokens * ((dim + 7) // 8), offset=at)
    return SentenceStates(
        vectors.astype(np.float32).reshape(sentences, dim),
        signs.reshape(tokens, (dim + 7) // 8).copy(),
        counts,
    )


# ---- filters as Milvus expressions ------------------------------------------------------


def literal(text: str) -> str:
    """A Milvus string literal: double-quoted, backslashes, quotes and control characters
    escaped (JSON's escapes are also Milvus's), the rest as it is."""
    return json.dumps(text, ensure_ascii=False)


def visible(generation: int) -> str:
    """The rows a reader of this generation sees."""
    return f"born <= {generation} and died > {generation}"


def expression(filters: Filters, sources: Iterable[str]) -> str | None:
    """The filters as a Milvus boolean expression over a row's fields, with the semantics of
    qa.filters.DocumentTable.row_mask; None when nothing can pass (no source matches). Source
    globs are matched here against the index's sources (fnmatch's rules, which Milvus's
    `like` lacks) and asked for by name."""
    import fnmatch

    from qa.filters import _key

    parts = []
    if filters.sources:
        patterns = [re.compile(fnmatch.translate(p)) for p in filters.sources]
        names = sorted({s for s in sources if any(p.match(s) for p in patterns)})
        if not names:
            return None
        parts.append(f"source in [{', '.join(literal(n) for n in names)}]")
    if filters.since:
        parts.append(f"date >= {_key(filters.since)}")
    elif filters.until:
        parts.append("date >= 1")  # a document without a date is before no --until
    if filters.until:
        parts.append(f"date <= {_key(filters.until, end=True)}")
    for tag in filters.tags:
        parts.append(f"array_contains(keys, {literal(entry('tag', tag))})")
    for key, value in filters.where:
        name = "tag" if key in ("tag", "tags") else key
        parts.append(f"array_contains(keys, {literal(entry(name, value))})")
    return " and ".join(f"({p})" for p in parts)


# ---- the reader -------------------------------------------------------------------------


@dataclass
class MilvusIndex:
    """A VectorIndex over one generation of a Milvus collection (see the module's doc)."""

    client: Any
    spec: StoreURI
    generation: int
    rows_pid: np.ndarray  # int64 per row
    sources: list[str]  # the generation's distinct sources (for source globs)
    dim_: int
    keywords: bool = False  # the collection has a BM25 index of its passages' text
    ef: int = HNSW_EF
    _order: np.ndarray = field(init=False, repr=False)
    _cache: dict[int, tuple[np.ndarray, str]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._order = np.argsort(self.rows_pid, kind="stable")
        self._sorted = self.rows_pid[self._order]

    @property
    def size(self) -> int:
        return len(self.rows_pid)

    @property
    def dim(self) -> int:
        return self.dim_

    def describe(self) -> str:
        return f"Milvus HNSW (M {HNSW_M}, efConstruction {HNSW_EF_CONSTRUCTION}, ef {self.ef})"

    def rows_of(self, pids: Sequence[int]) -> list[int | None]:
        """Each passage id's row in this generation (None: not one of its passages)."""
        ids = np.asarray(pids, dtype=np.int64)
        at = np.searchsorted(self._sorted, ids)
        at = np.minimum(at, len(self._sorted) - 1) if len(self._sorted) else at
        out: list[int | None] = []
        for i, pid in zip(at.tolist(), ids.tolist(), strict=True):
            ok = len(self._sorted) > 0 and int(self._sorted[i]) == pid
            out.append(int(self._order[i]) if ok else None)
        return out

    def _filter(self, mask: np.ndarray | None, filters: Filters | None) -> str | None:
        parts = [visible(self.generation)]
        if filters:
            own = expression(filters, self.sources)
            if own is None:
                return None
            parts.append(own)
        elif mask is not None:  # a mask alone (a benchmark): its rows by id
            parts.append(f"pid in [{', '.join(str(p) for p in self.rows_pid[mask].tolist())}]")
        return " and ".join(parts)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        mask: np.ndarray | None = None,
        filters: Filters | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Milvus's filtered HNSW search: the filter is applied before the top k."""
        k = min(k, self.size if mask is None else int(mask.sum()), 16_384)
        where = self._filter(mask, filters)
        if k <= 0 or where is None:
            return [[] for _ in range(len(queries))]
        out: list[list[tuple[int, float]]] = []
        for start in range(0, len(queries), QUERY_BATCH):
            found = self._call(
                "search",
                data=np.asarray(queries[start : start + QUERY_BATCH], dtype=np.float32).tolist(),
                anns_field="vector",
                limit=k,
                filter=where,
                search_params={"metric_type": "IP", "params": {"ef": max(self.ef, k)}},
                output_fields=["pid"],
            )
            out.extend(self._hits(hits) for hits in found)
        return out

    def keyword_search(
        self, question: str, k: int, filters: Filters | None
    ) -> list[tuple[int, float]] | None:
        """The server's BM25 candidates (None when the collection has no BM25 index)."""
        if not self.keywords:
            return None
        where = self._filter(None, filters)
        if where is None or not question.strip():
            return []
        [hits] = self._call(
            "search",
            data=[question],
            anns_field="sparse",
            limit=min(k, self.size, 16_384),
            filter=where,
            search_params={"metric_type": "BM25"},
            output_fields=["pid"],
        )
        return self._hits(hits)

    def _hits(self, hits: Sequence[Any]) -> list[tuple[int, float]]:
        pids = [_hit_id(h) for h in hits]
        rows = self.rows_of(pids)
        return [
            (row, float(h["distance"]))
            for row, h in zip(rows, hits, strict=True)
            if row is not None
        ]

    def _call(self, method: str, **kwargs: Any) -> Any:
        """A read, at Bounded consistency: Strong waits for the next time tick (200 ms a
        question on Milvus 2.3, against 2 ms), and a published generation's rows are already
        visible (write_milvus saw them with a Strong query before qa published it)."""
        try:
            return getattr(self.client, method)(
                self.spec.collection, consistency_level="Bounded", **kwargs
            )
        except Exception as exc:
            raise StoreError(f"Milvus ({self.spec.uri}) failed: {_reason(exc)}.") from None

    def _fetch(self, rows: Sequence[int]) -> list[tuple[np.ndarray, str]]:
        """Rows' (vector, base64 states), from a small cache (a question asks for its
        candidates' several times) or the server."""
        pids = [int(self.rows_pid[r]) for r in rows]
        with self._lock:
            missing = sorted({p for p in pids if p not in self._cache})
        got: dict[int, tuple[np.ndarray, str]] = {}
        for start in range(0, len(missing), GET_BATCH):
            part = missing[start : start + GET_BATCH]
            for item in self._call("get", ids=part, output_fields=["vector", "states"]):
                vector = np.asarray(item["vector"], dtype=np.float32)
                got[int(item["pid"])] = (vector, str(item.get("states") or ""))
        with self._lock:
            if len(self._cache) + len(got) > 20_000:
                self._cache.clear()
            if len(missing) <= 2_000:
                self._cache.update(got)
            table = {p: self._cache.get(p) or got.get(p) for p in pids}
        lost = [p for p, v in table.items() if v is None]
        if lost:
            raise IndexCorruptError(
                f"Milvus collection {self.spec.collection} lacks {len(lost)} of this index's "
                "passages: run `qa index --rebuild` to write them again."
            )
        return [table[p] for p in pids]  # type: ignore[misc]

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.empty(0, dtype=np.float32)
        return np.asarray(self.vectors(rows.tolist()) @ query, dtype=np.float32)

    def vectors(self, rows: Sequence[int] | None = None) -> np.ndarray:
        wanted = range(self.size) if rows is None else rows
        found = self._fetch(list(wanted))
        if not found:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([v for v, _ in found]).astype(np.float32)

    def sentence_states(self, row: int) -> SentenceStates | None:
        [(_, text)] = self._fetch([row])
        return decode_states(text, self.dim)

    def all_sentence_states(self, rows: Sequence[int]) -> list[SentenceStates] | None:
        found = [decode_states(text, self.dim) for _, text in self._fetch(list(rows))]
        if any(s is None for s in found):
            return None
        return [s for s in found if s is not None]


def _hit_id(hit: Any) -> int:
    """A search hit's passage id: pymilvus names it by the primary field (Milvus Lite) or
    "id" (a server)."""
    for key in ("pid", "id"):
        if key in dict.keys(hit):
            return int(dict.__getitem__(hit, key))
    return int(hit["entity"]["pid"])


def store_info(manifest: Manifest) -> dict[str, Any]:
    own = manifest.extra.get("store")
    if not isinstance(own, dict):
        raise IndexCorruptError("the manifest names no Milvus store")
    return own


def open_milvus(index_dir: Path, folder: Path, manifest: Manifest) -> MilvusIndex:
    """The generation's MilvusIndex: its passage ids read, the server reached."""
    info = store_info(manifest)
    spec = parse_uri(str(info["uri"]))
    try:
        ids = np.load(folder / PASSAGE_IDS, allow_pickle=False)
    except (OSError, ValueError):
        raise IndexCorruptError(
            f"Index {index_dir} is damaged ({PASSAGE_IDS} is unreadable): run "
            f"`qa index --index {index_dir}` to repair it."
        ) from None
    client = connect(spec)
    chunks_sources = _sources(folder)
    try:
        if not client.has_collection(spec.collection):
            raise StoreError(
                f"Milvus has no collection {spec.collection} ({spec.uri}), where index "
                f"{index_dir} keeps its vectors: run `qa index --rebuild --index {index_dir}`."
            )
        client.load_collection(spec.collection)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"Milvus ({spec.uri}) failed: {_reason(exc)}.") from None
    return MilvusIndex(
        client,
        spec,
        int(info["generation"]),
        ids,
        chunks_sources,
        manifest.dim,
        keywords=bool(info.get("keywords") == "milvus"),
        ef=int(info.get("ef", HNSW_EF)),
    )


def _sources(folder: Path) -> list[str]:
    from qa.store import DOCUMENT_OFFSETS

    try:
        raw = json.loads((folder / DOCUMENT_OFFSETS).read_text(encoding="utf-8"))
        return [str(s) for s in raw["sources"]]
    except (OSError, ValueError, KeyError):
        return []


# ---- the writer -------------------------------------------------------------------------


def _description(owner: str) -> str:
    return f"{MARKER}: written by qa for index {owner}; do not edit"


def _owner_of(client: Any, name: str, info: dict[str, Any]) -> str | None:
    """The owner its marker row names (None: not a collection qa created)."""
    fields = {f["name"] for f in info.get("fields", [])}
    if not FIELDS <= fields:
        return None
    found = client.get(name, ids=[MARKER_ID], output_fields=["source", "born", "died"])
    if not found or int(found[0]["born"]) != -1 or int(found[0]["died"]) != -1:
        return None
    source = str(found[0]["source"])
    return source.removeprefix(f"{MARKER} ") if source.startswith(f"{MARKER} ") else None


def published(index_dir: Path, uri: str) -> tuple[int, str | None]:
    """The published generation's number in this store and its owner id ((0, None): none)."""
    from qa.store import read_manifest

    try:
        manifest = read_manifest(index_dir)
    except Exception:  # none, or damaged: nothing of it is trusted
        return 0, None
    own = manifest.extra.get("store")
    if isinstance(own, dict) and own.get("uri") == uri:
        return int(own.get("generation", 0)), str(own.get("owner"))
    return 0, None


def claim_collection(client: Any, spec: StoreURI, dim: int, owner: str, keywords: bool) -> bool:
    """Create the collection (marked as this index's), or check an existing one is; returns
    whether it has a BM25 index. StoreError for a collection qa did not create, or one
    another index owns: neither is ever changed."""
    name = spec.collection
    if client.has_collection(name):
        info = client.describe_collection(name)
        found = _owner_of(client, name, info)
        if found is None:
            raise StoreError(
                f"Milvus collection {name} ({spec.uri}) was not created by qa: qa will not "
                "write there. Pass another COLLECTION in --store; nothing in it was changed."
            )
        if found != owner:
            raise StoreError(
                f"Milvus collection {name} ({spec.uri}) belongs to another qa index: pass "
                "another COLLECTION in --store; nothing in it was changed."
            )
        fields = {f["name"] for f in info.get("fields", [])}
        return "sparse" in fields
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False, description=_description(owner))
    schema.add_field("pid", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("born", DataType.INT64)
    schema.add_field("died", DataType.INT64)
    schema.add_field("source", DataType.VARCHAR, max_length=SOURCE_LENGTH)
    schema.add_field("date", DataType.INT64)
    schema.add_field(
        "keys",
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=KEYS,
        max_length=KEY_LENGTH,
    )
    schema.add_field("states", DataType.VARCHAR, max_length=STATES_LENGTH)
    index = client.prepare_index_params()
    index.add_index(
        "vector",
        index_type="HNSW",
        metric_type="IP",
        params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION},
    )
    if keywords:
        schema.add_field("text", DataType.VARCHAR, max_length=65_535, enable_analyzer=True)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(name, schema=schema, index_params=index)
    marker = {
        "pid": MARKER_ID,
        "vector": [1.0] + [0.0] * (dim - 1),
        "born": -1,
        "died": -1,
        "source": f"{MARKER} {owner}",
        "date": 0,
        "keys": [],
        "states": "",
    }
    if keywords:
        marker["text"] = ""
    client.insert(name, [marker])
    return keywords


def write_milvus(
    folder: Path,
    manifest: Manifest,
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    states: Sequence[SentenceStates] | None,
    documents: dict[str, list[bytes]] | None,
) -> dict[str, Any]:
    """This generation's rows into the collection (see the module's doc) and its PASSAGE_IDS
    into folder; the manifest's store record, completed (keywords: whose BM25 finds the
    keyword candidates, the server's or qa's). Nothing a reader of the published generation
    sees changes."""
    info = dict(store_info(manifest))
    spec = parse_uri(str(info["uri"]))
    new, owner = int(info["generation"]), str(info["owner"])
    before, _ = published(folder.parent, spec.uri)
    client = connect(spec)
    try:
        version = str(client.get_server_version())
        keywords = claim_collection(
            client, spec, manifest.dim, owner, server_has_bm25(client, spec)
        )
        _write(
            client,
            spec,
            before,
            new,
            manifest,
            chunks,
            vectors,
            states,
            documents,
            folder,
            keywords,
        )
    except (StoreError, InputError):
        raise
    except Exception as exc:
        raise StoreError(
            f"Writing to Milvus ({spec.uri}) failed: {_reason(exc)}; the index is as it was."
        ) from None
    info.update(keywords="milvus" if keywords else "qa", server=version, ef=HNSW_EF)
    return info


def _write(
    client: Any,
    spec: StoreURI,
    before: int,
    new: int,
    manifest: Manifest,
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    states: Sequence[SentenceStates] | None,
    documents: dict[str, list[bytes]] | None,
    folder: Path,
    keywords: bool,
) -> None:
    name = spec.collection
    ids, docs = passage_ids(manifest.fingerprint, chunks, documents)
    np.save(folder / PASSAGE_IDS, ids, allow_pickle=False)
    strong = {"consistency_level": "Strong"}
    # What failed writers left, and rows no kept generation sees any more
    client.delete(name, filter=f"born > {before}")
    while revived := client.query(
        name,
        filter=f"died > {before} and died < {ALIVE}",
        output_fields=["*"],
        limit=1000,
        **strong,
    ):
        for row in revived:
            row["died"] = ALIVE
        _batches(client.upsert, name, revived)
    if before > 1:
        client.delete(name, filter=f"born >= 0 and died <= {before - 1}")
    alive: set[int] = set()
    if before:
        for batch in _iterate(client, name, visible(before), ["pid"]):
            alive.update(int(r["pid"]) for r in batch)
    wanted = {int(p): row for row, p in enumerate(ids.tolist())}
    removed = sorted(alive - wanted.keys())
    fresh = [row for p, row in wanted.items() if p not in alive]
    rows = []
    for row in fresh:
        chunk = chunks[row]
        raw = docs.get((chunk.source, chunk.doc_id), {})
        item: dict[str, Any] = {
            "pid": int(ids[row]),
            "vector": np.asarray(vectors[row], dtype=np.float32).tolist(),
            "born": new,
            "died": ALIVE,
            "source": chunk.source[:SOURCE_LENGTH],
            "date": date_key(raw.get("date")),
            "keys": document_entries(raw) if raw else [],
            "states": "" if states is None else encode_states(states[row]),
        }
        if keywords:
            item["text"] = _clip(chunk.embed_text(), TEXT_LENGTH)
        rows.append(item)
    # A passage back after its removal still has its dead row (kept for older readers):
    # replaced by upsert, never inserted beside it (rows of one id are deleted together)
    dead: set[int] = set()
    if before:
        for batch in _iterate(client, name, f"born >= 0 and died <= {before}", ["pid"]):
            dead.update(int(r["pid"]) for r in batch)
    _batches(client.insert, name, [r for r in rows if r["pid"] not in dead])
    _batches(client.upsert, name, [r for r in rows if r["pid"] in dead])
    for start in range(0, len(removed), GET_BATCH):
        part = client.get(name, ids=removed[start : start + GET_BATCH], output_fields=["*"])
        for row in part:
            row["died"] = new
            row.pop("sparse", None)  # a function's output is not written
        _batches(client.upsert, name, part)
    client.flush(name)
    _indexed(client, name)
    client.load_collection(name)
    if len(rows) >= INTERIM_ROWS:
        _served(client, name)
    # What readers will see, seen first at Strong consistency (which waits until the server
    # serves every write above): the count of this generation's new rows must be right.
    [counted] = client.query(name, filter=f"born == {new}", output_fields=["count(*)"], **strong)
    if int(counted["count(*)"]) != len(rows):
        raise StoreError(
            f"Milvus ({spec.uri}) holds {counted['count(*)']} of the {len(rows)} passages just "
            "written; the index is as it was: run `qa index` again."
        )
    log.info(
        "Milvus %s: %d passages inserted, %d marked removed", spec.uri, len(rows), len(removed)
    )


def _indexed(client: Any, name: str) -> None:
    """Until the vector index covers every flushed row (bounded by INDEX_WAIT). Not until
    pending_index_rows is 0: that also counts compaction's re-indexing of merged segments,
    which Milvus does in the background while the segments it merges serve (at 1M rows on 2
    cores, as long again as the first build)."""
    import time

    deadline = time.monotonic() + INDEX_WAIT
    while time.monotonic() < deadline:
        info = client.describe_index(name, index_name="vector") or {}
        if "indexed_rows" not in info or int(info["indexed_rows"]) >= int(info["total_rows"]):
            return
        time.sleep(0.5)
    log.warning("Milvus %s: its HNSW index is still being built", name)


def _served(client: Any, name: str) -> None:
    """Until the query nodes serve as many rows from sealed, indexed segments as are flushed
    (bounded by SERVE_WAIT; segments being compacted serve until their merge is indexed); a
    store that cannot say (Milvus Lite) is taken at its word."""
    import time

    deadline = time.monotonic() + SERVE_WAIT
    while time.monotonic() < deadline:
        try:
            flushed = sum(s.num_rows for s in client.list_persistent_segments(name))
            served = sum(s.num_rows for s in client.list_loaded_segments(name) if s.index_name)
        except Exception:
            return
        if served >= flushed:
            return
        time.sleep(1.0)
    log.warning("Milvus %s: some segments are still searched without their HNSW index", name)


def _clip(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", errors="ignore")


def _batches(call: Any, name: str, rows: list[dict[str, Any]]) -> None:
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        row.pop("sparse", None)
        batch.append(row)
        size += 4 * len(row.get("vector", ())) + len(row.get("states", "")) + 256
        size += len(row.get("text", ""))
        if size >= BATCH_BYTES:
            call(name, batch)
            batch, size = [], 0
    if batch:
        call(name, batch)


def _iterate(
    client: Any, name: str, where: str, fields: list[str]
) -> Iterable[list[dict[str, Any]]]:
    iterator = client.query_iterator(
        name, batch_size=10_000, filter=where, output_fields=fields, consistency_level="Strong"
    )
    try:
        while batch := iterator.next():
            yield batch
    finally:
        iterator.close()

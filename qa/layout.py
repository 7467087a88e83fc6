"""The index folder: what qa writes in it, how it knows a folder is its own, and how one
generation replaces another without a reader ever seeing a mix of two.

    DIR/qa-index.json   the marker: only qa writes it; a folder without it is never qa's
    DIR/CURRENT         one line, the name of the current generation (replaced atomically)
    DIR/g000007/        a generation: manifest.json and the files it lists, never changed
    DIR/g000006/        the one before, kept until the next build (a reader may be opening it)
    DIR/write.lock      held by the one writer (qa index, or an update before ask)
    DIR/tmp-*/          a writer's work in progress; the next writer removes stale ones
    DIR/serve.json      while `qa serve` runs: its URL and pid (qa ask finds it there)

qa writes nothing outside DIR. An index written by qa 0.1 (format 1: the files of one
generation straight in DIR, no marker) is still read, and is recognised as qa's by its
manifest; its next build turns it into this layout.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from qa.config import DEFAULT_INDEX
from qa.errors import IndexBusyError, IndexCorruptError, IndexMissingError, IndexWriteError

MARKER = "qa-index.json"
POINTER = "CURRENT"
LOCK = "write.lock"
MANIFEST = "manifest.json"
_GENERATION = re.compile(r"g(\d{6,})")
_STAGING = "tmp-"
# What a format-1 index (qa 0.1) kept in its folder: the only names its migration removes.
LEGACY_FILES = (
    "manifest.json",
    "chunks.jsonl",
    "vectors.faiss",
    "vectors.npy",
    "sentences.npy",
    "sentence_starts.npy",
    "tokens.npy",
    "token_starts.npy",
    "lexical.json",
    "lexical.data.npy",
    "lexical.indices.npy",
    "lexical.indptr.npy",
    "lexical.term_ids.npy",
    "lexical.term_offsets.npy",
    "encoder.onnx",
    "encoder.int8.onnx",
    "encoder.json",
    "tokenizer.json",
)
_LEGACY_KEYS = {"format_version", "qa_version", "model", "dim", "chunking", "fingerprint", "files"}


class Kind(Enum):
    MISSING = "missing"  # nothing there: qa may create it
    EMPTY = "empty"  # an empty folder: qa may use it
    QA = "qa"  # a qa index (marker present), whole or damaged
    LEGACY = "legacy"  # a format-1 qa index (its manifest says so)
    FOREIGN = "foreign"  # a folder with other things in it: never touched
    NOT_A_FOLDER = "not a folder"  # a file, a device, a broken link: never touched


def kind(path: Path) -> Kind:
    """What is at path, as far as the index goes; reads, never writes."""
    try:
        if not path.exists() and not path.is_symlink():
            return Kind.MISSING
        if not path.is_dir():
            return Kind.NOT_A_FOLDER
        if _marked(path):
            return Kind.QA
        if _is_legacy(path):
            return Kind.LEGACY
        return Kind.EMPTY if not any(path.iterdir()) else Kind.FOREIGN
    except OSError as exc:
        raise IndexWriteError(f"Cannot look into {path}: {exc.strerror or exc}.") from None


def _marked(path: Path) -> bool:
    """Whether path holds qa's marker: a qa-index.json naming the "qa_index" key (read as
    bytes, so a marker damaged around the key still counts)."""
    try:
        with (path / MARKER).open("rb") as f:
            return b'"qa_index"' in f.read(4096)
    except OSError:
        return False


def _is_legacy(path: Path) -> bool:
    try:
        raw = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return (
        isinstance(raw, dict)
        and _LEGACY_KEYS <= raw.keys()
        and raw.get("format_version") == 1
        and (path / "chunks.jsonl").is_file()
    )


def refuse_message(path: Path, found: Kind) -> str:
    what = "is a file, not a folder" if found is Kind.NOT_A_FOLDER else "holds other files"
    return (
        f"{path} {what} and is not a qa index (it has no {MARKER}): qa will not write there. "
        "Pass another --index (a new or empty folder); nothing in it was changed."
    )


def claim(path: Path) -> None:
    """Make path a qa index folder (created if missing, marked if empty); IndexWriteError if
    it is something else, leaving every byte of it as it was."""
    found = kind(path)
    if found in (Kind.FOREIGN, Kind.NOT_A_FOLDER):
        raise IndexWriteError(refuse_message(path, found))
    try:
        path.mkdir(parents=True, exist_ok=True)
        if found in (Kind.MISSING, Kind.EMPTY):  # a format-1 index is marked when published
            write_marker(path, {})
    except OSError as exc:
        raise IndexWriteError(
            f"Cannot write the index in {path}: {exc.strerror or exc}. "
            "Pass an --index in a folder you can write to."
        ) from None


def read_marker(path: Path) -> dict[str, Any]:
    """The marker's contents ({} when it is unreadable: it still marks the folder as qa's)."""
    try:
        raw = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return raw if isinstance(raw, dict) else {}


def write_marker(path: Path, about: dict[str, Any]) -> None:
    """The marker, with what a damaged manifest can no longer say (where the corpus is)."""
    body = {"qa_index": 2, "about": "written by qa; `qa status` describes this index", **about}
    _atomic_write(path / MARKER, json.dumps(body, indent=2, ensure_ascii=False) + "\n")


def _atomic_write(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    _sync_folder(target.parent)


def _sync_folder(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Generation:
    folder: Path  # where its files are (DIR/gNNNNNN, or DIR itself for a format-1 index)
    name: str  # "g000007", or "" for a format-1 index


def current(path: Path) -> Generation:
    """The generation readers should open now; IndexMissingError when there is none."""
    found = kind(path)
    if found is Kind.LEGACY:
        return Generation(path, "")
    if found is Kind.QA:
        try:
            name = (path / POINTER).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            if generations(path):
                raise IndexCorruptError(
                    f"Index {path} is damaged ({POINTER} is missing): run "
                    f"`qa index --index {path}` to repair it."
                ) from None
            raise IndexMissingError(_missing(path, building=True)) from None
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(
                f"Index {path}: {POINTER} is unreadable ({exc}): run `qa index --index {path}`."
            ) from None
        if not _GENERATION.fullmatch(name) or not (path / name).is_dir():
            raise IndexCorruptError(
                f"Index {path}: {POINTER} names {name[:40]!r}, which is not one of its "
                f"generations: run `qa index --index {path}` to rebuild it."
            )
        return Generation(path / name, name)
    if found in (Kind.FOREIGN, Kind.NOT_A_FOLDER):
        raise IndexMissingError(f"No index in {path}: {refuse_message(path, found)}")
    raise IndexMissingError(_missing(path))


def _missing(path: Path, building: bool = False) -> str:
    if building:
        return f"No index in {path} yet (its first build did not finish): run `qa index`."
    if path == DEFAULT_INDEX:
        return f"No index in {path}: run `qa index` first."
    return f"No index in {path}: build it with `qa index CORPUS --index {path}`."


def generations(path: Path) -> list[str]:
    """Names of the generation folders, oldest first."""
    names = [p.name for p in _listing(path) if _GENERATION.fullmatch(p.name) and p.is_dir()]
    return sorted(names, key=lambda n: int(n[1:]))


def next_number(path: Path) -> int:
    """The number the next published generation will have (the writer holds the lock)."""
    names = generations(path)
    return int(names[-1][1:]) + 1 if names else 1


def staging(path: Path) -> Path:
    """A fresh folder inside the index for a writer's work (a generation in the making)."""
    folder = path / f"{_STAGING}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        folder.mkdir()
    except OSError as exc:
        raise IndexWriteError(f"Cannot write the index in {path}: {exc.strerror or exc}.") from None
    return folder


def publish(path: Path, staged: Path, about: dict[str, Any]) -> Generation:
    """Make the staged folder the current generation, atomically; then drop what no reader
    can still be opening (generations before the previous one, a format-1 index's files)."""
    names = generations(path)
    name = f"g{next_number(path):06d}"
    was_legacy = kind(path) is Kind.LEGACY
    previous = _read_pointer(path)
    for file in staged.iterdir():
        if file.is_file():
            _sync_file(file)
    os.replace(staged, path / name)
    # The one step that switches readers over; then the marker, so that a format-1 index
    # stays readable as one until CURRENT exists (kind() reads no marker as "format 1").
    _atomic_write(path / POINTER, name + "\n")
    write_marker(path, about)
    for old in names:  # all but the new one and the one readers were opening
        if old != previous:
            shutil.rmtree(path / old, ignore_errors=True)
    if was_legacy:
        for legacy in LEGACY_FILES:
            (path / legacy).unlink(missing_ok=True)
    return Generation(path / name, name)


def _sync_file(file: Path) -> None:
    with file.open("rb") as f:
        os.fsync(f.fileno())


def clean_stale(path: Path) -> list[str]:
    """Remove what killed writers left (the caller holds the lock, so none is running):
    staging folders inside the index, and the `.NAME.tmp-PID`/`.NAME.encoder-PID`/`.NAME.old`
    folders qa 0.1 wrote beside it. Returns what was removed."""
    removed = []
    inside = [p for p in _listing(path) if p.name.startswith(_STAGING) and p.is_dir()]
    pointer = _read_pointer(path)
    for name in generations(path)[:-2]:  # an interrupted prune
        if name != pointer:
            inside.append(path / name)
    legacy = re.compile(rf"\.{re.escape(path.name)}\.(tmp|encoder)-\d+")
    beside = [p for p in _listing(path.parent) if legacy.fullmatch(p.name) and p.is_dir()]
    for folder in inside + [p for p in beside if _only_index_files(p)]:
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    half_written = re.compile(rf"\.({re.escape(POINTER)}|{re.escape(MARKER)})\.\d+\.tmp")
    for file in _listing(path):
        if half_written.fullmatch(file.name):
            file.unlink(missing_ok=True)
            removed.append(file.name)
    return removed


def _listing(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []


def _read_pointer(path: Path) -> str | None:
    try:
        return (path / POINTER).read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return None


def _only_index_files(folder: Path) -> bool:
    """A folder holding nothing but the files a qa 0.1 index or export had."""
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return False
    return bool(names) and all(n in LEGACY_FILES or n.endswith(".tmp") for n in names)


@contextmanager
def writer_lock(
    path: Path, *, wait: bool = True, notify: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the index's write lock: one writer at a time (readers never need it)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path / LOCK))
    busy = f"another qa index is updating {path}; " + (
        "waiting for it to finish…" if wait else "try again when it has finished."
    )
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                raise IndexBusyError(busy) from None
            if notify:
                notify(busy)
            lock.acquire()
    except OSError as exc:
        raise IndexWriteError(f"Cannot lock {path / LOCK}: {exc.strerror or exc}.") from None
    try:
        yield
    finally:
        lock.release()

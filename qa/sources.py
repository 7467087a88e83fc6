"""Which files of a corpus folder are articles, and reading each one with bounded memory.

A folder is walked without following links out of it: hidden files and folders, the index
itself (and any other qa index), and what `.qaignore` (gitignore syntax, at the corpus root)
or `--exclude` name are passed over. A link is followed while it stays inside the corpus;
one that leads outside is skipped with a warning unless `follow_symlinks` is set. Whatever
cannot be listed or read is reported by name and reason, and the rest goes on.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.config import Reading
from qa.errors import CorpusError
from qa.readers import BINARY_SUFFIXES, SUFFIXES, suffix_of

IGNORE_FILE = ".qaignore"
SNIFF = 8192  # a NUL byte in the first SNIFF bytes: a binary file


@dataclass(frozen=True)
class Source:
    name: str  # the citation's file: path relative to the corpus root, forward slashes
    path: Path


@dataclass
class Listing:
    sources: list[Source]
    skipped: list[str] = field(default_factory=list)  # what could not be listed, and why


def list_sources(root: Path, reading: Reading, skip: Iterable[Path] = ()) -> Listing:
    """The corpus's article files, sorted by name; CorpusError if root is missing or a
    file that is not a JSONL collection. `skip`: folders never to enter (the index)."""
    if not root.exists():
        raise CorpusError(f"Corpus {root} does not exist: pass a folder of .txt/.md/.jsonl files.")
    if root.is_file():
        if root.suffix.lower() == ".jsonl":
            return Listing([Source(root.name, root)])
        raise CorpusError(
            f"Corpus {root} is a file: pass the folder that holds it (or a .jsonl collection)."
        )
    if (root / "qrels").is_dir() and (root / "corpus.jsonl").is_file():
        return Listing([Source("corpus.jsonl", root / "corpus.jsonl")])
    walk = _Walk(root, reading, skip)
    walk.folder(root, "")
    walk.found.sort(key=lambda s: s.name)
    return Listing(walk.found, walk.skipped)


class _Walk:
    def __init__(self, root: Path, reading: Reading, skip: Iterable[Path]) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.reading = reading
        self.skip = {os.path.realpath(p) for p in skip}
        self.spec = _ignore_spec(root, reading.exclude)
        self.found: list[Source] = []
        self.skipped: list[str] = []
        self.seen = {self.real_root}  # real paths of folders entered (link loops)

    def folder(self, path: Path, rel: str) -> None:
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            self.skipped.append(
                f"{_shown(rel or '.')}/: folder cannot be read ({_why(exc)}), skipped"
            )
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = f"{rel}/{entry.name}" if rel else entry.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                self.skipped.append(f"{_shown(name)}: file name is not valid UTF-8, skipped")
                continue
            try:
                self.entry(entry, name)
            except OSError as exc:
                self.skipped.append(f"{_shown(name)}: cannot be read ({_why(exc)}), skipped")

    def entry(self, entry: os.DirEntry[str], name: str) -> None:
        path = Path(entry.path)
        if entry.is_symlink():
            target = os.path.realpath(path)
            inside = _within(target, self.real_root)
            if not os.path.exists(target):
                self.skipped.append(f"{_shown(name)}: broken link, skipped")
                return
            if not inside and not self.reading.follow_symlinks:
                if os.path.isdir(target) or path.suffix.lower() in SUFFIXES:
                    self.skipped.append(
                        f"{_shown(name)}: a link to {_shown(target)}, outside the corpus, "
                        "skipped (--follow-symlinks reads it)"
                    )
                return
            mode = os.stat(target).st_mode
        else:
            target = os.path.realpath(path) if entry.is_dir(follow_symlinks=False) else entry.path
            mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            if target in self.skip or target in self.seen or (path / "qa-index.json").is_file():
                return  # the index, a folder already read (a link loop), another qa index
            if self.spec is not None and self.spec.match_file(name + "/"):
                return
            self.seen.add(target)
            self.folder(path, name)
        elif stat.S_ISREG(mode) and (self.spec is None or not self.spec.match_file(name)):
            if path.suffix.lower() in SUFFIXES:
                self.found.append(Source(name, path))
            else:
                kind = path.suffix.lower() or "no suffix"
                self.skipped.append(f"{_shown(name)}: not an article format ({kind}), skipped")


def _ignore_spec(root: Path, exclude: Sequence[str]) -> Any:
    lines = list(exclude)
    try:
        lines = (root / IGNORE_FILE).read_text(encoding="utf-8-sig").splitlines() + lines
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"Cannot read {root / IGNORE_FILE}: {exc}.") from None
    if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
        return None
    import pathspec

    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, TypeError) as exc:  # GitIgnorePatternError is a ValueError
        raise CorpusError(
            f"{exc} (from --exclude or {root / IGNORE_FILE}): fix or drop that pattern."
        ) from None


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _shown(name: str) -> str:
    """A name fit for a message: undecodable bytes and control characters escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)


@dataclass(frozen=True)
class Content:
    digest: str  # what change detection compares: sha256 of the bytes, or why they are not read
    data: bytes | None  # None when the file is skipped
    skipped: str | None = None


def read_source(source: Source, reading: Reading) -> Content:
    """A source's bytes and digest, or why it is skipped: too large (never read), binary (its
    first bytes hold a NUL, in a text format), or unreadable."""
    try:
        size = source.path.stat().st_size
        limit = reading.max_file_size
        if limit and size > limit:
            why = (
                f"{_shown(source.name)}: {_size(size)}, larger than the {_size(limit)} limit, "
                "skipped (--max-file-size raises it)"
            )
            return Content(f"size:{size}", None, why)
        with source.path.open("rb") as f:
            data = f.read(limit + 1 if limit else -1)
    except OSError as exc:
        return Content("", None, f"{_shown(source.name)}: cannot be read ({_why(exc)}), skipped")
    digest = hashlib.sha256(data).hexdigest()
    if limit and len(data) > limit:  # it grew while read
        return Content(digest, None, f"{_shown(source.name)}: larger than the limit, skipped")
    if b"\x00" in data[:SNIFF] and suffix_of(source.name) not in BINARY_SUFFIXES:
        return Content(digest, None, f"{_shown(source.name)}: binary file, skipped")
    return Content(digest, data)


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"

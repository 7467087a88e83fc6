"""Settings: each value comes from a flag, else a QA_* environment variable, else the default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.errors import InputError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Passage vectors from the int8 copy of the ONNX encoder: 1.5x the fp32 encoder's speed, SciFact
# nDCG@10 -0.0013 (bench/speed.md).
DEFAULT_PRECISION = "int8"
DEFAULT_INDEX = Path("index")
# Larger files are skipped with a warning (--max-file-size): no article is this long, and a
# stray dump or log would take hours to embed. SciFact's whole corpus.jsonl is 7.8 MB.
DEFAULT_MAX_FILE_SIZE = 64 << 20


@dataclass(frozen=True)
class Reading:
    """How a corpus folder is read (qa.sources); kept in the manifest, so that every update
    reads it the same way."""

    exclude: tuple[str, ...] = ()  # gitignore-style patterns, besides the root's .qaignore
    follow_symlinks: bool = False  # follow links that lead outside the corpus too
    max_file_size: int = DEFAULT_MAX_FILE_SIZE  # bytes; 0 for no limit

    def as_json(self) -> dict[str, Any]:
        return {
            "exclude": list(self.exclude),
            "follow_symlinks": self.follow_symlinks,
            "max_file_size": self.max_file_size,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Reading:
        return cls(
            exclude=tuple(str(p) for p in raw.get("exclude", ())),
            follow_symlinks=bool(raw.get("follow_symlinks", False)),
            max_file_size=int(raw.get("max_file_size", DEFAULT_MAX_FILE_SIZE)),
        )

    def updated(
        self,
        exclude: tuple[str, ...] | None,
        follow_symlinks: bool | None,
        max_file_size: int | None,
    ) -> Reading:
        """This reading with the options a command gave changed, the others kept."""
        return Reading(
            self.exclude if exclude is None else exclude,
            self.follow_symlinks if follow_symlinks is None else follow_symlinks,
            self.max_file_size if max_file_size is None else max_file_size,
        )


@dataclass(frozen=True)
class Settings:
    # QA_CORPUS; None means "the index's corpus, or corpus/ for a new index"
    corpus: Path | None = None
    index: Path = DEFAULT_INDEX  # QA_INDEX
    # QA_MODEL; None means "the index's model, or DEFAULT_MODEL for a new index"
    model: str | None = None
    batch_size: int = 32  # QA_BATCH_SIZE
    # QA_PRECISION (int8|fp32) of passage vectors; None: the index's, or DEFAULT_PRECISION
    precision: str | None = None
    # whether --index or QA_INDEX named the index: only the default one is built by `ask`
    index_given: bool = False
    # how to read the corpus folder: None keeps the index's (or Reading() for a new index)
    exclude: tuple[str, ...] | None = None
    follow_symlinks: bool | None = None
    max_file_size: int | None = None

    @classmethod
    def resolve(
        cls,
        *,
        corpus: Path | None = None,
        index: Path | None = None,
        model: str | None = None,
        batch_size: int | None = None,
        precision: str | None = None,
        exclude: tuple[str, ...] | None = None,
        follow_symlinks: bool | None = None,
        max_file_size: int | None = None,
    ) -> Settings:
        env = os.environ
        if index is not None and not str(index).strip():
            raise InputError("--index is empty: name the index folder, e.g. --index index/.")
        if corpus is not None and not str(corpus).strip():
            raise InputError("The corpus is empty: name a folder of articles, e.g. corpus/.")
        named = index or (Path(env["QA_INDEX"]) if env.get("QA_INDEX", "").strip() else None)
        return cls(
            corpus=corpus or (Path(env["QA_CORPUS"]) if env.get("QA_CORPUS", "").strip() else None),
            index=named or DEFAULT_INDEX,
            model=model or env.get("QA_MODEL") or None,
            batch_size=batch_size or _positive("QA_BATCH_SIZE", env.get("QA_BATCH_SIZE"), 32),
            precision=precision or env.get("QA_PRECISION") or None,
            index_given=named is not None,
            exclude=exclude,
            follow_symlinks=follow_symlinks,
            max_file_size=max_file_size,
        )


def _positive(name: str, value: str | None, default: int) -> int:
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise InputError(f"{name} must be a whole number of at least 1 (it is {value!r}).")
    return number

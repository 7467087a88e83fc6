"""Settings: each value comes from a flag, else a QA_* environment variable, else the default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
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


MODES = ("hybrid", "dense", "lexical")  # how passages are found (qa.search)
FORMATS = ("text", "json", "jsonl", "markdown")  # how answers are printed (qa.cli)
PRECISIONS = ("int8", "fp32")  # of passage vectors (qa.runtime)
CONFIG_FILE = "qa.toml"


@dataclass(frozen=True)
class Settings:
    """Where the index and corpus are and how to ask. Each value comes from the first of: a
    flag, a QA_* environment variable, the chosen collection, the project's qa.toml (found in
    the current folder or a parent, as git finds .git), the user's config.toml
    ($XDG_CONFIG_HOME/qa/config.toml), the built-in default; `origins` says which."""

    # QA_CORPUS; None means "the index's corpus, or corpus/ for a new index"
    corpus: Path | None = None
    index: Path = DEFAULT_INDEX  # QA_INDEX
    # QA_MODEL; None means "the index's model, or DEFAULT_MODEL for a new index"
    model: str | None = None
    batch_size: int = 32  # QA_BATCH_SIZE
    # QA_PRECISION (int8|fp32) of passage vectors; None: the index's, or DEFAULT_PRECISION
    precision: str | None = None
    # whether a flag or QA_INDEX named the index: only a default or configured one is built
    # by `ask`, so that a typo never answers from another corpus
    index_given: bool = False
    # how to read the corpus folder: None keeps the index's (or Reading() for a new index)
    exclude: tuple[str, ...] | None = None
    follow_symlinks: bool | None = None
    max_file_size: int | None = None
    # QA_STORE: where `qa index` keeps passage vectors: "faiss" (files in the index) or a
    # Milvus URI (qa.milvus_store); None: the index's, or "faiss" for a new index
    store: str | None = None
    k: int = 5  # QA_K: passages per question
    mode: str = "hybrid"  # QA_MODE
    format: str = "text"  # QA_FORMAT
    collection: str | None = None  # QA_COLLECTION: a [collections.NAME] table of a config file
    # QA_RAY: the Ray cluster `qa index` embeds passages on (host:port, ray://host:port, auto,
    # local); None embeds here. Never used by the update before an ask (qa.cluster)
    ray: str | None = None
    origins: dict[str, str] = field(default_factory=dict, compare=False)  # value -> its source

    @classmethod
    def resolve(cls, **given: Any) -> Settings:
        """Settings from the flags given (None: not given), the environment and config files."""
        return _resolve(given, os.environ, Path.cwd())


def _resolve(given: dict[str, Any], env: Mapping[str, str], cwd: Path) -> Settings:
    unknown = set(given) - set(_KEYS) - {"collection"}
    if unknown:
        raise TypeError(f"unknown settings: {sorted(unknown)}")
    layers: list[tuple[str, dict[str, Any]]] = [("flag", _flags(given))]
    layers.append(("environment", _environment(env)))
    user_path = _user_config(env)
    project_path = _find_project(cwd)
    files = [(p, _read_file(p)) for p in (project_path, user_path) if p is not None]
    collection = _flag_or_env(given.get("collection"), env.get("QA_COLLECTION"))
    defaults: dict[str, Any] = {}
    if collection is not None:
        for path, raw in files:
            table = raw.get("collections", {}).get(collection)
            if table is not None:
                own = _file_values(table, path)
                # its own index unless it names one: never the file's top-level index
                own.setdefault("index", _collection_index(path, collection, path == user_path, env))
                layers.append((f"collection {collection} in {path}", own))
                break
        else:
            known = sorted({n for _, raw in files for n in raw.get("collections", {})})
            raise InputError(
                f"No collection {collection!r} in "
                + (" or ".join(str(p) for p, _ in files) or f"a {CONFIG_FILE}")
                + (f": known ones are {', '.join(known)}." if known else ".")
                + " Add a [collections.NAME] table with a corpus."
            )
    for path, raw in files:
        layers.append((str(path), _file_values(raw, path)))
    if project_path is not None and "index" not in defaults:
        defaults["index"] = project_path.parent / DEFAULT_INDEX
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name in _KEYS:
        for origin, layer in layers:
            if layer.get(name) is not None:
                values[name], origins[name] = layer[name], origin
                break
        else:
            if name in defaults:
                values[name], origins[name] = defaults[name], "default"
    index_given = origins.get("index") in ("flag", "environment")
    return Settings(**values, index_given=index_given, collection=collection, origins=origins)


def _flag_or_env(flag: str | None, env: str | None) -> str | None:
    for value in (flag, env):
        if value is not None and value.strip():
            return value.strip()
    return None


def _flags(given: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in given.items():
        if name == "collection" or value is None:
            continue
        if name in ("corpus", "index") and not str(value).strip():
            raise InputError(f"--{name} is empty: name a folder, e.g. --{name} {name}/.")
        out[name] = Path(value) if name in ("corpus", "index") else value
    return out


# setting -> (environment variable or None, parser of a string or file value)
def _path(value: Any) -> Path:
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ValueError("a folder name")
    return Path(value).expanduser()


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a non-empty string")
    return value


def _positive(value: Any) -> int:
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None or number < 1:
        raise ValueError("a whole number of at least 1")
    return number


def _choice(choices: tuple[str, ...]) -> Any:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return str(value)

    return parse


def _store(value: Any) -> str:
    text = _text(value).strip()
    if text != "faiss" and not text.startswith(("milvus://", "milvus-lite:")):
        raise ValueError("faiss, milvus://HOST:PORT/COLLECTION or milvus-lite:PATH.db")
    return text


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def _patterns(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("a list of gitignore-style patterns")
    return tuple(value)


def _file_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        return parse_size(value)
    raise ValueError("a size such as 64M, 2G or 0")


_KEYS: dict[str, tuple[str | None, Any]] = {
    "corpus": ("QA_CORPUS", _path),
    "index": ("QA_INDEX", _path),
    "model": ("QA_MODEL", _text),
    "batch_size": ("QA_BATCH_SIZE", _positive),
    "precision": ("QA_PRECISION", _choice(PRECISIONS)),
    "store": ("QA_STORE", _store),
    "exclude": (None, _patterns),
    "follow_symlinks": (None, _boolean),
    "max_file_size": (None, _file_size),
    "k": ("QA_K", _positive),
    "mode": ("QA_MODE", _choice(MODES)),
    "format": ("QA_FORMAT", _choice(FORMATS)),
    "ray": ("QA_RAY", _text),
}


def _environment(env: Mapping[str, str]) -> dict[str, Any]:
    out = {}
    for name, (variable, parse) in _KEYS.items():
        raw = env.get(variable) if variable else None
        if raw is None or not raw.strip():
            continue  # an empty variable is an unset one
        try:
            out[name] = parse(raw)
        except ValueError as exc:
            raise InputError(f"{variable} must be {exc} (it is {raw!r}).") from None
    return out


def _user_config(env: Mapping[str, str]) -> Path | None:
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    path = Path(base) / "qa" / "config.toml"
    return path if path.is_file() else None


def _find_project(cwd: Path) -> Path | None:
    for folder in (cwd, *cwd.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def _collection_index(path: Path, name: str, user: bool, env: Mapping[str, str]) -> Path:
    """Where a collection's index goes when its table names none: beside a project's qa.toml
    (.qa/NAME, hidden, so a corpus beside it never reads it), or in the user's data folder."""
    if user:
        base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "qa" / name
    return path.parent / ".qa" / name


def _read_file(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read {path}: {exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML ({exc}).") from None
    collections = raw.get("collections", {})
    if not isinstance(collections, dict) or not all(
        isinstance(t, dict) for t in collections.values()
    ):
        raise InputError(f"{path}: [collections.NAME] must be tables, e.g. [collections.news].")
    return raw


def _file_values(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    out = {}
    for name, value in raw.items():
        if name == "collections":
            continue
        if name not in _KEYS:
            known = ", ".join(_KEYS)
            raise InputError(f"{path}: unknown setting {name!r} (known: {known}).")
        try:
            parsed = _KEYS[name][1](value)
        except ValueError as exc:
            raise InputError(f"{path}: {name} must be {exc} (it is {value!r}).") from None
        if name in ("corpus", "index"):
            parsed = path.parent / parsed  # relative to the file, wherever qa runs from
        out[name] = parsed
    return out


def parse_size(text: str) -> int:
    """'64M', '2G', '500k', '1000' (bytes) or '0' (no limit) -> bytes."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(value[-1:], 1)
    number = value[:-1] if scale > 1 else value
    try:
        size = float(number)
    except ValueError:
        size = -1.0
    if not 0 <= size * scale < 1 << 62:
        raise ValueError(f"{text!r} is not a size: use e.g. 64M, 2G or 0 for no limit")
    return int(size * scale)

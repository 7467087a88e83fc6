"""Fault injection: hostile input, a wrong --index, damaged index files, a held lock, readers
during updates. Written against the index contract of issue 9, not against any one version.

Every CLI run here must end without a traceback, with exit code 0, 1 or 2, and leave every file
of the user's (everything outside the index directory: bytes, mode, link target) as it was.

The index layout these tests know: DIR/qa-index.json (qa's marker), DIR/CURRENT (the name of the
current generation), DIR/g000001/... (a generation), DIR/write.lock, DIR/tmp-* (a writer's work).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from qa import embed
from qa.cli import app

from .conftest import ARTICLES, REPO, FakeEmbedder

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
QA_VARS = ("QA_CORPUS", "QA_INDEX", "QA_MODEL", "QA_BATCH_SIZE", "QA_PRECISION")
QUESTION = "How deep is Lake Baikal in Siberia?"
ROOT = os.geteuid() == 0
# What a hostile file or question may try to send to a terminal: a window title (OSC), clear
# screen, cursor home, a bell, a C1 CSI. rich never writes any of these for qa's own styling.
PAYLOAD = "\x1b]0;PWNED\x07\x1b[2J\x1b[H\x9b2J"
RAW_CONTROLS = ("\x1b]0;", "\x1b[2J", "\x1b[H", "\x07", "\x9b")


# --- a fake model that tokenises like a real one ---------------------------------------------

_PIECES = re.compile(r"\w+|[^\w\s]")


def _tokenizer_input(text: str) -> str:
    """Refuse a lone surrogate as the real (Rust) tokenizer does, with the same TypeError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]") from None
    return text


class TokenFake(FakeEmbedder):
    """FakeEmbedder whose token counts look like WordPiece's (a piece per 6 characters of a
    word, one per punctuation mark), so a 2,000-character URL or a line of digits really is
    longer than a passage and must be split at token boundaries; and which, like the real
    tokenizer, raises TypeError on text holding a lone surrogate."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [
            2 + sum(-(-len(p) // 6) for p in _PIECES.findall(_tokenizer_input(t))) for t in texts
        ]

    def embed(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        return super().embed([_tokenizer_input(t) for t in texts], progress)


def load_token_fake(name: str, batch_size: int = 32) -> FakeEmbedder:
    return TokenFake(name)


# --- helpers ---------------------------------------------------------------------------------


def current_generation(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text().strip()


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run qa in-process; fail on a traceback or an exit code outside {0, 1, 2}."""
    result = runner.invoke(app, list(args), env=env)
    shown = f"qa {' '.join(map(ascii, args))} -> {result.exit_code}\n{result.output[-3000:]}"
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"raised {exc!r}: {shown}"
    assert result.exit_code in (0, 1, 2), shown
    assert "Traceback" not in result.output, shown
    if result.exit_code == 1:
        assert "error:" in result.stderr, f"exit 1 without an `error:` line: {shown}"
    return result


def _digest(name: bytes, dirfd: int) -> str:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dirfd)
    except OSError as exc:
        return f"unreadable: {exc.errno}"
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def snapshot(root: Path, *owned: Path) -> dict[bytes, tuple[object, ...]]:
    """Every entry under root except the folders qa owns (owned): kind, mode, and content hash
    or link target. Walks by directory descriptors, so paths past PATH_MAX are seen too."""
    top = os.fsencode(os.path.abspath(root))
    skip = {os.fsencode(os.path.abspath(p)) for p in owned}
    seen: dict[bytes, tuple[object, ...]] = {b".": ("dir", os.lstat(top).st_mode)}
    for dirpath, dirnames, filenames, dirfd in os.fwalk(top, follow_symlinks=False):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            if path in skip:
                continue
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            rel = os.path.relpath(path, top)
            if stat.S_ISLNK(st.st_mode):
                seen[rel] = ("link", st.st_mode, os.readlink(name, dir_fd=dirfd))
            elif stat.S_ISREG(st.st_mode):
                seen[rel] = ("file", st.st_mode, _digest(name, dirfd))
            else:
                seen[rel] = ("other", st.st_mode)
    return seen


def assert_unchanged(
    before: dict[bytes, tuple[object, ...]], after: dict[bytes, tuple[object, ...]]
):
    lost = sorted(set(before) - set(after))
    added = sorted(set(after) - set(before))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (lost or added or changed), (
        f"user files touched: lost {lost[:10]}, added outside the index {added[:10]}, "
        f"changed {changed[:10]}"
    )


def assert_no_raw_controls(*texts: str) -> None:
    for text in texts:
        for seq in RAW_CONTROLS:
            assert seq not in text, f"{seq!r} reached the terminal raw: {text[-2000:]!r}"


def write(path: Path | bytes, data: bytes | str) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    name = path if isinstance(path, bytes) else os.fsencode(path)
    os.makedirs(os.path.dirname(name), exist_ok=True)
    with open(name, "wb") as f:
        f.write(raw)


def write_corpus(home: Path) -> None:
    for name, text in ARTICLES.items():
        write(home / "corpus" / name, text)


def results_of(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout)["results"])


@dataclass(frozen=True)
class Template:
    home: Path  # corpus/ and index/ built from it
    answer: str  # `ask --json --no-update QUESTION` on it


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    home = tmp_path_factory.mktemp("template") / "home"
    write_corpus(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(embed, "load_embedder", load_token_fake)
        mp.chdir(home)
        for name in QA_VARS:
            mp.delenv(name, raising=False)
        built = runner.invoke(app, ["index"])
        assert built.exit_code == 0, built.output
        asked = runner.invoke(app, ["ask", "--json", "--no-update", QUESTION])
        assert asked.exit_code == 0, asked.output
    return Template(home, asked.stdout)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed, "load_embedder", load_token_fake)
    for name in QA_VARS:
        monkeypatch.delenv(name, raising=False)


def make_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: Template | None) -> Path:
    """tmp_path/home holding corpus/ (and index/, from the template), as the working folder."""
    home = tmp_path / "home"
    if template is not None:
        shutil.copytree(template.home, home, symlinks=True)
    else:
        write_corpus(home)
    monkeypatch.chdir(home)
    return home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fakes: None) -> Path:
    return make_home(tmp_path, monkeypatch, None)


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fakes: None, template: Template) -> Path:
    return make_home(tmp_path, monkeypatch, template)


# --- a. the bad-input matrix ------------------------------------------------------------------

Setup = Callable[[Path], None]
Runs = list[tuple[tuple[str, ...], Result]]  # each command's arguments and result


@dataclass(frozen=True)
class Case:
    id: str
    setup: Setup
    commands: tuple[tuple[str, ...], ...]
    env: tuple[tuple[str, str], ...] = ()
    owned: tuple[str, ...] = ("index",)  # folders (relative to home) that qa may write in
    expect: tuple[frozenset[int] | None, ...] = ()  # exit codes wanted, per command
    prebuilt: bool = True  # start from the template's index
    tty: bool = False  # stdout/stderr are "terminals": nothing raw may reach them
    check: Callable[[Path, Runs], None] | None = None
    fifo: str | None = None  # a FIFO qa must not block on (unblocked after FIFO_PATIENCE s)


OK = frozenset({0})
USAGE = frozenset({2})
EXPECTED = frozenset({1})
ANY = None
FIFO_PATIENCE = 5.0

GOOD = (
    "# Notes on marmalade\n\nMarmalade is a fruit preserve made from the juice and peel of "
    "citrus fruits boiled with sugar and water.\n"
)
GOOD_B = GOOD.encode()
BOM = b"\xef\xbb\xbf"
URL = "https://example.com/" + "/".join(f"seg{i:04d}x" for i in range(221))
assert len(URL) >= 2000


def _random(n: int, seed: int, low: int = 0) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(low, 256) for _ in range(n))


CONTENTS: dict[str, bytes] = {
    "empty": b"",
    "whitespace-only": b" \t \n\n \t\n",
    "newlines-only": b"\n" * 5000,
    "bom-only": BOM,
    "bom-text": BOM + GOOD_B,
    "double-bom": BOM + BOM + GOOD_B,
    "utf16-bom": GOOD.encode("utf-16"),
    "utf32": GOOD.encode("utf-32"),
    "latin1": "Caf\xe9 cr\xe8me br\xfbl\xe9e is a dessert people order after dinner.\n".encode(
        "latin-1"
    ),
    "invalid-utf8-late": GOOD_B + b"\xff\xfe\xfd" + GOOD_B,
    "overlong-utf8": b"\xc0\xaf\xe0\x80\xaf overlong encodings of a slash, then some words here.\n",
    "cesu-surrogate": b"\xed\xa0\x80\xed\xb0\x80 a surrogate pair encoded as two UTF-8 triples.\n",
    "truncated-multibyte": GOOD_B + b"\xe2\x82",
    "nul-start": b"\x00" * 64 + GOOD_B,
    "nul-middle": GOOD_B + b"\x00" + GOOD_B,
    "nul-late": b"filler words go here " * 1000 + b"\x00" + GOOD_B,
    "binary-random": _random(4096, 1),
    "binary-no-nul": _random(4096, 2, low=1),
    "pdf-like": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + _random(2048, 3),
    "png-like": b"\x89PNG\r\n\x1a\n" + _random(2048, 4),
    "gzip": gzip.compress(GOOD_B * 20, mtime=0),
    "cr-only": GOOD_B.replace(b"\n", b"\r"),
    "crlf": GOOD_B.replace(b"\n", b"\r\n"),
    "mixed-eol": b"line one of words\r\nline two\rline three\n\n\r\rmore text here with words\n",
    "cr-runs": b"\r" * 5000,
    "url-2000": f"See {URL} for the details of the marmalade recipe.\n".encode(),
    "url-only": URL.encode(),
    "url-paragraphs": f"Links: {URL}\n\n".encode() * 5,
    "digits-table": b"\n".join(b"0123456789" * 12 for _ in range(60)),
    "digits-line": b"0123456789" * 500,
    "punctuation-runs": b"!?.,;:-" * 600,
    "dots": b"." * 5000,
    "sentence-ends": b"A. " * 3000,
    "rules": b"\n".join([b"-" * 80, b"=" * 80, b"*" * 80] * 50),
    "long-word": b"x" * 20000,
    "one-long-line": b" ".join(b"word%d" % i for i in range(15000)),
    "many-paragraphs": b"\n\n".join(
        b"Paragraph %d holds a handful of ordinary words to index here." % i for i in range(1500)
    ),
    "many-fragments": b"\n\n".join(b"w%d" % i for i in range(3000)),
    "ansi-escapes": (
        f"# {PAYLOAD}Evil title\n\nThe {PAYLOAD} passage has enough words to be indexed as one "
        "about Lake Baikal in Siberia.\n"
    ).encode(),
    "control-chars": bytes(range(1, 9))
    + bytes(range(14, 32))
    + b" control characters and then enough words to make a passage.\n",
    "c1-controls": "\x7f\x85\x9b2J\x9d0;x\x9c text with some ordinary words in it now.\n".encode(),
    "bidi-override": "\u202eevil\u202c \u2066isolate\u2069 text with words here.\n".encode(),
    "zero-width": ("\u200b\ufeff\u200d" * 2000).encode(),
    "combining-marks": (("e" + "\u0301" * 50 + " ") * 200).encode(),
    "emoji": ("\U0001f986\U0001f9ea " * 2000).encode(),
    "noncharacters": "\ue000\uffff\U0010ffff\ufffe words after noncharacters here.\n".encode(),
    "front-matter-only": b"---\ntitle: Only front matter\n---\n",
    "front-matter-unclosed": b"---\ntitle: " + b"a" * 10000 + b"\n",
    "front-matter-ansi-title": (
        f"---\ntitle: {PAYLOAD}\n---\n\nBody with enough words to be a passage in the index.\n"
    ).encode(),
    "front-matter-huge": b"---\n" + b"key: value\n" * 5000 + b"---\nBody text words here.\n",
    "heading-only": b"# \n",
    "hashes": b"#" * 5000,
    "huge-heading": b"# " + b"word " * 3000 + b"\n\nBody text of the article, words enough.\n",
    "deep-quote": b">" * 5000 + b" quoted words",
    "brackets-100k": b"[" * 100_000,
    "tabs": b"\t" * 10000,
    "form-feeds": b"\x0c\x0b\x1c\x1d\x1e" + "\x85".encode() + GOOD_B,
    "unicode-line-seps": "first\u2028second\u2029third words words words words words.\n".encode(),
    "nbsp-only": ("\u00a0" * 3000).encode(),
    "no-space-200k": b"a" * 200_000,
    "html": b"<html><script>alert(1)</script><p>Some words in html that make a passage.</p>",
}


def corpus_ok(home: Path, runs: Runs) -> None:
    """One bad file never stops the run: the good articles are still indexed and found."""
    asked = next(result for args, result in runs if "--json" in args)
    sources = {r["source"] for r in results_of(asked)}
    assert "lakes.md" in sources, f"lakes.md lost from the answers: {sources}"


CORPUS_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("index",),
    ("ask", "--json", "--no-update", QUESTION),
    ("ask", QUESTION),
    ("status",),
)


def _put(relative: str | bytes, data: bytes) -> Setup:
    def setup(home: Path) -> None:
        base = os.fsencode(home / "corpus")
        name = relative if isinstance(relative, bytes) else os.fsencode(relative)
        try:
            write(os.path.join(base, name), data)
        except OSError as exc:
            pytest.skip(f"this file system cannot hold {name!r}: {exc}")

    return setup


def _corpus_case(cid: str, setup: Setup, *, tty: bool = False, fifo: str | None = None) -> Case:
    return Case(
        cid,
        setup,
        CORPUS_COMMANDS,
        expect=(OK, OK, OK, OK),
        tty=tty,
        check=corpus_ok,
        fifo=fifo,
    )


# Contents that a .txt reads differently from a .md (titles, headings, front matter), or that
# the line-end handling meets first: tried as both; the rest as .md only, to keep the file fast.
BOTH_SUFFIXES = {
    "empty",
    "bom-text",
    "cr-only",
    "crlf",
    "url-2000",
    "digits-table",
    "ansi-escapes",
    "front-matter-only",
    "front-matter-ansi-title",
    "heading-only",
    "hashes",
    "huge-heading",
}


def content_cases() -> list[Case]:
    return [
        _corpus_case(f"content-{name}{suffix}", _put(f"hostile{suffix}", data), tty=True)
        for name, data in CONTENTS.items()
        for suffix in ((".txt", ".md") if name in BOTH_SUFFIXES else (".md",))
    ]


NAMES: dict[str, str | bytes] = {
    "space": "with space.md",
    "spaces-only": "   .txt",
    "trailing-space": "x .txt",
    "trailing-dot": "x.txt.",
    "newline": "new\nline.md",
    "carriage-return": "carriage\rreturn.txt",
    "tab": "tab\tname.md",
    "unicode": "\u00fcn\u00efc\u00f6d\u00e9.md",
    "unicode-nfd": "cafe\u0301.md",
    "cjk": "\u65e5\u672c\u8a9e.txt",
    "emoji": "\U0001f986.md",
    "rtl-override": "evil\u202etxt.md",
    "leading-dash": "-rf.txt",
    "leading-double-dash": "--index.md",
    "flag-name": "--follow-symlinks.md",
    "dash-only": "-.md",
    "hash": "#hash#.md",
    "colon": "colon:name.txt",
    "backslash": "back\\slash.txt",
    "quotes": "quote'\"s.txt",
    "glob-chars": "star*?[].md",
    "shell": "$(touch pwned).md",
    "ansi": f"evil{PAYLOAD}.md",
    "percent": "%s%n%d.txt",
    "uppercase-suffix": "UPPER.TXT",
    "double-suffix": "double.txt.md",
    "hidden": ".hidden.md",
    "named-index": "index.md",
    "named-current": "CURRENT.md",
    "generation-like-dir": "g000001/manifest.md",
    "index-like-dir": "index/notes.md",
    "tmp-like-dir": "tmp-123/notes.md",
    "non-utf8": b"caf\xe9.md",
    "non-utf8-ff": b"\xff\xfe\xfd.txt",
    "non-utf8-dir": b"dir\x80/inner.md",
    "name-255-bytes": "n" * 252 + ".md",
    "name-254-bytes-utf8": "\u00e9" * 125 + ".txt",
    "deep-near-path-max": "/".join(f"d{i:02d}" + "x" * 196 for i in range(19)) + "/deep.md",
}


def _unreadable(kind: str) -> Setup:
    def setup(home: Path) -> None:
        if ROOT:
            pytest.skip("root reads every file: unreadable files cannot be made")
        target = home / "corpus" / "locked"
        write(target / "inner.md", GOOD_B)
        if kind == "file":
            (target / "inner.md").chmod(0)
        else:
            target.chmod(0)

    return setup


def _deep_past_path_max(home: Path) -> None:
    """A file whose path is over 4,096 bytes, made one directory at a time."""
    fd = os.open(home / "corpus", os.O_RDONLY)
    try:
        for depth in range(22):
            name = f"d{depth:02d}" + "x" * 200
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        out = os.open("deep.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, GOOD_B)
        os.close(out)
    except OSError as exc:
        pytest.skip(f"cannot make a path past PATH_MAX here: {exc}")
    finally:
        os.close(fd)


def _links(kind: str) -> Setup:
    def setup(home: Path) -> None:
        corpus = home / "corpus"
        write(home / "outside" / "secret.md", "The quokka password is hunter2, kept outside.\n")
        if kind == "outside-file":
            (corpus / "secret.md").symlink_to("../outside/secret.md")
        elif kind == "outside-file-absolute":
            (corpus / "secret.md").symlink_to(home / "outside" / "secret.md")
        elif kind == "outside-dir":
            (corpus / "elsewhere").symlink_to("../outside", target_is_directory=True)
        elif kind == "loop-pair":
            (corpus / "a.md").symlink_to("b.md")
            (corpus / "b.md").symlink_to("a.md")
        elif kind == "self-loop":
            (corpus / "self.md").symlink_to("self.md")
        elif kind == "dir-to-itself":
            (corpus / "again").symlink_to(".", target_is_directory=True)
        elif kind == "dir-to-parent":
            (corpus / "up").symlink_to("..", target_is_directory=True)
        elif kind == "dangling":
            (corpus / "dead.md").symlink_to("nowhere.md")
        elif kind == "inside-alias":
            (corpus / "alias.md").symlink_to("lakes.md")
        elif kind == "hardlink-outside":
            os.link(home / "outside" / "secret.md", corpus / "hard.md")
        elif kind == "fifo":
            os.mkfifo(corpus / "pipe.md")
        elif kind == "dir-named-md":
            write(corpus / "folder.md" / "inner.md", GOOD_B)

    return setup


def name_cases() -> list[Case]:
    cases = [
        _corpus_case(f"name-{cid}", _put(name, GOOD_B), tty=True) for cid, name in NAMES.items()
    ]
    cases.append(_corpus_case("name-deep-past-path-max", _deep_past_path_max))
    cases += [_corpus_case(f"unreadable-{kind}", _unreadable(kind)) for kind in ("file", "folder")]
    for kind in (
        "outside-file",
        "outside-file-absolute",
        "outside-dir",
        "loop-pair",
        "self-loop",
        "dir-to-itself",
        "dir-to-parent",
        "dangling",
        "inside-alias",
        "hardlink-outside",
        "fifo",
        "dir-named-md",
    ):
        fifo = "corpus/pipe.md" if kind == "fifo" else None
        cases.append(_corpus_case(f"link-{kind}", _links(kind), fifo=fifo))
        if kind != "fifo":
            cases.append(
                Case(
                    f"link-{kind}-follow-symlinks",
                    _links(kind),
                    (("index", "--follow-symlinks"), ("ask", "--json", "--no-update", QUESTION)),
                )
            )
    return cases


def _text(words: str = "with enough ordinary words to be indexed as a passage") -> str:
    return f"A passage {words}."


GOOD_JSONL = [
    json.dumps(
        {
            "_id": "d1",
            "title": "Penguins",
            "text": "Emperor penguins breed in the Antarctic winter and the males keep the "
            "eggs warm on their feet.",
        }
    ),
    json.dumps(
        {
            "_id": "d2",
            "title": "Camels",
            "text": "Camels store fat in their humps and can go for a week or more without "
            "drinking any water.",
        }
    ),
]
T = json.dumps(_text())
DEEP = 100_000
JSONL_LINES: dict[str, list[str]] = {
    "surrogate-text": ['{"_id": "s1", "text": "bad \\ud800 surrogate in a passage of words"}'],
    "surrogate-low-text": ['{"_id": "s2", "text": "\\udc80 low surrogate first, then words"}'],
    "surrogate-title": ['{"_id": "s3", "title": "T\\udfff", "text": ' + T + "}"],
    "surrogate-id": ['{"_id": "\\ud83d", "text": ' + T + "}"],
    "surrogate-key": ['{"\\ud800": 1, "_id": "s4", "text": ' + T + "}"],
    "surrogate-url": ['{"_id": "s5", "url": "http://x/\\udc00", "text": ' + T + "}"],
    "nested-array": ["[" * DEEP + "]" * DEEP],
    "nested-object": ['{"a":' * DEEP + "1" + "}" * DEEP],
    "nested-in-text": ['{"_id": "n1", "text": ' + "[" * DEEP + "]" * DEEP + "}"],
    "nested-in-title": [
        '{"_id": "n2", "text": ' + T + ', "title": ' + "[" * DEEP + "]" * DEEP + "}"
    ],
    "unclosed-nesting": ["[" * DEEP],
    "array": ["[]"],
    "array-of-objects": ['[{"_id": "a1", "text": ' + T + "}]"],
    "number": ["1"],
    "string": ['"just a string"'],
    "null": ["null"],
    "true": ["true"],
    "huge-number": ["1" + "0" * 5000],
    "float-overflow": ["1e400"],
    "nan": ["NaN"],
    "infinity-field": ['{"_id": "i1", "text": ' + T + ', "score": Infinity}'],
    "truncated": ['{"_id": "t1", "text": "unterminated'],
    "trailing-garbage": ['{"_id": "g1", "text": ' + T + "} trailing"],
    "two-objects-one-line": ['{"_id": "o1", "text": ' + T + '}{"_id": "o2", "text": ' + T + "}"],
    "duplicate-ids": ['{"_id": "d1", "text": ' + T + "}", '{"_id": "d1", "text": ' + T + "}"],
    "duplicate-id-types": ['{"_id": 1, "text": ' + T + "}", '{"_id": "1", "text": ' + T + "}"],
    "duplicate-keys": ['{"_id": "k1", "_id": "k2", "text": ' + T + "}"],
    "id-null": ['{"_id": null, "text": ' + T + "}"],
    "id-object": ['{"_id": {"a": 1}, "text": ' + T + "}"],
    "id-list": ['{"_id": [1, 2], "text": ' + T + "}"],
    "id-bool": ['{"_id": true, "text": ' + T + "}"],
    "id-float": ['{"_id": 1.5, "text": ' + T + "}"],
    "id-5000-digits": ['{"_id": 1' + "0" * 5000 + ', "text": ' + T + "}"],
    "id-empty": ['{"_id": "", "text": ' + T + "}"],
    "id-newline": ['{"_id": "a\\nb", "text": ' + T + "}"],
    "id-hash": ['{"_id": "a#1:2", "text": ' + T + "}"],
    "id-long": ['{"_id": "' + "x" * 10000 + '", "text": ' + T + "}"],
    "id-ansi": ['{"_id": ' + json.dumps(PAYLOAD) + ', "text": ' + T + "}"],
    "text-missing": ['{"_id": "m1"}'],
    "text-null": ['{"_id": "m2", "text": null}'],
    "text-number": ['{"_id": "m3", "text": 42}'],
    "text-list": ['{"_id": "m4", "text": ["a", "b"]}'],
    "text-object": ['{"_id": "m5", "text": {"a": "b"}}'],
    "text-empty": ['{"_id": "m6", "text": ""}'],
    "text-whitespace": ['{"_id": "m7", "text": "   \\n\\t  "}'],
    "text-nul": ['{"_id": "m8", "text": "a\\u0000b with words enough for a passage here"}'],
    "text-ansi": ['{"_id": "m9", "text": ' + json.dumps(PAYLOAD + _text()) + "}"],
    "text-no-space-200k": ['{"_id": "m10", "text": "' + "a" * 200_000 + '"}'],
    "text-url": ['{"_id": "m11", "text": ' + json.dumps(f"See {URL} now.") + "}"],
    "title-number": ['{"_id": "u1", "title": 7, "text": ' + T + "}"],
    "title-list": ['{"_id": "u2", "title": ["a"], "text": ' + T + "}"],
    "title-object": ['{"_id": "u3", "title": {"a": 1}, "text": ' + T + "}"],
    "title-empty": ['{"_id": "u4", "title": "", "text": ' + T + "}"],
    "title-long": ['{"_id": "u5", "title": "' + "t " * 5000 + '", "text": ' + T + "}"],
    "title-newline": ['{"_id": "u6", "title": "a\\n\\nb", "text": ' + T + "}"],
    "title-ansi": ['{"_id": "u7", "title": ' + json.dumps(PAYLOAD) + ', "text": ' + T + "}"],
    "url-object": ['{"_id": "v1", "url": {"x": 1}, "date": [1], "text": ' + T + "}"],
    "bom-mid-file": ["\ufeff" + '{"_id": "b1", "text": ' + T + "}"],
    "crlf": ['{"_id": "c1", "text": ' + T + "}\r", '{"_id": "c2", "text": ' + T + "}\r"],
    "whitespace-line": [" " * 100_000],
}
# Lines whose bytes make the whole file unreadable: skipping that file is allowed.
JSONL_BYTES: dict[str, bytes] = {
    "invalid-utf8-line": b'{"_id": "x1", "text": "caf\xe9 au lait"}',
    "nul-byte-line": b'{"_id": "x2", "text": "a\x00b"}',
}


def _jsonl(lines: list[str] | bytes, where: str) -> Setup:
    def setup(home: Path) -> None:
        extra = lines if isinstance(lines, bytes) else "\n".join(lines).encode()
        data = GOOD_JSONL[0].encode() + b"\n" + extra + b"\n" + GOOD_JSONL[1].encode() + b"\n"
        write(home / "corpus" / "coll.jsonl" if where == "folder" else home / "coll.jsonl", data)

    return setup


CAMELS = "Which animal stores fat in its hump?"
# Also tried as the whole corpus (`qa index coll.jsonl`); the rest only inside a folder.
AS_COLLECTION = {
    "surrogate-text",
    "surrogate-title",
    "surrogate-id",
    "nested-array",
    "nested-in-text",
    "array",
    "null",
    "truncated",
    "duplicate-ids",
    "id-object",
    "id-5000-digits",
    "text-null",
    "text-nul",
    "text-ansi",
    "text-url",
    "title-ansi",
    "title-long",
    "bom-mid-file",
    "invalid-utf8-line",
    "nul-byte-line",
}


def camels_ok(home: Path, runs: Runs) -> None:
    docs = {r["doc_id"] for r in results_of(runs[1][1])}
    assert "d2" in docs, f"the good line d2 was lost: {docs}"


def jsonl_cases() -> list[Case]:
    cases = []
    items: list[tuple[str, list[str] | bytes, bool]] = [
        (name, lines, True) for name, lines in JSONL_LINES.items()
    ]
    items += [(name, data, False) for name, data in JSONL_BYTES.items()]
    for name, lines, line_level in items:
        cases.append(_corpus_case(f"jsonl-{name}-in-folder", _jsonl(lines, "folder"), tty=True))
        if name not in AS_COLLECTION:
            continue
        cases.append(
            Case(
                f"jsonl-{name}-collection",
                _jsonl(lines, "collection"),
                (
                    ("index", "coll.jsonl", "--index", "cidx"),
                    ("ask", "--json", "--no-update", "--index", "cidx", CAMELS),
                    ("ask", "--index", "cidx", CAMELS),
                    ("status", "--index", "cidx"),
                ),
                owned=("index", "cidx"),
                expect=(OK, OK, OK, OK) if line_level else (),
                check=camels_ok if line_level else None,
                tty=True,
            )
        )
    return cases


QUESTIONS: dict[str, str] = {
    "empty": "",
    "space": " ",
    "whitespace": " \t\n ",
    "newline": "\n",
    "nul": "\x00",
    "nul-inside": "lake\x00baikal",
    "long-10000": ("deep lake " * 1000)[:10000],
    "long-no-space": "x" * 10000,
    "words-3000": " ".join(["lake"] * 3000),
    "controls": "".join(map(chr, range(1, 32))) + " lake",
    "ansi": PAYLOAD + " lake baikal",
    "c1": "\x9b2J\x85 lake",
    "del": "\x7f lake",
    "surrogate-high": "lake \ud800",
    "surrogate-low": "\udc80",
    "surrogate-escape": "caf\udce9 lake",
    "surrogate-half-pair": "\ud83d deep",
    "emoji": "\U0001f986?",
    "rtl": "\u202elake\u202c",
    "zero-width": "\u200b",
    "bom": "\ufeff",
    "cjk": "\u6e56\u306e\u6df1\u3055\u306f\uff1f",
    "combining": "e" + "\u0301" * 500,
    "punctuation": "?!?",
    "one-char": "a",
    "dash": "-",
    "double-dash": "--",
    "help-like": "--help",
    "k-like": "-k",
    "json-like": '{"question": 1}',
    "path-like": "../../etc/passwd",
    "format-like": "%s %n {0} {question}",
    "backslashes": "\\" * 1000,
    "nbsp": "\u00a0" * 50,
}


def question_cases() -> list[Case]:
    cases = []
    for name, q in QUESTIONS.items():
        cases.append(
            Case(
                f"question-{name}-json",
                lambda home: None,
                (("ask", "--no-update", "--json", "--", q),),
            )
        )
        cases.append(
            Case(
                f"question-{name}-tty",
                lambda home: None,
                (("ask", "--no-update", "--", q),),
                tty=True,
            )
        )
    return cases


QGOOD = b'{"id": "a", "question": "How deep is Lake Baikal?"}\nWhich rocket went to the moon?\n'
QFILES: dict[str, bytes] = {
    "empty": b"",
    "blank-lines": b"\n\n  \n\t\n",
    "binary": _random(2048, 5),
    "invalid-utf8-line": QGOOD + b"caf\xe9?\n" + QGOOD,
    "bom": BOM + QGOOD,
    "crlf": QGOOD.replace(b"\n", b"\r\n"),
    "cr-only": QGOOD.replace(b"\n", b"\r"),
    "question-null": QGOOD + b'{"question": null}\n' + QGOOD,
    "question-empty": QGOOD + b'{"question": ""}\n' + QGOOD,
    "question-space": QGOOD + b'{"question": "   "}\n' + QGOOD,
    "question-number": QGOOD + b'{"question": 5}\n' + QGOOD,
    "question-list": QGOOD + b'{"question": ["a"]}\n' + QGOOD,
    "question-object": QGOOD + b'{"question": {"a": 1}}\n' + QGOOD,
    "no-question-key": QGOOD + b'{"q": 1}\n' + QGOOD,
    "json-array": QGOOD + b"[1, 2]\n",
    "json-string": QGOOD + b'"a string"\n',
    "surrogate": QGOOD + b'{"question": "\\ud800"}\n' + QGOOD,
    "surrogate-id": QGOOD + b'{"id": "\\udc80", "question": "lake"}\n',
    "nested-100k": QGOOD + b'{"question": ' + b"[" * DEEP + b"]" * DEEP + b"}\n" + QGOOD,
    "nested-100k-object": QGOOD + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"\n",
    "truncated": QGOOD + b'{"question": "x\n' + QGOOD,
    "id-object": QGOOD + b'{"id": {"a": 1}, "question": "lake"}\n',
    "id-null": QGOOD + b'{"id": null, "question": "lake"}\n',
    "id-5000-digits": QGOOD + b'{"id": 1' + b"0" * 5000 + b', "question": "lake"}\n',
    "long-line": b"lake " * 2000 + b"\n",
    "ansi-line": PAYLOAD.encode() + b" lake\n",
    "nul-line": b"lake\x00baikal\n" + QGOOD,
    "many-good": QGOOD * 100,
    "only-bad": b'{"question": ""}\n',
}


def _qfile(data: bytes) -> Setup:
    def setup(home: Path) -> None:
        write(home / "q.jsonl", data)

    return setup


def questions_file_cases() -> list[Case]:
    return [
        Case(
            f"questions-file-{name}",
            _qfile(data),
            (("ask", "--no-update", "--questions", "q.jsonl", "-k", "2"),),
            tty=True,
        )
        for name, data in QFILES.items()
    ]


def _readonly(relative: str, *, inner: bool) -> Setup:
    def setup(home: Path) -> None:
        folder = home / relative
        folder.mkdir()
        if inner:
            write(folder / "keep.txt", "a file the user keeps here\n")
        folder.chmod(0o555)

    return setup


def _nothing(home: Path) -> None:
    pass


def flag_cases() -> list[Case]:
    cases: list[Case] = []

    def add(cid: str, *commands: tuple[str, ...], **kw: object) -> None:
        cases.append(Case(cid, kw.pop("setup", _nothing), commands, **kw))  # type: ignore[arg-type]

    for value in ("abc", "0", "-1", "", " ", "1.5", "1e9", "9" * 30):
        env = (("QA_BATCH_SIZE", value),)
        add(f"env-QA_BATCH_SIZE={value!r}-index", ("index", "--rebuild"), env=env)
        add(f"env-QA_BATCH_SIZE={value!r}-ask", ("ask", "--no-update", QUESTION), env=env)
    for value, owned in (
        ("", ("index",)),
        (" ", ("index", " ")),
        ("corpus/lakes.md", ("index",)),
        ("corpus", ("index",)),
        ("new-index", ("index", "new-index")),
        ("index/", ("index",)),
        ("./index/../index", ("index",)),
    ):
        env = (("QA_INDEX", value),)
        for cmd in (("index",), ("ask", "--json", QUESTION), ("status",)):
            add(f"env-QA_INDEX={value!r}-{cmd[0]}", cmd, env=env, owned=owned)
    for value in ("", "nowhere", "corpus/lakes.md", "corpus/space"):
        env = (("QA_CORPUS", value),)
        add(f"env-QA_CORPUS={value!r}-index", ("index",), env=env)
        add(f"env-QA_CORPUS={value!r}-ask", ("ask", QUESTION), env=env)
    for value in ("", "no/such-model"):
        env = (("QA_MODEL", value),)
        add(f"env-QA_MODEL={value!r}-ask", ("ask", "--no-update", QUESTION), env=env)
        add(f"env-QA_MODEL={value!r}-index", ("index",), env=env)
    for value in ("", "bogus", "FP32"):
        add(f"env-QA_PRECISION={value!r}", ("index", "--rebuild"), env=(("QA_PRECISION", value),))
    for value in ("0", "-5", "abc", "100000", "1"):
        add(f"env-COLUMNS={value!r}", ("ask", "--no-update", QUESTION), env=(("COLUMNS", value),))

    ask = ("ask", "--no-update")
    add("flag-k-0", (*ask, "-k", "0", QUESTION), expect=(USAGE,))
    add("flag-k-negative", (*ask, "-k", "-1", QUESTION), expect=(USAGE,))
    add("flag-k-abc", (*ask, "-k", "abc", QUESTION), expect=(USAGE,))
    add("flag-k-million", (*ask, "-k", "1000000", "--json", QUESTION), expect=(OK,))
    add("flag-k-huge", (*ask, "-k", "9" * 30, QUESTION))
    add("flag-mode-wrong", (*ask, "--mode", "wrong", QUESTION), expect=(USAGE,))
    add("flag-mode-empty", (*ask, "--mode", "", QUESTION), expect=(USAGE,))
    add("flag-mode-upper", (*ask, "--mode", "HYBRID", QUESTION))
    for mode in ("hybrid", "dense", "lexical"):
        add(f"flag-mode-{mode}", (*ask, "--mode", mode, "--json", QUESTION), expect=(OK,))
    add("flag-ask-nothing", ("ask",), expect=(USAGE,))
    add("flag-ask-both", ("ask", QUESTION, "--questions", "q.jsonl"), expect=(USAGE,))
    add("flag-unknown", ("index", "--bogus"), expect=(USAGE,))
    add("flag-extra-argument", ("index", "corpus", "extra"), expect=(USAGE,))
    add("flag-unknown-command", ("frobnicate",), expect=(USAGE,))
    add("flag-version", ("--version",), expect=(OK,))
    for cmd in (
        ("ask", "--index", "corpus/lakes.md", QUESTION),
        ("status", "--index", "corpus/lakes.md"),
    ):
        add(f"flag-index-plain-file-{cmd[0]}", cmd, expect=(EXPECTED,))
    add(
        "flag-index-plain-file-index",
        ("index", "corpus", "--index", "corpus/lakes.md"),
        expect=(EXPECTED,),
    )
    add("flag-index-empty-ask", ("ask", "--index", "", QUESTION))
    add("flag-index-empty-index", ("index", "--index", ""))
    add(
        "flag-index-trailing-slash",
        ("ask", "--no-update", "--index", "index/", QUESTION),
        expect=(OK,),
    )
    add(
        "flag-index-in-readonly-folder",
        ("index", "corpus", "--index", "ro/idx"),
        ("ask", "--no-update", "--index", "ro/idx", QUESTION),
        setup=_readonly("ro", inner=True),
        owned=("index", "ro/idx"),
    )
    add(
        "flag-index-readonly-empty-folder",
        ("index", "corpus", "--index", "ro"),
        ("ask", "--no-update", "--index", "ro", QUESTION),
        setup=_readonly("ro", inner=False),
        owned=("index", "ro"),
    )
    add(
        "flag-index-readonly-existing-index",
        ("index",),
        ("ask", "--no-update", QUESTION),
        setup=lambda home: (home / "index").chmod(0o555),
    )
    add("flag-questions-is-a-folder", ("ask", "--no-update", "--questions", "corpus"))
    add("flag-questions-missing", ("ask", "--no-update", "--questions", "nowhere.jsonl"))
    add("flag-questions-is-the-index", ("ask", "--no-update", "--questions", "index"))
    add("flag-corpus-is-a-file", ("ask", "--corpus", "corpus/lakes.md", QUESTION))
    add("flag-corpus-empty", ("index", ""))
    add("flag-corpus-nowhere", ("index", "nowhere"))
    add("flag-corpus-is-the-index", ("index", "index"))
    for value in ("abc", "0", "-1", "1", "1K", "10MB", "1e99", ""):
        expect = (USAGE,) if value in ("abc",) else ()
        add(f"flag-max-file-size={value!r}", ("index", "--max-file-size", value), expect=expect)
    for value in ("", "[", "**", "/", "*", "!", "\\", "../*"):
        add(f"flag-exclude={value!r}", ("index", "--exclude", value))
    add(
        "flag-follow-symlinks-loop",
        ("index", "--follow-symlinks"),
        setup=_links("dir-to-parent"),
    )
    add("flag-no-wait-free", ("index", "--no-wait"), expect=(OK,))
    add("flag-status-verify", ("status", "--verify"), expect=(OK,))
    add("flag-status-verify-json", ("status", "--verify", "--json"), expect=(OK,))
    add("flag-precision-int4", ("index", "--precision", "int4"), expect=(frozenset({1, 2}),))
    add("flag-eval-nothing", ("eval",), expect=(USAGE,))
    add(
        "flag-eval-beir-nowhere",
        ("eval", "--beir", "nowhere", "--index", "eidx"),
        owned=("index", "eidx"),
    )
    add("fresh-ask-builds-default", ("ask", QUESTION), prebuilt=False, expect=(OK,))
    add("fresh-status", ("status",), prebuilt=False, expect=(EXPECTED,))
    add("fresh-ask-no-update", ("ask", "--no-update", QUESTION), prebuilt=False, expect=(EXPECTED,))
    return cases


MATRIX = (
    content_cases()
    + name_cases()
    + jsonl_cases()
    + question_cases()
    + questions_file_cases()
    + flag_cases()
)
assert len({c.id for c in MATRIX}) == len(MATRIX)
assert AS_COLLECTION <= {*JSONL_LINES, *JSONL_BYTES} and BOTH_SUFFIXES <= set(CONTENTS)


class FifoWatchdog:
    """Opens the FIFO for writing after a while, which unblocks a reader stuck on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unblocked = False
        self.timer = threading.Timer(FIFO_PATIENCE, self._unblock)
        self.timer.start()

    def _unblock(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # nobody is reading it
            return
        self.unblocked = True
        os.close(fd)

    def stop(self) -> None:
        self.timer.cancel()


def _restore_modes(home: Path) -> None:
    """Make every folder the test locked writable again, so tmp_path can be removed."""
    for _, dirnames, _, dirfd in os.fwalk(home, follow_symlinks=False):
        for name in dirnames:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o700 != 0o700:
                os.chmod(name, 0o755, dir_fd=dirfd)


@pytest.mark.parametrize("case", MATRIX, ids=[c.id for c in MATRIX])
def test_bad_input_never_tracebacks_nor_loses_a_file(
    case: Case,
    template: Template,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fakes: None,
) -> None:
    home = make_home(tmp_path, monkeypatch, template if case.prebuilt else None)
    try:
        case.setup(home)
        owned = [home / name for name in case.owned]
        before = snapshot(home, *owned)
        env = dict(case.env)
        if case.tty:
            env["TTY_COMPATIBLE"] = "1"  # rich (and so qa) takes stdout and stderr for terminals
        watchdog = FifoWatchdog(home / case.fifo) if case.fifo else None
        runs: Runs = []
        try:
            for n, args in enumerate(case.commands):
                result = invoke(*args, env=env)
                runs.append((args, result))
                wanted = case.expect[n] if n < len(case.expect) else ANY
                if wanted is not None:
                    assert result.exit_code in wanted, (
                        f"qa {' '.join(map(ascii, args))}: exit {result.exit_code}, wanted "
                        f"{sorted(wanted)}\n{result.output[-3000:]}"
                    )
                if case.tty:  # JSON escapes what it must; text for people is checked
                    json_out = "--json" in args or "--questions" in args
                    assert_no_raw_controls(result.stderr, "" if json_out else result.stdout)
        finally:
            if watchdog is not None:
                watchdog.stop()
        if watchdog is not None:
            assert not watchdog.unblocked, f"qa blocked reading the FIFO {case.fifo}"
        assert_unchanged(before, snapshot(home, *owned))
        if case.check is not None:
            case.check(home, runs)
    finally:
        _restore_modes(home)


def test_the_matrix_is_big_enough() -> None:
    assert len(MATRIX) >= 150


# --- the layout -------------------------------------------------------------------------------


def test_index_layout_marker_current_generations_and_nothing_outside(home: Path) -> None:
    before = snapshot(home, home / "index")
    assert invoke("index").exit_code == 0
    assert_unchanged(before, snapshot(home, home / "index"))
    marker = json.loads((home / "index" / "qa-index.json").read_text())
    assert "qa_index" in marker
    first = current_generation(home / "index")
    assert re.fullmatch(r"g\d{6}", first.name) and first.is_dir()
    for name in ("manifest.json", "chunks.jsonl", "vectors.faiss", "lexical.json"):
        assert (first / name).is_file(), name
    (home / "index" / "tmp-99999").mkdir()
    write(home / "index" / "tmp-99999" / "junk.bin", b"x" * 100)  # a killed writer's work
    names = []
    for n in range(3):
        (home / "corpus" / "cooking.txt").write_text(f"Bread number {n} rises in the oven.\n")
        before = snapshot(home, home / "index")
        assert invoke("index").exit_code == 0
        assert_unchanged(before, snapshot(home, home / "index"))
        names.append(current_generation(home / "index").name)
    assert len(set(names)) == 3 and first.name not in names, names
    gens = sorted(p.name for p in (home / "index").glob("g*"))
    assert gens == names[-2:], f"keeps the current and the previous generation, has {gens}"
    assert not list((home / "index").glob("tmp-*")), "a stale tmp-* was left"


# --- b. a wrong --index -----------------------------------------------------------------------


def _notes(folder: Path) -> None:
    write(folder / "todo.md", "# Todo\n\nBuy milk.\n")
    write(folder / "sub" / "ideas.txt", "An idea worth keeping.\n")
    (folder / "sub" / "ideas.txt").chmod(0o640)


def _git(folder: Path) -> None:
    write(folder / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(folder / ".git" / "config", "[core]\n\trepositoryformatversion = 0\n")
    write(folder / ".git" / "objects" / "ab" / "cdef", _random(64, 9))
    write(folder / "README.md", "# A project\n")


def _other_tool(folder: Path) -> None:
    write(folder / "manifest.json", '{"name": "x", "version": 1}\n')
    write(folder / "data.bin", _random(256, 10))


def _marker_without_key(folder: Path) -> None:
    write(folder / "qa-index.json", '{"name": "not qa"}\n')
    write(folder / "notes.md", "Mine.\n")


NOT_INDEXES: dict[str, Callable[[Path], str]] = {
    "notes-folder": lambda home: (_notes(home / "target"), "target")[1],
    "git-repo": lambda home: (_git(home / "target"), "target")[1],
    "other-tool-manifest": lambda home: (_other_tool(home / "target"), "target")[1],
    "marker-without-key": lambda home: (_marker_without_key(home / "target"), "target")[1],
    "plain-file": lambda home: (write(home / "target", "my notes\n"), "target")[1],
    "symlink-to-notes": lambda home: (
        _notes(home / "notes"),
        (home / "target").symlink_to("notes", target_is_directory=True),
        "target",
    )[2],
    "corpus-itself": lambda home: "corpus",
}
USES: dict[str, tuple[Callable[[str], tuple[str, ...]], dict[str, str]]] = {
    "index": (lambda d: ("index", "corpus", "--index", d), {}),
    "index-rebuild": (lambda d: ("index", "corpus", "--rebuild", "--index", d), {}),
    "index-no-corpus": (lambda d: ("index", "--index", d), {}),
    "index-env": (lambda d: ("index", "corpus"), {"QA_INDEX": "{d}"}),
    "ask": (lambda d: ("ask", "--index", d, QUESTION), {}),
    "ask-json-no-update": (lambda d: ("ask", "--json", "--no-update", "--index", d, QUESTION), {}),
    "status": (lambda d: ("status", "--index", d), {}),
    "status-verify": (lambda d: ("status", "--verify", "--index", d), {}),
}


@pytest.mark.parametrize("use", USES)
@pytest.mark.parametrize("kind", NOT_INDEXES)
def test_a_folder_that_is_not_a_qa_index_is_never_touched(home: Path, kind: str, use: str) -> None:
    target = NOT_INDEXES[kind](home)
    make, env = USES[use]
    before = snapshot(home)  # everything: qa owns nothing here
    result = invoke(*make(target), env={k: v.format(d=target) for k, v in env.items()})
    assert result.exit_code == 1, result.output
    named = {target, str(home / target), str((home / target).resolve())}
    assert any(n in result.stderr for n in named), f"the message does not name {target}"
    if (home / target).is_dir():
        assert "not a qa index" in result.stderr.lower(), result.stderr
    assert_unchanged(before, snapshot(home))


@pytest.mark.parametrize("kind", ["empty-dir", "new-dir"])
def test_an_empty_or_new_folder_may_become_the_index(home: Path, kind: str) -> None:
    if kind == "empty-dir":
        (home / "target").mkdir()
    before = snapshot(home, home / "target")
    assert invoke("index", "corpus", "--index", "target").exit_code == 0
    assert "qa_index" in json.loads((home / "target" / "qa-index.json").read_text())
    results_of(invoke("ask", "--json", "--no-update", "--index", "target", QUESTION))
    assert_unchanged(before, snapshot(home, home / "target"))


@pytest.mark.parametrize(
    ("args", "env", "missing"),
    [
        (("ask", "--index", "MISSING", QUESTION), {}, "MISSING"),
        (("ask", "--json", "--index", "MISSING", QUESTION), {}, "MISSING"),
        (("ask", "--index", "missing/deeper", QUESTION), {}, "missing/deeper"),
        (("ask", "--questions", "q.jsonl", "--index", "MISSING"), {}, "MISSING"),
        (("ask", QUESTION), {"QA_INDEX": "MISSING"}, "MISSING"),
    ],
    ids=["ask", "ask-json", "ask-nested", "ask-questions", "env-QA_INDEX"],
)
def test_ask_with_a_missing_index_builds_nothing(
    home: Path, args: tuple[str, ...], env: dict[str, str], missing: str
) -> None:
    write(home / "q.jsonl", QGOOD)
    before = snapshot(home)
    result = invoke(*args, env=env)
    assert result.exit_code == 1, result.output
    assert f"No index in {missing}" in result.stderr, result.stderr
    assert "qa index" in result.stderr and f"--index {missing}" in result.stderr, result.stderr
    assert_unchanged(before, snapshot(home))


def test_only_the_default_index_is_built_on_first_ask(home: Path) -> None:
    before = snapshot(home, home / "index")
    results_of(invoke("ask", "--json", QUESTION))
    assert "qa_index" in json.loads((home / "index" / "qa-index.json").read_text())
    assert_unchanged(before, snapshot(home, home / "index"))


# --- c. a corpus never indexes its own index --------------------------------------------------


def _status_json(*args: str) -> dict[str, object]:
    result = invoke("status", "--json", *args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize("index_args", [(), ("--index", "idx2")], ids=["default", "named"])
def test_indexing_a_folder_twice_never_indexes_its_own_index(
    home: Path, monkeypatch: pytest.MonkeyPatch, index_args: tuple[str, ...]
) -> None:
    notes = home / "corpus"
    monkeypatch.chdir(notes)
    owned = notes / (index_args[1] if index_args else "index")
    before = snapshot(home, owned)
    assert invoke("index", ".", *index_args).exit_code == 0
    first = _status_json(*index_args)
    assert invoke("index", ".", *index_args).exit_code == 0
    second = _status_json(*index_args)
    assert (first["documents"], first["files"]) == (second["documents"], second["files"]) == (3, 3)
    status = invoke("status", *index_args)
    assert status.exit_code == 0 and "current" in status.stdout, status.stdout
    assert_unchanged(before, snapshot(home, owned))


def _lexical_sources(word: str, *args: str) -> set[str]:
    result = invoke("ask", "--json", "--no-update", "--mode", "lexical", "-k", "50", *args, word)
    return {str(r["source"]) for r in results_of(result) if word in str(r["text"]).lower()}


def test_qaignore_exclude_and_hidden_folders_keep_files_out(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = home / "notes"
    text = "Marmalade is made from the peel of bitter oranges boiled with sugar in {}."
    for name in (
        "keep.md",
        "drafts/wip.md",
        "a.secret.md",
        "keep.secret.md",
        "private/p.md",
        "logs/x.log.md",
        ".obsidian/workspace.md",
        ".hidden.md",
        "sub/.cache/c.md",
        "sub/visible.md",
    ):
        write(notes / name, text.format(name))
    write(notes / ".qaignore", "# mine\ndrafts/\n*.secret.md\n!keep.secret.md\n")
    monkeypatch.chdir(notes)
    before = snapshot(home, notes / "index")
    built = invoke("index", ".", "--exclude", "private/*", "--exclude", "*.log.md")
    assert built.exit_code == 0, built.output
    assert _lexical_sources("marmalade") == {"keep.md", "keep.secret.md", "sub/visible.md"}
    assert_unchanged(before, snapshot(home, notes / "index"))


def test_symlinks_out_of_the_corpus_are_skipped_with_a_warning(home: Path) -> None:
    _links("outside-file")(home)
    (home / "corpus" / "elsewhere").symlink_to("../outside", target_is_directory=True)
    (home / "corpus" / "alias.md").symlink_to("lakes.md")
    before = snapshot(home, home / "index")
    built = invoke("index")
    assert built.exit_code == 0, built.output
    assert "secret.md" in built.stderr and "elsewhere" in built.stderr, built.stderr
    assert _lexical_sources("quokka") == set()
    assert "alias.md" in _lexical_sources("baikal"), "a link inside the corpus is followed"
    built = invoke("index", "--follow-symlinks")
    assert built.exit_code == 0, built.output
    assert "secret.md" in _lexical_sources("quokka")
    assert_unchanged(before, snapshot(home, home / "index"))


def test_text_from_files_never_reaches_a_terminal_raw(home: Path) -> None:
    write(
        home / "corpus" / f"evil{PAYLOAD}.md",
        f"# {PAYLOAD}Baikal\n\nLake Baikal {PAYLOAD} "
        "is the deepest lake in Siberia, the nerpa seal lives in it.\n",
    )
    write(home / "corpus" / "bad\x1b[2J.md", b"\xff\xfe not utf-8\n")
    tty = {"TTY_COMPATIBLE": "1"}
    for args in (("index",), ("ask", QUESTION), ("ask", "-k", "10", "nerpa seal"), ("status",)):
        result = invoke(*args, env=tty)
        assert result.exit_code == 0, result.output
        assert_no_raw_controls(result.stdout, result.stderr)


# --- questions files with a bad line ----------------------------------------------------------

BAD_LINES = {
    "question-null": '{"id": "b", "question": null}',
    "question-empty": '{"id": "b", "question": ""}',
    "question-number": '{"id": "b", "question": 5}',
    "no-question": '{"id": "b", "q": "lake"}',
    "not-json": '{"id": "b", "question": ',
    "nested-100k": '{"id": "b", "question": ' + "[" * DEEP + "]" * DEEP + "}",
}


@pytest.mark.parametrize("bad", BAD_LINES)
def test_a_bad_line_in_a_batch_is_reported_in_its_place(built: Path, bad: str) -> None:
    lines = [
        '{"id": "a", "question": "How deep is Lake Baikal?"}',
        "",
        BAD_LINES[bad],
        "Which rocket went to the moon?",
    ]
    write(built / "q.jsonl", "\n".join(lines) + "\n")
    result = invoke("ask", "--no-update", "--questions", "q.jsonl", "-k", "1")
    assert result.exit_code == 1, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 3, result.stdout
    assert out[0]["id"] == "a" and out[0]["results"], out[0]
    assert out[2]["question"] == "Which rocket went to the moon?" and out[2]["results"], out[2]
    error = out[1]
    assert error["line"] == 3 and set(error["error"]) >= {"code", "message"}, error
    if not bad.startswith(("not-json", "nested")):
        assert error.get("id") == "b", error
    assert re.search(r"\b3\b", result.stderr), result.stderr


# --- d. the write lock ------------------------------------------------------------------------

HOLDER = """
import sys, time
import filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def hold_lock(index_dir: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding DIR/write.lock (another process: a lock held in this one could
    be re-entered by qa's own)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(index_dir / "write.lock"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_no_wait_refuses_while_another_writer_holds_the_lock(
    built: Path, template: Template
) -> None:
    (built / "corpus" / "cooking.txt").write_text("Bread is baked in an oven at home today.\n")
    holder = hold_lock(built / "index", 30)
    try:
        result = invoke("index", "--no-wait")
        assert result.exit_code == 1, result.output
        assert re.search(r"another qa index is updating \S*index", result.stderr), result.stderr
        asked = invoke("ask", "--json", "--no-update", QUESTION)  # readers need no lock
        assert asked.exit_code == 0 and asked.stdout == template.answer, asked.output
    finally:
        holder.kill()
        holder.wait()


def test_a_second_writer_waits_for_the_first(built: Path) -> None:
    (built / "corpus" / "cooking.txt").write_text("Bread is baked in an oven at home today.\n")
    holder = hold_lock(built / "index", 1.5)
    try:
        started = time.monotonic()
        result = invoke("index")
        assert result.exit_code == 0, result.output
        assert time.monotonic() - started > 0.5, "did not wait for the lock"
        assert "another qa index is updating" in result.stderr, result.stderr
    finally:
        holder.kill()
        holder.wait()
    assert "oven" in " ".join(
        str(r["text"])
        for r in results_of(
            invoke("ask", "--json", "--no-update", "--mode", "lexical", "bread oven")
        )
    )


# --- e. a damaged index file ------------------------------------------------------------------

NAMED = ("manifest.json", "chunks.jsonl", "vectors.faiss", "lexical.json", "lexical.*.npy")
CORRUPTIONS = (
    "delete",
    "truncate-0",
    "truncate-half",
    "flip-middle",
    "append-garbage",
    "random-same-size",
)


def corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
        return
    if how == "truncate-0":
        new = b""
    elif how == "truncate-half":
        new = data[: len(data) // 2]
    elif how == "flip-middle":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        new = bytes(flipped)
    elif how == "append-garbage":
        new = data + b"\x00garbage\xff" * 8
    elif how == "random-same-size":
        new = random.Random(len(data)).randbytes(len(data))
        if new == data:
            new = bytes(b ^ 0xFF for b in data)
    elif how == "points-nowhere":
        new = b"g999999\n"
    elif how == "points-outside":
        new = b"../corpus\n"
    else:
        raise AssertionError(how)
    path.write_bytes(new)


def _targets(index_dir: Path, target: str) -> list[Path]:
    if target == "CURRENT":
        return [index_dir / "CURRENT"]
    gen = current_generation(index_dir)
    if target == "other":
        named = {p for pattern in NAMED for p in gen.glob(pattern)}
        return sorted(p for p in gen.iterdir() if p.is_file() and p not in named)
    return sorted(gen.glob(target))


CORRUPTION_CASES = [(t, how) for t in (*NAMED, "other") for how in CORRUPTIONS] + [
    ("CURRENT", how)
    for how in (
        "delete",
        "truncate-0",
        "flip-middle",
        "append-garbage",
        "points-nowhere",
        "points-outside",
    )
]


@pytest.mark.parametrize(("target", "how"), CORRUPTION_CASES)
def test_a_damaged_file_is_named_never_answered_from_and_repaired(
    template: Template,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fakes: None,
    target: str,
    how: str,
) -> None:
    files = _targets(template.home / "index", target)
    if not files:
        pytest.skip(f"no {target} file in this index")
    for n, original in enumerate(files):
        home = make_home(tmp_path / str(n), monkeypatch, template)
        damaged = home / "index" / original.relative_to(template.home / "index")
        corrupt(damaged, how)
        before = snapshot(home, home / "index")
        name = damaged.name
        asked = invoke("ask", "--json", "--no-update", QUESTION)
        if asked.exit_code == 0:
            assert asked.stdout == template.answer, f"answered from a damaged {name} ({how})"
        else:
            assert asked.exit_code == 1, asked.output
            assert name in asked.stderr and "qa index" in asked.stderr, asked.stderr
        verify = invoke("status", "--verify")
        assert verify.exit_code == 1 and name in verify.output, verify.output
        repaired = invoke("index")
        assert repaired.exit_code == 0, repaired.output
        again = invoke("ask", "--json", "--no-update", QUESTION)
        assert again.exit_code == 0 and again.stdout == template.answer, (
            f"`qa index` did not repair {name} ({how}): {again.output[-2000:]}"
        )
        assert invoke("status", "--verify").exit_code == 0
        assert not list((home / "index").glob("tmp-*"))
        assert_unchanged(before, snapshot(home, home / "index"))


# --- f. readers never see a mix of generations ------------------------------------------------

COOKING_QUESTION = "What does yeast do to the dough while it proves?"


def cooking_variant(n: int) -> str:
    text = (
        f"Bread rises because yeast ferments sugars in batch {n} and releases carbon dioxide "
        "gas into the dough while it proves in a warm place.\n"
    )
    if n % 2:
        text += f"\nBatch {n} was proved twice as long, so its dough rose twice as high.\n"
    return text


WRITER = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.test_faults import COOKING_QUESTION, cooking_variant, load_token_fake, runner
from qa import embed
embed.load_embedder = load_token_fake
from qa.cli import app
print("ready", flush=True)
with open(sys.argv[3], "w") as log:
    for n in range(1, int(sys.argv[2]) + 1):
        Path("corpus", "cooking.txt").write_text(cooking_variant(n), encoding="utf-8")
        built = runner.invoke(app, ["index"])
        asked = runner.invoke(app, ["ask", "--json", "--no-update", COOKING_QUESTION])
        record = {"n": n, "index": built.exit_code, "index_output": built.output,
                  "ask": asked.exit_code, "answer": asked.stdout}
        log.write(json.dumps(record) + "\\n")
        log.flush()
        time.sleep(0.05)
"""


def test_readers_during_updates_see_one_whole_generation(built: Path) -> None:
    (built / "corpus" / "cooking.txt").write_text(cooking_variant(0))
    assert invoke("index").exit_code == 0
    first = invoke("ask", "--json", "--no-update", COOKING_QUESTION)
    assert first.exit_code == 0, first.output
    log = built.parent / "writer.jsonl"  # outside home: not a file of the user's
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(REPO), "20", str(log)],
        cwd=built,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    if writer.stdout.readline().strip() != "ready":
        raise AssertionError(f"the writer did not start: {writer.communicate()[1][-3000:]}")
    asks: list[Result] = []
    deadline = time.monotonic() + 60
    while (writer.poll() is None or len(asks) < 60) and len(asks) < 400:
        assert time.monotonic() < deadline, "readers and writer ran past 60 s"
        asks.append(runner.invoke(app, ["ask", "--json", "--no-update", COOKING_QUESTION]))
    _, err = writer.communicate(timeout=60)
    updates = [json.loads(line) for line in log.read_text().splitlines()]
    assert writer.returncode == 0 and "Traceback" not in err, err[-3000:]
    broken = [u["index_output"] for u in updates if u["index"] or u["ask"]]
    assert len(updates) == 20 and not broken, f"{len(updates)} updates; {broken[:2]}"
    generations = {first.stdout} | {u["answer"] for u in updates}
    damaged = [r.output for r in asks if r.exit_code and "damaged" in r.output.lower()]
    failed = [r.output for r in asks if r.exit_code or r.exception]
    mixed = [r.stdout for r in asks if r.exit_code == 0 and r.stdout not in generations]
    assert not damaged and not failed and not mixed, (
        f"{len(asks)} asks: {len(damaged)} false 'damaged', {len(failed)} failed, "
        f"{len(mixed)} answers from no generation; first failure: {(failed or mixed)[:1]}"
    )

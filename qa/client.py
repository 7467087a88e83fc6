"""`qa ask` through a running `qa serve`: the fast path, decided in qa/__main__.py before
qa.cli (and with it numpy, onnxruntime and faiss) is imported.

When the index folder holds serve.json (qa.serve) and that server answers, `qa ask QUESTION`
asks it over loopback HTTP (urllib) and renders its JSON with qa.render, as the CLI would
have: the same stdout. Anything this path does not handle (a questions file, a collection, a
model, a usage error, a server that is gone or refuses) returns None, and the CLI runs as
usual. Stdlib, qa.config and qa.render only (tests/test_client.py checks sys.modules).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qa.answers import Answer

SERVER_FILE = "serve.json"  # as qa.serve writes it
CORPUS_HEADER = "X-QA-Corpus"  # the corpus root the server's sources are relative to
TIMEOUT = 30.0  # seconds for an answer; connecting to a dead port fails at once

# options this path understands: name -> (key, takes a value, repeatable)
OPTIONS = {
    "-k": ("k", True, False),
    "--top": ("k", True, False),
    "--mode": ("mode", True, False),
    "--format": ("format", True, False),
    "--json": ("json", False, False),
    "--index": ("index", True, False),
    "--width": ("width", True, False),
    "-C": ("context", True, False),
    "--context": ("context", True, False),
    "--source": ("source", True, True),
    "--since": ("since", True, False),
    "--until": ("until", True, False),
    "--tag": ("tag", True, True),
    "--where": ("where", True, True),
    "--no-update": ("no_update", False, False),
    "--min-score": ("min_score", True, False),
}


def parse(argv: list[str]) -> dict[str, Any] | None:
    """`ask QUESTION [options]` as a dict, or None for anything else."""
    if len(argv) < 2 or argv[0] != "ask":
        return None
    found: dict[str, Any] = {"source": [], "tag": [], "where": []}
    question = None
    args = argv[1:]
    n = 0
    while n < len(args):
        arg = args[n]
        if arg == "--":
            if question is not None or n + 2 != len(args):
                return None
            question = args[n + 1]
            break
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in OPTIONS:
            key, takes, repeatable = OPTIONS[name]
            if takes and not eq:
                if n + 1 >= len(args):
                    return None
                n += 1
                value = args[n]
            elif not takes and eq:
                return None
            if repeatable:
                found[key].append(value)
            elif key in found:
                return None  # given twice: let the CLI say what it does
            else:
                found[key] = value if takes else True
        elif arg.startswith("-") or question is not None:
            return None  # --no-server, --questions, a collection, a typo: the CLI's job
        else:
            question = arg
        n += 1
    if not question or not question.strip():
        return None
    found["question"] = question
    return found


def try_server(argv: list[str]) -> int | None:
    """The exit code of `qa ask` answered by a running server, or None to run the CLI."""
    asked = parse(argv)
    if asked is None:
        return None
    try:
        return _ask(asked)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no server after all, or one that answers oddly: the CLI does it


def _ask(asked: dict[str, Any]) -> int | None:
    from qa.config import Settings
    from qa.errors import QAError

    try:
        k = int(asked["k"]) if "k" in asked else None
        width = int(asked["width"]) if "width" in asked else None
        context = int(asked.get("context", 0))
        min_score = float(asked.get("min_score", 0.0))
    except ValueError:
        return None
    if (k is not None and k < 1) or (width is not None and width < 20) or context < 0:
        return None
    if not 0.0 <= min_score <= 1.0:
        return None
    fmt = "json" if asked.get("json") else asked.get("format")
    if fmt is not None and fmt.lower() not in ("text", "json", "jsonl", "markdown"):
        return None
    try:
        settings = Settings.resolve(
            index=Path(asked["index"]) if "index" in asked else None,
            k=k,
            mode=asked.get("mode"),
        )
    except QAError:
        return None
    server = _server(settings.index)
    if server is None:
        return None
    url, token = server
    params: list[tuple[str, str]] = [
        ("q", asked["question"]),
        ("k", str(settings.k)),
        ("mode", settings.mode),
        ("context", str(context)),
        ("min_score", repr(min_score)),
    ]
    for key in ("since", "until"):
        if key in asked:
            params.append((key, asked[key]))
    params += [(key, v) for key in ("source", "tag", "where") for v in asked[key]]
    request = urllib.request.Request(f"{url}/api/ask?{urllib.parse.urlencode(params)}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = json.loads(response.read())
            corpus = urllib.parse.unquote(response.headers[CORPUS_HEADER])
    except urllib.error.HTTPError as exc:
        error = json.loads(exc.read()).get("error", {})
        if exc.code != 400 or error.get("code") != "bad_input":
            return None  # the CLI finds (and words) anything else itself
        return _failed(fmt or settings.format, width, error["code"], error["message"])
    _render(body, Path(corpus), fmt.lower() if fmt else settings.format, width)
    return 0


def _server(index: Path) -> tuple[str, str | None] | None:
    """(url, token) of a live server for this index, from its serve.json."""
    try:
        found = json.loads((index / SERVER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url, pid = found.get("url"), found.get("pid")
    if not isinstance(url, str) or not isinstance(pid, int):
        return None
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        return None  # the fast path stays on this machine
    try:
        os.kill(pid, 0)  # a server killed without cleaning up leaves a stale file
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    token = found.get("token")
    return url, token if isinstance(token, str) else None


def _failed(fmt: str, width: int | None, code: str, message: str) -> int:
    from qa.render import Printer

    Printer(fmt.lower(), width).error(code, message)
    return 1


def _render(body: dict[str, Any], corpus: Path, fmt: str, width: int | None) -> None:
    from qa.render import Printer

    answer = answer_from_json(body)
    printer = Printer(fmt, width)
    from qa.answers import Answers

    printer.answers(Answers(corpus=corpus, model="", answers=[answer]), [answer])
    sys.stdout.flush()


def answer_from_json(body: dict[str, Any]) -> Answer:
    """An Answer from schema.answer's JSON (qa.schema's inverse, for rendering)."""
    from qa.answers import Answer, Hit, Paragraph, SentenceMatch  # noqa: F811 (runtime import)
    from qa.corpus import Chunk

    hits = []
    for r in body["results"]:
        _, _, number = r["citation"].rpartition("#")
        chunk = Chunk(
            id=r["citation"],
            source=r["source"],
            doc_id=r["doc_id"],
            title=r["title"],
            paragraph=r["paragraph"],
            part=int(number.partition(".")[2] or 0),
            start=r["start"],
            end=r["end"],
            line_start=r["line_start"],
            line_end=r["line_end"],
            text=r["text"],
            sha256="",
            page_start=r.get("page_start"),
            page_end=r.get("page_end"),
        )
        context = None
        if "context" in r:
            before, after = (
                [
                    Paragraph(p["paragraph"], p["start"], p["end"], p["text"])
                    for p in r["context"][s]
                ]
                for s in ("before", "after")
            )
            context = (before, after)
        about = {key: r[key] for key in ("date", "url", "author", "tags")}
        highlight = (r["highlight"]["start"], r["highlight"]["end"])
        sentence = r.get("sentence")
        hits.append(
            Hit(
                chunk,
                r["score"],
                r["rank"],
                highlight,
                context,
                about,
                fused=r.get("fused"),
                dense=r.get("dense"),
                lexical=r.get("lexical"),
                lexical_share=r.get("lexical_share"),
                sentence=None if sentence is None else SentenceMatch(**sentence),
            )
        )
    return Answer(body["question"], hits, id=body.get("id"), answered=body["answered"])

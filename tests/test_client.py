"""`qa ask` through a running server: the same stdout as without it, and the client process
never imports numpy, onnxruntime or faiss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa.cli import app
from qa.client import parse
from qa.config import Settings
from qa.indexer import build_index
from qa.serve import server_file

from .conftest import REPO, FakeEmbedder, running_server

HEAVY = {"numpy", "onnxruntime", "faiss"}
CLIENT = (
    "import json, sys\n"
    "sys.argv = ['qa', *json.loads(sys.argv[1])]\n"
    "from qa.__main__ import main\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    open({out!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
)


@pytest.fixture
def served(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch, fake_models: object
) -> Iterator[Path]:
    """A server on 127.0.0.1 for tmp_path/index, its serve.json written; cwd tmp_path."""
    monkeypatch.chdir(tmp_path)
    settings = Settings(corpus=Path("corpus"), index=Path("index"))
    build_index(settings, embedder=FakeEmbedder())
    with running_server(settings) as url, server_file(Path("index"), url, None):
        yield tmp_path


def client(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    out = cwd / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", CLIENT.format(out=str(out)), json.dumps(list(args))],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    return done, set(json.loads(out.read_text()))


@pytest.mark.parametrize(
    "args",
    [
        ["-k", "3", "How deep is Lake Baikal in Siberia?"],
        ["--json", "-k", "2", "Which space flight center designed the Saturn V?"],
        ["--format", "markdown", "--source", "space/*", "rocket moon"],
        ["-C", "1", "--format=jsonl", "yeast bread dough"],
        ["--json", "What is the capital of Peru?"],
    ],
    ids=["text", "json", "markdown-filtered", "context-jsonl", "no-answer"],
)
def test_ask_through_the_server_prints_the_same_without_numpy(
    served: Path, args: list[str]
) -> None:
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
    expected = runner.invoke(app, ["ask", "--index", "index", "--no-update", *args])
    assert expected.exit_code == 0, expected.output
    done, modules = client(served, "ask", "--index", "index", *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected.stdout
    assert not modules & HEAVY, modules & HEAVY
    assert "qa.client" in modules and "qa.cli" not in modules  # it was the server's answer


def test_a_bad_filter_through_the_server_is_the_cli_error(served: Path) -> None:
    done, modules = client(served, "ask", "--index", "index", "--json", "--since", "x", "q?")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "bad_input"
    assert "qa.cli" not in modules


def test_a_stale_server_file_falls_back_to_the_cli(served: Path) -> None:
    path = served / "index" / "serve.json"
    path.write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 2**22 + 12345}))
    done, modules = client(served, "ask", "--index", "index", "--json", "--since", "x", "q?")
    assert done.returncode == 1 and json.loads(done.stdout)["error"]["code"] == "bad_input"
    assert "qa.cli" in modules  # the CLI's answer this time, not a dead server's
    assert parse(["ask", "--no-server", "q"]) is None
    assert parse(["ask", "--questions", "f.txt"]) is None
    assert parse(["ask", "-k", "3", "--", "-40 degrees?"]) == {
        "source": [],
        "tag": [],
        "where": [],
        "k": "3",
        "question": "-40 degrees?",
    }

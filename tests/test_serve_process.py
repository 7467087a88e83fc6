"""`qa serve --watch` as a process: serve.json appears, answers come, an edit to the corpus is
answered from the next generation, and SIGTERM (as Ctrl-C) removes serve.json."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.indexer import build_index

from .conftest import REPO, FakeEmbedder

LAUNCH = (
    "import sys, qa.embed as e\n"
    "from tests.conftest import FakeEmbedder\n"
    "e.load_embedder = lambda name, batch_size=32: FakeEmbedder(name)\n"
    "from qa.__main__ import main\n"
    "sys.argv = ['qa', *sys.argv[1:]]\n"
    "main()\n"
)


def get(url: str, **params: str) -> Any:
    with urllib.request.urlopen(f"{url}?{urllib.parse.urlencode(params)}", timeout=10) as r:
        return json.loads(r.read())


def test_serve_watch_picks_up_an_edit_and_cleans_up(tmp_path: Path, corpus: Path) -> None:
    index = tmp_path / "index"
    build_index(Settings(corpus=corpus, index=index), embedder=FakeEmbedder())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "serve", "--index", str(index), "--port", str(port)]
        + ["--watch"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (index / "serve.json").exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.1)
        url = json.loads((index / "serve.json").read_text())["url"]
        assert url == f"http://127.0.0.1:{port}"
        for _ in range(100):  # the file is written just before the port opens
            try:
                first = get(url + "/api/ask", q="How deep is Lake Baikal?", k="1")
                break
            except OSError:
                time.sleep(0.1)
        assert first["results"][0]["source"] == "lakes.md"
        time.sleep(1.0)  # the watcher is watching
        (corpus / "tea.txt").write_text("Green tea is steamed, black tea is oxidised fully.")
        found = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = get(url + "/api/ask", q="How is black tea oxidised?", k="1")
            if answer["results"][0]["source"] == "tea.txt":
                found = answer
                break
            time.sleep(0.3)
        assert found is not None, "the watcher's new generation was never answered from"
    finally:
        process.send_signal(signal.SIGTERM)  # what `kill PID` and service managers send
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert not (index / "serve.json").exists()

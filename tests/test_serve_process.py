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


def children(pid: int) -> set[int]:
    """The processes pid started (Linux's /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent has not collected it


def wait_for(check: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    return check()


def test_workers_share_the_port_and_a_dead_one_is_replaced(tmp_path: Path, corpus: Path) -> None:
    """--workers 2 --port 0: serve.json names the port the kernel chose; two worker processes
    answer; one killed is started again; the supervisor killed with SIGKILL takes its workers
    with it (they notice their stdin close)."""
    index = tmp_path / "index"
    build_index(Settings(corpus=corpus, index=index), embedder=FakeEmbedder())
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "serve", "--index", str(index), "--port", "0"]
        + ["--workers", "2"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )
    workers: set[int] = set()
    try:
        assert wait_for(lambda: (index / "serve.json").exists() or process.poll() is not None)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        url = json.loads((index / "serve.json").read_text())["url"]
        assert not url.endswith(":0")
        answer = get(url + "/api/ask", q="How deep is Lake Baikal?", k="1")
        assert answer["results"][0]["source"] == "lakes.md"
        workers = children(process.pid)
        assert len(workers) == 2
        for pid in workers:  # numpy on one BLAS thread a worker, unless the user chose
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            wanted = os.environ.get("OPENBLAS_NUM_THREADS", "1")
            assert f"OPENBLAS_NUM_THREADS={wanted}".encode() in environ
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: len(children(process.pid) - {victim}) == 2)
        assert replaced, "the killed worker was not replaced"
        workers = children(process.pid)
        for _ in range(10):  # every request answered, whichever worker takes it
            assert get(url + "/api/ask", q="How deep is Lake Baikal?", k="1")["results"]
        process.kill()  # no clean-up in the supervisor: the workers must go by themselves
        process.wait(timeout=10)
        assert wait_for(lambda: not any(alive(pid) for pid in workers), 20), "orphans left"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_that_cannot_open_the_index_is_one_clear_error(tmp_path: Path) -> None:
    """No index: the supervisor says it once (not once a worker), exits 1, no traceback."""
    index = tmp_path / "index"
    index.mkdir()
    process = subprocess.run(
        [sys.executable, "-c", LAUNCH, "serve", "--index", str(index), "--port", "0"]
        + ["--workers", "2"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 1, process.stderr
    assert "Traceback" not in process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, process.stderr
    assert str(index) in lines[0] or "index" in lines[0].lower()
    assert not (index / "serve.json").exists()

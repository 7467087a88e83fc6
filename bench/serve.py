"""qa serve under load, on loopback: 1, 8 and 32 concurrent clients for 20 s each against the
SciFact index, with an index update (`qa index`, one document appended) landing halfway
through each; p50/p99 latency, requests/s, errors. Then cold `qa ask` (a whole process) through
the server against without it (--no-server), interleaved, in the same run.

    .venv/bin/python bench/serve.py [--index /tmp/new-scifact2] [--seconds 20] [--cold 7]

The index is copied to a temporary folder (the original is never modified) with a copy of its
corpus.jsonl, which the updates append to. Bounded: every phase has a deadline, every request a
timeout, the server and updates are this script's subprocesses, killed at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCIFACT = Path("/work/shared/data/scifact")
ENV = {
    **os.environ,
    "PYTHONPATH": str(REPO),
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def questions(limit: int = 300) -> list[str]:
    lines = (SCIFACT / "queries.jsonl").read_text().splitlines()[:limit]
    return [json.loads(line)["text"] for line in lines]


def client_loop(
    port: int, asked: list[str], offset: int, until: float, out: list[float], errors: list[str]
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = offset
    while time.monotonic() < until:
        q = urllib.parse.urlencode({"q": asked[n % len(asked)], "k": "5"})
        n += 1
        began = time.perf_counter()
        try:
            conn.request("GET", f"/api/ask?{q}")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or not json.loads(body)["results"]:
                errors.append(f"{response.status}: {body[:200]!r}")
                continue
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        out.append(time.perf_counter() - began)
    conn.close()


def update(work: Path, n: int) -> subprocess.Popen[bytes]:
    with (work / "scifact" / "corpus.jsonl").open("a", encoding="utf-8") as f:
        doc = {"_id": f"bench-{n}", "title": f"Bench update {n}", "text": f"Update {n} " * 20}
        f.write(json.dumps(doc) + "\n")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qa",
            "index",
            str(work / "scifact"),
            "--index",
            str(work / "index"),
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def phase(port: int, clients: int, seconds: float, work: Path, n: int) -> dict[str, float]:
    asked = questions()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=client_loop, args=(port, asked, 37 * c, until, latencies[c], errors)
        )
        for c in range(clients)
    ]
    began = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds / 2)
    updating = update(work, n)
    for t in threads:
        t.join(timeout=seconds + 60)
    elapsed = time.monotonic() - began
    update_rc = updating.wait(timeout=300)
    every = sorted(x for per in latencies for x in per)
    return {
        "clients": clients,
        "requests": len(every),
        "errors": len(errors),
        "p50_ms": 1000 * every[len(every) // 2] if every else float("nan"),
        "p99_ms": 1000 * every[min(len(every) - 1, int(len(every) * 0.99))] if every else 0,
        "rps": len(every) / elapsed,
        "update_rc": update_rc,
        "first_error": errors[0] if errors else "",
    }


def cold(work: Path, runs: int) -> dict[str, float]:
    question = "What do 0-dimensional biomaterials lack?"
    timings: dict[str, list[float]] = {"server": [], "no_server": []}
    for _ in range(runs):
        for name, extra in (("server", []), ("no_server", ["--no-server"])):
            began = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "qa", "ask", "--index", str(work / "index"), "--no-update"]
                + extra
                + [question],
                env=ENV,
                capture_output=True,
                timeout=120,
                check=False,
            )
            timings[name].append(time.perf_counter() - began)
            assert done.returncode == 0, done.stderr
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, default=Path("/tmp/new-scifact2"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cold", type=int, default=7)
    parser.add_argument("--workers", type=int, default=None, help="qa serve's (default: its own)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qa-bench-serve-"))
    server = None
    try:
        shutil.copytree(args.index, work / "index", ignore=shutil.ignore_patterns("serve.json"))
        (work / "scifact").mkdir()
        shutil.copy(SCIFACT / "corpus.jsonl", work / "scifact" / "corpus.jsonl")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "qa", "serve", "--index", str(work / "index")]
            + ["--port", str(port)]
            + ([] if args.workers is None else ["--workers", str(args.workers)]),
            env=ENV,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        # serve.json is written once every worker answers (the port is open before that)
        while time.monotonic() < deadline and not (work / "index" / "serve.json").exists():
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            time.sleep(0.2)
        rows = [phase(port, c, args.seconds, work, n) for n, c in enumerate((1, 8, 32))]
        timings = cold(work, args.cold)
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"qa serve, SciFact (9882 passages, hybrid, k=5), {args.seconds:.0f} s per row, "
        f"one `qa index` update landing halfway through each; {os.cpu_count()} cores, "
        f"qa serve --workers {args.workers or 'default (one a core, at most 4)'}, "
        "clients are threads of this process (they share the cores with the server)",
        "clients  requests  errors  p50 ms  p99 ms  req/s  update rc",
    ]
    for r in rows:
        lines.append(
            f"{r['clients']:>7}  {r['requests']:>8}  {r['errors']:>6}  {r['p50_ms']:>6.1f}  "
            f"{r['p99_ms']:>6.1f}  {r['rps']:>5.1f}  {r['update_rc']}"
            + (f"  first error: {r['first_error']}" if r["first_error"] else "")
        )
    lines.append(
        f"throughput 8 vs 1 client: x{rows[1]['rps'] / rows[0]['rps']:.2f}; "
        f"32 vs 1: x{rows[2]['rps'] / rows[0]['rps']:.2f}"
    )
    lines.append(
        f"cold `qa ask` (whole process), median of {args.cold} interleaved: through the server "
        f"{timings['server']:.3f} s, --no-server {timings['no_server']:.3f} s"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()

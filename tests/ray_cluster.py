"""A real Ray cluster (`ray start --head`) for the tests and benchmarks: `cpus` CPUs on
127.0.0.1, its session files under a folder of the caller's, token authentication off (nothing
but the caller reaches it, and a token would be written to ~/.ray), stopped when the block ends
with every process it started.

Ray's GCS listens on every interface whatever --node-ip-address says; nothing else can reach
this machine here; elsewhere, run it behind a firewall.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .milvus_server import free_port

RAY = Path(sys.executable).parent / "ray"
QUIET = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
START_S = 90  # `ray start` answers within this, or the block fails


def sigint_default() -> None:
    """In the child: SIGINT stops `ray start --block` even when this process ignores it (a
    background job's does), so the cluster can be stopped the way it wants to be."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def head(cpus: int, temp: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """(address, the `ray start` process) of a cluster of `cpus` CPUs; this process's
    environment has QUIET while the block runs, for the clients it makes."""
    port = free_port()
    # fmt: off
    command = [
        str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
        "--port", str(port), "--num-cpus", str(cpus), "--include-dashboard", "false",
        "--ray-client-server-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()), "--temp-dir", str(temp),
        "--disable-usage-stats",
    ]
    # fmt: on
    saved = {k: os.environ.get(k) for k in QUIET}
    os.environ.update(QUIET)
    log_path = temp / "start.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=sigint_default,
    )
    try:
        deadline = time.monotonic() + START_S
        while b"Ray runtime started" not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", process
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        process.send_signal(signal.SIGINT)  # --block stops the cluster on Ctrl-C (SIGTERM: no)
        try:
            process.wait(timeout=30)
        finally:
            for pid in session(process.pid):  # whatever outlived it, of its own session only
                os.kill(pid, signal.SIGKILL)
            process.wait(timeout=10)
            log.close()


def session(sid: int) -> list[int]:
    """The processes of session sid (what `ray start` started in the one it leads)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getsid(int(entry.name)) == sid:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids

"""`qa serve --workers N`: N processes answer on one listening socket, each with its own Engine.

Why processes: one process answers in threads that share the GIL. The encoder, FAISS and
numpy release it, but the re-rank's Python and the HTTP and JSON work do not, so on 2 cores
one process gained 26% from 8 clients over 1 (bench/results/serve.txt). Each worker is a whole
Engine (its own copy of the index's in-memory parts; the memory-mapped arrays are shared
through the page cache), so requests run in parallel on every core.

How: the supervisor (the `qa serve` that was started) binds the socket, then starts each worker
as the same command line (sys.orig_argv), with WORKER_ENV naming the inherited socket's file
descriptor and a pipe to report on. A worker opens its Engine, reports that it is ready (or the
error that stopped it) and serves until it is told to stop or its supervisor is gone (its
stdin, the supervisor's end of a pipe, closes). The supervisor returns once every worker is
ready, then watches them: one that dies is started again, and on Ctrl-C or SIGTERM all are
stopped, each within a bounded wait. Every worker picks up a new index generation by itself,
at its next request (qa.engine), so `--watch` runs in the supervisor alone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.errors import InputError, QAError

log = logging.getLogger(__name__)

WORKER_ENV = "QA_SERVE_WORKER"  # "SOCKET_FD REPORT_FD" in a worker's environment only
MAX_AUTO = 4  # workers by default: one a core, at most this many (each holds an Engine)
STOP_WAIT = 10.0  # seconds a worker has to finish its requests once told to stop
RESTARTS = 5  # a worker that dies is started again, unless this many died in RESTART_WINDOW
RESTART_WINDOW = 60.0
# A worker's numpy on one BLAS thread (unless the environment says otherwise): a question's
# products are small, and OpenBLAS's second thread spinning on the other core made one client
# busy both cores, so 8 clients on 2 workers gained x1.05-1.18 over 1; on one thread, x1.80-1.92
# (2 workers, 2 cores, 3 interleaved pairs of runs; 1-client p50 16.7 ms either way).
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def default_workers(index_dir: Path) -> int:
    """One a core, at most MAX_AUTO; one for an index in a file only one process may open."""
    if single_process_store(index_dir):
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_AUTO))


def single_process_store(index_dir: Path) -> str | None:
    """The index's store when only one process at a time may open it (a Milvus Lite file)."""
    from qa.store import read_manifest

    try:
        uri = str(read_manifest(index_dir).extra.get("store", {}).get("uri", ""))
    except (QAError, AttributeError):
        return None  # no index, or damaged: the worker that opens it says so
    if not uri:
        return None  # FAISS files: any number of processes read them
    from qa.milvus_store import parse_uri

    return uri if parse_uri(uri).lite else None


def check_workers(index_dir: Path, workers: int) -> None:
    """InputError for more workers than the index's store lets open it."""
    store = single_process_store(index_dir) if workers > 1 else None
    if store:
        raise InputError(
            f"The index's vectors are in {store}, a Milvus Lite file that one process at a time "
            "may open: serve it with --workers 1, or move it to a Milvus server "
            "(qa index --store milvus://HOST:PORT/COLLECTION)."
        )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on (port 0: a free one, read back)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise QAError(f"Cannot listen on {host}: {exc.strerror}.") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise QAError(
            f"Cannot listen on {host}:{port}: {exc.strerror} (is another server using it? "
            "pick another with --port)."
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    report: int  # the read end of the pipe the worker reports on


def start(sock: socket.socket) -> Worker:
    """One worker: this command line again, serving on sock."""
    read, write = os.pipe()
    env = {**os.environ, WORKER_ENV: f"{sock.fileno()} {write}", **ONE_BLAS_THREAD}
    env.update({name: os.environ[name] for name in ONE_BLAS_THREAD if name in os.environ})
    try:
        process = subprocess.Popen(
            sys.orig_argv, env=env, pass_fds=(sock.fileno(), write), stdin=subprocess.PIPE
        )
    except OSError as exc:
        os.close(read)
        raise QAError(f"Cannot start a qa serve worker: {exc}.") from None
    finally:
        os.close(write)
    return Worker(process, read)


def report_of(worker: Worker) -> dict[str, Any]:
    """What the worker reported: {"ready": true} or {"error": message}; waits for it."""
    with os.fdopen(worker.report, "rb") as f:
        raw = f.read()
    try:
        return dict(json.loads(raw))
    except ValueError:
        code = worker.process.wait()
        return {"error": f"a qa serve worker exited (code {code}) before it was ready"}


def supervise(
    sock: socket.socket, workers: int, ready: Callable[[], None], notify: Callable[[str], None]
) -> None:
    """Start the workers, call ready() once every one of them answers, then keep them running
    until Ctrl-C (KeyboardInterrupt) or SIGTERM (SystemExit, see qa.serve)."""
    pool: list[Worker] = []
    try:
        for _ in range(workers):
            pool.append(start(sock))
        for worker in pool:
            found = report_of(worker)
            if "error" in found:
                raise QAError(str(found["error"]))
        ready()
        deaths: list[float] = []
        while True:
            time.sleep(0.2)
            for n, worker in enumerate(pool):
                code = worker.process.poll()
                if code is None:
                    continue
                now = time.monotonic()
                deaths = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
                if len(deaths) > RESTARTS:
                    raise QAError(
                        f"qa serve's workers keep exiting ({len(deaths)} in "
                        f"{RESTART_WINDOW:.0f} s, the last with code {code}): stopped."
                    )
                notify(f"a worker exited (code {code}); starting another")
                pool[n] = start(sock)
                threading.Thread(target=_log_failure, args=(pool[n],), daemon=True).start()
    finally:
        stop(pool)


def _log_failure(worker: Worker) -> None:
    found = report_of(worker)
    if "error" in found:
        log.warning("a restarted worker failed: %s", found["error"])


def stop(pool: list[Worker]) -> None:
    """Tell every worker to stop (SIGTERM: uvicorn finishes the requests it has), then kill
    those still running after STOP_WAIT."""
    for worker in pool:
        if worker.process.poll() is None:
            try:
                worker.process.send_signal(signal.SIGTERM)
            except OSError:
                pass
    deadline = time.monotonic() + STOP_WAIT
    for worker in pool:
        try:
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        if worker.process.stdin is not None:
            worker.process.stdin.close()


def worker_role() -> tuple[int, int] | None:
    """(socket fd, report fd) when this process is a worker; taken out of the environment so
    nothing this process starts inherits it."""
    value = os.environ.pop(WORKER_ENV, None)
    if value is None:
        return None
    sock_fd, report_fd = (int(part) for part in value.split())
    return sock_fd, report_fd


def report(fd: int, error: str | None = None) -> None:
    body = {"error": error} if error is not None else {"ready": True}
    with os.fdopen(fd, "wb") as f:
        f.write(json.dumps(body).encode())


def on_orphaned(stop_serving: Callable[[], None]) -> None:
    """Call stop_serving once the supervisor is gone (this process's stdin, its pipe, closes),
    so that a supervisor killed with SIGKILL leaves no worker behind; exit hard if serving has
    not stopped STOP_WAIT later."""

    def wait() -> None:
        try:  # the raw descriptor: a buffered reader's lock would hang interpreter shutdown
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop_serving()
        time.sleep(STOP_WAIT)
        os._exit(0)

    threading.Thread(target=wait, name="qa-supervisor-gone", daemon=True).start()

"""A real standalone Milvus server (the `milvus` wheel: Milvus 2.3.5) for the tests and
benchmarks: data and logs under a folder of the caller's, its proxy on a free port of
127.0.0.1, its components advertising 127.0.0.1, stopped when the block ends.

Milvus 2.3's components listen on every interface of their ports (`ip` only sets the address
they advertise): the embedded etcd on 127.0.0.1, the rest on the ports the package finds free
from its defaults (19529-21124, 53100, 13333, 9091). Nothing else can reach this machine here;
elsewhere, run it behind a firewall.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

COMPONENTS = (
    "rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode", "dataCoord",
    "dataNode",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def standalone(base: Path, timeout: float = 120.0) -> Iterator[str]:
    """A started server's address (http://127.0.0.1:PORT); stopped (bounded) afterwards."""
    from milvus import MilvusServer, MilvusServerConfig

    server = MilvusServer(MilvusServerConfig(), wait_for_started=False)
    server.set_base_dir(str(base))
    for name in COMPONENTS:
        server.config.extra_configs[f"{name}.ip"] = "127.0.0.1"
    port = free_port()
    server.listen_port = port
    started = time.monotonic()
    try:
        server.start()
        server.wait_started(timeout=int(timeout * 1000))
        address = f"http://127.0.0.1:{port}"
        _ready(address, started + timeout)
        yield address
    finally:
        server.stop()


def _ready(address: str, deadline: float) -> None:
    """Until the proxy answers a request (healthz says OK a little before)."""
    from pymilvus import MilvusClient

    while True:
        try:
            client = MilvusClient(uri=address, timeout=5)
            client.list_collections()
            client.close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)

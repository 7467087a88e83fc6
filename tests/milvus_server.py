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
    import milvus
    from milvus import MilvusServer, MilvusServerConfig

    base.mkdir(parents=True, exist_ok=True)
    config = MilvusServerConfig(template=str(_template(base)))
    config.glog_conf_file = str(Path(milvus.__file__).parent / "data" / "glog.conf")
    server = MilvusServer(config, wait_for_started=False)
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


def _template(base: Path) -> Path:
    """The package's config template with an embedded-etcd config of free ports: its peer
    port is otherwise always 2380, and a second server on the machine fails to start."""
    import milvus

    template = (Path(milvus.__file__).parent / "data" / "config.yaml.template").read_text()
    client, peer = free_port(), free_port()
    etcd = base / "etcd.yaml"
    etcd.write_text(
        f"name: qa-test\nlisten-client-urls: http://127.0.0.1:{client}\n"
        f"advertise-client-urls: http://127.0.0.1:{client}\n"
        f"listen-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-cluster: qa-test=http://127.0.0.1:{peer}\n"
    )
    old = "  endpoints: localhost:{{ etcd_port(int): 2379 }}"
    assert old in template, "the milvus wheel's config template changed"
    template = template.replace(old, f"  endpoints: 127.0.0.1:{client}")
    used = "  use:\n    embed: true"
    assert used in template, "the milvus wheel's config template changed"
    template = template.replace(used, f"  config:\n    path: {etcd}\n{used}")
    path = base / "milvus.yaml.template"
    path.write_text(template)
    return path


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

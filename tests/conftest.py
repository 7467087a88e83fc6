"""Shared fixtures: a deterministic fake embedder and small corpora in tmp_path."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from qa import embed

REPO = Path(__file__).resolve().parent.parent


class FakeEmbedder:
    """Hashed bag of words -> unit vectors. Texts sharing words are close; nothing is loaded."""

    def __init__(self, name: str = "fake-model", dim: int = 256, max_tokens: int = 64) -> None:
        self._name = name
        self.dim = dim
        self._max_tokens = max_tokens
        self.embedded: list[str] = []  # every text ever embedded, in order

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def embed(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        self.embedded.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in set(re.findall(r"\w+", text.lower())):
                digest = hashlib.md5(f"{self._name}:{word}".encode()).digest()
                out[row, digest[0] % self.dim] += 1.0 if digest[1] % 2 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else np.eye(self.dim, dtype=np.float32)[0]
        return out


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeEmbedder]:
    """Make every model name load a FakeEmbedder (one per name, kept here for inspection)."""
    made: dict[str, FakeEmbedder] = {}

    def load(name: str, batch_size: int = 32) -> FakeEmbedder:
        return made.setdefault(name, FakeEmbedder(name))

    monkeypatch.setattr(embed, "load_embedder", load)
    return made


ARTICLES = {
    "lakes.md": "# Lakes of the north\n\nLake Baikal is the deepest lake in the world, reaching "
    "1642 metres at its deepest point in Siberia.\n\nIt holds about a fifth of the fresh water "
    "on the surface of the earth and is home to the nerpa seal.\n",
    "space/rockets.txt": "Rockets\n\nThe Saturn V rocket carried the Apollo astronauts to the "
    "moon. It was designed under Wernher von Braun at the Marshall Space Flight Center.\n\n"
    "It remains the most powerful rocket ever flown, and the tallest one too.\n\n"
    "Subscribe to our newsletter\n",
    "cooking.txt": "Bread rises because yeast ferments sugars and releases carbon dioxide gas "
    "into the dough while it proves in a warm place.\n",
}


@pytest.fixture
def here(
    tmp_path: Path,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_models: dict[str, FakeEmbedder],
) -> Path:
    """Run in a folder holding corpus/, as a user of the README would, with fake models."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for name, text in ARTICLES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def generation(index: Path) -> Path:
    """The folder of an index's current generation (qa.layout), where its files are."""
    return index / (index / "CURRENT").read_text().strip()


@pytest.fixture(autouse=True)
def no_user_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests never read the real user's config.toml or write to their data folder, and start
    with no QA_* variable set."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    for name in (
        "QA_CORPUS",
        "QA_INDEX",
        "QA_MODEL",
        "QA_BATCH_SIZE",
        "QA_PRECISION",
        "QA_STORE",
        "QA_K",
        "QA_MODE",
        "QA_FORMAT",
        "QA_COLLECTION",
        "QA_RAY",
    ):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def running_server(settings: object) -> Iterator[str]:
    """qa serve's app for an index, on a free port of 127.0.0.1, in a thread; its URL. Stopped
    (bounded) when the block ends."""
    import socket
    import threading
    import time

    import uvicorn

    from qa.engine import Engine
    from qa.serve import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(Engine.open(settings))  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start in 20 s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

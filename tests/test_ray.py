"""qa index --ray: passages embedded on a real Ray cluster (`ray start --head` on this machine,
2 CPUs, its files under tmp_path), compared with a local build (README "Indexing on a Ray
cluster")."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qa.cli import app
from qa.config import Settings
from qa.errors import ClusterError
from qa.indexer import build_index
from qa.search import ask
from qa.store import load_index

from .conftest import REPO, generation
from .milvus_server import free_port
from .ray_cluster import head

pytestmark = pytest.mark.model

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
QUESTIONS = [
    "How much is JD.com paying for its stake in Farfetch?",
    "Where did JD.com make its runway debut?",
    "Which harbour did the lighthouse keeper of article 7 watch?",
]
WORDS = (
    "harbour lighthouse keeper storm ferry granite quarry orchard river bridge mill salt "
    "market winter barley chapel tide cliff lantern boat net village school baker clock "
    "tower road mountain pass snow valley shepherd wool loom copper mine railway station"
).split()


@dataclass(frozen=True)
class Cluster:
    address: str
    process: subprocess.Popen[bytes]

    def workers(self) -> list[int]:
        """The pids of this cluster's embedding actors (processes under its `ray start`)."""
        parents: dict[int, int] = {}
        titles: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                titles[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])

        def ours(pid: int) -> bool:
            while pid > 1:
                if pid == self.process.pid:
                    return True
                pid = parents.get(pid, 1)
            return False

        return [p for p, t in titles.items() if t.startswith("ray::MapWorker") and ours(p)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A Ray cluster of 2 CPUs on 127.0.0.1, for this module; stopped (bounded) at its end."""
    with head(2, tmp_path_factory.mktemp("ray")) as (address, process):
        yield Cluster(address, process)


def write_corpus(root: Path, edition: int = 0, changed: range = range(0)) -> None:
    """The shipped corpus and 30 made-up articles of 12 short paragraphs (about 370 passages,
    24 batches); the articles in `changed` get new paragraphs for an edition."""
    shutil.copytree(REPO / "corpus", root, dirs_exist_ok=True)
    for n in range(30):
        rng = random.Random(n * 1000 + (edition if n in changed else 0))
        paragraphs = [
            " ".join(
                f"The {rng.choice(WORDS)} of article {n} stood by the {rng.choice(WORDS)} "
                f"near the {rng.choice(WORDS)} {rng.choice(WORDS)} in year {rng.randrange(2000)}."
                for _ in range(3)
            )
            for _ in range(12)
        ]
        (root / f"article-{n:02}.txt").write_text(f"Article {n}\n\n" + "\n\n".join(paragraphs))


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with corpus/ and index/, built here (no Ray): what every Ray build matches."""
    root = tmp_path_factory.mktemp("local")
    write_corpus(root / "corpus")
    build_index(Settings(corpus=root / "corpus", index=root / "index"))
    return root


def vectors_by_id(index: Path) -> dict[str, np.ndarray]:
    stored = load_index(index)
    return dict(zip((c.id for c in stored.chunks), stored.vectors(), strict=True))


def assert_same_vectors(index: Path, expected: Path) -> None:
    ours, theirs = vectors_by_id(index), vectors_by_id(expected)
    assert ours.keys() == theirs.keys()
    least = min(float(ours[i] @ theirs[i]) for i in ours)
    assert least >= 0.9999, least


def top_hits(index: Path) -> list[list[str]]:
    answers = ask(Settings(index=index), QUESTIONS, k=3, update=False)
    return [[h.chunk.id for h in a.hits] for a in answers.answers]


def test_a_build_on_the_cluster_has_the_local_builds_vectors_and_answers(
    cluster: Cluster, local: Path, tmp_path: Path
) -> None:
    write_corpus(tmp_path / "corpus")
    code = runner.invoke(
        app, ["index", str(tmp_path / "corpus"), "--index", str(tmp_path / "index"),
              "--ray", cluster.address, "--json"],
    )  # fmt: skip
    assert code.exit_code == 0, code.output
    report = json.loads(code.stdout)
    assert report["embedded"] == report["passages"] > 300
    assert_same_vectors(tmp_path / "index", local / "index")
    assert top_hits(tmp_path / "index") == top_hits(local / "index")
    # the token states the re-rank reads are the local build's too
    ours, theirs = generation(tmp_path / "index"), generation(local / "index")
    for name in ("tokens.npy", "sentences.npy"):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    assert json.loads((ours / "manifest.json").read_text())["precision"] == "int8"


def test_an_update_sends_only_changed_passages_and_a_dead_worker_keeps_the_index(
    cluster: Cluster, local: Path, tmp_path: Path
) -> None:
    here, there = tmp_path / "ray", tmp_path / "here"
    for copy in (here, there):
        shutil.copytree(local, copy)
        write_corpus(copy / "corpus", edition=1, changed=range(20))  # 240 new paragraphs
    before = (here / "index" / "CURRENT").read_text()
    old_answers = top_hits(here / "index")
    killed: list[int] = []

    def kill_a_worker(stage: str, done: int, total: int) -> None:
        if stage == "embedding" and not killed:
            killed.extend(cluster.workers()[:1])
            os.kill(killed[0], signal.SIGKILL)

    def ctrl_c(stage: str, done: int, total: int) -> None:
        if stage == "embedding":
            os.kill(os.getpid(), signal.SIGINT)

    settings = Settings(index=here / "index", ray=cluster.address)
    live = signal.signal(signal.SIGINT, signal.default_int_handler)  # even in a background job
    try:
        with pytest.raises(KeyboardInterrupt):
            build_index(settings, progress=ctrl_c)
    finally:
        signal.signal(signal.SIGINT, live)
    assert (here / "index" / "CURRENT").read_text() == before
    with pytest.raises(ClusterError, match="the index is as it was: run `qa index` again"):
        build_index(settings, progress=kill_a_worker)
    assert killed
    assert (here / "index" / "CURRENT").read_text() == before  # still the previous generation
    assert top_hits(here / "index") == old_answers  # and it answers as it did

    report = build_index(settings)  # the re-run finishes the work
    local_report = build_index(Settings(index=there / "index"))
    assert report.embedded == local_report.embedded == 240  # only the new passages travelled
    assert report.reused == local_report.reused
    assert_same_vectors(here / "index", there / "index")
    assert top_hits(here / "index") == top_hits(there / "index")


def test_without_ray_the_option_says_how_to_install_it(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = runner.invoke(app, ["index", "--ray", "127.0.0.1:6379"])
    assert result.exit_code == 1, result.output
    assert "pip install 'qa[ray]'" in result.stderr and "Traceback" not in result.output
    assert not (here / "index").exists()  # it failed before anything was written


def test_an_address_where_nothing_answers_fails_at_once_in_one_line(here: Path) -> None:
    started = time.monotonic()
    result = runner.invoke(app, ["index", "--ray", f"127.0.0.1:{free_port()}", "--json"])
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "cluster" and "Cannot connect to a Ray cluster" in error["message"]
    assert "ray start --head" in error["message"] and len(result.stderr.splitlines()) == 1
    assert time.monotonic() - started < 30  # not ray.init's minute of retries
    result = runner.invoke(app, ["index", "--ray", "nowhere"])
    assert result.exit_code == 1 and "is not a Ray address" in result.stderr


def test_qa_ray_is_a_setting_and_the_update_before_an_ask_never_uses_it(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_RAY", "127.0.0.1:1")
    settings = Settings.resolve()
    assert settings.ray == "127.0.0.1:1" and settings.origins["ray"] == "environment"
    (here / "qa.toml").write_text('ray = "auto"\n')
    monkeypatch.delenv("QA_RAY")
    assert Settings.resolve().origins["ray"].endswith("qa.toml")
    # an ask in a fresh process: it builds the index, then updates it, without Ray
    (here / "qa.toml").unlink()
    code = (
        "import sys, json, pathlib\nfrom typer.testing import CliRunner\nimport qa.embed\n"
        "from tests.conftest import FakeEmbedder\n"
        "qa.embed.load_embedder = lambda name, batch_size=32: FakeEmbedder(name)\n"
        "from qa.cli import app\n"
        "r = CliRunner().invoke(app, ['ask', 'Saturn V'])\nassert r.exit_code == 0, r.output\n"
        "pathlib.Path('corpus/new.txt').write_text('A new article about harbour seals.')\n"
        "r = CliRunner().invoke(app, ['ask', 'harbour seals'])\n"
        "assert r.exit_code == 0 and 'Corpus changed' in r.output, r.output\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "QA_RAY": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=here, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "ray" not in json.loads(done.stdout.strip().splitlines()[-1])
    monkeypatch.setenv("QA_RAY", "ray://head:10001")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0 and "setting ray" in result.stdout
    assert "ray://head:10001 (from environment)" in result.stdout

"""The Milvus store (qa.milvus_store) against a REAL standalone Milvus 2.3.5 server started
here on 127.0.0.1 (once per session) and Milvus Lite files in tmp_path: the same answers as
FAISS, filters before top-k with FAISS's rows, incremental updates by passage id, a failed
update invisible, collections qa did not create never touched, one-line errors."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qa import layout
from qa.cli import app
from qa.config import Settings
from qa.errors import StoreError
from qa.filters import Filters
from qa.indexer import build_index
from qa.search import ask, search
from qa.store import load_index

from .conftest import ARTICLES, REPO, FakeEmbedder
from .test_e2e import QUESTIONS

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone Milvus 2.3.5 (the `milvus` wheel) on 127.0.0.1: HOST:PORT."""
    pytest.importorskip("milvus")
    from .milvus_server import standalone

    with standalone(tmp_path_factory.mktemp("milvus-server"), timeout=120) as address:
        yield address.removeprefix("http://")


_names = iter(range(1_000_000))


@pytest.fixture(params=["lite", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URI of each kind: a Milvus Lite file, a fresh collection on the server."""
    if request.param == "lite":
        return f"milvus-lite:{tmp_path / 'milvus.db'}"
    address = request.getfixturevalue("server")
    return f"milvus://{address}/qa_test_{next(_names)}"


def client_of(uri: str) -> tuple[object, str]:
    from qa.milvus_store import connect, parse_uri

    spec = parse_uri(uri)
    return connect(spec), spec.collection


# ---- the same answers as FAISS, with the real model ---------------------------------------


@pytest.fixture(scope="session")
def faiss_built(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("milvus-e2e")
    shutil.copytree(REPO / "corpus", root / "corpus")
    settings = Settings(corpus=root / "corpus", index=root / "faiss")
    build_index(settings)
    return settings


@pytest.mark.model
def test_answers_equal_the_faiss_backend(faiss_built: Settings, store: str, tmp_path: Path) -> None:
    """A FAISS index moved to Milvus re-embeds nothing and answers the same: same passages
    in the same order, scores within rounding, in hybrid and dense mode."""
    shutil.copytree(faiss_built.index, tmp_path / "moved")
    settings = replace(faiss_built, index=tmp_path / "moved", store=store)
    report = build_index(settings)
    assert report.embedded == 0 and report.reused == report.chunks == 10
    index = load_index(settings.index)
    assert index.manifest.store.startswith("milvus") and index.exact is None
    assert not any(p.suffix == ".faiss" for p in index.path.iterdir())
    questions = [q for q, _ in QUESTIONS]
    for mode in ("dense", "hybrid"):
        want = ask(faiss_built, questions, k=3, mode=mode, update=False)
        got = ask(replace(settings, store=None), questions, k=3, mode=mode, update=False)
        for a, b in zip(want.answers, got.answers, strict=True):
            assert [h.chunk.id for h in a.hits] == [h.chunk.id for h in b.hits], a.question
            assert np.allclose([h.score for h in a.hits], [h.score for h in b.hits], atol=1e-4)
            assert [h.sentence for h in a.hits] == [h.sentence for h in b.hits]
    for (_, expected), answer in zip(QUESTIONS, got.answers, strict=True):  # hybrid's
        assert expected in answer.hits[0].chunk.text


# ---- filters: Milvus expressions with the row mask's rows ----------------------------------

HOSTILE = ['O"Brien', "back\\slash", "it's", 'a\\"b', "new\nline", "tab\there", "naïve 中文"]


def filtered_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    for n in range(24):
        folder = corpus / ("news" if n % 3 else "blog")
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "title": f"Article {n}",
            "date": f"2024-{n % 12 + 1:02d}-{n % 27 + 1:02d}" if n % 5 else None,
            "tags": [HOSTILE[n % len(HOSTILE)], "Science" if n % 2 else "sport"],
            "author": HOSTILE[(n + 3) % len(HOSTILE)],
            "region": "north" if n % 4 else 'we"st',
        }
        meta = {k: v for k, v in meta.items() if v is not None}
        body = f"Lake river forest number {n}. " + "Rocket moon orbit. " * (n % 3 + 1)
        (folder / f"a{n:02d}.md").write_text(
            "---\n" + json.dumps(meta) + "\n---\n\n" + body, encoding="utf-8"
        )
    return corpus


FILTERS = [
    Filters(sources=("news/*",)),
    Filters(sources=("blog/a0?.md", "nothing*")),
    Filters(sources=("missing/*",)),
    Filters(since="2024-03-01", until="2024-06-30"),
    Filters(until="2024-02"),
    Filters(tags=("science",)),
    *(Filters(tags=(value,)) for value in HOSTILE),
    *(Filters(where=(("author", value),)) for value in HOSTILE),
    Filters(where=(("region", 'WE"ST'),)),
    Filters(where=(("title", "article 7"),)),
    Filters(where=(("tag", "SPORT"),), since="2024-05-01"),
    Filters(where=(("nosuchkey", "x"),)),
]


def test_filters_select_the_rows_the_faiss_mask_selects(store: str, tmp_path: Path) -> None:
    corpus = filtered_corpus(tmp_path)
    fake = FakeEmbedder()
    build_index(Settings(corpus=corpus, index=tmp_path / "faiss"), embedder=fake)
    build_index(Settings(corpus=corpus, index=tmp_path / "milvus", store=store), embedder=fake)
    local, remote = load_index(tmp_path / "faiss"), load_index(tmp_path / "milvus")
    table = local.table()
    assert table is not None and [c.id for c in local.chunks] == [c.id for c in remote.chunks]
    query = fake.embed(["lake rocket"])
    for chosen in FILTERS:
        mask = table.row_mask(chosen)
        [found] = remote.search(query, 100, mask, chosen)
        assert {row for row, _ in found} == set(np.flatnonzero(mask).tolist()), chosen
        [want] = local.search(query, 5, mask, chosen)
        [got] = remote.search(query, 5, mask, chosen)
        assert np.allclose([s for _, s in want], [s for _, s in got], atol=1e-5), chosen
        for mode in ("hybrid", "lexical"):
            a = search(local, fake, ["lake rocket"], 5, mode, chosen)[0]
            b = search(remote, fake, ["lake rocket"], 5, mode, chosen)[0]
            assert {h.chunk.id for h in a.hits} == {h.chunk.id for h in b.hits}, (chosen, mode)


def test_string_literals_are_escaped_for_milvus() -> None:
    from qa.milvus_store import expression, literal

    assert literal('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    where = expression(Filters(sources=('x"y',), tags=("q\\",)), ['x"y'])
    assert where == '(source in ["x\\"y"]) and (array_contains(keys, "tag=q\\\\"))'
    assert expression(Filters(sources=("none",)), ["a.md"]) is None


# ---- updates, failures, ownership ---------------------------------------------------------


def rows(uri: str, where: str) -> list[dict[str, int]]:
    client, name = client_of(uri)
    return client.query(  # type: ignore[attr-defined, no-any-return]
        name, filter=where, output_fields=["pid", "born", "died"], consistency_level="Strong"
    )


def test_an_update_inserts_only_changed_passages_and_a_failed_one_is_invisible(
    store: str, tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa.milvus_store import ALIVE

    fake = FakeEmbedder()
    settings = Settings(corpus=corpus, index=tmp_path / "index", store=store)
    first = build_index(settings, embedder=fake)
    assert len(rows(store, "born == 1")) == first.chunks
    (corpus / "cooking.txt").write_text("Sourdough uses a starter of wild yeast instead.\n")
    second = build_index(replace(settings, store=None), embedder=fake)
    assert second.embedded == 1 and second.removed == 1
    assert len(rows(store, "born == 2")) == 1  # the one new passage, nothing else re-inserted
    assert len(rows(store, "died == 2")) == 1  # the old one, kept for readers of generation 1
    assert len(rows(store, f"died == {ALIVE}")) == second.chunks
    question = ["How deep is Lake Baikal?"]
    before = search(load_index(settings.index), fake, question, 3)[0]

    # An update that fails after writing to Milvus, before publishing: readers see generation 2
    (corpus / "lakes.md").write_text("# Lakes\n\nLake Titicaca is high in the Andes.\n")

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(layout, "publish", crash)
    with pytest.raises(Exception, match="disk full"):
        build_index(replace(settings, store=None), embedder=fake)
    assert rows(store, "born == 3")  # the failed writer's rows are there, unseen
    index = load_index(settings.index)
    assert index.manifest.extra["store"]["generation"] == 2
    after = search(index, fake, question, 3)[0]
    assert [h.chunk.id for h in after.hits] == [h.chunk.id for h in before.hits]
    assert [h.score for h in after.hits] == pytest.approx([h.score for h in before.hits])

    monkeypatch.undo()
    third = build_index(replace(settings, store=None), embedder=fake)
    alive = rows(store, f"died == {ALIVE}")
    assert len(alive) == third.chunks  # the failed writer's rows gone, not doubled
    assert not rows(
        store, "died >= 0 and died <= 1"
    )  # dead before the oldest kept generation: deleted
    top = search(load_index(settings.index), fake, ["Lake Titicaca Andes"], 1)[0].hits[0]
    assert "Titicaca" in top.chunk.text

    # Passages removed by generation 3 and back in 4 still have their dead rows (for readers
    # of 2): one row each again, alive, and they survive the pruning of those dead rows
    (corpus / "lakes.md").write_text(ARTICLES["lakes.md"])
    build_index(replace(settings, store=None), embedder=fake)
    for n in range(2):
        (corpus / "extra.txt").write_text(f"Another passage, number {n}, about kites.\n")
        final = build_index(replace(settings, store=None), embedder=fake)
    index = load_index(settings.index)
    assert len(rows(store, f"died == {ALIVE}")) == final.chunks == len(index.chunks)
    assert search(index, fake, question, 1)[0].hits[0].chunk.source == "lakes.md"
    assert index.dense_scores(fake.embed(question)[0], np.arange(len(index.chunks))).shape == (
        len(index.chunks),
    )


def test_a_collection_qa_did_not_create_is_refused_and_left_alone(
    tmp_path: Path, corpus: Path
) -> None:
    uri = f"milvus-lite:{tmp_path / 'theirs.db'}#their_data"
    client, name = client_of(uri)
    client.create_collection(name, dimension=8)  # type: ignore[attr-defined]
    client.insert(name, [{"id": 1, "vector": [0.1] * 8}])  # type: ignore[attr-defined]
    result = runner.invoke(
        app, ["index", str(corpus), "--index", str(tmp_path / "index"), "--store", uri]
    )
    assert result.exit_code == 1
    assert "was not created by qa" in result.output and "Traceback" not in result.output
    assert client.query(name, filter="id >= 0", output_fields=["id"])  # type: ignore[attr-defined]
    # nor one that another qa index owns
    fake = FakeEmbedder()
    mine = f"milvus-lite:{tmp_path / 'theirs.db'}#qa_one"
    build_index(Settings(corpus=corpus, index=tmp_path / "a", store=mine), embedder=fake)
    with pytest.raises(StoreError, match="belongs to another qa index"):
        build_index(Settings(corpus=corpus, index=tmp_path / "b", store=mine), embedder=fake)


def test_ask_and_status_read_the_store_from_the_manifest(store: str, here: Path) -> None:
    result = runner.invoke(app, ["index", "--store", store])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["ask", "--json", "How deep is Lake Baikal?"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["source"] == "lakes.md"
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "store" in result.output and store.split(":")[0] in result.output
    fallback = "qa's own BM25" if store.startswith("milvus://") else "Milvus's BM25"
    assert fallback in result.output
    status = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert status["keywords"] == ("qa" if store.startswith("milvus://") else "milvus")
    # the Engine (qa serve, qa mcp) opens it as it opens any index, and follows its updates
    from qa.engine import Engine

    engine = Engine.open(Settings.resolve())  # the index's model (here a fake one)
    [answer] = engine.ask(["Saturn V rocket"], k=1).answers
    assert answer.hits[0].chunk.source == "space/rockets.txt"
    (here / "corpus" / "space" / "rockets.txt").write_text("Falcon 9 boosters land again.\n")
    assert runner.invoke(app, ["index"]).exit_code == 0
    [answer] = engine.ask(["Falcon 9 boosters"], k=1).answers
    assert engine.generation == "g000002" and "Falcon" in answer.hits[0].chunk.text
    # qa serve: one worker for a Lite file (one process at a time opens it), and a clear error
    # for more; a server's index gets the usual one a core
    from qa.errors import InputError
    from qa.workers import check_workers, default_workers

    index = Settings.resolve().index
    if store.startswith("milvus-lite:"):
        assert default_workers(index) == 1
        with pytest.raises(InputError, match="--workers 1"):
            check_workers(index, 2)
    else:
        check_workers(index, 2)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("milvus://127.0.0.1/x", "milvus://HOST:PORT/COLLECTION"),
        ("milvus://127.0.0.1:19530/bad-name", "milvus://HOST:PORT/COLLECTION"),
        ("milvus-lite:store.sqlite", "ends in .db"),
        ("postgres://x", "QA_STORE must be faiss"),
    ],
)
def test_a_bad_store_is_one_line_and_exit_1(
    here: Path, monkeypatch: pytest.MonkeyPatch, uri: str, message: str
) -> None:
    if uri.startswith("postgres"):
        monkeypatch.setenv("QA_STORE", uri)
        result = runner.invoke(app, ["index"])
    else:
        result = runner.invoke(app, ["index", "--store", uri])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_an_unreachable_server_is_one_line(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qa import milvus_store

    from .milvus_server import free_port

    monkeypatch.setattr(milvus_store, "TIMEOUT", 1.0)
    result = runner.invoke(app, ["index", "--store", f"milvus://127.0.0.1:{free_port()}/qa"])
    assert result.exit_code == 1, result.output
    assert "Cannot reach the Milvus server at 127.0.0.1:" in result.output
    assert "Traceback" not in result.output


def test_without_pymilvus_the_error_says_what_to_install(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa import milvus_store

    monkeypatch.setattr(milvus_store, "_clients", {})
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    result = runner.invoke(app, ["index", "--store", "milvus-lite:v.db"])
    assert result.exit_code == 1
    assert "pip install 'qa[milvus]'" in result.output and "Traceback" not in result.output

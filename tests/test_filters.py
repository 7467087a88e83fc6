"""Filters are applied before top-k, by both sides; metadata reaches every hit; qa show."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from qa.cli import app
from qa.config import Settings
from qa.errors import InputError
from qa.filters import Filters
from qa.indexer import build_index
from qa.search import answerable, embed_questions, retrieve, search
from qa.store import StoredIndex, load_index

from .conftest import FakeEmbedder

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
WORDS = (
    "lake river forest mountain bread yeast oven rocket moon orbit market price trade "
    "election vote law virus cell protein music guitar song football goal match"
).split()
TAGS = ("science", "sport", "food", "politics")
AUTHORS = ("Ada", "Brook", "Chen")
FILES = ("news/a.jsonl", "news/b.jsonl", "blog/c.jsonl", "notes/d.jsonl")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> StoredIndex:
    """120 documents over four files, with dates, tags and authors drawn at random."""
    root = tmp_path_factory.mktemp("filters")
    rng = random.Random(7)
    lines: dict[str, list[str]] = {name: [] for name in FILES}
    for n in range(120):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 30))) + "."
        record = {
            "_id": str(n),
            "title": f"Document {n}",
            "text": text,
            "date": f"202{rng.randint(2, 4)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "tags": rng.sample(TAGS, rng.randint(0, 2)),
            "author": rng.choice(AUTHORS),
        }
        if n % 10 == 0:
            del record["date"]  # undated documents never pass a date filter
        lines[rng.choice(FILES)].append(json.dumps(record))
    for name, rows in lines.items():
        (root / "corpus" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "corpus" / name).write_text("\n".join(rows) + "\n")
    build_index(Settings(corpus=root / "corpus", index=root / "index"), embedder=FakeEmbedder())
    return load_index(root / "index")


filters = st.builds(
    Filters,
    sources=st.lists(
        st.sampled_from(["news/*", "blog/*", "notes/d.jsonl", "*/b.jsonl"]), max_size=2
    ).map(tuple),
    since=st.one_of(st.none(), st.sampled_from(["2022-06-01", "2023-01-01", "2024-03-15"])),
    until=st.one_of(st.none(), st.sampled_from(["2022-12-31", "2023-06", "2024-12-31"])),
    tags=st.lists(st.sampled_from(TAGS), max_size=2, unique=True).map(tuple),
    where=st.lists(st.sampled_from([("author", "Ada"), ("author", "chen")]), max_size=1).map(tuple),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chosen=filters, words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
def test_filtered_top_k_is_the_full_ranking_restricted_to_what_passes(
    generated: StoredIndex, chosen: Filters, words: list[str]
) -> None:
    index, question, k = generated, " ".join(words), 5
    table = index.table()
    assert table is not None
    mask = table.row_mask(chosen)
    vectors, tokens = embed_questions(FakeEmbedder(), [question])
    everything = len(index.chunks)
    for mode in ("dense", "lexical"):
        [filtered] = retrieve(index, vectors, [question], k, mode, tokens, mask)
        [full] = retrieve(index, vectors, [question], everything, mode, tokens)
        expected = [(row, score) for row, score in full if mask[row]][:k]
        assert [round(s, 5) for _, s in filtered] == [round(s, 5) for _, s in expected], mode
        assert {r for r, _ in filtered} <= {r for r, _ in expected} | {
            r for r, s in full if mask[r] and round(s, 5) == round(filtered[-1][1], 5)
        }
    [hybrid] = retrieve(index, vectors, [question], k, "hybrid", tokens, mask)
    [dense] = retrieve(index, vectors, [question], k, "dense", tokens, mask)
    assert all(mask[row] for row, _ in hybrid)  # fused from both sides' filtered candidates
    assert len(hybrid) == min(k, len(dense))


def test_every_passing_row_meets_every_filter(generated: StoredIndex) -> None:
    table = generated.table()
    assert table is not None
    chosen = Filters.parse(["news/*"], "2023-01-01", "2024-12-31", ["science"], ["author=ada"])
    mask = table.row_mask(chosen)
    assert mask.any() and not mask.all()
    for row in np.flatnonzero(mask):
        chunk = generated.chunks[row]
        doc = generated.document(chunk.source, chunk.doc_id)
        assert doc is not None and chunk.source.startswith("news/")
        assert doc.date is not None and "2023-01-01" <= doc.date <= "2024-12-31"
        assert "science" in doc.tags and doc.author == "Ada"
    for row in np.flatnonzero(~mask):
        chunk = generated.chunks[row]
        doc = generated.document(chunk.source, chunk.doc_id)
        assert doc is not None
        passes = (
            chunk.source.startswith("news/")
            and doc.date is not None
            and "2023-01-01" <= doc.date <= "2024-12-31"
            and "science" in doc.tags
            and doc.author == "Ada"
        )
        assert not passes


def test_the_no_answer_flag_is_computed_over_what_passes(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "lakes.md").write_text(
        "---\ntags: [lakes]\ndate: 2024-01-05\n---\nLake Baikal in Siberia is the deepest lake "
        "in the world and holds a fifth of the fresh water.\n"
    )
    (corpus / "bread.md").write_text(
        "---\ntags: [food]\ndate: 2024-02-01\nauthor: Baker\n---\nBread rises because yeast "
        "ferments the sugars in the dough while it proves.\n"
    )
    fake = FakeEmbedder()
    build_index(Settings(corpus=corpus, index=tmp_path / "index"), embedder=fake)
    index = load_index(tmp_path / "index")
    question = "Which lake in Siberia is the deepest lake in the world?"
    [open_answer] = search(index, fake, [question], 3)
    [food_only] = search(index, fake, [question], 3, filters=Filters(tags=("food",)))
    assert open_answer.answered and open_answer.hits[0].chunk.source == "lakes.md"
    assert not food_only.answered and [h.chunk.source for h in food_only.hits] == ["bread.md"]
    assert answerable(open_answer.hits) and not answerable(food_only.hits)
    assert food_only.hits[0].about == {
        "date": "2024-02-01",
        "url": None,
        "author": "Baker",
        "tags": ["food"],
    }
    [none] = search(index, fake, [question], 3, filters=Filters(since="2025-01-01"))
    assert none.hits == [] and not none.answered


def test_bad_filter_values_are_clear_errors() -> None:
    with pytest.raises(InputError, match="--since takes a date"):
        Filters.parse(since="yesterday-ish")
    with pytest.raises(InputError, match="--where takes KEY=VALUE"):
        Filters.parse(where=["author"])


def test_ask_filters_and_show_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_models: dict[str, FakeEmbedder]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.md").write_text(
        "---\ntitle: Tern migration\ndate: March 5, 2024\nauthor: Ada\ntags: birds, travel\n"
        "site: example.org\n---\nThe arctic tern flies from pole to pole every year, further "
        "than any other bird.\n\nIts path zigzags across the Atlantic to follow the winds.\n"
    )
    (tmp_path / "corpus" / "b.md").write_text(
        "---\ndate: 2023-01-10\n---\nThe bar-tailed godwit flies nonstop across the Pacific, "
        "farther than any other bird without rest.\n"
    )
    question = "Which bird flies the farthest?"
    result = runner.invoke(app, ["ask", "--json", "--since", "2024-01-01", question])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["results"]
    assert {h["source"] for h in hits} == {"a.md"}
    assert hits[0]["date"] == "2024-03-05" and hits[0]["tags"] == ["birds", "travel"]
    result = runner.invoke(app, ["ask", "--json", "--where", "site=example.org", question])
    assert {h["source"] for h in json.loads(result.stdout)["results"]} == {"a.md"}
    result = runner.invoke(app, ["ask", "--until", "2023-12-31", question])
    assert result.exit_code == 0 and "b.md" in result.stdout and "a.md" not in result.stdout
    result = runner.invoke(app, ["ask", "--since", "soon", question])
    assert result.exit_code == 1 and "--since takes a date" in result.stderr
    # qa show: the document as indexed, a citation in context, a file not yet indexed.
    result = runner.invoke(app, ["show", "--json", "corpus/a.md"])
    body = json.loads(result.stdout)
    assert (body["title"], body["date"], body["author"]) == ("Tern migration", "2024-03-05", "Ada")
    assert (
        body["meta"] == {"site": "example.org"} and body["indexed"] and body["encoding"] == "utf-8"
    )
    result = runner.invoke(app, ["show", "a.md#1", "-C", "1"])
    assert result.exit_code == 0, result.output
    assert "»The arctic tern flies" in result.stdout and "Its path zigzags" in result.stdout
    cited = json.loads(runner.invoke(app, ["show", "--json", "corpus/a.md#1"]).stdout)
    assert cited["citation"] == "a.md#1" and cited["passage"]["text"].startswith("The arctic")
    assert [p["paragraph"] for p in cited["context"]["after"]] == [2]
    (tmp_path / "new.md").write_text("# Draft\n\nNot indexed yet, but readable all the same.\n")
    result = runner.invoke(app, ["show", "new.md"])
    assert (
        result.exit_code == 0 and "not in the index" in result.stdout and "Draft" in result.stdout
    )
    result = runner.invoke(app, ["show", "nowhere.md"])
    assert result.exit_code == 1 and "is not a source or citation" in result.stderr

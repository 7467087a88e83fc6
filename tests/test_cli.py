from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from qa.cli import app

from .conftest import REPO, generation

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_ask_builds_the_index_once_and_cites_the_passage(here: Path) -> None:
    code, out, err = run("ask", "How deep is Lake Baikal in Siberia?")
    assert code == 0, out + err
    assert "No index in index/: building it from corpus/ (once)." in err
    assert "1. " in out and "Lakes of the north" in out
    assert "corpus/lakes.md ¶2, lines 3–3, chars 22–121" in out
    code, out, err = run("ask", "How deep is Lake Baikal in Siberia?")
    assert code == 0 and "building" not in err


def test_ask_json_has_every_field_and_offsets_slice_the_source(here: Path) -> None:
    code, out, err = run(
        "ask", "-k", "2", "--json", "Which space flight center designed the Saturn V?"
    )
    assert code == 0, out + err
    body = json.loads(out)
    assert body["question"] == "Which space flight center designed the Saturn V?"
    assert [r["rank"] for r in body["results"]] == [1, 2]
    top = body["results"][0]
    assert set(top) == {
        "rank",
        "score",
        "source",
        "doc_id",
        "title",
        "paragraph",
        "start",
        "end",
        "line_start",
        "line_end",
        "page_start",
        "page_end",
        "text",
        "citation",
        "highlight",
        "date",
        "url",
        "author",
        "tags",
        "relevance",
        "fused",
        "dense",
        "lexical",
        "lexical_share",
        "sentence",
    }
    text = (here / "corpus" / top["source"]).read_text(encoding="utf-8-sig")
    for r in body["results"]:
        source_text = (here / "corpus" / r["source"]).read_text(encoding="utf-8-sig")
        assert source_text[r["start"] : r["end"]] == r["text"]
        assert r["start"] <= r["highlight"]["start"] < r["highlight"]["end"] <= r["end"]
    assert top["source"] == "space/rockets.txt" and top["doc_id"] is None
    assert "von Braun" in text[top["highlight"]["start"] : top["highlight"]["end"]]


def test_questions_file_gives_json_lines_in_order_with_ids(here: Path) -> None:
    qfile = here / "q.jsonl"
    qfile.write_text(
        '{"id": "a", "question": "What does yeast do to the dough?"}\n\n'
        "Which rocket went to the moon?\n"
    )
    code, out, err = run("ask", "--questions", str(qfile), "-k", "1")
    assert code == 0, out + err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x.get("id"), x["question"]) for x in lines] == [
        ("a", "What does yeast do to the dough?"),
        (None, "Which rocket went to the moon?"),
    ]
    assert lines[0]["results"][0]["source"] == "cooking.txt"


def test_jsonl_collection_gives_doc_ids_and_no_lines(here: Path, tmp_path: Path) -> None:
    coll = tmp_path / "coll.jsonl"
    coll.write_text(
        "\n".join(
            json.dumps(d)
            for d in [
                {
                    "_id": "d1",
                    "title": "Penguins",
                    "text": "Emperor penguins breed in the Antarctic "
                    "winter and the males keep the eggs warm on their feet.",
                },
                {
                    "_id": "d2",
                    "title": "Camels",
                    "text": "Camels store fat in their humps and can go "
                    "for a week or more without drinking any water.",
                },
            ]
        )
    )
    code, out, err = run("index", str(coll), "--index", "coll-index")
    assert code == 0, out + err
    code, out, err = run(
        "ask", "--index", "coll-index", "--json", "-k", "1", "Which animal stores fat in a hump?"
    )
    assert code == 0, out + err
    [r] = json.loads(out)["results"]
    assert (r["source"], r["doc_id"], r["title"], r["line_start"]) == (
        "coll.jsonl",
        "d2",
        "Camels",
        None,
    )


def test_index_reports_counts_and_a_second_run_embeds_nothing(here: Path) -> None:
    code, out, err = run("index")
    assert code == 0, out + err
    assert "Indexed 3 documents from 3 files into 5 passages" in out
    assert "embedded 5, reused 0" in out
    code, out, err = run("index")
    assert "embedded 0, reused 5, removed 0" in out
    code, out, err = run("index", "--model", "other-model")
    assert code == 0 and "Full rebuild: model changed from" in err


def test_status_reports_a_stale_index(here: Path) -> None:
    code, out, err = run("status")
    assert code == 1 and "No index in index: run `qa index` first." in err
    run("index")
    code, out, err = run("status")
    assert code == 0, out + err
    assert "current" in out and "all-MiniLM-L6-v2" in out
    (here / "corpus" / "cooking.txt").write_text("Changed text about baking bread at home.")
    code, out, err = run("status", "--json")
    state = json.loads(out)
    assert state["stale"] and state["changes"]["changed"] == ["cooking.txt"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "  "], "The question is empty"),
        (["ask", "--corpus", "nowhere", "hello"], "Corpus nowhere does not exist"),
        (["ask", "--corpus", "corpus/cooking.txt", "hello"], "is a file: pass the folder"),
        (["ask", "--questions", "missing.txt"], "Cannot read questions file missing.txt"),
        (["index", "empty"], "has no files qa reads"),
    ],
)
def test_errors_are_one_line_with_exit_code_1(here: Path, args: list[str], message: str) -> None:
    (here / "empty").mkdir()
    code, out, err = run(*args)
    assert code == 1, out + err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_index_errors_with_a_fix(here: Path) -> None:
    run("index")
    code, out, err = run("ask", "--model", "another", "hello")
    assert code == 1 and "built with sentence-transformers/all-MiniLM-L6-v2, not another" in err
    (here / "bad.jsonl").write_text('plain question\n{"q": "no question field"}\n')
    code, out, err = run("ask", "--questions", "bad.jsonl")
    assert code == 1 and 'bad.jsonl:2: "question" must be a string (it is null)' in err
    answered, failed = (json.loads(line) for line in out.splitlines())
    assert answered["question"] == "plain question" and answered["results"]
    assert failed == {
        "line": 2,
        "error": {"code": "bad_question", "message": '"question" must be a string (it is null)'},
    }
    (generation(here / "index") / "vectors.faiss").write_bytes(b"junk")
    code, out, err = run("ask", "hello")
    assert code == 1 and "Traceback" not in err
    assert err.startswith("error: Index index is damaged (vectors.faiss has 4 bytes, not ")
    assert "run `qa index --index index` to repair it" in err


def test_usage_errors_exit_2(here: Path) -> None:
    assert run("ask", "-k", "0", "hello")[0] == 2
    assert run("ask")[0] == 2
    assert run("ask", "q", "--questions", "f")[0] == 2


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore
    assert set(commands) >= {"index", "ask", "status"}
    for name in commands:
        code, out, err = run(name, "--help")
        assert code == 0 and "Example: qa " in out, name
        assert re.search(rf"^qa {name}\b", readme, re.M), f"qa {name} has no example in README"
    command = typer.main.get_command(app)
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        for param in sub.params:
            for option in [*param.opts, *param.secondary_opts]:
                if option.startswith("-") and option != "--help":
                    assert f"`{option}" in readme or f" {option}" in readme, (name, option)


def test_every_help_shows_its_defaults_and_choices() -> None:
    wide = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})
    expected = {
        "ask": [
            "default: 5",
            "hybrid|dense|lexical",
            "text|json|jsonl|markdown",
            "default: index/",
            "QA_INDEX",
            "all-MiniLM-L6-v2",
            "goes after --",
        ],
        "index": [
            "int8|fp32",
            "default: the index's, else int8",
            "64M",
            "QA_CORPUS",
            "default: index/",
            "collections.NAME",
        ],
        "status": ["--verify", "default: index/", "text|json|jsonl|markdown"],
        "eval": ["default: eval-index/NAME", "hybrid|dense|lexical", "default: test"],
    }
    for command, needles in expected.items():
        result = wide.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        for needle in needles:
            assert needle in text, (command, needle)
        flags = [line for line in result.output.splitlines() if "<bool>" in line]
        assert all("--help" in line for line in flags), flags  # flags take no value

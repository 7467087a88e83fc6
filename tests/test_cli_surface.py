"""The command line around the answers: formats, pipes, errors for scripts, configuration,
collections, completion, progress, context, watching (README "Output formats" and
"Configuration")."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from qa.cli import app, progress_bar, run
from qa.config import Settings
from qa.indexer import build_index, watched_changes
from qa.render import Printer

from .conftest import FakeEmbedder

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
QUESTION = "Which space flight center designed the Saturn V?"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.stdout, result.stderr


def test_piped_text_is_plain_one_passage_a_line_with_the_highlight_marked(here: Path) -> None:
    (here / "corpus" / "long.txt").write_text(
        "Long article\n\n" + "The Saturn V was assembled in the Vehicle Assembly Building. " * 6
    )
    code, out, err = invoke("ask", "-k", "3", QUESTION)
    assert code == 0, err
    lines = out.splitlines()
    assert all(line == line.rstrip() for line in lines)  # no padding
    assert "1. " in lines[0] and "corpus/space/rockets.txt ¶2, lines 3–3, chars" in lines[0]
    assert lines[1].startswith("   ") and "»It was designed under Wernher von Braun" in lines[1]
    assert max(len(line) for line in lines) > 200  # not wrapped at 80 (or at COLUMNS)
    code, out, err = invoke("ask", "-k", "3", "--width", "40", QUESTION)
    assert code == 0 and max(len(line) for line in out.splitlines()[1:]) <= 40


def test_markdown_links_the_citation_and_bolds_the_highlight(here: Path) -> None:
    code, out, err = invoke("ask", "-k", "1", "--format", "markdown", QUESTION)
    assert code == 0, err
    assert out.startswith(f"## {QUESTION}\n")
    assert "### 1. Rockets (" in out
    assert "[corpus/space/rockets.txt ¶2, lines 3–3, chars" in out
    assert "](corpus/space/rockets.txt#L3)" in out
    assert "**It was designed under Wernher von Braun at the Marshall Space Flight Center.**" in out


def test_jsonl_is_one_hit_a_line_and_json_one_answer(here: Path) -> None:
    code, out, err = invoke("ask", "-k", "2", "--format", "jsonl", QUESTION)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["rank"] for r in rows] == [1, 2]
    assert all(r["question"] == QUESTION and "answered" in r for r in rows)
    code, out, err = invoke("ask", "-k", "2", "--json", QUESTION)
    assert code == 0 and len(out.splitlines()) == 1 and len(json.loads(out)["results"]) == 2


def test_errors_are_json_on_stdout_when_json_is_asked_for(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = invoke("status", "--json", "--index", "missing")
    assert code == 1 and "No index in missing" in err
    assert json.loads(out)["error"]["code"] == "no_index"
    code, out, err = invoke("ask", "--format", "jsonl", "--index", "missing", "hello")
    assert code == 1 and json.loads(out)["error"]["code"] == "no_index"
    # Usage errors found while parsing, before any command runs, too (the process's path).
    assert run(["ask", "--json", "-k", "0", "hello"]) == 2
    body = json.loads(capsys.readouterr().out)
    assert body["error"]["code"] == "usage" and "-k" in body["error"]["message"]
    assert run(["ask", "--mode", "sideways", "hello"]) == 2
    assert capsys.readouterr().out == ""  # no JSON asked for: the usage message alone
    assert not (here / "index").exists()  # a bad --mode fails before the index is touched


def test_context_shows_the_paragraphs_around_each_passage(here: Path) -> None:
    (here / "corpus" / "story.md").write_text(
        "# Story\n\nThe first paragraph sets the scene in a small harbour town at dawn.\n\n"
        "The second paragraph tells how the lighthouse keeper found the old brass telescope.\n\n"
        "The third paragraph follows the fishing boats as they leave the harbour at noon.\n"
    )
    code, out, err = invoke("ask", "--json", "-k", "1", "-C", "1", "lighthouse keeper telescope")
    assert code == 0, err
    hit = json.loads(out)["results"][0]
    assert hit["source"] == "story.md" and hit["paragraph"] == 3
    before, after = hit["context"]["before"], hit["context"]["after"]
    assert [p["paragraph"] for p in before] == [2] and before[0]["text"].startswith("The first")
    assert [p["paragraph"] for p in after] == [4] and after[0]["text"].startswith("The third")
    code, out, err = invoke("ask", "-k", "1", "-C", "1", "lighthouse keeper telescope")
    assert "(2) The first paragraph" in out and "(4) The third paragraph" in out
    code, out, err = invoke("ask", "--json", "-k", "1", "lighthouse keeper telescope")
    assert "context" not in json.loads(out)["results"][0]


def test_the_update_before_an_ask_warns_once_per_change_of_a_file(here: Path) -> None:
    (here / "corpus" / "photo.txt").write_bytes(b"\x89PNG\x00\x00binary")
    code, out, err = invoke("index")
    assert code == 0 and "photo.txt: binary file, skipped" in err
    (here / "corpus" / "new.txt").write_text("A new article about the harbour seals of the north.")
    code, out, err = invoke("ask", "harbour seals")
    assert code == 0 and "Corpus changed" in err and "photo.txt" not in err
    (here / "corpus" / "photo.txt").write_bytes(b"\x89PNG\x00\x00other binary")
    code, out, err = invoke("ask", "harbour seals")
    assert code == 0 and "photo.txt: binary file, skipped" in err


def test_a_project_config_is_found_from_a_subfolder_and_flags_and_env_win(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (here / "qa.toml").write_text('corpus = "corpus"\nindex = "my-index"\nk = 2\nmode = "dense"\n')
    (here / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(here / "deep" / "er")
    code, out, err = invoke("ask", "--json", QUESTION)
    assert code == 0, err
    assert len(json.loads(out)["results"]) == 2 and (here / "my-index" / "qa-index.json").is_file()
    assert len(json.loads(invoke("ask", "--json", "-k", "1", QUESTION)[1])["results"]) == 1
    monkeypatch.setenv("QA_K", "3")
    assert len(json.loads(invoke("ask", "--json", QUESTION)[1])["results"]) == 3
    code, out, err = invoke("status", "--json")
    settings = json.loads(out)["settings"]
    assert settings["k"] == {"value": 3, "from": "environment"}
    assert settings["mode"] == {"value": "dense", "from": str(here / "qa.toml")}
    assert settings["index"]["value"] == str(here / "my-index")
    code, out, err = invoke("status")
    assert f"dense (from {here / 'qa.toml'})" in out


def test_the_user_config_is_the_last_resort_before_the_defaults(
    here: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    user = tmp_path / "xdg"
    (user / "qa").mkdir(parents=True)
    (user / "qa" / "config.toml").write_text(f'corpus = "{here / "corpus"}"\nk = 4\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = invoke("ask", "--json", QUESTION)
    assert code == 0 and len(json.loads(out)["results"]) == 4, err
    (elsewhere / "qa.toml").write_text("k = 1\n")  # a project file beats the user's
    assert len(json.loads(invoke("ask", "--json", QUESTION)[1])["results"]) == 1


def test_collections_keep_folders_apart(here: Path) -> None:
    (here / "papers").mkdir()
    (here / "papers" / "p.txt").write_text("A paper on protein folding and the shapes of enzymes.")
    (here / "qa.toml").write_text(
        '[collections.news]\ncorpus = "corpus"\n\n'
        '[collections.papers]\ncorpus = "papers"\nindex = "papers-index"\nk = 1\n'
    )
    code, out, err = invoke("ask", "-c", "papers", "--json", "protein folding")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert [r["source"] for r in results] == ["p.txt"] and (here / "papers-index").is_dir()
    code, out, err = invoke("ask", "-c", "news", "--json", QUESTION)
    assert code == 0 and (here / ".qa" / "news" / "qa-index.json").is_file()
    assert all(r["source"] != "p.txt" for r in json.loads(out)["results"])
    code, out, err = invoke("ask", "-c", "sports", "hello")
    assert code == 1 and "No collection 'sports'" in err and "news, papers" in err


def test_bad_config_files_are_clear_errors(here: Path) -> None:
    (here / "qa.toml").write_text("kk = 3\n")
    code, _, err = invoke("status")
    assert code == 1 and "unknown setting 'kk'" in err and "qa.toml" in err
    (here / "qa.toml").write_text('k = "many"\n')
    code, _, err = invoke("status")
    assert code == 1 and "k must be a whole number" in err
    (here / "qa.toml").write_text("k = [\n")
    code, _, err = invoke("status")
    assert code == 1 and "is not valid TOML" in err


def test_shell_completion_offers_modes_formats_and_indexes(
    here: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("index")[0] == 0
    (here / "notes").mkdir()
    for words, expected in (
        ("qa ask --mode ", {"hybrid", "dense", "lexical"}),
        ("qa ask --format ", {"text", "json", "jsonl", "markdown"}),
        ("qa ask --index ", {"index"}),
    ):
        monkeypatch.setenv("_QA_COMPLETE", "complete_bash")
        monkeypatch.setenv("COMP_WORDS", words)
        monkeypatch.setenv("COMP_CWORD", str(len(words.split())))
        with pytest.raises(SystemExit):
            app(prog_name="qa")
        assert set(capfd.readouterr().out.split()) == expected
    monkeypatch.delenv("_QA_COMPLETE")
    code, out, _ = invoke("--show-completion", "bash")
    assert code == 0 and "complete_bash" in out and "COMP_WORDS" in out


def test_steps_without_a_count_show_a_spinner_not_a_stalled_count() -> None:
    printer = Printer()
    screen = io.StringIO()
    printer.err = Console(file=screen, force_terminal=True, width=100)
    with progress_bar(printer) as progress:
        assert progress is not None
        progress("exporting the model to ONNX", 0, 0)
        time.sleep(0.3)
        progress("embedding", 30, 100)
        time.sleep(0.3)
    shown = screen.getvalue()
    spinner = [line for line in shown.split("\r") if "exporting the model to ONNX" in line]
    assert spinner and not any(re.search(r"\d/[\d?]", line) for line in spinner)
    assert "30/100" in shown and "0:00:0" in shown


def test_watching_yields_each_change_of_the_corpus_and_never_the_index(
    tmp_path: Path, corpus: Path, fake: FakeEmbedder
) -> None:
    index = corpus / "index"  # inside the corpus: its writes must not count
    settings = Settings(corpus=corpus, index=index)
    build_index(settings, embedder=fake)
    stop = threading.Event()
    seen: list[set[str]] = []

    def watching() -> None:
        for changes in watched_changes(settings, stop=stop):
            seen.append(changes)

    thread = threading.Thread(target=watching, daemon=True)
    thread.start()
    time.sleep(0.5)
    build_index(settings, embedder=fake, rebuild=True)  # writes only in the index
    (corpus / ".hidden.txt").write_text("not read")
    time.sleep(1.5)
    assert seen == []
    (corpus / "cooking.txt").write_text("Bread rises because of yeast, in a warm kitchen.")
    for _ in range(100):
        if seen:
            break
        time.sleep(0.1)
    stop.set()
    thread.join(timeout=10)
    assert seen and any(p.endswith("cooking.txt") for p in seen[0])


def test_a_collection_keeps_its_own_index_and_paths_expand_home(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(here))
    (here / "qa.toml").write_text(
        'index = "main-index"\n\n[collections.news]\ncorpus = "~/corpus"\n'
    )
    settings = Settings.resolve(collection="news")
    assert settings.index == here / ".qa" / "news" and settings.corpus == here / "corpus"
    assert Settings.resolve().index == here / "main-index"


def test_until_a_month_takes_in_the_whole_month(here: Path) -> None:
    (here / "corpus" / "m.md").write_text(
        "---\ndate: 2024-03-05\n---\nThe harbour seals came back to the estuary in March.\n"
    )
    for until in ("2024-03", "March 2024"):
        code, out, err = invoke("ask", "--json", "--until", until, "--since", "2024", "seals")
        assert code == 0 and [r["source"] for r in json.loads(out)["results"]] == ["m.md"], until

"""What qa writes and reads, and what it never touches (README "Safety")."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa.cli import app, safe
from qa.config import Settings
from qa.errors import CorpusError
from qa.indexer import build_index, current_index
from qa.integrity import manifest_checksum
from qa.store import load_index

from .conftest import REPO, FakeEmbedder, generation

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def run(*args: str, **env: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env or None)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.stdout, result.stderr


def test_a_rebuild_reads_the_corpus_the_index_was_built_from(here: Path) -> None:
    (here / "notes").mkdir()
    (here / "notes" / "a.md").write_text("Notes on the migration of the arctic tern, every year.")
    assert run("index", "notes", "--index", "notes-index")[0] == 0
    code, out, _ = run("index", "--rebuild", "--index", "notes-index")
    assert code == 0 and "Indexed 1 documents from 1 files" in out  # not the 3 of corpus/
    # ... even when its manifest is damaged: the marker still says where the corpus is.
    (generation(here / "notes-index") / "manifest.json").write_text("{")
    code, out, err = run("index", "--index", "notes-index")
    assert code == 0 and "Indexed 1 documents from 1 files" in out, err
    assert "damaged" in err


def test_a_moved_index_finds_its_corpus_or_says_where_it_looked(here: Path) -> None:
    project = here / "project"
    project.mkdir()
    shutil.move(here / "corpus", project / "corpus")
    assert run("index", str(project / "corpus"), "--index", str(project / "index"))[0] == 0
    shutil.move(project, here / "moved")  # corpus and index move together
    code, out, err = run("status", "--index", str(here / "moved" / "index"))
    assert code == 0 and "current" in out, err
    shutil.copytree(here / "moved" / "index", here / "copy")  # the index alone, elsewhere
    shutil.rmtree(here / "moved" / "corpus")
    code, out, err = run("ask", "--index", str(here / "copy"), "How deep is Lake Baikal?")
    assert code == 1 and "looked in" in err and "--corpus" in err
    code, out, err = run("ask", "--index", str(here / "copy"), "--no-update", "Lake Baikal?")
    assert code == 0 and "Lake Baikal" in out


def test_an_edited_corpus_path_is_damage_not_a_new_corpus(here: Path, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "secret.txt").write_text("The launch code is 0000, and nobody indexed this file.")
    assert run("index")[0] == 0
    manifest_path = generation(here / "index") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["corpus"], manifest["corpus_absolute"] = "../elsewhere", str(secret)
    manifest_path.write_text(json.dumps(manifest))
    code, out, err = run("ask", "What is the launch code?")
    assert code == 1 and "manifest.json does not match its checksum" in err
    # Even with a checksum made to match, an automatic update never reads a folder that
    # took the indexed corpus's place.
    del manifest["checksum"]
    manifest["checksum"] = manifest_checksum(manifest)
    manifest_path.write_text(json.dumps(manifest))
    code, out, err = run("ask", "What is the launch code?")
    assert code == 1 and "None of the files" in err and "0000" not in out


def test_an_index_inside_its_corpus_cites_the_corpus_files(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(here / "corpus")
    assert run("index", ".")[0] == 0
    code, out, err = run("ask", "--json", "How deep is Lake Baikal in Siberia?")
    assert code == 0 and json.loads(out)["results"][0]["source"] == "lakes.md"
    code, out, err = run("ask", "How deep is Lake Baikal in Siberia?")
    assert "\n1. " in "\n" + out and "lakes.md ¶2" in out and "index/" not in out


def test_stale_work_of_killed_writers_is_removed_and_nothing_is_written_beside(
    here: Path,
) -> None:
    assert run("index")[0] == 0
    index = here / "index"
    (index / ".CURRENT.4242.tmp").write_text("g000009\n")  # killed while switching over
    (index / "tmp-99999-deadbeef").mkdir()
    (index / "tmp-99999-deadbeef" / "vectors.faiss").write_bytes(b"x" * 1000)
    (here / ".index.tmp-4242").mkdir()  # what qa 0.1 left beside its index
    (here / ".index.tmp-4242" / "chunks.jsonl").write_text("")
    (here / ".index.tmp-7").mkdir()  # not qa's: a user's own folder of that name
    (here / ".index.tmp-7" / "mine.txt").write_text("keep me")
    (here / "corpus" / "new.txt").write_text("A new article about the tides of the Bay of Fundy.")
    before = sorted(p.name for p in here.iterdir())
    assert run("index")[0] == 0
    assert not [p for p in index.iterdir() if p.name.startswith("tmp-")]
    assert sorted(p.name for p in here.iterdir()) == sorted(set(before) - {".index.tmp-4242"})
    assert (here / ".index.tmp-7" / "mine.txt").read_text() == "keep me"
    # Two generations at most: the current one and the one before.
    for n in range(3):
        (here / "corpus" / "new.txt").write_text(f"The tides of the Bay of Fundy, take {n}.")
        assert run("index")[0] == 0
    assert sorted(p.name for p in index.iterdir()) == [
        "CURRENT",
        "g000004",
        "g000005",
        "qa-index.json",
        "write.lock",
    ]


def test_links_inside_the_corpus_are_read_and_links_out_of_it_are_not(
    here: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "passwords.txt").write_text("hunter2 is the password of the mail account here.")
    corpus = here / "corpus"
    (corpus / "out.txt").symlink_to(outside / "passwords.txt")
    (corpus / "again.txt").symlink_to(corpus / "cooking.txt")
    (corpus / "loop").symlink_to(corpus, target_is_directory=True)
    code, out, err = run("index")
    assert code == 0, err
    assert "out.txt: a link out of the corpus, skipped (to " in err
    sources = {c.source for c in load_index(here / "index").chunks}
    assert "again.txt" in sources and "out.txt" not in sources
    assert not [s for s in sources if s.startswith("loop/")]
    code, out, err = run("index", "--follow-symlinks")
    assert code == 0 and "out.txt" in {c.source for c in load_index(here / "index").chunks}


def test_ignore_files_and_excludes_leave_files_out_and_are_kept(here: Path) -> None:
    corpus = here / "corpus"
    (corpus / "drafts").mkdir()
    (corpus / "drafts" / "d.txt").write_text("A draft about the rings of Saturn and its moons.")
    (corpus / ".qaignore").write_text("drafts/\n")
    (corpus / "tmp.md").write_text("Scratch notes on the rings of Saturn, not for the index.")
    assert run("index", "--exclude", "tmp.md")[0] == 0
    sources = {c.source for c in load_index(here / "index").chunks}
    assert sources == {"lakes.md", "space/rockets.txt", "cooking.txt"}
    code, out, err = run("status")
    assert code == 0 and "current" in out  # the update reads the folder as the build did


def test_only_the_default_index_is_built_by_ask(here: Path) -> None:
    code, out, err = run("ask", "--index", "typo", "How deep is Lake Baikal?")
    assert code == 1 and "No index in typo: build it with `qa index CORPUS --index typo`" in err
    assert not (here / "typo").exists() and not (here / "index").exists()
    code, out, err = run("ask", "How deep is Lake Baikal?", QA_INDEX="")
    assert code == 0 and (here / "index" / "qa-index.json").is_file()


def test_environment_values_that_make_no_sense_are_clear_errors(here: Path) -> None:
    for value in ("abc", "0", "-3"):
        code, _, err = run("index", QA_BATCH_SIZE=value)
        assert code == 1 and "QA_BATCH_SIZE must be a whole number" in err
    assert not (here / "index").exists()
    code, _, err = run("index", "--max-file-size", "lots")
    assert code == 2 and "not a size" in err


def test_files_over_the_size_limit_are_skipped_unread(here: Path) -> None:
    (here / "corpus" / "dump.txt").write_text("word " * 5000)
    code, out, err = run("index", "--max-file-size", "10k")
    assert code == 0 and "dump.txt: larger than the 10.0 KiB limit, skipped (24.4 KiB" in err
    assert "skipped 1: 1 .txt (larger than the 10.0 KiB limit)" in err
    assert run("status")[1].count("current") == 1  # the limit is kept for updates


def test_an_index_that_cannot_be_written_is_a_clear_error(here: Path) -> None:
    locked = here / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        code, _, err = run("index", "--index", str(locked / "index"))
        assert code == 1 and "Cannot write the index in" in err
    finally:
        locked.chmod(0o700)


def test_text_from_files_cannot_drive_the_terminal() -> None:
    hostile = "Title\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil"
    shown = safe(hostile)
    assert len(shown) == len(hostile) and shown.isprintable()
    assert "\x1b" not in shown and "\x9b" not in shown and "\u202e" not in shown


def test_hostile_articles_are_printed_inert(here: Path) -> None:
    (here / "corpus" / "evil.txt").write_text(
        "\x1b]0;pwned\x07Evil\n\nLake Baikal \x1b[2J is deep, says this \x9b31m article.\n"
    )
    code, out, err = run("ask", "-k", "5", "Lake Baikal deep article")
    assert code == 0 and "\x1b" not in out and "\x9b" not in out and "\x07" not in out
    code, out, err = run("ask", "--json", "-k", "5", "Lake Baikal deep article")
    assert code == 0 and "\x1b" not in out and "\x9b" not in out
    assert any("\x1b[2J" in r["text"] for r in json.loads(out)["results"])  # data kept


def test_an_index_whose_corpus_is_gone_is_used_as_it_is_with_no_update(
    tmp_path: Path, corpus: Path, fake: FakeEmbedder
) -> None:
    s = Settings(corpus=corpus, index=tmp_path / "index")
    build_index(s, embedder=fake)
    shutil.rmtree(corpus)
    with pytest.raises(CorpusError, match="looked in"):
        current_index(Settings(index=s.index), embedder=fake)
    assert current_index(Settings(index=s.index), update=False).manifest.chunks == 5


def test_ctrl_c_at_any_moment_is_a_line_and_exit_130(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # From 0.1 s on, the interpreter runs qa's code (before: Python's own start-up, which
    # dies of the signal without a word: -2).
    for delay in (0.15, 0.3):
        child = subprocess.Popen(
            [sys.executable, "-m", "qa", "status", "--index", str(tmp_path / "none")],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert "Traceback" not in err
        assert child.returncode in (130, 1, -signal.SIGINT), err  # 1: finished ("No index")


def test_utf16_files_are_indexed_not_called_binary(here: Path) -> None:
    text = "Le lac Baïkal\n\nLe lac Baïkal est le lac le plus profond du monde, en Sibérie.\n"
    (here / "corpus" / "fr.txt").write_bytes(text.encode("utf-16"))
    code, out, err = run("index")
    assert code == 0 and "fr.txt" not in err, err
    doc = load_index(here / "index").document("fr.txt", None)
    assert doc is not None and doc.text == text and doc.encoding == "utf-16"


def test_ask_corpus_never_repoints_an_existing_index(here: Path, tmp_path: Path) -> None:
    assert run("index")[0] == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "p.txt").write_text("Emperor penguins breed in the Antarctic winter on the sea ice.")
    code, out, err = run("ask", "--corpus", str(other), "penguins")
    assert code == 1 and "None of the files" in err
    assert load_index(here / "index").manifest.chunks == 5


def test_a_killed_switch_over_never_loses_the_current_generation(here: Path) -> None:
    assert run("index")[0] == 0
    index = here / "index"
    current = (index / "CURRENT").read_text().strip()
    (index / "g000099").mkdir()  # a later generation that a killed publish never made current
    (here / "corpus" / "new.txt").write_text("A new article about the tides of the Bay of Fundy.")
    assert run("index")[0] == 0
    assert current in {p.name for p in index.iterdir()}  # readers may still be opening it
    assert "g000099" not in {p.name for p in index.iterdir()}

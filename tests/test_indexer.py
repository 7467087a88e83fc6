from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.config import Settings
from qa.errors import CorpusError, IndexCorruptError, InputError, ModelError
from qa.indexer import build_index, current_index, index_status
from qa.search import ask
from qa.store import load_index

from .conftest import FakeEmbedder, generation


def settings_for(corpus: Path, tmp_path: Path, **kw: object) -> Settings:
    return Settings(corpus=corpus, index=tmp_path / "index", **kw)  # type: ignore[arg-type]


def test_first_build_embeds_everything_and_a_second_embeds_nothing(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    s = settings_for(corpus, tmp_path)
    first = build_index(s, embedder=fake)
    assert (first.documents, first.chunks, first.embedded, first.reused) == (3, 5, 5, 0)
    fake.embedded.clear()
    second = build_index(s, embedder=fake)
    assert (second.embedded, second.reused, second.removed, second.changed_files) == (0, 5, 0, 0)
    assert fake.embedded == []


def test_editing_one_paragraph_re_embeds_only_that_passage(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    s = settings_for(corpus, tmp_path)
    build_index(s, embedder=fake)
    path = corpus / "lakes.md"
    path.write_text(path.read_text().replace("nerpa seal", "Baikal seal, the nerpa"))
    fake.embedded.clear()
    report = build_index(s, embedder=fake)
    assert (report.embedded, report.reused, report.removed, report.changed_files) == (1, 4, 1, 1)
    assert fake.embedded == ["Lakes of the north " + path.read_text().split("\n\n")[2].strip()]
    index = load_index(s.index)
    assert any("Baikal seal" in c.text for c in index.chunks)
    # The keyword index, updated from cached terms, equals one built from scratch.
    fresh = tmp_path / "fresh"
    build_index(Settings(corpus=corpus, index=fresh), embedder=FakeEmbedder())
    for question in ("nerpa seal", "deepest lake Siberia", "rocket moon"):
        assert (index.lexical.scores(question) == load_index(fresh).lexical.scores(question)).all()


def test_deleting_a_file_removes_its_passages(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    s = settings_for(corpus, tmp_path)
    build_index(s, embedder=fake)
    (corpus / "space" / "rockets.txt").unlink()
    report = build_index(s, embedder=fake)
    assert (report.embedded, report.removed, report.chunks) == (0, 2, 3)
    assert {c.source for c in load_index(s.index).chunks} == {"lakes.md", "cooking.txt"}


def test_another_model_triggers_an_announced_full_rebuild(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    build_index(settings_for(corpus, tmp_path), embedder=fake)
    other = FakeEmbedder("other-model")
    report = build_index(settings_for(corpus, tmp_path, model="other-model"), embedder=other)
    assert report.rebuilt == "model changed from fake-model to other-model"
    assert report.embedded == 5
    assert load_index(tmp_path / "index").manifest.model == "other-model"
    forced = build_index(settings_for(corpus, tmp_path), embedder=other, rebuild=True)
    assert forced.rebuilt == "--rebuild was asked for" and forced.embedded == 5


def test_unreadable_files_are_skipped_and_named_and_nothing_else_is_lost(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    (corpus / "image.md").write_bytes(b"\x89PNG\x00\x00")
    (corpus / "photo.png").write_bytes(b"\x89PNG\x00\x00")
    report = build_index(settings_for(corpus, tmp_path), embedder=fake)
    assert report.chunks == 5
    assert sorted(report.skipped) == [
        "image.md: binary file, skipped",
        "photo.png: not an article format, skipped",
    ]
    # Skipped files are remembered, so they do not make the index look stale.
    assert not index_status(settings_for(corpus, tmp_path)).changes


def test_empty_or_missing_corpus_is_a_clear_error(tmp_path: Path, fake: FakeEmbedder) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="has no files qa reads"):
        build_index(settings_for(tmp_path / "empty", tmp_path), embedder=fake)
    with pytest.raises(CorpusError, match="does not exist"):
        build_index(settings_for(tmp_path / "missing", tmp_path), embedder=fake)


def test_a_crash_while_building_leaves_the_previous_index_intact(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings_for(corpus, tmp_path)
    build_index(s, embedder=fake)
    before = (generation(s.index) / "manifest.json").read_text()

    class Exploding(FakeEmbedder):
        def embed(self, texts, progress=None):  # type: ignore[no-untyped-def]
            raise KeyboardInterrupt

    (corpus / "new.txt").write_text("A brand new article about volcanoes erupting in Iceland.")
    with pytest.raises(KeyboardInterrupt):
        build_index(s, embedder=Exploding())
    assert (generation(s.index) / "manifest.json").read_text() == before
    # Interrupted while writing the new index's files: the old one is still whole.
    real_write = Path.write_text

    def interrupted(self: Path, *args: object, **kw: object) -> int:
        if self.name == "manifest.json":
            raise KeyboardInterrupt
        return real_write(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_index(s, embedder=fake)
    monkeypatch.undo()
    assert (generation(s.index) / "manifest.json").read_text() == before
    assert load_index(s.index).manifest.chunks == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "index"]
    assert not [p for p in s.index.iterdir() if p.name.startswith("tmp-")]


def test_damaged_index_files_are_reported_with_a_fix(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    s = settings_for(corpus, tmp_path)
    build_index(s, embedder=fake)
    (generation(s.index) / "vectors.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexCorruptError, match="vectors.faiss has 7 bytes.*run `qa index --index"):
        load_index(s.index)
    # `qa index` repairs it, saying why it re-embedded everything.
    report = build_index(s, embedder=fake)
    assert report.rebuilt is not None and "damaged" in report.rebuilt
    (generation(s.index) / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorruptError, match="manifest.json is unreadable"):
        load_index(s.index)
    build_index(s, embedder=fake)
    (generation(s.index) / "chunks.jsonl").unlink()
    with pytest.raises(IndexCorruptError, match="chunks.jsonl is missing.*run `qa index --index"):
        load_index(s.index)


def test_ask_updates_a_stale_index_and_says_so(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    s = settings_for(corpus, tmp_path)
    notes: list[str] = []
    result = ask(s, ["How deep is Lake Baikal?"], embedder=fake, notify=notes.append)
    assert notes == [f"No index in {s.index}/: building it from {corpus}/ (once)."]
    assert result.answers[0].hits[0].chunk.source == "lakes.md"
    (corpus / "new.txt").write_text("Volcanoes erupt in Iceland when magma reaches the surface.")
    notes.clear()
    result = ask(s, ["Why do volcanoes erupt in Iceland?"], embedder=fake, notify=notes.append)
    assert notes == [f"Corpus changed (1 added): updating {s.index}."]
    assert result.answers[0].hits[0].chunk.source == "new.txt"
    (corpus / "new.txt").unlink()
    notes.clear()
    result = ask(
        s, ["Why do volcanoes erupt in Iceland?"], embedder=fake, notify=notes.append, update=False
    )
    assert notes == [] and result.answers[0].hits[0].chunk.source == "new.txt"


def test_asking_with_another_model_than_the_index_is_an_error(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    build_index(settings_for(corpus, tmp_path), embedder=fake)
    with pytest.raises(ModelError, match="built with fake-model, not other"):
        current_index(settings_for(corpus, tmp_path, model="other"))


def test_large_collections_get_an_ivf_index_and_keep_exact_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa import store

    monkeypatch.setattr(store, "FLAT_LIMIT", 100)
    root = tmp_path / "many"
    root.mkdir()
    topics = ["volcano lava", "penguin ice", "rocket moon", "bread yeast", "violin music"]
    for n in range(300):
        words = " ".join(f"{topics[n % 5]} item{n} detail{n % 7} note{n % 11}".split())
        (root / f"{n:03d}.txt").write_text(f"This article number {n} is about {words} today.")
    s = Settings(corpus=root, index=tmp_path / "index")
    fake = FakeEmbedder()
    build_index(s, embedder=fake)
    index = load_index(s.index)
    assert (index.manifest.vector_index, index.manifest.nprobe) == ("IVF64,SQ8", 64)
    assert index.exact is not None and (generation(s.index) / "vectors.npy").is_file()
    exact = fake.embed([c.embed_text() for c in index.chunks])
    assert np.allclose(index.vectors(), exact)  # updates reuse exact, not quantised, vectors
    found = index.search(exact[:20], 1)
    assert sum(rows[0][0] == n for n, rows in enumerate(found)) >= 18  # approximate search
    (root / "000.txt").write_text("This article number zero is now about something else.")
    assert build_index(s, embedder=fake).embedded == 1


def test_manifest_records_how_the_index_was_built(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    s = settings_for(corpus, tmp_path)
    build_index(s, embedder=fake)
    manifest = json.loads((generation(s.index) / "manifest.json").read_text())
    assert manifest["model"] == "fake-model" and manifest["dim"] == 256
    assert manifest["chunking"] == {"max_tokens": 64, "min_words": 8, "version": 1}
    assert manifest["corpus"] == "../corpus"
    assert set(manifest["files"]) == {"lakes.md", "space/rockets.txt", "cooking.txt"}
    assert len(manifest["fingerprint"]) == 16 and manifest["qa_version"]
    assert not list(s.index.glob("*.pkl"))
    # A model without an ONNX encoder cannot have int8 passages, whatever is asked for.
    assert manifest["precision"] == "fp32"
    report = build_index(settings_for(corpus, tmp_path, precision="int8"), embedder=fake)
    assert (report.embedded, report.rebuilt) == (0, None)


def test_an_unknown_precision_is_a_clear_error(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    with pytest.raises(InputError, match="Unknown precision 'int4': use int8 or fp32"):
        build_index(settings_for(corpus, tmp_path, precision="int4"), embedder=fake)


def test_the_index_keeps_each_document_as_read_and_updates_reuse_it(
    corpus: Path, tmp_path: Path, fake: FakeEmbedder
) -> None:
    s = settings_for(corpus, tmp_path)
    build_index(s, embedder=fake)
    index = load_index(s.index)
    doc = index.document("lakes.md", None)
    assert doc is not None and doc.title == "Lakes of the north"
    assert doc.text == (corpus / "lakes.md").read_text(encoding="utf-8")
    for chunk in index.chunks:
        own = index.document(chunk.source, chunk.doc_id)
        assert own is not None and own.text[chunk.start : chunk.end] == chunk.text
    (corpus / "cooking.txt").write_text("Pasta is boiled in salted water until it is al dente.")
    build_index(s, embedder=fake)
    index = load_index(s.index)
    cooking = index.document("cooking.txt", None)
    assert cooking is not None and cooking.text.startswith("Pasta")
    assert index.document("lakes.md", None) == doc
    assert index.document("missing.txt", None) is None

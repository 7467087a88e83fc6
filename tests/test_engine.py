"""The Engine: the answers of qa.search.ask, from many threads at once alike."""

from __future__ import annotations

import threading
from pathlib import Path

from qa import schema
from qa.config import Settings
from qa.engine import Engine
from qa.filters import Filters
from qa.indexer import build_index
from qa.search import ask

from .conftest import FakeEmbedder

QUESTIONS = ["How deep is Lake Baikal?", "Who designed the Saturn V?", "Why does bread rise?"]
# more distinct filters than DocumentTable keeps masks for (8): eviction under threads
FILTERS = [Filters.parse([f"*{c}*"], None, None, (), ()) for c in "abcdefghijkl"] + [None]


def test_concurrent_asks_answer_as_ask_does(
    tmp_path: Path, corpus: Path, fake_models: dict[str, FakeEmbedder]
) -> None:
    settings = Settings(corpus=corpus, index=tmp_path / "index")
    build_index(settings, embedder=FakeEmbedder())
    engine = Engine.open(settings)
    expected = {
        (q, n): schema.answer(ask(settings, [q], k=3, update=False, filters=f).answers[0])
        for q in QUESTIONS
        for n, f in enumerate(FILTERS)
    }
    assert engine.ask(QUESTIONS, 3, context=1).answers[0].hits[0].context is not None
    failures: list[str] = []

    def worker(seed: int) -> None:
        for i in range(40):
            q = QUESTIONS[(seed + i) % len(QUESTIONS)]
            n = (seed * 7 + i) % len(FILTERS)
            try:
                got = schema.answer(engine.ask([q], 3, filters=FILTERS[n]).answers[0])
            except Exception as exc:  # any failure under threads is the bug looked for
                failures.append(repr(exc))
                continue
            if got != expected[(q, n)]:
                failures.append(f"{q} {n}: differs")

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures[:3]
    assert not engine.refresh()  # nothing new published: the same generation


def test_a_new_generation_takes_over_what_the_old_worked_out(
    tmp_path: Path, corpus: Path, fake_models: dict[str, FakeEmbedder]
) -> None:
    """After an edit, the engine's new generation holds the old one's sentence cache for the
    passages that did not change (equal to what it would work out itself), none for those
    that did, and answers as a freshly opened engine does."""
    settings = Settings(corpus=corpus, index=tmp_path / "index")
    build_index(settings, embedder=FakeEmbedder())
    engine = Engine.open(settings)
    for q in QUESTIONS:
        engine.ask([q], 5)
    old = engine.index
    assert old.sentences
    edited = old.chunks[next(iter(old.sentences))].source
    path = corpus / edited
    path.write_text("A new first paragraph about glaciers and ice.\n\n" + path.read_text())
    build_index(settings, embedder=FakeEmbedder())
    assert engine.refresh()
    new = engine.index
    assert new is not old and new.sentences
    for row, found in list(new.sentences.items()):
        chunk = new.chunks[row]
        assert chunk.source != edited or any(
            (c.source, c.start, c.sha256) == (chunk.source, chunk.start, chunk.sha256)
            for c in old.chunks
        )
        new.sentences.pop(row)
        assert new.passage_sentences(row) == found  # what it would have worked out itself
    fresh = Engine.open(settings)
    for q in QUESTIONS:
        assert schema.answer(engine.ask([q], 5).answers[0]) == schema.answer(
            fresh.ask([q], 5).answers[0]
        )

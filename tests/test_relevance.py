"""Relevance: a calibrated probability in [0, 1] on every hit, --min-score and "no answer"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import qa.search
from qa.calibration import CALIBRATIONS, Calibration, calibration
from qa.cli import app
from qa.config import Settings
from qa.errors import InputError
from qa.indexer import build_index
from qa.search import MODES, Answer, answerable, search
from qa.store import StoredIndex, load_index

from .conftest import FakeEmbedder

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
QUESTIONS = [
    "How deep is Lake Baikal in Siberia?",
    "Who designed the Saturn V rocket?",
    "Why does bread rise?",
    "What is the capital of Peru?",
]


@pytest.fixture
def index(corpus: Path, tmp_path: Path, fake: FakeEmbedder) -> StoredIndex:
    settings = Settings(corpus=corpus, index=tmp_path / "index")
    build_index(settings, embedder=fake)
    return load_index(settings.index)


def every_hit(index: StoredIndex, fake: FakeEmbedder, mode: str, **kw: float) -> list[Answer]:
    return search(index, fake, QUESTIONS, len(index.chunks), mode, **kw)


@pytest.mark.parametrize("mode", MODES)
def test_every_hit_has_a_relevance_between_0_and_1_and_its_own_measures(
    index: StoredIndex, fake: FakeEmbedder, mode: str
) -> None:
    for answer in every_hit(index, fake, mode):
        scores = index.lexical.scores(answer.question)
        for hit in answer.hits:
            assert 0.0 <= hit.score <= 1.0 and hit.relevance == hit.score
            assert hit.dense is not None and -1.0 <= hit.dense <= 1.0
            row = index.chunks.index(hit.chunk)
            if mode == "dense":
                assert hit.lexical is None and hit.fused is None and hit.sentence is None
            else:
                assert hit.lexical == pytest.approx(float(scores[row]))
                assert hit.lexical_share is not None and 0.0 <= hit.lexical_share < 1.0
                assert hit.sentence is not None and 0.0 <= hit.sentence.terms <= 1.0
            assert (hit.fused is not None) == (mode == "hybrid")
            assert set(calibration(mode, sentence_states=False).features) <= set(hit.features())


@pytest.mark.parametrize("model", list(CALIBRATIONS.values()), ids=list(CALIBRATIONS))
def test_relevance_rises_with_every_measure_it_reads(model: Calibration) -> None:
    assert "dense" in model.features  # the passage cosine: the main measure in every mode
    middle = dict.fromkeys(model.features, 0.2)
    for name in model.features:
        levels = [model.relevance({**middle, name: v}) for v in (-0.2, 0.0, 0.3, 0.6, 0.9)]
        assert levels == sorted(levels) and levels[0] < levels[-1], name
        assert all(0.0 < level < 1.0 for level in levels)


def test_min_score_drops_exactly_the_hits_below_it(index: StoredIndex, fake: FakeEmbedder) -> None:
    every = every_hit(index, fake, "hybrid")
    cut = sorted(h.score for a in every for h in a.hits)[len(index.chunks) * 2]
    kept = every_hit(index, fake, "hybrid", min_score=cut)
    for full, some in zip(every, kept, strict=True):
        assert some.hits == [h for h in full.hits if h.score >= cut]
        assert some.answered == full.answered  # the decision is about the corpus, not the cut
    assert 0 < sum(len(a.hits) for a in kept) < sum(len(a.hits) for a in every)
    with pytest.raises(InputError, match="--min-score"):
        every_hit(index, fake, "hybrid", min_score=1.5)


def test_no_answer_when_the_best_relevance_is_below_the_threshold(
    index: StoredIndex, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = search(index, fake, QUESTIONS, 2)
    best = [max(h.score for h in a.hits) for a in answers]
    assert [a.answered for a in answers] == [b >= qa.search.ANSWER_THRESHOLD for b in best]
    middle = sorted(best)[len(best) // 2]
    monkeypatch.setattr(qa.search, "ANSWER_THRESHOLD", middle)
    answers = search(index, fake, QUESTIONS, 2)
    assert [a.answered for a in answers] == [b >= middle for b in best]
    assert any(a.answered for a in answers) and not all(a.answered for a in answers)
    assert not answerable([])


def test_ask_json_keeps_the_measures_under_their_names(here: Path) -> None:
    measures = {"relevance", "fused", "dense", "lexical", "lexical_share", "sentence"}
    bodies = {}
    for mode in MODES:
        result = runner.invoke(app, ["ask", "--json", "--mode", mode, "-k", "5", QUESTIONS[0]])
        assert result.exit_code == 0, result.output
        bodies[mode] = json.loads(result.stdout)["results"]
        for r in bodies[mode]:
            assert measures <= set(r) and r["score"] == r["relevance"]
            assert 0.0 <= r["relevance"] <= 1.0 and isinstance(r["dense"], float)
    hybrid, dense, lexical = (bodies[m][0] for m in MODES)
    assert isinstance(hybrid["fused"], float) and isinstance(hybrid["lexical"], float)
    assert set(hybrid["sentence"]) == {"cosine", "token_match", "terms", "phrases"}
    assert dense["fused"] is None and dense["lexical"] is None and dense["sentence"] is None
    assert lexical["fused"] is None and isinstance(lexical["lexical_share"], float)
    # --min-score is a relevance; outside [0, 1] typer refuses it before anything loads.
    result = runner.invoke(app, ["ask", "--json", "--min-score", "0.999999", QUESTIONS[0]])
    assert result.exit_code == 0, result.output
    assert all(r["relevance"] >= 0.999999 for r in json.loads(result.stdout)["results"])
    result = runner.invoke(app, ["ask", "--min-score", "1.5", QUESTIONS[0]])
    assert result.exit_code == 2 and "--min-score" in result.output

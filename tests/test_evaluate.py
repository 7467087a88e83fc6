from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa.cli import app
from qa.evaluate import (
    eval_index,
    evaluate_beir,
    evaluate_spans,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
)

from .conftest import FakeEmbedder


def test_ndcg_matches_hand_computed_values() -> None:
    # DCG = 1/log2(3); ideal = 1 + 1/log2(3)
    assert ndcg_at_k(["a", "b", "c"], {"b": 1, "d": 1}, 10) == pytest.approx(0.386853, abs=1e-6)
    assert ndcg_at_k(["a", "b"], {"a": 2, "b": 1}, 10) == pytest.approx(1.0)
    # graded: (1 + 2/log2(3)) / (2 + 1/log2(3))
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx(0.859719, abs=1e-6)
    assert ndcg_at_k(["x", "a"], {"a": 1}, 1) == 0.0
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0  # nothing relevant judged


def test_recall_and_reciprocal_rank() -> None:
    assert recall_at_k(["a", "b", "c"], {"b", "d"}, 10) == 0.5
    assert recall_at_k(["a", "b", "c"], {"c"}, 2) == 0.0
    assert reciprocal_rank([False, True, True], 10) == 0.5
    assert reciprocal_rank([False, False, True], 2) == 0.0


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    docs = [
        ("d1", "Penguins", "Emperor penguins breed during the Antarctic winter on the sea ice."),
        ("d2", "Camels", "Camels store fat in their humps and survive long without water."),
        ("d3", "Owls", "Owls hunt at night and can turn their heads very far around."),
    ]
    (root / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in docs)
    )
    (root / "queries.jsonl").write_text(
        "\n".join(
            json.dumps(q)
            for q in [
                {"_id": "q1", "text": "Which animal stores fat in humps without water?"},
                {"_id": "q2", "text": "Which birds hunt at night?"},
                {"_id": "q3", "text": "not judged in the test split"},
            ]
        )
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\n")
    return root


def test_beir_evaluation_on_a_tiny_folder(beir: Path, tmp_path: Path) -> None:
    settings = eval_index(beir, tmp_path / "idx", None)
    report = evaluate_beir(settings, beir, mode="lexical", embedder=FakeEmbedder())
    assert report.questions == 2
    assert report.metrics["nDCG@10"] == 1.0 and report.metrics["MRR@10"] == 1.0
    assert report.metrics["recall@100"] == 1.0


def test_span_evaluation_counts_hits_by_containment(corpus: Path, tmp_path: Path) -> None:
    text = (corpus / "lakes.md").read_text()
    start = text.index("1642 metres")
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps(q)
            for q in [
                {
                    "id": "1",
                    "question": "How deep is Lake Baikal in Siberia?",
                    "file": "lakes.md",
                    "answers": [{"start": start, "end": start + 11, "text": "1642 metres"}],
                },
                {
                    "id": "2",
                    "question": "How deep is Lake Baikal in Siberia?",
                    "file": "cooking.txt",
                    "answers": [{"start": 0, "end": 5, "text": "Bread"}],
                },
            ]
        )
    )
    settings = eval_index(corpus, tmp_path / "idx", None)
    report = evaluate_spans(settings, questions, mode="dense", embedder=FakeEmbedder())
    assert report.metrics["hit@1"] == 0.5  # the second is answered lower down, if at all
    assert report.metrics["highlight has answer"] == 1.0
    assert report.metrics["mean passage words"] > 10


def test_eval_command_prints_json(
    beir: Path, tmp_path: Path, fake_models: dict[str, FakeEmbedder]
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--beir",
            str(beir),
            "--index",
            str(tmp_path / "i"),
            "--mode",
            "lexical",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["dataset"] == "tiny" and body["questions"] == 2 and body["nDCG@10"] == 1.0
    result = CliRunner().invoke(app, ["eval", "--beir", str(tmp_path)])
    assert result.exit_code == 1 and "is not a BEIR folder" in result.stderr


def test_span_questions_are_labelled_with_the_data_set_not_the_questions_folder(
    tmp_path: Path, fake_models: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "mydata"
    (data / "corpus").mkdir(parents=True)
    text = "Lake Baikal is the deepest lake in the world, in Siberia, and very old."
    (data / "corpus" / "lakes.txt").write_text(text)
    elsewhere = tmp_path / "questions"
    elsewhere.mkdir()
    start = text.index("Siberia")
    (elsewhere / "q.jsonl").write_text(
        json.dumps(
            {
                "question": "Where is Lake Baikal?",
                "file": "lakes.txt",
                "id": "q1",
                "answers": [{"start": start, "end": start + 7}],
            }
        )
        + "\n"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--json",
            "--questions",
            str(elsewhere / "q.jsonl"),
            "--corpus",
            str(data / "corpus"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dataset"] == "mydata"
    assert (tmp_path / "eval-index" / "mydata" / "qa-index.json").is_file()

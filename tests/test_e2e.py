"""End to end with the real bundled model (offline) over the shipped corpus/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa.config import Settings
from qa.embed import load_embedder
from qa.indexer import build_index
from qa.search import Answers, ask

from .conftest import REPO

pytestmark = pytest.mark.model

# (question, text the top passage must contain)
QUESTIONS = [
    ("How much is JD.com paying for its stake in Farfetch?", "$397 million"),
    ("What valuation did Farfetch reach in 2015?", "$1 billion valuation"),
    ("What delivery service did JD.com reveal for luxury goods?", "white-glove"),
    ("What share of Index Fashion brands are available on Farfetch's China site?", "83%"),
    ("What is JD.com's official flagship adoption rate among Index Fashion brands?", "only 11%"),
    ("When did Tmall launch a luxury flash sales channel?", "In March 2016"),
    ("When is JD.com's New York Fashion Week show?", "February 17"),
    ("Where did JD.com make its runway debut?", "Milan Fashion Week"),
    ("Which designers will the New York Fashion Week show highlight?", "emerging Chinese designers"),
    ("What payment system does JD.com offer Farfetch?", "JD Pay"),
    ("What share of Index Fashion brands does JD.com sell through its own stores?", "68%"),
]


@pytest.fixture(scope="session")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    root = tmp_path_factory.mktemp("e2e")
    shutil.copytree(REPO / "corpus", root / "corpus")
    settings = Settings(corpus=root / "corpus", index=root / "index")
    return settings, root


@pytest.fixture(scope="session")
def answers(shipped: tuple[Settings, Path]) -> Answers:
    settings, _ = shipped
    embedder = load_embedder("sentence-transformers/all-MiniLM-L6-v2")
    report = build_index(settings, embedder=embedder)
    assert report.embedded == report.chunks == 10
    return ask(settings, [q for q, _ in QUESTIONS], k=3, embedder=embedder)


@pytest.mark.parametrize(("number", "expected"), list(enumerate(e for _, e in QUESTIONS)))
def test_the_answer_is_in_the_top_passage(answers: Answers, number: int, expected: str) -> None:
    top = answers.answers[number].hits[0].chunk
    assert expected in top.text, f"{QUESTIONS[number][0]} -> {top.id}: {top.text[:120]}"


def test_citations_slice_the_shipped_articles(answers: Answers) -> None:
    for answer in answers.answers:
        for hit in answer.hits:
            c = hit.chunk
            text = (answers.corpus / c.source).read_text(encoding="utf-8-sig")
            assert text[c.start : c.end] == c.text
            lines = text.split("\n")[c.line_start - 1 : c.line_end]  # type: ignore[operator]
            assert c.text in "\n".join(lines)
            assert c.start <= hit.highlight[0] < hit.highlight[1] <= c.end
    first = answers.answers[0].hits[0]
    assert (first.chunk.source, first.chunk.paragraph, first.chunk.line_start) == (
        "000_b577fc557edadd91.txt", 2, 3)


def test_a_second_build_embeds_nothing(answers: Answers, shipped: tuple[Settings, Path]) -> None:
    settings, _ = shipped
    report = build_index(settings)
    assert (report.embedded, report.reused) == (0, 10)


def test_cli_end_to_end_in_a_subprocess(answers: Answers, shipped: tuple[Settings, Path]) -> None:
    _, root = shipped
    qa = [sys.executable, "-m", "qa"]
    done = subprocess.run([*qa, "ask", "--json", "-k", "1",
                           "How much is JD.com paying for its stake in Farfetch?"],
                          cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert "$397 million" in result["text"] and result["paragraph"] == 2
    assert "(once)" not in done.stderr  # the index built above was current

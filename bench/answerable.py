"""Calibrate the cosine rule that decided "no answer" before relevance (bench/calibrate.py):
the best dense cosine among the top 5 hybrid passages; diversify still uses 0.30.

Answerable: SQuAD questions over the SQuAD articles, SciFact test claims over SciFact.
Unanswerable: each set's questions over the OTHER corpus, and off-topic questions over the
shipped corpus/. A threshold flags as "no answer" what falls below it.
Usage: .venv/bin/python bench/answerable.py [SCIFACT_INDEX] [SQUAD_INDEX]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from indexes import eval_index

from qa.config import DEFAULT_MODEL, Settings
from qa.embed import load_embedder
from qa.evaluate import load_beir, load_span_questions
from qa.indexer import build_index
from qa.search import embed_questions, retrieve
from qa.store import StoredIndex, load_index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]
OFF_TOPIC = [
    "What is the capital of Peru?",
    "How do I bake sourdough bread?",
    "Who won the 1998 football World Cup?",
    "What is the boiling point of water on Everest?",
    "How many moons does Jupiter have?",
    "What causes the northern lights?",
    "Who wrote Pride and Prejudice?",
    "How does a heat pump work?",
    "What is the speed of light in a vacuum?",
    "When did the Roman Empire fall?",
]


def best_cosines(index: StoredIndex, questions: list[str], embedder: object) -> np.ndarray:
    vectors, tokens = embed_questions(embedder, questions)  # type: ignore[arg-type]
    found = retrieve(index, vectors, questions, 5, "hybrid", tokens)
    return np.array(
        [
            float(index.dense_scores(v, np.array([r for r, _ in rows])).max())
            for v, rows in zip(vectors, found, strict=True)
        ]
    )


def main() -> None:
    args = [Path(a) for a in sys.argv[1:]] or [eval_index("scifact"), eval_index("squad")]
    embedder = load_embedder(DEFAULT_MODEL)
    scifact, squad = load_index(args[0]), load_index(args[1])
    shipped_dir = Path("/tmp/qa-answerable-index")
    build_index(Settings(corpus=REPO / "corpus", index=shipped_dir), embedder=embedder)
    shipped = load_index(shipped_dir)
    claims = list(load_beir(DATA / "scifact", "test")[0].values())
    questions = [q.question for q in load_span_questions(DATA / "squad" / "questions.jsonl")]
    answerable = {
        "SQuAD on SQuAD": best_cosines(squad, questions, embedder),
        "SciFact on SciFact": best_cosines(scifact, claims, embedder),
    }
    unanswerable = {
        "SQuAD on SciFact": best_cosines(scifact, questions, embedder),
        "SciFact on SQuAD": best_cosines(squad, claims, embedder),
        "off-topic on corpus/": best_cosines(shipped, OFF_TOPIC, embedder),
    }
    print(
        "| threshold | "
        + " | ".join(f"{n} flagged" for n in answerable)
        + " | "
        + " | ".join(f"{n} caught" for n in unanswerable)
        + " |"
    )
    for t in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45):
        cells = [f"{(c < t).mean():.1%}" for c in (*answerable.values(), *unanswerable.values())]
        print(f"| {t:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""BM25 alone on SciFact and SQuAD: stopword list x stemming x (k1, b). Chooses qa/lexical.py's.

Usage: .venv/bin/python bench/lexical.py [SCIFACT_INDEX] [SQUAD_INDEX]
(indexes built by `qa eval`, default eval-index/scifact and eval-index/squad). Output is
kept in bench/results/lexical.txt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from bm25s.stopwords import STOPWORDS_EN
from indexes import eval_index
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

import qa.lexical as lexical
from qa.evaluate import load_beir, load_span_questions, ndcg_at_k
from qa.store import load_index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WH = frozenset("what which who whom whose when where why how did does do was were".split())
LISTS = {
    "lucene": frozenset(STOPWORDS_EN),
    "lucene+wh": frozenset(STOPWORDS_EN) | WH,
    "sklearn": frozenset(ENGLISH_STOP_WORDS),
}


def top(scores: np.ndarray, k: int) -> np.ndarray:
    rows = np.argpartition(-scores, k)[:k]
    return rows[np.argsort(-scores[rows])]


def main() -> None:
    args = [Path(a) for a in sys.argv[1:]] or [eval_index("scifact"), eval_index("squad")]
    sc, sq = load_index(args[0]).chunks, load_index(args[1]).chunks
    queries, qrels = load_beir(DATA / "scifact", "test")
    questions = load_span_questions(DATA / "squad" / "questions.jsonl")
    docs = np.array([c.doc_id for c in sc])
    for name, words in LISTS.items():
        for stem in ("english", None):
            for k1, b in ((1.2, 0.75), (0.9, 0.4), (1.5, 0.75), (1.2, 0.5)):
                lexical.K1, lexical.B = k1, b
                analyzer = lexical.Analyzer(words, stem)
                bm25 = lexical.build_lexical([c.embed_text() for c in sc], analyzer)
                ndcg = sum(
                    ndcg_at_k(list(dict.fromkeys(docs[top(bm25.scores(q), 50)])), qrels[i], 10)
                    for i, q in queries.items()
                ) / len(queries)
                bm25 = lexical.build_lexical([c.embed_text() for c in sq], analyzer)
                hit1 = hit5 = 0
                for q in questions:
                    good = [
                        sq[r].source == q.file
                        and any(sq[r].start <= a and e <= sq[r].end for a, e in q.answers)
                        for r in top(bm25.scores(q.question), 5)
                    ]
                    hit1 += good[0]
                    hit5 += any(good)
                n = len(questions)
                print(
                    f"{name:10s} {stem!s:8s} k1={k1} b={b}  scifact {ndcg:.4f}  "
                    f"squad hit@1 {hit1 / n:.4f} hit@5 {hit5 / n:.4f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""Sweep fusion rules for hybrid retrieval on SciFact and SQuAD with ONE setting for both.

Usage: .venv/bin/python bench/fusion.py [--scifact-index DIR] [--squad-index DIR]
Builds (or reuses) the two eval indexes, embeds the questions once, then scores every rule
from the full dense and BM25 score matrices. Prints a table; the chosen rule goes in search.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qa.config import DEFAULT_MODEL
from qa.embed import load_embedder
from qa.evaluate import (
    eval_index,
    load_beir,
    load_span_questions,
    ndcg_at_k,
    reciprocal_rank,
)
from qa.indexer import build_index
from qa.store import StoredIndex, load_index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
Rule = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (dense, bm25) rows -> fused


def ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(-x, axis=1, kind="stable")
    out = np.empty_like(order)
    np.put_along_axis(out, order, np.arange(x.shape[1])[None, :].repeat(len(x), 0), axis=1)
    return out + 1


def masked_minmax(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    lo = np.where(keep, x, np.inf).min(axis=1, keepdims=True)
    hi = np.where(keep, x, -np.inf).max(axis=1, keepdims=True)
    return (x - lo) / np.where(hi > lo, hi - lo, 1)


def rules(pool: int = 100) -> dict[str, Rule]:
    """Each rule sees what search.py sees: the union of each side's top `pool` candidates."""

    def convex(w: float) -> Rule:
        def fuse(d: np.ndarray, b: np.ndarray) -> np.ndarray:
            keep = (ranks(d) <= pool) | (ranks(b) <= pool)
            mixed = w * masked_minmax(d, keep) + (1 - w) * masked_minmax(b, keep)
            return np.where(keep, mixed, -1.0)

        return fuse

    def rrf(c: int) -> Rule:
        def fuse(d: np.ndarray, b: np.ndarray) -> np.ndarray:
            rd, rb = ranks(d), ranks(b)
            return np.where(rd <= pool, 1 / (c + rd), 0) + np.where(rb <= pool, 1 / (c + rb), 0)

        return fuse

    out: dict[str, Rule] = {"dense": lambda d, b: d, "bm25": lambda d, b: b}
    for c in (10, 60):
        out[f"rrf c={c}"] = rrf(c)
    for w in (0.3, 0.4, 0.5, 0.6, 0.7):
        out[f"minmax w={w}"] = convex(w)
    return out


def scores(index: StoredIndex, questions: list[str], embedder: object) -> tuple[np.ndarray, ...]:
    q = embedder.embed(questions)  # type: ignore[attr-defined]
    dense = q @ index.vectors().T
    bm25 = np.vstack([index.lexical.scores(t) for t in questions])
    return dense, bm25


def scifact(index: StoredIndex, embedder: object) -> tuple[Callable[[np.ndarray], dict], ...]:
    queries, qrels = load_beir(DATA / "scifact", "test")
    ids = list(queries)
    dense, bm25 = scores(index, [queries[i] for i in ids], embedder)
    docs = np.array([c.doc_id for c in index.chunks])

    def measure(fused: np.ndarray) -> dict[str, float]:
        total = 0.0
        for n, qid in enumerate(ids):
            order = np.argsort(-fused[n], kind="stable")[:50]
            ranked = list(dict.fromkeys(docs[order]))
            total += ndcg_at_k(ranked, qrels[qid], 10)
        return {"SciFact nDCG@10": total / len(ids)}

    return measure, dense, bm25


def squad(index: StoredIndex, embedder: object) -> tuple[Callable[[np.ndarray], dict], ...]:
    questions = load_span_questions(DATA / "squad" / "questions.jsonl")
    dense, bm25 = scores(index, [q.question for q in questions], embedder)
    chunks = index.chunks

    def measure(fused: np.ndarray) -> dict[str, float]:
        hits = {1: 0, 5: 0, 20: 0}
        mrr = 0.0
        top = np.argsort(-fused, axis=1, kind="stable")[:, :20]
        for n, q in enumerate(questions):
            good = [
                chunks[r].source == q.file
                and any(chunks[r].start <= a and b <= chunks[r].end for a, b in q.answers)
                for r in top[n]
            ]
            for k in hits:
                hits[k] += any(good[:k])
            mrr += reciprocal_rank(good, 10)
        n = len(questions)
        return {
            "SQuAD hit@1": hits[1] / n,
            "hit@5": hits[5] / n,
            "hit@20": hits[20] / n,
            "MRR@10": mrr / n,
        }

    return measure, dense, bm25


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scifact-index", type=Path, default=Path("eval-index/scifact"))
    parser.add_argument("--squad-index", type=Path, default=Path("eval-index/squad"))
    args = parser.parse_args()
    embedder = load_embedder(DEFAULT_MODEL)
    sets = []
    for corpus, index_dir, make in (
        (DATA / "scifact", args.scifact_index, scifact),
        (DATA / "squad" / "corpus", args.squad_index, squad),
    ):
        settings = eval_index(corpus, index_dir, None)
        build_index(settings, embedder=embedder)
        sets.append(make(load_index(settings.index), embedder))
    print(f"{'rule':16s}", file=sys.stderr)
    for name, rule in rules().items():
        row: dict[str, float] = {}
        for measure, dense, bm25 in sets:
            row.update(measure(rule(dense, bm25)))
        print(f"| {name:14s} | " + " | ".join(f"{k} {v:.4f}" for k, v in row.items()) + " |")


if __name__ == "__main__":
    main()

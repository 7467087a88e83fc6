"""Retrieval quality on public question sets: BEIR folders and span-annotated questions."""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qa import embed as embedding
from qa.config import Settings
from qa.corpus import passage_words
from qa.errors import InputError
from qa.indexer import Progress, build_index
from qa.search import answerable, embed_questions, marked_hits, retrieve
from qa.store import StoredIndex, load_index

# --- metrics (as BEIR computes them with pytrec_eval) ------------------------------------------


def ndcg_at_k(ranked: Sequence[str], gains: dict[str, int], k: int) -> float:
    """nDCG@k with linear gains and a log2(rank + 1) discount; ideal from all judged gains."""
    dcg = sum(gains.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], 1))
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, 1))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank(ranks: Sequence[bool], k: int) -> float:
    """1/rank of the first True within the top k, else 0."""
    for rank, good in enumerate(ranks[:k], 1):
        if good:
            return 1.0 / rank
    return 0.0


# --- data sets -------------------------------------------------------------------------------


def load_beir(folder: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """(queries judged in the split, qrels) of a BEIR folder."""
    qrels_path = folder / "qrels" / f"{split}.tsv"
    try:
        qrels: dict[str, dict[str, int]] = defaultdict(dict)
        with qrels_path.open(encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                qrels[row["query-id"]][row["corpus-id"]] = int(row["score"])
        queries = {}
        with (folder / "queries.jsonl").open(encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                if str(record["_id"]) in qrels:
                    queries[str(record["_id"])] = record["text"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(
            f"{folder} is not a BEIR folder with queries.jsonl and qrels/{split}.tsv ({exc})."
        ) from None
    return queries, dict(qrels)


@dataclass(frozen=True)
class SpanQuestion:
    id: str
    question: str
    file: str
    answers: list[tuple[int, int]]


def load_span_questions(path: Path) -> list[SpanQuestion]:
    try:
        out = []
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    spans = [(int(a["start"]), int(a["end"])) for a in r["answers"]]
                    out.append(SpanQuestion(str(r["id"]), r["question"], r["file"], spans))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"Cannot read span questions from {path} ({exc}).") from None
    return out


# --- runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    dataset: str
    mode: str
    questions: int
    metrics: dict[str, float]  # name -> value, in display order
    seconds: float


def dataset_name(corpus: Path) -> str:
    """A data set's name: its folder's, or the parent's when the folder is called corpus
    (../shared/data/squad/corpus is SQuAD)."""
    corpus = Path(os.path.abspath(corpus))
    return corpus.name if corpus.name not in ("corpus", "corpus.jsonl") else corpus.parent.name


def eval_index(corpus: Path, index: Path | None, model: str | None) -> Settings:
    path = index or Path("eval-index") / dataset_name(corpus)
    return Settings(corpus=corpus, index=path, model=model)


def _prepared(
    settings: Settings, embedder: embedding.Embedder | None, progress: Progress | None
) -> tuple[StoredIndex, embedding.Embedder]:
    """The data set's index, built or updated, and the embedder for its questions: the one
    given (tests), else the index's own (its ONNX encoder when it has one)."""
    if embedder is not None:
        settings = replace(settings, model=embedder.name)
    build_index(settings, embedder=embedder, progress=progress)
    index = load_index(settings.index)
    if embedder is None:
        embedder = embedding.index_embedder(index.path, index.manifest.model, settings.batch_size)
    return index, embedder


def _embed_questions(
    embedder: embedding.Embedder, questions: list[str], progress: Progress | None
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    def report(done: int, total: int) -> None:
        if progress:
            progress("questions", done, total)

    return embed_questions(embedder, questions, progress=report)


def evaluate_beir(
    settings: Settings,
    folder: Path,
    *,
    split: str = "test",
    mode: str = "hybrid",
    embedder: embedding.Embedder | None = None,
    progress: Progress | None = None,
) -> Report:
    """nDCG@10, recall@10/100 and MRR@10 over a BEIR folder, passages max-pooled to documents."""
    queries, qrels = load_beir(folder, split)
    index, embedder = _prepared(settings, embedder, progress)
    started = time.perf_counter()
    ids, texts = list(queries), list(queries.values())
    vectors, tokens = _embed_questions(embedder, texts, progress)
    found = retrieve(index, vectors, texts, 300, mode, tokens)
    totals: dict[str, float] = defaultdict(float)
    for n, (qid, rows) in enumerate(zip(ids, found, strict=True)):
        top = marked_hits(index, texts[n], rows[:5], vectors[n], _tokens(tokens, n), mode)
        totals["no-answer flagged"] += not answerable(top)
        ranked = _documents(index, rows)
        gains = qrels[qid]
        relevant = {d for d, g in gains.items() if g > 0}
        totals["nDCG@10"] += ndcg_at_k(ranked, gains, 10)
        totals["recall@10"] += recall_at_k(ranked, relevant, 10)
        totals["recall@100"] += recall_at_k(ranked, relevant, 100)
        totals["MRR@10"] += reciprocal_rank([d in relevant for d in ranked], 10)
    metrics = {name: value / len(ids) for name, value in totals.items()}
    return Report(dataset_name(folder), mode, len(ids), metrics, time.perf_counter() - started)


def _tokens(tokens: list[np.ndarray] | None, n: int) -> np.ndarray | None:
    return None if tokens is None else tokens[n]


def _documents(index: StoredIndex, rows: list[tuple[int, float]]) -> list[str]:
    """Document ids in order of their best passage (max-pooling)."""
    seen: dict[str, None] = {}
    for row, _ in rows:
        chunk = index.chunks[row]
        seen.setdefault(chunk.doc_id if chunk.doc_id is not None else chunk.source, None)
    return list(seen)


def evaluate_spans(
    settings: Settings,
    questions_file: Path,
    *,
    mode: str = "hybrid",
    embedder: embedding.Embedder | None = None,
    progress: Progress | None = None,
) -> Report:
    """hit@1/5/20 and MRR@10 for span-annotated questions; a passage from the right file
    answers when its [start, end) contains an answer span."""
    questions = load_span_questions(questions_file)
    index, embedder = _prepared(settings, embedder, progress)
    started = time.perf_counter()
    texts = [q.question for q in questions]
    vectors, tokens = _embed_questions(embedder, texts, progress)
    found = retrieve(index, vectors, texts, 20, mode, tokens)
    totals: dict[str, float] = defaultdict(float)
    highlighted = 0  # correct top passages whose marked sentence holds the answer
    for n, (q, rows) in enumerate(zip(questions, found, strict=True)):
        top = marked_hits(index, q.question, rows[:5], vectors[n], _tokens(tokens, n), mode)
        totals["no-answer flagged"] += not answerable(top)
        chunks = [index.chunks[row] for row, _ in rows]
        good = [_contains(c.source, c.start, c.end, q) for c in chunks]
        for k in (1, 5, 20):
            totals[f"hit@{k}"] += any(good[:k])
        totals["MRR@10"] += reciprocal_rank(good, 10)
        if good[:1] == [True]:
            highlighted += _contains(top[0].chunk.source, *top[0].highlight, q)
    metrics = {name: value / len(questions) for name, value in totals.items()}
    metrics["mean passage words"] = sum(passage_words(c.text) for c in index.chunks) / len(
        index.chunks
    )
    if totals["hit@1"]:
        metrics["highlight has answer"] = highlighted / totals["hit@1"]
    name = dataset_name(Path(settings.corpus)) if settings.corpus else questions_file.stem
    return Report(name, mode, len(questions), metrics, time.perf_counter() - started)


def _contains(source: str, start: int, end: int, q: SpanQuestion) -> bool:
    return source == q.file and any(start <= a and b <= end for a, b in q.answers)

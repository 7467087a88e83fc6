"""The Milvus store against FAISS: answer quality on SciFact and SQuAD, HNSW recall by ef,
and 1M passages.

Usage (from the repo root; heavy, so under the machine's benchmark lock):
    flock /work/bench.lock .venv/bin/python bench/vector_stores.py quality
    flock /work/bench.lock .venv/bin/python bench/vector_stores.py recall
    flock /work/bench.lock .venv/bin/python bench/vector_stores.py large [--n 1000000]

quality: copies eval-index/{scifact,squad} (built by `qa eval`; bench/indexes.py) and moves
each copy to Milvus with `qa index --store` (so every vector and sentence state is the FAISS
index's own: nothing is re-embedded), once into a Milvus Lite file (which has Milvus's BM25
function: the keyword candidates come from Milvus) and once into a standalone Milvus 2.3.5
started here (no BM25 function: qa's own BM25 finds them); then `qa eval`'s metrics for each,
and for Milvus Lite also with qa's BM25 finding the keyword candidates.

recall: dense recall@k of the server's HNSW results against FAISS's exact ones, by ef.

large: N synthetic passages as bench/large.py and bench/filters.py make them (real SciFact
vectors with noise, dates over ten years), inserted into the standalone server: build time
(insert + flush + HNSW index), p50/p99 of one question at a time, recall@10 against exact
search, without a filter and with a 1% date filter, by ef. Results: bench/results/milvus.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.indexes import DATA, SOURCES, eval_index  # noqa: E402
from qa import milvus_store  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.evaluate import evaluate_beir, evaluate_spans  # noqa: E402
from qa.indexer import build_index  # noqa: E402
from qa.store import load_index  # noqa: E402

OUT = REPO / "bench" / "results"
SCRATCH = Path(os.environ.get("QA_BENCH_SCRATCH", tempfile.gettempdir()))


@contextmanager
def server(base: Path) -> Iterator[str]:
    """A standalone Milvus 2.3.5 on 127.0.0.1 (tests/milvus_server.py): HOST:PORT."""
    from tests.milvus_server import standalone

    with standalone(base, timeout=180) as address:
        yield address.removeprefix("http://")


def metrics_of(name: str, settings: Settings, mode: str) -> dict[str, float]:
    if name == "scifact":
        return evaluate_beir(settings, DATA / "scifact", mode=mode).metrics
    return evaluate_spans(settings, DATA / "squad" / "questions.jsonl", mode=mode).metrics


def complete_generation(name: str) -> Path:
    """eval-index/NAME's newest generation that has its manifest (read only: the folder is
    shared by every checkout, and its CURRENT was once seen naming a half-written one)."""
    folder = eval_index(name)
    names = sorted(p.name for p in folder.glob("g[0-9]*") if (p / "manifest.json").is_file())
    if not names:
        raise SystemExit(f"{folder} has no complete generation")
    return folder / names[-1]


def snapshot(name: str, scratch: Path) -> Path:
    """A private copy of eval-index/NAME's newest complete generation, as an index folder:
    nothing here ever builds in (or repairs) the shared eval-index."""
    source = complete_generation(name)
    target = scratch / f"{name}-faiss"
    if not target.exists():
        shutil.copytree(source, target / source.name)
        shutil.copy(source.parent / "qa-index.json", target / "qa-index.json")
        (target / "CURRENT").write_text(source.name + "\n")
    return target


def moved(name: str, store: str, scratch: Path) -> tuple[Settings, float]:
    """A copy of eval-index/NAME with its vectors moved into store, and how long that took."""
    source = snapshot(name, scratch)
    target = scratch / f"{name}-{store.split(':')[0]}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("write.lock", "tmp-*"))
    settings = Settings(corpus=SOURCES[name], index=target, store=store)
    started = time.perf_counter()
    report = build_index(settings)
    assert report.embedded == 0, report
    return replace(settings, store=None), time.perf_counter() - started


def dense_recall(faiss: Settings, other: Settings, name: str, efs: list[int]) -> list[str]:
    """recall@10 and @100 of the Milvus store's dense results against FAISS's exact ones."""
    from qa.embed import index_embedder
    from qa.evaluate import load_beir, load_span_questions

    exact, approximate = load_index(faiss.index), load_index(other.index)
    if name == "scifact":
        texts = list(load_beir(DATA / "scifact", "test")[0].values())
    else:
        texts = [q.question for q in load_span_questions(DATA / "squad" / "questions.jsonl")]
    texts = texts[:300]
    embedder = index_embedder(exact.path, exact.manifest.model)
    vectors = embedder.embed(texts)
    truth = exact.search(vectors, 100)
    store = approximate.vector_store
    assert isinstance(store, milvus_store.MilvusIndex)
    lines = []
    for ef in efs:
        store.ef = ef
        for k in (10, 100):
            started = time.perf_counter()
            found = [store.search(vectors[i : i + 1], k)[0] for i in range(len(texts))]
            ms = (time.perf_counter() - started) * 1000 / len(texts)
            # tie-aware: SciFact repeats some passages (equal vectors), whose order is free
            recall = np.mean(
                [
                    sum(s >= t[min(k, len(t)) - 1][1] - 1e-5 for _, s in f[:k]) / k
                    for f, t in zip(found, truth, strict=True)
                ]
            )
            lines.append(f"| {name} | {ef} | {k} | {recall:.4f} | {ms:.1f} ms |")
            print(lines[-1], flush=True)
    store.ef = milvus_store.HNSW_EF
    return lines


QUALITY_KEYS = {"scifact": ("nDCG@10", "recall@100"), "squad": ("hit@1", "hit@5")}


def recall_only(args: argparse.Namespace) -> None:
    """The ef table alone, on the standalone server (a write now waits until its segments
    are served with their HNSW index)."""
    scratch = Path(tempfile.mkdtemp(prefix="qa-milvus-", dir=SCRATCH))
    lines: list[str] = []
    try:
        with server(scratch / "server") as address:
            for name in args.sets:
                faiss = Settings(corpus=SOURCES[name], index=snapshot(name, scratch))
                standalone, seconds = moved(name, f"milvus://{address}/qa_{name}", scratch)
                print(f"{name} moved in {seconds:.0f} s", flush=True)
                lines += dense_recall(faiss, standalone, name, [16, 32, 64, 128])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    body = [
        "## HNSW recall at the eval sets' size",
        "",
        f"`bench/vector_stores.py recall` ({os.cpu_count()} cores shared, load "
        f"{os.getloadavg()[0]:.1f}): each eval index moved to the standalone 2.3.5 server as "
        "`qa index --store` moves it (which now waits until its segments are served with "
        "their HNSW index), then 300 questions one at a time, dense, against FAISS's exact "
        "results; a result counts when its score reaches the exact k-th score (SciFact "
        "repeats some passages, whose order among equals is free). Before that wait, the "
        "same search gave SciFact recall@10 0.933 and recall@100 0.857 whatever the ef: the "
        "query nodes were still searching the rows through Milvus's interim IVF index.",
        "",
        "| set | ef | k | recall@k | mean time a question |",
        "|---|---|---|---|---|",
        *lines,
        "",
    ]
    write_section(OUT / "milvus.md", "## HNSW recall", "\n".join(body))


def quality(args: argparse.Namespace) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="qa-milvus-", dir=SCRATCH))
    rows: list[str] = []
    builds: list[str] = []
    try:
        with server(scratch / "server") as address:
            for name in args.sets:
                faiss = Settings(corpus=SOURCES[name], index=snapshot(name, scratch))
                lite, lite_s = moved(name, f"milvus-lite:{scratch / name}.db", scratch)
                standalone, server_s = moved(name, f"milvus://{address}/qa_{name}", scratch)
                builds.append(
                    f"| {name} | {load_index(faiss.index).manifest.chunks:,} | "
                    f"{lite_s:.0f} s | {server_s:.0f} s |"
                )
                print(builds[-1], flush=True)
                for mode in ("hybrid", "dense"):
                    base = metrics_of(name, faiss, mode)
                    runs = [("FAISS (files)", "qa", base)]
                    runs.append(("Milvus Lite", "Milvus BM25", metrics_of(name, lite, mode)))
                    if mode == "hybrid":
                        with qa_keywords():
                            own = metrics_of(name, lite, mode)
                        runs.append(("Milvus Lite", "qa's BM25", own))
                    runs.append(("Milvus 2.3.5 server", "qa's BM25 (fallback)",
                                 metrics_of(name, standalone, mode)))  # fmt: skip
                    for label, keywords, got in runs:
                        a, b = QUALITY_KEYS[name]
                        delta = got[a] - base[a]
                        rows.append(
                            f"| {name} | {mode} | {label} | "
                            f"{keywords if mode == 'hybrid' else '—'} | {got[a]:.4f} | "
                            f"{delta:+.4f} | {got[b]:.4f} |"
                        )
                        print(rows[-1], flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = [
        "## Answer quality through the Milvus store",
        "",
        f"`bench/vector_stores.py quality` ({os.cpu_count()} cores shared with other work; load "
        f"{os.getloadavg()[0]:.1f} at the end). eval-index/NAME copied and moved to Milvus "
        "with `qa index --store` (no vector re-embedded: the FAISS index's own vectors and "
        f"sentence states), HNSW M {milvus_store.HNSW_M}, efConstruction "
        f"{milvus_store.HNSW_EF_CONSTRUCTION}, ef {milvus_store.HNSW_EF} (at least k). "
        "Metrics as `qa eval` prints them (SciFact: nDCG@10 and recall@100; SQuAD: hit@1 and "
        "hit@5); Δ is against FAISS.",
        "",
        "| set | mode | store | keyword candidates | nDCG@10 / hit@1 | Δ | recall@100 / hit@5 |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Moving an eval index to Milvus (`qa index --store` on a copy: reading and chunking "
        "the corpus again, inserting every passage with its sentence states, flushing):",
        "",
        "| set | passages | into Milvus Lite | into the 2.3.5 server |",
        "|---|---|---|---|",
        *builds,
        "",
    ]
    write_section(OUT / "milvus.md", "## Answer quality", "\n".join(text))


@contextmanager
def qa_keywords() -> Iterator[None]:
    """Milvus Lite's indexes with qa's BM25 finding the keyword candidates."""
    original = milvus_store.MilvusIndex.keyword_search

    def none(self: Any, question: str, k: int, filters: Any) -> None:
        return None

    milvus_store.MilvusIndex.keyword_search = none  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        milvus_store.MilvusIndex.keyword_search = original  # type: ignore[method-assign]


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace the section that starts with heading (to the next "## "), or append it."""
    text = path.read_text() if path.exists() else "# The Milvus store against FAISS\n\n"
    start = text.find(heading)
    if start < 0:
        text = text.rstrip() + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + body.rstrip() + "\n" + (text[end:] if end >= 0 else "")
    path.write_text(text.rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--sets", nargs="+", default=["scifact", "squad"])
    r = sub.add_parser("recall")
    r.add_argument("--sets", nargs="+", default=["scifact", "squad"])
    large_parser = sub.add_parser("large")
    large_parser.add_argument("--n", type=int, default=1_000_000)
    large_parser.add_argument("--queries", type=int, default=200)
    large_parser.add_argument("--budget", type=float, default=1800.0)
    args = parser.parse_args()
    if args.command == "quality":
        quality(args)
    elif args.command == "recall":
        recall_only(args)
    else:
        from bench.vector_stores_large import large

        large(args)


if __name__ == "__main__":
    main()

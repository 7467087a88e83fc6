"""Regenerate bench/results/ray.md: embedding throughput here vs on a Ray cluster of 1 and 2
workers on this machine (qa index --ray), whether the vectors agree, and SciFact nDCG@10 of an
index built through Ray against the local build's.

Usage (from the repo root):
    flock /work/bench.lock .venv/bin/python bench/ray_cluster.py [PASSAGES]
PASSAGES (default 2000): the first ones of eval-index/scifact (built first when missing), whose
texts and sentence spans are embedded in int8 as a build embeds them. Each Ray cluster is a
real `ray start --head --num-cpus N` on 127.0.0.1 under a temporary folder, stopped at the end.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# bench/ is this script's folder, first on sys.path, and its html.py would shadow the standard
# library's html, which ray imports: the repo root instead, bench/ as a namespace package
BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(BENCH.parent), *(p for p in sys.path if Path(p or ".").resolve() != BENCH)]

from bench.indexes import DATA, eval_index, generation  # noqa: E402
from qa.cluster import RayEmbedder  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.evaluate import evaluate_beir  # noqa: E402
from qa.indexer import build_index  # noqa: E402
from qa.runtime import OnnxEmbedder  # noqa: E402
from qa.store import load_index  # noqa: E402
from tests.ray_cluster import head  # noqa: E402

OUT = BENCH / "results" / "ray.md"


@contextmanager
def cluster(cpus: int, temp: Path) -> Iterator[str]:
    """A `ray start --head` cluster of `cpus` CPUs on 127.0.0.1 (tests.ray_cluster); its
    address."""
    with head(cpus, Path(tempfile.mkdtemp(prefix=f"ray{cpus}-", dir=temp))) as (address, _):
        yield address


def busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def timed(run: object) -> dict[str, float]:
    """Seconds of run(progress), seconds to its first progress report, machine cores busy."""
    marks: list[float] = []
    before = busy()
    started = time.perf_counter()
    result = run(lambda done, total: marks.append(time.perf_counter()))  # type: ignore[operator]
    seconds = time.perf_counter() - started
    after = busy()
    cores = (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)
    return {
        "seconds": seconds,
        "first": (marks[0] - started) if marks else seconds,
        "last_gap": (marks[-1] - marks[0]) if len(marks) > 1 else 0.0,
        "reports": float(len(marks)),
        "cores": cores,
        "result": result,  # type: ignore[dict-item]
    }


def driver_costs(
    folder: Path, texts: list[str], where: list[list[tuple[int, int]]]
) -> dict[str, float]:
    """What the driver spends per passage besides waiting (forming the batches, encoding the
    jobs, decoding what comes back) and the bytes each passage sends and gets back."""
    import json

    from qa.cluster import decode, encode

    embedder = OnnxEmbedder(folder, precision="int8")
    started = time.perf_counter()
    batches = embedder.batches(texts)
    jobs = [
        json.dumps({"texts": [texts[r] for r in b], "spans": [list(where[r]) for r in b]})
        for b in batches
    ]
    send_s = time.perf_counter() - started
    back = [encode(*embedder.embed_spans([texts[r] for r in b], [where[r] for r in b]))
            for b in batches[:20]]  # fmt: skip
    rows = sum(len(b) for b in batches[:20])
    started = time.perf_counter()
    for got, b in zip(back, batches[:20], strict=False):
        decode(got, len(b), embedder.spec.dim)
    decode_s = (time.perf_counter() - started) * len(texts) / rows
    return {
        "driver_us": (send_s + decode_s) / len(texts) * 1e6,
        "bytes_out": sum(len(j.encode()) for j in jobs) / len(texts),
        "bytes_back": sum(sum(len(v) for v in got.values()) for got in back) / rows,
    }


def main() -> None:
    wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    # the clusters listen on 127.0.0.1 for this run only: no token (one would go to ~/.ray)
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    started = time.time()
    facts: dict[str, Any] = {"wanted": wanted, "load_start": Path("/proc/loadavg").read_text()}
    index = load_index(eval_index("scifact"))
    folder = generation(index.path)
    chunks = index.chunks[:wanted]
    texts = [c.embed_text() for c in chunks]
    where = [c.embed_sentences() for c in chunks]
    temp = Path(tempfile.mkdtemp(prefix="qa-bench-ray-"))
    rows = facts["rows"] = []
    try:
        local = timed(lambda p: OnnxEmbedder(folder, precision="int8").embed_spans(texts, where, p))
        vectors = local["result"][0]
        rows.append(("here (OnnxEmbedder, all cores)", 0, local, 1.0, True))
        for cpus in (1, 2):
            with cluster(cpus, temp) as address:
                embedder = RayEmbedder(folder, address, "int8")
                got = timed(lambda p, e=embedder: e.embed_spans(texts, where, p))
            theirs = got["result"][0]
            least = float((theirs * vectors).sum(axis=1).min())
            rows.append((f"Ray, {cpus} worker{'s' * (cpus > 1)}", cpus, got, least,
                         bool(np.array_equal(theirs, vectors))))  # fmt: skip
        for name, _, got, least, same in rows:  # in case the SciFact part fails
            print(name, {k: v for k, v in got.items() if k != "result"}, least, same, flush=True)
        facts.update(driver_costs(folder, texts, where))
        # SciFact through Ray (2 workers) vs the local eval index
        scifact = DATA / "scifact"
        through = temp / "scifact-ray"
        with cluster(2, temp) as address:
            build = time.perf_counter()
            facts["report"] = build_index(Settings(corpus=scifact, index=through, ray=address))
            facts["build_s"] = time.perf_counter() - build
        facts["evals"] = [
            (label, mode, evaluate_beir(Settings(corpus=scifact, index=path), scifact, mode=mode))
            for mode in ("hybrid", "dense")
            for label, path in (("through Ray", through), ("local", index.path))
        ]
        built = load_index(through)
        same_chunks = [c.id for c in built.chunks] == [c.id for c in index.chunks]
        a, b = built.vectors(), index.vectors()
        facts["agreement"] = float((a * b).sum(axis=1).min()) if same_chunks else float("nan")
        facts["identical"] = bool(same_chunks and np.array_equal(a, b))
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    facts["load_end"] = Path("/proc/loadavg").read_text()
    facts["total"] = time.time() - started
    write(facts)


def write(facts: dict[str, Any]) -> None:
    import ray

    wanted, rows = facts["wanted"], facts["rows"]
    local_rate = wanted / rows[0][2]["seconds"]
    lines = [
        "# Embedding on a Ray cluster (bench/ray_cluster.py)",
        "",
        f"Command: `flock /work/bench.lock .venv/bin/python bench/ray_cluster.py {wanted}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, total runtime "
        f"{facts['total'] / 60:.1f} min  ",
        f"Machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, Ray {ray.__version__}; one machine, so the "
        "workers share its 2 cores with the driver and with other agents' processes  ",
        f"Load: /proc/loadavg {facts['load_start'].strip()} at start, "
        f"{facts['load_end'].strip()} at end; 'cores busy' is the whole machine's (this "
        "run's processes and everyone else's) while a row ran.",
        "",
        f"## Throughput: the first {wanted} passages of SciFact, int8, texts and sentence "
        "spans as a build embeds them",
        "",
        "'passages/s' counts the whole call: connecting, shipping the encoder (22 MB int8) "
        "and qa's modules, starting the workers and loading the encoder in each. 'steady' "
        "counts from the first batch back to the last. 'bit-identical' compares with the "
        "vectors embedded here.",
        "",
        "| where | workers | seconds | passages/s | first batch back s | steady passages/s "
        "| vs here | cores busy | least cosine to here | bit-identical |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    steady: dict[int, float] = {}
    for name, workers, got, least, same in rows:
        rate = wanted / got["seconds"]
        gap = got["last_gap"]
        steady[workers] = (wanted - 16) / gap if gap > 0 else rate
        lines.append(
            f"| {name} | {workers or '-'} | {got['seconds']:.1f} | {rate:.1f} | "
            f"{got['first']:.1f} | {steady[workers]:.1f} | x{rate / local_rate:.2f} | "
            f"{got['cores']:.2f} | {least:.6f} | {'yes' if same else 'no'} |"
        )
    report = facts["report"]
    lines += [
        "",
        "## SciFact through Ray (2 workers) against the local build (eval-index/scifact)",
        "",
        f"Build through Ray from scratch (export, int8 quantisation, {report.chunks} passages "
        f"embedded on the cluster, keyword index): {facts['build_s']:.0f} s.",
        "",
        "| index | mode | nDCG@10 | recall@100 | MRR@10 |",
        "|---|---|---:|---:|---:|",
    ]
    for label, mode, rep in facts["evals"]:
        m = rep.metrics
        lines.append(
            f"| {label} | {mode} | {m['nDCG@10']:.4f} | {m['recall@100']:.4f} | {m['MRR@10']:.4f} |"
        )
    ndcg = {(label, mode): rep.metrics["nDCG@10"] for label, mode, rep in facts["evals"]}
    delta = ndcg[("through Ray", "hybrid")] - ndcg[("local", "hybrid")]
    lines += [
        "",
        f"nDCG@10 difference (Ray - local, hybrid): {delta:+.4f} (target: within 0.002). "
        f"Passage vectors: least cosine {facts['agreement']:.6f} over all {report.chunks} "
        f"passages; bit-identical: {'yes' if facts['identical'] else 'no'}.",
        "",
    ]
    lines += estimate(facts, steady)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


def estimate(facts: dict[str, Any], steady: dict[int, float]) -> list[str]:
    """N machines, as arithmetic on what was measured here: an estimate, not a measurement."""
    per_worker = steady[2] / 2  # two workers sharing this machine's 2 cores with the driver
    start = facts["rows"][2][2]["first"]
    driver = 1e6 / facts["driver_us"]  # passages/s the driver could feed and take back
    wire = facts["bytes_out"] + facts["bytes_back"]
    network = 125e6 / wire  # at 1 Gbit/s into the driver
    cap = min(driver, network)
    lines = [
        "## N machines: an estimate (arithmetic on the figures above, not measured)",
        "",
        f"- One worker a core gives {per_worker:.1f} passages/s here (2 workers: "
        f"{steady[2]:.1f}/s steady, sharing 2 cores with the driver), {steady[1]:.1f}/s "
        "for a worker alone; a run starts in about "
        f"{start:.0f} s (connect, ship the encoder, start the workers).",
        f"- The driver spends {facts['driver_us']:.0f} µs a passage forming batches and "
        f"decoding results (one core: {driver:,.0f} passages/s); a passage sends "
        f"{facts['bytes_out'] / 1e3:.1f} kB and gets {facts['bytes_back'] / 1e3:.1f} kB back "
        f"(its vector, sentence vectors and token sign bits): {network:,.0f} passages/s on "
        "1 Gbit/s into the driver.",
        f"- So N machines of c such cores: about min(N × c × {per_worker:.0f}, {cap:,.0f}) "
        "passages/s after the start; the cap is reached near "
        f"{cap / per_worker:,.0f} worker cores. Time ≈ {start:.0f} s + passages / that rate.",
        "",
        "| cluster (2-core machines like this one) | passages/s (est.) | SciFact, 9,882 "
        "passages | 1M passages |",
        "|---|---:|---:|---:|",
    ]
    for machines in (1, 4, 16, 64):
        rate = min(machines * 2 * per_worker, cap)
        lines.append(
            f"| {machines} | {rate:,.0f} | {start + 9882 / rate:,.0f} s | "
            f"{(start + 1e6 / rate) / 60:,.0f} min |"
        )
    lines += [
        "",
        f"Here, one process on both cores: {facts['wanted'] / facts['rows'][0][2]['seconds']:.1f}"
        " passages/s. Not counted: other load on the workers, a slower network than 1 Gbit/s, "
        "Ray Data's cost per task (one a batch of 16) and the driver's memory (a build's new "
        "passages are sent as one dataset).",
        "",
    ]
    return lines


if __name__ == "__main__":
    main()

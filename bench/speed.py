"""Speed of qa on this machine: cold ask, warm questions, indexing throughput, incremental updates.

Usage (from the repo root, after bin/setup):
  .venv/bin/python bench/speed.py cold        # whole `qa ask` process, median of 7, ONNX vs full
  .venv/bin/python bench/speed.py warm        # per-question latency in one process, SciFact index
  .venv/bin/python bench/speed.py throughput  # passages/s: sentence-transformers, ONNX fp32/int8
  .venv/bin/python bench/speed.py incremental # edit/add/delete one article in a SciFact-size index
Results are printed as markdown rows; bench/speed.md keeps them with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from indexes import eval_index, generation

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
QA = str(REPO / ".venv" / "bin" / "qa")
QUESTION = "How much is JD.com paying for its stake in Farfetch?"
WORK = Path("/tmp/qa-speed")


def run_qa(*args: str, cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([QA, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def cold(runs: int = 7) -> None:
    """Median wall time of a whole `qa ask` process, index built, with and without ONNX."""
    WORK.mkdir(exist_ok=True)
    fast, full = WORK / "cold-onnx", WORK / "cold-full"
    for folder in (fast, full):
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(REPO / "corpus", folder / "corpus")
    run_qa("index", "corpus", cwd=fast)
    # The full path: an index whose model is not exported, so questions load it in torch.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathlib import Path; import qa.indexer as i; i.can_export = lambda p: False; "
            "from qa.config import Settings; "
            "i.build_index(Settings(corpus=Path('corpus'), index=Path('index')))",
        ],
        cwd=full,
        check=True,
        capture_output=True,
    )
    outputs = {}
    for label, folder in (("onnx (default)", fast), ("sentence-transformers", full)):
        run_qa("ask", "--json", QUESTION, cwd=folder)  # page cache warm, as for a user
        times = []
        for _ in range(runs):
            seconds, out = run_qa("ask", "--json", QUESTION, cwd=folder)
            times.append(seconds)
        outputs[label] = json.loads(out)
        print(
            f"| cold `qa ask`, {label} | median {statistics.median(times):.3f} s | "
            f"min {min(times):.3f} s | max {max(times):.3f} s | {runs} runs |"
        )
    a, b = (outputs[k]["results"] for k in outputs)
    same = [(r["source"], r["paragraph"], r["start"]) for r in a] == [
        (r["source"], r["paragraph"], r["start"]) for r in b
    ]
    drift = max(abs(x["score"] - y["score"]) for x, y in zip(a, b, strict=True))
    print(f"| same passages in the same order: {same} | max score difference {drift:.2e} |")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import qa.cli"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    print(f"| `import qa.cli` (with -X importtime) | {time.perf_counter() - started:.3f} s |")


def warm() -> None:
    """Per-question latency in one process over the SciFact index, as a long-lived mode sees."""
    from qa.embed import index_embedder
    from qa.evaluate import load_beir
    from qa.search import search
    from qa.store import load_index

    index = load_index(eval_index("scifact"))
    embedder = index_embedder(index.path, index.manifest.model)
    queries = list(load_beir(DATA / "scifact", "test")[0].values())
    for mode in ("hybrid", "dense", "lexical"):
        search(index, embedder, queries[:5], 5, mode)  # warm up
        times = []
        for query in queries:
            started = time.perf_counter()
            search(index, embedder, [query], 5, mode)
            times.append((time.perf_counter() - started) * 1000)
        print(
            f"| warm question, SciFact ({len(index.chunks)} passages), {mode}, k=5 | "
            f"p50 {np.percentile(times, 50):.1f} ms | p90 {np.percentile(times, 90):.1f} ms | "
            f"p99 {np.percentile(times, 99):.1f} ms | {len(times)} questions |"
        )


def corpus_texts(name: str) -> list[str]:
    from qa.store import load_index

    path = eval_index(name) if name != "corpus" else WORK / "cold-onnx" / "index"
    return [c.embed_text() for c in load_index(path).chunks]


def throughput(limit: int, chunks: int = 5) -> None:
    """Embedding passages/s on the same texts: sentence-transformers fp32, the ONNX encoder
    (fp32, what questions use) and its int8 copy (what passages use by default). Interleaved:
    each set is cut in `chunks` slices and every embedder does each slice in turn (order
    rotated), so load from elsewhere on the machine falls on all three alike."""
    from qa.embed import load_embedder
    from qa.runtime import ENCODER_FILES, PASSAGE_ENCODER, OnnxEmbedder, quantize_passage_encoder

    folder = WORK / "encoder"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ENCODER_FILES:
        if not (folder / name).exists():
            shutil.copyfile(generation(eval_index("scifact")) / name, folder / name)
    if not (folder / PASSAGE_ENCODER).exists():
        quantize_passage_encoder(folder)
    embedders = {
        "sentence-transformers": load_embedder("sentence-transformers/all-MiniLM-L6-v2"),
        "onnx fp32": OnnxEmbedder(folder),
        "onnx int8": OnnxEmbedder(folder, precision="int8"),
    }
    for embedder in embedders.values():
        embedder.embed(["warm up"] * 64)  # load, and make the bulk session
    for name in ("squad", "scifact"):  # corpus/'s 10 passages are too few to time
        texts = corpus_texts(name)[:limit]
        step = -(-len(texts) // chunks)
        seconds = dict.fromkeys(embedders, 0.0)
        vectors: dict[str, list[np.ndarray]] = {label: [] for label in embedders}
        labels = list(embedders)
        for n, begin in enumerate(range(0, len(texts), step)):
            for label in labels[n % 3 :] + labels[: n % 3]:
                started = time.perf_counter()
                vectors[label].append(embedders[label].embed(texts[begin : begin + step]))
                seconds[label] += time.perf_counter() - started
        exact = np.concatenate(vectors["sentence-transformers"])
        rate = {label: len(texts) / seconds[label] for label in embedders}
        cosine = {label: (np.concatenate(v) * exact).sum(axis=1) for label, v in vectors.items()}
        base = rate["sentence-transformers"]
        print(
            f"| {name} | {len(texts)} | {base:.1f}/s | {rate['onnx fp32']:.1f}/s "
            f"(x{rate['onnx fp32'] / base:.2f}) | **{rate['onnx int8']:.1f}/s "
            f"(x{rate['onnx int8'] / base:.2f})** | {cosine['onnx fp32'].min():.6f} | "
            f"{cosine['onnx int8'].min():.4f} / {cosine['onnx int8'].mean():.4f} |"
        )


def incremental() -> None:
    """A SciFact-size corpus as 5183 .md articles: edit, add and delete one, timing `qa index`."""
    folder = WORK / "incremental"
    articles = folder / "corpus"
    if not (folder / "index" / "CURRENT").exists():
        shutil.rmtree(folder, ignore_errors=True)
        articles.mkdir(parents=True)
        for line in (DATA / "scifact" / "corpus.jsonl").open():
            doc = json.loads(line)
            (articles / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n")
        # Seeded with the SciFact eval index: the same passages (title + text) have the same
        # hashes, so the first build reuses their vectors instead of embedding for 10 minutes.
        shutil.copytree(eval_index("scifact"), folder / "index")
        seconds, out = run_qa("index", "corpus", cwd=folder)
        print(f"| first `qa index` of 5183 articles | {seconds:.1f} s | {out.strip()} |")
    seconds, out = run_qa("index", "corpus", cwd=folder)
    print(f"| `qa index`, nothing changed | {seconds:.2f} s | {out.strip()} |")
    target = articles / "4983.md"
    original = target.read_text()
    target.write_text(
        original + "\nAn added paragraph about cerebral white matter in infants, "
        "written to measure an incremental update.\n"
    )
    seconds, out = run_qa("index", "corpus", cwd=folder)
    print(f"| edit one article (a paragraph added) | {seconds:.2f} s | {out.strip()} |")
    target.write_text(original)
    (articles / "new.md").write_text(
        "# A new article\n\nThis new article says something about "
        "myelin, oligodendrocytes and the developing human brain.\n"
    )
    seconds, out = run_qa("index", "corpus", cwd=folder)
    print(f"| add one article | {seconds:.2f} s | {out.strip()} |")
    (articles / "new.md").unlink()
    seconds, out = run_qa("index", "corpus", cwd=folder)
    print(f"| delete one article | {seconds:.2f} s | {out.strip()} |")
    for name in sorted(generation(folder / "index").iterdir()):
        print(f"|   {name.name} | {name.stat().st_size / 1e6:.1f} MB |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["cold", "warm", "throughput", "incremental"])
    parser.add_argument("--limit", type=int, default=2000, help="passages per set (throughput)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(f"<!-- {time.strftime('%Y-%m-%d %H:%M')} load {os.getloadavg()[0]:.2f} -->")
    if args.what == "cold":
        cold()
    elif args.what == "warm":
        warm()
    elif args.what == "throughput":
        throughput(args.limit)
    else:
        incremental()


if __name__ == "__main__":
    main()

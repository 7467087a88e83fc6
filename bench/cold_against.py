"""Cold `qa ask` on one index, this checkout against an older qa, interleaved so that load
from elsewhere falls on both alike (issue 9's "+5% at most" for verifying index files).

Usage (repo root):
  git worktree add --detach /tmp/base 4a7db6b        # the qa before index verification
  .venv/bin/qa index ../shared/data/scifact --index /tmp/base-index   # with PYTHONPATH=/tmp/base
  cp -r /tmp/base-index /tmp/new-index && .venv/bin/qa index --index /tmp/new-index
  .venv/bin/python bench/cold_against.py /tmp/base /tmp/base-index /tmp/new-index [RUNS]
The second index is the first converted by this qa (nothing re-embedded), so both answer from
the same vectors; the script checks they give the same results.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTION = "What causes the spread of cancer cells to other organs?"


def main() -> None:
    base_tree, base_index, new_index = sys.argv[1:4]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 21
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    python = str(REPO / ".venv" / "bin" / "python")
    cases = {
        "before": (
            [python, "-m", "qa", "ask", "--json", "--index", base_index, QUESTION],
            base_tree,
        ),
        "now": ([python, "-m", "qa", "ask", "--json", "--index", new_index, QUESTION], str(REPO)),
    }
    times: dict[str, list[float]] = {label: [] for label in cases}
    results = {}
    for command, tree in cases.values():  # page cache warm, as for a user
        subprocess.run(command, env={**env, "PYTHONPATH": tree}, capture_output=True, check=True)
    for _ in range(runs):
        for label, (command, tree) in cases.items():
            started = time.perf_counter()
            done = subprocess.run(
                command, env={**env, "PYTHONPATH": tree}, capture_output=True, text=True, check=True
            )
            times[label].append(time.perf_counter() - started)
            results[label] = [
                (r["source"], r["doc_id"], r["start"], r["score"])
                for r in json.loads(done.stdout)["results"]
            ]
    for label, seconds in times.items():
        print(
            f"| cold `qa ask`, SciFact index, {label} | median {statistics.median(seconds):.3f} s"
            f" | min {min(seconds):.3f} s | max {max(seconds):.3f} s | {runs} runs |"
        )
    print(f"same results: {results['before'] == results['now']}; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

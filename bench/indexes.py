"""The data sets' indexes that the benchmarks read, built when missing (as `qa eval` builds
them, into eval-index/NAME), and the folder of an index's current generation."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SOURCES = {"scifact": DATA / "scifact", "squad": DATA / "squad" / "corpus"}


def eval_index(name: str) -> Path:
    """eval-index/NAME, built first if it is missing (SciFact: about 4 minutes here)."""
    from qa.evaluate import eval_index as settings_for
    from qa.indexer import build_index
    from qa.layout import Kind, kind

    path = REPO / "eval-index" / name
    if kind(path) not in (Kind.QA, Kind.LEGACY):
        print(f"building {path} (once; `qa eval` builds the same index)", file=sys.stderr)
        build_index(settings_for(SOURCES[name], path, None))
    return path


def generation(index_dir: Path) -> Path:
    """Where an index's files are (qa.layout: its current generation's folder)."""
    from qa.layout import current

    return current(index_dir).folder

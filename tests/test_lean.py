"""The paths that need no model never import torch or sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

HEAVY = ("torch", "sentence_transformers", "transformers")


def modules_after(code: str, cwd: Path, env: dict[str, str] | None = None) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_asking_a_faiss_index_loads_no_store_client(tmp_path: Path) -> None:
    """The Milvus client is for indexes in Milvus only (qa.vector_index)."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("Some text that is long enough to be a passage.")
    code = (
        "import sys, json\nfrom tests.conftest import FakeEmbedder\nfrom qa.config import "
        "Settings\nfrom qa.indexer import build_index\nfrom qa.search import ask\n"
        "from pathlib import Path\ns = Settings(corpus=Path('corpus'), index=Path('index'))\n"
        "build_index(s, embedder=FakeEmbedder())\n"
        "ask(s, ['passage'], embedder=FakeEmbedder())\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = modules_after(code, tmp_path, {"PYTHONPATH": str(REPO), "PATH": ""})
    assert "pymilvus" not in loaded and "qa.milvus_store" not in loaded


def test_importing_the_cli_and_help_load_no_model_library(tmp_path: Path) -> None:
    code = (
        "import sys, json\nfrom typer.testing import CliRunner\nfrom qa.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = modules_after(code, REPO)
    assert not loaded & set(HEAVY)


def test_status_loads_no_model_library(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("Some text that is long enough to be a passage.")
    code = (
        "import sys, json\nfrom typer.testing import CliRunner\nfrom qa.cli import app\n"
        "from tests.conftest import FakeEmbedder\nfrom qa.config import Settings\n"
        "from qa.indexer import build_index\nfrom pathlib import Path\n"
        "build_index(Settings(corpus=Path('corpus'), index=Path('index')), "
        "embedder=FakeEmbedder())\n"
        "r = CliRunner().invoke(app, ['status'])\nassert r.exit_code == 0, r.output\n"
        "assert 'current' in r.output, r.output\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = modules_after(code, tmp_path, {"PYTHONPATH": str(REPO), "PATH": ""})
    assert not loaded & set(HEAVY)

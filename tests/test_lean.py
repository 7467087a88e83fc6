"""The paths that need no model never import torch or sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

HEAVY = ("torch", "sentence_transformers", "transformers")


def modules_after(code: str, cwd: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


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
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert not loaded & set(HEAVY)

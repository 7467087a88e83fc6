"""One index, opened once, answering many questions: what `qa ask`, `qa serve` and `qa mcp`
go through.

An Engine holds one generation of the index (its vectors, BM25 index and encoder) and, before
each request, compares `DIR/CURRENT` (qa.layout) with the generation it holds. When `qa index`
(or `serve --watch`) has published a new one, one request loads it beside the old while the
others go on with the old one; then one reference is swapped. A request keeps the generation
it started with to its end, so none fails or mixes two during the switch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qa import embed as embedding
from qa import layout
from qa.answers import Answers
from qa.config import Settings
from qa.documents import Shown, in_index
from qa.errors import InputError, QAError
from qa.filters import Filters
from qa.indexer import Progress, Status, current_index, index_status
from qa.search import answers_of, check_question, search
from qa.store import StoredIndex, load_index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    """One generation and the embedder that reproduces its model."""

    generation: str  # its name in DIR/CURRENT ("" for a format-1 index)
    index: StoredIndex
    embedder: embedding.Embedder


class Engine:
    """Thread-safe for any number of concurrent readers; see the module's docstring."""

    def __init__(
        self, settings: Settings, opened: Opened, embedder: embedding.Embedder | None
    ) -> None:
        self.settings = settings
        self._opened = opened
        self._given = embedder  # an embedder passed in (tests) is kept across generations
        self._loading = threading.Lock()

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        update: bool = False,
        embedder: embedding.Embedder | None = None,
        notify: Callable[[str], None] | None = None,
        progress: Progress | None = None,
        warm: bool = False,
    ) -> Engine:
        """The index of settings, opened (and, with update, first built or brought up to date
        as `qa ask` does); warm: the encoder's session made now, not by the first question."""
        index = current_index(
            settings, update=update, embedder=embedder, notify=notify, progress=progress
        )
        return cls(settings, _opened(settings, index, embedder, warm), embedder)

    @property
    def generation(self) -> str:
        return self._opened.generation

    @property
    def index(self) -> StoredIndex:
        return self._opened.index

    def refresh(self) -> bool:
        """Pick up the generation `DIR/CURRENT` names, if it is not the one held: True when it
        switched. While one thread loads it, others keep answering from the one held."""
        try:
            now = layout.current(self.settings.index).name
        except QAError:
            return False  # mid-publish or damaged: keep answering from what is held
        if now == self._opened.generation or not self._loading.acquire(blocking=False):
            return False
        try:
            if now == self._opened.generation:
                return False
            index = load_index(self.settings.index)
            index.adopt(self._opened.index)  # what it worked out for unchanged passages
            fresh = _opened(self.settings, index, self._given, warm=True)
            self._opened = fresh  # one reference: a request holds the old one to its end
            log.info("switched to generation %s", fresh.generation)
            return True
        except QAError as exc:
            log.warning("new index generation %s not loaded: %s", now, exc)
            return False
        finally:
            self._loading.release()

    def current(self) -> Opened:
        """The generation to answer the next request from (refreshed first)."""
        self.refresh()
        return self._opened

    def ask(
        self,
        questions: Sequence[str],
        k: int = 5,
        mode: str = "hybrid",
        filters: Filters | None = None,
        context: int = 0,
        ids: Sequence[str | None] | None = None,
        min_score: float = 0.0,
    ) -> Answers:
        """What `qa.search.ask(..., update=False)` answers, from the generation held."""
        if k < 1:
            raise InputError(f"-k must be at least 1 (got {k}).")
        questions = [check_question(q) for q in questions]
        opened = self.current()
        index = opened.index
        found = search(index, opened.embedder, questions, k, mode, filters, min_score)
        return answers_of(index, found, ids, context)

    def show(self, target: str, context: int = 2) -> Shown:
        """A source or citation of the index, as `qa show` shows it. Unlike `qa show`, never a
        file outside the index: a server shows only what was indexed."""
        found = in_index(self.current().index, target, context)
        if found is None:
            raise InputError(
                f"{target!r} is not a source or citation of index {self.settings.index}: pass a "
                "source as answers cite it (e.g. notes/a.md, notes/a.md#3, c.jsonl:42#1)."
            )
        return found

    def status(self, verify: bool = False) -> Status:
        return index_status(self.settings, verify=verify)


def _opened(
    settings: Settings, index: StoredIndex, embedder: embedding.Embedder | None, warm: bool
) -> Opened:
    if embedder is None:
        embedder = embedding.index_embedder(index.path, index.manifest.model, settings.batch_size)
        if warm:
            embedder.embed(["warm up"])  # its session is made now, not by a request
    # a format-1 index is its own folder; a generation is DIR/gNNNNNN
    generation = "" if index.path == settings.index else index.path.name
    return Opened(generation, index, embedder)

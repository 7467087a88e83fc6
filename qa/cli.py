"""The command line: parse, call one library function, render (qa.render). With render.py, the
only user of typer and rich."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from qa import __version__, schema
from qa.config import CONFIG_FILE, Settings, parse_size
from qa.errors import InputError, QAError
from qa.evaluate import eval_index, evaluate_beir, evaluate_spans
from qa.filters import Filters
from qa.indexer import IndexReport, build_index, index_status
from qa.integrity import damaged
from qa.layout import MARKER
from qa.render import Printer, dumps, safe, status_rows
from qa.search import check_question

__all__ = ["app", "dumps", "safe"]

app = typer.Typer(
    help="Ask questions about a folder of articles; get passages with exact citations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class Mode(StrEnum):
    hybrid = "hybrid"
    dense = "dense"
    lexical = "lexical"


class Format(StrEnum):
    text = "text"
    json = "json"
    jsonl = "jsonl"
    markdown = "markdown"


class Precision(StrEnum):
    int8 = "int8"
    fp32 = "fp32"


def complete_index(incomplete: str) -> list[str]:
    """Folders that are qa indexes, for shell completion of --index."""
    base = Path(incomplete).parent if incomplete else Path(".")
    try:
        folders = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []
    names = [str(p) if incomplete else p.name for p in folders]
    indexes = [n for n, p in zip(names, folders, strict=True) if (p / MARKER).is_file()]
    return sorted(n for n in (indexes or names) if n.startswith(incomplete))


IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index",
        help="Index folder (env QA_INDEX; default: index/, or the collection's).",
        autocompletion=complete_index,
        show_default=False,
    ),
]
CollectionOpt = Annotated[
    str | None,
    typer.Option(
        "-c",
        "--collection",
        help=f"A named collection (a collections.NAME table of {CONFIG_FILE} or config.toml): "
        "its corpus, index and defaults (env QA_COLLECTION).",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="sentence-transformers model name or path (env QA_MODEL; default: the index's "
        "model, else the bundled all-MiniLM-L6-v2).",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format",
        help="Output: text (styled on a terminal, plain in a pipe), json (one object), jsonl "
        "(one line a hit) or markdown (env QA_FORMAT; default: text).",
        show_default=False,
        case_sensitive=False,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Shorthand for --format json.", metavar="", show_default=False),
]
ModeOpt = Annotated[
    Mode | None,
    typer.Option(
        "--mode",
        help="Retrieval: hybrid (keywords + meaning), dense or lexical (env QA_MODE; "
        "default: hybrid).",
        show_default=False,
        case_sensitive=False,
    ),
]
WidthOpt = Annotated[
    int | None,
    typer.Option(
        "--width",
        min=20,
        help="Wrap text at this many columns (default: the terminal's width; no wrapping in "
        "a pipe).",
        show_default=False,
    ),
]


def flag(name: str, help: str) -> Any:
    """An on/off option: no value, no --no-NAME twin."""
    return typer.Option(name, help=help, metavar="", show_default=False)


class WarningsToStderr(logging.Handler):
    """qa's own warnings (a skipped file, a bad JSONL line), one line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(f"warning: {safe(record.getMessage())}\n")


@contextmanager
def errors_to_exit(printer: Printer) -> Iterator[None]:
    """The one error boundary: expected errors become a message (and a JSON object on
    stdout with a JSON format) and exit code 1; a usage error, exit 2; Ctrl-C, 130."""
    logger = logging.getLogger("qa")
    if not any(isinstance(h, WarningsToStderr) for h in logger.handlers):
        logger.addHandler(WarningsToStderr(logging.WARNING))
        logger.propagate = False
    try:
        yield
    except QAError as exc:
        printer.error(schema.error_code(exc), str(exc))
        raise typer.Exit(1) from None
    except typer.BadParameter as exc:
        printer.error("usage", exc.format_message())
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        printer.note("interrupted: the index on disk is unchanged.")
        raise typer.Exit(130) from None


@contextmanager
def progress_bar(printer: Printer) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress display on stderr, only when stderr is a terminal: a bar (with passages/s
    while embedding) for counted steps, a spinner with the elapsed time for the others."""
    if not printer.err.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            if not task.total or not task.speed:
                return Text("")
            return Text(f"{task.speed:.0f}/s", style="progress.data.speed")

    class Count(MofNCompleteColumn):
        def render(self, task: Any) -> Text:
            return super().render(task) if task.total else Text("")

    counted = Progress(
        SpinnerColumn(),
        "[progress.description]{task.description}",
        BarColumn(),
        Count(),
        Rate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=printer.err,
        transient=True,
        redirect_stdout=False,  # answers and reports are printed after the bar is gone
    )
    with counted as bar:
        tasks: dict[str, Any] = {}
        spinning: set[str] = set()

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:  # a total of 0: a step without a count (a spinner)
                for name in spinning:  # a new step: the one before is over
                    bar.remove_task(tasks.pop(name))
                spinning.clear()
                tasks[stage] = bar.add_task(stage, total=total or None)
                if not total:
                    spinning.add(stage)
            bar.update(tasks[stage], completed=done, total=total or None)

        yield update


def printer_for(fmt: Format | None, as_json: bool, width: int | None = None) -> Printer:
    chosen = "json" if as_json else fmt.value if fmt else None
    return Printer(chosen or "text", width)


def settled(printer: Printer, settings: Settings, fmt: Format | None, as_json: bool) -> None:
    """A format from the config applies when no flag chose one."""
    if fmt is None and not as_json:
        printer.format = settings.format


@app.command()
def index(
    corpus: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of .txt/.md/.jsonl articles, or a .jsonl collection (env QA_CORPUS; "
            "default: the index's corpus, else corpus/).",
            show_default=False,
        ),
    ] = None,
    index_dir: IndexOpt = None,
    collection: CollectionOpt = None,
    model: ModelOpt = None,
    rebuild: Annotated[
        bool, flag("--rebuild", "Re-embed every passage, from the index's corpus.")
    ] = False,
    precision: Annotated[
        Precision | None,
        typer.Option(
            "--precision",
            help="Passage vectors: int8 (2x sentence-transformers' speed) or fp32 (exactly "
            "the model's) (env QA_PRECISION; default: the index's, else int8). Questions are "
            "always fp32.",
            show_default=False,
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="URI",
            help="Where passage vectors live: faiss (files in the index, the default), "
            "milvus://HOST:PORT/COLLECTION or milvus-lite:PATH.db (env QA_STORE; default: the "
            "index's). Needs pip install 'qa[milvus]'.",
            show_default=False,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            metavar="GLOB",
            help="Leave out files matching this gitignore-style pattern (repeatable), besides "
            "those the corpus's .qaignore names; kept for later updates.",
            show_default=False,
        ),
    ] = None,
    follow_symlinks: Annotated[
        bool | None,
        typer.Option(
            "--follow-symlinks/--no-follow-symlinks",
            help="Also read links that lead outside the corpus folder (default: skipped with a "
            "warning; links inside it are always followed).",
            metavar="",
            show_default=False,
        ),
    ] = None,
    max_file_size: Annotated[
        str | None,
        typer.Option(
            "--max-file-size",
            metavar="SIZE",
            help="Skip larger files with a warning: 64M (the default), 2G, 0 for no limit.",
            show_default=False,
        ),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Embed the new or changed passages on this Ray cluster (host:6379, "
            "ray://host:10001, auto, or local for a private one); same vectors as here (env "
            "QA_RAY; needs pip install 'qa[ray]').",
            show_default=False,
        ),
    ] = None,
    no_wait: Annotated[
        bool, flag("--no-wait", "Fail at once if another qa index is updating the index.")
    ] = False,
    watch: Annotated[
        bool,
        flag(
            "--watch",
            "Keep the index current: update it after each burst of changes (Ctrl-C stops).",
        ),
    ] = False,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build or update the index; unchanged passages are never embedded again.

    Example: qa index corpus/
    """
    printer = printer_for(fmt, as_json)
    with errors_to_exit(printer):
        try:
            limit = None if max_file_size is None else parse_size(max_file_size)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--max-file-size") from None
        settings = Settings.resolve(
            corpus=corpus,
            index=index_dir,
            collection=collection,
            model=model,
            precision=precision.value if precision else None,
            store=store,
            exclude=tuple(exclude) if exclude else None,
            follow_symlinks=follow_symlinks,
            max_file_size=limit,
            ray=ray,
        )
        settled(printer, settings, fmt, as_json)
        with progress_bar(printer) as progress:
            report = build_index(
                settings, rebuild=rebuild, progress=progress, notify=printer.note, wait=not no_wait
            )
        render_report(printer, report, settings)  # after the bar: stdout is not under it
        if watch:
            watch_corpus(printer, settings)


def watch_corpus(printer: Printer, settings: Settings) -> None:
    """Update the index after each burst of changes in its corpus, until Ctrl-C."""
    from qa.indexer import watched_changes

    printer.note(f"Watching {settings.index}'s corpus for changes (Ctrl-C stops).")
    try:
        for _ in watched_changes(settings):
            with progress_bar(printer) as progress:
                report = build_index(settings, progress=progress, notify=printer.note)
            if report.changed_files or report.removed:
                render_report(printer, report, settings)
    except KeyboardInterrupt:
        printer.note("Stopped watching; the index is current as of its last update.")


def render_report(printer: Printer, report: IndexReport, settings: Settings) -> None:
    if printer.format in ("json", "jsonl"):
        printer.json(schema.report(report, settings.index))
        return
    if report.rebuilt:
        printer.note(f"Full rebuild: {report.rebuilt}.")
    printer.line(
        f"Indexed {report.documents} documents from {report.files} files into "
        f"{report.chunks} passages in {safe(str(settings.index))} ({report.seconds:.1f} s): "
        f"embedded {report.embedded}, reused {report.reused}, removed {report.removed}."
    )
    if report.skipped:
        printer.note(skipped_summary(report.skipped))


def skipped_summary(skipped: list[str]) -> str:
    """'skipped 3: 2 .png (not an article format), 1 .pdf (no text layer)' from the
    'NAME: REASON, skipped' messages every skip is reported with."""
    import re
    from collections import Counter

    kinds: Counter[str] = Counter()
    for message in skipped:
        name, _, reason = message.partition(": ")
        reason = re.sub(r" \(byte \d+\)", "", reason.rpartition(", skipped")[0] or reason)
        dot = name.rfind(".")
        suffix = name[dot:].lower() if dot > name.rfind("/") else "file"
        kinds[f"{suffix} ({reason})"] += 1
    listed = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    return f"skipped {len(skipped)}: {listed}"


@app.command()
def ask(
    question: Annotated[
        str | None,
        typer.Argument(
            help='The question, in quotes; one that starts with "-" goes after --: '
            'qa ask -- "-40 degrees in Fahrenheit?"',
            show_default=False,
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            "-k",
            "--top",
            min=1,
            help="How many passages (env QA_K; default: 5).",
            show_default=False,
        ),
    ] = None,
    context: Annotated[
        int,
        typer.Option(
            "-C",
            "--context",
            min=0,
            help="Show this many paragraphs of the document before and after each passage.",
        ),
    ] = 0,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
    width: WidthOpt = None,
    questions: Annotated[
        Path | None,
        typer.Option(
            "--questions",
            help='File of questions, one a line (plain text, or JSON with "question" and an '
            'optional "id"); prints one JSON object a line unless --format says otherwise.',
            show_default=False,
        ),
    ] = None,
    no_update: Annotated[
        bool, flag("--no-update", "Use the index as it is, even if the corpus changed.")
    ] = False,
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus", help="Corpus to index when the index is missing.", show_default=False
        ),
    ] = None,
    mode: ModeOpt = None,
    min_score: Annotated[
        float,
        typer.Option(
            "--min-score",
            min=0.0,
            max=1.0,
            help="Leave out passages whose relevance (the estimated probability that the "
            "passage answers, 0 to 1) is lower.",
        ),
    ] = 0.0,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            metavar="GLOB",
            help="Only passages of files matching this glob, e.g. 'news/*.html' (repeatable: "
            "any may match).",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DATE",
            help="Only documents dated on or after DATE (2024-03-01).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="DATE",
            help="Only documents dated on or before DATE.",
            show_default=False,
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            metavar="TAG",
            help="Only documents with this tag (repeatable: all must be).",
            show_default=False,
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            metavar="KEY=VALUE",
            help="Only documents whose metadata KEY is VALUE, e.g. author=Smith (repeatable).",
            show_default=False,
        ),
    ] = None,
    index_dir: IndexOpt = None,
    collection: CollectionOpt = None,
    model: ModelOpt = None,
    no_server: Annotated[
        bool,
        flag(
            "--no-server",
            "Answer in this process even when qa serve runs for the index (which otherwise "
            "answers, faster).",
        ),
    ] = False,
) -> None:
    """Answer a question with the best passages and their citations.

    Example: qa ask "How much is JD.com paying for its stake in Farfetch?"
    """
    printer = printer_for(fmt, as_json, width)
    with errors_to_exit(printer), progress_bar(printer) as progress:
        if (question is None) == (questions is None):
            raise typer.BadParameter("give a QUESTION or --questions FILE (one of the two).")
        settings = Settings.resolve(
            corpus=corpus,
            index=index_dir,
            collection=collection,
            model=model,
            k=k,
            mode=mode.value if mode else None,
        )
        filters = Filters.parse(source or (), since, until, tag or (), where or ())
        settled(printer, settings, fmt, as_json)
        if questions is None:
            batch = [Asked(1, None, check_question(question or ""))]
        else:
            if fmt is None and not as_json and "format" not in settings.origins:
                printer.format = "json"  # a batch prints one JSON object a line by default
            batch = read_questions(questions)
        good = [q for q in batch if q.error is None]
        result = None
        if good:
            from qa.engine import Engine

            engine = Engine.open(
                settings, update=not no_update, notify=printer.note, progress=progress
            )
            result = engine.ask(
                [q.text for q in good],
                k=settings.k,
                mode=settings.mode,
                filters=filters,
                min_score=min_score,
                context=context,
                ids=[q.id for q in good],
            )
    answers = iter(result.answers if result else [])
    for asked in batch:
        if asked.error is not None:
            printer.json(asked.error_json())
            printer.note(f"error: {questions}:{asked.line}: {asked.error[1]}")
        elif result is not None:
            printer.answers(result, [next(answers)], batch=questions is not None)
    if len(good) < len(batch):
        raise typer.Exit(1)


@dataclass(frozen=True)
class Asked:
    """One question of a batch, or why its line cannot be asked."""

    line: int
    id: str | None
    text: str
    error: tuple[str, str] | None = None  # (code, message)

    def error_json(self) -> dict[str, Any]:
        assert self.error is not None
        body: dict[str, Any] = {} if self.id is None else {"id": self.id}
        code, message = self.error
        return {**body, "line": self.line, **schema.error(code, message)}


def read_questions(path: Path) -> list[Asked]:
    """A questions file's questions in order; a line that cannot be asked is kept, with why,
    so that the others are still answered."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read questions file {path}: {exc}") from None
    batch: list[Asked] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            batch.append(_asked(number, None, line))
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            record = None
        if not isinstance(record, dict):
            message = 'not a JSON object with a "question" field'
            batch.append(Asked(number, None, "", ("bad_line", message)))
            continue
        given = record.get("id")
        id_ = None if given is None or isinstance(given, (dict, list)) else str(given)
        text = record.get("question")
        if not isinstance(text, str):
            message = '"question" must be a string' + (" (it is null)" if text is None else "")
            batch.append(Asked(number, id_, "", ("bad_question", message)))
            continue
        batch.append(_asked(number, id_, text))
    if not batch:
        raise InputError(f"Questions file {path} has no questions.")
    return batch


def _asked(line: int, id_: str | None, text: str) -> Asked:
    try:
        return Asked(line, id_, check_question(text))
    except InputError as exc:
        return Asked(line, id_, "", ("bad_question", str(exc)))


@app.command()
def status(
    index_dir: IndexOpt = None,
    collection: CollectionOpt = None,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
    verify: Annotated[
        bool, flag("--verify", "Also check every index file against its checksum (reads them all).")
    ] = False,
) -> None:
    """Show what is indexed, with which model and settings, whether the corpus changed since,
    and any damage.

    Example: qa status --verify
    """
    printer = printer_for(fmt, as_json)
    with errors_to_exit(printer):
        settings = Settings.resolve(index=index_dir, collection=collection)
        settled(printer, settings, fmt, as_json)
        state = index_status(settings, verify=verify)
    if printer.format in ("json", "jsonl"):
        printer.json(schema.status(state, settings))
    else:
        printer.table(status_rows(state, settings, verify))
    if state.damage:
        printer.err.print(
            f"[red]error:[/red] {escape(safe(str(damaged(settings.index, state.damage))))}"
        )
        raise typer.Exit(1)


@app.command()
def show(
    target: Annotated[
        str,
        typer.Argument(
            help="A source as qa ask cites it (notes/a.md, c.jsonl:42), a citation "
            "(notes/a.md#3), or the path of a file not yet indexed.",
            show_default=False,
        ),
    ],
    context: Annotated[
        int,
        typer.Option("-C", "--context", min=0, help="Paragraphs around a cited passage."),
    ] = 2,
    index_dir: IndexOpt = None,
    collection: CollectionOpt = None,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
    width: WidthOpt = None,
) -> None:
    """Show a document as qa read it (metadata, then its text), or a cited passage in its
    context; a file not yet indexed is extracted on the spot.

    Example: qa show corpus/000_b577fc557edadd91.txt#2
    """
    from qa.documents import show as show_target

    printer = printer_for(fmt, as_json, width)
    with errors_to_exit(printer):
        settings = Settings.resolve(index=index_dir, collection=collection)
        settled(printer, settings, fmt, as_json)
        shown = show_target(settings, _as_source(target, settings), context)
    printer.shown(shown, None)


def _as_source(target: str, settings: Settings) -> str:
    """A path as qa ask prints it (corpus/a.md#3, relative to here) -> the source the index
    knows (a.md#3, relative to its corpus); anything else as it is."""
    import os

    from qa.indexer import resolve_corpus
    from qa.store import read_manifest

    base, sep, part = target.partition("#")
    stem, jsonl, doc_id = base.partition(".jsonl:")
    path = stem + ".jsonl" if jsonl else base
    if not os.path.exists(path):
        return target
    try:
        root = resolve_corpus(settings, read_manifest(settings.index))
    except QAError:
        return target
    folder = root if root.is_dir() else root.parent
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    if relative.startswith(".."):
        return target
    name = relative.replace(os.sep, "/") + (f":{doc_id}" if jsonl else "")
    return name + sep + part


@app.command()
def serve(
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on (another than loopback needs --token)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")
    ] = 8765,
    watch: Annotated[
        bool, flag("--watch", "Also keep the index current, as qa index --watch does.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Require Authorization: Bearer TOKEN on every API request (needed off loopback).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Processes answering in parallel, each holding the index's in-memory parts "
            "(default: one a core, at most 4).",
            show_default=False,
        ),
    ] = None,
    index_dir: IndexOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Serve the index: a JSON API (OpenAPI at /docs) and a search page at /, until Ctrl-C.

    Example: qa serve --port 8765
    """
    printer = printer_for(None, False)
    with errors_to_exit(printer):
        from qa.serve import serve as run_server

        settings = Settings.resolve(index=index_dir, collection=collection)
        from qa.workers import default_workers

        count = default_workers(settings.index) if workers is None else workers
        run_server(
            settings, host, port, token=token, watch=watch, workers=count, notify=printer.note
        )


@app.command()
def mcp(index_dir: IndexOpt = None, collection: CollectionOpt = None) -> None:
    """Run an MCP server over stdio (tools: ask, show, status), for agents.

    Example: qa mcp --index index
    """
    printer = printer_for(None, False)
    with errors_to_exit(printer):
        from qa.mcp_server import run_mcp

        run_mcp(Settings.resolve(index=index_dir, collection=collection))


@app.command(name="eval")
def eval_(
    beir: Annotated[
        Path | None,
        typer.Option(
            "--beir",
            help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv).",
            show_default=False,
        ),
    ] = None,
    questions: Annotated[
        Path | None,
        typer.Option(
            "--questions",
            help="Span-annotated questions (JSONL with file, answers[start, end]); needs --corpus.",
            show_default=False,
        ),
    ] = None,
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="Corpus of --questions.", show_default=False)
    ] = None,
    split: Annotated[str, typer.Option(help="BEIR qrels split.")] = "test",
    mode: ModeOpt = None,
    index_dir: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="Index for the data set (default: eval-index/NAME); built or updated as needed.",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure retrieval quality on a public question set.

    Example: qa eval --beir ../shared/data/scifact
    """
    printer = printer_for(fmt, as_json)
    with errors_to_exit(printer), progress_bar(printer) as progress:
        if (beir is None) == (questions is None) or (questions is not None and corpus is None):
            raise typer.BadParameter("give --beir DIR, or --questions FILE with --corpus DIR.")
        chosen = mode.value if mode else "hybrid"
        if beir is not None:
            settings = eval_index(beir, index_dir, model)
            report = evaluate_beir(settings, beir, split=split, mode=chosen, progress=progress)
        else:
            assert questions is not None and corpus is not None
            settings = eval_index(corpus, index_dir, model)
            report = evaluate_spans(settings, questions, mode=chosen, progress=progress)
    if printer.format in ("json", "jsonl"):
        printer.json(schema.evaluation(report))
        return
    title = (
        f"{report.dataset}: {report.questions} questions, {report.mode} mode "
        f"({report.seconds:.1f} s)"
    )
    values = [f"{v:.1f}" if "words" in n else f"{v:.4f}" for n, v in report.metrics.items()]
    printer.grid(title, list(report.metrics), values)


def version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"qa {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback,
            is_eager=True,
            help="Show the version and exit.",
            metavar="",
            show_default=False,
        ),
    ] = False,
) -> None:
    """Ask questions about a folder of articles; get passages with exact citations."""


def run(argv: list[str]) -> int:
    """The CLI as a process runs it: the exit code. A usage error that click finds before any
    command runs (an unknown option, -k 0, a wrong --mode) prints its usage message, and with
    --json or --format json(l) also a JSON error object on stdout; exit code 2."""
    from typer._click.exceptions import ClickException  # typer vendors click; it exports none

    try:
        code = app(args=argv, prog_name="qa", standalone_mode=False)
    except ClickException as exc:
        exc.show()
        if _wants_json(argv):
            sys.stdout.write(dumps(schema.error("usage", exc.format_message())) + "\n")
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("interrupted: the index on disk is unchanged.\n")
        return 130
    return code if isinstance(code, int) else 0


def _wants_json(argv: list[str]) -> bool:
    if "--" in argv:
        argv = argv[: argv.index("--")]
    for n, arg in enumerate(argv):
        value = arg.partition("=")[2] if arg.startswith("--format=") else None
        if arg == "--format" and n + 1 < len(argv):
            value = argv[n + 1]
        if arg == "--json" or (value or "").lower() in ("json", "jsonl"):
            return True
    return False

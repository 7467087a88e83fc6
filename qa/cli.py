"""The command line: parse, call one library function, render. The only user of typer and rich."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from qa import __version__
from qa.config import Settings
from qa.errors import InputError, QAError
from qa.evaluate import eval_index, evaluate_beir, evaluate_spans
from qa.indexer import IndexReport, build_index, index_status
from qa.search import MODES, Answer, Answers, Hit, check_question
from qa.search import ask as ask_questions
from qa.sources import parse_size

app = typer.Typer(
    help="Ask questions about a folder of articles; get passages with exact citations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

IndexOpt = Annotated[
    Path | None, typer.Option("--index", help="Index directory [env QA_INDEX; default index/].")
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="sentence-transformers model name or path [env QA_MODEL; default: the index's "
        "model, else the bundled all-MiniLM-L6-v2].",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
ModeOpt = Annotated[
    str,
    typer.Option("--mode", help="Retrieval: hybrid (keywords + meaning), dense or lexical."),
]


# Characters a terminal acts on: C0 controls but tab and newline, DEL, C1 controls, and the
# bidirectional overrides that can make text read other than it is. Text from files (titles,
# passages, file names) is printed with each replaced by one visible character, so an article
# can never move the cursor, set the window title or clear the screen (offsets still hold).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """text fit for a terminal: control characters shown as symbols, one for one."""
    return _CONTROL.sub(_symbol, text)


def _symbol(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␛ for ESC
    return "\u2421" if code == 0x7F else "\ufffd"


def dumps(body: object) -> str:
    """One line of JSON; C1 controls escaped too (json leaves them raw), so that JSON shown
    in a terminal is as safe as text."""
    text = json.dumps(body, ensure_ascii=False)
    return re.sub("[\x7f-\x9f\u2028\u2029]", lambda m: f"\\u{ord(m.group()):04x}", text)


class WarningsToStderr(logging.Handler):
    """qa's own warnings (a skipped file, a bad JSONL line), one line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(f"warning: {safe(record.getMessage())}\n")


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """The one error boundary: expected errors become a message and exit code 1."""
    logger = logging.getLogger("qa")
    if not any(isinstance(h, WarningsToStderr) for h in logger.handlers):
        logger.addHandler(WarningsToStderr(logging.WARNING))
        logger.propagate = False
    try:
        yield
    except QAError as exc:
        err.print(f"[red]error:[/red] {escape(safe(str(exc)))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted: the index on disk is unchanged.")
        raise typer.Exit(130) from None


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar on stderr, only when stderr is a terminal."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def note(message: str) -> None:
    err.print(escape(safe(message)))


@app.command()
def index(
    corpus: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of .txt/.md/.jsonl articles, or a .jsonl collection "
            "[env QA_CORPUS; default: the index's corpus, else corpus/]."
        ),
    ] = None,
    index_dir: IndexOpt = None,
    model: ModelOpt = None,
    rebuild: Annotated[bool, typer.Option(help="Re-embed every passage.")] = False,
    precision: Annotated[
        str | None,
        typer.Option(
            "--precision",
            help="Passage vectors: int8 (2x sentence-transformers' speed) or fp32 (exactly "
            "the model's) [env QA_PRECISION; default: the index's, else int8]. Questions are "
            "always fp32.",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            metavar="GLOB",
            help="Leave out files matching this gitignore-style pattern (repeatable), besides "
            "those the corpus's .qaignore names; kept for later updates.",
        ),
    ] = None,
    follow_symlinks: Annotated[
        bool | None,
        typer.Option(
            "--follow-symlinks/--no-follow-symlinks",
            help="Also read links that lead outside the corpus folder (by default they are "
            "skipped with a warning; links inside it are always followed).",
        ),
    ] = None,
    max_file_size: Annotated[
        str | None,
        typer.Option(
            "--max-file-size",
            metavar="SIZE",
            help="Skip larger files with a warning, e.g. 64M (the default), 2G, 0 for no limit.",
        ),
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Fail at once if another qa index is updating the index."),
    ] = False,
) -> None:
    """Build or update the index; unchanged passages are never embedded again.

    Example: qa index corpus/
    """
    with errors_to_exit(), progress_bar() as progress:
        try:
            limit = None if max_file_size is None else parse_size(max_file_size)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--max-file-size") from None
        settings = Settings.resolve(
            corpus=corpus,
            index=index_dir,
            model=model,
            precision=precision,
            exclude=tuple(exclude) if exclude else None,
            follow_symlinks=follow_symlinks,
            max_file_size=limit,
        )
        report = build_index(
            settings, rebuild=rebuild, progress=progress, notify=note, wait=not no_wait
        )
    render_report(report, settings)


def render_report(report: IndexReport, settings: Settings) -> None:
    if report.rebuilt:
        note(f"Full rebuild: {report.rebuilt}.")
    out.print(
        Text(
            f"Indexed {report.documents} documents from {report.files} files into "
            f"{report.chunks} passages in {safe(str(settings.index))} ({report.seconds:.1f} s): "
            f"embedded {report.embedded}, reused {report.reused}, removed {report.removed}."
        )
    )
    if report.skipped:
        note(f"Skipped {len(report.skipped)} unreadable file(s); see the warnings above.")


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="The question, in quotes.")] = None,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="How many passages.")] = 5,
    as_json: JsonOpt = False,
    questions: Annotated[
        Path | None,
        typer.Option(
            "--questions",
            help='File of questions, one a line (plain text or JSON with "question" and an '
            'optional "id"); prints one JSON object a line.',
        ),
    ] = None,
    no_update: Annotated[
        bool,
        typer.Option("--no-update", help="Use the index as it is, even if the corpus changed."),
    ] = False,
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="Corpus to index when the index is missing.")
    ] = None,
    mode: ModeOpt = "hybrid",
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
    index_dir: IndexOpt = None,
    model: ModelOpt = None,
) -> None:
    """Answer a question with the best passages and their citations.

    Example: qa ask "How much is JD.com paying for its stake in Farfetch?"
    """
    if (question is None) == (questions is None):
        raise typer.BadParameter("give a QUESTION or --questions FILE (one of the two).")
    if mode not in MODES:
        raise typer.BadParameter(f"use one of {', '.join(MODES)}.", param_hint="--mode")
    with errors_to_exit(), progress_bar() as progress:
        settings = Settings.resolve(corpus=corpus, index=index_dir, model=model)
        if questions is None:
            batch = [Asked(1, None, check_question(question or ""))]
        else:
            batch = read_questions(questions)
        good = [q for q in batch if q.error is None]
        result = None
        if good:
            result = ask_questions(
                settings,
                [q.text for q in good],
                k=k,
                mode=mode,
                min_score=min_score,
                ids=[q.id for q in good],
                update=not no_update,
                notify=note,
                progress=progress,
            )
    if questions is not None:
        answers = iter(result.answers if result else [])
        for asked in batch:
            if asked.error is None:
                sys.stdout.write(dumps(answer_json(next(answers))) + "\n")
            else:
                sys.stdout.write(dumps(asked.error_json()) + "\n")
                note(f"error: {questions}:{asked.line}: {asked.error[1]}")
        if len(good) < len(batch):
            raise typer.Exit(1)
    elif result is not None and as_json:
        sys.stdout.write(dumps(answer_json(result.answers[0])) + "\n")
    elif result is not None:
        render_answer(result, result.answers[0])


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
        return {
            **body,
            "line": self.line,
            "error": {"code": self.error[0], "message": self.error[1]},
        }


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


def hit_json(hit: Hit) -> dict[str, Any]:
    c = hit.chunk
    return {
        "rank": hit.rank,
        "score": round(hit.score, 6),
        "source": c.source,
        "doc_id": c.doc_id,
        "title": c.title,
        "paragraph": c.paragraph,
        "start": c.start,
        "end": c.end,
        "line_start": c.line_start,
        "line_end": c.line_end,
        "text": c.text,
        "highlight": {"start": hit.highlight[0], "end": hit.highlight[1]},
        "relevance": round(hit.relevance, 6),
        **measures_json(hit),
    }


def measures_json(hit: Hit) -> dict[str, Any]:
    """What retrieval measured, under its own names; null where the mode did not compute it."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 6)

    sentence = hit.sentence
    return {
        "fused": rounded(hit.fused),
        "dense": rounded(hit.dense),
        "lexical": rounded(hit.lexical),
        "lexical_share": rounded(hit.lexical_share),
        "sentence": None
        if sentence is None
        else {name: rounded(value) for name, value in vars(sentence).items()},
    }


def answer_json(answer: Answer) -> dict[str, Any]:
    body: dict[str, Any] = {"question": answer.question}
    if answer.id is not None:
        body = {"id": answer.id, **body}
    body["answered"] = answer.answered
    body["results"] = [hit_json(hit) for hit in answer.hits]
    return body


def display_path(root: Path, source: str) -> str:
    path = root / source if root.is_dir() else root
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def citation(root: Path, hit: Hit) -> str:
    c = hit.chunk
    where = display_path(root, c.source)
    if c.doc_id is not None:
        where += f" [{c.doc_id}]"
    where += f" ¶{c.paragraph}" + (f" part {c.part}" if c.part else "")
    if c.line_start is not None:
        where += f", lines {c.line_start}–{c.line_end}"
    return f"{where}, chars {c.start}–{c.end}"


def render_answer(result: Answers, answer: Answer) -> None:
    if not answer.answered:
        out.print(
            Text(
                "No passage in the corpus answers this question; the closest ones, "
                "which are weak matches:",
                style="bold red",
            )
        )
        out.print()
    for hit in answer.hits:
        c = hit.chunk
        heading = Text.assemble((f"{hit.rank}. ", "bold"), (f"{hit.score:.3f}  ", "cyan"))
        cited = safe(citation(result.corpus, hit))
        if c.title:
            out.print(heading + Text(safe(c.title), style="bold"))
            out.print(Padding(Text(cited, style="dim"), (0, 0, 0, 3), expand=False))
        else:
            out.print(heading + Text(cited, style="bold"))
        text = Text(safe(c.text))
        text.stylize("bold yellow", hit.highlight[0] - c.start, hit.highlight[1] - c.start)
        out.print(Padding(text, (0, 0, 1, 3), expand=False))


@app.command()
def status(
    index_dir: IndexOpt = None,
    as_json: JsonOpt = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="Also check every index file against its checksum (reads them all)."
        ),
    ] = False,
) -> None:
    """Show what is indexed, with which model, whether the corpus changed since, and any damage.

    Example: qa status --verify
    """
    with errors_to_exit():
        settings = Settings.resolve(index=index_dir)
        state = index_status(settings, verify=verify)
    if as_json:
        sys.stdout.write(dumps(state.as_json()) + "\n")
    else:
        render_status(settings, state, verify)
    if state.damage:
        raise typer.Exit(1)


def render_status(settings: Settings, state: Any, verify: bool) -> None:
    m = state.manifest
    table = Table(show_header=False, box=None)
    table.add_row("index", Text(safe(str(settings.index))))
    table.add_row("corpus", Text(safe(str(state.corpus))))
    table.add_row("model", f"{m.model} ({m.dim} dimensions)")
    table.add_row(
        "vectors",
        f"{m.vector_index}{f', nprobe {m.nprobe}' if m.nprobe else ''}, passages in {m.precision}",
    )
    table.add_row("contents", f"{m.documents} documents, {m.chunks} passages, {len(m.files)} files")
    table.add_row(
        "chunking",
        f"≤ {m.chunking.max_tokens} tokens, fragments < {m.chunking.min_words} words merged",
    )
    table.add_row("built", f"{m.created} (updated {m.updated}, qa {m.qa_version})")
    table.add_row(
        "state",
        Text(
            safe(
                "stale: " + state.changes.summary() if state.changes else state.problem or "current"
            )
        ),
    )
    if state.damage:
        table.add_row("damage", Text(safe("; ".join(state.damage)), style="bold red"))
        table.add_row("repair", Text(safe(f"qa index --index {settings.index}")))
    elif not m.contents:
        table.add_row("integrity", "no checksums (built by qa 0.1): `qa index` adds them")
    else:
        checked = (
            "every file's checksum verified"
            if verify
            else "file sizes checked (--verify checks contents)"
        )
        table.add_row("integrity", checked)
    out.print(table)


@app.command(name="eval")
def eval_(
    beir: Annotated[
        Path | None,
        typer.Option("--beir", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)."),
    ] = None,
    questions: Annotated[
        Path | None,
        typer.Option(
            "--questions",
            help="Span-annotated questions (JSONL with file, answers[start, end]); needs --corpus.",
        ),
    ] = None,
    corpus: Annotated[Path | None, typer.Option("--corpus", help="Corpus of --questions.")] = None,
    split: Annotated[str, typer.Option(help="BEIR qrels split.")] = "test",
    mode: ModeOpt = "hybrid",
    index_dir: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="Index for the data set [default: eval-index/NAME]; built or updated as needed.",
        ),
    ] = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure retrieval quality on a public question set.

    Example: qa eval --beir ../shared/data/scifact
    """
    if (beir is None) == (questions is None) or (questions is not None and corpus is None):
        raise typer.BadParameter("give --beir DIR, or --questions FILE with --corpus DIR.")
    with errors_to_exit(), progress_bar() as progress:
        if beir is not None:
            settings = eval_index(beir, index_dir, model)
            report = evaluate_beir(settings, beir, split=split, mode=mode, progress=progress)
        else:
            assert questions is not None and corpus is not None
            settings = eval_index(corpus, index_dir, model)
            report = evaluate_spans(settings, questions, mode=mode, progress=progress)
    if as_json:
        body = {
            "dataset": report.dataset,
            "mode": report.mode,
            "questions": report.questions,
            "seconds": round(report.seconds, 3),
            **report.metrics,
        }
        sys.stdout.write(dumps(body) + "\n")
        return
    table = Table(
        title=f"{report.dataset}: {report.questions} questions, {report.mode} mode "
        f"({report.seconds:.1f} s)"
    )
    for name in report.metrics:
        table.add_column(name, justify="right")
    table.add_row(*(f"{v:.1f}" if "words" in n else f"{v:.4f}" for n, v in report.metrics.items()))
    out.print(table)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"qa {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Ask questions about a folder of articles; get passages with exact citations."""

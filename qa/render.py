"""What the CLI prints: answers, status and reports, for a terminal (rich: styled, wrapped to
its width), for a pipe (plain: no padding, no wrapping unless --width, the highlight marked
»like this«), as markdown, or as JSON (qa.schema). With cli.py, the only user of rich.

Text from files (titles, passages, file names) is printed through safe(): a terminal never
receives a control character from an article.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from qa import schema
from qa.answers import Answer, Answers, Hit, Paragraph
from qa.corpus import Document

if TYPE_CHECKING:
    from qa.documents import Shown

NO_ANSWER = (
    "No passage in the corpus answers this question; the closest ones, which are weak matches:"
)
MARK = ("»", "«")  # the highlighted sentence, in plain text

# Characters a terminal acts on: C0 controls but tab and newline, DEL, C1 controls, and the
# bidirectional overrides that can make text read other than it is, and lone surrogates
# (undecodable bytes of a file name, which no terminal can be sent). Each is replaced by one
# visible character, so offsets into the text still hold.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def safe(text: str) -> str:
    """text fit for a terminal: control characters shown as symbols, one for one."""
    return _CONTROL.sub(_symbol, text)


def _symbol(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␛ for ESC
    return "\u2421" if code == 0x7F else "\ufffd"


def dumps(body: object) -> str:
    """One line of JSON; C1 controls and line separators escaped too (json leaves them raw),
    so that JSON shown in a terminal is as safe as text."""
    text = json.dumps(body, ensure_ascii=False)
    # lone surrogates (undecodable bytes of a file name or argument) as \udXXX: valid JSON
    return re.sub("[\x7f-\x9f\u2028\u2029\ud800-\udfff]", _escaped, text)


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class Printer:
    """Prints in one format to stdout (and notes and errors to stderr)."""

    def __init__(self, fmt: str = "text", width: int | None = None) -> None:
        self.format = fmt
        self.width = width
        self.out = Console(highlight=False, soft_wrap=False, width=width)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.stream: IO[str] = sys.stdout

    @property
    def styled(self) -> bool:
        """Whether stdout is a terminal (rich), else plain text for a pipe."""
        return self.out.is_terminal

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")

    def json(self, body: object) -> None:
        self.line(dumps(body))

    def note(self, message: str) -> None:
        self.err.print(escape(safe(message)))

    def error(self, code: str, message: str) -> None:
        """An error: a line on stderr, and with a JSON format an object on stdout too."""
        self.err.print(f"[red]error:[/red] {escape(safe(message))}")
        if self.format in ("json", "jsonl"):
            self.json(schema.error(code, message))

    # --- answers ---------------------------------------------------------------------------

    def answers(self, result: Answers, answers: Iterable[Answer], batch: bool = False) -> None:
        for n, answer in enumerate(answers):
            if self.format == "json":
                self.json(schema.answer(answer))
            elif self.format == "jsonl":
                for body in schema.answer_lines(answer):
                    self.json(body)
            elif self.format == "markdown":
                self._markdown(result, answer, batch or n > 0)
            else:
                if batch:
                    self._question_heading(answer)
                self._text(result, answer)

    def _question_heading(self, answer: Answer) -> None:
        if self.styled:
            self.out.print(Text(safe(f"Q: {answer.question}"), style="bold underline"))
        else:
            self.line(safe(f"Q: {answer.question}"))

    def _text(self, result: Answers, answer: Answer) -> None:
        if not answer.answered:
            if self.styled:
                self.out.print(Text(NO_ANSWER, style="bold red"))
                self.out.print()
            else:
                self.line(NO_ANSWER)
                self.line()
        for hit in answer.hits:
            if self.styled:
                self._styled_hit(result, hit)
            else:
                self._plain_hit(result, hit)

    def _styled_hit(self, result: Answers, hit: Hit) -> None:
        c = hit.chunk
        heading = Text.assemble((f"{hit.rank}. ", "bold"), (f"{hit.score:.3f}  ", "cyan"))
        cited = safe(citation(result.corpus, hit))
        if c.title:
            self.out.print(heading + Text(safe(c.title), style="bold"))
            self.out.print(Padding(Text(cited, style="dim"), (0, 0, 0, 3), expand=False))
        else:
            self.out.print(heading + Text(cited, style="bold"))
        if described := about_line(hit):
            self.out.print(Padding(Text(safe(described), style="dim"), (0, 0, 0, 3), expand=False))
        before, after = hit.context or ([], [])
        for p in before:
            self.out.print(Padding(Text(safe(p.text), style="dim"), (0, 0, 0, 3), expand=False))
        text = Text(safe(c.text))
        text.stylize("bold yellow", hit.highlight[0] - c.start, hit.highlight[1] - c.start)
        self.out.print(Padding(text, (0, 0, 0 if after else 1, 3), expand=False))
        for n, p in enumerate(after, 1):
            bottom = 1 if n == len(after) else 0
            self.out.print(
                Padding(Text(safe(p.text), style="dim"), (0, 0, bottom, 3), expand=False)
            )

    def _plain_hit(self, result: Answers, hit: Hit) -> None:
        c = hit.chunk
        title = f"{safe(c.title)} | " if c.title else ""
        heading = f"{hit.rank}. {hit.score:.3f}  {title}{safe(citation(result.corpus, hit))}"
        if described := about_line(hit):
            heading += f" | {safe(described)}"
        if self.width:
            for row in textwrap.wrap(heading, self.width, subsequent_indent="   "):
                self.line(row)
        else:
            self.line(heading)
        before, after = hit.context or ([], [])
        for p in before:
            self._indented(f"({p.number}) {safe(p.text)}")
        self._indented(safe(marked(c.text, hit, MARK)))
        for p in after:
            self._indented(f"({p.number}) {safe(p.text)}")
        self.line()

    def _indented(self, text: str) -> None:
        text = " ".join(text.split())  # one passage, one line
        if self.width:
            for row in textwrap.wrap(text, self.width - 3, break_long_words=False) or [""]:
                self.line("   " + row)
        else:
            self.line("   " + text)

    def _markdown(self, result: Answers, answer: Answer, separate: bool) -> None:
        if separate:
            self.line()
        self.line(f"## {_md(answer.question)}")
        self.line()
        if not answer.answered:
            self.line(f"> **{NO_ANSWER}**")
            self.line()
        for hit in answer.hits:
            c = hit.chunk
            title = f"{_md(c.title)} " if c.title else ""
            self.line(f"### {hit.rank}. {title}({hit.score:.3f})")
            self.line()
            self.line(f"[{_md(citation(result.corpus, hit))}]({link(result.corpus, hit)})")
            self.line()
            if described := about_line(hit):
                self.line(f"*{_md(described)}*")
                self.line()
            before, after = hit.context or ([], [])
            for p in before:
                self.line(f"> {_md(' '.join(p.text.split()))}")
                self.line()
            bold = _md(marked(c.text, hit, ("\ue000", "\ue001")))  # marks _md leaves alone
            self.line(" ".join(bold.replace("\ue000", "**").replace("\ue001", "**").split()))
            self.line()
            for p in after:
                self.line(f"> {_md(' '.join(p.text.split()))}")
                self.line()

    # --- documents ---------------------------------------------------------------------------

    def shown(self, shown: Shown, root: Path | None) -> None:
        if self.format in ("json", "jsonl"):
            if shown.passage is not None:
                self.json(schema.cited(shown))
            for doc in [] if shown.passage is not None else shown.documents:
                self.json(schema.document(doc, shown.indexed))
            return
        if shown.passage is not None:
            self._cited(shown)
            return
        for n, doc in enumerate(shown.documents):
            if n:
                self.line()
            self._document(doc, shown.indexed)

    def _document(self, doc: Document, indexed: bool) -> None:
        rows = [
            ("source", doc.source + (f" [{doc.doc_id}]" if doc.doc_id else "")),
            ("title", doc.title),
            ("date", doc.date),
            ("author", doc.author),
            ("url", doc.url),
            ("tags", ", ".join(doc.tags) or None),
            ("encoding", doc.encoding),
            ("pages", str(len(doc.pages)) if doc.pages else None),
            *sorted(doc.meta.items()),
        ]
        if not indexed:
            rows.append(("note", "not in the index: extracted now, as qa index would read it"))
        width = max(len(k) for k, v in rows if v)
        for key, value in rows:
            if value:
                if self.styled:
                    self.out.print(Text.assemble((key.ljust(width), "dim"), "  ", safe(value)))
                else:
                    self.line(f"{key.ljust(width)}  {safe(value)}")
        self._write_text(doc.text[doc.body_start :] if doc.body_start else doc.text)

    def _write_text(self, text: str) -> None:
        if self.styled:
            self.out.print()
            self.out.print(Text(safe(text)))
        else:
            self.line()
            self.stream.write(safe(text).rstrip("\n") + "\n")

    def _cited(self, shown: Shown) -> None:
        chunk = shown.passage
        assert chunk is not None
        doc = shown.documents[0] if shown.documents else None
        head = chunk.id + (f" | {doc.title}" if doc and doc.title else "")
        if self.styled:
            self.out.print(Text(safe(head), style="bold"))
            for p in shown.before or []:
                self.out.print(Text(safe(p.text), style="dim"))
                self.out.print()
            self.out.print(Text(safe(chunk.text), style="bold yellow"))
            for p in shown.after or []:
                self.out.print()
                self.out.print(Text(safe(p.text), style="dim"))
            return
        self.line(safe(head))
        for p in shown.before or []:
            self.line()
            self.line(safe(p.text))
        self.line()
        self.line(safe(f"{MARK[0]}{chunk.text}{MARK[1]}"))
        for p in shown.after or []:
            self.line()
            self.line(safe(p.text))

    # --- status and reports -----------------------------------------------------------------

    def table(self, rows: list[tuple[str, str, str | None]], title: str | None = None) -> None:
        """Label/value rows (a style for the value, or None)."""
        if self.format in ("json", "jsonl"):
            return
        if self.styled:
            table = Table(show_header=False, box=None, title=title)
            for label, value, style in rows:
                table.add_row(label, Text(safe(value), style=style or ""))
            self.out.print(table)
            return
        if title:
            self.line(title)
        width = max(len(label) for label, _, _ in rows)
        for label, value, _ in rows:
            self.line(f"{label.ljust(width)}  {safe(value)}")

    def grid(self, title: str, columns: list[str], values: list[str]) -> None:
        if self.styled:
            table = Table(title=title)
            for name in columns:
                table.add_column(name, justify="right")
            table.add_row(*values)
            self.out.print(table)
            return
        self.line(title)
        self.line("\t".join(columns))
        self.line("\t".join(values))


def about_line(hit: Hit) -> str:
    """The document's date, author and URL, when known: '2024-03-05 · J. Doe · https://…'."""
    about = hit.about or {}
    return " · ".join(str(about[k]) for k in ("date", "author", "url") if about.get(k))


def marked(text: str, hit: Hit, marks: tuple[str, str]) -> str:
    """The passage with its highlighted sentence between the two marks."""
    a, b = hit.highlight[0] - hit.chunk.start, hit.highlight[1] - hit.chunk.start
    return text[:a] + marks[0] + text[a:b] + marks[1] + text[b:]


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", safe(text))


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
    where += f", chars {c.start}–{c.end}"
    if c.page_start is not None:
        same = c.page_end in (None, c.page_start)
        where += f", p. {c.page_start}" if same else f", pp. {c.page_start}–{c.page_end}"
    return where


def link(root: Path, hit: Hit) -> str:
    """A relative link to the cited file, at its first line when it has lines."""
    target = quote(display_path(root, hit.chunk.source).replace(os.sep, "/"))
    return target + (f"#L{hit.chunk.line_start}" if hit.chunk.line_start is not None else "")


def paragraphs_text(paragraphs: list[Paragraph]) -> str:
    return "\n\n".join(p.text for p in paragraphs)


def store_rows(m: Any) -> list[tuple[str, str, str | None]]:
    """Where a Milvus index's vectors are, and whose BM25 finds its keyword candidates."""
    own = m.extra.get("store")
    if not isinstance(own, dict):
        return []
    keywords = (
        "Milvus's BM25 function (candidates), scored by qa's BM25"
        if own.get("keywords") == "milvus"
        else "qa's own BM25 in the index folder (the server has no BM25 function: Milvus < 2.5)"
    )
    server = f", server {own['server']}" if own.get("server") else ""
    return [
        ("store", f"{own.get('uri')} (generation {own.get('generation')}{server})", None),
        ("keywords", keywords, None),
    ]


def status_rows(state: Any, settings: Any, verify: bool) -> list[tuple[str, str, str | None]]:
    m = state.manifest
    rows: list[tuple[str, str, str | None]] = [
        ("index", str(settings.index), None),
        ("corpus", str(state.corpus), None),
        ("model", f"{m.model} ({m.dim} dimensions)", None),
        (
            "vectors",
            f"{m.vector_index}{f', nprobe {m.nprobe}' if m.nprobe else ''}"
            f"{' in Milvus' if m.extra.get('store') else ''}, "
            f"passages in {m.precision}",
            None,
        ),
        *store_rows(m),
        ("contents", f"{m.documents} documents, {m.chunks} passages, {len(m.files)} files", None),
        (
            "chunking",
            f"≤ {m.chunking.max_tokens} tokens, fragments < {m.chunking.min_words} words merged",
            None,
        ),
        ("built", f"{m.created} (updated {m.updated}, qa {m.qa_version})", None),
        (
            "state",
            "stale: " + state.changes.summary() if state.changes else state.problem or "current",
            None,
        ),
    ]
    if state.damage:
        rows.append(("damage", "; ".join(state.damage), "bold red"))
        rows.append(("repair", f"qa index --index {settings.index}", None))
    elif not m.contents:
        rows.append(("integrity", "no checksums (built by qa 0.1): `qa index` adds them", None))
    else:
        checked = "every file's checksum verified" if verify else "sizes checked (--verify: all)"
        rows.append(("integrity", checked, None))
    for name, origin in sorted(settings.origins.items()):
        rows.append((f"setting {name}", f"{getattr(settings, name)} (from {origin})", "dim"))
    return rows

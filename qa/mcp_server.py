"""`qa mcp`: the engine as an MCP server over stdio, for agents (the official `mcp` SDK's
MCPServer, FastMCP's successor in mcp 2). Three tools, answering in qa.schema's JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from qa import schema
from qa.config import Settings
from qa.engine import Engine
from qa.errors import QAError
from qa.filters import Filters
from qa.serve import MAX_CONTEXT, MAX_K, MAX_QUESTION

INSTRUCTIONS = (
    "Search a local collection of articles. Call `ask` with a question to get the best "
    "passages, each with a citation (source, paragraph, character offsets) and its best "
    "sentence; quote the citation when you use a passage. If `answered` is false, no passage "
    "is close enough: say so instead of guessing. Call `show` with a citation to read its "
    "context, and `status` to see what is indexed."
)


@contextmanager
def told(error: Callable[[str], Exception]) -> Iterator[None]:
    """qa's expected errors reach the agent with their message (what to do next); anything
    else stays a crash, whose text the SDK keeps on the server."""
    try:
        yield
    except QAError as exc:
        raise error(str(exc)) from None


def build_server(engine: Engine) -> Any:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer(name="qa", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(
        description=(
            "Answer a question from the indexed articles: returns {question, answered, results}"
            ", results being up to k passages, best first, each with rank, score, source, "
            "paragraph, start/end (character offsets), text, highlight (the best sentence's "
            "offsets), date, url, author and tags; cite a passage as SOURCE#PARAGRAPH (its "
            "citation, which `show` accepts). answered=false means no passage answers: "
            "the results are weak matches. Filters: source (globs like 'news/**', any may "
            "match), since/until (dates, inclusive), tag (all must match), where (KEY=VALUE "
            "metadata). mode: hybrid (default), dense or lexical."
        )
    )
    def ask(
        question: str,
        k: int = 5,
        mode: str = "hybrid",
        source: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        tag: list[str] | None = None,
        where: list[str] | None = None,
    ) -> dict[str, Any]:
        with told(ToolError):
            question = question[:MAX_QUESTION]
            filters = Filters.parse(source or (), since, until, tag or (), where or ())
            result = engine.ask([question], max(1, min(k, MAX_K)), mode, filters)
            return schema.answer(result.answers[0])

    @server.tool(
        description=(
            "Read what the index holds for a source or a citation, exactly as `ask` cites it. "
            "A citation (e.g. 'notes/a.md#3' or 'c.jsonl:42#1') returns the passage with "
            "`context` paragraphs before and after it; a source (e.g. 'notes/a.md') returns "
            "the whole document's text and metadata. Only indexed documents can be shown."
        )
    )
    def show(target: str, context: int = 2) -> dict[str, Any]:
        with told(ToolError):
            shown = engine.show(target, max(0, min(context, MAX_CONTEXT)))
        if shown.passage is not None:
            return schema.cited(shown)
        documents = [schema.document(d, shown.indexed) for d in shown.documents]
        return documents[0] if len(documents) == 1 else {"documents": documents}

    @server.tool(
        description=(
            "What is indexed: corpus folder, model, document and passage counts, build times, "
            "and whether the corpus changed since the last build (stale)."
        )
    )
    def status() -> dict[str, Any]:
        with told(ToolError):
            body = schema.status(engine.status(), engine.settings)
        body.pop("settings", None)
        return body

    return server


def run_mcp(settings: Settings) -> None:
    """Serve over stdio until the client closes it."""
    engine = Engine.open(settings, warm=True)
    build_server(engine).run("stdio")

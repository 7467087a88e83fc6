"""`qa serve`: one warm Engine behind a JSON API (with its OpenAPI document) and a web page.

FastAPI because it validates requests from type hints (the limits below become clear 4xx
answers and an OpenAPI document for free) and runs its sync handlers in a thread pool, which
the Engine is built for; uvicorn because it is the server FastAPI is made and tested with.
Both are imported only by this module, so no other command pays for them.

Security: loopback by default; another address needs a bearer token on every API request
(check_bind); documents are shown only if the index holds them (Engine.show looks sources up,
never opens a path); no CORS headers, so another site's page cannot read the answers.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa import schema
from qa.client import CORPUS_HEADER, SERVER_FILE
from qa.config import Settings
from qa.engine import Engine
from qa.errors import InputError, QAError
from qa.filters import Filters

log = logging.getLogger(__name__)

# SERVER_FILE (qa.client): in the index folder while a server runs: {"url", "pid", "token"}
MAX_QUESTION = 2000  # characters
MAX_K = 100
MAX_BATCH = 100
MAX_CONTEXT = 20
WEB = "web"  # qa/web/: the page's static files, shipped in the package

Question = Annotated[str, Field(min_length=1, max_length=MAX_QUESTION)]
Mode = Annotated[str, Field(pattern="^(hybrid|dense|lexical)$")]
Globs = Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=20)]


class Options(BaseModel):
    """What a question asks for: as `qa ask`'s flags."""

    k: Annotated[int, Field(ge=1, le=MAX_K)] = 5
    mode: Mode = "hybrid"
    source: Globs = []
    since: Annotated[str | None, Field(max_length=100)] = None
    until: Annotated[str | None, Field(max_length=100)] = None
    tag: Globs = []
    where: Globs = []
    context: Annotated[int, Field(ge=0, le=MAX_CONTEXT)] = 0
    min_score: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0

    def filters(self) -> Filters:
        return Filters.parse(self.source, self.since, self.until, self.tag, self.where)


class AskBody(Options):
    question: Question


class BatchBody(Options):
    questions: Annotated[list[Question], Field(min_length=1, max_length=MAX_BATCH)]


STATUS = {
    "bad_input": 400,
    "bad_request": 422,
    "unauthorized": 401,
    "not_found": 404,
    "no_index": 503,
    "index_damaged": 503,
}


def failure(code: str, message: str, status: int | None = None) -> JSONResponse:
    return JSONResponse(schema.error(code, message), status_code=status or STATUS.get(code, 409))


def create_app(engine: Engine, token: str | None = None) -> FastAPI:
    """The API and the page over one engine; with a token, every /api request must carry
    `Authorization: Bearer TOKEN`."""
    app = FastAPI(
        title="qa",
        description="Ask a folder of articles; get passages with exact citations.",
        version=_version(),
    )

    if token is not None:  # a middleware wraps every request: only when there is a token

        @app.middleware("http")
        async def bearer(request: Request, call_next: Callable[[Request], Any]) -> Response:
            if request.url.path.startswith("/api/"):
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return failure("unauthorized", "This server needs Authorization: Bearer TOKEN.")
            response: Response = await call_next(request)
            return response

    @app.exception_handler(QAError)
    async def qa_error(request: Request, exc: QAError) -> JSONResponse:
        code = schema.error_code(exc)
        if code == "bad_input" and "is not a source or citation" in str(exc):
            code = "not_found"
        return failure(code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
        return failure("bad_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "bad_request"
        return failure(code, str(exc.detail), exc.status_code)

    def answer(questions: list[str], options: Options) -> tuple[list[dict[str, Any]], str]:
        """The answers' JSON, and the corpus root their sources are relative to (quoted)."""
        result = engine.ask(
            questions,
            options.k,
            options.mode,
            options.filters(),
            options.context,
            min_score=options.min_score,
        )
        return [schema.answer(a) for a in result.answers], quote(str(result.corpus.resolve()))

    def answered(questions: list[str], options: Options) -> JSONResponse:
        """One answer as `qa ask --json` prints it; the corpus root in CORPUS_HEADER, for
        `qa ask` through the server to print paths as it would. A JSONResponse, returned as it
        is: FastAPI's encoding of a returned dict would add 0.5 ms a request."""
        answers, corpus = answer(questions, options)
        return JSONResponse(answers[0], headers={CORPUS_HEADER: corpus})

    @app.get("/api/ask", summary="Answer a question (the JSON of `qa ask --json`)")
    def ask_get(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUESTION)],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
        mode: Annotated[str, Query(pattern="^(hybrid|dense|lexical)$")] = "hybrid",
        source: Annotated[list[str] | None, Query(max_length=20)] = None,
        since: Annotated[str | None, Query(max_length=100)] = None,
        until: Annotated[str | None, Query(max_length=100)] = None,
        tag: Annotated[list[str] | None, Query(max_length=20)] = None,
        where: Annotated[list[str] | None, Query(max_length=20)] = None,
        context: Annotated[int, Query(ge=0, le=MAX_CONTEXT)] = 0,
        min_score: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    ) -> JSONResponse:
        options = Options(
            k=k,
            mode=mode,
            source=source or [],
            since=since,
            until=until,
            tag=tag or [],
            where=where or [],
            context=context,
            min_score=min_score,
        )
        return answered([q], options)

    @app.post("/api/ask", summary="Answer a question given as a JSON body")
    def ask_post(body: Annotated[AskBody, Body()]) -> JSONResponse:
        return answered([body.question], body)

    @app.post("/api/ask/batch", summary=f"Answer up to {MAX_BATCH} questions at once")
    def ask_batch(body: Annotated[BatchBody, Body()]) -> JSONResponse:
        return JSONResponse({"answers": answer(body.questions, body)[0]})

    @app.get("/api/status", summary="What is indexed (the JSON of `qa status --json`)")
    def status() -> dict[str, Any]:
        state = engine.status()
        body = schema.status(state, engine.settings)
        body["generation"] = engine.generation
        body["filters"] = facets(engine)
        return body

    @app.get("/api/show", summary="A document or a citation of the index (`qa show --json`)")
    def show(
        source: Annotated[str, Query(min_length=1, max_length=4096)],
        context: Annotated[int, Query(ge=0, le=MAX_CONTEXT)] = 2,
    ) -> dict[str, Any]:
        shown = engine.show(source, context)
        if shown.passage is not None:
            body = schema.cited(shown)
            doc = shown.documents[0] if shown.documents else None
            body["text"] = doc.text if doc else None  # the page shows the passage in place
            return body
        documents = [schema.document(d, shown.indexed) for d in shown.documents]
        return documents[0] if len(documents) == 1 else {"documents": documents}

    web = resources.files("qa") / WEB

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return FileResponse(str(web / "index.html"), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        kinds = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in kinds:  # a fixed list: no path from a request reaches the disk
            return failure("not_found", f"No static file {name!r}.")
        return FileResponse(str(web / name), media_type=kinds[name])

    return app


def facets(engine: Engine) -> dict[str, Any]:
    """What the page can filter on: the index's tags, its date range and its top folders."""
    table = engine.index.table()
    if table is None:
        return {"dates": None, "tags": [], "folders": []}
    dates = sorted(d for d in table.dates if d)
    tags = sorted({t for ts in table.tags for t in ts})[:200]
    folders = sorted({s.split("/", 1)[0] + "/**" for s in table.sources if "/" in s})[:200]
    return {
        "dates": [dates[0][:10], dates[-1][:10]] if dates else None,
        "tags": tags,
        "folders": folders,
    }


def _version() -> str:
    from qa import __version__

    return __version__


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> str | None:
    """A warning for a non-loopback address with a token; InputError without one."""
    if is_loopback(host):
        return None
    if not token:
        raise InputError(
            f"Binding {host} lets other machines read the index: pass --token SECRET (every "
            "request must then send Authorization: Bearer SECRET), or keep --host 127.0.0.1."
        )
    return (
        f"Listening on {host}, beyond this machine: every API request needs the token. "
        "Traffic is not encrypted; put a TLS proxy in front for anything but a trusted network."
    )


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


@contextmanager
def server_file(index_dir: Path, url: str, token: str | None) -> Iterator[Path]:
    """DIR/serve.json while the server runs, so `qa ask` finds it; removed when it stops."""
    path = index_dir / SERVER_FILE
    body: dict[str, Any] = {"url": url, "pid": os.getpid()}
    if token:
        body["token"] = token
    tmp = path.with_name(f".{SERVER_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the token: owner only
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(body, f)
    os.replace(tmp, path)
    try:
        yield path
    finally:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def watch_in_thread(
    settings: Settings, stop: threading.Event, notify: Callable[[str], None]
) -> threading.Thread:
    """`qa index --watch` beside the server: each burst of changes, one update; the engine
    picks each new generation up at its next request."""
    from qa.indexer import build_index, watched_changes

    def loop() -> None:
        try:
            for _ in watched_changes(settings, stop):
                try:
                    report = build_index(settings, notify=notify)
                except QAError as exc:
                    notify(f"update failed: {exc}")
                    continue
                if report.changed_files or report.removed:
                    notify(f"Index updated: embedded {report.embedded}, removed {report.removed}.")
        except Exception as exc:  # the server goes on answering from the index it has
            notify(f"watching stopped: {exc}")

    thread = threading.Thread(target=loop, name="qa-watch", daemon=True)
    thread.start()
    return thread


def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    token: str | None = None,
    watch: bool = False,
    workers: int = 1,
    notify: Callable[[str], None],
) -> None:
    """Run the server until Ctrl-C (or SIGTERM): in this process with one worker, else as
    the supervisor of worker processes (qa.workers) that each run it in theirs."""
    from qa import workers as processes

    role = processes.worker_role()
    if role is not None:
        _work(settings, token, *role)
        return
    warning = check_bind(host, token)
    processes.check_workers(settings.index, workers)
    if warning:
        notify(f"warning: {warning}")
    sock = processes.bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}"
    stop = threading.Event()
    # uvicorn shuts down on SIGTERM, then raises the signal again once it has: with Python's
    # default handler that ended the process before serve.json was removed (seen: `kill PID`
    # left it behind). This handler turns it into an orderly exit through the finallys below.
    signal.signal(signal.SIGTERM, _stopped)
    described = f" with {workers} worker processes" if workers > 1 else ""

    def ready() -> None:
        if watch:
            watch_in_thread(settings, stop, notify)
        files.enter_context(server_file(settings.index, url, token))
        notify(f"Serving {settings.index} at {url}/{described} (API: {url}/docs; Ctrl-C stops).")

    with sock, ExitStack() as files:
        try:
            if workers > 1:
                processes.supervise(sock, workers, ready, notify)
            else:
                server = _server(Engine.open(settings, warm=True), token)
                ready()
                server.run(sockets=[sock])
        finally:
            stop.set()


def _server(engine: Engine, token: str | None) -> Any:
    import uvicorn

    app = create_app(engine, token)
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))


def _work(settings: Settings, token: str | None, sock_fd: int, report_fd: int) -> None:
    """One worker of `qa serve --workers N`: open the engine, report, serve on the socket the
    supervisor bound until SIGTERM, Ctrl-C or the supervisor's end."""
    from qa import workers as processes

    sock = socket.socket(fileno=sock_fd)
    try:
        server = _server(Engine.open(settings, warm=True), token)
    except QAError as exc:  # the supervisor says it, once
        processes.report(report_fd, str(exc))
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None

    def stop_serving() -> None:
        server.should_exit = True

    processes.on_orphaned(stop_serving)
    signal.signal(signal.SIGTERM, _stopped)
    processes.report(report_fd)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the terminal's group
        pass

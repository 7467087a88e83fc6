"""qa serve's API over one engine, with the fake embedder: the same JSON as `qa ask --json`,
limits as clear 4xx, only indexed documents shown, a token off loopback, and generations
switched under concurrent requests without one failing."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qa import schema
from qa.config import Settings
from qa.engine import Engine
from qa.errors import InputError
from qa.indexer import build_index
from qa.search import ask
from qa.serve import SERVER_FILE, check_bind, create_app, server_file

from .conftest import FakeEmbedder

QUESTION = "How deep is Lake Baikal in Siberia?"


@pytest.fixture
def settings(tmp_path: Path, corpus: Path, fake_models: dict[str, FakeEmbedder]) -> Settings:
    s = Settings(corpus=corpus, index=tmp_path / "index")
    build_index(s, embedder=FakeEmbedder())
    return s


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app(Engine.open(settings)))


def test_ask_get_and_post_give_exactly_the_json_of_qa_ask(
    settings: Settings, client: TestClient
) -> None:
    expected = schema.answer(ask(settings, [QUESTION], k=3, update=False).answers[0])
    got = client.get("/api/ask", params={"q": QUESTION, "k": 3})
    assert got.status_code == 200, got.text
    assert got.json() == expected
    assert got.json()["results"][0]["source"] == "lakes.md"
    posted = client.post("/api/ask", json={"question": QUESTION, "k": 3})
    assert posted.status_code == 200, posted.text
    assert posted.json() == expected
    assert "access-control-allow-origin" not in got.headers  # no CORS


def test_filters_and_batch(client: TestClient) -> None:
    only = client.get("/api/ask", params={"q": "rocket moon", "source": "space/*"}).json()
    assert {r["source"] for r in only["results"]} == {"space/rockets.txt"}
    batch = client.post("/api/ask/batch", json={"questions": [QUESTION, "yeast bread"], "k": 1})
    assert batch.status_code == 200, batch.text
    tops = [a["results"][0]["source"] for a in batch.json()["answers"]]
    assert tops == ["lakes.md", "cooking.txt"]


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("get", "/api/ask", None, {"q": "x" * 2001}),
        ("get", "/api/ask", None, {"q": QUESTION, "k": 101}),
        ("get", "/api/ask", None, {"q": QUESTION, "mode": "psychic"}),
        ("get", "/api/ask", None, {}),
        ("post", "/api/ask", {"question": ""}, None),
        ("post", "/api/ask/batch", {"questions": ["q"] * 101}, None),
        ("post", "/api/ask/batch", {"questions": []}, None),
    ],
    ids=["long-question", "k-101", "bad-mode", "no-question", "empty", "batch-101", "batch-0"],
)
def test_limits_are_clear_4xx_errors(
    client: TestClient, method: str, path: str, body: object, params: object
) -> None:
    got = client.request(method.upper(), path, json=body, params=params)  # type: ignore[arg-type]
    assert 400 <= got.status_code < 500, got.text
    error = got.json()["error"]
    assert error["code"] == "bad_request" and error["message"]


def test_a_bad_filter_value_is_a_400_with_the_cli_message(client: TestClient) -> None:
    got = client.get("/api/ask", params={"q": QUESTION, "since": "not a date"})
    assert got.status_code == 400, got.text
    assert got.json()["error"]["code"] == "bad_input"


def test_show_serves_indexed_documents_and_citations_only(
    client: TestClient, tmp_path: Path
) -> None:
    doc = client.get("/api/show", params={"source": "lakes.md"})
    assert doc.status_code == 200, doc.text
    assert doc.json()["title"] == "Lakes of the north" and "Baikal" in doc.json()["text"]
    cited = client.get("/api/show", params={"source": "lakes.md#2"}).json()
    assert cited["citation"] == "lakes.md#2"
    text, p = cited["text"], cited["passage"]
    assert text[p["start"] : p["end"]] == p["text"]
    secret = tmp_path / "secret.txt"
    secret.write_text("the password is swordfish, written in a file nobody indexed")
    for target in (
        "../secret.txt",
        str(secret),
        "/etc/passwd",
        "../../../../etc/passwd",
        "space/../../secret.txt",
        "lakes.md/../../secret.txt",
    ):
        got = client.get("/api/show", params={"source": target})
        assert got.status_code == 404, (target, got.text)
        assert got.json()["error"]["code"] == "not_found"
        assert "swordfish" not in got.text and "root:" not in got.text


def test_status_reports_the_index(client: TestClient) -> None:
    got = client.get("/api/status")
    assert got.status_code == 200, got.text
    assert got.json()["documents"] == 3 and got.json()["stale"] is False


def test_openapi_document_lists_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/ask", "/api/ask/batch", "/api/status", "/api/show"} <= set(paths)


def test_off_loopback_needs_a_token_and_every_request_carries_it(settings: Settings) -> None:
    assert check_bind("127.0.0.1", None) is None and check_bind("::1", None) is None
    assert check_bind("localhost", None) is None
    with pytest.raises(InputError, match="--token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(InputError, match="--token"):
        check_bind("192.168.1.20", None)
    assert "token" in (check_bind("0.0.0.0", "s3cret") or "")
    client = TestClient(create_app(Engine.open(settings), token="s3cret"))
    assert client.get("/api/ask", params={"q": QUESTION}).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/api/status", headers=wrong).status_code == 401
    right = {"Authorization": "Bearer s3cret"}
    assert client.get("/api/ask", params={"q": QUESTION}, headers=right).status_code == 200


def test_server_file_is_there_while_serving_and_removed_after(settings: Settings) -> None:
    with server_file(settings.index, "http://127.0.0.1:9", "tok") as path:
        assert path == settings.index / SERVER_FILE
        body = json.loads(path.read_text())
        assert body["url"] == "http://127.0.0.1:9" and body["token"] == "tok" and body["pid"]
        assert path.stat().st_mode & 0o077 == 0  # the token is the owner's only
    assert not path.exists()


def test_generation_switch_under_concurrent_requests_fails_none(
    settings: Settings, corpus: Path
) -> None:
    client = TestClient(create_app(Engine.open(settings)))
    first = client.get("/api/status").json()["generation"]
    failures: list[str] = []
    done = threading.Event()
    counts = [0, 0]

    def asker(slot: int) -> None:
        deadline = time.monotonic() + 30  # bounded even if the builder hangs
        while not done.is_set() and time.monotonic() < deadline:
            got = client.get("/api/ask", params={"q": QUESTION, "k": 2})
            counts[slot] += 1
            if got.status_code != 200 or got.json()["results"][0]["source"] != "lakes.md":
                failures.append(got.text)

    threads = [threading.Thread(target=asker, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    try:
        for n in range(4):
            (corpus / f"new{n}.txt").write_text(f"Article number {n} is about gardening tools.")
            build_index(settings)
            time.sleep(0.05)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=30)
    assert not failures, failures[:3]
    assert min(counts) > 0
    now = client.get("/api/ask", params={"q": "gardening tools article number 3", "k": 1}).json()
    assert now["results"][0]["source"] == "new3.txt"
    assert client.get("/api/status").json()["generation"] != first

"""A bounded property-based run of qa serve's OpenAPI document (schemathesis): whatever the
generated requests, no answer is a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from qa.config import Settings
from qa.engine import Engine
from qa.indexer import build_index
from qa.serve import create_app

from .conftest import ARTICLES, FakeEmbedder


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    root = tmp_path_factory.mktemp("openapi")
    corpus = root / "corpus"
    for name, text in ARTICLES.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text, encoding="utf-8")
    s = Settings(corpus=corpus, index=root / "index")
    fake = FakeEmbedder()
    build_index(s, embedder=fake)
    return create_app(Engine.open(s, embedder=fake))


def test_no_request_gets_a_server_error(app: FastAPI) -> None:
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 5
    seen: set[int] = set()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same examples every run: a failure here is reproducible
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call()
            seen.add(response.status_code)
            assert response.status_code < 500, (case.path, case.query, case.body, response.text)
            if response.status_code >= 400:
                assert set(response.json()["error"]) == {"code", "message"}

        check()
    assert 200 in seen and seen & {400, 404, 422}, seen  # both answers and refusals were made

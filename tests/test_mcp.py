"""qa mcp, driven by the official SDK's own client over stdio, in a subprocess (the fake
embedder swapped in by a two-line launcher, since the index was built with it)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from qa.config import Settings
from qa.indexer import build_index

from .conftest import REPO, FakeEmbedder

LAUNCH = (
    "import sys, qa.embed as e\n"
    "from tests.conftest import FakeEmbedder\n"
    "e.load_embedder = lambda name, batch_size=32: FakeEmbedder(name)\n"
    "from qa.cli import run\n"
    "sys.exit(run(sys.argv[1:]))\n"
)


def _payload(result: Any) -> Any:
    structured = getattr(result, "structured_content", None)
    if structured is not None:
        return structured.get("result", structured)
    return json.loads(result.content[0].text)


async def _session(index: Path) -> dict[str, Any]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", LAUNCH, "mcp", "--index", str(index)],
        cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
    )
    out: dict[str, Any] = {}
    with anyio.fail_after(60):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            out["tools"] = {t.name: t for t in tools.tools}
            asked = await session.call_tool(
                "ask", {"question": "How deep is Lake Baikal in Siberia?", "k": 2}
            )
            out["ask"] = _payload(asked)
            top = out["ask"]["results"][0]
            shown = await session.call_tool("show", {"target": f"{top['source']}#2"})
            out["show"] = _payload(shown)
            filtered = await session.call_tool(
                "ask", {"question": "rocket moon", "source": ["space/*"]}
            )
            out["filtered"] = _payload(filtered)
            out["status"] = _payload(await session.call_tool("status", {}))
            refused = await session.call_tool("show", {"target": "../../etc/passwd"})
            out["refused"] = refused
    return out


def test_mcp_tools_over_stdio_with_the_sdk_client(
    tmp_path: Path, corpus: Path, fake_models: dict[str, FakeEmbedder]
) -> None:
    index = tmp_path / "index"
    build_index(Settings(corpus=corpus, index=index), embedder=FakeEmbedder())
    got = anyio.run(_session, index)
    assert set(got["tools"]) == {"ask", "show", "status"}
    assert "citation" in (got["tools"]["ask"].description or "")
    assert got["ask"]["answered"] in (True, False)
    assert got["ask"]["results"][0]["source"] == "lakes.md"
    assert got["show"]["citation"] == "lakes.md#2"
    assert "Baikal" in got["show"]["passage"]["text"]
    assert {r["source"] for r in got["filtered"]["results"]} == {"space/rockets.txt"}
    assert got["status"]["documents"] == 3
    assert got["refused"].is_error
    assert "not a source or citation" in got["refused"].content[0].text


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

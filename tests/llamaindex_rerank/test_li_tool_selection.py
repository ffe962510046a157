"""select_tools / aselect_tools over LlamaIndex tools."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import FakeBackend
from llama_index.core.tools import FunctionTool, ToolMetadata

from llamaindex_rerank import aselect_tools, select_tools, tool_text
from rerank_core import InvalidInputError, Reranker
from rerank_core.backends import CrossEncoderBackend


def get_weather(city: str) -> str:
    """Get the current weather forecast for a city."""
    return city


def add_numbers(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


def lookup_stock(ticker: str) -> float:
    """Look up the latest stock price of a ticker symbol."""
    return 1.0


TOOLS = [FunctionTool.from_defaults(fn=f) for f in (get_weather, add_numbers, lookup_stock)]
SCORES = {tool_text(t): s for t, s in zip(TOOLS, [5.0, -1.0, 3.0], strict=True)}


def names(tools: list) -> list[str]:
    return [t.metadata.name for t in tools]


def test_tool_text_uses_the_tool_metadata() -> None:
    text = tool_text(TOOLS[0])
    assert text == f"get_weather: {TOOLS[0].metadata.description}"
    assert text.startswith("get_weather: get_weather(") and "Get the current weather forecast" in text


def test_best_first_then_always_include_sync_and_async() -> None:
    backend = FakeBackend(SCORES)
    assert names(select_tools("q", TOOLS, backend, max_tools=1)) == ["get_weather"]
    got = select_tools("q", TOOLS, backend, max_tools=1, always_include=["add_numbers"])
    assert names(got) == ["get_weather", "add_numbers"]
    assert got[0] is TOOLS[0]  # the caller's tool objects, not copies
    agot = asyncio.run(aselect_tools("q", TOOLS, backend, max_tools=1, always_include=["add_numbers"]))
    assert names(agot) == names(got)
    assert names(select_tools("q", TOOLS, Reranker(backend, top_n=2))) == ["get_weather", "lookup_stock"]
    assert names(select_tools("q", TOOLS, backend, score_threshold=4.0)) == ["get_weather"]


def test_all_tools_always_included_skips_the_backend() -> None:
    backend = FakeBackend(SCORES)
    all_names = names(TOOLS)
    assert names(select_tools("q", TOOLS, backend, always_include=all_names)) == all_names
    assert backend.calls == []


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_tools": 0}, "max_tools"),
        ({"always_include": ["missing"]}, "always_include"),
        ({"always_include": "get_weather"}, "always_include"),
        ({"query": None}, "query"),
        ({"tools": [TOOLS[0], ToolMetadata(description="x", name="y")]}, "tools[1]"),
        ({"tools": None}, "tools"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict, argument: str) -> None:
    call = {"query": "q", "tools": TOOLS, **kwargs}
    with pytest.raises(InvalidInputError) as info:
        select_tools(call.pop("query"), call.pop("tools"), FakeBackend(SCORES), **call)
    assert info.value.argument == argument


def test_real_cross_encoder_matches_the_core(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, device="cpu")
    got = select_tools("stock price", TOOLS, backend, max_tools=2)
    want = Reranker(backend, top_n=2).rerank("stock price", [tool_text(t) for t in TOOLS])
    assert [TOOLS.index(t) for t in got] == want.indices

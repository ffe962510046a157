"""Reranked tool selection: the plain functions and the LangChain v1 agent middleware in a real
``create_agent`` with a fake chat model that records which tools it was offered."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

import pytest
from fakes import FakeBackend, NativeAsyncBackend
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import BaseTool, tool
from lc_helpers import ToolRecordingChatModel

from langchain_rerank import RerankToolSelectorMiddleware, aselect_tools, select_tools, tool_text
from rerank_core import InvalidInputError, Reranker
from rerank_core.backends import CrossEncoderBackend


@tool
def get_weather(city: str) -> str:
    """Get the current weather forecast for a city."""
    return f"sunny in {city}"


@tool
def add_numbers(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


@tool
def search_web(query: str) -> str:
    """Search the web for recent pages."""
    return f"pages about {query}"


@tool
def send_email(to: str, body: str) -> str:
    """Send an email message to a recipient."""
    return "sent"


@tool
def lookup_stock(ticker: str) -> float:
    """Look up the latest stock price of a ticker symbol."""
    return 42.0


TOOLS: list[BaseTool] = [get_weather, add_numbers, search_web, send_email, lookup_stock]
# Known scores per tool text: weather > stock > web > email > add.
SCORES = dict(zip([tool_text(t) for t in TOOLS], [5.0, -1.0, 2.0, 0.0, 3.0], strict=True))


def names(tools: list) -> list[str]:
    return [t["name"] if isinstance(t, dict) else t.name for t in tools]


def test_tool_text_is_name_and_description() -> None:
    assert tool_text(get_weather) == "get_weather: Get the current weather forecast for a city."


def test_select_tools_best_first_then_always_include() -> None:
    backend = FakeBackend(SCORES)
    assert names(select_tools("weather?", TOOLS, backend, max_tools=2)) == ["get_weather", "lookup_stock"]
    got = select_tools("weather?", TOOLS, backend, max_tools=2, always_include=["add_numbers", "send_email"])
    assert names(got) == ["get_weather", "lookup_stock", "add_numbers", "send_email"]
    got = select_tools("weather?", TOOLS, Reranker(backend), always_include=["add_numbers"])
    assert names(got) == ["get_weather", "lookup_stock", "search_web", "send_email", "add_numbers"]
    assert names(select_tools("weather?", TOOLS, backend, score_threshold=2.5)) == [
        "get_weather",
        "lookup_stock",
    ]
    assert select_tools("q", TOOLS, backend, max_tools=1)[0] is get_weather  # the caller's object


def test_select_tools_uses_the_reranker_policy_unless_overridden() -> None:
    reranker = Reranker(FakeBackend(SCORES), top_n=1)
    assert names(select_tools("q", TOOLS, reranker)) == ["get_weather"]
    assert names(select_tools("q", TOOLS, reranker, max_tools=3)) == [
        "get_weather",
        "lookup_stock",
        "search_web",
    ]


def test_select_tools_async_matches_sync() -> None:
    backend = FakeBackend(SCORES)
    sync = select_tools("q", TOOLS, backend, max_tools=3, always_include=["send_email"])
    got = asyncio.run(aselect_tools("q", TOOLS, backend, max_tools=3, always_include=["send_email"]))
    assert names(got) == names(sync)


def test_select_tools_with_nothing_to_rank_does_not_call_the_backend() -> None:
    backend = FakeBackend(SCORES)
    assert select_tools("q", [], backend) == []
    assert names(select_tools("q", [add_numbers], backend, always_include=["add_numbers"])) == ["add_numbers"]
    assert backend.calls == []


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_tools": 0}, "max_tools"),
        ({"max_tools": 2.5}, "max_tools"),
        ({"score_threshold": "high"}, "score_threshold"),
        ({"always_include": "add_numbers"}, "always_include"),
        ({"always_include": ["nope"]}, "always_include"),
        ({"always_include": [3]}, "always_include[0]"),
        ({"query": 7}, "query"),
        ({"query": ""}, "query"),
        ({"tools": "get_weather"}, "tools"),
        ({"tools": [get_weather, {"type": "web_search"}]}, "tools[1]"),
        ({"tools": [get_weather, print]}, "tools[1]"),
    ],
)
def test_select_tools_bad_input_names_the_argument(kwargs: dict, argument: str) -> None:
    call = {"query": "q", "tools": TOOLS, "reranker": FakeBackend(SCORES), **kwargs}
    with pytest.raises(InvalidInputError) as info:
        select_tools(call.pop("query"), call.pop("tools"), call.pop("reranker"), **call)
    assert info.value.argument == argument and argument in str(info.value)


def test_select_tools_rejects_a_non_reranker() -> None:
    with pytest.raises(ValueError, match="reranker"):
        select_tools("q", TOOLS, "cross-encoder/ms-marco-MiniLM-L6-v2")  # type: ignore[arg-type]


# -- the middleware in a real agent ----------------------------------------------------------------------


def agent_model() -> ToolRecordingChatModel:
    """Calls get_weather once, then answers: two model calls per run."""
    return ToolRecordingChatModel(
        messages=iter(
            [
                AIMessage(
                    content="", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]
                ),
                AIMessage(content="It is sunny in Paris."),
            ]
        )
    )


def test_middleware_is_an_agent_middleware() -> None:
    assert issubclass(RerankToolSelectorMiddleware, AgentMiddleware)
    assert RerankToolSelectorMiddleware(FakeBackend()).name == "RerankToolSelectorMiddleware"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_agent_is_offered_only_the_best_tools(mode: str) -> None:
    model = agent_model()
    backend = FakeBackend(SCORES)
    middleware = RerankToolSelectorMiddleware(backend, max_tools=2, always_include=["add_numbers"])
    agent = create_agent(model, tools=TOOLS, middleware=[middleware])
    state = {"messages": [HumanMessage("What is the weather in Paris?")]}
    out = agent.invoke(state) if mode == "sync" else asyncio.run(agent.ainvoke(state))
    # both model calls saw the two best tools plus the always-included one, in the agent's order
    assert model.offered == [["get_weather", "add_numbers", "lookup_stock"]] * 2
    assert [m.type for m in out["messages"]] == ["human", "ai", "tool", "ai"]
    assert out["messages"][2].content == "sunny in Paris"  # the selected tool really ran
    # the query was the user's message, every call ranked the four non-always tools
    assert {q for call in backend.calls for q, _ in call} == {"What is the weather in Paris?"}
    assert all(len(call) == 4 for call in backend.calls) and len(backend.calls) == 2


def test_async_agent_runs_the_middleware_on_the_core_async_path() -> None:
    model = agent_model()
    agent = create_agent(
        model, tools=TOOLS, middleware=[RerankToolSelectorMiddleware(NativeAsyncBackend(SCORES), max_tools=1)]
    )
    asyncio.run(agent.ainvoke({"messages": [HumanMessage("weather in Paris?")]}))
    assert model.offered == [["get_weather"]] * 2


def test_middleware_ranks_against_the_latest_user_message() -> None:
    seen: list[str] = []
    backend = FakeBackend(lambda q, t: (seen.append(q), float(t.startswith("send_email")))[1])
    middleware = RerankToolSelectorMiddleware(backend, max_tools=1)
    model = ToolRecordingChatModel(messages=iter([AIMessage(content="ok")]))
    agent = create_agent(model, tools=TOOLS, middleware=[middleware])
    agent.invoke(
        {
            "messages": [
                HumanMessage("old question"),
                AIMessage("old answer"),
                HumanMessage("email Bob please"),
            ]
        }
    )
    assert set(seen) == {"email Bob please"}
    assert model.offered == [["send_email"]]


def test_middleware_keeps_provider_tool_dicts_and_skips_when_nothing_to_rank() -> None:
    middleware = RerankToolSelectorMiddleware(FakeBackend(SCORES), max_tools=1)
    provider = {"type": "web_search_preview", "name": "web_search_preview"}
    request = ModelRequest(
        model=ToolRecordingChatModel(messages=iter([])),
        messages=[HumanMessage("weather?")],
        tools=[add_numbers, provider, get_weather, lookup_stock],
    )
    passed: list[ModelRequest] = []
    middleware.wrap_model_call(request, lambda r: passed.append(r) or AIMessage("x"))
    assert names(passed[0].tools) == ["web_search_preview", "get_weather"]
    assert names(request.tools) == ["add_numbers", "web_search_preview", "get_weather", "lookup_stock"]
    # no user message: nothing to rank against, every tool is offered (and logged)
    bare = request.override(messages=[AIMessage("hello")])
    middleware.wrap_model_call(bare, lambda r: passed.append(r) or AIMessage("x"))
    assert passed[-1] is bare
    only_dicts = request.override(tools=[provider])
    middleware.wrap_model_call(only_dicts, lambda r: passed.append(r) or AIMessage("x"))
    assert passed[-1] is only_dicts


def test_middleware_always_include_must_name_an_agent_tool() -> None:
    model = ToolRecordingChatModel(messages=iter([AIMessage(content="ok")]))
    middleware = RerankToolSelectorMiddleware(FakeBackend(SCORES), always_include=["not_a_tool"])
    agent = create_agent(model, tools=TOOLS, middleware=[middleware])
    with pytest.raises(InvalidInputError) as info:
        agent.invoke({"messages": [HumanMessage("hi")]})
    assert info.value.argument == "always_include" and "not_a_tool" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_tools": 0}, "max_tools"),
        ({"always_include": "x"}, "always_include"),
        ({"score_threshold": []}, "score_threshold"),
    ],
)
def test_middleware_bad_options_name_the_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError) as info:
        RerankToolSelectorMiddleware(FakeBackend(), **kwargs)
    assert info.value.argument == argument  # type: ignore[attr-defined]


def test_middleware_from_cross_encoder_selects_like_the_core(tiny_ce_path: Path) -> None:
    middleware = RerankToolSelectorMiddleware.from_cross_encoder(tiny_ce_path, max_tools=2, device="cpu")
    model = ToolRecordingChatModel(messages=iter([AIMessage(content="ok")]))
    create_agent(model, tools=TOOLS, middleware=[middleware]).invoke(
        {"messages": [HumanMessage("stock price")]}
    )
    ranked = Reranker(CrossEncoderBackend(tiny_ce_path, device="cpu"), top_n=2).rerank(
        "stock price", [tool_text(t) for t in TOOLS]
    )
    want = {TOOLS[r.index].name for r in ranked}
    assert len(model.offered) == 1 and set(model.offered[0]) == want
    assert model.offered[0] == [t.name for t in TOOLS if t.name in want]  # the agent's order


def test_middleware_import_without_langchain_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "langchain_rerank.middleware")
    monkeypatch.setitem(sys.modules, "langchain.agents.middleware", None)
    with pytest.raises(ImportError, match="pip install langchain"):
        importlib.import_module("langchain_rerank.middleware")
    import langchain_rerank

    with pytest.raises(ImportError, match="pip install langchain"):
        langchain_rerank.__getattr__("RerankToolSelectorMiddleware")
    # the rest of the package needs only langchain-core
    assert langchain_rerank.select_tools is select_tools

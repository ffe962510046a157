"""RerankPostprocessor end to end: VectorStoreIndex query engines (as_query_engine and
RetrieverQueryEngine) sync and async with real MiniLM embeddings and a mock LLM, a context chat engine,
and an ObjectIndex over FunctionTools choosing the tools a FunctionAgent is offered, with an async path
that does not block the event loop. The reranker is a real (tiny, random) cross-encoder except where a
test needs known scores; every expected order comes from the core on the nodes the index retrieved."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from adapter_helpers import QUERIES
from fakes import FakeBackend
from li_helpers import EventRecorder, MiniLMEmbedding, corpus_nodes, recording_events
from llama_index.core import VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms import MockLLM
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.objects import ObjectIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from llama_index.core.tools import FunctionTool

from llamaindex_rerank import RETRIEVAL_SCORE_KEY, RerankObjectRetriever, RerankPostprocessor
from rerank_core import Reranker
from rerank_core.backends import CrossEncoderBackend

pytestmark = pytest.mark.slow

K = 6
TOP_N = 3


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    return VectorStoreIndex(corpus_nodes(), embed_model=MiniLMEmbedding())


@pytest.fixture(scope="module")
def core(tiny_ce_path: Path) -> Reranker:
    return Reranker(CrossEncoderBackend(tiny_ce_path, device="cpu"), top_n=TOP_N)


@pytest.fixture(scope="module")
def postprocessor(core: Reranker) -> RerankPostprocessor:
    return RerankPostprocessor(core)


@pytest.fixture
def events() -> Iterator[EventRecorder]:
    with recording_events() as recorder:
        yield recorder


def expected(index: VectorStoreIndex, core: Reranker, query: str) -> list[tuple[str, float, float]]:
    """(node id, relevance score, retrieval score) the pipeline must return, from the core."""
    retrieved = index.as_retriever(similarity_top_k=K).retrieve(query)
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in retrieved]
    return [
        (retrieved[r.index].node.node_id, r.relevance_score, retrieved[r.index].score)
        for r in core.rerank(query, texts)
    ]


def summary(nodes: Sequence[NodeWithScore]) -> list[tuple[str, float, float]]:
    return [(n.node.node_id, n.score, n.node.metadata[RETRIEVAL_SCORE_KEY]) for n in nodes]


def assert_same(got: list[tuple[str, float, float]], want: list[tuple[str, float, float]]) -> None:
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1:] for g in got] == [pytest.approx(w[1:], abs=1e-5) for w in want]


def test_embeddings_are_real_minilm(index: VectorStoreIndex) -> None:
    top = index.as_retriever(similarity_top_k=1).retrieve("When was the Eiffel Tower finished?")
    assert top[0].node.metadata["source"] == "eiffel"


def test_query_engine_sync_and_async(
    index: VectorStoreIndex, core: Reranker, postprocessor: RerankPostprocessor, events: EventRecorder
) -> None:
    engine = index.as_query_engine(similarity_top_k=K, node_postprocessors=[postprocessor], llm=MockLLM())
    for query in QUERIES:
        want = expected(index, core, query)
        response = engine.query(query)
        assert_same(summary(response.source_nodes), want)
        # the mock LLM echoes its prompt: the reranked passages reached it, best first
        positions = [str(response).find(n.node.get_content()) for n in response.source_nodes]
        assert all(p >= 0 for p in positions) and positions == sorted(positions)
        assert RETRIEVAL_SCORE_KEY not in str(response)  # added metadata stays out of the prompt
        aresponse = asyncio.run(engine.aquery(query))
        assert_same(summary(aresponse.source_nodes), want)
    assert len(events.named("ReRankStartEvent")) == len(events.named("ReRankEndEvent")) == 2 * len(QUERIES)
    assert all(e.top_n == TOP_N for e in events.named("ReRankStartEvent"))


def test_retriever_query_engine_sync_and_async(
    index: VectorStoreIndex, core: Reranker, postprocessor: RerankPostprocessor
) -> None:
    engine = RetrieverQueryEngine.from_args(
        index.as_retriever(similarity_top_k=K), llm=MockLLM(), node_postprocessors=[postprocessor]
    )
    stored = {nid: node.model_dump() for nid, node in index.docstore.docs.items()}
    for query in QUERIES:
        want = expected(index, core, query)
        assert_same(summary(engine.query(query).source_nodes), want)
        assert_same(summary(asyncio.run(engine.aquery(query)).source_nodes), want)
        assert_same(summary(engine.retrieve(QueryBundle(query))), want)
    assert {nid: node.model_dump() for nid, node in index.docstore.docs.items()} == stored  # untouched


def test_context_chat_engine_sync_and_async(
    index: VectorStoreIndex, core: Reranker, postprocessor: RerankPostprocessor
) -> None:
    engine = index.as_chat_engine(
        chat_mode="context", similarity_top_k=K, node_postprocessors=[postprocessor], llm=MockLLM()
    )
    response = engine.chat(QUERIES[0])
    assert_same(summary(response.source_nodes), expected(index, core, QUERIES[0]))
    engine.reset()
    aresponse = asyncio.run(engine.achat(QUERIES[2]))
    assert_same(summary(aresponse.source_nodes), expected(index, core, QUERIES[2]))


# -- tools: ObjectIndex + postprocessor, offered to a FunctionAgent --------------------------------------


def get_weather(city: str) -> str:
    """Get the current weather forecast for a city."""
    return f"sunny in {city}"


def add_numbers(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


def search_web(query: str) -> str:
    """Search the web for recent pages."""
    return f"pages about {query}"


def send_email(to: str, body: str) -> str:
    """Send an email message to a recipient."""
    return "sent"


def lookup_stock(ticker: str) -> float:
    """Look up the latest stock price of a ticker symbol."""
    return 42.0


FUNCTIONS = [get_weather, add_numbers, search_web, send_email, lookup_stock]
PREFERENCE = {
    "get_weather": 5.0,
    "lookup_stock": 3.0,
    "search_web": 2.0,
    "send_email": 0.0,
    "add_numbers": -1.0,
}


def by_name(query: str, text: str) -> float:
    """Known tool scores: the fake back end reads the tool name out of the tool node's text."""
    return next(score for name, score in PREFERENCE.items() if name in text)


@pytest.fixture(scope="module")
def tool_index() -> ObjectIndex:
    tools = [FunctionTool.from_defaults(fn=f) for f in FUNCTIONS]
    return ObjectIndex.from_objects(tools, embed_model=MiniLMEmbedding())


def test_object_index_retriever_with_the_postprocessor_picks_tools(tool_index: ObjectIndex) -> None:
    pp = RerankPostprocessor(FakeBackend(by_name), top_n=2)
    retriever = tool_index.as_retriever(similarity_top_k=5, node_postprocessors=[pp])
    assert [t.metadata.name for t in retriever.retrieve("anything")] == ["get_weather", "lookup_stock"]


# FunctionAgent's workflow machinery runs inspect.getmembers over pydantic models (a third-party warning)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_function_agent_is_offered_the_reranked_tools_async(tool_index: ObjectIndex) -> None:
    offered: list[list[str]] = []

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        offered.append([t.metadata.name for t in kwargs.get("tools") or []])
        return ChatMessage(role=MessageRole.ASSISTANT, content="It is sunny.")

    pp = RerankPostprocessor(FakeBackend(by_name), top_n=2)
    retriever = RerankObjectRetriever.from_object_index(tool_index, [pp], similarity_top_k=5)
    always = FunctionTool.from_defaults(fn=add_numbers)
    agent = FunctionAgent(
        tools=[always], tool_retriever=retriever, llm=MockFunctionCallingLLM(response_generator=respond)
    )

    async def run() -> str:
        return str(await agent.run(user_msg="What is the weather in Paris?"))

    assert "sunny" in asyncio.run(run())
    assert offered == [["add_numbers", "get_weather", "lookup_stock"]]


def test_rerank_object_retriever_sync_path_is_llamaindex_own(tool_index: ObjectIndex) -> None:
    pp = RerankPostprocessor(FakeBackend(by_name), top_n=3)
    retriever = RerankObjectRetriever.from_object_index(tool_index, [pp], similarity_top_k=5)
    names = [t.metadata.name for t in retriever.retrieve("weather")]
    assert names == ["get_weather", "lookup_stock", "search_web"]
    assert [t.metadata.name for t in asyncio.run(retriever.aretrieve("weather"))] == names
    with pytest.raises(ValueError, match="object_index"):
        RerankObjectRetriever.from_object_index(tool_index.index, [pp])  # type: ignore[arg-type]


def test_async_tool_retrieval_does_not_block_the_event_loop(tool_index: ObjectIndex) -> None:
    class Slow(FakeBackend):
        def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
            time.sleep(0.4)  # stands for model work
            return super().score_pairs(pairs)

    pp = RerankPostprocessor(Slow(by_name), top_n=2)

    async def ticks_while(retrieve: Any) -> tuple[int, list[Any]]:
        count = 0
        done = False

        async def ticker() -> None:
            nonlocal count
            while not done:
                count += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        tools = await retrieve("weather")
        done = True
        await task
        return count, tools

    ours = RerankObjectRetriever.from_object_index(tool_index, [pp], similarity_top_k=5)
    ticks, tools = asyncio.run(ticks_while(ours.aretrieve))
    assert [t.metadata.name for t in tools] == ["get_weather", "lookup_stock"]
    assert ticks >= 10  # the loop kept running during the 0.4 s of model work
    # LlamaIndex's own ObjectRetriever.aretrieve calls the sync postprocessor and stalls the loop
    theirs = tool_index.as_retriever(similarity_top_k=5, node_postprocessors=[pp])
    blocked, _ = asyncio.run(ticks_while(theirs.aretrieve))
    assert blocked < ticks

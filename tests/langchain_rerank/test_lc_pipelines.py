"""RerankCompressor end to end: ContextualCompressionRetriever over a real InMemoryVectorStore with real
MiniLM embeddings, DocumentCompressorPipeline, and LCEL chains (retriever | rerank | prompt | fake chat
model) run sync, async and batched. The reranker is a real (tiny, random) cross-encoder; every expected
order comes from the core on the very documents the vector store returned."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from adapter_helpers import QUERIES, QUERY
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_text_splitters import CharacterTextSplitter
from lc_helpers import MiniLMEmbeddings, Recorder, corpus_documents

from langchain_rerank import BAND_KEY, RAW_SCORE_KEY, RELEVANCE_SCORE_KEY, RERANK_EVENT, RerankCompressor
from rerank_core import Reranker
from rerank_core.backends import CrossEncoderBackend

pytestmark = pytest.mark.slow

K = 6
TOP_N = 3


@pytest.fixture(scope="module")
def store() -> InMemoryVectorStore:
    vs = InMemoryVectorStore(MiniLMEmbeddings())
    vs.add_documents(corpus_documents())
    return vs


@pytest.fixture(scope="module")
def core(tiny_ce_path: Path) -> Reranker:
    return Reranker(CrossEncoderBackend(tiny_ce_path, device="cpu"), top_n=TOP_N)


@pytest.fixture(scope="module")
def compressor(core: Reranker) -> RerankCompressor:
    return RerankCompressor(core)


def expected(store: InMemoryVectorStore, core: Reranker, query: str) -> list[Document]:
    """What the pipeline must return: the core's ranking of what the vector store retrieved."""
    retrieved = store.as_retriever(search_kwargs={"k": K}).invoke(query)
    response = core.rerank(query, [d.page_content for d in retrieved])
    return [
        Document(
            id=retrieved[r.index].id,
            page_content=r.text,
            metadata={
                **retrieved[r.index].metadata,
                RELEVANCE_SCORE_KEY: r.relevance_score,
                RAW_SCORE_KEY: r.raw_score,
                **({} if r.band is None else {BAND_KEY: r.band}),  # a probability model: its band
            },
        )
        for r in response
    ]


def assert_same(got: list[Document], want: list[Document]) -> None:
    assert [d.id for d in got] == [d.id for d in want]
    assert [d.page_content for d in got] == [d.page_content for d in want]
    for g, w in zip(got, want, strict=True):
        assert g.metadata[RELEVANCE_SCORE_KEY] == pytest.approx(w.metadata[RELEVANCE_SCORE_KEY], abs=1e-5)
        assert {k: v for k, v in g.metadata.items() if "score" not in k} == {
            k: v for k, v in w.metadata.items() if "score" not in k
        }


def test_embeddings_are_real_minilm(store: InMemoryVectorStore) -> None:
    top = store.similarity_search("When was the Eiffel Tower finished?", k=1)
    assert top[0].metadata["source"] == "eiffel"  # real semantic embeddings, not a hash


def test_contextual_compression_retriever_sync_and_async(
    store: InMemoryVectorStore, core: Reranker, compressor: RerankCompressor
) -> None:
    import asyncio

    retriever = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=store.as_retriever(search_kwargs={"k": K})
    )
    stored = copy.deepcopy(list(store.store.values()))
    for query in QUERIES:
        want = expected(store, core, query)
        assert len(want) == TOP_N
        assert_same(retriever.invoke(query), want)
        assert_same(asyncio.run(retriever.ainvoke(query)), want)
    assert list(store.store.values()) == stored  # the vector store's documents were not touched


def test_tracing_sees_the_rerank_step_inside_the_retriever(
    store: InMemoryVectorStore, compressor: RerankCompressor
) -> None:
    recorder = Recorder()
    retriever = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=store.as_retriever(search_kwargs={"k": K})
    )
    out = retriever.invoke(QUERY, config={"callbacks": [recorder]})
    starts = recorder.named("retriever_start")
    assert "RerankCompressor" in starts and "ContextualCompressionRetriever" in starts
    event = recorder.named(f"custom:{RERANK_EVENT}")[0]
    assert (event["candidates"], event["returned"]) == (K, TOP_N)
    assert event["backend"] == compressor.reranker.backend.fingerprint
    assert recorder.named("retriever_end")[-1] == out


async def test_astream_events_shows_the_rerank_event(
    store: InMemoryVectorStore, compressor: RerankCompressor
) -> None:
    retriever = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=store.as_retriever(search_kwargs={"k": K})
    )
    events = [e async for e in retriever.astream_events(QUERY, version="v2")]
    custom = [e for e in events if e["event"] == "on_custom_event" and e["name"] == RERANK_EVENT]
    assert len(custom) == 1 and custom[0]["data"]["returned"] == TOP_N
    names = [e["name"] for e in events if e["event"] == "on_retriever_start"]
    assert "RerankCompressor" in names


def test_document_compressor_pipeline_splits_then_reranks(
    store: InMemoryVectorStore, core: Reranker, compressor: RerankCompressor
) -> None:
    splitter = CharacterTextSplitter(separator=" and ", chunk_size=40, chunk_overlap=0)
    pipeline = DocumentCompressorPipeline(transformers=[splitter, compressor])
    retrieved = store.as_retriever(search_kwargs={"k": K}).invoke(QUERY)
    chunks = splitter.split_documents(retrieved)
    assert len(chunks) > len(retrieved)
    want = core.rerank(QUERY, [c.page_content for c in chunks])
    got = pipeline.compress_documents(retrieved, QUERY)
    assert [d.page_content for d in got] == [r.text for r in want]
    assert [d.metadata[RELEVANCE_SCORE_KEY] for d in got] == pytest.approx(
        [r.relevance_score for r in want], abs=1e-5
    )


async def test_document_compressor_pipeline_two_stage_async(
    store: InMemoryVectorStore, core: Reranker, tiny_ce_logit_path: Path
) -> None:
    first = RerankCompressor(core, top_n=4)
    second = RerankCompressor(
        CrossEncoderBackend(tiny_ce_logit_path, device="cpu"), top_n=2, normalization="sigmoid"
    )
    pipeline = DocumentCompressorPipeline(transformers=[first, second])
    retrieved = store.as_retriever(search_kwargs={"k": K}).invoke(QUERY)
    got = await pipeline.acompress_documents(retrieved, QUERY)
    kept = first.compress_documents(retrieved, QUERY)
    want = second.compress_documents(kept, QUERY)
    assert [d.id for d in got] == [d.id for d in want] and len(got) == 2
    for d in got:
        assert 0.0 < d.metadata[RELEVANCE_SCORE_KEY] < 1.0  # the last stage's score wins


PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Answer from the context.\n{context}"), ("human", "{question}")]
)


def format_docs(documents: list[Document]) -> str:
    return "\n".join(f"[{d.id}] {d.page_content}" for d in documents)


def contexts(store: InMemoryVectorStore, core: Reranker, queries: list[str]) -> list[str]:
    return [format_docs(expected(store, core, q)) for q in queries]


def test_lcel_chain_with_the_compression_retriever_sync_async_batch(
    store: InMemoryVectorStore, core: Reranker, compressor: RerankCompressor
) -> None:
    import asyncio

    retriever = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=store.as_retriever(search_kwargs={"k": K})
    )
    model = FakeListChatModel(responses=["fake answer"])
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT | model
    recorder = Recorder()
    config = {"callbacks": [recorder]}
    assert chain.invoke(QUERIES[0], config=config).content == "fake answer"
    assert asyncio.run(chain.ainvoke(QUERIES[1], config=config)).content == "fake answer"
    assert [m.content for m in chain.batch(QUERIES, config=config)] == ["fake answer"] * 3
    assert [m.content for m in asyncio.run(chain.abatch(QUERIES, config=config))] == ["fake answer"] * 3
    # every prompt the model saw carries exactly the reranked context of its query
    want = contexts(store, core, QUERIES)
    seen = recorder.prompts
    assert len(seen) == 8
    for query, context in zip(QUERIES, want, strict=True):
        assert any(context in p and query in p for p in seen)
    assert len(recorder.named(f"custom:{RERANK_EVENT}")) == 8


def test_lcel_chain_with_the_compressor_as_a_runnable_step(
    store: InMemoryVectorStore, core: Reranker, compressor: RerankCompressor
) -> None:
    import asyncio

    model = FakeListChatModel(responses=["fake answer"])
    chain = (
        {"documents": store.as_retriever(search_kwargs={"k": K}), "query": RunnablePassthrough()}
        | RunnablePassthrough.assign(documents=compressor.as_runnable())
        | {"context": lambda x: format_docs(x["documents"]), "question": lambda x: x["query"]}
        | PROMPT
        | model
    )
    recorder = Recorder()
    config = {"callbacks": [recorder]}
    chain.invoke(QUERIES[0], config=config)
    asyncio.run(chain.ainvoke(QUERIES[1], config=config))
    chain.batch(QUERIES, config=config)
    asyncio.run(chain.abatch(QUERIES, config=config))
    want = contexts(store, core, QUERIES)
    assert len(recorder.prompts) == 8
    for query, context, times in zip(QUERIES, want, [3, 3, 2], strict=True):  # (a)invoke + (a)batch
        assert sum(context in p and query in p for p in recorder.prompts) == times
    rerank_events = recorder.named(f"custom:{RERANK_EVENT}")
    assert len(rerank_events) == 8 and all(e["returned"] == TOP_N for e in rerank_events)

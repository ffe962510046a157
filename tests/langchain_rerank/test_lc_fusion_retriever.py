"""FusionRetriever (LangChain): a keyword retriever and an InMemoryVectorStore retriever (deterministic
bag-of-words embedding) fused by the core, sync and async, deduplicated, each source's rank and score kept."""

from __future__ import annotations

import asyncio
import copy
import math
import re

import pytest
from fakes import FakeBackend
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore
from lc_helpers import Recorder

from langchain_rerank import FUSION_SOURCES_KEY, FusionRetriever, RerankCompressor
from rerank_core import ConfigurationError, InvalidInputError

VOCAB = ["rerank", "bm25", "dense", "vector", "cat", "bread", "query", "score", "fusion"]
CORPUS = {
    "d1": "rerank the bm25 candidates with a cross encoder",
    "d2": "dense vector retrieval embeds the query",
    "d3": "fusion of bm25 and dense vector scores",
    "d4": "the cat sleeps",
    "d5": "bread rises with yeast",
}
QUERY = "bm25 dense fusion"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class BagOfWords(Embeddings):
    """Deterministic: word counts over a fixed vocabulary (plus a constant, so no vector is zero)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[float(words(t).count(w)) for w in VOCAB] + [0.1] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class KeywordRetriever(BaseRetriever):
    """A tiny BM25 stand-in: ranks by the number of query words in the text, score in metadata['score']."""

    docs: list[Document]
    k: int = 3

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        q = set(words(query))
        scored = [(sum(w in q for w in words(d.page_content)), d) for d in self.docs]
        scored = [(s, d) for s, d in scored if s > 0]
        scored.sort(key=lambda sd: -sd[0])  # stable: ties keep corpus order
        return [
            d.model_copy(update={"metadata": {**d.metadata, "score": float(s)}}) for s, d in scored[: self.k]
        ]


def corpus() -> list[Document]:
    return [Document(page_content=t, id=i, metadata={"source": i}) for i, t in CORPUS.items()]


def keyword() -> KeywordRetriever:
    return KeywordRetriever(docs=corpus())


def vector_store() -> InMemoryVectorStore:
    store = InMemoryVectorStore(BagOfWords())
    store.add_documents(corpus())
    return store


def scored_vector_retriever(k: int = 3) -> RunnableLambda:
    """The vector store's results with their similarity in metadata['score'] (for the weighted methods)."""
    store = vector_store()

    def search(query: str) -> list[Document]:
        return [
            d.model_copy(update={"metadata": {**d.metadata, "score": s}})
            for d, s in store.similarity_search_with_score(query, k=k)
        ]

    return RunnableLambda(search)


def rrf_by_hand(runs: list[list[str]], k: int = 60) -> list[str]:
    total: dict[str, float] = {}
    for run in runs:
        for rank, doc_id in enumerate(run, 1):
            total[doc_id] = total.get(doc_id, 0.0) + 1 / (k + rank)
    return sorted(total, key=lambda d: -total[d])


def test_rrf_of_keyword_and_vector_retrievers() -> None:
    kw, vec = keyword(), vector_store().as_retriever(search_kwargs={"k": 3})
    kw_ids = [d.id for d in kw.invoke(QUERY)]
    vec_ids = [d.id for d in vec.invoke(QUERY)]
    fused = FusionRetriever([kw, vec], names=["bm25", "dense"]).invoke(QUERY)
    ids = [d.id for d in fused]
    assert ids == rrf_by_hand([kw_ids, vec_ids])
    assert len(ids) == len(set(ids)) == len(set(kw_ids) | set(vec_ids))  # each document once
    top = fused[0]
    kw_rank, vec_rank = kw_ids.index(top.id) + 1, vec_ids.index(top.id) + 1
    assert top.metadata["score"] == pytest.approx(1 / (60 + kw_rank) + 1 / (60 + vec_rank))
    sources = top.metadata[FUSION_SOURCES_KEY]
    assert set(sources) == {"bm25", "dense"}
    kw_score = kw.invoke(QUERY)[kw_rank - 1].metadata["score"]
    assert sources["bm25"] == {"rank": kw_rank, "score": kw_score}
    assert sources["dense"]["score"] is None  # as_retriever() gives no score
    assert top.metadata["source"] == top.id  # the original metadata is kept


def test_weighted_minmax_fusion_uses_every_sources_scores() -> None:
    kw, vec = keyword(), scored_vector_retriever()
    fused = FusionRetriever([kw, vec], names=["bm25", "dense"], method="minmax", weights=[1.0, 2.0]).invoke(
        QUERY
    )
    runs = [kw.invoke(QUERY), vec.invoke(QUERY)]

    def minmax(run: list[Document]) -> dict[str, float]:
        s = [d.metadata["score"] for d in run]
        lo, hi = min(s), max(s)
        return {d.id: (d.metadata["score"] - lo) / (hi - lo) for d in run}  # type: ignore[misc]

    a, b = minmax(runs[0]), minmax(runs[1])
    expected = {i: a.get(i, 0.0) + 2.0 * b.get(i, 0.0) for i in set(a) | set(b)}
    assert [(d.id, d.metadata["score"]) for d in fused] == [
        (i, pytest.approx(expected[i])) for i in sorted(expected, key=lambda i: -expected[i])
    ]
    assert all(isinstance(v["score"], float) for d in fused for v in d.metadata[FUSION_SOURCES_KEY].values())


def test_async_matches_sync_and_sources_run_as_child_runs() -> None:
    retriever = FusionRetriever([keyword(), scored_vector_retriever()], names=["bm25", "dense"], top_k=2)
    recorder = Recorder()
    sync = retriever.invoke(QUERY, config={"callbacks": [recorder]})
    asynchronous = asyncio.run(retriever.ainvoke(QUERY))
    assert [d.id for d in sync] == [d.id for d in asynchronous] and len(sync) == 2
    assert [d.metadata for d in sync] == [d.metadata for d in asynchronous]
    started = [name for kind, name in recorder.events if kind == "retriever_start"]
    assert started[0] == "FusionRetriever" and "KeywordRetriever" in started


def test_dedupe_by_id_or_content() -> None:
    a = RunnableLambda(lambda q: [Document(page_content="same text", id="x"), Document(page_content="other")])
    b = RunnableLambda(lambda q: [Document(page_content="same text", id="y"), Document(page_content="other")])
    by_id = FusionRetriever([a, b], names=["a", "b"]).invoke("q")
    # by id: x and y are two documents; "other" has no id, so its text identifies it (once)
    # (RRF: "other" is in both lists, 2 / 62, ahead of x and y, 1 / 61 each)
    assert [(d.id, d.page_content) for d in by_id] == [
        (None, "other"),
        ("x", "same text"),
        ("y", "same text"),
    ]
    by_content = FusionRetriever([a, b], names=["a", "b"], dedupe_by="content").invoke("q")
    assert [(d.id, d.page_content) for d in by_content] == [("x", "same text"), (None, "other")]
    assert by_content[0].metadata[FUSION_SOURCES_KEY] == {
        "a": {"rank": 1, "score": None},
        "b": {"rank": 1, "score": None},
    }


def test_sources_are_not_mutated_and_feed_a_reranker_with_fusion() -> None:
    docs = corpus()
    before = copy.deepcopy(docs)
    static = RunnableLambda(lambda q: docs[:3])
    fused = FusionRetriever([static, keyword()], names=["static", "bm25"]).invoke(QUERY)
    assert docs == before
    texts = {d.page_content: float(i) for i, d in enumerate(corpus())}
    compressor = RerankCompressor(FakeBackend(texts), fusion="minmax:0.5", top_n=2)
    out = compressor.compress_documents(fused, QUERY)  # reads the fused score from metadata['score']
    assert len(out) == 2 and all(o.metadata["first_stage_score"] == o.metadata["score"] for o in out)
    assert not math.isnan(out[0].metadata["relevance_score"])


def test_configuration_and_input_errors() -> None:
    kw = keyword()
    with pytest.raises(ConfigurationError) as info:
        FusionRetriever([kw, kw], method="borda")
    assert info.value.argument == "method"
    with pytest.raises(ConfigurationError) as info:
        FusionRetriever([kw, "bm25"])  # type: ignore[list-item]
    assert info.value.argument == "retrievers[1]"
    with pytest.raises(ConfigurationError) as info:
        FusionRetriever([kw, kw], names=["a", "a"])
    assert info.value.argument == "names"
    with pytest.raises(ConfigurationError) as info:
        FusionRetriever([])
    assert info.value.argument == "retrievers"
    unscored = vector_store().as_retriever()
    with pytest.raises(InvalidInputError, match="method='rrf'") as error:
        FusionRetriever([kw, unscored], names=["bm25", "dense"], method="zscore").invoke(QUERY)
    assert error.value.argument == "dense[0].metadata['score']"
    with pytest.raises(InvalidInputError) as error:
        FusionRetriever([RunnableLambda(lambda q: ["not a document"])], names=["odd"]).invoke(QUERY)
    assert error.value.argument == "odd results[0]"


async def test_inside_a_contextual_compression_retriever_sync_and_async() -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    hybrid = FusionRetriever(
        [keyword(), vector_store().as_retriever(search_kwargs={"k": 3})], names=["bm25", "dense"]
    )
    texts = {t: float(len(t)) for t in CORPUS.values()}
    compressor = RerankCompressor(FakeBackend(texts), fusion="rrf", top_n=2)
    pipeline = ContextualCompressionRetriever(base_retriever=hybrid, base_compressor=compressor)
    sync = pipeline.invoke(QUERY)
    asynchronous = await pipeline.ainvoke(QUERY)
    assert [d.id for d in sync] == [d.id for d in asynchronous] and len(sync) == 2
    assert all(FUSION_SOURCES_KEY in d.metadata and "first_stage_score" in d.metadata for d in sync)

"""FusionRetriever (LlamaIndex): a keyword retriever and a VectorStoreIndex retriever (deterministic
bag-of-words embedding) fused by the core, sync and async, deduplicated by node id or content, each
source's rank and score kept, then reranked."""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

import pytest
from fakes import FakeBackend
from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from llamaindex_rerank import FUSION_SOURCES_KEY, FusionRetriever, RerankPostprocessor
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


def bag(text: str) -> list[float]:
    return [float(words(text).count(w)) for w in VOCAB] + [0.1]


class BagOfWords(BaseEmbedding):
    """Deterministic word counts over a fixed vocabulary (offline, no model)."""

    def _get_query_embedding(self, query: str) -> list[float]:
        return bag(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return bag(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return bag(text)


class KeywordRetriever(BaseRetriever):
    """A tiny BM25 stand-in: the number of query words in the node's text is its score."""

    def __init__(self, nodes: list[TextNode], k: int = 3) -> None:
        self.nodes, self.k = nodes, k
        super().__init__()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        q = set(words(query_bundle.query_str))
        scored = [NodeWithScore(node=n, score=float(sum(w in q for w in words(n.text)))) for n in self.nodes]
        scored = sorted((s for s in scored if s.score), key=lambda s: -(s.score or 0.0))
        return scored[: self.k]


def corpus() -> list[TextNode]:
    return [TextNode(text=t, id_=i, metadata={"source": i}) for i, t in CORPUS.items()]


def retrievers() -> tuple[KeywordRetriever, BaseRetriever]:
    nodes = corpus()
    index = VectorStoreIndex(nodes, embed_model=BagOfWords())
    return KeywordRetriever(nodes), index.as_retriever(similarity_top_k=3)


def test_rrf_of_keyword_and_vector_retrievers_keeps_each_sources_rank_and_score() -> None:
    kw, vec = retrievers()
    kw_hits, vec_hits = kw.retrieve(QUERY), vec.retrieve(QUERY)
    fused = FusionRetriever([kw, vec], names=["bm25", "dense"]).retrieve(QUERY)
    total: dict[str, float] = {}
    for hits in (kw_hits, vec_hits):
        for rank, hit in enumerate(hits, 1):
            total[hit.node.node_id] = total.get(hit.node.node_id, 0.0) + 1 / (60 + rank)
    assert [(n.node.node_id, n.score) for n in fused] == [
        (i, pytest.approx(total[i])) for i in sorted(total, key=lambda i: -total[i])
    ]
    top = fused[0]
    sources = top.node.metadata[FUSION_SOURCES_KEY]
    kw_rank = [h.node.node_id for h in kw_hits].index(top.node.node_id) + 1
    assert sources["bm25"] == {"rank": kw_rank, "score": kw_hits[kw_rank - 1].score}
    assert FUSION_SOURCES_KEY in top.node.excluded_llm_metadata_keys
    assert "fusion_sources" not in top.node.get_content(MetadataMode.LLM)
    assert top.node.metadata["source"] == top.node.node_id


def test_weighted_zscore_and_async_match() -> None:
    kw, vec = retrievers()
    retriever = FusionRetriever(
        [kw, vec], names=["bm25", "dense"], method="zscore", weights=[0.5, 1.0], top_k=2
    )
    sync = retriever.retrieve(QUERY)
    asynchronous = asyncio.run(retriever.aretrieve(QUERY))
    assert len(sync) == 2
    assert [(n.node.node_id, n.score) for n in sync] == [(n.node.node_id, n.score) for n in asynchronous]
    assert all(
        isinstance(s["score"], float) for n in sync for s in n.node.metadata[FUSION_SOURCES_KEY].values()
    )


class Fixed(BaseRetriever):
    def __init__(self, hits: list[NodeWithScore]) -> None:
        self.hits = hits
        super().__init__()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.hits


def test_dedupe_by_id_or_content_and_no_mutation() -> None:
    a = [NodeWithScore(node=TextNode(text="same text", id_="x"), score=1.0)]
    b = [NodeWithScore(node=TextNode(text="same text", id_="y"), score=None)]
    before = copy.deepcopy([h.model_dump() for h in a + b])
    by_id = FusionRetriever([Fixed(a), Fixed(b)], names=["a", "b"]).retrieve("q")
    assert [n.node.node_id for n in by_id] == ["x", "y"]
    by_content = FusionRetriever([Fixed(a), Fixed(b)], names=["a", "b"], dedupe_by="content").retrieve("q")
    assert [n.node.node_id for n in by_content] == ["x"]
    assert by_content[0].node.metadata[FUSION_SOURCES_KEY] == {
        "a": {"rank": 1, "score": 1.0},
        "b": {"rank": 1, "score": None},
    }
    assert [h.model_dump() for h in a + b] == before and "fusion_sources" not in a[0].node.metadata


def test_feeds_a_reranker_that_fuses_with_the_fused_score() -> None:
    kw, vec = retrievers()
    fused = FusionRetriever([kw, vec]).retrieve(QUERY)
    scores = {t: float(len(t)) for t in CORPUS.values()}
    postprocessor = RerankPostprocessor(
        FakeBackend(scores), fusion="rrf", metadata_mode=MetadataMode.NONE, top_n=2
    )
    out = postprocessor.postprocess_nodes(fused, query_str=QUERY)
    assert len(out) == 2
    assert all(o.node.metadata["first_stage_score"] == o.node.metadata["retrieval_score"] for o in out)
    assert FUSION_SOURCES_KEY in out[0].node.metadata


def test_configuration_and_input_errors() -> None:
    kw, vec = retrievers()
    bad: list[tuple[dict[str, Any], str]] = [
        ({"method": "borda"}, "method"),
        ({"weights": [1.0]}, "weights"),
        ({"top_k": 0}, "top_k"),
        ({"names": ["a", "a"]}, "names"),
        ({"dedupe_by": "url"}, "dedupe_by"),
    ]
    for options, argument in bad:
        with pytest.raises(ConfigurationError) as info:
            FusionRetriever([kw, vec], **options)
        assert info.value.argument == argument
    with pytest.raises(ConfigurationError) as info:
        FusionRetriever([kw, "bm25"])  # type: ignore[list-item]
    assert info.value.argument == "retrievers[1]"
    unscored = Fixed([NodeWithScore(node=TextNode(text="t", id_="t"), score=None)])
    with pytest.raises(InvalidInputError, match="method='rrf'") as error:
        FusionRetriever([kw, unscored], names=["bm25", "odd"], method="minmax").retrieve(QUERY)
    assert error.value.argument == "odd[0].score"
    assert FusionRetriever([kw, unscored]).retrieve(QUERY)  # rrf needs no score


async def test_in_a_query_engine_with_the_reranker() -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    kw, vec = retrievers()
    scores = {t: float(len(t)) for t in CORPUS.values()}
    rerank = RerankPostprocessor(
        FakeBackend(scores), fusion="minmax:0.4", metadata_mode=MetadataMode.NONE, top_n=2
    )
    engine = RetrieverQueryEngine.from_args(
        FusionRetriever([kw, vec], top_k=4), llm=MockLLM(), node_postprocessors=[rerank]
    )
    response = engine.query(QUERY)
    assert len(response.source_nodes) == 2
    aresponse = await engine.aquery(QUERY)
    assert [n.node.node_id for n in aresponse.source_nodes] == [n.node.node_id for n in response.source_nodes]

"""The same query over the same candidates gives the same order and scores through the core, the
LangChain adapter and the LlamaIndex adapter; and each adapter installs without the other framework."""

from __future__ import annotations

import asyncio
import re
from importlib import metadata
from pathlib import Path

import pytest
from langchain_core.documents import Document
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from langchain_rerank import RerankCompressor
from llamaindex_rerank import RerankPostprocessor
from rerank_core import Reranker
from rerank_core.backends import CrossEncoderBackend

QUERY = "which passage explains reranking?"
TEXTS = [
    "A reranker scores each query and passage pair jointly.",
    "Cats sleep most of the day.",
    "BM25 is a bag-of-words ranking function.",
    "Reranking reorders first-stage candidates by relevance.",
    "The Eiffel Tower is in Paris. " * 40,  # long: split into windows by the core
    "Dense retrievers embed queries and passages separately.",
]


def via_core(reranker: Reranker, mode: str) -> list[tuple[str, float, float]]:
    response = (
        reranker.rerank(QUERY, TEXTS) if mode == "sync" else asyncio.run(reranker.arerank(QUERY, TEXTS))
    )
    return [(r.text, r.relevance_score, r.raw_score) for r in response]


def via_langchain(reranker: Reranker, mode: str) -> list[tuple[str, float, float]]:
    compressor = RerankCompressor(reranker)
    docs = [Document(page_content=t) for t in TEXTS]
    out = (
        compressor.compress_documents(docs, QUERY)
        if mode == "sync"
        else asyncio.run(compressor.acompress_documents(docs, QUERY))
    )
    return [(d.page_content, d.metadata["relevance_score"], d.metadata["rerank_raw_score"]) for d in out]


def via_llamaindex(reranker: Reranker, mode: str) -> list[tuple[str, float, float]]:
    postprocessor = RerankPostprocessor(reranker, metadata_mode=MetadataMode.NONE)
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.5) for t in TEXTS]
    bundle = QueryBundle(QUERY)
    out = (
        postprocessor.postprocess_nodes(nodes, query_bundle=bundle)
        if mode == "sync"
        else asyncio.run(postprocessor.apostprocess_nodes(nodes, query_bundle=bundle))
    )
    return [(n.node.get_content(), n.score, n.node.metadata["rerank_raw_score"]) for n in out]


@pytest.fixture(scope="module")
def reranker(tiny_ce_logit_path: Path) -> Reranker:
    backend = CrossEncoderBackend(tiny_ce_logit_path, device="cpu", max_length=48)
    return Reranker(backend, top_n=4, normalization="sigmoid")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    "path", [via_core, via_langchain, via_llamaindex], ids=["core", "langchain", "llamaindex"]
)
def test_same_order_and_scores_through_every_path(reranker: Reranker, path, mode: str) -> None:  # type: ignore[no-untyped-def]
    want = via_core(reranker, "sync")
    got = path(reranker, mode)
    assert len(got) == 4
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1:] for g in got] == [pytest.approx(w[1:], abs=1e-6) for w in want]
    assert all(0.0 < g[1] < 1.0 for g in got) and any(g[1] != g[2] for g in got)


def _requirements(dist: str) -> list[str]:
    names = []
    for req in metadata.requires(dist) or []:
        if "extra ==" in req:
            continue
        names.append(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def _closure(dist: str) -> set[str]:
    """Every distribution installing ``dist`` pulls in (base requirements, transitively)."""
    seen: set[str] = set()
    todo = [dist]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(_requirements(name))
        except metadata.PackageNotFoundError:
            continue  # a marker-excluded requirement (other platform or Python)
    return seen


def test_installing_one_adapter_never_pulls_the_other_framework() -> None:
    lc, li = _closure("langchain-rerank"), _closure("llamaindex-rerank")
    assert "langchain-core" in lc and "rerank-core" in lc
    assert not [n for n in lc if n.startswith(("llama-index", "llamaindex"))]
    assert "llama-index-core" in li and "rerank-core" in li
    assert not [n for n in li if n.startswith("langchain")]
    # the agent middleware's `langchain` is optional: not a requirement of langchain-rerank
    assert "langchain" not in lc and "langgraph" not in lc

"""RerankPostprocessor over the remote back ends (Jina/vLLM shape, Cohere SDK) against the loopback server."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llamaindex_rerank import RerankPostprocessor
from rerank_core.errors import FailOpenWarning
from rerank_core.integrations import NOT_RERANKED_KEY
from rerank_core.remote import RetryPolicy
from rerank_core.testing import RerankServer, expected_order

QUERY = "hybrid retrieval with rerankers"
TEXTS = [
    f"note {i}: {'hybrid retrieval' if i % 2 else 'cooking'} {'rerankers' * (i % 3 == 0)}" for i in range(12)
]
FAST = RetryPolicy(max_attempts=2, initial_delay=0.001)


@pytest.fixture(scope="module")
def server():
    with RerankServer(api_key="k") as srv:
        yield srv


def nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t, id_=str(i)), score=0.5) for i, t in enumerate(TEXTS)]


@pytest.mark.parametrize("how", ["jina", "cohere"])
def test_postprocessor_over_a_remote_back_end(how: str, server: RerankServer) -> None:
    if how == "cohere":
        post = RerankPostprocessor.from_cohere("m", api_key="k", base_url=server.url, top_n=5, retry=FAST)
    else:
        post = RerankPostprocessor.from_rerank_api(
            server.url, protocol="jina", api_key="k", top_n=5, retry=FAST
        )
    out = post.postprocess_nodes(nodes(), QueryBundle(QUERY))
    assert [int(n.node.node_id) for n in out] == expected_order(QUERY, TEXTS)[:5]
    again = asyncio.run(post.apostprocess_nodes(nodes(), QueryBundle(QUERY)))
    assert [n.node.node_id for n in again] == [n.node.node_id for n in out]


def test_postprocessor_fails_open(server: RerankServer) -> None:
    post = RerankPostprocessor.from_rerank_api(
        server.url, protocol="tei", api_key="k", top_n=2, retry=FAST, fail_open=True
    )
    server.inject("drop", "drop")
    with pytest.warns(FailOpenWarning):
        out = post.postprocess_nodes(nodes(), QueryBundle(QUERY))
    assert [n.node.node_id for n in out] == ["0", "1"]
    assert all(n.node.metadata[NOT_RERANKED_KEY] is True for n in out)

"""RerankCompressor over the remote back ends (Cohere SDK, TEI) against the loopback rerank server."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document

from langchain_rerank import RELEVANCE_SCORE_KEY, RerankCompressor
from rerank_core.errors import FailOpenWarning, RetryableBackendError
from rerank_core.integrations import NOT_RERANKED_KEY
from rerank_core.remote import RetryPolicy
from rerank_core.testing import RerankServer, expected_order, relevance

QUERY = "hybrid retrieval with rerankers"
TEXTS = [
    f"note {i}: {'hybrid retrieval' if i % 2 else 'cooking'} {'rerankers' * (i % 3 == 0)}" for i in range(12)
]
FAST = RetryPolicy(max_attempts=2, initial_delay=0.001)


@pytest.fixture(scope="module")
def server():
    with RerankServer(api_key="k") as srv:
        yield srv


def documents() -> list[Document]:
    return [Document(page_content=t, metadata={"n": i}, id=str(i)) for i, t in enumerate(TEXTS)]


@pytest.mark.parametrize("how", ["cohere", "tei"])
def test_compressor_over_a_remote_back_end(how: str, server: RerankServer) -> None:
    if how == "cohere":
        compressor = RerankCompressor.from_cohere("m", api_key="k", base_url=server.url, top_n=4, retry=FAST)
    else:
        compressor = RerankCompressor.from_rerank_api(
            server.url, protocol="tei", api_key="k", top_n=4, retry=FAST
        )
    docs = documents()
    out = compressor.compress_documents(docs, QUERY)
    assert [int(d.id) for d in out] == expected_order(QUERY, TEXTS)[:4]
    for d in out:
        assert d.metadata[RELEVANCE_SCORE_KEY] == pytest.approx(relevance(QUERY, d.page_content))
    assert [int(d.id) for d in asyncio.run(compressor.acompress_documents(docs, QUERY))] == [
        int(d.id) for d in out
    ]
    assert [d.metadata for d in docs] == [{"n": i} for i in range(12)]  # inputs untouched


def test_compressor_fails_open_with_flagged_documents(server: RerankServer) -> None:
    compressor = RerankCompressor.from_cohere(
        "m", api_key="k", base_url=server.url, top_n=3, retry=FAST, fail_open=True
    )
    server.inject("http_503", "http_503")
    with pytest.warns(FailOpenWarning):
        out = compressor.compress_documents(documents(), QUERY)
    assert [d.id for d in out] == ["0", "1", "2"]
    assert all(d.metadata[NOT_RERANKED_KEY] is True for d in out)
    strict = RerankCompressor.from_cohere("m", api_key="k", base_url=server.url, retry=FAST)
    server.inject("http_503", "http_503")
    with pytest.raises(RetryableBackendError):
        strict.compress_documents(documents(), QUERY)

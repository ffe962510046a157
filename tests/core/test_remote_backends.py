"""Cohere (official SDK), TEI and Jina back ends against a real HTTP server on loopback.

No client is monkeypatched: the SDK and httpx talk to :class:`rerank_core.testing.RerankServer` over
real sockets, and the server injects the faults (429 with Retry-After, 5xx, slow answers past the
timeout, dropped connections, malformed JSON, bad indices, non-finite scores, 4xx).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from rerank_core import Reranker
from rerank_core.backends.cohere import CohereBackend
from rerank_core.backends.rerank_api import RerankAPIBackend
from rerank_core.errors import (
    ConfigurationError,
    FailOpenWarning,
    InvalidResponseError,
    NonRetryableBackendError,
    RetryableBackendError,
)
from rerank_core.remote import RemoteBackend, RetryPolicy
from rerank_core.testing import Fault, RerankServer, expected_order, relevance

KEY = "sk-test-7f3a9c-SECRET"
KINDS = ("cohere", "tei", "jina")
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05)
QUERY = "sparse dense hybrid retrieval"
DOCS = [
    f"document {i} on {'dense' if i % 3 else 'sparse'} retrieval and {'hybrid' * (i % 2)} fusion"
    for i in range(40)
]


@pytest.fixture(scope="module")
def server() -> Iterator[RerankServer]:
    with RerankServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean(server: RerankServer) -> Iterator[None]:
    server.reset()
    server.max_documents = None
    server.latency = 0.0
    yield
    server.reset()


def make(kind: str, server: RerankServer, **options: Any) -> RemoteBackend:
    options.setdefault("retry", FAST)
    options.setdefault("timeout", 5.0)
    options.setdefault("api_key", KEY)
    if kind == "cohere":
        return CohereBackend("rerank-test", base_url=server.url, **options)
    return RerankAPIBackend(server.url, protocol=kind, model="rerank-test", **options)


# -- correct rankings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_ranks_exactly_like_the_server_sync_and_async(kind: str, server: RerankServer) -> None:
    backend = make(kind, server)
    reranker = Reranker(backend)
    expected = expected_order(QUERY, DOCS)
    response = reranker.rerank(QUERY, DOCS)
    assert response.indices == expected
    assert response.score_kind == "probability"
    for r in response:
        assert r.relevance_score == pytest.approx(relevance(QUERY, DOCS[r.index]), abs=1e-12)
        assert r.text == DOCS[r.index] and r.reranked
    assert asyncio.run(reranker.arerank(QUERY, DOCS)).indices == expected
    assert server.counts[f"requests:{kind}"] == (4 if kind == "tei" else 2)  # TEI: 32 documents a request
    backend.close()


@pytest.mark.parametrize("kind", KINDS)
def test_long_lists_are_split_under_the_server_limit_and_merged(kind: str, server: RerankServer) -> None:
    server.max_documents = 7
    backend = make(kind, server, max_documents_per_request=7)
    reranker = Reranker(backend, top_n=5)
    response = reranker.rerank(QUERY, DOCS)
    assert response.indices == expected_order(QUERY, DOCS)[:5]
    assert sorted(server.batch_sizes) == [5] + [7] * 5  # 40 documents: 6 requests, none over the limit
    asyncio.run(reranker.arerank(QUERY, DOCS))
    assert max(server.batch_sizes) == 7 and len(server.batch_sizes) == 12


def test_a_request_over_the_server_limit_is_a_clear_non_retryable_error(server: RerankServer) -> None:
    server.max_documents = 32  # TEI's default --max-client-batch-size
    backend = make("tei", server, max_documents_per_request=64)
    with pytest.raises(NonRetryableBackendError, match=r"413.*max_documents_per_request") as info:
        Reranker(backend).rerank(QUERY, DOCS)
    assert info.value.status_code == 413 and server.counts["requests"] == 1
    # The default for TEI is 32 per request, which the server accepts.
    assert Reranker(make("tei", server)).rerank(QUERY, DOCS).indices == expected_order(QUERY, DOCS)


@pytest.mark.parametrize("kind", KINDS)
def test_rerank_many_sends_one_request_per_query(kind: str, server: RerankServer) -> None:
    queries = ["dense retrieval", "sparse fusion", "hybrid"]
    lists = [DOCS[:10], DOCS[10:25], DOCS[25:]]
    responses = Reranker(make(kind, server)).rerank_many(queries, lists)
    assert [r.indices for r in responses] == [
        expected_order(q, d) for q, d in zip(queries, lists, strict=True)
    ]
    assert sorted(server.batch_sizes) == [10, 15, 15]


# -- connections, concurrency, rate -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_connections_are_reused(kind: str, server: RerankServer) -> None:
    backend = make(kind, server)
    reranker = Reranker(backend)
    for _ in range(10):
        reranker.rerank(QUERY, DOCS[:5])
    assert server.counts["connections"] == 1

    async def many() -> None:
        for _ in range(10):
            await reranker.arerank(QUERY, DOCS[:5])
        await backend.aclose()

    asyncio.run(many())
    assert server.counts["connections"] == 2 and server.counts["requests"] == 20
    backend.close()


@pytest.mark.parametrize("kind", KINDS)
def test_requests_in_flight_are_capped(kind: str, server: RerankServer) -> None:
    server.latency = 0.03
    backend = make(kind, server, max_concurrency=3, max_documents_per_request=5)
    reranker = Reranker(backend)
    threads = [threading.Thread(target=reranker.rerank, args=(QUERY, DOCS[:20])) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.counts["requests"] == 24 and server.max_in_flight == 3

    server.reset()

    async def gather() -> None:
        await asyncio.gather(*(reranker.arerank(QUERY, DOCS[:20]) for _ in range(6)))

    asyncio.run(gather())
    assert server.counts["requests"] == 24 and server.max_in_flight == 3


def test_requests_per_minute_is_honoured(server: RerankServer) -> None:
    reranker = Reranker(make("tei", server, requests_per_minute=600))  # one every 0.1 s
    start = time.perf_counter()
    for _ in range(4):
        reranker.rerank(QUERY, DOCS[:3])
    assert time.perf_counter() - start >= 0.29


# -- the fault matrix ---------------------------------------------------------------------------------

RECOVERABLE = [
    Fault("http_429"),
    Fault("http_500"),
    Fault("http_503"),
    Fault("slow", delay=1.0),
    Fault("drop"),
    Fault("malformed"),
    Fault("out_of_range"),
    Fault("duplicate"),
    Fault("missing"),
    Fault("non_finite"),
]


@pytest.mark.parametrize("fault", RECOVERABLE, ids=lambda f: f.kind)
@pytest.mark.parametrize("kind", KINDS)
def test_a_transient_fault_is_retried_and_the_ranking_is_exact(
    kind: str, fault: Fault, server: RerankServer
) -> None:
    backend = make(kind, server, timeout=0.3)
    server.inject(fault)
    response = Reranker(backend).rerank(QUERY, DOCS[:12])
    assert response.indices == expected_order(QUERY, DOCS[:12])
    stats = backend.stats.snapshot()
    assert stats["retries"] == 1 and stats["requests"] == 2 and "failures" not in stats
    assert server.counts[f"fault:{fault.kind}"] == 1


@pytest.mark.parametrize("fault", RECOVERABLE[:6], ids=lambda f: f.kind)
@pytest.mark.parametrize("kind", ["cohere", "tei"])
def test_a_transient_fault_is_retried_async(kind: str, fault: Fault, server: RerankServer) -> None:
    backend = make(kind, server, timeout=0.3)
    server.inject(fault)
    response = asyncio.run(Reranker(backend).arerank(QUERY, DOCS[:12]))
    assert response.indices == expected_order(QUERY, DOCS[:12])
    assert backend.stats.snapshot()["retries"] == 1


@pytest.mark.parametrize(
    ("fault", "status"), [("http_400", 400), ("http_401", 401), ("http_413", 413)], ids=["400", "401", "413"]
)
@pytest.mark.parametrize("kind", KINDS)
def test_a_client_error_is_not_retried(kind: str, fault: str, status: int, server: RerankServer) -> None:
    backend = make(kind, server)
    server.inject(fault)
    with pytest.raises(NonRetryableBackendError) as info:
        Reranker(backend).rerank(QUERY, DOCS[:5])
    assert info.value.status_code == status and info.value.attempts == 1
    assert server.counts["requests"] == 1


@pytest.mark.parametrize("kind", ["cohere", "tei"])
def test_retry_after_is_honoured(kind: str, server: RerankServer) -> None:
    backend = make(kind, server, retry=RetryPolicy(initial_delay=0.001, max_delay=0.002))
    server.inject(Fault("http_429", retry_after=0.4))
    start = time.perf_counter()
    assert Reranker(backend).rerank(QUERY, DOCS[:5]).indices == expected_order(QUERY, DOCS[:5])
    assert time.perf_counter() - start >= 0.4


@pytest.mark.parametrize("kind", KINDS)
def test_exhausted_retries_raise_or_fail_open(kind: str, server: RerankServer) -> None:
    backend = make(kind, server, retry=RetryPolicy(max_attempts=3, initial_delay=0.001))
    server.inject("http_503", "http_503", "http_503")
    with pytest.raises(RetryableBackendError, match="503") as info:
        Reranker(backend).rerank(QUERY, DOCS[:5])
    assert info.value.attempts == 3 and info.value.status_code == 503
    server.inject("drop", "http_500", "http_429")
    with pytest.warns(FailOpenWarning):
        response = Reranker(backend, fail_open=True).rerank(QUERY, DOCS[:5])
    assert response.indices == [0, 1, 2, 3, 4] and not any(r.reranked for r in response)
    assert "RetryableBackendError" in (response.error or "")
    assert backend.stats.snapshot()["failures"] == 2


def test_invalid_answers_are_not_retried_when_the_policy_says_so(server: RerankServer) -> None:
    backend = make("jina", server, retry=RetryPolicy(retry_invalid_responses=False))
    server.inject("duplicate")
    with pytest.raises(InvalidResponseError, match="more than once"):
        Reranker(backend).rerank(QUERY, DOCS[:5])
    assert server.counts["requests"] == 1


# -- the API key ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_api_key_never_shows(kind: str, server: RerankServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, the SDK's
    backend = make(kind, server)
    server.inject("http_429")  # a retried failure is logged
    Reranker(backend).rerank(QUERY, DOCS[:3])
    assert "retrying" in caplog.text
    wrong = "sk-wrong-key-" + "x" * 20
    bad = make(kind, server, api_key=wrong)
    with pytest.raises(NonRetryableBackendError, match=r"401.*check the API key") as info:
        Reranker(bad).rerank(QUERY, DOCS[:3])
    shown = [
        repr(backend),
        backend.fingerprint,
        repr(Reranker(backend)),
        repr(bad),
        "".join(traceback.format_exception(info.value)),
        caplog.text,
    ]
    for text in shown:
        assert KEY not in text and wrong not in text


def test_cohere_key_from_the_environment(server: RerankServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CO_API_KEY", raising=False)
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    backend = CohereBackend("rerank-test", base_url=server.url, retry=FAST)
    assert Reranker(backend).rerank(QUERY, DOCS[:4]).indices == expected_order(QUERY, DOCS[:4])
    monkeypatch.delenv("COHERE_API_KEY")
    with pytest.raises(ConfigurationError, match=r"api_key.*COHERE_API_KEY"):
        CohereBackend("rerank-v3.5")  # Cohere's own API needs a key
    CohereBackend("served-model", base_url=server.url)  # a self-hosted server may need none


# -- scores and configuration -----------------------------------------------------------------------------


def test_probability_scores_are_not_squashed_again(server: RerankServer) -> None:
    for backend in (make("cohere", server), make("jina", server), make("tei", server)):
        with pytest.raises(ConfigurationError, match=r"normalization.*already calibrated"):
            Reranker(backend, normalization="sigmoid")
        Reranker(backend, normalization="minmax")  # relative rescaling stays an explicit choice


def test_tei_raw_scores_are_logits(server: RerankServer) -> None:
    backend = make("tei", server, raw_scores=True)
    assert backend.score_kind == "logit"
    response = Reranker(backend, normalization="sigmoid").rerank(QUERY, DOCS[:6])
    assert response.indices == expected_order(QUERY, DOCS[:6])
    for r in response:
        assert r.relevance_score == pytest.approx(relevance(QUERY, DOCS[r.index]), abs=1e-9)


@pytest.mark.parametrize(
    ("factory", "argument"),
    [
        (lambda: CohereBackend("m", api_key="k", base_url="ftp://x"), "base_url"),
        (lambda: CohereBackend("", api_key="k"), "model"),
        (lambda: CohereBackend("m", api_key="k", max_tokens_per_doc=0), "max_tokens_per_doc"),
        (lambda: CohereBackend("m", api_key="k", max_documents_per_request=0), "max_documents_per_request"),
        (lambda: CohereBackend("m", api_key="k", max_concurrency=0), "max_concurrency"),
        (lambda: CohereBackend("m", api_key="k", timeout=-1), "timeout"),
        (lambda: CohereBackend("m", api_key="k", retry="twice"), "retry"),  # type: ignore[arg-type]
        (lambda: CohereBackend("m", api_key=123), "api_key"),  # type: ignore[arg-type]
        (lambda: RerankAPIBackend("http://x", protocol="grpc"), "protocol"),
        (lambda: RerankAPIBackend("x"), "base_url"),
        (lambda: RerankAPIBackend("http://x", path="rerank"), "path"),
        (lambda: RerankAPIBackend("http://x", requests_per_minute=0), "requests_per_minute"),
        (lambda: RerankAPIBackend("http://x", score_kind="rank"), "score_kind"),  # type: ignore[arg-type]
        (lambda: RerankAPIBackend("http://x", raw_scores="yes"), "raw_scores"),  # type: ignore[arg-type]
    ],
)
def test_bad_configuration_names_the_argument(factory: Any, argument: str) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        factory()


def test_an_unreachable_server_is_a_retryable_error_after_the_retries() -> None:
    backend = RerankAPIBackend("http://127.0.0.1:9", retry=RetryPolicy(max_attempts=2, initial_delay=0.001))
    with pytest.raises(RetryableBackendError, match="connection failed") as info:
        Reranker(backend).rerank(QUERY, DOCS[:3])
    assert info.value.attempts == 2

"""Instructions on the remote back ends (written into the query) and Voyage AI as a remote protocol.

Against :class:`rerank_core.testing.RerankServer` over real sockets, as the other remote tests: the server
records every query it receives, so the instruction is checked on the wire, and it answers Voyage's shape
(``{"object": "list", "data": [...], "usage": {"total_tokens"}}``) to a Voyage body at ``/v1/rerank``.
"""

from __future__ import annotations

import asyncio
import pickle
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
    InvalidInputError,
    InvalidResponseError,
    NonRetryableBackendError,
    RetryableBackendError,
)
from rerank_core.remote import RemoteBackend, RetryPolicy
from rerank_core.remote.base import INSTRUCTION_FORMAT, instructed_query
from rerank_core.testing import Fault, RerankServer, expected_order, relevance

KEY = "vk-test-91bd2e-SECRET"
KINDS = ("cohere", "tei", "jina", "voyage")
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05)
ONE_TRY = RetryPolicy(max_attempts=1)
QUERY = "sparse dense hybrid retrieval"
INSTRUCTION = "Prefer documents about hybrid fusion"
DOCS = [
    f"document {i} on {'dense' if i % 3 else 'sparse'} retrieval and {'hybrid' * (i % 2)} fusion"
    for i in range(40)
]


@pytest.fixture(scope="module")
def server() -> Iterator[RerankServer]:
    with RerankServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean(server: RerankServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
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


def voyage(server: RerankServer, **options: Any) -> RemoteBackend:
    return make("voyage", server, **options)


# -- Voyage: the protocol --------------------------------------------------------------------------------


def test_voyage_ranks_exactly_like_the_server_sync_and_async(server: RerankServer) -> None:
    backend = voyage(server)
    reranker = Reranker(backend)
    expected = expected_order(QUERY, DOCS)
    response = reranker.rerank(QUERY, DOCS)
    assert response.indices == expected
    assert response.score_kind == "probability" and backend.score_kind == "probability"
    for r in response:
        assert r.relevance_score == pytest.approx(relevance(QUERY, DOCS[r.index]), abs=1e-12)
        assert r.reranked
    words = 4 + sum(len(d.split()) for d in DOCS)  # the fake server's total_tokens: words
    assert response.usage["api_total_tokens"] == words
    aresponse = asyncio.run(reranker.arerank(QUERY, DOCS))
    assert aresponse.indices == expected and aresponse.usage["api_total_tokens"] == words
    assert server.counts["requests:voyage"] == 2  # 40 documents: one request each (1,000 per request)
    assert server.queries == [QUERY, QUERY]
    backend.close()


def test_voyage_request_body_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOYAGE_API_KEY", KEY)
    backend = RerankAPIBackend(protocol="voyage")
    assert backend.base_url == "https://api.voyageai.com" and backend.path == "/v1/rerank"
    assert backend.model == "rerank-2.5" and backend.max_documents_per_request == 1000
    assert backend.fingerprint == "voyage:https://api.voyageai.com/v1/rerank:model=rerank-2.5"
    assert backend._body("q", ["a", "b"]) == {
        "query": "q",
        "documents": ["a", "b"],
        "model": "rerank-2.5",
        "top_k": 2,  # every score is needed
        "return_documents": False,
        "truncation": True,
    }
    strict = RerankAPIBackend(protocol="voyage", model="rerank-2.5-lite", truncate=False)
    assert strict._body("q", ["a"])["truncation"] is False and strict._body("q", ["a"])["model"] == (
        "rerank-2.5-lite"
    )


def test_voyage_long_lists_are_split_and_usage_is_summed(server: RerankServer) -> None:
    server.max_documents = 7
    backend = voyage(server, max_documents_per_request=7)
    response = Reranker(backend, top_n=5).rerank(QUERY, DOCS)
    assert response.indices == expected_order(QUERY, DOCS)[:5]
    assert sorted(server.batch_sizes) == [5] + [7] * 5
    assert response.usage["api_total_tokens"] == 6 * 4 + sum(len(d.split()) for d in DOCS)


def test_voyage_rerank_many_one_request_per_query(server: RerankServer) -> None:
    queries = ["dense retrieval", "sparse fusion", "hybrid"]
    lists = [DOCS[:10], DOCS[10:25], DOCS[25:]]
    responses = Reranker(voyage(server)).rerank_many(queries, lists)
    assert [r.indices for r in responses] == [
        expected_order(q, d) for q, d in zip(queries, lists, strict=True)
    ]
    assert sorted(server.batch_sizes) == [10, 15, 15]
    assert [r.usage["api_total_tokens"] for r in responses] == [
        len(q.split()) + sum(len(d.split()) for d in ds) for q, ds in zip(queries, lists, strict=True)
    ]


# -- Voyage: bad answers and failures ------------------------------------------------------------------------


def test_voyage_answer_without_data_is_an_invalid_response(server: RerankServer) -> None:
    # The Cohere route answers {"id", "results", "meta"}: a Voyage client must refuse it (no "data").
    backend = voyage(server, path="/v2/rerank", retry=ONE_TRY)
    with pytest.raises(InvalidResponseError, match="'data'"):
        Reranker(backend).rerank(QUERY, DOCS[:5])
    assert backend.stats.snapshot()["error:invalid_response"] == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [("out_of_range", "out of range"), ("duplicate", "more than once"), ("non_finite", "finite")],
)
def test_voyage_bad_indices_and_scores_are_invalid_responses(
    fault: str, message: str, server: RerankServer
) -> None:
    backend = voyage(server, retry=ONE_TRY)
    server.inject(fault)
    with pytest.raises(InvalidResponseError, match=message):
        Reranker(backend).rerank(QUERY, DOCS[:6])
    server.inject(fault)  # with retries (the default policy retries invalid answers): exact after one retry
    response = Reranker(voyage(server)).rerank(QUERY, DOCS[:6])
    assert response.indices == expected_order(QUERY, DOCS[:6])


@pytest.mark.parametrize("fault", [Fault("http_429"), Fault("http_500"), Fault("http_503"), Fault("drop")])
def test_voyage_transient_faults_are_retried_sync_and_async(fault: Fault, server: RerankServer) -> None:
    backend = voyage(server, timeout=0.5)
    server.inject(fault)
    assert Reranker(backend).rerank(QUERY, DOCS[:12]).indices == expected_order(QUERY, DOCS[:12])
    server.inject(fault)
    response = asyncio.run(Reranker(backend).arerank(QUERY, DOCS[:12]))
    assert response.indices == expected_order(QUERY, DOCS[:12])
    assert backend.stats.snapshot()["retries"] == 2


@pytest.mark.parametrize(("fault", "status"), [("http_400", 400), ("http_401", 401), ("http_413", 413)])
def test_voyage_client_errors_are_not_retried(fault: str, status: int, server: RerankServer) -> None:
    server.inject(fault)
    with pytest.raises(NonRetryableBackendError) as info:
        Reranker(voyage(server)).rerank(QUERY, DOCS[:5])
    assert info.value.status_code == status and info.value.attempts == 1
    assert server.counts["requests"] == 1


def test_voyage_retry_after_is_honoured_and_exhaustion_raises(server: RerankServer) -> None:
    backend = voyage(server, retry=RetryPolicy(initial_delay=0.001, max_delay=0.002))
    server.inject(Fault("http_429", retry_after=0.4))
    start = time.perf_counter()
    assert Reranker(backend).rerank(QUERY, DOCS[:5]).indices == expected_order(QUERY, DOCS[:5])
    assert time.perf_counter() - start >= 0.4
    server.inject("http_503", "http_503", "http_503")
    with pytest.raises(RetryableBackendError, match="503") as info:
        Reranker(voyage(server, retry=RetryPolicy(max_attempts=3, initial_delay=0.001))).rerank(
            QUERY, DOCS[:5]
        )
    assert info.value.attempts == 3


# -- Voyage: the API key -------------------------------------------------------------------------------------


def test_voyage_key_from_the_environment_never_in_fingerprint_or_pickle(
    server: RerankServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOYAGE_API_KEY", KEY)
    backend = RerankAPIBackend(server.url, protocol="voyage", model="rerank-test", retry=FAST)
    assert Reranker(backend).rerank(QUERY, DOCS[:4]).indices == expected_order(QUERY, DOCS[:4])
    given = RerankAPIBackend(server.url, protocol="voyage", api_key=KEY)
    for b in (backend, given):
        for text in (repr(b), b.fingerprint, repr(Reranker(b)), str(b.init_arguments(secrets=False))):
            assert KEY not in text
        assert KEY.encode() not in pickle.dumps(b)
    copy = pickle.loads(pickle.dumps(given))  # rebuilt without the key: it reads VOYAGE_API_KEY again
    assert Reranker(copy).rerank(QUERY, DOCS[:4]).indices == expected_order(QUERY, DOCS[:4])
    wrong = "vk-wrong-" + "x" * 20
    with pytest.raises(NonRetryableBackendError, match=r"401.*check the API key") as info:
        Reranker(RerankAPIBackend(server.url, protocol="voyage", api_key=wrong)).rerank(QUERY, DOCS[:3])
    assert wrong not in "".join(traceback.format_exception(info.value))
    monkeypatch.delenv("VOYAGE_API_KEY")
    with pytest.raises(ConfigurationError, match=r"api_key.*VOYAGE_API_KEY"):
        RerankAPIBackend(protocol="voyage")  # Voyage's own API needs a key
    RerankAPIBackend(server.url, protocol="voyage")  # a Voyage-compatible server may need none


def test_unknown_protocol_lists_voyage() -> None:
    with pytest.raises(ConfigurationError, match=r"protocol.*voyage"):
        RerankAPIBackend("http://x", protocol="voyager")
    with pytest.raises(ConfigurationError, match="base_url"):
        RerankAPIBackend(protocol="jina")  # only Voyage has a default server


# -- instructions: on the wire, per protocol ---------------------------------------------------------------


def test_the_documented_instruction_format() -> None:
    assert INSTRUCTION_FORMAT == "{instruction}\n{query}"
    assert instructed_query("q", None) == "q"
    assert instructed_query("q", "Be strict") == "Be strict\nq"


@pytest.mark.parametrize("kind", KINDS)
def test_the_instruction_reaches_the_wire_query_sync_and_async(kind: str, server: RerankServer) -> None:
    backend = make(kind, server)
    assert backend.instruction_support is not None
    reranker = Reranker(backend, instruction=INSTRUCTION)
    sent = f"{INSTRUCTION}\n{QUERY}"
    docs = DOCS[:12]
    response = reranker.rerank(QUERY, docs)
    assert server.queries == [sent]
    assert response.indices == expected_order(sent, docs)  # the server ranked under the sent query
    assert response.query == QUERY  # the caller's query is reported unchanged
    assert asyncio.run(reranker.arerank(QUERY, docs)).indices == expected_order(sent, docs)
    assert server.queries == [sent, sent]
    assert backend.fingerprint == make(kind, server).fingerprint  # the Reranker keys the instruction


@pytest.mark.parametrize("kind", KINDS)
def test_a_per_call_instruction_and_its_override(kind: str, server: RerankServer) -> None:
    backend = make(kind, server)
    Reranker(backend).rerank(QUERY, DOCS[:5], instruction="Per call")
    Reranker(backend, instruction="Option").rerank(QUERY, DOCS[:5], instruction="Override")
    Reranker(backend, instruction="Option").rerank(QUERY, DOCS[:5])
    Reranker(backend, instruction="Option").rerank(QUERY, DOCS[:5], instruction=None)  # None: no instruction
    asyncio.run(Reranker(backend).arerank(QUERY, DOCS[:5], instruction="Async"))
    assert server.queries == [
        f"Per call\n{QUERY}",
        f"Override\n{QUERY}",
        f"Option\n{QUERY}",
        QUERY,
        f"Async\n{QUERY}",
    ]


@pytest.mark.parametrize("kind", ["tei", "voyage"])
def test_rerank_many_writes_the_instruction_into_every_query(kind: str, server: RerankServer) -> None:
    queries = ["dense retrieval", "sparse fusion"]
    Reranker(make(kind, server), instruction=INSTRUCTION).rerank_many(queries, [DOCS[:5], DOCS[5:9]])
    assert sorted(server.queries) == sorted(f"{INSTRUCTION}\n{q}" for q in queries)


def test_the_backend_methods_take_the_instruction(server: RerankServer) -> None:
    backend = voyage(server)
    assert backend.pair_limit(instruction=INSTRUCTION) is None
    scores = backend.score(QUERY, DOCS[:3], instruction=INSTRUCTION).scores
    assert scores == [pytest.approx(relevance(f"{INSTRUCTION}\n{QUERY}", d), abs=1e-12) for d in DOCS[:3]]
    groups = asyncio.run(backend.ascore_groups([(QUERY, DOCS[:2])], instruction="A"))
    assert len(groups[0].scores) == 2
    backend.score_groups([(QUERY, DOCS[:2])])  # no instruction: the query as given
    assert server.queries == [f"{INSTRUCTION}\n{QUERY}", f"A\n{QUERY}", QUERY]


def test_the_cache_is_keyed_by_the_instruction(server: RerankServer) -> None:
    reranker = Reranker(voyage(server), cache=True)
    first = reranker.rerank(QUERY, DOCS[:5], instruction="A")
    again = reranker.rerank(QUERY, DOCS[:5], instruction="A")
    assert server.counts["requests"] == 1 and again.usage["cache_hits"] == 5
    assert again.indices == first.indices
    other = reranker.rerank(QUERY, DOCS[:5], instruction="B")
    assert server.counts["requests"] == 2 and other.usage["cache_hits"] == 0
    reranker.rerank(QUERY, DOCS[:5])  # no instruction: a third entry
    assert server.counts["requests"] == 3
    assert server.queries == [f"A\n{QUERY}", f"B\n{QUERY}", QUERY]


def test_a_too_long_or_invalid_instruction_is_refused_before_any_request(server: RerankServer) -> None:
    reranker = Reranker(voyage(server))
    with pytest.raises(InvalidInputError, match="instruction") as info:  # at most 10,000 characters
        reranker.rerank(QUERY, DOCS[:3], instruction="x" * 10_001)
    assert info.value.argument == "instruction"
    with pytest.raises(InvalidInputError, match="instruction"):
        reranker.rerank(QUERY, DOCS[:3], instruction="bad \ud800 text")
    # The sent query (instruction + query) is checked as one: a lone surrogate names the query.
    with pytest.raises(InvalidInputError, match="query"):
        voyage(server).score("q \udfff", DOCS[:2], instruction=INSTRUCTION)
    assert server.counts["requests"] == 0

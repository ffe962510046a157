"""Issue 16, the network side: fork safety, whole-try timeouts and a call deadline, size caps, event-loop
lifecycle, typed errors for hostile answers, secret-free fingerprints and URLs, Infinity's path.

Everything runs against :class:`rerank_core.testing.RerankServer` on 127.0.0.1 over real sockets, in real
forked processes and real event loops (``asyncio.run``); no client is monkeypatched. Every loop is bounded
and every server fault ends by itself (a trickle stops after ``Fault.delay`` seconds).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rerank_core import Reranker
from rerank_core.backends.base import Backend, GroupScores
from rerank_core.backends.cohere import CohereBackend
from rerank_core.backends.llm_judge import LLMJudgeBackend
from rerank_core.backends.rerank_api import RerankAPIBackend
from rerank_core.errors import (
    BackendError,
    ConfigurationError,
    FailOpenWarning,
    InvalidInputError,
    InvalidResponseError,
    RerankError,
    RetryableBackendError,
)
from rerank_core.llm import ChatMessage
from rerank_core.llm.openai_compat import OpenAICompatibleLLM
from rerank_core.remote import RemoteBackend, RetryPolicy
from rerank_core.remote.http import ResponseTooLargeError
from rerank_core.testing import Fault, RerankServer, expected_order

KINDS = ("cohere", "tei", "jina")
ONE_TRY = RetryPolicy(max_attempts=1)
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05)
QUERY_A = "sparse dense hybrid retrieval"
QUERY_B = "fusion of rankings"
DOCS = [
    f"document {i} on {'dense' if i % 3 else 'sparse'} retrieval and {'hybrid' * (i % 2)} fusion rankings"
    for i in range(12)
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[RerankServer]:
    with RerankServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean(server: RerankServer) -> Iterator[None]:
    server.reset()
    server.latency = 0.0
    yield
    server.reset()


def make(kind: str, server: RerankServer, **options: Any) -> RemoteBackend:
    options.setdefault("retry", FAST)
    options.setdefault("timeout", 5.0)
    if kind == "cohere":
        return CohereBackend("rerank-test", base_url=server.url, api_key="k", **options)
    return RerankAPIBackend(server.url, protocol=kind, model="rerank-test", **options)


def make_llm(server: RerankServer, **options: Any) -> OpenAICompatibleLLM:
    options.setdefault("retry", FAST)
    options.setdefault("timeout", 5.0)
    return OpenAICompatibleLLM(server.url + "/v1", "judge", **options)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def live_loops() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_closed())


# -- 1. fork safety ------------------------------------------------------------------------------------


def _child_ranks(backend: RemoteBackend, query: str, rounds: int, conn: Any) -> None:
    try:
        reranker = Reranker(backend)
        wrong = 0
        for _ in range(rounds):
            if reranker.rerank(query, DOCS).indices != expected_order(query, DOCS):
                wrong += 1
        conn.send(("ok", wrong))
    except BaseException as exc:  # report anything: the parent asserts
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_fork_child_never_shares_the_parents_connection(kind: str, server: RerankServer) -> None:
    """Parent warms its keep-alive connection, forks, and both rank different queries over the same
    number of documents at once: each must get its own answers (not the other's, which would pass the
    checks and come back as a wrong ranking)."""
    server.latency = 0.01
    backend = make(kind, server, retry=ONE_TRY)
    reranker = Reranker(backend)
    assert reranker.rerank(QUERY_A, DOCS).indices == expected_order(QUERY_A, DOCS)  # warm-up call
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_ranks, args=(backend, QUERY_B, 30, there))
    child.start()
    there.close()
    wrong, errors = 0, []
    for _ in range(30):
        try:
            if reranker.rerank(QUERY_A, DOCS).indices != expected_order(QUERY_A, DOCS):
                wrong += 1
        except RerankError as exc:
            errors.append(exc)
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        child.join()
    status, value = here.recv() if here.poll(1) else ("error", "no answer from the child")
    assert status == "ok", value
    assert (wrong, value, errors) == (0, 0, [])


def test_fork_while_the_parent_has_a_request_in_flight(server: RerankServer) -> None:
    """The parent's only concurrency slot (and its lock-protected state) is taken by a request in flight
    when it forks: the child must not inherit the taken slot (it waited forever) nor the connection."""
    server.latency = 0.5
    backend = make("tei", server, max_concurrency=1, retry=ONE_TRY)
    results: list[list[int]] = []
    thread = threading.Thread(target=lambda: results.append(Reranker(backend).rerank(QUERY_A, DOCS).indices))
    thread.start()
    for _ in range(200):  # bounded: the request reaches the server within 2 s
        if server.counts["requests"]:
            break
        time.sleep(0.01)
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_ranks, args=(backend, QUERY_B, 2, there))
    child.start()
    there.close()
    child.join(timeout=15)
    if child.is_alive():
        child.kill()
        child.join()
    thread.join(timeout=10)
    assert here.poll(1), "the child never answered (it waited on the parent's taken slot)"
    assert here.recv() == ("ok", 0)
    assert results == [expected_order(QUERY_A, DOCS)]


class _Blocking(Backend):
    """An in-process back end (scored on the back end's thread pool from async code)."""

    @property
    def fingerprint(self) -> str:
        return "blocking-test"

    @property
    def score_kind(self) -> str:
        return "logit"

    def score(self, query: str, texts: Any) -> GroupScores:
        return GroupScores([float(len(t)) for t in texts])


def _child_arerank(reranker: Reranker, conn: Any) -> None:
    try:

        async def go() -> list[int]:
            response = await asyncio.wait_for(reranker.arerank("q", ["a", "abc", "ab"]), 5)
            return response.indices

        conn.send(("ok", asyncio.run(go())))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
        os._exit(0)


@pytest.mark.parametrize("coalesce", [False, True])
def test_fork_child_arerank_does_not_wait_on_the_parents_thread_pool(coalesce: bool) -> None:
    reranker = Reranker(_Blocking(), coalesce=coalesce)
    assert asyncio.run(reranker.arerank("q", ["a", "abc", "ab"])).indices == [1, 2, 0]  # pool is warm
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_arerank, args=(reranker, there))
    child.start()
    there.close()
    child.join(timeout=20)
    if child.is_alive():
        child.kill()
        child.join()
    assert here.poll(1), "the child never answered"
    assert here.recv() == ("ok", [1, 2, 0])


# -- 2. time bounds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("where", ["trickle_headers", "trickle_body"])
@pytest.mark.parametrize("kind", KINDS)
def test_timeout_bounds_a_whole_try_against_a_trickling_server(
    kind: str, where: str, mode: str, server: RerankServer
) -> None:
    """A byte every 0.4 s never trips a per-read timeout; timeout=1 must still end the try at ~1 s."""
    server.inject(Fault(where, interval=0.4, delay=8.0))
    backend = make(kind, server, timeout=1.0, retry=ONE_TRY)
    start = time.monotonic()
    with pytest.raises(RetryableBackendError, match="timed out"):
        if mode == "sync":
            backend.score(QUERY_A, DOCS)
        else:
            asyncio.run(backend.ascore(QUERY_A, DOCS))
    assert time.monotonic() - start < 3.0  # the server trickles for 8 s: a per-read timeout waits it out


@pytest.mark.parametrize("kind", KINDS)
def test_fail_open_fires_within_the_deadline(kind: str, server: RerankServer) -> None:
    """Every try trickles; timeout=1 with 4 tries would take 4 s and more: deadline=2 ends the call."""
    server.random_faults(1.0, [Fault("trickle_body", interval=0.4, delay=8.0)])
    backend = make(kind, server, timeout=1.0, deadline=2.0, retry=RetryPolicy(initial_delay=0.05))
    reranker = Reranker(backend, fail_open=True)
    start = time.monotonic()
    with pytest.warns(FailOpenWarning):
        response = reranker.rerank(QUERY_A, DOCS)
    assert time.monotonic() - start < 3.5
    assert not response.results[0].reranked and response.indices == list(range(len(DOCS)))
    start = time.monotonic()
    with pytest.warns(FailOpenWarning):
        response = asyncio.run(reranker.arerank(QUERY_A, DOCS))
    assert time.monotonic() - start < 3.5 and not response.results[0].reranked


def test_llm_timeout_and_deadline_bound_a_trickling_server(server: RerankServer) -> None:
    server.random_faults(1.0, [Fault("trickle_headers", interval=0.4, delay=8.0)])
    llm = make_llm(server, timeout=1.0, deadline=1.8, retry=RetryPolicy(initial_delay=0.05))
    for call in (
        lambda: llm.complete([ChatMessage("user", "hi")], max_tokens=1),
        lambda: asyncio.run(llm.acomplete([ChatMessage("user", "hi")], max_tokens=1)),
    ):
        start = time.monotonic()
        with pytest.raises(RetryableBackendError):
            call()
        assert time.monotonic() - start < 3.5


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "60", True])
def test_deadline_is_validated_where_it_is_defined(bad: object, server: RerankServer) -> None:
    for build in (
        lambda: make("tei", server, deadline=bad),
        lambda: make("cohere", server, deadline=bad),
        lambda: make_llm(server, deadline=bad),
    ):
        with pytest.raises(ConfigurationError, match="deadline"):
            build()
    assert make("jina", server, deadline=None).deadline is None
    assert make("jina", server).deadline is None and make_llm(server).deadline is None  # opt-in


# -- 3. size bounds ------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("fault", ["huge_body", "gzip_bomb"])
@pytest.mark.parametrize("kind", [*KINDS, "llm"])
def test_answers_are_capped_after_decoding(kind: str, fault: str, server: RerankServer) -> None:
    """A 300 MB body, or 300 KB of gzip that inflates to 300 MB, stops at the cap with a typed error,
    not retried, and costs no more than a little over the cap in memory."""
    server.inject(Fault(fault, size=300 * 1024 * 1024))
    before = _peak_rss_mb()
    if kind == "llm":
        llm = make_llm(server, retry=FAST)
        with pytest.raises(ResponseTooLargeError, match="max_response_bytes"):
            llm.complete([ChatMessage("user", "hi")], max_tokens=1)
    else:
        with pytest.raises(ResponseTooLargeError, match="max_response_bytes"):
            make(kind, server).score(QUERY_A, DOCS)
    assert server.counts["requests"] == 1  # not retried: the same server would send it again
    assert _peak_rss_mb() - before < 100


@pytest.mark.parametrize("kind", KINDS)
def test_size_cap_is_an_option_and_async_too(kind: str, server: RerankServer) -> None:
    assert isinstance(ResponseTooLargeError("x"), InvalidResponseError)
    backend = make(kind, server, max_response_bytes=64)  # a 12-result answer is larger than 64 bytes
    with pytest.raises(ResponseTooLargeError):
        asyncio.run(backend.ascore(QUERY_A, DOCS))
    server.inject(Fault("gzip_bomb", size=50 * 1024 * 1024))
    with pytest.raises(ResponseTooLargeError):
        asyncio.run(make(kind, server).ascore(QUERY_A, DOCS))
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        make(kind, server, max_response_bytes=0)


# -- 4. event-loop lifecycle ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [*KINDS, "llm"])
def test_a_loop_per_call_leaves_no_sockets_or_loops_behind(kind: str, server: RerankServer) -> None:
    backend = LLMJudgeBackend(make_llm(server)) if kind == "llm" else make(kind, server)
    reranker = Reranker(backend)
    asyncio.run(reranker.arerank(QUERY_A, DOCS[:3]))
    fds, loops = open_fds(), live_loops()
    for _ in range(150):
        asyncio.run(reranker.arerank(QUERY_A, DOCS[:3]))
    assert open_fds() - fds <= 3
    assert live_loops() - loops <= 2


def test_coalescing_keeps_no_loop_per_call() -> None:
    reranker = Reranker(_Blocking(), coalesce=True)
    asyncio.run(reranker.arerank("q", ["a", "ab"]))
    loops = live_loops()
    for _ in range(150):
        asyncio.run(reranker.arerank("q", ["a", "ab"]))
    assert live_loops() - loops <= 2


# -- 5. hostile answers and unsendable input: typed, never retried when it cannot help -----------------


@pytest.mark.parametrize("fault", ["huge_int", "deep_json"])
@pytest.mark.parametrize("kind", [*KINDS, "llm"])
def test_hostile_json_is_a_typed_invalid_response(kind: str, fault: str, server: RerankServer) -> None:
    server.inject(fault)
    with pytest.raises(InvalidResponseError) as info:
        if kind == "llm":
            make_llm(server, retry=ONE_TRY).complete([ChatMessage("user", "hi")], max_tokens=1)
        else:
            make(kind, server, retry=ONE_TRY).score(QUERY_A, DOCS)
    assert len(str(info.value)) < 600  # the 401 digits or 100,000 brackets are not pasted in whole


@pytest.mark.parametrize("kind", KINDS)
def test_a_lone_surrogate_names_the_argument_and_is_never_sent(kind: str, server: RerankServer) -> None:
    backend = make(kind, server)
    with pytest.raises(InvalidInputError) as info:
        backend.score("bad \ud800 query", DOCS)
    assert info.value.argument == "query"
    with pytest.raises(InvalidInputError) as info:
        asyncio.run(backend.ascore(QUERY_A, [*DOCS[:3], "bad \udfff text"]))
    assert info.value.argument == "candidates[3]"
    assert server.counts["requests"] == 0


def test_a_lone_surrogate_in_a_chat_message_names_it(server: RerankServer) -> None:
    with pytest.raises(InvalidInputError) as info:
        make_llm(server).complete([ChatMessage("user", "x \ud83d y")], max_tokens=1)
    assert info.value.argument == "messages[0].content" and server.counts["requests"] == 0


# -- 14. fingerprints: what changes the answer, never a secret -----------------------------------------


def test_routing_headers_are_in_the_fingerprint_and_credentials_only_hashed(server: RerankServer) -> None:
    a = make("jina", server, headers={"X-Model-Route": "blue", "api-key": "sk-SECRET-1"})
    b = make("jina", server, headers={"X-Model-Route": "green", "api-key": "sk-SECRET-1"})
    c = make("jina", server, headers={"X-Model-Route": "blue", "api-key": "sk-SECRET-1"})
    assert a.fingerprint != b.fingerprint and a.fingerprint == c.fingerprint
    assert "X-Model-Route".lower() in a.fingerprint and "SECRET" not in a.fingerprint
    d = make("jina", server, headers={"X-Model-Route": "blue", "Authorization": "Bearer sk-SECRET-2"})
    assert "SECRET" not in d.fingerprint and "authorization=sha256:" in d.fingerprint
    # the same cache no longer serves one route's scores to the other
    from rerank_core.cache import ScoreCache

    cache = ScoreCache()
    Reranker(a, cache=cache).rerank(QUERY_A, DOCS)
    Reranker(b, cache=cache).rerank(QUERY_A, DOCS)
    assert server.counts["requests"] == 2


def test_llm_extra_body_and_headers_are_in_the_fingerprint(server: RerankServer) -> None:
    one = make_llm(server, extra_body={"seed": 1}, headers={"X-Route": "a", "X-Api-Key": "TOPSECRET"})
    two = make_llm(server, extra_body={"seed": 2}, headers={"X-Route": "a", "X-Api-Key": "TOPSECRET"})
    assert one.fingerprint != two.fingerprint and "TOPSECRET" not in one.fingerprint
    assert LLMJudgeBackend(one).fingerprint != LLMJudgeBackend(two).fingerprint


# -- 15. credentials written in URLs -------------------------------------------------------------------


@pytest.mark.parametrize("kind", [*KINDS, "llm"])
def test_url_credentials_never_show(kind: str, server: RerankServer, caplog: Any) -> None:
    secret = "URLSECRET42"
    url = server.url.replace("http://", f"http://alice:{secret}@")
    caplog.set_level(logging.DEBUG)
    if kind == "llm":
        obj: Any = OpenAICompatibleLLM(url + "/v1", "judge", retry=ONE_TRY)
        assert obj.complete([ChatMessage("user", "hi")], max_tokens=1).text == "yes"
        fingerprint = obj.fingerprint
    elif kind == "cohere":
        obj = CohereBackend("rerank-test", base_url=url, api_key="k", retry=ONE_TRY)
    else:
        obj = RerankAPIBackend(url, protocol=kind, model="m", retry=ONE_TRY)
    if kind != "llm":
        assert obj.score(QUERY_A, DOCS).scores
        server.inject("http_500")
        with pytest.raises(BackendError) as info:
            obj.score(QUERY_A, DOCS)
        assert secret not in str(info.value)
        fingerprint = obj.fingerprint
    shown = [repr(obj), fingerprint, str(obj.base_url), caplog.text]
    assert all(secret not in text for text in shown), shown
    assert "alice:***@" in repr(obj) or "alice:***@" in str(obj.base_url)


# -- 18. Infinity ----------------------------------------------------------------------------------------


def test_docs_show_infinitys_path() -> None:
    text = (ROOT / "docs" / "backends.md").read_text()
    assert 'path="/rerank"' in text and "Infinity" in text
    for line in text.splitlines():
        if "Infinity" in line:
            assert "Infinity `/v1/rerank`" not in line and "(vLLM, Infinity)" not in line, line


def test_infinity_style_path_ranks_against_a_post_rerank_server(server: RerankServer) -> None:
    """Infinity's shape is Jina's body and answer at POST /rerank, what ``path="/rerank"`` sends."""
    backend = RerankAPIBackend(server.url, protocol="jina", model="m", path="/rerank", retry=ONE_TRY)
    assert Reranker(backend).rerank(QUERY_A, DOCS).indices == expected_order(QUERY_A, DOCS)
    assert server.counts["requests:tei"] == 1 and "/rerank:" in backend.fingerprint


# -- 19. review regressions: no default deadline, environment proxies, raw deflate ----------------------


@pytest.mark.parametrize("kind", KINDS)
def test_no_default_deadline_and_queueing_is_no_try(kind: str, server: RerankServer) -> None:
    """The default bounds tries, not calls: 12 one-document requests spaced by requests_per_minute wait
    about 0.55 s in all, longer than timeout=0.4 and than a deadline of 0.3 s would allow."""
    backend = make(kind, server, timeout=0.4, requests_per_minute=1200, max_documents_per_request=1)
    assert backend.deadline is None
    start = time.monotonic()
    assert Reranker(backend).rerank(QUERY_A, DOCS).indices == expected_order(QUERY_A, DOCS)
    assert asyncio.run(Reranker(backend).arerank(QUERY_B, DOCS)).indices == expected_order(QUERY_B, DOCS)
    assert time.monotonic() - start > 0.8 and server.counts["requests"] == 24
    capped = make(
        kind, server, timeout=0.4, requests_per_minute=1200, max_documents_per_request=1, deadline=0.3
    )
    with pytest.raises(RetryableBackendError, match="deadline"):
        Reranker(capped).rerank(QUERY_A, DOCS)


@pytest.mark.parametrize("kind", [*KINDS, "llm"])
def test_a_try_cut_by_the_deadline_says_so(kind: str, server: RerankServer) -> None:
    """A slow answer (1.5 s) with timeout=5 and deadline=0.5: the error names the deadline, not the 5 s
    timeout; with timeout=0.5 and no deadline it names the timeout."""
    if kind == "llm":
        calls: list[Any] = [
            lambda llm: llm.complete([ChatMessage("user", "hi")], max_tokens=1),
            lambda llm: asyncio.run(llm.acomplete([ChatMessage("user", "hi")], max_tokens=1)),
        ]

        def build(**options: Any) -> Any:
            return make_llm(server, retry=ONE_TRY, **options)
    else:
        calls = [lambda b: b.score(QUERY_A, DOCS), lambda b: asyncio.run(b.ascore(QUERY_A, DOCS))]

        def build(**options: Any) -> Any:
            return make(kind, server, retry=ONE_TRY, **options)

    for call in calls:
        server.inject(Fault("slow", delay=1.5))
        with pytest.raises(RetryableBackendError) as info:
            call(build(timeout=5.0, deadline=0.5))
        assert "deadline of 0.5s" in str(info.value) and "after 5" not in str(info.value)
        server.inject(Fault("slow", delay=1.5))
        with pytest.raises(RetryableBackendError) as info:
            call(build(timeout=0.5))
        assert "timed out after 0.5s" in str(info.value) and "deadline" not in str(info.value)


class _Proxy:
    """A forwarding HTTP proxy on 127.0.0.1 (absolute-form GET/POST, forwarded with http.client)."""

    def __init__(self) -> None:
        import http.client
        import urllib.parse
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self
        self.requests = 0
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                with owner._lock:
                    owner.requests += 1
                target = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                skip = {"host", "connection", "proxy-connection", "keep-alive"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
                try:
                    path = target.path + (f"?{target.query}" if target.query else "")
                    conn.request(self.command, path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in {
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "keep-alive",
                    }:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = forward

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Proxy]:
    forwarder = _Proxy()
    for name in ("HTTPS_PROXY", "ALL_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", forwarder.url)
    monkeypatch.setenv("http_proxy", forwarder.url)
    monkeypatch.setenv("NO_PROXY", "")  # httpx would proxy 127.0.0.1 unless NO_PROXY lists it
    monkeypatch.setenv("no_proxy", "")
    try:
        yield forwarder
    finally:
        forwarder.close()


@pytest.mark.parametrize("kind", [*KINDS, "llm"])
def test_environment_proxies_are_used(
    kind: str, server: RerankServer, proxy: _Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY from the environment carries every request, sync and async, with the right answers
    (clients built with transport= made httpx ignore it); NO_PROXY listing the host goes direct."""
    if kind == "llm":
        llm = make_llm(server)
        assert llm.complete([ChatMessage("user", "hi")], max_tokens=1).text == "yes"
        answer = asyncio.run(llm.acomplete([ChatMessage("user", "hi")], max_tokens=1))
        assert answer.text == "yes"
    else:
        reranker = Reranker(make(kind, server))
        assert reranker.rerank(QUERY_A, DOCS).indices == expected_order(QUERY_A, DOCS)
        assert asyncio.run(reranker.arerank(QUERY_B, DOCS)).indices == expected_order(QUERY_B, DOCS)
    assert proxy.requests == server.counts["requests"] == 2
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    if kind == "llm":
        assert make_llm(server).complete([ChatMessage("user", "hi")], max_tokens=1).text == "yes"
    else:
        assert make(kind, server).score(QUERY_A, DOCS).scores
    assert proxy.requests == 2 and server.counts["requests"] == 3


@pytest.mark.parametrize("kind", [*KINDS, "llm"])
def test_raw_deflate_answers_are_decoded(kind: str, server: RerankServer) -> None:
    """Content-Encoding: deflate without the zlib header (raw deflate), as some servers send it, sync and
    async (httpx falls back to raw deflate; the bounded decoder refused it)."""
    server.inject(Fault("raw_deflate"), Fault("raw_deflate"))
    if kind == "llm":
        llm = make_llm(server, retry=ONE_TRY)
        assert llm.complete([ChatMessage("user", "hi")], max_tokens=1).text == "yes"
        assert asyncio.run(llm.acomplete([ChatMessage("user", "hi")], max_tokens=1)).text == "yes"
    else:
        reranker = Reranker(make(kind, server, retry=ONE_TRY))
        assert reranker.rerank(QUERY_A, DOCS).indices == expected_order(QUERY_A, DOCS)
        assert asyncio.run(reranker.arerank(QUERY_B, DOCS)).indices == expected_order(QUERY_B, DOCS)
    assert server.counts["fault:raw_deflate"] == 2 and server.counts["requests"] == 2


def test_deflate_decoder_byte_by_byte_and_capped() -> None:
    """Both deflate forms decode fed a byte at a time; raw deflate keeps the size cap; garbage is refused."""
    import zlib

    from rerank_core.remote._transport import _Decoder

    data = b'{"results": [' + b'{"index": 1, "relevance_score": 0.5}, ' * 200 + b"]}"
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for body in (zlib.compress(data), raw.compress(data) + raw.flush()):
        decoder = _Decoder({"content-encoding": "deflate"}, 1 << 20, "b")
        out = b"".join(decoder.feed(body[i : i + 1]) for i in range(len(body))) + decoder.flush()
        assert out == data
    bomb = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = bomb.compress(b" " * (8 << 20)) + bomb.flush()
    with pytest.raises(ResponseTooLargeError):
        _Decoder({"content-encoding": "deflate"}, 1 << 20, "b").feed(body)
    with pytest.raises(InvalidResponseError, match="undecodable"):
        decoder = _Decoder({"content-encoding": "deflate"}, 1 << 20, "b")
        decoder.feed(b"\xff\xff\xff\xff garbage")
        decoder.flush()

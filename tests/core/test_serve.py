"""``rerank serve``: the app on a real uvicorn server on loopback, driven by the Cohere SDK, this project's
TEI / Jina / Cohere back ends and raw httpx, including faults (bad JSON, oversized bodies, too many
documents, auth failures, overload, deadlines, clients that disconnect mid-request, shutdown with work in
flight)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest

pytest.importorskip("starlette", reason="rerank serve needs the serve extra (starlette)")
pytest.importorskip("uvicorn", reason="rerank serve needs the serve extra (uvicorn)")
pytest.importorskip("prometheus_client", reason="rerank serve needs the serve extra (prometheus-client)")

from rerank_core import Reranker
from rerank_core.backends.rerank_api import RerankAPIBackend
from rerank_core.errors import ConfigurationError
from rerank_core.pipeline_config import PipelineConfig
from rerank_core.serve import BackgroundServer, ServeSettings, create_app
from rerank_core.serve._wire import WireError, parse_request
from tests.fakes import FakeBackend

QUERY = "what do cats eat"
DOCS = [
    "Cats are carnivores and eat meat.",
    "The stock market fell on Monday.",
    "Kittens drink milk from their mother.",
    "A recipe for vegetable soup.",
    "Cat food is made mostly of animal protein.",
]


class GatedBackend(FakeBackend):
    """A fake model whose scoring waits until ``gate`` is set (or ``delay`` passes): requests stay in
    flight as long as a test needs."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.delay = delay
        self.started = threading.Event()

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self.started.set()
        if self.delay:
            time.sleep(self.delay)
        else:
            self.gate.wait(30)
        return super().score_pairs(pairs)


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    reranker = Reranker(FakeBackend(), coalesce=True)
    with BackgroundServer(create_app(reranker, ServeSettings(max_documents=50, max_body_bytes=20_000))) as s:
        yield s


def expected(query: str = QUERY, docs: Sequence[str] = DOCS, *, raw: bool = False) -> list[tuple[int, float]]:
    """The in-process ranking; its scores as the wire writes them: the fake model gives logits, which
    the server puts through the sigmoid (as TEI does) unless the client asks for raw scores."""
    response = Reranker(FakeBackend()).rerank(query, list(docs))
    return [
        (r.index, r.raw_score if raw else 1 / (1 + math.exp(-r.relevance_score))) for r in response.results
    ]


def flat(rows: Sequence[tuple[int, float]]) -> list[float]:
    """(index, score) rows as one flat list, for pytest.approx."""
    return [x for row in rows for x in row]


def read_answer(raw: socket.socket) -> str:
    """One HTTP answer from a raw socket: the head, then the body to its Content-Length."""
    raw.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += raw.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        body += raw.recv(4096)
    return (head + b"\r\n\r\n" + body).decode()


def metric(server: BackgroundServer, name: str) -> float:
    total = 0.0
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- the three wire formats, by the clients that speak them ----------------------------------------------


def test_cohere_sdk_v2_gets_the_pipelines_ranking(server: BackgroundServer) -> None:
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key="unused", base_url=server.url)
    answer = client.rerank(model="reference", query=QUERY, documents=DOCS, top_n=3)
    got = [(r.index, r.relevance_score) for r in answer.results]
    assert flat(got) == pytest.approx(flat(expected()[:3]))


def test_this_projects_cohere_backend_round_trips(server: BackgroundServer) -> None:
    from rerank_core.backends.cohere import CohereBackend

    remote = Reranker(CohereBackend("reference", api_key="unused", base_url=server.url))
    got = [(r.index, r.relevance_score) for r in remote.rerank(QUERY, DOCS).results]
    assert flat(got) == pytest.approx(flat(expected()))  # probabilities, as the Cohere back end expects
    assert all(0 < score < 1 for _, score in got)


@pytest.mark.parametrize("protocol", ["tei", "jina"])
def test_this_projects_tei_and_jina_backends_round_trip(server: BackgroundServer, protocol: str) -> None:
    backend = RerankAPIBackend(server.url, protocol=protocol, model="reference")
    got = Reranker(backend).rerank(QUERY, DOCS)
    assert flat([(r.index, r.raw_score) for r in got.results]) == pytest.approx(flat(expected()))


def test_tei_raw_scores_are_the_models_own(server: BackgroundServer) -> None:
    backend = RerankAPIBackend(server.url, protocol="tei", raw_scores=True)
    got = Reranker(backend).rerank(QUERY, DOCS)
    assert flat([(r.index, r.raw_score) for r in got.results]) == pytest.approx(flat(expected(raw=True)))
    info = httpx.get(server.url + "/info").json()
    assert info["relevance_score"] == "sigmoid"


def test_raw_routes_answer_each_shape(server: BackgroundServer) -> None:
    want = expected()
    tei = httpx.post(server.url + "/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True}).json()
    assert flat([(r["index"], r["score"]) for r in tei]) == pytest.approx(flat(want))
    assert tei[0]["text"] == DOCS[want[0][0]]
    jina = httpx.post(
        server.url + "/v1/rerank",
        json={"model": "m", "query": QUERY, "documents": [{"text": d} for d in DOCS]},
    ).json()
    assert jina["model"] == "m" and jina["usage"]["total_tokens"] > 0
    assert flat([(r["index"], r["relevance_score"]) for r in jina["results"]]) == pytest.approx(flat(want))
    assert jina["results"][0]["document"] == {"text": DOCS[want[0][0]]}  # Jina/vLLM return documents
    infinity = httpx.post(server.url + "/rerank", json={"query": QUERY, "documents": DOCS}).json()
    assert flat([(r["index"], r["relevance_score"]) for r in infinity["results"]]) == pytest.approx(
        flat(want)
    )
    cohere = httpx.post(
        server.url + "/v2/rerank", json={"model": "m", "query": QUERY, "documents": DOCS}
    ).json()
    assert "document" not in cohere["results"][0] and cohere["meta"]["api_version"]["version"] == "2"
    empty = httpx.post(server.url + "/v2/rerank", json={"model": "m", "query": QUERY, "documents": []})
    assert empty.status_code == 200 and empty.json()["results"] == []


def test_the_callers_documents_come_back_unchanged_and_each_once(server: BackgroundServer) -> None:
    docs = [*DOCS, DOCS[0], ""]  # a repeat and an empty text
    body = {"query": QUERY, "texts": docs, "return_text": True}
    answer = httpx.post(server.url + "/rerank", json=body).json()
    assert sorted(r["index"] for r in answer) == list(range(len(docs)))
    assert all(r["text"] == docs[r["index"]] for r in answer)


def test_health_ready_info_and_metrics(server: BackgroundServer) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.url + "/ready").json() == {"status": "ready"}
    info = httpx.get(server.url + "/info").json()
    assert info["limits"]["max_documents"] == 50 and info["backend"] == "fake:fake" and not info["auth"]
    httpx.post(server.url + "/v2/rerank", json={"query": QUERY, "documents": DOCS})
    assert metric(server, 'rerank_requests_total{route="/v2/rerank",status="200"}') >= 1
    assert metric(server, "rerank_batch_pairs_count") >= 1
    assert metric(server, "rerank_ready") == 1


# -- bad requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body", "status", "field"),
    [
        ("/v2/rerank", b"{not json", 400, "JSON"),
        ("/rerank", b"[1, 2", 422, "JSON"),
        ("/v2/rerank", b"[]", 400, "object"),
        ("/v2/rerank", b'{"documents": ["a"]}', 400, "query"),
        ("/v2/rerank", b'{"query": "  ", "documents": ["a"]}', 400, "query"),
        ("/v2/rerank", b'{"query": "q", "documents": "a"}', 400, "documents"),
        ("/v2/rerank", b'{"query": "q", "documents": [{"text": "a"}]}', 400, "documents[0]"),
        ("/v1/rerank", b'{"query": "q", "documents": ["a", 3]}', 400, "documents[1]"),
        ("/v1/rerank", b'{"query": "q", "documents": ["a"], "top_n": 0}', 400, "top_n"),
        ("/v1/rerank", b'{"query": "q", "documents": ["a"], "top_n": true}', 400, "top_n"),
        ("/rerank", b'{"query": "q", "texts": ["a"], "raw_scores": "yes"}', 422, "raw_scores"),
        ("/rerank", b'{"query": "q", "texts": [{"text": "a"}]}', 422, "texts[0]"),
        ("/v2/rerank", b'{"query": "q", "documents": ["a"], "instruction": ""}', 400, "instruction"),
        ("/v2/rerank", b"[" * 100_00 + b"]" * 100_00, 400, "JSON"),
    ],
)
def test_bad_bodies_get_a_clear_error_naming_the_field(
    server: BackgroundServer, route: str, body: bytes, status: int, field: str
) -> None:
    answer = httpx.post(server.url + route, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status
    message = answer.json()["error" if route == "/rerank" else "message"]
    assert field in message


def test_an_instruction_the_model_cannot_take_is_a_400(server: BackgroundServer) -> None:
    body = {"query": "q", "documents": ["a"], "instruction": "judge by date"}
    answer = httpx.post(server.url + "/v2/rerank", json=body)
    assert answer.status_code == 400 and "instruction" in answer.json()["message"]


def test_too_many_documents_and_oversized_bodies_are_refused(server: BackgroundServer) -> None:
    many = ["doc"] * 51
    tei = httpx.post(server.url + "/rerank", json={"query": "q", "texts": many})
    assert tei.status_code == 413 and "50" in tei.json()["error"]
    cohere = httpx.post(server.url + "/v2/rerank", json={"query": "q", "documents": many})
    assert cohere.status_code == 400 and "50" in cohere.json()["message"]
    big = {"query": "q", "documents": ["x" * 30_000]}
    assert httpx.post(server.url + "/v2/rerank", json=big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it streams
        yield b'{"query": "q", "documents": ["'
        for _ in range(50):
            yield b"x" * 1000
        yield b'"]}'

    streamed = httpx.post(server.url + "/v2/rerank", content=chunks())
    assert streamed.status_code == 413
    assert httpx.get(server.url + "/health").status_code == 200


def test_unknown_routes_and_methods(server: BackgroundServer) -> None:
    assert httpx.get(server.url + "/v2/rerank").status_code == 405
    assert httpx.post(server.url + "/v3/rerank", json={}).status_code == 404


# -- auth -------------------------------------------------------------------------------------------------


def test_bearer_auth_is_demanded_and_never_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret-token-value"
    monkeypatch.setenv("TEST_RERANK_KEY", secret)
    app = create_app(Reranker(FakeBackend()), ServeSettings(api_key_env="TEST_RERANK_KEY"))
    body = {"query": QUERY, "documents": DOCS}
    with caplog.at_level(logging.INFO, logger="rerank_core.serve"), BackgroundServer(app) as s:
        assert httpx.post(s.url + "/v2/rerank", json=body).status_code == 401
        wrong = httpx.post(s.url + "/v2/rerank", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        basic = httpx.post(s.url + "/v2/rerank", json=body, headers={"Authorization": f"Basic {secret}"})
        assert basic.status_code == 401
        good = httpx.post(s.url + "/v2/rerank", json=body, headers={"Authorization": f"Bearer {secret}"})
        assert good.status_code == 200
        assert httpx.get(s.url + "/health").status_code == 200  # probes stay open
        assert httpx.get(s.url + "/info").status_code == 401  # the fingerprint may name an upstream
        info = httpx.get(s.url + "/info", headers={"Authorization": f"Bearer {secret}"}).json()
        assert info["auth"] is True
        cohere = pytest.importorskip("cohere")
        answer = cohere.ClientV2(api_key=secret, base_url=s.url).rerank(
            model="m", query=QUERY, documents=DOCS
        )
        assert len(answer.results) == len(DOCS)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert '"status": 401' in logged and '"status": 200' in logged
    assert secret not in logged and "nope" not in logged
    assert QUERY not in logged and DOCS[0] not in logged  # no text in the access log


def test_a_named_key_variable_that_is_unset_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_RERANK_TYPO", raising=False)
    with pytest.raises(ConfigurationError, match=r"serve\.api_key_env.*TEST_RERANK_TYPO"):
        create_app(Reranker(FakeBackend()), ServeSettings(api_key_env="TEST_RERANK_TYPO"))
    monkeypatch.setenv("TEST_RERANK_TYPO", "")
    with pytest.raises(ConfigurationError, match="unset or empty"):
        create_app(Reranker(FakeBackend()), ServeSettings(api_key_env="TEST_RERANK_TYPO"))
    monkeypatch.setenv("RERANK_API_KEY", "default-variable-key")  # the default name, when set
    app = create_app(Reranker(FakeBackend()), ServeSettings())
    with BackgroundServer(app) as s:
        assert httpx.post(s.url + "/v2/rerank", json={"query": "q", "documents": ["a"]}).status_code == 401


# -- the pipeline's own stages over the wire ----------------------------------------------------------------


def test_a_fused_pipeline_takes_first_stage_scores() -> None:
    reranker = Reranker(FakeBackend(), fusion="zscore:0.5")
    first = [0.9, 0.1, 0.5, 0.3, 0.7]
    want = reranker.rerank(QUERY, DOCS, first_stage_scores=first)
    with BackgroundServer(create_app(reranker, ServeSettings())) as s:
        body = {"query": QUERY, "documents": DOCS, "first_stage_scores": first}
        answer = httpx.post(s.url + "/v2/rerank", json=body).json()
        got = [(r["index"], r["relevance_score"]) for r in answer["results"]]
        assert flat(got) == pytest.approx(flat([(r.index, r.relevance_score) for r in want]))  # as it is
        missing = httpx.post(s.url + "/v2/rerank", json={"query": QUERY, "documents": DOCS})
        assert missing.status_code == 400 and "first_stage_scores" in missing.json()["message"]
        short = httpx.post(s.url + "/rerank", json={"query": "q", "texts": DOCS, "first_stage_scores": [1]})
        assert short.status_code == 422 and "first_stage_scores" in short.json()["error"]
        assert httpx.get(s.url + "/info").json()["relevance_score"] == "pipeline"


def test_a_fused_pipeline_from_a_config_warms_up_and_serves(tmp_path) -> None:
    from rerank_core.integrations import reranker_config

    config = PipelineConfig(reranker=reranker_config(Reranker(FakeBackend(), fusion="zscore:0.5")))
    with BackgroundServer(create_app(config, ServeSettings()), ready=True) as s:
        body = {"query": QUERY, "documents": DOCS, "first_stage_scores": [1, 2, 3, 4, 5]}
        assert httpx.post(s.url + "/v1/rerank", json=body).status_code == 200


def test_fail_open_becomes_a_503_not_unusable_scores() -> None:
    from rerank_core.errors import RetryableBackendError

    class Down(FakeBackend):
        def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
            raise RetryableBackendError("upstream down")

    with BackgroundServer(create_app(Reranker(Down(), fail_open=True), ServeSettings())) as s:
        with pytest.warns(Warning):
            answer = httpx.post(s.url + "/v2/rerank", json={"query": "q", "documents": DOCS})
        assert answer.status_code == 503 and "upstream down" in answer.json()["message"]
        assert "retry-after" in answer.headers


def test_a_probability_pipeline_is_written_as_it_is() -> None:
    reranker = Reranker(FakeBackend(), normalization="sigmoid")
    want = reranker.rerank(QUERY, DOCS)
    with BackgroundServer(create_app(reranker, ServeSettings())) as s:
        answer = httpx.post(s.url + "/rerank", json={"query": QUERY, "texts": DOCS}).json()
        assert flat([(r["index"], r["score"]) for r in answer]) == pytest.approx(
            flat([(r.index, r.relevance_score) for r in want])
        )
        assert httpx.get(s.url + "/info").json()["relevance_score"] == "probability"


def test_a_field_error_in_an_infinity_body_gets_the_jina_error_shape(server: BackgroundServer) -> None:
    answer = httpx.post(server.url + "/rerank", json={"query": "q", "documents": [3]})
    assert answer.status_code == 400 and "documents[0]" in answer.json()["message"]


# -- overload, deadlines, disconnects, shutdown ------------------------------------------------------------


def test_a_full_queue_answers_429_with_retry_after() -> None:
    backend = GatedBackend()
    app = create_app(Reranker(backend, coalesce=True), ServeSettings(max_queue_requests=2))
    body = {"query": QUERY, "documents": DOCS}
    with BackgroundServer(app) as s:
        answers: list[int] = []

        def call() -> None:
            answers.append(httpx.post(s.url + "/v2/rerank", json=body, timeout=30).status_code)

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        assert backend.started.wait(10)
        deadline = time.monotonic() + 10
        while metric(s, "rerank_queue_requests") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = httpx.post(s.url + "/v2/rerank", json=body)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "capacity" in refused.json()["message"]
        backend.gate.set()
        for t in threads:
            t.join()
        assert answers == [200, 200]
        assert httpx.post(s.url + "/v2/rerank", json=body).status_code == 200  # room again
        assert metric(s, 'rerank_errors_total{kind="overloaded"}') == 1
        assert metric(s, "rerank_queue_requests") == 0 and metric(s, "rerank_queue_pairs") == 0


def test_the_queue_bound_counts_pairs() -> None:
    backend = GatedBackend()
    app = create_app(Reranker(backend, coalesce=True), ServeSettings(max_queue_pairs=8))
    with BackgroundServer(app) as s:
        first = threading.Thread(
            target=lambda: httpx.post(
                s.url + "/v2/rerank", json={"query": "q", "documents": DOCS}, timeout=30
            )
        )
        first.start()
        assert backend.started.wait(10)
        four = httpx.post(s.url + "/v2/rerank", json={"query": "q", "documents": DOCS[:4]})
        assert four.status_code == 429  # 5 + 4 pairs > 8
        backend.gate.set()
        first.join()
        alone = httpx.post(s.url + "/v2/rerank", json={"query": "q", "documents": DOCS * 3})
        assert alone.status_code == 200  # a request alone in an empty queue always goes


def test_a_request_past_its_deadline_gets_503_and_the_server_goes_on() -> None:
    app = create_app(Reranker(GatedBackend(delay=1.0)), ServeSettings(request_timeout_s=0.3))
    with BackgroundServer(app) as s:
        started = time.monotonic()
        late = httpx.post(s.url + "/v2/rerank", json={"query": "q", "documents": DOCS}, timeout=10)
        assert late.status_code == 503 and "deadline" in late.json()["message"]
        assert time.monotonic() - started < 0.9
        assert "retry-after" in late.headers
        short = httpx.post(
            s.url + "/rerank", json={"query": "q", "texts": DOCS}, headers={"X-Request-Timeout": "0.1"}
        )
        assert short.status_code == 503 and short.json()["error_type"] == "timeout"
        bad = httpx.post(
            s.url + "/rerank", json={"query": "q", "texts": DOCS}, headers={"X-Request-Timeout": "x"}
        )
        assert bad.status_code == 400
        time.sleep(1.2)
        assert metric(s, 'rerank_errors_total{kind="timeout"}') == 2


def test_a_body_that_trickles_past_the_deadline_gets_408() -> None:
    app = create_app(Reranker(FakeBackend()), ServeSettings(request_timeout_s=0.5))
    with BackgroundServer(app) as s:
        raw = socket.create_connection((s.host, s.port))
        raw.sendall(b'POST /v2/rerank HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"query"')
        answer = read_answer(raw)
        raw.close()
        assert answer.startswith("HTTP/1.1 408") and "deadline" in answer
        assert httpx.post(s.url + "/v2/rerank", json={"query": "q", "documents": ["a"]}).status_code == 200


def test_a_client_that_disconnects_while_sending_its_body_is_not_an_error() -> None:
    app = create_app(Reranker(FakeBackend()), ServeSettings())
    with BackgroundServer(app) as s:
        raw = socket.create_connection((s.host, s.port))
        raw.sendall(b'POST /v2/rerank HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"query"')
        time.sleep(0.2)
        raw.close()
        deadline = time.monotonic() + 10
        while metric(s, 'rerank_errors_total{kind="disconnected"}') < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(s, 'rerank_errors_total{kind="disconnected"}') == 1
        assert metric(s, 'rerank_errors_total{kind="internal"}') == 0


def test_requests_past_their_deadline_leave_no_work_behind() -> None:
    """Requests that time out while queued behind a busy batch are taken out of the queue: the model
    never scores them, and the next request is not stuck behind abandoned work."""
    backend = GatedBackend()
    app = create_app(Reranker(backend, coalesce=True), ServeSettings())
    with BackgroundServer(app) as s:
        first = threading.Thread(
            target=lambda: httpx.post(
                s.url + "/v2/rerank", json={"query": "first", "documents": DOCS}, timeout=30
            )
        )
        first.start()
        assert backend.started.wait(10)
        for i in range(5):
            late = httpx.post(
                s.url + "/v2/rerank",
                json={"query": f"late {i}", "documents": DOCS},
                headers={"X-Request-Timeout": "0.2"},
            )
            assert late.status_code == 503
        backend.gate.set()
        first.join(10)
        answer = httpx.post(s.url + "/v2/rerank", json={"query": "next", "documents": DOCS})
        assert answer.status_code == 200
        queries = {q for call in backend.calls for q, _ in call}
        assert queries == {"first", "next"}


def test_the_deadline_covers_the_whole_request() -> None:
    app = create_app(Reranker(GatedBackend(delay=0.5)), ServeSettings(request_timeout_s=0.8))
    with BackgroundServer(app) as s:
        raw = socket.create_connection((s.host, s.port))
        body = json.dumps({"query": "q", "documents": DOCS}).encode()
        head = f"POST /v2/rerank HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        started = time.monotonic()
        raw.sendall(head + body[:10])
        time.sleep(0.5)  # most of the deadline spent sending the body
        raw.sendall(body[10:])
        answer = read_answer(raw)
        raw.close()
        assert answer.startswith("HTTP/1.1 503") and time.monotonic() - started < 1.2


def test_a_client_that_disconnects_mid_request_is_cancelled_and_others_are_served() -> None:
    backend = GatedBackend()
    app = create_app(Reranker(backend, coalesce=True), ServeSettings())
    with BackgroundServer(app) as s:
        body = json.dumps({"query": "q", "documents": DOCS}).encode()
        raw = socket.create_connection((s.host, s.port))
        raw.sendall(
            b"POST /v2/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert backend.started.wait(10)
        raw.close()
        deadline = time.monotonic() + 10
        while metric(s, 'rerank_errors_total{kind="disconnected"}') < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(s, 'rerank_errors_total{kind="disconnected"}') == 1
        assert metric(s, "rerank_queue_requests") == 0  # its place in the queue is given back
        backend.gate.set()
        answer = httpx.post(s.url + "/v2/rerank", json={"query": QUERY, "documents": DOCS})
        assert answer.status_code == 200 and len(answer.json()["results"]) == len(DOCS)


def test_shutdown_finishes_the_requests_in_flight() -> None:
    backend = GatedBackend()
    s = BackgroundServer(create_app(Reranker(backend), ServeSettings()))
    s.start()
    result: list[httpx.Response] = []
    t = threading.Thread(
        target=lambda: result.append(
            httpx.post(s.url + "/v2/rerank", json={"query": QUERY, "documents": DOCS}, timeout=30)
        )
    )
    t.start()
    assert backend.started.wait(10)
    stopper = threading.Thread(target=s.stop)
    stopper.start()  # as SIGTERM: stop accepting, let the request finish
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):
        httpx.post(s.url + "/v2/rerank", json={"query": QUERY, "documents": DOCS}, timeout=2)
    backend.gate.set()
    t.join(10)
    stopper.join(30)
    assert result and result[0].status_code == 200 and len(result[0].json()["results"]) == len(DOCS)


def test_concurrent_requests_share_model_batches() -> None:
    backend = GatedBackend(delay=0.2)
    app = create_app(Reranker(backend, coalesce=True), ServeSettings())
    with BackgroundServer(app) as s:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=s.url, timeout=30) as client:
                return await asyncio.gather(
                    *(
                        client.post("/v2/rerank", json={"query": f"{QUERY} {i}", "documents": DOCS})
                        for i in range(8)
                    )
                )

        answers = asyncio.run(burst())
        assert all(a.status_code == 200 for a in answers)
        for i, a in enumerate(answers):
            want = expected(f"{QUERY} {i}")
            assert flat([(r["index"], r["relevance_score"]) for r in a.json()["results"]]) == pytest.approx(
                flat(want)
            )
        assert len(backend.calls) < 8  # some requests were scored together
        assert metric(s, "rerank_batch_requests_sum") == 8


# -- loading a pipeline from its description --------------------------------------------------------------


def test_a_pipeline_that_cannot_load_is_reported_by_health_and_ready(tmp_path) -> None:
    config = PipelineConfig(model=str(tmp_path / "no-such-model"), backend={"local_files_only": True})
    with BackgroundServer(create_app(config, ServeSettings())) as s:
        deadline = time.monotonic() + 60
        while httpx.get(s.url + "/health").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        health = httpx.get(s.url + "/health")
        assert health.status_code == 503 and health.json()["status"] == "failed"
        assert httpx.get(s.url + "/ready").status_code == 503
        answer = httpx.post(s.url + "/v2/rerank", json={"query": "q", "documents": ["a"]})
        assert answer.status_code == 503 and "failed to load" in answer.json()["message"]


def test_create_app_refuses_what_it_cannot_serve() -> None:
    with pytest.raises(ConfigurationError, match="pipeline"):
        create_app("models/reference-reranker")
    with pytest.raises(ConfigurationError, match="settings"):
        create_app(Reranker(FakeBackend()), {"port": 1})


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"port": 70000}, "serve.port"),
        ({"workers": 0}, "serve.workers"),
        ({"max_documents": True}, "serve.max_documents"),
        ({"request_timeout_s": float("nan")}, "serve.request_timeout_s"),
        ({"request_timeout_s": 0}, "serve.request_timeout_s"),
        ({"api_key_env": ""}, "serve.api_key_env"),
        ({"host": ""}, "serve.host"),
    ],
)
def test_settings_are_checked_by_name(changes: dict, name: str) -> None:
    with pytest.raises(ConfigurationError, match=name.replace(".", r"\.")):
        ServeSettings(**changes)
    with pytest.raises(ConfigurationError, match=r"serve\.nope"):
        ServeSettings.from_mapping({"nope": 1})


def test_parse_request_keeps_the_documents_as_given() -> None:
    docs = ["a", "b"]
    wire = parse_request("/v1/rerank", {"query": "q", "documents": docs, "top_n": 1}, max_documents=5)
    assert wire.documents == docs and wire.documents is not docs and wire.return_documents
    with pytest.raises(WireError) as info:
        parse_request("/rerank", {"query": "q", "texts": ["a"] * 6}, max_documents=5)
    assert info.value.status == 413

"""A real HTTP rerank server on loopback that speaks Cohere v2, TEI and Jina, and fails on demand.

For tests and load tests of remote back ends (this project's and yours): clients talk to it over real
sockets, with keep-alive, so timeouts, dropped connections and connection reuse are the real thing.
Standard library only (``http.server``, one thread per connection).

Routes:

- ``POST /v2/rerank`` (Cohere): ``{"model", "query", "documents", "top_n"?}`` →
  ``{"id", "results": [{"index", "relevance_score"}], "meta": {...}}``, best first.
- ``POST /rerank`` (TEI): ``{"query", "texts", "raw_scores"?}`` → ``[{"index", "score"}]``, best first.
- ``POST /v1/rerank`` (Jina, vLLM): ``{"model", "query", "documents", "top_n"?}`` →
  ``{"model", "results": [{"index", "relevance_score"}], "usage": {"total_tokens"}}``.

Scores are :func:`relevance` (word overlap with a deterministic tie-break, in [0, 1)), so a test can
compute the exact ranking a correct client must return. ``api_key`` makes the server demand
``Authorization: Bearer <key>`` (401 otherwise); ``max_documents`` makes it refuse larger requests (413
for TEI, 400 for the others), as real servers do.

Faults (:data:`FAULT_KINDS`): queue them for the next requests with :meth:`RerankServer.inject`, or let
each request fail at random with :meth:`RerankServer.random_faults` (seeded). Every request, fault,
connection, batch size and the peak number of requests in flight is counted in ``counts`` / ``batch_sizes``
/ ``max_in_flight``.
"""

from __future__ import annotations

import json
import math
import random
import re
import socket
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = [
    "FAULT_KINDS",
    "INVALID_RESPONSE_FAULTS",
    "RETRYABLE_FAULTS",
    "Fault",
    "RerankServer",
    "expected_order",
    "relevance",
]

FAULT_KINDS = (
    "http_429",  # Too Many Requests, with Retry-After when retry_after is set
    "http_500",
    "http_503",  # Service Unavailable, with Retry-After when retry_after is set
    "slow",  # answers correctly after `delay` seconds (past a client's timeout)
    "drop",  # closes the connection without answering
    "malformed",  # 200 with a truncated JSON body
    "out_of_range",  # 200, one index past the end
    "duplicate",  # 200, one index twice (and one missing)
    "missing",  # 200, one result fewer than documents
    "non_finite",  # 200, one score NaN
    "http_400",
    "http_401",
    "http_413",
)
RETRYABLE_FAULTS = ("http_429", "http_500", "http_503", "slow", "drop")
INVALID_RESPONSE_FAULTS = ("malformed", "out_of_range", "duplicate", "missing", "non_finite")


@dataclass(frozen=True)
class Fault:
    """One injected failure: ``kind`` from :data:`FAULT_KINDS`; ``retry_after`` (seconds, sent as the
    ``Retry-After`` header of a 429/503); ``delay`` (seconds, for ``slow``)."""

    kind: str
    retry_after: float | None = None
    delay: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind: unknown fault {self.kind!r}; choose one of {', '.join(FAULT_KINDS)}")


_WORD = re.compile(r"\w+")


def relevance(query: str, text: str) -> float:
    """The server's score: the share of the query's words found in the text, scaled to [0, 0.9], plus a
    deterministic tie-break below 0.1 (so no two different texts tie)."""
    q = set(_WORD.findall(query.lower()))
    t = set(_WORD.findall(text.lower()))
    overlap = len(q & t) / len(q) if q else 0.0
    return 0.9 * overlap + (zlib.crc32(text.encode()) % 100_000) / 1_000_001


def expected_order(query: str, texts: Sequence[str]) -> list[int]:
    """Input indices best first, as a correct client must rank them (stable on ties)."""
    scores = [relevance(query, t) for t in texts]
    return sorted(range(len(texts)), key=lambda i: -scores[i])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: RerankServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._count("connections")

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        owner._enter()
        try:
            self._handle(owner, raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): nothing to answer
            self.close_connection = True
        finally:
            owner._leave()

    def _handle(self, owner: RerankServer, raw: bytes) -> None:
        route = {"/v2/rerank": "cohere", "/rerank": "tei", "/v1/rerank": "jina"}.get(self.path.split("?")[0])
        owner._count("requests")
        if route is None:
            return self._json(404, {"message": f"no route {self.path}"})
        owner._count(f"requests:{route}")
        if owner.api_key is not None and self.headers.get("authorization") != f"Bearer {owner.api_key}":
            return self._json(401, {"message": "invalid api token"})
        try:
            body = json.loads(raw)
            query = body["query"]
            texts = body["texts"] if route == "tei" else body["documents"]
            if not isinstance(query, str) or not isinstance(texts, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return self._json(400 if route != "tei" else 422, {"message": "invalid request body"})
        if owner.max_documents is not None and len(texts) > owner.max_documents:
            status = 413 if route == "tei" else 400
            message = f"batch size {len(texts)} > maximum allowed batch size {owner.max_documents}"
            return self._json(status, {"error": message, "message": message})
        owner._record_batch(len(texts))
        fault = owner._next_fault()
        if fault is not None:
            owner._count(f"fault:{fault.kind}")
            if fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind.startswith("http_"):
                status = int(fault.kind[5:])
                headers = {}
                if fault.retry_after is not None and status in (429, 503):
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                return self._json(status, {"message": f"injected {status}"}, headers)
            elif fault.kind == "malformed":
                return self._raw(200, b'{"results": [{"index": 0, "relev')
        if owner.latency:
            time.sleep(owner.latency)
        scores = [relevance(query, str(t)) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -scores[i])
        top_n = body.get("top_n") if route != "tei" else None
        if isinstance(top_n, int) and top_n > 0:
            order = order[:top_n]
        if route == "tei" and body.get("raw_scores"):
            scores = [math.log(s / (1 - s)) if 0 < s < 1 else (-30.0 if s <= 0 else 30.0) for s in scores]
        key = "score" if route == "tei" else "relevance_score"
        results: list[dict[str, Any]] = [{"index": i, key: scores[i]} for i in order]
        if fault is not None and results:
            if fault.kind == "out_of_range":
                results[-1]["index"] = len(texts) + 5
            elif fault.kind == "duplicate" and len(results) > 1:
                results[-1]["index"] = results[0]["index"]
            elif fault.kind == "missing":
                results.pop()
            elif fault.kind == "non_finite":
                results[0][key] = float("nan")
        if route == "tei":
            return self._json(200, results)
        if route == "jina":
            payload = {"model": body.get("model"), "results": results, "usage": {"total_tokens": len(texts)}}
            return self._json(200, payload)
        return self._json(
            200,
            {
                "id": f"rerank-{owner.counts['requests']}",
                "results": results,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
            },
        )

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(payload).encode(), headers)  # NaN is written as NaN on purpose

    def _raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class RerankServer:
    """A loopback rerank server in a background thread (a context manager; ``url`` is its base URL)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        max_documents: int | None = None,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.max_documents = max_documents
        self.latency = latency
        self.counts: Counter[str] = Counter()
        self.batch_sizes: list[int] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._queue: deque[Fault] = deque()
        self._random: tuple[float, tuple[Fault, ...], random.Random] | None = None
        self._lock = threading.Lock()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RerankServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="rerank-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RerankServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------------------------------

    def inject(self, *faults: Fault | str) -> None:
        """Queue faults for the next requests, one request each, in order."""
        with self._lock:
            self._queue.extend(f if isinstance(f, Fault) else Fault(f) for f in faults)

    def random_faults(self, rate: float, faults: Sequence[Fault | str], *, seed: int = 0) -> None:
        """From now on, each request (after the queued faults) fails with probability ``rate``, with a
        fault drawn uniformly from ``faults``. ``rate=0`` switches it off."""
        if not 0 <= rate <= 1:
            raise ValueError(f"rate: must be in [0, 1], got {rate!r}")
        chosen = tuple(f if isinstance(f, Fault) else Fault(f) for f in faults)
        with self._lock:
            self._random = (rate, chosen, random.Random(seed)) if rate and chosen else None

    def reset(self) -> None:
        """Forget queued and random faults and zero the counters."""
        with self._lock:
            self._queue.clear()
            self._random = None
            self.counts.clear()
            self.batch_sizes.clear()
            self.max_in_flight = 0

    @property
    def faults_injected(self) -> int:
        with self._lock:
            return sum(v for k, v in self.counts.items() if k.startswith("fault:"))

    # -- bookkeeping (called by the handler threads) -------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self._random is not None:
                rate, faults, rng = self._random
                if rng.random() < rate:
                    return rng.choice(faults)
            return None

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def _record_batch(self, n: int) -> None:
        with self._lock:
            self.batch_sizes.append(n)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

"""A real HTTP rerank server on loopback that speaks Cohere v2, TEI, Jina and Voyage, and fails on demand.

For tests and load tests of remote back ends (this project's and yours): clients talk to it over real
sockets, with keep-alive, so timeouts, dropped connections and connection reuse are the real thing.
Standard library only (``http.server``, one thread per connection).

Routes:

- ``POST /v2/rerank`` (Cohere): ``{"model", "query", "documents", "top_n"?}`` →
  ``{"id", "results": [{"index", "relevance_score"}], "meta": {...}}``, best first.
- ``POST /rerank`` (TEI): ``{"query", "texts", "raw_scores"?}`` → ``[{"index", "score"}]``, best first.
  With ``"documents"`` instead of ``"texts"`` it answers as Infinity does there: the Jina shape below.
- ``POST /v1/rerank`` (Jina, vLLM): ``{"model", "query", "documents", "top_n"?}`` →
  ``{"model", "results": [{"index", "relevance_score"}], "usage": {"total_tokens"}}``.
  With ``"top_k"`` or ``"truncation"`` in the body (what Voyage sends, never Jina) it answers as Voyage:
  ``{"object": "list", "data": [{"index", "relevance_score"}], "model", "usage": {"total_tokens"}}``
  (``top_k`` cuts like ``top_n``; ``total_tokens`` is the number of words of the query and documents).
- ``POST /v1/chat/completions`` (OpenAI-compatible): any ``messages`` → the answer ``"yes"`` with
  log-probabilities, so an LLM client meets the same faults.

Scores are :func:`relevance` (word overlap with a deterministic tie-break, in [0, 1)), so a test can
compute the exact ranking a correct client must return. ``api_key`` makes the server demand
``Authorization: Bearer <key>`` (401 otherwise); ``max_documents`` makes it refuse larger requests (413
for TEI, 400 for the others), as real servers do.

Faults (:data:`FAULT_KINDS`): queue them for the next requests with :meth:`RerankServer.inject`, or let
each request fail at random with :meth:`RerankServer.random_faults` (seeded). Every request, fault,
connection, batch size and the peak number of requests in flight is counted in ``counts`` / ``batch_sizes``
/ ``max_in_flight``; the query of every rerank request, as received, is kept in ``queries`` (in arrival
order), so a test can check what a client wrote into it (an instruction prefix).
"""

from __future__ import annotations

import functools
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
    "HOSTILE_FAULTS",
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
    "trickle_headers",  # sends the answer's status line and headers one byte every `interval` seconds
    "trickle_body",  # sends the headers at once, then the body one byte every `interval` seconds
    "huge_body",  # 200 with a `size`-byte body (a JSON list padded with spaces)
    "gzip_bomb",  # 200 with a gzip body that inflates to `size` bytes
    "deep_json",  # 200 with JSON nested 100,000 levels deep
    "huge_int",  # 200, one score a 401-digit integer
    "raw_deflate",  # 200, the right answer as Content-Encoding: deflate without the zlib header (valid)
)
RETRYABLE_FAULTS = ("http_429", "http_500", "http_503", "slow", "drop")
INVALID_RESPONSE_FAULTS = ("malformed", "out_of_range", "duplicate", "missing", "non_finite")
#: Answers a client must bound: trickled bytes (past its timeout) and bodies too large to keep.
HOSTILE_FAULTS = ("trickle_headers", "trickle_body", "huge_body", "gzip_bomb", "deep_json", "huge_int")


@dataclass(frozen=True)
class Fault:
    """One injected failure: ``kind`` from :data:`FAULT_KINDS`; ``retry_after`` (seconds, sent as the
    ``Retry-After`` header of a 429/503); ``delay`` (seconds, for ``slow``; for the trickles, the most
    seconds spent trickling before the rest is sent at once, so a handler always ends); ``interval``
    (seconds between trickled bytes); ``size`` (bytes, for ``huge_body`` and ``gzip_bomb``)."""

    kind: str
    retry_after: float | None = None
    delay: float = 1.0
    interval: float = 0.4
    size: int = 300 * 1024 * 1024

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


def _voyage_body(body: Any) -> bool:
    """Whether a ``/v1/rerank`` body is Voyage's (it asks ``top_k`` / ``truncation``; Jina's ``top_n``)."""
    return isinstance(body, dict) and ("top_k" in body or "truncation" in body) and "top_n" not in body


def _is(fault: Fault | None, kind: str) -> bool:
    return fault is not None and fault.kind == kind


@functools.lru_cache(maxsize=4)
def _gzipped_spaces(size: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    piece = b" " * (1 << 20)
    parts, left = [], size
    while left > 0:
        parts.append(squeeze.compress(piece[: min(left, len(piece))]))
        left -= len(piece)
    return b"".join(parts) + squeeze.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: RerankServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a timeout, a capped answer) is not an error of the server's."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


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
        routes = {
            "/v2/rerank": "cohere",
            "/rerank": "tei",
            "/v1/rerank": "jina",
            "/v1/chat/completions": "chat",
        }
        route = routes.get(self.path.split("?")[0])
        owner._count("requests")
        if route is None:
            return self._json(404, {"message": f"no route {self.path}"})
        owner._count(f"requests:{route}")
        if owner.api_key is not None and self.headers.get("authorization") != f"Bearer {owner.api_key}":
            return self._json(401, {"message": "invalid api token"})
        if route == "chat":
            return self._chat(owner, raw)
        try:
            body = json.loads(raw)
            query = body["query"]
            if route == "tei" and "texts" not in body and "documents" in body:
                route = "jina"  # Infinity: the Jina body and answer at POST /rerank
            if route == "jina" and self.path.split("?")[0] == "/v1/rerank" and _voyage_body(body):
                route = "voyage"  # Voyage: the same path, top_k / truncation asked, the answer under "data"
            texts = body["texts"] if route == "tei" else body["documents"]
            if not isinstance(query, str) or not isinstance(texts, list):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            return self._json(400 if route != "tei" else 422, {"message": "invalid request body"})
        owner._record_query(query)
        if route == "voyage":
            owner._count("requests:voyage")
        if owner.max_documents is not None and len(texts) > owner.max_documents:
            status = 413 if route == "tei" else 400
            message = f"batch size {len(texts)} > maximum allowed batch size {owner.max_documents}"
            return self._json(status, {"error": message, "message": message})
        owner._record_batch(len(texts))
        fault = owner._next_fault()
        if fault is not None and self._fail(owner, fault):
            return None
        if owner.latency:
            time.sleep(owner.latency)
        scores = [relevance(query, str(t)) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -scores[i])
        top_n = body.get("top_k" if route == "voyage" else "top_n") if route != "tei" else None
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
            elif fault.kind == "huge_int":
                results[0][key] = 10**400  # 401 digits: json writes it, float() overflows
        if route == "tei":
            payload: Any = results
        elif route == "jina":
            payload = {"model": body.get("model"), "results": results, "usage": {"total_tokens": len(texts)}}
        elif route == "voyage":
            words = len(_WORD.findall(query)) + sum(len(_WORD.findall(str(t))) for t in texts)
            payload = {
                "object": "list",
                "data": results,
                "model": body.get("model"),
                "usage": {"total_tokens": words},
            }
        else:
            payload = {
                "id": f"rerank-{owner.counts['requests']}",
                "results": results,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
            }
        if fault is not None and fault.kind.startswith("trickle_"):
            return self._trickle(json.dumps(payload).encode(), fault)
        if _is(fault, "raw_deflate"):
            return self._raw_deflate(json.dumps(payload).encode())
        return self._json(200, payload)

    def _fail(self, owner: RerankServer, fault: Fault) -> bool:
        """Act out ``fault`` before the answer; ``True`` when the answer is already sent (or dropped)."""
        owner._count(f"fault:{fault.kind}")
        if fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if fault.kind == "slow":
            time.sleep(fault.delay)
        elif fault.kind.startswith("http_"):
            status = int(fault.kind[5:])
            headers = {}
            if fault.retry_after is not None and status in (429, 503):
                headers["Retry-After"] = f"{fault.retry_after:g}"
            self._json(status, {"message": f"injected {status}"}, headers)
            return True
        elif fault.kind == "malformed":
            self._raw(200, b'{"results": [{"index": 0, "relev')
            return True
        elif fault.kind == "huge_body":
            self._huge(fault.size)
            return True
        elif fault.kind == "gzip_bomb":
            self._gzip_bomb(fault.size)
            return True
        elif fault.kind == "deep_json":
            self._raw(200, b"[" * 100_000 + b"]" * 100_000)
            return True
        return False

    def _chat(self, owner: RerankServer, raw: bytes) -> None:
        """``POST /v1/chat/completions`` (OpenAI-compatible): answers ``"yes"`` with a log-probability,
        through the same faults (a ``huge_int`` fault makes a log-probability a 401-digit integer)."""
        try:
            body = json.loads(raw)
            if not isinstance(body.get("messages"), list):
                raise TypeError
        except (ValueError, TypeError, AttributeError):
            return self._json(400, {"message": "invalid request body"})
        fault = owner._next_fault()
        if fault is not None and self._fail(owner, fault):
            return None
        if owner.latency:
            time.sleep(owner.latency)
        top = [
            {"token": "yes", "logprob": -0.1},
            {"token": "no", "logprob": -(10**400) if _is(fault, "huge_int") else -2.4},
        ]
        payload = {
            "id": f"chat-{owner.counts['requests']}",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "yes"},
                    "logprobs": {"content": [{"token": "yes", "logprob": -0.1, "top_logprobs": top}]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1},
        }
        if fault is not None and fault.kind.startswith("trickle_"):
            return self._trickle(json.dumps(payload).encode(), fault)
        if _is(fault, "raw_deflate"):
            return self._raw_deflate(json.dumps(payload).encode())
        return self._json(200, payload)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(payload).encode(), headers)  # NaN is written as NaN on purpose

    def _head(self, status: int, length: int, headers: dict[str, str] | None = None) -> bytes:
        lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}", "Content-Type: application/json"]
        lines += [f"Content-Length: {length}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _trickle(self, data: bytes, fault: Fault) -> None:
        """The answer one byte every ``fault.interval`` seconds (headers too, for ``trickle_headers``),
        for at most ``fault.delay`` seconds, then the rest at once."""
        head = self._head(200, len(data))
        if fault.kind == "trickle_body":
            self.wfile.write(head)
            self.wfile.flush()
            slow, head = data, b""
        else:
            slow, data = head + data, b""
        end = time.monotonic() + fault.delay
        sent = 0
        while sent < len(slow) and time.monotonic() < end:
            self.wfile.write(slow[sent : sent + 1])
            self.wfile.flush()
            sent += 1
            time.sleep(fault.interval)
        self.wfile.write(slow[sent:] + data)

    def _huge(self, size: int) -> None:
        """A ``size``-byte 200 answer, written in 1 MiB pieces (never held whole)."""
        self.wfile.write(self._head(200, size))
        piece = b" " * (1 << 20)
        left = size - 2
        self.wfile.write(b"[")
        while left > 0:
            self.wfile.write(piece[: min(left, len(piece))])
            left -= len(piece)
        self.wfile.write(b"]")

    def _raw_deflate(self, data: bytes) -> None:
        """A 200 answer as raw deflate (no zlib header), which some servers send as ``deflate``."""
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body = packer.compress(data) + packer.flush()
        self._raw(200, body, {"Content-Encoding": "deflate"})

    def _gzip_bomb(self, size: int) -> None:
        """A 200 answer whose gzip body inflates to ``size`` bytes of spaces (0.1% of that on the wire)."""
        data = _gzipped_spaces(size)
        self.wfile.write(self._head(200, len(data), {"Content-Encoding": "gzip"}))
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
        self.queries: list[str] = []
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
            self.queries.clear()
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

    def _record_query(self, query: str) -> None:
        with self._lock:
            self.queries.append(query)

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

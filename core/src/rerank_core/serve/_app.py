"""The ASGI application of ``rerank serve`` (Starlette): routes, admission, deadlines, auth, logs.

A request goes: auth → ready? → body (at most ``max_body_bytes``, read as it streams) → JSON → wire
request (:mod:`rerank_core.serve._wire`) → admission (the queue bound: 429 with ``Retry-After`` when full)
→ ``Reranker.arerank`` raced against the deadline and the client's disconnect → answer. Concurrent
requests share model batches through the reranker's coalescing (on by default for local models).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from rerank_core.chunking import estimated_segments
from rerank_core.errors import ArgumentError, BackendError, ConfigurationError
from rerank_core.pipeline_config import PipelineConfig
from rerank_core.remote.http import excerpt
from rerank_core.serve._metrics import Metrics
from rerank_core.serve._settings import ServeSettings
from rerank_core.serve._wire import ROUTES, WireError, WireRequest, error_body, format_response, parse_request

__all__ = ["create_app"]

access_log = logging.getLogger("rerank_core.serve.access")
log = logging.getLogger("rerank_core.serve")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_PARSING = 2  # bodies read and decoded at once per worker: bounds their memory (a few times max_body_bytes)
_PARSE_IN_THREAD = 256 * 1024  # bodies larger than this are decoded off the event loop


class _State:
    """What one app (one worker process) holds: the reranker and its queue accounting."""

    def __init__(self, settings: ServeSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.reranker: Any = None
        self.error: str | None = None
        self.model_name = settings.model_name or "reranker"
        self.pending_pairs = 0
        self.pending_requests = 0
        self.done: deque[tuple[float, int]] = deque()  # (finished at, pairs) over the last 30 s
        self.api_key = settings.api_key()
        self.score_mode = "pipeline"  # set when ready: how relevance_score is written (see _wire)
        self.parsing: asyncio.Semaphore | None = None  # made in the serving loop
        self.hooked: tuple[Any, Any] | None = None  # (coalescer, its hook before ours)

    def finished(self, pairs: int) -> None:
        """Record an answered request (the window holds the last 30 s only)."""
        now = time.monotonic()
        self.done.append((now, pairs))
        self._prune(now)

    def _prune(self, now: float) -> None:
        while self.done and now - self.done[0][0] > 30:
            self.done.popleft()

    def pairs_per_second(self) -> float:
        now = time.monotonic()
        self._prune(now)
        if not self.done:
            return 0.0
        span = max(now - self.done[0][0], 1.0)
        return sum(pairs for _, pairs in self.done) / span

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (1 to 60)."""
        rate = self.pairs_per_second()
        if rate <= 0:
            return 1
        return max(1, min(60, math.ceil(self.pending_pairs / rate)))


def create_app(pipeline: Any, settings: ServeSettings | None = None) -> Any:
    """The Starlette app serving ``pipeline``: a :class:`~rerank_core.Reranker` (served as given, ready at
    once) or a :class:`~rerank_core.pipeline_config.PipelineConfig` (built in the background while
    ``/health`` answers and ``/ready`` says 503; coalescing is turned on for a local model unless its
    options set ``coalesce``)."""
    from rerank_core.reranker import Reranker

    require_serve_extra()
    from starlette.applications import Starlette
    from starlette.routing import Route

    if not isinstance(pipeline, Reranker | PipelineConfig):
        raise ConfigurationError("pipeline", f"must be a Reranker or a PipelineConfig, got {pipeline!r}")
    settings = settings or ServeSettings()
    if not isinstance(settings, ServeSettings):
        raise ConfigurationError("settings", f"must be a ServeSettings, got {settings!r}")
    state = _State(settings, Metrics())
    if state.api_key is None:
        loopback = settings.host in ("127.0.0.1", "localhost", "::1")
        log.log(
            logging.INFO if loopback else logging.WARNING,
            "rerank serve: authentication is off (set RERANK_API_KEY or --api-key-env to demand a token)",
        )
    if settings.model_name is None and isinstance(pipeline, PipelineConfig) and pipeline.model is not None:
        state.model_name = pipeline.model.rstrip("/").split("/")[-1] or pipeline.model

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        loading = asyncio.get_running_loop().create_task(_load(state, pipeline))
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(BaseException):
                await loading
            if state.hooked is not None:  # the caller's Reranker is left as it was given
                coalescer, previous = state.hooked
                coalescer.on_batch = previous
            if state.reranker is not None and isinstance(pipeline, PipelineConfig):
                await asyncio.to_thread(state.reranker.backend.close)
            state.metrics.close()

    async def rerank(request: Any) -> Any:
        return await _rerank(state, request)

    async def health(request: Any) -> Any:
        if state.error is not None:
            return _json({"status": "failed", "error": state.error}, 503)
        return _json({"status": "ok"}, 200)

    async def ready(request: Any) -> Any:
        if state.error is not None:
            return _json({"status": "failed", "error": state.error}, 503)
        if state.reranker is None:
            return _json({"status": "loading"}, 503, {"Retry-After": "1"})
        return _json({"status": "ready"}, 200)

    async def info(request: Any) -> Any:
        try:
            _check_auth(state, request)  # the back end's fingerprint may name an upstream server
        except WireError as exc:
            return _json(error_body("cohere", exc), 401, {"WWW-Authenticate": 'Bearer realm="rerank"'})
        limits = {
            "max_documents": settings.max_documents,
            "max_body_bytes": settings.max_body_bytes,
            "max_queue_pairs": settings.max_queue_pairs,
            "max_queue_requests": settings.max_queue_requests,
            "request_timeout_s": settings.request_timeout_s,
        }
        reranker = state.reranker
        return _json(
            {
                "model_id": state.model_name,
                "backend": None if reranker is None else reranker.backend.fingerprint,
                "ready": reranker is not None,
                "auth": state.api_key is not None,
                "relevance_score": state.score_mode,
                "routes": sorted(ROUTES),
                "limits": limits,
            },
            200,
        )

    async def metrics(request: Any) -> Any:
        from starlette.responses import Response

        body, content_type = state.metrics.exposition()
        return Response(body, media_type=content_type)

    routes = [Route(path, rerank, methods=["POST"]) for path in ROUTES]
    routes += [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.rerank = state
    return app


def require_serve_extra() -> None:
    """A :class:`~rerank_core.errors.MissingDependencyError` naming ``rerank-core[serve]`` unless its
    packages are installed."""
    from rerank_core._optional import require

    for module, package in (
        ("starlette", None),
        ("uvicorn", None),
        ("prometheus_client", "prometheus-client"),
    ):
        require(module, extra="serve", feature="rerank serve", package=package)


async def _load(state: _State, pipeline: Any) -> None:
    """Build (for a config), hook the batch metrics, warm up, then mark ready."""
    try:
        if isinstance(pipeline, PipelineConfig):
            config = pipeline
            if "coalesce" not in config.options:
                config = config.replace(options={"coalesce": True})
            reranker = await asyncio.to_thread(config.build)  # (a remote back end is never coalesced)
            # Loads the model and fills the first batch shapes (a fusion needs a first-stage score).
            scores = [0.0] if reranker.options.fusion is not None else None
            await reranker.arerank("warm up", ["warm up"], first_stage_scores=scores)
        else:
            reranker = pipeline
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # reported by /health and /ready; the process stays up for the probes to see
        state.error = f"{type(exc).__name__}: {_one_line(exc)}"
        log.error("rerank serve: the pipeline failed to load: %s", state.error)
        return
    if reranker.coalescer is not None:
        state.hooked = (reranker.coalescer, reranker.coalescer.on_batch)
        reranker.coalescer.on_batch = state.metrics.observe_batch
    state.score_mode = score_mode(reranker)
    state.reranker = reranker
    state.metrics.ready.set(1)
    log.info("rerank serve: ready (%s)", reranker.backend.fingerprint)


def score_mode(reranker: Any) -> str:
    """How ``relevance_score`` (and TEI's ``score``) is written: ``"probability"`` (the pipeline's score
    is one: a calibration, a probability model, the sigmoid), ``"sigmoid"`` (a logit model's raw score,
    put through the sigmoid as TEI does, so it lies in (0, 1) as Cohere and Jina clients expect) or
    ``"pipeline"`` (a fused or profiled score, written as it is: not a probability)."""
    from rerank_core._pipeline.ranking import gives_probabilities

    options = reranker.options
    if options.fusion is not None or options.profile is not None:
        return "pipeline"
    return "probability" if gives_probabilities(options, reranker.backend.score_kind) else "sigmoid"


async def _rerank(state: _State, request: Any) -> Any:
    started = time.monotonic()
    route = request.url.path
    shape = ROUTES[route]
    settings = state.settings
    request_id = request.headers.get("x-request-id", "")
    if not _REQUEST_ID.fullmatch(request_id):
        request_id = uuid.uuid4().hex
    status, kind, documents, pairs = 500, None, 0, 0
    admitted = False
    try:
        _check_auth(state, request)
        if state.reranker is None:
            reason = "the model failed to load" if state.error else "the model is still loading"
            raise WireError(503, reason, "not_ready")
        deadline = started + _timeout(state, request)  # one deadline for the whole request
        if state.parsing is None:
            state.parsing = asyncio.Semaphore(_PARSING)
        try:  # a client trickling its body gets the request's deadline too
            data = await asyncio.wait_for(_receive(state, request, shape), deadline - time.monotonic())
        except TimeoutError:
            raise WireError(408, "the body did not arrive before the request's deadline", "timeout") from None
        wire = parse_request(route, data, max_documents=settings.max_documents)
        shape, documents = wire.shape, len(wire.documents)
        state.metrics.documents.observe(documents)
        pairs = estimated_segments(wire.documents, state.reranker.options.long_text) if documents else 0
        _admit(state, pairs)
        admitted = True
        response = await _run(state, request, wire, deadline)
        if response.error is not None:  # fail_open gave the input order: no scores a client can use
            raise WireError(503, f"back-end error: {response.error}", "backend")
        status = 200
        answer = format_response(wire, response, state.model_name, state.score_mode)
        return _json(answer, 200)
    except WireError as exc:
        status, kind = exc.status, exc.kind
        shape = exc.shape or shape
        headers = {}
        if exc.status in (429, 503):
            headers["Retry-After"] = str(state.retry_after())
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="rerank"'
        return _json(error_body(shape, exc), exc.status, headers)
    except ArgumentError as exc:  # input only the pipeline can refuse (an instruction it cannot take, ...)
        status, kind = (422 if shape == "tei" else 400), "bad_request"
        return _json(error_body(shape, _one_line(exc), kind), status)
    except BackendError as exc:
        status, kind = (503 if exc.retryable else 502), "backend"
        log.warning("rerank serve: back-end error (%s): %s", request_id, _one_line(exc))
        return _json(error_body(shape, f"back-end error: {_one_line(exc)}", kind), status)
    except Exception:
        status, kind = 500, "internal"
        log.exception("rerank serve: internal error (%s)", request_id)
        return _json(error_body(shape, "internal error", kind), 500)
    finally:
        if admitted:
            state.pending_pairs -= pairs
            state.pending_requests -= 1
            state.metrics.queue_pairs.dec(pairs)
            state.metrics.queue_requests.dec()
            if status == 200:
                state.finished(pairs)
        elapsed = time.monotonic() - started
        state.metrics.requests.labels(route, str(status)).inc()
        state.metrics.latency.labels(route).observe(elapsed)
        if kind is not None:
            state.metrics.errors.labels(kind).inc()
        if settings.access_log:
            client = request.client.host if request.client else None
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": request.method,
                        "route": route,
                        "status": status,
                        "documents": documents,
                        "pairs": pairs,
                        "ms": round(elapsed * 1000, 2),
                        "client": client,
                        **({"error": kind} if kind else {}),
                    }
                )
            )


def _check_auth(state: _State, request: Any) -> None:
    if state.api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip().encode() if scheme.lower() == "bearer" else b""
    # Constant time over the key's length whatever was sent (hmac.compare_digest).
    if not hmac.compare_digest(given, state.api_key.encode()):
        raise WireError(401, "missing or wrong bearer token", "unauthorized")


async def _read_body(request: Any, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise WireError(400, "Content-Length: not a number")
        if int(length) > limit:
            raise WireError(413, f"the body is {length} bytes, more than this server's {limit}", "too_large")
    from starlette.requests import ClientDisconnect

    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise WireError(413, f"the body is more than this server's {limit} bytes", "too_large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise WireError(499, "the client closed the connection", "disconnected") from None
    return b"".join(chunks)


def _admit(state: _State, pairs: int) -> None:
    """Take a place in the queue, or a 429 when it is full (a request alone in an empty queue always
    goes, however large: ``max_documents`` bounds it)."""
    settings = state.settings
    busy = state.pending_requests > 0
    if state.pending_requests + 1 > settings.max_queue_requests or (
        busy and state.pending_pairs + pairs > settings.max_queue_pairs
    ):
        raise WireError(
            429,
            f"the server is at capacity ({state.pending_requests} requests, "
            f"{state.pending_pairs} pairs queued)",
            "overloaded",
        )
    state.pending_pairs += pairs
    state.pending_requests += 1
    state.metrics.queue_pairs.inc(pairs)
    state.metrics.queue_requests.inc()


def _timeout(state: _State, request: Any) -> float:
    """The request's time limit: the server's, or the client's ``X-Request-Timeout`` when shorter."""
    timeout = state.settings.request_timeout_s
    asked = request.headers.get("x-request-timeout")
    if asked is not None:
        try:
            value = float(asked)
        except ValueError:
            raise WireError(400, "X-Request-Timeout: must be a number of seconds") from None
        if not math.isfinite(value) or value <= 0:
            raise WireError(400, "X-Request-Timeout: must be a number of seconds > 0")
        timeout = min(timeout, value)
    return timeout


async def _receive(state: _State, request: Any, shape: str) -> Any:
    """The request's decoded body; at most ``_PARSING`` bodies are read and decoded at once."""
    assert state.parsing is not None
    async with state.parsing:
        body = await _read_body(request, state.settings.max_body_bytes)
        return await _parse(body, shape)


async def _parse(body: bytes, shape: str) -> Any:
    """The decoded JSON (large bodies are decoded off the event loop)."""
    try:
        if len(body) > _PARSE_IN_THREAD:
            return await asyncio.to_thread(json.loads, body)
        return json.loads(body)
    except (ValueError, RecursionError):
        raise WireError(400 if shape != "tei" else 422, "the body is not valid JSON") from None


async def _run(state: _State, request: Any, wire: WireRequest, deadline: float) -> Any:
    """``arerank`` raced against the deadline and the client's disconnect; either cancels it."""
    timeout = max(0.0, deadline - time.monotonic())
    kwargs: dict[str, Any] = {}
    if wire.top_n is not None:
        kwargs["top_n"] = wire.top_n
    if wire.instruction is not None:
        kwargs["instruction"] = wire.instruction
    if wire.first_stage_scores is not None:
        kwargs["first_stage_scores"] = wire.first_stage_scores
    work = asyncio.ensure_future(state.reranker.arerank(wire.query, wire.documents, **kwargs))
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({work, watch}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
    if work in done:
        return work.result()
    if watch in done:
        raise WireError(499, "the client closed the connection", "disconnected")
    raise WireError(503, "the request's deadline passed before it was scored", "timeout")


async def _disconnected(request: Any) -> None:
    """Returns when the client goes away (the body is read whole before this runs)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _json(data: Any, status: int, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    body = json.dumps(data, ensure_ascii=False, allow_nan=False).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _one_line(exc: BaseException) -> str:
    return excerpt(str(exc), limit=500)

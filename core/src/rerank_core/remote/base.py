"""The part every remote rerank back end shares: from the core's (query, text) pairs to requests and back.

``score(pairs)`` receives the pairs of one or several queries (consecutive pairs share a query). They
become one request per query, split into requests of at most ``max_documents_per_request`` documents
(a server's per-request limit), sent with bounded concurrency, an optional requests-per-minute limit and
the retry policy, checked (every index in range, none repeated, one finite score per document) and merged
back into one score per pair in input order. The scores of a remote reranker are absolute per document
(Cohere's relevance score, TEI's sigmoid or logit), so merging the scores of several requests for one
query into one ranking is exact.

A subclass only says how to send one request: ``_send(query, texts)`` / ``_asend(query, texts)`` return
the server's ``(index, score)`` entries or raise a typed :class:`~rerank_core.errors.BackendError`.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from rerank_core.backends.base import Backend
from rerank_core.errors import BackendError, ConfigurationError, InvalidResponseError
from rerank_core.remote.http import check_ranking
from rerank_core.remote.limits import AsyncConcurrencyLimit, ConcurrencyLimit, RateLimiter, check_limit
from rerank_core.remote.retry import RetryPolicy, acall_with_retries, call_with_retries
from rerank_core.remote.stats import RemoteStats

__all__ = ["HttpClients", "PerLoop", "RemoteBackend", "plan_requests"]

C = TypeVar("C")


def plan_requests(pairs: Sequence[tuple[str, str]], max_documents: int) -> list[tuple[str, int, int]]:
    """``(query, start, end)`` slices of ``pairs``: one query each, at most ``max_documents`` long."""
    requests: list[tuple[str, int, int]] = []
    start = 0
    n = len(pairs)
    while start < n:
        query = pairs[start][0]
        end = start + 1
        while end < n and end - start < max_documents and pairs[end][0] == query:
            end += 1
        requests.append((query, start, end))
        start = end
    return requests


class PerLoop(Generic[C]):
    """One async client per event loop: an httpx ``AsyncClient`` (and its pooled connections) belongs to
    the loop that first used it. Clients of loops that are gone are dropped with the loop."""

    def __init__(self, factory: Callable[[], C], closer: Callable[[C], Awaitable[None]]) -> None:
        self._factory = factory
        self._closer = closer
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, C] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> C:
        loop = asyncio.get_running_loop()
        with self._lock:
            item = self._items.get(loop)
            if item is None:
                item = self._items[loop] = self._factory()
            return item

    async def aclose(self) -> None:
        """Close and forget the running loop's client, if it has one."""
        loop = asyncio.get_running_loop()
        with self._lock:
            item = self._items.pop(loop, None)
        if item is not None:
            await self._closer(item)


class HttpClients:
    """The httpx clients of one endpoint: a lazily built sync client (thread-safe) and one async client per
    event loop, sharing ``base_url``, ``timeout``, ``headers`` and a keep-alive pool of ``max_connections``.

    ``extra`` / ``feature`` name the rerank-core extra that installs httpx, for the error when it is missing.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        headers: dict[str, str],
        max_connections: int,
        extra: str,
        feature: str,
    ) -> None:
        self._kwargs = {"base_url": base_url, "timeout": timeout, "headers": headers}
        self._max_connections = max_connections
        self._extra = extra
        self._feature = feature
        self._sync: Any = None
        self._lock = threading.Lock()
        self._async: PerLoop[Any] = PerLoop(self._make_async, lambda client: client.aclose())

    def _httpx(self) -> Any:
        from rerank_core._optional import require

        return require("httpx", extra=self._extra, feature=self._feature)

    def _options(self) -> dict[str, Any]:
        httpx = self._httpx()
        n = self._max_connections
        return {**self._kwargs, "limits": httpx.Limits(max_connections=n, max_keepalive_connections=n)}

    def sync(self) -> Any:
        """The sync client (built on first use)."""
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    self._sync = self._httpx().Client(**self._options())
        return self._sync

    def current(self) -> Any:
        """The running event loop's async client (built on first use in that loop)."""
        return self._async.get()

    def _make_async(self) -> Any:
        return self._httpx().AsyncClient(**self._options())

    def close(self) -> None:
        """Close the sync client (async clients: :meth:`aclose` in their event loop)."""
        with self._lock:
            if self._sync is not None:
                self._sync.close()
                self._sync = None

    async def aclose(self) -> None:
        """Close the running event loop's async client."""
        await self._async.aclose()


class RemoteBackend(Backend):
    """Base class of back ends that call a rerank server.

    Args:
        max_documents_per_request: the server's per-request limit; longer candidate lists are split into
            several requests whose scores are merged into one ranking.
        max_concurrency: requests in flight at once (sync callers across threads; async callers per event
            loop); also the size of the HTTP connection pool.
        requests_per_minute: optional client-side rate limit (evenly spaced requests).
        timeout: seconds for one try of one request (connect, send, wait, read).
        retry: the :class:`RetryPolicy` (default: 4 tries, 0.5 s initial backoff with jitter, honouring
            ``Retry-After``).
    """

    blocking = False

    def __init__(
        self,
        *,
        max_documents_per_request: int,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        check_limit(max_documents_per_request, "max_documents_per_request")
        check_limit(max_concurrency, "max_concurrency")
        check_limit(requests_per_minute, "requests_per_minute", allow_none=True, integer=False)
        check_limit(timeout, "timeout", integer=False)
        if retry is None:
            retry = RetryPolicy()
        elif not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry", f"must be a RetryPolicy, got {type(retry).__name__}")
        self.max_documents_per_request = max_documents_per_request
        self.max_concurrency = max_concurrency
        self.requests_per_minute = requests_per_minute
        self.timeout = float(timeout)
        self.retry = retry
        self.stats = RemoteStats()
        self._limiter = None if requests_per_minute is None else RateLimiter(requests_per_minute)
        self._sync_limit = ConcurrencyLimit(max_concurrency)
        self._async_limit = AsyncConcurrencyLimit(max_concurrency)

    # -- what a subclass provides ------------------------------------------------------------------

    @abstractmethod
    def _send(self, query: str, texts: Sequence[str]) -> list[tuple[object, object]]:
        """One try of one request: the server's ``(index, score)`` entries, or a typed BackendError."""

    @abstractmethod
    async def _asend(self, query: str, texts: Sequence[str]) -> list[tuple[object, object]]:
        """Async :meth:`_send`."""

    _aclients: PerLoop[Any]

    async def aclose(self) -> None:
        """Close the async HTTP client of the running event loop (``close`` closes the sync one)."""
        await self._aclients.aclose()

    # -- the shared part ---------------------------------------------------------------------------

    def _attempt(self, query: str, texts: Sequence[str]) -> list[float]:
        self.stats.add("requests")
        self.stats.add("documents", len(texts))
        try:
            return check_ranking(self._send(query, texts), len(texts), backend=self.fingerprint)
        except Exception as exc:
            self._count_error(exc)
            raise

    async def _aattempt(self, query: str, texts: Sequence[str]) -> list[float]:
        self.stats.add("requests")
        self.stats.add("documents", len(texts))
        try:
            return check_ranking(await self._asend(query, texts), len(texts), backend=self.fingerprint)
        except Exception as exc:
            self._count_error(exc)
            raise

    def _count_error(self, exc: BaseException) -> None:
        if isinstance(exc, InvalidResponseError):
            kind = "invalid_response"
        elif isinstance(exc, BackendError) and exc.status_code is not None:
            kind = f"http_{exc.status_code}"
        elif isinstance(exc, BackendError) and "timed out" in exc.detail:
            kind = "timeout"
        elif isinstance(exc, BackendError):
            kind = "connection"
        else:
            kind = type(exc).__name__
        self.stats.add(f"error:{kind}")

    def _request(self, query: str, texts: Sequence[str]) -> list[float]:
        return call_with_retries(
            lambda: self._attempt(query, texts),
            self.retry,
            what=f"rerank request ({len(texts)} documents)",
            limiter=self._limiter,
            concurrency=self._sync_limit,
            stats=self.stats,
        )

    async def _arequest(self, query: str, texts: Sequence[str]) -> list[float]:
        return await acall_with_retries(
            lambda: self._aattempt(query, texts),
            self.retry,
            what=f"rerank request ({len(texts)} documents)",
            limiter=self._limiter,
            concurrency=self._async_limit,
            stats=self.stats,
        )

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self.stats.add("calls")
        plan = plan_requests(pairs, self.max_documents_per_request)
        texts = [text for _, text in pairs]
        if len(plan) == 1:
            query, start, end = plan[0]
            return self._request(query, texts[start:end])
        # Several requests: send them side by side on the back end's pool (the concurrency limit still
        # caps what is in flight across every caller). Any failure fails the whole call.
        executor = self._get_executor()
        futures = [executor.submit(self._request, query, texts[start:end]) for query, start, end in plan]
        scores: list[float] = []
        try:
            for future in futures:
                scores.extend(future.result())
        finally:
            for future in futures:
                future.cancel()
        return scores

    async def ascore(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self.stats.add("calls")
        plan = plan_requests(pairs, self.max_documents_per_request)
        texts = [text for _, text in pairs]
        tasks = [asyncio.ensure_future(self._arequest(q, texts[s:e])) for q, s, e in plan]
        try:
            parts = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        return [score for part in parts for score in part]

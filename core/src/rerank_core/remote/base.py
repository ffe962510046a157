"""The part every remote rerank back end shares: from the core's queries to requests and back.

Each query's texts become requests of at most ``max_documents_per_request`` documents (a server's
per-request limit); the requests of every query of one ``score_groups`` call are sent side by side, with
bounded concurrency, an optional requests-per-minute limit and the retry policy (a
:class:`~rerank_core.remote.retry.Dispatcher`), checked (every index in range, none repeated, one finite
score per document) and merged back into one score per text, per query, in input order. The scores of a
remote reranker are absolute per document (Cohere's relevance score, TEI's sigmoid or logit), so merging
the scores of several requests for one query into one ranking is exact.

A subclass only says how to send one request: ``_send(query, texts)`` / ``_asend(query, texts)`` return
the server's ``(index, score)`` entries or raise a typed :class:`~rerank_core.errors.BackendError`.
"""

from __future__ import annotations

import os
import threading
from abc import abstractmethod
from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from rerank_core.backends.base import Backend, GroupScores, gather_all
from rerank_core.errors import BackendError, InvalidResponseError
from rerank_core.remote._fork import after_fork_in_child
from rerank_core.remote._transport import make_async_client, make_sync_client
from rerank_core.remote.http import DEFAULT_MAX_RESPONSE_BYTES, check_encodable, check_ranking
from rerank_core.remote.limits import PerLoop, check_limit
from rerank_core.remote.retry import Dispatcher, RetryPolicy

__all__ = ["DEFAULT_DEADLINE", "HttpClients", "PerLoop", "RemoteBackend", "plan_requests", "request_slices"]


#: The default ``deadline`` of a remote call: none (a call is bounded by tries x ``timeout`` plus backoff).
DEFAULT_DEADLINE: float | None = None


def request_slices(count: int, max_documents: int) -> list[tuple[int, int]]:
    """``(start, end)`` slices of one query's ``count`` texts, each at most ``max_documents`` long."""
    return [(start, min(start + max_documents, count)) for start in range(0, count, max_documents)]


def plan_requests(pairs: Sequence[tuple[str, str]], max_documents: int) -> list[tuple[str, int, int]]:
    """``(query, start, end)`` slices of ``pairs``: one query each (a run of consecutive pairs with the
    same query), at most ``max_documents`` long."""
    requests: list[tuple[str, int, int]] = []
    offset = 0
    for query, run in groupby(pairs, key=itemgetter(0)):
        count = sum(1 for _ in run)
        requests += [(query, offset + s, offset + e) for s, e in request_slices(count, max_documents)]
        offset += count
    return requests


class HttpClients:
    """The httpx clients of one endpoint: a lazily built sync client (thread-safe) and one async client per
    event loop (closed when its loop shuts down), sharing ``base_url``, ``timeout``, ``headers``, ``auth``
    and a keep-alive pool of ``max_connections``. Each try is bounded as a whole (see
    :mod:`rerank_core.remote._transport`) and each answer to ``max_response_bytes`` after decoding.

    Per process: a forked child never uses its parent's clients (their pooled sockets are the parent's
    connections too: both would read each other's answers); it builds its own on first use.

    ``extra`` / ``feature`` name the rerank-core extra that installs httpx, for the error when it is missing.
    """

    def __init__(
        self,
        base_url: str | None,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
        max_connections: int,
        extra: str,
        feature: str,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        auth: tuple[str, str] | None = None,
        backend: str | None = None,
    ) -> None:
        self._kwargs: dict[str, Any] = {"timeout": timeout, "headers": dict(headers or {})}
        if base_url is not None:
            self._kwargs["base_url"] = base_url
        if auth is not None:
            self._kwargs["auth"] = auth
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._backend = backend
        self._extra = extra
        self._feature = feature
        self._sync: Any = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._async: PerLoop[Any] = PerLoop(self._make_async, lambda client: client.aclose())
        after_fork_in_child(self)

    def _after_fork(self) -> None:
        # The parent's sockets are left alone (closing them here could end the parent's requests).
        self._sync = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _httpx(self) -> Any:
        from rerank_core._optional import require

        return require("httpx", extra=self._extra, feature=self._feature)

    def _options(self) -> dict[str, Any]:
        return {
            **self._kwargs,
            "max_connections": self._max_connections,
            "max_response_bytes": self._max_response_bytes,
            "backend": self._backend,
        }

    def sync(self) -> Any:
        """The sync client (built on first use, once per process)."""
        if self._pid != os.getpid():  # forked without the at-fork hook having run
            self._after_fork()
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    self._sync = make_sync_client(self._httpx(), **self._options())
        return self._sync

    def current(self) -> Any:
        """The running event loop's async client (built on first use in that loop)."""
        return self._async.get()

    def _make_async(self) -> Any:
        return make_async_client(self._httpx(), **self._options())

    @property
    def open_loops(self) -> int:
        """How many event loops hold an async client now."""
        return len(self._async)

    def close(self) -> None:
        """Close the sync client (an async client: :meth:`aclose` in its loop, or at the loop's shutdown)."""
        with self._lock:
            if self._sync is not None:
                if self._pid == os.getpid():
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
        timeout: seconds for one whole try of one request (connect, send, wait and read together: a server
            that trickles its answer is cut off at ``timeout``, not at ``timeout`` per byte).
        retry: the :class:`RetryPolicy` (default: 4 tries, 0.5 s initial backoff with jitter, honouring
            ``Retry-After``).
        deadline: opt-in seconds for a whole call, every try, backoff and the time queued for the rate
            limit and concurrency slots included (of a ``rerank_many``, all its requests together). When
            it passes, the last try's error is raised (and ``fail_open`` applies). Default ``None``: no
            such bound; since ``timeout`` bounds a whole try, a call is bounded by the tries (``retry``,
            4 by default) x ``timeout`` plus the backoffs (time spent queueing aside).
        max_response_bytes: the largest answer read, after decoding (default 8 MiB); a larger one (a huge
            body, a compression bomb) stops with :class:`~rerank_core.remote.http.ResponseTooLargeError`
            (an :class:`~rerank_core.errors.InvalidResponseError`, not retried).
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
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__()
        check_limit(max_documents_per_request, "max_documents_per_request")
        check_limit(max_response_bytes, "max_response_bytes")
        self._dispatch = Dispatcher(
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            timeout=timeout,
            retry=retry,
            deadline=deadline,
        )
        self.deadline = self._dispatch.deadline
        self.max_response_bytes = max_response_bytes
        self.max_documents_per_request = max_documents_per_request
        self.max_concurrency = max_concurrency
        self.requests_per_minute = requests_per_minute
        self.timeout = self._dispatch.timeout
        self.retry = self._dispatch.retry
        self.stats = self._dispatch.stats

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
        self._count_try(texts)
        try:
            return check_ranking(self._send(query, texts), len(texts), backend=self.fingerprint)
        except Exception as exc:
            self._count_error(exc)
            raise

    async def _aattempt(self, query: str, texts: Sequence[str]) -> list[float]:
        self._count_try(texts)
        try:
            return check_ranking(await self._asend(query, texts), len(texts), backend=self.fingerprint)
        except Exception as exc:
            self._count_error(exc)
            raise

    def _count_try(self, texts: Sequence[str]) -> None:
        self.stats.add("requests")
        self.stats.add("documents", len(texts))

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

    def _request(self, query: str, texts: Sequence[str], deadline: float | None = None) -> list[float]:
        self._dispatch.backend = self.fingerprint
        return self._dispatch.call(lambda: self._attempt(query, texts), _what(texts), deadline=deadline)

    async def _arequest(self, query: str, texts: Sequence[str], deadline: float | None = None) -> list[float]:
        self._dispatch.backend = self.fingerprint
        return await self._dispatch.acall(
            lambda: self._aattempt(query, texts), _what(texts), deadline=deadline
        )

    def _plan(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[int, str, list[str]]]:
        """``(group, query, texts)`` of every request: each query's texts cut at the server's limit.
        Text that cannot be sent as UTF-8 (a lone surrogate) is refused here, naming the argument, before
        any request (retrying could never help)."""
        plan = []
        for g, (query, texts) in enumerate(groups):
            texts = list(texts)
            check_encodable(query, texts)
            for start, end in request_slices(len(texts), self.max_documents_per_request):
                plan.append((g, query, texts[start:end]))
        return plan

    @staticmethod
    def _merge(
        groups: Sequence[tuple[str, Sequence[str]]],
        plan: list[tuple[int, str, list[str]]],
        parts: list[list[float]],
    ) -> list[GroupScores]:
        scores: list[list[float]] = [[] for _ in groups]
        for (g, _, _), part in zip(plan, parts, strict=True):
            scores[g].extend(part)
        return [GroupScores(s) for s in scores]

    def score(self, query: str, texts: Sequence[str]) -> GroupScores:
        return self.score_groups([(query, texts)])[0]

    async def ascore(self, query: str, texts: Sequence[str]) -> GroupScores:
        return (await self.ascore_groups([(query, texts)]))[0]

    def score_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        """Every request of every query at once (one flat list, so none waits on another in the pool); the
        concurrency limit still caps what is in flight across every caller. Any failure fails the call."""
        plan = self._plan(groups)
        if not plan:
            return [GroupScores([]) for _ in groups]
        self.stats.add("calls")
        deadline = self._dispatch.deadline_from_now()
        if len(plan) == 1:
            return self._merge(groups, plan, [self._request(plan[0][1], plan[0][2], deadline)])
        executor = self._get_executor()
        futures = [executor.submit(self._request, query, texts, deadline) for _, query, texts in plan]
        try:
            parts = [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()
        return self._merge(groups, plan, parts)

    async def ascore_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        plan = self._plan(groups)
        if not plan:
            return [GroupScores([]) for _ in groups]
        self.stats.add("calls")
        deadline = self._dispatch.deadline_from_now()
        parts = await gather_all(self._arequest(query, texts, deadline) for _, query, texts in plan)
        return self._merge(groups, plan, parts)


def _what(texts: Sequence[str]) -> str:
    return f"rerank request ({len(texts)} documents)"

"""The part every remote rerank back end shares: from the core's queries to requests and back.

Each query's texts become requests of at most ``max_documents_per_request`` documents (a server's
per-request limit); the requests of every query of one ``score_groups`` call are sent side by side, with
bounded concurrency, an optional requests-per-minute limit and the retry policy (a
:class:`~rerank_core.remote.retry.Dispatcher`), checked (every index in range, none repeated, one finite
score per document) and merged back into one score per text, per query, in input order. The scores of a
remote reranker are absolute per document (Cohere's relevance score, TEI's sigmoid or logit), so merging
the scores of several requests for one query into one ranking is exact.

A subclass only says how to send one request: ``_send(query, texts)`` / ``_asend(query, texts)`` return
the server's ``(index, score)`` entries (an :class:`Entries` when the answer also reports ``usage``) or
raise a typed :class:`~rerank_core.errors.BackendError`.

Instructions (``Reranker(backend, instruction=...)``): none of the rerank APIs spoken here has a field for
one (Cohere v2 ``/v2/rerank``, Jina / vLLM ``/v1/rerank``, TEI ``/rerank``, Infinity, Voyage
``/v1/rerank`` all take a ``query`` and ``documents`` only), so every remote back end writes the
instruction into the query, before it, in one format: :func:`instructed_query`
(``f"{instruction}\n{query}"``). Voyage documents this for its instruction-following rerank-2.5 models
(natural-language instructions given with the query); for the others it is the plain, model-agnostic
form (a model not trained with instructions reads them as part of the query). It is done in one place,
before the request is planned, so that what bounds a query (the lone-surrogate check) applies to the
query sent.
"""

from __future__ import annotations

import os
import threading
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from rerank_core.backends.base import Backend, GroupScores, PairLimit, gather_all
from rerank_core.errors import BackendError, InvalidResponseError
from rerank_core.remote._fork import after_fork_in_child
from rerank_core.remote._transport import make_async_client, make_sync_client
from rerank_core.remote.http import DEFAULT_MAX_RESPONSE_BYTES, check_encodable, check_ranking
from rerank_core.remote.limits import PerLoop, check_limit
from rerank_core.remote.retry import Dispatcher, RetryPolicy

__all__ = [
    "DEFAULT_DEADLINE",
    "INSTRUCTION_FORMAT",
    "Entries",
    "HttpClients",
    "PerLoop",
    "RemoteBackend",
    "instructed_query",
    "plan_requests",
    "request_slices",
]


#: The default ``deadline`` of a remote call: none (a call is bounded by tries x ``timeout`` plus backoff).
DEFAULT_DEADLINE: float | None = None


#: How a remote back end sends an instruction: before the query, on its own line (see the module docstring).
INSTRUCTION_FORMAT = "{instruction}\n{query}"


def instructed_query(query: str, instruction: str | None) -> str:
    """The query a remote rerank API receives under ``instruction``: ``query`` itself when there is none,
    else :data:`INSTRUCTION_FORMAT` (``f"{instruction}\\n{query}"``), the same for every protocol."""
    if instruction is None:
        return query
    return INSTRUCTION_FORMAT.format(instruction=instruction, query=query)


class Entries(list[tuple[object, object]]):
    """The ``(index, score)`` entries of one answer, with what the server says the request cost
    (``usage``, e.g. Voyage's ``{"api_total_tokens": N}``), added to the query's ``RerankResponse.usage``."""

    def __init__(self, entries: Sequence[tuple[object, object]] = (), usage: Mapping[str, int] | None = None):
        super().__init__(entries)
        self.usage: dict[str, int] = dict(usage or {})


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

    Instructions: ``score`` / ``ascore`` / ``score_groups`` / ``ascore_groups`` take ``instruction=``
    (``None``: none), sent as part of the query (:func:`instructed_query`), since no rerank API has a field
    for one. The Reranker keys its cache and fingerprint with the instruction; the back end's own
    fingerprint does not change.
    """

    blocking = False
    instruction_support: str | None = "a query prefix (the instruction, a newline, then the query)"

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

    def _attempt(self, query: str, texts: Sequence[str]) -> GroupScores:
        self._count_try(texts)
        try:
            return self._checked_part(self._send(query, texts), texts)
        except Exception as exc:
            self._count_error(exc)
            raise

    async def _aattempt(self, query: str, texts: Sequence[str]) -> GroupScores:
        self._count_try(texts)
        try:
            return self._checked_part(await self._asend(query, texts), texts)
        except Exception as exc:
            self._count_error(exc)
            raise

    def _checked_part(self, entries: list[tuple[object, object]], texts: Sequence[str]) -> GroupScores:
        scores = check_ranking(entries, len(texts), backend=self.fingerprint)
        return GroupScores(scores, getattr(entries, "usage", None) or {})

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

    def _request(self, query: str, texts: Sequence[str], deadline: float | None = None) -> GroupScores:
        self._dispatch.backend = self.fingerprint
        return self._dispatch.call(lambda: self._attempt(query, texts), _what(texts), deadline=deadline)

    async def _arequest(self, query: str, texts: Sequence[str], deadline: float | None = None) -> GroupScores:
        self._dispatch.backend = self.fingerprint
        return await self._dispatch.acall(
            lambda: self._aattempt(query, texts), _what(texts), deadline=deadline
        )

    def pair_limit(self, *, instruction: str | None = None) -> PairLimit | None:
        """``None``: the server truncates (the core has no tokenizer for it), with or without instruction."""
        return None

    @staticmethod
    def _instructed_query(query: str, instruction: str | None) -> str:
        """The query sent under ``instruction`` (:func:`instructed_query`, the same for every protocol)."""
        return instructed_query(query, instruction)

    def _plan(
        self, groups: Sequence[tuple[str, Sequence[str]]], instruction: str | None = None
    ) -> list[tuple[int, str, list[str]]]:
        """``(group, query, texts)`` of every request: each query's texts cut at the server's limit, the
        query as sent (with ``instruction`` written into it). Text that cannot be sent as UTF-8 (a lone
        surrogate) is refused here, naming the argument, before any request (retrying could never help)."""
        plan = []
        for g, (query, texts) in enumerate(groups):
            texts = list(texts)
            query = self._instructed_query(query, instruction)
            check_encodable(query, texts)
            for start, end in request_slices(len(texts), self.max_documents_per_request):
                plan.append((g, query, texts[start:end]))
        return plan

    @staticmethod
    def _merge(
        groups: Sequence[tuple[str, Sequence[str]]],
        plan: list[tuple[int, str, list[str]]],
        parts: list[GroupScores],
    ) -> list[GroupScores]:
        scores: list[list[float]] = [[] for _ in groups]
        usage: list[dict[str, int]] = [{} for _ in groups]
        for (g, _, _), part in zip(plan, parts, strict=True):
            scores[g].extend(part.scores)
            for key, value in part.usage.items():
                usage[g][key] = usage[g].get(key, 0) + value
        return [GroupScores(s, u) for s, u in zip(scores, usage, strict=True)]

    def score(self, query: str, texts: Sequence[str], *, instruction: str | None = None) -> GroupScores:
        return self.score_groups([(query, texts)], instruction=instruction)[0]

    async def ascore(
        self, query: str, texts: Sequence[str], *, instruction: str | None = None
    ) -> GroupScores:
        return (await self.ascore_groups([(query, texts)], instruction=instruction))[0]

    def score_groups(
        self, groups: Sequence[tuple[str, Sequence[str]]], *, instruction: str | None = None
    ) -> list[GroupScores]:
        """Every request of every query at once (one flat list, so none waits on another in the pool); the
        concurrency limit still caps what is in flight across every caller. Any failure fails the call.
        ``instruction`` is written into each query (:func:`instructed_query`)."""
        plan = self._plan(groups, instruction)
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

    async def ascore_groups(
        self, groups: Sequence[tuple[str, Sequence[str]]], *, instruction: str | None = None
    ) -> list[GroupScores]:
        plan = self._plan(groups, instruction)
        if not plan:
            return [GroupScores([]) for _ in groups]
        self.stats.add("calls")
        deadline = self._dispatch.deadline_from_now()
        parts = await gather_all(self._arequest(query, texts, deadline) for _, query, texts in plan)
        return self._merge(groups, plan, parts)


def _what(texts: Sequence[str]) -> str:
    return f"rerank request ({len(texts)} documents)"

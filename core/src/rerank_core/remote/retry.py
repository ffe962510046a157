"""Retries with exponential backoff and jitter, written once for every remote back end.

A request is a callable that either returns or raises a :class:`~rerank_core.errors.BackendError` whose
class says whether trying again can help (:class:`RetryableBackendError`: 429, 5xx, timeouts, dropped
connections) or not (:class:`NonRetryableBackendError`: a bad key, a bad request). An
:class:`InvalidResponseError` (the server answered, but not with a valid ranking) is retried when the
policy says so: reranking is read-only, so sending the same request again is always safe, and behind a
load balancer the next try usually reaches a healthy replica.

The delay before retry ``k`` (1-based) is ``min(max_delay, initial_delay * multiplier ** (k - 1))`` with
"equal jitter" (half fixed, half uniformly random, so a fleet of clients does not retry in lockstep and no
delay is zero), and never less than the server's ``Retry-After`` (capped at ``max_retry_after``).
After the last try the last error is raised again, with ``attempts`` set.

Time: each try is bounded as a whole (connect, send, wait, read) by ``timeout``, so a call is bounded by
tries x ``timeout`` plus the backoffs (and the time spent queueing for the rate limiter and a concurrency
slot, which no try counts). An opt-in ``deadline`` bounds a whole call, queueing, every try and backoff
included: a try gets what is left of the deadline when that is less than ``timeout`` (and a timeout it
causes says so), and a retry whose backoff would end past the deadline is not made (the last error is
raised).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from rerank_core.errors import BackendError, ConfigurationError, InvalidResponseError, RetryableBackendError
from rerank_core.remote._transport import try_deadline
from rerank_core.remote.limits import AsyncConcurrencyLimit, ConcurrencyLimit, RateLimiter, check_limit
from rerank_core.remote.stats import RemoteStats

__all__ = ["Dispatcher", "RetryPolicy", "acall_with_retries", "call_with_retries"]

T = TypeVar("T")
logger = logging.getLogger("rerank_core.remote")


@dataclass(frozen=True)
class RetryPolicy:
    """How a remote back end retries.

    Args:
        max_attempts: tries in all, the first included (``1``: never retry).
        initial_delay: seconds before the first retry (before jitter).
        max_delay: cap on the backoff delay.
        multiplier: growth of the delay per retry.
        max_retry_after: cap on a server's ``Retry-After``; a server asking for longer gets this.
        retry_invalid_responses: retry answers that are not a valid ranking (malformed JSON, bad indices).
    """

    max_attempts: int = 4
    initial_delay: float = 0.5
    max_delay: float = 20.0
    multiplier: float = 2.0
    max_retry_after: float = 60.0
    retry_invalid_responses: bool = True

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_attempts, int)
            or isinstance(self.max_attempts, bool)
            or self.max_attempts < 1
        ):
            raise ConfigurationError("retry.max_attempts", f"must be an int >= 1, got {self.max_attempts!r}")
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not _finite_number(value) or value < 0:
                raise ConfigurationError(f"retry.{name}", f"must be a finite number >= 0, got {value!r}")
        if not _finite_number(self.multiplier) or self.multiplier < 1:
            raise ConfigurationError(
                "retry.multiplier", f"must be a finite number >= 1, got {self.multiplier!r}"
            )

    def should_retry(self, error: BackendError, attempt: int) -> bool:
        """Whether to try again after ``error`` on try number ``attempt`` (1-based)."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(error, InvalidResponseError):
            return self.retry_invalid_responses and getattr(error, "retry_may_help", True)
        return error.retryable

    def delay(self, retry: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        backoff = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        jittered = backoff / 2 + (rng or random).uniform(0, backoff / 2)
        if retry_after is not None:
            jittered = max(jittered, min(retry_after, self.max_retry_after))
        return jittered


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _give_up_or_wait(
    policy: RetryPolicy, error: BackendError, attempt: int, stats: RemoteStats | None, what: str
) -> float:
    """After try ``attempt`` failed with ``error``: raise it (with ``attempts`` set) when the policy says
    to stop, else count and log the retry and return how long to wait before it."""
    if not policy.should_retry(error, attempt):
        if stats is not None:
            stats.add("failures")
        error.attempts = attempt
        raise error from error.__cause__
    delay = policy.delay(attempt, error.retry_after)
    if stats is not None:
        stats.add("retries")
    logger.info(
        "%s failed on try %d (%s: %s); retrying in %.2fs",
        what,
        attempt,
        type(error).__name__,
        error.detail,
        delay,
    )
    return delay


def _out_of_time(
    error: BackendError | None, tries: int, stats: RemoteStats | None, what: str, backend: str | None
) -> BackendError:
    """The error to raise when a call's deadline is spent after ``tries`` tries (the last try's error,
    if there was one)."""
    if stats is not None:
        stats.add("failures")
        stats.add("deadline_exceeded")
    if error is None:
        error = RetryableBackendError(
            f"{what}: the call's deadline passed before a try could start", backend=backend
        )
    error.attempts = max(tries, 1)
    logger.info("%s: the call's deadline passed after %d tries; giving up", what, tries)
    return error


def call_with_retries(
    send: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str = "request",
    limiter: RateLimiter | None = None,
    concurrency: ConcurrencyLimit | None = None,
    stats: RemoteStats | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float | None = None,
    deadline: float | None = None,
    backend: str | None = None,
    deadline_seconds: float | None = None,
) -> T:
    """Call ``send()`` until it returns, retrying as ``policy`` says. Each try waits for the rate limiter,
    then holds one concurrency slot while in flight (never while backing off). With ``timeout``, each try
    runs under :func:`~rerank_core.remote._transport.try_deadline` (the sync clients' sockets honour it);
    ``deadline`` (a ``time.monotonic()`` instant; ``deadline_seconds``, its length, for the error) bounds
    the whole call."""
    attempt = 0
    error: BackendError | None = None
    while True:
        attempt += 1
        if limiter is not None:
            limiter.acquire()
        budget = _budget(timeout, deadline)
        if budget is not None and budget <= 0:
            raise _out_of_time(error, attempt - 1, stats, what, backend) from None
        try:
            with concurrency or contextlib.nullcontext():
                budget = _budget(timeout, deadline)
                if budget is None:
                    return send()
                with try_deadline(budget, _cut_by(timeout, budget, deadline_seconds)):
                    return send()
        except BackendError as exc:
            error = exc
            delay = _give_up_or_wait(policy, error, attempt, stats, what)
        if deadline is not None and time.monotonic() + delay >= deadline:
            raise _out_of_time(error, attempt, stats, what, backend) from error.__cause__
        sleep(delay)


def _budget(timeout: float | None, deadline: float | None) -> float | None:
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    return left if timeout is None else min(timeout, left)


def _cut_by(timeout: float | None, budget: float, deadline_seconds: float | None) -> str | None:
    """What ends a try of ``budget`` seconds when it is the call's deadline, not ``timeout``."""
    if timeout is not None and budget >= timeout:
        return None
    length = "" if deadline_seconds is None else f" of {deadline_seconds:.3g}s"
    return f"the call's deadline{length} passed ({max(budget, 0.0):.3g}s were left for this try)"


async def acall_with_retries(
    send: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str = "request",
    limiter: RateLimiter | None = None,
    concurrency: AsyncConcurrencyLimit | None = None,
    stats: RemoteStats | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (a per-try bound, applied with asyncio.timeout)
    deadline: float | None = None,
    backend: str | None = None,
    deadline_seconds: float | None = None,
) -> T:
    """Async :func:`call_with_retries` (waits with ``asyncio.sleep``; each try is bounded as a whole by
    ``asyncio.timeout``)."""
    attempt = 0
    error: BackendError | None = None
    while True:
        attempt += 1
        if limiter is not None:
            await limiter.aacquire()
        budget = _budget(timeout, deadline)
        if budget is not None and budget <= 0:
            raise _out_of_time(error, attempt - 1, stats, what, backend) from None
        try:
            async with concurrency or contextlib.nullcontext():
                budget = _budget(timeout, deadline)
                if budget is None:
                    return await send()
                try:
                    async with asyncio.timeout(max(budget, 0.0)):
                        return await send()
                except TimeoutError as exc:
                    if stats is not None:
                        stats.add("error:timeout")
                    cut_by = _cut_by(timeout, budget, deadline_seconds)
                    raise RetryableBackendError(
                        f"timed out: {cut_by}"
                        if cut_by
                        else f"timed out after {budget:.3g}s (the whole try: connect, send, wait, read)",
                        backend=backend,
                    ) from exc
        except BackendError as exc:
            error = exc
            delay = _give_up_or_wait(policy, error, attempt, stats, what)
        if deadline is not None and time.monotonic() + delay >= deadline:
            raise _out_of_time(error, attempt, stats, what, backend) from error.__cause__
        await asyncio.sleep(delay)


class Dispatcher:
    """How one endpoint's requests are sent: the retry policy, an optional client-side rate limit, at most
    ``max_concurrency`` requests in flight (sync across threads, async per event loop), a ``timeout`` per
    try (the whole try), an opt-in ``deadline`` per call (queueing, every try and backoff; ``None``, the
    default: no bound but the tries', tries x ``timeout`` plus backoff), and the counts in ``stats``.
    Shared by the remote rerank back ends and the OpenAI-compatible LLM.

    Raises :class:`~rerank_core.errors.ConfigurationError` naming the argument for a bad limit or policy.
    """

    def __init__(
        self,
        *,
        max_concurrency: int,
        requests_per_minute: float | None,
        timeout: float,
        retry: RetryPolicy | None,
        deadline: float | None = None,
    ) -> None:
        check_limit(max_concurrency, "max_concurrency")
        check_limit(requests_per_minute, "requests_per_minute", allow_none=True, integer=False)
        check_limit(timeout, "timeout", integer=False)
        check_limit(deadline, "deadline", allow_none=True, integer=False)
        self.deadline = None if deadline is None else float(deadline)
        self.backend: str | None = None  # the owner's fingerprint, named in the errors raised here
        if retry is None:
            retry = RetryPolicy()
        elif not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry", f"must be a RetryPolicy, got {type(retry).__name__}")
        self.retry = retry
        self.timeout = float(timeout)
        self.stats = RemoteStats()
        self._limiter = None if requests_per_minute is None else RateLimiter(requests_per_minute)
        self._sync_limit = ConcurrencyLimit(max_concurrency)
        self._async_limit = AsyncConcurrencyLimit(max_concurrency)

    def deadline_from_now(self) -> float | None:
        """The ``time.monotonic()`` instant by which a call starting now must end (``None``: no deadline)."""
        return None if self.deadline is None else time.monotonic() + self.deadline

    def call(self, send: Callable[[], T], what: str, *, deadline: float | None = None) -> T:
        """:func:`call_with_retries` under this endpoint's policy and limits; ``deadline`` (an instant of
        ``time.monotonic()``, default: ``self.deadline`` from now) bounds the whole call."""
        return call_with_retries(
            send,
            self.retry,
            what=what,
            limiter=self._limiter,
            concurrency=self._sync_limit,
            stats=self.stats,
            timeout=self.timeout,
            deadline=self.deadline_from_now() if deadline is None else deadline,
            backend=self.backend,
            deadline_seconds=self.deadline,
        )

    async def acall(self, send: Callable[[], Awaitable[T]], what: str, *, deadline: float | None = None) -> T:
        """:func:`acall_with_retries` under this endpoint's policy and limits."""
        return await acall_with_retries(
            send,
            self.retry,
            what=what,
            limiter=self._limiter,
            concurrency=self._async_limit,
            stats=self.stats,
            timeout=self.timeout,
            deadline=self.deadline_from_now() if deadline is None else deadline,
            backend=self.backend,
            deadline_seconds=self.deadline,
        )

"""Client-side limits of a remote back end: requests per minute, and requests in flight.

- :class:`RateLimiter` spaces requests evenly at ``requests_per_minute`` (each request reserves the next
  free slot under a lock, then waits for it outside the lock), shared by sync and async callers.
- :class:`ConcurrencyLimit` caps sync requests in flight across threads; :class:`AsyncConcurrencyLimit`
  caps async requests in flight, with one semaphore per event loop (an asyncio semaphore belongs to one
  loop; a back end may be used from several, e.g. one ``asyncio.run`` per call).
- :class:`PerLoop` keeps one object per event loop (an async client, a semaphore), closed and dropped when
  the loop shuts down, and never inherited by a forked child.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

from rerank_core.errors import ConfigurationError
from rerank_core.remote._fork import after_fork_in_child

__all__ = ["AsyncConcurrencyLimit", "ConcurrencyLimit", "PerLoop", "RateLimiter", "check_limit"]

C = TypeVar("C")


def check_limit(value: object, argument: str, *, allow_none: bool = False, integer: bool = True) -> None:
    """Raise :class:`ConfigurationError` unless ``value`` is a positive int (or number, or ``None``)."""
    if value is None and allow_none:
        return
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if (
        not ok_type
        or isinstance(value, bool)
        or not math.isfinite(value)  # type: ignore[arg-type]
        or value <= 0  # type: ignore[operator]
    ):
        kind = "an int" if integer else "a number"
        raise ConfigurationError(
            argument, f"must be {kind} > 0{' or None' if allow_none else ''}, got {value!r}"
        )


class RateLimiter:
    """Evenly spaced requests: at most ``requests_per_minute``, with no burst."""

    def __init__(self, requests_per_minute: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        check_limit(requests_per_minute, "requests_per_minute", integer=False)
        self.requests_per_minute = float(requests_per_minute)
        self._interval = 60.0 / self.requests_per_minute
        self._clock = clock
        self._next = -math.inf
        self._lock = threading.Lock()
        after_fork_in_child(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Reserve the next slot; returns how many seconds to wait for it."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
            return slot - now

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)

    async def aacquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


class ConcurrencyLimit:
    """At most ``limit`` sync requests in flight (a context manager around each request)."""

    def __init__(self, limit: int) -> None:
        check_limit(limit, "max_concurrency")
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)
        after_fork_in_child(self)

    def _after_fork(self) -> None:  # the parent's threads in flight do not exist here
        self._semaphore = threading.BoundedSemaphore(self.limit)

    def __enter__(self) -> None:
        self._semaphore.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._semaphore.release()


class PerLoop(Generic[C]):
    """One object per event loop, made by ``factory`` on first use in that loop: an httpx ``AsyncClient``
    (and its pooled connections) or an asyncio semaphore belongs to the loop that first used it.

    Such an object holds its loop (its sockets and futures do), so a dictionary keyed weakly on the loop
    alone would keep both forever: 150 ``asyncio.run`` calls left 150 open sockets and 150 live loops. So
    each object is released with its loop: a small async generator started in the loop is closed by the
    loop's ``shutdown_asyncgens()`` (what ``asyncio.run`` and ``asyncio.Runner`` do before closing it),
    and then ``closer`` closes the object while the loop still runs. Objects of loops closed some other way
    are dropped on the next :meth:`get`. A forked child starts with none (see ``remote._fork``).
    """

    def __init__(
        self, factory: Callable[[], C], closer: Callable[[C], Awaitable[None]] | None = None
    ) -> None:
        self._factory = factory
        self._closer = closer
        self._items: dict[asyncio.AbstractEventLoop, tuple[C, object]] = {}
        self._lock = threading.Lock()
        after_fork_in_child(self)

    def _after_fork(self) -> None:
        self._items = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many loops hold an object now."""
        with self._lock:
            return len(self._items)

    def get(self) -> C:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._items.get(loop)
            if entry is not None:
                return entry[0]
            for other in [other for other in self._items if other.is_closed()]:
                del self._items[other]  # closed without shutdown_asyncgens: drop (nothing to await on)
            item = self._factory()
            self._items[loop] = (item, self._watch(loop))
            return item

    def _watch(self, loop: asyncio.AbstractEventLoop) -> object:
        """An async generator, started in ``loop``, whose closing at the loop's shutdown releases its
        object (the loop keeps async generators only weakly: the entry holds it)."""
        released = self._release

        async def guard() -> Any:
            try:
                yield
            finally:
                await released(loop)

        agen = guard()
        step = agen.asend(None)  # runs the loop's firstiter hook: the loop now knows the generator
        with contextlib.suppress(StopIteration):
            step.send(None)
        return agen

    async def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            entry = self._items.pop(loop, None)
        if entry is not None and self._closer is not None:
            with contextlib.suppress(Exception):  # closing is best effort at shutdown
                await self._closer(entry[0])

    async def aclose(self) -> None:
        """Close and forget the running loop's object, if it has one."""
        await self._release(asyncio.get_running_loop())


class AsyncConcurrencyLimit:
    """At most ``limit`` async requests in flight per event loop (``async with`` around each request)."""

    def __init__(self, limit: int) -> None:
        check_limit(limit, "max_concurrency")
        self.limit = limit
        self._semaphores: PerLoop[asyncio.Semaphore] = PerLoop(lambda: asyncio.Semaphore(limit))

    async def __aenter__(self) -> None:
        await self._semaphores.get().acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._semaphores.get().release()

"""Coalescing: concurrent async rerank calls share model batches.

A web server or an agent fleet makes many small ``arerank`` calls at once (10–50 candidates each). Scored
one call at a time, each makes its own small batches on the model's single worker thread. With
coalescing, calls that arrive within ``max_wait_ms`` of each other (or while the model is busy with the
previous batch) are scored together in one pass of the reranker's multi-query path, the same one
``rerank_many`` uses (every pair of every call length-sorted into shared batches), then each call gets its
own results back. Nothing is mixed: each call keeps its own validated job, and per-call results equal
what the call would get alone (up to float rounding from different batch padding).

- ``max_wait_ms``: how long the first call of a batch waits for company (default 2 ms). While a batch is
  being scored, new calls queue up and go in the next batch without waiting.
- ``max_pairs``: a batch closes when it holds this many pairs (default 512; one larger call still goes
  whole).
- ``max_pending_pairs``: the queue bound. A call that would take the queue past it waits for room
  (backpressure) instead of growing memory without limit (default 50,000 pairs).

Pairs are counted as the work they will be: a candidate counts as the windows it will be split into,
estimated before any tokenizer runs from its length (one per 1,000 characters, within the long-text
policy's ``max_windows`` / ``max_chars``: :func:`rerank_core.chunking.estimated_segments`), not as one.
Admission is first come, first served: a call waiting for room is never overtaken by later calls, so a call
larger than the bound waits only for the calls admitted before it to finish (then runs alone), however many
small calls keep arriving behind it.

If a shared batch fails (a back-end error, or one caller's input that only scoring can refuse, such as
``long_text="error"``), each call of that batch is scored again on its own, so a failure reaches only the
calls it belongs to.

Only back ends that run in-process (``blocking``) are coalesced; a remote back end already sends one
request per query and gains nothing.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rerank_core.errors import ConfigurationError
from rerank_core.remote.base import PerLoop

__all__ = ["Coalescer", "Coalescing"]


@dataclass(frozen=True)
class Coalescing:
    """Settings of coalescing (see the module docstring)."""

    max_wait_ms: float = 2.0
    max_pairs: int = 512
    max_pending_pairs: int = 50_000

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_wait_ms, int | float)
            or isinstance(self.max_wait_ms, bool)
            or not math.isfinite(self.max_wait_ms)
            or self.max_wait_ms < 0
        ):
            raise ConfigurationError(
                "coalesce.max_wait_ms", f"must be a number >= 0, got {self.max_wait_ms!r}"
            )
        for name in ("max_pairs", "max_pending_pairs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"coalesce.{name}", f"must be an int >= 1, got {value!r}")

    @classmethod
    def parse(cls, value: object) -> Coalescing | None:
        """``None``/``False`` (off), ``True`` (defaults) or a :class:`Coalescing`."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        raise ConfigurationError("coalesce", f"must be True, False, None or a Coalescing, got {value!r}")


@dataclass(eq=False)  # compared by identity: a cancelled call removes exactly its own entry
class _Waiting:
    jobs: list[Any]
    size: int
    future: asyncio.Future[None]


@dataclass
class _LoopState:
    queue: deque[_Waiting] = field(default_factory=deque)
    pending: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Condition = field(default_factory=asyncio.Condition)
    worker: asyncio.Task[None] | None = None
    waiting: deque[object] = field(default_factory=deque)  # admission tickets, first come first served


class Coalescer:
    """Gathers the job lists of concurrent calls and scores them together with ``score_jobs``.

    ``score_jobs(jobs)`` scores a list of jobs in place (the reranker's ``_score_sync``); ``run_blocking``
    runs it off the event loop (the back end's bounded thread pool). One batch is in flight per event loop.
    """

    def __init__(
        self,
        score_jobs: Callable[[list[Any]], None],
        run_blocking: Callable[..., Awaitable[Any]],
        settings: Coalescing,
    ) -> None:
        self.settings = settings
        self._score_jobs = score_jobs
        self._run_blocking = run_blocking
        self._states: PerLoop[_LoopState] = PerLoop(_LoopState, _noop_close)
        #: Called with (calls, pairs) of each shared batch before it is scored (``rerank serve``'s batch
        #: size metrics); must be cheap and must not raise.
        self.on_batch: Callable[[int, int], None] | None = None

    async def submit(self, jobs: list[Any], size: int) -> None:
        """Score ``jobs`` (``size`` pairs, windows counted) in a shared batch, returning once scored."""
        state = self._states.get()
        limit = self.settings.max_pending_pairs
        ticket = object()
        async with state.room:
            # Backpressure, first come first served: wait until this call is the first in line and there
            # is room, or the queue is empty (a call larger than the bound still runs, alone).
            state.waiting.append(ticket)
            try:
                await state.room.wait_for(
                    lambda: (
                        state.waiting[0] is ticket and (state.pending == 0 or state.pending + size <= limit)
                    )
                )
            except BaseException:  # cancelled while waiting: leave the line, let the next one look
                state.waiting.remove(ticket)
                state.room.notify_all()
                raise
            state.waiting.popleft()
            state.pending += size
            state.room.notify_all()  # the next in line may fit too
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = _Waiting(jobs, size, future)
        state.queue.append(waiting)
        state.arrived.set()
        if state.worker is None or state.worker.done():
            state.worker = asyncio.get_running_loop().create_task(self._work(state))
        try:
            await future
        except asyncio.CancelledError:
            # The caller stopped waiting (a deadline, a client gone). Not batched yet: its work is taken
            # out of the queue and its room given back, so abandoned calls are never scored. Already in
            # a batch: that batch (at most max_pairs) finishes and the results are dropped.
            if waiting in state.queue:
                state.queue.remove(waiting)
                state.pending -= size
                asyncio.get_running_loop().create_task(_notify(state))
            raise

    async def _work(self, state: _LoopState) -> None:
        wait = self.settings.max_wait_ms / 1000
        while state.queue:
            # The first call of a batch waits up to max_wait for company (unless the batch is full).
            if wait > 0 and self._queued(state) < self.settings.max_pairs:
                deadline = asyncio.get_running_loop().time() + wait
                while self._queued(state) < self.settings.max_pairs:
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    state.arrived.clear()
                    try:
                        await asyncio.wait_for(state.arrived.wait(), remaining)
                    except TimeoutError:
                        break
            batch = [state.queue.popleft()]
            total = batch[0].size
            while state.queue and total + state.queue[0].size <= self.settings.max_pairs:
                item = state.queue.popleft()
                batch.append(item)
                total += item.size
            await self._run(batch)
            async with state.room:
                state.pending -= total
                state.room.notify_all()

    @staticmethod
    def _queued(state: _LoopState) -> int:
        return sum(item.size for item in state.queue)

    async def _run(self, batch: list[_Waiting]) -> None:
        jobs = [job for item in batch for job in item.jobs]
        if self.on_batch is not None:
            self.on_batch(len(batch), sum(item.size for item in batch))
        try:
            await self._run_blocking(self._score_jobs, jobs)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0].future, exc)
                return
            # A shared batch failed: score each call alone so an error reaches only its own call.
            for item in batch:
                try:
                    await self._run_blocking(self._score_jobs, item.jobs)
                except Exception as own:
                    _settle(item.future, own)
                else:
                    _settle(item.future, None)
            return
        for item in batch:
            _settle(item.future, None)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; its results are dropped
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


async def _notify(state: _LoopState) -> None:
    async with state.room:
        state.room.notify_all()


async def _noop_close(state: _LoopState) -> None:
    return None

"""Coalescing: concurrent ``arerank`` calls share model batches, each call gets exactly its own results,
failures reach only the calls they belong to, and the queue is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from fakes import FakeBackend, NativeAsyncBackend

from rerank_core import Reranker
from rerank_core.backends import CrossEncoderBackend
from rerank_core.coalescing import Coalescing
from rerank_core.errors import ConfigurationError, FailOpenWarning, InvalidInputError, RetryableBackendError

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


def call_docs(k: int, n: int = 10) -> list[str]:
    return [f"{WORDS[(k + i) % len(WORDS)]} {WORDS[(k * 3 + i) % len(WORDS)]} doc {k}-{i}" for i in range(n)]


async def many(reranker: Reranker, calls: int, n: int = 10) -> list:
    return await asyncio.gather(*(reranker.arerank(f"query {k}", call_docs(k, n)) for k in range(calls)))


def test_concurrent_calls_share_batches_and_get_their_own_results() -> None:
    plain_backend, shared_backend = FakeBackend(), FakeBackend()
    plain = asyncio.run(many(Reranker(plain_backend), 24))
    coalesced = asyncio.run(many(Reranker(shared_backend, coalesce=True), 24))
    assert len(plain_backend.calls) == 24
    assert len(shared_backend.calls) <= 3  # the calls arrived together: one or a few shared passes
    for a, b in zip(plain, coalesced, strict=True):
        assert a.query == b.query and a.indices == b.indices
        assert [r.raw_score for r in a] == [r.raw_score for r in b]
        assert [r.text for r in a] == [r.text for r in b]


def test_batches_respect_max_pairs() -> None:
    backend = FakeBackend()
    reranker = Reranker(backend, coalesce=Coalescing(max_wait_ms=20, max_pairs=30))
    asyncio.run(many(reranker, 12, n=10))
    assert all(len(call) <= 30 for call in backend.calls)
    assert sum(len(call) for call in backend.calls) == 120 and len(backend.calls) >= 4


def test_the_queue_is_bounded() -> None:
    backend = FakeBackend()
    reranker = Reranker(backend, coalesce=Coalescing(max_wait_ms=5, max_pairs=1000, max_pending_pairs=25))
    results = asyncio.run(many(reranker, 10, n=10))
    assert [len(r) for r in results] == [10] * 10
    assert max(len(call) for call in backend.calls) <= 25  # never more than the bound was queued
    big = asyncio.run(reranker.arerank("q", call_docs(0, 60)))  # one call above the bound still runs
    assert len(big) == 60


def test_a_bad_input_fails_only_its_own_call() -> None:
    backend = FakeBackend(max_length=12)
    reranker = Reranker(backend, long_text="error", coalesce=Coalescing(max_wait_ms=20))

    async def run() -> list:
        calls = [reranker.arerank(f"query {k}", call_docs(k, 5)) for k in range(6)]
        calls.insert(3, reranker.arerank("q", ["a text far too long for the tiny limit " * 3]))
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(run())
    assert isinstance(outcomes[3], InvalidInputError)
    assert all(len(o) == 5 for i, o in enumerate(outcomes) if i != 3)


class Flaky(FakeBackend):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if self.failures:
            self.failures -= 1
            raise RetryableBackendError("busy")
        return super().score_pairs(pairs)


def test_a_failed_shared_batch_is_rescored_call_by_call() -> None:
    backend = Flaky()
    results = asyncio.run(many(Reranker(backend, coalesce=Coalescing(max_wait_ms=20)), 5))
    assert [len(r) for r in results] == [10] * 5  # the first shared pass failed, each call then succeeded


def test_back_end_errors_still_follow_fail_open() -> None:
    class Down(FakeBackend):
        def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
            raise RetryableBackendError("down")

    with pytest.warns(FailOpenWarning):
        results = asyncio.run(many(Reranker(Down(), coalesce=True, fail_open=True), 4))
    assert all(not r.reranked for response in results for r in response)
    with pytest.raises(RetryableBackendError):
        asyncio.run(many(Reranker(Down(), coalesce=True), 3))


def test_a_cancelled_call_does_not_disturb_the_others() -> None:
    reranker = Reranker(FakeBackend(), coalesce=Coalescing(max_wait_ms=30))

    async def run() -> list:
        tasks = [asyncio.ensure_future(reranker.arerank(f"q{k}", call_docs(k))) for k in range(5)]
        await asyncio.sleep(0.005)
        tasks[2].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(run())
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert all(len(o) == 10 for i, o in enumerate(outcomes) if i != 2)


def test_cancelled_calls_waiting_in_the_queue_are_never_scored() -> None:
    """A caller that stops waiting (a server's deadline, a client gone) gives its place back: its pairs
    are not scored later, and the queue's room is free for the next call at once."""
    import threading

    gate = threading.Event()

    class Slow(FakeBackend):
        def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
            gate.wait(10)
            return super().score_pairs(pairs)

    backend = Slow()
    reranker = Reranker(backend, coalesce=Coalescing(max_wait_ms=0, max_pending_pairs=25))

    async def run() -> list:
        first = asyncio.ensure_future(reranker.arerank("first", call_docs(0)))  # in the model
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(reranker.arerank(f"q{k}", call_docs(k))) for k in range(1, 3)]
        await asyncio.sleep(0.05)
        for task in queued:
            task.cancel()
        await asyncio.sleep(0)
        late = asyncio.ensure_future(reranker.arerank("late", call_docs(3)))  # room only if given back
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, late, *queued, return_exceptions=True)

    outcomes = asyncio.run(run())
    assert len(outcomes[0]) == 10 and len(outcomes[1]) == 10
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes[2:])
    queries = {q for call in backend.calls for q, _ in call}
    assert queries == {"first", "late"}  # the cancelled calls' pairs never reached the model


def test_real_model_scores_match_uncoalesced(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(str(tiny_ce_path), device="cpu", batch_size=16)
    plain = asyncio.run(many(Reranker(backend), 12, n=8))
    coalesced = asyncio.run(many(Reranker(backend, coalesce=True), 12, n=8))
    for a, b in zip(plain, coalesced, strict=True):
        assert a.indices == b.indices
        for x, y in zip(a, b, strict=True):
            assert x.raw_score == pytest.approx(y.raw_score, abs=1e-5)


def test_remote_back_ends_are_not_coalesced_and_options_are_checked() -> None:
    assert Reranker(NativeAsyncBackend(), coalesce=True).coalescer is None
    for bad, argument in [
        ({"max_wait_ms": -1}, "coalesce.max_wait_ms"),
        ({"max_pairs": 0}, "coalesce.max_pairs"),
        ({"max_pending_pairs": 2.5}, "coalesce.max_pending_pairs"),
    ]:
        with pytest.raises(ConfigurationError, match=argument):
            Coalescing(**bad)
    with pytest.raises(ConfigurationError, match="coalesce"):
        Reranker(FakeBackend(), coalesce="yes")  # type: ignore[arg-type]

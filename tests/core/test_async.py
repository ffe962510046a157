"""Async paths: results identical to sync, 50 concurrent calls each get their own, the loop never blocks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fakes import FakeBackend

from rerank_core import InvalidInputError, Reranker
from rerank_core.backends import CrossEncoderBackend

TEXTS = [f"document number {i} about topic {i % 7} " * (1 + i % 5) for i in range(12)]


async def test_fifty_concurrent_arerank_calls_each_get_their_own_results(tiny_ce_path: Path) -> None:
    reranker = Reranker(CrossEncoderBackend(tiny_ce_path, max_length=64), top_n=5)
    queries = [f"query about topic {i}" for i in range(50)]
    candidates = [TEXTS[i % 5 :] for i in range(50)]
    expected = [reranker.rerank(q, c) for q, c in zip(queries, candidates, strict=True)]
    got = await asyncio.gather(*(reranker.arerank(q, c) for q, c in zip(queries, candidates, strict=True)))
    for e, g in zip(expected, got, strict=True):
        assert g.query == e.query
        assert g.indices == e.indices
        assert [r.raw_score for r in g] == pytest.approx([r.raw_score for r in e], abs=1e-5)


async def test_the_event_loop_keeps_running_while_the_model_works() -> None:
    class Slow(FakeBackend):
        def score_pairs(self, pairs):  # type: ignore[no-untyped-def]
            time.sleep(0.3)  # stands for model work
            return super().score_pairs(pairs)

    reranker = Reranker(Slow())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await reranker.arerank("q", ["a", "b"])
    task.cancel()
    assert ticks >= 10  # a blocked loop would have ticked ~0 times in 0.3 s


async def test_arerank_many_matches_rerank_many() -> None:
    r = Reranker(FakeBackend(), top_n=2)
    queries, cands = ["q1", "q2"], [["a", "b", "c"], ["d"]]
    sync = r.rerank_many(queries, cands)
    got = await r.arerank_many(queries, cands)
    assert [x.indices for x in got] == [x.indices for x in sync]


async def test_async_empty_and_bad_input() -> None:
    backend = FakeBackend()
    r = Reranker(backend)
    assert (await r.arerank("q", [])).results == ()
    assert backend.calls == []
    with pytest.raises(InvalidInputError, match="top_n"):
        await r.arerank("q", ["a"], top_n=0)
    with pytest.raises(InvalidInputError, match="query"):
        await r.arerank("", ["a"])


async def test_non_blocking_backend_uses_native_ascore() -> None:
    class Remote(FakeBackend):
        blocking = False
        async_calls = 0

        def score_pairs(self, pairs):  # type: ignore[no-untyped-def]
            raise AssertionError("the sync path must not be used from async code")

        async def ascore_pairs(self, pairs):  # type: ignore[no-untyped-def]
            type(self).async_calls += 1
            await asyncio.sleep(0)
            return [float(len(t)) for _, t in pairs]

    r = Reranker(Remote(), cache=True)
    resp = await r.arerank("q", ["aaa", "a", "aa"])
    assert resp.indices == [0, 2, 1] and Remote.async_calls == 1
    again = await r.arerank("q", ["a", "aa"])
    assert Remote.async_calls == 1 and again.usage["cache_hits"] == 2

"""The exact-pair score cache: hits never reach the model; bounded; thread-safe; per back end."""

from __future__ import annotations

import pytest
from fakes import FakeBackend, run_in_threads

from rerank_core import Reranker, ScoreCache


def test_a_hit_never_calls_the_model() -> None:
    backend = FakeBackend()
    r = Reranker(backend, cache=True)
    first = r.rerank("q", ["a", "b", "c"])
    assert backend.pairs_scored == 3 and first.usage["cache_hits"] == 0
    second = r.rerank("q", ["c", "a", "b"])
    assert backend.pairs_scored == 3 and len(backend.calls) == 1
    assert second.usage["cache_hits"] == 3 and second.usage["pairs_scored"] == 0
    assert {x.text: x.raw_score for x in first} == {x.text: x.raw_score for x in second}


def test_partial_hits_score_only_the_misses() -> None:
    backend = FakeBackend()
    r = Reranker(backend, cache=True)
    r.rerank("q", ["a", "b"])
    r.rerank("q", ["b", "c", "a", "d"])
    assert backend.calls[1] == [("q", "c"), ("q", "d")]


def test_keys_include_query_and_backend_fingerprint() -> None:
    cache = ScoreCache()
    one, two = FakeBackend(name="one"), FakeBackend(name="two")
    Reranker(one, cache=cache).rerank("q", ["a"])
    Reranker(two, cache=cache).rerank("q", ["a"])
    Reranker(one, cache=cache).rerank("other", ["a"])
    assert one.pairs_scored == 2 and two.pairs_scored == 1


def test_no_cache_by_default() -> None:
    backend = FakeBackend()
    r = Reranker(backend)
    r.rerank("q", ["a"])
    r.rerank("q", ["a"])
    assert backend.pairs_scored == 2 and r.cache is None


def test_lru_bound_and_recency() -> None:
    cache = ScoreCache(maxsize=2)
    cache.put_many("f", [(("q", "a"), 1.0), (("q", "b"), 2.0)])
    assert cache.get_many("f", [("q", "a")]) == [1.0]  # a is now most recent
    cache.put_many("f", [(("q", "c"), 3.0)])  # evicts b
    assert len(cache) == 2
    assert cache.get_many("f", [("q", "a"), ("q", "b"), ("q", "c")]) == [1.0, None, 3.0]
    assert (cache.hits, cache.misses) == (3, 1)


def test_no_collision_between_field_boundaries() -> None:
    cache = ScoreCache()
    cache.put_many("f", [(("ab", "c"), 1.0)])
    assert cache.get_many("f", [("a", "bc")]) == [None]


def test_thread_safe_under_contention() -> None:
    cache = ScoreCache(maxsize=500)

    def work(k: int) -> None:
        for i in range(300):
            cache.put_many("f", [((f"q{k}", f"t{i}"), float(i))])
            got = cache.get_many("f", [(f"q{k}", f"t{i}")])[0]
            assert got in (None, float(i))

    run_in_threads(work, 8)
    assert len(cache) == 500


def test_cache_size_option() -> None:
    r = Reranker(FakeBackend(), cache=10)
    assert r.cache is not None and r.cache.maxsize == 10
    with pytest.raises(ValueError, match="cache_size"):
        ScoreCache(0)

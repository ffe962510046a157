"""The back-end contract: ``score(query, texts) -> GroupScores`` per query, ``PairwiseBackend`` for models
that score pairs (shared batches across queries), and the old ``score(self, pairs)`` contract kept working
for one release with a DeprecationWarning."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence

import pytest
from fakes import FakeBackend, hash_score

from rerank_core import NonRetryableBackendError, Reranker
from rerank_core.backends import Backend, GroupScores, PairwiseBackend
from rerank_core.types import ScoreKind

DOCS = ["alpha", "beta", "gamma", "delta"]


def length_score(query: str, text: str) -> float:
    return float(len(text)) + 0.1 * len(query)


class PerQuery(Backend):
    """The new contract, nothing else: one query in, one score per text and its usage out."""

    def __init__(self, *, native: bool = False, max_concurrency: int = 1) -> None:
        super().__init__()
        self.blocking = not native
        self.max_concurrency = max_concurrency
        self.queries: list[str] = []
        self.in_flight = self.most_in_flight = 0

    @property
    def fingerprint(self) -> str:
        return "per-query"

    @property
    def score_kind(self) -> ScoreKind:
        return "logit"

    def score(self, query: str, texts: Sequence[str]) -> GroupScores:
        self.queries.append(query)
        return GroupScores([length_score(query, t) for t in texts], {"calls": 1})

    async def ascore(self, query: str, texts: Sequence[str]) -> GroupScores:
        if self.blocking:
            return await super().ascore(query, texts)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        if query == "fail":
            raise NonRetryableBackendError("no", backend=self.fingerprint)
        return self.score(query, texts)


def test_score_groups_calls_score_once_per_query_and_skips_empty_groups() -> None:
    backend = PerQuery()
    got = backend.score_groups([("q1", DOCS[:2]), ("q2", []), ("q3", DOCS)])
    assert backend.queries == ["q1", "q3"]
    assert [g.scores for g in got] == [
        [length_score("q1", t) for t in DOCS[:2]],
        [],
        [length_score("q3", t) for t in DOCS],
    ]
    assert [dict(g.usage) for g in got] == [{"calls": 1}, {}, {"calls": 1}]


def test_the_reranker_runs_on_the_new_contract() -> None:
    response = Reranker(PerQuery()).rerank("q", ["a", "ccc", "bb"])
    assert response.indices == [1, 2, 0]
    many = Reranker(PerQuery(native=True)).rerank_many(["q1", "q2"], [["a", "bb"], ["ccc"]])
    assert [r.indices for r in many] == [[1, 0], [0]]
    async_many = asyncio.run(Reranker(PerQuery(native=True)).arerank_many(["q1", "q2"], [["a", "bb"], ["c"]]))
    assert [r.indices for r in async_many] == [[1, 0], [0]]


def test_ascore_groups_runs_queries_at_once_within_max_concurrency() -> None:
    backend = PerQuery(native=True, max_concurrency=2)
    groups = [(f"q{i}", DOCS) for i in range(6)]
    got = asyncio.run(backend.ascore_groups(groups))
    assert [g.scores for g in got] == [[length_score(q, t) for t in DOCS] for q, _ in groups]
    assert backend.most_in_flight == 2
    blocking = PerQuery()  # the default ascore: the bounded thread pool
    assert [g.scores for g in asyncio.run(blocking.ascore_groups(groups))] == [g.scores for g in got]


def test_a_failed_query_fails_the_async_call() -> None:
    backend = PerQuery(native=True, max_concurrency=4)
    with pytest.raises(NonRetryableBackendError, match="no"):
        asyncio.run(backend.ascore_groups([("q1", DOCS), ("fail", DOCS), ("q3", DOCS)]))


def test_the_wrong_number_of_scores_is_an_error() -> None:
    class Short(PerQuery):
        def score(self, query: str, texts: Sequence[str]) -> GroupScores:
            return GroupScores(super().score(query, texts).scores[:-1])

    with pytest.raises(NonRetryableBackendError, match="2 scores for 3 pairs"):
        Short().score_groups([("q", DOCS[:3])])


def test_a_pairwise_backend_shares_one_call_across_queries() -> None:
    backend = FakeBackend()
    groups = [("q1", DOCS[:2]), ("q2", []), ("q3", DOCS[2:])]
    got = backend.score_groups(groups)
    assert backend.calls == [[(q, t) for q, texts in groups for t in texts]]
    assert [g.scores for g in got] == [[hash_score(q, t) for t in texts] for q, texts in groups]
    assert backend.score("q1", DOCS[:2]).scores == got[0].scores
    assert [g.scores for g in asyncio.run(backend.ascore_groups(groups))] == [g.scores for g in got]
    assert len(backend.calls) == 3
    assert isinstance(backend, PairwiseBackend)


def test_the_old_call_with_pairs_still_answers_with_a_warning() -> None:
    backend = FakeBackend()
    pairs = [("q1", "alpha"), ("q2", "beta")]
    with pytest.warns(DeprecationWarning, match=r"backend.score\(pairs\)"):
        got = backend.score(pairs)
    assert got == [hash_score(q, t) for q, t in pairs]
    with pytest.warns(DeprecationWarning, match=r"backend.ascore\(pairs\)"):
        assert asyncio.run(backend.ascore(pairs)) == got
    with pytest.warns(DeprecationWarning):  # not pairwise: answered query by query
        assert PerQuery().score(pairs) == [length_score(q, t) for q, t in pairs]


# -- the old contract: a subclass that overrides score(self, pairs) ----------------------------------------


def define_old_backend() -> type[Backend]:
    class OldBackend(Backend):
        """Written against the old documented contract."""

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[list[tuple[str, str]]] = []

        @property
        def fingerprint(self) -> str:
            return "old"

        @property
        def score_kind(self) -> ScoreKind:
            return "logit"

        def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
            self.calls.append(list(pairs))
            return [length_score(q, t) for q, t in pairs]

    return OldBackend


def test_an_old_contract_subclass_warns_once_when_defined() -> None:
    with pytest.warns(DeprecationWarning, match="old back-end contract") as record:
        define_old_backend()
    assert len(record) == 1 and record[0].filename == __file__  # points at the class statement
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = PerQuery()  # the new contract: no warning at all
        new.score_groups([("q", DOCS)])


def test_an_old_contract_subclass_keeps_working() -> None:
    with pytest.warns(DeprecationWarning):
        old_cls = define_old_backend()
    backend = old_cls()
    response = Reranker(backend).rerank("q", ["a", "ccc", "bb"])
    assert response.indices == [1, 2, 0]
    assert [r.raw_score for r in response] == [length_score("q", t) for t in ("ccc", "bb", "a")]
    backend.calls.clear()
    many = Reranker(backend).rerank_many(["q1", "q2"], [["a", "bb"], ["ccc"]])
    assert [r.indices for r in many] == [[1, 0], [0]]
    assert backend.calls == [[("q1", "a"), ("q1", "bb"), ("q2", "ccc")]]  # one call, as before
    assert asyncio.run(Reranker(backend).arerank("q", ["a", "bb"])).indices == [1, 0]
    # both call forms answer
    assert backend.score([("q", "a")]) == [length_score("q", "a")]
    assert backend.score("q", ["a", "bb"]) == GroupScores([length_score("q", t) for t in ("a", "bb")])
    with pytest.warns(DeprecationWarning):

        class ShortOld(old_cls):  # type: ignore[valid-type,misc]
            def score(self, pairs):  # type: ignore[no-untyped-def]
                return super().score(pairs)[:-1]  # an old class above an old class

    with pytest.raises(NonRetryableBackendError, match="2 scores for 3 pairs"):
        Reranker(ShortOld()).rerank("q", ["a", "b", "c"])


def test_old_overrides_of_a_new_pairwise_backend_and_native_async() -> None:
    with pytest.warns(DeprecationWarning):

        class Slow(FakeBackend):
            def score(self, pairs):  # type: ignore[no-untyped-def]
                return [s + 100 for s in super().score(pairs)]  # the parent's scorer, no recursion

        class Remote(FakeBackend):
            blocking = False

            def score(self, pairs):  # type: ignore[no-untyped-def]
                raise AssertionError("the async path must not call the sync scorer")

            async def ascore(self, pairs):  # type: ignore[no-untyped-def]
                await asyncio.sleep(0)
                return [float(len(t)) for _, t in pairs]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # calls made inside an adapted old method do not warn again
        slow = Slow({"a": 1.0, "b": 2.0})
        assert [g.scores for g in slow.score_groups([("q", ["a", "b"]), ("r", ["b"])])] == [
            [101.0, 102.0],
            [102.0],
        ]
        assert slow.calls == [[("q", "a"), ("q", "b"), ("r", "b")]]
        assert asyncio.run(Reranker(slow).arerank("q", ["a", "b"])).indices == [1, 0]
        remote = Remote()
        got = asyncio.run(remote.ascore_groups([("q", ["aaa", "a"]), ("r", ["aa"])]))
        assert [g.scores for g in got] == [[3.0, 1.0], [2.0]]
        assert asyncio.run(Reranker(remote).arerank("q", ["a", "aaa"])).indices == [1, 0]


def test_an_old_subclass_overriding_score_groups_keeps_shared_batches_through_super() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)

        class Old(Backend):
            fingerprint = "old-groups"  # type: ignore[assignment]
            score_kind = "logit"  # type: ignore[assignment]

            def __init__(self) -> None:
                super().__init__()
                self.calls: list[int] = []

            def score(self, pairs):  # type: ignore[no-untyped-def,override]
                self.calls.append(len(pairs))
                return [length_score(q, t) for q, t in pairs]

            def score_groups(self, groups):  # type: ignore[no-untyped-def]
                return [GroupScores(g.scores, {"n": 1}) for g in super().score_groups(groups)]

            async def ascore_groups(self, groups):  # type: ignore[no-untyped-def]
                return [GroupScores(g.scores, {"n": 1}) for g in await super().ascore_groups(groups)]

        backend = Old()
        responses = Reranker(backend).rerank_many(["q", "p"], [["a", "bb"], ["ccc"]])
        assert backend.calls == [3]  # one shared call, as the old default made
        assert [r.usage["n"] for r in responses] == [1, 1]
        asyncio.run(Reranker(backend).arerank_many(["q", "p"], [["a", "bb"], ["ccc"]]))
        assert backend.calls == [3, 3]

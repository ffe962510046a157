"""``Reranker(fail_open=True)``: a failed back end gives the input order back, flagged, never a crash;
without it the typed error propagates. Bad input raises either way."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest
from fakes import FakeBackend

from rerank_core import Candidate, Reranker
from rerank_core.errors import (
    FailOpenWarning,
    InvalidInputError,
    NonRetryableBackendError,
    RetryableBackendError,
)
from rerank_core.integrations import NOT_RERANKED_KEY, result_metadata


class FailingBackend(FakeBackend):
    def __init__(self, error: Exception) -> None:
        super().__init__(kind="probability")
        self.error = error

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise self.error


DOCS = ["alpha", "beta", "gamma", "delta"]


def test_without_fail_open_the_typed_error_propagates() -> None:
    reranker = Reranker(FailingBackend(RetryableBackendError("server busy", backend="x")))
    with pytest.raises(RetryableBackendError, match="server busy"):
        reranker.rerank("q", DOCS)


@pytest.mark.parametrize("error", [RetryableBackendError("503"), NonRetryableBackendError("401 bad key")])
def test_fail_open_returns_the_input_order_flagged(error: Exception) -> None:
    reranker = Reranker(FailingBackend(error), fail_open=True, top_n=3, score_threshold=0.9)
    candidates = [Candidate(t, id=i, metadata={"k": i}) for i, t in enumerate(DOCS)]
    with pytest.warns(FailOpenWarning, match="input order"):
        response = reranker.rerank("q", candidates, first_stage_scores=[4.0, 3.0, 2.0, 1.0])
    # top_n still applies, the threshold cannot (no scores): the first three in input order.
    assert response.indices == [0, 1, 2]
    assert response.error is not None and type(error).__name__ in response.error
    assert response.usage["failed"] == 1
    for r in response:
        assert r.reranked is False
        assert math.isnan(r.raw_score) and math.isnan(r.relevance_score)
        assert r.id == r.index and r.metadata is candidates[r.index].metadata
        assert r.first_stage_score == 4.0 - r.index
        assert result_metadata(r)[NOT_RERANKED_KEY] is True


def test_fail_open_many_and_async() -> None:
    reranker = Reranker(FailingBackend(RetryableBackendError("timeout")), fail_open=True)
    with pytest.warns(FailOpenWarning):
        many = reranker.rerank_many(["q1", "q2"], [DOCS, DOCS[:2]])
    assert [r.indices for r in many] == [[0, 1, 2, 3], [0, 1]]
    with pytest.warns(FailOpenWarning):
        single = asyncio.run(reranker.arerank("q", DOCS))
    assert single.indices == [0, 1, 2, 3] and all(not r.reranked for r in single)
    with pytest.warns(FailOpenWarning):
        amany = asyncio.run(reranker.arerank_many(["q"], [DOCS]))
    assert amany[0].indices == [0, 1, 2, 3]


def test_fail_open_does_not_hide_bad_input_or_succeeding_calls() -> None:
    reranker = Reranker(FailingBackend(RetryableBackendError("x")), fail_open=True)
    with pytest.raises(InvalidInputError, match="query"):
        reranker.rerank("", DOCS)
    ok = Reranker(FakeBackend({"beta": 2.0, "alpha": 1.0}), fail_open=True).rerank("q", ["alpha", "beta"])
    assert ok.indices == [1, 0] and ok.error is None and all(r.reranked for r in ok)
    assert NOT_RERANKED_KEY not in result_metadata(ok[0])


def test_fail_open_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="fail_open"):
        Reranker(FakeBackend(), fail_open="yes")  # type: ignore[arg-type]

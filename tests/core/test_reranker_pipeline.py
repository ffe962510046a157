"""The pipeline's policy (ordering, ties, top_n, thresholds, normalization, bad input, no mutation)
on a back end whose scores are known in advance."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from fakes import FakeBackend

from rerank_core import (
    Candidate,
    ConfigurationError,
    InvalidInputError,
    NonRetryableBackendError,
    Reranker,
    RerankError,
)

SCORES = {"a": 2.0, "b": -1.0, "c": 0.5, "d": 3.0, "e": 0.5}


def test_orders_by_score_and_reports_input_index_and_raw_score() -> None:
    resp = Reranker(FakeBackend(SCORES)).rerank("q", ["a", "b", "c", "d"])
    assert resp.indices == [3, 0, 2, 1]
    assert [r.raw_score for r in resp] == [3.0, 2.0, 0.5, -1.0]
    assert [r.text for r in resp] == ["d", "a", "c", "b"]
    assert resp.num_candidates == 4 and resp.score_kind == "logit" and resp.backend == "fake:fake"


def test_ties_keep_input_order() -> None:
    resp = Reranker(FakeBackend(SCORES)).rerank("q", ["e", "c", "a", "c", "e"])
    assert resp.indices == [2, 0, 1, 3, 4]


def test_duplicate_texts_are_each_returned_once() -> None:
    resp = Reranker(FakeBackend(SCORES)).rerank("q", ["a", "a", "a"])
    assert sorted(resp.indices) == [0, 1, 2]


@pytest.mark.parametrize(
    ("top_n", "threshold", "expected"),
    [
        (None, None, [3, 0, 2, 4, 1]),
        (2, None, [3, 0]),
        (10, None, [3, 0, 2, 4, 1]),
        (None, 0.5, [3, 0, 2, 4]),  # threshold is inclusive
        (None, 0.6, [3, 0]),
        (1, 0.5, [3]),  # threshold first, then the cut
        (3, 2.5, [3]),  # fewer pass the threshold than top_n
        (2, 10.0, []),
    ],
)
def test_top_n_and_threshold(top_n: int | None, threshold: float | None, expected: list[int]) -> None:
    r = Reranker(FakeBackend(SCORES), top_n=top_n, score_threshold=threshold)
    assert r.rerank("q", ["a", "b", "c", "d", "e"]).indices == expected


def test_per_call_overrides_and_none_clears_the_default() -> None:
    r = Reranker(FakeBackend(SCORES), top_n=1, score_threshold=1.0)
    assert r.rerank("q", list("abcde")).indices == [3]
    assert r.rerank("q", list("abcde"), top_n=2).indices == [3, 0]
    assert r.rerank("q", list("abcde"), top_n=None, score_threshold=None).indices == [3, 0, 2, 4, 1]


def test_normalization_none_keeps_raw() -> None:
    resp = Reranker(FakeBackend(SCORES)).rerank("q", list("abcd"))
    assert all(r.relevance_score == r.raw_score for r in resp)


def test_normalization_sigmoid() -> None:
    resp = Reranker(FakeBackend(SCORES), normalization="sigmoid").rerank("q", list("abcd"))
    for r in resp:
        assert r.relevance_score == pytest.approx(1 / (1 + math.exp(-r.raw_score)))


def test_normalization_temperature_softmax_per_query() -> None:
    resp = Reranker(FakeBackend(SCORES), normalization="temperature", temperature=2.0).rerank(
        "q", list("abcd")
    )
    raw = np.array([r.raw_score for r in resp])
    expected = np.exp(raw / 2.0) / np.exp(raw / 2.0).sum()
    assert [r.relevance_score for r in resp] == pytest.approx(list(expected))
    assert sum(r.relevance_score for r in resp) == pytest.approx(1.0)


def test_normalization_minmax_per_query() -> None:
    resp = Reranker(FakeBackend(SCORES), normalization="minmax").rerank("q", list("abcd"))
    assert [r.relevance_score for r in resp] == pytest.approx([1.0, 0.75, 0.375, 0.0])


def test_threshold_compares_relevance_not_raw() -> None:
    r = Reranker(FakeBackend(SCORES), normalization="minmax", score_threshold=0.5)
    assert r.rerank("q", list("abcd")).indices == [3, 0]


@pytest.mark.parametrize("method", ["sigmoid", "temperature"])
def test_squashing_probabilities_is_refused_at_construction(method: str) -> None:
    with pytest.raises(ConfigurationError, match="normalization"):
        Reranker(FakeBackend(kind="probability"), normalization=method)


def test_squashing_probabilities_is_refused_when_kind_is_only_known_after_loading() -> None:
    r = Reranker(FakeBackend({"a": 0.3}, kind="probability", peekable=False), normalization="sigmoid")
    with pytest.raises(ConfigurationError, match="normalization"):
        r.rerank("q", ["a"])


def test_minmax_on_probabilities_is_allowed() -> None:
    resp = Reranker(FakeBackend({"a": 0.2, "b": 0.6}, kind="probability"), normalization="minmax").rerank(
        "q", ["a", "b"]
    )
    assert [r.relevance_score for r in resp] == [1.0, 0.0]


def test_candidates_carry_id_and_metadata_back_untouched() -> None:
    meta = {"source": "x", "nested": {"k": [1, 2]}}
    cands = [Candidate("b", id="doc-b"), {"text": "a", "id": 7, "metadata": meta}, "d"]
    before = copy.deepcopy(cands)
    resp = Reranker(FakeBackend(SCORES)).rerank("q", cands)
    assert cands == before  # nothing mutated
    by_index = {r.index: r for r in resp}
    assert by_index[0].id == "doc-b"
    assert by_index[1].id == 7 and by_index[1].metadata is meta  # the same object, not a copy
    assert by_index[2].id is None and by_index[2].metadata is None


def test_generators_are_accepted_and_read_once() -> None:
    resp = Reranker(FakeBackend(SCORES)).rerank("q", (t for t in "abc"))
    assert resp.indices == [0, 2, 1]


def test_empty_candidates_give_empty_results_without_touching_the_backend() -> None:
    backend = FakeBackend(SCORES)
    resp = Reranker(backend).rerank("q", [])
    assert len(resp) == 0 and resp.results == ()
    assert backend.calls == [] and backend.limit_calls == 0


@pytest.mark.parametrize(
    ("query", "candidates", "argument"),
    [
        (None, ["a"], "query"),
        ("", ["a"], "query"),
        ("   \n", ["a"], "query"),
        (42, ["a"], "query"),
        ("q", None, "candidates"),
        ("q", "abc", "candidates"),
        ("q", {"text": "a"}, "candidates"),
        ("q", 5, "candidates"),
        ("q", ["a", "b", 3], "candidates[2]"),
        ("q", ["a", None], "candidates[1]"),
        ("q", [b"bytes"], "candidates[0]"),
        ("q", [{"content": "a"}], "candidates[0]"),
        ("q", [Candidate(3)], "candidates[0]"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_names_the_argument(query: object, candidates: object, argument: str) -> None:
    backend = FakeBackend(SCORES)
    with pytest.raises(InvalidInputError) as info:
        Reranker(backend).rerank(query, candidates)  # type: ignore[arg-type]
    assert info.value.argument == argument
    assert str(info.value).startswith(argument)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RerankError)
    assert backend.calls == []


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"top_n": 0}, "top_n"),
        ({"top_n": -3}, "top_n"),
        ({"top_n": 1.5}, "top_n"),
        ({"top_n": True}, "top_n"),
        ({"top_n": "3"}, "top_n"),
        ({"score_threshold": float("nan")}, "score_threshold"),
        ({"score_threshold": float("inf")}, "score_threshold"),
        ({"score_threshold": "0.5"}, "score_threshold"),
    ],
)
def test_bad_call_options_name_the_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Reranker(FakeBackend(SCORES)).rerank("q", ["a"], **kwargs)
    assert info.value.argument == argument
    with pytest.raises(ConfigurationError) as info2:
        Reranker(FakeBackend(SCORES), **kwargs)
    assert info2.value.argument == argument


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"normalization": "softmax"}, "normalization"),
        ({"normalization": "temperature", "temperature": 0}, "temperature"),
        ({"long_text": "split"}, "long_text"),
        ({"aggregate": "median"}, "aggregate"),
        ({"window_size": 0}, "window_size"),
        ({"window_size": 10, "window_stride": 20}, "window_stride"),
        ({"cache": "yes"}, "cache"),
        ({"cache": 0}, "cache_size"),
    ],
)
def test_bad_configuration_names_the_option(kwargs: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Reranker(FakeBackend(SCORES), **kwargs)
    assert info.value.argument == argument


def test_backend_must_be_a_backend() -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        Reranker("cross-encoder/ms-marco-MiniLM-L6-v2")  # type: ignore[arg-type]


def test_non_finite_backend_scores_are_an_error() -> None:
    with pytest.raises(NonRetryableBackendError, match="non-finite"):
        Reranker(FakeBackend({"a": 1.0, "b": float("nan")})).rerank("q", ["a", "b"])


def test_backend_returning_the_wrong_number_of_scores_is_an_error() -> None:
    class Short(FakeBackend):
        def score_pairs(self, pairs):  # type: ignore[no-untyped-def]
            return super().score_pairs(pairs)[:-1]

    with pytest.raises(NonRetryableBackendError, match="2 scores for 3 pairs"):
        Reranker(Short(SCORES)).rerank("q", ["a", "b", "c"])


def test_rerank_many_scores_every_query_in_one_backend_call() -> None:
    backend = FakeBackend()
    r = Reranker(backend, top_n=2)
    queries = ["q1", "q2", "q3"]
    cands = [["x", "y", "z"], [], ["u", "v"]]
    many = r.rerank_many(queries, cands)
    assert len(backend.calls) == 1 and backend.pairs_scored == 5
    single = [Reranker(FakeBackend(), top_n=2).rerank(q, c) for q, c in zip(queries, cands, strict=True)]
    assert [m.indices for m in many] == [s.indices for s in single]
    assert [[x.raw_score for x in m] for m in many] == [[x.raw_score for x in s] for s in single]
    assert many[1].results == ()


@pytest.mark.parametrize(
    ("queries", "candidates", "argument"),
    [
        ("q", [["a"]], "queries"),
        (["q1", "q2"], [["a"]], "candidates"),
        (["q1", ""], [["a"], ["b"]], "queries[1]"),
        (["q1", "q2"], [["a"], ["b", 1]], "candidates[1][1]"),
        (["q1"], "a", "candidates"),
    ],
)
def test_rerank_many_bad_input(queries: object, candidates: object, argument: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Reranker(FakeBackend(SCORES)).rerank_many(queries, candidates)  # type: ignore[arg-type]
    assert info.value.argument == argument

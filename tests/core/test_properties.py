"""Property-based checks of the ranking contract with hypothesis."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from fakes import FakeBackend
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_core import Reranker

scores_st = st.lists(st.integers(-50, 50).map(lambda x: x / 10), min_size=0, max_size=30)
top_n_st = st.one_of(st.none(), st.integers(1, 40))
threshold_st = st.one_of(st.none(), st.integers(-60, 60).map(lambda x: x / 10))
norm_st = st.sampled_from(["none", "sigmoid", "minmax", "temperature"])


@settings(max_examples=300, deadline=None)
@given(scores=scores_st, top_n=top_n_st, threshold=threshold_st, normalization=norm_st)
def test_ranking_contract(
    scores: list[float], top_n: int | None, threshold: float | None, normalization: str
) -> None:
    texts = [f"t{i}" for i in range(len(scores))]
    backend = FakeBackend(dict(zip(texts, scores, strict=True)))
    resp = Reranker(backend, top_n=top_n, score_threshold=threshold, normalization=normalization).rerank(
        "q", texts
    )
    idx = resp.indices
    # a subset of the input, no duplicates
    assert len(set(idx)) == len(idx)
    assert set(idx) <= set(range(len(texts)))
    # scores descending, ties in input order
    rel = [r.relevance_score for r in resp]
    assert all(a >= b for a, b in pairwise(rel))
    for a, b in pairwise(resp.results):
        if a.relevance_score == b.relevance_score:
            assert a.index < b.index
    # each result is its own candidate, raw score untouched
    for r in resp:
        assert r.text == texts[r.index] and r.raw_score == scores[r.index]
    # exactly the expected set: all that pass the threshold, cut at top_n
    expected_rel = {r.index: r.relevance_score for r in resp}
    passing = [
        i for i in range(len(texts)) if threshold is None or _rel(scores, normalization)[i] >= threshold
    ]
    assert len(idx) == (len(passing) if top_n is None else min(top_n, len(passing)))
    assert set(expected_rel) <= set(passing)


def _rel(scores: list[float], normalization: str) -> np.ndarray:
    from rerank_core import normalize_scores

    return normalize_scores(scores, normalization)


@settings(max_examples=100, deadline=None)
@given(batches=st.lists(scores_st, min_size=1, max_size=5), top_n=top_n_st)
def test_rerank_many_equals_rerank_per_query(batches: list[list[float]], top_n: int | None) -> None:
    queries = [f"q{i}" for i in range(len(batches))]
    cands = [[f"t{j}" for j in range(len(b))] for b in batches]
    table = {
        (q, t): s
        for q, ts, b in zip(queries, cands, batches, strict=True)
        for t, s in zip(ts, b, strict=True)
    }
    r = Reranker(FakeBackend(lambda q, t: table[(q, t)]), top_n=top_n)
    many = r.rerank_many(queries, cands)
    single = [r.rerank(q, c) for q, c in zip(queries, cands, strict=True)]
    assert [m.indices for m in many] == [s.indices for s in single]

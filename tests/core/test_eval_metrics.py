"""Ranking metrics against values worked out by hand (linear-gain nDCG as in pytrec_eval / BEIR)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rerank_core.eval.metrics import evaluate, mrr_at_k, ndcg_at_k, per_query, recall_at_k

LOG2_3 = math.log2(3)  # discount of rank 2
LOG2_5 = math.log2(5)  # discount of rank 4


def test_perfect_ranking_scores_one() -> None:
    judgments = {"a": 2, "b": 1}
    ranking = ["a", "b", "c"]
    assert ndcg_at_k(ranking, judgments, 10) == pytest.approx(1.0)
    assert mrr_at_k(ranking, judgments, 10) == 1.0
    assert recall_at_k(ranking, judgments, 10) == 1.0


def test_graded_ndcg_by_hand() -> None:
    judgments = {"a": 3, "b": 2, "c": 1}
    ranking = ["c", "x", "a", "b"]  # x is unjudged
    # k=3: DCG  = 1/log2(2) + 0/log2(3) + 3/log2(4)       = 1 + 0 + 1.5          = 2.5
    #      IDCG = 3/log2(2) + 2/log2(3) + 1/log2(4)       = 3 + 1.2618595 + 0.5  = 4.7618595
    #      nDCG = 2.5 / 4.7618595                          = 0.5250050
    assert ndcg_at_k(ranking, judgments, 3) == pytest.approx(2.5 / (3 + 2 / LOG2_3 + 0.5))
    assert ndcg_at_k(ranking, judgments, 3) == pytest.approx(0.5250050, abs=1e-7)
    # k=10: DCG adds b at rank 4: 2/log2(5) = 0.8613531 -> 3.3613531; IDCG unchanged -> 0.7058909
    assert ndcg_at_k(ranking, judgments, 10) == pytest.approx((2.5 + 2 / LOG2_5) / (3 + 2 / LOG2_3 + 0.5))
    assert ndcg_at_k(ranking, judgments, 10) == pytest.approx(0.7058909, abs=1e-7)


def test_ndcg_uses_linear_gain_not_exponential() -> None:
    judgments = {"a": 1, "b": 3}
    ranking = ["a", "b"]
    # linear:      DCG = 1 + 3/log2(3) = 2.8927893, IDCG = 3 + 1/log2(3) = 3.6309298 -> 0.7967075
    # exponential: DCG = 1 + 7/log2(3) = 5.4165, IDCG = 7 + 1/log2(3) = 7.6309 -> 0.7098 (not BEIR's)
    assert ndcg_at_k(ranking, judgments, 10) == pytest.approx(0.7967075, abs=1e-7)


def test_ideal_comes_from_all_judged_relevant_docs() -> None:
    # Four relevant docs, only one retrieved: IDCG@10 = 1 + 1/log2(3) + 1/log2(4) + 1/log2(5) = 2.5616063
    judgments = {"a": 1, "b": 1, "c": 1, "d": 1, "z": 0}
    assert ndcg_at_k(["a"], judgments, 10) == pytest.approx(1 / 2.5616063, abs=1e-7)
    # ...but the ideal is cut at k: with k=2 the two retrieved relevant docs are already ideal.
    assert ndcg_at_k(["a", "b"], judgments, 2) == pytest.approx(1.0)


def test_zero_and_negative_grades_earn_nothing() -> None:
    judgments = {"a": 0, "b": -1, "c": 1}
    # c at rank 3: DCG = 1/log2(4) = 0.5, IDCG = 1
    assert ndcg_at_k(["a", "b", "c"], judgments, 10) == pytest.approx(0.5)
    assert mrr_at_k(["a", "b", "c"], judgments, 10) == pytest.approx(1 / 3)


def test_mrr_first_relevant_at_rank_three() -> None:
    judgments = {"x": 0, "a": 1, "b": 2}
    ranking = ["x", "y", "a", "b"]
    assert mrr_at_k(ranking, judgments, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(ranking, judgments, 3) == pytest.approx(1 / 3)
    assert mrr_at_k(ranking, judgments, 2) == 0.0  # the relevant doc is cut off


def test_recall_by_hand() -> None:
    judgments = {"a": 1, "b": 2, "c": 1, "d": 0}  # three relevant docs
    ranking = ["a", "d", "e", "c"]
    assert recall_at_k(ranking, judgments, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, judgments, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, judgments, 4) == pytest.approx(2 / 3)


def test_k_larger_than_ranking() -> None:
    judgments = {"a": 1, "b": 1}
    ranking = ["b"]
    # DCG = 1, IDCG@100 = 1 + 1/log2(3) = 1.6309298 -> 0.6131472
    assert ndcg_at_k(ranking, judgments, 100) == pytest.approx(1 / (1 + 1 / LOG2_3))
    assert recall_at_k(ranking, judgments, 100) == 0.5
    assert mrr_at_k(ranking, judgments, 100) == 1.0
    assert ndcg_at_k([], judgments, 100) == 0.0


def test_duplicates_in_a_run_earn_nothing_twice() -> None:
    judgments = {"a": 1, "b": 1}
    ranking = ["a", "a", "b"]
    # The repeat keeps rank 2 but earns nothing: DCG = 1 + 0 + 1/log2(4) = 1.5; IDCG = 1.6309298 -> 0.9197208
    assert ndcg_at_k(ranking, judgments, 10) == pytest.approx(1.5 / (1 + 1 / LOG2_3))
    # Counting "a" twice would give recall@2 = 1.0
    assert recall_at_k(ranking, judgments, 2) == 0.5
    assert ndcg_at_k(["a", "a", "a"], {"a": 1}, 10) == pytest.approx(1.0)
    assert recall_at_k(["a", "a"], {"a": 1}, 10) == 1.0


def test_evaluate_means_and_keys() -> None:
    run = {"q1": ["a", "b"], "q2": ["x", "y", "c"]}
    qrels = {"q1": {"a": 1}, "q2": {"c": 1}}
    out = evaluate(run, qrels, k_values=[10, 2])
    assert list(out) == ["ndcg@2", "ndcg@10", "mrr@2", "mrr@10", "recall@2", "recall@10"]
    # q1 perfect; q2: c at rank 3 -> nDCG@10 = 1/log2(4) = 0.5, MRR@10 = 1/3, nothing in the top 2
    assert out["ndcg@10"] == pytest.approx((1 + 0.5) / 2)
    assert out["mrr@10"] == pytest.approx((1 + 1 / 3) / 2)
    assert out["recall@10"] == pytest.approx(1.0)
    assert out["ndcg@2"] == pytest.approx(0.5)
    assert out["mrr@2"] == pytest.approx(0.5)
    assert out["recall@2"] == pytest.approx(0.5)


def test_queries_without_relevant_judgments_are_skipped() -> None:
    run = {"q1": ["a"], "q2": ["b"], "q3": ["c"]}
    qrels = {"q1": {"a": 1}, "q3": {"c": 0}}  # q2 unjudged, q3 judged but nothing relevant
    out = evaluate(run, qrels, k_values=[10])
    assert out == {"ndcg@10": 1.0, "mrr@10": 1.0, "recall@10": 1.0}  # averaged over q1 alone
    assert set(per_query(run, qrels, [10])) == {"q1"}
    # Nothing evaluable at all: zeros, not a division error.
    assert evaluate({"q2": ["b"]}, qrels, k_values=[10]) == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@10": 0.0}


def test_judged_query_missing_from_run_is_not_counted_but_empty_ranking_is() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    assert evaluate({"q1": ["a"]}, qrels, [10])["ndcg@10"] == 1.0
    assert evaluate({"q1": ["a"], "q2": []}, qrels, [10])["ndcg@10"] == 0.5


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="k"):
        ndcg_at_k(["a"], {"a": 1}, 0)
    with pytest.raises(ValueError, match="k_values"):
        evaluate({"q": ["a"]}, {"q": {"a": 1}}, k_values=[])
    with pytest.raises(ValueError, match="string"):
        evaluate({"q": "a"}, {"q": {"a": 1}}, k_values=[10])  # type: ignore[dict-item]


def _reference_ndcg(ranking: list[str], judgments: dict[str, int], k: int) -> float:
    """Straight from the definition, with numpy-free sums; ranking has no duplicates."""
    gains = [max(judgments.get(d, 0), 0) for d in ranking[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted((max(g, 0) for g in judgments.values()), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


@given(
    grades=st.dictionaries(st.sampled_from("abcdefghij"), st.integers(0, 3), min_size=1),
    order=st.permutations(list("abcdefghijkl")),
    k=st.integers(1, 15),
)
def test_properties_against_reference(grades: dict[str, int], order: list[str], k: int) -> None:
    ndcg = ndcg_at_k(order, grades, k)
    assert ndcg == pytest.approx(_reference_ndcg(order, grades, k))
    assert 0.0 <= ndcg <= 1.0 + 1e-12
    assert 0.0 <= mrr_at_k(order, grades, k) <= 1.0
    assert 0.0 <= recall_at_k(order, grades, k) <= 1.0
    if any(g > 0 for g in grades.values()):
        ideal = sorted(grades, key=lambda d: -grades[d])
        assert ndcg_at_k(ideal, grades, k) == pytest.approx(1.0)
        assert recall_at_k(order, grades, len(order)) == 1.0

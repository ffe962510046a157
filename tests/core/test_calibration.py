"""Normalizations by hand, and threshold fitting against brute force on labelled data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_core import ConfigurationError, InvalidInputError, fit_threshold, normalize_scores
from rerank_core.calibration import threshold_curve


def test_normalizations_by_hand() -> None:
    raw = [0.0, 2.0, -2.0]
    assert list(normalize_scores(raw, "none")) == raw
    assert list(normalize_scores(raw, "sigmoid")) == pytest.approx([0.5, 0.880797, 0.119203], abs=1e-6)
    soft = normalize_scores(raw, "temperature", temperature=1.0)
    assert list(soft) == pytest.approx(
        [
            1 / (1 + math.e**2 + math.e**-2),
            math.e**2 / (1 + math.e**2 + math.e**-2),
            math.e**-2 / (1 + math.e**2 + math.e**-2),
        ]
    )
    assert list(normalize_scores(raw, "minmax")) == [0.5, 1.0, 0.0]
    assert list(normalize_scores([3.0, 3.0], "minmax")) == [1.0, 1.0]
    assert normalize_scores([], "sigmoid").size == 0


def test_sigmoid_is_stable_in_the_tails() -> None:
    out = normalize_scores([-1000.0, 1000.0], "sigmoid")
    assert list(out) == [0.0, 1.0] and np.all(np.isfinite(out))


def test_temperature_flattens_or_sharpens() -> None:
    raw = [1.0, 2.0, 3.0]
    hot = normalize_scores(raw, "temperature", temperature=10.0)
    cold = normalize_scores(raw, "temperature", temperature=0.1)
    assert hot.max() - hot.min() < 0.1 and cold.max() > 0.99
    assert normalize_scores([1000.0, 999.0], "temperature").sum() == pytest.approx(1.0)  # no overflow


def test_input_is_not_modified() -> None:
    raw = np.array([1.0, 2.0])
    normalize_scores(raw, "minmax")
    assert list(raw) == [1.0, 2.0]


def test_unknown_method() -> None:
    with pytest.raises(ConfigurationError, match="normalization"):
        normalize_scores([1.0], "softmax")


def brute_force_best_f1(scores: np.ndarray, labels: np.ndarray) -> float:
    best = 0.0
    for t in np.unique(scores):
        pred = scores >= t
        tp = float((pred & labels).sum())
        if tp == 0:
            continue
        p, r = tp / pred.sum(), tp / labels.sum()
        best = max(best, 2 * p * r / (p + r))
    return best


def test_fit_threshold_f1_on_labelled_data() -> None:
    rng = np.random.default_rng(7)
    labels = np.r_[np.ones(300, bool), np.zeros(700, bool)]
    scores = np.r_[rng.normal(2.0, 1.0, 300), rng.normal(0.0, 1.0, 700)]
    fit = fit_threshold(scores, labels)
    pred = scores >= fit
    tp = (pred & labels).sum()
    f1 = 2 * tp / (pred.sum() + labels.sum())
    assert fit.f1 == pytest.approx(f1)
    assert fit.f1 == pytest.approx(brute_force_best_f1(scores, labels))
    assert 0.5 < float(fit) < 2.0  # between the two class means, as it must be
    assert "ThresholdFit(" in repr(fit)


def test_fit_threshold_precision_and_recall_targets() -> None:
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    labels = [1, 1, 0, 1, 0, 1, 0]
    # precision >= 0.75: keep {.9,.8,.7,.6} (3/4); lower thresholds fall below
    fit = fit_threshold(scores, labels, precision=0.75)
    assert float(fit) == 0.6 and fit.precision == 0.75 and fit.recall == 0.75
    fit = fit_threshold(scores, labels, recall=1.0)
    assert float(fit) == 0.4 and fit.recall == 1.0
    fit = fit_threshold(scores, labels, precision=1.0)
    assert float(fit) == 0.8


def test_ties_share_a_threshold() -> None:
    curve = threshold_curve([0.5, 0.5, 0.2], [1, 0, 1])
    assert list(curve["threshold"]) == [0.5, 0.2]
    assert list(curve["precision"]) == [0.5, pytest.approx(2 / 3)]


@pytest.mark.parametrize(
    ("scores", "labels", "kwargs", "argument"),
    [
        ([], [], {}, "scores"),
        ([0.1, float("nan")], [1, 0], {}, "scores"),
        ([0.1, 0.2], [1], {}, "labels"),
        ([0.1, 0.2], [0, 2], {}, "labels"),
        ([0.1, 0.2], [0, 0], {}, "labels"),
        ([0.1, 0.2], [0, 1], {"precision": 1.5}, "precision"),
        ([0.1, 0.2], [0, 1], {"recall": 0}, "recall"),
        ([0.1, 0.2], [0, 1], {"target": "accuracy"}, "target"),
        ([0.1, 0.2], [1, 0], {"precision": 1.0, "recall": 1.0}, "precision"),
        ([0.9, 0.1], [0, 1], {"precision": 0.9}, "precision"),  # unreachable precision
    ],
)
def test_fit_threshold_bad_input(scores, labels, kwargs, argument) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError) as info:
        fit_threshold(scores, labels, **kwargs)
    assert info.value.argument == argument


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-20, 20).map(lambda x: x / 4), st.booleans()), min_size=1, max_size=40
    ).filter(lambda xs: any(lab for _, lab in xs))
)
def test_fit_threshold_f1_is_optimal(items: list[tuple[float, bool]]) -> None:
    scores = np.array([s for s, _ in items])
    labels = np.array([lab for _, lab in items])
    fit = fit_threshold(scores, labels)
    assert fit.f1 == pytest.approx(brute_force_best_f1(scores, labels))

"""How well probabilities match outcomes: expected calibration error, Brier score, reliability bins.

ECE follows the common definition (Naeini et al., AAAI 2015; Guo et al., ICML 2017): ``n_bins`` equal-width
bins over [0, 1] (the last one closed), the mean absolute gap between each bin's mean predicted probability
and its observed rate of relevant items, weighted by the bin's share of all items. The Brier score is the
mean squared difference between probability and outcome.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rerank_core.calibration._thresholds import check_labels
from rerank_core.errors import InvalidInputError

__all__ = ["brier_score", "expected_calibration_error", "reliability_bins"]


def _probabilities(probabilities: Sequence[float] | np.ndarray, labels: Sequence[int | bool] | np.ndarray):
    p, y = check_labels(probabilities, labels, purpose=None, argument="probabilities")
    if p.min() < 0 or p.max() > 1:
        raise InvalidInputError(
            "probabilities", "must lie in [0, 1]: calibrate or normalize raw scores first"
        )
    return p, y


def reliability_bins(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[int | bool] | np.ndarray, n_bins: int = 10
) -> dict[str, np.ndarray]:
    """Per bin: ``count``, ``mean_probability`` and ``observed`` (NaN for an empty bin), and the ``edges``."""
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise InvalidInputError("n_bins", f"must be a positive integer, got {n_bins!r}")
    p, y = _probabilities(probabilities, labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(np.float64)
    total_p = np.bincount(which, weights=p, minlength=n_bins)
    total_y = np.bincount(which, weights=y.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, total_p / count, np.nan)
        observed = np.where(count > 0, total_y / count, np.nan)
    return {"edges": edges, "count": count, "mean_probability": mean_p, "observed": observed}


def expected_calibration_error(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[int | bool] | np.ndarray, n_bins: int = 10
) -> float:
    """ECE over ``n_bins`` equal-width bins (see the module docstring)."""
    bins = reliability_bins(probabilities, labels, n_bins)
    filled = bins["count"] > 0
    gaps = np.abs(bins["mean_probability"][filled] - bins["observed"][filled])
    return float(np.sum(gaps * bins["count"][filled]) / np.sum(bins["count"]))


def brier_score(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[int | bool] | np.ndarray
) -> float:
    """Mean squared difference between each probability and its 0/1 outcome."""
    p, y = _probabilities(probabilities, labels)
    return float(np.mean((p - y) ** 2))

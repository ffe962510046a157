"""Choosing a score threshold from labelled data.

``fit_threshold(scores, labels, target="f1")`` returns the threshold that maximises F1 when items
with ``score >= threshold`` are called relevant; ``precision=0.9`` instead returns the lowest
threshold whose precision reaches 0.9 (keeping as much recall as possible), and ``recall=0.8`` the
highest threshold whose recall reaches 0.8. Fit on the same normalization you will threshold on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rerank_core.errors import InvalidInputError

__all__ = ["ThresholdFit", "check_labels", "fit_threshold", "threshold_curve"]


class ThresholdFit(float):
    """The chosen threshold (a float) with the precision, recall and F1 it achieves on the fit data."""

    precision: float
    recall: float
    f1: float

    def __new__(cls, value: float, precision: float, recall: float, f1: float) -> ThresholdFit:
        obj = super().__new__(cls, value)
        obj.precision, obj.recall, obj.f1 = precision, recall, f1
        return obj

    def __repr__(self) -> str:
        return (
            f"ThresholdFit({float(self)!r}, precision={self.precision:.4f}, "
            f"recall={self.recall:.4f}, f1={self.f1:.4f})"
        )


def check_labels(
    scores: Sequence[float],
    labels: Sequence[int | bool],
    *,
    purpose: str | None = "a threshold",
    argument: str = "scores",
) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` as a 1-D float array of finite numbers (``InvalidInputError`` naming ``argument``) and
    ``labels`` as booleans, one per score, with at least one positive when ``purpose`` (what needs one) is
    given."""
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(argument, "must be a non-empty 1-D sequence of numbers") from None
    if s.ndim != 1 or s.size == 0:
        raise InvalidInputError(argument, "must be a non-empty 1-D sequence of numbers")
    if not np.all(np.isfinite(s)):
        raise InvalidInputError(argument, "contains NaN or infinite values")
    y = np.asarray(labels)
    if y.shape != s.shape:
        raise InvalidInputError("labels", f"must have one label per score ({s.size}), got shape {y.shape}")
    if not np.all(np.isin(y, (0, 1))):
        raise InvalidInputError("labels", "must be 0/1 or booleans")
    y = y.astype(bool)
    if purpose is not None and not y.any():
        raise InvalidInputError("labels", f"contains no positive label; {purpose} cannot be fitted")
    return s, y


def threshold_curve(scores: Sequence[float], labels: Sequence[int | bool]) -> dict[str, np.ndarray]:
    """Precision, recall and F1 at every distinct score used as a threshold (descending)."""
    s, y = check_labels(scores, labels)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    kept = np.arange(1, s.size + 1)
    # A threshold at a score keeps every item with that score: use the last position of each value.
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s.size - 1]
    thresholds = s_sorted[last]
    precision = tp[last] / kept[last]
    recall = tp[last] / y.sum()
    f1 = np.where(
        precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0
    )
    return {"threshold": thresholds, "precision": precision, "recall": recall, "f1": f1}


def fit_threshold(
    scores: Sequence[float],
    labels: Sequence[int | bool],
    *,
    target: str = "f1",
    precision: float | None = None,
    recall: float | None = None,
) -> ThresholdFit:
    """Fit a threshold on labelled scores. See the module docstring."""
    if precision is not None and recall is not None:
        raise InvalidInputError("precision", "give at most one of precision= and recall=")
    for name, value in (("precision", precision), ("recall", recall)):
        if value is not None and not (
            isinstance(value, int | float) and 0 < value <= 1 and math.isfinite(value)
        ):
            raise InvalidInputError(name, f"must be in (0, 1], got {value!r}")
    if precision is None and recall is None and target != "f1":
        raise InvalidInputError("target", f"unknown target {target!r}; use 'f1', or precision= / recall=")
    c = threshold_curve(scores, labels)
    th, p, r, f = c["threshold"], c["precision"], c["recall"], c["f1"]
    if precision is not None:
        ok = np.nonzero(p >= precision)[0]
        if ok.size == 0:
            raise InvalidInputError(
                "precision", f"no threshold reaches precision {precision} (best {p.max():.4f})"
            )
        i = int(ok[-1])  # lowest threshold that still reaches the precision: most recall
    elif recall is not None:
        i = int(
            np.nonzero(r >= recall)[0][0]
        )  # highest threshold reaching the recall; recall hits 1 at the end
    else:
        i = int(np.argmax(f))  # first maximum = highest threshold among ties
    return ThresholdFit(float(th[i]), float(p[i]), float(r[i]), float(f[i]))

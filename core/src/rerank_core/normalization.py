"""Turning raw back-end scores into the calibrated ``relevance_score`` that thresholds compare with.

Every choice is explicit. ``none`` keeps the raw score. ``sigmoid`` maps a logit to (0, 1)
independently per candidate. ``temperature`` is a softmax over one query's candidates at temperature
T (scores sum to 1 per query; relative). ``minmax`` rescales one query's scores to [0, 1] (relative;
a single candidate, or all equal, maps to 1.0).

Squashing scores that are already probabilities, or rank-derived, is refused: a sigmoid on a
[0, 1] score compresses everything into [0.5, 0.73] and silently breaks every threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from rerank_core._validation import finite_float, shown_number
from rerank_core.errors import ConfigurationError
from rerank_core.types import ScoreKind

__all__ = ["NORMALIZATIONS", "Normalization", "check_normalization", "normalize_scores"]

Normalization = Literal["none", "sigmoid", "temperature", "minmax"]
NORMALIZATIONS: tuple[str, ...] = ("none", "sigmoid", "temperature", "minmax")

# Which normalizations make sense for which kind of raw score.
_ALLOWED: dict[str, frozenset[str]] = {
    "logit": frozenset(NORMALIZATIONS),
    "probability": frozenset({"none", "minmax"}),
    "rank": frozenset({"none", "minmax"}),
}


def check_normalization(normalization: str, temperature: float, score_kind: ScoreKind | None = None) -> None:
    """Raise :class:`ConfigurationError` for an unknown method, a bad temperature, or a method that
    does not fit the back end's ``score_kind``."""
    if normalization not in NORMALIZATIONS:
        raise ConfigurationError(
            "normalization", f"unknown method {normalization!r}; choose one of {', '.join(NORMALIZATIONS)}"
        )
    value = finite_float(temperature)
    if value is None or value <= 0:
        raise ConfigurationError(
            "temperature", f"must be a finite number > 0, got {shown_number(temperature)}"
        )
    if score_kind is not None and normalization not in _ALLOWED[score_kind]:
        raise ConfigurationError(
            "normalization",
            f"{normalization!r} cannot be applied to {score_kind} scores (allowed: "
            f"{', '.join(sorted(_ALLOWED[score_kind]))}); the back end's scores are already calibrated"
            if score_kind == "probability"
            else f"{normalization!r} cannot be applied to {score_kind} scores (allowed: "
            f"{', '.join(sorted(_ALLOWED[score_kind]))})",
        )


def normalize_scores(
    raw: Sequence[float] | np.ndarray, normalization: str = "none", *, temperature: float = 1.0
) -> np.ndarray:
    """Normalize one query's raw scores. Returns float64; input is not modified."""
    check_normalization(normalization, temperature)
    x = np.asarray(raw, dtype=np.float64)
    if x.size == 0 or normalization == "none":
        return x.copy()
    if normalization == "sigmoid":
        # Numerically stable in both tails.
        out = np.empty_like(x)
        pos = x >= 0
        out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
        ex = np.exp(x[~pos])
        out[~pos] = ex / (1.0 + ex)
        return out
    if normalization == "temperature":
        z = x / temperature
        z = z - z.max()
        e = np.exp(z)
        return e / e.sum()
    # minmax
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.ones_like(x)
    return (x - lo) / (hi - lo)

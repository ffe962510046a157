"""Scores users can trust: fitted calibration, reliability measures, relevance bands and thresholds.

- :func:`fit_calibration` fits a :class:`Calibration` (Platt, temperature or isotonic) mapping a back end's
  raw scores to P(relevant) on labelled pairs; ``Reranker(calibration=...)`` applies it.
- :func:`expected_calibration_error`, :func:`brier_score` and :func:`reliability_bins` measure how well
  probabilities match outcomes.
- :class:`Bands` names ranges of a calibrated score (``DEFAULT_BANDS``: the seed's three).
- :func:`fit_threshold` chooses a threshold for F1, a target precision or a target recall.
"""

from rerank_core.calibration._bands import DEFAULT_BANDS, Bands
from rerank_core.calibration._fitting import (
    CALIBRATION_FILE,
    CALIBRATION_METHODS,
    Calibration,
    fit_calibration,
    load_calibration,
)
from rerank_core.calibration._reliability import brier_score, expected_calibration_error, reliability_bins
from rerank_core.calibration._thresholds import ThresholdFit, fit_threshold, threshold_curve

__all__ = [
    "CALIBRATION_FILE",
    "CALIBRATION_METHODS",
    "DEFAULT_BANDS",
    "Bands",
    "Calibration",
    "ThresholdFit",
    "brier_score",
    "expected_calibration_error",
    "fit_calibration",
    "fit_threshold",
    "load_calibration",
    "reliability_bins",
    "threshold_curve",
]

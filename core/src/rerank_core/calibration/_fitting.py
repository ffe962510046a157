"""Fitted calibration: a map from a back end's raw scores to P(relevant), fitted on labelled pairs.

Three methods, each a monotone map (so a fitted calibration never changes a ranking):

- ``"platt"``: ``sigmoid(a * z + b)``, logistic regression on the score (Platt 1999, with his smoothed
  targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` against overfitting, fitted by Newton's method with
  backtracking as in Lin, Lin and Weng, "A note on Platt's probabilistic outputs for support vector
  machines", Machine Learning 68, 2007). For a logit model this is affine scaling of the logit.
- ``"temperature"``: ``sigmoid(z / T)``, one parameter (Guo et al., "On Calibration of Modern Neural
  Networks", ICML 2017, for a binary logit): keeps 0 as the 0.5 point. Fitted on Platt's smoothed targets,
  like Platt (Guo et al. fit the hard labels; the smoothing only matters for tiny fit sets).
- ``"isotonic"``: the pool-adjacent-violators fit of P(relevant) as a non-decreasing step function of the
  score (Zadrozny and Elkan, KDD 2002), read between its knots by linear interpolation and clipped at the
  ends, as scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` does.

``z`` is the raw score for ``logit`` and ``rank`` back ends, and ``logit(p)`` (``p`` clipped to
``[1e-6, 1 - 1e-6]``) for ``probability`` back ends, so Platt and temperature act on an unbounded scale
whatever the back end gives.

A :class:`Calibration` is plain data: it is saved as JSON (``calibration.json`` beside a model folder, where
``Reranker(calibration="model")`` finds it) and carries what it was fitted on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rerank_core.calibration._thresholds import check_labels
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.normalization import normalize_scores

__all__ = [
    "CALIBRATION_FILE",
    "CALIBRATION_METHODS",
    "Calibration",
    "fit_calibration",
    "load_calibration",
]

CalibrationMethod = Literal["platt", "temperature", "isotonic"]
CALIBRATION_METHODS: tuple[str, ...] = ("platt", "temperature", "isotonic")
CALIBRATION_FILE = "calibration.json"
_SCORE_KINDS = ("logit", "probability", "rank")
_EPS = 1e-6
_FORMAT = 1


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return normalize_scores(x, "sigmoid")


def _feature(raw: np.ndarray, score_kind: str) -> np.ndarray:
    if score_kind != "probability":
        return raw
    p = np.clip(raw, _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Calibration:
    """A fitted map from raw scores to P(relevant) (see the module docstring).

    Attributes:
        method: ``"platt"``, ``"temperature"`` or ``"isotonic"``.
        score_kind: the kind of raw score it was fitted on (``"logit"``, ``"probability"``, ``"rank"``);
            applying it to a back end of another kind is refused.
        params: ``(a, b)`` for Platt, ``(T,)`` for temperature, ``()`` for isotonic.
        knots: isotonic only: ``((z, p), ...)`` with ``z`` increasing and ``p`` non-decreasing.
        fitted_on: where it came from (pairs, positives, source, back end), for reports; not used to score.
    """

    method: CalibrationMethod
    score_kind: str
    params: tuple[float, ...] = ()
    knots: tuple[tuple[float, float], ...] = ()
    fitted_on: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        try:  # plain data: tuples of floats (hashable, equal after a JSON round trip), a copy of fitted_on
            object.__setattr__(self, "params", tuple(float(v) for v in self.params))
            object.__setattr__(self, "knots", tuple((float(z), float(p)) for z, p in self.knots))
            object.__setattr__(self, "fitted_on", dict(self.fitted_on or {}))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError("calibration", f"params and knots must be numbers: {exc}") from None
        if self.method not in CALIBRATION_METHODS:
            raise ConfigurationError(
                "calibration",
                f"unknown method {self.method!r}; choose one of {', '.join(CALIBRATION_METHODS)}",
            )
        if self.score_kind not in _SCORE_KINDS:
            raise ConfigurationError("calibration", f"unknown score kind {self.score_kind!r}")
        want = {"platt": 2, "temperature": 1, "isotonic": 0}[self.method]
        if len(self.params) != want or not all(math.isfinite(v) for v in self.params):
            raise ConfigurationError(
                "calibration", f"{self.method} takes {want} finite parameters, got {self.params!r}"
            )
        if self.method == "temperature" and self.params[0] <= 0:
            raise ConfigurationError("calibration", f"temperature must be > 0, got {self.params[0]!r}")
        if self.method == "temperature" and self.score_kind == "rank":
            raise ConfigurationError("calibration", "temperature scaling needs logit or probability scores")
        if self.method == "isotonic":
            z = np.array([k[0] for k in self.knots], dtype=np.float64)
            p = np.array([k[1] for k in self.knots], dtype=np.float64)
            if (
                z.size == 0
                or not np.all(np.isfinite(z))
                or not np.all(np.isfinite(p))
                or np.any(np.diff(z) <= 0)
                or np.any(np.diff(p) < 0)
                or p.min() < 0
                or p.max() > 1
            ):
                raise ConfigurationError(
                    "calibration",
                    "isotonic knots must be finite (z, p) pairs, z increasing, p non-decreasing in [0, 1]",
                )
        elif self.knots:
            raise ConfigurationError("calibration", f"{self.method} takes no knots")

    def apply(self, raw: Sequence[float] | np.ndarray) -> np.ndarray:
        """P(relevant) for each raw score (float64; the input is not modified)."""
        z = _feature(np.asarray(raw, dtype=np.float64), self.score_kind)
        if self.method == "platt":
            return _sigmoid(self.params[0] * z + self.params[1])
        if self.method == "temperature":
            return _sigmoid(z / self.params[0])
        xs = np.array([k[0] for k in self.knots])
        ps = np.array([k[1] for k in self.knots])
        return np.interp(z, xs, ps)

    def describe(self) -> str:
        """A short label for responses and reports, e.g. ``platt(a=1.21, b=-3.4)``."""
        if self.method == "platt":
            return f"platt(a={self.params[0]:.4g}, b={self.params[1]:.4g})"
        if self.method == "temperature":
            return f"temperature(T={self.params[0]:.4g})"
        return f"isotonic({len(self.knots)} knots)"

    # -- storage ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "method": self.method,
            "score_kind": self.score_kind,
            "params": list(self.params),
            "knots": [list(k) for k in self.knots],
            "fitted_on": dict(self.fitted_on),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise ConfigurationError("calibration", f"not a calibration of format {_FORMAT}: {data!r:.200}")
        try:
            return cls(
                method=data["method"],
                score_kind=data["score_kind"],
                params=tuple(float(v) for v in data.get("params", ())),
                knots=tuple((float(z), float(p)) for z, p in data.get("knots", ())),
                fitted_on=dict(data.get("fitted_on") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError("calibration", f"malformed calibration data: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON; a folder gets ``calibration.json`` inside it. Returns the file."""
        target = Path(path).expanduser()
        if target.is_dir():
            target = target / CALIBRATION_FILE
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return target


def load_calibration(path: str | Path) -> Calibration:
    """A calibration from a JSON file, or from ``calibration.json`` in a folder (``ConfigurationError``
    naming ``calibration`` when there is none or it is malformed)."""
    source = Path(path).expanduser()
    if source.is_dir():
        source = source / CALIBRATION_FILE
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError("calibration", f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError("calibration", f"{source} is not JSON: {exc}") from None
    return Calibration.from_dict(data)


# -- fitting ---------------------------------------------------------------------------------------


def _newton_logistic(z: np.ndarray, t: np.ndarray, with_bias: bool) -> tuple[float, float]:
    """Minimise the cross-entropy of sigmoid(a z + b) against targets t (b fixed at 0 without bias), by
    Newton's method with backtracking and a small ridge on the Hessian (Lin, Lin and Weng 2007)."""
    a, b = 1.0 / max(float(np.std(z)), 1e-12), 0.0

    def loss(a_: float, b_: float) -> float:
        f = a_ * z + b_
        # log(1 + exp(-f)) * t + log(1 + exp(f)) * (1 - t), stable
        return float(np.sum(np.logaddexp(0.0, f) - t * f))

    current = loss(a, b)
    for _ in range(100):
        p = _sigmoid(a * z + b)
        g_a, g_b = float(np.sum((p - t) * z)), float(np.sum(p - t))
        w = p * (1.0 - p)
        h_aa, h_ab, h_bb = float(np.sum(w * z * z)) + 1e-12, float(np.sum(w * z)), float(np.sum(w)) + 1e-12
        if with_bias:
            det = h_aa * h_bb - h_ab * h_ab
            step_a, step_b = (h_bb * g_a - h_ab * g_b) / det, (h_aa * g_b - h_ab * g_a) / det
        else:
            step_a, step_b = g_a / h_aa, 0.0
        if abs(g_a) < 1e-9 * len(z) and (not with_bias or abs(g_b) < 1e-9 * len(z)):
            break
        scale = 1.0
        while scale > 1e-10:
            na, nb = a - scale * step_a, b - scale * step_b
            new = loss(na, nb)
            if new < current - 1e-4 * scale * (g_a * step_a + g_b * step_b):
                break
            scale /= 2
        else:
            break
        if abs(current - new) < 1e-12 * max(1.0, abs(current)):
            a, b, current = na, nb, new
            break
        a, b, current = na, nb, new
    return a, b


def _isotonic(z: np.ndarray, y: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Pool adjacent violators over the distinct scores (ties pooled first, weighted by count); the knots
    are each block's lowest and highest score at the block's mean."""
    order = np.argsort(z, kind="stable")
    zs, ys = z[order], y[order].astype(np.float64)
    values, starts, counts = np.unique(zs, return_index=True, return_counts=True)
    sums = np.add.reduceat(ys, starts)
    # blocks: [low z, high z, sum, weight]
    blocks: list[list[float]] = []
    for v, s, c in zip(values, sums, counts, strict=True):
        blocks.append([float(v), float(v), float(s), float(c)])
        while len(blocks) > 1 and blocks[-2][2] / blocks[-2][3] >= blocks[-1][2] / blocks[-1][3]:
            last = blocks.pop()
            blocks[-1][1] = last[1]
            blocks[-1][2] += last[2]
            blocks[-1][3] += last[3]
    knots: list[tuple[float, float]] = []
    for low, high, s, w in blocks:
        mean = s / w
        knots.append((low, mean))
        if high > low:
            knots.append((high, mean))
    return tuple(knots)


def fit_calibration(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int | bool] | np.ndarray,
    *,
    method: str = "platt",
    score_kind: str = "logit",
    fitted_on: Mapping[str, Any] | None = None,
) -> Calibration:
    """Fit a :class:`Calibration` of ``method`` on raw ``scores`` and binary ``labels`` (1 = relevant).

    Needs both classes. ``score_kind`` is the back end's (``backend.score_kind``). ``fitted_on`` is stored
    with the result (the pair and positive counts are added)."""
    if method not in CALIBRATION_METHODS:
        raise InvalidInputError(
            "method", f"unknown method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}"
        )
    if score_kind not in _SCORE_KINDS:
        raise InvalidInputError("score_kind", f"must be one of {', '.join(_SCORE_KINDS)}, got {score_kind!r}")
    s, y = check_labels(scores, labels, purpose="a calibration")
    if y.all():
        raise InvalidInputError("labels", "contains no negative label; a calibration cannot be fitted")
    z = _feature(s, score_kind)
    if float(np.ptp(z)) == 0.0:
        raise InvalidInputError("scores", "all scores are equal: there is nothing to calibrate")
    info = {**dict(fitted_on or {}), "pairs": int(s.size), "positives": int(y.sum())}
    if method == "isotonic":
        return Calibration("isotonic", score_kind, knots=_isotonic(z, y), fitted_on=info)
    if method == "temperature" and score_kind == "rank":
        raise InvalidInputError("method", "temperature scaling needs logit or probability scores")
    positives, negatives = float(y.sum()), float((~y).sum())
    t = np.where(y, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    a, b = _newton_logistic(z, t, with_bias=method == "platt")
    if a <= 0:  # a decreasing map would reverse the ranking
        raise InvalidInputError(
            "scores",
            f"higher scores are not more often relevant in these labels: {method} would reverse the ranking",
        )
    if method == "platt":
        return Calibration("platt", score_kind, params=(a, b), fitted_on=info)
    return Calibration("temperature", score_kind, params=(1.0 / a,), fitted_on=info)

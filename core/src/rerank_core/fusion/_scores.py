"""Fusing the reranker's score with the first stage's, per query.

:class:`Fusion` + :func:`fuse_scores`: a weighted interpolation of the two scores after z-score or min-max
normalisation, or weighted reciprocal rank fusion of the two orders. ``weight`` is the reranker's share: 1.0
is the reranker alone, 0.0 the first stage alone. A small or out-of-domain reranker often ranks slightly
worse than BM25 on its own and clearly better when fused with it; fusion is cheap (no extra model calls) and
its weight is tuned on dev, never on test (:func:`rerank_core.eval.fusion_tuning.tune_fusion`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rerank_core._validation import finite_float, shown_number
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.fusion._spec import FUSION_METHODS, parse_spec

__all__ = ["Fusion", "check_first_stage_scores", "fuse_scores", "normalised"]


@dataclass(frozen=True)
class Fusion:
    """How to fuse the reranker's score with the first stage's (``weight`` = the reranker's share)."""

    method: str = "zscore"
    weight: float = 0.5
    rrf_k: int = 60

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise ConfigurationError(
                "fusion.method", f"must be one of {', '.join(FUSION_METHODS)}, got {self.method!r}"
            )
        if (
            isinstance(self.weight, bool)
            or not isinstance(self.weight, int | float)
            or not 0.0 <= self.weight <= 1.0
        ):
            raise ConfigurationError("fusion.weight", f"must be a number in [0, 1], got {self.weight!r}")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 0:
            raise ConfigurationError("fusion.rrf_k", f"must be an integer >= 0, got {self.rrf_k!r}")

    @classmethod
    def parse(cls, spec: str) -> Fusion:
        """``"zscore:0.6"``, ``"minmax:0.5"``, ``"rrf:0.5"`` or a bare method (weight 0.5); see
        :func:`~rerank_core.fusion.parse_spec`."""
        method, weight = parse_spec(spec, argument="fusion", weight_argument="fusion.weight")
        return cls(method=method, weight=0.5 if weight is None else weight)

    @classmethod
    def coerce(cls, fusion: object) -> Fusion | None:
        """``None``, a :class:`Fusion`, or a spec string parsed with :meth:`parse`; else an error naming
        ``fusion``."""
        if fusion is None or isinstance(fusion, Fusion):
            return fusion
        if isinstance(fusion, str):
            return cls.parse(fusion)
        raise ConfigurationError("fusion", f"must be a Fusion or a string, got {type(fusion).__name__}")

    @property
    def uses_input_order(self) -> bool:
        """Whether the fusion can rank by the input order when a call has no first-stage scores (``rrf``
        only: the interpolations need the scores themselves)."""
        return self.method == "rrf"

    def first_stage_need(self) -> str:
        """The rule on first-stage scores, in the words every check uses: each candidate needs one, except
        that ``rrf`` falls back on the input order when none has one."""
        why = (
            "it uses the input order only when no candidate has one"
            if self.uses_input_order
            else "only 'rrf' can use the input order instead"
        )
        return f"fusion {self.describe()!r} needs a first-stage score for every candidate ({why})"

    def describe(self) -> str:
        return f"{self.method}:{self.weight:g}" + (f" (k={self.rrf_k})" if self.method == "rrf" else "")


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks, best (highest) first; ties keep input order."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def _normalised(scores: np.ndarray, method: str) -> tuple[np.ndarray, bool]:
    """The normalised scores, and whether the statistics they came from were finite (no overflow)."""
    if method == "zscore":
        mean, std = scores.mean(), scores.std()
        out = (scores - mean) / std if std > 0 else np.zeros_like(scores)
        return out, bool(np.isfinite(mean) and np.isfinite(std))
    low, span = scores.min(), scores.max() - scores.min()
    out = (scores - low) / span if span > 0 else np.zeros_like(scores)
    return out, bool(np.isfinite(span))


def normalised(scores: np.ndarray, method: str) -> np.ndarray:
    """``scores`` z-scored (``"zscore"``) or scaled to [0, 1] (``"minmax"``); all zeros when they are equal.

    Finite scores always give finite, meaningful results: when huge magnitudes (near 1e308) overflow the
    mean, the spread or the span, the scores are first divided by their largest magnitude (both
    normalisations are scale-invariant, so the values are what the exact arithmetic gives). Ordinary scores
    take the plain formula, bit for bit as before.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out, exact = _normalised(scores, method)
    if exact or scores.size == 0 or not np.isfinite(scores).all():
        return out
    return _normalised(scores / float(np.max(np.abs(scores))), method)[0]


def check_first_stage_scores(values: object, n: int, argument: str = "first_stage_scores") -> np.ndarray:
    """``values`` as a float array of length ``n`` (finite numbers), or an error naming ``argument``."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise InvalidInputError(argument, f"must be a list of numbers, got {type(values).__name__}")
    if len(values) != n:
        raise InvalidInputError(argument, f"has {len(values)} scores for {n} candidates; give one each")
    out = np.empty(n, dtype=np.float64)
    for i, v in enumerate(values):
        number = finite_float(v)
        if number is None:
            raise InvalidInputError(f"{argument}[{i}]", f"must be a finite number, got {shown_number(v)}")
        out[i] = number
    return out


def fuse_scores(rerank: Sequence[float], first_stage: Sequence[float], fusion: Fusion) -> np.ndarray:
    """One query's fused scores (higher is better), one per candidate."""
    r = np.asarray(rerank, dtype=np.float64)
    f = np.asarray(first_stage, dtype=np.float64)
    if r.shape != f.shape:
        raise InvalidInputError("first_stage", f"has {f.size} scores for {r.size} reranker scores")
    if r.size == 0:
        return r
    w = float(fusion.weight)
    if fusion.method == "rrf":
        return w / (fusion.rrf_k + _ranks(r)) + (1.0 - w) / (fusion.rrf_k + _ranks(f))
    return w * normalised(r, fusion.method) + (1.0 - w) * normalised(f, fusion.method)

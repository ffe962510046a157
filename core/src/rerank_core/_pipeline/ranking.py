"""Stage 3, rank: windows -> one raw score per candidate -> calibrate (or normalize) -> fuse -> profile
-> threshold / no answer.

Pure arithmetic over one job's scores (no model, no I/O), the same for sync and async calls.

Calibration sits right after the windows are aggregated: it is fitted on the back end's raw scores of whole
candidates, so it reads exactly those, and gives the relevance score (P(relevant)) that thresholds, bands and
the no-answer floor compare. A fusion reads the raw score (the score its weight was tuned on, at fine-tuning
or with ``--fusion tune:SPLIT``), and a profile the fused score; both re-order candidates, and their result
is no longer a probability, so the bands and the no-answer floor always read the calibrated score itself.
Equal relevance (a calibration's flat step or saturated tail) is ordered by the raw score, so a calibration
never changes a ranking. The no-answer floor is decided before the judge stage, so an unanswerable query
costs no judge call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rerank_core._pipeline.jobs import Job
from rerank_core.chunking import aggregate_scores
from rerank_core.errors import ConfigurationError
from rerank_core.fusion import fuse_scores
from rerank_core.normalization import check_normalization, normalize_scores
from rerank_core.types import ScoreKind

if TYPE_CHECKING:
    from rerank_core.reranker import Reranker

__all__ = ["Ranked", "check_scoring", "gives_probabilities", "rank"]


@dataclass
class Ranked:
    """One scored query before ``top_n``: its scores and its order (threshold applied, best first)."""

    job: Job
    raw: np.ndarray
    windows: list[Any]
    truncated: list[bool]
    calibrated: np.ndarray
    relevance: np.ndarray
    pre_profile: np.ndarray | None
    order: list[int]
    judge_scores: dict[int, float] | None = None
    judge_usage: dict[str, int] | None = None
    no_answer: str | None = None


def gives_probabilities(options: Any, score_kind: ScoreKind | None) -> bool:
    """Whether the calibrated score is a probability: a fitted calibration, a probability back end with no
    normalization, or the sigmoid."""
    return (
        options.calibration is not None
        or options.normalization == "sigmoid"
        or (score_kind == "probability" and options.normalization == "none")
    )


def check_scoring(options: Any, score_kind: ScoreKind | None) -> None:
    """The checks of the scoring options that need the back end's ``score_kind`` (``None``: not known
    yet, checked again at the first call)."""
    check_normalization(options.normalization, options.temperature, score_kind)
    if score_kind is None:
        return
    calibration = options.calibration
    if calibration is not None and calibration.score_kind != score_kind:
        raise ConfigurationError(
            "calibration",
            f"was fitted on {calibration.score_kind} scores, and this back end gives {score_kind} scores: "
            "fit one on this back end",
        )
    if options.no_answer_floor is not None and not gives_probabilities(options, score_kind):
        raise ConfigurationError(
            "no_answer_floor",
            f"needs scores that are probabilities; this back end gives {score_kind} scores: fit a "
            "calibration (docs/calibration.md) or use normalization='sigmoid'",
        )


def rank(reranker: Reranker, job: Job) -> Ranked | None:
    """The pre-judge order of one scored job (``None`` for no candidates)."""
    n = len(job.candidates)
    if n == 0:
        return None
    assert job.segments is not None and job.segment_scores is not None
    options = reranker.options
    check_scoring(options, reranker.backend.score_kind)
    raw, windows, truncated = aggregate_scores(
        job.segments,
        job.segment_scores,
        n,
        options.long_text.aggregate,  # type: ignore[union-attr]
    )
    if options.calibration is not None:
        calibrated = options.calibration.apply(raw)  # type: ignore[union-attr]
    else:
        calibrated = normalize_scores(raw, options.normalization, temperature=options.temperature)
    relevance = calibrated
    if options.fusion is not None:
        first = job.first_stage
        if first is None:  # rrf on the input order: earlier is better
            first = -np.arange(n, dtype=np.float64)
        relevance = fuse_scores(raw, first, options.fusion)  # type: ignore[arg-type]
    pre_profile = None
    if options.profile is not None and job.profile_effects is not None:
        pre_profile = relevance
        relevance = options.profile.combine(relevance, job.profile_effects)  # type: ignore[union-attr]
    keep = np.arange(n)
    no_answer = None
    floor = options.no_answer_floor
    if floor is not None and float(calibrated.max()) < floor:
        no_answer = (
            f"no candidate reaches the no-answer floor: the best calibrated score is "
            f"{float(calibrated.max()):.4f}, below {floor:g}"
        )
        keep = keep[:0]
    if job.score_threshold is not None:
        keep = keep[relevance[keep] >= job.score_threshold]
    if options.calibration is not None and relevance is calibrated:
        # ties a calibration creates (a flat isotonic step, a saturated tail) keep the raw score's order, so a
        # monotone calibration never re-orders; then input order (lexsort is stable)
        keep = keep[np.lexsort((-raw[keep], -relevance[keep]))]
    else:
        keep = keep[np.argsort(-relevance[keep], kind="stable")]  # stable: equal scores keep input order
    order = [int(i) for i in keep]
    return Ranked(
        job, raw, windows, truncated, calibrated, relevance, pre_profile, order, no_answer=no_answer
    )

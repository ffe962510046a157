"""Stage 3, rank: windows -> one raw score per candidate -> normalize -> fuse -> profile -> threshold.

Pure arithmetic over one job's scores (no model, no I/O), the same for sync and async calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rerank_core._pipeline.jobs import Job
from rerank_core.chunking import aggregate_scores
from rerank_core.fusion import fuse_scores
from rerank_core.normalization import check_normalization, normalize_scores

if TYPE_CHECKING:
    from rerank_core.reranker import Reranker

__all__ = ["Ranked", "rank"]


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


def rank(reranker: Reranker, job: Job) -> Ranked | None:
    """The pre-judge order of one scored job (``None`` for no candidates)."""
    n = len(job.candidates)
    if n == 0:
        return None
    assert job.segments is not None and job.segment_scores is not None
    options = reranker.options
    check_normalization(options.normalization, options.temperature, reranker.backend.score_kind)
    raw, windows, truncated = aggregate_scores(
        job.segments,
        job.segment_scores,
        n,
        options.long_text.aggregate,  # type: ignore[union-attr]
    )
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
    if job.score_threshold is not None:
        keep = keep[relevance[keep] >= job.score_threshold]
    keep = keep[np.argsort(-relevance[keep], kind="stable")]  # stable: equal scores keep input order
    return Ranked(job, raw, windows, truncated, calibrated, relevance, pre_profile, [int(i) for i in keep])

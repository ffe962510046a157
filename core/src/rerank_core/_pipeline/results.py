"""Stage 5, respond: ``top_n`` is cut and each kept candidate becomes a :class:`RerankResult`; or, when the
back end failed and the reranker fails open, the input order flagged as not reranked."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from rerank_core._pipeline.jobs import Job
from rerank_core._pipeline.ranking import Ranked, gives_probabilities
from rerank_core.backends.base import instructed_fingerprint
from rerank_core.errors import BackendError, FailOpenWarning
from rerank_core.judge import merge_usage
from rerank_core.types import RerankResponse, RerankResult, ScoreKind

if TYPE_CHECKING:
    from rerank_core.reranker import Reranker

__all__ = ["respond", "unranked"]

logger = logging.getLogger("rerank_core")


def _response(
    reranker: Reranker,
    job: Job,
    results: tuple[RerankResult, ...],
    usage: dict[str, int],
    kind: ScoreKind,
    **extra: Any,
) -> RerankResponse:
    options = reranker.options
    return RerankResponse(
        job.query,
        results,
        instructed_fingerprint(reranker.backend.fingerprint, job.instruction),
        kind,
        options.normalization,
        len(job.candidates),
        usage,
        None if options.fusion is None else options.fusion.describe(),  # type: ignore[union-attr]
        calibration=None if options.calibration is None else options.calibration.describe(),  # type: ignore[union-attr]
        **extra,
    )


def respond(reranker: Reranker, job: Job, r: Ranked | None) -> RerankResponse:
    """The response of one ranked job: its first ``top_n`` results and its usage."""
    options = reranker.options
    names = {
        "profile": None if options.profile is None else options.profile.describe(),  # type: ignore[union-attr]
        "judge": None if options.judge is None else options.judge.describe(),
    }
    if r is None:
        return _response(reranker, job, (), {}, kind=reranker.backend.peek_score_kind() or "logit", **names)
    assert job.segments is not None
    keep = r.order if job.top_n is None else r.order[: job.top_n]
    effects = job.profile_effects
    judged = r.judge_scores or {}
    bands = options.bands if gives_probabilities(options, reranker.backend.score_kind) else None
    results = tuple(
        RerankResult(
            index=int(i),
            raw_score=float(r.raw[i]),
            relevance_score=float(r.relevance[i]),
            text=job.candidates[i].text,
            id=job.candidates[i].id,
            metadata=job.candidates[i].metadata,
            window=r.windows[i],
            truncated=r.truncated[i],
            rerank_score=float(r.calibrated[i]),
            first_stage_score=None if job.first_stage is None else float(job.first_stage[i]),
            pre_profile_score=None if r.pre_profile is None else float(r.pre_profile[i]),
            profile_effects=() if effects is None else effects[i],
            judge_score=judged.get(int(i)),
            band=None if bands is None else bands.band(float(r.calibrated[i])),  # type: ignore[union-attr]
        )
        for i in keep
    )
    usage = {
        "candidates": len(job.candidates),
        "segments": len(job.segments),
        "cache_hits": job.cache_hits,
        "pairs_scored": len(job.segments) - job.cache_hits,
        "truncated": int(sum(r.truncated)),
    }
    if job.query_truncated:
        usage["query_truncated"] = 1
    if job.backend_usage:
        usage.update(job.backend_usage)
    if r.judge_usage:
        usage = merge_usage(usage, r.judge_usage)
    return _response(
        reranker,
        job,
        results,
        usage,
        kind=reranker.backend.score_kind,
        query_truncated=job.query_truncated,
        no_answer=r.no_answer,
        **names,
    )


def unranked(reranker: Reranker, jobs: list[Job], exc: BackendError) -> list[RerankResponse]:
    """The input order, flagged as not reranked, when the back end failed and ``fail_open`` is on."""
    if not reranker.options.fail_open:
        raise exc
    error = f"{type(exc).__name__}: {exc}"
    message = f"rerank back end failed, returning the input order unranked (fail_open=True): {error}"
    logger.warning(message)
    warnings.warn(message, FailOpenWarning, stacklevel=4)
    nan = float("nan")
    kind = reranker.backend.peek_score_kind() or "logit"
    responses = []
    for job in jobs:
        n = len(job.candidates)
        keep = range(n) if job.top_n is None else range(min(n, job.top_n))
        results = tuple(
            RerankResult(
                index=i,
                raw_score=nan,
                relevance_score=nan,
                text=job.candidates[i].text,
                id=job.candidates[i].id,
                metadata=job.candidates[i].metadata,
                reranked=False,
                rerank_score=nan,
                first_stage_score=None if job.first_stage is None else float(job.first_stage[i]),
            )
            for i in keep
        )
        responses.append(
            _response(reranker, job, results, {"candidates": n, "failed": 1}, kind=kind, error=error)
        )
    return responses

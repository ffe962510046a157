"""The reranking pipeline, written once. :class:`~rerank_core.Reranker` is its facade.

    validate (jobs) -> score (scoring: windows, cache, back end) -> rank (ranking: aggregate windows,
    normalize, fuse, profile, threshold) -> judge (judging, optional) -> respond (results: top_n)
    -> select context (selecting, optional: what reaches the LLM)

Each stage is a module of small functions over the call's jobs; ``run`` and ``arun`` below are the whole
order, sync and async, and share every stage but the two that wait on a back end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rerank_core._pipeline.jobs import UNSET, Job, make_job, make_jobs
from rerank_core._pipeline.judging import ajudge, judge
from rerank_core._pipeline.ranking import rank
from rerank_core._pipeline.results import respond, unranked
from rerank_core._pipeline.scoring import ascore, score
from rerank_core._pipeline.selecting import select
from rerank_core.errors import BackendError
from rerank_core.types import RerankResponse

if TYPE_CHECKING:
    from rerank_core.reranker import Reranker

__all__ = ["UNSET", "Job", "arun", "make_job", "make_jobs", "run", "score"]


def run(reranker: Reranker, jobs: list[Job]) -> list[RerankResponse]:
    """The pipeline over validated jobs, one response per job."""
    try:
        score(reranker, jobs)
    except BackendError as exc:
        return select(reranker, jobs, unranked(reranker, jobs, exc))  # fail_open, or raise
    ranked = [rank(reranker, job) for job in jobs]
    judge(reranker, ranked)
    return select(reranker, jobs, [respond(reranker, job, r) for job, r in zip(jobs, ranked, strict=True)])


async def arun(reranker: Reranker, jobs: list[Job]) -> list[RerankResponse]:
    """:func:`run` without blocking the event loop on model work."""
    try:
        await ascore(reranker, jobs)
    except BackendError as exc:
        return select(reranker, jobs, unranked(reranker, jobs, exc))
    ranked = [rank(reranker, job) for job in jobs]
    await ajudge(reranker, ranked)
    return select(reranker, jobs, [respond(reranker, job, r) for job, r in zip(jobs, ranked, strict=True)])

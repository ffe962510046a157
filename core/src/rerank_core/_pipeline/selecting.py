"""Stage 6, select context: what reaches the LLM, from each response's results
(:mod:`rerank_core.context`); the response keeps its ``results`` and gains ``context``."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from rerank_core._pipeline.jobs import Job
from rerank_core.context import select_context
from rerank_core.types import RerankResponse

if TYPE_CHECKING:
    from rerank_core.reranker import Reranker

__all__ = ["select"]


def select(reranker: Reranker, jobs: list[Job], responses: list[RerankResponse]) -> list[RerankResponse]:
    """Each response with its context selection, when the reranker has a ``context`` policy (a no-answer
    response gets an empty selection that carries the reason; a fail-open one is selected in input order;
    the call's ``embeddings``, if any, are the vectors compared)."""
    policy = reranker.options.context
    if policy is None:
        return responses
    return [
        dataclasses.replace(r, context=select_context(r, policy, embeddings=job.embeddings))  # type: ignore[arg-type]
        for job, r in zip(jobs, responses, strict=True)
    ]

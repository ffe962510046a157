"""Stage 1, validate: one query's call becomes a :class:`Job` (or an error naming the bad argument).

Everything a call can get wrong is found here, before any model work: the query, the candidates, the
per-call ``top_n`` / ``score_threshold``, the first-stage scores a fusion needs, the metadata a scoring
profile reads. Nothing the caller passed is copied or changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rerank_core._validation import (
    check_instruction,
    check_query,
    check_score_threshold,
    check_top_n,
    to_candidates,
)
from rerank_core.chunking import Segment
from rerank_core.errors import InvalidInputError
from rerank_core.fusion import check_first_stage_scores
from rerank_core.options import RerankerOptions
from rerank_core.types import Candidate, RuleEffect

__all__ = ["UNSET", "Job", "make_job", "make_jobs"]


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()
"""Marks a per-call option the caller did not give (``None`` is a real value for ``top_n``)."""


@dataclass
class Job:
    """One query's validated request, and after scoring, its segments and their raw scores."""

    query: str
    candidates: list[Candidate]
    top_n: int | None
    score_threshold: float | None
    query_argument: str
    candidate_argument: str
    first_stage: np.ndarray | None = None
    profile_effects: tuple[tuple[RuleEffect, ...], ...] | None = None
    segments: list[Segment] | None = None
    scored_query: str | None = None  # the query the model reads (cut to fit when query_truncated)
    query_truncated: bool = False
    segment_scores: np.ndarray | None = None
    cache_hits: int = 0
    backend_usage: dict[str, int] | None = None  # what the back end reported this query cost (LLM calls...)
    instruction: str | None = None  # the call's (or the options') instruction; None: the back end's default
    embeddings: Sequence[Any] | None = None  # the call's vectors for the context stage (one per candidate)


def make_job(
    options: RerankerOptions,
    query: Any,
    candidates: Any,
    top_n: Any = UNSET,
    score_threshold: Any = UNSET,
    first_stage_scores: Any = None,
    *,
    arguments: tuple[str, str, str] = ("query", "candidates", "first_stage_scores"),
    instruction: Any = UNSET,
    embeddings: Any = None,
) -> Job:
    """One call's job; ``arguments`` name the query, candidates and first-stage scores in errors."""
    q_arg, c_arg, f_arg = arguments
    text = check_query(query, q_arg)  # a bad query is reported before bad candidates
    items = to_candidates(candidates, c_arg)
    if embeddings is not None:
        context = options.context
        if context is None or context.similarity != "embeddings":  # type: ignore[union-attr]
            raise InvalidInputError(
                "embeddings", "are only read by a context policy with similarity='embeddings'"
            )
        if isinstance(embeddings, str | bytes) or not hasattr(embeddings, "__len__"):
            raise InvalidInputError(
                "embeddings", f"must be a sequence of vectors, got {type(embeddings).__name__}"
            )
        if len(embeddings) != len(items):
            raise InvalidInputError(
                "embeddings", f"has {len(embeddings)} vectors for {len(items)} candidates"
            )
    first_stage = None
    fusion = options.fusion
    if first_stage_scores is not None:
        first_stage = check_first_stage_scores(first_stage_scores, len(items), f_arg)
    elif fusion is not None and not fusion.uses_input_order and items:
        raise InvalidInputError(f_arg, fusion.first_stage_need())
    profile = options.profile
    return Job(
        query=text,
        candidates=items,
        first_stage=first_stage,
        top_n=options.top_n if top_n is UNSET else check_top_n(top_n),
        score_threshold=(
            options.score_threshold if score_threshold is UNSET else check_score_threshold(score_threshold)
        ),
        query_argument=q_arg,
        candidate_argument=c_arg,
        profile_effects=(
            None if profile is None else profile.evaluate([c.metadata for c in items], argument=c_arg)
        ),
        instruction=options.instruction if instruction is UNSET else check_instruction(instruction),
        embeddings=embeddings,
    )


def make_jobs(
    options: RerankerOptions,
    queries: Any,
    candidates: Any,
    top_n: Any = UNSET,
    score_threshold: Any = UNSET,
    first_stage_scores: Any = None,
    instruction: Any = UNSET,
) -> list[Job]:
    """One job per query of a ``rerank_many`` call."""
    if isinstance(queries, str) or not isinstance(queries, Sequence):
        raise InvalidInputError("queries", f"must be a list of query strings, got {type(queries).__name__}")
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise InvalidInputError(
            "candidates", f"must be a list with one candidate list per query, got {type(candidates).__name__}"
        )
    if len(queries) != len(candidates):
        raise InvalidInputError(
            "candidates", f"got {len(candidates)} candidate lists for {len(queries)} queries; they must match"
        )
    if first_stage_scores is not None and (
        isinstance(first_stage_scores, str)
        or not isinstance(first_stage_scores, Sequence)
        or len(first_stage_scores) != len(queries)
    ):
        raise InvalidInputError(
            "first_stage_scores", f"must be a list with one score list per query ({len(queries)})"
        )
    return [
        make_job(
            options,
            q,
            c,
            top_n,
            score_threshold,
            None if first_stage_scores is None else first_stage_scores[i],
            arguments=(f"queries[{i}]", f"candidates[{i}]", f"first_stage_scores[{i}]"),
            instruction=instruction,
        )
        for i, (q, c) in enumerate(zip(queries, candidates, strict=True))
    ]

"""Stage 2, score: long texts become windows, the cache answers what it can, the back end scores the rest.

``score`` (sync) and ``ascore`` share every step but the back-end call: in-process back ends run the sync
path on their bounded thread pool (or in a coalesced batch), remote ones use their native async client.
After this stage each job holds its segments and one raw score per segment.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from rerank_core._pipeline.jobs import Job
from rerank_core.backends._runners import abandonable
from rerank_core.backends.base import instructed_fingerprint, instruction_kwargs
from rerank_core.chunking import estimated_segments, plan
from rerank_core.errors import BackendError, NonRetryableBackendError, RerankError

if TYPE_CHECKING:
    from rerank_core.reranker import Reranker

__all__ = ["BackendSide", "ascore", "score"]

Pairs = list[tuple[str, str]]
StageT = TypeVar("StageT", bound=Callable[..., Any])


class BackendSide:
    """``with BackendSide(backend):`` around back-end work: an unexpected exception raised there (a
    tokenizer's ``TypeError``, a runtime's ``RuntimeError``, a bad return value) becomes a
    :class:`NonRetryableBackendError` naming the back end, chained to the original, so ``fail_open``
    applies; a :class:`BackendError` without a back end is given this one's name. Other
    :class:`RerankError` s (bad input, configuration) and ``BaseException`` s (``KeyboardInterrupt``,
    ``SystemExit``, ``CancelledError``) pass unchanged."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        if isinstance(exc, BackendError):
            if exc.backend is None:  # name the back end it came from
                exc.backend = self._name()
                exc.args = (f"[{exc.backend}] {getattr(exc, 'detail', exc)}",)
            return
        if isinstance(exc, RerankError):
            return
        raise NonRetryableBackendError(
            f"failed while scoring: {type(exc).__name__}: {exc}", backend=self._name()
        ) from exc

    def _name(self) -> str:
        try:
            return str(self.backend.fingerprint)
        except Exception:
            return type(self.backend).__name__


def _backend_side(stage: StageT) -> StageT:
    """Run ``stage(reranker, jobs)``, sync or async, inside :class:`BackendSide` of the back end."""
    if asyncio.iscoroutinefunction(stage):

        @functools.wraps(stage)
        async def arun(reranker: Reranker, jobs: list[Job]) -> None:
            with BackendSide(reranker.backend):
                await stage(reranker, jobs)

        return cast(StageT, arun)

    @functools.wraps(stage)
    def run(reranker: Reranker, jobs: list[Job]) -> None:
        with BackendSide(reranker.backend):
            stage(reranker, jobs)

    return cast(StageT, run)


@_backend_side
def score(reranker: Reranker, jobs: list[Job]) -> None:
    """Score every job's segments in place (one back-end call per instruction: one, unless coalesced calls
    brought different instructions)."""
    for instruction, part in _by_instruction(reranker, jobs):
        pairs = _plan(reranker, part, instruction)
        fingerprint = instructed_fingerprint(reranker.backend.fingerprint, instruction)
        cached, missing = _lookup(reranker, fingerprint, pairs)
        groups = _groups(part, missing)
        told = instruction_kwargs(instruction)
        fresh = _take_usage(reranker, part, reranker.backend.score_groups(groups, **told)) if missing else []
        _store(reranker, part, fingerprint, pairs, cached, missing, fresh)


@_backend_side
async def ascore(reranker: Reranker, jobs: list[Job]) -> None:
    """Async :func:`score`: the event loop never waits on model work."""
    backend = reranker.backend
    if not any(job.candidates for job in jobs):
        score(reranker, jobs)  # nothing to score: no model, no thread hop
    elif reranker.coalescer is not None:
        policy = reranker.options.long_text
        size = sum(estimated_segments([c.text for c in job.candidates], policy) for job in jobs)  # type: ignore[arg-type]
        await reranker.coalescer.submit(jobs, size)
    elif backend.blocking:
        stop = threading.Event()
        try:
            await backend.run_blocking(_score_until_abandoned, reranker, jobs, stop)
        except asyncio.CancelledError:
            stop.set()  # the caller stopped waiting (a timeout): local model work stops at its next batch
            raise
    else:
        for instruction, part in _by_instruction(reranker, jobs):
            pairs = _plan(reranker, part, instruction)
            fingerprint = instructed_fingerprint(backend.fingerprint, instruction)
            cached, missing = _lookup(reranker, fingerprint, pairs)
            groups = _groups(part, missing)
            told = instruction_kwargs(instruction)
            scored = await backend.ascore_groups(groups, **told) if missing else []
            fresh = _take_usage(reranker, part, scored) if missing else []
            _store(reranker, part, fingerprint, pairs, cached, missing, fresh)


def _score_until_abandoned(reranker: Reranker, jobs: list[Job], stop: threading.Event) -> None:
    """:func:`score` on a back-end thread, abandoned at the next batch once ``stop`` is set."""
    with abandonable(stop):
        score(reranker, jobs)


def _by_instruction(reranker: Reranker, jobs: list[Job]) -> list[tuple[str | None, list[Job]]]:
    """The jobs grouped by instruction, in first-seen order; each instruction checked by the back end
    (``ConfigurationError`` naming ``instruction`` when it takes none) before any model work, calls
    without candidates included (they would otherwise answer where every other call refuses)."""
    parts: dict[str | None, list[Job]] = {}
    for job in jobs:
        parts.setdefault(job.instruction, []).append(job)
    for instruction in parts:
        reranker.backend.check_instruction(instruction)
    return list(parts.items())


def _plan(reranker: Reranker, jobs: list[Job], instruction: str | None = None) -> Pairs:
    """Split each job's texts into segments (loads the tokenizer if the back end has one). The pair budget
    is the back end's under ``instruction`` (a template's instruction takes room from the document)."""
    backend = reranker.backend
    told = instruction_kwargs(instruction)
    limit = backend.pair_limit(**told) if any(job.candidates for job in jobs) else None
    pairs: Pairs = []
    for job in jobs:
        planned = plan(
            job.query,
            [c.text for c in job.candidates],
            limit,
            reranker.options.long_text,  # type: ignore[arg-type]
            query_argument=job.query_argument,
            candidate_argument=job.candidate_argument,
        )
        job.segments, job.scored_query, job.query_truncated = (
            planned.segments,
            planned.query,
            planned.query_truncated,
        )
        pairs.extend((planned.query, seg.text) for seg in job.segments)
    return pairs


def _lookup(reranker: Reranker, fingerprint: str, pairs: Pairs) -> tuple[list[float | None], list[int]]:
    cache = reranker.options.cache
    if cache is None:
        return [None] * len(pairs), list(range(len(pairs)))
    cached = cache.get_many(fingerprint, pairs)  # type: ignore[union-attr]
    return cached, [i for i, v in enumerate(cached) if v is None]


def _groups(jobs: list[Job], missing: list[int]) -> list[tuple[str, list[str]]]:
    """The pairs to score as one (query, texts) group per job (a job's pairs are contiguous)."""
    groups: list[tuple[str, list[str]]] = []
    offset, k = 0, 0
    for job in jobs:
        assert job.segments is not None
        end = offset + len(job.segments)
        texts = []
        while k < len(missing) and missing[k] < end:
            texts.append(job.segments[missing[k] - offset].text)
            k += 1
        groups.append((job.scored_query or job.query, texts))
        offset = end
    return groups


def _take_usage(reranker: Reranker, jobs: list[Job], scored: Sequence[Any]) -> list[float]:
    """Flatten the back end's per-group scores; keep each group's usage on its job."""
    if len(scored) != len(jobs):
        raise NonRetryableBackendError(
            f"returned {len(scored)} score groups for {len(jobs)} queries",
            backend=reranker.backend.fingerprint,
        )
    fresh: list[float] = []
    for job, group in zip(jobs, scored, strict=True):
        fresh.extend(group.scores)
        job.backend_usage = dict(group.usage) if group.usage else None
    return fresh


def _store(
    reranker: Reranker,
    jobs: list[Job],
    fingerprint: str,
    pairs: Pairs,
    cached: list[float | None],
    missing: list[int],
    fresh: Sequence[float],
) -> None:
    if len(fresh) != len(missing):
        raise NonRetryableBackendError(
            f"returned {len(fresh)} scores for {len(missing)} pairs", backend=fingerprint
        )
    scores = np.array([np.nan if v is None else v for v in cached], dtype=np.float64)
    scores[missing] = np.asarray(fresh, dtype=np.float64)
    bad = ~np.isfinite(scores[missing])
    if bad.any():
        raise NonRetryableBackendError(
            f"returned {int(bad.sum())} non-finite score(s) (NaN or infinity)", backend=fingerprint
        )
    cache = reranker.options.cache
    if cache is not None and missing:
        cache.put_many(fingerprint, ((pairs[i], scores[i]) for i in missing))  # type: ignore[union-attr]
    hit = np.ones(len(pairs), dtype=bool)
    hit[missing] = False
    offset = 0
    for job in jobs:
        assert job.segments is not None
        n = len(job.segments)
        job.segment_scores = scores[offset : offset + n]
        job.cache_hits = int(hit[offset : offset + n].sum())
        offset += n

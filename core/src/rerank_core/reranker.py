"""The reranker: one back end plus the policy that turns its scores into a ranking.

    validate -> (split long texts) -> back end scores pairs (cache first) -> (aggregate windows)
             -> normalize -> (fuse with first-stage scores) -> (scoring profile) -> threshold
             -> (judge stage: an LLM re-orders the top_k / uncertain band within their slots) -> top_n

``rerank`` handles one query, ``rerank_many`` many queries whose pairs are scored together in shared
batches, and ``arerank`` / ``arerank_many`` do the same without ever blocking the event loop on
model work (in-process back ends run on their bounded thread pool; remote ones use native async).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rerank_core.backends.base import Backend
from rerank_core.cache import ScoreCache
from rerank_core.chunking import LongTextPolicy, Segment, aggregate_scores, plan_segments
from rerank_core.coalescing import Coalescer, Coalescing
from rerank_core.errors import (
    BackendError,
    ConfigurationError,
    FailOpenWarning,
    InvalidInputError,
    NonRetryableBackendError,
)
from rerank_core.fusion import Fusion, check_first_stage_scores, fuse_scores
from rerank_core.judge_stage import JudgeStage, check_judge
from rerank_core.normalization import check_normalization, normalize_scores
from rerank_core.profiles import ScoringProfile, check_profile
from rerank_core.slots import merge_usage, reorder_within_slots, select_for_judge
from rerank_core.types import Candidate, RerankResponse, RerankResult, RuleEffect
from rerank_core.validation import check_query, check_score_threshold, check_top_n, to_candidates

__all__ = ["Reranker"]

logger = logging.getLogger("rerank_core")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


@dataclass
class _Job:
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
    segment_scores: np.ndarray | None = None
    cache_hits: int = 0
    backend_usage: dict[str, int] | None = None  # what the back end reported this query cost (LLM calls...)


@dataclass
class _Ranked:
    """One scored query before ``top_n``: its scores and its order (threshold applied, best first)."""

    job: _Job
    raw: np.ndarray
    windows: list[Any]
    truncated: list[bool]
    calibrated: np.ndarray
    relevance: np.ndarray
    pre_profile: np.ndarray | None
    order: list[int]
    judge_scores: dict[int, float] | None = None
    judge_usage: dict[str, int] | None = None


class Reranker:
    """Reranks candidates for a query with a back end and a scoring policy.

    Args:
        backend: the scorer (e.g. :class:`~rerank_core.backends.CrossEncoderBackend`).
        top_n: keep at most this many results (``None``: all that pass the threshold).
        score_threshold: drop results whose ``relevance_score`` is below this.
        normalization: ``"none"`` (relevance = raw score), ``"sigmoid"``, ``"temperature"`` (softmax
            over the query's candidates at ``temperature``) or ``"minmax"`` (per query, to [0, 1]).
            Squashing scores that are already probabilities is refused.
        long_text: ``"window"`` (split and aggregate), ``"truncate"`` (reported) or ``"error"``.
        window_size, window_stride, aggregate: see :class:`~rerank_core.chunking.LongTextPolicy`.
        cache: ``False`` (default), ``True`` (100k entries), an int size, or a shared :class:`ScoreCache`.
        fusion: a :class:`~rerank_core.fusion.Fusion` (or ``"zscore:0.6"``-style string) that combines the
            reranker's raw score with the ``first_stage_scores`` passed to each call; ``relevance_score``
            (what the threshold compares) is then the fused score, and each result also carries
            ``rerank_score`` and ``first_stage_score``. ``"rrf"`` without first-stage scores uses the
            input order as the first-stage ranking; the interpolations need the scores.
        fail_open: when the back end fails (a :class:`~rerank_core.errors.BackendError`, after the back
            end's own retries), return the candidates in input order instead of raising: every result has
            ``reranked=False`` and NaN scores (the threshold is not applied; ``top_n`` is), the response
            carries the error in ``error``, and a :class:`~rerank_core.errors.FailOpenWarning` is issued
            and logged. Bad input and bad configuration still raise. Default ``False``: raise.
        profile: a :class:`~rerank_core.profiles.ScoringProfile` (or the mapping
            ``ScoringProfile.from_dict`` reads): business rules over each candidate's metadata, applied
            after the fusion and before the threshold and ``top_n``. ``relevance_score`` is then the profiled
            score; ``pre_profile_score`` keeps the score before it (fused, or calibrated without a fusion),
            ``rerank_score`` and ``first_stage_score`` are unchanged, and ``profile_effects`` lists the rules
            that fired. Metadata a rule cannot read is an error raised before any model work.
        coalesce: ``True`` or a :class:`~rerank_core.coalescing.Coalescing`: concurrent ``arerank`` /
            ``arerank_many`` calls arriving within a few milliseconds share model batches (in-process back
            ends only; each call still gets exactly its own results). Off by default.
        judge: a :class:`~rerank_core.judge_stage.JudgeStage`: the last stage, after the profile and the
            threshold, before ``top_n``. Its back end (an LLM judge) re-orders the ``top_k`` of the current
            order and/or the candidates whose ``relevance_score`` is in its ``band``, within the slots they
            hold. ``relevance_score`` keeps the pre-judge score; judged results carry ``judge_score``, and
            ``usage`` adds the judge's (LLM calls, tokens) and ``judge_candidates``. A failing judge keeps
            the pre-judge order with a warning and ``usage["judge_failed"]`` (``JudgeStage(fail_open=True)``,
            the default) or raises. See :mod:`rerank_core.judge_stage`.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        normalization: str = "none",
        temperature: float = 1.0,
        long_text: str = "window",
        window_size: int | None = None,
        window_stride: int | None = None,
        aggregate: str = "max",
        cache: bool | int | ScoreCache = False,
        fusion: Fusion | str | None = None,
        fail_open: bool = False,
        profile: ScoringProfile | Mapping[str, Any] | None = None,
        coalesce: bool | Coalescing | None = None,
        judge: JudgeStage | None = None,
    ) -> None:
        if not isinstance(backend, Backend):
            raise ConfigurationError(
                "backend", f"must be a rerank_core Backend, got {type(backend).__name__}"
            )
        self.backend = backend
        try:
            self.top_n = check_top_n(top_n)
            self.score_threshold = check_score_threshold(score_threshold)
        except InvalidInputError as exc:
            raise ConfigurationError(exc.argument, str(exc).split(": ", 1)[1]) from None
        check_normalization(normalization, temperature, backend.peek_score_kind())
        self.normalization = normalization
        self.temperature = float(temperature)
        if isinstance(fusion, str):
            fusion = Fusion.parse(fusion)
        if fusion is not None and not isinstance(fusion, Fusion):
            raise ConfigurationError("fusion", f"must be a Fusion or a string, got {type(fusion).__name__}")
        self.fusion: Fusion | None = fusion
        if not isinstance(fail_open, bool):
            raise ConfigurationError("fail_open", f"must be True or False, got {fail_open!r}")
        self.fail_open = fail_open
        self.profile: ScoringProfile | None = check_profile(profile)
        self.judge: JudgeStage | None = check_judge(judge)
        self.coalesce = Coalescing.parse(coalesce)
        self._coalescer = (
            None
            if self.coalesce is None or not backend.blocking
            else Coalescer(self._score_sync, backend.run_blocking, self.coalesce)
        )
        self.long_text = LongTextPolicy(long_text, window_size, window_stride, aggregate)  # type: ignore[arg-type]
        if isinstance(cache, ScoreCache):
            self.cache: ScoreCache | None = cache
        elif cache is True:
            self.cache = ScoreCache()
        elif cache is False or cache is None:
            self.cache = None
        elif isinstance(cache, int):
            self.cache = ScoreCache(cache)
        else:
            raise ConfigurationError(
                "cache", f"must be a bool, a size or a ScoreCache, got {type(cache).__name__}"
            )

    def __repr__(self) -> str:
        return (
            f"Reranker(backend={self.backend!r}, top_n={self.top_n}, score_threshold={self.score_threshold}, "
            f"normalization={self.normalization!r}"
            + (f", fusion={self.fusion.describe()!r}" if self.fusion is not None else "")
            + (f", profile={self.profile.describe()!r}" if self.profile is not None else "")
            + (f", judge={self.judge.describe()!r}" if self.judge is not None else "")
            + (", fail_open=True)" if self.fail_open else ")")
        )

    # -- public API --------------------------------------------------------------------------------

    def rerank(
        self,
        query: str,
        candidates: Iterable[str | Candidate | Any],
        *,
        top_n: int | None = _UNSET,
        score_threshold: float | None = _UNSET,
        first_stage_scores: Sequence[float] | None = None,
    ) -> RerankResponse:
        """Rank ``candidates`` (strings, :class:`Candidate` or mappings with ``text``) for ``query``.

        ``first_stage_scores``: the retriever's score of each candidate (kept in the results, and fused
        with the reranker's when the reranker has a ``fusion``).
        """
        job = self._job(query, candidates, top_n, score_threshold, "query", "candidates", first_stage_scores)
        try:
            self._score_sync([job])
        except BackendError as exc:
            return self._failed([job], exc)[0]
        return self._finish_sync([job])[0]

    def rerank_many(
        self,
        queries: Sequence[str],
        candidates: Sequence[Iterable[str | Candidate | Any]],
        *,
        top_n: int | None = _UNSET,
        score_threshold: float | None = _UNSET,
        first_stage_scores: Sequence[Sequence[float]] | None = None,
    ) -> list[RerankResponse]:
        """Rank one candidate list per query; every pair of every query goes through shared batches."""
        jobs = self._jobs(queries, candidates, top_n, score_threshold, first_stage_scores)
        try:
            self._score_sync(jobs)
        except BackendError as exc:
            return self._failed(jobs, exc)
        return self._finish_sync(jobs)

    async def arerank(
        self,
        query: str,
        candidates: Iterable[str | Candidate | Any],
        *,
        top_n: int | None = _UNSET,
        score_threshold: float | None = _UNSET,
        first_stage_scores: Sequence[float] | None = None,
    ) -> RerankResponse:
        """Async :meth:`rerank`: model work runs off the event loop."""
        job = self._job(query, candidates, top_n, score_threshold, "query", "candidates", first_stage_scores)
        try:
            await self._score_async([job])
        except BackendError as exc:
            return self._failed([job], exc)[0]
        return (await self._finish_async([job]))[0]

    async def arerank_many(
        self,
        queries: Sequence[str],
        candidates: Sequence[Iterable[str | Candidate | Any]],
        *,
        top_n: int | None = _UNSET,
        score_threshold: float | None = _UNSET,
        first_stage_scores: Sequence[Sequence[float]] | None = None,
    ) -> list[RerankResponse]:
        """Async :meth:`rerank_many`."""
        jobs = self._jobs(queries, candidates, top_n, score_threshold, first_stage_scores)
        try:
            await self._score_async(jobs)
        except BackendError as exc:
            return self._failed(jobs, exc)
        return await self._finish_async(jobs)

    # -- validation --------------------------------------------------------------------------------

    def _job(
        self,
        query: Any,
        candidates: Any,
        top_n: Any,
        score_threshold: Any,
        q_arg: str,
        c_arg: str,
        first_stage_scores: Any = None,
        f_arg: str = "first_stage_scores",
    ) -> _Job:
        text = check_query(query, q_arg)  # a bad query is reported before bad candidates
        items = to_candidates(candidates, c_arg)
        first_stage = None
        if first_stage_scores is not None:
            first_stage = check_first_stage_scores(first_stage_scores, len(items), f_arg)
        elif self.fusion is not None and self.fusion.method != "rrf" and items:
            raise InvalidInputError(
                f_arg,
                f"fusion {self.fusion.describe()!r} needs one first-stage score per candidate "
                "(only 'rrf' can use the input order instead)",
            )
        return _Job(
            query=text,
            candidates=items,
            first_stage=first_stage,
            top_n=self.top_n if top_n is _UNSET else check_top_n(top_n),
            score_threshold=(
                self.score_threshold if score_threshold is _UNSET else check_score_threshold(score_threshold)
            ),
            query_argument=q_arg,
            candidate_argument=c_arg,
            profile_effects=(
                None
                if self.profile is None
                else self.profile.evaluate([c.metadata for c in items], argument=c_arg)
            ),
        )

    def _jobs(
        self, queries: Any, candidates: Any, top_n: Any, score_threshold: Any, first_stage_scores: Any = None
    ) -> list[_Job]:
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InvalidInputError(
                "queries", f"must be a list of query strings, got {type(queries).__name__}"
            )
        if isinstance(candidates, str) or not isinstance(candidates, Sequence):
            raise InvalidInputError(
                "candidates",
                f"must be a list with one candidate list per query, got {type(candidates).__name__}",
            )
        if len(queries) != len(candidates):
            raise InvalidInputError(
                "candidates",
                f"got {len(candidates)} candidate lists for {len(queries)} queries; they must match",
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
            self._job(
                q,
                c,
                top_n,
                score_threshold,
                f"queries[{i}]",
                f"candidates[{i}]",
                None if first_stage_scores is None else first_stage_scores[i],
                f"first_stage_scores[{i}]",
            )
            for i, (q, c) in enumerate(zip(queries, candidates, strict=True))
        ]

    # -- scoring -----------------------------------------------------------------------------------

    def _plan(self, jobs: list[_Job]) -> list[tuple[str, str]]:
        """Split each job's texts into segments (loads the tokenizer if the back end has one)."""
        active = [job for job in jobs if job.candidates]
        limit = self.backend.pair_limit() if active else None
        pairs: list[tuple[str, str]] = []
        for job in jobs:
            job.segments = plan_segments(
                job.query,
                [c.text for c in job.candidates],
                limit,
                self.long_text,
                query_argument=job.query_argument,
                candidate_argument=job.candidate_argument,
            )
            pairs.extend((job.query, seg.text) for seg in job.segments)
        return pairs

    def _lookup(self, pairs: list[tuple[str, str]]) -> tuple[list[float | None], list[int]]:
        if self.cache is None:
            return [None] * len(pairs), list(range(len(pairs)))
        cached = self.cache.get_many(self.backend.fingerprint, pairs)
        return cached, [i for i, v in enumerate(cached) if v is None]

    def _store(
        self,
        jobs: list[_Job],
        pairs: list[tuple[str, str]],
        cached: list[float | None],
        missing: list[int],
        fresh: Sequence[float],
    ) -> None:
        if len(fresh) != len(missing):
            raise NonRetryableBackendError(
                f"returned {len(fresh)} scores for {len(missing)} pairs", backend=self.backend.fingerprint
            )
        scores = np.array([np.nan if v is None else v for v in cached], dtype=np.float64)
        scores[missing] = np.asarray(fresh, dtype=np.float64)
        bad = ~np.isfinite(scores[missing])
        if bad.any():
            raise NonRetryableBackendError(
                f"returned {int(bad.sum())} non-finite score(s) (NaN or infinity)",
                backend=self.backend.fingerprint,
            )
        if self.cache is not None and missing:
            self.cache.put_many(self.backend.fingerprint, ((pairs[i], scores[i]) for i in missing))
        hit = np.ones(len(pairs), dtype=bool)
        hit[missing] = False
        offset = 0
        for job in jobs:
            assert job.segments is not None
            n = len(job.segments)
            job.segment_scores = scores[offset : offset + n]
            job.cache_hits = int(hit[offset : offset + n].sum())
            offset += n

    def _score_sync(self, jobs: list[_Job]) -> None:
        pairs = self._plan(jobs)
        cached, missing = self._lookup(pairs)
        groups = self._groups(jobs, missing)
        fresh = self._take_usage(jobs, self.backend.score_groups(groups)) if missing else []
        self._store(jobs, pairs, cached, missing, fresh)

    async def _score_async(self, jobs: list[_Job]) -> None:
        if not any(job.candidates for job in jobs):
            self._score_sync(jobs)  # nothing to score: no model, no thread hop
        elif self._coalescer is not None:
            await self._coalescer.submit(jobs, sum(len(job.candidates) for job in jobs))
        elif self.backend.blocking:
            await self.backend.run_blocking(self._score_sync, jobs)
        else:
            pairs = self._plan(jobs)
            cached, missing = self._lookup(pairs)
            groups = self._groups(jobs, missing)
            fresh = self._take_usage(jobs, await self.backend.ascore_groups(groups)) if missing else []
            self._store(jobs, pairs, cached, missing, fresh)

    @staticmethod
    def _groups(jobs: list[_Job], missing: list[int]) -> list[tuple[str, list[str]]]:
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
            groups.append((job.query, texts))
            offset = end
        return groups

    def _take_usage(self, jobs: list[_Job], scored: Sequence[Any]) -> list[float]:
        """Flatten the back end's per-group scores; keep each group's usage on its job."""
        if len(scored) != len(jobs):
            raise NonRetryableBackendError(
                f"returned {len(scored)} score groups for {len(jobs)} queries",
                backend=self.backend.fingerprint,
            )
        fresh: list[float] = []
        for job, group in zip(jobs, scored, strict=True):
            fresh.extend(group.scores)
            job.backend_usage = dict(group.usage) if group.usage else None
        return fresh

    # -- ranking -----------------------------------------------------------------------------------

    def _finish_sync(self, jobs: list[_Job]) -> list[RerankResponse]:
        ranked = [self._rank(job) for job in jobs]
        if self.judge is not None:
            picks, groups = self._judge_plan(ranked)
            if groups:
                try:
                    self._judge_apply(ranked, picks, self.judge.judge.score_groups(groups))
                except BackendError as exc:
                    self._judge_failed(ranked, picks, exc)
        return [self._build(job, r) for job, r in zip(jobs, ranked, strict=True)]

    async def _finish_async(self, jobs: list[_Job]) -> list[RerankResponse]:
        ranked = [self._rank(job) for job in jobs]
        if self.judge is not None:
            picks, groups = self._judge_plan(ranked)
            if groups:
                judge = self.judge.judge
                try:
                    if judge.blocking:  # its own thread pool: the event loop never waits on the judge
                        scored = await judge.run_blocking(judge.score_groups, groups)
                    else:
                        scored = await judge.ascore_groups(groups)
                    self._judge_apply(ranked, picks, scored)
                except BackendError as exc:
                    self._judge_failed(ranked, picks, exc)
        return [self._build(job, r) for job, r in zip(jobs, ranked, strict=True)]

    def _rank(self, job: _Job) -> _Ranked | None:
        """Scores, fusion, profile and threshold: the pre-judge order (``None`` for no candidates)."""
        n = len(job.candidates)
        if n == 0:
            return None
        assert job.segments is not None and job.segment_scores is not None
        check_normalization(self.normalization, self.temperature, self.backend.score_kind)
        raw, windows, truncated = aggregate_scores(
            job.segments, job.segment_scores, n, self.long_text.aggregate
        )
        calibrated = normalize_scores(raw, self.normalization, temperature=self.temperature)
        relevance = calibrated
        if self.fusion is not None:
            first = job.first_stage
            if first is None:  # rrf on the input order: earlier is better
                first = -np.arange(n, dtype=np.float64)
            relevance = fuse_scores(raw, first, self.fusion)
        pre_profile = None
        effects = job.profile_effects
        if self.profile is not None and effects is not None:
            pre_profile = relevance
            relevance = self.profile.combine(relevance, effects)
        keep = np.arange(n)
        if job.score_threshold is not None:
            keep = keep[relevance[keep] >= job.score_threshold]
        # Stable: equal scores keep input order.
        keep = keep[np.argsort(-relevance[keep], kind="stable")]
        return _Ranked(
            job, raw, windows, truncated, calibrated, relevance, pre_profile, [int(i) for i in keep]
        )

    # -- the judge stage ---------------------------------------------------------------------------

    def _judge_plan(
        self, ranked: list[_Ranked | None]
    ) -> tuple[list[tuple[int, list[int]]], list[tuple[str, list[str]]]]:
        """Per query, the candidates the judge sees; one (query, texts) group per query that has any."""
        assert self.judge is not None
        picks: list[tuple[int, list[int]]] = []
        groups: list[tuple[str, list[str]]] = []
        for k, r in enumerate(ranked):
            if r is None:
                continue
            r.judge_usage = {"judge_candidates": 0}
            pick = select_for_judge(r.order, r.relevance, self.judge.top_k, self.judge.band)
            if pick:
                picks.append((k, pick))
                groups.append((r.job.query, [r.job.candidates[i].text for i in pick]))
        return picks, groups

    def _judge_apply(
        self, ranked: list[_Ranked | None], picks: list[tuple[int, list[int]]], scored: Sequence[Any]
    ) -> None:
        """Check every group first (all or nothing), then re-order each query within the judged slots."""
        assert self.judge is not None
        fingerprint = self.judge.judge.fingerprint
        if len(scored) != len(picks):
            raise NonRetryableBackendError(
                f"returned {len(scored)} score groups for {len(picks)} queries", backend=fingerprint
            )
        for (_, pick), group in zip(picks, scored, strict=True):
            values = np.asarray(group.scores, dtype=np.float64)
            if len(values) != len(pick):
                raise NonRetryableBackendError(
                    f"returned {len(values)} scores for {len(pick)} judged candidates", backend=fingerprint
                )
            if not np.isfinite(values).all():
                raise NonRetryableBackendError("returned non-finite judge score(s)", backend=fingerprint)
        for (k, pick), group in zip(picks, scored, strict=True):
            r = ranked[k]
            assert r is not None
            r.order = reorder_within_slots(r.order, pick, group.scores)
            r.judge_scores = {i: float(v) for i, v in zip(pick, group.scores, strict=True)}
            r.judge_usage = merge_usage(group.usage, {"judge_candidates": len(pick)})

    def _judge_failed(
        self, ranked: list[_Ranked | None], picks: list[tuple[int, list[int]]], exc: BackendError
    ) -> None:
        """The pre-judge order, flagged in ``usage``, when the judge failed and its ``fail_open`` is on."""
        assert self.judge is not None
        if not self.judge.fail_open:
            raise exc
        message = (
            f"judge stage failed, keeping the pre-judge order (JudgeStage fail_open=True): "
            f"{type(exc).__name__}: {exc}"
        )
        logger.warning(message)
        warnings.warn(message, FailOpenWarning, stacklevel=4)
        for k, _ in picks:
            r = ranked[k]
            assert r is not None
            r.judge_usage = {"judge_candidates": 0, "judge_failed": 1}

    # -- results -----------------------------------------------------------------------------------

    def _build(self, job: _Job, r: _Ranked | None) -> RerankResponse:
        n = len(job.candidates)
        fingerprint = self.backend.fingerprint
        if r is None:
            kind = self.backend.peek_score_kind() or "logit"
            return RerankResponse(
                job.query,
                (),
                fingerprint,
                kind,
                self.normalization,
                0,
                {},
                self._fusion_name,
                profile=self._profile_name,
                judge=self._judge_name,
            )
        assert job.segments is not None
        kind = self.backend.score_kind
        keep = r.order if job.top_n is None else r.order[: job.top_n]
        effects = job.profile_effects
        judged = r.judge_scores or {}
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
            )
            for i in keep
        )
        usage = {
            "candidates": n,
            "segments": len(job.segments),
            "cache_hits": job.cache_hits,
            "pairs_scored": len(job.segments) - job.cache_hits,
            "truncated": int(sum(r.truncated)),
        }
        if job.backend_usage:
            usage.update(job.backend_usage)
        if r.judge_usage:
            usage = merge_usage(usage, r.judge_usage)
        return RerankResponse(
            job.query,
            results,
            fingerprint,
            kind,
            self.normalization,
            n,
            usage,
            self._fusion_name,
            profile=self._profile_name,
            judge=self._judge_name,
        )

    def _failed(self, jobs: list[_Job], exc: BackendError) -> list[RerankResponse]:
        """The input order, flagged as not reranked, when the back end failed and ``fail_open`` is on."""
        if not self.fail_open:
            raise exc
        error = f"{type(exc).__name__}: {exc}"
        message = f"rerank back end failed, returning the input order unranked (fail_open=True): {error}"
        logger.warning(message)
        warnings.warn(message, FailOpenWarning, stacklevel=3)
        nan = float("nan")
        kind = self.backend.peek_score_kind() or "logit"
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
            usage = {"candidates": n, "failed": 1}
            responses.append(
                RerankResponse(
                    job.query,
                    results,
                    self.backend.fingerprint,
                    kind,
                    self.normalization,
                    n,
                    usage,
                    self._fusion_name,
                    error=error,
                )
            )
        return responses

    @property
    def _fusion_name(self) -> str | None:
        return None if self.fusion is None else self.fusion.describe()

    @property
    def _profile_name(self) -> str | None:
        return None if self.profile is None else self.profile.describe()

    @property
    def _judge_name(self) -> str | None:
        return None if self.judge is None else self.judge.describe()

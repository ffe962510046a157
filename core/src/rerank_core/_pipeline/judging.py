"""Stage 4 (optional), judge: an expensive judge re-orders part of each ranking within the slots it holds.

Which candidates it sees and how its verdict re-orders them is :mod:`rerank_core.judge`; this module runs it
over a call's rankings, sync or async, and applies the judge's ``fail_open``.

Instructions: a judge that takes one (``judge.instruction_support`` set, as the LLM judge's prompt) is
given each query's instruction (the call's, else the options'), one ``score_groups`` call per instruction;
a judge that takes none is called as before, without it (the instruction then reaches the main back end
only).
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rerank_core._pipeline.ranking import Ranked
from rerank_core._pipeline.scoring import BackendSide
from rerank_core.backends.base import Backend, instruction_kwargs
from rerank_core.errors import BackendError, FailOpenWarning, NonRetryableBackendError
from rerank_core.judge import merge_usage, reorder_within_slots, select_for_judge

if TYPE_CHECKING:
    from rerank_core.reranker import Reranker

__all__ = ["ajudge", "judge"]

logger = logging.getLogger("rerank_core")

Picks = list[tuple[int, list[int]]]
Groups = list[tuple[str, list[str]]]


def judge(reranker: Reranker, ranked: list[Ranked | None]) -> None:
    stage = reranker.options.judge
    if stage is None:
        return
    picks, groups = _plan(reranker, ranked)
    if groups:
        backend = stage.judge
        try:
            with BackendSide(backend):  # any failure of the judge's is a BackendError: fail_open applies
                scored: list[Any] = [None] * len(groups)
                for instruction, ks in _by_instruction(backend, ranked, picks):
                    told = instruction_kwargs(instruction)
                    got = backend.score_groups([groups[k] for k in ks], **told)
                    _place(scored, ks, got, backend)
                _apply(reranker, ranked, picks, scored)
        except BackendError as exc:
            _failed(reranker, ranked, picks, exc)


async def ajudge(reranker: Reranker, ranked: list[Ranked | None]) -> None:
    stage = reranker.options.judge
    if stage is None:
        return
    picks, groups = _plan(reranker, ranked)
    if groups:
        backend = stage.judge
        try:
            with BackendSide(backend):
                scored: list[Any] = [None] * len(groups)
                for instruction, ks in _by_instruction(backend, ranked, picks):
                    told = instruction_kwargs(instruction)
                    part = [groups[k] for k in ks]
                    if backend.blocking:  # its own thread pool: the event loop never waits on the judge
                        sync = functools.partial(backend.score_groups, part, **told)
                        got = await backend.run_blocking(sync)
                    else:
                        got = await backend.ascore_groups(part, **told)
                    _place(scored, ks, got, backend)
                _apply(reranker, ranked, picks, scored)
        except BackendError as exc:
            _failed(reranker, ranked, picks, exc)


def _plan(reranker: Reranker, ranked: list[Ranked | None]) -> tuple[Picks, Groups]:
    """Per query, the candidates the judge sees; one (query, texts) group per query that has any."""
    stage = reranker.options.judge
    assert stage is not None
    picks: Picks = []
    groups: Groups = []
    for k, r in enumerate(ranked):
        if r is None:
            continue
        r.judge_usage = {"judge_candidates": 0}
        pick = select_for_judge(r.order, r.relevance, stage.top_k, stage.band)
        if pick:
            picks.append((k, pick))
            groups.append((r.job.query, [r.job.candidates[i].text for i in pick]))
    return picks, groups


def _by_instruction(
    judge: Backend, ranked: list[Ranked | None], picks: Picks
) -> list[tuple[str | None, list[int]]]:
    """The positions of ``picks`` grouped by the instruction the judge is given, in first-seen order: each
    query's instruction when the judge takes one, else ``None`` for all (the judge's own prompt)."""
    takes = judge.instruction_support is not None
    parts: dict[str | None, list[int]] = {}
    for p, (k, _) in enumerate(picks):
        r = ranked[k]
        assert r is not None
        parts.setdefault(r.job.instruction if takes else None, []).append(p)
    return list(parts.items())


def _place(scored: list[Any], positions: list[int], got: Sequence[Any], judge: Backend) -> None:
    """Put one instruction's score groups back at their queries' positions (checked for count first)."""
    if len(got) != len(positions):
        raise NonRetryableBackendError(
            f"returned {len(got)} score groups for {len(positions)} queries", backend=judge.fingerprint
        )
    for p, group in zip(positions, got, strict=True):
        scored[p] = group


def _apply(reranker: Reranker, ranked: list[Ranked | None], picks: Picks, scored: Sequence[Any]) -> None:
    """Check every group first (all or nothing), then re-order each query within the judged slots."""
    stage = reranker.options.judge
    assert stage is not None
    fingerprint = stage.judge.fingerprint
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


def _failed(reranker: Reranker, ranked: list[Ranked | None], picks: Picks, exc: BackendError) -> None:
    """The pre-judge order, flagged in ``usage``, when the judge failed and its ``fail_open`` is on."""
    stage = reranker.options.judge
    assert stage is not None
    if not stage.fail_open:
        raise exc
    message = (
        "judge stage failed, keeping the pre-judge order (JudgeStage fail_open=True): "
        f"{type(exc).__name__}: {exc}"
    )
    logger.warning(message)
    warnings.warn(message, FailOpenWarning, stacklevel=5)
    for k, _ in picks:
        r = ranked[k]
        assert r is not None
        r.judge_usage = {"judge_candidates": 0, "judge_failed": 1}

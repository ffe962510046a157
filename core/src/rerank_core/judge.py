"""Cheap-then-expensive ranking, in one place: an expensive judge (an LLM) re-orders part of the ranking.

This is the Reranker's optional last stage (``Reranker(judge=JudgeStage(...))``); the older
:class:`~rerank_core.backends.CascadeBackend` is a thin wrapper over the same stage.

Where it runs: after normalisation, fusion with the first-stage score and the scoring profile, on the
candidates that pass ``score_threshold`` (the threshold compares the pre-judge ``relevance_score``, so
which candidates pass does not depend on the judge), and before ``top_n`` is cut.

Which candidates the judge sees, per query:
the ``top_k`` best of the current order and/or those whose current ``relevance_score`` (the profiled,
fused score, as is: no extra calibration) lies in the closed ``band``. The judged candidates are
re-ordered by the judge's scores *within the slots they occupy*; every other candidate keeps its place.

What the results say: ``relevance_score`` is kept as it was before the judge (so within the judged slots
it may no longer decrease down the list: the order there is the judge's); ``judge_score`` is the judge's
raw score for a judged candidate, ``None`` for the others. ``response.usage`` adds the judge's usage for
that query (key-wise sum: LLM calls, tokens...) and ``judge_candidates`` (how many it saw).

When the judge fails (a :class:`~rerank_core.errors.BackendError` after its own retries) and
``fail_open=True`` (the default), the pre-judge order is kept, ``usage["judge_failed"] = 1`` and a
:class:`~rerank_core.errors.FailOpenWarning` is issued and logged; ``fail_open=False`` raises the error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rerank_core.backends.base import Backend
from rerank_core.errors import ConfigurationError

__all__ = [
    "JudgeStage",
    "check_judge",
    "check_selection",
    "merge_usage",
    "reorder_within_slots",
    "select_for_judge",
]


class JudgeStage:
    """A judge back end and which candidates it re-orders; pass it as ``Reranker(..., judge=...)``.

    Args:
        judge: the back end (typically :class:`~rerank_core.backends.LLMJudgeBackend`); its
            ``score_groups`` is called once per ``rerank`` / ``rerank_many`` call, one group per query.
        top_k: judge the best ``top_k`` of the current (profiled) order, per query.
        band: ``(low, high)``: judge the candidates whose current ``relevance_score`` is in this interval.
        fail_open: on a judge failure keep the pre-judge order with a warning (default) or raise.

    Instructions (``Reranker(..., instruction=...)`` or per call): the instruction always reaches the main
    back end, and reaches the judge only if it takes one (``judge.instruction_support`` is set, as for the
    :class:`~rerank_core.backends.LLMJudgeBackend`, whose prompt states it): its ``score_groups`` then gets
    ``instruction=`` (one call per instruction when a batch holds several). A judge that takes none is
    called without it and judges by its own notion of relevance; the instruction is not refused for it.
    """

    def __init__(
        self,
        judge: Backend,
        *,
        top_k: int | None = None,
        band: tuple[float, float] | None = None,
        fail_open: bool = True,
    ) -> None:
        if not isinstance(judge, Backend):
            raise ConfigurationError("judge", f"must be a rerank_core Backend, got {type(judge).__name__}")
        self.top_k, self.band = check_selection(top_k, band)
        if not isinstance(fail_open, bool):
            raise ConfigurationError("fail_open", f"must be True or False, got {fail_open!r}")
        self.judge = judge
        self.fail_open = fail_open

    def describe(self) -> str:
        return f"judge(top_k={self.top_k}|band={self.band})[{self.judge.fingerprint}]"

    def __repr__(self) -> str:
        return f"JudgeStage({self.judge!r}, top_k={self.top_k}, band={self.band}, fail_open={self.fail_open})"


def check_judge(judge: Any) -> JudgeStage | None:
    """``None``, a :class:`JudgeStage`, or an error naming ``judge``."""
    if judge is None or isinstance(judge, JudgeStage):
        return judge
    if isinstance(judge, Backend):
        raise ConfigurationError(
            "judge", "wrap the back end in a JudgeStage to say which candidates it sees (top_k and/or band)"
        )
    raise ConfigurationError("judge", f"must be a JudgeStage or None, got {type(judge).__name__}")


def check_selection(top_k: Any, band: Any) -> tuple[int | None, tuple[float, float] | None]:
    """Validate ``top_k`` / ``band`` (at least one given); return them normalised."""
    if top_k is None and band is None:
        raise ConfigurationError("top_k", "give top_k, band or both: which candidates the judge sees")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigurationError("top_k", f"must be an integer >= 1 or None, got {top_k!r}")
    if band is not None:
        ok = (
            isinstance(band, tuple | list)
            and len(band) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in band)
            and band[0] <= band[1]
        )
        if not ok:
            raise ConfigurationError(
                "band", f"must be (low, high) finite numbers with low <= high, got {band!r}"
            )
        band = (float(band[0]), float(band[1]))
    return top_k, band


def select_for_judge(
    order: Sequence[int],
    values: Sequence[float] | np.ndarray,
    top_k: int | None,
    band: tuple[float, float] | None,
) -> list[int]:
    """The candidates the judge sees, in ``order`` (best first): the first ``top_k`` of ``order`` and/or
    those whose ``values[i]`` lies in the closed ``band``; the union when both are given."""
    chosen: set[int] = set()
    if top_k is not None:
        chosen.update(int(i) for i in order[:top_k])
    if band is not None:
        low, high = band
        chosen.update(int(i) for i in order if low <= values[i] <= high)
    return [int(i) for i in order if i in chosen]


def reorder_within_slots(
    order: Sequence[int], judged: Sequence[int], judge_scores: Sequence[float]
) -> list[int]:
    """``order`` (candidate indices, best first) with the slots held by ``judged`` refilled by the judged
    candidates sorted by ``judge_scores`` (aligned with ``judged``), best first; ties keep their current
    relative order, and every other candidate keeps its slot. The input is not modified."""
    if len(judged) != len(judge_scores):
        raise ValueError(f"{len(judge_scores)} judge scores for {len(judged)} judged candidates")
    out = [int(i) for i in order]
    position = {i: p for p, i in enumerate(out)}
    pairs = sorted(zip((int(i) for i in judged), judge_scores, strict=True), key=lambda x: position[x[0]])
    slots = [position[i] for i, _ in pairs]
    scores = np.asarray([s for _, s in pairs], dtype=np.float64)
    for slot, k in zip(slots, np.argsort(-scores, kind="stable"), strict=True):
        out[slot] = pairs[int(k)][0]
    return out


def merge_usage(*usages: Mapping[str, int] | None) -> dict[str, int]:
    """Key-wise sum of usage mappings (LLM calls, tokens...)."""
    out: dict[str, int] = {}
    for usage in usages:
        for k, v in (usage or {}).items():
            out[k] = out.get(k, 0) + int(v)
    return out

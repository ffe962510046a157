"""Which candidates an expensive judge sees, and how its verdict re-orders a ranking within their slots.

Shared by :class:`~rerank_core.backends.CascadeBackend` (judge inside the back end) and
:class:`~rerank_core.judge_stage.JudgeStage` (judge as the Reranker's last stage). Pure functions over
candidate indices; no back end is imported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rerank_core.errors import ConfigurationError

__all__ = ["check_selection", "merge_usage", "reorder_within_slots", "select_for_judge"]


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

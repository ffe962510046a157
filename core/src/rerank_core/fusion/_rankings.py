"""Fusing several ranked lists of one query (BM25 + dense, ...) into one: RRF or weighted score fusion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.fusion._scores import normalised
from rerank_core.fusion._spec import FUSION_METHODS

__all__ = ["fuse_rankings"]


def fuse_rankings(
    runs: Sequence[Sequence[tuple[str, float]] | Sequence[str]],
    *,
    method: str = "rrf",
    weights: Sequence[float] | None = None,
    k: int = 60,
) -> list[tuple[str, float]]:
    """Fuse several ranked lists of one query into one, best first.

    ``runs`` are lists of ids (best first) or of ``(id, score)``. ``method="rrf"``: sum of
    ``weight / (k + rank)``; ``"zscore"`` / ``"minmax"``: weighted sum of each run's normalised scores, an id
    missing from a run getting that run's minimum normalised score. Ties keep first-appearance order.
    """
    if method not in FUSION_METHODS:
        raise ConfigurationError("method", f"must be one of {', '.join(FUSION_METHODS)}, got {method!r}")
    if not runs:
        raise InvalidInputError("runs", "give at least one ranked list")
    if weights is None:
        weights = [1.0] * len(runs)
    if len(weights) != len(runs):
        raise InvalidInputError("weights", f"has {len(weights)} weights for {len(runs)} runs")
    parsed: list[list[tuple[str, float | None]]] = []
    for i, run in enumerate(runs):
        items: list[tuple[str, float | None]] = []
        for item in run:
            if isinstance(item, tuple):
                items.append((item[0], float(item[1])))
            else:
                items.append((item, None))
        if method != "rrf" and any(s is None for _, s in items):
            raise InvalidInputError(f"runs[{i}]", f"method {method!r} needs (id, score) pairs")
        parsed.append(items)
    first_seen: dict[str, int] = {}
    for items in parsed:
        for doc_id, _ in items:
            first_seen.setdefault(doc_id, len(first_seen))
    total = dict.fromkeys(first_seen, 0.0)
    for items, w in zip(parsed, weights, strict=True):
        if method == "rrf":
            for rank, (doc_id, _) in enumerate(items, start=1):
                total[doc_id] += w / (k + rank)
            continue
        if not items:
            continue
        norm = normalised(np.array([s for _, s in items], dtype=np.float64), method)
        floor = float(norm.min())
        seen = {doc_id: float(v) for (doc_id, _), v in zip(items, norm, strict=True)}
        for doc_id in total:
            total[doc_id] += w * seen.get(doc_id, floor)
    return sorted(total.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))

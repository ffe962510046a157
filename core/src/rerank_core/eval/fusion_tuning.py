"""Tuning the reranker/first-stage fusion on labelled dev queries (never on the split you report).

:func:`tune_fusion` tries every (method, weight) and keeps the best mean nDCG@k; ``rerank eval --fusion
tune:SPLIT`` (:func:`rerank_core.eval.run.tune_report_fusion`) and the fine-tuning workflow's stored fusion
(:mod:`rerank_core.train`) call it. The fusion itself lives in :mod:`rerank_core.fusion`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rerank_core.errors import InvalidInputError
from rerank_core.eval.metrics import evaluate
from rerank_core.fusion import Fusion, check_first_stage_scores, fuse_scores

__all__ = ["FusionFit", "tune_fusion"]


@dataclass(frozen=True)
class FusionFit:
    """The chosen fusion and the dev nDCG@10 of every setting tried (``table``: (method, weight) → nDCG)."""

    fusion: Fusion
    ndcg: float
    rerank_only: float
    first_stage_only: float
    table: Mapping[tuple[str, float], float] = field(default_factory=dict)

    def named_table(self, digits: int = 4) -> dict[str, float]:
        """``table`` keyed ``"method:weight"`` (``"zscore:0.4"``), nDCG rounded to ``digits`` (for JSON)."""
        return {f"{m}:{w:g}": round(v, digits) for (m, w), v in self.table.items()}


def tune_fusion(
    candidates: Mapping[str, Sequence[str]],
    first_stage_scores: Mapping[str, Sequence[float]],
    rerank_scores: Mapping[str, Sequence[float]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    methods: Iterable[str] = ("zscore", "minmax", "rrf"),
    weights: Iterable[float] = tuple(round(0.1 * i, 1) for i in range(11)),
    k: int = 10,
) -> FusionFit:
    """The (method, weight) with the best mean nDCG@k over judged dev queries (ties: the higher weight).

    ``candidates[q]`` are the ids of query ``q`` in first-stage order, with their first-stage and reranker
    scores at the same positions.
    """

    judged = [q for q in candidates if any(r > 0 for r in qrels.get(q, {}).values())]
    if not judged:
        raise InvalidInputError("qrels", "no query with a relevant judgment among the candidates")
    arrays = {}
    for q in judged:
        ids = list(candidates[q])
        f = check_first_stage_scores(list(first_stage_scores[q]), len(ids), f"first_stage_scores[{q!r}]")
        r = check_first_stage_scores(list(rerank_scores[q]), len(ids), f"rerank_scores[{q!r}]")
        arrays[q] = (ids, f, r)

    def score(fusion: Fusion) -> float:
        run = {}
        for q, (ids, f, r) in arrays.items():
            fused = fuse_scores(r, f, fusion)
            run[q] = [ids[i] for i in np.argsort(-fused, kind="stable")]
        return evaluate(run, qrels, k_values=(k,))[f"ndcg@{k}"]

    table: dict[tuple[str, float], float] = {}
    for method in methods:
        for weight in weights:
            table[(method, float(weight))] = score(Fusion(method, float(weight)))
    best_key = max(table, key=lambda key: (table[key], key[1]))
    return FusionFit(
        fusion=Fusion(best_key[0], best_key[1]),
        ndcg=table[best_key],
        rerank_only=score(Fusion("zscore", 1.0)),
        first_stage_only=score(Fusion("zscore", 0.0)),
        table=table,
    )

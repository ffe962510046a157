"""Combining first-stage evidence with the reranker's, and several first-stage rankings with each other.

- :class:`Fusion` + :func:`fuse_scores`: per query, a weighted interpolation of the reranker's and the first
  stage's scores after z-score or min-max normalisation, or weighted reciprocal rank fusion of the two orders.
  ``weight`` is the reranker's share: 1.0 is the reranker alone, 0.0 the first stage alone.
- :func:`fuse_rankings`: reciprocal rank fusion (or weighted score fusion) of several ranked lists
  (BM25 + dense, ...).
- :func:`tune_fusion`: pick the method and weight that maximise nDCG@10 on labelled dev queries.

A small or out-of-domain reranker often ranks slightly worse than BM25 on its own and clearly better when
fused with it; fusion is cheap (no extra model calls) and its weight is tuned on dev, never on test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rerank_core.errors import ConfigurationError, InvalidInputError

__all__ = ["FUSION_METHODS", "Fusion", "FusionFit", "fuse_rankings", "fuse_scores", "tune_fusion"]

FUSION_METHODS = ("zscore", "minmax", "rrf")


@dataclass(frozen=True)
class Fusion:
    """How to fuse the reranker's score with the first stage's (``weight`` = the reranker's share)."""

    method: str = "zscore"
    weight: float = 0.5
    rrf_k: int = 60

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise ConfigurationError(
                "fusion.method", f"must be one of {', '.join(FUSION_METHODS)}, got {self.method!r}"
            )
        if (
            isinstance(self.weight, bool)
            or not isinstance(self.weight, int | float)
            or not 0.0 <= self.weight <= 1.0
        ):
            raise ConfigurationError("fusion.weight", f"must be a number in [0, 1], got {self.weight!r}")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 0:
            raise ConfigurationError("fusion.rrf_k", f"must be an integer >= 0, got {self.rrf_k!r}")

    @classmethod
    def parse(cls, spec: str) -> Fusion:
        """``"zscore:0.6"``, ``"minmax:0.5"``, ``"rrf:0.5"`` or a bare method (weight 0.5)."""
        method, _, weight = spec.strip().partition(":")
        try:
            value = float(weight) if weight else 0.5
        except ValueError:
            raise ConfigurationError("fusion.weight", f"is not a number: {weight!r}") from None
        return cls(method=method.strip().lower(), weight=value)

    def describe(self) -> str:
        return f"{self.method}:{self.weight:g}" + (f" (k={self.rrf_k})" if self.method == "rrf" else "")


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks, best (highest) first; ties keep input order."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def _normalised(scores: np.ndarray, method: str) -> np.ndarray:
    if method == "zscore":
        std = scores.std()
        return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
    span = scores.max() - scores.min()
    return (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)


def check_first_stage_scores(values: object, n: int, argument: str = "first_stage_scores") -> np.ndarray:
    """``values`` as a float array of length ``n`` (finite numbers), or an error naming ``argument``."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise InvalidInputError(argument, f"must be a list of numbers, got {type(values).__name__}")
    if len(values) != n:
        raise InvalidInputError(argument, f"has {len(values)} scores for {n} candidates; give one each")
    out = np.empty(n, dtype=np.float64)
    for i, v in enumerate(values):
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float | np.integer | np.floating)
            or not math.isfinite(v)
        ):
            raise InvalidInputError(f"{argument}[{i}]", f"must be a finite number, got {v!r}")
        out[i] = float(v)
    return out


def fuse_scores(rerank: Sequence[float], first_stage: Sequence[float], fusion: Fusion) -> np.ndarray:
    """One query's fused scores (higher is better), one per candidate."""
    r = np.asarray(rerank, dtype=np.float64)
    f = np.asarray(first_stage, dtype=np.float64)
    if r.shape != f.shape:
        raise InvalidInputError("first_stage", f"has {f.size} scores for {r.size} reranker scores")
    if r.size == 0:
        return r
    w = float(fusion.weight)
    if fusion.method == "rrf":
        return w / (fusion.rrf_k + _ranks(r)) + (1.0 - w) / (fusion.rrf_k + _ranks(f))
    return w * _normalised(r, fusion.method) + (1.0 - w) * _normalised(f, fusion.method)


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
        norm = _normalised(np.array([s for _, s in items], dtype=np.float64), method)
        floor = float(norm.min())
        seen = {doc_id: float(v) for (doc_id, _), v in zip(items, norm, strict=True)}
        for doc_id in total:
            total[doc_id] += w * seen.get(doc_id, floor)
    return sorted(total.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))


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
    from rerank_core.eval.metrics import evaluate

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

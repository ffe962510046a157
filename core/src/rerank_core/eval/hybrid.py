"""Hybrid first stage for the evaluation: BM25 and dense top-N lists of each query fused into one.

No second fusion: the lists go through :func:`rerank_core.fusion.fuse_retrieved` (the core the
framework adapters' ``FusionRetriever`` share, itself on :func:`rerank_core.fusion.fuse_rankings`), with the
sources named ``bm25`` and ``dense``.

The fusion is written ``METHOD[:W]``: ``rrf`` (default; equal weights), ``rrf:W``, ``zscore:W`` or
``minmax:W``, where ``W`` in [0, 1] is the **dense** list's share (the BM25 list gets ``1 - W``; a bare
``zscore`` / ``minmax`` is ``W = 0.5``). For RRF a document's fused score is ``sum(weight / (60 + rank))``;
for z-score / min-max it is the weighted sum of its normalised scores, a document missing from one list
getting that list's lowest normalised score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rerank_core.errors import ConfigurationError
from rerank_core.fusion import RetrieverFusionConfig, fuse_retrieved, parse_spec

__all__ = ["HYBRID_SOURCES", "describe_hybrid_fusion", "fuse_first_stages", "hybrid_fusion_config"]

HYBRID_SOURCES = ("bm25", "dense")
"""The names of the hybrid first stage's sources, in fusion order (also the report's keys)."""


def hybrid_fusion_config(
    spec: str | RetrieverFusionConfig = "rrf", *, top_k: int | None = None
) -> RetrieverFusionConfig:
    """``spec`` (``"rrf"``, ``"rrf:W"``, ``"zscore:W"``, ``"minmax:W"``; W = the dense share) as the
    fusion settings of :data:`HYBRID_SOURCES`, keeping at most ``top_k`` fused documents.

    A ready :class:`RetrieverFusionConfig` is returned as is (its names must be :data:`HYBRID_SOURCES`).
    Errors are :class:`ConfigurationError` naming ``hybrid_fusion``.
    """
    if isinstance(spec, RetrieverFusionConfig):
        if spec.names != HYBRID_SOURCES:
            raise ConfigurationError(
                "hybrid_fusion", f"names must be {HYBRID_SOURCES}, got {spec.names} (BM25 first, then dense)"
            )
        return spec
    method, dense = parse_spec(spec, argument="hybrid_fusion")  # W: the dense share
    weights: tuple[float, float] | None = None
    if dense is not None or method != "rrf":
        dense = 0.5 if dense is None else dense
        weights = (1.0 - dense, dense)
    return RetrieverFusionConfig(names=HYBRID_SOURCES, method=method, weights=weights, top_k=top_k)


def describe_hybrid_fusion(config: RetrieverFusionConfig) -> str:
    """A short label, e.g. ``"rrf k=60"`` or ``"zscore, dense weight 0.3"``."""
    text = config.method + (f" k={config.rrf_k}" if config.method == "rrf" else "")
    if config.weights is not None:
        text += f", dense weight {config.weights[1]:g}"
    return text


def fuse_first_stages(
    bm25: Mapping[str, Sequence[tuple[str, float]]],
    dense: Mapping[str, Sequence[tuple[str, float]]],
    config: RetrieverFusionConfig,
) -> dict[str, list[tuple[str, float]]]:
    """Per query id (the keys of ``bm25``): the fused ``(doc_id, fused score)`` list, best first, cut to
    ``config.top_k``. ``bm25[q]`` and ``dense[q]`` are that query's ``(doc_id, score)`` lists, best first."""
    out: dict[str, list[tuple[str, float]]] = {}
    for qid, bm25_hits in bm25.items():
        hits = fuse_retrieved(
            [list(bm25_hits), list(dense.get(qid, ()))],
            config,
            key=lambda hit: hit[0],
            score=lambda hit: hit[1],
            where=lambda i, j, qid=qid: f"{HYBRID_SOURCES[i]}[{qid!r}][{j}]",
        )
        out[qid] = [(hit.item[0], hit.fused) for hit in hits]
    return out

"""Fusion, in one package: combining the reranker's evidence with the first stage's, and several retrievers'
result lists with each other.

- :class:`Fusion` + :func:`fuse_scores` (``_scores``): per query, the reranker's score with the first
  stage's (``Reranker(fusion="zscore:0.6")``; ``weight`` = the reranker's share).
- :func:`fuse_rankings` (``_rankings``): reciprocal rank fusion, or weighted score fusion, of several ranked
  lists of one query.
- :func:`fuse_retrieved` + :class:`RetrieverFusionConfig` (``_retrievers``): several retrievers' results of
  one query, deduplicated and fused, written once for both adapters' ``FusionRetriever``.
- :func:`parse_spec` (``_spec``): the one parser of ``METHOD[:W]`` strings.

Tuning the fusion on dev queries is evaluation: :mod:`rerank_core.eval.fusion_tuning` (``tune_fusion``,
``FusionFit``; still importable from here).
"""

from __future__ import annotations

from typing import Any

from rerank_core.fusion._rankings import fuse_rankings
from rerank_core.fusion._retrievers import (
    DEDUPE_MODES,
    FUSION_SOURCES_KEY,
    FusedHit,
    RetrieverFusionConfig,
    SourceHit,
    dedupe_key,
    fuse_retrieved,
    source_names,
)
from rerank_core.fusion._scores import Fusion, check_first_stage_scores, fuse_scores
from rerank_core.fusion._spec import FUSION_METHODS, parse_spec

__all__ = [
    "DEDUPE_MODES",
    "FUSION_METHODS",
    "FUSION_SOURCES_KEY",
    "FusedHit",
    "Fusion",
    "FusionFit",
    "RetrieverFusionConfig",
    "SourceHit",
    "check_first_stage_scores",
    "dedupe_key",
    "fuse_rankings",
    "fuse_retrieved",
    "fuse_scores",
    "parse_spec",
    "source_names",
    "tune_fusion",
]


def __getattr__(name: str) -> Any:
    # Tuning lives with evaluation; imported on first use so that `rerank_core.fusion` stays light.
    if name in ("FusionFit", "tune_fusion"):
        from rerank_core.eval import fusion_tuning

        return getattr(fusion_tuning, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

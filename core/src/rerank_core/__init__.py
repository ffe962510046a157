"""rerank-core: the framework-free reranking core.

from rerank_core import Reranker
from rerank_core.backends import CrossEncoderBackend

reranker = Reranker(CrossEncoderBackend("path/or/hf-id"), top_n=5)
for r in reranker.rerank("what is bm25?", ["text a", "text b"]):
    print(r.index, r.relevance_score)
"""

from typing import Any

from rerank_core.cache import ScoreCache
from rerank_core.calibration import ThresholdFit, fit_threshold
from rerank_core.chunking import LongTextPolicy
from rerank_core.coalescing import Coalescing
from rerank_core.context import ContextPolicy, ContextSelection, select_context
from rerank_core.errors import (
    ArgumentError,
    BackendError,
    ConfigurationError,
    InvalidInputError,
    MissingDependencyError,
    NonRetryableBackendError,
    RerankError,
    RetryableBackendError,
)
from rerank_core.fusion import Fusion, fuse_rankings, fuse_scores
from rerank_core.judge import JudgeStage
from rerank_core.normalization import normalize_scores
from rerank_core.options import RerankerOptions
from rerank_core.profiles import FreshnessRule, MatchRule, NumericRule, ScoringProfile
from rerank_core.reranker import Reranker
from rerank_core.types import Candidate, RerankResponse, RerankResult, RuleEffect, ScoreKind, Window

__version__ = "0.1.0"

__all__ = [
    "ArgumentError",
    "BackendError",
    "Candidate",
    "Coalescing",
    "ConfigurationError",
    "ContextPolicy",
    "ContextSelection",
    "FreshnessRule",
    "Fusion",
    "FusionFit",
    "InvalidInputError",
    "JudgeStage",
    "LongTextPolicy",
    "MatchRule",
    "MissingDependencyError",
    "NonRetryableBackendError",
    "NumericRule",
    "RerankError",
    "RerankResponse",
    "RerankResult",
    "Reranker",
    "RerankerOptions",
    "RetryableBackendError",
    "RuleEffect",
    "ScoreCache",
    "ScoreKind",
    "ScoringProfile",
    "ThresholdFit",
    "Window",
    "__version__",
    "fit_threshold",
    "fuse_rankings",
    "fuse_scores",
    "normalize_scores",
    "select_context",
    "tune_fusion",
]


def __getattr__(name: str) -> Any:
    # Fusion tuning lives with evaluation (rerank_core.eval.fusion_tuning), imported on first use.
    if name in ("FusionFit", "tune_fusion"):
        from rerank_core.eval import fusion_tuning

        return getattr(fusion_tuning, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

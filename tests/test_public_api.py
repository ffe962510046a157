"""The public API of each distribution, pinned (as httpx's ``test_exported_members`` does).

A change to any of these lists is a change to what users can import: make it on purpose, update the list
here, say it in CHANGELOG.md, and keep a renamed name working with a DeprecationWarning for one release.
Every name listed must exist, and every public module of rerank_core must be listed or underscored.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

PUBLIC_API = {
    "rerank_core": [
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
    ],
    "rerank_core.backends": [
        "Backend",
        "CascadeBackend",
        "CohereBackend",
        "CrossEncoderBackend",
        "GroupScores",
        "LLMJudgeBackend",
        "LateInteractionBackend",
        "PairLimit",
        "PairwiseBackend",
        "RerankAPIBackend",
        "TextTokenizer",
    ],
    "langchain_rerank": [
        "BAND_KEY",
        "CONTEXT_EVENT",
        "CONTEXT_KEY",
        "ContextCompressor",
        "DEFAULT_FIRST_STAGE_SCORE_KEY",
        "FIRST_STAGE_SCORE_KEY",
        "FUSION_SOURCES_KEY",
        "FusionRetriever",
        "JUDGE_SCORE_KEY",
        "LangChainLLM",
        "METADATA_KEYS",
        "NOT_RERANKED_KEY",
        "PRE_PROFILE_SCORE_KEY",
        "PROFILE_EFFECTS_KEY",
        "RAW_SCORE_KEY",
        "RELEVANCE_SCORE_KEY",
        "RERANK_EVENT",
        "RERANK_SCORE_KEY",
        "RerankCompressor",
        "RerankToolSelectorMiddleware",
        "TRUNCATED_KEY",
        "WINDOW_KEY",
        "__version__",
        "aselect_tools",
        "documents_with_scores",
        "select_tools",
        "tool_text",
    ],
    # the adapters' main modules, whose __all__ users import from directly
    "langchain_rerank.compressor": [
        "DEFAULT_FIRST_STAGE_SCORE_KEY",
        "FIRST_STAGE_SCORE_KEY",
        "RAW_SCORE_KEY",
        "RELEVANCE_SCORE_KEY",
        "RERANK_EVENT",
        "RERANK_SCORE_KEY",
        "RerankCompressor",
        "documents_with_scores",
    ],
    "llamaindex_rerank.postprocessor": [
        "FIRST_STAGE_SCORE_KEY",
        "RAW_SCORE_KEY",
        "RERANK_SCORE_KEY",
        "RETRIEVAL_SCORE_KEY",
        "RerankPostprocessor",
        "check_nodes",
    ],
    "llamaindex_rerank": [
        "BAND_KEY",
        "CONTEXT_KEY",
        "ContextPostprocessor",
        "FIRST_STAGE_SCORE_KEY",
        "FUSION_SOURCES_KEY",
        "FusionRetriever",
        "JUDGE_SCORE_KEY",
        "LlamaIndexLLM",
        "METADATA_KEYS",
        "NOT_RERANKED_KEY",
        "PRE_PROFILE_SCORE_KEY",
        "PROFILE_EFFECTS_KEY",
        "RAW_SCORE_KEY",
        "RELEVANCE_SCORE_KEY",
        "RERANK_SCORE_KEY",
        "RETRIEVAL_SCORE_KEY",
        "RerankObjectRetriever",
        "RerankPostprocessor",
        "TRUNCATED_KEY",
        "WINDOW_KEY",
        "__version__",
        "aselect_tools",
        "select_tools",
        "tool_text",
    ],
}

# The modules of rerank_core a user may import from, by name (their __all__ is theirs to keep stable);
# every other module is underscored or is a deprecated alias of one of these.
PUBLIC_MODULES = {
    "rerank_core",
    "rerank_core.backends",
    "rerank_core.backends.base",
    "rerank_core.backends.cascade",
    "rerank_core.backends.cohere",
    "rerank_core.backends.cross_encoder",
    "rerank_core.backends.late_interaction",
    "rerank_core.backends.llm_judge",
    "rerank_core.backends.local",
    "rerank_core.backends.recipe_model",
    "rerank_core.backends.rerank_api",
    "rerank_core.batch",
    "rerank_core.batch.local",
    "rerank_core.batch.ray_engine",
    "rerank_core.cache",
    "rerank_core.calibration",
    "rerank_core.chunking",
    "rerank_core.cli",
    "rerank_core.cli.batch",
    "rerank_core.cli.bench",
    "rerank_core.cli.calibrate",
    "rerank_core.cli.eval",
    "rerank_core.cli.finetune",
    "rerank_core.cli.index",
    "rerank_core.cli.pick",
    "rerank_core.cli.rank",
    "rerank_core.cli.serve",
    "rerank_core.coalescing",
    "rerank_core.context",
    "rerank_core.recipes",
    "rerank_core.pipeline_config",
    "rerank_core.serve",
    "rerank_core.errors",
    "rerank_core.eval",
    "rerank_core.eval.beir",
    "rerank_core.eval.bm25",
    "rerank_core.eval.calibration",
    "rerank_core.eval.dense",
    "rerank_core.eval.fusion_tuning",
    "rerank_core.eval.hybrid",
    "rerank_core.eval.loading",
    "rerank_core.eval.metrics",
    "rerank_core.eval.report",
    "rerank_core.eval.run",
    "rerank_core.eval.speed",
    "rerank_core.eval.speed.ceiling",
    "rerank_core.eval.speed.contenders",
    "rerank_core.eval.speed.harness",
    "rerank_core.eval.speed.memory",
    "rerank_core.eval.speed.report",
    "rerank_core.fusion",
    "rerank_core.integrations",
    "rerank_core.integrations.llm",
    "rerank_core.integrations.metadata",
    "rerank_core.integrations.tool_selection",
    "rerank_core.judge",
    "rerank_core.late_interaction",
    "rerank_core.llm",
    "rerank_core.llm.base",
    "rerank_core.llm.openai_compat",
    "rerank_core.llm.parsing",
    "rerank_core.llm.prompts",
    "rerank_core.llm.transformers_llm",
    "rerank_core.normalization",
    "rerank_core.options",
    "rerank_core.profiles",
    "rerank_core.remote",
    "rerank_core.remote.base",
    "rerank_core.remote.http",
    "rerank_core.remote.limits",
    "rerank_core.remote.retry",
    "rerank_core.remote.stats",
    "rerank_core.reranker",
    "rerank_core.testing",
    "rerank_core.testing.rerank_server",
    "rerank_core.train",
    "rerank_core.train.data",
    "rerank_core.train.finetune",
    "rerank_core.types",
}

DEPRECATED_MODULES = {
    "rerank_core.adapter_support",
    "rerank_core.bench",
    "rerank_core.judge_stage",
    "rerank_core.retriever_fusion",
    "rerank_core.tool_selection",
}


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_exported_members(module: str) -> None:
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == sorted(PUBLIC_API[module])
    missing = [name for name in imported.__all__ if not hasattr(imported, name)]
    assert missing == []


@pytest.mark.filterwarnings("ignore:rerank_core.bench moved:DeprecationWarning")  # walk_packages imports it
def test_every_module_is_public_underscored_or_a_deprecated_alias() -> None:
    import rerank_core

    found = {"rerank_core"} | {
        m.name
        for m in pkgutil.walk_packages(rerank_core.__path__, "rerank_core.")
        if not m.name.endswith("__main__")
    }
    unlisted = sorted(
        name
        for name in found - PUBLIC_MODULES - DEPRECATED_MODULES
        if not any(part.startswith("_") for part in name.split(".")[1:])
    )
    assert unlisted == [], "new public module(s): list them in PUBLIC_MODULES, or underscore them"
    assert sorted((PUBLIC_MODULES | DEPRECATED_MODULES) - found) == []

"""What both framework adapters share, written once (no framework imports).

- building the core Reranker from an adapter's arguments, and the adapters' shared constructors
  (:func:`resolve_reranker`, :class:`AdapterConstructors`);
- reading the framework objects and the adapters' own arguments (:func:`check_items`,
  :func:`collect_first_stage_scores`, :func:`candidates_with_metadata`, :func:`check_top_n`,
  :func:`check_score_threshold`);
- the context-selection stage's outputs and selecting from framework objects (:func:`outputs`,
  :func:`select_items`, :func:`check_policy`);
- the metadata keys written back and their values (:mod:`rerank_core.integrations.metadata`);
- copies, pickles and dumps of the adapters (:func:`reranker_config` / :func:`reranker_from_config`: a
  Reranker as JSON without secrets, and back);
- tool selection for agents (:mod:`rerank_core.integrations.tool_selection`);
- a framework's chat model as the LLM judge's model (:mod:`rerank_core.integrations.llm`).
"""

from rerank_core._validation import check_score_threshold, check_top_n
from rerank_core.integrations import metadata as _metadata
from rerank_core.integrations._adapter import RERANKER_OPTIONS, UNSET, AdapterConstructors, resolve_reranker
from rerank_core.integrations._context import check_policy, outputs, select_items
from rerank_core.integrations._items import (
    candidates_with_metadata,
    check_items,
    check_retrievers,
    collect_first_stage_scores,
)
from rerank_core.integrations._serialize import reranker_config, reranker_from_config
from rerank_core.integrations.metadata import *  # noqa: F403 (the metadata keys and result_metadata)

__all__ = [
    *_metadata.__all__,
    "RERANKER_OPTIONS",
    "UNSET",
    "AdapterConstructors",
    "candidates_with_metadata",
    "check_items",
    "check_policy",
    "check_retrievers",
    "check_score_threshold",
    "check_top_n",
    "collect_first_stage_scores",
    "outputs",
    "reranker_config",
    "reranker_from_config",
    "resolve_reranker",
    "select_items",
]

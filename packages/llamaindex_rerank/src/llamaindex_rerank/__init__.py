"""LlamaIndex adapter for rerank-core.

- :class:`RerankPostprocessor`: a ``BaseNodePostprocessor`` (``node_postprocessors=[...]`` of a query
  engine, chat engine or retriever), sync and native async, emitting ``ReRankStartEvent``/``ReRankEndEvent``.
- :class:`ContextPostprocessor`: the core's context-selection stage (token budget, near-duplicates, MMR,
  grouping by parent, "lost in the middle" order) over ranked nodes, e.g. after a ``RerankPostprocessor`` (or
  ``RerankPostprocessor(..., context=ContextPolicy(...))`` in one step).
- :class:`FusionRetriever`: a ``BaseRetriever`` fusing several retrievers (BM25 + vector, ...) with the core's
  reciprocal rank fusion or weighted score fusion, each node once, each source's rank and score kept.
- :class:`LlamaIndexLLM`: a LlamaIndex LLM as the LLM judge's model
  (``RerankPostprocessor.from_llm_judge(llm)`` wraps it for you; the judge's prompts are then editable with
  ``get_prompts`` / ``update_prompts``).
- :func:`select_tools` / :func:`aselect_tools`: the tools most relevant to a query.
- the metadata keys it writes (``RAW_SCORE_KEY``, ... ``METADATA_KEYS``), the core's
  (:mod:`rerank_core.integrations.metadata`), exported here as in ``langchain_rerank``.
- :class:`RerankObjectRetriever`: an ``ObjectRetriever`` (for ``FunctionAgent(tool_retriever=...)``) whose
  async path reranks without blocking the event loop.
"""

from llamaindex_rerank.context import ContextPostprocessor
from llamaindex_rerank.fusion_retriever import FusionRetriever
from llamaindex_rerank.llm import LlamaIndexLLM
from llamaindex_rerank.postprocessor import RETRIEVAL_SCORE_KEY, RerankPostprocessor
from llamaindex_rerank.tool_selection import RerankObjectRetriever, aselect_tools, select_tools, tool_text
from rerank_core.integrations import metadata as _metadata
from rerank_core.integrations.metadata import *  # noqa: F403 (the metadata key constants, all exported)

__version__ = "0.1.0"
__all__ = [
    *(name for name in _metadata.__all__ if name.endswith(("_KEY", "_KEYS"))),
    "RETRIEVAL_SCORE_KEY",
    "ContextPostprocessor",
    "FusionRetriever",
    "LlamaIndexLLM",
    "RerankObjectRetriever",
    "RerankPostprocessor",
    "__version__",
    "aselect_tools",
    "select_tools",
    "tool_text",
]

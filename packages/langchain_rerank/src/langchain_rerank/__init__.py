"""LangChain adapter for rerank-core.

- :class:`RerankCompressor`: a ``BaseDocumentCompressor`` (use it in ``ContextualCompressionRetriever``,
  ``DocumentCompressorPipeline`` or, through ``as_runnable()``, in any LCEL chain).
- :class:`ContextCompressor`: the core's context-selection stage (token budget, near-duplicates, MMR,
  grouping by parent, "lost in the middle" order) over ranked Documents, e.g. after a ``RerankCompressor`` in
  a ``DocumentCompressorPipeline`` (or ``RerankCompressor(..., context=ContextPolicy(...))`` in one step).
- :class:`FusionRetriever`: a ``BaseRetriever`` fusing several retrievers (BM25 + dense, ...) with the core's
  reciprocal rank fusion or weighted score fusion, each document once, each source's rank and score kept.
- :class:`LangChainLLM`: a chat model as the LLM judge's model
  (``RerankCompressor.from_llm_judge(chat_model)`` wraps it for you).
- :func:`select_tools` / :func:`aselect_tools`: the tools most relevant to a query.
- the metadata keys it writes (``RELEVANCE_SCORE_KEY``, ``RAW_SCORE_KEY``, ... ``METADATA_KEYS``), the core's
  (:mod:`rerank_core.integrations.metadata`), exported here as in ``llamaindex_rerank``.
- ``RerankToolSelectorMiddleware``: a LangChain v1 agent middleware choosing the tools the model sees
  (needs ``pip install langchain``; imported on first access).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_rerank.compressor import (
    DEFAULT_FIRST_STAGE_SCORE_KEY,
    RERANK_EVENT,
    RerankCompressor,
    documents_with_scores,
)
from langchain_rerank.context import CONTEXT_EVENT, ContextCompressor
from langchain_rerank.fusion_retriever import FusionRetriever
from langchain_rerank.llm import LangChainLLM
from langchain_rerank.tool_selection import aselect_tools, select_tools, tool_text
from rerank_core.integrations import metadata as _metadata
from rerank_core.integrations.metadata import *  # noqa: F403 (the metadata key constants, all exported)

if TYPE_CHECKING:  # pragma: no cover
    from langchain_rerank.middleware import RerankToolSelectorMiddleware

__version__ = "0.1.0"
__all__ = [
    *(name for name in _metadata.__all__ if name.endswith(("_KEY", "_KEYS"))),
    "CONTEXT_EVENT",
    "DEFAULT_FIRST_STAGE_SCORE_KEY",
    "RERANK_EVENT",
    "ContextCompressor",
    "FusionRetriever",
    "LangChainLLM",
    "RerankCompressor",
    "RerankToolSelectorMiddleware",
    "__version__",
    "aselect_tools",
    "documents_with_scores",
    "select_tools",
    "tool_text",
]


def __getattr__(name: str) -> Any:
    if name == "RerankToolSelectorMiddleware":
        from langchain_rerank.middleware import RerankToolSelectorMiddleware

        return RerankToolSelectorMiddleware
    raise AttributeError(f"module 'langchain_rerank' has no attribute {name!r}")

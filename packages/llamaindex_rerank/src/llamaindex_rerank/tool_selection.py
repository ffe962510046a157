"""Reranked tool selection in LlamaIndex's idiom.

- :func:`select_tools` / :func:`aselect_tools`: rank ``BaseTool`` objects (by ``"{name}: {description}"``
  of their ``metadata``) against a query; the best come first, then the ``always_include`` ones.
- :class:`RerankObjectRetriever`: an ``ObjectRetriever`` (what ``FunctionAgent(tool_retriever=...)``
  takes) whose async path runs the node postprocessors on *their* async path. LlamaIndex's own
  ``ObjectRetriever.aretrieve`` calls the sync ``postprocess_nodes``, which would run the reranker's model
  work on the event loop; this class changes only that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from llama_index.core.objects import ObjectIndex, ObjectRetriever
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import QueryBundle, QueryType

from rerank_core import InvalidInputError, Reranker
from rerank_core import tool_selection as core
from rerank_core.backends import Backend

__all__ = ["RerankObjectRetriever", "aselect_tools", "select_tools", "tool_text"]

ToolT = TypeVar("ToolT")
OT = TypeVar("OT")

_EXPECTED = "a LlamaIndex tool whose metadata has a string name and description"


def _name_and_description(tool: Any) -> tuple[object, object]:
    """A LlamaIndex tool's ``metadata.name`` and ``metadata.description``."""
    metadata = getattr(tool, "metadata", None)
    return getattr(metadata, "name", None), getattr(metadata, "description", None)


def tool_text(tool: Any) -> str:
    """The text a tool is ranked by: ``"{metadata.name}: {metadata.description}"``."""
    return core.tool_text(*_name_and_description(tool))


def select_tools(
    query: str,
    tools: Sequence[ToolT],
    reranker: Reranker | Backend,
    *,
    max_tools: int | None = None,
    always_include: Sequence[str] | None = None,
    score_threshold: float | None = None,
) -> list[ToolT]:
    """The LlamaIndex tools most relevant to ``query``, best first, then the ``always_include`` ones.

    ``tools``: ``FunctionTool``, ``QueryEngineTool``, ... any ``BaseTool``, ranked by :func:`tool_text`
    (their ``metadata``). ``always_include``: ``metadata.name`` of tools always returned (each must be in
    ``tools``; not counted against ``max_tools``). ``reranker``: a :class:`rerank_core.Reranker` or a back
    end, whose own ``top_n`` / threshold apply where ``max_tools`` / ``score_threshold`` are ``None`` (none
    for a back end). The choice is :func:`rerank_core.tool_selection.select_tools`'s.
    """
    options = {"max_tools": max_tools, "always_include": always_include, "score_threshold": score_threshold}
    return core.select_tools(
        query, tools, reranker, describe=_name_and_description, expected=_EXPECTED, **options
    )


async def aselect_tools(
    query: str,
    tools: Sequence[ToolT],
    reranker: Reranker | Backend,
    *,
    max_tools: int | None = None,
    always_include: Sequence[str] | None = None,
    score_threshold: float | None = None,
) -> list[ToolT]:
    """Async :func:`select_tools` on the core's async path."""
    options = {"max_tools": max_tools, "always_include": always_include, "score_threshold": score_threshold}
    return await core.aselect_tools(
        query, tools, reranker, describe=_name_and_description, expected=_EXPECTED, **options
    )


class RerankObjectRetriever(ObjectRetriever[OT]):
    """An ``ObjectRetriever`` whose ``aretrieve`` awaits ``apostprocess_nodes`` (the sync path is
    LlamaIndex's own). Build it like ``ObjectRetriever`` or with :meth:`from_object_index`."""

    @classmethod
    def from_object_index(
        cls,
        object_index: ObjectIndex[OT],
        node_postprocessors: list[BaseNodePostprocessor],
        **retriever_kwargs: Any,
    ) -> RerankObjectRetriever[OT]:
        """Like ``object_index.as_retriever(node_postprocessors=..., **retriever_kwargs)``, e.g.
        ``similarity_top_k=20`` for the first stage that the reranker narrows down."""
        if not isinstance(object_index, ObjectIndex):
            raise InvalidInputError(
                "object_index", f"must be a LlamaIndex ObjectIndex, got {type(object_index).__name__}"
            )
        return cls(
            retriever=object_index.as_node_retriever(**retriever_kwargs),
            object_node_mapping=object_index.object_node_mapping,
            node_postprocessors=list(node_postprocessors),
        )

    async def aretrieve(self, str_or_query_bundle: QueryType) -> list[OT]:
        query_bundle = (
            QueryBundle(query_str=str_or_query_bundle)
            if isinstance(str_or_query_bundle, str)
            else str_or_query_bundle
        )
        nodes = await self.retriever.aretrieve(query_bundle)
        for postprocessor in self.node_postprocessors:
            nodes = await postprocessor.apostprocess_nodes(nodes, query_bundle=query_bundle)
        return [self.object_node_mapping.from_node(n.node) for n in nodes]

"""Reranked tool selection in LlamaIndex's idiom.

- :func:`select_tools` / :func:`aselect_tools`: rank ``BaseTool`` objects (by ``"{name}: {description}"``
  of their ``metadata``) against a query; the best come first, then the ``always_include`` ones.
- :class:`RerankObjectRetriever`: an ``ObjectRetriever`` (what ``FunctionAgent(tool_retriever=...)``
  takes) whose async path runs the node postprocessors on *their* async path. LlamaIndex's own
  ``ObjectRetriever.aretrieve`` calls the sync ``postprocess_nodes``, which would run the reranker's model
  work on the event loop; this class changes only that.
"""

from __future__ import annotations

from typing import Any, TypeVar

from llama_index.core.objects import ObjectIndex, ObjectRetriever
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import QueryBundle, QueryType

from rerank_core import InvalidInputError
from rerank_core.integrations.tool_selection import ToolSelector

__all__ = ["RerankObjectRetriever", "aselect_tools", "select_tools", "tool_text"]

OT = TypeVar("OT")

_EXPECTED = "a LlamaIndex tool whose metadata has a string name and description"


def _name_and_description(tool: Any) -> tuple[object, object]:
    """A LlamaIndex tool's ``metadata.name`` and ``metadata.description``."""
    metadata = getattr(tool, "metadata", None)
    return getattr(metadata, "name", None), getattr(metadata, "description", None)


_selector = ToolSelector(_name_and_description, _EXPECTED)
tool_text = _selector.tool_text
"""The text a tool is ranked by: ``"{metadata.name}: {metadata.description}"``."""
select_tools = _selector.select_tools
"""The LlamaIndex tools (``FunctionTool``, ``QueryEngineTool``, ... any ``BaseTool``, read through their
``metadata``) most relevant to ``query``; see
:meth:`rerank_core.integrations.tool_selection.ToolSelector.select_tools`."""
aselect_tools = _selector.aselect_tools
"""Async :func:`select_tools` on the core's async path."""


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

"""Reranked tool selection without an agent: the same core call over the tools' names and descriptions.

``select_tools(query, tools, reranker, max_tools=3)`` ranks each tool's ``"{name}: {description}"``
against the query and returns the best tools, best first, followed by the ``always_include`` tools (in
the order of ``tools``, not counted against ``max_tools``, as ``LLMToolSelectorMiddleware`` does). The
choice is :mod:`rerank_core.integrations.tool_selection`'s; this module only reads LangChain tools. Needs only
langchain-core; the agent middleware (``RerankToolSelectorMiddleware``) is built on these functions.
"""

from __future__ import annotations

from typing import Any

from rerank_core.integrations.tool_selection import ToolSelector

__all__ = ["aselect_tools", "select_tools", "tool_text"]


def _name_and_description(tool: Any) -> tuple[object, object]:
    """A LangChain tool's (``BaseTool`` and alike) ``name`` and ``description``."""
    return getattr(tool, "name", None), getattr(tool, "description", None)


_selector = ToolSelector(_name_and_description)
tool_text = _selector.tool_text
"""The text a tool is ranked by: ``"{name}: {description}"``."""
select_tools = _selector.select_tools
"""The LangChain tools (``BaseTool`` objects, anything with a string ``name`` and ``description``) most
relevant to ``query``: :meth:`rerank_core.integrations.tool_selection.ToolSelector.select_tools`."""
aselect_tools = _selector.aselect_tools
"""Async :func:`select_tools` on the core's async path."""

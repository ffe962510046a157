"""Reranked tool selection without an agent: the same core call over the tools' names and descriptions.

``select_tools(query, tools, reranker, max_tools=3)`` ranks each tool's ``"{name}: {description}"``
against the query and returns the best tools, best first, followed by the ``always_include`` tools (in
the order of ``tools``, not counted against ``max_tools``, as ``LLMToolSelectorMiddleware`` does). The
choice is :mod:`rerank_core.tool_selection`'s; this module only reads LangChain tools. Needs only
langchain-core; the agent middleware (``RerankToolSelectorMiddleware``) is built on these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from rerank_core import Reranker
from rerank_core import tool_selection as core
from rerank_core.backends import Backend

__all__ = ["aselect_tools", "select_tools", "tool_text"]

ToolT = TypeVar("ToolT")


def _name_and_description(tool: Any) -> tuple[object, object]:
    """A LangChain tool's (``BaseTool`` and alike) ``name`` and ``description``."""
    return getattr(tool, "name", None), getattr(tool, "description", None)


def tool_text(tool: Any) -> str:
    """The text a tool is ranked by: ``"{name}: {description}"``."""
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
    """The LangChain tools most relevant to ``query``, best first, then the ``always_include`` ones.

    ``tools`` are ``BaseTool`` objects (anything with a string ``name`` and ``description``), each ranked
    by its :func:`tool_text`; ``always_include`` lists tool names, each of which must be in ``tools``; those
    tools are returned whatever their score and not counted against ``max_tools``. ``reranker`` is a
    :class:`rerank_core.Reranker` or a back end; ``max_tools`` / ``score_threshold`` ``None`` mean its own
    ``top_n`` / threshold (none for a back end). The choice is
    :func:`rerank_core.tool_selection.select_tools`'s.
    """
    options = {"max_tools": max_tools, "always_include": always_include, "score_threshold": score_threshold}
    return core.select_tools(query, tools, reranker, describe=_name_and_description, **options)


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
    return await core.aselect_tools(query, tools, reranker, describe=_name_and_description, **options)

"""Choosing the tools an agent is offered by reranking their descriptions (no framework imports).

Each tool is ranked by ``"{name}: {description}"`` (:func:`tool_text`) against the query; the best come
first. The tools named in ``always_include`` do not compete: they follow the ranked ones, in the order of
``tools``, and are not counted against ``max_tools`` (as LangChain's ``LLMToolSelectorMiddleware`` does).
The result is the caller's own tool objects, never copies.

The framework adapters only say how to read a name and a description from their tool objects
(``describe``); by default a tool is a ``(name, description)`` pair::

    from rerank_core.integrations.tool_selection import select_tools

    tools = [("get_weather", "Weather forecast for a city."), ("send_email", "Send an email.")]
    select_tools("will it rain?", tools, reranker, max_tools=1, always_include=["send_email"])
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rerank_core._validation import check_query, check_score_threshold, check_top_n
from rerank_core.backends.base import Backend
from rerank_core.errors import InvalidInputError
from rerank_core.integrations._adapter import UNSET, resolve_reranker
from rerank_core.reranker import Reranker
from rerank_core.types import RerankResponse

__all__ = [
    "ToolSelectionPlan",
    "ToolSelector",
    "aselect_tools",
    "check_tool_names",
    "describe_pair",
    "plan_tool_selection",
    "select_tools",
    "tool_text",
]

ToolT = TypeVar("ToolT")
Describe = Callable[[Any], tuple[object, object]]
"""Reads ``(name, description)`` from a tool; anything but two strings makes the tool an error."""

DEFAULT_EXPECTED = "a tool with a string name and description"


def tool_text(name: object, description: object) -> str:
    """The text a tool is ranked by: ``"{name}: {description}"``."""
    return f"{name}: {description}"


def describe_pair(tool: object) -> tuple[object, object]:
    """The default ``describe``: a tool is a ``(name, description)`` pair."""
    if isinstance(tool, tuple) and len(tool) == 2:
        return tool[0], tool[1]
    return None, None


def check_tool_names(always_include: object, argument: str = "always_include") -> list[str]:
    """The tool names as a list (``None``: none), or an error naming the argument or the bad item."""
    if always_include is None:
        return []
    if isinstance(always_include, str) or not isinstance(always_include, Iterable):
        raise InvalidInputError(
            argument, f"must be a list of tool names, got {type(always_include).__name__}"
        )
    names = list(always_include)
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise InvalidInputError(
                f"{argument}[{i}]", f"must be a tool name string, got {type(name).__name__}"
            )
    return names


def _described_tools(
    tools: object, describe: Describe, expected: str, argument: str = "tools"
) -> tuple[list[Any], list[str], list[str]]:
    """(the tools as a list, their names, their descriptions), or an error naming a bad tool."""
    if tools is None or isinstance(tools, str | bytes | dict) or not isinstance(tools, Iterable):
        raise InvalidInputError(argument, f"must be a list of tools, got {type(tools).__name__}")
    items = list(tools)
    names: list[str] = []
    descriptions: list[str] = []
    for i, tool in enumerate(items):
        name, description = describe(tool)
        if not isinstance(name, str) or not isinstance(description, str):
            hint = " (provider tool dicts cannot be ranked)" if isinstance(tool, dict) else ""
            raise InvalidInputError(
                f"{argument}[{i}]", f"must be {expected}, got {type(tool).__name__}{hint}"
            )
        names.append(name)
        descriptions.append(description)
    return items, names, descriptions


@dataclass(frozen=True)
class ToolSelectionPlan:
    """A validated selection: which tools compete (``ranked``) and which are always kept (``always``),
    both as indices into ``tools`` in input order, and the policy of the one rerank call."""

    reranker: Reranker
    query: str
    tools: list[Any]
    ranked: list[int]
    always: list[int]
    texts: list[str]  # tool_text of each ranked tool, in the order of ``ranked``
    top_n: int | None
    score_threshold: float | None

    def indices(self, response: RerankResponse | None) -> list[int]:
        """The chosen tools' indices: the ranked ones best first, then the always-included ones."""
        best = [] if response is None else [self.ranked[r.index] for r in response.results]
        return [*best, *self.always]

    def chosen(self, response: RerankResponse | None) -> list[Any]:
        """The chosen tools themselves (the caller's objects), in the order of :meth:`indices`."""
        return [self.tools[i] for i in self.indices(response)]


def plan_tool_selection(
    query: object,
    tools: object,
    reranker: Reranker | Backend,
    *,
    max_tools: int | None = None,
    always_include: Sequence[str] | None = None,
    score_threshold: float | None = None,
    describe: Describe = describe_pair,
    expected: str = DEFAULT_EXPECTED,
) -> ToolSelectionPlan:
    """Check every argument and decide which tools compete; no scoring happens here.

    Errors are ``ValueError``\\s naming the argument: ``max_tools``, ``score_threshold``, ``query``,
    ``tools`` / ``tools[i]`` (``expected`` says what a tool must be), ``always_include`` /
    ``always_include[i]`` (also for a name that is not among the tools) and ``reranker``.
    """
    max_tools = check_top_n(max_tools, "max_tools")
    score_threshold = check_score_threshold(score_threshold, "score_threshold")
    text = check_query(query, "query")
    items, names, descriptions = _described_tools(tools, describe, expected)
    keep = check_tool_names(always_include)
    available = set(names)
    missing = [n for n in keep if n not in available]
    if missing:
        raise InvalidInputError(
            "always_include", f"names tools that are not offered: {missing}; available: {sorted(available)}"
        )
    core, top_n, threshold = resolve_reranker(
        reranker,
        top_n=UNSET if max_tools is None else max_tools,
        score_threshold=UNSET if score_threshold is None else score_threshold,
    )
    if core.fusion is not None or core.profile is not None:
        # Tools have no first-stage score and no metadata: rank them by the reranker alone (on a copy; the
        # caller's Reranker keeps its fusion and scoring profile).
        core = copy.copy(core)
        core.fusion = None
        core.profile = None
    always = set(keep)
    ranked = [i for i, name in enumerate(names) if name not in always]
    return ToolSelectionPlan(
        reranker=core,
        query=text,
        tools=items,
        ranked=ranked,
        always=[i for i, name in enumerate(names) if name in always],
        texts=[tool_text(names[i], descriptions[i]) for i in ranked],
        top_n=top_n,
        score_threshold=threshold,
    )


def select_tools(
    query: str, tools: Sequence[ToolT], reranker: Reranker | Backend, **options: Any
) -> list[ToolT]:
    """The tools most relevant to ``query``, best first, then the ``always_include`` ones.

    ``options`` are those of :func:`plan_tool_selection`: ``max_tools`` (at most this many ranked tools;
    ``None``: the reranker's ``top_n``, no limit for a back end), ``always_include`` (names of tools
    returned whatever their score, not counted against ``max_tools``), ``score_threshold`` (``None``: the
    reranker's), and ``describe`` / ``expected`` (how a tool's name and description are read; default:
    ``(name, description)`` pairs). The back end is not called when no tool competes.
    """
    plan = plan_tool_selection(query, tools, reranker, **options)
    if not plan.ranked:
        return plan.chosen(None)
    return plan.chosen(
        plan.reranker.rerank(plan.query, plan.texts, top_n=plan.top_n, score_threshold=plan.score_threshold)
    )


async def aselect_tools(
    query: str, tools: Sequence[ToolT], reranker: Reranker | Backend, **options: Any
) -> list[ToolT]:
    """Async :func:`select_tools` (same options) on the core's async path."""
    plan = plan_tool_selection(query, tools, reranker, **options)
    if not plan.ranked:
        return plan.chosen(None)
    return plan.chosen(
        await plan.reranker.arerank(
            plan.query, plan.texts, top_n=plan.top_n, score_threshold=plan.score_threshold
        )
    )


@dataclass(frozen=True)
class ToolSelector:
    """Tool selection for one framework's tool objects: ``describe`` reads a tool's (name, description),
    ``expected`` says what a tool must be in errors. Each adapter makes one and exports its methods, so the
    public signature is written once, here::

        _selector = ToolSelector(lambda tool: (tool.name, tool.description), "a LangChain tool")
        select_tools, aselect_tools, tool_text = (
            _selector.select_tools, _selector.aselect_tools, _selector.tool_text
        )
    """

    describe: Describe = describe_pair
    expected: str = DEFAULT_EXPECTED

    def tool_text(self, tool: Any) -> str:
        """The text a tool is ranked by: ``"{name}: {description}"``."""
        return tool_text(*self.describe(tool))

    def _options(self, max_tools: Any, always_include: Any, score_threshold: Any) -> dict[str, Any]:
        return {
            "max_tools": max_tools,
            "always_include": always_include,
            "score_threshold": score_threshold,
            "describe": self.describe,
            "expected": self.expected,
        }

    def select_tools(
        self,
        query: str,
        tools: Sequence[ToolT],
        reranker: Reranker | Backend,
        *,
        max_tools: int | None = None,
        always_include: Sequence[str] | None = None,
        score_threshold: float | None = None,
    ) -> list[ToolT]:
        """The tools most relevant to ``query``, best first, then the ``always_include`` ones.

        Each tool is ranked by :meth:`tool_text`; ``always_include`` lists tool names, each of which must be
        in ``tools``; those tools are returned whatever their score and not counted against ``max_tools``.
        ``reranker`` is a :class:`rerank_core.Reranker` or a back end; ``max_tools`` / ``score_threshold``
        ``None`` mean its own ``top_n`` / threshold (none for a back end). The tools returned are the
        caller's own objects.
        """
        options = self._options(max_tools, always_include, score_threshold)
        return select_tools(query, tools, reranker, **options)

    async def aselect_tools(
        self,
        query: str,
        tools: Sequence[ToolT],
        reranker: Reranker | Backend,
        *,
        max_tools: int | None = None,
        always_include: Sequence[str] | None = None,
        score_threshold: float | None = None,
    ) -> list[ToolT]:
        """Async :meth:`select_tools` on the core's async path."""
        options = self._options(max_tools, always_include, score_threshold)
        return await aselect_tools(query, tools, reranker, **options)

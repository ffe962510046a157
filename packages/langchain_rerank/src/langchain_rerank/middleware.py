"""``RerankToolSelectorMiddleware``: a LangChain v1 agent middleware that offers the model only the tools
a reranker finds relevant to the latest user message.

In the idiom of ``langchain.agents.middleware.LLMToolSelectorMiddleware`` (``max_tools``,
``always_include``), but the choice is one rerank call over the tools' ``"{name}: {description}"`` rather
than an extra LLM call. Needs the ``langchain`` package (v1); langchain-rerank itself depends only on
langchain-core, so this module is imported only when the middleware is used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

try:
    from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
except ImportError as exc:  # pragma: no cover - exercised by a test that hides langchain
    raise ImportError(
        "RerankToolSelectorMiddleware needs the 'langchain' package (v1, for langchain.agents.middleware), "
        "which is not installed. Install it with: pip install langchain"
    ) from exc

from langchain_core.messages import AIMessage, HumanMessage

from langchain_rerank.tool_selection import aselect_tools, select_tools
from rerank_core import Reranker, RerankerOptions
from rerank_core.backends import Backend, CrossEncoderBackend
from rerank_core.integrations import check_score_threshold, check_top_n, resolve_reranker
from rerank_core.integrations.tool_selection import check_tool_names

__all__ = ["RerankToolSelectorMiddleware"]

logger = logging.getLogger(__name__)


class RerankToolSelectorMiddleware(AgentMiddleware):  # type: ignore[type-arg]
    """Before each model call, rerank the agent's tools against the latest user message and pass on
    only the best ``max_tools`` (plus ``always_include``).

    Args:
        reranker: a :class:`rerank_core.Reranker` or a back end.
        max_tools: how many ranked tools the model sees (``None``: the reranker's ``top_n``; no limit for
            a back end). ``always_include`` tools come on top, as in ``LLMToolSelectorMiddleware``.
        always_include: names of tools always offered; each must be one of the agent's tools.
        score_threshold: also drop tools whose ``relevance_score`` is below this.

    The tools the model is offered keep the agent's order; provider tool dicts (``{"type": ...}``) are
    passed on untouched. Without a user message (or with one that has no text) nothing can be ranked,
    and every tool is offered, with a warning in the log.
    """

    def __init__(
        self,
        reranker: Reranker | Backend,
        *,
        max_tools: int | None = None,
        always_include: Sequence[str] | None = None,
        score_threshold: float | None = None,
    ) -> None:
        super().__init__()
        self.max_tools = check_top_n(max_tools, "max_tools")
        self.score_threshold = check_score_threshold(score_threshold, "score_threshold")
        self.always_include = check_tool_names(always_include)
        self.reranker, _, _ = resolve_reranker(reranker)

    @classmethod
    def from_cross_encoder(
        cls,
        model: str | os.PathLike[str] | Any,
        *,
        max_tools: int | None = None,
        always_include: Sequence[str] | None = None,
        score_threshold: float | None = None,
        options: RerankerOptions | Mapping[str, Any] | None = None,
        reranker_kwargs: Mapping[str, Any] | None = None,
        **backend_kwargs: Any,
    ) -> RerankToolSelectorMiddleware:
        """Tool selection with a local cross-encoder (``backend_kwargs`` go to ``CrossEncoderBackend``;
        ``options`` are the Reranker's, ``reranker_kwargs`` their deprecated spelling)."""
        reranker, _, _ = resolve_reranker(
            CrossEncoderBackend(model, **backend_kwargs), options=options, reranker_kwargs=reranker_kwargs
        )
        return cls(
            reranker, max_tools=max_tools, always_include=always_include, score_threshold=score_threshold
        )

    # -- the hook, sync and async -----------------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelResponse | AIMessage:
        selection = self._prepare(request)
        if selection is None:
            return handler(request)
        query, tools = selection
        chosen = select_tools(query, tools, self.reranker, **self._options())
        return handler(self._narrow(request, chosen))

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse | AIMessage:
        selection = self._prepare(request)
        if selection is None:
            return await handler(request)
        query, tools = selection
        chosen = await aselect_tools(query, tools, self.reranker, **self._options())
        return await handler(self._narrow(request, chosen))

    # -- helpers ------------------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {
            "max_tools": self.max_tools,
            "always_include": self.always_include,
            "score_threshold": self.score_threshold,
        }

    def _prepare(self, request: ModelRequest) -> tuple[str, list[Any]] | None:
        """(latest user text, the rankable tools), or ``None`` when there is nothing to choose."""
        tools = [t for t in request.tools if not isinstance(t, dict)]
        if not tools:
            return None
        for message in reversed(request.messages):
            if isinstance(message, HumanMessage):
                query = str(message.text)
                if query.strip():
                    return query, tools
                break
        logger.warning(
            "%s: no user message with text to rank tools against; offering all %d tools",
            self.name,
            len(tools),
        )
        return None

    @staticmethod
    def _narrow(request: ModelRequest, chosen: list[Any]) -> ModelRequest:
        keep = {id(t) for t in chosen}
        return request.override(tools=[t for t in request.tools if isinstance(t, dict) or id(t) in keep])

"""A LangChain chat model (``BaseChatModel``) as the judge's framework-free LLM.

``LangChainLLM(model)`` turns the judge's messages into ``SystemMessage`` / ``HumanMessage`` /
``AIMessage``, calls ``model.invoke`` (``ainvoke`` on the async path: LangChain chat models are natively
async), and reads back the text, ``usage_metadata`` (input/output tokens) and, when ``logprobs=True``,
the first token's alternatives from ``response_metadata["logprobs"]`` (where ``ChatOpenAI`` and
OpenAI-compatible chat models put the API's ``logprobs`` object). Everything else (prompts, parsing,
batching, concurrency) is the core judge's.

Use it through the compressor: ``RerankCompressor.from_llm_judge(chat_model, mode="listwise", top_n=5)``.
Retries are the chat model's own (``max_retries`` on most providers); what still fails reaches the judge
as a back-end error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from rerank_core import ConfigurationError
from rerank_core.integrations import llm as integrations_llm
from rerank_core.integrations.llm import FrameworkLLM
from rerank_core.llm import LLM, ChatMessage, LLMResponse, check_messages
from rerank_core.llm.base import read_openai_logprobs

__all__ = ["LangChainLLM", "as_core_llm"]

_MESSAGE = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}


class LangChainLLM(FrameworkLLM):
    """A LangChain ``BaseChatModel`` behind the core LLM protocol.

    Args:
        model: the chat model (``ChatOpenAI``, ``ChatOllama``, ``ChatAnthropic``, a fake model, ...).
        logprobs: ask for log-probabilities (``logprobs=True, top_logprobs=k`` passed to ``invoke``) and read
            them from ``response_metadata["logprobs"]``. Only for models that support it (``ChatOpenAI`` and
            OpenAI-compatible ones); the judge then scores P(yes).
        max_tokens_kwarg: the ``invoke`` keyword that caps the answer length (``"max_tokens"``; ``None`` to
            pass nothing, for models that take it only at construction).
        invoke_kwargs: more keywords for every ``invoke`` (e.g. ``{"temperature": 0}``).
        context_window: the model's context length in tokens, if the judge should fit prompts to it.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        logprobs: bool = False,
        max_tokens_kwarg: str | None = "max_tokens",
        invoke_kwargs: Mapping[str, Any] | None = None,
        context_window: int | None = None,
    ) -> None:
        if not isinstance(model, BaseChatModel):
            raise ConfigurationError(
                "model", f"must be a LangChain BaseChatModel, got {type(model).__name__}"
            )
        super().__init__(
            logprobs=logprobs,
            max_tokens_kwarg=max_tokens_kwarg,
            call_kwargs=invoke_kwargs,
            kwargs_argument="invoke_kwargs",
        )
        self.model = model
        self.context_window = context_window

    @property
    def invoke_kwargs(self) -> dict[str, Any]:
        """The extra keywords of every ``invoke`` (``call_kwargs`` under LangChain's name)."""
        return self.call_kwargs

    @invoke_kwargs.setter
    def invoke_kwargs(self, value: Mapping[str, Any]) -> None:
        self.call_kwargs = dict(value)

    @property
    def fingerprint(self) -> str:
        try:
            params = json.dumps(self.model._identifying_params, sort_keys=True, default=str)
        except Exception:  # a model whose params cannot be described: its type is all we can say
            params = "{}"
        return f"langchain:{self.model._llm_type}:{params}"

    def _messages(self, messages: Sequence[ChatMessage]) -> list[BaseMessage]:
        return [_MESSAGE[m.role](content=m.content) for m in check_messages(messages)]

    def _call(self, messages: list[Any], **kwargs: Any) -> Any:
        return self.model.invoke(messages, **kwargs)

    async def _acall(self, messages: list[Any], **kwargs: Any) -> Any:
        return await self.model.ainvoke(messages, **kwargs)

    def _response(self, answer: Any) -> LLMResponse:
        message: BaseMessage = answer
        text = message.text if isinstance(message.text, str) else str(message.content)
        usage = getattr(message, "usage_metadata", None) or {}
        meta = getattr(message, "response_metadata", None) or {}
        return LLMResponse(
            text,
            read_openai_logprobs(meta.get("logprobs")),
            prompt_tokens=usage.get("input_tokens"),
            completion_tokens=usage.get("output_tokens"),
        )


def as_core_llm(llm: Any) -> LLM:
    """``llm`` as a core LLM: a core LLM as is, a LangChain chat model wrapped in :class:`LangChainLLM`."""
    return integrations_llm.as_core_llm(llm, BaseChatModel, LangChainLLM, "a LangChain BaseChatModel")

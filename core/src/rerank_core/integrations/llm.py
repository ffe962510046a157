"""A framework's chat model as the judge's LLM: what the LangChain and LlamaIndex wrappers share.

:class:`FrameworkLLM` holds the options both take (``logprobs``, ``max_tokens_kwarg`` and extra call
keywords), builds the keywords of each call and runs ``complete`` / ``acomplete`` on the framework's native
sync and async calls. A subclass says only how to convert the judge's messages (``_messages``), which call
to make (``_call`` / ``_acall``) and how to read the answer (``_response``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rerank_core.errors import ConfigurationError
from rerank_core.llm.base import LLM, ChatMessage, LLMResponse

__all__ = ["FrameworkLLM", "as_core_llm"]


class FrameworkLLM(LLM):
    """A framework chat model behind the core :class:`~rerank_core.llm.LLM` protocol (natively async).

    Args:
        logprobs: ask for log-probabilities (``logprobs=True, top_logprobs=k`` passed to each call; at most
            20) and read them back; only for models that return them (OpenAI-style ones).
        max_tokens_kwarg: the call keyword that caps the answer length (``"max_tokens"``; ``None`` to pass
            nothing, for models that take it only at construction).
        call_kwargs: more keywords for every call (e.g. ``{"temperature": 0}``); ``kwargs_argument`` names
            them in errors (each framework has its own word).
    """

    blocking = False

    def __init__(
        self,
        *,
        logprobs: bool = False,
        max_tokens_kwarg: str | None = "max_tokens",
        call_kwargs: Mapping[str, Any] | None = None,
        kwargs_argument: str = "call_kwargs",
    ) -> None:
        if not isinstance(logprobs, bool):
            raise ConfigurationError("logprobs", f"must be True or False, got {logprobs!r}")
        if call_kwargs is not None and not isinstance(call_kwargs, Mapping):
            raise ConfigurationError(kwargs_argument, f"must be a mapping, got {type(call_kwargs).__name__}")
        self.supports_logprobs = logprobs
        self.max_tokens_kwarg = max_tokens_kwarg
        self.call_kwargs = dict(call_kwargs or {})

    def _kwargs(self, max_tokens: int, top_logprobs: int) -> dict[str, Any]:
        kwargs = dict(self.call_kwargs)
        if self.max_tokens_kwarg:
            kwargs[self.max_tokens_kwarg] = max_tokens
        if top_logprobs > 0 and self.supports_logprobs:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = min(top_logprobs, 20)
        return kwargs

    @abstractmethod
    def _messages(self, messages: Sequence[ChatMessage]) -> list[Any]:
        """The judge's messages as the framework's message objects."""

    @abstractmethod
    def _call(self, messages: list[Any], **kwargs: Any) -> Any:
        """The framework's sync call (``invoke``, ``chat``, ...)."""

    @abstractmethod
    async def _acall(self, messages: list[Any], **kwargs: Any) -> Any:
        """The framework's async call (``ainvoke``, ``achat``, ...)."""

    @abstractmethod
    def _response(self, answer: Any) -> LLMResponse:
        """The framework's answer as an :class:`LLMResponse` (text, first-token logprobs, token counts)."""

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMResponse:
        return self._response(self._call(self._messages(messages), **self._kwargs(max_tokens, top_logprobs)))

    async def acomplete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMResponse:
        answer = await self._acall(self._messages(messages), **self._kwargs(max_tokens, top_logprobs))
        return self._response(answer)


def as_core_llm(llm: Any, native: type, wrap: Callable[[Any], LLM], expected: str) -> LLM:
    """``llm`` as a core LLM: a core LLM as is, a ``native`` framework model wrapped with ``wrap``, else a
    :class:`ConfigurationError` naming ``llm`` (``expected`` says what the framework's model is)."""
    if isinstance(llm, LLM):
        return llm
    if isinstance(llm, native):
        return wrap(llm)
    raise ConfigurationError("llm", f"must be {expected} or a rerank_core LLM, got {type(llm).__name__}")

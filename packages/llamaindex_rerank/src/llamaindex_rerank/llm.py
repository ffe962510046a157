"""A LlamaIndex ``LLM`` as the judge's framework-free LLM, and the judge's prompts in LlamaIndex's
prompt convention.

``LlamaIndexLLM(llm)`` turns the judge's messages into LlamaIndex ``ChatMessage`` objects, calls
``llm.chat`` (``achat`` on the async path), and reads back the text, the token counts (from
``additional_kwargs`` or the raw answer's ``usage``, where the OpenAI-style integrations put them) and,
when ``logprobs=True``, the first token's alternatives from ``ChatResponse.logprobs[0]``. The context
window comes from ``llm.metadata.context_window``, so the judge fits its prompts to the model.

Editable prompts follow LlamaIndex's ``PromptMixin`` convention on :class:`RerankPostprocessor` (built with
``from_llm_judge``): ``get_prompts()`` returns ``{"yes_no_prompt", "graded_prompt", "listwise_prompt"}`` as
LlamaIndex ``PromptTemplate``s (the user message; placeholders ``{query}``, ``{passage}``, ``{passages}``,
``{num}``, ``{max_grade}``), and ``update_prompts({...})`` replaces them in the judge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage as LIChatMessage
from llama_index.core.base.llms.types import MessageRole
from llama_index.core.llms import LLM as LlamaIndexBaseLLM
from llama_index.core.prompts import BasePromptTemplate, PromptTemplate

from rerank_core import ConfigurationError
from rerank_core.backends.llm_judge import LLMJudgeBackend
from rerank_core.integrations import llm as integrations_llm
from rerank_core.integrations.llm import FrameworkLLM
from rerank_core.llm import LLM, ChatMessage, LLMResponse, TokenLogprob, check_messages
from rerank_core.llm import PromptTemplate as JudgeTemplate

__all__ = ["PROMPT_KEYS", "LlamaIndexLLM", "as_core_llm", "judge_prompts", "update_judge_prompts"]

_ROLES = {"system": MessageRole.SYSTEM, "user": MessageRole.USER, "assistant": MessageRole.ASSISTANT}
PROMPT_KEYS = {"yes_no_prompt": "yes_no", "graded_prompt": "graded", "listwise_prompt": "listwise"}
"""``get_prompts()`` key → the judge's prompt it edits (:class:`rerank_core.llm.JudgePrompts` field)."""


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class LlamaIndexLLM(FrameworkLLM):
    """A LlamaIndex ``LLM`` (``OpenAI``, ``Ollama``, ``HuggingFaceLLM``, ``MockLLM``, ...) behind the core
    LLM protocol.

    Args:
        llm: the LlamaIndex LLM.
        logprobs: ask for log-probabilities (``logprobs=True, top_logprobs=k`` passed to ``chat``) and read
            ``ChatResponse.logprobs``; only for integrations that return them (OpenAI-style ones).
        max_tokens_kwarg: the ``chat`` keyword that caps the answer (``"max_tokens"``; ``None``: pass none).
        chat_kwargs: more keywords for every ``chat`` call.
    """

    def __init__(
        self,
        llm: LlamaIndexBaseLLM,
        *,
        logprobs: bool = False,
        max_tokens_kwarg: str | None = "max_tokens",
        chat_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(llm, LlamaIndexBaseLLM):
            raise ConfigurationError("llm", f"must be a LlamaIndex LLM, got {type(llm).__name__}")
        super().__init__(
            logprobs=logprobs,
            max_tokens_kwarg=max_tokens_kwarg,
            call_kwargs=chat_kwargs,
            kwargs_argument="chat_kwargs",
        )
        self.llm = llm

    @property
    def chat_kwargs(self) -> dict[str, Any]:
        """The extra keywords of every ``chat`` (``call_kwargs`` under LlamaIndex's name)."""
        return self.call_kwargs

    @chat_kwargs.setter
    def chat_kwargs(self, value: Mapping[str, Any]) -> None:
        self.call_kwargs = dict(value)

    @property
    def context_window(self) -> int | None:  # type: ignore[override]
        window = getattr(getattr(self.llm, "metadata", None), "context_window", None)
        return window if isinstance(window, int) and window > 0 else None

    @property
    def fingerprint(self) -> str:
        meta = getattr(self.llm, "metadata", None)
        return f"llamaindex:{self.llm.class_name()}:{getattr(meta, 'model_name', '?')}"

    def _messages(self, messages: Sequence[ChatMessage]) -> list[LIChatMessage]:
        return [LIChatMessage(role=_ROLES[m.role], content=m.content) for m in check_messages(messages)]

    def _call(self, messages: list[Any], **kwargs: Any) -> Any:
        return self.llm.chat(messages, **kwargs)

    async def _acall(self, messages: list[Any], **kwargs: Any) -> Any:
        return await self.llm.achat(messages, **kwargs)

    def _response(self, response: Any) -> LLMResponse:
        text = response.message.content or ""
        tops = None
        if response.logprobs:
            first = response.logprobs[0] or []
            tops = tuple(TokenLogprob(lp.token, float(lp.logprob)) for lp in first) or None
        extra = response.additional_kwargs or {}
        raw = response.raw
        usage = raw.get("usage") if isinstance(raw, Mapping) else getattr(raw, "usage", None)
        if usage is not None and not isinstance(usage, Mapping):
            usage = {k: getattr(usage, k, None) for k in ("prompt_tokens", "completion_tokens")}
        usage = usage or {}
        return LLMResponse(
            text if isinstance(text, str) else str(text),
            tops,
            prompt_tokens=_count(extra.get("prompt_tokens", usage.get("prompt_tokens"))),
            completion_tokens=_count(extra.get("completion_tokens", usage.get("completion_tokens"))),
        )


def as_core_llm(llm: Any) -> LLM:
    """``llm`` as a core LLM: a core LLM as is, a LlamaIndex LLM wrapped in :class:`LlamaIndexLLM`."""
    return integrations_llm.as_core_llm(llm, LlamaIndexBaseLLM, LlamaIndexLLM, "a LlamaIndex LLM")


def judge_prompts(backend: object) -> dict[str, BasePromptTemplate]:
    """The judge's prompts as LlamaIndex ``PromptTemplate``s (``{}`` when ``backend`` is not a judge)."""
    if not isinstance(backend, LLMJudgeBackend):
        return {}
    return {key: PromptTemplate(getattr(backend.prompts, name).user) for key, name in PROMPT_KEYS.items()}


def update_judge_prompts(backend: object, prompts: Mapping[str, BasePromptTemplate | str]) -> None:
    """Replace the judge's user templates named in ``prompts`` (keys of :data:`PROMPT_KEYS`); the system
    message stays. Placeholders are checked as the core checks them (a missing ``{passages}`` is a
    ``ConfigurationError`` naming the prompt)."""
    if not isinstance(backend, LLMJudgeBackend):
        return
    changes: dict[str, JudgeTemplate] = {}
    for key, value in prompts.items():
        name = PROMPT_KEYS.get(key)
        if name is None:
            continue  # not ours (PromptMixin passes every key down)
        template = value if isinstance(value, str) else getattr(value, "template", None)
        if not isinstance(template, str):
            raise ConfigurationError(key, f"must be a PromptTemplate or a string, got {type(value).__name__}")
        changes[name] = JudgeTemplate(getattr(backend.prompts, name).system, template)
    if changes:
        backend.prompts = backend.prompts.replace(**changes)

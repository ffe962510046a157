"""The framework-free LLM protocol the judge talks to: chat messages in, text out, and optionally the
log-probabilities of the first generated token.

Everything an LLM judge needs from a model fits in one call, :meth:`LLM.complete`. Adapters (a local
Hugging Face causal LM, any OpenAI-compatible HTTP endpoint, a LangChain chat model, a LlamaIndex LLM)
translate that call and nothing else; prompts, parsing, batching and concurrency live in the judge.

The first token's top log-probabilities are enough for a yes/no judge: P(yes) / (P(yes) + P(no)) is a
calibrated-looking relevance probability that needs no text parsing at all.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import operator
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rerank_core.errors import ConfigurationError, InvalidResponseError

__all__ = [
    "LLM",
    "ChatMessage",
    "LLMBatchResponse",
    "LLMResponse",
    "Role",
    "TokenLogprob",
    "check_messages",
    "read_openai_logprobs",
]

Role = Literal["system", "user", "assistant"]
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat turn."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One alternative for the first generated token: its text and natural-log probability."""

    token: str
    logprob: float


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """What one LLM call returned.

    - ``text``: the generated text.
    - ``top_logprobs``: the most likely alternatives for the *first* generated token, best first, or
      ``None`` when the model or endpoint did not return them.
    - ``prompt_tokens`` / ``completion_tokens``: token counts as the model reports them (``None``: not
      reported; the judge then estimates them with :meth:`LLM.count_tokens` and says so in its usage).
    """

    text: str
    top_logprobs: tuple[TokenLogprob, ...] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def __post_init__(self) -> None:
        """An adapter's answer is checked once, here: a bad one is an :class:`InvalidResponseError` (a
        back-end failure, so ``fail_open`` applies; the judge names its model), never a crash later."""
        if not isinstance(self.text, str):
            raise InvalidResponseError(
                f"the LLM's answer text must be a string, got {type(self.text).__name__}"
            )
        tops = self.top_logprobs
        if tops is not None:
            if isinstance(tops, str | bytes) or not isinstance(tops, Sequence):
                raise InvalidResponseError(
                    "the LLM's top_logprobs must be a sequence of TokenLogprob or None, "
                    f"got {type(tops).__name__}"
                )
            if not all(isinstance(t, TokenLogprob) for t in tops):
                raise InvalidResponseError("the LLM's top_logprobs must hold TokenLogprob items only")
            object.__setattr__(self, "top_logprobs", tuple(tops))
        for name in ("prompt_tokens", "completion_tokens"):
            object.__setattr__(self, name, _token_count(name, getattr(self, name)))


@dataclass(frozen=True, slots=True)
class LLMBatchResponse:
    """What :meth:`LLM.complete_many` returned for several prompts.

    - ``responses``: one :class:`LLMResponse` per prompt, in the order given.
    - ``call_of``: for each prompt, the index of the model call (forward pass or request) that answered
      it; ``calls`` is how many model calls the whole batch took.
    """

    responses: tuple[LLMResponse, ...]
    call_of: tuple[int, ...]

    @property
    def calls(self) -> int:
        return len(set(self.call_of))


def _token_count(name: str, value: object) -> int | None:
    """A reported token count: ``None``, or a non-negative whole number (an int, a NumPy or torch integer,
    or a float such as ``12.0``, read as ``12``)."""
    if value is None:
        return None
    count: int | None = None
    if not isinstance(value, bool):
        try:
            count = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
                count = int(value)
    if count is None or count < 0:
        raise InvalidResponseError(
            f"the LLM's {name} must be a non-negative whole number or None, got {value!r}"
        )
    return count


def check_messages(messages: object, argument: str = "messages") -> list[ChatMessage]:
    """``messages`` as a list of :class:`ChatMessage`, or a :class:`ConfigurationError` naming it."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise ConfigurationError(argument, "must be a non-empty list of ChatMessage")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, ChatMessage) or m.role not in _ROLES or not isinstance(m.content, str):
            raise ConfigurationError(f"{argument}[{i}]", f"must be a ChatMessage with role in {_ROLES}")
        out.append(m)
    return out


class LLM(ABC):
    """A chat model as the judge sees it. Subclasses implement ``fingerprint`` and ``complete``.

    Attributes:
        blocking: ``True`` when ``complete`` does its work in this process (a local model) or on a
            blocking client; ``acomplete`` then runs it on a worker thread. Adapters with a native
            async client override ``acomplete`` and set ``blocking = False``.
        supports_logprobs: whether ``complete(..., top_logprobs=k)`` returns ``top_logprobs``. ``None``
            means "unknown until tried" (an HTTP endpoint); the judge then asks and falls back to text
            when none come back.
        context_window: the model's context length in tokens, when known; the judge sizes its batches and
            windows to fit it.
        supports_batching: ``True`` when :meth:`complete_many` answers several prompts in fewer model
            calls than prompts (a local model's batched forward pass). The judge then sends a step's
            one-token log-probability prompts through ``complete_many``; otherwise it makes one
            ``complete`` call per prompt, concurrently up to its bound.
    """

    blocking: bool = True
    supports_logprobs: bool | None = False
    context_window: int | None = None
    supports_batching: bool = False

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """A stable description of the model and every setting that changes its output."""

    @abstractmethod
    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMResponse:
        """Generate a reply to ``messages`` (greedy / temperature 0 where the model allows).

        ``top_logprobs > 0`` asks for that many alternatives of the first generated token.
        Failures are :class:`~rerank_core.errors.BackendError` (retryable or not).
        """

    async def acomplete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMResponse:
        """Async :meth:`complete`; by default ``complete`` on a worker thread."""
        return await asyncio.to_thread(
            lambda: self.complete(messages, max_tokens=max_tokens, top_logprobs=top_logprobs)
        )

    def complete_many(
        self, requests: Sequence[Sequence[ChatMessage]], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMBatchResponse:
        """:meth:`complete` for several prompts; by default one ``complete`` call each, in order.

        Adapters that can batch (``supports_batching = True``) override it and answer the same as
        ``complete`` would, prompt by prompt, in fewer model calls (``LLMBatchResponse.call_of`` says
        which call answered which prompt).
        """
        responses = tuple(
            self.complete(m, max_tokens=max_tokens, top_logprobs=top_logprobs) for m in requests
        )
        return LLMBatchResponse(responses, tuple(range(len(responses))))

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``; by default an estimate (4 characters a token). Local adapters count."""
        return max(1, math.ceil(len(text) / 4))

    def close(self) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Release clients or models (no-op by default)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint!r})"


def read_openai_logprobs(logprobs: object) -> tuple[TokenLogprob, ...] | None:
    """The first token's alternatives from an OpenAI-style ``logprobs`` object
    (``{"content": [{"top_logprobs": [{"token", "logprob"}]}]}``, as chat completions return it and as
    LangChain keeps it in ``response_metadata["logprobs"]``); ``None`` when absent or malformed."""
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not isinstance(content, list) or not content or not isinstance(content[0], Mapping):
        return None
    tops = content[0].get("top_logprobs")
    if not isinstance(tops, list):
        return None
    out = []
    for alt in tops:
        if not isinstance(alt, Mapping):
            continue
        token, logprob = alt.get("token"), alt.get("logprob")
        number = isinstance(logprob, int | float) and not isinstance(logprob, bool)
        if isinstance(token, str) and number and math.isfinite(logprob) and logprob <= 0:  # type: ignore[arg-type]
            out.append(TokenLogprob(token, float(logprob)))  # type: ignore[arg-type]
    return tuple(out) or None

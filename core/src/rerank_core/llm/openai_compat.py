"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp server, Ollama, LM Studio,
TGI's Messages API) as the judge's :class:`~rerank_core.llm.LLM`, over httpx (sync and async).

``POST {base_url}/chat/completions`` with ``{"model", "messages", "max_tokens", "temperature": 0}``, plus
``"logprobs": true, "top_logprobs": k`` when the judge asks for log-probabilities and ``logprobs=True``.
The answer's ``choices[0].message.content`` is the text, ``choices[0].logprobs.content[0].top_logprobs``
the first token's alternatives, and ``usage.prompt_tokens`` / ``usage.completion_tokens`` the counts.

Retries with backoff, ``Retry-After``, the requests-per-minute limit and the in-flight cap are the shared
remote machinery (:mod:`rerank_core.remote`): the same :class:`~rerank_core.remote.RetryPolicy` and
:class:`~rerank_core.remote.retry.Dispatcher` the Cohere/TEI back ends use. 408/425/429/5xx, timeouts
and dropped connections are retried; other 4xx are not; an answer that is not a chat completion (malformed
JSON, no ``choices``) is an :class:`~rerank_core.errors.InvalidResponseError`, retried when the policy says
so. Odd *content* (no yes/no, a broken ranking) is not an HTTP error: the judge's parsers
deal with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rerank_core.errors import BackendError, ConfigurationError, InvalidResponseError
from rerank_core.llm.base import LLM, ChatMessage, LLMResponse, check_messages, read_openai_logprobs
from rerank_core.remote.base import HttpClients
from rerank_core.remote.http import Secret, error_for_status, error_for_transport, excerpt
from rerank_core.remote.limits import check_limit
from rerank_core.remote.retry import Dispatcher, RetryPolicy

__all__ = ["OpenAICompatibleLLM"]

_FEATURE = "The OpenAI-compatible LLM"
_EXTRA = "llm-api"


class OpenAICompatibleLLM(LLM):
    """A chat model behind an OpenAI-compatible HTTP API.

    Args:
        base_url: the API root, e.g. ``http://localhost:8000/v1`` (vLLM), ``http://localhost:8080/v1``
            (llama.cpp), ``http://localhost:11434/v1`` (Ollama), ``https://api.openai.com/v1``.
        model: the model name the server expects.
        api_key: sent as ``Authorization: Bearer``; never shown in reprs, logs or errors.
        logprobs: whether the endpoint returns log-probabilities (the judge then scores P(yes)); set
            ``False`` for servers that do not, and the judge parses graded text instead.
        temperature: sampling temperature (0: greedy, reproducible where the server allows).
        context_window: the model's context length in tokens, if you want the judge to fit prompts to it.
        max_concurrency, requests_per_minute, timeout, retry: as for the remote rerank back ends.
        headers / extra_body: added to every request (e.g. ``{"seed": 0}``).
        path: the endpoint under ``base_url`` (default ``/chat/completions``).
    """

    blocking = False

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        logprobs: bool = True,
        temperature: float = 0.0,
        context_window: int | None = None,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        path: str = "/chat/completions",
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigurationError("base_url", f"must be an http(s) URL, got {base_url!r}")
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError("model", f"must be a non-empty model name, got {model!r}")
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigurationError("api_key", f"must be a string, got {type(api_key).__name__}")
        if not isinstance(logprobs, bool):
            raise ConfigurationError("logprobs", f"must be True or False, got {logprobs!r}")
        if not isinstance(temperature, int | float) or not math.isfinite(temperature) or temperature < 0:
            raise ConfigurationError("temperature", f"must be a number >= 0, got {temperature!r}")
        check_limit(context_window, "context_window", allow_none=True)
        self._dispatch = Dispatcher(
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            timeout=timeout,
            retry=retry,
        )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.path = path
        self.supports_logprobs = logprobs
        self.temperature = float(temperature)
        self.context_window = context_window
        self.max_concurrency = max_concurrency
        self.timeout = self._dispatch.timeout
        self.retry = self._dispatch.retry
        self.stats = self._dispatch.stats
        self._extra_body = dict(extra_body or {})
        self._key = Secret(api_key or "")
        self._headers = {"content-type": "application/json", **dict(headers or {})}
        if self._key:
            self._headers["authorization"] = f"Bearer {self._key.get()}"
        self._http = HttpClients(
            self.base_url,
            timeout=self.timeout,
            headers=self._headers,
            max_connections=self.max_concurrency,
            extra=_EXTRA,
            feature=_FEATURE,
        )

    @property
    def fingerprint(self) -> str:
        return f"openai-compat:{self.base_url}{self.path}:model={self.model}:temperature={self.temperature}"

    def __repr__(self) -> str:
        key = ", api_key=***" if self._key else ""
        return f"OpenAICompatibleLLM(base_url={self.base_url!r}, model={self.model!r}{key})"

    def close(self) -> None:
        """Close the sync client (async clients: :meth:`aclose` in their event loop)."""
        self._http.close()

    async def aclose(self) -> None:
        """Close the running event loop's async client."""
        await self._http.aclose()

    # -- one request -----------------------------------------------------------------------------

    def _body(self, messages: Sequence[ChatMessage], max_tokens: int, top_logprobs: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self._extra_body,
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in check_messages(messages)],
            "max_tokens": int(max_tokens),
            "temperature": self.temperature,
        }
        if top_logprobs > 0 and self.supports_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = min(int(top_logprobs), 20)  # OpenAI's maximum
        return body

    def _invalid(self, what: str, status: int | None = None) -> InvalidResponseError:
        return InvalidResponseError(what, backend=self.fingerprint, status_code=status)

    def _parse(self, response: Any) -> LLMResponse:
        status = response.status_code
        if not 200 <= status < 300:
            raise error_for_status(
                status, response.headers, response.text, backend=self.fingerprint, secret=self._key
            )
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise self._invalid(
                f"malformed JSON (HTTP {status}): {excerpt(response.text, self._key)}", status
            ) from None
        choices = data.get("choices") if isinstance(data, Mapping) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise self._invalid(
                f"not a chat completion (no choices): {excerpt(repr(data), self._key)}", status
            )
        choice = choices[0]
        message = choice.get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        if content is None and isinstance(choice.get("text"), str):  # legacy completions shape
            content = choice["text"]
        text = content if isinstance(content, str) else ""
        return LLMResponse(
            text,
            read_openai_logprobs(choice.get("logprobs")),
            prompt_tokens=_count(data.get("usage"), "prompt_tokens"),
            completion_tokens=_count(data.get("usage"), "completion_tokens"),
        )

    def _transport_error(self, exc: Exception) -> BackendError:
        error = error_for_transport(exc, backend=self.fingerprint, timeout=self.timeout)
        if error is None:
            raise exc
        return error

    def _attempt(self, body: dict[str, Any]) -> LLMResponse:
        self.stats.add("requests")
        try:
            response = self._http.sync().post(self.path, json=body)
        except Exception as exc:
            self.stats.add("error:transport")
            raise self._transport_error(exc) from exc
        return self._parse(response)

    async def _aattempt(self, body: dict[str, Any]) -> LLMResponse:
        self.stats.add("requests")
        try:
            response = await self._http.current().post(self.path, json=body)
        except Exception as exc:
            self.stats.add("error:transport")
            raise self._transport_error(exc) from exc
        return self._parse(response)

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMResponse:
        body = self._body(messages, max_tokens, top_logprobs)
        return self._dispatch.call(lambda: self._attempt(body), "chat completion")

    async def acomplete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMResponse:
        body = self._body(messages, max_tokens, top_logprobs)
        return await self._dispatch.acall(lambda: self._aattempt(body), "chat completion")


def _count(usage: object, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, Mapping) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

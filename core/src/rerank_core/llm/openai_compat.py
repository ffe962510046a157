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

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rerank_core._validation import check_text
from rerank_core.errors import (
    BackendError,
    ConfigurationError,
    InvalidResponseError,
    NonRetryableBackendError,
)
from rerank_core.llm.base import LLM, ChatMessage, LLMResponse, check_messages, read_openai_logprobs
from rerank_core.remote.base import HttpClients
from rerank_core.remote.http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Secret,
    error_for_status,
    error_for_transport,
    excerpt,
    fingerprint_headers,
    fingerprint_json,
    parse_json,
    split_url_credentials,
)
from rerank_core.remote.limits import check_limit
from rerank_core.remote.retry import Dispatcher, RetryPolicy

__all__ = ["OpenAICompatibleLLM"]

_FEATURE = "The OpenAI-compatible LLM"
_EXTRA = "llm-api"

#: The default ``deadline`` of one completion: none (bounded by tries x ``timeout`` plus backoff).
DEFAULT_LLM_DEADLINE: float | None = None


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
        max_concurrency, requests_per_minute, timeout, retry: as for the remote rerank back ends
            (``timeout`` bounds a whole try: connect, send, wait and read together).
        deadline: opt-in seconds for a whole call, every try, backoff and the time queued for the rate
            limit and concurrency slots included. Default ``None``: no such bound; since ``timeout``
            bounds a whole try, a call is bounded by the tries (``retry``) x ``timeout`` plus backoff.
        max_response_bytes: the largest answer read, after decoding (default 8 MiB); a larger one stops
            with :class:`~rerank_core.remote.http.ResponseTooLargeError`, not retried.
        headers / extra_body: added to every request (e.g. ``{"seed": 0}``). Both are part of the
            fingerprint (the cache key), since they may change the answer; values of headers or body keys
            that may carry a credential (``Authorization``, ``api-key``, any name with ``key``, ``token``,
            ``secret``, ``auth``, ``password``, ``cookie``...) enter it only as a short SHA-256.
        path: the endpoint under ``base_url`` (default ``/chat/completions``).

    Credentials written in ``base_url`` (``http://user:KEY@host/v1``) are sent as HTTP basic auth and shown
    as ``user:***`` (repr, fingerprint, errors, httpx's log).
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
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            shown = split_url_credentials(base_url)[1] if isinstance(base_url, str) else base_url
            raise ConfigurationError("base_url", f"must be an http(s) URL, got {shown!r}")
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError("model", f"must be a non-empty model name, got {model!r}")
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigurationError("api_key", f"must be a string, got {type(api_key).__name__}")
        if not isinstance(logprobs, bool):
            raise ConfigurationError("logprobs", f"must be True or False, got {logprobs!r}")
        if not isinstance(temperature, int | float) or not math.isfinite(temperature) or temperature < 0:
            raise ConfigurationError("temperature", f"must be a number >= 0, got {temperature!r}")
        check_limit(context_window, "context_window", allow_none=True)
        check_limit(max_response_bytes, "max_response_bytes")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigurationError("path", f"must start with '/', got {path!r}")
        self._dispatch = Dispatcher(
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            timeout=timeout,
            retry=retry,
            deadline=deadline,
        )
        url, self.base_url, url_auth = split_url_credentials(base_url.rstrip("/"))
        self.model = model
        self.path = path
        self.supports_logprobs = logprobs
        self.temperature = float(temperature)
        self.context_window = context_window
        self.max_concurrency = max_concurrency
        self.timeout = self._dispatch.timeout
        self.deadline = self._dispatch.deadline
        self.max_response_bytes = max_response_bytes
        self.retry = self._dispatch.retry
        self.stats = self._dispatch.stats
        self._extra_body = dict(extra_body or {})
        self._key = Secret(api_key or "")
        user_headers = {str(k): str(v) for k, v in dict(headers or {}).items()}
        self._headers = {"content-type": "application/json", **user_headers}
        if self._key:
            self._headers["authorization"] = f"Bearer {self._key.get()}"
        fingerprint = (
            f"openai-compat:{self.base_url}{self.path}:model={self.model}:temperature={self.temperature}"
        )
        routing = {k: v for k, v in user_headers.items() if k.lower() != "content-type"}
        if routing:  # what the answer may depend on (a gateway's routing header), secrets hashed
            fingerprint += f":headers={fingerprint_headers(routing)}"
        if self._extra_body:  # e.g. a seed, a top_p, a chat template switch
            fingerprint += f":extra_body={fingerprint_json(self._extra_body)}"
        self._fingerprint = fingerprint
        self._dispatch.backend = fingerprint
        self._http = HttpClients(
            url,
            timeout=self.timeout,
            headers=self._headers,
            max_connections=self.max_concurrency,
            extra=_EXTRA,
            feature=_FEATURE,
            max_response_bytes=max_response_bytes,
            auth=url_auth,
            backend=fingerprint,
        )

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

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
            "messages": [
                {"role": m.role, "content": m.content} for m in _encodable(check_messages(messages))
            ],
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
        data = parse_json(response.content, backend=self.fingerprint, status=status, secret=self._key)
        choices = data.get("choices") if isinstance(data, Mapping) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise self._invalid(
                f"not a chat completion (no choices): {excerpt(repr(data), self._key)}", status
            )
        try:
            return self._read(data, choices[0])
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # e.g. a 401-digit number
            raise self._invalid(
                f"unusable chat completion ({type(exc).__name__}: {excerpt(str(exc))})", status
            ) from None

    @staticmethod
    def _read(data: Mapping[str, Any], choice: Mapping[str, Any]) -> LLMResponse:
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
        """A typed error for whatever sending failed with (never anything but a RerankError)."""
        if isinstance(exc, BackendError):  # e.g. ResponseTooLargeError, raised while reading
            return exc
        error = error_for_transport(exc, backend=self.fingerprint, timeout=self.timeout)
        if error is None:
            return NonRetryableBackendError(
                f"the request failed ({type(exc).__name__}: {excerpt(str(exc), self._key)})",
                backend=self.fingerprint,
            )
        return error

    def _attempt(self, body: dict[str, Any]) -> LLMResponse:
        self.stats.add("requests")
        try:
            response = self._http.sync().post(self.path, json=body)
        except Exception as exc:
            self.stats.add("error:transport")
            error = self._transport_error(exc)
            if error is exc:
                raise
            raise error from exc
        return self._parse(response)

    async def _aattempt(self, body: dict[str, Any]) -> LLMResponse:
        self.stats.add("requests")
        try:
            response = await self._http.current().post(self.path, json=body)
        except Exception as exc:
            self.stats.add("error:transport")
            error = self._transport_error(exc)
            if error is exc:
                raise
            raise error from exc
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


def _encodable(messages: Sequence[ChatMessage]) -> Sequence[ChatMessage]:
    """``messages``, or :class:`InvalidInputError` naming the message whose text cannot be sent as UTF-8
    (a lone surrogate): never retried, since retrying cannot help."""
    for i, message in enumerate(messages):
        if isinstance(message.content, str):
            check_text(message.content, f"messages[{i}].content")
    return messages


def _count(usage: object, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, Mapping) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

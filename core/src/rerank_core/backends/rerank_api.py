"""Self-hosted rerank servers whose wire format is not Cohere's, over httpx (sync and async clients,
pooled keep-alive connections, timeouts).

Protocols:

- ``"tei"``: Hugging Face Text Embeddings Inference. ``POST {base_url}/rerank`` with
  ``{"query", "texts", "raw_scores", "truncate", "return_text": false}``; the answer is a bare list of
  ``{"index", "score"}``. TEI refuses more than ``--max-client-batch-size`` texts per request (32 by
  default), hence ``max_documents_per_request=32``. ``raw_scores=False`` (TEI's default) returns sigmoid
  scores (``score_kind="probability"``); ``True`` returns logits (``"logit"``).
- ``"jina"``: the Jina / vLLM ``POST {base_url}/v1/rerank`` shape: ``{"model", "query",
  "documents", "top_n", "return_documents": false}``; the answer is ``{"results": [{"index",
  "relevance_score"}, ...]}``. ``top_n`` is sent as the number of documents (every score is needed).
  Infinity speaks the same shape at ``POST /rerank`` (no ``/v1`` by default; ``/v1/rerank`` and
  ``/v2/rerank`` are 404 there): ``RerankAPIBackend(url, protocol="jina", model=..., path="/rerank")``.
- ``"voyage"``: Voyage AI (https://docs.voyageai.com/reference/reranker-api). ``POST {base_url}/v1/rerank``
  (default ``base_url`` ``https://api.voyageai.com``) with ``{"query", "documents", "model", "top_k",
  "return_documents": false, "truncation"}``; the answer is ``{"object": "list", "data": [{"index",
  "relevance_score"}], "model", "usage": {"total_tokens"}}``. ``top_k`` is sent as the number of documents
  (every score is needed). Voyage takes at most 1,000 documents per request (hence
  ``max_documents_per_request=1000``) and at most 600K "total tokens" per request (query tokens x
  documents + every document's tokens, for rerank-2.5, rerank-2.5-lite, rerank-2 and rerank-2-lite; 300K
  for rerank-1 / rerank-lite-1): the core cannot count Voyage's tokens, so a request over it is the
  server's 400 (non-retryable); lower ``max_documents_per_request`` for long documents. ``truncation``
  (default ``True``, as Voyage's) lets the server cut a query or document over the model's context
  (query: 8,000 tokens for rerank-2.5; query + document: 32,000); with ``False`` it refuses them. The
  relevance scores are in [0, 1] (``score_kind="probability"``). The key is ``api_key`` or the
  ``VOYAGE_API_KEY`` environment variable, sent as ``Authorization: Bearer``. The answer's
  ``usage.total_tokens`` is reported as ``usage["api_total_tokens"]`` of the query's response.

Instructions: no protocol here has a field for one; each writes it into the query,
``f"{instruction}\n{query}"`` (:func:`~rerank_core.remote.base.instructed_query`, the same for every
protocol; Voyage's rerank-2.5 models are trained to follow instructions given this way, in the query).

For Cohere's own ``/v2/rerank`` shape use :class:`~rerank_core.backends.cohere.CohereBackend` with
``base_url``. Retries, limits, splitting and response checks are those of
:class:`~rerank_core.remote.base.RemoteBackend`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from rerank_core.errors import (
    BackendError,
    ConfigurationError,
    InvalidResponseError,
    NonRetryableBackendError,
)
from rerank_core.remote.base import Entries, HttpClients, RemoteBackend
from rerank_core.remote.http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Secret,
    entries_from_json,
    error_for_status,
    error_for_transport,
    excerpt,
    fingerprint_headers,
    parse_json,
    split_url_credentials,
)
from rerank_core.remote.retry import RetryPolicy
from rerank_core.types import ScoreKind

__all__ = ["PROTOCOLS", "RerankAPIBackend"]

_FEATURE = "The rerank-server back end"
PROTOCOLS: dict[str, dict[str, Any]] = {
    "tei": {"path": "/rerank", "max_documents": 32, "index": "index", "score": "score"},
    "jina": {"path": "/v1/rerank", "max_documents": 1000, "index": "index", "score": "relevance_score"},
    "voyage": {"path": "/v1/rerank", "max_documents": 1000, "index": "index", "score": "relevance_score"},
}
VOYAGE_BASE_URL = "https://api.voyageai.com"
VOYAGE_DEFAULT_MODEL = "rerank-2.5"


def _voyage_usage(usage: object) -> dict[str, int]:
    """Voyage's ``usage.total_tokens`` as ``{"api_total_tokens": N}`` (nothing when absent or not a
    non-negative integer: usage is reported, never checked)."""
    tokens = usage.get("total_tokens") if isinstance(usage, Mapping) else None
    if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
        return {"api_total_tokens": tokens}
    return {}


def _shown(url: object) -> object:
    """``url`` as it may be shown (credentials as ``***``)."""
    return split_url_credentials(url)[1] if isinstance(url, str) and "@" in url else url


class RerankAPIBackend(RemoteBackend):
    """A rerank server speaking the TEI, the Jina/vLLM or the Voyage AI protocol.

    Args:
        base_url: the server, e.g. ``"http://tei:8080"``; for ``"voyage"`` it may be left out (default
            ``https://api.voyageai.com``).
        protocol: ``"tei"``, ``"jina"`` or ``"voyage"`` (see the module docstring).
        model: sent in ``"jina"`` requests (vLLM and Infinity route on it) and ``"voyage"`` ones (default
            ``"rerank-2.5"``); TEI serves one model.
        api_key: sent as ``Authorization: Bearer``, if given (kept secret). For ``"voyage"`` the default
            is the ``VOYAGE_API_KEY`` environment variable, required for Voyage's own API (a server
            given by ``base_url`` may need none), as ``CohereBackend`` does with ``COHERE_API_KEY``.
            Credentials written in the URL (``http://user:KEY@host``) are sent as HTTP basic auth and
            shown as ``user:***``.
        path: the endpoint path if the server mounts it elsewhere (default ``/rerank`` for TEI,
            ``/v1/rerank`` for Jina and Voyage; ``path="/rerank"`` for Infinity).
        raw_scores: TEI only: ask for logits instead of sigmoid scores.
        truncate: TEI's ``truncate`` and Voyage's ``truncation``: let the server truncate texts longer
            than the model (default ``True``; with ``False`` the server refuses such texts, a
            non-retryable error).
        score_kind: what the scores are; default ``"probability"`` (``"logit"`` for TEI with raw_scores).
        max_documents_per_request: default 32 for TEI, 1000 for Jina and Voyage.
        headers: extra HTTP headers (e.g. a gateway's routing header). They are part of the fingerprint
            (the cache key), since they may change the answer; the values of headers that may carry a
            credential (``Authorization``, ``api-key``, any name with ``key``, ``token``, ``secret``,
            ``auth``, ``password``, ``cookie``...) enter it only as a short SHA-256.
        max_concurrency, requests_per_minute, timeout, retry, deadline, max_response_bytes: see
            :class:`~rerank_core.remote.base.RemoteBackend`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        protocol: str = "tei",
        model: str | None = None,
        api_key: str | None = None,
        path: str | None = None,
        raw_scores: bool = False,
        truncate: bool = True,
        score_kind: ScoreKind | None = None,
        max_documents_per_request: int | None = None,
        headers: Mapping[str, str] | None = None,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ConfigurationError("protocol", f"must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        spec = PROTOCOLS[protocol]
        super().__init__(
            max_documents_per_request=(
                spec["max_documents"] if max_documents_per_request is None else max_documents_per_request
            ),
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            timeout=timeout,
            retry=retry,
            deadline=deadline,
            max_response_bytes=max_response_bytes,
        )
        voyage_api = base_url is None and protocol == "voyage"
        if voyage_api:
            base_url = VOYAGE_BASE_URL
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigurationError("base_url", f"must be an http(s) URL, got {_shown(base_url)!r}")
        url, shown_url, url_auth = split_url_credentials(base_url.rstrip("/"))
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ConfigurationError("path", f"must start with '/', got {path!r}")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ConfigurationError("model", f"must be a non-empty model name or None, got {model!r}")
        if protocol == "jina" and model is None:
            model = "default"
        if protocol == "voyage" and model is None:
            model = VOYAGE_DEFAULT_MODEL
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigurationError("api_key", f"must be a string, got {type(api_key).__name__}")
        if protocol == "voyage":
            api_key = api_key or os.environ.get("VOYAGE_API_KEY")
            if not api_key and voyage_api:
                raise ConfigurationError(
                    "api_key",
                    "no Voyage AI API key: pass api_key=... or set VOYAGE_API_KEY (a Voyage-compatible "
                    "server given by base_url may need none)",
                )
        for name, value in (("raw_scores", raw_scores), ("truncate", truncate)):
            if not isinstance(value, bool):
                raise ConfigurationError(name, f"must be True or False, got {value!r}")
        if score_kind is None:
            score_kind = "logit" if (protocol == "tei" and raw_scores) else "probability"
        if score_kind not in ("logit", "probability"):
            raise ConfigurationError("score_kind", f"must be 'logit' or 'probability', got {score_kind!r}")
        self.base_url = shown_url  # credentials in the URL show as user:***
        self.protocol = protocol
        self.model = model
        self.path = path or spec["path"]
        self.raw_scores = raw_scores
        self.truncate = truncate
        self._score_kind: ScoreKind = score_kind
        self._key = Secret(api_key or "")
        user_headers = {str(k): str(v) for k, v in dict(headers or {}).items()}
        self._headers = {"content-type": "application/json", **user_headers}
        if self._key:
            self._headers["authorization"] = f"Bearer {self._key.get()}"
        self._index_key, self._score_key = spec["index"], spec["score"]
        options = f":raw_scores={raw_scores}" if protocol == "tei" else f":model={model}"
        routing = {k: v for k, v in user_headers.items() if k.lower() != "content-type"}
        if routing:  # what may route the request to another model changes the answer (secrets hashed)
            options += f":headers={fingerprint_headers(routing)}"
        self._fingerprint = f"{protocol}:{self.base_url}{self.path}{options}"
        self._http = HttpClients(
            url,
            timeout=self.timeout,
            headers=self._headers,
            max_connections=self.max_concurrency,
            extra="cohere",
            feature=_FEATURE,
            max_response_bytes=max_response_bytes,
            auth=url_auth,
            backend=self._fingerprint,
        )

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def score_kind(self) -> ScoreKind:
        return self._score_kind

    def peek_score_kind(self) -> ScoreKind | None:
        return self._score_kind

    # -- one request -------------------------------------------------------------------------------

    def _body(self, query: str, texts: Sequence[str]) -> dict[str, Any]:
        if self.protocol == "tei":
            return {
                "query": query,
                "texts": list(texts),
                "raw_scores": self.raw_scores,
                "truncate": self.truncate,
                "return_text": False,
            }
        if self.protocol == "voyage":
            return {
                "query": query,
                "documents": list(texts),
                "model": self.model,
                "top_k": len(texts),
                "return_documents": False,
                "truncation": self.truncate,
            }
        return {
            "model": self.model,
            "query": query,
            "documents": list(texts),
            "top_n": len(texts),
            "return_documents": False,
        }

    def _entries(self, response: Any) -> list[tuple[object, object]]:
        if not 200 <= response.status_code < 300:
            raise error_for_status(
                response.status_code,
                response.headers,
                response.text,
                backend=self.fingerprint,
                secret=self._key,
            )
        data = parse_json(
            response.content, backend=self.fingerprint, status=response.status_code, secret=self._key
        )
        usage: dict[str, int] = {}
        if self.protocol in ("jina", "voyage"):
            field = "results" if self.protocol == "jina" else "data"
            if not isinstance(data, Mapping) or field not in data:
                raise InvalidResponseError(
                    f"expected an object with {field!r}, got {excerpt(repr(data), self._key)}",
                    backend=self.fingerprint,
                )
            if self.protocol == "voyage":
                usage = _voyage_usage(data.get("usage"))
            data = data[field]
        entries = entries_from_json(data, self._index_key, self._score_key, backend=self.fingerprint)
        return Entries(entries, usage) if usage else entries

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

    def _send(self, query: str, texts: Sequence[str]) -> list[tuple[object, object]]:
        try:
            response = self._http.sync().post(self.path, json=self._body(query, texts))
        except Exception as exc:
            error = self._transport_error(exc)
            if error is exc:
                raise
            raise error from exc
        return self._entries(response)

    async def _asend(self, query: str, texts: Sequence[str]) -> list[tuple[object, object]]:
        try:
            response = await self._http.current().post(self.path, json=self._body(query, texts))
        except Exception as exc:
            error = self._transport_error(exc)
            if error is exc:
                raise
            raise error from exc
        return self._entries(response)

    def close(self) -> None:
        """Close the sync HTTP client and the thread pool (async clients: :meth:`aclose` in their loop)."""
        self._http.close()
        super().close()

    async def aclose(self) -> None:
        """Close the async HTTP client of the running event loop."""
        await self._http.aclose()

    def __repr__(self) -> str:
        key = ", api_key=***" if self._key else ""  # base_url shows URL credentials as ***
        return (
            f"RerankAPIBackend(base_url={self.base_url!r}, protocol={self.protocol!r}, "
            f"model={self.model!r}{key})"
        )

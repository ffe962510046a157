"""Cohere Rerank back end on the official ``cohere`` SDK (``ClientV2`` / ``AsyncClientV2``).

``base_url`` points it at any server that speaks Cohere's ``POST /v2/rerank`` shape (vLLM, a gateway).
The SDK's own retries are switched off: retries, backoff, limits and response checks are the shared ones
of :class:`~rerank_core.remote.base.RemoteBackend`, the same for every remote back end. Its httpx clients
are the shared bounded ones (:class:`~rerank_core.remote.base.HttpClients`): a whole try within
``timeout``, an answer within ``max_response_bytes``, per process and per event loop.

Choices, written down:

- ``top_n`` is never sent. The core needs every candidate's score (thresholds, fusion, merging the
  requests of a long candidate list), and Cohere bills per search unit (a query and up to 100 documents),
  not per result returned. The reranker's ``top_n`` cuts after merging.
- Scores are Cohere's ``relevance_score``, already in [0, 1]: ``score_kind`` is ``"probability"``, so
  the core refuses to squash them again with a sigmoid or softmax.
- Documents longer than ``max_tokens_per_doc`` (server default 4096) are truncated by the server; the
  core cannot count Cohere's tokens, so it cannot window them itself.
- Credentials written in ``base_url`` (``http://user:KEY@host``) are sent as HTTP basic auth and shown as
  ``user:***`` in the repr, the fingerprint, errors and httpx's log.
- Infinity is not a ``/v2/rerank`` server by default (it serves ``POST /rerank``): use
  ``RerankAPIBackend(url, protocol="jina", path="/rerank")`` for it.
- Instructions (``Reranker(backend, instruction=...)``) are taken, not refused: Cohere's ``/v2/rerank``
  has no field for one (https://docs.cohere.com/reference/rerank: ``model``, ``query``, ``documents``,
  ``top_n``, ``max_tokens_per_doc``), so the instruction is written into the query, before it,
  ``f"{instruction}\n{query}"``, as for every remote back end
  (:func:`~rerank_core.remote.base.instructed_query`). Refusing would have been the other choice; a
  query prefix was chosen because it is what the instruction-following rerank APIs document (Voyage's
  rerank-2.5 reads its instructions in the query) and what a ``/v2/rerank`` server in front of an
  instruction-tuned model (vLLM) can use, while a model not trained on instructions reads them as part of
  the query. Check the effect on your own labelled queries before relying on it with Cohere's models.
- The API key comes from ``api_key`` or the ``COHERE_API_KEY`` (then ``CO_API_KEY``) environment
  variable and is kept in a :class:`~rerank_core.remote.http.Secret`: never in a repr, a fingerprint, a log
  line or an error message. A self-hosted server (``base_url`` given) may need no key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rerank_core._optional import require
from rerank_core.errors import (
    BackendError,
    ConfigurationError,
    InvalidResponseError,
    NonRetryableBackendError,
)
from rerank_core.remote.base import HttpClients, PerLoop, RemoteBackend
from rerank_core.remote.http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Secret,
    error_for_status,
    error_for_transport,
    excerpt,
    split_url_credentials,
)
from rerank_core.remote.retry import RetryPolicy
from rerank_core.types import ScoreKind

__all__ = ["CohereBackend"]

_FEATURE = "The Cohere back end"
_NO_KEY = "no-key"  # sent to self-hosted servers that need none (the SDK insists on a token)


def _api_key(api_key: str | None, base_url: str | None) -> Secret:
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigurationError("api_key", f"must be a string, got {type(api_key).__name__}")
    key = api_key or os.environ.get("COHERE_API_KEY") or os.environ.get("CO_API_KEY")
    if not key:
        if base_url is None:
            raise ConfigurationError(
                "api_key",
                "no Cohere API key: pass api_key=... or set COHERE_API_KEY "
                "(a self-hosted Cohere-compatible server given by base_url may need none)",
            )
        key = _NO_KEY
    return Secret(key)


class CohereBackend(RemoteBackend):
    """Cohere's Rerank API, or any server speaking its ``/v2/rerank`` shape.

    Args:
        model: the rerank model (e.g. ``"rerank-v3.5"``, or the model a self-hosted server serves).
        api_key: the key; default ``COHERE_API_KEY`` / ``CO_API_KEY`` from the environment.
        base_url: the server (default: Cohere's API; e.g. ``"http://vllm:8000"`` for vLLM).
        max_tokens_per_doc: the server truncates each document to this many tokens (server default 4096).
        max_documents_per_request: split longer candidate lists (default 1000, Cohere's recommendation).
        max_concurrency, requests_per_minute, timeout, retry, deadline, max_response_bytes: see
            :class:`~rerank_core.remote.base.RemoteBackend`.
        client_name: sent to Cohere as ``X-Client-Name``.
    """

    def __init__(
        self,
        model: str = "rerank-v3.5",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens_per_doc: int | None = None,
        max_documents_per_request: int = 1000,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        client_name: str | None = "rerank-core",
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(
            max_documents_per_request=max_documents_per_request,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            timeout=timeout,
            retry=retry,
            deadline=deadline,
            max_response_bytes=max_response_bytes,
        )
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError("model", f"must be a non-empty model name, got {model!r}")
        if base_url is not None and (
            not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))
        ):
            shown = split_url_credentials(base_url)[1] if isinstance(base_url, str) else base_url
            raise ConfigurationError("base_url", f"must be an http(s) URL, got {shown!r}")
        if max_tokens_per_doc is not None and (
            not isinstance(max_tokens_per_doc, int)
            or isinstance(max_tokens_per_doc, bool)
            or max_tokens_per_doc < 1
        ):
            raise ConfigurationError(
                "max_tokens_per_doc", f"must be an int >= 1 or None, got {max_tokens_per_doc!r}"
            )
        url_auth = None
        self._url: str | None = None
        self.model = model
        self.base_url = None  # credentials in the URL show as user:***
        if base_url is not None:
            self._url, self.base_url, url_auth = split_url_credentials(base_url.rstrip("/"))
        self.max_tokens_per_doc = max_tokens_per_doc
        self.client_name = client_name
        self._key = _api_key(api_key, base_url)
        self._fingerprint = f"cohere:{model}@{self.base_url or 'api.cohere.com'}" + (
            f":max_tokens_per_doc={max_tokens_per_doc}" if max_tokens_per_doc else ""
        )
        self._client: Any = None
        self._client_pid = os.getpid()
        self._http = HttpClients(
            None,
            timeout=self.timeout,
            max_connections=self.max_concurrency,
            extra="cohere",
            feature=_FEATURE,
            max_response_bytes=max_response_bytes,
            auth=url_auth,
            backend=self._fingerprint,
        )
        self._aclients = PerLoop(self._make_async_client, lambda pair: pair[1].aclose())

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def score_kind(self) -> ScoreKind:
        return "probability"

    def peek_score_kind(self) -> ScoreKind | None:
        return "probability"

    # -- clients -----------------------------------------------------------------------------------

    def _client_kwargs(self, http_client: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "api_key": self._key.get(),
            "timeout": self.timeout,
            "max_retries": 0,  # retries are ours (RemoteBackend), the same for every remote back end
            "httpx_client": http_client,
            "client_name": self.client_name,
            "log_warning_experimental_features": False,
        }
        if self._url is not None:
            kwargs["base_url"] = self._url
        return kwargs

    def _sync_client(self) -> Any:
        """The SDK's sync client over this process's bounded httpx client (see ``HttpClients``)."""
        if self._client_pid != os.getpid():  # forked: the parent's client shares the parent's sockets
            self._client, self._client_pid = None, os.getpid()
        client = self._client
        if client is None:
            cohere = require("cohere", extra="cohere", feature=_FEATURE)
            client = self._client = cohere.ClientV2(**self._client_kwargs(self._http.sync()))
        return client

    def _make_async_client(self) -> tuple[Any, Any]:
        cohere = require("cohere", extra="cohere", feature=_FEATURE)
        http = self._http._make_async()
        return cohere.AsyncClientV2(**self._client_kwargs(http)), http

    # -- one request -------------------------------------------------------------------------------

    def _request_kwargs(self, query: str, texts: Sequence[str]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, "query": query, "documents": list(texts)}
        if self.max_tokens_per_doc is not None:
            kwargs["max_tokens_per_doc"] = self.max_tokens_per_doc
        return kwargs

    def _entries(self, response: Any) -> list[tuple[object, object]]:
        results = getattr(response, "results", None)
        if not isinstance(results, list):
            raise InvalidResponseError(
                f"the answer has no list of results: {excerpt(repr(response), self._key)}",
                backend=self.fingerprint,
            )
        return [(getattr(r, "index", None), getattr(r, "relevance_score", None)) for r in results]

    def _translate(self, exc: Exception) -> BackendError:
        """The SDK's and httpx's exceptions as the core's typed errors (the key scrubbed from every text)."""
        from cohere.core.api_error import ApiError
        from cohere.core.parse_error import ParsingError

        if isinstance(exc, BackendError):  # e.g. ResponseTooLargeError, raised while reading
            return exc
        transport = error_for_transport(exc, backend=self.fingerprint, timeout=self.timeout)
        if transport is not None:
            return transport
        if isinstance(exc, ApiError):
            status = exc.status_code
            if status is not None and 200 <= status < 300:  # an answer the SDK could not parse
                return InvalidResponseError(
                    f"malformed answer (HTTP {status}): {excerpt(repr(exc.body), self._key)}",
                    backend=self.fingerprint,
                    status_code=status,
                )
            if status is None:
                return InvalidResponseError(
                    f"unusable answer: {excerpt(repr(exc.body), self._key)}", backend=self.fingerprint
                )
            return error_for_status(status, exc.headers, exc.body, backend=self.fingerprint, secret=self._key)
        if isinstance(
            exc,
            ParsingError
            | ValueError
            | TypeError
            | KeyError
            | AttributeError
            | RecursionError
            | OverflowError,
        ):  # unparseable body (JSON nested too deeply, a number too large for a float, ...)
            reason = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
            return InvalidResponseError(
                f"malformed answer ({reason}: {excerpt(str(exc), self._key)})",
                backend=self.fingerprint,
            )
        return NonRetryableBackendError(  # never anything but a RerankError out of the HTTP layer
            f"the request failed ({type(exc).__name__}: {excerpt(str(exc), self._key)})",
            backend=self.fingerprint,
        )

    def _send(self, query: str, texts: Sequence[str]) -> list[tuple[object, object]]:
        client = self._sync_client()
        try:
            response = client.rerank(**self._request_kwargs(query, texts))
        except Exception as exc:
            error = self._translate(exc)
            if error is exc:
                raise
            raise error from (exc if error.status_code is None else None)
        return self._entries(response)

    async def _asend(self, query: str, texts: Sequence[str]) -> list[tuple[object, object]]:
        client, _ = self._aclients.get()
        try:
            response = await client.rerank(**self._request_kwargs(query, texts))
        except Exception as exc:
            error = self._translate(exc)
            if error is exc:
                raise
            raise error from (exc if error.status_code is None else None)
        return self._entries(response)

    def close(self) -> None:
        """Close the sync HTTP client and the thread pool (async clients: :meth:`aclose` in their loop)."""
        self._http.close()
        self._client = None
        super().close()

    def __repr__(self) -> str:
        return f"CohereBackend(model={self.model!r}, base_url={self.base_url!r}, api_key=***)"

"""HTTP details every remote back end shares: which failures are worth retrying, ``Retry-After``, secrets,
and checking that an answer is a valid ranking of what was sent.

Status codes: 408, 425, 429, 500, 502, 503, 504 (and Cohere's 499, a request the server dropped) are
retryable; every other 4xx and 5xx is not (a bad key, a bad request, a payload the server will always
refuse). Timeouts and transport errors (refused or dropped connections) are retryable: reranking is
read-only, so a request is always safe to send again.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import numbers
import re
import time
import urllib.parse
from collections.abc import Iterable, Mapping

from rerank_core._validation import check_text, finite_float
from rerank_core.errors import (
    BackendError,
    InvalidResponseError,
    NonRetryableBackendError,
    ResponseTooLargeError,
    RetryableBackendError,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "RETRYABLE_STATUS",
    "ResponseTooLargeError",
    "Secret",
    "check_encodable",
    "check_ranking",
    "error_for_status",
    "error_for_transport",
    "excerpt",
    "fingerprint_headers",
    "fingerprint_json",
    "parse_json",
    "parse_retry_after",
    "split_url_credentials",
]

#: The default cap on a decoded answer (``max_response_bytes``): 8 MiB, far above the largest legitimate
#: answer (1,000 results of a rerank request are about 60 KB; a chat completion with log-probabilities of
#: a few thousand tokens is well under 1 MB).
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


RETRYABLE_STATUS = frozenset({408, 425, 429, 499, 500, 502, 503, 504})


class Secret:
    """A credential that never shows in a repr, a log line or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the secret replaced by ``***``."""
        return text.replace(self._value, "***") if self._value else text

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|password|passwd|cookie|credential|signature", re.I)


def fingerprint_headers(headers: Mapping[str, str]) -> str:
    """Headers as a stable, secret-free piece of a fingerprint: ``name=value`` sorted by name, where the
    value of every header that may carry a credential (a name containing ``auth``, ``key``, ``token``,
    ``secret``, ``password``, ``cookie``, ``credential`` or ``signature``: ``Authorization``,
    ``api-key``, ``X-Api-Key``, ``Cookie``, ...) is replaced by the first 12 hex digits of its SHA-256."""
    parts = []
    for name, value in sorted((str(k).lower(), str(v)) for k, v in headers.items()):
        if _CREDENTIAL_HEADER.search(name):
            value = "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        parts.append(f"{name}={value}")
    return ",".join(parts)


def fingerprint_json(value: object) -> str:
    """A JSON value (``extra_body``) as a stable piece of a fingerprint, credential-like keys hashed as in
    :func:`fingerprint_headers`."""

    def clean(item: object) -> object:
        if isinstance(item, Mapping):
            return {
                str(k): (
                    "sha256:" + hashlib.sha256(repr(v).encode("utf-8", "surrogatepass")).hexdigest()[:12]
                    if _CREDENTIAL_HEADER.search(str(k))
                    else clean(v)
                )
                for k, v in item.items()
            }
        if isinstance(item, list | tuple):
            return [clean(v) for v in item]
        return item

    return json.dumps(clean(value), sort_keys=True, default=repr, ensure_ascii=True)


def split_url_credentials(url: str) -> tuple[str, str, tuple[str, str] | None]:
    """``(url without credentials, url for display, (user, password) or None)``.

    A URL such as ``http://user:KEY@host/v1`` must never reach a repr, a fingerprint, an error or httpx's
    log line: the client gets the credentials as HTTP basic auth and the URL without them; what is shown
    is ``http://user:***@host/v1``."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    clean = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    user = urllib.parse.unquote(parts.username or "")
    shown_user = urllib.parse.quote(user, safe="") if user else ""
    shown = urllib.parse.urlunsplit(parts._replace(netloc=f"{shown_user}:***@{netloc}"))
    return clean, shown, (user, urllib.parse.unquote(parts.password or ""))


def check_encodable(query: str, texts: Iterable[str], *, documents: str = "candidates") -> None:
    """Raise :class:`InvalidInputError` naming the argument when the query or a text cannot be sent as
    UTF-8 (a lone surrogate such as ``"\\ud800"``): retrying can never help, so it is never retried."""
    for argument, text in (("query", query), *((f"{documents}[{i}]", t) for i, t in enumerate(texts))):
        if isinstance(text, str):  # not a string: the core's validation says so
            check_text(text, argument)


def parse_json(
    text: str | bytes, *, backend: str, status: int | None, secret: Secret | None = None
) -> object:
    """A JSON answer, or :class:`InvalidResponseError` for anything unparseable: malformed JSON, a bad
    encoding, nesting too deep for the parser (``RecursionError``), a number it cannot hold."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError, OverflowError, MemoryError) as exc:
        shown = text if isinstance(text, str) else text[:400].decode("utf-8", "replace")
        reason = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        raise InvalidResponseError(
            f"malformed JSON ({reason}, HTTP {status}): {excerpt(shown[:400], secret)}",
            backend=backend,
            status_code=status,
        ) from None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (decimals accepted) or an HTTP date.
    ``None`` when absent or unparseable; never negative."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def excerpt(text: str, secret: Secret | None = None, limit: int = 200) -> str:
    """A short, single-line, secret-free piece of a server's answer for an error message."""
    text = " ".join(str(text).split())
    if secret is not None:
        text = secret.scrub(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_for_status(
    status: int,
    headers: Mapping[str, str] | None,
    body: object,
    *,
    backend: str,
    secret: Secret | None = None,
) -> BackendError:
    """The typed error for a non-2xx answer (retryable or not, with ``Retry-After`` when given)."""
    detail = excerpt(body if isinstance(body, str) else repr(body), secret)
    message = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status in RETRYABLE_STATUS:
        retry_after = None
        if headers is not None:
            lowered = {k.lower(): v for k, v in headers.items()}
            retry_after = parse_retry_after(lowered.get("retry-after"))
        return RetryableBackendError(message, backend=backend, status_code=status, retry_after=retry_after)
    hint = {
        401: " (check the API key)",
        403: " (the key is not allowed to use this model or endpoint)",
        404: " (check base_url and model)",
        413: " (too many or too long documents per request: lower max_documents_per_request)",
    }.get(status, "")
    return NonRetryableBackendError(message + hint, backend=backend, status_code=status)


def error_for_transport(exc: BaseException, *, backend: str, timeout: float | None) -> BackendError | None:
    """The typed error for an httpx timeout or transport failure, or ``None`` if ``exc`` is neither."""
    import httpx

    from rerank_core.remote._transport import try_cut_by

    if isinstance(exc, httpx.TimeoutException):
        cut_by = try_cut_by()  # the call's deadline, when it (not ``timeout``) ended the try
        return RetryableBackendError(
            f"timed out: {cut_by} ({type(exc).__name__})"
            if cut_by
            else f"timed out after {timeout}s ({type(exc).__name__})"
            if timeout
            else f"timed out ({type(exc).__name__})",
            backend=backend,
        )
    if isinstance(exc, httpx.TransportError):
        return RetryableBackendError(f"connection failed ({type(exc).__name__}: {exc})", backend=backend)
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_ranking(entries: Iterable[tuple[object, object]], n: int, *, backend: str) -> list[float]:
    """One score per document sent, in the order sent, from a server's ``(index, score)`` entries.

    Raises :class:`InvalidResponseError` unless every index is an int in ``range(n)``, none repeats, every
    document has one, and every score is a finite number: a partial or shifted answer is never turned
    into a ranking.
    """
    scores: list[float | None] = [None] * n
    count = 0
    for index, score in entries:
        count += 1
        if not _is_int(index):
            raise InvalidResponseError(
                f"result index {excerpt(repr(index), limit=60)} is not an integer", backend=backend
            )
        i = int(index)  # type: ignore[call-overload]
        if not 0 <= i < n:
            raise InvalidResponseError(
                f"result index {excerpt(str(i), limit=60)} is out of range for {n} documents", backend=backend
            )
        if scores[i] is not None:
            raise InvalidResponseError(f"result index {i} appears more than once", backend=backend)
        value = finite_float(score)  # None also for an integer too large for a float (401 digits)
        if value is None:
            raise InvalidResponseError(
                f"score {excerpt(repr(score), limit=60)} of document {i} is not a finite number",
                backend=backend,
            )
        scores[i] = value
    if count != n:
        missing = [i for i, s in enumerate(scores) if s is None]
        raise InvalidResponseError(
            f"got {count} results for {n} documents (missing indices {missing[:10]})", backend=backend
        )
    return scores  # type: ignore[return-value]


def entries_from_json(
    items: object, index_key: str, score_key: str, *, backend: str
) -> list[tuple[object, object]]:
    """``(index, score)`` pairs from a JSON list of objects, or :class:`InvalidResponseError`."""
    if not isinstance(items, list):
        raise InvalidResponseError(
            f"expected a list of results, got {type(items).__name__}: {excerpt(repr(items))}", backend=backend
        )
    entries = []
    for item in items:
        if not isinstance(item, Mapping) or index_key not in item or score_key not in item:
            raise InvalidResponseError(
                f"a result lacks {index_key!r} or {score_key!r}: {excerpt(repr(item))}", backend=backend
            )
        entries.append((item[index_key], item[score_key]))
    return entries

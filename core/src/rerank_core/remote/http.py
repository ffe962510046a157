"""HTTP details every remote back end shares: which failures are worth retrying, ``Retry-After``, secrets,
and checking that an answer is a valid ranking of what was sent.

Status codes: 408, 425, 429, 500, 502, 503, 504 (and Cohere's 499, a request the server dropped) are
retryable; every other 4xx and 5xx is not (a bad key, a bad request, a payload the server will always
refuse). Timeouts and transport errors (refused or dropped connections) are retryable: reranking is
read-only, so a request is always safe to send again.
"""

from __future__ import annotations

import email.utils
import math
import numbers
import time
from collections.abc import Iterable, Mapping

from rerank_core.errors import (
    BackendError,
    InvalidResponseError,
    NonRetryableBackendError,
    RetryableBackendError,
)

__all__ = [
    "RETRYABLE_STATUS",
    "Secret",
    "check_ranking",
    "error_for_status",
    "error_for_transport",
    "excerpt",
    "parse_retry_after",
]

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

    if isinstance(exc, httpx.TimeoutException):
        return RetryableBackendError(
            f"timed out after {timeout}s ({type(exc).__name__})"
            if timeout
            else f"timed out ({type(exc).__name__})",
            backend=backend,
        )
    if isinstance(exc, httpx.TransportError):
        return RetryableBackendError(f"connection failed ({type(exc).__name__}: {exc})", backend=backend)
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


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
            raise InvalidResponseError(f"result index {index!r} is not an integer", backend=backend)
        i = int(index)  # type: ignore[call-overload]
        if not 0 <= i < n:
            raise InvalidResponseError(f"result index {i} is out of range for {n} documents", backend=backend)
        if scores[i] is not None:
            raise InvalidResponseError(f"result index {i} appears more than once", backend=backend)
        if not _is_number(score) or not math.isfinite(float(score)):  # type: ignore[arg-type]
            raise InvalidResponseError(
                f"score {score!r} of document {i} is not a finite number", backend=backend
            )
        scores[i] = float(score)  # type: ignore[arg-type]
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

"""The one exception hierarchy of rerank-core.

```
RerankError
├── ArgumentError           (also ValueError)  an argument is bad; ``argument`` names it
│   ├── ConfigurationError                     a bad option given to a reranker or back end
│   └── InvalidInputError                      a bad query, candidate list or call argument
├── MissingDependencyError  (also ImportError) an optional extra is not installed
└── BackendError                               the back end failed while scoring
    ├── RetryableBackendError                  may succeed if tried again (timeouts, 429, 5xx)
    └── NonRetryableBackendError               will fail again (bad key, bad request)
        └── InvalidResponseError               a server answered, but not with a valid ranking
            └── ResponseTooLargeError          ... or with more bytes than max_response_bytes
```

``FailOpenWarning`` (a ``RuntimeWarning``) is issued when a reranker built with ``fail_open=True``
returns the input order because its back end failed.

Every error that is about an argument names it in ``argument`` and in its message.
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "BackendError",
    "ConfigurationError",
    "FailOpenWarning",
    "InvalidInputError",
    "InvalidResponseError",
    "MissingDependencyError",
    "NonRetryableBackendError",
    "RerankError",
    "ResponseTooLargeError",
    "RetryableBackendError",
]


class RerankError(Exception):
    """Base class of every error raised by rerank-core."""


class ArgumentError(RerankError, ValueError):
    """A bad argument; ``argument`` names it. Base of :class:`ConfigurationError` (an option given at
    construction) and :class:`InvalidInputError` (a value given to a call)."""

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class ConfigurationError(ArgumentError):
    """An option of a reranker or back end is invalid (raised at construction where possible)."""


class InvalidInputError(ArgumentError):
    """A call received a bad query, candidate list or argument. ``argument`` names it."""


class MissingDependencyError(RerankError, ImportError):
    """An optional dependency is missing; ``extra`` names the rerank-core extra that installs it."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'rerank-core[{extra}]'"
        )


class BackendError(RerankError):
    """The back end failed to score.

    - ``backend``: its fingerprint when known (never a secret).
    - ``status_code``: the HTTP status of a remote back end's answer, when there was one.
    - ``retry_after``: seconds the server asked to wait (``Retry-After``), when it said.
    - ``attempts``: how many times the request was tried before this error was raised.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        self.backend = backend
        self.status_code = status_code
        self.retry_after = retry_after
        self.attempts = attempts
        self.detail = message
        super().__init__(message if backend is None else f"[{backend}] {message}")


class RetryableBackendError(BackendError):
    """A failure that may go away when the same call is tried again."""

    retryable = True


class NonRetryableBackendError(BackendError):
    """A failure that will happen again on the same input (bad configuration, bad output)."""


class InvalidResponseError(NonRetryableBackendError):
    """A remote back end answered with something that is not a valid ranking of what was sent (malformed
    JSON, an index out of range or repeated, a missing or non-finite score). Never turned into a ranking.
    Retried like a transient failure when the back end's retry policy says so (reranking is read-only)."""


class FailOpenWarning(RuntimeWarning):
    """A back end failed and the reranker, built with ``fail_open=True``, returned the input order."""


class ResponseTooLargeError(InvalidResponseError):
    """A server's answer is larger than ``max_response_bytes`` after decoding (a huge body or a
    compression bomb). It is not read further and not retried (the same server would send it again;
    ``retry_may_help`` tells the retry policy so)."""

    retry_may_help = False

"""The server's own settings (the pipeline's are a :class:`~rerank_core.pipeline_config.PipelineConfig`)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rerank_core.errors import ConfigurationError

__all__ = ["DEFAULT_API_KEY_ENV", "ServeSettings"]

#: The bearer token's variable when ``api_key_env`` names none (authentication only when it is set).
DEFAULT_API_KEY_ENV = "RERANK_API_KEY"


@dataclass(frozen=True)
class ServeSettings:
    """How ``rerank serve`` listens, bounds and protects the pipeline. Every bound a client can push on
    has a limit here; each is checked once, when the settings are made.

    Args:
        host, port: where to listen (default loopback; ``0.0.0.0`` in a container).
        workers: worker processes, each with its own model and queue (uvicorn's ``--workers``).
        model_name: the name answered in ``"model"`` fields (default: the model's folder or id).
        max_documents: most documents in one request (Cohere's limit is 1,000); more is a 400 (413 on the
            TEI route, as TEI answers).
        max_body_bytes: largest request body; larger is a 413 before it is read whole.
        max_queue_pairs: most (query, document) pairs admitted per worker, in flight and waiting; a
            request that would pass it gets a 429 with ``Retry-After`` (from the recent throughput).
        max_queue_requests: most requests admitted per worker, in flight and waiting (429 past it).
        request_timeout_s: the deadline of one request: its body must arrive within it (a 408 past it) and
            its scoring must end within it (a 503 past it; its work is cancelled). A client's
            ``X-Request-Timeout`` header (seconds) can only shorten it.
        api_key_env: the environment variable holding the bearer token that every rerank route and
            ``/info`` then demand (``Authorization: Bearer <token>``, compared in constant time, never
            logged). ``None`` (default): ``RERANK_API_KEY`` when it is set and not empty, else no
            authentication. A variable named here must be set and not empty (a typo must not turn
            authentication off). ``/health``, ``/ready`` and ``/metrics`` stay open for probes and
            scrapers.
        max_connections: most open connections per worker; past it uvicorn answers 503 at once
            (uvicorn's ``limit_concurrency``).
        graceful_timeout_s: on SIGTERM, how long in-flight requests get to finish.
        access_log: write one JSON line per request to the ``rerank_core.serve.access`` logger (route,
            status, documents, milliseconds, request id; never a query, document or header value).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    model_name: str | None = None
    max_documents: int = 1000
    max_body_bytes: int = 8 * 1024 * 1024
    max_queue_pairs: int = 20_000
    max_queue_requests: int = 256
    request_timeout_s: float = 30.0
    api_key_env: str | None = None
    max_connections: int = 1024
    graceful_timeout_s: float = 30.0
    access_log: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ConfigurationError("serve.host", f"must be a host name or address, got {self.host!r}")
        if not _int(self.port) or not 0 <= self.port <= 65535:
            raise ConfigurationError("serve.port", f"must be an int in [0, 65535], got {self.port!r}")
        for name in (
            "workers",
            "max_documents",
            "max_body_bytes",
            "max_queue_pairs",
            "max_queue_requests",
            "max_connections",
        ):
            value = getattr(self, name)
            if not _int(value) or value < 1:
                raise ConfigurationError(f"serve.{name}", f"must be an int >= 1, got {value!r}")
        for name in ("request_timeout_s", "graceful_timeout_s"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ConfigurationError(f"serve.{name}", f"must be a number of seconds > 0, got {value!r}")
        if self.model_name is not None and (not isinstance(self.model_name, str) or not self.model_name):
            raise ConfigurationError(
                "serve.model_name", f"must be a non-empty string, got {self.model_name!r}"
            )
        if self.api_key_env is not None and (not isinstance(self.api_key_env, str) or not self.api_key_env):
            raise ConfigurationError(
                "serve.api_key_env", f"must be a variable name, got {self.api_key_env!r}"
            )
        if not isinstance(self.access_log, bool):
            raise ConfigurationError("serve.access_log", f"must be true or false, got {self.access_log!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, **overrides: Any) -> ServeSettings:
        """From a configuration file's ``serve`` table, then ``overrides`` (``None`` values ignored)."""
        values = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigurationError(
                f"serve.{unknown[0]}", f"is not a server setting; the settings are {', '.join(sorted(names))}"
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def api_key(self) -> str | None:
        """The bearer token (``None``: authentication off); a :class:`ConfigurationError` naming
        ``serve.api_key_env`` when the variable it names is unset or empty."""
        if self.api_key_env is None:
            return os.environ.get(DEFAULT_API_KEY_ENV) or None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigurationError(
                "serve.api_key_env",
                f"the variable {self.api_key_env} is unset or empty (authentication asked for)",
            )
        return key


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

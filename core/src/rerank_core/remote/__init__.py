"""What every remote back end shares: retries, client-side limits, HTTP error mapping, secrets, response
checks, and the base class that turns the core's queries into requests and back.

The concrete back ends live in :mod:`rerank_core.backends` (``CohereBackend``, ``RerankAPIBackend``);
a loopback server that speaks their protocols and injects faults, for tests and load tests, lives in
:mod:`rerank_core.testing`.
"""

from rerank_core.remote.base import RemoteBackend, plan_requests
from rerank_core.remote.http import Secret, check_ranking, parse_retry_after
from rerank_core.remote.limits import AsyncConcurrencyLimit, ConcurrencyLimit, RateLimiter
from rerank_core.remote.retry import RetryPolicy, acall_with_retries, call_with_retries
from rerank_core.remote.stats import RemoteStats

__all__ = [
    "AsyncConcurrencyLimit",
    "ConcurrencyLimit",
    "RateLimiter",
    "RemoteBackend",
    "RemoteStats",
    "RetryPolicy",
    "Secret",
    "acall_with_retries",
    "call_with_retries",
    "check_ranking",
    "parse_retry_after",
    "plan_requests",
]

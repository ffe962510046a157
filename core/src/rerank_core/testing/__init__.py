"""Test helpers shipped with rerank-core (standard library only): a loopback rerank server that speaks
Cohere v2, TEI and Jina and injects faults on demand, for testing remote back ends and what is built on
them without a network.

The load test built on it (``run_load``, ``load_backend``, the documented faults) is project tooling, not a
user-facing helper: it moved from ``rerank_core.testing.load`` to ``benchmarks/remote_load.py`` in the
restructure of issue 15."""

from rerank_core.testing.rerank_server import (
    FAULT_KINDS,
    HOSTILE_FAULTS,
    INVALID_RESPONSE_FAULTS,
    RETRYABLE_FAULTS,
    Fault,
    RerankServer,
    expected_order,
    relevance,
)

__all__ = [
    "FAULT_KINDS",
    "HOSTILE_FAULTS",
    "INVALID_RESPONSE_FAULTS",
    "RETRYABLE_FAULTS",
    "Fault",
    "RerankServer",
    "expected_order",
    "relevance",
]

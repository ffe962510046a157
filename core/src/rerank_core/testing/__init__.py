"""Test helpers shipped with rerank-core (standard library only): a loopback rerank server that speaks
Cohere v2, TEI and Jina and injects faults on demand, for testing remote back ends and what is built on
them without a network."""

from rerank_core.testing.rerank_server import (
    FAULT_KINDS,
    INVALID_RESPONSE_FAULTS,
    RETRYABLE_FAULTS,
    Fault,
    RerankServer,
    expected_order,
    relevance,
)

__all__ = [
    "FAULT_KINDS",
    "INVALID_RESPONSE_FAULTS",
    "RETRYABLE_FAULTS",
    "Fault",
    "RerankServer",
    "expected_order",
    "relevance",
]

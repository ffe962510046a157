"""Prometheus metrics of ``rerank serve`` (``GET /metrics``, the text exposition format).

Each app has its own registry (several apps in one process, as in tests, do not clash). With several
worker processes, ``rerank serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers
start, and a scrape of any worker then answers the sum over all of them (prometheus_client's multiprocess
mode: counters and histograms add up, the queue gauges are summed over live workers).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_PAIR_BUCKETS = (1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class Metrics:
    """The counters, histograms and gauges the app updates."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        gauge_mode = {"multiprocess_mode": "livesum"} if self.multiprocess else {}
        self.requests = Counter(
            "rerank_requests",
            "Rerank requests answered, by route and HTTP status",
            ["route", "status"],
            registry=registry,
        )
        self.errors = Counter(
            "rerank_errors",
            "Requests that failed, by kind (bad_request, too_large, unauthorized, overloaded, "
            "timeout, disconnected, not_ready, backend)",
            ["kind"],
            registry=registry,
        )
        self.latency = Histogram(
            "rerank_request_duration_seconds",
            "Time from a request's arrival to its answer",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.documents = Histogram(
            "rerank_request_documents",
            "Documents per rerank request",
            buckets=_PAIR_BUCKETS,
            registry=registry,
        )
        self.batch_pairs = Histogram(
            "rerank_batch_pairs",
            "Pairs per shared model batch (requests coalesced together)",
            buckets=_PAIR_BUCKETS,
            registry=registry,
        )
        self.batch_requests = Histogram(
            "rerank_batch_requests",
            "Requests per shared model batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )
        self.queue_pairs = Gauge(
            "rerank_queue_pairs",
            "Pairs admitted and not yet answered (in flight and waiting)",
            registry=registry,
            **gauge_mode,
        )
        self.queue_requests = Gauge(
            "rerank_queue_requests", "Requests admitted and not yet answered", registry=registry, **gauge_mode
        )
        self.ready = Gauge(
            "rerank_ready",
            "1 once the model is loaded and warm",
            registry=registry,
            **({"multiprocess_mode": "livemin"} if self.multiprocess else {}),
        )

    def close(self) -> None:
        """At a worker's exit: its live gauges leave the sums (prometheus_client's multiprocess mode)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())

    def observe_batch(self, calls: int, pairs: int) -> None:
        self.batch_requests.observe(calls)
        self.batch_pairs.observe(pairs)

    def exposition(self) -> tuple[bytes, str]:
        """The body and content type of a scrape."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry: Any = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

"""Load test of the remote back ends against the fault-injecting loopback server, with figures.

    python benchmarks/remote_load.py [--calls 500] [--concurrency 16] [--fault-rate 0.2]

For each back end and policy (Cohere SDK async with ``raise``, TEI sync with ``fail_open``, Jina async
with ``fail_open``) it makes ``--calls`` rerank calls ``--concurrency`` at a time while the server fails
``--fault-rate`` of the HTTP requests at random (429 with Retry-After, 500, 503, answers slower than the
timeout, dropped connections, malformed JSON, out-of-range and duplicated indices), checks every
outcome, and prints a Markdown table. The same run, with assertions, is
``tests/benchmarks/test_remote_load.py``.

``run_load`` makes ``calls`` rerank calls, ``concurrency`` at a time (threads for ``mode="sync"``, tasks
for ``mode="async"``), each over a random subset of a document pool, while the server
(:class:`rerank_core.testing.RerankServer`) fails a share of requests at random. Every call's outcome is
checked, not just counted:

- a ranking must be exactly the server's ranking of the documents sent (:func:`expected_order`), each
  document once, none lost;
- a raised error must be one the back end documents for exhausted retries
  (:class:`~rerank_core.errors.RetryableBackendError` or :class:`~rerank_core.errors.InvalidResponseError`);
- with ``fail_open``, a failed call must return every document once, in input order, flagged
  ``reranked=False``.

Anything else is counted in ``LoadReport.violations`` (which the test asserts is empty). Until the
restructure of issue 15 the harness was ``rerank_core.testing.load``, inside the wheel; it is load-test
tooling, so it lives here, outside every wheel.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rerank_core.errors import FailOpenWarning, InvalidResponseError, RetryableBackendError
from rerank_core.remote.base import RemoteBackend
from rerank_core.remote.retry import RetryPolicy
from rerank_core.reranker import Reranker
from rerank_core.testing import Fault, RerankServer, expected_order

__all__ = ["LOAD_FAULTS", "RUNS", "LoadReport", "load_backend", "main", "run_load"]

LOAD_FAULTS = (
    Fault("http_429", retry_after=0.05),
    Fault("http_500"),
    Fault("http_503"),
    Fault("slow", delay=1.0),
    Fault("drop"),
    Fault("malformed"),
    Fault("out_of_range"),
    Fault("duplicate"),
)
"""The faults of the documented load test: every retryable kind and the invalid answers."""


def load_backend(kind: str, server: RerankServer, *, api_key: str = "k") -> RemoteBackend:
    """The back end of the documented load test for ``kind`` (``cohere``, ``tei`` or ``jina``): 4 tries with
    10 ms initial backoff, a 0.5 s timeout, 8 requests in flight, at most 32 documents a request."""
    from rerank_core.backends.cohere import CohereBackend
    from rerank_core.backends.rerank_api import RerankAPIBackend

    options: dict[str, Any] = {
        "retry": RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.1),
        "timeout": 0.5,
        "max_concurrency": 8,
        "max_documents_per_request": 32,
    }
    if kind == "cohere":
        return CohereBackend("m", api_key=api_key, base_url=server.url, **options)
    return RerankAPIBackend(server.url, protocol=kind, api_key=api_key, **options)


_WORDS = (
    "retrieval",
    "rerank",
    "passage",
    "query",
    "document",
    "score",
    "model",
    "index",
    "search",
    "ranking",
    "answer",
    "context",
    "vector",
    "sparse",
    "dense",
    "hybrid",
    "fusion",
    "latency",
    "token",
    "batch",
    "server",
    "cohere",
    "relevance",
    "judge",
    "cascade",
)


@dataclass
class LoadReport:
    """What a load run did and how every call ended."""

    calls: int
    concurrency: int
    mode: str
    fail_open: bool
    seconds: float
    requests: int
    faults_injected: int
    retries: int
    ok: int
    failed_raised: int
    failed_open: int
    documents_sent: int
    documents_returned: int
    latency_p50_ms: float
    latency_p95_ms: float
    errors: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str]]:
        """(figure, value) rows for a table."""
        return [
            ("calls (concurrency)", f"{self.calls} ({self.concurrency}, {self.mode})"),
            ("policy", "fail_open" if self.fail_open else "raise"),
            ("HTTP requests", str(self.requests)),
            (
                "faults injected",
                f"{self.faults_injected} ({self.faults_injected / max(self.requests, 1):.1%})",
            ),
            ("retries", str(self.retries)),
            ("calls ranked correctly", str(self.ok)),
            ("calls failed: raised documented error", str(self.failed_raised)),
            ("calls failed: input order, flagged", str(self.failed_open)),
            ("documents sent / returned", f"{self.documents_sent} / {self.documents_returned}"),
            ("lost or duplicated documents, wrong rankings", str(len(self.violations))),
            ("wall time", f"{self.seconds:.2f} s"),
            ("call latency p50 / p95", f"{self.latency_p50_ms:.1f} / {self.latency_p95_ms:.1f} ms"),
        ]


def _check(query: str, docs: list[str], outcome: Any, fail_open: bool) -> tuple[str, str | None]:
    """(kind, violation) for one call: kind is ok / raised / open."""
    if isinstance(outcome, BaseException):
        if isinstance(outcome, RetryableBackendError | InvalidResponseError):
            return "raised", None
        return "raised", f"undocumented error {type(outcome).__name__}: {outcome}"
    indices = outcome.indices
    if sorted(indices) != list(range(len(docs))):
        return "ok", f"lost or duplicated documents: {indices}"
    if outcome.error is not None:
        if not fail_open:
            return "open", "a failed call returned results without fail_open"
        if indices != list(range(len(docs))) or any(r.reranked for r in outcome):
            return "open", "fail-open results not in input order or not flagged"
        return "open", None
    if indices != expected_order(query, docs):
        return "ok", f"wrong ranking for {query!r}"
    if any(r.text != docs[r.index] for r in outcome):
        return "ok", "a result's text does not match its index"
    return "ok", None


def run_load(
    backend: RemoteBackend,
    server: RerankServer,
    *,
    calls: int = 500,
    concurrency: int = 16,
    fault_rate: float = 0.2,
    faults: Sequence[Any] = LOAD_FAULTS,
    documents: tuple[int, int] = (5, 60),
    mode: str = "async",
    fail_open: bool = False,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> LoadReport:
    """Run the load and check every outcome (see the module docstring)."""
    if mode not in ("sync", "async"):
        raise ValueError(f"mode: must be 'sync' or 'async', got {mode!r}")
    rng = random.Random(seed)
    pool = [" ".join(rng.choices(_WORDS, k=rng.randint(8, 30))) + f" #{i}" for i in range(400)]
    work = []
    for _ in range(calls):
        query = " ".join(rng.sample(_WORDS, 3))
        work.append((query, rng.sample(pool, rng.randint(*documents))))
    reranker = Reranker(backend, fail_open=fail_open)
    server.reset()
    backend.stats.reset()
    server.random_faults(fault_rate, faults, seed=seed)
    latencies: list[float] = [0.0] * calls
    outcomes: list[Any] = [None] * calls

    def one(i: int) -> None:
        query, docs = work[i]
        start = clock()
        try:
            outcomes[i] = reranker.rerank(query, docs)
        except Exception as exc:  # checked below: only documented errors pass
            outcomes[i] = exc
        latencies[i] = clock() - start

    async def aone(i: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            query, docs = work[i]
            start = clock()
            try:
                outcomes[i] = await reranker.arerank(query, docs)
            except Exception as exc:
                outcomes[i] = exc
            latencies[i] = clock() - start

    async def arun() -> None:
        gate = asyncio.Semaphore(concurrency)
        await asyncio.gather(*(aone(i, gate) for i in range(calls)))
        await backend.aclose()

    began = clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FailOpenWarning)
        if mode == "sync":
            with ThreadPoolExecutor(concurrency) as pool_executor:
                list(pool_executor.map(one, range(calls)))
        else:
            asyncio.run(arun())
    seconds = clock() - began
    server.random_faults(0, ())

    kinds: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    violations: list[str] = []
    returned = ok = 0
    for (query, docs), outcome in zip(work, outcomes, strict=True):
        kind, violation = _check(query, docs, outcome, fail_open)
        kinds[kind] += 1
        if isinstance(outcome, BaseException):
            errors[type(outcome).__name__] += 1
        else:
            returned += len(outcome)
            if outcome.error is not None:
                errors[outcome.error.split(":", 1)[0]] += 1
        if violation is not None:
            violations.append(violation)
        elif kind == "ok":
            ok += 1
    stats = backend.stats.snapshot()
    ordered = sorted(latencies)
    return LoadReport(
        calls=calls,
        concurrency=concurrency,
        mode=mode,
        fail_open=fail_open,
        seconds=seconds,
        requests=server.counts["requests"],
        faults_injected=server.faults_injected,
        retries=stats.get("retries", 0),
        ok=ok,
        failed_raised=kinds["raised"],
        failed_open=kinds["open"],
        documents_sent=sum(len(d) for _, d in work),
        documents_returned=returned,
        latency_p50_ms=1000 * statistics.median(ordered),
        latency_p95_ms=1000 * ordered[int(0.95 * (len(ordered) - 1))],
        errors=errors,
        faults=Counter({k[6:]: v for k, v in server.counts.items() if k.startswith("fault:")}),
        violations=violations,
    )


RUNS = (("cohere", "async", False), ("tei", "sync", True), ("jina", "async", True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    reports: list[tuple[str, LoadReport]] = []
    for kind, mode, fail_open in RUNS:
        with RerankServer(api_key="k", max_documents=32) as server:
            backend = load_backend(kind, server)
            report = run_load(
                backend,
                server,
                calls=args.calls,
                concurrency=args.concurrency,
                fault_rate=args.fault_rate,
                mode=mode,
                fail_open=fail_open,
                seed=args.seed,
            )
            backend.close()
        reports.append((f"{kind} ({mode})", report))
    names = [name for name, _ in reports]
    print("| figure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for i, (figure, _) in enumerate(reports[0][1].rows()):
        print(f"| {figure} | " + " | ".join(report.rows()[i][1] for _, report in reports) + " |")
    for name, report in reports:
        print(f"\n{name}: faults by kind {dict(report.faults)}; errors {dict(report.errors)}")
    if any(report.violations for _, report in reports):
        raise SystemExit("violations: " + "; ".join(v for _, r in reports for v in r.violations[:5]))


if __name__ == "__main__":
    main()

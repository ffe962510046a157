"""A bounded soak of the remote back ends (issue 16): a few thousand calls across many event loops
(``asyncio.run`` per batch), sync callers and forked worker processes, against the loopback server with
faults injected at random (5xx, 429, dropped connections, malformed and hostile answers, gzip bombs,
trickled bodies past the timeout). Every result is checked: the server's exact order, or the input order
flagged by fail-open (never a wrong ranking); open file descriptors and RSS stay roughly flat.

Bounded: a fixed number of calls, each bounded by ``timeout`` and ``deadline``; worker processes are
joined with a timeout. About 10-20 s on 2 cores.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import random
import time
import warnings
from typing import Any

import pytest

from rerank_core import Reranker
from rerank_core.backends.cohere import CohereBackend
from rerank_core.backends.rerank_api import RerankAPIBackend
from rerank_core.errors import FailOpenWarning
from rerank_core.remote import RemoteBackend, RetryPolicy
from rerank_core.testing import Fault, RerankServer, expected_order

pytestmark = pytest.mark.slow

FAULTS = [
    Fault("http_429", retry_after=0.01),
    Fault("http_500"),
    Fault("http_503"),
    Fault("drop"),
    Fault("malformed"),
    Fault("out_of_range"),
    Fault("duplicate"),
    Fault("non_finite"),
    Fault("huge_int"),
    Fault("deep_json"),
    Fault("gzip_bomb", size=32 * 1024 * 1024),
    Fault("trickle_body", interval=0.05, delay=1.0),
]
WORDS = [
    "sparse",
    "dense",
    "hybrid",
    "retrieval",
    "fusion",
    "ranking",
    "query",
    "document",
    "passage",
    "model",
    "score",
]
QUERIES = [" ".join(WORDS[i : i + 3]) for i in range(0, 9, 2)]
POOL = [f"{WORDS[i % 11]} {WORDS[(i * 7) % 11]} note {i}" for i in range(60)]
ASYNC_BATCHES = 20
CALLS_PER_BATCH = 60
SYNC_CALLS = 240
WORKERS = 2
WORKER_CALLS = 300


def _backends(url: str) -> list[RemoteBackend]:
    options: dict[str, Any] = {
        "timeout": 0.4,
        "deadline": 1.5,
        "retry": RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05),
        "max_response_bytes": 1 << 20,
    }
    return [
        CohereBackend("soak", base_url=url, api_key="k", **options),
        RerankAPIBackend(url, protocol="tei", **options),
        RerankAPIBackend(url, protocol="jina", model="soak", **options),
    ]


def _job(rng: random.Random) -> tuple[str, list[str]]:
    return rng.choice(QUERIES), rng.sample(POOL, 8)  # the same count everywhere: a mix-up would pass checks


def _check(response: Any, query: str, docs: list[str], tally: dict[str, int]) -> None:
    if response.error is None:
        tally["ok" if response.indices == expected_order(query, docs) else "wrong"] += 1
    elif response.indices == list(range(len(docs))) and not any(r.reranked for r in response):
        tally["fail_open"] += 1
    else:
        tally["wrong"] += 1


def _sync_calls(rerankers: list[Reranker], n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    tally = {"ok": 0, "fail_open": 0, "wrong": 0}
    for i in range(n):
        query, docs = _job(rng)
        _check(rerankers[i % len(rerankers)].rerank(query, docs), query, docs, tally)
    return tally


async def _async_batch(rerankers: list[Reranker], n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    jobs = [(rerankers[i % len(rerankers)], *_job(rng)) for i in range(n)]
    responses = await asyncio.gather(*(r.arerank(q, d) for r, q, d in jobs))
    tally = {"ok": 0, "fail_open": 0, "wrong": 0}
    for (_, query, docs), response in zip(jobs, responses, strict=True):
        _check(response, query, docs, tally)
    return tally


def _worker(rerankers: list[Reranker], seed: int, conn: Any) -> None:
    try:
        warnings.simplefilter("ignore", FailOpenWarning)
        tally = _sync_calls(rerankers, WORKER_CALLS // 2, seed)
        for batch in range(3):
            more = asyncio.run(_async_batch(rerankers, WORKER_CALLS // 6, seed * 100 + batch))
            tally = {k: tally[k] + more[k] for k in tally}
        conn.send(("ok", tally))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_soak_loops_threads_and_forked_workers_under_faults() -> None:
    warnings.simplefilter("ignore", FailOpenWarning)
    start = time.monotonic()
    with RerankServer() as server:
        backends = _backends(server.url)
        rerankers = [Reranker(b, fail_open=True) for b in backends]
        # warm up (clients, pools, the server's gzip bomb), then measure
        _sync_calls(rerankers, 6, seed=0)
        asyncio.run(_async_batch(rerankers, 6, seed=0))
        server.random_faults(0.12, FAULTS, seed=16)
        asyncio.run(_async_batch(rerankers, CALLS_PER_BATCH, seed=1))
        gc.collect()
        fds, rss = _fds(), _rss_mb()
        totals = {"ok": 0, "fail_open": 0, "wrong": 0}

        ctx = multiprocessing.get_context("fork")
        workers = []
        for w in range(WORKERS):
            here, there = ctx.Pipe(duplex=False)
            process = ctx.Process(target=_worker, args=(rerankers, 1000 + w, there))
            process.start()
            there.close()
            workers.append((process, here))

        for batch in range(ASYNC_BATCHES):
            tally = asyncio.run(_async_batch(rerankers, CALLS_PER_BATCH, seed=10 + batch))
            totals = {k: totals[k] + tally[k] for k in totals}
        tally = _sync_calls(rerankers, SYNC_CALLS, seed=2)
        totals = {k: totals[k] + tally[k] for k in totals}

        for process, here in workers:
            process.join(timeout=90)
            if process.is_alive():
                process.kill()
                process.join()
            status, value = here.recv() if here.poll(1) else ("error", "no answer")
            assert status == "ok", value
            totals = {k: totals[k] + value[k] for k in totals}

        gc.collect()
        grew_fds, grew_rss = _fds() - fds, _rss_mb() - rss
        faults = server.faults_injected
    calls = ASYNC_BATCHES * CALLS_PER_BATCH + SYNC_CALLS + WORKERS * WORKER_CALLS
    print(
        f"soak: {sum(totals.values())} calls in {time.monotonic() - start:.1f}s, {totals}, "
        f"{faults} faults, fds {grew_fds:+d}, RSS {grew_rss:+.1f} MB"
    )
    assert sum(totals.values()) == calls
    assert totals["wrong"] == 0
    assert totals["ok"] > calls // 2 and faults > 100
    assert grew_fds <= 8, grew_fds
    assert grew_rss < 60, grew_rss
    for backend in backends:
        backend.close()

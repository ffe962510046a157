"""Coalescing: many concurrent ``arerank`` calls, with and without shared batches, side by side.

    python benchmarks/coalescing.py [--model models/reference-reranker] [--calls 32] [--candidates 20]
                                    [--repeats 3] [--dtype float32] [--data ../shared/data/scifact]

Each call is one SciFact test query with its BM25 top-``--candidates`` abstracts (the shape of a web
server's or an agent fleet's traffic: many small requests at once). Both rerankers share one back end (one
model, one worker thread); the two settings alternate within each repeat. Prints wall time for all calls
(median over repeats), throughput, per-call latency p50/p95, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORKSPACE = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_SHARED_DIR", WORKSPACE.parent / "shared"))


async def one_round(reranker, work) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []

    async def call(query: str, docs: list[str]) -> None:
        start = time.perf_counter()
        await reranker.arerank(query, docs)
        latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(call(q, d) for q, d in work))
    return time.perf_counter() - began, latencies


def main() -> None:
    from rerank_core import Reranker
    from rerank_core.backends import CrossEncoderBackend
    from rerank_core.coalescing import Coalescing
    from rerank_core.eval.beir import corpus_texts, load_beir
    from rerank_core.eval.bm25 import BM25Retriever

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(WORKSPACE / "models" / "reference-reranker"))
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "scifact")
    parser.add_argument("--calls", type=int, default=32)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    args = parser.parse_args()

    dataset = load_beir(args.data, split="test")
    texts = corpus_texts(dataset)
    bm25 = BM25Retriever(list(texts), list(texts.values()))
    qids = list(dataset.queries)[: args.calls]
    hits = bm25.retrieve([dataset.queries[q] for q in qids], k=args.candidates)
    work = [(dataset.queries[q], [texts[d] for d, _ in h]) for q, h in zip(qids, hits, strict=True)]

    backend = CrossEncoderBackend(args.model, dtype=args.dtype, device="cpu")
    plain = Reranker(backend)
    shared = Reranker(backend, coalesce=Coalescing(max_wait_ms=args.max_wait_ms))
    asyncio.run(one_round(plain, work[:2]))  # load the model, warm up

    results: dict[str, list[tuple[float, list[float]]]] = {"off": [], "on": []}
    for _ in range(args.repeats):
        for name, reranker in (("off", plain), ("on", shared)):
            results[name].append(asyncio.run(one_round(reranker, work)))

    pairs = sum(len(d) for _, d in work)
    print(
        f"{args.calls} concurrent calls x {args.candidates} candidates ({pairs} pairs), {args.model}, "
        f"{args.dtype}, {args.repeats} interleaved repeats, {os.cpu_count()} CPUs"
    )
    print("| coalescing | wall time (median) | pairs/s | call latency p50 / p95 |")
    print("|---|---|---|---|")
    medians = {}
    for name in ("off", "on"):
        walls = [w for w, _ in results[name]]
        lat = sorted(x for _, ls in results[name] for x in ls)
        medians[name] = statistics.median(walls)
        p50, p95 = lat[len(lat) // 2], lat[int(0.95 * (len(lat) - 1))]
        print(
            f"| {name} | {medians[name]:.2f} s | {pairs / medians[name]:.1f} | "
            f"{1000 * p50:.0f} / {1000 * p95:.0f} ms |"
        )
    print(f"\nthroughput ratio (on / off): {medians['off'] / medians['on']:.2f}x")


if __name__ == "__main__":
    main()

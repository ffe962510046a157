"""Batch throughput: ``rerank batch`` on the local engine and on a local Ray, side by side.

Builds the input from a BEIR folder (default: SciFact's test claims, which the reference reranker was not
trained on): the first ``--queries`` queries, each with its BM25 top ``--top-k`` (text and BM25 score),
as ``rerank batch`` JSONL rows; then ranks it with each engine and prints a table: whole-run seconds and
rows/s (model loading, and for Ray the actors' start, included), seconds to the first written rows, the
steady rate after them, and the largest score difference from the local engine.

    python benchmarks/batch_throughput.py --queries 200 --top-k 20 --actors 2
    python benchmarks/batch_throughput.py --queries 60 --engines local,ray --json out.json

Needs the ``eval`` extra (BM25) and, for Ray, the ``ray`` extra. The local Ray is started here, once,
with ``--actors + 1`` CPUs (its start is timed apart from the runs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rerank_core.batch import read_output, run_batch  # after the offline switches
from rerank_core.eval.beir import corpus_texts, load_beir
from rerank_core.eval.bm25 import BM25Retriever
from rerank_core.pipeline_config import PipelineConfig

WORKSPACE = Path(__file__).resolve().parents[1]
DEFAULT_DATA = WORKSPACE.parent / "shared" / "data" / "scifact"
DEFAULT_MODEL = WORKSPACE / "models" / "reference-reranker"


def build_input(data: Path, split: str, queries: int, top_k: int, target: Path) -> int:
    """Write ``target`` (JSONL rows of ``rerank batch``); returns the number of rows."""
    dataset = load_beir(data, split)
    texts = corpus_texts(dataset)
    ids = list(texts)
    retriever = BM25Retriever(ids, [texts[i] for i in ids])
    chosen = list(dataset.queries.items())[:queries]
    hits = retriever.retrieve([q for _, q in chosen], k=top_k)
    with target.open("w", encoding="utf-8") as out:
        for (qid, query), found in zip(chosen, hits, strict=True):
            candidates = [{"id": d, "text": texts[d], "score": float(s)} for d, s in found]
            out.write(json.dumps({"query_id": qid, "query": query, "candidates": candidates}) + "\n")
    return len(chosen)


def max_difference(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    left = {r["query_id"]: {c["id"]: c["score"] for c in r["ranked"] or ()} for r in a}
    worst = 0.0
    for row in b:
        mine = left[row["query_id"]]
        for c in row["ranked"] or ():
            worst = max(worst, abs(mine[c["id"]] - c["score"]))
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a BEIR folder (default: shared SciFact)")
    p.add_argument("--split", default="test", help="the split whose queries are used (default: test)")
    p.add_argument(
        "--model", default=str(DEFAULT_MODEL), help="the reranker (default: the reference reranker)"
    )
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--engines", default="local,ray", help="comma-separated: local, ray")
    p.add_argument("--actors", type=int, default=2, help="Ray actors (default: 2)")
    p.add_argument("--batch-rows", type=int, default=8, help="rows per rerank_many call (default: 8)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    config = PipelineConfig(model=args.model)
    with tempfile.TemporaryDirectory(prefix="batch-throughput-") as tmp:
        work = Path(tmp)
        src = work / "input.jsonl"
        rows = build_input(args.data, args.split, args.queries, args.top_k, src)
        results: list[dict[str, Any]] = []
        outputs: dict[str, list[dict[str, Any]]] = {}
        ray_start = None
        for engine in engines:
            if engine == "ray":
                import ray

                started = time.perf_counter()
                ray.init(num_cpus=args.actors + 1, include_dashboard=False, log_to_driver=False)
                ray_start = time.perf_counter() - started
            summary = run_batch(
                src,
                work / f"out-{engine}.jsonl",
                config,
                engine=engine,
                batch_rows=args.batch_rows,
                actors=args.actors,
                progress=False,
            )
            outputs[engine] = read_output(work / f"out-{engine}.jsonl")
            steady, first = summary.steady_rows_per_second, summary.first_seconds
            results.append(
                {
                    "engine": engine if engine == "local" else f"ray ({args.actors} actors)",
                    "rows": summary.rows,
                    "errors": summary.errors,
                    "seconds": round(summary.seconds, 2),
                    "rows_per_s": round(summary.rows_per_second, 2),
                    "first_rows_s": None if first is None else round(first, 2),
                    "steady_rows_per_s": None if steady is None else round(steady, 2),
                    "max_score_diff_vs_local": None
                    if "local" not in outputs
                    else max_difference(outputs["local"], outputs[engine]),
                }
            )
        if ray_start is not None:
            import ray

            ray.shutdown()
    cpus = os.cpu_count()
    print(
        f"\n{rows} queries x {args.top_k} BM25 candidates ({args.data.name} {args.split}), {args.model}, "
        f"--batch-rows {args.batch_rows}, {cpus} CPUs"
        + (f", Ray start {ray_start:.1f} s" if ray_start else "")
    )
    head = ["engine", "rows", "errors", "seconds", "rows_per_s", "first_rows_s", "steady_rows_per_s"]
    head.append("max_score_diff_vs_local")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        print("| " + " | ".join("" if r[h] is None else str(r[h]) for h in head) + " |")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"rows": rows, "ray_start_s": ray_start, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""nDCG@10 of an LLM judge on a SciFact test slice: BM25 order vs pointwise vs listwise, with the LLM calls
and tokens each spends per query on the same candidates.

BM25 (bm25s, the project's first stage) retrieves the top ``--top-k`` for the first ``--queries`` test
queries; each judge mode reranks exactly those candidates (input order = BM25 order, which the listwise
sliding window starts from). Default model: the real SmolLM2-135M-Instruct (Q4_1 GGUF) in
``../shared/models``, run in-process on the CPU with transformers.

    python benchmarks/llm_judge_scifact.py --queries 30 --top-k 20 --json out.json

Modes: ``pointwise`` (P(yes) from the first token's log-probabilities, one call per candidate), ``graded``
(0-3 grades parsed from text, ``--batch-size`` candidates per call), ``listwise`` (RankGPT sliding window,
``--window`` / ``--step``). Passages are cut to ``--max-passage-chars`` for every mode alike (counted in
``llm_truncated``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_SHARED_DIR", WORKSPACE.parent / "shared"))
DEFAULT_MODEL = SHARED / "models" / "SmolLM2-135M-Instruct-Q4_1-GGUF"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class UsageRecorder:
    """Wraps a Reranker for ``run_eval`` and sums each response's usage (LLM calls, tokens)."""

    def __init__(self, reranker: object) -> None:
        self.reranker = reranker
        self.usage: Counter[str] = Counter()
        self.queries = 0

    def rerank_many(self, queries, documents):  # type: ignore[no-untyped-def]
        responses = self.reranker.rerank_many(queries, documents)  # type: ignore[attr-defined]
        for r in responses:
            self.usage.update({k: v for k, v in r.usage.items() if k.startswith("llm_")})
            self.queries += 1
        return responses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "data" / "scifact"))
    p.add_argument("--split", default="test")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="HF id or folder of an instruct causal LM")
    p.add_argument("--gguf-file", default=DEFAULT_GGUF, help="GGUF file in --model ('' for none)")
    p.add_argument("--queries", type=int, default=30)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--modes", default="pointwise,listwise,graded")
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--step", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=5)
    p.add_argument("--max-passage-chars", type=int, default=1000)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rerank_core import Reranker
    from rerank_core.backends.llm_judge import LLMJudgeBackend
    from rerank_core.eval import load_beir, run_eval
    from rerank_core.eval.beir import corpus_texts
    from rerank_core.eval.bm25 import BM25Retriever
    from rerank_core.llm.transformers_llm import TransformersLLM

    dataset = load_beir(args.data, split=args.split)
    texts = corpus_texts(dataset)
    retriever = BM25Retriever(list(texts), list(texts.values()))
    llm = TransformersLLM(args.model, gguf_file=args.gguf_file or None, device=args.device)
    t = time.perf_counter()
    _ = llm.model
    load_s = time.perf_counter() - t
    common = {"max_passage_chars": args.max_passage_chars}
    judges = {
        "pointwise": lambda: LLMJudgeBackend(llm, mode="pointwise", scoring="logprobs", **common),
        "graded": lambda: LLMJudgeBackend(
            llm, mode="pointwise", scoring="graded", batch_size=args.batch_size, **common
        ),
        "listwise": lambda: LLMJudgeBackend(
            llm, mode="listwise", window_size=args.window, step=args.step, **common
        ),
    }
    out: dict = {
        "data": f"{dataset.name}/{args.split}",
        "queries": args.queries,
        "top_k": args.top_k,
        "model": llm.fingerprint,
        "device": str(llm.model.device),
        "load_seconds": round(load_s, 1),
        "settings": vars(args),
        "modes": {},
    }
    bm25 = run_eval(dataset, top_k=args.top_k, max_queries=args.queries, retriever=retriever, progress=False)
    out["bm25"] = {"ndcg@10": round(bm25.first_stage["ndcg@10"], 4)}
    print(
        f"BM25 top-{args.top_k}, {bm25.queries} queries: nDCG@10 {bm25.first_stage['ndcg@10']:.4f}",
        flush=True,
    )
    for mode in [m for m in args.modes.split(",") if m]:
        recorder = UsageRecorder(Reranker(judges[mode]()))
        t = time.perf_counter()
        report = run_eval(
            dataset,
            reranker=recorder,
            top_k=args.top_k,
            max_queries=args.queries,
            retriever=retriever,
            chunk_size=1,
            progress=True,
        )
        seconds = time.perf_counter() - t
        n = max(1, recorder.queries)
        per_query = {k.removeprefix("llm_"): round(v / n, 2) for k, v in sorted(recorder.usage.items())}
        out["modes"][mode] = {
            "ndcg@10": round(report.reranked["ndcg@10"], 4),  # type: ignore[index]
            "mrr@10": round(report.reranked["mrr@10"], 4),  # type: ignore[index]
            "per_query": per_query,
            "seconds": round(seconds, 1),
            "seconds_per_query": round(seconds / n, 2),
        }
        print(
            f"{mode}: nDCG@10 {report.reranked['ndcg@10']:.4f}  per query {per_query}  {seconds:.0f}s",
            flush=True,
        )  # type: ignore[index]
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

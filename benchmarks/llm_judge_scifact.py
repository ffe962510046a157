"""nDCG@10 of an LLM judge on a SciFact test slice: BM25 order vs pointwise vs listwise, with the LLM calls
and tokens each spends per query on the same candidates.

BM25 (bm25s, the project's first stage) retrieves the top ``--top-k`` for the first ``--queries`` test
queries; every mode reranks exactly those candidates (input order = BM25 order, which the listwise sliding
window starts from), query by query, all modes for one query before the next. Each finished query is
appended to ``--records`` (JSON lines: query id, mode, ranking, nDCG@10, usage, seconds), so a run can be
stopped, resumed (queries already recorded are skipped) or split across processes (``--offset`` /
``--count``); the summary covers the queries that every mode finished. Default model: the real
SmolLM2-135M-Instruct (Q4_1 GGUF) in ``../shared/models``, in-process on the CPU with transformers.

    python benchmarks/llm_judge_scifact.py --queries 30 --top-k 20 --records runs.jsonl --json out.json
    python benchmarks/llm_judge_scifact.py --records runs.jsonl --summarize   # figures from the records

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
from collections import Counter, defaultdict
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_SHARED_DIR", WORKSPACE.parent / "shared"))
DEFAULT_MODEL = SHARED / "models" / "SmolLM2-135M-Instruct-Q4_1-GGUF"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def summarize(records: list[dict], modes: list[str]) -> dict:
    """Mean nDCG@10 and per-query usage over the queries every mode (and BM25) has a record for."""
    by_query: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in records:
        by_query[r["qid"]][r["mode"]] = r
    complete = sorted(q for q, m in by_query.items() if all(x in m for x in ["bm25", *modes]))
    out: dict = {"queries": len(complete), "modes": {}}
    for mode in ["bm25", *modes]:
        rows = [by_query[q][mode] for q in complete]
        n = max(1, len(rows))
        usage: Counter[str] = Counter()
        for row in rows:
            usage.update(
                {k.removeprefix("llm_"): v for k, v in row.get("usage", {}).items() if k.startswith("llm_")}
            )
        out["modes"][mode] = {
            "ndcg@10": round(sum(row["ndcg@10"] for row in rows) / n, 4),
            "per_query": {k: round(v / n, 2) for k, v in sorted(usage.items())},
            "seconds_per_query": round(sum(row.get("seconds", 0.0) for row in rows) / n, 2),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "data" / "scifact"))
    p.add_argument("--split", default="test")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="HF id or folder of an instruct causal LM")
    p.add_argument("--gguf-file", default=DEFAULT_GGUF, help="GGUF file in --model ('' for none)")
    p.add_argument("--queries", type=int, default=30, help="the first N test queries (file order)")
    p.add_argument("--offset", type=int, default=0, help="this process runs queries [offset, offset+count)")
    p.add_argument("--count", type=int, default=None)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--modes", default="pointwise,listwise")
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--step", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=5)
    p.add_argument("--max-passage-chars", type=int, default=1000)
    p.add_argument("--device", default="auto")
    p.add_argument("--records", default=None, help="JSON lines file the per-query results are appended to")
    p.add_argument("--summarize", action="store_true", help="only summarize --records")
    p.add_argument("--json", default=None, help="write the summary here")
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]

    records: list[dict] = []
    if args.records and Path(args.records).exists():
        records = [json.loads(line) for line in Path(args.records).read_text().splitlines() if line.strip()]
    if args.summarize:
        summary = summarize(records, modes)
        print(json.dumps(summary, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps({"settings": vars(args), **summary}, indent=2) + "\n")
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rerank_core import Reranker
    from rerank_core.backends.llm_judge import LLMJudgeBackend
    from rerank_core.eval import load_beir
    from rerank_core.eval.beir import corpus_texts
    from rerank_core.eval.bm25 import BM25Retriever
    from rerank_core.eval.metrics import ndcg_at_k
    from rerank_core.llm.transformers_llm import TransformersLLM

    dataset = load_beir(args.data, split=args.split)
    texts = corpus_texts(dataset)
    retriever = BM25Retriever(list(texts), list(texts.values()))
    qids = list(dataset.queries)[: args.queries]
    qids = qids[args.offset : None if args.count is None else args.offset + args.count]
    hits = dict(zip(qids, retriever.retrieve([dataset.queries[q] for q in qids], k=args.top_k), strict=True))
    llm = TransformersLLM(args.model, gguf_file=args.gguf_file or None, device=args.device)
    common = {"max_passage_chars": args.max_passage_chars}
    judges = {
        "pointwise": LLMJudgeBackend(llm, mode="pointwise", scoring="logprobs", **common),
        "graded": LLMJudgeBackend(
            llm, mode="pointwise", scoring="graded", batch_size=args.batch_size, **common
        ),
        "listwise": LLMJudgeBackend(llm, mode="listwise", window_size=args.window, step=args.step, **common),
    }
    done = {(r["qid"], r["mode"]) for r in records}
    sink = open(args.records, "a") if args.records else None  # noqa: SIM115 (appended query by query)

    def record(row: dict) -> None:
        records.append(row)
        if sink is not None:
            sink.write(json.dumps(row) + "\n")
            sink.flush()

    try:
        for k, qid in enumerate(qids, 1):
            query, ids = dataset.queries[qid], [doc_id for doc_id, _ in hits[qid]]
            judgments = dataset.qrels.get(qid, {})
            if (qid, "bm25") not in done:
                record({"qid": qid, "mode": "bm25", "ranking": ids, "ndcg@10": ndcg_at_k(ids, judgments, 10)})
            for mode in modes:
                if (qid, mode) in done:
                    continue
                t = time.perf_counter()
                response = Reranker(judges[mode]).rerank(query, [texts[d] for d in ids])
                ranking = [ids[i] for i in response.indices]
                record(
                    {
                        "qid": qid,
                        "mode": mode,
                        "ranking": ranking,
                        "ndcg@10": ndcg_at_k(ranking, judgments, 10),
                        "usage": dict(response.usage),
                        "seconds": round(time.perf_counter() - t, 2),
                        "backend": response.backend,
                    }
                )
            print(f"[{k}/{len(qids)}] query {qid} done", file=sys.stderr, flush=True)
    finally:
        if sink is not None:
            sink.close()
    summary = {"data": f"{dataset.name}/{args.split}", "model": llm.fingerprint, **summarize(records, modes)}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), **summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the context-selection stage buys when the corpus holds near-copies (docs/context-selection.md).

For SciFact and NFCorpus (test; ``../shared/data``): every passage judged relevant to one of the first
``--queries`` queries is copied ``--copies`` times with small seeded edits (``--edit-rate`` of its words
replaced by another word of the same passage), and the copies are indexed with the corpus. For each query:
BM25 top ``--top-k`` over corpus + copies, then the reference reranker
(``CrossEncoderBackend(models/reference-reranker, runtime="openvino")``), then three ways to fill a
``--budgets`` token contexts (counted with the reranker's own tokenizer, a stand-in for an LLM's):

- ``top-k``: plain top-k by rerank score until the budget is full (``ContextPolicy(token_budget=...)``:
  skip what does not fit, continue);
- ``dedup``: the same with ``dedup_threshold=--dedup`` (word-shingle Jaccard);
- ``dedup+mmr``: the same with MMR as well (``mmr_lambda=--mmr``).

Reported per data set and variant: distinct relevant documents reaching the context (a document and its
copies count once), context slots spent on a copy of something already there, tokens used, nDCG@10 of the
context in rank order with a document and its copies counted once (a repeat keeps its rank and adds no
gain: ``rerank_core.eval.metrics.ndcg_at_k``), and the mean shingle Jaccard of the copies to their
originals (so the edits' size is on record). ``--dry-run`` ranks with the BM25 score instead of the model
(checks the pipeline in seconds; its figures mean nothing).

    .venv/bin/python benchmarks/context_selection_figures.py                 # --queries 100: ~10 min, 2 cores
    .venv/bin/python benchmarks/context_selection_figures.py --queries 300 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORKSPACE = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_SHARED_DIR", WORKSPACE.parent / "shared"))
MODEL = WORKSPACE / "models" / "reference-reranker"
COPY = "#copy"


def edited_copy(text: str, key: str, rate: float) -> str:
    """``text`` with ``rate`` of its words (at least one) replaced by another of its words, seeded by
    ``key`` (the same copy on every run)."""
    rng = random.Random(key)
    words = text.split()
    if len(words) < 2:
        return text + " (copy)"
    for _ in range(max(1, round(rate * len(words)))):
        words[rng.randrange(len(words))] = rng.choice(words)
    return " ".join(words)


def original(doc_id: str) -> str:
    return doc_id.split(COPY, 1)[0]


def run_dataset(name: str, args: argparse.Namespace, scorer: Any, tokenizer: Any) -> dict[str, Any]:
    from rerank_core import Candidate, ContextPolicy, Reranker, select_context
    from rerank_core.context._similarity import ShingleSimilarity
    from rerank_core.eval import BM25Retriever, load_beir
    from rerank_core.eval.beir import doc_text
    from rerank_core.eval.metrics import ndcg_at_k

    ds = load_beir(SHARED / "data" / name, "test")
    qids = [q for q in ds.queries if any(g > 0 for g in ds.qrels.get(q, {}).values())][: args.queries]
    texts = {doc_id: doc_text(doc) for doc_id, doc in ds.corpus.items()}
    relevant = sorted({d for q in qids for d, g in ds.qrels[q].items() if g > 0 and d in texts})
    jaccards = []
    for d in relevant:
        for c in range(args.copies):
            copy_id = f"{d}{COPY}{c}"
            texts[copy_id] = edited_copy(texts[d], f"{args.seed}:{copy_id}", args.edit_rate)
            jaccards.append(ShingleSimilarity([texts[d], texts[copy_id]], 3).pair(0, 1))
    ids = list(texts)
    started = time.perf_counter()
    bm25 = BM25Retriever(ids, [texts[i] for i in ids])
    hits = bm25.retrieve([ds.queries[q] for q in qids], k=args.top_k)
    print(
        f"{name}: {len(qids)} queries, {len(relevant)} relevant passages copied x{args.copies} "
        f"(mean Jaccard to the original {statistics.fmean(jaccards):.3f}); "
        f"BM25 {time.perf_counter() - started:.1f} s"
    )
    policies: dict[str, Any] = {
        # the whole ranking, no budget: nDCG@10 with a document and its copies counted once
        "ranking": ContextPolicy(),
        "ranking dedup": ContextPolicy(dedup_threshold=args.dedup),
    }
    for budget in args.budgets:
        policies[f"top-k@{budget}"] = ContextPolicy(token_budget=budget, tokenizer=tokenizer)
        policies[f"dedup@{budget}"] = ContextPolicy(
            token_budget=budget, tokenizer=tokenizer, dedup_threshold=args.dedup
        )
        policies[f"dedup+mmr@{budget}"] = ContextPolicy(
            token_budget=budget, tokenizer=tokenizer, dedup_threshold=args.dedup, mmr_lambda=args.mmr
        )
    per: dict[str, dict[str, list[float]]] = {v: {} for v in policies}
    rerank_seconds = 0.0
    select_seconds = {v: 0.0 for v in policies}
    reranker = None if scorer is None else Reranker(scorer)
    for q, hit in zip(qids, hits, strict=True):
        doc_ids = [d for d, _ in hit]
        candidates = [Candidate(texts[d], id=d) for d in doc_ids]
        t0 = time.perf_counter()
        if reranker is None:  # --dry-run: the BM25 order and score
            ranked: Any = select_context(candidates, None, scores=[s for _, s in hit]).items
            results = [item.result for item in ranked]
        else:
            results = list(reranker.rerank(ds.queries[q], candidates).results)
        rerank_seconds += time.perf_counter() - t0
        judged = ds.qrels[q]
        for variant, policy in policies.items():
            t0 = time.perf_counter()
            sel = select_context(results, policy)
            select_seconds[variant] += time.perf_counter() - t0
            context = [original(item.result.id) for item in sorted(sel.items, key=lambda i: i.rank)]
            seen: set[str] = set()
            repeats = 0
            for d in context:
                repeats += d in seen
                seen.add(d)
            row = per[variant]
            row.setdefault("distinct_relevant", []).append(sum(1 for d in seen if judged.get(d, 0) > 0))
            row.setdefault("duplicate_slots", []).append(repeats)
            row.setdefault("items", []).append(len(context))
            row.setdefault("tokens_used", []).append(sel.tokens_used)
            row.setdefault("ndcg@10", []).append(ndcg_at_k(context, judged, 10))
    out: dict[str, Any] = {
        "queries": len(qids),
        "copies_mean_jaccard": statistics.fmean(jaccards),
        "rerank_seconds_per_query": rerank_seconds / len(qids),
    }
    for variant, row in per.items():
        out[variant] = {k: statistics.fmean(v) for k, v in row.items()}
        out[variant]["select_ms_per_query"] = select_seconds[variant] / len(qids) * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="scifact,nfcorpus")
    parser.add_argument("--queries", type=int, default=100, help="per data set (default sized for ~10 min)")
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument(
        "--budgets", default="512,2048", help="comma-separated token budgets (the issue asks for 512)"
    )
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--edit-rate", type=float, default=0.03)
    parser.add_argument("--dedup", type=float, default=0.7)
    parser.add_argument("--mmr", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--dry-run", action="store_true", help="BM25 scores instead of the model")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    args.budgets = [int(b) for b in args.budgets.split(",") if b.strip()]

    import functools

    from transformers import AutoTokenizer

    hf_tokenizer = AutoTokenizer.from_pretrained(args.model)

    @functools.lru_cache(maxsize=200_000)
    def reranker_tokens(text: str) -> int:
        """The reranker's tokenizer, counted once per text (the three variants count the same texts)."""
        return len(hf_tokenizer.encode(text, add_special_tokens=False))

    tokenizer = reranker_tokens
    scorer = None
    if not args.dry_run:
        from rerank_core.backends import CrossEncoderBackend

        scorer = CrossEncoderBackend(args.model, runtime="openvino")
    report: dict[str, Any] = {"args": vars(args), "date": time.strftime("%Y-%m-%d")}
    for name in args.data.split(","):
        report[name] = run_dataset(name, args, scorer, tokenizer)
        r = report[name]
        print(f"{name}: rerank {r['rerank_seconds_per_query']:.2f} s/query")
        print(
            f"  {'variant':<18} {'distinct rel':>12} {'dup slots':>9} {'items':>6} {'tokens':>7} "
            f"{'nDCG@10':>8} {'select ms':>9}"
        )
        for variant in [k for k in r if isinstance(r[k], dict)]:
            v = r[variant]
            print(
                f"  {variant:<18} {v['distinct_relevant']:>12.3f} {v['duplicate_slots']:>9.3f} "
                f"{v['items']:>6.2f} {v['tokens_used']:>7.1f} {v['ndcg@10']:>8.4f} "
                f"{v['select_ms_per_query']:>9.2f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

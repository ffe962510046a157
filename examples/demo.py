"""The demo pipeline (``make demo``): BM25 first stage on SciFact, then a cross-encoder reranker.

For a few test queries it prints the ranking before and after reranking, with the relevance judgments
(``*`` marks a judged-relevant document), then nDCG@10 / MRR@10 of both stages over a sample of queries.
When the model was fine-tuned with rerank-core and carries a fusion with the first stage tuned on dev
(``rerank_finetune.json``), the demo also shows that fused ranking (``--no-fusion`` turns it off).

The model: ``--model PATH_OR_ID`` (see ``--help``; the reference reranker at ``models/reference-reranker``
is produced by the fine-tuning work). Without one the demo runs the first stage alone and says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common, however this file is loaded
from _common import MODEL_HELP, WORKSPACE, no_model_notice, resolve_model

DEFAULT_DATA = Path(os.environ.get("RERANK_SHARED_DIR", WORKSPACE.parent / "shared")) / "data" / "scifact"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=MODEL_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default=str(DEFAULT_DATA), help="BEIR folder (default: ../shared/data/scifact)"
    )
    parser.add_argument("--model", default=None, help="cross-encoder id or path; 'none' for first stage only")
    parser.add_argument(
        "--queries", type=int, default=30, help="test queries to evaluate (first N in file order)"
    )
    parser.add_argument("--top-k", type=int, default=20, help="first-stage candidates reranked per query")
    parser.add_argument("--show", type=int, default=3, help="queries whose rankings are printed")
    parser.add_argument("--no-fusion", action="store_true", help="ignore the model's stored fusion")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    from rerank_core import Reranker
    from rerank_core.backends import CrossEncoderBackend
    from rerank_core.eval import load_beir, run_eval
    from rerank_core.eval.beir import doc_text
    from rerank_core.train import stored_fusion

    if not Path(args.data).is_dir():
        print(
            f"demo: data folder not found: {args.data} (set RERANK_SHARED_DIR or pass --data)",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    dataset = load_beir(args.data, split="test")
    model = resolve_model(args.model)
    reranker = None
    if model is None:
        print(no_model_notice("running the first stage alone"))
    else:
        fusion = None if args.no_fusion else stored_fusion(model)
        reranker = Reranker(CrossEncoderBackend(model), fusion=fusion)
    print(
        f"{dataset.name}: {len(dataset.corpus)} documents, {len(dataset.queries)} test queries; "
        f"evaluating the first {args.queries} with BM25 top-{args.top_k}"
        + (f", reranked by {model}" if model else "")
        + (
            f", fused with BM25 ({reranker.fusion.describe()}, tuned on dev)"
            if reranker and reranker.fusion
            else ""
        )
    )
    report = run_eval(
        dataset,
        reranker=reranker,
        top_k=args.top_k,
        max_queries=args.queries,
        progress=not args.no_progress,
        model=model,
    )

    for qid in list(report.first_stage_run)[: args.show]:
        judged = dataset.qrels.get(qid, {})
        print(f"\nQuery {qid}: {dataset.queries[qid]}")
        stages = [("BM25", report.first_stage_run[qid])]
        if report.reranked_run is not None:
            stages.append(("reranked", report.reranked_run[qid]))
        if report.fused_run is not None:
            stages.append(("fused", report.fused_run[qid]))
        for label, ranking in stages:
            print(f"  {label}:")
            for rank, doc_id in enumerate(ranking[:5], 1):
                mark = "*" if judged.get(doc_id, 0) > 0 else " "
                print(f"    {rank}. {mark} [{doc_id}] {doc_text(dataset.corpus[doc_id])[:90]}")

    print(f"\nOver {report.queries} queries (BM25 top-{args.top_k}):")
    print(f"  {'stage':<12}" + "".join(f"{k:>12}" for k in report.first_stage))
    print(f"  {'BM25':<12}" + "".join(f"{v:>12.4f}" for v in report.first_stage.values()))
    if report.reranked is not None:
        print(f"  {'reranked':<12}" + "".join(f"{v:>12.4f}" for v in report.reranked.values()))
    if report.fused is not None:
        print(f"  {'fused':<12}" + "".join(f"{v:>12.4f}" for v in report.fused.values()))
    print(f"\nDone in {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

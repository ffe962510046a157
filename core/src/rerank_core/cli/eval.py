"""``rerank eval``: a BM25, dense or hybrid first stage, optionally reranked, on a BEIR-layout folder.

```
rerank eval DATA_DIR [--model PATH_OR_ID | --model none] [--top-k 100] [--split test] [--json OUT.json]
            [--report REPORT.html]
            [--fusion METHOD:WEIGHT|model|tune:SPLIT [--tune-queries N]]
            [--first-stage bm25|dense|hybrid --dense-model PATH_OR_ID [--hybrid-fusion rrf|zscore:W|minmax:W]]
```

Argument handling only: the evaluation is :func:`rerank_core.eval.run_eval`, the table
:func:`rerank_core.eval.run.format_table`, the loading :mod:`rerank_core.eval.loading`. Until the
restructure of issue 15 this was part of ``rerank_core/cli.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rerank_core.cli._common import EXIT_OK, UsageError, check_output_file, one_line, positive_int
from rerank_core.errors import ConfigurationError, MissingDependencyError, RerankError

__all__ = ["add_parser", "load_dense_model", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``eval`` to the ``rerank`` subcommands."""
    p = subparsers.add_parser(
        "eval",
        help="BM25, dense or hybrid first stage (+ optional cross-encoder rerank) on a BEIR-layout folder",
        description=(
            "Retrieve the top-k documents of every query with BM25 (bm25s, English stemming and "
            "stopwords), a bi-encoder (--first-stage dense) or both fused (--first-stage hybrid), "
            "optionally rerank them with a cross-encoder, and report nDCG@10, MRR@10 and Recall@k of "
            "every stage (for hybrid: BM25, dense and the fused first stage side by side)."
        ),
    )
    p.add_argument(
        "data_dir", metavar="DATA_DIR", help="BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/)"
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="PATH_OR_ID",
        help="cross-encoder (local path or Hugging Face id); 'none' evaluates the first stage alone",
    )
    p.add_argument(
        "--top-k", type=positive_int, default=100, help="first-stage depth to rerank (default: 100)"
    )
    p.add_argument("--split", default="test", help="qrels split to evaluate (default: test)")
    p.add_argument(
        "--json", type=Path, metavar="OUT.json", help="also write the results as JSON to this file"
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="REPORT.html",
        help="also write a self-contained HTML report (needs --model): every query's first-stage and "
        "reranked top 10 side by side, score distributions per grade, reliability before and after "
        "calibration, precision/recall against the threshold, nDCG@10 per query, timings",
    )
    p.add_argument(
        "--max-queries", type=positive_int, metavar="N", help="only the first N queries (file order)"
    )
    p.add_argument("--batch-size", type=positive_int, default=32, help="pairs per model batch (default: 32)")
    p.add_argument("--max-length", type=positive_int, help="model max sequence length (default: the model's)")
    p.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: automatic)")
    p.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="auto",
        help="model weights precision (default: auto = float16 on CUDA, float32 elsewhere)",
    )
    p.add_argument(
        "--runtime",
        choices=("torch", "onnx", "openvino"),
        default="torch",
        help="local runtime (default: torch); onnx/openvino export the model once and cache it",
    )
    p.add_argument(
        "--recipe",
        metavar="NAME|auto",
        help="score with a decoder-LLM or seq2seq reranker's recipe (qwen3, bge-gemma, mxbai-v2, "
        "contextual-v2, zerank, monot5, inranker, rankt5; 'auto': detected from the model's name or config) "
        "instead of a cross-encoder; --runtime and --quantization do not apply",
    )
    p.add_argument(
        "--quantization",
        choices=("none", "int8"),
        default="none",
        help="int8 for --runtime onnx (dynamic) or openvino (static, default calibration pairs)",
    )
    p.add_argument(
        "--fusion",
        metavar="METHOD[:WEIGHT]|model|tune:SPLIT",
        help="also report the reranker fused with the first-stage score: zscore, minmax or rrf with the "
        "reranker's weight (e.g. zscore:0.6), 'model' for the fusion tuned at fine-tuning "
        "(rerank_finetune.json), or tune:SPLIT to tune it first on another split of the same collection "
        "(e.g. tune:dev; same first stage, depth and model)",
    )
    p.add_argument(
        "--tune-queries",
        type=int,
        metavar="N",
        help="with --fusion tune:SPLIT, tune on the first N queries of SPLIT only (default: all)",
    )
    p.add_argument(
        "--first-stage",
        choices=("bm25", "dense", "hybrid"),
        default="bm25",
        help="bm25 (default), dense (--dense-model alone) or hybrid (BM25 and dense fused)",
    )
    p.add_argument(
        "--dense-model",
        metavar="PATH_OR_ID",
        help="sentence-transformers bi-encoder (path or id) for --first-stage dense or hybrid",
    )
    p.add_argument(
        "--hybrid-fusion",
        metavar="rrf|rrf:W|zscore:W|minmax:W",
        help="how --first-stage hybrid fuses the BM25 and dense lists; W in [0, 1] is the dense share "
        "(default: rrf, equal weights, k=60)",
    )
    p.add_argument(
        "--hybrid-depth",
        type=positive_int,
        metavar="N",
        help="documents taken from each list before fusing (default: --top-k); the fused list keeps --top-k",
    )
    p.add_argument(
        "--embedding-cache",
        type=Path,
        metavar="DIR",
        help="keep the dense corpus embeddings in DIR (keyed on model weights and corpus) and reuse them",
    )
    p.add_argument(
        "--calibration",
        help="apply a fitted calibration to the reranker's scores: a calibration.json (or its folder), or "
        "'model' for the one stored in the model's folder by 'rerank calibrate'; the JSON then reports ECE "
        "and Brier of the calibrated scores",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for python, numpy and torch (default: 0)")
    p.add_argument(
        "--queries-per-call", type=positive_int, default=8, help="queries per rerank_many call (default: 8)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=run)


def _model_fusion(model: str) -> Any:
    """The fusion stored beside a fine-tuned model (``rerank_finetune.json``), or a usage error."""
    from rerank_core.train.finetune import FINETUNE_INFO_FILE, stored_fusion

    fusion = stored_fusion(model)
    if fusion is None:
        info_file = Path(model).expanduser() / FINETUNE_INFO_FILE
        raise UsageError(f"--fusion model: {info_file} has no tuned fusion; give METHOD[:WEIGHT]")
    return fusion


def _tune_split(spec: str | None, split: str) -> str | None:
    """The split named by ``--fusion tune:SPLIT`` (``None`` for any other --fusion), checked."""
    if spec is None or not spec.strip().lower().startswith("tune"):
        return None
    name = spec.strip()[len("tune") :].lstrip(":").strip()
    if not name:
        raise UsageError("--fusion tune:SPLIT: name the split to tune on, e.g. tune:dev")
    if name == split:
        raise UsageError(
            f"--fusion tune:{name}: that is the split being evaluated (--split {split}); tune on another one"
        )
    return name


def _parse_fusion(spec: str | None, model: str) -> Any:
    from rerank_core.fusion import Fusion

    if spec is None:
        return None
    if spec.strip().lower() == "model":
        return _model_fusion(model)
    try:
        return Fusion.parse(spec)
    except RerankError as exc:
        raise UsageError(f"--fusion: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    """Run ``rerank eval`` with parsed ``args``; returns the exit code (a usage error raises)."""
    from rerank_core.eval import loading
    from rerank_core.eval.beir import load_beir
    from rerank_core.eval.run import format_table, run_eval

    started = time.perf_counter()
    use_model = args.model.strip().lower() != "none"
    if not args.model.strip():
        raise UsageError("--model: give a model path or id, or 'none'")
    check_output_file(args.json, "--json")
    check_output_file(args.report, "--report")
    loading.seed_everything(args.seed, torch_too=use_model)
    if args.fusion is not None and not use_model:
        raise UsageError("--fusion needs a --model")
    if args.calibration is not None and not use_model:
        raise UsageError("--calibration needs a --model")
    if args.recipe is not None and (args.runtime != "torch" or args.quantization != "none"):
        raise UsageError("--recipe runs on torch: leave --runtime and --quantization unset")
    if args.report is not None and not use_model:
        raise UsageError("--report needs a --model")
    tune_split = _tune_split(args.fusion, args.split)
    if args.tune_queries is not None:
        if tune_split is None:
            raise UsageError("--tune-queries needs --fusion tune:SPLIT")
        if args.tune_queries < 1:
            raise UsageError(f"--tune-queries: must be a positive integer, got {args.tune_queries}")
    fusion = _parse_fusion(args.fusion, args.model) if use_model and tune_split is None else None
    hybrid_fusion = _check_first_stage_args(args)

    try:
        dataset = load_beir(args.data_dir, split=args.split)
        tune_dataset = None if tune_split is None else load_beir(args.data_dir, split=tune_split)
    except RerankError as exc:
        raise UsageError(str(exc)) from exc

    dense_model = None
    dense_load_seconds = 0.0
    if args.first_stage != "bm25":
        t = time.perf_counter()
        dense_model = _dense_loader()(args.dense_model, device=args.device)
        dense_load_seconds = time.perf_counter() - t

    reranker = None
    load_seconds = 0.0
    if use_model:
        t = time.perf_counter()
        try:
            if args.recipe is not None:
                reranker = loading.load_recipe_reranker(
                    args.model,
                    recipe=None if args.recipe == "auto" else args.recipe,
                    device=args.device,
                    max_length=args.max_length,
                    batch_size=args.batch_size,
                    dtype=args.dtype,
                    fusion=fusion,
                    calibration=args.calibration,
                )
            else:
                reranker = loading.load_cross_encoder_reranker(
                    args.model,
                    device=args.device,
                    max_length=args.max_length,
                    batch_size=args.batch_size,
                    dtype=args.dtype,
                    fusion=fusion,
                    runtime=args.runtime,
                    quantization=None if args.quantization == "none" else args.quantization,
                    calibration=args.calibration,
                )
        except MissingDependencyError:
            raise
        except ConfigurationError as exc:
            if exc.argument == "recipe":
                raise UsageError(f"--{one_line(exc)}") from exc
            if exc.argument != "calibration":
                raise UsageError(f"--model {args.model}: could not load it ({one_line(exc)})") from exc
            raise UsageError(f"--{one_line(exc)}") from exc
        except (RerankError, OSError, ValueError, RuntimeError, AssertionError) as exc:
            # AssertionError/RuntimeError: torch refusing a --device it cannot use.
            raise UsageError(f"--model {args.model}: could not load it ({one_line(exc)})") from exc
        load_seconds = time.perf_counter() - t

    def evaluate_split(data: Any, max_queries: int | None) -> Any:
        return run_eval(
            data,
            reranker=reranker,
            top_k=args.top_k,
            max_queries=max_queries,
            chunk_size=args.queries_per_call,
            progress=not args.no_progress,
            model=args.model if use_model else None,
            first_stage=args.first_stage,
            dense_model=dense_model,
            dense_kwargs={"cache_dir": args.embedding_cache, "batch_size": args.batch_size},
            hybrid_fusion=hybrid_fusion,
            hybrid_depth=args.hybrid_depth,
        )

    tuning: dict[str, Any] | None = None
    tune_seconds = 0.0
    if tune_dataset is not None:
        from rerank_core import Reranker
        from rerank_core.eval.run import tune_report_fusion, tuning_record

        t = time.perf_counter()
        tune_report = evaluate_split(tune_dataset, args.tune_queries)
        try:
            fit = tune_report_fusion(tune_report, tune_dataset.qrels)
        except RerankError as exc:
            raise UsageError(f"--fusion tune:{tune_split}: {exc}") from exc
        tune_seconds = time.perf_counter() - t
        reranker = Reranker(reranker.backend, fusion=fit.fusion, calibration=reranker.calibration)
        tuning = tuning_record(fit, tune_report, tune_split)
        print(
            f"fusion tuned on {tune_split} ({tune_report.queries} queries): {tuning['fusion']} "
            f"(nDCG@10 there {fit.ndcg:.4f}; first stage {fit.first_stage_only:.4f}, "
            f"reranked {fit.rerank_only:.4f})",
            file=sys.stderr,
        )
    report = evaluate_split(dataset, args.max_queries)
    if tuning is not None:
        report.fusion = f"{report.fusion}, tuned on {tune_split}"
        report.timings = {"tune_fusion": tune_seconds, **report.timings}
    if dense_model is not None:
        report.first_stage_config["dense_model"] = args.dense_model
        report.timings = {"load_dense_model": dense_load_seconds, **report.timings}
    if use_model:
        report.timings = {"load_model": load_seconds, **report.timings}
    report.seconds = time.perf_counter() - started

    print(format_table(report))
    if args.json is not None:
        payload = report.to_dict()
        payload["max_queries"] = args.max_queries
        if tuning is not None:
            payload["fusion_tuning"] = tuning
        if use_model:
            payload["model_options"] = {
                "device": args.device,
                "max_length": args.max_length,
                "batch_size": args.batch_size,
                "dtype": args.dtype,
                "runtime": getattr(getattr(reranker, "backend", None), "runtime", args.runtime),
                "recipe": None if args.recipe is None else reranker.backend.recipe.name,
            }
        payload["seed"] = args.seed
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if args.report is not None:
        from rerank_core.eval.report import write_report

        options = getattr(reranker, "options", None)
        backend = getattr(reranker, "backend", None)
        write_report(
            report,
            dataset,
            args.report,
            calibration=getattr(options, "calibration", None),
            score_kind=getattr(backend, "score_kind", None),
        )
        print(f"wrote {args.report}")
    return EXIT_OK


def _check_first_stage_args(args: argparse.Namespace) -> Any:
    """The hybrid fusion settings (``"rrf"`` unless --hybrid-fusion), after checking that the first-stage
    options fit together: a usage error before any data or model is loaded."""
    from rerank_core.eval.hybrid import hybrid_fusion_config

    cache = args.embedding_cache
    if args.first_stage == "bm25":
        for option, value in (("--dense-model", args.dense_model), ("--embedding-cache", cache)):
            if value is not None:
                raise UsageError(f"{option} needs --first-stage dense or hybrid")
    elif not (args.dense_model or "").strip():
        raise UsageError(f"--first-stage {args.first_stage} needs --dense-model PATH_OR_ID")
    if cache is not None and cache.exists() and not cache.is_dir():
        raise UsageError(f"--embedding-cache: {cache} is not a folder")
    if args.first_stage != "hybrid":
        for option, value in (("--hybrid-fusion", args.hybrid_fusion), ("--hybrid-depth", args.hybrid_depth)):
            if value is not None:
                raise UsageError(f"{option} needs --first-stage hybrid")
        return "rrf"
    try:
        return hybrid_fusion_config(args.hybrid_fusion or "rrf")
    except RerankError as exc:
        raise UsageError(f"--hybrid-fusion: {exc}") from exc


def load_dense_model(model: str, *, device: str | None) -> Any:
    """The sentence-transformers bi-encoder of --dense-model, loaded now so that a bad one fails early."""
    from rerank_core.eval.loading import load_bi_encoder

    try:
        return load_bi_encoder(model, device=device)
    except (OSError, ValueError, RuntimeError, AssertionError) as exc:
        raise UsageError(f"--dense-model {model}: could not load it ({one_line(exc)})") from exc


def _dense_loader() -> Any:
    """:func:`load_dense_model`, looked up as ``rerank_core.cli._load_bi_encoder`` when the command runs, the
    name it had before the CLI became a package: tests/core/test_eval_hybrid.py replaces it there."""
    import rerank_core.cli

    return rerank_core.cli._load_bi_encoder

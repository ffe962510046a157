"""The ``rerank`` command line.

```
rerank eval DATA_DIR [--model PATH_OR_ID | --model none] [--top-k 100] [--split test] [--json OUT.json]
            [--fusion METHOD:WEIGHT|model|tune:SPLIT [--tune-queries N]]
            [--first-stage bm25|dense|hybrid --dense-model PATH_OR_ID [--hybrid-fusion rrf|zscore:W|minmax:W]]
rerank finetune [DATA_DIR ...] [--rows FILE ...] --base-model PATH_OR_ID --output DIR [--epochs 1] ...
rerank bench [DATA_DIR] [--model PATH] [--queries 20] [--top-k 100] [--repeats 3] [--pick] ...
```

Exit codes: 0 success, 1 a failure while running (back end error, missing optional package),
2 bad arguments (unknown option, missing data folder or split, a model that cannot be loaded).
More subcommands plug in through :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rerank_core.errors import MissingDependencyError, RerankError

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    """A bad argument found after parsing; reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _add_eval(subparsers: Any) -> None:
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
        "--top-k", type=_positive_int, default=100, help="first-stage depth to rerank (default: 100)"
    )
    p.add_argument("--split", default="test", help="qrels split to evaluate (default: test)")
    p.add_argument(
        "--json", type=Path, metavar="OUT.json", help="also write the results as JSON to this file"
    )
    p.add_argument(
        "--max-queries", type=_positive_int, metavar="N", help="only the first N queries (file order)"
    )
    p.add_argument("--batch-size", type=_positive_int, default=32, help="pairs per model batch (default: 32)")
    p.add_argument(
        "--max-length", type=_positive_int, help="model max sequence length (default: the model's)"
    )
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
        type=_positive_int,
        metavar="N",
        help="documents taken from each list before fusing (default: --top-k); the fused list keeps --top-k",
    )
    p.add_argument(
        "--embedding-cache",
        type=Path,
        metavar="DIR",
        help="keep the dense corpus embeddings in DIR (keyed on model weights and corpus) and reuse them",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for python, numpy and torch (default: 0)")
    p.add_argument(
        "--queries-per-call", type=_positive_int, default=8, help="queries per rerank_many call (default: 8)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=_cmd_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rerank", description="rerank-core command line tools.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_eval(subparsers)
    _add_finetune(subparsers)
    from rerank_core.bench.cli import add_bench_parser  # the speed benchmark lives in its own package

    add_bench_parser(subparsers)
    parser.set_defaults(subcommands=subparsers.choices)
    return parser


def _seed_everything(seed: int, *, torch_too: bool) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if torch_too:
        try:
            import torch
        except ImportError:
            return
        torch.manual_seed(seed)


def _model_fusion(model: str) -> Any:
    """The fusion stored beside a fine-tuned model (``rerank_finetune.json``), or a usage error."""
    from rerank_core.train.finetune import FINETUNE_INFO_FILE, stored_fusion

    fusion = stored_fusion(model)
    if fusion is None:
        info_file = Path(model).expanduser() / FINETUNE_INFO_FILE
        raise _UsageError(f"--fusion model: {info_file} has no tuned fusion; give METHOD[:WEIGHT]")
    return fusion


def _tune_split(spec: str | None, split: str) -> str | None:
    """The split named by ``--fusion tune:SPLIT`` (``None`` for any other --fusion), checked."""
    if spec is None or not spec.strip().lower().startswith("tune"):
        return None
    name = spec.strip()[len("tune") :].lstrip(":").strip()
    if not name:
        raise _UsageError("--fusion tune:SPLIT: name the split to tune on, e.g. tune:dev")
    if name == split:
        raise _UsageError(
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
        raise _UsageError(f"--fusion: {exc}") from exc


def _build_reranker(
    model: str,
    *,
    device: str | None,
    max_length: int | None,
    batch_size: int,
    dtype: str = "auto",
    fusion: Any = None,
    runtime: str = "torch",
    quantization: str | None = None,
) -> Any:
    """Load the local cross-encoder behind a :class:`rerank_core.Reranker` that keeps every candidate."""
    from rerank_core import Reranker
    from rerank_core.backends import CrossEncoderBackend

    backend = CrossEncoderBackend(
        model,
        device=device,
        max_length=max_length,
        batch_size=batch_size,
        dtype=dtype,
        runtime=runtime,
        quantization=quantization,
    )
    # Load now (the back end loads lazily; onnx/openvino export once) so that a bad --model, --device or
    # runtime fails before the first stage.
    backend.load()
    return Reranker(backend, fusion=fusion)


_FIRST_STAGE_LABELS = {"bm25": "BM25", "dense": "dense", "hybrid": "hybrid"}


def _format_table(report: Any) -> str:
    keys = list(report.first_stage)
    rows = [
        (f"first stage: {_FIRST_STAGE_LABELS.get(name, name)}", values)
        for name, values in (report.first_stage_sources or {}).items()
    ]
    stage = _FIRST_STAGE_LABELS.get(report.first_stage_name, report.first_stage_name)
    if report.first_stage_name == "hybrid":
        stage += f" ({report.first_stage_config.get('hybrid_fusion', '')})"
    rows.append((f"first stage: {stage}", report.first_stage))
    if report.reranked is not None:
        rows.append(("reranked", report.reranked))
    if report.fused is not None:
        rows.append((f"fused ({report.fusion})", report.fused))
    label_w = max(len(label) for label, _ in rows)
    col_w = max(10, *(len(k) for k in keys))
    lines = [
        f"{report.dataset} ({report.split}): {report.queries} queries, {report.corpus_size} documents, "
        f"{_FIRST_STAGE_LABELS.get(report.first_stage_name, report.first_stage_name)} top-{report.top_k}"
        + (f", reranked by {report.model}" if report.model else ""),
        f"{'':<{label_w}}  " + "  ".join(f"{k:>{col_w}}" for k in keys),
    ]
    for label, values in rows:
        lines.append(f"{label:<{label_w}}  " + "  ".join(f"{values[k]:>{col_w}.4f}" for k in keys))
    parts = ", ".join(f"{name} {secs:.1f}" for name, secs in report.timings.items())
    lines.append(f"time: {report.seconds:.1f} s ({parts})")
    return "\n".join(lines)


def _cmd_eval(args: argparse.Namespace) -> int:
    from rerank_core.eval.beir import load_beir
    from rerank_core.eval.run import run_eval

    started = time.perf_counter()
    use_model = args.model.strip().lower() != "none"
    if not args.model.strip():
        raise _UsageError("--model: give a model path or id, or 'none'")
    if args.json is not None:
        if args.json.is_dir():
            raise _UsageError(f"--json: {args.json} is a folder, expected a file path")
        try:  # fail before a long evaluation, not after it
            args.json.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _UsageError(f"--json: cannot create {args.json.parent} ({_one_line(exc)})") from exc
    _seed_everything(args.seed, torch_too=use_model)
    if args.fusion is not None and not use_model:
        raise _UsageError("--fusion needs a --model")
    tune_split = _tune_split(args.fusion, args.split)
    if args.tune_queries is not None:
        if tune_split is None:
            raise _UsageError("--tune-queries needs --fusion tune:SPLIT")
        if args.tune_queries < 1:
            raise _UsageError(f"--tune-queries: must be a positive integer, got {args.tune_queries}")
    fusion = _parse_fusion(args.fusion, args.model) if use_model and tune_split is None else None
    hybrid_fusion = _check_first_stage_args(args)

    try:
        dataset = load_beir(args.data_dir, split=args.split)
        tune_dataset = None if tune_split is None else load_beir(args.data_dir, split=tune_split)
    except RerankError as exc:
        raise _UsageError(str(exc)) from exc

    dense_model = None
    dense_load_seconds = 0.0
    if args.first_stage != "bm25":
        t = time.perf_counter()
        dense_model = _load_bi_encoder(args.dense_model, device=args.device)
        dense_load_seconds = time.perf_counter() - t

    reranker = None
    load_seconds = 0.0
    if use_model:
        t = time.perf_counter()
        try:
            reranker = _build_reranker(
                args.model,
                device=args.device,
                max_length=args.max_length,
                batch_size=args.batch_size,
                dtype=args.dtype,
                fusion=fusion,
                runtime=args.runtime,
                quantization=None if args.quantization == "none" else args.quantization,
            )
        except MissingDependencyError:
            raise
        except (RerankError, OSError, ValueError, RuntimeError, AssertionError) as exc:
            # AssertionError/RuntimeError: torch refusing a --device it cannot use.
            raise _UsageError(f"--model {args.model}: could not load it ({_one_line(exc)})") from exc
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
        from rerank_core.eval.run import tune_report_fusion

        t = time.perf_counter()
        tune_report = evaluate_split(tune_dataset, args.tune_queries)
        try:
            fit = tune_report_fusion(tune_report, tune_dataset.qrels)
        except RerankError as exc:
            raise _UsageError(f"--fusion tune:{tune_split}: {exc}") from exc
        tune_seconds = time.perf_counter() - t
        reranker = Reranker(reranker.backend, fusion=fit.fusion)
        tuning = {
            "split": tune_split,
            "queries": tune_report.queries,
            "fusion": fit.fusion.describe(),
            "ndcg@10": round(fit.ndcg, 4),
            "rerank_only_ndcg@10": round(fit.rerank_only, 4),
            "first_stage_ndcg@10": round(fit.first_stage_only, 4),
            "table": fit.named_table(),
        }
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

    print(_format_table(report))
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
            }
        payload["seed"] = args.seed
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return EXIT_OK


def _check_first_stage_args(args: argparse.Namespace) -> Any:
    """The hybrid fusion settings (``"rrf"`` unless --hybrid-fusion), after checking that the first-stage
    options fit together: a usage error before any data or model is loaded."""
    from rerank_core.eval.hybrid import hybrid_fusion_config

    cache = args.embedding_cache
    if args.first_stage == "bm25":
        for option, value in (("--dense-model", args.dense_model), ("--embedding-cache", cache)):
            if value is not None:
                raise _UsageError(f"{option} needs --first-stage dense or hybrid")
    elif not (args.dense_model or "").strip():
        raise _UsageError(f"--first-stage {args.first_stage} needs --dense-model PATH_OR_ID")
    if cache is not None and cache.exists() and not cache.is_dir():
        raise _UsageError(f"--embedding-cache: {cache} is not a folder")
    if args.first_stage != "hybrid":
        for option, value in (("--hybrid-fusion", args.hybrid_fusion), ("--hybrid-depth", args.hybrid_depth)):
            if value is not None:
                raise _UsageError(f"{option} needs --first-stage hybrid")
        return "rrf"
    try:
        return hybrid_fusion_config(args.hybrid_fusion or "rrf")
    except RerankError as exc:
        raise _UsageError(f"--hybrid-fusion: {exc}") from exc


def _load_bi_encoder(model: str, *, device: str | None) -> Any:
    """The sentence-transformers bi-encoder of --dense-model, loaded now so that a bad one fails early."""
    from rerank_core._optional import require

    st = require(
        "sentence_transformers", extra="local", feature="Dense retrieval", package="sentence-transformers"
    )
    try:
        return st.SentenceTransformer(model, device=device)
    except (OSError, ValueError, RuntimeError, AssertionError) as exc:
        raise _UsageError(f"--dense-model {model}: could not load it ({_one_line(exc)})") from exc


def _add_finetune(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a cross-encoder on BEIR folders and/or (query, text, label) rows",
        description=(
            "Build query groups (one positive, hard negatives mined with the first stage, judged positives "
            "excluded) from each DATA_DIR's train split and from --rows files, train a cross-encoder from "
            "--base-model with group softmax cross-entropy, evaluate nDCG@10 of the reranked first-stage "
            "candidates on dev (the folder's dev split, or held-out train queries), keep the best checkpoint "
            "and write a model card beside the weights."
        ),
    )
    p.add_argument("data_dirs", nargs="*", metavar="DATA_DIR", help="BEIR-layout folders with a train split")
    p.add_argument(
        "--rows",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="(query, text, label) rows: .tsv/.csv/.jsonl[.gz]; label > 0 is relevant (repeatable)",
    )
    p.add_argument("--base-model", required=True, metavar="PATH_OR_ID", help="starting checkpoint")
    p.add_argument("--output", type=Path, required=True, metavar="DIR", help="new folder for the model")
    p.add_argument("--train-split", default="train", help="qrels split to train on (default: train)")
    p.add_argument("--dev-split", default="dev", help="qrels split for dev, when present (default: dev)")
    p.add_argument(
        "--dev-fraction",
        type=float,
        default=0.1,
        help="share of train queries held out as dev when a folder has no dev split (default: 0.1)",
    )
    p.add_argument("--max-dev-queries", type=_positive_int, default=200, help="per dev set (default: 200)")
    p.add_argument(
        "--dev-top-k", type=_positive_int, default=20, help="candidates per dev query (default: 20)"
    )
    p.add_argument(
        "--first-stage",
        default="bm25",
        metavar="bm25|PATH_OR_ID",
        help="retriever that mines negatives and makes dev candidates: bm25, or a sentence-transformers "
        "bi-encoder (dense retrieval) (default: bm25)",
    )
    p.add_argument("--negatives", type=_positive_int, default=7, help="hard negatives per group (default: 7)")
    p.add_argument("--mining-depth", type=_positive_int, default=30, help="first-stage depth to sample from")
    p.add_argument("--max-positives", type=_positive_int, default=2, help="groups per query (default: 2)")
    p.add_argument(
        "--teacher-model",
        metavar="PATH_OR_ID",
        help="distil a sentence-transformers bi-encoder: its cosine of every text of a group is mixed into "
        "the group's target (useful where the judged labels are few or loose)",
    )
    p.add_argument(
        "--distill-weight", type=float, default=0.5, help="the teacher's share of the target (default: 0.5)"
    )
    p.add_argument(
        "--distill-temperature",
        type=float,
        default=0.05,
        help="softmax temperature on the teacher's cosines (default: 0.05)",
    )
    p.add_argument("--epochs", type=_positive_int, default=1)
    p.add_argument("--batch-size", type=_positive_int, default=16, help="groups per step (default: 16)")
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--max-length", type=_positive_int, default=256, help="tokens per pair (default: 256)")
    p.add_argument("--evals-per-epoch", type=_positive_int, default=1)
    p.add_argument("--bf16", choices=("auto", "on", "off"), default="auto", help="bfloat16 autocast")
    p.add_argument("--save-dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    p.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(handler=_cmd_finetune)


def _first_stage(spec: str, ids: list[str], texts: list[str]) -> Any:
    from rerank_core.eval import BM25Retriever, DenseRetriever

    if spec.strip().lower() == "bm25":
        return BM25Retriever(ids, texts)
    return DenseRetriever(ids, texts, model=spec)


def _cmd_finetune(args: argparse.Namespace) -> int:
    from rerank_core.eval.beir import available_splits, corpus_texts, load_beir
    from rerank_core.train import (
        add_bi_encoder_teacher,
        dev_set_from_beir,
        finetune,
        groups_from_beir,
        groups_from_rows,
        read_rows,
        split_queries,
    )

    if not args.data_dirs and not args.rows:
        raise _UsageError("give at least one DATA_DIR or --rows FILE")
    if not 0 < args.dev_fraction < 1:
        raise _UsageError(f"--dev-fraction: must be between 0 and 1, got {args.dev_fraction}")
    if not 0 <= args.distill_weight <= 1:
        raise _UsageError(f"--distill-weight: must be between 0 and 1, got {args.distill_weight}")
    if not args.distill_temperature > 0:
        raise _UsageError(f"--distill-temperature: must be > 0, got {args.distill_temperature}")
    if args.output.exists() and (not args.output.is_dir() or any(args.output.iterdir())):
        raise _UsageError(f"--output: {args.output} exists and is not an empty folder")
    _seed_everything(args.seed, torch_too=True)
    groups: list[Any] = []
    dev_sets: list[Any] = []
    described: list[str] = []
    try:
        for data_dir in args.data_dirs:
            train = load_beir(data_dir, split=args.train_split)
            texts = corpus_texts(train)
            retriever = _first_stage(args.first_stage, list(texts), list(texts.values()))
            qids = list(train.queries)
            if args.dev_split in available_splits(data_dir):
                dev_data, dev_qids = load_beir(data_dir, split=args.dev_split), None
                how = f"{args.dev_split} split"
            else:
                qids, dev_qids = split_queries(qids, args.dev_fraction, seed=args.seed)
                dev_data, how = train, f"{len(dev_qids)} held-out {args.train_split} queries"
            found = groups_from_beir(
                train,
                retriever,
                qids=qids,
                negatives_per_query=args.negatives,
                depth=args.mining_depth,
                max_positives_per_query=args.max_positives,
                seed=args.seed,
                texts=texts,
            )
            groups += found
            dev_sets.append(
                dev_set_from_beir(
                    dev_data,
                    retriever,
                    qids=dev_qids,
                    top_k=args.dev_top_k,
                    max_queries=args.max_dev_queries,
                    texts=texts,
                    name=f"{train.name}-dev",
                )
            )
            described.append(f"{train.name}: {len(found)} groups from {args.train_split}, dev = {how}")
        for rows_file in args.rows:
            found = groups_from_rows(
                read_rows(rows_file),
                negatives_per_query=args.negatives,
                max_positives_per_query=args.max_positives,
                seed=args.seed,
                source=Path(rows_file).name,
            )
            groups += found
            described.append(f"{rows_file}: {len(found)} groups from rows")
    except RerankError as exc:
        raise _UsageError(str(exc)) from exc
    if not groups:
        raise _UsageError("no training groups: no query had both a positive and a negative")
    teacher = ""
    if args.teacher_model:
        try:
            groups = add_bi_encoder_teacher(
                groups, args.teacher_model, device=args.device, show_progress=not args.no_progress
            )
        except RerankError as exc:
            raise _UsageError(f"--teacher-model: {exc}") from exc
        teacher = (
            f"{args.teacher_model} (bi-encoder cosine), {args.distill_weight:g} of each target, "
            f"temperature {args.distill_temperature:g}"
        )
        described.append(f"teacher: {teacher}")
    for line in described:
        print(line, file=sys.stderr)
    result = finetune(
        groups,
        args.output,
        base_model=args.base_model,
        dev_sets=dev_sets,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        evals_per_epoch=args.evals_per_epoch,
        bf16={"auto": "auto", "on": True, "off": False}[args.bf16],
        distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature,
        save_dtype=args.save_dtype,
        device=args.device,
        seed=args.seed,
        progress=not args.no_progress,
        data_description={
            "inputs": "; ".join(described),
            "first_stage": args.first_stage,
            "negatives": f"{args.negatives} per group from the first stage's top {args.mining_depth}",
            **({"teacher": teacher} if teacher else {}),
        },
        command="rerank " + shlex.join(args.argv),
    )
    best = result.best_metrics
    summary = f"saved {result.output_dir} ({result.seconds:.0f} s)"
    if best:
        summary += "; best dev nDCG@10 " + ", ".join(
            f"{d.name} {best[f'{d.name}_ndcg@10']:.4f} (first stage {d.first_stage['ndcg@10']:.4f})"
            for d in dev_sets
        )
    print(summary)
    return EXIT_OK


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rerank`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        argv = list(argv) if argv is not None else sys.argv[1:]
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # report it against the subcommand, whose --help lists its options
            (args.subcommands.get(args.command) or parser).error(
                f"unrecognized arguments: {' '.join(unknown)}"
            )
    except SystemExit as exc:  # --help, or a parse error already reported in one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = f"{parser.prog} {args.command}"
    args.argv = argv
    try:
        return args.handler(args)
    except _UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MissingDependencyError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except RerankError as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())

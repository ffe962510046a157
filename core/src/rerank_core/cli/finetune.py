"""``rerank finetune``: fine-tune a cross-encoder on BEIR folders and/or (query, text, label) rows.

```
rerank finetune [DATA_DIR ...] [--rows FILE ...] --base-model PATH_OR_ID --output DIR [--overwrite|--resume]
```

Argument handling, and the assembly of the training groups and dev sets from the inputs; the training is
:func:`rerank_core.train.finetune`. Until the restructure of issue 15 this was part of
``rerank_core/cli.py``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from rerank_core.cli._common import EXIT_OK, UsageError, one_line, positive_int
from rerank_core.errors import RerankError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``finetune`` to the ``rerank`` subcommands."""
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a cross-encoder on BEIR folders and/or (query, text, label) rows",
        description=(
            "Build query groups (one positive, hard negatives mined with the first stage, judged positives "
            "excluded) from each DATA_DIR's train split and from --rows files, train a cross-encoder from "
            "--base-model with group softmax cross-entropy, evaluate nDCG@10 of the reranked first-stage "
            "candidates on dev (the folder's dev split, or held-out train queries), keep the best checkpoint "
            "and write a model card beside the weights. An interrupted run: --resume continues it from the "
            "last checkpoint saved at a dev evaluation, --overwrite starts it again."
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
    p.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="DIR",
        help="new (or empty) folder for the model; a non-empty one needs --overwrite or --resume",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="delete --output (a previous fine-tuning output: it must hold checkpoints/ or "
        "rerank_finetune.json) and start again",
    )
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from the last checkpoint saved in --output/checkpoints (one is "
        "saved at each dev evaluation; a run without dev data, or stopped before its first evaluation, has "
        "none and cannot resume); give the same data and options",
    )
    p.add_argument("--train-split", default="train", help="qrels split to train on (default: train)")
    p.add_argument("--dev-split", default="dev", help="qrels split for dev, when present (default: dev)")
    p.add_argument(
        "--dev-fraction",
        type=float,
        default=0.1,
        help="share of train queries held out as dev when a folder has no dev split (default: 0.1)",
    )
    p.add_argument("--max-dev-queries", type=positive_int, default=200, help="per dev set (default: 200)")
    p.add_argument(
        "--dev-top-k", type=positive_int, default=20, help="candidates per dev query (default: 20)"
    )
    p.add_argument(
        "--first-stage",
        default="bm25",
        metavar="bm25|PATH_OR_ID",
        help="retriever that mines negatives and makes dev candidates: bm25, or a sentence-transformers "
        "bi-encoder (dense retrieval) (default: bm25)",
    )
    p.add_argument("--negatives", type=positive_int, default=7, help="hard negatives per group (default: 7)")
    p.add_argument("--mining-depth", type=positive_int, default=30, help="first-stage depth to sample from")
    p.add_argument("--max-positives", type=positive_int, default=2, help="groups per query (default: 2)")
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
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--batch-size", type=positive_int, default=16, help="groups per step (default: 16)")
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--max-length", type=positive_int, default=256, help="tokens per pair (default: 256)")
    p.add_argument("--evals-per-epoch", type=positive_int, default=1)
    p.add_argument("--bf16", choices=("auto", "on", "off"), default="auto", help="bfloat16 autocast")
    p.add_argument("--save-dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    p.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rerank finetune`` with parsed ``args``; returns the exit code (a usage error raises)."""
    from rerank_core.eval.loading import seed_everything
    from rerank_core.train import (
        add_bi_encoder_teacher,
        finetune,
        folder_training_data,
        groups_from_rows,
        read_rows,
    )
    from rerank_core.train.finetune import check_output_dir

    if not args.data_dirs and not args.rows:
        raise UsageError("give at least one DATA_DIR or --rows FILE")
    if not 0 < args.dev_fraction < 1:
        raise UsageError(f"--dev-fraction: must be between 0 and 1, got {args.dev_fraction}")
    if not 0 <= args.distill_weight <= 1:
        raise UsageError(f"--distill-weight: must be between 0 and 1, got {args.distill_weight}")
    if not args.distill_temperature > 0:
        raise UsageError(f"--distill-temperature: must be > 0, got {args.distill_temperature}")
    try:  # before any data is read: a refused folder fails at once
        check_output_dir(args.output, resume=args.resume, overwrite=args.overwrite)
    except RerankError as exc:
        raise UsageError(f"--output: {one_line(exc)}") from exc
    seed_everything(args.seed, torch_too=True)
    groups: list[Any] = []
    dev_sets: list[Any] = []
    described: list[str] = []
    try:
        for data_dir in args.data_dirs:
            found, dev, description = folder_training_data(
                data_dir,
                first_stage=args.first_stage,
                train_split=args.train_split,
                dev_split=args.dev_split,
                dev_fraction=args.dev_fraction,
                negatives=args.negatives,
                mining_depth=args.mining_depth,
                max_positives=args.max_positives,
                dev_top_k=args.dev_top_k,
                max_dev_queries=args.max_dev_queries,
                seed=args.seed,
            )
            groups += found
            dev_sets.append(dev)
            described.append(description)
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
        raise UsageError(str(exc)) from exc
    if not groups:
        raise UsageError("no training groups: no query had both a positive and a negative")
    teacher = ""
    if args.teacher_model:
        try:
            groups = add_bi_encoder_teacher(
                groups, args.teacher_model, device=args.device, show_progress=not args.no_progress
            )
        except RerankError as exc:
            raise UsageError(f"--teacher-model: {exc}") from exc
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
        resume=args.resume,
        overwrite=args.overwrite,
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

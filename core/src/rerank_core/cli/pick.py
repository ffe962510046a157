"""``rerank pick``: the fastest configuration of our local back end on your data and model, within an
nDCG@10 tolerance of ``ours torch fp32``.

```
rerank pick DATA_DIR --model PATH [--queries 20] [--top-k 100] [--repeats 3] [--max-ndcg-drop 0.005]
            [--configs NAMES] [--out DIR] [--json OUT.json] [--no-memory] [--list]
rerank pick --from-json RESULTS.json [--max-ndcg-drop 0.005]
```

Every configuration (torch fp32/bf16, onnx, onnx int8, openvino int8, ...: what the installed
``CrossEncoderBackend`` accepts) reranks the BM25 top-k of DATA_DIR's first queries in interleaved rounds
(:mod:`rerank_core.eval.speed`); the table and the pick (with the constructor call to use) are printed.

This module also holds the speed race's command line (:func:`add_speed_arguments` with ``race=True``,
:func:`run_speed`), shared by the deprecated ``rerank bench`` (:mod:`rerank_core.cli.bench`) and
``python benchmarks/speed.py``, which adds the incumbents. Until the restructure of issue 15 this was
``rerank_core/bench/cli.py`` (``rerank bench --pick``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rerank_core.cli._common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    comma_sizes,
    non_negative_float,
    positive_int,
)

__all__ = ["add_parser", "add_speed_arguments", "default_data_dir", "run", "run_speed"]


def default_data_dir() -> Path:
    """``$RERANK_SHARED_DIR/data/scifact``, else ``../shared/data/scifact`` from the current folder (the
    race's default DATA_DIR in this project's layout)."""
    shared = os.environ.get("RERANK_SHARED_DIR")
    return (Path(shared) if shared else Path("..") / "shared") / "data" / "scifact"


def add_speed_arguments(p: argparse.ArgumentParser, *, race: bool) -> None:
    """The options of a speed run. ``race=False``: ``rerank pick`` (DATA_DIR and --model required, our
    configurations chosen with --configs). ``race=True``: the speed race (``python benchmarks/speed.py``,
    ``rerank bench``): this project's data and model by default, --contenders, --pick, results written to
    --out (default benchmarks/results)."""
    if race:
        p.add_argument(
            "data_dir",
            metavar="DATA_DIR",
            nargs="?",
            type=Path,
            help="BEIR-layout folder (default: $RERANK_SHARED_DIR/data/scifact or ../shared/data/scifact)",
        )
        p.add_argument("--model", default="models/reference-reranker", help="local cross-encoder folder")
    else:
        p.add_argument(
            "data_dir",
            metavar="DATA_DIR",
            nargs="?",
            type=Path,
            help="BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/); not needed with --from-json",
        )
        p.add_argument(
            "--model", metavar="PATH", help="local cross-encoder folder (required unless --from-json)"
        )
    p.add_argument("--split", default="test", help="qrels split (default: test)")
    p.add_argument(
        "--queries", type=positive_int, default=20, help="first N queries of the split (default: 20)"
    )
    p.add_argument("--top-k", type=positive_int, default=100, help="BM25 candidates per query (default: 100)")
    p.add_argument("--repeats", type=positive_int, default=3, help="interleaved rounds (default: 3)")
    p.add_argument(
        "--latency-sizes",
        type=comma_sizes,
        default=(10, 50, 100),
        metavar="N,N,...",
        help="default: 10,50,100",
    )
    p.add_argument(
        "--latency-queries",
        type=positive_int,
        default=5,
        help="queries timed at each smaller size (default: 5)",
    )
    if race:
        p.add_argument(
            "--contenders",
            metavar="NAMES",
            help="comma-separated names, name prefixes or families (ours, sentence-transformers, langchain, "
            "llama-index, rerankers, flashrank; default: all, or ours and the baseline with --pick)",
        )
        p.add_argument(
            "--out", type=Path, default=Path("benchmarks/results"), help="folder for results.md/.json/.png"
        )
    else:
        p.add_argument(
            "--configs",
            metavar="NAMES",
            help="comma-separated names or name prefixes of our configurations (default: all; see --list)",
        )
        p.add_argument("--out", type=Path, metavar="DIR", help="also write results.md/.json/.png here")
    p.add_argument(
        "--calibration-split",
        default="train",
        help="qrels split whose queries' BM25 top-10 calibrate 'ours openvino int8 calibrated' "
        "(default: train; 'none' skips that configuration); never the measured split",
    )
    p.add_argument(
        "--calibration-queries",
        type=positive_int,
        default=20,
        help="calibration queries x top-10 = pairs (default: 20, so 200 pairs)",
    )
    p.add_argument("--json", type=Path, metavar="OUT.json", help="also write the JSON results here")
    p.add_argument(
        "--cache-dir",
        type=Path,
        help="exports (ONNX) go here (default: OUT/cache"
        + (")" if race else ", or the back end's cache without --out)"),
    )
    p.add_argument("--no-memory", action="store_true", help="skip the per-configuration memory subprocesses")
    p.add_argument("--no-chart", action="store_true", help="no PNG (matplotlib not needed)")
    p.add_argument("--list", action="store_true", help="list who would run and whether each can, then exit")
    if race:
        p.add_argument(
            "--pick", action="store_true", help="print the fastest of our configurations within tolerance"
        )
    p.add_argument(
        "--max-ndcg-drop",
        type=non_negative_float,
        default=0.005,
        help="tolerance of the pick vs ours torch fp32 (default: 0.005)",
    )
    p.add_argument("--from-json", type=Path, metavar="RESULTS.json", help="pick from a saved result, no run")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def add_parser(subparsers: Any) -> None:
    """Add ``pick`` to the ``rerank`` subcommands."""
    p = subparsers.add_parser(
        "pick",
        help="the fastest configuration of our local back end on your data, within an nDCG@10 tolerance",
        description=(
            "Rerank the BM25 top-k of a BEIR folder with your model through every local configuration of "
            "our back end the installed version accepts (torch fp32/bf16, onnx, onnx int8, openvino int8, "
            "...), in interleaved rounds; print pairs/s, latency p50/p95, peak memory and nDCG@10 of each, "
            "then the fastest whose nDCG@10 is within --max-ndcg-drop of ours torch fp32, with the "
            "constructor call to use."
        ),
    )
    add_speed_arguments(p, race=False)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rerank pick`` with parsed ``args``; returns the exit code (a usage error raises)."""
    from rerank_core.eval.speed import our_specs

    if args.from_json is None and not args.list:
        if args.data_dir is None:
            raise UsageError("give DATA_DIR (a BEIR-layout folder), or --from-json RESULTS.json")
        if args.model is None:
            raise UsageError("--model: give the local cross-encoder folder to time")
    return run_speed(args, specs=our_specs(), race=False)


def _select(specs: Sequence[Any], args: argparse.Namespace, race: bool) -> list[Any]:
    from rerank_core.eval.speed import select_specs

    if not race:
        try:
            return select_specs(specs, args.configs)
        except ValueError as exc:
            raise UsageError(f"--configs{str(exc).removeprefix('contenders')}") from exc
    selection = args.contenders
    if selection is None and args.pick:  # ours, and the baseline of the ratios when a plugin brings one
        selection = ",".join(["ours", *(s.name for s in specs if s.baseline)])
    try:
        return select_specs(specs, selection)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from exc


def _calibration(
    args: argparse.Namespace, data_dir: Path, chosen: Sequence[Any]
) -> tuple[list[tuple[str, str]] | None, str]:
    """The in-domain calibration pairs of ``--calibration-split`` and their description; None (the
    calibrated configuration is then skipped with a reason) when it is not selected, the split is 'none',
    or the folder has no such split."""
    from rerank_core.eval.speed import calibration_pairs

    split = str(args.calibration_split).strip()
    if split.lower() == "none" or not any(s.info.get("options", {}).get("calibration_pairs") for s in chosen):
        return None, ""
    if split == args.split:
        raise UsageError(
            f"--calibration-split: {split!r} is the measured split; calibrate on other queries (e.g. train)"
        )
    if not (data_dir / "qrels" / f"{split}.tsv").is_file():
        return None, f"no {split} split in {data_dir}"
    try:
        return calibration_pairs(data_dir, split=split, queries=args.calibration_queries)
    except ValueError as exc:
        raise UsageError(f"--calibration-split: {exc}") from exc


def run_speed(args: argparse.Namespace, *, specs: Sequence[Any], race: bool) -> int:
    """Time ``specs`` (filtered by --configs or --contenders) as ``args`` say, print the table and (for
    ``rerank pick``, or the race's --pick) the pick; or, with --list or --from-json, only list or pick.

    ``args.prog`` names the command in messages, ``args.command_line`` (else ``rerank`` and ``args.argv``)
    is recorded in the result. Returns the exit code; a bad argument raises :class:`UsageError`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rerank_core.eval.speed import (
        REFERENCE,
        BenchConfig,
        BenchResult,
        beir_workload,
        markdown,
        pick_fastest,
        run_bench,
        write_outputs,
    )

    prog = getattr(args, "prog", "rerank pick")
    pick = not race or args.pick
    if args.list:
        for spec in specs:
            print(f"{spec.name:40} {spec.unavailable() or 'ready'}")
        return EXIT_OK
    if args.from_json is not None:
        if not pick:
            raise UsageError("--from-json: only with --pick")
        try:
            result = BenchResult.from_dict(json.loads(args.from_json.read_text()))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise UsageError(f"--from-json: cannot read {args.from_json}: {exc}") from exc
        try:
            print(pick_fastest(result, args.max_ndcg_drop).text(), end="")
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        return EXIT_OK
    chosen = _select(specs, args, race)
    model = Path(args.model).expanduser()
    if not (model / "config.json").is_file():
        raise UsageError(
            f"--model: {model} is not a local model folder (no config.json); the benchmark runs offline"
        )
    data_dir = args.data_dir or default_data_dir()
    if not data_dir.is_dir():
        raise UsageError(f"DATA_DIR: {data_dir} is not a folder (give a BEIR-layout folder)")
    calibration, calibration_source = _calibration(args, data_dir, chosen)
    cache_dir = args.cache_dir or (args.out / "cache" if args.out is not None else None)
    try:
        workload = beir_workload(data_dir, split=args.split, queries=args.queries, top_k=args.top_k)
        config = BenchConfig(
            calibration_pairs=calibration,
            calibration_source=calibration_source,
            model=str(model),
            repeats=args.repeats,
            latency_sizes=args.latency_sizes,
            latency_queries=args.latency_queries,
            memory=not args.no_memory,
            cache_dir=None if cache_dir is None else cache_dir.resolve(),
            baseline=next((s.name for s in chosen if s.baseline), REFERENCE),
        )
    except ValueError as exc:  # InvalidInputError names data_dir; BenchConfig names its field
        raise UsageError(str(exc)) from exc
    result = run_bench(chosen, workload, config, progress=not args.quiet)
    result.command = getattr(args, "command_line", None) or "rerank " + shlex.join(
        getattr(args, "argv", None) or ["pick"]
    )
    paths = {} if args.out is None else write_outputs(result, args.out, chart=not args.no_chart)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    print(markdown(result))
    if paths:
        print("written: " + ", ".join(str(p) for p in paths.values()))
        if not args.no_chart and "png" not in paths:
            print("no PNG: matplotlib is not installed (pip install -r benchmarks/requirements.txt)")
    if pick:
        try:
            print(pick_fastest(result, args.max_ndcg_drop).text(), end="")
        except ValueError as exc:
            print(f"{prog}: error: no pick: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    return EXIT_OK

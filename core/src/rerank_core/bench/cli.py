"""``rerank bench``: the speed benchmark on the command line (also ``python benchmarks/speed.py``).

```
rerank bench [DATA_DIR] [--model PATH] [--queries 20] [--top-k 100] [--repeats 3] [--contenders all]
             [--out benchmarks/results] [--json OUT.json] [--no-memory] [--list]
rerank bench --pick [--max-ndcg-drop 0.005] [--from-json RESULTS.json]
```
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

__all__ = ["add_bench_parser", "default_data_dir", "main", "run_from_args"]

EXIT_OK, EXIT_USAGE = 0, 2


def default_data_dir() -> Path:
    """``$RERANK_SHARED_DIR/data/scifact``, else ``../shared/data/scifact`` from the current folder."""
    shared = os.environ.get("RERANK_SHARED_DIR")
    return (Path(shared) if shared else Path("..") / "shared") / "data" / "scifact"


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(v) for v in value.split(",") if v.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {value!r}"
        ) from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {value!r}")
    return sizes


def _drop(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}") from None
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return number


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to a ``rerank`` sub-parser set (the handler is :func:`run_from_args`)."""
    p = subparsers.add_parser(
        "bench",
        help="speed benchmark: our local back end in every configuration against every incumbent",
        description=(
            "Rerank the BM25 top-k of a BEIR folder with the same model through our back end (each local "
            "option the installed version accepts) and the incumbents (sentence-transformers predict/rank, "
            "LangChain, LlamaIndex, rerankers, FlashRank), in interleaved rounds; report pairs/s, latency "
            "p50/p95, peak memory, nDCG@10 and the share of the measured matmul ceiling as Markdown, PNG "
            "and JSON. --pick prints the fastest of our configurations within an nDCG@10 tolerance."
        ),
    )
    p.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        nargs="?",
        type=Path,
        help="BEIR-layout folder (default: $RERANK_SHARED_DIR/data/scifact or ../shared/data/scifact)",
    )
    p.add_argument("--model", default="models/reference-reranker", help="local cross-encoder folder")
    p.add_argument("--split", default="test", help="qrels split (default: test)")
    p.add_argument("--queries", type=_positive, default=20, help="first N queries of the split (default: 20)")
    p.add_argument("--top-k", type=_positive, default=100, help="BM25 candidates per query (default: 100)")
    p.add_argument("--repeats", type=_positive, default=3, help="interleaved rounds (default: 3)")
    p.add_argument(
        "--latency-sizes", type=_sizes, default=(10, 50, 100), metavar="N,N,...", help="default: 10,50,100"
    )
    p.add_argument(
        "--latency-queries", type=_positive, default=5, help="queries timed at each smaller size (default: 5)"
    )
    p.add_argument(
        "--contenders",
        metavar="NAMES",
        help="comma-separated names, name prefixes or families (ours, sentence-transformers, langchain, "
        "llama-index, rerankers, flashrank; default: all, or 'ours,st predict' with --pick)",
    )
    p.add_argument(
        "--out", type=Path, default=Path("benchmarks/results"), help="folder for results.md/.json/.png"
    )
    p.add_argument(
        "--calibration-split",
        default="train",
        help="qrels split whose queries' BM25 top-10 calibrate 'ours openvino int8 calibrated' "
        "(default: train; 'none' skips that contender); never the measured split",
    )
    p.add_argument(
        "--calibration-queries",
        type=_positive,
        default=20,
        help="calibration queries x top-10 = pairs (default: 20, so 200 pairs)",
    )
    p.add_argument("--json", type=Path, metavar="OUT.json", help="also write the JSON results here")
    p.add_argument("--cache-dir", type=Path, help="exports (ONNX) go here (default: OUT/cache)")
    p.add_argument("--no-memory", action="store_true", help="skip the per-contender memory subprocesses")
    p.add_argument("--no-chart", action="store_true", help="no PNG (matplotlib not needed)")
    p.add_argument(
        "--list", action="store_true", help="list the contenders and whether each can run, then exit"
    )
    p.add_argument(
        "--pick", action="store_true", help="print the fastest of our configurations within tolerance"
    )
    p.add_argument(
        "--max-ndcg-drop",
        type=_drop,
        default=0.005,
        help="tolerance for --pick vs ours torch fp32 (default: 0.005)",
    )
    p.add_argument(
        "--from-json", type=Path, metavar="RESULTS.json", help="--pick from a saved result, no run"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=run_from_args)
    return p


def _error(message: str) -> int:
    print(f"rerank bench: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _calibration(
    args: argparse.Namespace, data_dir: Path, chosen: Sequence[Any]
) -> tuple[list[tuple[str, str]] | str | None, str]:
    """The in-domain calibration pairs (query, BM25 top-10 text) from ``--calibration-split``.

    Returns (pairs or None, a description), or (an error message, "") for a bad argument. None (the
    calibrated contender is then skipped with a reason) when it is not selected, the split is 'none', or
    the folder has no such split.
    """
    split = str(args.calibration_split).strip()
    if split.lower() == "none" or not any(s.info.get("options", {}).get("calibration_pairs") for s in chosen):
        return None, ""
    if split == args.split:
        return (
            f"--calibration-split: {split!r} is the measured split; calibrate on other queries (e.g. train)",
            "",
        )
    if not (data_dir / "qrels" / f"{split}.tsv").is_file():
        return None, f"no {split} split in {data_dir}"
    from rerank_core.bench.harness import beir_workload

    try:
        cal = beir_workload(data_dir, split=split, queries=args.calibration_queries, top_k=10)
    except ValueError as exc:
        return f"--calibration-split: {exc}", ""
    pairs = [(q, t) for q, texts in zip(cal.queries, cal.texts, strict=True) for t in texts]
    return pairs, f"{len(pairs)} pairs: BM25 top-10 of the first {len(cal.queries)} {split} queries"


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``rerank bench`` with parsed ``args``; returns the exit code (2 for a bad argument)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rerank_core.bench.contenders import contender_specs, select_specs
    from rerank_core.bench.harness import BenchConfig, BenchResult, beir_workload, run_bench
    from rerank_core.bench.report import markdown, pick_fastest, write_outputs

    specs = contender_specs()
    if args.list:
        for spec in specs:
            print(f"{spec.name:40} {spec.unavailable() or 'ready'}")
        return EXIT_OK
    if args.from_json is not None:
        if not args.pick:
            return _error("--from-json: only with --pick")
        try:
            result = BenchResult.from_dict(json.loads(args.from_json.read_text()))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            return _error(f"--from-json: cannot read {args.from_json}: {exc}")
        try:
            print(pick_fastest(result, args.max_ndcg_drop).text(), end="")
        except ValueError as exc:
            return _error(str(exc))
        return EXIT_OK
    selection = args.contenders if args.contenders is not None else ("ours,st predict" if args.pick else None)
    try:
        chosen = select_specs(specs, selection)
    except ValueError as exc:
        return _error(f"--{exc}")
    model = Path(args.model).expanduser()
    if not (model / "config.json").is_file():
        return _error(
            f"--model: {model} is not a local model folder (no config.json); the benchmark runs offline"
        )
    data_dir = args.data_dir or default_data_dir()
    if not data_dir.is_dir():
        return _error(f"DATA_DIR: {data_dir} is not a folder (give a BEIR-layout folder)")
    calibration, calibration_source = _calibration(args, data_dir, chosen)
    if isinstance(calibration, str):
        return _error(calibration)
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
            cache_dir=(args.cache_dir or args.out / "cache").resolve(),
        )
    except ValueError as exc:  # InvalidInputError names data_dir; BenchConfig names its field
        return _error(str(exc))
    result = run_bench(chosen, workload, config, progress=not args.quiet)
    result.command = "rerank " + shlex.join(getattr(args, "argv", None) or ["bench"])
    paths = write_outputs(result, args.out, chart=not args.no_chart)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(paths["json"].read_text())
    print(markdown(result))
    print("written: " + ", ".join(str(p) for p in paths.values()))
    if not args.no_chart and "png" not in paths:
        print("no PNG: matplotlib is not installed (pip install -r benchmarks/requirements.txt)")
    if args.pick:
        try:
            print(pick_fastest(result, args.max_ndcg_drop).text(), end="")
        except ValueError as exc:
            print(f"rerank bench: --pick: {exc}", file=sys.stderr)
            return 1
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``benchmarks/speed.py``): the same options as ``rerank bench``."""
    from rerank_core.cli import main as rerank_main

    return rerank_main(["bench", *(sys.argv[1:] if argv is None else argv)])

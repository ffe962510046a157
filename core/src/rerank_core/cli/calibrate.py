"""``rerank calibrate``: fit a calibration of a cross-encoder's scores on a BEIR split and store it.

```
rerank calibrate DATA_DIR --model PATH_OR_ID --split dev [--eval-split test] [--methods platt,isotonic]
                 [--store platt] [--output PATH] [--top-k 100] [--max-queries N] [--json OUT.json]
rerank calibrate --rows labelled.tsv [--eval-rows held-out.tsv] --model PATH_OR_ID [...]
```

With ``--rows`` the labelled pairs are your own (query, text, label) rows (``.tsv``/``.csv``/``.jsonl``, as
``rerank finetune --rows`` reads them; label 0, or 1 and more for relevant) instead of a BEIR split's.

The first stage (BM25) retrieves the top-k of every query of ``--split``; the model scores them; each method
is fitted on those labelled pairs (grade >= 1 is relevant) and reported with its ECE and Brier score there
and, with ``--eval-split``, on that split's pairs (held out: never fit on the split you report), beside the
uncalibrated scores (the sigmoid of a logit model's scores). The F1-optimal threshold of the calibrated
scores is fitted on ``--split`` and, with ``--eval-split``, applied there beside the best threshold chosen
on that split itself. The ``--store`` method's calibration is written to ``--output`` (default: the model's
folder, as ``calibration.json``, where ``Reranker(calibration="model")`` and ``rerank eval --calibration
model`` find it). Argument handling only: the work is :mod:`rerank_core.eval.calibration`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from rerank_core.cli._common import EXIT_OK, UsageError, check_output_file, one_line, positive_int
from rerank_core.errors import MissingDependencyError, RerankError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``calibrate`` to the ``rerank`` subcommands."""
    p = subparsers.add_parser(
        "calibrate",
        help="fit a calibration (Platt, temperature, isotonic) of a cross-encoder on a BEIR split",
        description=(
            "Fit P(relevant) calibrations of a cross-encoder's scores on the BM25 top-k of a BEIR split's "
            "queries, report ECE/Brier (and F1 thresholds) there and on a held-out split, and store one "
            "beside the model."
        ),
    )
    p.add_argument(
        "data_dir", type=Path, nargs="?", help="a BEIR-layout folder (corpus.jsonl, queries, qrels/)"
    )
    p.add_argument("--model", required=True, help="cross-encoder path or Hugging Face id")
    p.add_argument("--split", help="the qrels split to fit on (train or dev; not test)")
    p.add_argument("--eval-split", help="a held-out split to measure the fits on (e.g. test)")
    p.add_argument("--rows", type=Path, help="fit on your own (query, text, label) rows instead of a split")
    p.add_argument("--eval-rows", type=Path, help="held-out (query, text, label) rows to measure the fits on")
    p.add_argument(
        "--methods",
        default="platt,temperature,isotonic",
        help="comma-separated methods to fit and report (default: platt,temperature,isotonic)",
    )
    p.add_argument(
        "--store", default="platt", help="the method whose calibration is written (default: platt)"
    )
    p.add_argument(
        "--output",
        type=Path,
        help="file or folder to write the calibration to (default: the model folder's calibration.json)",
    )
    p.add_argument("--top-k", type=positive_int, default=100, help="BM25 candidates per query (default: 100)")
    p.add_argument("--max-queries", type=positive_int, help="fit on the first N queries of --split")
    p.add_argument("--eval-max-queries", type=positive_int, help="measure on the first N of --eval-split")
    p.add_argument("--batch-size", type=positive_int, default=32, help="pairs per model batch (default: 32)")
    p.add_argument("--device", help="torch device (default: automatic)")
    p.add_argument("--json", type=Path, help="also write every figure as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=run)


def _methods(spec: str, store: str) -> list[str]:
    from rerank_core.calibration import CALIBRATION_METHODS

    methods = [m.strip() for m in spec.split(",") if m.strip()]
    unknown = [m for m in methods if m not in CALIBRATION_METHODS]
    if not methods or unknown:
        raise UsageError(f"--methods: choose from {', '.join(CALIBRATION_METHODS)}, got {spec!r}")
    if store not in methods:
        raise UsageError(f"--store {store!r}: not among --methods ({', '.join(methods)})")
    return list(dict.fromkeys(methods))


def _output(args: argparse.Namespace) -> Path:
    if args.output is not None:
        target = args.output.expanduser()
        if target.is_dir() or target.suffix != ".json":
            if not target.is_dir():
                raise UsageError(f"--output {target}: give an existing folder or a .json file")
            return target / "calibration.json"
        check_output_file(target, "--output")
        return target
    folder = Path(args.model).expanduser()
    if not folder.is_dir():
        raise UsageError(
            f"--model {args.model} is not a local folder: give --output to store the calibration"
        )
    return folder / "calibration.json"


def run(args: argparse.Namespace) -> int:
    """Run ``rerank calibrate`` with parsed ``args``; returns the exit code (a usage error raises)."""
    from rerank_core.eval import loading
    from rerank_core.eval.beir import load_beir
    from rerank_core.eval.calibration import calibrate_on_beir, calibrate_rows, format_fits
    from rerank_core.train.data import read_rows

    started = time.perf_counter()
    methods = _methods(args.methods, args.store)
    if (args.rows is None) == (args.data_dir is None):
        raise UsageError("give a DATA_DIR with --split, or --rows FILE (one of them)")
    if args.rows is None and args.split is None:
        raise UsageError("DATA_DIR needs --split: the split to fit on (train or dev)")
    if args.rows is not None and (args.split or args.eval_split):
        raise UsageError("--split / --eval-split go with a DATA_DIR; with --rows use --eval-rows")
    if args.rows is None and args.eval_rows is not None:
        raise UsageError("--eval-rows goes with --rows")
    if args.eval_split is not None and args.eval_split == args.split:
        raise UsageError(
            f"--eval-split {args.eval_split}: that is the split being fitted on; hold out another"
        )
    output = _output(args)
    check_output_file(args.json, "--json")
    fit_data = held_data = rows = held_rows = None
    try:
        if args.rows is not None:
            rows = read_rows(args.rows)
            held_rows = None if args.eval_rows is None else read_rows(args.eval_rows)
        else:
            fit_data = load_beir(args.data_dir, split=args.split)
            held_data = None if args.eval_split is None else load_beir(args.data_dir, split=args.eval_split)
    except RerankError as exc:
        raise UsageError(str(exc)) from exc
    loading.seed_everything(0, torch_too=True)
    try:
        reranker = loading.load_cross_encoder_reranker(
            args.model, device=args.device, batch_size=args.batch_size
        )
    except MissingDependencyError:
        raise
    except (RerankError, OSError, ValueError, RuntimeError, AssertionError) as exc:
        raise UsageError(f"--model {args.model}: could not load it ({one_line(exc)})") from exc
    source = args.split if rows is None else str(args.rows)
    try:
        if rows is not None:
            result = calibrate_rows(
                reranker,
                rows,
                held_rows,
                methods=methods,
                fitted_on={"model": args.model, "rows": str(args.rows)},
            )
        else:
            result = calibrate_on_beir(
                reranker,
                fit_data,
                held_data,
                top_k=args.top_k,
                methods=methods,
                max_queries=args.max_queries,
                held_out_max_queries=args.eval_max_queries,
                fitted_on={"model": args.model},
                progress=not args.no_progress,
            )
    except RerankError as exc:
        raise UsageError(f"cannot fit on {source}: {exc}") from exc
    if args.store not in result.fits:
        raise UsageError(
            f"--store {args.store}: it could not be fitted on these scores; store another method"
        )
    held = (
        ""
        if result.held_out_pairs is None
        else f"; held out {args.eval_split or args.eval_rows} ({result.held_out_pairs} pairs, "
        f"{result.held_out_positives} relevant)"
    )
    name = "rows" if fit_data is None else fit_data.name
    print(
        f"{name}: fit on {source} ({result.fit_queries} queries, {result.fit_pairs} pairs, "
        f"{result.fit_positives} relevant){held}"
    )
    print(format_fits(result.fits, result.before))
    chosen = result.fits[args.store]
    calibration = dataclasses.replace(
        chosen.calibration, fitted_on={**chosen.calibration.fitted_on, "threshold_f1": chosen.threshold}
    )
    written = calibration.save(output)
    print(f"wrote {written} ({calibration.describe()})")
    if args.json is not None:
        payload = {
            "data": name,
            "split": source,
            "eval_split": args.eval_split or (None if args.eval_rows is None else str(args.eval_rows)),
            "top_k": args.top_k,
            "model": args.model,
            **result.to_dict(),
            "stored": str(written),
            "seconds": round(time.perf_counter() - started, 3),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return EXIT_OK

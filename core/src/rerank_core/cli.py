"""The ``rerank`` command line.

```
rerank eval DATA_DIR [--model PATH_OR_ID | --model none] [--top-k 100] [--split test] [--json OUT.json]
```

Exit codes: 0 success, 1 a failure while running (back end error, missing optional package),
2 bad arguments (unknown option, missing data folder or split, a model that cannot be loaded).
More subcommands (``bench``, ``finetune``) plug in through :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import json
import random
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
        help="BM25 first stage (+ optional cross-encoder rerank) on a BEIR-layout folder",
        description=(
            "Retrieve the top-k documents of every query with BM25 (bm25s, English stemming and "
            "stopwords), optionally rerank them with a cross-encoder, and report nDCG@10, MRR@10 and "
            "Recall@k of both stages."
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


def _build_reranker(model: str, *, device: str | None, max_length: int | None, batch_size: int) -> Any:
    """Load the local cross-encoder behind a :class:`rerank_core.Reranker` that keeps every candidate."""
    from rerank_core import Reranker
    from rerank_core.backends import CrossEncoderBackend

    backend = CrossEncoderBackend(model, device=device, max_length=max_length, batch_size=batch_size)
    # Load now (the back end loads lazily) so that a bad --model or --device fails before the first stage.
    _ = backend.model
    return Reranker(backend)


def _format_table(report: Any) -> str:
    keys = list(report.first_stage)
    rows = [("first stage (BM25)", report.first_stage)]
    if report.reranked is not None:
        rows.append(("reranked", report.reranked))
    label_w = max(len(label) for label, _ in rows)
    col_w = max(10, *(len(k) for k in keys))
    lines = [
        f"{report.dataset} ({report.split}): {report.queries} queries, {report.corpus_size} documents, "
        f"BM25 top-{report.top_k}" + (f", reranked by {report.model}" if report.model else ""),
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

    try:
        dataset = load_beir(args.data_dir, split=args.split)
    except RerankError as exc:
        raise _UsageError(str(exc)) from exc

    reranker = None
    load_seconds = 0.0
    if use_model:
        t = time.perf_counter()
        try:
            reranker = _build_reranker(
                args.model, device=args.device, max_length=args.max_length, batch_size=args.batch_size
            )
        except MissingDependencyError:
            raise
        except (RerankError, OSError, ValueError, RuntimeError, AssertionError) as exc:
            # AssertionError/RuntimeError: torch refusing a --device it cannot use.
            raise _UsageError(f"--model {args.model}: could not load it ({_one_line(exc)})") from exc
        load_seconds = time.perf_counter() - t

    report = run_eval(
        dataset,
        reranker=reranker,
        top_k=args.top_k,
        max_queries=args.max_queries,
        chunk_size=args.queries_per_call,
        progress=not args.no_progress,
        model=args.model if use_model else None,
    )
    if use_model:
        report.timings = {"load_model": load_seconds, **report.timings}
    report.seconds = time.perf_counter() - started

    print(_format_table(report))
    if args.json is not None:
        payload = report.to_dict()
        payload["max_queries"] = args.max_queries
        if use_model:
            payload["model_options"] = {
                "device": args.device,
                "max_length": args.max_length,
                "batch_size": args.batch_size,
            }
        payload["seed"] = args.seed
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return EXIT_OK


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rerank`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(list(argv) if argv is not None else None)
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

"""``rerank batch``: rerank a JSONL or Parquet file (or folder) of queries with their candidates, offline.

```
rerank batch INPUT OUTPUT --model PATH_OR_ID [--config FILE] [--recipe NAME] [--top-n N]
             [--engine local|ray] [--address ADDR] [--actors N] [--actor-gpus G] [--batch-rows N]
             [--part-rows N] [--limit N] [--resume/--no-resume] [--retry-errors]
             [--max-line-bytes N] [--no-progress]
```

INPUT rows are ``{"query_id", "query", "candidates": [{"id", "text", "score"?}], "instruction"?}``; OUTPUT
is a ``.jsonl`` file, or a folder of part files (``.parquet`` parts when its name ends in ``.parquet``).
A rerun with the same OUTPUT skips the query ids already written. The pipeline is ``--config``'s (a
:mod:`rerank_core.pipeline_config` file; its ``[batch]`` table gives defaults for this command's options),
with ``--model`` (which replaces the file's model or described ``[reranker]``, as in ``rerank serve``),
``--recipe`` and ``--top-n`` on top. Progress goes to stderr, then one summary line.
Exit codes: 0 done (rows that failed are in the output with their error), 1 a failure while running
(the back end failing for every row included: nothing is written for those rows), 2 bad arguments, bad
input (the file and line are named) or an OUTPUT another run holds locked. See docs/batch.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rerank_core.cli._common import EXIT_OK, UsageError, non_negative_float, one_line, positive_int
from rerank_core.errors import ConfigurationError

__all__ = ["add_parser", "run"]

#: The keys of a configuration file's ``[batch]`` table: defaults for the options of the same name.
BATCH_KEYS = (
    "engine",
    "address",
    "actors",
    "actor_gpus",
    "batch_rows",
    "part_rows",
    "top_n",
    "max_line_bytes",
)
_DEFAULTS = {
    "engine": "local",
    "actors": 1,
    "actor_gpus": 0.0,
    "batch_rows": 32,
    "part_rows": 1000,
    "max_line_bytes": 64 * 1024 * 1024,
}


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value!r}")
    return number


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("batch", help="rerank a JSONL/Parquet file of queries offline (local or Ray)")
    p.add_argument("input", metavar="INPUT", help="a .jsonl or .parquet file, or a folder of them")
    p.add_argument(
        "output",
        metavar="OUTPUT",
        help="a .jsonl file, or a folder of part files (.parquet parts if it ends in .parquet)",
    )
    p.add_argument("--model", help="local folder or Hugging Face id (default: --config's)")
    p.add_argument("--config", type=Path, help="a pipeline configuration file (.json or .toml)")
    p.add_argument("--recipe", help="a recipe name, or auto (default: --config's; none for cross-encoders)")
    p.add_argument("--top-n", type=positive_int, help="keep the best N candidates per query")
    p.add_argument("--engine", choices=("local", "ray"), help="where to run (default: local)")
    p.add_argument(
        "--address", help="Ray: the cluster to join ('auto' under ray job submit; default: a local Ray)"
    )
    p.add_argument("--actors", type=positive_int, help="Ray: how many reranker actors (default: 1)")
    p.add_argument("--actor-gpus", type=non_negative_float, help="Ray: GPUs per actor (default: 0)")
    p.add_argument("--batch-rows", type=positive_int, help="rows ranked together in one call (default: 32)")
    p.add_argument(
        "--part-rows", type=positive_int, help="rows per part file of a folder OUTPUT (default: 1000)"
    )
    p.add_argument("--limit", type=_count, help="stop after N new rows (rerun to go on)")
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip query ids already in OUTPUT (default); --no-resume refuses a non-empty OUTPUT",
    )
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="rank again the rows OUTPUT holds with an error (they are removed from OUTPUT, then rewritten)",
    )
    p.add_argument(
        "--max-line-bytes",
        type=positive_int,
        help="a longer JSONL input line becomes an error row, unread (default: 64 MiB)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the summary line stays)")
    p.set_defaults(handler=run)


def _batch_table(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The ``[batch]`` table, every value checked (a usage error naming ``batch.KEY`` otherwise)."""
    from rerank_core.batch import check_arguments

    table = data.get("batch") or {}
    if not isinstance(table, dict):
        raise UsageError(f"--config: {path}: [batch] must be a table")
    unknown = sorted(set(table) - set(BATCH_KEYS))
    if unknown:
        raise UsageError(
            f"--config: {path}: batch.{unknown[0]} is not a key; the keys are {', '.join(BATCH_KEYS)}"
        )
    for key, value in table.items():
        try:
            if key == "top_n":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigurationError("top_n", f"must be an integer >= 1, got {value!r}")
            else:
                check_arguments(**{key: value})
        except ConfigurationError as exc:
            raise UsageError(f"--config: {path}: batch.{key} {_message(exc)}") from exc
    return table


def _message(exc: ConfigurationError) -> str:
    text = one_line(exc)
    name = getattr(exc, "name", None) or getattr(exc, "argument", None)
    return text.split(": ", 1)[1] if name and text.startswith(f"{name}: ") else text


def _setting(args: argparse.Namespace, table: dict[str, Any], name: str) -> Any:
    value = getattr(args, name)
    if value is None:
        value = table.get(name, _DEFAULTS.get(name))
    return value


def run(args: argparse.Namespace) -> int:
    from rerank_core.batch import run_batch
    from rerank_core.pipeline_config import PipelineConfig, read_config_file

    data: dict[str, Any] = {}
    try:
        if args.config is not None:
            data = read_config_file(args.config)
        table = _batch_table(data, args.config) if args.config is not None else {}
        if args.config is None:
            if args.model is None:
                raise UsageError("--model: required (or give --config with a model)")
            config = PipelineConfig(model=args.model)
        else:  # --model replaces the file's model or described reranker, as in rerank serve
            base = {k: v for k, v in data.items() if k != "batch"}
            if args.model is not None:
                base["model"], base["reranker"] = args.model, None
            config = PipelineConfig.from_mapping(base, "--config")
        top_n = _setting(args, table, "top_n")
        config = config.replace(recipe=args.recipe, options=None if top_n is None else {"top_n": top_n})
    except ConfigurationError as exc:
        raise UsageError(one_line(exc)) from exc
    engine = _setting(args, table, "engine")
    try:
        summary = _run(args, table, config, engine, run_batch)
    except ConfigurationError as exc:  # a model that cannot be built, a bad [batch] value: not a row's
        raise UsageError(one_line(exc)) from exc
    print(f"{args.prog}: {summary.line()}", file=sys.stderr)
    return EXIT_OK


def _run(args: argparse.Namespace, table: dict[str, Any], config: Any, engine: str, run_batch: Any) -> Any:
    return run_batch(
        args.input,
        args.output,
        config,
        engine=engine,
        batch_rows=_setting(args, table, "batch_rows"),
        part_rows=_setting(args, table, "part_rows"),
        resume=args.resume,
        limit=args.limit,
        address=_setting(args, table, "address"),
        actors=_setting(args, table, "actors"),
        actor_gpus=_setting(args, table, "actor_gpus"),
        progress=not args.no_progress,
        retry_errors=args.retry_errors,
        max_line_bytes=_setting(args, table, "max_line_bytes"),
    )

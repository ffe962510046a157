"""The ``rerank`` command line: one module per subcommand.

```
rerank eval DATA_DIR --model PATH_OR_ID|none [...]     # rerank_core.cli.eval
rerank calibrate DATA_DIR --model PATH --split dev     # rerank_core.cli.calibrate
rerank finetune [DATA_DIR ...] --base-model ... [...]  # rerank_core.cli.finetune
rerank pick DATA_DIR --model PATH [...]                # rerank_core.cli.pick
rerank rank --model PATH_OR_ID --query TEXT < lines    # rerank_core.cli.rank
rerank batch INPUT OUTPUT --model PATH_OR_ID [...]     # rerank_core.cli.batch
rerank index --model M --store DIR (DATA_DIR | --jsonl FILE)  # rerank_core.cli.index
rerank serve --model PATH_OR_ID [--config FILE] [...]  # rerank_core.cli.serve
rerank bench [...]                                     # rerank_core.cli.bench, deprecated
```

Exit codes: 0 success, 1 a failure while running (back end error, missing optional package),
2 bad arguments (unknown option, missing data folder or split, a model that cannot be loaded).
A subcommand module has ``add_parser(subparsers)``, whose parser's ``handler`` runs it; the parser class,
exit codes and argument types are in :mod:`rerank_core.cli._common`, and the work itself in
:mod:`rerank_core.eval` and :mod:`rerank_core.train`. Until the restructure of issue 15 this package was the
single module ``rerank_core/cli.py``; ``rerank_core.cli:main`` (the console script) is unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rerank_core.cli import batch as _batch
from rerank_core.cli import bench as _bench
from rerank_core.cli import calibrate as _calibrate
from rerank_core.cli import eval as _eval
from rerank_core.cli import finetune as _finetune
from rerank_core.cli import index as _index
from rerank_core.cli import pick as _pick
from rerank_core.cli import rank as _rank
from rerank_core.cli import serve as _serve
from rerank_core.cli._common import EXIT_USAGE, Parser, run_handler

# The loader of ``rerank eval --dense-model``, under the name it had in rerank_core/cli.py:
# tests/core/test_eval_hybrid.py replaces it here (rerank_core.cli.eval looks it up when it runs).
from rerank_core.cli.eval import load_dense_model as _load_bi_encoder  # noqa: F401

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``rerank`` parser with every subcommand."""
    parser = Parser(prog="rerank", description="rerank-core command line tools.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in (_eval, _calibrate, _finetune, _pick, _rank, _batch, _index, _serve, _bench):
        module.add_parser(subparsers)
    parser.set_defaults(subcommands=subparsers.choices)
    return parser


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
    args.prog = f"{parser.prog} {args.command}"
    args.argv = argv
    return run_handler(args.prog, args.handler, args)

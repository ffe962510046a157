"""``rerank bench``: deprecated alias, kept for one release; removed in the next.

It takes the options it always took (see ``rerank bench --help``) and times what the library can time
(our configurations, plus any contender a ``$RERANK_BENCH_CONTENDERS`` plugin adds), after a
:class:`DeprecationWarning` and a note on stderr. Use instead:

- ``rerank pick DATA_DIR --model PATH``: the fastest configuration of our back end on your data
  (what ``rerank bench --pick`` did);
- ``python benchmarks/speed.py`` (in the source repository): the race against sentence-transformers,
  rerankers, FlashRank, LangChain and LlamaIndex, with the same options as ``rerank bench`` had.

Until the restructure of issue 15, ``rerank bench`` was ``rerank_core/bench/cli.py`` and the library itself
held the incumbents.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from rerank_core.cli._common import UsageError
from rerank_core.cli.pick import add_speed_arguments, run_speed

__all__ = ["DEPRECATION", "add_parser", "run"]

DEPRECATION = (
    "'rerank bench' is deprecated and will be removed in the next release: use 'rerank pick DATA_DIR "
    "--model PATH' for the fastest configuration of our back end on your data, or 'python "
    "benchmarks/speed.py' (source repository) to race it against other libraries"
)


def add_parser(subparsers: Any) -> None:
    """Add the deprecated ``bench`` to the ``rerank`` subcommands (listed as such in ``rerank --help``)."""
    p = subparsers.add_parser(
        "bench",
        help="deprecated: use 'rerank pick', or 'python benchmarks/speed.py' for the race",
        description=DEPRECATION + ".",
    )
    add_speed_arguments(p, race=True)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Warn, then run the speed race over the contenders the library knows (ours and the plugins')."""
    from rerank_core.eval.speed import contender_specs

    warnings.warn(DEPRECATION, DeprecationWarning, stacklevel=2)
    print(f"rerank bench: note: {DEPRECATION}", file=sys.stderr)
    try:
        specs = contender_specs()
    except ValueError as exc:  # a $RERANK_BENCH_CONTENDERS entry that does not exist
        raise UsageError(str(exc)) from exc
    return run_speed(args, specs=specs, race=True)

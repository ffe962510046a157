"""Speed benchmark: our local back end in every configuration against every incumbent, side by side.

The harness and our configurations are the library's (:mod:`rerank_core.eval.speed`, whose pick is
``rerank pick``); this script adds the incumbents, which no wheel ships: sentence-transformers, rerankers and
FlashRank (``incumbents.py``), LangChain and LlamaIndex (``framework_contenders.py``), both next to this
file. Install them first (they are not CI requirements):

    pip install -r benchmarks/requirements.txt
    python benchmarks/speed.py ../shared/data/scifact --model models/reference-reranker \\
        --queries 20 --top-k 100 --repeats 3
    python benchmarks/speed.py --list                                  # who can run here, and why not
    python benchmarks/speed.py --pick --max-ndcg-drop 0.005 --from-json benchmarks/results/results.json

Writes ``results.md``, ``results.json`` and ``results.png`` under ``--out`` (default benchmarks/results).
The options are those ``rerank bench`` had (``python benchmarks/speed.py --help``); ``rerank bench`` itself
is deprecated.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rerank_core.cli._common import EXIT_USAGE, Parser, run_handler  # after the offline switches
from rerank_core.cli.pick import add_speed_arguments, run_speed
from rerank_core.eval.speed import PLUGINS_ENV, contender_specs

HERE = Path(__file__).resolve().parent
#: The incumbents, as plugins of the library's harness: being an environment variable, the list also
#: reaches the memory probe's subprocess.
PLUGINS = (str(HERE / "incumbents.py"), str(HERE / "framework_contenders.py"))


def use_incumbents() -> None:
    """Add the incumbents' files to ``$RERANK_BENCH_CONTENDERS`` (once each)."""
    present = os.environ.get(PLUGINS_ENV, "").split(",")
    os.environ[PLUGINS_ENV] = ",".join(
        p for p in (os.environ.get(PLUGINS_ENV), *(f for f in PLUGINS if f not in present)) if p
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the race with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = Parser(prog="speed.py", description=__doc__.split("\n\n")[0])
    add_speed_arguments(parser, race=True)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a parse error already reported in one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args.prog = parser.prog
    args.command_line = "python benchmarks/speed.py " + shlex.join(argv)
    use_incumbents()
    return run_handler(args.prog, lambda a: run_speed(a, specs=contender_specs(), race=True), args)


if __name__ == "__main__":
    sys.exit(main())

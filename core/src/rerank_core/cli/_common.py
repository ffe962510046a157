"""What every ``rerank`` subcommand shares: the one-line-error parser, the usage error, the exit codes, the
argument types and :func:`run_handler` (which turns a subcommand's exceptions into exit codes).

Internal to :mod:`rerank_core.cli`; until the restructure of issue 15 this lived in ``rerank_core/cli.py``
(and a second copy of the positive-integer type in ``rerank_core/bench/cli.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from rerank_core.errors import InvalidInputError, MissingDependencyError, RerankError
from rerank_core.remote.http import excerpt

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "Parser",
    "UsageError",
    "check_output_file",
    "comma_sizes",
    "non_negative_float",
    "one_line",
    "positive_int",
    "run_handler",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad argument found after parsing; reported in one line with exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def positive_int(value: str) -> int:
    """An argument type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def comma_sizes(value: str) -> tuple[int, ...]:
    """An argument type: comma-separated positive integers, sorted and without repeats."""
    try:
        sizes = tuple(sorted({int(v) for v in value.split(",") if v.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {value!r}"
        ) from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {value!r}")
    return sizes


def non_negative_float(value: str) -> float:
    """An argument type: a number >= 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}") from None
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return number


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 300 characters."""
    return excerpt(str(exc), limit=300)


def check_output_file(path: Path | None, option: str) -> None:
    """A usage error unless ``path`` (an output file option) can be written: not a folder, its folder
    created now (so that a long run fails before it starts, not after it)."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a folder, expected a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option}: cannot create {path.parent} ({one_line(exc)})") from exc


def run_handler(prog: str, handler: Callable[[Any], int], args: Any) -> int:
    """``handler(args)``'s exit code, with its errors reported on one line of stderr as ``prog: error: ...``:
    2 for a :class:`UsageError` or an :class:`~rerank_core.errors.InvalidInputError` (bad input data, such
    as a malformed line of a data file: the message names the file and line), 1 for a missing optional
    package, a back-end error or an OS error, 130 for Ctrl-C."""
    try:
        return handler(args)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidInputError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except MissingDependencyError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except RerankError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE

"""Checking and normalising what callers pass in, with errors that name the argument.

Nothing here copies or changes the caller's objects: a candidate is read, never written.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rerank_core.errors import ArgumentError, InvalidInputError
from rerank_core.types import Candidate

__all__ = [
    "CandidateInput",
    "check_corpus",
    "check_positive_int",
    "check_query",
    "check_score_threshold",
    "check_text",
    "check_top_n",
    "to_candidates",
]

CandidateInput = str | Candidate | Mapping[str, Any]

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: str, argument: str, error: type[ArgumentError] = InvalidInputError) -> str:
    """``text`` if it is valid Unicode: a lone surrogate (``"\\ud800"``, what a bad decode with
    ``errors="surrogateescape"`` leaves) cannot be encoded, so no tokenizer or API could take it."""
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found is not None:
            raise error(
                argument,
                f"contains a lone surrogate {found.group()!r} at position {found.start()}, which is not "
                "valid Unicode (decode the text with errors='replace', or drop the character)",
            )
    return text


def check_query(query: object, argument: str = "query") -> str:
    if not isinstance(query, str):
        raise InvalidInputError(argument, f"must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError(argument, "must not be empty or only whitespace")
    return check_text(query, argument)


MAX_INSTRUCTION_CHARS = 10_000
"""The longest instruction taken (an instruction is read with every pair, so it is kept short)."""


def check_instruction(
    instruction: object, argument: str = "instruction", error: type[ArgumentError] = InvalidInputError
) -> str | None:
    """``instruction`` (``None``: the back end's default, if it has one) if it is a non-blank string of at
    most :data:`MAX_INSTRUCTION_CHARS` characters of valid Unicode; ``error`` names ``argument``."""
    if instruction is None:
        return None
    if not isinstance(instruction, str):
        raise error(argument, f"must be a string or None, got {type(instruction).__name__}")
    if not instruction.strip():
        raise error(argument, "must not be empty or only whitespace (use None for the back end's default)")
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise error(
            argument, f"is {len(instruction):,} characters; at most {MAX_INSTRUCTION_CHARS:,} are taken"
        )
    return check_text(instruction, argument, error)


def check_positive_int(value: object, argument: str, error: type[ArgumentError] = InvalidInputError) -> int:
    """``value`` if it is an integer >= 1 (a bool is refused), else an ``error`` naming ``argument``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(argument, f"must be an integer >= 1, got {value!r}")
    return value


def check_top_n(
    top_n: object, argument: str = "top_n", error: type[ArgumentError] = InvalidInputError
) -> int | None:
    """``top_n`` (``None``: keep all); ``error`` is :class:`ConfigurationError` for a setting, the default
    :class:`InvalidInputError` for a per-call value."""
    if top_n is None:
        return None
    if isinstance(top_n, int) and not isinstance(top_n, bool) and top_n < 1:
        raise error(argument, f"must be >= 1 (use None to keep every candidate), got {top_n}")
    return check_positive_int(top_n, argument, error)


def finite_float(value: object) -> float | None:
    """``value`` as a float if it is a finite real number (a bool is not one; numpy scalars are), else
    ``None``: NaN, infinity, and an integer beyond the float range (``10**400``, which ``float()`` cannot
    convert) included. The one test of "a finite number" every check uses."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return number if math.isfinite(number) else None


def shown_number(value: object) -> str:
    """``value`` for an error message (the repr of a huge integer can itself fail, or be a page long)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1024:
        return f"an integer of {value.bit_length()} bits, beyond the float range"
    return repr(value)


def check_score_threshold(
    threshold: object, argument: str = "score_threshold", error: type[ArgumentError] = InvalidInputError
) -> float | None:
    """``threshold`` as a float, ``None`` for none; see :func:`check_top_n` for ``error``."""
    if threshold is None:
        return None
    value = finite_float(threshold)
    if value is None:
        raise error(argument, f"must be a finite number or None, got {shown_number(threshold)}")
    return value


def to_candidates(candidates: object, argument: str = "candidates") -> list[Candidate]:
    """Read a candidate list: strings, :class:`Candidate` objects, or mappings with a ``text`` string
    (``id`` and ``metadata`` keys are kept). Any other item is an error naming its position."""
    if candidates is None:
        raise InvalidInputError(argument, "must be a list of texts or candidates, got None")
    if isinstance(candidates, str | bytes | Mapping) or not isinstance(candidates, Iterable):
        raise InvalidInputError(
            argument, f"must be a list of texts or candidates, got {type(candidates).__name__}"
        )
    out: list[Candidate] = []
    for i, item in enumerate(candidates):
        if isinstance(item, str):
            out.append(Candidate(check_text(item, f"{argument}[{i}]")))
        elif isinstance(item, Candidate):
            if not isinstance(item.text, str):
                raise InvalidInputError(
                    f"{argument}[{i}]", f"text must be a string, got {type(item.text).__name__}"
                )
            check_text(item.text, f"{argument}[{i}]")
            out.append(item)
        elif isinstance(item, Mapping):
            text = item.get("text")
            if not isinstance(text, str):
                raise InvalidInputError(
                    f"{argument}[{i}]",
                    f"a mapping candidate needs a 'text' string, got {type(text).__name__}",
                )
            check_text(text, f"{argument}[{i}]")
            out.append(Candidate(text, item.get("id"), item.get("metadata")))
        else:
            raise InvalidInputError(
                f"{argument}[{i}]",
                f"must be a string, a Candidate or a mapping with a 'text' string, got {type(item).__name__}",
            )
    return out


def check_corpus(corpus_ids: Sequence[str], corpus_texts: Sequence[str]) -> None:
    """A retriever's corpus: one unique id per text, not empty (errors name corpus_ids or corpus_texts)."""
    if len(corpus_ids) != len(corpus_texts):
        raise InvalidInputError(
            "corpus_ids", f"has {len(corpus_ids)} ids for {len(corpus_texts)} texts; give one id per text"
        )
    if not corpus_ids:
        raise InvalidInputError("corpus_texts", "the corpus is empty")
    if len(set(corpus_ids)) != len(corpus_ids):
        raise InvalidInputError("corpus_ids", "ids must be unique")

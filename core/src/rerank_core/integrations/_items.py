"""Reading the framework objects an adapter was given: a checked list, their first-stage scores, their
texts and metadata as core candidates. Where a framework keeps a score is the adapter's business; what a
fusion needs is decided here, once."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from rerank_core._validation import finite_float
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.fusion import Fusion
from rerank_core.types import Candidate

__all__ = ["candidates_with_metadata", "check_items", "check_retrievers", "collect_first_stage_scores"]

T = TypeVar("T")


def check_items(items: object, item_type: type[T], argument: str, *, plural: str, singular: str) -> list[T]:
    """``items`` as a list of ``item_type`` objects, or an :class:`InvalidInputError` naming ``argument``
    (a string, a mapping or a single item is refused) or ``argument[i]`` for a bad item.

    ``plural`` / ``singular`` name the objects in messages: "must be a list of {plural}", "must be
    {singular}".
    """
    refused = InvalidInputError(argument, f"must be a list of {plural}, got {type(items).__name__}")
    if items is None or isinstance(items, str | bytes | Mapping | item_type):
        raise refused
    try:
        out = list(items)  # type: ignore[call-overload]
    except TypeError:
        raise refused from None
    for i, item in enumerate(out):
        if not isinstance(item, item_type):
            raise InvalidInputError(f"{argument}[{i}]", f"must be {singular}, got {type(item).__name__}")
    return out


def _is_score(value: object) -> bool:
    """A finite number (a bool is not a score)."""
    return finite_float(value) is not None


def collect_first_stage_scores(
    values: Sequence[object],
    fusion: Fusion | None,
    argument: Callable[[int], str],
    *,
    hint: str = "",
) -> list[float] | None:
    """The first-stage scores to pass to ``Reranker.rerank(first_stage_scores=...)``, or ``None``.

    ``values[i]`` is what the framework keeps as item ``i``'s first-stage score (``None`` where it has
    none); ``argument(i)`` names where it lives (``"documents[3].metadata['score']"``, ``"nodes[3].score"``).

    - every value a finite number: the scores, as floats (with or without a fusion, so that the results
      keep ``first_stage_score``);
    - otherwise, without a fusion: ``None`` (nothing needs them; never an error);
    - no value at all and an ``rrf`` fusion: ``None`` (the core ranks the input order instead);
    - otherwise an :class:`InvalidInputError` naming ``argument(i)`` for the first missing or non-numeric
      value; ``hint`` ends its message (where the adapter reads the score, how to change it).
    """
    if all(_is_score(v) for v in values):
        return [float(v) for v in values] if values else None  # type: ignore[arg-type]
    if fusion is None:
        return None
    if fusion.uses_input_order and all(v is None for v in values):
        return None
    i, bad = next((i, v) for i, v in enumerate(values) if not _is_score(v))
    need = fusion.first_stage_need()
    what = "is missing" if bad is None else f"must be a finite number, got {bad!r}"
    raise InvalidInputError(argument(i), f"{what}: {need}" + (f"; {hint}" if hint else ""))


def candidates_with_metadata(
    texts: Sequence[str], metadata: Sequence[Mapping[str, Any] | None], ids: Sequence[Any] | None = None
) -> list[Candidate]:
    """The texts to rank as core candidates carrying the framework objects' metadata (the same objects,
    not copies), so that a scoring profile's rules can read it, and their ids (``Document.id``,
    ``node_id``: what a result's ``id`` and a context item's ``chunk_ids`` report; ``None``: none)."""
    ids = [None] * len(texts) if ids is None else ids
    return [Candidate(text, id=i, metadata=meta) for text, meta, i in zip(texts, metadata, ids, strict=True)]


def check_retrievers(retrievers: object, retriever_type: type, expected: str) -> list[Any]:
    """A fusion retriever's sources as a list of ``retriever_type`` objects, or a
    :class:`ConfigurationError` naming ``retrievers`` or ``retrievers[i]`` (``expected`` says what each
    must be)."""
    if isinstance(retrievers, retriever_type | str) or not isinstance(retrievers, Sequence):
        raise ConfigurationError(
            "retrievers", f"must be a list of retrievers, got {type(retrievers).__name__}"
        )
    for i, retriever in enumerate(retrievers):
        if not isinstance(retriever, retriever_type):
            raise ConfigurationError(
                f"retrievers[{i}]", f"must be {expected}, got {type(retriever).__name__}"
            )
    return list(retrievers)

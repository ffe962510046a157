"""Fusing the results of several retrievers (BM25 + dense, ...) of one query into one list, written once for
every framework adapter (no framework imports).

The framework adapters (``langchain_rerank.FusionRetriever``, ``llamaindex_rerank.FusionRetriever``) call
their retrievers and hand the result lists here, with two readers: ``key`` (what makes two results the same
document) and ``score`` (a result's score in its own list, or ``None``). :func:`fuse_retrieved` then

- drops a result repeated within one list (the best-ranked occurrence stays, later ranks move up);
- fuses the lists with :func:`~rerank_core.fusion.fuse_rankings` (reciprocal rank fusion, or a weighted sum of
  z-score / min-max normalised scores, which need every result's score);
- returns each document once, best first, as a :class:`FusedHit`: the object from the first list that has
  it (in the order of the retrievers), the fused score, and its rank and score in every list that had it.

Dedupe (:func:`dedupe_key`): ``"id"`` (default) uses the document's id and falls back on its text when it
has none (a LangChain Document without ``id``); ``"content"`` always uses the text (two stores that give
the same passage different ids).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rerank_core._validation import finite_float
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.fusion._rankings import fuse_rankings
from rerank_core.fusion._spec import FUSION_METHODS

__all__ = [
    "DEDUPE_MODES",
    "FUSION_SOURCES_KEY",
    "FusedHit",
    "RetrieverFusionConfig",
    "SourceHit",
    "dedupe_key",
    "fuse_retrieved",
    "source_names",
]

T = TypeVar("T")

DEDUPE_MODES = ("id", "content")
FUSION_SOURCES_KEY = "fusion_sources"
"""Metadata key of each fused document's rank and score in every retriever's list that had it:
``{"<retriever name>": {"rank": 1, "score": 0.83 or None}}``."""


@dataclass(frozen=True)
class SourceHit:
    """A document's place in one retriever's list: 1-based ``rank`` (after within-list duplicates were
    dropped) and ``score`` (``None`` when the retriever gives none)."""

    rank: int
    score: float | None


@dataclass(frozen=True)
class FusedHit(Generic[T]):
    """One fused document: the framework ``item`` (from the first list that had it), the ``fused`` score,
    and ``sources`` (retriever name → :class:`SourceHit`, for the lists that had it, in retriever order)."""

    item: T
    fused: float
    sources: Mapping[str, SourceHit] = field(default_factory=dict)

    def sources_metadata(self) -> dict[str, dict[str, Any]]:
        """``sources`` as plain data, the value of :data:`FUSION_SOURCES_KEY`."""
        return {name: {"rank": hit.rank, "score": hit.score} for name, hit in self.sources.items()}


def dedupe_key(by: str, doc_id: object, content: str) -> Hashable:
    """What makes two results the same document: ``("id", doc_id)`` (``by="id"`` and an id is given) or
    ``("content", content)``."""
    if by == "id" and doc_id is not None:
        return ("id", doc_id)
    return ("content", content)


def source_names(retrievers: Sequence[object], names: Sequence[str] | None = None) -> list[str]:
    """The retrievers' names: ``names`` (distinct strings, one per retriever) or their class names, made
    distinct with ``#2``, ``#3``... where a class repeats."""
    if names is not None:
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ConfigurationError("names", f"must be a list of strings, got {type(names).__name__}")
        if len(names) != len(retrievers):
            raise ConfigurationError("names", f"has {len(names)} names for {len(retrievers)} retrievers")
        for i, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise ConfigurationError(f"names[{i}]", f"must be a non-empty string, got {name!r}")
        if len(set(names)) != len(names):
            raise ConfigurationError("names", f"must be distinct, got {list(names)}")
        return list(names)
    out: list[str] = []
    counts: dict[str, int] = {}
    for retriever in retrievers:
        base = type(retriever).__name__
        counts[base] = counts.get(base, 0) + 1
        out.append(base if counts[base] == 1 else f"{base}#{counts[base]}")
    return out


@dataclass(frozen=True)
class RetrieverFusionConfig:
    """A fusion retriever's settings, checked once at construction (errors name the argument).

    ``method``: ``"rrf"`` (default), ``"zscore"`` or ``"minmax"``; ``weights``: one finite number >= 0 per
    retriever (default all 1); ``rrf_k``: the RRF constant (60); ``top_k``: keep at most this many fused
    documents (``None``: all); ``dedupe_by``: ``"id"`` or ``"content"`` (see :func:`dedupe_key`).
    """

    names: tuple[str, ...]
    method: str = "rrf"
    weights: tuple[float, ...] | None = None
    rrf_k: int = 60
    top_k: int | None = None
    dedupe_by: str = "id"

    def __post_init__(self) -> None:
        if not self.names:
            raise ConfigurationError("retrievers", "give at least one retriever")
        if self.method not in FUSION_METHODS:
            raise ConfigurationError(
                "method", f"must be one of {', '.join(FUSION_METHODS)}, got {self.method!r}"
            )
        if self.weights is not None:
            if isinstance(self.weights, str) or not isinstance(self.weights, Sequence):
                raise ConfigurationError("weights", f"must be a list of numbers, got {self.weights!r}")
            if len(self.weights) != len(self.names):
                raise ConfigurationError(
                    "weights", f"has {len(self.weights)} weights for {len(self.names)} retrievers"
                )
            for i, w in enumerate(self.weights):
                if not _is_number(w) or w < 0:
                    raise ConfigurationError(f"weights[{i}]", f"must be a finite number >= 0, got {w!r}")
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 0:
            raise ConfigurationError("rrf_k", f"must be an integer >= 0, got {self.rrf_k!r}")
        if self.top_k is not None and (
            isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1
        ):
            raise ConfigurationError("top_k", f"must be an integer >= 1 or None, got {self.top_k!r}")
        if self.dedupe_by not in DEDUPE_MODES:
            raise ConfigurationError(
                "dedupe_by", f"must be one of {', '.join(DEDUPE_MODES)}, got {self.dedupe_by!r}"
            )

    @property
    def needs_scores(self) -> bool:
        """Whether the method fuses scores (every result needs one) rather than ranks."""
        return self.method != "rrf"


def _is_number(value: object) -> bool:
    return finite_float(value) is not None


def fuse_retrieved(
    runs: Sequence[Sequence[T]],
    config: RetrieverFusionConfig,
    *,
    key: Callable[[T], Hashable],
    score: Callable[[T], object],
    where: Callable[[int, int], str] = lambda i, j: f"results[{i}][{j}]",
) -> list[FusedHit[T]]:
    """Fuse one query's result lists (``runs[i]`` from retriever ``config.names[i]``, best first).

    ``key(item)`` identifies a document (see :func:`dedupe_key`); ``score(item)`` is its score in its list
    (anything but a finite number counts as none). With ``zscore`` / ``minmax`` a result without a score is an
    :class:`InvalidInputError` naming ``where(i, j)``. Nothing given is modified.
    """
    if len(runs) != len(config.names):
        raise InvalidInputError("runs", f"has {len(runs)} result lists for {len(config.names)} retrievers")
    slots: dict[Hashable, int] = {}  # document key -> its slot in `first_items`
    first_items: list[T] = []
    per_run: list[list[tuple[int, float | None]]] = []
    for i, run in enumerate(runs):
        seen: set[int] = set()
        entries: list[tuple[int, float | None]] = []
        for j, item in enumerate(run):
            k = key(item)
            if k not in slots:
                slots[k] = len(first_items)
                first_items.append(item)
            slot = slots[k]
            if slot in seen:
                continue  # the same document twice in one list: its best rank counts
            seen.add(slot)
            value = score(item)
            s = finite_float(value)
            if s is None and config.needs_scores:
                raise InvalidInputError(
                    where(i, j),
                    f"has no finite score (got {value!r}); method {config.method!r} fuses scores "
                    f"from every retriever ({config.names[i]!r} here); use method='rrf' to fuse ranks",
                )
            entries.append((slot, s))
        per_run.append(entries)
    if not first_items:
        return []
    fused = fuse_rankings(
        [
            [(str(slot), s) for slot, s in entries]
            if config.needs_scores
            else [str(slot) for slot, _ in entries]
            for entries in per_run
        ],
        method=config.method,
        weights=config.weights,
        k=config.rrf_k,
    )
    sources: list[dict[str, SourceHit]] = [{} for _ in first_items]
    for name, entries in zip(config.names, per_run, strict=True):
        for rank, (slot, s) in enumerate(entries, start=1):
            sources[slot][name] = SourceHit(rank, s)
    hits = [FusedHit(first_items[int(slot)], float(value), sources[int(slot)]) for slot, value in fused]
    return hits if config.top_k is None else hits[: config.top_k]

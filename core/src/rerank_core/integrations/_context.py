"""What both adapters do with the context-selection stage, written once: which framework object each
output comes from and what it gains, and selecting from framework objects that a reranker already ranked
(the adapters' ``ContextCompressor`` / ``ContextPostprocessor``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rerank_core.context import ContextPolicy, ContextSelection, select_context
from rerank_core.errors import ConfigurationError
from rerank_core.integrations._items import candidates_with_metadata
from rerank_core.integrations.metadata import CONTEXT_KEY, context_metadata
from rerank_core.types import RerankResponse, RerankResult

__all__ = ["check_policy", "outputs", "select_items"]


def check_policy(policy: object) -> ContextPolicy:
    """An adapter's ``policy`` as a :class:`ContextPolicy` (a mapping of its fields is taken too)."""
    if policy is None:
        raise ConfigurationError("policy", "is required: a ContextPolicy (or a mapping of its fields)")
    checked = ContextPolicy.coerce(policy)
    assert checked is not None
    return checked


def outputs(
    response: RerankResponse | None, selection: ContextSelection | None = None
) -> list[tuple[int, RerankResult, str | None, dict[str, Any]]]:
    """What an adapter returns, in order: ``(input position, the result whose scores it carries, the new
    text or None (a merged item's text; ``None``: the object's own), the metadata it gains)``. Without a
    context selection: the response's results; with one (``response.context`` or ``selection``): its items,
    in context order, each gaining :data:`CONTEXT_KEY`."""
    selection = selection if selection is not None else None if response is None else response.context
    if selection is None:
        assert response is not None
        return [(r.index, r, None, {}) for r in response.results]
    return [
        (
            item.index,
            item.result,
            item.text if item.merged else None,
            {CONTEXT_KEY: context_metadata(item, selection)},
        )
        for item in selection.items
    ]


def select_items(
    texts: Sequence[str],
    metadata: Sequence[Mapping[str, Any] | None],
    scores: Sequence[object],
    policy: ContextPolicy,
    embeddings: Sequence[Any] | None = None,
    ids: Sequence[Any] | None = None,
) -> ContextSelection:
    """The selection over framework objects given best first (what a reranker returned): their texts,
    metadata and scores (``None`` where an object has none: MMR then reads the rank), and their ids."""
    finite = all(not isinstance(s, bool) and isinstance(s, int | float) and math.isfinite(s) for s in scores)
    return select_context(
        candidates_with_metadata(texts, metadata, ids),
        policy,
        scores=[float(s) for s in scores] if finite and scores else None,  # type: ignore[arg-type]
        embeddings=embeddings,
    )

"""``FusionRetriever``: one LlamaIndex ``BaseRetriever`` over several (BM25 + vector, ...), their lists fused.

Each call asks every retriever (concurrently on the async path), then the core's
:func:`rerank_core.fusion.fuse_retrieved` fuses the lists: reciprocal rank fusion by default, or a
weighted sum of z-score / min-max normalised scores (which need every ``NodeWithScore.score``). Every node
comes back once (deduplicated by ``node_id``; ``dedupe_by="content"`` uses the node's text instead, for
stores that give the same passage different ids), best first, as a new ``NodeWithScore`` whose ``score`` is
the fused score (what :class:`RerankPostprocessor` then fuses with, given a ``fusion``) and whose node copy
gains ``metadata["fusion_sources"]``: ``{retriever name: {"rank": r, "score": s or None}}`` for every
retriever that returned it (hidden from the LLM and the embedder). The caller's retrievers and nodes are
never modified.

Unlike LlamaIndex's ``QueryFusionRetriever`` it generates no extra queries (no LLM call): it is the
first-stage fusion of the stacked pipeline, with the same fusion code the core's evaluation uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from llamaindex_rerank.postprocessor import node_with_metadata
from rerank_core.fusion import (
    FUSION_SOURCES_KEY,
    RetrieverFusionConfig,
    dedupe_key,
    fuse_retrieved,
    source_names,
)
from rerank_core.integrations import check_items, check_retrievers

__all__ = ["FUSION_SOURCES_KEY", "FusionRetriever"]


class FusionRetriever(BaseRetriever):
    """Fuse the nodes of several retrievers into one ranked, deduplicated list.

    Args:
        retrievers: the LlamaIndex retrievers to fuse (``index.as_retriever()``, ``BM25Retriever``...).
        names: one distinct name per retriever, used in ``fusion_sources`` (default: class names, ``#2``...
            for repeats).
        method: ``"rrf"`` (default; ranks only), ``"zscore"`` or ``"minmax"`` (scores; every node needs one).
        weights: one number >= 0 per retriever (default: all 1).
        rrf_k: the RRF constant (60).
        top_k: keep at most this many fused nodes (``None``: all).
        dedupe_by: ``"id"`` (``node_id``) or ``"content"`` (the node's text).
        callback_manager, verbose: as for any LlamaIndex retriever.
    """

    def __init__(
        self,
        retrievers: Sequence[BaseRetriever],
        *,
        names: Sequence[str] | None = None,
        method: str = "rrf",
        weights: Sequence[float] | None = None,
        rrf_k: int = 60,
        top_k: int | None = None,
        dedupe_by: str = "id",
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        self.retrievers = check_retrievers(retrievers, BaseRetriever, "a LlamaIndex BaseRetriever")
        self.config = RetrieverFusionConfig(
            names=tuple(source_names(self.retrievers, names)),
            method=method,
            weights=None if weights is None else tuple(weights),
            rrf_k=rrf_k,
            top_k=top_k,
            dedupe_by=dedupe_by,
        )
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def names(self) -> tuple[str, ...]:
        return self.config.names

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._fuse([retriever.retrieve(query_bundle) for retriever in self.retrievers])

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        runs = await asyncio.gather(*(retriever.aretrieve(query_bundle) for retriever in self.retrievers))
        return self._fuse(list(runs))

    def _fuse(self, runs: list[Any]) -> list[NodeWithScore]:
        checked = [
            check_items(
                run, NodeWithScore, f"{name} results", plural="NodeWithScore", singular="a NodeWithScore"
            )
            for run, name in zip(runs, self.names, strict=True)
        ]
        by = self.config.dedupe_by
        hits = fuse_retrieved(
            checked,
            self.config,
            key=lambda n: dedupe_key(by, n.node.node_id, n.node.get_content(MetadataMode.NONE)),
            score=lambda n: n.score,
            where=lambda i, j: f"{self.names[i]}[{j}].score",
        )
        return [
            NodeWithScore(
                node=node_with_metadata(hit.item.node, {FUSION_SOURCES_KEY: hit.sources_metadata()}),
                score=hit.fused,
            )
            for hit in hits
        ]

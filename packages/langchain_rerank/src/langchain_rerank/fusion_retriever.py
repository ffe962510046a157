"""``FusionRetriever``: one LangChain ``BaseRetriever`` over several (BM25 + dense, ...), their lists fused.

Each call asks every retriever (concurrently on the async path), then the core's
:func:`rerank_core.fusion.fuse_retrieved` fuses the lists: reciprocal rank fusion by default, or a
weighted sum of z-score / min-max normalised scores. Every document comes back once (deduplicated by
``Document.id``, falling back on ``page_content`` for a Document without an id; ``dedupe_by="content"``
always uses the text), best first, as a copy whose metadata gains:

- ``metadata[score_key]`` (``"score"``): the fused score, where :class:`RerankCompressor` reads a
  first-stage score, so ``FusionRetriever`` → ``RerankCompressor(fusion=...)`` fuses the reranker with it;
- ``metadata["fusion_sources"]``: ``{retriever name: {"rank": r, "score": s or None}}`` for every retriever
  that returned the document (a retriever's score is read from ``metadata[score_key]`` of its own result;
  the weighted methods need one on every result).

The caller's retrievers and their Documents are never modified. Each source retriever runs as a child of this
retriever's run, tagged ``fusion_source:<name>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable
from pydantic import ConfigDict

from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.fusion import (
    FUSION_SOURCES_KEY,
    RetrieverFusionConfig,
    dedupe_key,
    fuse_retrieved,
    source_names,
)
from rerank_core.integrations import UNSET, check_items, check_retrievers, check_top_n

__all__ = ["FUSION_SOURCES_KEY", "FusionRetriever"]


class FusionRetriever(BaseRetriever):
    """Fuse the Documents of several retrievers into one ranked, deduplicated list.

    Args:
        retrievers: the retrievers to fuse (any ``Runnable`` from a query string to a list of Documents:
            ``BaseRetriever``, ``vectorstore.as_retriever()``, a ``RunnableLambda``...).
        names: one distinct name per retriever, used in ``fusion_sources`` and the trace (default: class
            names, ``#2``... for repeats).
        method: ``"rrf"`` (default; ranks only), ``"zscore"`` or ``"minmax"`` (scores; every Document needs
            ``metadata[score_key]``).
        weights: one number >= 0 per retriever (default: all 1).
        rrf_k: the RRF constant (60).
        top_k: keep at most this many fused Documents (``None``: all); ``k`` is the same, LangChain's usual
            name. Per call, ``invoke(query, k=3)`` (or ``top_k=3``) overrides it.
        dedupe_by: ``"id"`` (``Document.id``, else the text) or ``"content"`` (the text).
        score_key: the metadata key a source score is read from and the fused score is written to.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    retrievers: list[Any]
    """The source retrievers (Runnables from a query string to Documents)."""
    names: list[str]
    method: str = "rrf"
    weights: list[float] | None = None
    rrf_k: int = 60
    top_k: int | None = None
    dedupe_by: str = "id"
    score_key: str = "score"

    def __init__(
        self,
        retrievers: Sequence[Runnable[str, list[Document]]],
        *,
        names: Sequence[str] | None = None,
        k: int | None = None,
        **data: Any,
    ) -> None:
        if k is not None:  # LangChain's usual name for the result count (the standard retriever tests use it)
            if data.get("top_k") is not None and data["top_k"] != k:
                raise ConfigurationError(
                    "k", f"is another name for top_k; got k={k!r} and top_k={data['top_k']!r}"
                )
            data["top_k"] = k
        retrievers = check_retrievers(retrievers, Runnable, "a LangChain retriever or Runnable")
        resolved = source_names(retrievers, names)
        if not isinstance(data.get("score_key", "score"), str):
            raise ConfigurationError("score_key", f"must be a string, got {data['score_key']!r}")
        super().__init__(retrievers=retrievers, names=resolved, **data)
        self._fusion_config()  # bad settings fail here, as ConfigurationErrors naming the argument

    def _fusion_config(self, top_k: Any = UNSET) -> RetrieverFusionConfig:
        """The settings as the core checks them (built from the fields on each call, so never stale);
        ``top_k`` overrides the field for one call."""
        return RetrieverFusionConfig(
            names=tuple(self.names),
            method=self.method,
            weights=None if self.weights is None else tuple(self.weights),
            rrf_k=self.rrf_k,
            top_k=self.top_k if top_k is UNSET else top_k,
            dedupe_by=self.dedupe_by,
        )

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = UNSET,
        top_k: int | None = UNSET,
        **_: Any,
    ) -> list[Document]:
        """``invoke(query, k=3)`` (or ``top_k=3``) keeps at most 3 fused Documents for this call
        (LangChain passes ``invoke``'s keywords here; others, such as ``verbose``, are LangChain's)."""
        count = _per_call_count(k, top_k)
        runs = [
            retriever.invoke(query, config={"callbacks": run_manager.get_child(f"fusion_source:{name}")})
            for retriever, name in zip(self.retrievers, self.names, strict=True)
        ]
        return self._fuse(runs, count)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = UNSET,
        top_k: int | None = UNSET,
        **_: Any,
    ) -> list[Document]:
        count = _per_call_count(k, top_k)
        runs = await asyncio.gather(
            *(
                retriever.ainvoke(query, config={"callbacks": run_manager.get_child(f"fusion_source:{name}")})
                for retriever, name in zip(self.retrievers, self.names, strict=True)
            )
        )
        return self._fuse(list(runs), count)

    def _fuse(self, runs: list[Any], top_k: Any = UNSET) -> list[Document]:
        key = self.score_key
        checked = [
            check_items(run, Document, f"{name} results", plural="Documents", singular="a Document")
            for run, name in zip(runs, self.names, strict=True)
        ]
        hits = fuse_retrieved(
            checked,
            self._fusion_config(top_k),
            key=lambda d: dedupe_key(self.dedupe_by, d.id, d.page_content),
            score=lambda d: d.metadata.get(key),
            where=lambda i, j: f"{self.names[i]}[{j}].metadata[{key!r}]",
        )
        return [
            hit.item.model_copy(
                update={
                    "metadata": {
                        **hit.item.metadata,
                        key: hit.fused,
                        FUSION_SOURCES_KEY: hit.sources_metadata(),
                    }
                }
            )
            for hit in hits
        ]


def _per_call_count(k: Any, top_k: Any) -> Any:
    """The per-call result count (``k`` or ``top_k``; :data:`UNSET`: the retriever's own ``top_k``), checked
    as a call argument (an :class:`InvalidInputError` naming it)."""
    if k is not UNSET and top_k is not UNSET and k != top_k:
        raise InvalidInputError("k", f"is another name for top_k; got k={k!r} and top_k={top_k!r}")
    if k is not UNSET:
        return check_top_n(k, "k")
    if top_k is not UNSET:
        return check_top_n(top_k, "top_k")
    return UNSET

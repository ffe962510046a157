"""``RerankCompressor``: a LangChain ``BaseDocumentCompressor`` over a rerank-core :class:`Reranker`.

Documents in, Documents out. The core ranks the documents' ``page_content`` for the query; the
compressor only maps the results back to copies of the caller's Documents:

- ``page_content``, ``id`` and every other field unchanged;
- ``metadata`` = the original metadata plus ``relevance_score`` (the calibrated score that
  ``score_threshold`` compares) and ``rerank_raw_score`` (what the back end returned), and, when the core
  split a long text into windows, ``rerank_window`` (``{"index", "start", "end", "count"}``, character
  offsets of the best window) or, when it truncated one, ``rerank_truncated: True``.

The caller's Documents and their metadata are never mutated. Each call reports a rerank step to the
LangChain callbacks (a retriever-type run named after the class, with the back end fingerprint and
policy as run metadata, a ``"rerank"`` custom event with counts and timing, and ``on_retriever_error``
when it fails).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from pydantic import ConfigDict

from rerank_core import InvalidInputError, Reranker, RerankResponse
from rerank_core.adapter_support import RAW_SCORE_KEY, AdapterConstructors, check_items, result_metadata

__all__ = ["RAW_SCORE_KEY", "RELEVANCE_SCORE_KEY", "RERANK_EVENT", "RerankCompressor"]

RELEVANCE_SCORE_KEY = "relevance_score"
"""Metadata key of the calibrated score (what ``score_threshold`` compares). ``RAW_SCORE_KEY`` (the back
end's raw score) and the long-text keys are the core's (:mod:`rerank_core.adapter_support`)."""
RERANK_EVENT = "rerank"
"""Name of the custom callback event each call dispatches (counts, timing, back end)."""


def check_documents(documents: object, argument: str = "documents") -> list[Document]:
    """The documents as a list, or an error naming the argument (or the position of a bad item)."""
    return check_items(
        documents, Document, argument, plural="Documents", singular="a langchain_core Document"
    )


class RerankCompressor(AdapterConstructors, BaseDocumentCompressor):
    """Rerank retrieved Documents with a rerank-core :class:`Reranker` and keep the best.

    Args:
        reranker: a :class:`rerank_core.Reranker` (its policy is used), or a back end
            (:class:`rerank_core.backends.Backend`) from which a Reranker is built with the options below.
        top_n: keep at most this many (``None``: all that pass the threshold). With a Reranker, defaults
            to the Reranker's and, when given, overrides it.
        score_threshold: drop Documents whose ``relevance_score`` is below this. Same defaulting.
        normalization, temperature: how raw scores become ``relevance_score`` (see the core's
            ``Reranker``); only with a back end.
        reranker_kwargs: further Reranker options (``long_text``, ``window_size``, ``window_stride``,
            ``aggregate``, ``cache``); only with a back end.

    ``RerankCompressor.from_cross_encoder("cross-encoder/ms-marco-MiniLM-L6-v2", top_n=3)`` is the
    one-line local case; ``from_backend(backend, **options)`` is the generic one. The constructors are the
    core's (:class:`rerank_core.adapter_support.AdapterConstructors`), shared with every adapter.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    reranker: Reranker
    """The core reranker doing the work."""
    top_n: int | None = None
    """Keep at most this many Documents per call (``None``: keep all that pass the threshold)."""
    score_threshold: float | None = None
    """Keep Documents whose ``relevance_score`` is at least this (``None``: no threshold)."""

    # -- the compressor --------------------------------------------------------------------------------

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query``; return copies of the kept ones, best first."""
        manager = CallbackManager.configure(callbacks, None, local_metadata=self._trace_metadata())
        run = manager.on_retriever_start(None, _query_text(query), name=type(self).__name__)
        started = time.perf_counter()
        try:
            docs = check_documents(documents)
            response = self.reranker.rerank(
                query, _texts(docs), top_n=self.top_n, score_threshold=self.score_threshold
            )
            out, event = self._finish(docs, response, started)
        except BaseException as exc:
            run.on_retriever_error(exc)
            raise
        run.get_child().on_custom_event(RERANK_EVENT, event, run_id=run.run_id)
        run.on_retriever_end(out)
        return out

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents` on the core's async path (model work never blocks the loop)."""
        manager = AsyncCallbackManager.configure(callbacks, None, local_metadata=self._trace_metadata())
        run = await manager.on_retriever_start(None, _query_text(query), name=type(self).__name__)
        started = time.perf_counter()
        try:
            docs = check_documents(documents)
            response = await self.reranker.arerank(
                query, _texts(docs), top_n=self.top_n, score_threshold=self.score_threshold
            )
            out, event = self._finish(docs, response, started)
        except BaseException as exc:
            await run.on_retriever_error(exc)
            raise
        await run.get_child().on_custom_event(RERANK_EVENT, event, run_id=run.run_id)
        await run.on_retriever_end(out)
        return out

    def as_runnable(
        self, *, query_key: str = "query", documents_key: str = "documents"
    ) -> Runnable[Mapping[str, Any], list[Document]]:
        """This compressor as an LCEL step: ``{query_key: str, documents_key: [Document]}`` in, the
        reranked Documents out (sync, async and batch; callbacks of the chain are passed on)."""

        def pick(inputs: Any) -> tuple[Any, Any]:
            if not isinstance(inputs, Mapping):
                raise InvalidInputError(
                    "inputs",
                    f"must be a mapping with {query_key!r} and {documents_key!r}, "
                    f"got {type(inputs).__name__}",
                )
            for key in (query_key, documents_key):
                if key not in inputs:
                    raise InvalidInputError(f"inputs[{key!r}]", f"is missing (keys given: {sorted(inputs)})")
            return inputs[documents_key], inputs[query_key]

        def rerank(inputs: Mapping[str, Any], config: RunnableConfig) -> list[Document]:
            documents, query = pick(inputs)
            return list(self.compress_documents(documents, query, callbacks=config.get("callbacks")))

        async def arerank(inputs: Mapping[str, Any], config: RunnableConfig) -> list[Document]:
            documents, query = pick(inputs)
            return list(await self.acompress_documents(documents, query, callbacks=config.get("callbacks")))

        return RunnableLambda(rerank, afunc=arerank, name=type(self).__name__)

    # -- what the sync and async paths share (no I/O) ------------------------------------------------------

    def _finish(
        self, docs: list[Document], response: RerankResponse, started: float
    ) -> tuple[list[Document], dict[str, Any]]:
        """(copies of the kept Documents, best first; the rerank event's data)."""
        out = [
            docs[r.index].model_copy(
                update={
                    "metadata": {
                        **docs[r.index].metadata,
                        RELEVANCE_SCORE_KEY: r.relevance_score,
                        **result_metadata(r),
                    }
                }
            )
            for r in response.results
        ]
        event: dict[str, Any] = {
            "backend": response.backend,
            "query": response.query,
            "candidates": response.num_candidates,
            "returned": len(out),
            "top_n": self.top_n,
            "score_threshold": self.score_threshold,
            "normalization": response.normalization,
            "score_kind": response.score_kind,
            "seconds": time.perf_counter() - started,
            "usage": dict(response.usage),
        }
        return out, event

    def _trace_metadata(self) -> dict[str, Any]:
        return {
            "rerank_backend": self.reranker.backend.fingerprint,
            "rerank_top_n": self.top_n,
            "rerank_score_threshold": self.score_threshold,
            "rerank_normalization": self.reranker.normalization,
        }


def _texts(docs: list[Document]) -> list[str]:
    return [d.page_content for d in docs]


def _query_text(query: object) -> str:
    """What the trace shows as the run's input (the core validates the real query)."""
    return query if isinstance(query, str) else repr(query)

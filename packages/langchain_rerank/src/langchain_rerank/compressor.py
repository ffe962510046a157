"""``RerankCompressor``: a LangChain ``BaseDocumentCompressor`` over a rerank-core :class:`Reranker`.

Documents in, Documents out. The core ranks the documents' ``page_content`` for the query; the
compressor only maps the results back to copies of the caller's Documents:

- ``page_content``, ``id`` and every other field unchanged;
- ``metadata`` = the original metadata (less the keys an earlier rerank pass wrote, ``METADATA_KEYS``) plus
  ``relevance_score`` (the calibrated score that
  ``score_threshold`` compares) and ``rerank_raw_score`` (what the back end returned), and, when the core
  split a long text into windows, ``rerank_window`` (``{"index", "start", "end", "count"}``, character
  offsets of the best window) or, when it truncated one, ``rerank_truncated: True``;
- with a fusion (``fusion="zscore:0.6"``, or a Reranker that has one), ``relevance_score`` is the fused
  score and the metadata also gains ``rerank_score`` (the reranker's own calibrated score) and
  ``first_stage_score`` (the retriever's);
- with a scoring profile (``profile=...``, or a Reranker that has one), ``relevance_score`` is the profiled
  score and the metadata also gains ``pre_profile_score`` and ``profile_effects`` (the rules that fired),
  the rules reading the Document's own metadata.

The first-stage score of a Document is read from ``metadata[first_stage_score_key]`` (``"score"`` by
default, where LangChain's "add scores to retriever results" recipe and several vector stores put it). When
every Document has a number there it is passed to the core (so the results keep it, fused or not); a fusion
that needs it and does not find it is an :class:`InvalidInputError` naming
``documents[i].metadata['<key>']``, except ``rrf`` when no Document has one (it then fuses with the input
order, and the trace event says so).

With a context-selection stage (``context=ContextPolicy(...)``, docs/context-selection.md) the compressor
returns what reaches the LLM instead: the selected Documents in the context's order, each with
``metadata["rerank_context"]`` (its position, tokens, merged chunks), a merged item as one Document (its
best chunk's, with the merged text as ``page_content``); the rerank event gains ``"context"``, every dropped
Document with its reason.

The caller's Documents and their metadata are never mutated. Each call reports a rerank step to the
LangChain callbacks (a retriever-type run named after the class, with the back end fingerprint and
policy as run metadata, a ``"rerank"`` custom event with counts and timing, and ``on_retriever_error``
when it fails).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from pydantic import ConfigDict, Field

from rerank_core import Candidate, InvalidInputError, Reranker, RerankResponse
from rerank_core.integrations import (
    FIRST_STAGE_SCORE_KEY,
    RAW_SCORE_KEY,
    RELEVANCE_SCORE_KEY,
    RERANK_SCORE_KEY,
    AdapterConstructors,
    candidates_with_metadata,
    check_items,
    collect_first_stage_scores,
    outputs,
    reranked_metadata,
)

__all__ = [
    "DEFAULT_FIRST_STAGE_SCORE_KEY",
    "FIRST_STAGE_SCORE_KEY",  # the core's keys (rerank_core.integrations.metadata), also exported here
    "RAW_SCORE_KEY",
    "RELEVANCE_SCORE_KEY",
    "RERANK_EVENT",
    "RERANK_SCORE_KEY",
    "RerankCompressor",
    "documents_with_scores",
]

RERANK_EVENT = "rerank"
"""Name of the custom callback event each call dispatches (counts, timing, back end)."""
DEFAULT_FIRST_STAGE_SCORE_KEY = "score"
"""Default metadata key the first-stage score of a Document is read from (``first_stage_score_key``)."""


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
        options: the Reranker built over a back end: a :class:`rerank_core.RerankerOptions` or a mapping of
            its fields; any field may also be given as a keyword (``fusion="zscore:0.6"`` fuses with each
            Document's first-stage score, ``profile=...`` applies a scoring profile to its metadata,
            ``judge=``, ``coalesce=``, ``long_text=``, ``cache=``, ``fail_open=``, ``instruction=``, ...).
            Only with a back end: a Reranker carries its own. (``reranker_kwargs`` is the deprecated
            spelling.)
        first_stage_score_key: the metadata key holding a Document's first-stage score (``"score"``).

    ``RerankCompressor.from_cross_encoder("cross-encoder/ms-marco-MiniLM-L6-v2", top_n=3)`` is the
    one-line local case; ``from_backend(backend, **options)`` is the generic one. The constructors are the
    core's (:class:`rerank_core.integrations.AdapterConstructors`), shared with every adapter.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")
    adapter_options: ClassVar[tuple[str, ...]] = ("first_stage_score_key",)

    reranker: Reranker = Field(exclude=True)
    """The core reranker doing the work. Left out of ``model_dump`` / ``model_dump_json`` (it holds a model or
    a client, and maybe an API key); a deep copy shares its back end, a pickle rebuilds it without secrets
    (:mod:`rerank_core.integrations._serialize`)."""
    top_n: int | None = None
    """Keep at most this many Documents per call (``None``: keep all that pass the threshold)."""
    score_threshold: float | None = None
    """Keep Documents whose ``relevance_score`` is at least this (``None``: no threshold)."""
    first_stage_score_key: str = DEFAULT_FIRST_STAGE_SCORE_KEY
    """The metadata key a Document's first-stage (retriever) score is read from."""

    @classmethod
    def _as_core_llm(cls, llm: Any) -> Any:
        """``from_llm_judge`` takes a LangChain chat model (wrapped in :class:`LangChainLLM`)."""
        from langchain_rerank.llm import as_core_llm

        return as_core_llm(llm)

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
            first_stage = self._first_stage_scores(docs)
            response = self.reranker.rerank(
                query,
                _texts(docs),
                top_n=self.top_n,
                score_threshold=self.score_threshold,
                first_stage_scores=first_stage,
            )
            out, event = self._finish(docs, response, started, first_stage)
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
            first_stage = self._first_stage_scores(docs)
            response = await self.reranker.arerank(
                query,
                _texts(docs),
                top_n=self.top_n,
                score_threshold=self.score_threshold,
                first_stage_scores=first_stage,
            )
            out, event = self._finish(docs, response, started, first_stage)
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

    def _first_stage_scores(self, docs: list[Document]) -> list[float] | None:
        """The Documents' first-stage scores for the core (rules: ``collect_first_stage_scores``)."""
        key = self.first_stage_score_key
        return collect_first_stage_scores(
            [d.metadata.get(key) for d in docs],
            self.reranker.fusion,
            lambda i: f"documents[{i}].metadata[{key!r}]",
            hint=f"put each Document's retriever score in metadata[{key!r}], or set first_stage_score_key",
        )

    def _finish(
        self, docs: list[Document], response: RerankResponse, started: float, first_stage: list[float] | None
    ) -> tuple[list[Document], dict[str, Any]]:
        """(copies of the kept Documents, best first, or in the context's order; the rerank event's data)."""
        fused = response.fusion is not None
        out = []
        for i, r, text, extra in outputs(response):
            update: dict[str, Any] = {
                "metadata": reranked_metadata(
                    docs[i].metadata, r, fused=fused, relevance_score=True, extra=extra
                )  # an earlier pass's keys (rerank_failed, rerank_window, ...) never survive
            }
            if text is not None:  # chunks of one parent merged by the context stage
                update["page_content"] = text
            out.append(docs[i].model_copy(update=update))
        event: dict[str, Any] = {
            "backend": response.backend,
            "query": response.query,
            "candidates": response.num_candidates,
            "returned": len(out),
            "top_n": self.top_n,
            "score_threshold": self.score_threshold,
            "normalization": response.normalization,
            "score_kind": response.score_kind,
            "fusion": response.fusion,
            "profile": response.profile,
            "calibration": response.calibration,
            "no_answer": response.no_answer,
            "context": None if response.context is None else response.context.to_dict(),
            "first_stage": _first_stage_source(first_stage, fused, len(docs), self.first_stage_score_key),
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
            "rerank_fusion": None if self.reranker.fusion is None else self.reranker.fusion.describe(),
            "rerank_profile": None if self.reranker.profile is None else self.reranker.profile.describe(),
        }


def documents_with_scores(
    docs_and_scores: Iterable[tuple[Document, float]], key: str = DEFAULT_FIRST_STAGE_SCORE_KEY
) -> list[Document]:
    """Copies of the Documents of ``(Document, score)`` pairs (what ``similarity_search_with_score`` and
    ``similarity_search_with_relevance_scores`` return) with the score in ``metadata[key]``, ready for a
    compressor with a fusion. The given Documents are not mutated. Scores must be "higher is better":
    prefer ``similarity_search_with_relevance_scores`` for stores whose raw score is a distance."""
    return [
        doc.model_copy(update={"metadata": {**doc.metadata, key: score}}) for doc, score in docs_and_scores
    ]


def _first_stage_source(first_stage: list[float] | None, fused: bool, n: int, key: str) -> str | None:
    """What the trace event says the first stage was: the metadata key read, the input order (``rrf``
    without scores), or ``None`` (no first-stage scores, no fusion)."""
    if first_stage is not None:
        return f"metadata[{key!r}]"
    if fused and n:
        return "input order"
    return None


def _texts(docs: list[Document]) -> list[Candidate]:
    """What the core ranks: each Document's ``page_content``, with its metadata for a scoring profile."""
    return candidates_with_metadata(
        [d.page_content for d in docs], [d.metadata for d in docs], [d.id for d in docs]
    )


def _query_text(query: object) -> str:
    """What the trace shows as the run's input (the core validates the real query)."""
    return query if isinstance(query, str) else repr(query)

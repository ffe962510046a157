"""``ContextCompressor``: the core's context-selection stage as a LangChain ``BaseDocumentCompressor``.

For Documents a reranker already ranked (a :class:`~langchain_rerank.RerankCompressor` before it in a
``DocumentCompressorPipeline``, or any other reranker), best first: it keeps what reaches the LLM (a token
budget, near-duplicates, MMR, grouping by parent, the final order: :class:`rerank_core.context.ContextPolicy`)
and returns copies of those Documents in the context's order, each with ``metadata["rerank_context"]``. MMR
reads each Document's ``metadata["relevance_score"]`` (``score_key``; the rank when a Document has none).
Each call dispatches a ``"rerank_context"`` custom event: the selection, every dropped Document with its
reason. The caller's Documents are never mutated.

``RerankCompressor(..., context=ContextPolicy(...))`` does the same in one step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManager, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, field_validator

from rerank_core.context import ContextPolicy
from rerank_core.integrations import RELEVANCE_SCORE_KEY, check_items, check_policy, outputs, select_items

__all__ = ["CONTEXT_EVENT", "ContextCompressor"]

CONTEXT_EVENT = "rerank_context"
"""Name of the custom callback event each :class:`ContextCompressor` call dispatches."""


class ContextCompressor(BaseDocumentCompressor):
    """Select what reaches the LLM from ranked Documents (``ContextCompressor(policy=ContextPolicy(...))``;
    a mapping of the policy's fields is taken too)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    policy: ContextPolicy
    """The context-selection options (:class:`rerank_core.context.ContextPolicy`)."""
    score_key: str = RELEVANCE_SCORE_KEY
    """The metadata key of a Document's relevance score (what MMR reads)."""

    def __init__(self, policy: ContextPolicy | Mapping[str, Any] | None = None, **data: Any) -> None:
        super().__init__(policy=check_policy(policy), **data)

    @field_validator("policy", mode="before")
    @classmethod
    def _policy(cls, value: object) -> ContextPolicy:
        return check_policy(value)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Copies of the selected Documents, in the context's order (``query`` is not read: the order is
        the one given)."""
        manager = CallbackManager.configure(callbacks, None)
        run = manager.on_retriever_start(
            None, query if isinstance(query, str) else repr(query), name="ContextCompressor"
        )
        try:
            docs = check_items(documents, Document, "documents", plural="Documents", singular="a Document")
            selection = select_items(
                [d.page_content for d in docs],
                [d.metadata for d in docs],
                [d.metadata.get(self.score_key) for d in docs],
                self.policy,
                ids=[d.id for d in docs],
            )
            out = []
            for i, _, text, extra in outputs(None, selection):
                update: dict[str, Any] = {"metadata": {**docs[i].metadata, **extra}}
                if text is not None:
                    update["page_content"] = text
                out.append(docs[i].model_copy(update=update))
        except BaseException as exc:
            run.on_retriever_error(exc)
            raise
        run.get_child().on_custom_event(CONTEXT_EVENT, selection.to_dict(), run_id=run.run_id)
        run.on_retriever_end(out)
        return out

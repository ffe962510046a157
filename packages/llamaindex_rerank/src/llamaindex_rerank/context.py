"""``ContextPostprocessor``: the core's context-selection stage as a LlamaIndex ``BaseNodePostprocessor``.

For nodes a reranker already ranked (a :class:`~llamaindex_rerank.RerankPostprocessor` before it in
``node_postprocessors``, or any other reranker), best first: it keeps what reaches the LLM (a token budget,
near-duplicates, MMR, grouping by parent, the final order: :class:`rerank_core.context.ContextPolicy`) and
returns new nodes in the context's order, each with ``metadata["rerank_context"]`` (hidden from the LLM and
the embedder). MMR reads ``NodeWithScore.score`` (the rank when a node has none); with
``similarity="embeddings"`` the nodes' own ``embedding`` is used when every node has one (else the vectors in
metadata under ``embedding_key``). Each call emits a ``RERANKING`` event whose end payload carries
``"context"``: the selection, every dropped node with its reason. The input nodes are never mutated.

``RerankPostprocessor(..., context=ContextPolicy(...))`` does the same in one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict, Field
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from llamaindex_rerank.postprocessor import _with_metadata, check_nodes, node_embeddings
from rerank_core.context import ContextPolicy
from rerank_core.integrations import CONTEXT_KEY, check_policy, outputs, select_items

__all__ = ["ContextPostprocessor"]


class ContextPostprocessor(BaseNodePostprocessor):
    """Select what reaches the LLM from ranked nodes (``ContextPostprocessor(policy=ContextPolicy(...))``;
    a mapping of the policy's fields is taken too)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    policy: ContextPolicy = Field(description="The context-selection options.")
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.NONE, description="Which node content is counted and compared (the node's text)."
    )

    def __init__(self, policy: ContextPolicy | Mapping[str, Any] | None = None, **data: Any) -> None:
        super().__init__(policy=check_policy(policy), **data)

    @classmethod
    def class_name(cls) -> str:
        return "ContextPostprocessor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        items = check_nodes(nodes)
        payload = {
            EventPayload.NODES: items,
            EventPayload.QUERY_STR: getattr(query_bundle, "query_str", None),
        }
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
            selection = select_items(
                [i.node.get_content(metadata_mode=self.metadata_mode) for i in items],
                [i.node.metadata for i in items],
                [i.score for i in items],
                self.policy,
                node_embeddings(self.policy, items),
                ids=[i.node.node_id for i in items],
            )
            out = []
            for i, _, text, extra in outputs(None, selection):
                node = items[i].node
                copied = _with_metadata(node, {**node.metadata, **extra}, [CONTEXT_KEY], text)
                out.append(NodeWithScore(node=copied, score=items[i].score))
            event.on_end(payload={EventPayload.NODES: out, "context": selection.to_dict()})
        return out

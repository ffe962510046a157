"""Context selection: what reaches the LLM, after the reranker's ranking (docs/context-selection.md).

A token budget counted with your LLM's tokenizer (or a character estimate), near-duplicate removal, MMR
diversity, grouping chunks under their parent document (the best chunk, or the kept chunks merged in
document order) and the final order (relevance, or "lost in the middle" edges), as one stage with one
options object, :class:`ContextPolicy`:

- ``Reranker(backend, context=ContextPolicy(...))`` runs it after threshold, no answer, judge and ``top_n``;
  the response keeps its ``results`` and gains ``response.context``, a :class:`ContextSelection`;
- :func:`select_context` runs it on a response, or on a ranking made elsewhere.

Every ranked result is either kept (a :class:`ContextItem`) or dropped with its reason (a
:class:`DroppedCandidate`), each pointing back at its position in the reranker's input.
"""

from rerank_core.context._policy import CHARS_PER_TOKEN, ContextPolicy, TokenCounter
from rerank_core.context._select import (
    ContextItem,
    ContextSelection,
    DroppedCandidate,
    edges_order,
    select_context,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "ContextItem",
    "ContextPolicy",
    "ContextSelection",
    "DroppedCandidate",
    "TokenCounter",
    "edges_order",
    "select_context",
]

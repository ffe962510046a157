"""``RerankPostprocessor``: a LlamaIndex ``BaseNodePostprocessor`` over a rerank-core :class:`Reranker`.

``NodeWithScore`` in, new ``NodeWithScore`` out, best first, with ``score`` = the calibrated
``relevance_score`` (what ``score_threshold`` compares). The core ranks each node's content
(``node.get_content(metadata_mode)``, ``MetadataMode.EMBED`` by default as LlamaIndex's rerankers do);
the postprocessor only maps the results back to copies of the caller's nodes, whose metadata loses every
key an earlier rerank pass wrote (``METADATA_KEYS``: nothing stale survives a second pass) and gains:

- ``retrieval_score``: the score the node came in with (LlamaIndex's ``keep_retrieval_score``
  convention; on by default, skipped when the incoming score is ``None``, and kept as it is on a node that
  already went through a rerank pass, whose incoming score is that pass's relevance score);
- ``rerank_raw_score``: what the back end returned;
- ``rerank_window`` / ``rerank_truncated`` when the core windowed or truncated a long text;
- with a fusion (``fusion="zscore:0.6"``, or a Reranker that has one): ``rerank_score`` (the reranker's own
  calibrated score) and ``first_stage_score`` (the incoming ``NodeWithScore.score`` that was fused), while
  ``score`` is the fused relevance score;
- with a scoring profile (``profile=...``, or a Reranker that has one; its rules read the node's metadata):
  ``pre_profile_score`` and ``profile_effects`` (the rules that fired), while ``score`` is the profiled score.

The first-stage score is the incoming ``NodeWithScore.score``. When every node has one it is passed to the
core (so the results keep it, fused or not); a fusion that needs it and does not find it is an
:class:`InvalidInputError` naming ``nodes[i].score``, except ``rrf`` when no node has one (it then fuses with
the input order).

With a context-selection stage (``context=ContextPolicy(...)``, docs/context-selection.md) the
postprocessor returns what reaches the LLM instead: the selected nodes in the context's order, each with
``metadata["rerank_context"]`` (its position, tokens, merged chunks), a merged item as one node (a copy of
its best chunk's node with the merged text); the ``RERANKING`` event's end payload gains ``"context"``, every
dropped node with its reason. The context is selected, counted and merged on each node's own text
(``MetadataMode.NONE``) whatever ``metadata_mode`` the ranking read, so that the budget and a merged
node's ``text`` never include metadata headers; ``chunk_ids`` are the nodes' ``node_id``. With
``similarity="embeddings"`` the nodes' own ``embedding`` is compared when every node has one (not ``None``,
not empty: :func:`node_embeddings`; else the vectors in metadata under the policy's ``embedding_key``).

These keys are added to the copy's ``excluded_llm_metadata_keys`` and ``excluded_embed_metadata_keys``,
so the text the LLM and the embedder see is unchanged. The input nodes, their metadata and their scores
are never mutated. Each call emits ``ReRankStartEvent`` / ``ReRankEndEvent`` through the instrumentation
dispatcher and a ``RERANKING`` event to the legacy callback manager.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from llama_index.core.bridge.pydantic import ConfigDict, Field
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

from rerank_core import (
    Candidate,
    ConfigurationError,
    ContextPolicy,
    InvalidInputError,
    Reranker,
    RerankResponse,
    RerankResult,
    select_context,
)
from rerank_core.integrations import (
    FIRST_STAGE_SCORE_KEY,
    METADATA_KEYS,
    RAW_SCORE_KEY,
    RERANK_SCORE_KEY,
    AdapterConstructors,
    candidates_with_metadata,
    check_items,
    collect_first_stage_scores,
    outputs,
    reranked_metadata,
    reranker_config,
    reranker_from_config,
)

__all__ = [
    "FIRST_STAGE_SCORE_KEY",  # the core's keys (rerank_core.integrations.metadata), also exported here
    "RAW_SCORE_KEY",
    "RERANK_SCORE_KEY",
    "RETRIEVAL_SCORE_KEY",
    "RerankPostprocessor",
    "check_nodes",
]

dispatcher = get_dispatcher(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"
"""Metadata key of the incoming (retrieval) score, as LlamaIndex's ``keep_retrieval_score`` uses (the
LlamaIndex-only key; the others are the core's, :mod:`rerank_core.integrations.metadata`)."""


def check_nodes(nodes: object, argument: str = "nodes") -> list[NodeWithScore]:
    """The nodes as a list, or an error naming the argument (or the position of a bad item)."""
    return check_items(nodes, NodeWithScore, argument, plural="NodeWithScore", singular="a NodeWithScore")


def _check_query_bundle(query_bundle: object) -> QueryBundle:
    if query_bundle is None:
        raise InvalidInputError(
            "query_bundle",
            "is required to rerank: pass query_bundle=QueryBundle(...) or query_str=... to postprocess_nodes",
        )
    if not isinstance(query_bundle, QueryBundle):
        raise InvalidInputError("query_bundle", f"must be a QueryBundle, got {type(query_bundle).__name__}")
    return query_bundle


class RerankPostprocessor(AdapterConstructors, BaseNodePostprocessor):
    """Rerank retrieved nodes with a rerank-core :class:`Reranker` and keep the best.

    Args:
        reranker: a :class:`rerank_core.Reranker` (its policy is used), or a back end
            (:class:`rerank_core.backends.Backend`) from which a Reranker is built with the options below.
        top_n: keep at most this many (``None``: all that pass the threshold). With a Reranker, defaults
            to the Reranker's and, when given, overrides it.
        score_threshold: drop nodes whose relevance score is below this. Same defaulting.
        options: the Reranker built over a back end: a :class:`rerank_core.RerankerOptions` or a mapping of
            its fields; any field may also be given as a keyword (``fusion="zscore:0.6"`` fuses with each
            node's incoming score, ``profile=...`` applies a scoring profile to its metadata, ``judge=``,
            ``coalesce=``, ``long_text=``, ``cache=``, ``fail_open=``, ``instruction=``, ...). Only with a
            back end: a Reranker carries its own. (``reranker_kwargs`` is the deprecated spelling.)
        keep_retrieval_score: copy the incoming score to ``metadata["retrieval_score"]`` (default on).
        metadata_mode: which node content is ranked (``MetadataMode.EMBED`` by default).

    ``RerankPostprocessor.from_cross_encoder(model, top_n=3, ...)`` (the options above, the rest going to
    the back end) and ``from_backend(backend, **options)`` are the core's constructors
    (:class:`rerank_core.integrations.AdapterConstructors`), shared with every adapter.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    adapter_options: ClassVar[tuple[str, ...]] = ("keep_retrieval_score", "metadata_mode")

    reranker: Reranker = Field(exclude=True, description="The core reranker doing the work.")
    top_n: int | None = Field(default=None, description="Keep at most this many nodes (None: all).")
    score_threshold: float | None = Field(default=None, description="Minimum relevance score kept.")
    keep_retrieval_score: bool = Field(
        default=True, description="Keep the incoming score in metadata['retrieval_score']."
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Which node content the reranker reads."
    )

    @classmethod
    def class_name(cls) -> str:
        return "RerankPostprocessor"

    # -- dumps (the Reranker as a JSON description without secrets; see rerank_core.integrations) ---------

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The fields, and ``"reranker"``: :func:`~rerank_core.integrations.reranker_config` (the back end's
        class and arguments without secrets, the options), or ``None`` when the Reranker cannot be described
        as JSON (a back end built over objects, a judge stage)."""
        data = super().to_dict(**kwargs)
        data["reranker"] = reranker_config(self.reranker)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> RerankPostprocessor:  # type: ignore[override]
        """The postprocessor :meth:`to_dict` described; ``kwargs`` override ``data`` (pass
        ``reranker=...`` when the dict holds none). The back end reads its API key from the environment."""
        data = {**data, **kwargs}
        data.pop("class_name", None)
        reranker = data.pop("reranker", None)
        if isinstance(reranker, Mapping):
            reranker = reranker_from_config(reranker)
        elif reranker is None:
            raise ConfigurationError(
                "reranker",
                "the dict holds no reranker (its Reranker could not be written as JSON: a back end built "
                "over objects, or a judge stage); pass one: from_dict(data, reranker=...)",
            )
        return cls(reranker, **data)

    @classmethod
    def _as_core_llm(cls, llm: Any) -> Any:
        """``from_llm_judge`` takes a LlamaIndex LLM (wrapped in :class:`LlamaIndexLLM`)."""
        from llamaindex_rerank.llm import as_core_llm

        return as_core_llm(llm)

    # -- editable prompts (LlamaIndex's PromptMixin convention; an LLM judge has three) ------------------

    def _get_prompts(self) -> dict[str, Any]:
        from llamaindex_rerank.llm import judge_prompts

        return judge_prompts(self.reranker.backend)

    def _update_prompts(self, prompts: Mapping[str, Any]) -> None:
        from llamaindex_rerank.llm import update_judge_prompts

        update_judge_prompts(self.reranker.backend, prompts)

    def get_prompts(self) -> dict[str, Any]:
        """The prompts (``yes_no_prompt``, ``graded_prompt``, ``listwise_prompt`` for an LLM judge)."""
        return self._get_prompts()

    def update_prompts(self, prompts: Mapping[str, Any]) -> None:
        """Replace prompts by the keys :meth:`get_prompts` returns."""
        self._update_prompts(prompts)

    # -- the postprocessor -----------------------------------------------------------------------------

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query_bundle, items, texts, first_stage = self._start(nodes, query_bundle)
        with self._reranking_event(items, query_bundle) as event:
            response = self.reranker.rerank(
                query_bundle.query_str,
                texts,
                top_n=self.top_n,
                score_threshold=self.score_threshold,
                first_stage_scores=first_stage,
                embeddings=self._embeddings(items),
            )
            return self._end(event, items, response)

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query_bundle, items, texts, first_stage = self._start(nodes, query_bundle)
        with self._reranking_event(items, query_bundle) as event:
            response = await self.reranker.arerank(
                query_bundle.query_str,
                texts,
                top_n=self.top_n,
                score_threshold=self.score_threshold,
                first_stage_scores=first_stage,
                embeddings=self._embeddings(items),
            )
            return self._end(event, items, response)

    # -- what the sync and async paths share (no I/O) ------------------------------------------------------

    def _embeddings(self, items: list[NodeWithScore]) -> list[Any] | None:
        """The nodes' own embeddings, for a context policy comparing embeddings, when every node has one
        (else the policy reads them from metadata)."""
        return node_embeddings(self.reranker.options.context, items)

    def _start(
        self, nodes: object, query_bundle: object
    ) -> tuple[QueryBundle, list[NodeWithScore], list[Candidate], list[float] | None]:
        """Check the call, emit ``ReRankStartEvent``; (the query bundle, the nodes, the texts to rank, the
        first-stage scores for the core)."""
        query_bundle = _check_query_bundle(query_bundle)
        items = check_nodes(nodes)
        first_stage = collect_first_stage_scores(
            [item.score for item in items],
            self.reranker.fusion,
            lambda i: f"nodes[{i}].score",
            hint="use a retriever that scores its nodes, or an 'rrf' fusion over unscored ones",
        )
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle,
                nodes=items,
                top_n=self.top_n if self.top_n is not None else len(items),
                model_name=self.reranker.backend.fingerprint,
            )
        )
        texts = candidates_with_metadata(
            [item.node.get_content(metadata_mode=self.metadata_mode) for item in items],
            [item.node.metadata for item in items],  # for a scoring profile's rules
            [item.node.node_id for item in items],
        )
        return query_bundle, items, texts, first_stage

    def _end(self, event: Any, items: list[NodeWithScore], response: RerankResponse) -> list[NodeWithScore]:
        """Map the results back to new nodes, end the callback event and emit ``ReRankEndEvent``."""
        response = self._own_text_context(items, response)
        fused = response.fusion is not None
        out = [self._node(items[i], r, fused, text, extra) for i, r, text, extra in outputs(response)]
        payload: dict[str, Any] = {EventPayload.NODES: out}
        if response.no_answer is not None:  # no_answer_floor dropped every node: say why
            payload["no_answer"] = response.no_answer
        if response.context is not None:  # the context stage: what it kept, what it dropped and why
            payload["context"] = response.context.to_dict()
        event.on_end(payload=payload)
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out

    def _own_text_context(self, items: list[NodeWithScore], response: RerankResponse) -> RerankResponse:
        """The context selected on the nodes' own text (``MetadataMode.NONE``), whatever ``metadata_mode``
        the ranking read: the budget, de-duplication and merged text are about what the node holds (the
        same texts :class:`ContextPostprocessor` counts), never its metadata header. The core selected on
        the ranked texts; when they differ from the nodes' own, the selection is made again over the same
        results with the own texts."""
        policy = self.reranker.options.context
        if response.context is None or policy is None:
            return response
        own = [item.node.get_content(metadata_mode=MetadataMode.NONE) for item in items]
        if all(r.text == own[r.index] for r in response.results):
            return response
        results = [dataclasses.replace(r, text=own[r.index]) for r in response.results]
        selection = select_context(
            dataclasses.replace(response, results=tuple(results)), policy, embeddings=self._embeddings(items)
        )
        return dataclasses.replace(response, context=selection)

    def _node(
        self,
        item: NodeWithScore,
        result: RerankResult,
        fused: bool,
        text: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> NodeWithScore:
        node = item.node
        own: dict[str, Any] = {}
        if self.keep_retrieval_score and item.score is not None and not _reranked_before(node):
            own[RETRIEVAL_SCORE_KEY] = item.score
        metadata = reranked_metadata(node.metadata, result, fused=fused, extra={**own, **(extra or {})})
        hide = [k for k in metadata if k in own or k in METADATA_KEYS]
        copied = _with_metadata(node, metadata, hide, text)
        return NodeWithScore(node=copied, score=result.relevance_score)

    # -- events ----------------------------------------------------------------------------------------

    def _reranking_event(self, items: list[NodeWithScore], query_bundle: QueryBundle) -> Any:
        """The legacy callback manager's ``RERANKING`` event (a context manager)."""
        payload = {
            EventPayload.NODES: items,
            EventPayload.MODEL_NAME: self.reranker.backend.fingerprint,
            EventPayload.QUERY_STR: query_bundle.query_str,
            EventPayload.TOP_K: self.top_n,
        }
        return self.callback_manager.event(CBEventType.RERANKING, payload=payload)


def node_embeddings(policy: ContextPolicy | None, items: list[NodeWithScore]) -> list[Any] | None:
    """The nodes' own embeddings for a context policy comparing embeddings, when every node has one (not
    ``None``, not empty); else ``None``: the policy then reads the vectors in metadata under its
    ``embedding_key``. The one rule of :class:`RerankPostprocessor` and ``ContextPostprocessor``."""
    if policy is None or policy.similarity != "embeddings" or not items:
        return None
    vectors = [item.node.embedding for item in items]
    return vectors if all(v is not None and len(v) > 0 for v in vectors) else None


def node_with_metadata(node: BaseNode, added: Mapping[str, Any]) -> BaseNode:
    """A copy of ``node`` whose metadata gains ``added``, those keys hidden from the LLM and the embedder (so
    the text they see is unchanged); ``node`` itself is not modified."""
    return _with_metadata(node, {**node.metadata, **added}, hide=added.keys())


def _with_metadata(
    node: BaseNode, metadata: dict[str, Any], hide: Iterable[str], text: str | None = None
) -> BaseNode:
    """A copy of ``node`` with ``metadata``, the keys ``hide`` hidden from the LLM and the embedder, and
    ``text`` as its text when given (chunks merged by the context stage; its embedding is then dropped)."""
    hidden = list(hide)
    update: dict[str, Any] = {
        "metadata": metadata,
        "excluded_llm_metadata_keys": _with(node.excluded_llm_metadata_keys, hidden),
        "excluded_embed_metadata_keys": _with(node.excluded_embed_metadata_keys, hidden),
        "relationships": dict(node.relationships),
    }
    if text is not None:
        if not hasattr(node, "text"):
            raise InvalidInputError(
                "nodes", f"cannot merge the text of a {type(node).__name__} (not a TextNode)"
            )
        update["text"] = text
        update["embedding"] = None
    return node.model_copy(update=update)


def _reranked_before(node: BaseNode) -> bool:
    """Whether ``node`` came out of an earlier rerank pass (it carries the back end's raw score): its incoming
    score is then that pass's relevance score, not a retrieval score, so ``retrieval_score`` is not taken
    from it (the one the node carries, from before the first pass, is kept)."""
    return RAW_SCORE_KEY in node.metadata


def _with(keys: list[str], added: Iterable[str]) -> list[str]:
    return [*keys, *(k for k in added if k not in keys)]

"""The context-selection stage through LlamaIndex: RerankPostprocessor(context=...) and ContextPostprocessor
as a second node postprocessor."""

from __future__ import annotations

import copy

from fakes import FakeBackend
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from llamaindex_rerank import CONTEXT_KEY, ContextPostprocessor, RerankPostprocessor
from rerank_core import ContextPolicy

TEXT = "the reranker scores each query and passage pair jointly and keeps the best few"
SCORES = {TEXT: 3.0, TEXT + " of them": 2.5, "cats nap in the sun": 1.0, "dogs bark": -1.0}


def nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=t, id_=f"n{i}", metadata={"doc": "A" if i < 2 else f"D{i}"}), score=0.5
        )
        for i, t in enumerate(SCORES)
    ]


def test_the_postprocessor_returns_the_context_with_reasons_in_the_event() -> None:
    given = nodes()
    before = copy.deepcopy(given)
    debug = LlamaDebugHandler()
    pp = RerankPostprocessor(
        FakeBackend(SCORES),
        metadata_mode=MetadataMode.NONE,
        context=ContextPolicy(dedup_threshold=0.8, order="edges", token_budget=26),
        callback_manager=CallbackManager([debug]),
    )
    out = pp.postprocess_nodes(given, query_str="q")
    assert [n.node.node_id for n in out] == ["n0", "n2"]  # 20 + 5 tokens; n3 (3) does not fit
    context = [n.node.metadata[CONTEXT_KEY] for n in out]
    assert [c["position"] for c in context] == [0, 1] and context[0]["token_budget"] == 26
    assert CONTEXT_KEY in out[0].node.excluded_llm_metadata_keys  # the LLM's text is unchanged
    assert out[0].node.get_content(MetadataMode.LLM) == given[0].node.get_content(MetadataMode.LLM)
    assert [n.score for n in out] == [3.0, 1.0]
    payload = debug.get_event_pairs(CBEventType.RERANKING)[0][1].payload
    reasons = [(d["index"], d["reason"]) for d in payload["context"]["dropped"]]
    assert reasons == [(1, "budget"), (3, "budget")]  # n1 is also a duplicate: the cheaper check comes first
    assert given == before


def test_merged_chunks_become_one_node_and_the_dict_keeps_the_policy() -> None:
    policy = ContextPolicy(group_by="doc", group_mode="merge", position_key="pos")
    items = nodes()
    items[0].node.metadata["pos"], items[1].node.metadata["pos"] = 2, 1
    pp = RerankPostprocessor(FakeBackend(SCORES), metadata_mode=MetadataMode.NONE, context=policy)
    out = pp.postprocess_nodes(items, query_str="q")
    assert out[0].node.get_content() == f"{TEXT} of them\n\n{TEXT}"
    assert out[0].node.metadata[CONTEXT_KEY]["chunk_ids"] == ["n1", "n0"]  # node_id
    assert out[0].node.metadata[CONTEXT_KEY]["chunks"] == [1, 0] and len(out) == 3
    assert items[0].node.get_content() == TEXT  # not mutated
    rebuilt = RerankPostprocessor.from_dict(pp.to_dict())
    assert rebuilt.reranker.options.context == policy


def test_context_postprocessor_uses_the_nodes_embeddings() -> None:
    items = [
        NodeWithScore(node=TextNode(text="a", id_="a", embedding=[1.0, 0.0]), score=0.9),
        NodeWithScore(node=TextNode(text="b", id_="b", embedding=[0.99, 0.05]), score=0.8),
        NodeWithScore(node=TextNode(text="c", id_="c", embedding=[0.0, 1.0]), score=0.2),
    ]
    debug = LlamaDebugHandler()
    pp = ContextPostprocessor(
        ContextPolicy(similarity="embeddings", mmr_lambda=0.5, max_items=2),
        callback_manager=CallbackManager([debug]),
    )
    out = pp.postprocess_nodes(items, query_str="q")
    assert [n.node.node_id for n in out] == ["a", "c"] and [n.score for n in out] == [0.9, 0.2]
    payload = debug.get_event_pairs(CBEventType.RERANKING)[0][1].payload
    assert [(d["index"], d["id"], d["reason"], d["of"]) for d in payload["context"]["dropped"]] == [
        (1, "b", "diversity", 0)
    ]
    assert out[0].node.metadata[CONTEXT_KEY]["chunk_ids"] == ["a"]
    assert CONTEXT_KEY not in items[0].node.metadata


def test_rerank_then_context_as_two_postprocessors() -> None:
    first = RerankPostprocessor(FakeBackend(SCORES), metadata_mode=MetadataMode.NONE, top_n=3)
    second = ContextPostprocessor({"group_by": "doc", "order": "edges"})
    out = second.postprocess_nodes(first.postprocess_nodes(nodes(), query_str="q"), query_str="q")
    assert [n.node.node_id for n in out] == ["n0", "n2"]  # n1 has n0's parent


def test_the_postprocessor_compares_the_nodes_own_embeddings() -> None:
    items = [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}", embedding=v), score=0.5)
        for i, (t, v) in enumerate(
            zip(SCORES, [[1.0, 0.0], [0.0, 1.0], [0.99, 0.05], [0.6, 0.6]], strict=True)
        )
    ]
    policy = ContextPolicy(similarity="embeddings", dedup_threshold=0.95)
    pp = RerankPostprocessor(FakeBackend(SCORES), metadata_mode=MetadataMode.NONE, context=policy)
    out = pp.postprocess_nodes(items, query_str="q")
    assert [n.node.node_id for n in out] == ["n0", "n1", "n3"]  # n2's vector is n0's, its text is not


def test_the_context_is_selected_counted_and_merged_on_the_nodes_own_text() -> None:
    # the default metadata_mode (EMBED) ranks "title: ...\n\n<text>"; the context is about the text itself
    items = [
        NodeWithScore(
            node=TextNode(text=t, id_=f"n{i}", metadata={"title": "A long title " * 5, "doc": "A", "pos": i}),
            score=0.5,
        )
        for i, t in enumerate(["aaaa", "bbbb"])
    ]
    policy = ContextPolicy(group_by="doc", group_mode="merge", position_key="pos", token_budget=3)
    backend = FakeBackend(lambda q, t: 2.0 if t.endswith("aaaa") else 1.0)
    pp = RerankPostprocessor(backend, context=policy)
    embed = [n.node.get_content(MetadataMode.EMBED) for n in items]
    assert all(t.startswith("title: ") for t in embed)  # what the ranking reads: the metadata header too
    (merged,) = pp.postprocess_nodes(items, query_str="q")
    assert merged.node.text == "aaaa\n\nbbbb"  # no header merged into the node's text
    context = merged.node.metadata[CONTEXT_KEY]
    assert context["tokens"] == context["tokens_used"] == 3 and context["chunk_ids"] == ["n0", "n1"]
    # the same nodes, already ranked, through ContextPostprocessor (NONE): the same selection
    second = ContextPostprocessor(policy).postprocess_nodes(
        [NodeWithScore(node=n.node, score=s) for n, s in zip(items, [2.0, 1.0], strict=True)], query_str="q"
    )
    assert [n.node.text for n in second] == [merged.node.text]
    assert second[0].node.metadata[CONTEXT_KEY]["tokens"] == 3


def test_both_postprocessors_take_the_nodes_embeddings_by_one_rule() -> None:
    # n1's own embedding is empty: not every node has one, so both read the vectors in metadata
    own = [[1.0, 0.0], [], [0.0, 1.0], [0.6, 0.6]]
    meta = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [0.5, 0.5]]  # n2 duplicates n0 here
    items = [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}", embedding=v, metadata={"embedding": m}), score=s)
        for i, (t, v, m, s) in enumerate(zip(SCORES, own, meta, SCORES.values(), strict=True))
    ]
    policy = ContextPolicy(similarity="embeddings", dedup_threshold=0.95)
    first = RerankPostprocessor(FakeBackend(SCORES), metadata_mode=MetadataMode.NONE, context=policy)
    second = ContextPostprocessor(policy)
    for pp in (first, second):
        assert [n.node.node_id for n in pp.postprocess_nodes(items, query_str="q")] == ["n0", "n1", "n3"]

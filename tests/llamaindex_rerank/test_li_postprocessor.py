"""RerankPostprocessor on its own: mapping, copies, retrieval score, events, bad input, the async path."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeBackend, NativeAsyncBackend
from li_helpers import EventRecorder, recording_events
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from llamaindex_rerank import RAW_SCORE_KEY, RETRIEVAL_SCORE_KEY, RerankPostprocessor
from rerank_core import ConfigurationError, InvalidInputError, NonRetryableBackendError, Reranker
from rerank_core.backends import CrossEncoderBackend

SCORES = {"alpha": 1.0, "beta": 4.0, "gamma": -2.0, "delta": 3.0, "epsilon": 0.5}


def nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=text, id_=f"id-{text}", metadata={"pos": i, "nested": {"k": [i]}}),
            score=0.1 * i if i != 2 else None,
        )
        for i, text in enumerate(SCORES)
    ]


@pytest.fixture
def events() -> Iterator[EventRecorder]:
    with recording_events() as recorder:
        yield recorder


def pp(**kwargs: object) -> RerankPostprocessor:
    """Scores only the node text, so that the fake back end's table applies."""
    return RerankPostprocessor(FakeBackend(SCORES), metadata_mode=MetadataMode.NONE, **kwargs)  # type: ignore[arg-type]


def test_is_a_llamaindex_node_postprocessor() -> None:
    assert issubclass(RerankPostprocessor, BaseNodePostprocessor)
    assert BaseNodePostprocessor in RerankPostprocessor.__mro__
    assert RerankPostprocessor.class_name() == "RerankPostprocessor"
    assert isinstance(pp(), BaseNodePostprocessor)
    assert pp(top_n=2).to_dict()["top_n"] == 2  # serializable; the reranker object is left out


def test_new_nodes_best_first_with_relevance_as_score_and_input_untouched() -> None:
    given = nodes()
    before = copy.deepcopy(given)
    out = pp(top_n=3).postprocess_nodes(given, query_str="q")
    assert [n.node.get_content() for n in out] == ["beta", "delta", "alpha"]
    assert [n.node.node_id for n in out] == ["id-beta", "id-delta", "id-alpha"]
    assert [n.score for n in out] == [4.0, 3.0, 1.0]
    by_id = {n.node.node_id: n for n in given}
    for n in out:
        original = by_id[n.node.node_id]
        assert n is not original and n.node is not original.node
        assert n.node.metadata == {
            **original.node.metadata,
            RAW_SCORE_KEY: SCORES[n.node.get_content()],
            RETRIEVAL_SCORE_KEY: original.score,
        }
    for g, b in zip(given, before, strict=True):  # deep compare: nodes, metadata, scores
        assert g.score == b.score
        assert g.node.model_dump() == b.node.model_dump()


def test_added_keys_do_not_change_what_the_llm_or_embedder_sees() -> None:
    given = nodes()
    out = RerankPostprocessor(FakeBackend(), top_n=5).postprocess_nodes(given, query_str="q")
    by_id = {n.node.node_id: n for n in given}
    for n in out:
        original = by_id[n.node.node_id].node
        for mode in (MetadataMode.LLM, MetadataMode.EMBED):
            assert n.node.get_content(metadata_mode=mode) == original.get_content(metadata_mode=mode)
        assert original.excluded_llm_metadata_keys == []  # the original's lists are untouched


def test_retrieval_score_is_skipped_when_absent_or_turned_off() -> None:
    out = pp().postprocess_nodes(nodes(), query_str="q")
    gamma = next(n for n in out if n.node.get_content() == "gamma")
    assert RETRIEVAL_SCORE_KEY not in gamma.node.metadata  # it came in with score None
    off = pp(keep_retrieval_score=False).postprocess_nodes(nodes(), query_str="q")
    assert all(RETRIEVAL_SCORE_KEY not in n.node.metadata for n in off)


def test_metadata_mode_decides_what_is_ranked() -> None:
    seen: list[str] = []
    backend = FakeBackend(lambda q, t: (seen.append(t), 0.0)[1])
    RerankPostprocessor(backend).postprocess_nodes(nodes()[:1], query_str="q")
    assert seen == ["pos: 0\nnested: {'k': [0]}\n\nalpha"]  # EMBED, as LlamaIndex's rerankers
    seen.clear()
    RerankPostprocessor(backend, metadata_mode=MetadataMode.NONE).postprocess_nodes(
        nodes()[:1], query_str="q"
    )
    assert seen == ["alpha"]


def test_reranker_policy_and_per_call_override() -> None:
    reranker = Reranker(FakeBackend(SCORES), top_n=2)
    inherit = RerankPostprocessor(reranker, metadata_mode=MetadataMode.NONE)
    assert inherit.top_n == 2
    assert len(inherit.postprocess_nodes(nodes(), query_str="q")) == 2
    everything = RerankPostprocessor(reranker, top_n=None, metadata_mode=MetadataMode.NONE)
    assert len(everything.postprocess_nodes(nodes(), query_str="q")) == 5
    assert [n.score for n in pp(score_threshold=1.0).postprocess_nodes(nodes(), query_str="q")] == [
        4.0,
        3.0,
        1.0,
    ]


def test_sigmoid_normalization_gives_probabilities_as_scores() -> None:
    out = pp(normalization="sigmoid").postprocess_nodes(nodes(), query_str="q")
    assert all(0 < n.score < 1 for n in out)
    assert [n.node.metadata[RAW_SCORE_KEY] for n in out] == [4.0, 3.0, 1.0, 0.5, -2.0]


def test_empty_nodes_give_empty_output() -> None:
    assert pp().postprocess_nodes([], query_str="q") == []


def test_missing_query_bundle_is_a_clear_error_sync_and_async() -> None:
    with pytest.raises(ValueError, match="query_bundle") as info:
        pp().postprocess_nodes(nodes())
    assert info.value.argument == "query_bundle"  # type: ignore[attr-defined]
    with pytest.raises(InvalidInputError, match="query_bundle"):
        asyncio.run(pp().apostprocess_nodes(nodes()))


@pytest.mark.parametrize(
    ("given", "query", "argument"),
    [
        (nodes(), QueryBundle(query_str="  "), "query"),
        (nodes(), "q as a bundle", "query_bundle"),
        ("alpha", QueryBundle("q"), "nodes"),
        (None, QueryBundle("q"), "nodes"),
        ([*nodes(), TextNode(text="bare")], QueryBundle("q"), "nodes[5]"),
    ],
)
def test_bad_input_names_the_argument(given: object, query: object, argument: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        pp().postprocess_nodes(given, query_bundle=query)  # type: ignore[arg-type]
    assert info.value.argument == argument and argument in str(info.value)
    with pytest.raises(InvalidInputError):
        asyncio.run(pp().apostprocess_nodes(given, query_bundle=query))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"top_n": 0}, "top_n"),
        ({"top_n": True}, "top_n"),
        ({"score_threshold": "0.5"}, "score_threshold"),
        ({"normalization": "bogus"}, "normalization"),
        ({"reranker_kwargs": {"top_n": 3}}, "reranker_kwargs"),
    ],
)
@pytest.mark.filterwarnings("ignore:reranker_kwargs is deprecated:DeprecationWarning")
def test_bad_options_name_the_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RerankPostprocessor(FakeBackend(), **kwargs)
    assert info.value.argument == argument


def test_reranker_argument_is_checked() -> None:
    with pytest.raises(ConfigurationError) as info:
        RerankPostprocessor(None)
    assert info.value.argument == "reranker"
    with pytest.raises(ConfigurationError) as info:
        RerankPostprocessor(Reranker(FakeBackend()), temperature=2.0)
    assert info.value.argument == "temperature"


def test_rerank_events_reach_the_dispatcher(events: EventRecorder) -> None:
    given = nodes()
    postprocessor = RerankPostprocessor(FakeBackend(SCORES, name="tiny"), top_n=2, metadata_mode="none")
    out = postprocessor.postprocess_nodes(given, query_str="the query")
    start, end = events.named("ReRankStartEvent"), events.named("ReRankEndEvent")
    assert len(start) == 1 and len(end) == 1
    assert start[0].query.query_str == "the query" and start[0].nodes == given
    assert (start[0].top_n, start[0].model_name) == (2, "fake:tiny")
    assert end[0].nodes == out
    assert events.events.index(start[0]) < events.events.index(end[0])
    assert start[0].span_id is not None  # inside the postprocessor's span


async def test_async_path_emits_the_same_events(events: EventRecorder) -> None:
    out = await RerankPostprocessor(FakeBackend(), top_n=None).apostprocess_nodes(nodes(), query_str="q")
    assert events.named("ReRankStartEvent")[0].top_n == 5  # no top_n: every node comes back
    assert events.named("ReRankEndEvent")[0].nodes == out


def test_legacy_callback_manager_sees_a_reranking_event() -> None:
    debug = LlamaDebugHandler()
    postprocessor = pp(top_n=2, callback_manager=CallbackManager([debug]))
    out = postprocessor.postprocess_nodes(nodes(), query_str="q")
    pairs = debug.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 1
    assert pairs[0][1].payload["nodes"] == out


def test_backend_errors_propagate_and_no_end_event(events: EventRecorder) -> None:
    with pytest.raises(NonRetryableBackendError):
        RerankPostprocessor(FakeBackend(lambda q, t: float("inf"))).postprocess_nodes(nodes(), query_str="q")
    assert len(events.named("ReRankStartEvent")) == 1 and events.named("ReRankEndEvent") == []


async def test_apostprocess_uses_the_core_async_path() -> None:
    postprocessor = RerankPostprocessor(NativeAsyncBackend(SCORES), top_n=2, metadata_mode=MetadataMode.NONE)
    postprocessor.reranker.rerank = None  # type: ignore[method-assign]  # any sync call would fail
    out = await postprocessor.apostprocess_nodes(nodes(), query_bundle=QueryBundle("q"))
    assert [n.score for n in out] == [4.0, 3.0]


def test_from_cross_encoder_matches_the_core(tiny_ce_path: Path) -> None:
    texts = [f"passage {i} about topic {i % 3}" for i in range(7)]
    given = [NodeWithScore(node=TextNode(text=t), score=1.0) for t in texts]
    postprocessor = RerankPostprocessor.from_cross_encoder(tiny_ce_path, top_n=4, device="cpu")
    out = postprocessor.postprocess_nodes(given, query_str="topic 1")
    want = Reranker(CrossEncoderBackend(tiny_ce_path, device="cpu"), top_n=4).rerank("topic 1", texts)
    assert [n.node.get_content() for n in out] == [r.text for r in want]
    assert [n.score for n in out] == pytest.approx([r.relevance_score for r in want], abs=1e-5)

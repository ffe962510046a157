"""RerankPostprocessor with score fusion: the first-stage score is the incoming ``NodeWithScore.score``,
passed to the core; the output ``score`` is the fused score and the metadata keeps ``retrieval_score``,
``rerank_score`` and ``first_stage_score``. Expected orders are computed by hand with
``rerank_core.fuse_scores``; the end-to-end test takes the scores from a real ``VectorStoreIndex``."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeBackend, NativeAsyncBackend
from li_helpers import MiniLMEmbedding, corpus_nodes, recording_events
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from llamaindex_rerank import (
    FIRST_STAGE_SCORE_KEY,
    RAW_SCORE_KEY,
    RERANK_SCORE_KEY,
    RETRIEVAL_SCORE_KEY,
    RerankPostprocessor,
)
from rerank_core import ConfigurationError, Fusion, InvalidInputError, Reranker, fuse_scores
from rerank_core.backends import CrossEncoderBackend

SCORES = {"alpha": 1.0, "beta": 4.0, "gamma": -2.0, "delta": 3.0, "epsilon": 0.5}
TEXTS = list(SCORES)
RAW = [SCORES[t] for t in TEXTS]
FIRST = [0.9, 0.1, 0.8, 0.2, 0.5]  # the retriever disagrees with the reranker
FUSIONS = [Fusion("zscore", 0.5), Fusion("minmax", 0.3), Fusion("rrf", 0.5, rrf_k=0)]


def nodes(first: list[float | None] | None = FIRST) -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=text, id_=f"id-{text}", metadata={"pos": i}),
            score=None if first is None else first[i],
        )
        for i, text in enumerate(TEXTS)
    ]


def pp(**kwargs: object) -> RerankPostprocessor:
    """Scores only the node text, so that the fake back end's table applies."""
    return RerankPostprocessor(FakeBackend(SCORES), metadata_mode=MetadataMode.NONE, **kwargs)  # type: ignore[arg-type]


def by_hand(first: list[float], fusion: Fusion, raw: list[float] = RAW) -> tuple[list[int], np.ndarray]:
    """The fused order (ties keep input order) and the fused scores, from the core's formula."""
    fused = fuse_scores(raw, first, fusion)
    return [int(i) for i in np.argsort(-fused, kind="stable")], fused


def summary(out: list[NodeWithScore]) -> list[tuple[str, float | None, dict]]:
    return [(n.node.node_id, n.score, dict(n.node.metadata)) for n in out]


@pytest.mark.parametrize("fusion", FUSIONS, ids=lambda f: f.describe())
def test_fused_order_score_and_all_three_numbers_match_the_core_formula(fusion: Fusion) -> None:
    given = nodes()
    before = [(g.score, g.node.model_dump()) for g in given]
    out = pp(fusion=fusion).postprocess_nodes(given, query_str="q")
    order, fused = by_hand(FIRST, fusion)
    assert [n.node.get_content() for n in out] == [TEXTS[i] for i in order]
    assert order != sorted(range(5), key=lambda i: -RAW[i])  # the fusion changed the reranker's order
    for n, i in zip(out, order, strict=True):
        assert n.score == pytest.approx(fused[i])  # score stays the relevance (= fused) score
        assert n.node.metadata == {
            "pos": i,
            RETRIEVAL_SCORE_KEY: FIRST[i],
            RAW_SCORE_KEY: RAW[i],
            RERANK_SCORE_KEY: RAW[i],  # normalization "none": the calibrated score is the raw one
            FIRST_STAGE_SCORE_KEY: FIRST[i],
        }
        assert {RERANK_SCORE_KEY, FIRST_STAGE_SCORE_KEY} <= set(n.node.excluded_llm_metadata_keys)
        assert {RERANK_SCORE_KEY, FIRST_STAGE_SCORE_KEY} <= set(n.node.excluded_embed_metadata_keys)
    assert [(g.score, g.node.model_dump()) for g in given] == before  # inputs untouched


def test_rerank_score_is_the_calibrated_score_and_the_threshold_compares_the_fused_one() -> None:
    fusion = Fusion("zscore", 0.6)
    out = pp(normalization="sigmoid", fusion=fusion, score_threshold=0.0).postprocess_nodes(
        nodes(), query_str="q"
    )
    order, fused = by_hand(FIRST, fusion)  # the core fuses the back end's raw scores
    kept = [i for i in order if fused[i] >= 0.0]
    assert 0 < len(kept) < 5 and [n.node.get_content() for n in out] == [TEXTS[i] for i in kept]
    for n, i in zip(out, kept, strict=True):
        assert n.node.metadata[RERANK_SCORE_KEY] == pytest.approx(1 / (1 + math.exp(-RAW[i])))
        assert n.score == pytest.approx(fused[i])


def test_a_reranker_with_its_own_fusion_and_keep_retrieval_score_off() -> None:
    fusion = Fusion("minmax", 0.5)
    postprocessor = RerankPostprocessor(
        Reranker(FakeBackend(SCORES), fusion=fusion, top_n=2),
        metadata_mode=MetadataMode.NONE,
        keep_retrieval_score=False,
    )
    out = postprocessor.postprocess_nodes(nodes(), query_str="q")
    order, _ = by_hand(FIRST, fusion)
    assert [n.node.get_content() for n in out] == [TEXTS[i] for i in order[:2]]
    for n, i in zip(out, order, strict=False):
        assert RETRIEVAL_SCORE_KEY not in n.node.metadata
        assert n.node.metadata[FIRST_STAGE_SCORE_KEY] == FIRST[i]  # the fused number is still kept


def test_rrf_over_unscored_nodes_uses_the_input_order() -> None:
    fusion = Fusion("rrf", 0.5, rrf_k=0)
    out = pp(fusion=fusion).postprocess_nodes(nodes(None), query_str="q")
    order, fused = by_hand([-float(i) for i in range(5)], fusion)  # earlier is better
    assert [n.node.get_content() for n in out] == [TEXTS[i] for i in order]
    assert [n.score for n in out] == pytest.approx([fused[i] for i in order])
    for n in out:
        assert RERANK_SCORE_KEY in n.node.metadata
        assert FIRST_STAGE_SCORE_KEY not in n.node.metadata and RETRIEVAL_SCORE_KEY not in n.node.metadata


@pytest.mark.parametrize(
    ("first", "fusion", "argument", "message"),
    [
        (None, "zscore:0.6", "nodes[0].score", "is missing: fusion 'zscore:0.6' needs"),
        ([0.9, 0.1, None, 0.2, 0.5], "minmax", "nodes[2].score", "only 'rrf' can use the input order"),
        ([0.9, 0.1, None, 0.2, 0.5], "rrf", "nodes[2].score", "only when no candidate has one"),
        ([0.9, 0.1, 0.8, float("inf"), 0.5], "zscore", "nodes[3].score", "must be a finite number, got inf"),
    ],
)
def test_missing_scores_name_the_node_sync_and_async(
    first: list[float | None] | None, fusion: str, argument: str, message: str
) -> None:
    with recording_events() as events, pytest.raises(InvalidInputError) as info:
        pp(fusion=fusion).postprocess_nodes(nodes(first), query_str="q")
    assert info.value.argument == argument and message in str(info.value)
    assert events.named("ReRankStartEvent") == []  # refused before any rerank event
    with pytest.raises(InvalidInputError) as ainfo:
        asyncio.run(pp(fusion=fusion).apostprocess_nodes(nodes(first), query_str="q"))
    assert str(ainfo.value) == str(info.value)


def test_without_fusion_scores_are_passed_when_all_present_and_never_an_error() -> None:
    seen: list[object] = []
    postprocessor = pp()
    real = postprocessor.reranker.rerank

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("first_stage_scores"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    postprocessor.reranker.rerank = spy  # type: ignore[method-assign]
    for first in (FIRST, [0.9, None, 0.8, 0.2, 0.5]):
        out = postprocessor.postprocess_nodes(nodes(first), query_str="q")
        assert [n.node.get_content() for n in out] == ["beta", "delta", "alpha", "epsilon", "gamma"]
        assert all(RERANK_SCORE_KEY not in n.node.metadata for n in out)
        assert all(FIRST_STAGE_SCORE_KEY not in n.node.metadata for n in out)
    assert seen == [FIRST, None]


def test_fusion_clashes_with_a_ready_reranker() -> None:
    with pytest.raises(ConfigurationError) as info:
        RerankPostprocessor(Reranker(FakeBackend(SCORES)), fusion="rrf")
    assert info.value.argument == "fusion"
    with pytest.raises(ConfigurationError) as info:
        RerankPostprocessor(FakeBackend(SCORES), fusion="zscore:1.5")
    assert info.value.argument == "fusion.weight"
    made = RerankPostprocessor.from_cross_encoder(
        "/no/such/model", fusion="zscore:0.6", keep_retrieval_score=False
    )
    assert made.reranker.fusion == Fusion("zscore", 0.6) and made.keep_retrieval_score is False


@pytest.mark.parametrize("fusion", [*FUSIONS, None], ids=lambda f: "none" if f is None else f.describe())
def test_async_path_gives_the_same_nodes(fusion: Fusion | None) -> None:
    sync = pp(fusion=fusion, top_n=4).postprocess_nodes(nodes(), query_str="q")
    native = RerankPostprocessor(
        NativeAsyncBackend(SCORES), fusion=fusion, top_n=4, metadata_mode=MetadataMode.NONE
    )
    native.reranker.rerank = None  # type: ignore[method-assign]  # any sync call would fail
    got = asyncio.run(native.apostprocess_nodes(nodes(), query_bundle=QueryBundle("q")))
    assert summary(got) == summary(sync)
    rrf_sync = pp(fusion="rrf").postprocess_nodes(nodes(None), query_str="q")
    rrf_async = asyncio.run(pp(fusion="rrf").apostprocess_nodes(nodes(None), query_str="q"))
    assert summary(rrf_async) == summary(rrf_sync)


def test_events_carry_the_fused_nodes() -> None:
    with recording_events() as events:
        out = pp(fusion="zscore", top_n=2).postprocess_nodes(nodes(), query_str="q")
    end = events.named("ReRankEndEvent")
    assert len(end) == 1 and end[0].nodes == out


# -- end to end: a VectorStoreIndex retriever's scores feed the fusion -------------------------------------

K = 6
TOP_N = 3


@pytest.mark.slow
@pytest.mark.parametrize("fusion", [Fusion("zscore", 0.3), Fusion("rrf", 0.5)], ids=lambda f: f.describe())
def test_vector_index_scores_feed_the_fusion_in_a_query_engine(tiny_ce_path: Path, fusion: Fusion) -> None:
    from adapter_helpers import QUERIES

    index = VectorStoreIndex(corpus_nodes(), embed_model=MiniLMEmbedding())
    backend = CrossEncoderBackend(tiny_ce_path, device="cpu")
    postprocessor = RerankPostprocessor(backend, fusion=fusion, top_n=TOP_N)
    retriever = index.as_retriever(similarity_top_k=K)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(), node_postprocessors=[postprocessor])
    changed = 0
    for query in QUERIES:
        retrieved = retriever.retrieve(query)
        first = [n.score for n in retrieved]
        assert all(isinstance(s, float) for s in first)  # the index scores its nodes
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in retrieved]
        alone = Reranker(backend).rerank(query, texts)
        raw = [0.0] * K
        for r in alone:
            raw[r.index] = r.raw_score
        order, fused = by_hand(first, fusion, raw)
        want = [retrieved[i].node.node_id for i in order[:TOP_N]]
        for source in (engine.query(query).source_nodes, asyncio.run(engine.aquery(query)).source_nodes):
            assert [n.node.node_id for n in source] == want
            assert [n.score for n in source] == pytest.approx([fused[i] for i in order[:TOP_N]], abs=1e-5)
            for n, i in zip(source, order, strict=False):
                meta = n.node.metadata
                assert meta[FIRST_STAGE_SCORE_KEY] == meta[RETRIEVAL_SCORE_KEY] == pytest.approx(first[i])
                assert meta[RERANK_SCORE_KEY] == pytest.approx(raw[i], abs=1e-5)
        changed += want != [retrieved[r.index].node.node_id for r in list(alone)[:TOP_N]]
    assert changed  # the retriever's scores did move nodes

"""RerankPostprocessor with a scoring profile: the rules read each node's metadata, ``score`` is the profiled
score, and the node metadata keeps the score before the profile and the rules that fired (hidden from the
LLM and the embedder)."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

import pytest
from fakes import FakeBackend, NativeAsyncBackend
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from llamaindex_rerank import RerankPostprocessor
from rerank_core import ConfigurationError, InvalidInputError, Reranker, ScoringProfile
from rerank_core.integrations import PRE_PROFILE_SCORE_KEY, PROFILE_EFFECTS_KEY

NOW = datetime(2026, 1, 31, tzinfo=timezone.utc)  # noqa: UP017
SCORES = {"alpha": 3.0, "beta": 2.0, "gamma": 1.0}
PROFILE = {
    "name": "kb",
    "rules": [
        {"type": "match", "field": "category", "op": "eq", "value": "docs", "boost": 2.0, "mode": "add"},
        {"type": "numeric", "field": "authority", "weight": 0.5, "default": 0, "name": "authority"},
    ],
}


def nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text="alpha", id_="a", metadata={"category": "blog"}), score=0.9),
        NodeWithScore(
            node=TextNode(text="beta", id_="b", metadata={"category": "docs", "authority": 2}), score=0.1
        ),
        NodeWithScore(node=TextNode(text="gamma", id_="c"), score=0.5),
    ]


def pp(backend: object = None, **kwargs: object) -> RerankPostprocessor:
    return RerankPostprocessor(
        backend or FakeBackend(SCORES),  # type: ignore[arg-type]
        metadata_mode=MetadataMode.NONE,  # the fake back end's table is keyed by the bare text
        profile=ScoringProfile.from_dict(PROFILE, clock=lambda: NOW),
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_profile_reorders_and_is_reported_in_node_metadata() -> None:
    given = nodes()
    before = copy.deepcopy(given)
    out = pp().postprocess_nodes(given, query_str="q")
    # beta: 2 * (1 + 0.5 * 2) + 2 = 6; alpha: 3 (authority defaults to 0: factor 1); gamma: 1
    assert [(n.node.node_id, n.score) for n in out] == [("b", 6.0), ("a", 3.0), ("c", 1.0)]
    beta = out[0].node
    assert beta.metadata[PRE_PROFILE_SCORE_KEY] == 2.0
    assert beta.metadata[PROFILE_EFFECTS_KEY] == [
        {"rule": "match:category", "mode": "add", "amount": 2.0, "value": "docs", "defaulted": False},
        {"rule": "authority", "mode": "multiply", "amount": 2.0, "value": 2, "defaulted": False},
    ]
    assert out[1].node.metadata[PROFILE_EFFECTS_KEY][0]["defaulted"] is True
    for key in (PRE_PROFILE_SCORE_KEY, PROFILE_EFFECTS_KEY):
        assert key in beta.excluded_llm_metadata_keys and key in beta.excluded_embed_metadata_keys
    assert "profile_effects" not in beta.get_content(MetadataMode.LLM)
    json.dumps([n.node.metadata for n in out])
    assert [n.model_dump() for n in given] == [n.model_dump() for n in before]


async def test_the_async_path_applies_the_profile() -> None:
    out = await pp(NativeAsyncBackend(SCORES), top_n=1).apostprocess_nodes(nodes(), QueryBundle("q"))
    assert [(n.node.node_id, n.score) for n in out] == [("b", 6.0)]


def test_a_profile_with_fusion_starts_from_the_fused_score() -> None:
    out = pp(fusion="minmax:0.5").postprocess_nodes(nodes(), query_str="q")
    by_id = {n.node.node_id: n for n in out}
    # minmax over (3, 2, 1) and (0.9, 0.1, 0.5): beta 0.5 * 0.5 + 0.5 * 0 = 0.25 -> 0.25 * 2 + 2
    assert by_id["b"].node.metadata[PRE_PROFILE_SCORE_KEY] == pytest.approx(0.25)
    assert by_id["b"].score == pytest.approx(2.5)
    assert by_id["b"].node.metadata["first_stage_score"] == 0.1


def test_clashes_and_bad_metadata() -> None:
    reranker = Reranker(FakeBackend(SCORES), profile=PROFILE)
    with pytest.raises(ConfigurationError) as info:
        RerankPostprocessor(reranker, profile=PROFILE)
    assert info.value.argument == "profile"
    bad = [*nodes(), NodeWithScore(node=TextNode(text="alpha", metadata={"authority": "high"}), score=0.2)]
    with pytest.raises(InvalidInputError, match="'authority'") as error:
        pp().postprocess_nodes(bad, query_str="q")
    assert error.value.argument == "candidates[3].metadata['authority']"

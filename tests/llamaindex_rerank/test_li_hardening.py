"""Issue 16 hardening of the LlamaIndex adapter: no stale metadata from an earlier rerank pass (item 11),
copies, pickles and ``from_dict(to_dict())`` that work and hold no secret (item 15)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from fakes import FakeBackend
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from llamaindex_rerank import (
    FIRST_STAGE_SCORE_KEY,
    NOT_RERANKED_KEY,
    RAW_SCORE_KEY,
    RERANK_SCORE_KEY,
    WINDOW_KEY,
    RerankPostprocessor,
)
from llamaindex_rerank.postprocessor import RETRIEVAL_SCORE_KEY
from rerank_core.errors import FailOpenWarning, RetryableBackendError

SCORES = {"alpha one": 1.0, "beta two": 3.0, "gamma three": 2.0}


class DownBackend(FakeBackend):
    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise RetryableBackendError("down", backend="down")


def _nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=t, id_=f"n{i}", metadata={"own": i}, excluded_embed_metadata_keys=["own"]),
            score=0.1 * (i + 1),
        )
        for i, t in enumerate(SCORES)
    ]


# -- item 11: a second pass leaves nothing stale --------------------------------------------------------


def test_a_failed_open_pass_then_a_good_pass_leaves_no_rerank_failed_flag() -> None:
    with pytest.warns(FailOpenWarning):
        first = RerankPostprocessor(DownBackend(), fail_open=True).postprocess_nodes(_nodes(), query_str="q")
    assert all(n.node.metadata[NOT_RERANKED_KEY] is True for n in first)
    second = RerankPostprocessor(FakeBackend(SCORES)).postprocess_nodes(first, query_str="q")
    assert [n.node.get_content() for n in second] == ["beta two", "gamma three", "alpha one"]
    for n in second:
        assert NOT_RERANKED_KEY not in n.node.metadata and n.node.metadata["own"] in (0, 1, 2)
        # the retrieval score is the one from retrieval, not the failed pass's NaN relevance score
        assert n.node.metadata[RETRIEVAL_SCORE_KEY] == pytest.approx(0.1 * (n.node.metadata["own"] + 1))


def test_window_and_fusion_keys_of_an_earlier_pass_do_not_survive() -> None:
    nodes = [
        NodeWithScore(node=TextNode(text=" ".join(["w"] * 30) + f" {i}", id_=f"n{i}"), score=float(i))
        for i in range(3)
    ]
    first = RerankPostprocessor(FakeBackend(max_length=8), fusion="zscore:0.5").postprocess_nodes(
        nodes, query_str="q"
    )
    assert all(WINDOW_KEY in n.node.metadata and FIRST_STAGE_SCORE_KEY in n.node.metadata for n in first)
    second = RerankPostprocessor(FakeBackend()).postprocess_nodes(first, query_str="q")
    for n in second:
        meta = n.node.metadata
        assert WINDOW_KEY not in meta and FIRST_STAGE_SCORE_KEY not in meta and RERANK_SCORE_KEY not in meta
        assert meta[RETRIEVAL_SCORE_KEY] in (0.0, 1.0, 2.0)  # kept from before the first pass
        assert RAW_SCORE_KEY in n.node.excluded_llm_metadata_keys
    assert all(WINDOW_KEY in n.node.metadata for n in first)  # the first pass's nodes are not mutated


async def test_async_path_strips_stale_keys_too() -> None:
    stale = [
        NodeWithScore(node=TextNode(text=t, metadata={NOT_RERANKED_KEY: True, WINDOW_KEY: {"index": 3}}))
        for t in SCORES
    ]
    out = await RerankPostprocessor(FakeBackend(SCORES), metadata_mode=MetadataMode.NONE).apostprocess_nodes(
        stale, query_str="q"
    )
    assert all(NOT_RERANKED_KEY not in n.node.metadata and WINDOW_KEY not in n.node.metadata for n in out)

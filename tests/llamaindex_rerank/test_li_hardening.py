"""Issue 16 hardening of the LlamaIndex adapter: no stale metadata from an earlier rerank pass (item 11),
copies, pickles and ``from_dict(to_dict())`` that work and hold no secret (item 15)."""

from __future__ import annotations

import copy
import pickle
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
from rerank_core.errors import ConfigurationError, FailOpenWarning, RetryableBackendError

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


# -- item 15: copies, pickles and dicts that work when used and hold no secret -------------------------------

SECRET = "sk-SECRET-do-not-leak-123"


def _order(postprocessor: RerankPostprocessor) -> list[str]:
    return [n.node.get_content() for n in postprocessor.postprocess_nodes(_nodes(), query_str="q")]


def test_from_dict_of_to_dict_works_when_used() -> None:
    original = RerankPostprocessor(
        FakeBackend(SCORES), top_n=2, cache=50, fusion="zscore:0.5", long_text="truncate", fail_open=True
    )
    data = original.to_dict()
    restored = RerankPostprocessor.from_dict(data)
    assert _order(restored) == _order(original) and restored.top_n == 2
    options = restored.reranker.options
    assert options.fusion == original.reranker.fusion and options.long_text == original.reranker.long_text
    assert options.cache.maxsize == 50 and options.fail_open is True
    assert _order(RerankPostprocessor.from_json(original.to_json())) == _order(original)
    assert data == original.to_dict()  # from_dict did not change the dict it was given


def test_pickle_and_deepcopy_work_when_used() -> None:
    original = RerankPostprocessor(FakeBackend(SCORES), top_n=2, keep_retrieval_score=False)
    restored = pickle.loads(pickle.dumps(original))
    assert _order(restored) == ["beta two", "gamma three"] and restored.keep_retrieval_score is False
    copied = copy.deepcopy(original)
    assert _order(copied) == ["beta two", "gamma three"]
    assert copied.reranker is not original.reranker and copied.reranker.backend is original.reranker.backend


def test_dumps_and_pickles_hold_no_api_key() -> None:
    from rerank_core.backends import CohereBackend, RerankAPIBackend

    cohere = RerankPostprocessor(CohereBackend(api_key=SECRET, base_url="http://127.0.0.1:9"))
    api = RerankPostprocessor(
        RerankAPIBackend(
            "http://127.0.0.1:9", api_key=SECRET, headers={"Authorization": SECRET, "X-Team": "a"}
        )
    )
    for postprocessor in (cohere, api):
        assert SECRET not in postprocessor.to_json() and SECRET not in repr(postprocessor.to_dict())
        assert SECRET.encode() not in pickle.dumps(postprocessor)
    assert api.to_dict()["reranker"]["backend"]["kwargs"]["headers"] == {"X-Team": "a"}


def test_a_reranker_that_is_not_json_is_asked_for_by_name() -> None:
    from rerank_core import JudgeStage

    judged = RerankPostprocessor(FakeBackend(SCORES), judge=JudgeStage(FakeBackend(name="judge"), top_k=2))
    data = judged.to_dict()
    assert data["reranker"] is None
    with pytest.raises(ConfigurationError, match="reranker"):
        RerankPostprocessor.from_dict(data)
    assert _order(RerankPostprocessor.from_dict(data, reranker=judged.reranker)) == _order(judged)

"""Issue 16 hardening of the LangChain adapter: no stale metadata from an earlier rerank pass (item 11),
copies and dumps that work and hold no secret (item 15), per-call ``k`` on the fusion retriever (item 17)."""

from __future__ import annotations

import copy
import json
import math
import pickle
from collections.abc import Sequence

import pytest
from fakes import FakeBackend
from langchain_core.documents import Document

from langchain_rerank import (
    FIRST_STAGE_SCORE_KEY,
    NOT_RERANKED_KEY,
    RAW_SCORE_KEY,
    RELEVANCE_SCORE_KEY,
    RERANK_SCORE_KEY,
    WINDOW_KEY,
    FusionRetriever,
    RerankCompressor,
)
from rerank_core import Reranker
from rerank_core.errors import ConfigurationError, FailOpenWarning, InvalidInputError, RetryableBackendError

SCORES = {"alpha one": 1.0, "beta two": 3.0, "gamma three": 2.0}


class DownBackend(FakeBackend):
    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise RetryableBackendError("down", backend="down")


def _docs() -> list[Document]:
    return [Document(page_content=t, metadata={"own": i, "score": float(i)}) for i, t in enumerate(SCORES)]


# -- item 11: a second pass leaves nothing stale --------------------------------------------------------


def test_a_failed_open_pass_then_a_good_pass_leaves_no_rerank_failed_flag() -> None:
    failed = RerankCompressor(DownBackend(), fail_open=True)
    with pytest.warns(FailOpenWarning):
        first = list(failed.compress_documents(_docs(), "q"))
    assert all(d.metadata[NOT_RERANKED_KEY] is True for d in first)
    second = RerankCompressor(FakeBackend(SCORES)).compress_documents(first, "q")
    assert [d.page_content for d in second] == ["beta two", "gamma three", "alpha one"]
    for d in second:
        assert NOT_RERANKED_KEY not in d.metadata
        assert not math.isnan(d.metadata[RELEVANCE_SCORE_KEY]) and not math.isnan(d.metadata[RAW_SCORE_KEY])
        assert "own" in d.metadata and "score" in d.metadata  # the document's own keys are kept


def test_window_and_fusion_keys_of_an_earlier_pass_do_not_survive() -> None:
    long_docs = [
        Document(page_content=" ".join(["w"] * 30) + f" {i}", metadata={"score": float(i)}) for i in range(3)
    ]
    windowed = RerankCompressor(FakeBackend(max_length=8), fusion="zscore:0.5")
    first = list(windowed.compress_documents(long_docs, "q"))
    assert all(WINDOW_KEY in d.metadata and FIRST_STAGE_SCORE_KEY in d.metadata for d in first)
    second = RerankCompressor(FakeBackend()).compress_documents(first, "q")
    for d in second:
        assert WINDOW_KEY not in d.metadata
        assert FIRST_STAGE_SCORE_KEY not in d.metadata and RERANK_SCORE_KEY not in d.metadata
        assert d.metadata["score"] in (0.0, 1.0, 2.0)
    assert all(WINDOW_KEY in d.metadata for d in first)  # the first pass's Documents are not mutated


async def test_async_path_strips_stale_keys_too() -> None:
    stale = [
        Document(page_content=t, metadata={NOT_RERANKED_KEY: True, WINDOW_KEY: {"index": 3}}) for t in SCORES
    ]
    out = await RerankCompressor(Reranker(FakeBackend(SCORES))).acompress_documents(stale, "q")
    assert all(NOT_RERANKED_KEY not in d.metadata and WINDOW_KEY not in d.metadata for d in out)


# -- item 17: FusionRetriever honours a per-call k, as LangChain's standard retriever tests expect -----------


def _fusion(**kwargs: object) -> FusionRetriever:
    from langchain_core.runnables import RunnableLambda

    a = RunnableLambda(lambda q: [Document(page_content=f"a{i}", id=f"a{i}") for i in range(4)])
    b = RunnableLambda(lambda q: [Document(page_content=f"b{i}", id=f"b{i}") for i in range(4)])
    return FusionRetriever([a, b], names=["a", "b"], **kwargs)  # type: ignore[arg-type]


def test_fusion_retriever_invoke_with_k_kwarg() -> None:
    """langchain_tests' RetrieversIntegrationTests.test_invoke_with_k_kwarg: invoke(query, k=1) -> 1 doc."""
    retriever = _fusion()
    assert len(retriever.invoke("q")) == 8
    assert len(retriever.invoke("q", k=1)) == 1
    assert len(retriever.invoke("q", top_k=3)) == 3
    assert len(_fusion(top_k=2).invoke("q", k=5)) == 5  # the call's k overrides the retriever's top_k
    assert len(_fusion(top_k=2).invoke("q", k=None)) == 8  # None: keep all, for this call
    assert len(_fusion(top_k=2).invoke("q")) == 2


async def test_fusion_retriever_ainvoke_with_k_kwarg() -> None:
    assert len(await _fusion().ainvoke("q", k=1)) == 1
    assert len(await _fusion(top_k=1).ainvoke("q", k=3)) == 3


def test_fusion_retriever_k_constructor_param() -> None:
    """langchain_tests' test_k_constructor_param: the constructor takes k (top_k's LangChain name)."""
    assert _fusion(k=1).top_k == 1 and len(_fusion(k=1).invoke("q")) == 1
    with pytest.raises(ConfigurationError, match="k"):
        _fusion(k=1, top_k=2)


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": "2"}, {"top_k": -1}, {"k": 1, "top_k": 2}])
def test_fusion_retriever_bad_k_names_the_argument(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError, match="k"):
        _fusion().invoke("q", **kwargs)


# -- item 15: copies and dumps that work when used and hold no secret ---------------------------------------

SECRET = "sk-SECRET-do-not-leak-123"


def test_deepcopy_works_when_used_and_shares_the_backend() -> None:
    original = RerankCompressor(FakeBackend(SCORES), top_n=2, fusion="zscore:0.5", cache=True)
    copied = copy.deepcopy(original)
    out = copied.compress_documents(_docs(), "q")
    assert [d.page_content for d in out] == [
        d.page_content for d in original.compress_documents(_docs(), "q")
    ]
    assert copied.reranker is not original.reranker and copied.reranker.backend is original.reranker.backend
    copied.reranker.top_n = 1
    assert original.reranker.top_n == 2 and copied.top_n == 2


def test_model_dump_json_works_and_leaves_the_reranker_and_its_key_out() -> None:
    from rerank_core.backends import CohereBackend

    compressor = RerankCompressor(CohereBackend(api_key=SECRET, base_url="http://127.0.0.1:9"), top_n=3)
    dumped = compressor.model_dump_json()
    assert json.loads(dumped) == {"top_n": 3, "score_threshold": None, "first_stage_score_key": "score"}
    assert SECRET not in dumped and SECRET not in repr(compressor.model_dump())
    assert SECRET not in repr(pickle.dumps(compressor)) and SECRET.encode() not in pickle.dumps(compressor)
    with pytest.raises(ConfigurationError, match="reranker"):
        RerankCompressor(**compressor.model_dump())  # a dump holds no Reranker: a clear error, not a crash


def test_pickle_round_trip_works_when_used() -> None:
    original = RerankCompressor(
        FakeBackend(SCORES), top_n=2, cache=100, fail_open=True, first_stage_score_key="s"
    )
    restored = pickle.loads(pickle.dumps(original))
    assert [d.page_content for d in restored.compress_documents(_docs(), "q")] == ["beta two", "gamma three"]
    assert restored.reranker.fail_open is True and restored.reranker.cache.maxsize == 100
    assert restored.first_stage_score_key == "s" and restored.top_n == 2


def test_a_pickled_remote_backend_reads_its_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from rerank_core.backends import CohereBackend

    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.delenv("CO_API_KEY", raising=False)
    data = pickle.dumps(RerankCompressor(CohereBackend(api_key=SECRET)))
    with pytest.raises(ConfigurationError, match="api_key"):
        pickle.loads(data)  # no key anywhere: refused clearly, at unpickling
    monkeypatch.setenv("COHERE_API_KEY", "from-env")
    restored = pickle.loads(data)
    assert isinstance(restored.reranker.backend, CohereBackend)


def test_an_adapter_over_objects_that_cannot_be_pickled_is_refused_by_name() -> None:
    from llm_fakes import FakeJudgeLLM

    from rerank_core.backends import LLMJudgeBackend

    compressor = RerankCompressor(LLMJudgeBackend(FakeJudgeLLM(lambda text: 0.5)))  # its LLM holds a lock
    with pytest.raises(TypeError, match="cannot pickle this adapter: its back end"):
        pickle.dumps(compressor)
    assert copy.deepcopy(compressor).reranker.backend is compressor.reranker.backend

"""Every Reranker option reaches the core the same way through both adapters: ``options=`` (a
RerankerOptions or a mapping), any option as a keyword, and the shared ``from_<back end>`` constructors."""

from __future__ import annotations

import pytest
from fakes import FakeBackend

from langchain_rerank import RerankCompressor
from llamaindex_rerank import RerankPostprocessor
from rerank_core import Coalescing, ConfigurationError, JudgeStage, LongTextPolicy, Reranker, RerankerOptions

ADAPTERS = [RerankCompressor, RerankPostprocessor]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_options_and_keywords_reach_the_core_alike(adapter: type) -> None:
    judge = JudgeStage(FakeBackend(name="judge"), top_k=2)
    policy = LongTextPolicy("truncate")
    values = {"judge": judge, "coalesce": True, "long_text": policy, "fusion": "rrf:0.4", "fail_open": True}
    by_keywords = adapter(FakeBackend(), top_n=3, **values)
    by_options = adapter(FakeBackend(), options=RerankerOptions(top_n=3, **values))
    by_mapping = adapter(FakeBackend(), options=values, top_n=3)
    expected = RerankerOptions(top_n=3, **values)
    for built in (by_keywords, by_options, by_mapping):
        options = built.reranker.options
        assert options.judge is judge and options.long_text is policy and options.coalesce == Coalescing()
        assert (options.fusion, options.fail_open, built.top_n) == (expected.fusion, True, 3)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_ready_reranker_keeps_its_own_options(adapter: type) -> None:
    core = Reranker(FakeBackend(), top_n=2, coalesce=True)
    assert adapter(core).reranker is core
    with pytest.raises(ConfigurationError) as info:
        adapter(core, judge=JudgeStage(FakeBackend(name="judge"), top_k=1))
    assert info.value.argument == "judge"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_from_constructors_route_options_to_the_reranker_and_the_rest_to_the_back_end(adapter: type) -> None:
    judge = JudgeStage(FakeBackend(name="judge"), top_k=2)
    built = adapter.from_cross_encoder("/no/such/model", judge=judge, coalesce=True, batch_size=3, top_n=1)
    assert built.reranker.options.judge is judge and built.reranker.options.coalesce == Coalescing()
    assert built.reranker.backend.batch_size == 3 and built.top_n == 1

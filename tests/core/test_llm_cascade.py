"""CascadeBackend: a cheap back end ranks everything, the LLM judge re-ranks only the top-k or the
uncertain band, and each query's LLM calls and tokens are in its response."""

from __future__ import annotations

import pytest
from fakes import FakeBackend
from llm_fakes import FakeJudgeLLM, grade_of

from rerank_core import ConfigurationError, Reranker
from rerank_core.backends.cascade import CascadeBackend
from rerank_core.backends.llm_judge import LLMJudgeBackend

# CascadeBackend is deprecated (tests/core/test_options.py checks the warning); it must keep working until
# it is removed.
pytestmark = pytest.mark.filterwarnings("ignore:CascadeBackend is deprecated:DeprecationWarning")

# cheap scores (logits) disagree with the judge's relevance (rel=) on purpose
DOCS = {
    "a rel=0.1": 3.0,
    "b rel=0.9": 2.0,
    "c rel=0.5": 1.0,
    "d rel=0.95": 0.0,
    "e rel=0.2": -1.0,
    "f rel=1.0": -3.0,
}
TEXTS = list(DOCS)


def _cascade(**kwargs: object) -> tuple[CascadeBackend, FakeJudgeLLM, FakeBackend]:
    llm = FakeJudgeLLM(grade_of)
    cheap = FakeBackend(DOCS, kind="logit")
    return CascadeBackend(cheap, LLMJudgeBackend(llm), **kwargs), llm, cheap  # type: ignore[arg-type]


def test_top_k_reorders_only_the_top_slots() -> None:
    cascade, llm, cheap = _cascade(top_k=3)
    response = Reranker(cascade).rerank("q", TEXTS)
    # cheap order a, b, c, d, e, f; the judge re-orders the top 3 (a, b, c) into b, c, a
    assert [TEXTS[i][0] for i in response.indices] == ["b", "c", "a", "d", "e", "f"]
    assert response.score_kind == "rank"
    assert response.usage["cascade_judged"] == 3 and response.usage["llm_calls"] == 3 == len(llm.calls)
    assert response.usage["llm_prompt_tokens"] > 0
    assert cheap.pairs_scored == 6


def test_band_judges_only_uncertain_candidates() -> None:
    # sigmoid(logit) in [0.25, 0.8]: c (0.73), d (0.5), e (0.27)
    cascade, _, _ = _cascade(band=(0.25, 0.8))
    response = Reranker(cascade).rerank("q", TEXTS)
    assert response.usage["cascade_judged"] == 3
    assert [TEXTS[i][0] for i in response.indices] == ["a", "b", "d", "c", "e", "f"]


def test_top_k_and_band_union_and_per_query_usage() -> None:
    cascade, _, _ = _cascade(top_k=1, band=(0.0, 0.1))  # a, plus f (sigmoid(-3) = 0.047)
    r1, r2 = Reranker(cascade).rerank_many(["q1", "q2"], [TEXTS, TEXTS[:2]])
    assert r1.usage["cascade_judged"] == 2 and r1.usage["llm_calls"] == 2
    assert r2.usage["cascade_judged"] == 1 and r2.usage["llm_calls"] == 1
    # a and f swap their slots (f is the judge's favourite)
    assert [TEXTS[i][0] for i in r1.indices] == ["f", "b", "c", "d", "e", "a"]


async def test_async_path_agrees() -> None:
    cascade, _, _ = _cascade(top_k=4)
    reranker = Reranker(cascade)
    sync, asynced = reranker.rerank("q", TEXTS), await reranker.arerank("q", TEXTS)
    assert sync.indices == asynced.indices and sync.usage == asynced.usage


def test_no_candidate_in_band_makes_no_llm_call() -> None:
    cascade, llm, _ = _cascade(band=(0.99, 1.0))
    response = Reranker(cascade).rerank("q", TEXTS)
    assert response.usage["cascade_judged"] == 0 and llm.calls == []
    assert [TEXTS[i][0] for i in response.indices] == ["a", "b", "c", "d", "e", "f"]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({}, "top_k"),
        ({"top_k": 0}, "top_k"),
        ({"band": (0.8, 0.2)}, "band"),
        ({"band": (0.1, float("nan"))}, "band"),
        ({"top_k": 2, "calibration": "softmax"}, "calibration"),
    ],
)
def test_configuration_errors(kwargs: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CascadeBackend(FakeBackend(DOCS), LLMJudgeBackend(FakeJudgeLLM(grade_of)), **kwargs)
    assert info.value.argument == argument


def test_minmax_only_on_rank_scores() -> None:
    cascade, _, _ = _cascade(top_k=2)
    with pytest.raises(ConfigurationError):
        Reranker(cascade, normalization="sigmoid")
    assert Reranker(cascade, normalization="minmax").rerank("q", TEXTS)[0].relevance_score == 1.0


def test_a_cascade_refuses_a_score_cache() -> None:
    """Its scores are ranks within the candidate set; a cache would mix scores of different sets."""
    cascade, _, _ = _cascade(top_k=2)
    with pytest.raises(ConfigurationError) as info:
        Reranker(cascade, cache=True)
    assert info.value.argument == "cache"

"""The judge stage: the Reranker's last step (after fusion and the scoring profile, before top_n), in
which a judge back end re-orders the top_k and/or an uncertain band of the current order within their
slots. Hand-computed cases with fake back ends whose scores and usage are known."""

from __future__ import annotations

import asyncio
import copy
import warnings
from collections.abc import Mapping, Sequence

import pytest
from fakes import FakeBackend

from rerank_core import ConfigurationError, JudgeStage, MatchRule, Reranker, ScoringProfile
from rerank_core.backends.base import Backend, GroupScores
from rerank_core.errors import FailOpenWarning, RetryableBackendError
from rerank_core.judge import reorder_within_slots, select_for_judge
from rerank_core.types import ScoreKind

# The stack, by hand. Reranker raw scores a..e = 4, 3, 2, 1, 0 -> minmax 1, .75, .5, .25, 0.
# First-stage scores 0, 4, 2, 1, 3 -> minmax 0, 1, .5, .25, .75.
# Fusion minmax:0.6 = .6 * rerank + .4 * first: a .6, b .85, c .5, d .25, e .3 (order b a c e d).
# Profile: category "docs" x3, only e has it: e .9 -> order e .9, b .85, a .6, c .5, d .25.
# Judge scores: a .9, b .1, c .8, d .7, e .5.
RAW = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0, "e": 0.0}
FIRST = [0.0, 4.0, 2.0, 1.0, 3.0]
JUDGE = {"a": 0.9, "b": 0.1, "c": 0.8, "d": 0.7, "e": 0.5}
RELEVANCE = {"a": 0.6, "b": 0.85, "c": 0.5, "d": 0.25, "e": 0.9}
PROFILE = ScoringProfile([MatchRule(name="docs", field="category", value="docs", boost=3.0)])


def _docs() -> list[dict[str, object]]:
    return [{"text": t, "metadata": {"category": "docs" if t == "e" else "blog"}} for t in RAW]


class FakeJudge(Backend):
    """Scores texts from ``JUDGE``; reports one LLM call and 7 prompt tokens per text, per group."""

    def __init__(self, scores: Mapping[str, float] = JUDGE, *, fail: bool = False, native: bool = False):
        super().__init__()
        self._scores = scores
        self.fail = fail
        self.blocking = not native
        self.groups: list[tuple[str, list[str]]] = []

    @property
    def fingerprint(self) -> str:
        return "fake-judge"

    @property
    def score_kind(self) -> ScoreKind:
        return "probability"

    def score(self, query: str, texts: Sequence[str]) -> GroupScores:
        raise AssertionError("the judge stage calls score_groups")

    def score_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        if not self.blocking:
            raise AssertionError("the async path must use ascore_groups for a native async judge")
        return self._groups(groups)

    async def ascore_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        await asyncio.sleep(0)
        return self._groups(groups)

    def _groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        if self.fail:
            raise RetryableBackendError("judge down", backend=self.fingerprint)
        self.groups.extend((q, list(texts)) for q, texts in groups)
        return [
            GroupScores(
                [self._scores[t] for t in texts],
                {"llm_calls": len(texts), "llm_prompt_tokens": 7 * len(texts)},
            )
            for _, texts in groups
        ]


def _reranker(judge: FakeJudge | None = None, **kwargs: object) -> Reranker:
    stage_args = {k: kwargs.pop(k) for k in ("top_k", "band", "fail_open") if k in kwargs}
    stage = None if judge is None else JudgeStage(judge, **stage_args)  # type: ignore[arg-type]
    return Reranker(
        FakeBackend(RAW, kind="logit"),
        fusion="minmax:0.6",
        profile=PROFILE,
        judge=stage,
        **kwargs,  # type: ignore[arg-type]
    )


def _letters(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.text for r in response]


def test_pre_judge_stack_is_fusion_then_profile() -> None:
    response = _reranker().rerank("q", _docs(), first_stage_scores=FIRST)
    assert _letters(response) == ["e", "b", "a", "c", "d"]
    assert {r.text: r.relevance_score for r in response} == pytest.approx(RELEVANCE)
    assert all(r.judge_score is None for r in response) and "judge_candidates" not in response.usage


def test_top_k_judges_the_profiled_top_within_its_slots() -> None:
    judge = FakeJudge()
    response = _reranker(judge, top_k=3).rerank("q", _docs(), first_stage_scores=FIRST)
    # the judge sees the profiled top 3 (e, b, a: not the fused top 3 b, a, c) and orders them a, e, b
    assert judge.groups == [("q", ["e", "b", "a"])]
    assert _letters(response) == ["a", "e", "b", "c", "d"]
    # relevance_score is the pre-judge (profiled) score; judge_score only on judged results
    assert {r.text: r.relevance_score for r in response} == pytest.approx(RELEVANCE)
    assert {r.text: r.judge_score for r in response} == {"a": 0.9, "e": 0.5, "b": 0.1, "c": None, "d": None}
    assert response.usage["judge_candidates"] == 3
    assert response.usage["llm_calls"] == 3 and response.usage["llm_prompt_tokens"] == 21
    assert response.usage["candidates"] == 5 and response.judge is not None


def test_band_judges_the_uncertain_slots_only() -> None:
    judge = FakeJudge({**JUDGE, "c": 0.95})
    # relevance in [0.4, 0.7]: a (.6, slot 2) and c (.5, slot 3); this judge prefers c (.95 > .9)
    response = _reranker(judge, band=(0.4, 0.7)).rerank("q", _docs(), first_stage_scores=FIRST)
    assert judge.groups == [("q", ["a", "c"])]
    assert _letters(response) == ["e", "b", "c", "a", "d"]
    assert response.usage["judge_candidates"] == 2


def test_top_k_and_band_union() -> None:
    judge = FakeJudge()
    # top 1: e (slot 0); band [0.2, 0.55]: c (slot 3), d (slot 4). Judge: c .8, d .7, e .5
    response = _reranker(judge, top_k=1, band=(0.2, 0.55)).rerank("q", _docs(), first_stage_scores=FIRST)
    assert judge.groups == [("q", ["e", "c", "d"])]
    assert _letters(response) == ["c", "b", "a", "d", "e"]
    assert [r.judge_score for r in response] == [0.8, None, None, 0.7, 0.5]


def test_threshold_before_and_top_n_after_the_judge() -> None:
    judge = FakeJudge()
    reranker = _reranker(judge, band=(0.0, 1.0), score_threshold=0.55, top_n=2)
    response = reranker.rerank("q", _docs(), first_stage_scores=FIRST)
    # the threshold keeps e, b, a (pre-judge scores); the judge orders them a, e, b; top_n cuts after it
    assert judge.groups == [("q", ["e", "b", "a"])]
    assert _letters(response) == ["a", "e"]


def test_usage_per_query_and_one_judge_call_for_many() -> None:
    judge = FakeJudge()
    docs = _docs()
    r1, r2, r3 = _reranker(judge, top_k=2).rerank_many(
        ["q1", "q2", "q3"], [docs, docs[:1], []], first_stage_scores=[FIRST, FIRST[:1], []]
    )
    assert judge.groups == [("q1", ["e", "b"]), ("q2", ["a"])]
    assert r1.usage["llm_calls"] == 2 and r1.usage["judge_candidates"] == 2
    assert r2.usage["llm_calls"] == 1 and r2.usage["judge_candidates"] == 1
    assert len(r3) == 0 and "llm_calls" not in r3.usage
    assert _letters(r1) == ["e", "b", "a", "c", "d"]  # judge: e .5 > b .1, order unchanged


def test_inputs_are_not_mutated() -> None:
    docs, first = _docs(), list(FIRST)
    before_docs, before_first = copy.deepcopy(docs), list(first)
    _reranker(FakeJudge(), top_k=3, band=(0.2, 0.3)).rerank("q", docs, first_stage_scores=first)
    assert docs == before_docs and first == before_first


@pytest.mark.parametrize("native", [False, True])
async def test_async_equals_sync(native: bool) -> None:
    docs = _docs()
    sync = _reranker(FakeJudge(), top_k=2, band=(0.4, 0.7)).rerank_many(
        ["q1", "q2"], [docs, docs[::-1]], first_stage_scores=[FIRST, FIRST[::-1]]
    )
    judge = FakeJudge(native=native)
    reranker = _reranker(judge, top_k=2, band=(0.4, 0.7))
    many = await reranker.arerank_many(
        ["q1", "q2"], [docs, docs[::-1]], first_stage_scores=[FIRST, FIRST[::-1]]
    )
    one = await reranker.arerank("q1", docs, first_stage_scores=FIRST)
    assert many == sync and one == sync[0]
    assert judge.groups  # the judge ran


def test_failing_judge_keeps_the_pre_judge_order_with_a_warning() -> None:
    reranker = _reranker(FakeJudge(fail=True), top_k=3)
    with pytest.warns(FailOpenWarning, match="judge stage failed"):
        response = reranker.rerank("q", _docs(), first_stage_scores=FIRST)
    assert _letters(response) == ["e", "b", "a", "c", "d"]
    assert response.usage["judge_failed"] == 1 and response.usage["judge_candidates"] == 0
    assert all(r.judge_score is None and r.reranked for r in response)


async def test_failing_judge_raises_when_not_fail_open() -> None:
    reranker = _reranker(FakeJudge(fail=True), top_k=3, fail_open=False)
    with pytest.raises(RetryableBackendError):
        reranker.rerank("q", _docs(), first_stage_scores=FIRST)
    with pytest.raises(RetryableBackendError):
        await reranker.arerank("q", _docs(), first_stage_scores=FIRST)


def test_bad_judge_output_is_a_judge_failure() -> None:
    reranker = _reranker(FakeJudge({**JUDGE, "a": float("nan")}), top_k=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = reranker.rerank("q", _docs(), first_stage_scores=FIRST)
    assert any(issubclass(w.category, FailOpenWarning) for w in caught)
    assert response.usage["judge_failed"] == 1 and _letters(response) == ["e", "b", "a", "c", "d"]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"judge": "llm", "top_k": 3}, "judge"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({}, "top_k"),
        ({"band": (0.8, 0.2)}, "band"),
        ({"band": (0.1, float("nan"))}, "band"),
        ({"top_k": 2, "fail_open": "yes"}, "fail_open"),
    ],
)
def test_bad_stage_config_names_the_argument(kwargs: dict[str, object], argument: str) -> None:
    judge = kwargs.pop("judge", FakeJudge())
    with pytest.raises(ConfigurationError) as info:
        JudgeStage(judge, **kwargs)  # type: ignore[arg-type]
    assert info.value.argument == argument


def test_reranker_judge_must_be_a_stage() -> None:
    for bad in (FakeJudge(), "llm"):
        with pytest.raises(ConfigurationError) as info:
            Reranker(FakeBackend(RAW), judge=bad)  # type: ignore[arg-type]
        assert info.value.argument == "judge"


def test_shared_slot_helpers() -> None:
    order = [4, 1, 0, 2, 3]
    assert select_for_judge(order, [0.6, 0.85, 0.5, 0.25, 0.9], 1, (0.2, 0.55)) == [4, 2, 3]
    assert reorder_within_slots(order, [0, 2], [0.1, 0.9]) == [4, 1, 2, 0, 3]
    assert reorder_within_slots(order, [2, 0], [0.5, 0.5]) == order  # ties keep the current order
    assert order == [4, 1, 0, 2, 3]


def test_adapters_get_the_judge_score_in_metadata() -> None:
    from rerank_core.integrations import JUDGE_SCORE_KEY, result_metadata

    response = _reranker(FakeJudge(), top_k=3).rerank("q", _docs(), first_stage_scores=FIRST)
    for r in response:
        added = result_metadata(r, fused=True)
        if r.judge_score is None:
            assert JUDGE_SCORE_KEY not in added
        else:
            assert added[JUDGE_SCORE_KEY] == JUDGE[r.text]
    assert sum(r.judge_score is not None for r in response) == 3

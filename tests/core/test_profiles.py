"""Scoring profiles: every rule on hand-computed cases, missing metadata, dates, validation, the pipeline."""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import FakeBackend
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_core import (
    FreshnessRule,
    MatchRule,
    NumericRule,
    Reranker,
    RuleEffect,
    ScoringProfile,
)
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.profiles import parse_date, parse_duration

UTC = timezone.utc  # noqa: UP017 (the core supports Python 3.10)
NOW = datetime(2026, 1, 31, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


def apply_one(rule: Any, base: float, meta: Any) -> tuple[float, tuple[RuleEffect, ...]]:
    scores, effects = ScoringProfile((rule,), clock=fixed_clock).apply([base], [meta])
    return float(scores[0]), effects[0]


# -- match rules -------------------------------------------------------------------------------------------


def test_match_eq_multiplies_only_when_it_matches() -> None:
    rule = MatchRule(field="category", op="eq", value="docs", boost=1.5)
    assert apply_one(rule, 2.0, {"category": "docs"}) == (
        3.0,
        (RuleEffect("match:category", "multiply", 1.5, "docs", False),),
    )
    assert apply_one(rule, 2.0, {"category": "forum"}) == (2.0, ())


def test_match_in_adds() -> None:
    rule = MatchRule(field="lang", op="in", values=["en", "fr"], boost=0.25, mode="add", name="lang")
    assert apply_one(rule, 0.5, {"lang": "fr"}) == (0.75, (RuleEffect("lang", "add", 0.25, "fr"),))
    assert apply_one(rule, 0.5, {"lang": "de"}) == (0.5, ())


def test_match_range_is_inclusive_on_both_ends() -> None:
    rule = MatchRule(field="year", op="range", min=2020, max=2022, boost=2.0)
    for year, expected in [(2019.99, 1.0), (2020, 2.0), (2021.5, 2.0), (2022, 2.0), (2022.01, 1.0)]:
        assert apply_one(rule, 1.0, {"year": year})[0] == expected, year
    only_min = MatchRule(field="year", op="range", min=2020, boost=2.0)
    assert apply_one(only_min, 1.0, {"year": 10**6})[0] == 2.0


def test_match_range_over_dates() -> None:
    rule = MatchRule(field="published", op="range", min="2026-01-01", max=date(2026, 12, 31), boost=2.0)
    assert apply_one(rule, 1.0, {"published": date(2026, 6, 1)})[0] == 2.0
    assert apply_one(rule, 1.0, {"published": "2025-12-31T23:59:59Z"})[0] == 1.0
    assert apply_one(rule, 1.0, {"published": datetime(2026, 12, 31)})[0] == 2.0


def test_match_a_list_field_matches_when_any_item_does() -> None:
    rule = MatchRule(field="tags", op="eq", value="python", boost=1.2)
    assert apply_one(rule, 1.0, {"tags": ["rust", "python"]})[0] == pytest.approx(1.2)
    assert apply_one(rule, 1.0, {"tags": ("rust",)})[0] == 1.0


def test_a_boost_above_one_raises_a_negative_score_too() -> None:
    rule = MatchRule(field="category", op="eq", value="docs", boost=2.0)
    assert apply_one(rule, -2.0, {"category": "docs"})[0] == -1.0  # -2 / 2, not -2 * 2
    assert apply_one(MatchRule(field="c", value="x", boost=0.5), -2.0, {"c": "x"})[0] == -4.0


def test_a_range_value_of_the_wrong_kind_is_an_error_naming_the_candidate_and_rule() -> None:
    rule = MatchRule(field="year", op="range", min=2020, name="recent")
    with pytest.raises(InvalidInputError, match=r"candidates\[1\]\.metadata\['year'\].*'recent'") as info:
        ScoringProfile((rule,)).apply([1.0, 1.0], [{"year": 2021}, {"year": "new"}])
    assert info.value.argument == "candidates[1].metadata['year']"


# -- freshness ---------------------------------------------------------------------------------------------


def fresh(**options: Any) -> FreshnessRule:
    return FreshnessRule(**{"field": "published", "half_life": "30d", **options})


@pytest.mark.parametrize(
    ("decay", "days", "expected"),
    [
        ("exp", 0, 1.0),
        ("exp", 30, 0.5),
        ("exp", 60, 0.25),
        ("gauss", 30, 0.5),
        ("gauss", 60, 0.0625),  # 0.5 ** (2 ** 2)
        ("gauss", 15, 0.5**0.25),
        ("linear", 15, 0.75),
        ("linear", 30, 0.5),
        ("linear", 60, 0.0),
        ("linear", 90, 0.0),
    ],
)
def test_freshness_decays(decay: str, days: int, expected: float) -> None:
    published = NOW - timedelta(days=days)
    score, effects = apply_one(fresh(decay=decay), 2.0, {"published": published})
    assert effects[0].amount == pytest.approx(expected)
    assert score == pytest.approx(2.0 * expected)


def test_freshness_weight_offset_and_additive_mode() -> None:
    forty_days = {"published": NOW - timedelta(days=40)}
    # offset: the first 10 days are fully fresh, so 40 days old decays like 30.
    assert apply_one(fresh(offset="10d"), 1.0, forty_days)[1][0].amount == pytest.approx(0.5)
    # weight 0.5 of a multiplicative decay of 0.5: factor 1 - 0.5 * (1 - 0.5) = 0.75.
    thirty_days = {"published": NOW - timedelta(days=30)}
    assert apply_one(fresh(weight=0.5), 2.0, thirty_days)[0] == pytest.approx(1.5)
    # additive: weight * decay = 0.2 * 0.5.
    assert apply_one(fresh(weight=0.2, mode="add"), 2.0, thirty_days)[0] == pytest.approx(2.1)


def test_freshness_reads_every_date_form_alike() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    forms: list[Any] = [
        moment,
        datetime(2026, 1, 1),  # naive = UTC
        datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))),
        date(2026, 1, 1),
        "2026-01-01",
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00+01:00",
        moment.timestamp(),
        int(moment.timestamp()),
    ]
    amounts = [apply_one(fresh(), 1.0, {"published": f})[1][0].amount for f in forms]
    assert amounts == pytest.approx([0.5] * len(forms))  # 30 days before NOW, whatever the form
    millis = fresh(epoch_unit="ms")
    assert apply_one(millis, 1.0, {"published": moment.timestamp() * 1000})[1][0].amount == pytest.approx(0.5)


def test_future_dates_follow_the_rules_policy() -> None:
    future = {"published": NOW + timedelta(days=30)}
    assert apply_one(fresh(), 1.0, future)[0] == 1.0  # default "fresh": age 0
    assert apply_one(fresh(future="decay"), 1.0, future)[0] == pytest.approx(0.5)  # distance either way
    with pytest.raises(InvalidInputError, match=r"after the origin.*future='error'") as info:
        apply_one(fresh(future="error", name="news"), 1.0, future)
    assert info.value.argument == "candidates[0].metadata['published']"
    assert "'news'" in str(info.value)


def test_a_fixed_origin_does_not_read_the_clock() -> None:
    def broken_clock() -> datetime:
        raise AssertionError("the clock must not be read")

    rule = fresh(origin="2026-03-02")
    profile = ScoringProfile((rule,), clock=broken_clock)
    scores, _ = profile.apply([1.0], [{"published": "2026-01-31"}])  # 30 days before the origin
    assert scores[0] == pytest.approx(0.5)


def test_the_clock_is_read_once_per_query_and_now_can_be_passed() -> None:
    calls = []

    def clock() -> datetime:
        calls.append(1)
        return NOW

    profile = ScoringProfile((fresh(),), clock=clock)
    profile.apply([1.0, 1.0, 1.0], [{"published": "2026-01-01"}] * 3)
    assert len(calls) == 1
    scores, _ = profile.apply([1.0], [{"published": "2026-01-01"}], now=datetime(2026, 3, 2))
    assert len(calls) == 1 and scores[0] == pytest.approx(0.25)


def test_a_bad_date_is_an_error_naming_the_candidate() -> None:
    with pytest.raises(InvalidInputError, match="must be a date") as info:
        apply_one(fresh(), 1.0, {"published": "last tuesday"})
    assert info.value.argument == "candidates[0].metadata['published']"
    for bad in (float("nan"), float("inf"), True, [2026]):
        with pytest.raises(InvalidInputError):
            apply_one(fresh(), 1.0, {"published": bad})


# -- numeric -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modifier", "mode", "weight", "value", "base", "expected"),
    [
        ("none", "add", 0.1, 5, 1.0, 1.5),
        ("none", "multiply", 0.5, 2, 2.0, 4.0),  # factor 1 + 0.5 * 2
        ("log1p", "multiply", 1.0, math.e - 1, 3.0, 6.0),  # factor 1 + log(e)
        ("log1p", "add", 2.0, 0, 1.0, 1.0),
        ("sqrt", "add", 2.0, 9, 1.0, 7.0),
        ("none", "add", -0.5, 2, 1.0, 0.0),  # a negative weight penalises
    ],
)
def test_numeric_rule(
    modifier: str, mode: str, weight: float, value: float, base: float, expected: float
) -> None:
    rule = NumericRule(field="authority", weight=weight, modifier=modifier, mode=mode)
    score, effects = apply_one(rule, base, {"authority": value})
    assert score == pytest.approx(expected)
    assert effects[0].value == value and not effects[0].defaulted


def test_numeric_values_a_rule_cannot_use_are_errors() -> None:
    log_rule = NumericRule(field="authority", weight=1.0, modifier="log1p", name="auth")
    with pytest.raises(InvalidInputError, match=r">= 0 for modifier 'log1p'.*") as info:
        apply_one(log_rule, 1.0, {"authority": -1})
    assert info.value.argument == "candidates[0].metadata['authority']"
    for bad in ("high", float("nan"), float("-inf"), True):
        with pytest.raises(InvalidInputError, match="'auth'"):
            apply_one(log_rule, 1.0, {"authority": bad})
    shrinking = NumericRule(field="authority", weight=-1.0)
    with pytest.raises(InvalidInputError, match="not > 0"):
        apply_one(shrinking, 1.0, {"authority": 1})


# -- missing metadata, defaults, combination ---------------------------------------------------------------


@pytest.mark.parametrize("meta", [None, {}, {"other": 1}, {"authority": None}])
def test_a_missing_field_does_not_fire_without_a_default(meta: Any) -> None:
    rules = (
        NumericRule(field="authority", weight=1.0),
        fresh(),
        MatchRule(field="authority", value=3, boost=2.0, name="auth3"),
    )
    scores, effects = ScoringProfile(rules, clock=fixed_clock).apply([1.25], [meta])
    assert scores[0] == 1.25 and effects == ((),)


def test_a_missing_field_uses_the_rules_default_and_says_so() -> None:
    numeric = NumericRule(field="authority", weight=0.5, default=2)
    assert apply_one(numeric, 1.0, {}) == (2.0, (RuleEffect("numeric:authority", "multiply", 2.0, 2, True),))
    dated = fresh(default="2026-01-01")  # undated documents count as 30 days old
    assert apply_one(dated, 1.0, None)[0] == pytest.approx(0.5)
    match = MatchRule(field="category", value="docs", boost=3.0, default="docs")
    assert apply_one(match, 1.0, {"title": "x"})[1][0].defaulted


def test_factors_multiply_then_terms_add() -> None:
    profile = ScoringProfile(
        (
            MatchRule(field="category", value="docs", boost=1.5),
            fresh(),
            NumericRule(field="votes", weight=0.125, mode="add"),
        ),
        clock=fixed_clock,
    )
    meta = {"category": "docs", "published": "2026-01-01", "votes": 2}
    scores, effects = profile.apply([2.0], [meta])
    assert scores[0] == pytest.approx(2.0 * 1.5 * 0.5 + 0.25)
    assert [e.rule for e in effects[0]] == ["match:category", "freshness:published", "numeric:votes"]


def test_a_profile_without_rules_is_the_identity() -> None:
    scores, effects = ScoringProfile().apply([3.0, -1.0], [{"a": 1}, None])
    assert scores.tolist() == [3.0, -1.0] and effects == ((), ())


def test_apply_checks_its_inputs() -> None:
    profile = ScoringProfile((NumericRule(field="a", weight=1.0),))
    with pytest.raises(InvalidInputError, match="finite"):
        profile.apply([float("nan")], [{"a": 1}])
    with pytest.raises(InvalidInputError, match="2 scores for 1"):
        profile.apply([1.0, 2.0], [{"a": 1}])
    with pytest.raises(InvalidInputError, match=r"candidates\[0\]\.metadata.*mapping"):
        profile.apply([1.0], ["not metadata"])  # type: ignore[list-item]


# -- validation at construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argument", "message"),
    [
        (lambda: MatchRule(field="c", op="like", value="x"), "match:c.op", "one of eq, in, range"),
        (lambda: MatchRule(field="c", value="x", boost=float("nan")), "match:c.boost", "finite"),
        (lambda: MatchRule(field="c", value="x", boost=math.inf, mode="add"), "match:c.boost", "finite"),
        (lambda: MatchRule(field="c", value="x", boost=0), "match:c.boost", "> 0"),
        (lambda: MatchRule(field="c", value="x", mode="times"), "match:c.mode", "multiply, add"),
        (lambda: MatchRule(field="c", op="eq"), "match:c.value", "required"),
        (lambda: MatchRule(field="c", op="in", values=[]), "match:c.values", "non-empty"),
        (lambda: MatchRule(field="c", op="in", values="abc"), "match:c.values", "non-empty list"),
        (lambda: MatchRule(field="c", op="eq", value=1, min=0), "match:c.min", "not used"),
        (lambda: MatchRule(field="c", op="range"), "match:c.min", "min and/or max"),
        (lambda: MatchRule(field="c", op="range", min=3, max=1), "match:c.max", ">= min"),
        (lambda: MatchRule(field="c", op="range", min=1, max="2026-01-01"), "match:c.max", "same kind"),
        (lambda: MatchRule(field="c", op="range", min=float("nan")), "match:c.min", "finite"),
        (lambda: MatchRule(field="", value=1), "match.field", "non-empty"),
        (lambda: fresh(half_life="-3d"), "freshness:published.half_life", "unit"),
        (lambda: fresh(half_life=30), "freshness:published.half_life", "unit"),
        (lambda: fresh(half_life="0d"), "freshness:published.half_life", "positive"),
        (lambda: fresh(half_life=timedelta(days=-1)), "freshness:published.half_life", "positive"),
        (lambda: fresh(offset=timedelta(days=-1)), "freshness:published.offset", "negative"),
        (lambda: fresh(decay="cubic"), "freshness:published.decay", "exp, linear, gauss"),
        (lambda: fresh(future="later"), "freshness:published.future", "fresh, decay, error"),
        (lambda: fresh(weight=1.5), "freshness:published.weight", "[0, 1]"),
        (lambda: fresh(weight=float("nan"), mode="add"), "freshness:published.weight", "finite"),
        (lambda: fresh(origin="soon"), "freshness:published.origin", "ISO 8601"),
        (lambda: fresh(default="yesterday"), "freshness:published.default", "ISO 8601"),
        (lambda: fresh(epoch_unit="us"), "freshness:published.epoch_unit", "'s' or 'ms'"),
        (lambda: NumericRule(field="a", weight=math.inf), "numeric:a.weight", "finite"),
        (lambda: NumericRule(field="a", weight="1"), "numeric:a.weight", "finite"),
        (lambda: NumericRule(field="a", weight=1.0, modifier="log"), "numeric:a.modifier", "log1p"),
        (
            lambda: NumericRule(field="a", weight=1.0, modifier="sqrt", default=-4),
            "numeric:a.default",
            ">= 0",
        ),
    ],
)
def test_bad_rules_are_refused_naming_the_rule_and_the_value(make: Any, argument: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as info:
        make()
    assert info.value.argument == argument


def test_rule_names_must_be_distinct() -> None:
    with pytest.raises(ConfigurationError, match="also the name of rules\\[0\\]") as info:
        ScoringProfile((fresh(), fresh(decay="gauss")))
    assert info.value.argument == "rules[1].name"
    ScoringProfile((fresh(), fresh(decay="gauss", name="gentle")))  # fine with a name of its own


def test_profile_construction_errors() -> None:
    with pytest.raises(ConfigurationError, match="MatchRule, FreshnessRule or NumericRule"):
        ScoringProfile(({"type": "match"},))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as info:
        ScoringProfile("rules")  # type: ignore[arg-type]
    assert info.value.argument == "rules"
    with pytest.raises(ConfigurationError):
        Reranker(FakeBackend(), profile=["not", "a", "profile"])  # type: ignore[arg-type]


# -- plain data --------------------------------------------------------------------------------------------

CONFIG = {
    "name": "news",
    "rules": [
        {"type": "freshness", "field": "published", "decay": "gauss", "half_life": "2w", "weight": 0.5},
        {"type": "match", "field": "category", "op": "in", "values": ["docs", "guide"], "boost": 1.3},
        {"type": "numeric", "field": "authority", "weight": 0.1, "modifier": "log1p", "default": 0},
        {"type": "match", "field": "year", "op": "range", "min": "2025-01-01", "boost": 0.1, "mode": "add"},
    ],
}


def test_from_dict_to_dict_round_trip_and_json(tmp_path: Path) -> None:
    profile = ScoringProfile.from_dict(CONFIG, clock=fixed_clock)
    assert profile.name == "news" and len(profile.rules) == 4
    assert profile.rules[0].half_life == timedelta(weeks=2)  # type: ignore[attr-defined]
    again = ScoringProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again == profile
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(CONFIG))
    assert ScoringProfile.from_json(path) == profile
    assert ScoringProfile.from_json(json.dumps(CONFIG)) == profile
    assert Reranker(FakeBackend(), profile=CONFIG).profile == profile


@pytest.mark.parametrize(
    ("data", "argument", "message"),
    [
        ({"rules": [{"type": "boost", "field": "a"}]}, "rules[0].type", "match, freshness, numeric"),
        ({"rules": [{"field": "a"}]}, "rules[0].type", "got None"),
        ({"rules": [{"type": "match", "field": "a", "value": 1, "factor": 2}]}, "rules[0]", "unknown key"),
        ({"rules": [{"type": "freshness", "field": "a"}]}, "rules[0]", "half_life"),
        ({"rules": [{"type": "numeric", "field": "a"}]}, "rules[0]", "weight"),
        ({"rules": "all"}, "rules", "list"),
        ({"rules": [], "version": 2}, "profile", "unknown key"),
        ({"rules": [7]}, "rules[0]", "mapping"),
    ],
)
def test_from_dict_errors(data: Any, argument: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        ScoringProfile.from_dict(data)
    assert info.value.argument == argument


def test_parse_helpers() -> None:
    assert parse_duration("90min") == timedelta(minutes=90)
    assert parse_duration("1.5d") == timedelta(hours=36)
    assert parse_date("2026-01-01T00:00:00z") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_duration("P30D")


# -- in the pipeline ---------------------------------------------------------------------------------------

SCORES = {"alpha": 3.0, "beta": 2.0, "gamma": 1.0, "delta": 0.0}


def test_the_reranker_applies_the_profile_after_fusion_and_before_threshold_and_top_n() -> None:
    profile = ScoringProfile((MatchRule(field="kind", value="docs", boost=10.0, mode="add", name="docs"),))
    reranker = Reranker(FakeBackend(SCORES), profile=profile, score_threshold=2.5, top_n=2)
    candidates = [
        {"text": "alpha", "metadata": {"kind": "blog"}},
        {"text": "beta", "metadata": {"kind": "blog"}},
        {"text": "delta", "metadata": {"kind": "docs"}},
        {"text": "gamma"},
    ]
    response = reranker.rerank("q", candidates)
    assert response.profile == "profile"
    assert response.indices == [2, 0]  # delta 0 + 10 first; beta (2.0) falls under the threshold
    top = response[0]
    assert top.relevance_score == 10.0 and top.pre_profile_score == 0.0 and top.rerank_score == 0.0
    assert top.profile_effects == (RuleEffect("docs", "add", 10.0, "docs"),)
    assert response[1].profile_effects == () and response[1].pre_profile_score == 3.0


def test_with_a_fusion_the_profile_starts_from_the_fused_score() -> None:
    profile = ScoringProfile((NumericRule(field="votes", weight=1.0, mode="add"),))
    reranker = Reranker(FakeBackend(SCORES), fusion="minmax:0.5", profile=profile)
    candidates = [{"text": t, "metadata": {"votes": v}} for t, v in [("alpha", 0), ("delta", 1)]]
    response = reranker.rerank("q", candidates, first_stage_scores=[0.0, 1.0])
    by_index = {r.index: r for r in response}
    # minmax fusion: alpha 0.5 * 1 + 0.5 * 0 = 0.5, delta 0.5 * 0 + 0.5 * 1 = 0.5; then + votes
    assert by_index[1].pre_profile_score == pytest.approx(0.5) and by_index[1].relevance_score == 1.5
    assert by_index[1].rerank_score == 0.0 and by_index[1].first_stage_score == 1.0
    assert response.indices == [1, 0]


def test_ties_after_the_profile_keep_input_order() -> None:
    profile = ScoringProfile((MatchRule(field="k", value="x", boost=2.0),))
    reranker = Reranker(FakeBackend({"a": 1.0, "b": 2.0, "c": 1.0}), profile=profile)
    meta = {"k": "x"}
    response = reranker.rerank("q", [{"text": "a", "metadata": meta}, "b", {"text": "c", "metadata": meta}])
    assert [r.relevance_score for r in response] == [2.0, 2.0, 2.0]
    assert response.indices == [0, 1, 2]


def test_bad_metadata_fails_before_any_model_work() -> None:
    backend = FakeBackend(SCORES)
    reranker = Reranker(backend, profile={"rules": [{"type": "numeric", "field": "votes", "weight": 1}]})
    with pytest.raises(InvalidInputError) as info:
        reranker.rerank_many(["q", "q"], [["alpha"], [{"text": "beta", "metadata": {"votes": "many"}}]])
    assert info.value.argument == "candidates[1][0].metadata['votes']"
    assert backend.calls == []


def test_empty_candidates_and_empty_metadata() -> None:
    reranker = Reranker(FakeBackend(SCORES), profile=ScoringProfile((fresh(),), clock=fixed_clock))
    assert reranker.rerank("q", []).profile == "profile"
    response = reranker.rerank("q", [{"text": "alpha", "metadata": {}}, "beta"])
    assert [r.relevance_score for r in response] == [3.0, 2.0]
    assert all(r.profile_effects == () and r.pre_profile_score == r.rerank_score for r in response)


async def test_the_async_path_applies_the_profile_too() -> None:
    profile = ScoringProfile((MatchRule(field="k", value="x", boost=0.0, mode="add"),))
    reranker = Reranker(FakeBackend(SCORES), profile=profile)
    response = await reranker.arerank("q", [{"text": "beta", "metadata": {"k": "x"}}])
    assert response[0].profile_effects[0].rule == "match:k"


# -- properties --------------------------------------------------------------------------------------------

PROPERTY_PROFILE = ScoringProfile(
    (
        MatchRule(field="category", op="in", values=["docs", "guide"], boost=1.4),
        MatchRule(field="category", value="forum", boost=-0.3, mode="add", name="forum"),
        FreshnessRule(field="age", half_life="10d", decay="gauss", weight=0.6, default=0),
        NumericRule(field="authority", weight=0.2, modifier="log1p", default=0),
        NumericRule(field="votes", weight=0.01, mode="add", name="votes"),
    ),
    clock=lambda: datetime(2026, 1, 31, tzinfo=UTC),
)

metadata_strategy = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "category": st.sampled_from(["docs", "guide", "forum", "blog"]),
            "age": st.integers(min_value=0, max_value=3 * 10**9),
            "authority": st.integers(min_value=0, max_value=10**6),
            "votes": st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
            "other": st.text(max_size=3),
        },
    ),
)
candidates_strategy = st.lists(
    st.tuples(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), metadata_strategy),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(candidates_strategy, st.randoms(use_true_random=False))
def test_order_of_candidates_does_not_matter(cands: list[tuple[float, Any]], rnd: Any) -> None:
    scores = [s for s, _ in cands]
    metas = [m for _, m in cands]
    out, effects = PROPERTY_PROFILE.apply(scores, metas)
    perm = list(range(len(cands)))
    rnd.shuffle(perm)
    out2, effects2 = PROPERTY_PROFILE.apply([scores[i] for i in perm], [metas[i] for i in perm])
    assert out2.tolist() == [out[i] for i in perm]
    assert list(effects2) == [effects[i] for i in perm]


@settings(max_examples=150, deadline=None)
@given(candidates_strategy)
def test_applying_a_profile_mutates_nothing(cands: list[tuple[float, Any]]) -> None:
    scores = np.array([s for s, _ in cands], dtype=np.float64)
    metas = [m for _, m in cands]
    scores_before, metas_before = scores.copy(), copy.deepcopy(metas)
    PROPERTY_PROFILE.apply(scores, metas)
    assert np.array_equal(scores, scores_before) and metas == metas_before


NEUTRAL = ScoringProfile(
    (
        MatchRule(field="category", op="in", values=["docs"], boost=1.0),
        MatchRule(field="category", value="forum", boost=0.0, mode="add", name="forum"),
        FreshnessRule(field="age", half_life="10d", weight=0.0, default=0),
        NumericRule(field="authority", weight=0.0, modifier="sqrt"),
    )
)


@settings(max_examples=150, deadline=None)
@given(candidates_strategy, st.booleans())
def test_a_neutral_profile_is_the_identity(cands: list[tuple[float, Any]], empty: bool) -> None:
    scores = [s for s, _ in cands]
    out, _ = (ScoringProfile() if empty else NEUTRAL).apply(scores, [m for _, m in cands])
    assert out.tolist() == scores


@settings(max_examples=150, deadline=None)
@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.floats(min_value=1.0, max_value=100.0))
def test_a_boost_above_one_never_lowers_a_score(base: float, boost: float) -> None:
    rule = MatchRule(field="c", value="x", boost=boost)
    boosted = apply_one(rule, base, {"c": "x"})[0]
    assert boosted >= base
    shrunk = apply_one(MatchRule(field="c", value="x", boost=1.0 / boost), base, {"c": "x"})[0]
    assert shrunk <= base

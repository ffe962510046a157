"""Calibration, bands and the no-answer floor inside the Reranker: where they sit in the stage order,
what they read, and how bad settings are refused."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeBackend

from rerank_core import ConfigurationError, Fusion, Reranker
from rerank_core.calibration import Bands, Calibration, fit_calibration

SCORES = {"a": 2.0, "b": -1.0, "c": 0.5, "d": 3.0}
PLATT = Calibration("platt", "logit", params=(1.0, -1.0))


def _sig(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def test_calibration_maps_raw_scores_keeps_the_order_and_names_itself() -> None:
    response = Reranker(FakeBackend(SCORES), calibration=PLATT).rerank("q", list(SCORES))
    assert response.indices == [3, 0, 2, 1]
    assert [r.relevance_score for r in response] == pytest.approx(
        [_sig(2.0), _sig(1.0), _sig(-0.5), _sig(-2.0)]
    )
    assert [r.rerank_score for r in response] == [r.relevance_score for r in response]
    assert [r.raw_score for r in response] == [3.0, 2.0, 0.5, -1.0]
    assert response.calibration == "platt(a=1, b=-1)" and response.normalization == "none"
    # bands on the calibrated score: 0.88 high, 0.73 high, 0.38 not, 0.12 not
    assert [r.band for r in response] == [
        "highly relevant",
        "highly relevant",
        "not relevant",
        "not relevant",
    ]


def test_bands_only_on_probabilities_and_configurable() -> None:
    raw = Reranker(FakeBackend(SCORES)).rerank("q", list(SCORES))
    assert {r.band for r in raw} == {None}  # raw logits: no band
    sig = Reranker(FakeBackend(SCORES), normalization="sigmoid").rerank("q", list(SCORES))
    assert sig.results[0].band == "highly relevant"
    probs = {"a": 0.9, "b": 0.1, "c": 0.5}
    custom = Reranker(FakeBackend(probs, kind="probability"), bands={"edges": [0.5], "names": ["no", "yes"]})
    assert [r.band for r in custom.rerank("q", list(probs))] == ["yes", "yes", "no"]
    off = Reranker(FakeBackend(probs, kind="probability"), bands=False).rerank("q", list(probs))
    assert {r.band for r in off} == {None}


def test_bands_read_the_calibrated_score_under_fusion() -> None:
    reranker = Reranker(FakeBackend(SCORES), calibration=PLATT, fusion=Fusion("rrf", 0.5))
    response = reranker.rerank("q", list(SCORES), first_stage_scores=[4.0, 3.0, 2.0, 1.0])
    for r in response:
        assert r.band == Bands().band(r.rerank_score)
        assert r.rerank_score == pytest.approx(_sig(r.raw_score - 1.0))


def test_no_answer_floor_returns_nothing_with_a_reason_and_keeps_answerable_queries() -> None:
    reranker = Reranker(FakeBackend(SCORES), calibration=PLATT, no_answer_floor=0.5)
    low = reranker.rerank("q", ["b", "c"])  # best calibrated: sigmoid(-0.5) = 0.38
    assert low.results == () and low.num_candidates == 2
    assert "0.3775" in low.no_answer and "0.5" in low.no_answer
    high = reranker.rerank("q", ["b", "d"])
    assert high.no_answer is None and high.indices == [1, 0]  # the floor is not a threshold
    many = reranker.rerank_many(["q1", "q2"], [["b"], ["d"]])
    assert [r.no_answer is None for r in many] == [False, True]


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="calibration"):
        Reranker(FakeBackend(SCORES), calibration=PLATT, normalization="sigmoid")
    with pytest.raises(ConfigurationError, match="calibration"):  # fitted on another kind of score
        Reranker(FakeBackend(SCORES), calibration=Calibration("platt", "probability", params=(1.0, 0.0)))
    with pytest.raises(ConfigurationError, match="no_answer_floor"):  # raw logits are not probabilities
        Reranker(FakeBackend(SCORES), no_answer_floor=0.3)
    for floor in (0, 1, -0.1, float("nan"), "0.5"):
        with pytest.raises(ConfigurationError, match="no_answer_floor"):
            Reranker(FakeBackend(SCORES), calibration=PLATT, no_answer_floor=floor)
    with pytest.raises(ConfigurationError, match="bands"):
        Reranker(FakeBackend(SCORES), bands={"edge": [0.5]})
    with pytest.raises(ConfigurationError, match="calibration"):
        Reranker(FakeBackend(SCORES), calibration=3)
    with pytest.raises(ConfigurationError, match="has none here"):  # no local model folder
        Reranker(FakeBackend(SCORES), calibration="model")


def test_a_saved_calibration_loads_from_its_path_and_from_the_model_folder(tmp_path) -> None:
    z = np.linspace(-4, 4, 400)
    y = np.random.default_rng(1).random(400) < 1 / (1 + np.exp(-z))
    fitted = fit_calibration(z, y, method="isotonic")
    fitted.save(tmp_path)

    class Local(FakeBackend):
        @property
        def model_folder(self) -> str:
            return str(tmp_path)

    by_path = Reranker(FakeBackend(SCORES), calibration=tmp_path / "calibration.json")
    by_model = Reranker(Local(SCORES), calibration="model")
    assert by_path.calibration == fitted == by_model.calibration
    got = [r.relevance_score for r in by_model.rerank("q", list(SCORES))]
    assert got == pytest.approx(sorted(fitted.apply(list(SCORES.values())), reverse=True))


def test_calibration_and_bands_survive_the_adapters_config_round_trip() -> None:
    import json

    from rerank_core.integrations import reranker_config, reranker_from_config

    iso = Calibration("isotonic", "logit", knots=((-1.0, 0.1), (2.0, 0.8)), fitted_on={"pairs": 10})
    reranker = Reranker(
        FakeBackend(SCORES, name="x"),
        calibration=iso,
        bands=Bands((0.5,), ("no", "yes")),
        no_answer_floor=0.2,
    )
    config = reranker_config(reranker)
    assert config is not None and json.loads(json.dumps(config)) == config
    rebuilt = reranker_from_config(config)
    assert rebuilt.calibration == iso and rebuilt.bands == Bands((0.5,), ("no", "yes"))
    assert rebuilt.no_answer_floor == 0.2
    off = reranker_from_config(reranker_config(Reranker(FakeBackend(SCORES, name="x"), bands=False)))
    assert off.bands is None


def test_the_judge_stage_band_reads_probabilities_and_no_answer_skips_the_judge() -> None:
    from rerank_core import JudgeStage

    judge = FakeBackend({"a": 9.0, "b": 0.0, "c": 0.0, "d": 0.0}, name="judge")
    platt = Calibration("platt", "logit", params=(1.0, -1.5))  # a .62, b .08, c .27, d .82
    reranker = Reranker(FakeBackend(SCORES), calibration=platt, judge=JudgeStage(judge, band=(0.4, 0.7)))
    response = reranker.rerank("q", list(SCORES))
    assert judge.calls == [[("q", "a")]]  # only the "possibly relevant" band is judged
    assert response.results[0].band == "highly relevant"
    floored = Reranker(
        FakeBackend(SCORES), calibration=platt, judge=JudgeStage(judge, top_k=2), no_answer_floor=0.9
    ).rerank("q", list(SCORES))
    assert floored.results == () and floored.no_answer and len(judge.calls) == 1  # no judge call


def test_an_isotonic_step_never_reorders_and_later_changes_are_checked() -> None:
    # d=9, e=7 both above the last knot (clipped to 0.9), a and c below the first (0.1): raw order kept
    scores = {"a": 0.5, "b": 2.0, "c": -3.0, "d": 9.0, "e": 7.0}
    iso = Calibration("isotonic", "logit", knots=((1.0, 0.1), (3.0, 0.9)))
    calibrated = Reranker(FakeBackend(scores), calibration=iso).rerank("q", list(scores))
    plain = Reranker(FakeBackend(scores)).rerank("q", list(scores))
    assert calibrated.indices == plain.indices == [3, 4, 1, 0, 2]
    reranker = Reranker(FakeBackend(scores))
    with pytest.raises(ConfigurationError, match="no_answer_floor"):
        reranker.no_answer_floor = 0.3  # raw logits: refused when set, not at the next call
    with pytest.raises(ConfigurationError, match="calibration"):
        reranker.calibration = Calibration("platt", "probability", params=(1.0, 0.0))
    reranker.calibration = PLATT
    reranker.no_answer_floor = 0.3
    assert reranker.rerank("q", ["c"]).no_answer is not None

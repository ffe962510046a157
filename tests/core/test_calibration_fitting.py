"""Fitted calibration (Platt, temperature, isotonic), ECE / Brier, bands: against brute force and by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_core.calibration import (
    DEFAULT_BANDS,
    Bands,
    Calibration,
    brier_score,
    expected_calibration_error,
    fit_calibration,
    load_calibration,
    reliability_bins,
)
from rerank_core.errors import ConfigurationError, InvalidInputError


def _synthetic(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n) * 3
    y = rng.random(n) < 1 / (1 + np.exp(-(0.7 * z - 1.0)))
    return z, y


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_platt_recovers_the_generating_logistic_and_is_a_minimum() -> None:
    z, y = _synthetic()
    c = fit_calibration(z, y, method="platt")
    a, b = c.params
    assert a == pytest.approx(0.7, abs=0.07) and b == pytest.approx(-1.0, abs=0.12)
    # no nearby (a, b) has a lower smoothed log loss: a grid around the fit
    positives, negatives = y.sum(), (~y).sum()
    t = np.where(y, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(a_: float, b_: float) -> float:
        f = a_ * z + b_
        return float(np.sum(np.logaddexp(0, f) - t * f))

    best = loss(a, b)
    for da in (-0.01, 0, 0.01):
        for db in (-0.01, 0, 0.01):
            assert loss(a + da, b + db) >= best - 1e-6
    assert c.fitted_on["pairs"] == z.size and c.fitted_on["positives"] == int(y.sum())


def test_temperature_keeps_zero_at_one_half_and_isotonic_is_monotone_and_in_sample_exact() -> None:
    z, y = _synthetic()
    t = fit_calibration(z, y, method="temperature")
    assert t.apply([0.0])[0] == 0.5 and t.params[0] > 0
    iso = fit_calibration(z, y, method="isotonic")
    p = iso.apply(np.sort(z))
    assert np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 1
    # in sample, each pooled block's mean is the observed rate: ECE over the fit data is (near) zero
    assert expected_calibration_error(iso.apply(z), y) < 0.02
    # out of range scores are clipped to the end knots
    assert iso.apply([-1e9])[0] == iso.knots[0][1] and iso.apply([1e9])[0] == iso.knots[-1][1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-20, 20), st.booleans()), min_size=2, max_size=40))
def test_isotonic_equals_brute_force_pav(rows: list[tuple[int, bool]]) -> None:
    z = np.array([r[0] for r in rows], dtype=float)
    y = np.array([r[1] for r in rows])
    if y.all() or not y.any() or np.ptp(z) == 0:
        return  # one class, or constant scores: refused (tested below)
    c = fit_calibration(z, y, method="isotonic")
    # brute force: the isotonic fit minimises squared error over non-decreasing step functions of the
    # distinct values; check the fitted values at each distinct score against a slow PAV
    values = np.unique(z)
    means = [[y[z == v].sum(), float((z == v).sum())] for v in values]
    blocks = [[m[0], m[1], 1] for m in means]
    changed = True
    while changed:
        changed = False
        for i in range(len(blocks) - 1):
            if blocks[i][0] / blocks[i][1] >= blocks[i + 1][0] / blocks[i + 1][1]:
                blocks[i] = [
                    blocks[i][0] + blocks[i + 1][0],
                    blocks[i][1] + blocks[i + 1][1],
                    blocks[i][2] + blocks[i + 1][2],
                ]
                del blocks[i + 1]
                changed = True
                break
    want = np.concatenate([[b[0] / b[1]] * b[2] for b in blocks])
    assert c.apply(values) == pytest.approx(want, abs=1e-12)


def test_probability_back_ends_are_fitted_on_the_logit_and_kinds_are_kept() -> None:
    z, y = _synthetic()
    p = 1 / (1 + np.exp(-z))
    c = fit_calibration(p, y, method="platt", score_kind="probability")
    assert c.params == pytest.approx(fit_calibration(z, y, method="platt").params, abs=1e-4)
    assert c.score_kind == "probability"
    with pytest.raises(InvalidInputError, match="method"):
        fit_calibration([1.0, 2.0], [0, 1], method="temperature", score_kind="rank")


def test_bad_fitting_input_is_refused_by_name() -> None:
    with pytest.raises(InvalidInputError, match="labels"):
        fit_calibration([1.0, 2.0], [1, 1])
    with pytest.raises(InvalidInputError, match="labels"):
        fit_calibration([1.0, 2.0], [0, 0])
    with pytest.raises(InvalidInputError, match="scores"):
        fit_calibration([1.0, float("nan")], [0, 1])
    with pytest.raises(InvalidInputError, match="method"):
        fit_calibration([1.0, 2.0], [0, 1], method="beta")
    with pytest.raises(InvalidInputError, match="score_kind"):
        fit_calibration([1.0, 2.0], [0, 1], score_kind="prob")
    # anti-correlated labels: a decreasing map would reverse the ranking
    z = np.linspace(-3, 3, 200)
    with pytest.raises(InvalidInputError, match="reverse"):
        fit_calibration(z, z < 0, method="platt")


def test_save_load_round_trip_and_malformed_files(tmp_path) -> None:
    z, y = _synthetic(500)
    for method in ("platt", "temperature", "isotonic"):
        c = fit_calibration(z, y, method=method, fitted_on={"source": "synthetic"})
        written = c.save(tmp_path)
        assert written.name == "calibration.json"
        back = load_calibration(tmp_path)
        assert back == c and back.fitted_on["source"] == "synthetic"
        assert np.array_equal(back.apply(z), c.apply(z))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="calibration"):
        load_calibration(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text(json.dumps({"format": 1, "method": "platt", "score_kind": "logit"}))
    with pytest.raises(ConfigurationError, match="2 finite parameters"):
        load_calibration(tmp_path / "bad.json")
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_calibration(tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="knots"):
        Calibration("isotonic", "logit", knots=((1.0, 0.9), (2.0, 0.1)))


def test_ece_and_brier_by_hand() -> None:
    p = [0.05, 0.15, 0.95, 0.95]
    y = [0, 1, 1, 0]
    # bins: [0,0.1): 0.05 vs 0 -> 0.05; [0.1,0.2): 0.15 vs 1 -> 0.85; [0.9,1]: 0.95 vs 0.5 -> 0.45 (x2)
    assert expected_calibration_error(p, y) == pytest.approx((0.05 + 0.85 + 2 * 0.45) / 4)
    assert brier_score(p, y) == pytest.approx((0.05**2 + 0.85**2 + 0.05**2 + 0.95**2) / 4)
    bins = reliability_bins([1.0, 0.0], [1, 0])
    assert bins["count"][0] == 1 and bins["count"][-1] == 1 and math.isnan(bins["observed"][5])
    assert expected_calibration_error([0.1, 0.2], [0, 0]) == pytest.approx(0.15)  # all negative is fine
    with pytest.raises(InvalidInputError, match="probabilities"):
        expected_calibration_error([2.0, 0.5], [1, 0])


def test_bands_default_edges_belong_to_the_band_above_and_bad_bands_are_refused() -> None:
    assert [DEFAULT_BANDS.band(s) for s in (0.0, 0.39, 0.4, 0.69, 0.7, 1.0)] == [
        "not relevant",
        "not relevant",
        "possibly relevant",
        "possibly relevant",
        "highly relevant",
        "highly relevant",
    ]
    assert Bands((0.5,), ("no", "yes")).band(0.5) == "yes"
    for edges, names in [
        ((0.7, 0.4), ("a", "b", "c")),
        ((0.5,), ("a",)),
        ((1.5,), ("a", "b")),
        ((0.5,), ("a", "a")),
        ((0.5,), ("a", " ")),
    ]:
        with pytest.raises(ConfigurationError, match="bands"):
            Bands(edges, names)


def test_constant_scores_lists_and_numpy_values_are_handled() -> None:
    with pytest.raises(InvalidInputError, match="all scores are equal"):
        fit_calibration([1.0, 1.0, 1.0, 1.0], [0, 1, 0, 1])
    c = Calibration("platt", "logit", params=[1, 2], fitted_on={"x": 1})  # lists and ints: coerced
    assert c.params == (1.0, 2.0) and Calibration.from_dict(c.to_dict()) == c and hash(c)
    assert Bands((np.float32(0.5),), ("n", "y")).band(0.6) == "y"
    for bad in ([float("nan"), 0.5], [[0.1, 0.2]]):
        with pytest.raises(InvalidInputError, match="probabilities"):
            brier_score(bad, [0, 0] if len(bad) == 2 else [[0, 0]])

"""The pure parts of ``benchmarks/serve_load.py`` (the load benchmark of ``rerank serve`` against Infinity):
the request mix, the percentile math, the table and ratio logic and the ranking comparison. No server is
started and no data is read.
"""

from __future__ import annotations

import math

import pytest
from serve_load import (
    LevelResult,
    Request,
    at_p95,
    compare_rankings,
    make_mix,
    markdown_report,
    matched_ratios,
    median_rounds,
    parse_ranking,
    percentile,
    summarize_level,
)


def _candidates(n_queries: int = 10, depth: int = 100) -> dict[str, tuple[str, list[str]]]:
    return {f"q{i}": (f"query {i}", [f"doc {i}-{j}" for j in range(depth)]) for i in range(n_queries)}


def test_mix_is_deterministic_and_within_bounds() -> None:
    cands = _candidates()
    a = make_mix(cands, 25, min_docs=20, max_docs=100, seed=3)
    b = make_mix(dict(reversed(list(cands.items()))), 25, min_docs=20, max_docs=100, seed=3)
    assert a == b  # same seed, same mix, whatever the mapping's order
    assert a != make_mix(cands, 25, min_docs=20, max_docs=100, seed=4)
    assert len(a) == 25
    assert all(20 <= r.pairs <= 100 for r in a)
    assert len({r.pairs for r in a}) > 5  # the counts vary
    # Every query is used before any repeats (a shuffle, cycled), and candidates stay in BM25 order.
    assert len({r.query_id for r in a[:10]}) == 10
    assert [r.query_id for r in a[10:20]] == [r.query_id for r in a[:10]]
    for r in a:
        query, docs = cands[r.query_id]
        assert r.query == query and r.documents == tuple(docs[: r.pairs])


def test_mix_caps_at_available_candidates_and_skips_short_queries() -> None:
    cands = {"short": ("s", ["a"] * 5), "mid": ("m", [f"d{j}" for j in range(30)])}
    mix = make_mix(cands, 8, min_docs=20, max_docs=100, seed=0)
    assert {r.query_id for r in mix} == {"mid"}
    assert all(20 <= r.pairs <= 30 for r in mix)
    with pytest.raises(ValueError, match="at least 50"):
        make_mix(cands, 3, min_docs=50, max_docs=100)
    with pytest.raises(ValueError):
        make_mix(cands, 0)


def test_percentile_matches_linear_interpolation() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(values, 50) == 30.0
    assert percentile(values, 0) == 10.0 and percentile(values, 100) == 50.0
    assert percentile(values, 95) == pytest.approx(48.0)  # numpy.percentile(values, 95)
    assert percentile(list(reversed(values)), 25) == 20.0
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_summarize_level() -> None:
    r = summarize_level("ours", 4, [0.1, 0.2, 0.3, 0.4], [10, 20, 30, 40], 2.0, {"http_503": 1})
    assert (r.requests, r.errors, r.pairs) == (4, 1, 100)
    assert r.req_per_s == 2.0 and r.pairs_per_s == 50.0
    assert r.p50_ms == pytest.approx(250.0) and r.mean_ms == pytest.approx(250.0)
    assert r.p95_ms == pytest.approx(385.0)
    assert math.isnan(r.cpu_ms_per_pair)  # not measured
    r = summarize_level("ours", 4, [0.1, 0.2], [10, 30], 2.0, server_cpu_s=2.0)
    assert r.cpu_ms_per_pair == pytest.approx(50.0)
    empty = summarize_level("ours", 1, [], [], 1.0, {"timeout": 2})
    assert empty.requests == 0 and empty.errors == 2 and math.isnan(empty.p95_ms)


def _level(server: str, c: int, pairs_per_s: float, p95: float, errors: int = 0) -> LevelResult:
    return LevelResult(
        server, c, 10, errors, 500, 10.0, pairs_per_s / 50, pairs_per_s, p95 / 2, p95, p95 * 1.2, p95 / 2
    )


RESULTS = [
    _level("ours", 1, 100.0, 400.0),
    _level("ours", 4, 180.0, 900.0),
    _level("ours", 16, 200.0, 3000.0),
    _level("infinity", 1, 80.0, 500.0),
    _level("infinity", 4, 120.0, 1500.0),
    _level("infinity", 16, 130.0, 6000.0),
    _level("infinity", 32, 135.0, 12000.0),
]


def test_ratios_at_matched_concurrency() -> None:
    rows = matched_ratios(RESULTS)
    assert [r["concurrency"] for r in rows] == [1, 4, 16]  # 32 ran on Infinity only
    assert rows[0]["pairs_per_s"] == pytest.approx(1.25)
    assert rows[1]["req_per_s"] == pytest.approx(1.5)
    assert rows[2]["p95"] == pytest.approx(0.5)


def test_at_same_p95_takes_the_best_throughput_under_the_bound() -> None:
    assert at_p95(RESULTS, "ours", 1000.0).concurrency == 4
    assert at_p95(RESULTS, "infinity", 1000.0).concurrency == 1
    assert at_p95(RESULTS, "infinity", 100.0) is None
    # A level with errors does not qualify.
    with_errors = [*RESULTS, _level("ours", 8, 500.0, 500.0, errors=1)]
    assert at_p95(with_errors, "ours", 1000.0).concurrency == 4


def test_markdown_report() -> None:
    ranking = compare_rankings([[(0, 0.9), (1, 0.1)]], [[(0, 0.8), (1, 0.2)]])
    text = markdown_report(RESULTS, p95_ms=1000.0, ranking=ranking)
    lines = text.splitlines()
    assert lines[0].startswith("| server | concurrency | req/s | pairs/s | p50 ms | p95 ms | p99 ms")
    # ours first, then Infinity, each by concurrency
    body = lines[2:9]
    assert [line.split("|")[1].strip() for line in body] == ["ours"] * 3 + ["infinity"] * 4
    assert "| 1 | 1.25 | 1.25 | 0.80 |" in text
    assert "ours / Infinity at p95 <= 1000 ms: 2.25x pairs/s" in text
    assert "1 identical" in text and "max |score difference| 1.00e-01" in text
    only_ours = markdown_report([r for r in RESULTS if r.server == "ours"], p95_ms=100.0)
    assert "matched concurrency" not in only_ours and "none qualifies" in only_ours


def test_parse_ranking_accepts_jina_and_tei_and_refuses_bad_answers() -> None:
    jina = {"results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.2}]}
    assert parse_ranking(jina, 2) == [(1, 0.9), (0, 0.2)]
    assert parse_ranking([{"index": 0, "score": 3}, {"index": 1, "score": -1.5}], 2) == [(0, 3.0), (1, -1.5)]
    with pytest.raises(ValueError):
        parse_ranking({"results": [{"index": 0, "relevance_score": 0.5}]}, 2)  # one missing
    with pytest.raises(ValueError):
        parse_ranking({"results": [{"index": 0, "relevance_score": float("nan")}]}, 1)
    with pytest.raises(ValueError):
        parse_ranking({"error": "x"}, 1)


def test_compare_rankings() -> None:
    a = [
        [(0, 0.9), (1, 0.5), (2, 0.1)],
        [(2, 0.70001), (1, 0.7), (0, 0.1)],  # 2 and 1 are a near-tie, swapped on the other side
        [(0, 0.9), (1, 0.5)],
        None,  # failed on one side: not compared
    ]
    b = [
        [(0, 0.91), (1, 0.5), (2, 0.1)],
        [(1, 0.70002), (2, 0.70001), (0, 0.1)],
        [(1, 0.9), (0, 0.5)],
        [(0, 1.0)],
    ]
    out = compare_rankings(a, b, tie_eps=1e-4)
    assert out["requests"] == 4 and out["compared"] == 3
    assert out["identical"] == 1 and out["identical_up_to_ties"] == 2 and out["top10_identical"] == 1
    assert out["first_mismatch"] == 1
    assert out["max_score_diff"] == pytest.approx(0.4)
    with pytest.raises(ValueError):
        compare_rankings(a, b[:2])


def test_request_pairs() -> None:
    assert Request("q", "text", ("a", "b", "c")).pairs == 3


def test_median_rounds_keeps_the_median_round_per_level() -> None:
    rounds = [
        _level("ours", 1, 100.0, 400.0),
        _level("infinity", 1, 80.0, 500.0),
        _level("ours", 1, 300.0, 300.0),
        _level("infinity", 1, 90.0, 450.0),
        _level("ours", 1, 200.0, 350.0),
    ]
    out = median_rounds(rounds)
    assert [(r.server, r.pairs_per_s) for r in out] == [("ours", 200.0), ("infinity", 80.0)]
    assert median_rounds(RESULTS) == RESULTS

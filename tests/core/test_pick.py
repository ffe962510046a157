"""``rerank pick`` and the library's speed harness (:mod:`rerank_core.eval.speed`): the harness on a tiny
model and a tiny BEIR folder, the ceiling arithmetic, the pick, skipped configurations, bad arguments, and
the deprecated ``rerank bench``. No ../shared needed. The race against the incumbents
(``python benchmarks/speed.py``) is tested in tests/benchmarks/test_speed_race.py; until the restructure of
issue 15 both were tests/core/test_bench.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from rerank_core import cli
from rerank_core.eval.speed import (
    BenchConfig,
    BenchResult,
    ContenderResult,
    ModelShape,
    beir_workload,
    contender_specs,
    flops_per_pair,
    matmul_rate,
    pick_fastest,
    run_bench,
    select_specs,
    workload_flops,
    write_outputs,
)
from rerank_core.eval.speed.ceiling import model_shape
from rerank_core.eval.speed.contenders import PLUGINS_ENV, ContenderSpec, our_specs
from rerank_core.eval.speed.harness import Workload, _percentile

DOCS = [
    ("d1", "Zebra", "zebra stripes are black and white"),
    ("d2", "Lion", "the lion mane is golden and the lion is a big cat"),
    ("d3", "Penguin", "penguins live in antarctica"),
    ("d4", "Stripes", "stripes appear on many animals like tigers and zebra foals"),
    ("d5", "Golden", "golden retrievers are dogs"),
    ("d6", "Antarctica", "antarctica is cold and icy"),
]
QUERIES = [("q1", "zebra stripes animal"), ("q2", "lion mane golden animal")]
QRELS = [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d2", 1)]
PAIR = "ours torch fp32,ours torch bf16"


@pytest.fixture(autouse=True)
def _no_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the library's own contenders, whatever the environment says."""
    monkeypatch.delenv(PLUGINS_ENV, raising=False)


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mini"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        # every document mentions "animal", so BM25 returns the full depth for every query
        "\n".join(json.dumps({"_id": d, "title": t, "text": x + ". an animal fact"}) for d, t, x in DOCS)
        + "\n"
    )
    (root / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": t}) for q, t in QUERIES) + "\n"
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS)
    )
    return root


# -- the ceiling ---------------------------------------------------------------------------------------------


def test_flops_per_pair_hand_computed() -> None:
    shape = ModelShape(params_layers=100, params_head=10, params_embeddings=999, num_layers=2, hidden=4)
    # 2*100*3 (weights per token) + 4*2*4*3^2 (QK^T and AV) + 2*10 (head once) = 600 + 288 + 20
    assert flops_per_pair(shape, 3) == 908
    assert workload_flops(shape, [3, 0]) == 908 + 20
    with pytest.raises(ValueError, match="tokens"):
        flops_per_pair(shape, -1)


def test_model_shape_counts_every_weight_once(tiny_ce_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    net = AutoModelForSequenceClassification.from_pretrained(tiny_ce_path)
    shape = model_shape(net)
    assert shape.num_layers == 2 and shape.hidden == 32
    total = sum(p.numel() for p in net.parameters())
    assert shape.params_layers + shape.params_head + shape.params_embeddings == total
    # per layer: q, k, v, o (32x32 + 32) + FFN (32x64 + 64 + 64x32 + 32) + 2 layer norms (2 x 64)
    assert shape.params_layers == 2 * (4 * (32 * 32 + 32) + (32 * 64 + 64) + (64 * 32 + 32) + 2 * 64)


def test_matmul_rate_is_positive_and_checks_arguments() -> None:
    assert matmul_rate("float32", size=64, seconds=0.01) > 0
    assert matmul_rate("float32", size=64, seconds=0.01, library="numpy") > 0
    with pytest.raises(ValueError, match="library"):
        matmul_rate("float32", size=64, library="jax")
    with pytest.raises(ValueError, match="size"):
        matmul_rate("float32", size=2)
    with pytest.raises(ValueError, match="dtype"):
        matmul_rate("floaty", size=64)


def test_percentile_matches_numpy() -> None:
    np = pytest.importorskip("numpy")
    xs = [5.0, 1.0, 3.0, 2.0, 8.0, 13.0]
    for q in (0, 50, 95, 100):
        assert _percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))


# -- contenders ----------------------------------------------------------------------------------------------


def test_our_configurations_follow_the_installed_signature() -> None:
    old = {s.name: s for s in our_specs({"device", "dtype", "batch_size"})}
    assert old["ours torch fp32"].unavailable() is None
    assert "runtime" in (old["ours onnx int8"].skip_reason or "")
    assert "batch_tokens" in (old["ours torch fp32 batch_tokens"].skip_reason or "")
    new = {
        s.name: s
        for s in our_specs({"device", "dtype", "runtime", "quantization", "batch_tokens", "cache_dir"})
    }
    assert new["ours onnx int8"].skip_reason is None
    assert "quantization='int8'" in new["ours onnx int8"].call
    assert "runtime='torch'" in new["ours torch fp32"].call


def test_select_specs_by_family_name_and_prefix() -> None:
    specs = contender_specs()
    assert [s.name for s in select_specs(specs, "ours onnx")] == ["ours onnx"]  # an exact name: alone
    assert [s.name for s in select_specs(specs, "ours onnx i,ours torch fp32")] == [
        "ours torch fp32",
        "ours onnx int8",
    ]
    assert len(select_specs(specs, "ours open")) == 3  # a prefix: openvino, int8, int8 calibrated
    assert {s.family for s in select_specs(specs, "ours")} == {"ours"}
    assert len(select_specs(specs, None)) == len(specs) == len(select_specs(specs, "all"))
    with pytest.raises(ValueError, match="contenders: 'nope' matches no contender"):
        select_specs(specs, "ours,nope")


def _tiny_workload(beir_dir: Path) -> Workload:
    return beir_workload(beir_dir, queries=2, top_k=4)


def test_missing_contender_is_skipped_with_a_reason(beir_dir: Path, tiny_ce_path: Path) -> None:
    ghost = ContenderSpec("ghost", "ghosts", "Ghost()", lambda ctx: None, needs=("no_such_module_xyz",))  # type: ignore[arg-type,return-value]
    broken = ContenderSpec("broken", "ghosts", "Broken()", lambda ctx: 1 / 0)  # type: ignore[arg-type,return-value]
    result = run_bench(
        [ghost, broken],
        _tiny_workload(beir_dir),
        BenchConfig(model=str(tiny_ce_path), repeats=1, memory=False, matmul_size=64, matmul_seconds=0.01),
        progress=False,
    )
    by_name = {c.name: c for c in result.contenders}
    assert (
        by_name["ghost"].status == "skipped"
        and "not installed: no_such_module_xyz" in by_name["ghost"].reason
    )
    assert by_name["broken"].status == "failed" and "ZeroDivisionError" in by_name["broken"].reason


def test_calibrated_int8_is_skipped_without_calibration_pairs(beir_dir: Path, tiny_ce_path: Path) -> None:
    (spec,) = select_specs(contender_specs(), "ours openvino int8 calibrated")
    assert "calibration_pairs=pairs" in spec.call and "quantization='int8'" in spec.call
    result = run_bench(
        [spec],
        _tiny_workload(beir_dir),
        BenchConfig(model=str(tiny_ce_path), repeats=1, memory=False, matmul_size=64, matmul_seconds=0.01),
        progress=False,
    )
    (res,) = result.contenders
    assert res.status == "skipped" and "no calibration pairs" in res.reason


# -- the harness end to end on a tiny model ----------------------------------------------------------------


def test_harness_runs_two_of_our_configurations(beir_dir: Path, tiny_ce_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    workload = _tiny_workload(beir_dir)
    assert workload.pairs == 8 and workload.depth == 4
    config = BenchConfig(
        model=str(tiny_ce_path),
        repeats=2,
        latency_sizes=(2, 4, 50),
        latency_queries=1,
        memory=False,
        matmul_size=64,
        matmul_seconds=0.01,
    )
    result = run_bench(select_specs(contender_specs(), PAIR), workload, config, progress=False)
    ours, bf16 = result.contenders
    assert (ours.name, bf16.name) == ("ours torch fp32", "ours torch bf16")
    assert result.baseline == "ours torch fp32"  # no competitor in the library: ours is the baseline
    for c in (ours, bf16):
        assert c.status == "ok", c.reason
        assert len(c.round_s) == 2 and c.pairs_per_s and c.pairs_per_s > 0
        assert set(c.latency_ms) == {"2", "4"}  # 50 > the 4 candidates there are: not measured
        assert c.latency_ms["4"]["n"] == 4 and c.latency_ms["2"]["n"] == 2
        assert c.ndcg10 is not None and 0 <= c.ndcg10 <= 1
        assert c.flops_share_fp32 and c.flops_share_fp32 > 0
    assert ours.speedup == pytest.approx(1.0) and ours.max_abs_diff == 0.0
    assert bf16.speedup is not None and bf16.speedup > 0
    assert bf16.max_abs_diff is not None  # vs the baseline's scores: bfloat16 rounding
    assert result.latency_sizes == [2, 4]
    assert result.bm25_ndcg10 is not None
    assert result.flops_per_pair > 0 and result.ceiling_pairs_per_s_fp32 > 0

    paths = write_outputs(result, tmp_path / "out")
    table = paths["markdown"].read_text()
    assert "| ours torch fp32 | torch-float32 |" in table and "× ours torch fp32" in table
    assert "p50 / p95 ms @2" in table
    if importlib.util.find_spec("matplotlib") is not None:  # benchmarks/requirements.txt, not CI's
        assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "png" not in paths
    again = BenchResult.from_dict(json.loads(paths["json"].read_text()))
    assert again.to_dict() == json.loads(paths["json"].read_text())
    assert pick_fastest(again, 1.0).contender.name in {"ours torch fp32", "ours torch bf16"}


def _result(rows: list[tuple[str, str, float | None, float]]) -> BenchResult:
    return BenchResult(
        started="now",
        machine={},
        model="m",
        workload={"name": "w", "queries": 1, "pairs": 1, "first_stage": ""},
        repeats=1,
        latency_sizes=[],
        latency_queries=1,
        shape={},
        mean_tokens=1.0,
        flops_per_pair=1.0,
        matmul_fp32=1.0,
        matmul_bf16=None,
        ceiling_pairs_per_s_fp32=1.0,
        ceiling_pairs_per_s_bf16=None,
        bm25_ndcg10=None,
        contenders=[
            ContenderResult(name, family, f"call({name})", ndcg10=ndcg, pairs_per_s=pps)
            for name, family, ndcg, pps in rows
        ],
    )


def test_pick_keeps_quality_within_the_tolerance() -> None:
    result = _result(
        [
            ("ours torch fp32", "ours", 0.700, 10.0),
            ("ours onnx int8", "ours", 0.696, 30.0),
            ("ours openvino int8", "ours", 0.690, 40.0),
            ("flashrank", "flashrank", 0.600, 99.0),  # not ours: never picked
        ]
    )
    pick = pick_fastest(result, 0.005)
    assert pick.contender.name == "ours onnx int8"
    assert "call(ours onnx int8)" in pick.text()
    assert pick_fastest(result, 0.02).contender.name == "ours openvino int8"
    assert pick_fastest(result, 0.0).contender.name == "ours torch fp32"
    with pytest.raises(ValueError, match="max_ndcg_drop"):
        pick_fastest(result, -0.1)
    with pytest.raises(ValueError, match=r"contenders: .*ours torch fp32"):
        pick_fastest(_result([("ours onnx", "ours", 0.7, 3.0)]))


# -- the command line ----------------------------------------------------------------------------------


def _timing_args(beir_dir: Path, model: Path) -> list[str]:
    args = [str(beir_dir), "--model", str(model), "--queries", "2", "--top-k", "4", "--repeats", "1"]
    return [*args, "--latency-sizes", "2,4", "--latency-queries", "1", "--no-memory", "--quiet"]


def test_cli_pick_writes_table_json_and_png_then_picks_from_json(
    beir_dir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    args = ["pick", *_timing_args(beir_dir, tiny_ce_path), "--configs", "ours torch fp32"]
    assert cli.main([*args, "--out", str(out), "--json", str(tmp_path / "copy.json")]) == 0
    printed = capsys.readouterr().out
    assert "| ours torch fp32 |" in printed and "written:" in printed
    assert "fastest within nDCG@10 -0.005 of ours torch fp32" in printed
    assert "CrossEncoderBackend(model, device='cpu'" in printed
    assert {p.name for p in out.iterdir()} >= {"results.md", "results.json"}
    data = json.loads((tmp_path / "copy.json").read_text())
    assert data["command"].startswith("rerank pick ") and "--configs" in data["command"]
    assert data["baseline"] == "ours torch fp32" and [c["family"] for c in data["contenders"]] == ["ours"]
    assert cli.main(["pick", "--from-json", str(tmp_path / "copy.json"), "--max-ndcg-drop", "0.01"]) == 0
    picked = capsys.readouterr().out
    assert "ours torch fp32" in picked and "x ours torch fp32" in picked


def test_cli_pick_without_out_writes_nothing_and_times_every_configuration_asked(
    beir_dir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["pick", *_timing_args(beir_dir, tiny_ce_path), "--configs", PAIR, "--no-chart"]) == 0
    printed = capsys.readouterr().out
    assert "| ours torch bf16 |" in printed and "written:" not in printed
    assert list(tmp_path.iterdir()) == [tmp_path / "mini"]


def test_pick_from_a_race_result_written_before_the_baseline_was_recorded(tmp_path: Path, capsys) -> None:
    old = _result([("ours torch fp32", "ours", 0.7, 10.0), ("st predict", "sentence-transformers", 0.7, 5.0)])
    data = old.to_dict()
    del data["baseline"]  # results.json of rerank bench before issue 15
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert cli.main(["pick", "--from-json", str(tmp_path / "old.json")]) == 0
    assert "x st predict" in capsys.readouterr().out


def test_cli_pick_calibrates_int8_on_the_train_split_only(
    beir_dir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    (beir_dir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td2\t1\n")
    out = tmp_path / "results"
    common = ["pick", str(beir_dir), "--model", str(tiny_ce_path), "--queries", "1", "--top-k", "4"]
    common += ["--repeats", "1", "--latency-sizes", "4", "--latency-queries", "1", "--no-memory", "--quiet"]
    calibrated = "ours torch fp32,ours openvino int8 calibrated"
    args = [*common, "--configs", calibrated, "--no-chart", "--out", str(out), "--cache-dir", str(tmp_path)]
    assert cli.main(args) == 0
    data = json.loads((out / "results.json").read_text())
    # the one train query's BM25 top-10 (all 6 documents of the toy corpus) calibrated it
    assert data["workload"]["calibration"] == "6 pairs: BM25 top-10 of the first 1 train queries"
    by_name = {c["name"]: c for c in data["contenders"]}
    ours = by_name["ours openvino int8 calibrated"]
    assert ours["status"] == "ok", ours["reason"]
    assert ours["info"]["calibration_pairs"] == 6 and "openvino-int8" in ours["info"]["runtime"]
    assert cli.main([*common, "--configs", calibrated, "--calibration-split", "test"]) == 2
    assert "--calibration-split: 'test' is the measured split" in capsys.readouterr().err
    args = [*common, "--configs", calibrated, "--calibration-split", "none", "--out", str(out)]
    assert cli.main(args) == 0
    data = json.loads((out / "results.json").read_text())
    skipped = {c["name"]: c for c in data["contenders"]}["ours openvino int8 calibrated"]
    assert skipped["status"] == "skipped" and "no calibration pairs" in skipped["reason"]


def test_cli_pick_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pick", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "ours torch fp32" in listed and "ours onnx int8" in listed and "st predict" not in listed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--queries", "0"], "--queries: expected a positive integer"),
        (["--latency-sizes", "10,x"], "--latency-sizes: expected comma-separated positive integers"),
        (["--max-ndcg-drop", "-1"], "--max-ndcg-drop: expected a number >= 0"),
        (["--configs", "st predict"], "--configs: 'st predict' matches no contender"),
        (["--model", "/no/such/model"], "--model: /no/such/model is not a local model folder"),
        (["--from-json", "/no/such.json"], "--from-json: cannot read"),
        (["--pick"], "unrecognized arguments: --pick"),
    ],
)
def test_cli_pick_bad_arguments(
    extra: list[str], message: str, beir_dir: Path, tiny_ce_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["pick", str(beir_dir), "--model", str(tiny_ce_path), *extra]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("rerank pick: error:") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nothing"], "DATA_DIR: nothing is not a folder"),
        ([], "give DATA_DIR"),
        (["."], "--model: give the local cross-encoder folder"),
    ],
)
def test_cli_pick_needs_data_and_a_model(args: list[str], message: str, tiny_ce_path: Path, capsys) -> None:
    model = ["--model", str(tiny_ce_path)] if args == ["nothing"] else []
    assert cli.main(["pick", *args, *model]) == 2
    assert message in capsys.readouterr().err


def test_rerank_bench_is_a_deprecated_alias(
    beir_dir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.deprecated_call(match="rerank pick"):
        assert cli.main(["bench", "--list"]) == 0
    captured = capsys.readouterr()
    assert "ours torch fp32" in captured.out and "st predict" not in captured.out
    assert "rerank bench: note: 'rerank bench' is deprecated" in captured.err
    assert "rerank pick" in captured.err and "python benchmarks/speed.py" in captured.err
    # the options it always took still work: --contenders, --pick, --out
    out = tmp_path / "results"
    args = ["bench", *_timing_args(beir_dir, tiny_ce_path), "--contenders", "ours torch fp32", "--pick"]
    with pytest.deprecated_call():
        assert cli.main([*args, "--out", str(out), "--no-chart"]) == 0
    assert "fastest within nDCG@10" in capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert data["command"].startswith("rerank bench ")
    with pytest.deprecated_call():
        assert cli.main(["bench", "--from-json", str(out / "results.json")]) == 2
    assert "rerank bench: error: --from-json: only with --pick" in capsys.readouterr().err


@pytest.mark.slow
def test_memory_probe_in_a_subprocess(beir_dir: Path, tiny_ce_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    names = "ours torch fp32"
    if importlib.util.find_spec("openvino") and importlib.util.find_spec("nncf"):
        names += ",ours openvino int8 calibrated"  # its calibration pairs travel to the subprocess
    config = BenchConfig(
        model=str(tiny_ce_path),
        repeats=1,
        memory=True,
        matmul_size=64,
        matmul_seconds=0.01,
        cache_dir=tmp_path,
        calibration_pairs=[("zebra stripes", "zebra stripes are black and white")] * 4,
    )
    result = run_bench(
        select_specs(contender_specs(), names), _tiny_workload(beir_dir), config, progress=False
    )
    for ours in result.contenders:
        assert ours.status == "ok", ours.reason
        assert ours.peak_rss_mb is not None and 0 < ours.peak_rss_mb < 2000, ours.info


def test_plugins_add_contenders_and_the_library_lists_only_ours(tmp_path: Path, monkeypatch) -> None:
    specs = contender_specs()
    assert {s.family for s in specs} == {"ours"}  # no competitor, no framework in the library
    assert not any(s.baseline for s in specs)
    plugin = tmp_path / "extra_contenders.py"
    plugin.write_text(
        "from rerank_core.eval.speed import ContenderSpec\n"
        "def contender_specs():\n"
        "    return [ContenderSpec('extra one', 'extra', 'Extra()', lambda ctx: None)]\n"
    )
    monkeypatch.setenv(PLUGINS_ENV, str(plugin))
    assert [s.name for s in contender_specs()][-1] == "extra one"
    monkeypatch.setenv(PLUGINS_ENV, str(tmp_path / "missing.py"))
    with pytest.raises(ValueError, match=PLUGINS_ENV):
        contender_specs()

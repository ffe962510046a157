"""``rerank bench``: the harness on a tiny model and a tiny BEIR folder, the ceiling arithmetic, the pick,
skipped contenders and bad arguments. No ../shared needed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from rerank_core import cli
from rerank_core.bench import (
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
from rerank_core.bench.ceiling import model_shape
from rerank_core.bench.contenders import ContenderSpec, our_specs
from rerank_core.bench.harness import Workload, _percentile

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
PAIR = "ours torch fp32,st predict"


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
    assert [s.name for s in select_specs(specs, "st")] == ["st predict", "st rank"]
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


def test_the_onnx_export_is_redone_when_the_weights_at_the_same_path_change(
    tiny_ce_path: Path, tmp_path: Path
) -> None:
    import shutil

    from rerank_core.bench.contenders import fresh_export

    model = tmp_path / "model"
    shutil.copytree(tiny_ce_path, model)
    folder = tmp_path / "export"
    first = fresh_export(str(model), folder).read_bytes()
    marker = folder / "marker"
    marker.write_text("kept")
    fresh_export(str(model), folder)
    assert marker.exists()  # same weights: the export is reused
    import torch
    from transformers import AutoModelForSequenceClassification

    net = AutoModelForSequenceClassification.from_pretrained(model)
    with torch.no_grad():
        net.classifier.bias.add_(1.0)
    net.save_pretrained(model)  # new weights, same path (what retraining a shipped model does)
    second = fresh_export(str(model), folder).read_bytes()
    assert not marker.exists() and second != first


# -- the harness end to end on a tiny model ----------------------------------------------------------------


def test_harness_runs_ours_and_sentence_transformers(
    beir_dir: Path, tiny_ce_path: Path, tmp_path: Path
) -> None:
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
    ours, st = result.contenders
    assert (ours.name, st.name) == ("ours torch fp32", "st predict")
    for c in (ours, st):
        assert c.status == "ok", c.reason
        assert len(c.round_s) == 2 and c.pairs_per_s and c.pairs_per_s > 0
        assert set(c.latency_ms) == {"2", "4"}  # 50 > the 4 candidates there are: not measured
        assert c.latency_ms["4"]["n"] == 4 and c.latency_ms["2"]["n"] == 2
        assert c.ndcg10 is not None and 0 <= c.ndcg10 <= 1
        assert c.flops_share_fp32 and c.flops_share_fp32 > 0
    assert st.speedup == pytest.approx(1.0)
    assert ours.speedup is not None and ours.speedup > 0
    assert ours.max_abs_diff is not None and ours.max_abs_diff < 1e-5  # same scores as predict
    assert result.latency_sizes == [2, 4]
    assert result.bm25_ndcg10 is not None
    assert result.flops_per_pair > 0 and result.ceiling_pairs_per_s_fp32 > 0

    paths = write_outputs(result, tmp_path / "out")
    table = paths["markdown"].read_text()
    assert "| ours torch fp32 |" in table and "| st predict | torch-float32 |" in table
    assert "p50 / p95 ms @2" in table
    if importlib.util.find_spec("matplotlib") is not None:  # benchmarks/requirements.txt, not CI's
        assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "png" not in paths
    again = BenchResult.from_dict(json.loads(paths["json"].read_text()))
    assert again.to_dict() == json.loads(paths["json"].read_text())
    assert pick_fastest(again).contender.name == "ours torch fp32"


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


# -- the command line --------------------------------------------------------------------------------------


def test_cli_bench_writes_table_json_and_png_then_picks(
    beir_dir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    args = [
        "bench",
        str(beir_dir),
        "--model",
        str(tiny_ce_path),
        "--queries",
        "2",
        "--top-k",
        "4",
        "--repeats",
        "1",
        "--latency-sizes",
        "2,4",
        "--latency-queries",
        "1",
        "--contenders",
        PAIR,
        "--no-memory",
        "--out",
        str(out),
        "--json",
        str(tmp_path / "copy.json"),
        "--quiet",
    ]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "| ours torch fp32 |" in printed and "written:" in printed
    assert {p.name for p in out.iterdir()} >= {"results.md", "results.json"}
    data = json.loads((tmp_path / "copy.json").read_text())
    assert data["command"].startswith("rerank bench ") and "--contenders" in data["command"]
    assert (
        cli.main(["bench", "--pick", "--from-json", str(tmp_path / "copy.json"), "--max-ndcg-drop", "0.01"])
        == 0
    )
    picked = capsys.readouterr().out
    assert "ours torch fp32" in picked and "CrossEncoderBackend(model, device='cpu'" in picked


def test_cli_bench_calibrates_int8_on_the_train_split_only(
    beir_dir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    (beir_dir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td2\t1\n")
    out = tmp_path / "results"
    common = ["bench", str(beir_dir), "--model", str(tiny_ce_path), "--queries", "1", "--top-k", "4"]
    common += ["--repeats", "1", "--latency-sizes", "4", "--latency-queries", "1", "--no-memory", "--quiet"]
    calibrated = "ours torch fp32,ours openvino int8 calibrated"
    args = [
        *common,
        "--contenders",
        calibrated,
        "--no-chart",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path),
    ]
    assert cli.main(args) == 0
    data = json.loads((out / "results.json").read_text())
    # the one train query's BM25 top-10 (all 6 documents of the toy corpus) calibrated it
    assert data["workload"]["calibration"] == "6 pairs: BM25 top-10 of the first 1 train queries"
    by_name = {c["name"]: c for c in data["contenders"]}
    ours = by_name["ours openvino int8 calibrated"]
    assert ours["status"] == "ok", ours["reason"]
    assert ours["info"]["calibration_pairs"] == 6 and "openvino-int8" in ours["info"]["runtime"]
    assert cli.main([*common, "--contenders", calibrated, "--calibration-split", "test"]) == 2
    assert "--calibration-split: 'test' is the measured split" in capsys.readouterr().err
    assert (
        cli.main([*common, "--contenders", calibrated, "--calibration-split", "none", "--out", str(out)]) == 0
    )
    data = json.loads((out / "results.json").read_text())
    skipped = {c["name"]: c for c in data["contenders"]}["ours openvino int8 calibrated"]
    assert skipped["status"] == "skipped" and "no calibration pairs" in skipped["reason"]


def test_cli_bench_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "ours torch fp32" in listed and "st predict" in listed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--queries", "0"], "--queries: expected a positive integer"),
        (["--latency-sizes", "10,x"], "--latency-sizes: expected comma-separated positive integers"),
        (["--max-ndcg-drop", "-1"], "--max-ndcg-drop: expected a number >= 0"),
        (["--contenders", "nope"], "--contenders: 'nope' matches no contender"),
        (["--model", "/no/such/model"], "--model: /no/such/model is not a local model folder"),
        (["--from-json", "x.json"], "--from-json: only with --pick"),
        (["--pick", "--from-json", "/no/such.json"], "--from-json: cannot read"),
    ],
)
def test_cli_bench_bad_arguments(
    extra: list[str], message: str, beir_dir: Path, tiny_ce_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", str(beir_dir), "--model", str(tiny_ce_path), *extra]
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_cli_bench_missing_data_dir(
    tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", str(tmp_path / "nothing"), "--model", str(tiny_ce_path)]) == 2
    assert "DATA_DIR:" in capsys.readouterr().err


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


def test_plugins_add_contenders_and_the_core_lists_no_framework(tmp_path: Path, monkeypatch) -> None:
    from rerank_core.bench.contenders import PLUGINS_ENV, contender_specs

    monkeypatch.delenv(PLUGINS_ENV, raising=False)
    names = [s.name for s in contender_specs()]
    assert not any(n.startswith(("langchain", "llamaindex")) for n in names)
    plugin = tmp_path / "extra_contenders.py"
    plugin.write_text(
        "from rerank_core.bench.contenders import ContenderSpec\n"
        "def contender_specs():\n"
        "    return [ContenderSpec('extra one', 'extra', 'Extra()', lambda ctx: None)]\n"
    )
    monkeypatch.setenv(PLUGINS_ENV, str(plugin))
    assert [s.name for s in contender_specs()][-1] == "extra one"
    monkeypatch.setenv(PLUGINS_ENV, str(tmp_path / "missing.py"))
    with pytest.raises(ValueError, match=PLUGINS_ENV):
        contender_specs()


def test_the_benchmark_script_loads_the_framework_contenders() -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "speed.py"
    out = subprocess.run([sys.executable, str(script), "--list"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "langchain CrossEncoderReranker" in out.stdout
    assert "llamaindex SentenceTransformerRerank" in out.stdout

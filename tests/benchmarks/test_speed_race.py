"""``python benchmarks/speed.py``: the speed race of our back end against the incumbents, on a tiny model and
a tiny BEIR folder. The harness itself is the library's (tests/core/test_pick.py); this covers what
benchmarks/ adds: the incumbents (``incumbents.py``, ``framework_contenders.py``), the baseline of the ratios
(``st predict``) and the script's options. Until the restructure of issue 15 these tests were part of
tests/core/test_bench.py (``rerank bench``). No ../shared needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import incumbents
import pytest
import speed

from rerank_core.eval.speed import (
    PLUGINS_ENV,
    BenchResult,
    contender_specs,
    select_specs,
)

PAIR = "ours torch fp32,st predict"


@pytest.fixture(autouse=True)
def _plugins_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """``speed.py`` names the incumbents in ``$RERANK_BENCH_CONTENDERS``; undone after each test."""
    monkeypatch.setenv(PLUGINS_ENV, "")


@pytest.fixture
def race_specs() -> list:
    """Every contender of the race: ours and the incumbents' plugins, as ``speed.py`` sets them up."""
    speed.use_incumbents()
    return contender_specs()


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    """Six documents that all mention "animal" (BM25 returns the full depth), two judged queries."""
    root = tmp_path / "mini"
    (root / "qrels").mkdir(parents=True)
    docs = ["zebra stripes", "lion mane", "penguins ice", "stripes tigers zebra", "golden dogs", "cold ice"]
    (root / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"d{i}", "text": f"{t}. an animal fact"}) + "\n" for i, t in enumerate(docs)
        )
    )
    queries = [("q1", "zebra stripes animal"), ("q2", "lion mane animal")]
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t2\nq1\td3\t1\nq2\td1\t1\n")
    return root


def test_select_the_incumbents_by_family(race_specs: list) -> None:
    assert [s.name for s in select_specs(race_specs, "st")] == ["st predict", "st rank"]
    assert [s.name for s in race_specs if s.baseline] == [incumbents.BASELINE]
    names = [s.name for s in race_specs]
    assert names.index("st predict") > names.index("ours torch fp32")  # ours first, then the incumbents
    assert names[-2:] == ["langchain CrossEncoderReranker", "llamaindex SentenceTransformerRerank"]


def test_the_onnx_export_is_redone_when_the_weights_at_the_same_path_change(
    tiny_ce_path: Path, tmp_path: Path
) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_ce_path, model)
    folder = tmp_path / "export"
    first = incumbents.fresh_export(str(model), folder).read_bytes()
    marker = folder / "marker"
    marker.write_text("kept")
    incumbents.fresh_export(str(model), folder)
    assert marker.exists()  # same weights: the export is reused
    import torch
    from transformers import AutoModelForSequenceClassification

    net = AutoModelForSequenceClassification.from_pretrained(model)
    with torch.no_grad():
        net.classifier.bias.add_(1.0)
    net.save_pretrained(model)  # new weights, same path (what retraining a shipped model does)
    second = incumbents.fresh_export(str(model), folder).read_bytes()
    assert not marker.exists() and second != first


def test_script_writes_table_json_then_picks(
    beir_dir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], race_specs: list
) -> None:
    out = tmp_path / "results"
    args = [str(beir_dir), "--model", str(tiny_ce_path), "--queries", "2", "--top-k", "4", "--repeats", "1"]
    args += ["--latency-sizes", "2,4", "--latency-queries", "1", "--contenders", PAIR, "--no-memory"]
    args += ["--out", str(out), "--json", str(tmp_path / "copy.json"), "--quiet", "--no-chart"]
    assert speed.main(args) == 0
    printed = capsys.readouterr().out
    assert "| ours torch fp32 |" in printed and "| st predict |" in printed and "written:" in printed
    assert {p.name for p in out.iterdir()} >= {"results.md", "results.json"}
    data = json.loads((tmp_path / "copy.json").read_text())
    assert data["command"].startswith("python benchmarks/speed.py ") and "--contenders" in data["command"]
    assert data["baseline"] == "st predict" and "× st predict" in printed
    ours, st = (BenchResult.from_dict(data).contenders[i] for i in (0, 1))
    assert (ours.name, st.name, ours.status, st.status) == ("ours torch fp32", "st predict", "ok", "ok")
    assert st.speedup == pytest.approx(1.0) and ours.speedup is not None and ours.speedup > 0
    assert ours.max_abs_diff is not None and ours.max_abs_diff < 1e-5  # the same scores as predict
    copy = str(tmp_path / "copy.json")
    assert speed.main(["--pick", "--from-json", copy, "--max-ndcg-drop", "0.01"]) == 0
    picked = capsys.readouterr().out
    assert "ours torch fp32" in picked and "x st predict" in picked
    assert "CrossEncoderBackend(model, device='cpu'" in picked


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--queries", "0"], "--queries: expected a positive integer"),
        (["--max-ndcg-drop", "-1"], "--max-ndcg-drop: expected a number >= 0"),
        (["--contenders", "nope"], "--contenders: 'nope' matches no contender"),
        (["--from-json", "x.json"], "--from-json: only with --pick"),
        (["--pick", "--from-json", "/no/such.json"], "--from-json: cannot read"),
    ],
)
def test_script_bad_arguments(
    extra: list[str], message: str, beir_dir: Path, tiny_ce_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert speed.main([str(beir_dir), "--model", str(tiny_ce_path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("speed.py: error:") and message in err


def test_the_benchmark_script_loads_every_incumbent() -> None:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "speed.py"
    out = subprocess.run([sys.executable, str(script), "--list"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ("ours torch fp32", "st predict", "flashrank (our ONNX export)", "rerankers cross-encoder"):
        assert name in out.stdout
    assert "langchain CrossEncoderReranker" in out.stdout
    assert "llamaindex SentenceTransformerRerank" in out.stdout

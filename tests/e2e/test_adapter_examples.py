"""Smoke tests: the LangChain and LlamaIndex examples run offline, with a given model and without one."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WORKSPACE

pytestmark = pytest.mark.slow

EXAMPLES = {
    "langchain": WORKSPACE / "examples" / "langchain_rerank_example.py",
    "llamaindex": WORKSPACE / "examples" / "llamaindex_rerank_example.py",
}


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES[name]), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def ranked_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("  ") and "[score" in line]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_reranks_with_a_given_model(name: str, tiny_ce_path: Path) -> None:
    proc = run_example(name, "--model", str(tiny_ce_path), "--top-n", "2")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"Reranking with {tiny_ce_path}" in out
    assert "Reranked " in out and len(ranked_lines(out)) == 2  # top_n reached the adapter
    scores = [float(line.split("[score ")[1].split("]")[0].split(",")[0]) for line in ranked_lines(out)]
    assert scores == sorted(scores, reverse=True)
    tools_line = next(line for line in out.splitlines() if line.startswith("Tools for"))
    assert len(tools_line.split(": ", 1)[1].split(", ")) == 2  # max_tools=2
    if name == "langchain":
        assert "Agent model was offered: " in out
        # the late-interaction part: the second question finds most passages' vectors already kept
        encoded = [int(n) for n in re.findall(r"\((\d+) passage\(s\) encoded", out)]
        assert len(encoded) == 2 and encoded[0] > encoded[1], encoded
    else:
        assert "Tools an agent would get (ObjectIndex + reranker): " in out


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_model_comes_from_the_flag_then_the_environment_then_the_reference(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location(f"{name}_example_under_test", EXAMPLES[name])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing runs nothing: main() is behind __name__ == "__main__"
    monkeypatch.setenv("RERANK_MODEL", "/from/env")
    assert module.resolve_model("/from/flag") == "/from/flag"
    assert module.resolve_model("none") is None
    assert module.resolve_model(None) == "/from/env"
    monkeypatch.delenv("RERANK_MODEL")
    monkeypatch.setattr(module, "REFERENCE_MODEL", Path("/no/such/reference-reranker"))
    assert module.resolve_model(None) is None
    monkeypatch.setattr(module, "REFERENCE_MODEL", EXAMPLES[name].parent)  # any existing folder
    assert module.resolve_model(None) == str(EXAMPLES[name].parent)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_without_a_model_says_so_and_shows_the_retriever_order(name: str) -> None:
    proc = run_example(name, "--model", "none")
    assert proc.returncode == 0, proc.stderr
    assert "No reranker model given" in proc.stdout
    assert "(not reranked)" in proc.stdout and "Reranked " not in proc.stdout

"""Smoke test: examples/profile_example.py reranks with the reference reranker and applies its profile."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import WORKSPACE

pytestmark = pytest.mark.slow

SCRIPT = WORKSPACE / "examples" / "profile_example.py"
REFERENCE = WORKSPACE / "models" / "reference-reranker"


def test_profile_example_shows_before_after_and_the_rules_that_fired() -> None:
    if not (REFERENCE / "model.safetensors").exists():
        pytest.skip(f"the reference reranker is not built: {REFERENCE}")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "profile 'support-kb', today = 2026-11-22" in out
    lines = out.splitlines()
    before = next(line for line in lines if line.startswith("Reranker alone:")).split(":", 1)[1].split(" > ")
    after = next(line for line in lines if line.startswith("With the profile:")).split(":", 1)[1].split(" > ")
    ids = {"forum-2023", "docs-keys", "blog-2022", "docs-v1", "runbook", "billing"}
    assert {a.strip() for a in before} == ids and {a.strip() for a in after} == ids
    header = next(i for i, line in enumerate(lines) if line.startswith("article"))
    rows = {line.split()[0]: line for line in lines[header + 1 :] if line.strip()}
    assert set(rows) == ids
    after_scores = [float(rows[a.strip()].split()[2]) for a in after]
    assert after_scores == sorted(after_scores, reverse=True)  # printed best first
    # The rules, by hand: docs-keys is 51 days old -> 1 - 0.5 * (1 - 0.5 ** (51 / 180)) = 0.911.
    assert "fresh x0.911, official x1.250" in rows["docs-keys"]
    assert "forum x0.800" in rows["forum-2023"] and "official" not in rows["forum-2023"]
    assert "authority x1.000 (default)" in rows["runbook"]
    assert "fresh x0.500" in rows["docs-v1"]  # ~5.8 years old: the decay's full weight, 0.5
    # Forum and blog fall behind the fresh official articles once the profile applies.
    order = [a.strip() for a in after]
    assert order.index("runbook") < order.index("forum-2023") and order.index("docs-keys") < order.index(
        "blog-2022"
    )

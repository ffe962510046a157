"""Every module of rerank_core imports on its own, first, in a fresh set of modules: no import cycle hides
behind the order in which the package happens to load them (the CLI package, the speed harness and
:mod:`rerank_core.eval.loading` of issue 15's restructure included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[2]

# In a subprocess: for each module, forget every rerank_core module, then import that one alone. A module
# whose optional third-party dependency is missing is reported apart (not a cycle).
_SCRIPT = r"""
import importlib, json, pkgutil, sys
import rerank_core
names = sorted(
    m.name for m in pkgutil.walk_packages(rerank_core.__path__, "rerank_core.")
    if not m.name.endswith("__main__")
)
failed, missing = {}, {}
for name in ["rerank_core", *names]:
    for loaded in [m for m in sys.modules if m == "rerank_core" or m.startswith("rerank_core.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("rerank_core"):
            failed[name] = repr(exc)
        else:
            missing[name] = exc.name
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"modules": len(names), "failed": failed, "missing": missing}))
"""


def test_every_module_imports_alone_without_a_cycle() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(WORKSPACE / "core" / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["modules"] > 40
    assert report["failed"] == {}


def test_the_library_does_not_ship_the_benchmark_tooling() -> None:
    """The speed race's incumbents and the load test live in benchmarks/, outside the wheel."""
    src = WORKSPACE / "core" / "src" / "rerank_core"
    assert not (src / "testing" / "load.py").exists()
    # rerank_core.bench is only the one-release deprecation shim over rerank_core.eval.speed
    assert sorted(p.name for p in (src / "bench").glob("*.py")) == ["__init__.py"]
    assert "Deprecated" in (src / "bench" / "__init__.py").read_text(encoding="utf-8")
    for path in src.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for competitor in ("import flashrank", "from flashrank", "from rerankers", "import rerankers"):
            assert competitor not in text, f"{path}: {competitor}"

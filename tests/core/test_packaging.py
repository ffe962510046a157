"""The workspace layout of DESIGN.md: three distributions, light core, isolated adapters, typed."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

WORKSPACE = Path(__file__).resolve().parents[2]
PACKAGES = {
    "rerank-core": ("rerank_core", WORKSPACE / "core" / "src" / "rerank_core"),
    "langchain-rerank": (
        "langchain_rerank",
        WORKSPACE / "packages" / "langchain_rerank" / "src" / "langchain_rerank",
    ),
    "llamaindex-rerank": (
        "llamaindex_rerank",
        WORKSPACE / "packages" / "llamaindex_rerank" / "src" / "llamaindex_rerank",
    ),
}


def _requirement_names(dist: str, *, include_extras: bool = False) -> set[str]:
    names = set()
    for req in metadata.requires(dist) or []:
        if "extra ==" in req and not include_extras:
            continue
        names.add(re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0].lower().replace("_", "-"))
    return names


@pytest.mark.parametrize("dist", sorted(PACKAGES))
def test_each_distribution_is_installed_typed_and_importable(dist: str) -> None:
    module, src = PACKAGES[dist]
    assert metadata.version(dist) == "0.1.0"
    assert (src / "py.typed").is_file()
    __import__(module)


def test_core_base_install_is_light() -> None:
    base = _requirement_names("rerank-core")
    assert base <= {"numpy", "tqdm"}
    extras = set(metadata.metadata("rerank-core").get_all("Provides-Extra") or [])
    assert {"local", "cohere", "onnx", "eval", "train", "all"} <= extras


def test_adapters_do_not_pull_each_other() -> None:
    lc = _requirement_names("langchain-rerank", include_extras=True)
    li = _requirement_names("llamaindex-rerank", include_extras=True)
    assert "langchain-core" in lc and not any(n.startswith("llama") for n in lc)
    assert "llama-index-core" in li and not any(n.startswith("langchain") for n in li)
    assert "rerank-core" in lc and "rerank-core" in li


def test_core_has_no_framework_imports() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+(langchain|llama_index)", re.M)
    offenders = [p for p in PACKAGES["rerank-core"][1].rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_importing_the_core_and_backends_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, rerank_core, rerank_core.backends; "
        "names = ('torch', 'sentence_transformers', 'transformers', 'bm25s', 'cohere'); "
        "heavy = [m for m in names if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (WORKSPACE / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (WORKSPACE / ".ci" / "run").read_text()

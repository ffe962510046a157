"""The READMEs stay entry points that work where they are shown (GitHub for the workspace, PyPI for the
distributions); the documentation itself lives in docs/ and is built strictly by `make docs`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

WORKSPACE = Path(__file__).resolve().parents[1]
# The README of each distribution is its PyPI page: relative links there point nowhere.
PACKAGE_READMES = [
    WORKSPACE / "core" / "README.md",
    WORKSPACE / "packages" / "langchain_rerank" / "README.md",
    WORKSPACE / "packages" / "llamaindex_rerank" / "README.md",
]
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)|\bhref=[\"']([^\"']+)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def _links(path: Path) -> list[str]:
    return [next(g for g in m.groups() if g) for m in LINK.finditer(path.read_text(encoding="utf-8"))]


def _is_absolute(target: str) -> bool:
    return target.startswith(("https://", "mailto:"))


def test_workspace_readme_is_short() -> None:
    lines = (WORKSPACE / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"


def test_workspace_readme_links_stay_inside_the_repository() -> None:
    for target in _links(WORKSPACE / "README.md"):
        if _is_absolute(target) or target.startswith("#"):
            continue
        assert "://" not in target, f"README.md: {target}: only https:// links may leave the repository"
        resolved = (WORKSPACE / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(WORKSPACE), f"README.md: {target} points outside the repository"
        assert resolved.exists(), f"README.md: {target} does not exist"


@pytest.mark.parametrize("readme", PACKAGE_READMES, ids=lambda p: str(p.relative_to(WORKSPACE)))
def test_package_readmes_link_by_absolute_url_or_not_at_all(readme: Path) -> None:
    relative = [t for t in _links(readme) if not _is_absolute(t) and not t.startswith("#")]
    assert relative == [], f"{readme.relative_to(WORKSPACE)}: relative links break on PyPI: {relative}"


def test_docs_pages_are_all_in_the_nav() -> None:
    config = (WORKSPACE / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(WORKSPACE / "docs").as_posix() for p in (WORKSPACE / "docs").rglob("*.md"))
    missing = [p for p in pages if f": {p}" not in config]
    assert missing == [], f"docs pages missing from the nav of mkdocs.yml: {missing}"

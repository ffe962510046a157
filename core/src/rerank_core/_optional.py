"""Lazy imports of optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from rerank_core.errors import MissingDependencyError


def require(module: str, *, extra: str, feature: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``rerank-core[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # Only translate a missing top-level package; a broken install should show its own error.
        missing = getattr(exc, "name", None)
        if missing is not None and missing.split(".")[0] != module.split(".")[0]:
            raise
        raise MissingDependencyError(package or module.split(".")[0], extra, feature) from exc

"""Old import paths that moved, kept working for one release with a :class:`DeprecationWarning`."""

from __future__ import annotations

import warnings

__all__ = ["warn_moved"]


def warn_moved(old: str, new: str) -> None:
    """Warn that module ``old`` is now ``new`` (called at the top of the shim module ``old``)."""
    warnings.warn(
        f"{old} moved to {new}; the old path will be removed in the next release",
        DeprecationWarning,
        stacklevel=3,
    )

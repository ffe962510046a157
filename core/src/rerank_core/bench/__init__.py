"""Deprecated: moved to :mod:`rerank_core.eval.speed` (``rerank pick``); the race against other libraries is
``python benchmarks/speed.py`` in the source repository. ``rerank_core.bench`` and its submodules
(``ceiling``, ``contenders``, ``harness``, ``memory``, ``report``) keep importing, from their new homes, for
one release."""

import importlib
import sys

from rerank_core._deprecated import warn_moved

warn_moved(__name__, "rerank_core.eval.speed")

from rerank_core.eval.speed import *  # noqa: E402, F403
from rerank_core.eval.speed import __all__  # noqa: E402, F401

for _name in ("ceiling", "contenders", "harness", "memory", "report"):
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"rerank_core.eval.speed.{_name}")
    setattr(sys.modules[__name__], _name, sys.modules[f"{__name__}.{_name}"])

"""Deprecated: moved to :mod:`rerank_core.judge` (``JudgeStage`` is also exported from ``rerank_core``)."""

from rerank_core._deprecated import warn_moved

warn_moved(__name__, "rerank_core.judge")

from rerank_core.judge import *  # noqa: E402, F403
from rerank_core.judge import __all__  # noqa: E402, F401

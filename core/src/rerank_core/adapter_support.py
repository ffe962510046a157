"""Deprecated: moved to :mod:`rerank_core.integrations`."""

from rerank_core._deprecated import warn_moved

warn_moved(__name__, "rerank_core.integrations")

from rerank_core.integrations import *  # noqa: E402, F403
from rerank_core.integrations import __all__  # noqa: E402, F401

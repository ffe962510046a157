"""Deprecated: moved to :mod:`rerank_core.fusion` (``fuse_retrieved``, ``RetrieverFusionConfig``, ...)."""

from rerank_core._deprecated import warn_moved

warn_moved(__name__, "rerank_core.fusion")

from rerank_core.fusion import *  # noqa: E402, F403 (also fuse_rankings and FUSION_METHODS, which it imported)
from rerank_core.fusion._retrievers import __all__  # noqa: E402, F401

"""Back ends: the only part of the pipeline that differs between a local model, an API and an LLM.

A back end scores one query's texts (:class:`Backend`: ``score(query, texts) -> GroupScores``); a model
that scores each (query, text) pair on its own subclasses :class:`PairwiseBackend` (``score_pairs``).

Importing this package is cheap; each back end imports its heavy dependencies when first used.
"""

from rerank_core.backends.base import Backend, GroupScores, PairLimit, PairwiseBackend, TextTokenizer
from rerank_core.backends.cascade import CascadeBackend
from rerank_core.backends.cohere import CohereBackend
from rerank_core.backends.cross_encoder import CrossEncoderBackend
from rerank_core.backends.late_interaction import LateInteractionBackend
from rerank_core.backends.llm_judge import LLMJudgeBackend
from rerank_core.backends.rerank_api import RerankAPIBackend

__all__ = [
    "Backend",
    "CascadeBackend",
    "CohereBackend",
    "CrossEncoderBackend",
    "GroupScores",
    "LLMJudgeBackend",
    "LateInteractionBackend",
    "PairLimit",
    "PairwiseBackend",
    "RerankAPIBackend",
    "TextTokenizer",
]

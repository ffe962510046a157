"""The framework-free LLM layer of the judge: the protocol, prompts and output parsers.

Adapters to concrete models are imported from their own modules (each imports its dependency lazily):
``rerank_core.llm.transformers_llm.TransformersLLM`` (local Hugging Face causal LM) and
``rerank_core.llm.openai_compat.OpenAICompatibleLLM`` (any OpenAI-compatible HTTP endpoint). The LangChain
and LlamaIndex adapters live in ``langchain_rerank`` and ``llamaindex_rerank``.
"""

from rerank_core.llm.base import LLM, ChatMessage, LLMBatchResponse, LLMResponse, TokenLogprob, check_messages
from rerank_core.llm.parsing import (
    Permutation,
    parse_grade,
    parse_grades,
    parse_permutation,
    parse_yes_no,
    yes_probability,
)
from rerank_core.llm.prompts import DEFAULT_PROMPTS, JudgePrompts, PromptTemplate, neutralize, render_passages

__all__ = [
    "DEFAULT_PROMPTS",
    "LLM",
    "ChatMessage",
    "JudgePrompts",
    "LLMBatchResponse",
    "LLMResponse",
    "Permutation",
    "PromptTemplate",
    "TokenLogprob",
    "check_messages",
    "neutralize",
    "parse_grade",
    "parse_grades",
    "parse_permutation",
    "parse_yes_no",
    "render_passages",
    "yes_probability",
]

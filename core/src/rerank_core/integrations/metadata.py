"""The metadata keys the framework adapters write on the objects they return, in one place.

The convention: a key is the name of the :class:`~rerank_core.types.RerankResult` field it copies
(``relevance_score``, ``rerank_score``, ``first_stage_score``, ``pre_profile_score``, ``profile_effects``,
``judge_score``); the fields whose bare name would be ambiguous among a document's own metadata take the
``rerank_`` prefix (``raw_score`` -> ``rerank_raw_score``, ``window`` -> ``rerank_window``, ``truncated`` ->
``rerank_truncated``, ``reranked=False`` -> ``rerank_failed``; the context-selection stage's place and
tokens -> ``rerank_context``). Both adapters export every constant below.

:func:`result_metadata` is what a result adds; a key is only written when it applies.
:func:`reranked_metadata` is what the adapters write: the object's metadata without any key of an earlier
rerank pass (:data:`METADATA_KEYS`), plus what this result adds, so nothing stale survives a second pass (no
``rerank_failed: True`` on a result that was reranked, no old ``rerank_window`` or ``first_stage_score``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rerank_core.fusion import FUSION_SOURCES_KEY
from rerank_core.profiles import json_value
from rerank_core.types import RerankResult

if TYPE_CHECKING:
    from rerank_core.context import ContextItem, ContextSelection

__all__ = [
    "BAND_KEY",
    "CONTEXT_KEY",
    "FIRST_STAGE_SCORE_KEY",
    "FUSION_SOURCES_KEY",
    "JUDGE_SCORE_KEY",
    "METADATA_KEYS",
    "NOT_RERANKED_KEY",
    "PRE_PROFILE_SCORE_KEY",
    "PROFILE_EFFECTS_KEY",
    "RAW_SCORE_KEY",
    "RELEVANCE_SCORE_KEY",
    "RERANK_SCORE_KEY",
    "TRUNCATED_KEY",
    "WINDOW_KEY",
    "context_metadata",
    "reranked_metadata",
    "result_metadata",
]

RELEVANCE_SCORE_KEY = "relevance_score"
"""The score ``score_threshold`` compares (calibrated, fused and profiled as configured). LangChain keeps it
in metadata; LlamaIndex in ``NodeWithScore.score``."""
RAW_SCORE_KEY = "rerank_raw_score"
"""The back end's raw score."""
WINDOW_KEY = "rerank_window"
"""The best token window of a long text: ``{"index", "start", "end", "count"}`` (character offsets)."""
TRUNCATED_KEY = "rerank_truncated"
"""``True`` when ``long_text="truncate"`` cut the text to fit the model."""
RERANK_SCORE_KEY = "rerank_score"
"""The reranker's own calibrated score, added when the reranker has a fusion (the relevance score is then the
fused score; without a fusion the two are equal and this key is not added)."""
FIRST_STAGE_SCORE_KEY = "first_stage_score"
"""The first-stage (retriever) score that was fused, added when the reranker has a fusion and the call had
first-stage scores (absent when ``rrf`` fell back on the input order)."""
NOT_RERANKED_KEY = "rerank_failed"
"""``True`` on objects returned in input order because the back end failed and the reranker fails open."""
PRE_PROFILE_SCORE_KEY = "pre_profile_score"
"""The score before the reranker's scoring profile, added when the reranker has a profile."""
PROFILE_EFFECTS_KEY = "profile_effects"
"""The profile rules that fired, a list of ``{"rule", "mode", "amount", "value", "defaulted"}`` dicts
(JSON-compatible; ``mode`` "multiply" means ``amount`` is a factor, "add" a term), added when the reranker has
a profile (an empty list when no rule fired)."""
JUDGE_SCORE_KEY = "judge_score"
"""The judge's raw score, added to the objects a judge stage (``Reranker(judge=JudgeStage(...))``)
re-ordered."""
BAND_KEY = "rerank_band"
"""The relevance band of the reranker's calibrated score (``Reranker(bands=...)``; the seed's three by
default), added when that score is a probability (a fitted calibration, a probability back end, the
sigmoid)."""

CONTEXT_KEY = "rerank_context"
"""With a context-selection stage (``context=ContextPolicy(...)``, or the ``ContextCompressor`` /
``ContextPostprocessor`` of the adapters): the item's place in the context (:func:`context_metadata`)."""

METADATA_KEYS = (
    RELEVANCE_SCORE_KEY,
    RAW_SCORE_KEY,
    WINDOW_KEY,
    TRUNCATED_KEY,
    RERANK_SCORE_KEY,
    FIRST_STAGE_SCORE_KEY,
    NOT_RERANKED_KEY,
    PRE_PROFILE_SCORE_KEY,
    PROFILE_EFFECTS_KEY,
    JUDGE_SCORE_KEY,
    BAND_KEY,
    CONTEXT_KEY,
)
"""Every key a rerank pass may write (``FUSION_SOURCES_KEY`` is the fusion retrievers')."""


def result_metadata(result: RerankResult, *, fused: bool = False) -> dict[str, Any]:
    """What a result adds to the metadata of the object it is mapped back to (see the module docstring).

    ``fused`` (pass ``response.fusion is not None``): the relevance score is a fusion of the reranker's and
    the first stage's, so both are added too.
    """
    added: dict[str, Any] = {RAW_SCORE_KEY: result.raw_score}
    if fused:
        added[RERANK_SCORE_KEY] = result.rerank_score
        if result.first_stage_score is not None:
            added[FIRST_STAGE_SCORE_KEY] = result.first_stage_score
    if result.window is not None:
        window = result.window
        added[WINDOW_KEY] = {
            "index": window.index,
            "start": window.start,
            "end": window.end,
            "count": window.count,
        }
    if result.truncated:
        added[TRUNCATED_KEY] = True
    if not result.reranked:
        added[NOT_RERANKED_KEY] = True
    if result.pre_profile_score is not None:
        added[PRE_PROFILE_SCORE_KEY] = result.pre_profile_score
        added[PROFILE_EFFECTS_KEY] = [
            {
                "rule": e.rule,
                "mode": e.mode,
                "amount": e.amount,
                "value": json_value(e.value),
                "defaulted": e.defaulted,
            }
            for e in result.profile_effects
        ]
    if result.judge_score is not None:
        added[JUDGE_SCORE_KEY] = result.judge_score
    if result.band is not None:
        added[BAND_KEY] = result.band
    return added


def reranked_metadata(
    metadata: Mapping[str, Any] | None,
    result: RerankResult,
    *,
    fused: bool = False,
    relevance_score: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A new dict: ``metadata`` without any key an earlier rerank pass wrote (:data:`METADATA_KEYS`), then
    ``extra`` (an adapter's own keys), ``relevance_score`` when ``relevance_score`` is true (LangChain keeps
    the score in metadata, LlamaIndex in ``NodeWithScore.score``) and :func:`result_metadata`. Every other
    key of ``metadata`` (the document's own, :data:`FUSION_SOURCES_KEY`) is kept; ``metadata`` itself is not
    changed."""
    out = {k: v for k, v in (metadata or {}).items() if k not in METADATA_KEYS}
    if extra:
        out.update(extra)
    if relevance_score:
        out[RELEVANCE_SCORE_KEY] = result.relevance_score
    out.update(result_metadata(result, fused=fused))
    return out


def context_metadata(item: ContextItem, selection: ContextSelection) -> dict[str, Any]:
    """What :data:`CONTEXT_KEY` holds for one context item (JSON-compatible): ``position`` (its place in
    the context, 0 first), ``rank`` (its best chunk's place in the ranking), ``index`` (that chunk's position
    in the input), ``tokens`` (the tokens of its text; merged: separators included), ``chunks`` /
    ``chunk_ids`` (the input positions / ids of the chunks it holds, in text order: more than one when
    ``group_mode="merge"`` merged them), ``group`` (the parent id, ``group_by``), and the selection's
    ``tokens_used``, ``token_budget`` and ``counter`` (how tokens were counted)."""
    return {
        "position": item.position,
        "rank": item.rank,
        "index": item.index,
        "tokens": item.tokens,
        "chunks": list(item.chunks),
        "chunk_ids": [json_value(i) for i in item.chunk_ids],
        "group": json_value(item.group),
        "tokens_used": selection.tokens_used,
        "token_budget": selection.token_budget,
        "counter": selection.counter,
    }

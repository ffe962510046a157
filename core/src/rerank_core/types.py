"""Value types that flow through the pipeline: candidates in, results out.

The core never copies or mutates what the caller passed: a result points back at its input by
``index``, and hands back the candidate's ``id`` and ``metadata`` objects as they were given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rerank_core.context import ContextSelection

__all__ = [
    "Candidate",
    "RerankResponse",
    "RerankResult",
    "RuleEffect",
    "ScoreKind",
    "Window",
]

ScoreKind = Literal["logit", "probability", "rank"]
"""What a back end's raw scores are.

- ``logit``: an unbounded real number, larger is more relevant (a cross-encoder without activation).
- ``probability``: already in [0, 1] (a cross-encoder with a sigmoid, Cohere's relevance score).
  Squashing it again (sigmoid, softmax) is refused.
- ``rank``: derived from a listwise order; only the order is meaningful.
"""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A text to rerank, with an optional caller id and metadata that come back untouched."""

    text: str
    id: Any = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """The token window of a long text that produced the candidate's score.

    ``start`` and ``end`` are character offsets into the candidate's text; ``count`` is how many
    windows the text was split into.
    """

    index: int
    start: int
    end: int
    count: int


@dataclass(frozen=True, slots=True)
class RuleEffect:
    """One scoring-profile rule that fired for a result (see :mod:`rerank_core.profiles`).

    - ``rule``: the rule's name; ``mode``: ``"multiply"`` (``amount`` is a factor) or ``"add"`` (a term).
    - ``value``: the metadata value the rule read (the rule's ``default`` when ``defaulted``).
    """

    rule: str
    mode: str
    amount: float
    value: Any = None
    defaulted: bool = False


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One kept candidate.

    - ``index``: its position in the caller's input list.
    - ``raw_score``: what the back end returned (aggregated over windows for long texts).
    - ``relevance_score``: the calibrated score that ``score_threshold`` is compared with.
    - ``window``: for a text split into windows, the one that scored best (``None`` otherwise).
    - ``truncated``: the text was cut to fit the model and the tail was not scored.
    - ``reranked``: ``False`` when the back end failed and the caller chose to get the input order back.
    - ``rerank_score``: the reranker's calibrated score (equal to ``relevance_score`` unless fused).
    - ``first_stage_score``: the retriever's score, when the caller passed ``first_stage_scores``.
    - ``pre_profile_score``: with a scoring profile, the score before it (the fused score, or the
      calibrated one without fusion); ``relevance_score`` is then the profiled score. ``None`` without one.
    - ``profile_effects``: the profile rules that fired for this candidate, in rule order.
    - ``judge_score``: with a judge stage (``Reranker(judge=JudgeStage(...))``), the judge's raw score for
      a candidate it re-ordered; ``None`` for the others. ``relevance_score`` stays the pre-judge score.
    - ``band``: the name of the relevance band ``rerank_score`` falls in (``Reranker(bands=...)``), when
      that score is a probability (a fitted calibration, a probability back end, the sigmoid); ``None``
      otherwise.
    """

    index: int
    raw_score: float
    relevance_score: float
    text: str = field(repr=False)
    id: Any = None
    metadata: Mapping[str, Any] | None = None
    window: Window | None = None
    truncated: bool = False
    reranked: bool = True
    rerank_score: float | None = None
    first_stage_score: float | None = None
    pre_profile_score: float | None = None
    profile_effects: tuple[RuleEffect, ...] = ()
    judge_score: float | None = None
    band: str | None = None


@dataclass(frozen=True, slots=True)
class RerankResponse:
    """The ranking for one query: kept results, best first, plus how they were produced.

    Iterating, ``len()`` and indexing go over ``results``. ``fusion`` names the fusion that produced
    ``relevance_score`` (``None``: the reranker's calibrated score alone). ``error`` is set (type and
    message) when the back end failed and the reranker's ``fail_open`` returned the input order instead;
    every result then has ``reranked=False``. ``profile`` and ``judge`` name the scoring profile and the
    judge stage, when the reranker has them. ``query_truncated``: the query was too long for the model's
    pair budget and was cut to fit (``LongTextPolicy.long_query``; the end is kept by default); ``query``
    is still the whole query and ``usage["query_truncated"]`` is 1. ``calibration`` names the fitted
    calibration that produced the scores (``None``: none). ``no_answer`` is set (why, with the best score
    and the floor) when ``no_answer_floor`` dropped every candidate: ``results`` is then empty.
    ``context`` is the context-selection stage's :class:`~rerank_core.context.ContextSelection` when the
    reranker has one (``Reranker(context=ContextPolicy(...))``): what reaches the LLM, in its final order,
    and every other result with the reason it was dropped; ``results`` stays the ranking (best first,
    after ``top_n``), so code that reads it is unchanged. ``None`` without the stage.
    """

    query: str
    results: tuple[RerankResult, ...]
    backend: str
    score_kind: ScoreKind
    normalization: str
    num_candidates: int
    usage: Mapping[str, int] = field(default_factory=dict)
    fusion: str | None = None
    error: str | None = None
    profile: str | None = None
    judge: str | None = None
    query_truncated: bool = False
    calibration: str | None = None
    no_answer: str | None = None
    context: ContextSelection | None = None

    def __iter__(self) -> Iterator[RerankResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> RerankResult:
        return self.results[i]

    @property
    def indices(self) -> list[int]:
        """Input positions of the kept candidates, best first."""
        return [r.index for r in self.results]

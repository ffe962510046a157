"""The Reranker's optional last stage: an expensive judge (an LLM) re-orders part of the final ranking.

Where it runs: after normalisation, fusion with the first-stage score and the scoring profile, on the
candidates that pass ``score_threshold`` (the threshold compares the pre-judge ``relevance_score``, so
which candidates pass does not depend on the judge), and before ``top_n`` is cut.

Which candidates the judge sees, per query (shared with :class:`~rerank_core.backends.CascadeBackend`):
the ``top_k`` best of the current order and/or those whose current ``relevance_score`` (the profiled,
fused score, as is: no extra calibration) lies in the closed ``band``. The judged candidates are
re-ordered by the judge's scores *within the slots they occupy*; every other candidate keeps its place.

What the results say: ``relevance_score`` is kept as it was before the judge (so within the judged slots
it may no longer decrease down the list: the order there is the judge's); ``judge_score`` is the judge's
raw score for a judged candidate, ``None`` for the others. ``response.usage`` adds the judge's usage for
that query (key-wise sum: LLM calls, tokens...) and ``judge_candidates`` (how many it saw).

When the judge fails (a :class:`~rerank_core.errors.BackendError` after its own retries) and
``fail_open=True`` (the default), the pre-judge order is kept, ``usage["judge_failed"] = 1`` and a
:class:`~rerank_core.errors.FailOpenWarning` is issued and logged; ``fail_open=False`` raises the error.
"""

from __future__ import annotations

from typing import Any

from rerank_core.backends.base import Backend
from rerank_core.errors import ConfigurationError
from rerank_core.slots import check_selection

__all__ = ["JudgeStage"]


class JudgeStage:
    """A judge back end and which candidates it re-orders; pass it as ``Reranker(..., judge=...)``.

    Args:
        judge: the back end (typically :class:`~rerank_core.backends.LLMJudgeBackend`); its
            ``score_groups`` is called once per ``rerank`` / ``rerank_many`` call, one group per query.
        top_k: judge the best ``top_k`` of the current (profiled) order, per query.
        band: ``(low, high)``: judge the candidates whose current ``relevance_score`` is in this interval.
        fail_open: on a judge failure keep the pre-judge order with a warning (default) or raise.
    """

    def __init__(
        self,
        judge: Backend,
        *,
        top_k: int | None = None,
        band: tuple[float, float] | None = None,
        fail_open: bool = True,
    ) -> None:
        if not isinstance(judge, Backend):
            raise ConfigurationError("judge", f"must be a rerank_core Backend, got {type(judge).__name__}")
        self.top_k, self.band = check_selection(top_k, band)
        if not isinstance(fail_open, bool):
            raise ConfigurationError("fail_open", f"must be True or False, got {fail_open!r}")
        self.judge = judge
        self.fail_open = fail_open

    def describe(self) -> str:
        return f"judge(top_k={self.top_k}|band={self.band})[{self.judge.fingerprint}]"

    def __repr__(self) -> str:
        return f"JudgeStage({self.judge!r}, top_k={self.top_k}, band={self.band}, fail_open={self.fail_open})"


def check_judge(judge: Any) -> JudgeStage | None:
    """``None``, a :class:`JudgeStage`, or an error naming ``judge``."""
    if judge is None or isinstance(judge, JudgeStage):
        return judge
    if isinstance(judge, Backend):
        raise ConfigurationError(
            "judge", "wrap the back end in a JudgeStage to say which candidates it sees (top_k and/or band)"
        )
    raise ConfigurationError("judge", f"must be a JudgeStage or None, got {type(judge).__name__}")

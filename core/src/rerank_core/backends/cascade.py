"""Deprecated: a cascade as a back end. Use the judge stage instead:
``Reranker(cheap, normalization="sigmoid", judge=JudgeStage(llm_judge, top_k=..., band=...))``
(:mod:`rerank_core.judge`), which keeps the cheap scores as ``relevance_score`` and adds ``judge_score``.

A cheap back end ranks every candidate, an expensive one (an LLM judge) re-ranks only the candidates worth
its cost; which ones, and how the verdict re-orders them within their slots, is the judge stage's own code
(:func:`~rerank_core.judge.select_for_judge`, :func:`~rerank_core.judge.reorder_within_slots`).

Which candidates the judge sees, per query:

- ``top_k``: the cheap stage's best ``top_k``;
- ``band=(low, high)``: those whose *calibrated* cheap score (``calibration``: ``"sigmoid"`` for logits by
  default, ``"none"`` for scores already in [0, 1]) lies in ``[low, high]``, the ones the cheap model is
  unsure about; above the band is confidently relevant, below confidently not;
- both: the union.

The result is one ranking: the cheap ranking, in which the judged candidates are re-ordered by the judge's
scores *within the positions they held* (so with ``top_k`` the top ``top_k`` slots are re-ordered, as in
RankGPT's top-k reranking; with a band, the band's slots). Scores are derived from that final rank,
``(n - rank) / n``, and ``score_kind == "rank"``: cheap and judge scores live on different scales and are
never mixed into one number. ``usage`` per query adds both stages' usage (LLM calls and tokens) and
``cascade_judged`` (candidates the judge saw).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from rerank_core.backends.base import Backend, GroupScores, PairLimit
from rerank_core.errors import ConfigurationError
from rerank_core.judge import check_selection, merge_usage, reorder_within_slots, select_for_judge
from rerank_core.normalization import normalize_scores
from rerank_core.types import ScoreKind

__all__ = ["CascadeBackend"]

_CALIBRATIONS = ("auto", "none", "sigmoid")


class CascadeBackend(Backend):
    """``cheap`` ranks everything; ``judge`` re-ranks the ``top_k`` and/or the uncertain ``band``.

    Args:
        cheap: the first back end (a cross-encoder); its windowing (``pair_limit``) is the cascade's.
        judge: the expensive back end (typically :class:`~rerank_core.backends.LLMJudgeBackend`).
        top_k: judge the cheap stage's best ``top_k`` per query.
        band: ``(low, high)``: judge candidates whose calibrated cheap score is in this closed interval.
        calibration: how the cheap score is calibrated for the band: ``"auto"`` (sigmoid for ``logit``
            scores, none otherwise), ``"sigmoid"`` or ``"none"``.
    """

    def __init__(
        self,
        cheap: Backend,
        judge: Backend,
        *,
        top_k: int | None = None,
        band: tuple[float, float] | None = None,
        calibration: str = "auto",
    ) -> None:
        warnings.warn(
            "CascadeBackend is deprecated and will be removed in the next release; use Reranker(cheap, "
            "normalization='sigmoid', judge=JudgeStage(judge, top_k=..., band=...)) instead",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__()
        for name, value in (("cheap", cheap), ("judge", judge)):
            if not isinstance(value, Backend):
                raise ConfigurationError(name, f"must be a rerank_core Backend, got {type(value).__name__}")
        top_k, band = check_selection(top_k, band)
        if calibration not in _CALIBRATIONS:
            raise ConfigurationError(
                "calibration", f"must be one of {', '.join(_CALIBRATIONS)}, got {calibration!r}"
            )
        self.cheap = cheap
        self.judge = judge
        self.top_k = top_k
        self.band = band
        self.calibration = calibration
        self.blocking = cheap.blocking and judge.blocking
        self.max_concurrency = max(cheap.max_concurrency, judge.max_concurrency)

    @property
    def fingerprint(self) -> str:
        return (
            f"cascade(top_k={self.top_k}|band={self.band}|calibration={self.calibration})"
            f"[{self.cheap.fingerprint}]->[{self.judge.fingerprint}]"
        )

    @property
    def score_kind(self) -> ScoreKind:
        return "rank"

    def peek_score_kind(self) -> ScoreKind | None:
        return "rank"

    def pair_limit(self) -> PairLimit | None:
        return self.cheap.pair_limit()

    # -- the cascade -----------------------------------------------------------------------------

    def _select(self, scores: Sequence[float]) -> list[int]:
        """Positions of the candidates the judge sees, in cheap-rank order (best first)."""
        raw = np.asarray(scores, dtype=np.float64)
        order = [int(i) for i in np.argsort(-raw, kind="stable")]
        calibrated = raw
        if self.band is not None:
            method = self.calibration
            if method == "auto":
                method = "sigmoid" if self.cheap.score_kind == "logit" else "none"
            calibrated = normalize_scores(raw, method)
        return select_for_judge(order, calibrated, self.top_k, self.band)

    @staticmethod
    def _final(
        cheap_scores: Sequence[float], judged: list[int], judge_scores: Sequence[float]
    ) -> list[float]:
        n = len(cheap_scores)
        order = [int(i) for i in np.argsort(-np.asarray(cheap_scores, dtype=np.float64), kind="stable")]
        order = reorder_within_slots(order, judged, judge_scores)
        scores = [0.0] * n
        for rank, i in enumerate(order):
            scores[i] = (n - rank) / n
        return scores

    def _plan(self, groups: Sequence[tuple[str, Sequence[str]]], cheap: list[GroupScores]):  # type: ignore[no-untyped-def]
        picks = [self._select(c.scores) for c in cheap]
        asks = [(q, [texts[i] for i in pick]) for (q, texts), pick in zip(groups, picks, strict=True)]
        return picks, asks

    def _combine(
        self, cheap: list[GroupScores], picks: list[list[int]], judged: list[GroupScores]
    ) -> list[GroupScores]:
        out = []
        for c, pick, j in zip(cheap, picks, judged, strict=True):
            scores = self._final(c.scores, pick, j.scores) if pick else self._final(c.scores, [], [])
            out.append(GroupScores(scores, merge_usage(c.usage, j.usage, {"cascade_judged": len(pick)})))
        return out

    def score_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        cheap = self.cheap.score_groups(groups)
        picks, asks = self._plan(groups, cheap)
        judged = self.judge.score_groups(asks) if any(picks) else [GroupScores([]) for _ in asks]
        return self._combine(cheap, picks, judged)

    async def ascore_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        cheap = await self.cheap.ascore_groups(groups)
        picks, asks = self._plan(groups, cheap)
        judged = await self.judge.ascore_groups(asks) if any(picks) else [GroupScores([]) for _ in asks]
        return self._combine(cheap, picks, judged)

    def score(self, query: str, texts: Sequence[str]) -> GroupScores:
        return self.score_groups([(query, texts)])[0]

    async def ascore(self, query: str, texts: Sequence[str]) -> GroupScores:
        return (await self.ascore_groups([(query, texts)]))[0]

    def close(self) -> None:
        super().close()
        self.cheap.close()
        self.judge.close()

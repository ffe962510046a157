"""Deprecated: a cascade as a back end. Use the judge stage instead:
``Reranker(cheap, normalization="sigmoid", judge=JudgeStage(llm_judge, top_k=..., band=...))``
(:mod:`rerank_core.judge`), which keeps the cheap scores as ``relevance_score`` and adds ``judge_score``.

A cheap back end ranks every candidate, an expensive one (an LLM judge) re-ranks only the candidates worth
its cost. This class is a thin wrapper: a :class:`~rerank_core.Reranker` over ``cheap`` with that judge
stage does the work, and its final order is reported as rank scores.

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
from typing import Any

from rerank_core.backends.base import Backend, GroupScores, PairLimit
from rerank_core.errors import ConfigurationError
from rerank_core.judge import check_selection
from rerank_core.types import ScoreKind

__all__ = ["CascadeBackend"]

_CALIBRATIONS = ("auto", "none", "sigmoid")
_PIPELINE_USAGE = frozenset({"candidates", "segments", "cache_hits", "pairs_scored", "truncated"})
"""The inner Reranker's own usage keys; the cascade reports only its two stages' usage."""


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
        self._inner: Any = None

    cacheable = False  # its scores are ranks within the candidate set: a cache would mix sets

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

    # -- the cascade: a Reranker with a judge stage, its final order turned into rank scores ----------

    def _reranker(self) -> Any:
        """The judge stage doing the work (built on first use: ``score_kind`` may load the cheap model)."""
        if self._inner is None:
            from rerank_core.judge import JudgeStage
            from rerank_core.reranker import Reranker

            method = self.calibration
            if method == "auto":
                method = "sigmoid" if self.band is not None and self.cheap.score_kind == "logit" else "none"
            stage = JudgeStage(self.judge, top_k=self.top_k, band=self.band, fail_open=False)
            self._inner = Reranker(self.cheap, normalization=method, judge=stage)
        return self._inner

    @staticmethod
    def _as_scores(responses: Sequence[Any]) -> list[GroupScores]:
        """Each final order as ``(n - rank) / n`` scores, with both stages' usage and ``cascade_judged``."""
        out = []
        for response in responses:
            n = response.num_candidates
            scores = [0.0] * n
            for rank, result in enumerate(response.results):
                scores[result.index] = (n - rank) / n
            usage = {k: v for k, v in response.usage.items() if k not in _PIPELINE_USAGE}
            usage["cascade_judged"] = usage.pop("judge_candidates", 0)
            out.append(GroupScores(scores, usage))
        return out

    def score_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        queries, texts = [q for q, _ in groups], [list(t) for _, t in groups]
        return self._as_scores(self._reranker().rerank_many(queries, texts))

    async def ascore_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        queries, texts = [q for q, _ in groups], [list(t) for _, t in groups]
        return self._as_scores(await self._reranker().arerank_many(queries, texts))

    def score(self, query: str, texts: Sequence[str]) -> GroupScores:
        return self.score_groups([(query, texts)])[0]

    async def ascore(self, query: str, texts: Sequence[str]) -> GroupScores:
        return (await self.ascore_groups([(query, texts)]))[0]

    def close(self) -> None:
        super().close()
        self.cheap.close()
        self.judge.close()

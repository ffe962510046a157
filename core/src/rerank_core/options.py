"""Every option of a :class:`~rerank_core.Reranker`, in one value, each checked once, here.

``Reranker(backend, top_n=5, fusion="zscore:0.6")`` and
``Reranker(backend, options=RerankerOptions(top_n=5, fusion="zscore:0.6"))`` are the same reranker; the
framework adapters take the same ``options=`` (a :class:`RerankerOptions` or a mapping of its fields), so
every option is reachable from every entry point the same way. A bad option is a
:class:`~rerank_core.errors.ConfigurationError` naming it, raised when the options are built.

The one check that needs the back end (a normalization that does not fit its ``score_kind``) is made by
the Reranker, which knows the back end.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rerank_core._validation import check_instruction, check_score_threshold, check_top_n, finite_float
from rerank_core.cache import ScoreCache
from rerank_core.calibration import DEFAULT_BANDS, Bands, Calibration, load_calibration
from rerank_core.chunking import LongTextPolicy
from rerank_core.coalescing import Coalescing
from rerank_core.context import ContextPolicy
from rerank_core.errors import ConfigurationError
from rerank_core.fusion import Fusion
from rerank_core.judge import JudgeStage, check_judge
from rerank_core.normalization import check_normalization
from rerank_core.profiles import ScoringProfile, check_profile

__all__ = ["LONG_TEXT_FIELDS", "RerankerOptions"]

LONG_TEXT_FIELDS = ("window_size", "window_stride", "aggregate")
"""Flat spellings of :class:`~rerank_core.chunking.LongTextPolicy` fields that :meth:`RerankerOptions.build`
folds into ``long_text`` (``Reranker(long_text="window", window_size=128)`` keeps working)."""


@dataclass(frozen=True)
class RerankerOptions:
    """The policy a Reranker applies to its back end's scores.

    Args:
        top_n: keep at most this many results (``None``: all that pass the threshold).
        score_threshold: drop results whose ``relevance_score`` is below this.
        normalization: ``"none"`` (relevance = raw score), ``"sigmoid"``, ``"temperature"`` (softmax over
            the query's candidates at ``temperature``) or ``"minmax"`` (per query, to [0, 1]). Squashing
            scores that are already probabilities is refused (by the Reranker, which knows the back end).
        temperature: the softmax temperature of ``normalization="temperature"``.
        long_text: a :class:`~rerank_core.chunking.LongTextPolicy`, or its mode ``"window"`` (split and
            aggregate), ``"truncate"`` (reported) or ``"error"``. The policy also bounds the work per
            candidate (``max_windows=32``, ``max_chars=100_000``; cuts reported as ``truncated``) and says
            what happens to a query too long for the model (``long_query="keep_end"``: cut, keeping its
            end, and reported in ``RerankResponse.query_truncated``).
        cache: ``False``/``None`` (default), ``True`` (100k entries), an int size, or a shared
            :class:`~rerank_core.cache.ScoreCache`; stored as a ``ScoreCache`` or ``None``.
        fusion: a :class:`~rerank_core.fusion.Fusion` or a ``"zscore:0.6"``-style string (see
            :func:`rerank_core.fusion.parse_spec`): fuse the raw score with the call's ``first_stage_scores``.
        fail_open: on a back-end failure return the input order flagged ``reranked=False`` (and warn)
            instead of raising.
        profile: a :class:`~rerank_core.profiles.ScoringProfile` or the mapping ``ScoringProfile.from_dict``
            reads: business rules over metadata, after the fusion.
        coalesce: ``True`` or a :class:`~rerank_core.coalescing.Coalescing`: concurrent async calls share
            model batches (in-process back ends only); stored as a ``Coalescing`` or ``None``.
        judge: a :class:`~rerank_core.judge.JudgeStage`: an expensive judge re-orders part of the ranking.
        instruction: what relevance means for this task ("Given a web search query, retrieve relevant
            passages that answer the query", a domain rule), for back ends that take one: a model
            recipe's template, a cross-encoder's prompt, the LLM judge's prompt, an API's query prefix
            (see docs/instructions.md). ``None`` (default): the back end's own default, if it has one. A
            back end that takes no instruction refuses one (``ConfigurationError`` naming it). Part of
            the cache key and of the response's ``backend`` fingerprint. Per call too:
            ``rerank(..., instruction=...)``.
        calibration: a fitted :class:`~rerank_core.calibration.Calibration`, the path of one saved as JSON
            (a file, or a folder holding ``calibration.json``), or ``"model"``: the ``calibration.json`` in
            the back end's model folder. The relevance score becomes P(relevant) (replacing
            ``normalization``, which must stay ``"none"``); it is applied to each candidate's raw score
            (after windows are aggregated). A fusion still reads the raw score it was tuned on; bands and
            the no-answer floor read the calibrated score. See docs/calibration.md.
        bands: names for ranges of the calibrated score on each result (``result.band``): ``True``
            (default: :data:`~rerank_core.calibration.DEFAULT_BANDS`, the seed's three, given only when the
            score is a probability: a calibration, a probability back end, or ``normalization="sigmoid"``),
            a :class:`~rerank_core.calibration.Bands` or a mapping of its fields, or ``False``/``None``.
        no_answer_floor: a probability in (0, 1): when even the best candidate's calibrated score is below
            it, the response has no results and says why in ``RerankResponse.no_answer`` (so an
            application can answer "I don't know"). Needs a probability score, as ``bands`` does.
        context: a :class:`~rerank_core.context.ContextPolicy` (or a mapping of its fields): the
            context-selection stage, run last (after threshold, no answer, judge and ``top_n``): a token
            budget, near-duplicate removal, MMR, grouping by parent, the final order.
            ``RerankResponse.results`` is unchanged; the selection is ``RerankResponse.context`` (and what
            the framework adapters return). ``None`` (default): no such stage. See
            docs/context-selection.md.
    """

    top_n: int | None = None
    score_threshold: float | None = None
    normalization: str = "none"
    temperature: float = 1.0
    long_text: LongTextPolicy | str = dataclasses.field(default_factory=LongTextPolicy)
    cache: ScoreCache | bool | int | None = None
    fusion: Fusion | str | None = None
    fail_open: bool = False
    profile: ScoringProfile | Mapping[str, Any] | None = None
    coalesce: Coalescing | bool | None = None
    judge: JudgeStage | None = None
    instruction: str | None = None
    calibration: Calibration | str | os.PathLike[str] | None = None
    bands: Bands | Mapping[str, Any] | bool | None = True
    no_answer_floor: float | None = None
    context: ContextPolicy | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("top_n", check_top_n(self.top_n, "top_n", ConfigurationError))
        put(
            "score_threshold",
            check_score_threshold(self.score_threshold, "score_threshold", ConfigurationError),
        )
        check_normalization(self.normalization, self.temperature)
        put("temperature", float(self.temperature))
        if isinstance(self.long_text, str):
            put("long_text", LongTextPolicy(self.long_text))  # type: ignore[arg-type]
        elif not isinstance(self.long_text, LongTextPolicy):
            raise ConfigurationError(
                "long_text", f"must be a LongTextPolicy or a mode string, got {type(self.long_text).__name__}"
            )
        put("cache", _cache(self.cache))
        put("fusion", Fusion.coerce(self.fusion))
        if not isinstance(self.fail_open, bool):
            raise ConfigurationError("fail_open", f"must be True or False, got {self.fail_open!r}")
        put("profile", check_profile(self.profile))
        put("coalesce", Coalescing.parse(self.coalesce))
        put("judge", check_judge(self.judge))
        check_instruction(self.instruction, "instruction", ConfigurationError)
        put("calibration", _calibration(self.calibration))
        if self.calibration is not None and self.normalization != "none":
            raise ConfigurationError(
                "calibration",
                f"a calibration replaces the normalization: leave normalization at 'none' (got "
                f"{self.normalization!r})",
            )
        put("bands", _bands(self.bands))
        floor = finite_float(self.no_answer_floor)
        if self.no_answer_floor is not None and (floor is None or not 0 < floor < 1):
            raise ConfigurationError(
                "no_answer_floor", f"must be a probability in (0, 1), got {self.no_answer_floor!r}"
            )
        put("no_answer_floor", floor)
        put("context", ContextPolicy.coerce(self.context))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order (read on every option attribute of a Reranker: computed
        once, below the class)."""
        return _NAMES

    @classmethod
    def build(
        cls, options: RerankerOptions | Mapping[str, Any] | None = None, **changes: Any
    ) -> RerankerOptions:
        """``options`` (a RerankerOptions, a mapping of its fields, or ``None`` for the defaults) with
        ``changes`` applied on top. The flat long-text names of :data:`LONG_TEXT_FIELDS` are folded into
        ``long_text``; an unknown name is a :class:`ConfigurationError` listing the known ones."""
        if options is None:
            base: dict[str, Any] = {}
        elif isinstance(options, RerankerOptions):
            base = {name: getattr(options, name) for name in cls.names()}
        elif isinstance(options, Mapping):
            base = dict(options)
        else:
            raise ConfigurationError(
                "options",
                f"must be a RerankerOptions or a mapping of its fields, got {type(options).__name__}",
            )
        base.update(changes)
        flat = {name: base.pop(name) for name in LONG_TEXT_FIELDS if name in base}
        unknown = sorted(set(base) - set(cls.names()))
        if unknown:
            raise ConfigurationError(
                "options", f"unknown Reranker option(s) {unknown}; known: {[*cls.names(), *LONG_TEXT_FIELDS]}"
            )
        if flat:
            policy = base.get("long_text", "window")
            mode = policy.mode if isinstance(policy, LongTextPolicy) else policy
            keep = dataclasses.asdict(policy) if isinstance(policy, LongTextPolicy) else {}
            base["long_text"] = LongTextPolicy(**{**keep, "mode": mode, **flat})
        return cls(**base)

    def replace(self, **changes: Any) -> RerankerOptions:
        """A copy with ``changes`` applied (checked like the constructor's arguments)."""
        return self.build(self, **changes)

    def describe(self) -> str:
        """The options that differ from the defaults, as ``name=value`` pairs."""
        default = RerankerOptions()
        parts = []
        for name in self.names():
            value = getattr(self, name)
            if value != getattr(default, name):
                shown = value.describe() if hasattr(value, "describe") else value
                parts.append(f"{name}={shown!r}")
        return ", ".join(parts)


_NAMES = tuple(f.name for f in dataclasses.fields(RerankerOptions))


def _cache(cache: object) -> ScoreCache | None:
    if isinstance(cache, ScoreCache):
        return cache
    if cache is True:
        return ScoreCache()
    if cache is False or cache is None:
        return None
    if isinstance(cache, int):
        return ScoreCache(cache)
    raise ConfigurationError("cache", f"must be a bool, a size or a ScoreCache, got {type(cache).__name__}")


def _calibration(calibration: object) -> Calibration | str | None:
    """A Calibration, ``"model"`` (resolved by the Reranker, which knows the back end) or ``None``."""
    if calibration is None or isinstance(calibration, Calibration) or calibration == "model":
        return calibration  # type: ignore[return-value]
    if isinstance(calibration, str | os.PathLike) and str(calibration).strip():
        return load_calibration(calibration)
    raise ConfigurationError(
        "calibration",
        f"must be a Calibration, the path of a saved one, or 'model', got {type(calibration).__name__}",
    )


def _bands(bands: object) -> Bands | None:
    if bands is True:
        return DEFAULT_BANDS
    if bands is False or bands is None:
        return None
    if isinstance(bands, Bands):
        return bands
    if isinstance(bands, Mapping):
        unknown = set(bands) - {"edges", "names"}
        if unknown:
            raise ConfigurationError(
                "bands", f"unknown key(s) {sorted(unknown)}; a mapping takes edges and names"
            )
        return Bands(**bands)
    raise ConfigurationError(
        "bands",
        f"must be True, False, None, a Bands or a mapping of edges and names, got {type(bands).__name__}",
    )

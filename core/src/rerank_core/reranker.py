"""The reranker: one back end plus the policy (:class:`~rerank_core.options.RerankerOptions`) that turns its
scores into a ranking. A facade over the pipeline in :mod:`rerank_core._pipeline`:

    validate -> score (windows, cache, back end) -> rank (aggregate windows, normalize, fuse with the first
    stage, scoring profile, threshold) -> judge (optional) -> respond (top_n)

``rerank`` handles one query, ``rerank_many`` many queries whose pairs are scored together in shared
batches, and ``arerank`` / ``arerank_many`` do the same without ever blocking the event loop on model work
(in-process back ends run on their bounded thread pool; remote ones use native async).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rerank_core import _pipeline
from rerank_core._pipeline import UNSET as _UNSET
from rerank_core._pipeline.ranking import check_scoring
from rerank_core.backends.base import Backend
from rerank_core.calibration import CALIBRATION_FILE, Calibration, load_calibration
from rerank_core.coalescing import Coalescer
from rerank_core.errors import ConfigurationError
from rerank_core.options import LONG_TEXT_FIELDS, RerankerOptions
from rerank_core.types import Candidate, RerankResponse

__all__ = ["Reranker"]


class Reranker:
    """Reranks candidates for a query with a back end and a scoring policy.

    ``Reranker(backend, top_n=5, fusion="zscore:0.6")`` or, the same,
    ``Reranker(backend, RerankerOptions(top_n=5, fusion="zscore:0.6"))``: the options (``top_n``,
    ``score_threshold``, ``normalization``, ``temperature``, ``long_text`` (a policy or its mode, with the
    flat ``window_size`` / ``window_stride`` / ``aggregate``), ``cache``, ``fusion``, ``fail_open``,
    ``profile``, ``coalesce``, ``judge``, ``instruction``) are documented once, on
    :class:`~rerank_core.options.RerankerOptions`; keywords given next to ``options`` override it. Each
    option is an attribute (``reranker.top_n``; setting one replaces it in ``reranker.options``, checked
    like the constructor's), and ``reranker.options`` holds them all.

    What each result carries (``relevance_score``, ``rerank_score``, ``first_stage_score``,
    ``pre_profile_score``, ``judge_score``, ...) is documented on :class:`~rerank_core.types.RerankResult`.
    """

    def __init__(
        self, backend: Backend, options: RerankerOptions | Mapping[str, Any] | None = None, **values: Any
    ) -> None:
        if not isinstance(backend, Backend):
            raise ConfigurationError(
                "backend", f"must be a rerank_core Backend, got {type(backend).__name__}"
            )
        unknown = sorted(set(values) - set(RerankerOptions.names()) - set(LONG_TEXT_FIELDS))
        if unknown:
            raise TypeError(
                f"Reranker() got unexpected keyword argument(s) {unknown}; its options are "
                f"{[*RerankerOptions.names(), *LONG_TEXT_FIELDS]}"
            )
        self.backend = backend
        self.options = RerankerOptions.build(options, **values)
        check_scoring(self.options, backend.peek_score_kind())
        coalesce = self.options.coalesce
        self.coalescer: Coalescer | None = (
            None
            if coalesce is None or not backend.blocking
            else Coalescer(functools.partial(_pipeline.score, self), backend.run_blocking, coalesce)  # type: ignore[arg-type]
        )

    def __getattr__(self, name: str) -> Any:
        # Each option as an attribute (reranker.top_n, reranker.fusion, ...), read from self.options.
        options = self.__dict__.get("options")
        if options is not None and name in RerankerOptions.names():
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *RerankerOptions.names()})

    def __setattr__(self, name: str, value: Any) -> None:
        # reranker.top_n = 3 replaces that option, checked like the constructor's.
        if name in RerankerOptions.names():
            name, value = "options", self.options.replace(**{name: value})
        if name == "options" and value.calibration == "model":  # constructor too
            value = value.replace(calibration=_stored_calibration(self.backend))
        if (
            name == "options" and "options" in self.__dict__
        ):  # a later change: checked as the constructor does
            check_scoring(value, self.backend.peek_score_kind())
        if name == "options" and value.instruction is not None and self.backend.instruction_support is None:
            self.backend.check_instruction(value.instruction)  # refused now, not at the first call
        if name == "options" and value.cache is not None and not self.backend.cacheable:  # constructor too
            raise ConfigurationError(
                "cache",
                f"{type(self.backend).__name__}'s scores depend on the whole candidate set (a "
                "listwise judge's rank scores); a score cache would mix candidate sets: leave cache unset",
            )
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        o = self.options
        return (
            f"Reranker(backend={self.backend!r}, top_n={o.top_n}, score_threshold={o.score_threshold}, "
            f"normalization={o.normalization!r}"
            + (f", fusion={o.fusion.describe()!r}" if o.fusion is not None else "")  # type: ignore[union-attr]
            + (f", profile={o.profile.describe()!r}" if o.profile is not None else "")  # type: ignore[union-attr]
            + (f", judge={o.judge.describe()!r}" if o.judge is not None else "")
            + (", fail_open=True)" if o.fail_open else ")")
        )

    def rerank(
        self,
        query: str,
        candidates: Iterable[str | Candidate | Any],
        *,
        top_n: int | None = _UNSET,
        score_threshold: float | None = _UNSET,
        first_stage_scores: Sequence[float] | None = None,
        instruction: str | None = _UNSET,
        embeddings: Sequence[Any] | None = None,
    ) -> RerankResponse:
        """Rank ``candidates`` (strings, :class:`Candidate` or mappings with ``text``) for ``query``.

        ``top_n`` / ``score_threshold`` / ``instruction`` override the reranker's for this call.
        ``first_stage_scores``: the retriever's score of each candidate (kept in the results, and fused
        with the reranker's when the reranker has a ``fusion``). ``embeddings``: one vector per candidate,
        for a ``context`` policy with ``similarity="embeddings"`` (instead of vectors in metadata).
        """
        job = _pipeline.make_job(
            self.options,
            query,
            candidates,
            top_n,
            score_threshold,
            first_stage_scores,
            instruction=instruction,
            embeddings=embeddings,
        )
        return _pipeline.run(self, [job])[0]

    def rerank_many(
        self,
        queries: Sequence[str],
        candidates: Sequence[Iterable[str | Candidate | Any]],
        *,
        top_n: int | None = _UNSET,
        score_threshold: float | None = _UNSET,
        first_stage_scores: Sequence[Sequence[float]] | None = None,
        instruction: str | None = _UNSET,
    ) -> list[RerankResponse]:
        """Rank one candidate list per query; every pair of every query goes through shared batches."""
        jobs = _pipeline.make_jobs(
            self.options, queries, candidates, top_n, score_threshold, first_stage_scores, instruction
        )
        return _pipeline.run(self, jobs)

    async def arerank(
        self,
        query: str,
        candidates: Iterable[str | Candidate | Any],
        *,
        top_n: int | None = _UNSET,
        score_threshold: float | None = _UNSET,
        first_stage_scores: Sequence[float] | None = None,
        instruction: str | None = _UNSET,
        embeddings: Sequence[Any] | None = None,
    ) -> RerankResponse:
        """Async :meth:`rerank`: model work runs off the event loop."""
        job = _pipeline.make_job(
            self.options,
            query,
            candidates,
            top_n,
            score_threshold,
            first_stage_scores,
            instruction=instruction,
            embeddings=embeddings,
        )
        return (await _pipeline.arun(self, [job]))[0]

    async def arerank_many(
        self,
        queries: Sequence[str],
        candidates: Sequence[Iterable[str | Candidate | Any]],
        *,
        top_n: int | None = _UNSET,
        score_threshold: float | None = _UNSET,
        first_stage_scores: Sequence[Sequence[float]] | None = None,
        instruction: str | None = _UNSET,
    ) -> list[RerankResponse]:
        """Async :meth:`rerank_many`."""
        jobs = _pipeline.make_jobs(
            self.options, queries, candidates, top_n, score_threshold, first_stage_scores, instruction
        )
        return await _pipeline.arun(self, jobs)


def _signature() -> inspect.Signature:
    """``Reranker(backend, options=None, *, <every RerankerOptions field>)`` for ``help()`` and IDEs that
    read signatures at run time; the fields are written once, on :class:`RerankerOptions`."""
    keep = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(name, keep) for name in ("self", "backend")]
    params.append(inspect.Parameter("options", keep, default=None))
    defaults = RerankerOptions()
    for f in dataclasses.fields(RerankerOptions):
        default = getattr(defaults, f.name)
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=f.type)
        )
    for name in LONG_TEXT_FIELDS:  # flat spellings of LongTextPolicy's fields
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None))
    return inspect.Signature(params)


Reranker.__init__.__signature__ = _signature()  # type: ignore[attr-defined]


def _stored_calibration(backend: Backend) -> Calibration:
    """The calibration saved in the back end's model folder (``Reranker(calibration="model")``)."""
    folder = backend.model_folder
    if folder is None:
        raise ConfigurationError(
            "calibration",
            f"'model' reads {CALIBRATION_FILE} in the back end's local model folder, and "
            f"{type(backend).__name__} has none here: pass the path of a saved calibration instead",
        )
    return load_calibration(folder)

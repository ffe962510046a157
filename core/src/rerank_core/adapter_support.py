"""What every framework adapter needs from the core, written once (no framework imports).

- :func:`resolve_reranker`: the adapters accept either a ready :class:`Reranker` (its policy is used as it
  is; ``top_n`` and ``score_threshold`` given next to it override it per call) or a :class:`Backend`, from
  which a Reranker is built with the options given. Nothing about ordering, thresholds or batching is
  decided here.
- :class:`AdapterConstructors`: the adapter classes' constructor on top of :func:`resolve_reranker`, and
  their ``from_backend`` / ``from_<back end>`` constructors, one per back end, written once for all.
- :func:`check_items`: a list of framework objects of one type, or an error naming the argument (or the
  position of a bad item).
- :func:`collect_first_stage_scores`: the first-stage (retriever) scores the framework objects carry, as the
  list ``Reranker.rerank(first_stage_scores=...)`` takes, or ``None``, or an error naming the object whose
  score a fusion needs and that lacks one. Where a framework keeps the score is the adapter's business;
  what a fusion needs is decided here, once.
- :func:`result_metadata`: the metadata keys a :class:`RerankResult` adds to the framework object it is
  mapped back to (``rerank_raw_score``; ``rerank_window`` / ``rerank_truncated`` for long texts; and, when
  the reranker fused its score with the first stage's, ``rerank_score`` and ``first_stage_score``; with a
  scoring profile, ``pre_profile_score`` and ``profile_effects``).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from rerank_core.backends.base import Backend
from rerank_core.backends.cohere import CohereBackend
from rerank_core.backends.cross_encoder import CrossEncoderBackend
from rerank_core.backends.llm_judge import LLMJudgeBackend
from rerank_core.backends.rerank_api import RerankAPIBackend
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.fusion import Fusion
from rerank_core.llm.base import LLM
from rerank_core.profiles import ScoringProfile, json_value
from rerank_core.reranker import _UNSET, Reranker
from rerank_core.types import Candidate, RerankResult
from rerank_core.validation import check_score_threshold, check_top_n

__all__ = [
    "FIRST_STAGE_SCORE_KEY",
    "JUDGE_SCORE_KEY",
    "NOT_RERANKED_KEY",
    "PRE_PROFILE_SCORE_KEY",
    "PROFILE_EFFECTS_KEY",
    "RAW_SCORE_KEY",
    "RERANKER_OPTIONS",
    "RERANK_SCORE_KEY",
    "TRUNCATED_KEY",
    "UNSET",
    "WINDOW_KEY",
    "AdapterConstructors",
    "candidates_with_metadata",
    "check_items",
    "collect_first_stage_scores",
    "resolve_reranker",
    "result_metadata",
]

T = TypeVar("T")
AdapterT = TypeVar("AdapterT", bound="AdapterConstructors")

UNSET: Any = _UNSET
"""Marks an option the caller did not give (``None`` is a real value for ``top_n``). The same marker
``Reranker.rerank`` reads as "the reranker's own setting"."""

RERANKER_OPTIONS = ("long_text", "window_size", "window_stride", "aggregate", "cache", "fail_open")
"""The Reranker options an adapter takes in ``reranker_kwargs`` (the others, ``top_n``, ``score_threshold``,
``normalization``, ``temperature`` and ``fusion``, are arguments of their own)."""

RAW_SCORE_KEY = "rerank_raw_score"
"""Metadata key of the back end's raw score."""
WINDOW_KEY = "rerank_window"
"""Metadata key of the best token window of a long text: ``{"index", "start", "end", "count"}``."""
TRUNCATED_KEY = "rerank_truncated"
"""Metadata key set to ``True`` when ``long_text="truncate"`` cut the text to fit the model."""
RERANK_SCORE_KEY = "rerank_score"
"""Metadata key of the reranker's own calibrated score, added when the reranker has a fusion (the
relevance score is then the fused score; without a fusion the two are equal and this key is not added)."""
FIRST_STAGE_SCORE_KEY = "first_stage_score"
"""Metadata key of the first-stage (retriever) score that was fused, added when the reranker has a fusion
and the call had first-stage scores (absent when ``rrf`` fell back on the input order)."""
NOT_RERANKED_KEY = "rerank_failed"
"""Metadata key set to ``True`` on objects returned in input order because the back end failed and the
reranker fails open (``fail_open=True``)."""
PRE_PROFILE_SCORE_KEY = "pre_profile_score"
"""Metadata key of the score before the reranker's scoring profile (the relevance score is then the profiled
score), added when the reranker has a profile."""
PROFILE_EFFECTS_KEY = "profile_effects"
"""Metadata key of the profile rules that fired, a list of ``{"rule", "mode", "amount", "value",
"defaulted"}`` dicts (JSON-compatible; ``mode`` "multiply" means ``amount`` is a factor, "add" a term), added
when the reranker has a profile (an empty list when no rule fired)."""
JUDGE_SCORE_KEY = "judge_score"
"""Metadata key of the judge's raw score, added to the objects a reranker's final judge stage
(``Reranker(judge=JudgeStage(...))``) re-ordered."""


def resolve_reranker(
    reranker: object,
    *,
    top_n: Any = UNSET,
    score_threshold: Any = UNSET,
    normalization: str | None = None,
    temperature: float | None = None,
    reranker_kwargs: Mapping[str, Any] | None = None,
    fusion: Fusion | str | None = None,
    profile: ScoringProfile | Mapping[str, Any] | None = None,
) -> tuple[Reranker, int | None, float | None]:
    """Return ``(reranker, top_n, score_threshold)``: the core reranker and the effective policy values.

    ``top_n`` / ``score_threshold`` left :data:`UNSET` mean the Reranker's own (``None`` for a back end).
    ``fusion`` (a :class:`Fusion` or ``"zscore:0.6"``-style string) is passed to the Reranker built over a
    back end; a ready Reranker carries its own; so is ``profile`` (a :class:`ScoringProfile` or the mapping
    ``ScoringProfile.from_dict`` reads). Errors are :class:`ConfigurationError` naming the argument
    (``reranker``, ``top_n``, ``score_threshold``, ``normalization``, ``temperature``, ``reranker_kwargs``,
    ``fusion`` / ``fusion.method`` / ``fusion.weight``).
    """
    try:
        if top_n is not UNSET:
            top_n = check_top_n(top_n)
        if score_threshold is not UNSET:
            score_threshold = check_score_threshold(score_threshold)
    except ValueError as exc:
        argument = getattr(exc, "argument", "top_n")
        raise ConfigurationError(argument, str(exc).split(": ", 1)[-1]) from None
    if reranker_kwargs is not None and not isinstance(reranker_kwargs, Mapping):
        raise ConfigurationError(
            "reranker_kwargs", f"must be a mapping of Reranker options, got {type(reranker_kwargs).__name__}"
        )
    extra = dict(reranker_kwargs or {})
    unknown = sorted(set(extra) - set(RERANKER_OPTIONS))
    if unknown:
        raise ConfigurationError(
            "reranker_kwargs",
            f"unknown Reranker option(s) {unknown}; allowed: {list(RERANKER_OPTIONS)} "
            "(top_n, score_threshold, normalization, temperature and fusion are arguments of their own)",
        )

    if isinstance(reranker, Reranker):
        given = {
            "normalization": normalization is not None,
            "temperature": temperature is not None,
            "reranker_kwargs": bool(extra),
            "fusion": fusion is not None,
            "profile": profile is not None,
        }
        clash = [name for name, is_given in given.items() if is_given]
        if clash:
            raise ConfigurationError(
                clash[0],
                "is fixed by the Reranker passed as `reranker`; set it on that Reranker, or pass a "
                "Backend and let the adapter build the Reranker",
            )
        return (
            reranker,
            reranker.top_n if top_n is UNSET else top_n,
            reranker.score_threshold if score_threshold is UNSET else score_threshold,
        )

    if isinstance(reranker, Backend):
        options: dict[str, Any] = dict(extra)
        if normalization is not None:
            options["normalization"] = normalization
        if temperature is not None:
            options["temperature"] = temperature
        if fusion is not None:
            options["fusion"] = fusion
        if profile is not None:
            options["profile"] = profile
        built = Reranker(
            reranker,
            top_n=None if top_n is UNSET else top_n,
            score_threshold=None if score_threshold is UNSET else score_threshold,
            **options,
        )
        return built, built.top_n, built.score_threshold

    raise ConfigurationError(
        "reranker",
        f"must be a rerank_core Reranker or Backend, got {type(reranker).__name__} "
        "(for a local cross-encoder use from_cross_encoder(model_id_or_path))",
    )


class AdapterConstructors:
    """Constructors shared by the framework adapter classes (``RerankCompressor``, ``RerankPostprocessor``).

    A mixin listed before the framework base class, which must be a model taking ``reranker``, ``top_n``
    and ``score_threshold`` fields as keywords (pydantic models, as LangChain's and LlamaIndex's are)::

        class RerankCompressor(AdapterConstructors, BaseDocumentCompressor): ...

    ``Adapter(reranker, *, top_n, score_threshold, normalization, temperature, reranker_kwargs, fusion,
    profile, **fields)``
    resolves the reranker with :func:`resolve_reranker` and passes the other fields on. ``from_backend``
    and the ``from_<back end>`` constructors build it over a back end; ``adapter_options`` names the
    class's own options that those constructors pass to the class rather than to the back end.
    """

    adapter_options: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        reranker: Reranker | Backend | None = None,
        *,
        top_n: int | None = UNSET,
        score_threshold: float | None = UNSET,
        normalization: str | None = None,
        temperature: float | None = None,
        reranker_kwargs: Mapping[str, Any] | None = None,
        fusion: Fusion | str | None = None,
        profile: ScoringProfile | Mapping[str, Any] | None = None,
        **data: Any,
    ) -> None:
        core, n, threshold = resolve_reranker(
            reranker,
            top_n=top_n,
            score_threshold=score_threshold,
            normalization=normalization,
            temperature=temperature,
            reranker_kwargs=reranker_kwargs,
            fusion=fusion,
            profile=profile,
        )
        super().__init__(reranker=core, top_n=n, score_threshold=threshold, **data)  # type: ignore[call-arg]

    # -- one constructor per back end, all through from_backend -------------------------------------------

    @classmethod
    def from_backend(cls: type[AdapterT], backend: Backend, **options: Any) -> AdapterT:
        """An adapter over ``backend``; ``options`` are those of the constructor."""
        return cls(backend, **options)

    @classmethod
    def _over_new_backend(
        cls: type[AdapterT], make: Callable[..., Backend], args: tuple[Any, ...], options: dict[str, Any]
    ) -> AdapterT:
        """``from_<back end>``'s shared body: the class's ``adapter_options`` and the Reranker options in
        ``options`` go to the adapter, everything else in ``options["backend_kwargs"]`` to ``make``."""
        backend_kwargs = dict(options.pop("backend_kwargs"))
        own = {name: backend_kwargs.pop(name) for name in cls.adapter_options if name in backend_kwargs}
        return cls.from_backend(make(*args, **backend_kwargs), **options, **own)

    @classmethod
    def from_cross_encoder(
        cls: type[AdapterT],
        model: str | os.PathLike[str] | Any,
        *,
        top_n: int | None = UNSET,
        score_threshold: float | None = UNSET,
        normalization: str | None = None,
        temperature: float | None = None,
        reranker_kwargs: Mapping[str, Any] | None = None,
        fusion: Fusion | str | None = None,
        profile: ScoringProfile | Mapping[str, Any] | None = None,
        **backend_kwargs: Any,
    ) -> AdapterT:
        """A local cross-encoder by Hugging Face id, local path or loaded ``CrossEncoder``.

        ``backend_kwargs`` go to :class:`rerank_core.backends.CrossEncoderBackend` (``device``,
        ``batch_size``, ``max_length``, ``activation``, ...), except the class's ``adapter_options``. Needs
        ``pip install 'rerank-core[local]'``; the model loads on first use.
        """
        options = dict(locals())
        del options["cls"], options["model"]
        return cls._over_new_backend(CrossEncoderBackend, (model,), options)

    @classmethod
    def from_cohere(
        cls: type[AdapterT],
        model: str = "rerank-v3.5",
        *,
        top_n: int | None = UNSET,
        score_threshold: float | None = UNSET,
        normalization: str | None = None,
        temperature: float | None = None,
        reranker_kwargs: Mapping[str, Any] | None = None,
        fusion: Fusion | str | None = None,
        profile: ScoringProfile | Mapping[str, Any] | None = None,
        **backend_kwargs: Any,
    ) -> AdapterT:
        """Cohere's Rerank API, or a Cohere-compatible server (``base_url=...``: vLLM, Infinity).

        ``backend_kwargs`` go to :class:`rerank_core.backends.CohereBackend` (``api_key``, ``base_url``,
        ``max_tokens_per_doc``, ``max_documents_per_request``, ``max_concurrency``, ``requests_per_minute``,
        ``timeout``, ``retry``). Pass ``reranker_kwargs={"fail_open": True}`` to get the input order back,
        flagged, when the API stays down. Needs ``pip install 'rerank-core[cohere]'``.
        """
        options = dict(locals())
        del options["cls"], options["model"]
        return cls._over_new_backend(CohereBackend, (model,), options)

    @classmethod
    def from_rerank_api(
        cls: type[AdapterT],
        base_url: str,
        *,
        protocol: str = "tei",
        top_n: int | None = UNSET,
        score_threshold: float | None = UNSET,
        normalization: str | None = None,
        temperature: float | None = None,
        reranker_kwargs: Mapping[str, Any] | None = None,
        fusion: Fusion | str | None = None,
        profile: ScoringProfile | Mapping[str, Any] | None = None,
        **backend_kwargs: Any,
    ) -> AdapterT:
        """A self-hosted rerank server: Hugging Face TEI (``protocol="tei"``) or the Jina / vLLM
        ``/v1/rerank`` shape (``protocol="jina"``). ``backend_kwargs`` go to
        :class:`rerank_core.backends.RerankAPIBackend`. Needs ``pip install 'rerank-core[cohere]'`` (httpx).
        """
        options = dict(locals())
        del options["cls"], options["base_url"]
        options["backend_kwargs"] = {"protocol": options.pop("protocol"), **options["backend_kwargs"]}
        return cls._over_new_backend(RerankAPIBackend, (base_url,), options)

    @classmethod
    def from_llm_judge(
        cls: type[AdapterT],
        llm: LLM | Any,
        *,
        top_n: int | None = UNSET,
        score_threshold: float | None = UNSET,
        normalization: str | None = None,
        temperature: float | None = None,
        reranker_kwargs: Mapping[str, Any] | None = None,
        fusion: Fusion | str | None = None,
        profile: ScoringProfile | Mapping[str, Any] | None = None,
        **backend_kwargs: Any,
    ) -> AdapterT:
        """An LLM judge (:class:`rerank_core.backends.LLMJudgeBackend`) over ``llm``: a core
        :class:`~rerank_core.llm.LLM`, or the framework's own chat model, which the adapter class wraps
        (:meth:`_as_core_llm`). ``backend_kwargs`` go to the judge (``mode``, ``scoring``, ``window_size``,
        ``step``, ``batch_size``, ``prompts``, ``max_concurrency``, ...), except the class's
        ``adapter_options``."""
        options = dict(locals())
        del options["cls"], options["llm"]
        return cls._over_new_backend(LLMJudgeBackend, (cls._as_core_llm(llm),), options)

    @classmethod
    def _as_core_llm(cls, llm: Any) -> LLM:
        """``llm`` as a core LLM; adapter classes override this to wrap their framework's chat models."""
        if isinstance(llm, LLM):
            return llm
        raise ConfigurationError("llm", f"must be a rerank_core.llm.LLM, got {type(llm).__name__}")


def check_items(items: object, item_type: type[T], argument: str, *, plural: str, singular: str) -> list[T]:
    """``items`` as a list of ``item_type`` objects, or an :class:`InvalidInputError` naming ``argument``
    (a string, a mapping or a single item is refused) or ``argument[i]`` for a bad item.

    ``plural`` / ``singular`` name the objects in messages: "must be a list of {plural}", "must be
    {singular}".
    """
    refused = InvalidInputError(argument, f"must be a list of {plural}, got {type(items).__name__}")
    if items is None or isinstance(items, str | bytes | Mapping | item_type):
        raise refused
    try:
        out = list(items)  # type: ignore[call-overload]
    except TypeError:
        raise refused from None
    for i, item in enumerate(out):
        if not isinstance(item, item_type):
            raise InvalidInputError(f"{argument}[{i}]", f"must be {singular}, got {type(item).__name__}")
    return out


def _is_score(value: object) -> bool:
    """A finite number (a bool is not a score)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def collect_first_stage_scores(
    values: Sequence[object],
    fusion: Fusion | None,
    argument: Callable[[int], str],
    *,
    hint: str = "",
) -> list[float] | None:
    """The first-stage scores to pass to ``Reranker.rerank(first_stage_scores=...)``, or ``None``.

    ``values[i]`` is what the framework keeps as item ``i``'s first-stage score (``None`` where it has
    none); ``argument(i)`` names where it lives (``"documents[3].metadata['score']"``, ``"nodes[3].score"``).

    - every value a finite number: the scores, as floats (with or without a fusion, so that the results
      keep ``first_stage_score``);
    - otherwise, without a fusion: ``None`` (nothing needs them; never an error);
    - no value at all and an ``rrf`` fusion: ``None`` (the core ranks the input order instead);
    - otherwise an :class:`InvalidInputError` naming ``argument(i)`` for the first missing or non-numeric
      value; ``hint`` ends its message (where the adapter reads the score, how to change it).
    """
    if all(_is_score(v) for v in values):
        return [float(v) for v in values] if values else None  # type: ignore[arg-type]
    if fusion is None:
        return None
    if fusion.method == "rrf" and all(v is None for v in values):
        return None
    i, bad = next((i, v) for i, v in enumerate(values) if not _is_score(v))
    need = f"fusion {fusion.describe()!r} needs a first-stage score for every candidate"
    if fusion.method == "rrf":
        need += " (it uses the input order only when no candidate has one)"
    else:
        need += " (only 'rrf' can use the input order instead)"
    what = "is missing" if bad is None else f"must be a finite number, got {bad!r}"
    raise InvalidInputError(argument(i), f"{what}: {need}" + (f"; {hint}" if hint else ""))


def candidates_with_metadata(
    texts: Sequence[str], metadata: Sequence[Mapping[str, Any] | None]
) -> list[Candidate]:
    """The texts to rank as core candidates carrying the framework objects' metadata (the same objects,
    not copies), so that a scoring profile's rules can read it."""
    return [Candidate(text, metadata=meta) for text, meta in zip(texts, metadata, strict=True)]


def result_metadata(result: RerankResult, *, fused: bool = False) -> dict[str, Any]:
    """What a result adds to the metadata of the object it is mapped back to: the raw score, and the
    window or truncation flag when the core split or cut a long text.

    ``fused`` (pass ``response.fusion is not None``): the relevance score is a fusion of the reranker's and
    the first stage's, so both are added too: ``rerank_score`` (the reranker's calibrated score) and, when
    the call had first-stage scores, ``first_stage_score``. A result returned unranked because the back end
    failed and the reranker fails open gets ``rerank_failed: True`` (its scores are NaN). With a scoring
    profile, ``pre_profile_score`` and ``profile_effects`` (see :data:`PROFILE_EFFECTS_KEY`) are added; a
    result the final judge stage re-ordered gets ``judge_score``.
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
    return added

"""Building the core :class:`~rerank_core.Reranker` an adapter wraps, and the adapters' shared constructors.

- :func:`resolve_reranker`: an adapter accepts either a ready :class:`Reranker` (its options are used as
  they are; ``top_n`` and ``score_threshold`` given next to it override them per call) or a
  :class:`Backend`, from which a Reranker is built with the options given: ``options=`` (a
  :class:`~rerank_core.options.RerankerOptions` or a mapping of its fields) and/or any of its fields as
  keywords (``fusion=``, ``judge=``, ``coalesce=``, ``long_text=``, ...). Every option is checked once, by
  ``RerankerOptions``.
- :class:`AdapterConstructors`: the adapter classes' constructor on top of :func:`resolve_reranker`, and
  their ``from_backend`` / ``from_<back end>`` constructors, one signature for all: keyword arguments that
  name a Reranker option (or ``options``, or one of the class's ``adapter_options``) go to the adapter,
  every other keyword to the back end.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from rerank_core._pipeline import UNSET
from rerank_core._validation import check_score_threshold, check_top_n
from rerank_core.backends.base import Backend
from rerank_core.backends.cohere import CohereBackend
from rerank_core.backends.cross_encoder import CrossEncoderBackend
from rerank_core.backends.llm_judge import LLMJudgeBackend
from rerank_core.backends.rerank_api import RerankAPIBackend
from rerank_core.errors import ConfigurationError
from rerank_core.integrations._serialize import copied_reranker, picklable_reranker, rebuild_adapter
from rerank_core.llm.base import LLM
from rerank_core.options import LONG_TEXT_FIELDS, RerankerOptions
from rerank_core.reranker import Reranker

__all__ = ["RERANKER_OPTIONS", "UNSET", "AdapterConstructors", "resolve_reranker"]

AdapterT = TypeVar("AdapterT", bound="AdapterConstructors")

RERANKER_OPTIONS = ("long_text", *LONG_TEXT_FIELDS, "cache", "fail_open")
"""The options the deprecated ``reranker_kwargs`` mapping accepts (``options=`` takes every option)."""

_PER_CALL = ("top_n", "score_threshold")


def resolve_reranker(
    reranker: object,
    *,
    options: RerankerOptions | Mapping[str, Any] | None = None,
    top_n: Any = UNSET,
    score_threshold: Any = UNSET,
    reranker_kwargs: Mapping[str, Any] | None = None,
    **values: Any,
) -> tuple[Reranker, int | None, float | None]:
    """Return ``(reranker, top_n, score_threshold)``: the core reranker and the adapter's per-call values.

    ``top_n`` / ``score_threshold`` left :data:`UNSET` mean the Reranker's own (``None`` for a back end).
    ``options`` and ``values`` (any :class:`RerankerOptions` field) build the Reranker over a back end; with
    a ready Reranker they are refused (it carries its own). ``reranker_kwargs`` is the deprecated spelling of
    ``options`` for the long-text, cache and fail-open options. Errors are :class:`ConfigurationError`
    naming the argument.
    """
    top_n = top_n if top_n is UNSET else check_top_n(top_n, "top_n", ConfigurationError)
    if score_threshold is not UNSET:
        score_threshold = check_score_threshold(score_threshold, "score_threshold", ConfigurationError)
    values = {k: v for k, v in values.items() if v is not None}  # None: "not given" (the options' default)
    if reranker_kwargs is not None:
        values.update(_legacy_reranker_kwargs(reranker_kwargs))
    if isinstance(reranker, Reranker):
        given = [name for name in values if name not in _PER_CALL] + (
            ["options"] if options is not None else []
        )
        if given:
            raise ConfigurationError(
                "reranker_kwargs" if reranker_kwargs and given[0] in reranker_kwargs else given[0],
                "is fixed by the Reranker passed as `reranker`; set it on that Reranker, or pass a "
                "Backend and let the adapter build the Reranker",
            )
        return (
            reranker,
            reranker.top_n if top_n is UNSET else top_n,
            reranker.score_threshold if score_threshold is UNSET else score_threshold,
        )
    if isinstance(reranker, Backend):
        per_call = {
            name: v for name, v in (("top_n", top_n), ("score_threshold", score_threshold)) if v is not UNSET
        }
        built = Reranker(reranker, RerankerOptions.build(options, **values, **per_call))
        return built, built.top_n, built.score_threshold
    if reranker is None:
        raise ConfigurationError(
            "reranker",
            "is required: a rerank_core Reranker or Backend (a dump such as model_dump() or to_dict() does "
            "not hold the Reranker object: pass it again, e.g. from_dict(data, reranker=...))",
        )
    raise ConfigurationError(
        "reranker",
        f"must be a rerank_core Reranker or Backend, got {type(reranker).__name__} "
        "(for a local cross-encoder use from_cross_encoder(model_id_or_path))",
    )


def _legacy_reranker_kwargs(reranker_kwargs: object) -> dict[str, Any]:
    warnings.warn(
        "reranker_kwargs is deprecated; pass options=RerankerOptions(...) (or a mapping of its fields), or "
        "the option itself as a keyword",
        DeprecationWarning,
        stacklevel=4,
    )
    if not isinstance(reranker_kwargs, Mapping):
        raise ConfigurationError(
            "reranker_kwargs", f"must be a mapping of Reranker options, got {type(reranker_kwargs).__name__}"
        )
    unknown = sorted(set(reranker_kwargs) - set(RERANKER_OPTIONS))
    if unknown:
        raise ConfigurationError(
            "reranker_kwargs",
            f"unknown Reranker option(s) {unknown}; allowed: {list(RERANKER_OPTIONS)} "
            "(the other options are arguments of their own, or go in options=)",
        )
    return dict(reranker_kwargs)


class AdapterConstructors:
    """Constructors shared by the framework adapter classes (``RerankCompressor``, ``RerankPostprocessor``).

    A mixin listed before the framework base class, which must be a model taking ``reranker``, ``top_n``
    and ``score_threshold`` fields as keywords (pydantic models, as LangChain's and LlamaIndex's are)::

        class RerankCompressor(AdapterConstructors, BaseDocumentCompressor): ...

    ``Adapter(reranker, *, options=None, top_n=..., score_threshold=..., <any RerankerOptions field>=...,
    **fields)`` resolves the reranker with :func:`resolve_reranker` and passes the other fields on to the
    model. ``from_backend`` and the ``from_<back end>`` constructors build it over a back end; every keyword
    they take that is not the adapter's (see :meth:`_split`) goes to the back end.
    """

    adapter_options: ClassVar[tuple[str, ...]] = ()
    """The class's own fields that ``from_<back end>`` constructors pass to the class, not the back end."""

    def __init__(
        self,
        reranker: Reranker | Backend | None = None,
        *,
        options: RerankerOptions | Mapping[str, Any] | None = None,
        top_n: int | None = UNSET,
        score_threshold: float | None = UNSET,
        reranker_kwargs: Mapping[str, Any] | None = None,
        **data: Any,
    ) -> None:
        values = {name: data.pop(name) for name in RerankerOptions.names() if name in data}
        core, n, threshold = resolve_reranker(
            reranker,
            options=options,
            top_n=top_n,
            score_threshold=score_threshold,
            reranker_kwargs=reranker_kwargs,
            **values,
        )
        super().__init__(reranker=core, top_n=n, score_threshold=threshold, **data)  # type: ignore[call-arg]

    # -- copies and pickles (rerank_core.integrations._serialize says why) ----------------------------------

    _unpickled_fields: ClassVar[tuple[str, ...]] = ("callback_manager",)
    """Fields a pickle leaves out (a framework's callback manager holds handlers, not settings)."""

    def _fields(self, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
        names = getattr(type(self), "model_fields", {})
        return {n: getattr(self, n) for n in names if n != "reranker" and n not in leave_out}

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        """A copy over a new Reranker with the same options and the same back end (a loaded model or a
        client is shared, never duplicated); every other field is deep-copied."""
        fields = {
            n: v if n in self._unpickled_fields else copy.deepcopy(v, memo) for n, v in self._fields().items()
        }
        return type(self)(copied_reranker(self.reranker), **fields)  # type: ignore[attr-defined]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the back end's class and constructor arguments (no secrets: the unpickled back end
        reads its key from the environment), the Reranker's options and the adapter's fields."""
        backend, options, cache_size = picklable_reranker(self.reranker)  # type: ignore[attr-defined]
        fields = self._fields(self._unpickled_fields)
        return (rebuild_adapter, (type(self), backend, options, cache_size, fields))

    @classmethod
    def _split(cls, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``kwargs`` as (the adapter's, the back end's): the adapter takes ``options``,
        ``reranker_kwargs``, every :class:`RerankerOptions` field and the class's ``adapter_options``."""
        mine = {"options", "reranker_kwargs", *RerankerOptions.names(), *cls.adapter_options}
        adapter = {k: v for k, v in kwargs.items() if k in mine}
        backend = {k: v for k, v in kwargs.items() if k not in mine}
        return adapter, backend

    @classmethod
    def _over(cls: type[AdapterT], make: Callable[..., Backend], *args: Any, **kwargs: Any) -> AdapterT:
        adapter, backend = cls._split(kwargs)
        return cls(make(*args, **backend), **adapter)

    @classmethod
    def from_backend(cls: type[AdapterT], backend: Backend, **options: Any) -> AdapterT:
        """An adapter over ``backend``; ``options`` are those of the constructor."""
        return cls(backend, **options)

    @classmethod
    def from_cross_encoder(
        cls: type[AdapterT], model: str | os.PathLike[str] | Any, **kwargs: Any
    ) -> AdapterT:
        """A local cross-encoder by Hugging Face id, local path or loaded ``CrossEncoder``.

        The back end's keywords (``device``, ``batch_size``, ``max_length``, ``runtime``, ...) go to
        :class:`rerank_core.backends.CrossEncoderBackend`. Needs ``pip install 'rerank-core[local]'``; the
        model loads on first use.
        """
        return cls._over(CrossEncoderBackend, model, **kwargs)

    @classmethod
    def from_cohere(cls: type[AdapterT], model: str = "rerank-v3.5", **kwargs: Any) -> AdapterT:
        """Cohere's Rerank API, or a Cohere-compatible ``/v2/rerank`` server (``base_url=...``: vLLM).

        The back end's keywords (``api_key``, ``base_url``, ``max_tokens_per_doc``, ``timeout``, ``retry``,
        ...) go to :class:`rerank_core.backends.CohereBackend`. Pass ``fail_open=True`` to get the input
        order back, flagged, when the API stays down. Needs ``pip install 'rerank-core[cohere]'``.
        """
        return cls._over(CohereBackend, model, **kwargs)

    @classmethod
    def from_rerank_api(
        cls: type[AdapterT], base_url: str, *, protocol: str = "tei", **kwargs: Any
    ) -> AdapterT:
        """A self-hosted rerank server: Hugging Face TEI (``protocol="tei"``) or the Jina / vLLM
        ``/v1/rerank`` shape (``protocol="jina"``; Infinity serves it at ``POST /rerank``: add
        ``path="/rerank"``); the back end's keywords go to
        :class:`rerank_core.backends.RerankAPIBackend`. Needs ``pip install 'rerank-core[cohere]'`` (httpx).
        """
        return cls._over(RerankAPIBackend, base_url, protocol=protocol, **kwargs)

    @classmethod
    def from_llm_judge(cls: type[AdapterT], llm: LLM | Any, **kwargs: Any) -> AdapterT:
        """An LLM judge (:class:`rerank_core.backends.LLMJudgeBackend`) over ``llm``: a core
        :class:`~rerank_core.llm.LLM`, or the framework's own chat model, which the adapter class wraps
        (:meth:`_as_core_llm`). The judge's keywords (``mode``, ``scoring``, ``window_size``, ``step``,
        ``batch_size``, ``prompts``, ...) go to the back end."""
        return cls._over(LLMJudgeBackend, cls._as_core_llm(llm), **kwargs)

    @classmethod
    def _as_core_llm(cls, llm: Any) -> LLM:
        """``llm`` as a core LLM; adapter classes override this to wrap their framework's chat models."""
        if isinstance(llm, LLM):
            return llm
        raise ConfigurationError("llm", f"must be a rerank_core.llm.LLM, got {type(llm).__name__}")

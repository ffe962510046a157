"""Copies, pickles and dumps of the framework adapters, written once.

The core :class:`~rerank_core.Reranker` an adapter wraps holds resources (a loaded model, clients, a thread
pool, locks) and, for a remote back end, a secret. So:

- a **deep copy** of an adapter gets a new Reranker with the same options over the *same* back end (a model
  or a client is a resource, not a value: it is shared, never duplicated or reloaded);
- a **pickle** holds the back end's class and constructor arguments without secrets
  (:meth:`Backend.__reduce__ <rerank_core.backends.Backend.__reduce__>`) and the options (a
  :class:`~rerank_core.cache.ScoreCache` as its size: the unpickled adapter starts with an empty cache);
  unpickling builds a fresh back end, which reads its API key from the environment as its constructor does;
- a **dump** (LangChain ``model_dump``, LlamaIndex ``to_dict`` / ``to_json``) never holds the Reranker
  object; LlamaIndex's holds :func:`reranker_config`, a JSON description (back end class and arguments, no
  secret; the options) that :func:`reranker_from_config` rebuilds, or ``None`` when the Reranker cannot be
  described as JSON (a back end built over objects, a judge stage): ``from_dict`` then asks for it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pickle
from collections.abc import Mapping
from typing import Any

from rerank_core.backends.base import Backend
from rerank_core.cache import ScoreCache
from rerank_core.calibration import Bands, Calibration
from rerank_core.chunking import LongTextPolicy
from rerank_core.coalescing import Coalescing
from rerank_core.context import ContextPolicy
from rerank_core.errors import ConfigurationError
from rerank_core.fusion import Fusion
from rerank_core.options import RerankerOptions
from rerank_core.profiles import ScoringProfile
from rerank_core.reranker import Reranker

__all__ = [
    "copied_reranker",
    "options_from_config",
    "picklable_reranker",
    "rebuild_adapter",
    "reranker_config",
    "reranker_from_config",
]

CONFIG_VERSION = 1


def copied_reranker(reranker: Reranker) -> Reranker:
    """A new Reranker with ``reranker``'s options over the same back end (what an adapter's deep copy
    holds: changing one's options leaves the other's alone; the model or client is shared)."""
    return Reranker(reranker.backend, reranker.options)


def picklable_reranker(reranker: Reranker) -> tuple[Backend, RerankerOptions, int | None]:
    """What an adapter's pickle holds of its Reranker: the back end (pickled without secrets), the options
    without their score cache, and that cache's size (``None``: no cache)."""
    options = reranker.options
    cache = options.cache
    size = cache.maxsize if isinstance(cache, ScoreCache) else None
    if size is not None:
        options = options.replace(cache=None)
    try:  # refuse here, by name, rather than deep inside the pickler
        pickle.dumps((reranker.backend, options))
    except Exception as exc:
        raise TypeError(
            f"cannot pickle this adapter: its back end {reranker.backend.fingerprint!r} or options hold "
            f"objects that cannot be pickled ({type(exc).__name__}: {exc}); build the adapter in each "
            "process instead (e.g. from_cross_encoder(model_id) with the model's id or path)"
        ) from exc
    return reranker.backend, options, size


def rebuild_adapter(
    cls: type, backend: Backend, options: RerankerOptions, cache_size: int | None, fields: Mapping[str, Any]
) -> Any:
    """The adapter an adapter's pickle rebuilds (``cls(Reranker(backend, options), **fields)``, with a new,
    empty score cache of ``cache_size`` entries)."""
    if cache_size is not None:
        options = options.replace(cache=cache_size)
    return cls(Reranker(backend, options), **fields)


# -- JSON ---------------------------------------------------------------------------------------------


def _json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _option(name: str, value: Any) -> Any:
    """An option as JSON, or raise ``LookupError`` when it cannot be."""
    if isinstance(value, ScoreCache):
        return value.maxsize
    if isinstance(value, LongTextPolicy | Fusion | Coalescing):
        return dataclasses.asdict(value)
    if isinstance(value, Bands):
        return {"edges": list(value.edges), "names": list(value.names)}
    if isinstance(value, Calibration):
        return value.to_dict()
    if isinstance(value, ContextPolicy):
        return value.to_dict()  # LookupError with a tokenizer object or callable: not JSON
    if isinstance(value, ScoringProfile):
        data = value.to_dict()
        if ScoringProfile.from_dict(data).to_dict() != data:
            raise LookupError(name)
        return data
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise LookupError(name)  # a judge stage (a back end of its own), or anything else


def reranker_config(reranker: Reranker) -> dict[str, Any] | None:
    """``reranker`` as JSON-compatible data, no secret in it: ``{"version", "backend": {"class", "args",
    "kwargs"}, "options": {...}}``; ``None`` when it cannot be written so (a back end built over objects,
    such as a loaded model or an LLM, or a judge stage)."""
    backend = reranker.backend
    arguments = backend.init_arguments(secrets=False)
    if arguments is None:
        return None
    args, kwargs = arguments
    described = {"class": f"{type(backend).__module__}:{type(backend).__qualname__}", "args": list(args)}
    described["kwargs"] = kwargs
    if not _json(described):
        return None
    try:
        options = {
            name: _option(name, getattr(reranker.options, name))
            for name in RerankerOptions.names()
            if getattr(reranker.options, name) != getattr(_DEFAULTS, name)
        }
    except LookupError:
        return None
    config = {"version": CONFIG_VERSION, "backend": described, "options": options}
    return config if _json(config) else None


_DEFAULTS = RerankerOptions()
_DECODE: dict[str, Any] = {
    "long_text": lambda data: LongTextPolicy(**data),
    "fusion": lambda data: Fusion(**data),
    "coalesce": lambda data: Coalescing(**data),
    "calibration": Calibration.from_dict,
    "context": ContextPolicy.from_dict,
}


def reranker_from_config(config: object, argument: str = "reranker") -> Reranker:
    """The Reranker :func:`reranker_config` described (a :class:`ConfigurationError` naming ``argument``
    when ``config`` is not such a description). Only a :class:`Backend` subclass is ever built; its API key
    comes from the environment, as its constructor reads it."""
    if not isinstance(config, Mapping) or config.get("version") != CONFIG_VERSION:
        raise ConfigurationError(
            argument, f"must be a Reranker or a reranker_config() mapping, got {config!r}"
        )
    spec = config.get("backend")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("class"), str) or ":" not in spec["class"]:
        raise ConfigurationError(f"{argument}['backend']", f"must name a back end class, got {spec!r}")
    module, _, name = spec["class"].partition(":")
    try:
        cls: Any = importlib.import_module(module)
        for part in name.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError) as exc:
        where = f"{argument}['backend']"
        raise ConfigurationError(where, f"cannot import {spec['class']!r}: {exc}") from None
    if not isinstance(cls, type) or not issubclass(cls, Backend):
        raise ConfigurationError(f"{argument}['backend']", f"{spec['class']!r} is not a rerank_core Backend")
    args, kwargs = spec.get("args", []), spec.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, Mapping):
        raise ConfigurationError(f"{argument}['backend']", "needs 'args' as a list and 'kwargs' as a mapping")
    try:
        backend = cls(*args, **kwargs)
    except TypeError as exc:  # arguments its constructor does not take
        raise ConfigurationError(f"{argument}['backend']", f"cannot build {spec['class']!r}: {exc}") from None
    return Reranker(backend, options_from_config(config.get("options") or {}, f"{argument}['options']"))


def options_from_config(options: object, argument: str = "options") -> RerankerOptions:
    """:class:`RerankerOptions` from JSON-compatible data (what :func:`reranker_config` writes, or a config
    file's ``options`` table): nested mappings become their objects (a long-text policy, a fusion, a
    coalescing, a calibration, a context policy); an unknown name is a :class:`ConfigurationError` naming
    it."""
    if not isinstance(options, Mapping):
        raise ConfigurationError(argument, f"must be a mapping of option names to values, got {options!r}")
    unknown = sorted(set(options) - set(RerankerOptions.names()))
    if unknown:
        known = ", ".join(RerankerOptions.names())
        raise ConfigurationError(f"{argument}[{unknown[0]!r}]", f"is not an option; the options are {known}")
    values = dict(options)
    for key, decode in _DECODE.items():
        if isinstance(values.get(key), Mapping):
            try:
                values[key] = decode(values[key])
            except TypeError as exc:  # a field the object does not have
                raise ConfigurationError(f"{argument}[{key!r}]", str(exc)) from None
    return RerankerOptions(**values)

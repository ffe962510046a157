"""The old back-end contract, ``score(self, pairs) -> list[float]``, kept working for one release.

Two things keep working, each with a :class:`DeprecationWarning`:

- a subclass that overrides ``score(self, pairs)`` (and/or ``async ascore(self, pairs)``): told apart
  from the new ``score(self, query, texts)`` by its parameters (one positional parameter, or one named
  ``pairs``), it is adapted when the class is created: the old method becomes its ``score_pairs`` /
  ``ascore_pairs``, ``score`` / ``ascore`` answer both call forms, and unless it already overrides them
  it gets :class:`~rerank_core.backends.base.PairwiseBackend`'s ``score_groups`` / ``ascore_groups`` (one
  call over every query's pairs, as the old default did). The warning is given once, at class creation.
- a call ``backend.score(pairs)`` / ``await backend.ascore(pairs)`` on a back end of the new contract,
  including ``super().score(pairs)`` from an old-contract subclass: a pairwise back end answers it with
  its ``score_pairs`` (the one its class, not the old subclass, defines), any other one per run of
  consecutive pairs with the same query. Calls made from inside an adapted old method do not warn again.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import groupby
from typing import Any

_LEGACY_ATTR = "_rerank_legacy_pairs"
_ADAPTED_ATTR = "_rerank_accepts_pairs"
_inside_legacy = contextvars.ContextVar("rerank_core_inside_legacy_score", default=False)


def takes_pairs(fn: object) -> bool:
    """Whether ``fn(self, ...)`` has the old signature: one positional parameter, or a first one
    named ``pairs``."""
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return bool(positional) and (len(positional) == 1 or positional[0].name == "pairs")


def is_legacy(backend: object) -> bool:
    """Whether ``backend``'s class (or a base) implements the old pair contract (adapted by :func:`adapt`)."""
    return bool(getattr(type(backend), _LEGACY_ATTR, False))


def adapt(cls: type) -> None:
    """Called for every new subclass of ``Backend``: adapt the old contract where it is used."""
    legacy = {}
    for name in ("score", "ascore"):
        fn = cls.__dict__.get(name)
        if not callable(fn) or getattr(fn, _ADAPTED_ATTR, False):
            continue
        if takes_pairs(fn):
            legacy[name] = fn
        else:
            setattr(cls, name, accept_pairs(fn))
    if legacy:
        _adopt(cls, legacy)
        warnings.warn(
            f"{cls.__module__}.{cls.__qualname__} implements the old back-end contract "
            f"{'/'.join(legacy)}(self, pairs) -> list[float]; implement score(self, query, texts) -> "
            "GroupScores, or subclass PairwiseBackend and implement score_pairs(self, pairs). "
            "The old form is adapted until the next release.",
            DeprecationWarning,
            stacklevel=4,  # adapt <- Backend.__init_subclass__ <- ABCMeta.__new__ <- the class statement
        )


@contextmanager
def _inside() -> Iterator[None]:
    token = _inside_legacy.set(True)
    try:
        yield
    finally:
        _inside_legacy.reset(token)


def _is_pairs_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return (len(args) == 1 and not kwargs) or (not args and set(kwargs) == {"pairs"})


def _pairs_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Sequence[tuple[str, str]]:
    return args[0] if args else kwargs["pairs"]


def _query_texts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Sequence[str]]:
    bound = inspect.signature(lambda query, texts: None).bind(*args, **kwargs)
    return bound.arguments["query"], bound.arguments["texts"]


def _adopt(cls: type, legacy: dict[str, Callable[..., Any]]) -> None:
    from rerank_core.backends.base import Backend, GroupScores, PairwiseBackend, checked

    setattr(cls, _LEGACY_ATTR, True)
    old_score, old_ascore = legacy.get("score"), legacy.get("ascore")
    if old_score is not None:

        def score_pairs(self: Any, pairs: Sequence[tuple[str, str]]) -> list[float]:
            with _inside():
                return list(old_score(self, pairs))

        @functools.wraps(old_score)
        def score(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _is_pairs_call(args, kwargs):
                return score_pairs(self, _pairs_of(args, kwargs))
            query, texts = _query_texts(args, kwargs)
            return GroupScores(checked(self, score_pairs(self, [(query, t) for t in texts]), len(texts)))

        cls.score_pairs = score_pairs  # type: ignore[attr-defined]
        cls.score = score  # type: ignore[attr-defined]
    if old_ascore is not None:

        async def ascore_pairs(self: Any, pairs: Sequence[tuple[str, str]]) -> list[float]:
            with _inside():
                return list(await old_ascore(self, pairs))

        @functools.wraps(old_ascore)
        async def ascore(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _is_pairs_call(args, kwargs):
                return await ascore_pairs(self, _pairs_of(args, kwargs))
            query, texts = _query_texts(args, kwargs)
            scores = await ascore_pairs(self, [(query, t) for t in texts])
            return GroupScores(checked(self, scores, len(texts)))

        cls.ascore_pairs = ascore_pairs  # type: ignore[attr-defined]
        cls.ascore = ascore  # type: ignore[attr-defined]
    if not issubclass(cls, PairwiseBackend):  # the old default: one call over every query's pairs
        for name in ("score_groups", "ascore_groups", "ascore_pairs"):
            if getattr(cls, name, None) is getattr(Backend, name, None):
                setattr(cls, name, PairwiseBackend.__dict__[name])


def _pair_scorer(cls: type, name: str) -> Callable[..., Any] | None:
    """``name`` (``score_pairs``/``ascore_pairs``) as defined by the classes after the last old-contract
    class of ``cls``'s MRO: what ``super().score(pairs)`` inside that old method means."""
    mro = cls.__mro__
    last = max((i for i, c in enumerate(mro) if c.__dict__.get(_LEGACY_ATTR)), default=-1)
    for c in mro[last + 1 :]:
        fn = c.__dict__.get(name)
        if fn is not None:
            return None if getattr(fn, "__isabstractmethod__", False) else fn
    return None


def _warn_call(name: str) -> None:
    if not _inside_legacy.get():
        warnings.warn(
            f"backend.{name}(pairs) is the old back-end contract; call {name}(query, texts) "
            f"(-> GroupScores), score_groups(groups), or {name}_pairs(pairs) on a PairwiseBackend",
            DeprecationWarning,
            stacklevel=4,  # _warn_call <- the pairs-call helper <- the wrapper <- the caller
        )


def _consecutive(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    return [(q, [t for _, t in items]) for q, items in groupby(pairs, key=lambda p: p[0])]


def _score_pairs_call(self: Any, fn: Callable[..., Any], pairs: Sequence[tuple[str, str]]) -> list[float]:
    _warn_call("score")
    scorer = _pair_scorer(type(self), "score_pairs")
    if scorer is not None:
        return list(scorer(self, pairs))
    return [s for q, texts in _consecutive(pairs) for s in fn(self, q, texts).scores]


async def _ascore_pairs_call(
    self: Any, fn: Callable[..., Any], pairs: Sequence[tuple[str, str]]
) -> list[float]:
    _warn_call("ascore")
    scorer = _pair_scorer(type(self), "ascore_pairs")
    if scorer is not None:
        return list(await scorer(self, pairs))
    return [s for q, texts in _consecutive(pairs) for s in (await fn(self, q, texts)).scores]


def accept_pairs(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a new-contract ``score``/``ascore`` so that an old-style call with pairs still works."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _is_pairs_call(args, kwargs):
                return await _ascore_pairs_call(self, fn, _pairs_of(args, kwargs))
            return await fn(self, *args, **kwargs)

        wrapper: Callable[..., Any] = awrapper
    else:

        @functools.wraps(fn)
        def swrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _is_pairs_call(args, kwargs):
                return _score_pairs_call(self, fn, _pairs_of(args, kwargs))
            return fn(self, *args, **kwargs)

        wrapper = swrapper
    setattr(wrapper, _ADAPTED_ATTR, True)
    return wrapper

"""What every back end is: one query and its texts in, one raw score per text (and what it cost) out,
sync and async.

A back end also says what it is (``fingerprint``, stable across processes, used as the cache key
and in events), what its scores mean (``score_kind``), and, when it runs a tokenizer the core can
use, how long a pair may be (``pair_limit``) so the core can window long texts instead of letting
them be cut silently. Batching is the back end's business.

- :class:`Backend`: implement ``score(query, texts) -> GroupScores``. The Reranker calls
  ``score_groups`` / ``ascore_groups`` (one group per query), which by default call ``score`` /
  ``ascore`` once per query (async: all at once, at most ``max_concurrency`` in flight).
- :class:`PairwiseBackend`: for models that score each (query, text) pair on its own (cross-encoders):
  implement ``score_pairs(pairs) -> list[float]``; the pairs of every query of one ``score_groups`` call
  then share batches.

A subclass written for the old contract (``score(self, pairs) -> list[float]``) keeps working for one
release, with a :class:`DeprecationWarning` (see :mod:`rerank_core.backends._compat`).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import os
import re
import threading
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from rerank_core.backends import _compat
from rerank_core.errors import ConfigurationError, NonRetryableBackendError
from rerank_core.types import ScoreKind

__all__ = ["Backend", "GroupScores", "PairLimit", "PairwiseBackend", "TextTokenizer"]

T = TypeVar("T")
Groups = Sequence[tuple[str, Sequence[str]]]


class TextTokenizer(Protocol):
    """The part of a tokenizer the core needs to window long texts."""

    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character (start, end) of every token of each text, special tokens excluded."""
        ...


@dataclass(frozen=True)
class PairLimit:
    """A pair's token budget: ``max_length`` tokens in all, of which ``special_tokens`` are the
    model's own ([CLS], [SEP], ...); the query and the text share the rest.

    ``query_tokens``: for a model that encodes the query on its own (late interaction), the tokens the query
    may take in its own encoding; the text then has ``max_length - special_tokens`` to itself whatever the
    query (so its windows are the same for every query), and a longer query is cut to ``query_tokens`` by
    the long-query policy, reported. ``None`` (the default, cross-encoders): the query shares the pair."""

    max_length: int
    special_tokens: int
    tokenizer: TextTokenizer
    query_tokens: int | None = None


@dataclass(frozen=True)
class GroupScores:
    """The scores of one query's texts (in order), and what producing them cost (``usage``: e.g. LLM
    calls and tokens), which the Reranker adds to that query's ``RerankResponse.usage``."""

    scores: list[float]
    usage: Mapping[str, int] = field(default_factory=dict)


def checked(backend: Backend, scores: Sequence[float], count: int) -> list[float]:
    """``scores`` as a list, or a :class:`NonRetryableBackendError` when there are not ``count`` of them."""
    if len(scores) != count:
        raise NonRetryableBackendError(
            f"returned {len(scores)} scores for {count} pairs", backend=backend.fingerprint
        )
    return list(scores)


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Run ``awaitables`` at once and return their results in order; on the first failure (or when the
    caller is cancelled) the others are cancelled instead of being left running."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


class Backend(ABC):
    """Base class of the back ends. Subclasses implement ``fingerprint``, ``score_kind`` and ``score``.

    ``blocking`` back ends (in-process models) run on a bounded thread pool from async code so the
    event loop never waits on model work; ``max_concurrency`` bounds that pool. Remote back ends
    override ``ascore`` (and ``ascore_groups``) with a native async client and set ``blocking = False``.
    """

    blocking: bool = True
    max_concurrency: int = 1
    #: ``False`` when a text's score depends on the other candidates scored with it (a listwise LLM
    #: judge's rank scores), so a per-(query, text) score cache would mix scores from different candidate
    #: sets: ``Reranker(..., cache=...)`` then refuses the back end (``ConfigurationError`` naming cache).
    cacheable: bool = True
    #: How this back end takes an instruction (``Reranker(instruction=...)``), in a few words for errors
    #: and docs ("the recipe's template", "a query prefix", ...). ``None``: it takes none, and a Reranker
    #: given one refuses it. A back end that takes one accepts ``instruction=`` (keyword, ``None``: its own
    #: default) in ``score`` / ``ascore`` (``score_pairs`` / ``ascore_pairs`` for pairwise ones) and
    #: ``pair_limit``; the Reranker passes it only when one is set, so back ends without it keep working.
    instruction_support: str | None = None

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._executor_pid = os.getpid()
        from rerank_core.remote._fork import after_fork_in_child  # (rerank_core.remote imports this module)

        after_fork_in_child(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's pool threads do not exist here (waiting on them would hang), and
        the lock may have been held at the fork: start with neither."""
        self._executor = None
        self._executor_lock = threading.Lock()
        self._executor_pid = os.getpid()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _compat.adapt(cls)

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """A stable description of the back end and every setting that changes its scores."""

    @property
    @abstractmethod
    def score_kind(self) -> ScoreKind:
        """What the raw scores are (may load the model to find out)."""

    def peek_score_kind(self) -> ScoreKind | None:
        """``score_kind`` if it is known without loading anything, else ``None``."""
        return None

    @property
    def model_folder(self) -> str | None:
        """The local folder of this back end's model (where ``Reranker(calibration="model")`` reads
        ``calibration.json``), or ``None`` (a model named by a Hugging Face id, a remote API: pass the
        calibration's path instead)."""
        return None

    def pair_limit(self, *, instruction: str | None = None) -> PairLimit | None:
        """The token budget of one pair, or ``None`` if the back end handles length itself. (The
        Reranker passes ``instruction=`` only when one is set, to a back end that takes one: this default
        accepts it, so such a back end need not override this.)"""
        return None

    def check_instruction(self, instruction: str | None) -> None:
        """Refuse an instruction this back end cannot take (``ConfigurationError`` naming ``instruction``).

        The default goes by :attr:`instruction_support`; a back end whose support depends on its model
        (a cross-encoder with or without a prompt) overrides this, and may load the model to find out."""
        if instruction is not None and self.instruction_support is None:
            raise ConfigurationError(
                "instruction",
                f"{type(self).__name__} takes no instruction (back ends that do: a recipe model, an "
                "LLM judge, a cross-encoder with a prompt, Voyage/Jina/vLLM/TEI/Cohere as a query "
                "prefix); leave instruction unset",
            )

    @abstractmethod
    def score(self, query: str, texts: Sequence[str]) -> GroupScores:
        """One raw score per text of ``query``, in input order, and what producing them cost. (A back end
        that takes an instruction also accepts ``instruction=``.)"""

    async def ascore(self, query: str, texts: Sequence[str], **told: Any) -> GroupScores:
        """Async :meth:`score`; the default runs it on the back end's bounded thread pool."""
        return await self.run_blocking(functools.partial(self.score, query, texts, **told))

    def score_groups(self, groups: Groups, *, instruction: str | None = None) -> list[GroupScores]:
        """Score each (query, texts) group; what the Reranker calls, one group per query.

        The default calls :meth:`score` once per query (an empty group costs no call). Back ends that
        gain from seeing several queries at once (shared batches, concurrent requests) override it.
        ``instruction`` is passed on only when given (see :attr:`instruction_support`).
        """
        if _compat.is_legacy(self) and hasattr(self, "score_pairs"):  # old contract: super().score_groups()
            return PairwiseBackend.score_groups(self, groups)  # type: ignore[arg-type]
        told = _told(instruction)
        return [
            self._checked(self.score(q, texts, **told), texts) if texts else GroupScores([])
            for q, texts in groups
        ]

    async def ascore_groups(self, groups: Groups, *, instruction: str | None = None) -> list[GroupScores]:
        """Async :meth:`score_groups`: the default runs :meth:`ascore` for every query at once, at most
        ``max_concurrency`` of them in flight."""
        if _compat.is_legacy(self):  # old contract: super().ascore_groups(), one call over all pairs
            return await PairwiseBackend.ascore_groups(self, groups)  # type: ignore[arg-type]
        slots = asyncio.Semaphore(self.max_concurrency)
        told = _told(instruction)

        async def one(query: str, texts: Sequence[str]) -> GroupScores:
            if not texts:
                return GroupScores([])
            async with slots:
                return self._checked(await self.ascore(query, texts, **told), texts)

        return await gather_all(one(q, texts) for q, texts in groups)

    def _checked(self, result: GroupScores, texts: Sequence[str]) -> GroupScores:
        checked(self, result.scores, len(texts))
        return result

    async def run_blocking(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on this back end's bounded thread pool without blocking the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._get_executor(), fn, *args)

    def _get_executor(self) -> ThreadPoolExecutor:
        if getattr(self, "_executor_pid", None) != os.getpid():  # forked (or __init__ not called)
            self._after_fork()
        if self._executor is None:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self.max_concurrency, thread_name_prefix=f"rerank-{type(self).__name__}"
                    )
        return self._executor

    def close(self) -> None:
        """Release the thread pool (and, in subclasses, clients or models)."""
        with self._executor_lock:
            if self._executor is not None:
                if getattr(self, "_executor_pid", None) == os.getpid():  # a parent's pool is not ours
                    self._executor.shutdown(wait=True)
                self._executor = None

    # -- copies and pickles: rebuilt from the constructor's arguments, secrets left out of pickles ----------

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """Record the constructor's arguments: copies and pickles rebuild the back end from them (a loaded
        model, a client, a thread pool or a lock is never copied)."""
        self = super().__new__(cls)
        object.__setattr__(self, "_init_arguments", (args, dict(kwargs)))
        return self

    def init_arguments(self, *, secrets: bool = True) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        """The ``(args, kwargs)`` this back end was built with (``None`` when unknown). ``secrets=False``
        leaves out every keyword whose name says it is one (``api_key``, ``token``, ``password``, ...) and
        such entries of a ``headers`` mapping (``Authorization``, ``X-API-Key``, ...)."""
        recorded = getattr(self, "_init_arguments", None)
        if recorded is None:
            return None
        args, kwargs = recorded
        if secrets:
            return tuple(args), dict(kwargs)
        public: dict[str, Any] = {}
        for name, value in kwargs.items():
            if _is_secret_name(name):
                continue
            if name == "headers" and isinstance(value, Mapping):
                value = {k: v for k, v in value.items() if not _is_secret_name(str(k))}
            public[name] = _without_url_credentials(value)
        return tuple(_without_url_credentials(a) for a in args), public

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its class and constructor arguments, without secrets: unpickling builds a fresh back
        end, which reads its key from the environment as the constructor does."""
        arguments = self.init_arguments(secrets=False)
        if arguments is None:
            raise TypeError(
                f"cannot pickle {type(self).__name__}: its constructor arguments were not recorded"
            )
        args, kwargs = arguments
        return (functools.partial(type(self), *args, **kwargs), ())

    def __copy__(self) -> Backend:
        """A shallow copy, as ``copy.copy`` always made: the same loaded model, client and settings
        (nothing is reloaded); only :meth:`__deepcopy__` and pickling rebuild from the arguments."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> Backend:
        """A new back end built with deep copies of the same arguments (secrets included: it stays in
        memory)."""
        arguments = self.init_arguments()
        if arguments is None:
            raise TypeError(f"cannot copy {type(self).__name__}: its constructor arguments were not recorded")
        args, kwargs = copy.deepcopy(arguments, memo)
        return type(self)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint!r})"


# Old callers' ``backend.ascore(pairs)`` on a back end that keeps the default ascore.
Backend.ascore = _compat.accept_pairs(Backend.ascore)  # type: ignore[method-assign]


def _told(instruction: str | None) -> dict[str, Any]:
    """The keyword that passes ``instruction`` on: none when it is ``None`` (back ends written without
    instructions keep their signature)."""
    return {} if instruction is None else {"instruction": instruction}


instruction_kwargs = _told


def instructed_fingerprint(fingerprint: str, instruction: str | None) -> str:
    """A back end's fingerprint with the call's instruction in it (a hash of it: fingerprints stay short),
    so that scores under different instructions never share a cache entry."""
    if instruction is None:
        return fingerprint
    digest = hashlib.sha256(instruction.encode("utf-8")).hexdigest()[:16]
    return f"{fingerprint}|instruction=sha256:{digest}"


def _flatten(groups: Groups) -> list[tuple[str, str]]:
    return [(q, t) for q, texts in groups for t in texts]


def _split(backend: Backend, groups: Groups, scores: Sequence[float]) -> list[GroupScores]:
    scores = checked(backend, scores, sum(len(texts) for _, texts in groups))
    out, offset = [], 0
    for _, texts in groups:
        out.append(GroupScores(scores[offset : offset + len(texts)]))
        offset += len(texts)
    return out


class PairwiseBackend(Backend):
    """Base class of back ends that score each (query, text) pair on its own, such as cross-encoders.

    Subclasses implement ``score_pairs(pairs) -> list[float]`` (one raw score per pair, in input order)
    instead of ``score``. ``score_groups`` / ``ascore_groups`` make one ``score_pairs`` /
    ``ascore_pairs`` call over the pairs of every query, so queries scored together share batches
    (fewer, fuller forward passes). ``ascore_pairs`` defaults to the bounded thread pool.
    """

    @abstractmethod
    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One raw score per (query, text) pair, in input order. (A back end that takes an instruction
        also accepts ``instruction=``.)"""

    async def ascore_pairs(self, pairs: Sequence[tuple[str, str]], **told: Any) -> list[float]:
        """Async :meth:`score_pairs` (default: on the back end's bounded thread pool)."""
        return await self.run_blocking(functools.partial(self.score_pairs, pairs, **told))

    def score(self, query: str, texts: Sequence[str], **told: Any) -> GroupScores:
        return self.score_groups([(query, texts)], **told)[0]

    async def ascore(self, query: str, texts: Sequence[str], **told: Any) -> GroupScores:
        return (await self.ascore_groups([(query, texts)], **told))[0]

    # These two are also lent to old-contract subclasses of Backend (see _compat): no zero-argument super().
    def score_groups(self, groups: Groups, *, instruction: str | None = None) -> list[GroupScores]:
        pairs = _flatten(groups)
        return _split(self, groups, self.score_pairs(pairs, **_told(instruction)) if pairs else [])

    async def ascore_groups(self, groups: Groups, *, instruction: str | None = None) -> list[GroupScores]:
        pairs = _flatten(groups)
        return _split(self, groups, await self.ascore_pairs(pairs, **_told(instruction)) if pairs else [])


_SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "signature",
    }
)
"""Words that make an argument or header name a secret, matched as whole words (``api_key``, ``X-API-Key``,
``access_token`` are secrets; ``max_tokens_per_doc``, ``batch_tokens``, ``tokenizer_kwargs`` are not)."""


def _is_secret_name(name: str) -> bool:
    """Whether an argument or header name says it holds a secret (``api_key``, ``Authorization``, ...)."""
    lowered = name.lower()
    return any(word in _SECRET_WORDS for word in re.split(r"[^a-z0-9]+", lowered))


def _without_url_credentials(value: Any) -> Any:
    """``value`` with the ``user:password@`` of a URL string removed (``http://user:KEY@host`` ->
    ``http://host``), so that no credential written in a URL reaches a pickle or a config."""
    if not isinstance(value, str) or "://" not in value or "@" not in value:
        return value
    parts = urllib.parse.urlsplit(value)
    if parts.username is None and parts.password is None:
        return value
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + ("" if parts.port is None else f":{parts.port}")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

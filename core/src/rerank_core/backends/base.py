"""What every back end is: (query, text) pairs in, one raw score per pair out, sync and async.

A back end also says what it is (``fingerprint``, stable across processes, used as the cache key
and in events), what its scores mean (``score_kind``), and, when it runs a tokenizer the core can
use, how long a pair may be (``pair_limit``) so the core can window long texts instead of letting
them be cut silently. Batching is the back end's business.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from rerank_core.errors import NonRetryableBackendError
from rerank_core.types import ScoreKind

__all__ = ["Backend", "GroupScores", "PairLimit", "TextTokenizer"]

T = TypeVar("T")


class TextTokenizer(Protocol):
    """The part of a tokenizer the core needs to window long texts."""

    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character (start, end) of every token of each text, special tokens excluded."""
        ...


@dataclass(frozen=True)
class PairLimit:
    """A pair's token budget: ``max_length`` tokens in all, of which ``special_tokens`` are the
    model's own ([CLS], [SEP], ...); the query and the text share the rest."""

    max_length: int
    special_tokens: int
    tokenizer: TextTokenizer


@dataclass(frozen=True)
class GroupScores:
    """The scores of one query's texts (in order), and what producing them cost (``usage``: e.g. LLM
    calls and tokens), which the Reranker adds to that query's ``RerankResponse.usage``."""

    scores: list[float]
    usage: Mapping[str, int] = field(default_factory=dict)


class Backend(ABC):
    """Base class of the back ends. Subclasses implement ``fingerprint``, ``score_kind`` and ``score``.

    ``blocking`` back ends (in-process models) run on a bounded thread pool from async code so the
    event loop never waits on model work; ``max_concurrency`` bounds that pool. Remote back ends
    override ``ascore`` with a native async client and set ``blocking = False``.
    """

    blocking: bool = True
    max_concurrency: int = 1

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

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

    def pair_limit(self) -> PairLimit | None:
        """The token budget of one pair, or ``None`` if the back end handles length itself."""
        return None

    @abstractmethod
    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One raw score per (query, text) pair, in input order."""

    async def ascore(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return await self.run_blocking(self.score, pairs)

    def score_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        """Score each (query, texts) group; what the Reranker calls, one group per query.

        The default makes one :meth:`score` call over all pairs (shared batches) and reports no usage.
        Back ends whose cost is per query (an LLM judge: calls, tokens) override it to report that cost
        per group, which stays correct when several calls run at once (nothing is kept on the back end).
        """
        pairs = [(q, t) for q, texts in groups for t in texts]
        return self._split_groups(groups, self.score(pairs) if pairs else [])

    async def ascore_groups(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[GroupScores]:
        """Async :meth:`score_groups` (the default makes one :meth:`ascore` call)."""
        pairs = [(q, t) for q, texts in groups for t in texts]
        return self._split_groups(groups, await self.ascore(pairs) if pairs else [])

    def _split_groups(
        self, groups: Sequence[tuple[str, Sequence[str]]], scores: Sequence[float]
    ) -> list[GroupScores]:
        total = sum(len(texts) for _, texts in groups)
        if len(scores) != total:
            raise NonRetryableBackendError(
                f"returned {len(scores)} scores for {total} pairs", backend=self.fingerprint
            )
        out, offset = [], 0
        for _, texts in groups:
            out.append(GroupScores(list(scores[offset : offset + len(texts)])))
            offset += len(texts)
        return out

    async def run_blocking(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on this back end's bounded thread pool without blocking the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._get_executor(), fn, *args)

    def _get_executor(self) -> ThreadPoolExecutor:
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
                self._executor.shutdown(wait=True)
                self._executor = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint!r})"

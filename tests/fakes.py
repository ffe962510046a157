"""Test doubles for the pipeline: a back end whose scores are known in advance.

``FakeBackend`` is a :class:`~rerank_core.backends.PairwiseBackend` (every query of one call shares one
``score_pairs`` call, as a cross-encoder's batches do): it scores a pair by looking the text up in
``scores`` (default: a stable hash), records every ``score_pairs`` call in ``calls``, and, when
``max_length`` is set, exposes a whitespace tokenizer so that windowing can be checked token by token.
``NativeAsyncBackend`` is the same with a native async path and a sync path that fails.
"""

from __future__ import annotations

import asyncio
import re
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence

from rerank_core.backends.base import PairLimit, PairwiseBackend
from rerank_core.types import ScoreKind


class WhitespaceTokenizer:
    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in re.finditer(r"\S+", t)] for t in texts]


def hash_score(query: str, text: str) -> float:
    return (zlib.crc32(f"{query}\x00{text}".encode()) % 10_000) / 1000.0 - 5.0


class FakeBackend(PairwiseBackend):
    def __init__(
        self,
        scores: Mapping[str, float] | Callable[[str, str], float] | None = None,
        *,
        kind: ScoreKind = "logit",
        max_length: int | None = None,
        special_tokens: int = 3,
        name: str = "fake",
        peekable: bool = True,
    ) -> None:
        super().__init__()
        self._scores = scores
        self._kind = kind
        self._max_length = max_length
        self._special = special_tokens
        self._name = name
        self._peekable = peekable
        self.calls: list[list[tuple[str, str]]] = []
        self.limit_calls = 0
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return f"fake:{self._name}"

    @property
    def score_kind(self) -> ScoreKind:
        return self._kind

    def peek_score_kind(self) -> ScoreKind | None:
        return self._kind if self._peekable else None

    def pair_limit(self) -> PairLimit | None:
        self.limit_calls += 1
        if self._max_length is None:
            return None
        return PairLimit(self._max_length, self._special, WhitespaceTokenizer())

    @property
    def pairs_scored(self) -> int:
        return sum(len(c) for c in self.calls)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return self._score(pairs)

    def _score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        with self._lock:
            self.calls.append(list(pairs))
        out = []
        for q, t in pairs:
            if self._scores is None:
                out.append(hash_score(q, t))
            elif callable(self._scores):
                out.append(float(self._scores(q, t)))
            else:
                out.append(float(self._scores[t]))
        return out


class NativeAsyncBackend(FakeBackend):
    """A :class:`FakeBackend` with a native async path (like a remote API) that refuses sync scoring: a
    caller that goes through it used the core's async path, not a thread around the sync one."""

    blocking = False

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise AssertionError("the async path must not call the sync scorer")

    async def ascore_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        await asyncio.sleep(0)
        return self._score(pairs)


def run_in_threads(work: Callable[[int], None], n: int) -> None:
    """Run ``work(0) .. work(n - 1)`` on ``n`` threads at once; re-raise the first failure here."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]

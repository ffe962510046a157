"""A bounded, thread-safe LRU cache of exact (back-end fingerprint, query, text) scores.

Keys are 128-bit BLAKE2b digests of the three strings (length-prefixed, so no two different
triples share an encoding), which keeps memory bounded by ``maxsize`` entries rather than by the
length of the texts. A hit never calls the model.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from rerank_core.errors import ConfigurationError

__all__ = ["ScoreCache"]


def _key(fingerprint: str, query: str, text: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in (fingerprint, query, text):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


class ScoreCache:
    """LRU map from (fingerprint, query, text) to a raw score. ``hits``/``misses`` count lookups."""

    def __init__(self, maxsize: int = 100_000) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
            raise ConfigurationError("cache_size", f"must be an integer >= 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._data: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get_many(self, fingerprint: str, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        """Cached scores for ``pairs`` (``None`` for a miss), refreshing the hits' recency."""
        keys = [_key(fingerprint, q, t) for q, t in pairs]
        out: list[float | None] = []
        with self._lock:
            for k in keys:
                value = self._data.get(k)
                if value is None:
                    self.misses += 1
                else:
                    self._data.move_to_end(k)
                    self.hits += 1
                out.append(value)
        return out

    def put_many(self, fingerprint: str, items: Iterable[tuple[tuple[str, str], float]]) -> None:
        entries = [(_key(fingerprint, q, t), float(s)) for (q, t), s in items]
        with self._lock:
            for k, s in entries:
                self._data[k] = s
                self._data.move_to_end(k)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

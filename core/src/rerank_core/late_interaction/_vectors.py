"""Document token vectors at reduced precision, and the bounded in-memory cache of them.

A document's vectors are a ``(tokens, dim)`` float32 matrix (one row per token the model kept). They are
kept, in memory and on disk, in one of three precisions (``stored_dtype``):

=========== ================================================= ============================
dtype        layout                                             bytes per token (dim 128)
=========== ================================================= ============================
float32      the values as encoded                              4 x dim = 512
float16      IEEE half precision (the default)                  2 x dim = 256
int8         symmetric per-token: ``round(x / s)``, ``s =       dim + 4 = 132
             max|x| / 127`` per row, the scales in float32
=========== ================================================= ============================

Scores are always computed from the vectors as kept (decoded back to float32), whether they were just
encoded or read back, so a document's score never depends on whether it came from the model, the cache or
the store.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from rerank_core.errors import ConfigurationError

__all__ = [
    "STORED_DTYPES",
    "PackedVectors",
    "VectorCache",
    "content_hash",
    "pack",
    "unpack",
]

STORED_DTYPES = ("float16", "int8", "float32")

ENTRY_OVERHEAD = 120
"""Bytes counted per cache entry beside its arrays (key, record, dictionary slot): an estimate that keeps the
byte bound honest for many short documents."""


def content_hash(text: str) -> bytes:
    """The key of a document's vectors: the sha256 of its exact text (UTF-8), 32 bytes."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def check_stored_dtype(dtype: object, argument: str = "stored_dtype") -> str:
    if dtype not in STORED_DTYPES:
        raise ConfigurationError(argument, f"must be one of {', '.join(STORED_DTYPES)}, got {dtype!r}")
    return str(dtype)


@dataclass(frozen=True)
class PackedVectors:
    """One document's token vectors at ``dtype``: ``values`` ``(tokens, dim)`` and, for int8, one float32
    ``scales`` per token."""

    dtype: str
    values: np.ndarray
    scales: np.ndarray | None = None

    @property
    def tokens(self) -> int:
        return int(self.values.shape[0])

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + (0 if self.scales is None else self.scales.nbytes))


def pack(vectors: np.ndarray, dtype: str) -> PackedVectors:
    """``vectors`` (``(tokens, dim)``, any float dtype) at ``dtype``."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a (tokens, dim) matrix, got shape {x.shape}")
    if dtype == "float32":
        return PackedVectors(dtype, np.ascontiguousarray(x))
    if dtype == "float16":
        return PackedVectors(dtype, x.astype(np.float16))
    if dtype == "int8":
        peak = np.abs(x).max(axis=1) if x.shape[0] else np.zeros(0, dtype=np.float32)
        scales = (peak / 127.0).astype(np.float32)
        safe = np.where(scales > 0, scales, 1.0).astype(np.float32)
        q = np.clip(np.rint(x / safe[:, None]), -127, 127).astype(np.int8)
        return PackedVectors(dtype, q, scales)
    raise ValueError(f"unknown stored dtype {dtype!r}")


def unpack(packed: PackedVectors) -> np.ndarray:
    """The float32 ``(tokens, dim)`` matrix that scores use."""
    if packed.dtype == "int8":
        assert packed.scales is not None
        return packed.values.astype(np.float32) * packed.scales[:, None]
    out = packed.values.astype(np.float32, copy=False)
    return out if out.flags.writeable else out.copy()  # a store's read-only buffer: torch wants writable


@dataclass(frozen=True)
class CacheStats:
    """What a :class:`VectorCache` holds and has done."""

    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int


class VectorCache:
    """A thread-safe LRU cache of :class:`PackedVectors`, bounded by bytes (the arrays plus
    :data:`ENTRY_OVERHEAD` per entry), not by entries. ``max_bytes=0`` keeps nothing. An entry larger than
    the whole bound is not kept."""

    def __init__(self, max_bytes: int) -> None:
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise ConfigurationError("cache_size", f"must be a number of bytes >= 0, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, bytes], PackedVectors] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._hits = self._misses = self._evictions = 0

    def after_fork(self) -> None:
        """In a forked child: a parent's thread may have held the lock at the fork; start with a free one."""
        self._lock = threading.Lock()

    @staticmethod
    def size_of(packed: PackedVectors) -> int:
        return packed.nbytes + ENTRY_OVERHEAD

    def get_many(self, space: str, keys: Sequence[bytes]) -> list[PackedVectors | None]:
        out: list[PackedVectors | None] = []
        with self._lock:
            for key in keys:
                found = self._entries.get((space, key))
                if found is None:
                    self._misses += 1
                else:
                    self._entries.move_to_end((space, key))
                    self._hits += 1
                out.append(found)
        return out

    def put_many(self, space: str, items: Iterable[tuple[bytes, PackedVectors]]) -> None:
        with self._lock:
            for key, packed in items:
                size = self.size_of(packed)
                if size > self.max_bytes:
                    continue
                old = self._entries.pop((space, key), None)
                if old is not None:
                    self._bytes -= self.size_of(old)
                self._entries[(space, key)] = packed
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, evicted = self._entries.popitem(last=False)
                    self._bytes -= self.size_of(evicted)
                    self._evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                len(self._entries), self._bytes, self.max_bytes, self._hits, self._misses, self._evictions
            )

    def __len__(self) -> int:
        return len(self._entries)

"""Late interaction's document side: token vectors kept at reduced precision, in a bounded in-memory cache
and an optional on-disk store that processes share.

The back end itself is :class:`rerank_core.backends.LateInteractionBackend`; this package holds what it
keeps: :class:`VectorStore` (one SQLite file in WAL mode, content-addressed by the sha256 of each text),
:class:`VectorCache` (an LRU bounded by bytes), the precisions (``STORED_DTYPES``) and their packing.
"""

from rerank_core.late_interaction._store import FILE_NAME, StoreStats, VectorStore
from rerank_core.late_interaction._vectors import (
    STORED_DTYPES,
    CacheStats,
    PackedVectors,
    VectorCache,
    content_hash,
    pack,
    unpack,
)

__all__ = [
    "FILE_NAME",
    "STORED_DTYPES",
    "CacheStats",
    "PackedVectors",
    "StoreStats",
    "VectorCache",
    "VectorStore",
    "content_hash",
    "pack",
    "unpack",
]

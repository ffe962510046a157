"""The on-disk store of document token vectors: one SQLite file in WAL mode.

Layout: ``FOLDER/vectors.sqlite3`` (with SQLite's ``-wal`` and ``-shm`` files beside it while in use)::

    meta(key, value)                       format name and version
    spaces(space, description, dtype)      one row per vector space (model, document length, stored dtype)
    vectors(space, hash, tokens, dim, dtype, data, scales, checksum)
                                           one row per distinct document text: ``hash`` is the sha256 of the
                                           exact text, ``data`` the (tokens, dim) values at ``dtype``
                                           (row-major, little-endian), ``scales`` one float32 per token for
                                           int8, ``checksum`` the first 8 bytes of blake2b(data + scales)
    ids(space, doc_id, hash)               a caller's document id (LangChain / LlamaIndex) -> the hash of its
                                           whole text, recorded by ``index((id, text))``; never read to score.
                                           A windowed (long) document's vectors are stored under each
                                           window's hash, not this one: the id names the text, not a row of
                                           ``vectors``

Why content addressing: a vector is looked up by the hash of the exact text it was encoded from, under the
space of the model that encoded it, so a changed text is a different key (never served stale), the same
text under two ids is stored once, and scoring needs no ids at all. An id is only a note beside it: the
"candidate id + content hash" key of the design reduces to the content hash because the id never changes
what is scored.

Concurrency: any number of processes (and threads) may read while one writes. Every write is one SQLite
transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a reader sees a document's row entirely or not at all, never
a torn vector (WAL readers read the last committed snapshot and do not block the writer). Writers from several
processes are serialised by SQLite's write lock (a second writer waits up to ``timeout`` seconds, then fails
with an error naming the store; errors are worded by SQLite's cause: busy, full, read-only, damaged). The
store is a cache: a write that fails while the back end scores is one warning per store and
``usage["vector_store_write_errors"]``, and scoring goes on; ``index()``, which exists to write, raises. WAL
needs a local file system (not NFS/SMB). On top of SQLite's own guarantees each row carries a checksum and its
exact size: a row that fails either (a bit flip on disk) is treated as missing, re-encoded and rewritten, with
one warning; a file that is not a store, or one SQLite reports as damaged (truncated, overwritten), raises
:class:`~rerank_core.errors.ConfigurationError` naming ``store`` and the file.

Cost on disk: tokens x dim x bytes per value (+ 4 per token for int8's scales) plus about 1-6 KB per
document (SQLite page slack around each blob, the key and its index entry). Measured per million tokens at
dim 128 (SciFact windows of ~145 tokens): float16 264 MB, int8 139 MB, float32 556 MB; ``stats()`` reports
what a store holds.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rerank_core.errors import ConfigurationError
from rerank_core.late_interaction._vectors import PackedVectors, check_stored_dtype

__all__ = ["FILE_NAME", "StoreStats", "VectorStore"]

FILE_NAME = "vectors.sqlite3"
_FORMAT = "rerank-late-interaction-store"
_VERSION = "1"
_NUMPY = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "int8": np.dtype("i1")}
_CHUNK = 500  # keys per SELECT (SQLite's bound-parameter limit is 32766 on recent builds, 999 on old ones)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spaces (space TEXT PRIMARY KEY, description TEXT NOT NULL, dtype TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    space TEXT NOT NULL,
    hash BLOB NOT NULL,
    tokens INTEGER NOT NULL,
    dim INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    data BLOB NOT NULL,
    scales BLOB,
    checksum BLOB NOT NULL,
    PRIMARY KEY (space, hash)
);
CREATE TABLE IF NOT EXISTS ids (
    space TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (space, doc_id)
);
"""


@dataclass(frozen=True)
class StoreStats:
    """What a store holds: ``documents`` (distinct texts), ``tokens`` (their token vectors), ``bytes`` (the
    vector values and scales), ``ids`` (document ids recorded), ``file_bytes`` (the SQLite files on disk:
    vectors, keys, indexes and free pages)."""

    documents: int
    tokens: int
    bytes: int
    ids: int
    file_bytes: int

    @property
    def bytes_per_million_tokens(self) -> float | None:
        """``file_bytes`` per million stored tokens (``None`` for an empty store)."""
        return None if not self.tokens else self.file_bytes * 1_000_000 / self.tokens


def _checksum(data: bytes, scales: bytes | None) -> bytes:
    h = hashlib.blake2b(digest_size=8)
    h.update(data)
    if scales is not None:
        h.update(scales)
    return h.digest()


def _kind(exc: BaseException) -> str:
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc).lower()
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        return "busy"
    if name.startswith("SQLITE_FULL") or "full" in text or getattr(exc, "errno", None) == 28:
        return "full"
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN")) or "readonly" in text:
        return "readonly"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or any(
        w in text for w in ("malformed", "not a database")
    ):
        return "damaged"
    return "other"


def _hint(exc: BaseException, timeout: float) -> str:
    return {
        "busy": f"another process held the store's write lock for more than {timeout:g} s; retry later or "
        "give VectorStore a longer timeout",
        "full": "the disk is full; free space or move the store",
        "readonly": "no permission to write there; open it with readonly=True or fix the permissions",
        "damaged": "the file is damaged; delete it and refill it with `rerank index`",
    }.get(_kind(exc), "is it a rerank vector store on a local disk?")


def _rebuild(file: str, readonly: bool, timeout: float) -> VectorStore:
    """Unpickling: the store reopened as it was (see ``VectorStore.__reduce__``)."""
    return VectorStore(file, readonly=readonly, timeout=timeout)


def space_key(description: str) -> str:
    """The short key of a vector space (a hash of its description)."""
    return hashlib.sha256(description.encode("utf-8")).hexdigest()[:32]


class VectorStore:
    """Document token vectors on disk, shared by processes (see the module docstring).

    Args:
        path: a folder (created if missing; the file is ``FOLDER/vectors.sqlite3``) or the path of an
            existing ``.sqlite3`` file.
        readonly: open for reading only (writes raise; the folder may be read-only too: a store closed
            cleanly there is opened immutable, since nothing can write it).
        timeout: seconds a writer waits for another process's write to finish before failing.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, readonly: bool = False, timeout: float = 30.0
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not str(path).strip():
            raise ConfigurationError("store", f"must be a folder path or a VectorStore, got {path!r}")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
            raise ConfigurationError("timeout", f"must be a number of seconds > 0, got {timeout!r}")
        given = Path(path).expanduser()
        if given.suffix in (".sqlite3", ".sqlite", ".db") and not given.is_dir():
            self.file = given
        else:
            self.file = given / FILE_NAME
        self.readonly = readonly
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._orphans: list[sqlite3.Connection] = []  # a parent's connections, never used nor closed here
        self._warned = False
        self._connection()  # open now: a bad path or a file that is not a store fails at construction

    def __repr__(self) -> str:
        return f"VectorStore({str(self.file)!r}{', readonly=True' if self.readonly else ''})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt in one step with its own readonly and timeout (never first opened writable: that would
        # create folders, switch to WAL and take the write lock, and fail for a readonly store in a
        # read-only folder).
        return (_rebuild, (str(self.file), self.readonly, self.timeout))

    # -- connection (one per process; threads share it under a lock) ---------------------------------

    def _error(self, exc: BaseException, doing: str) -> ConfigurationError:
        """A ConfigurationError naming ``store``, worded by the SQLite error; its ``store_error`` attribute
        says why: ``"busy"`` (another writer held the lock past the timeout), ``"full"`` (the disk),
        ``"readonly"`` (no permission to write), ``"damaged"`` (SQLite finds the file corrupt or not a
        database) or ``"other"``."""
        error = ConfigurationError(
            "store", f"{self.file} could not be {doing}: {exc} ({_hint(exc, self.timeout)})"
        )
        error.store_error = _kind(exc)  # type: ignore[attr-defined]
        return error

    def _current_lock(self) -> threading.Lock:
        """This process's lock: a forked child starts with a free one (a parent's thread may have held it at
        the fork) and without the parent's SQLite connection (connections must not cross a fork)."""
        if self._pid != os.getpid():
            if self._conn is not None:
                self._orphans.append(self._conn)
            self._conn, self._lock, self._pid = None, threading.Lock(), os.getpid()
        return self._lock

    def _connection(self) -> sqlite3.Connection:
        self._current_lock()
        if self._conn is not None:
            return self._conn
        try:
            if self.readonly:
                if not self.file.is_file():
                    raise ConfigurationError("store", f"{self.file} does not exist (readonly=True)")
                # A WAL-mode file closed cleanly (no -wal / -shm beside it) in a folder this process cannot
                # write cannot be opened mode=ro (SQLite must create its -shm); nobody can write it there
                # either (WAL needs the folder), so it is opened immutable.
                frozen = not os.access(self.file.parent, os.W_OK) and not (
                    self.file.with_name(self.file.name + "-wal").exists()
                )
                conn = sqlite3.connect(
                    f"{self.file.resolve().as_uri()}?mode=ro{'&immutable=1' if frozen else ''}",
                    uri=True,
                    timeout=self.timeout,
                    check_same_thread=False,
                    isolation_level=None,
                )
            else:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    str(self.file), timeout=self.timeout, check_same_thread=False, isolation_level=None
                )
            try:
                if not self.readonly:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        tables = {
                            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                        }
                        if not tables:  # a new file: make it a store (never adopt another database)
                            for statement in _SCHEMA.split(";"):
                                if statement.strip():
                                    conn.execute(statement)
                            conn.execute(
                                "INSERT INTO meta VALUES ('format', ?), ('version', ?)", (_FORMAT, _VERSION)
                            )
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                try:
                    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                except sqlite3.OperationalError:  # no meta table: some other SQLite database
                    meta = {}
            except BaseException:
                conn.close()
                raise
        except ConfigurationError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc, "opened") from exc
        if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
            conn.close()
            raise ConfigurationError(
                "store",
                f"{self.file} is not a rerank vector store of version {_VERSION} (meta: {meta})",
            )
        self._conn = conn
        return conn

    def close(self) -> None:
        with self._current_lock():
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- reading and writing --------------------------------------------------------------------------

    def get_many(self, space: str, keys: Sequence[bytes]) -> list[PackedVectors | None]:
        """The vectors stored under ``space`` for each key (``None`` where there are none, or the row is
        damaged)."""
        found: dict[bytes, PackedVectors] = {}
        unique = list(dict.fromkeys(keys))
        try:
            with self._current_lock():
                conn = self._connection()
                for s in range(0, len(unique), _CHUNK):
                    part = unique[s : s + _CHUNK]
                    rows = conn.execute(
                        "SELECT hash, tokens, dim, dtype, data, scales, checksum FROM vectors "
                        f"WHERE space = ? AND hash IN ({','.join('?' * len(part))})",
                        (space, *part),
                    ).fetchall()
                    for row in rows:
                        packed = self._decode(row)
                        if packed is not None:
                            found[bytes(row[0])] = packed
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from exc
        return [found.get(k) for k in keys]

    def _decode(self, row: tuple[Any, ...]) -> PackedVectors | None:
        _, tokens, dim, dtype, data, scales, checksum = row
        ok = dtype in _NUMPY and isinstance(tokens, int) and isinstance(dim, int) and tokens >= 0 and dim > 0
        if ok:
            ok = len(data) == tokens * dim * _NUMPY[dtype].itemsize
            ok = ok and (len(scales) == tokens * 4 if dtype == "int8" else scales is None)
            ok = ok and bytes(checksum) == _checksum(bytes(data), None if scales is None else bytes(scales))
        if not ok:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.file}: a stored vector failed its size or checksum check; it is ignored and "
                    "will be re-encoded",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return None
        values = np.frombuffer(data, dtype=_NUMPY[dtype]).reshape(tokens, dim)
        return PackedVectors(
            dtype, values, None if scales is None else np.frombuffer(scales, dtype="<f4").copy()
        )

    def put_many(
        self,
        space: str,
        items: Iterable[tuple[bytes, PackedVectors]],
        *,
        description: str = "",
        ids: Iterable[tuple[str, bytes]] = (),
    ) -> int:
        """Store each (key, vectors) under ``space`` and record each (doc_id, key), in one transaction;
        returns the vectors written."""
        if self.readonly:
            raise ConfigurationError("store", f"{self.file} was opened readonly=True")
        rows = []
        for key, packed in items:
            dtype = check_stored_dtype(packed.dtype)
            data = np.ascontiguousarray(packed.values, dtype=_NUMPY[dtype]).tobytes()
            scales = None
            if packed.scales is not None:
                scales = np.ascontiguousarray(packed.scales, dtype="<f4").tobytes()
            rows.append((space, key, packed.tokens, packed.dim, dtype, data, scales, _checksum(data, scales)))
        id_rows = [(space, str(doc_id), key) for doc_id, key in ids]
        if not rows and not id_rows:
            return 0
        dtypes = {r[4] for r in rows}
        try:
            with self._current_lock():
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for dtype in dtypes:
                        conn.execute(
                            "INSERT OR IGNORE INTO spaces VALUES (?, ?, ?)", (space, description, dtype)
                        )
                    conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                    conn.executemany("INSERT OR REPLACE INTO ids VALUES (?, ?, ?)", id_rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise self._error(exc, "written") from exc
        return len(rows)

    def ids(self, space: str) -> dict[str, bytes]:
        """The document ids recorded under ``space`` -> their text's hash."""
        try:
            with self._current_lock():
                rows = (
                    self._connection()
                    .execute("SELECT doc_id, hash FROM ids WHERE space = ?", (space,))
                    .fetchall()
                )
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from exc
        return {str(d): bytes(h) for d, h in rows}

    def spaces(self) -> dict[str, str]:
        """Each vector space in the store -> its description (model, document length, dtype)."""
        try:
            with self._current_lock():
                rows = self._connection().execute("SELECT space, description FROM spaces").fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from exc
        return {str(s): str(d) for s, d in rows}

    def stats(self, space: str | None = None) -> StoreStats:
        """What the store holds (one space's vectors and ids, or all); ``file_bytes`` is always the whole
        file's."""
        where, args = ("WHERE space = ?", (space,)) if space is not None else ("", ())
        try:
            with self._current_lock():
                conn = self._connection()
                documents, tokens, size = conn.execute(
                    "SELECT COUNT(*), IFNULL(SUM(tokens), 0), "
                    f"IFNULL(SUM(LENGTH(data) + IFNULL(LENGTH(scales), 0)), 0) FROM vectors {where}",
                    args,
                ).fetchone()
                (ids,) = conn.execute(f"SELECT COUNT(*) FROM ids {where}", args).fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from exc
        files = [self.file, self.file.with_name(self.file.name + "-wal")]
        file_bytes = sum(f.stat().st_size for f in files if f.is_file())
        return StoreStats(int(documents), int(tokens), int(size), int(ids), int(file_bytes))

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the main file (SQLite also does this on its own every ~4 MB)."""
        try:
            with self._current_lock():
                self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise self._error(exc, "checkpointed") from exc

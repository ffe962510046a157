"""Thread-safe counters of what a remote back end did: requests, retries, failures, outcomes."""

from __future__ import annotations

import threading
from collections import Counter

from rerank_core.remote._fork import after_fork_in_child

__all__ = ["RemoteStats"]


class RemoteStats:
    """Counts kept by a remote back end (read them with :meth:`snapshot`).

    - ``calls``: scoring calls (``score``/``score_groups`` and their async forms; one call may hold several
      queries); ``requests``: HTTP requests sent (every try counts);
    - ``retries``: tries that failed and were tried again; ``failures``: requests given up on (raised);
    - ``documents``: documents sent (every try counts); ``error:<kind>``: failed tries by kind
      (``http_429``, ``http_503``, ``timeout``, ``connection``, ``invalid_response``, ...).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        after_fork_in_child(self)

    def _after_fork(self) -> None:  # another thread may have held the lock at the fork
        self._lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def __repr__(self) -> str:
        return f"RemoteStats({self.snapshot()})"

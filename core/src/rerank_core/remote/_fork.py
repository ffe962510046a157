"""Per-process state: what a forked child must not share with its parent.

After ``os.fork`` (gunicorn ``--preload``, Celery prefork, ``multiprocessing`` with the fork start method)
a child inherits its parent's pooled keep-alive sockets, thread pools whose threads do not exist in the
child, locks another thread may have held at the fork, and per-event-loop objects of loops that do not
run there. Objects registered here get their ``_after_fork()`` called in the child (``os.register_at_fork``),
where they drop all of that without touching it (closing a shared socket or waiting on a dead thread
would disturb the parent or hang) and build it again on first use.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import Any

__all__ = ["after_fork_in_child"]

_objects: dict[int, weakref.ref[Any]] = {}
_lock = threading.Lock()


def after_fork_in_child(obj: Any) -> None:
    """Call ``obj._after_fork()`` in every forked child while ``obj`` lives (held weakly)."""
    key = id(obj)

    def forget(_: object, key: int = key) -> None:
        _objects.pop(key, None)

    try:
        ref = weakref.ref(obj, forget)
    except TypeError:  # not weak-referenceable: the owner checks os.getpid() itself
        return
    with _lock:
        _objects[key] = ref


def _in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    for ref in list(_objects.values()):
        obj = ref()
        if obj is not None:
            with contextlib.suppress(Exception):  # never break the child's start over a cache
                obj._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)

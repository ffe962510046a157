"""What the in-process model back ends share: length-sorted batching under a token budget, the fork-safe
model slots that let one call at a time run a model, a tokenizer adapter for the core's windows, and the
halving of a batch that ran out of accelerator memory."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from rerank_core.errors import ConfigurationError

_MODEL_LOAD_LOCK = threading.RLock()


def model_load_lock() -> Any:
    """The lock every local back end holds while it builds a model. transformers' ``from_pretrained``
    changes process-wide state while it builds one (it patches torch's initialisation functions and creates
    parameters on the meta device before filling them), so two loads at once in one process, from two back
    ends or from a load abandoned by a timed-out call, can leave one model's parameters uninitialised or on
    the meta device ("Cannot copy out of meta tensor" when it is moved). A forked child gets a fresh one (the
    parent's may have been held at the fork)."""
    return _MODEL_LOAD_LOCK


def _fresh_model_load_lock() -> None:
    global _MODEL_LOAD_LOCK
    _MODEL_LOAD_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_model_load_lock)

__all__ = ["HFTokenizer", "ModelSlots", "batches", "is_out_of_memory", "positive_int_or_none", "run_halving"]

T = TypeVar("T")


def positive_int_or_none(argument: str, value: Any, minimum: int = 1) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigurationError(argument, f"must be an integer >= {minimum} or None, got {value!r}")
    return value


def batches(lengths: Sequence[int], batch_size: int, batch_tokens: int | None) -> list[list[int]]:
    """Indices sorted by length (longest first), cut into batches.

    With ``batch_tokens``, a batch grows while ``count * longest <= batch_tokens`` (the padded size of a
    length-sorted batch) and ``count <= batch_size``; a single pair longer than the budget is its own batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if batch_tokens is None:
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    out: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1 > batch_size or (len(current) + 1) * longest > batch_tokens):
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


_ran_in: int | None = None
"""The process where a model last ran under a :class:`ModelSlots` (torch's CPU thread pool may have
started there)."""


def _fit_torch_threads_to_fork() -> None:
    """torch's CPU thread pool (OpenMP) does not survive ``os.fork``: in a child of a process where a model
    ran on several threads, the child's first multi-threaded op waits forever on threads that do not exist
    there (gunicorn ``--preload`` workers, multiprocessing's fork start method). Such a child runs torch on
    one thread, and says so once."""
    global _ran_in
    pid = os.getpid()
    if _ran_in is not None and _ran_in != pid:
        torch = sys.modules.get("torch")
        if torch is not None and torch.get_num_threads() > 1:
            torch.set_num_threads(1)
            warnings.warn(
                "a model ran in this process's parent before os.fork, and torch's CPU thread pool does not "
                "survive a fork: this process runs torch on one thread (load and run models after the fork, "
                "or use the spawn start method, to keep several)",
                RuntimeWarning,
                stacklevel=3,
            )
    _ran_in = pid


class ModelSlots:
    """``with slots:`` takes one of ``count`` model slots (a semaphore); a forked child starts with all of
    them free (the parent's holder does not exist there), and with torch on one thread if a model ran in
    its parent (see :func:`_fit_torch_threads_to_fork`)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._semaphore = threading.BoundedSemaphore(count)
        self._pid = os.getpid()

    def _current(self) -> threading.BoundedSemaphore:
        if self._pid != os.getpid():
            self._semaphore = threading.BoundedSemaphore(self.count)
            self._pid = os.getpid()
        return self._semaphore

    def __enter__(self) -> None:
        self._current().acquire()
        _fit_torch_threads_to_fork()

    def __exit__(self, *exc: object) -> None:
        self._current().release()


class HFTokenizer:
    """Adapts a Hugging Face fast tokenizer to :class:`~rerank_core.backends.base.TextTokenizer`, under
    the back end's lock.

    The offsets of recent texts are kept (least recently used first out, at most ``cache_bytes``, about
    8 bytes a token plus the text): windowing a document that comes back (the same candidates for
    another query, a late-interaction model's stored documents) does not tokenize it again. Measured on
    100 stored SciFact abstracts with the late-interaction back end: windowing was 105 of 200 ms a call,
    nearly all of it this tokenization."""

    def __init__(self, tokenizer: Any, lock: threading.Lock, cache_bytes: int = 32 * 1024 * 1024) -> None:
        self._tokenizer = tokenizer
        self._lock = lock
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._held = 0

    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        import numpy as np

        if not texts:
            return []
        found: dict[str, Any] = {}
        with self._lock:
            for text in texts:
                hit = self._cache.get(text)
                if hit is not None:
                    self._cache.move_to_end(text)
                    found[text] = hit
            missing = list(dict.fromkeys(t for t in texts if t not in found))
            if missing:
                enc = self._tokenizer(
                    missing,
                    add_special_tokens=False,
                    return_offsets_mapping=True,
                    truncation=False,
                    padding=False,
                    verbose=False,
                )
                for text, offs in zip(missing, enc["offset_mapping"], strict=True):
                    array = np.asarray(offs, dtype=np.int32).reshape(-1, 2)
                    found[text] = array
                    self._keep(text, array)
        return [list(zip(found[t][:, 0].tolist(), found[t][:, 1].tolist(), strict=True)) for t in texts]

    def _keep(self, text: str, array: Any) -> None:
        size = array.nbytes + len(text)
        if size > self._cache_bytes:
            return
        self._cache[text] = array
        self._held += size
        while self._held > self._cache_bytes:
            old, dropped = self._cache.popitem(last=False)
            self._held -= dropped.nbytes + len(old)


def shared_text_tokenizer(owner: Any, tokenizer: Any, lock: threading.Lock) -> HFTokenizer:
    """The back end ``owner``'s one :class:`HFTokenizer` over ``tokenizer`` (made at the first call), so
    its offsets cache lasts across calls."""
    held = getattr(owner, "_text_tokenizer", None)
    if held is None or held._tokenizer is not tokenizer or held._lock is not lock:  # a fork renews the lock
        held = HFTokenizer(tokenizer, lock)
        owner._text_tokenizer = held
    return held


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator out-of-memory error (torch's ``OutOfMemoryError``, or the
    ``RuntimeError`` older torch builds and other devices raise with that message)."""
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):  # pragma: no cover - torch without OutOfMemoryError
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def run_halving(
    batch: list[int], run: Callable[[list[int]], Sequence[T]], on_oom: Callable[[], None] | None = None
) -> list[tuple[int, T]]:
    """``run(batch)`` paired with the batch's indices; when it runs out of memory, the batch is halved and
    each half run (recursively, down to one pair, whose failure is raised), so no pair is lost and none
    is scored twice. ``on_oom`` runs after each failure (``torch.cuda.empty_cache``)."""
    pending = [batch]
    out: list[tuple[int, T]] = []
    while pending:
        current = pending.pop()
        try:
            values = run(current)
        except Exception as exc:
            if not is_out_of_memory(exc) or len(current) == 1:
                raise
            if on_oom is not None:
                on_oom()
            half = len(current) // 2
            pending.extend([current[half:], current[:half]])  # the first half runs next
            continue
        out.extend(zip(current, values, strict=True))
    return out

"""The cheap similarities the stage compares candidates with, computed lazily: a candidate's shingles (or
unit vector) only when it is first compared, so that a candidate decided by a cheaper check (the budget, a
parent already kept, ``max_items``) costs nothing here."""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["EmbeddingSimilarity", "ShingleSimilarity", "shingles"]

_PUNCTUATION = str.maketrans(dict.fromkeys(string.punctuation, " "))


def shingles(text: str, size: int) -> frozenset[tuple[str, ...]]:
    """The set of ``size``-word shingles of ``text`` (lower-cased, ASCII punctuation removed, split on
    whitespace); a text of fewer words is one shingle (none for a text with no word)."""
    words = text.lower().translate(_PUNCTUATION).split()
    if len(words) <= size:
        return frozenset((tuple(words),)) if words else frozenset()
    return frozenset(zip(*(words[i:] for i in range(size))))  # noqa: B905 (the shorter tails end it)


class ShingleSimilarity:
    """Exact Jaccard similarity of word-shingle sets: one set intersection per pair, in C (at a hundred
    candidates MinHash would save nothing, and an inverted index costs more to build in Python than the
    intersections it saves)."""

    def __init__(self, texts: Sequence[str], size: int) -> None:
        self._texts = texts
        self._size = size
        self._sets: list[frozenset[int] | None] = [None] * len(texts)
        self._kept: list[int] = []
        self._kept_sets: list[frozenset[int]] = []
        self._vocabulary: dict[tuple[str, ...], int] = {}

    def _set(self, i: int) -> frozenset[int]:
        """Candidate ``i``'s shingles, each as a small int (its number in this call's vocabulary): sets of
        ints intersect several times faster than sets of word tuples, whose hashes are not cached."""
        s = self._sets[i]
        if s is None:
            vocabulary = self._vocabulary
            add = vocabulary.setdefault
            s = self._sets[i] = frozenset(
                [add(t, len(vocabulary)) for t in shingles(self._texts[i], self._size)]
            )
        return s

    def pair(self, i: int, j: int) -> float:
        a, b = self._set(i), self._set(j)
        if not a and not b:
            return 1.0  # two texts without a word are the same (empty) text
        inter = len(a & b)
        return inter / (len(a) + len(b) - inter)

    def keep(self, j: int) -> None:
        """``j`` was kept: later candidates are compared with it."""
        self._kept.append(j)
        self._kept_sets.append(self._set(j))

    def closest_kept(self, i: int, threshold: float) -> tuple[float, int] | None:
        """The kept candidate most similar to ``i`` (ties: the first kept) and that similarity, when it is
        at least ``threshold``; else ``None``."""
        if not self._kept:
            return None
        a = self._set(i)
        na = len(a)
        inters = [len(a & b) for b in self._kept_sets]
        sims = [
            x / (na + len(b) - x) if na or b else 1.0 for x, b in zip(inters, self._kept_sets, strict=True)
        ]
        best = max(range(len(sims)), key=sims.__getitem__)  # the first of equal maxima: the first kept
        return (sims[best], self._kept[best]) if sims[best] >= threshold else None

    def against_all(self, i: int, others: Sequence[int]) -> list[float]:
        """The similarity of ``i`` to each of ``others``."""
        return [self.pair(i, j) for j in others]


class EmbeddingSimilarity:
    """Cosine similarity of the vectors the caller has (normalised once, when first compared)."""

    def __init__(self, n: int, vector: Callable[[int], object]) -> None:
        self._vector = vector
        self._unit: list[np.ndarray | None] = [None] * n
        self._kept: list[int] = []
        self._kept_matrix: np.ndarray | None = None

    def _get(self, i: int) -> np.ndarray:
        u = self._unit[i]
        if u is None:
            v = np.asarray(self._vector(i), dtype=np.float64).ravel()
            norm = float(np.linalg.norm(v))
            u = self._unit[i] = v / norm if norm > 0 else v
        return u

    def pair(self, i: int, j: int) -> float:
        return float(self._get(i) @ self._get(j))

    def keep(self, j: int) -> None:
        self._kept.append(j)
        self._kept_matrix = None

    def closest_kept(self, i: int, threshold: float) -> tuple[float, int] | None:
        kept = self._kept
        if not kept:
            return None
        if self._kept_matrix is None:
            self._kept_matrix = np.stack([self._get(j) for j in kept])
        sims = self._kept_matrix @ self._get(i)
        best = int(np.argmax(sims))  # the first of equal maxima: the first kept
        return (float(sims[best]), kept[best]) if sims[best] >= threshold else None

    def against_all(self, i: int, others: Sequence[int]) -> list[float]:
        if not others:
            return []
        return (np.stack([self._get(j) for j in others]) @ self._get(i)).tolist()

"""The cheap similarities the stage compares candidates with, computed lazily (a candidate's shingles or
unit vector only when it is first compared)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["EmbeddingSimilarity", "ShingleSimilarity"]

_WORD = re.compile(r"\w+")


def shingles(text: str, size: int) -> frozenset[str]:
    """The set of ``size``-word shingles of ``text`` (lower-cased ``\\w+`` words); a text of fewer words is
    one shingle (empty for a text with no word)."""
    words = _WORD.findall(text.lower())
    if len(words) <= size:
        return frozenset((" ".join(words),)) if words else frozenset()
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


class ShingleSimilarity:
    """Jaccard similarity of word-shingle sets (exact: at a hundred candidates MinHash would save nothing)."""

    def __init__(self, texts: Sequence[str], size: int) -> None:
        self._texts = texts
        self._size = size
        self._sets: list[frozenset[str] | None] = [None] * len(texts)

    def _set(self, i: int) -> frozenset[str]:
        s = self._sets[i]
        if s is None:
            s = self._sets[i] = shingles(self._texts[i], self._size)
        return s

    def pair(self, i: int, j: int) -> float:
        a, b = self._set(i), self._set(j)
        if not a and not b:
            return 1.0  # two texts without a word are the same (empty) text
        inter = len(a & b)
        return inter / (len(a) + len(b) - inter)

    def against(self, i: int, others: Sequence[int]) -> list[float]:
        return [self.pair(i, j) for j in others]


class EmbeddingSimilarity:
    """Cosine similarity of the vectors the caller has (normalised once, when first compared)."""

    def __init__(self, n: int, vector: Callable[[int], object]) -> None:
        self._vector = vector
        self._unit: list[np.ndarray | None] = [None] * n

    def _get(self, i: int) -> np.ndarray:
        u = self._unit[i]
        if u is None:
            v = np.asarray(self._vector(i), dtype=np.float64).ravel()
            norm = float(np.linalg.norm(v))
            u = self._unit[i] = v / norm if norm > 0 else v
        return u

    def pair(self, i: int, j: int) -> float:
        return float(self._get(i) @ self._get(j))

    def against(self, i: int, others: Sequence[int]) -> list[float]:
        if not others:
            return []
        return (np.stack([self._get(j) for j in others]) @ self._get(i)).tolist()

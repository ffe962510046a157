"""Relevance bands: names for ranges of a calibrated score.

The default is the seed's reading of a calibrated score: at least 0.7 ``"highly relevant"``, from 0.4 up
to 0.7 ``"possibly relevant"``, below 0.4 ``"not relevant"``. A score equal to an edge belongs to the band
above it. Bands only mean something on probabilities: the pipeline gives a result a band only when its
score is one (a fitted calibration, a probability back end, or the sigmoid normalization).
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

from rerank_core._validation import finite_float
from rerank_core.errors import ConfigurationError

__all__ = ["DEFAULT_BANDS", "Bands"]


@dataclass(frozen=True)
class Bands:
    """Band names for score ranges: ``names[i]`` covers ``[edges[i - 1], edges[i])`` (open at the ends).

    Args:
        edges: increasing cut points in (0, 1).
        names: one name more than there are edges, lowest band first, distinct and non-blank.
    """

    edges: tuple[float, ...] = (0.4, 0.7)
    names: tuple[str, ...] = ("not relevant", "possibly relevant", "highly relevant")

    def __post_init__(self) -> None:
        try:
            edges, names = tuple(finite_float(e) for e in self.edges), tuple(self.names)
        except TypeError:
            raise ConfigurationError(
                "bands", f"edges and names must be sequences, got {self.edges!r}"
            ) from None
        if not edges or not all(e is not None and 0 < e < 1 for e in edges):
            raise ConfigurationError("bands", f"edges must be numbers in (0, 1), got {self.edges!r}")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ConfigurationError("bands", f"edges must increase, got {self.edges!r}")
        if len(names) != len(edges) + 1:
            raise ConfigurationError(
                "bands", f"{len(edges)} edges need {len(edges) + 1} names, got {len(names)}: {self.names!r}"
            )
        if not all(isinstance(n, str) and n.strip() for n in names) or len(set(names)) != len(names):
            raise ConfigurationError("bands", f"names must be distinct non-blank strings, got {self.names!r}")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "names", names)

    def band(self, score: float) -> str:
        """The name of the band ``score`` falls in."""
        return self.names[bisect.bisect_right(self.edges, score)]


DEFAULT_BANDS = Bands()

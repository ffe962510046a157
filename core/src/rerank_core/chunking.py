"""Long texts: token windows with overlap, scored and aggregated, or an explicit, reported truncation.

A text is never cut silently. Given the back end's pair budget (model limit minus special tokens
minus the query), a text that does not fit is either split into windows of ``window_size`` tokens
whose starts are ``window_stride`` tokens apart (each window a substring of the original text,
snapped back to a word start so that re-tokenizing it gives the same tokens), or truncated to the
budget with ``truncated=True`` in its result, or refused, as the policy says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rerank_core.backends.base import PairLimit
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.types import Window

__all__ = ["LongTextPolicy", "Segment", "aggregate_scores", "plan_segments"]

LongTextMode = Literal["window", "truncate", "error"]
Aggregation = Literal["max", "mean", "first"]

# A query must leave at least this many tokens of the pair for the candidate text (or half the
# pair's room, for models with very short limits).
MIN_TEXT_TOKENS = 16


@dataclass(frozen=True)
class LongTextPolicy:
    """How texts longer than the model's budget are handled.

    - ``mode``: ``"window"`` (default), ``"truncate"`` or ``"error"``.
    - ``window_size``: tokens of text per window; ``None`` = whatever the model leaves after the
      query. A smaller size also splits texts that would fit (passage-level scoring).
    - ``window_stride``: tokens between window starts; ``None`` = 3/4 of the size (1/4 overlap).
    - ``aggregate``: ``"max"`` (best window, default), ``"mean"``, or ``"first"`` window's score.
    """

    mode: LongTextMode = "window"
    window_size: int | None = None
    window_stride: int | None = None
    aggregate: Aggregation = "max"

    def __post_init__(self) -> None:
        if self.mode not in ("window", "truncate", "error"):
            raise ConfigurationError(
                "long_text", f"must be 'window', 'truncate' or 'error', got {self.mode!r}"
            )
        if self.aggregate not in ("max", "mean", "first"):
            raise ConfigurationError("aggregate", f"must be 'max', 'mean' or 'first', got {self.aggregate!r}")
        for name in ("window_size", "window_stride"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigurationError(name, f"must be an integer >= 1 or None, got {value!r}")
        size, stride = self.window_size, self.window_stride
        if size is not None and stride is not None and stride > size:
            raise ConfigurationError(
                "window_stride",
                f"({stride}) must not exceed window_size ({size}): text between windows "
                "would never be scored",
            )


@dataclass(frozen=True, slots=True)
class Segment:
    """One (piece of a) candidate text to score. ``window`` is None when the whole text is scored."""

    candidate: int
    text: str
    window: Window | None = None
    truncated: bool = False


def _word_starts(text: str, offsets: list[tuple[int, int]]) -> list[bool]:
    """Whether each token begins a word (so a window starting there re-tokenizes identically)."""
    starts = []
    for start, _ in offsets:
        starts.append(start == 0 or not (text[start - 1].isalnum() and text[start].isalnum()))
    return starts


def _window_bounds(n: int, size: int, stride: int, starts: list[bool]) -> list[tuple[int, int]]:
    """Token ranges [a, b) covering 0..n, each at most ``size`` long, starts snapped to word starts."""
    bounds: list[tuple[int, int]] = []
    a = 0
    while True:
        b = min(a + size, n)
        bounds.append((a, b))
        if b >= n:
            return bounds
        nxt = a + stride
        # Snap back to a word start, but always move forward and never skip past the window end.
        snapped = nxt
        while snapped > a + 1 and not starts[snapped]:
            snapped -= 1
        a = snapped if snapped > a else nxt
        a = min(a, b)


def plan_segments(
    query: str,
    texts: Sequence[str],
    limit: PairLimit | None,
    policy: LongTextPolicy,
    *,
    query_argument: str = "query",
    candidate_argument: str = "candidates",
) -> list[Segment]:
    """Split one query's candidate texts into the segments to score, in candidate order."""
    if limit is None or not texts:
        return [Segment(i, t) for i, t in enumerate(texts)]
    tok = limit.tokenizer
    all_offsets = tok.offsets([query, *texts])
    query_tokens = len(all_offsets[0])
    budget = limit.max_length - limit.special_tokens - query_tokens
    min_text = max(1, min(MIN_TEXT_TOKENS, (limit.max_length - limit.special_tokens) // 2))
    if budget < min_text:
        raise InvalidInputError(
            query_argument,
            f"is {query_tokens} tokens long; the model takes {limit.max_length} tokens per pair, "
            f"which leaves {max(budget, 0)} for the candidate text (at least {min_text} are needed). "
            "Shorten the query or use a model with a longer limit.",
        )
    size = min(policy.window_size or budget, budget)
    stride = min(policy.window_stride or max(1, (size * 3) // 4), size)
    segments: list[Segment] = []
    for i, (text, offsets) in enumerate(zip(texts, all_offsets[1:], strict=True)):
        n = len(offsets)
        fits = size if policy.mode == "window" else budget
        if n <= fits:
            segments.append(Segment(i, text))
            continue
        if policy.mode == "error":
            raise InvalidInputError(
                f"{candidate_argument}[{i}]",
                f"is {n} tokens long, more than the {budget} the model leaves for it after the query "
                "(long_text='error'); use long_text='window' or 'truncate'",
            )
        if policy.mode == "truncate":
            end = offsets[budget - 1][1]
            segments.append(Segment(i, text[:end], Window(0, 0, end, 1), truncated=True))
            continue
        bounds = _window_bounds(n, size, stride, _word_starts(text, offsets))
        for w, (a, b) in enumerate(bounds):
            start, end = offsets[a][0], offsets[b - 1][1]
            segments.append(Segment(i, text[start:end], Window(w, start, end, len(bounds))))
    return segments


def aggregate_scores(
    segments: Sequence[Segment], scores: np.ndarray, n_candidates: int, how: Aggregation
) -> tuple[np.ndarray, list[Window | None], list[bool]]:
    """Per-candidate raw score, best window (None for unsplit texts) and truncation flag."""
    out = np.empty(n_candidates, dtype=np.float64)
    windows: list[Window | None] = [None] * n_candidates
    truncated = [False] * n_candidates
    by_candidate: list[list[int]] = [[] for _ in range(n_candidates)]
    for j, seg in enumerate(segments):
        by_candidate[seg.candidate].append(j)
    for i, idx in enumerate(by_candidate):
        seg0 = segments[idx[0]]
        if len(idx) == 1:
            out[i] = scores[idx[0]]
            truncated[i] = seg0.truncated
            windows[i] = seg0.window if seg0.truncated else None
            continue
        values = scores[idx]
        best = int(np.argmax(values))  # first maximum: earliest window on ties
        if how == "max":
            out[i] = values[best]
        elif how == "mean":
            out[i] = float(values.mean())
        else:
            out[i] = values[0]
            best = 0
        windows[i] = segments[idx[best]].window
    return out, windows, truncated

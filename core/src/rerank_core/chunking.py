"""Long texts: token windows with overlap, scored and aggregated, or an explicit, reported truncation.

A text is never cut silently. Given the back end's pair budget (model limit minus special tokens
minus the query), a text that does not fit is either split into windows of ``window_size`` tokens
whose starts are ``window_stride`` tokens apart (each window a substring of the original text,
snapped back to a word start so that re-tokenizing it gives the same tokens), or truncated to the
budget with ``truncated=True`` in its result, or refused, as the policy says.

Work per candidate is bounded before any tokenizer sees the whole text: a text longer than ``max_chars``
characters is cut to its first ``max_chars`` (only that part is tokenized), and a text is scored in at most
``max_windows`` windows; either cut is reported (``truncated=True``, ``usage["truncated"]``). A query too
long for the pair budget is cut (``long_query``, keeping its end by default) and reported, or refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rerank_core.backends.base import PairLimit
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.types import Window

__all__ = [
    "LongTextPolicy",
    "Plan",
    "Segment",
    "aggregate_scores",
    "estimated_segments",
    "plan",
    "plan_segments",
]

LongTextMode = Literal["window", "truncate", "error"]
Aggregation = Literal["max", "mean", "first"]
LongQuery = Literal["keep_end", "keep_start", "error"]

DEFAULT_MAX_WINDOWS = 256
DEFAULT_MAX_CHARS = 100_000
# For estimates made before any tokenizer runs (coalescing): about 4 characters per token and ~250 tokens
# between window starts, so one window per 1,000 characters of text.
CHARS_PER_WINDOW_ESTIMATE = 1_000

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
    - ``max_windows``: at most this many windows per candidate (default 256, ``None``: no cap). The rest of
      the text is not scored and the result says ``truncated=True`` (its ``window`` is still the best
      scored window, ``window.count`` the windows scored). A guard against hostile inputs, not a limit on
      ordinary ones: with ``max_chars`` (100,000 characters, some 25,000 tokens) a 512-token model never
      reaches it, and it binds only with short windows (``window_size=32``) or very dense text; a 5 MB text
      would otherwise become ~18,800 model pairs (half an hour of CPU) in one call.
    - ``max_chars``: only the first ``max_chars`` characters of a candidate are tokenized and scored
      (default 100,000, ``None``: no cap); a longer text is reported ``truncated=True`` (with
      ``mode="error"`` it is refused). This bounds the tokenizer's time and memory before it runs (planning
      the windows of a 5 MB text took 18 s and 1.7 GB); 100,000 characters are ~25,000 tokens, some 70
      windows of a 512-token model, so the cap rarely changes what is scored.
    - ``long_query``: a query that leaves fewer than 16 tokens of the pair for the text: ``"keep_end"``
      (default) cuts it to half the pair's room keeping its end, ``"keep_start"`` keeping its start,
      ``"error"`` refuses it (``InvalidInputError`` naming the query). The end is kept by default because
      the long queries of chat engines and agents put the history first and the question being asked
      last. A cut is reported: ``RerankResponse.query_truncated`` and ``usage["query_truncated"]``.
      Queries that fit are never changed.
    """

    mode: LongTextMode = "window"
    window_size: int | None = None
    window_stride: int | None = None
    aggregate: Aggregation = "max"
    max_windows: int | None = DEFAULT_MAX_WINDOWS
    max_chars: int | None = DEFAULT_MAX_CHARS
    long_query: LongQuery = "keep_end"

    def __post_init__(self) -> None:
        if self.mode not in ("window", "truncate", "error"):
            raise ConfigurationError(
                "long_text", f"must be 'window', 'truncate' or 'error', got {self.mode!r}"
            )
        if self.aggregate not in ("max", "mean", "first"):
            raise ConfigurationError("aggregate", f"must be 'max', 'mean' or 'first', got {self.aggregate!r}")
        if self.long_query not in ("keep_end", "keep_start", "error"):
            raise ConfigurationError(
                "long_query", f"must be 'keep_end', 'keep_start' or 'error', got {self.long_query!r}"
            )
        for name in ("window_size", "window_stride", "max_windows", "max_chars"):
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


@dataclass(frozen=True, slots=True)
class Plan:
    """One query's segments, and the query the model reads (``query`` cut to fit when
    ``query_truncated``)."""

    query: str
    segments: list[Segment]
    query_truncated: bool = False


def estimated_segments(texts: Sequence[str], policy: LongTextPolicy) -> int:
    """How many segments ``texts`` will make, estimated before any tokenizer runs (one window per
    :data:`CHARS_PER_WINDOW_ESTIMATE` characters, within the policy's caps; at least one per text)."""
    total = 0
    for text in texts:
        n = len(text) if policy.max_chars is None else min(len(text), policy.max_chars)
        windows = 1 + n // CHARS_PER_WINDOW_ESTIMATE if policy.mode == "window" else 1
        total += windows if policy.max_windows is None else min(windows, policy.max_windows)
    return total


def _cut_query(
    query: str, offsets: list[tuple[int, int]], keep: int, how: LongQuery
) -> tuple[str, list[tuple[int, int]]]:
    """``query`` cut to about its last (``keep_end``) or first ``keep`` tokens, at a word start."""
    starts = _word_starts(query, offsets)
    n = len(offsets)
    if how == "keep_end":
        a = n - keep
        while a < n - 1 and not starts[a]:  # forward to a word start: never more than ``keep`` tokens
            a += 1
        return query[offsets[a][0] :], offsets[a:]
    b = keep
    while b > 1 and not starts[b]:  # back to a word start
        b -= 1
    return query[: offsets[b - 1][1]], offsets[:b]


def _fit_query(
    query: str, limit: PairLimit, policy: LongTextPolicy, query_argument: str
) -> tuple[str, int, bool]:
    """The query the model reads, its token count, and whether it was cut (``policy.long_query``)."""
    tok = limit.tokenizer
    room = limit.max_length - limit.special_tokens
    min_text = max(1, min(MIN_TEXT_TOKENS, room // 2))
    source = query
    if policy.max_chars is not None and len(query) > policy.max_chars:
        # Only the kept end (or start) of a huge query is tokenized.
        source = query[-policy.max_chars :] if policy.long_query == "keep_end" else query[: policy.max_chars]
    offsets = tok.offsets([source])[0]
    tokens = len(offsets)
    if room - tokens >= min_text:
        if source is query:
            return query, tokens, False
        if policy.long_query != "error":
            return source, tokens, True
        source = query  # a huge query that fits after all: read it whole
        offsets = tok.offsets([source])[0]
        tokens = len(offsets)
        if room - tokens >= min_text:
            return query, tokens, False
    if policy.long_query == "error" or room // 2 < 1:
        raise InvalidInputError(
            query_argument,
            f"is {'at least ' if source is not query else ''}{tokens} tokens long; "
            f"the model takes {limit.max_length} tokens per pair, "
            f"which leaves {max(room - tokens, 0)} for the candidate text (at least {min_text} are "
            "needed). Shorten the query, use a model with a longer limit, or let long queries be cut "
            "(long_query='keep_end' or 'keep_start').",
        )
    keep = room // 2  # the query gets at most half the pair's room; the text keeps the rest
    cut, cut_offsets = _cut_query(source, offsets, min(keep, tokens), policy.long_query)
    tokens = len(tok.offsets([cut])[0])
    while room - tokens < min_text and cut_offsets:  # re-tokenizing the cut gave more tokens: cut more
        keep = max(1, keep - (min_text - (room - tokens)))
        cut, cut_offsets = _cut_query(source, offsets, min(keep, len(offsets)), policy.long_query)
        tokens = len(tok.offsets([cut])[0])
        if keep == 1:
            break
    if room - tokens < min_text:  # a tokenizer that will not let the query shrink: refuse, never loop
        raise InvalidInputError(
            query_argument,
            f"could not be cut to fit the model's {limit.max_length} tokens per pair "
            f"({tokens} tokens after cutting); shorten the query",
        )
    return cut, tokens, True


def _fit_own_query(
    query: str, limit: PairLimit, policy: LongTextPolicy, query_argument: str
) -> tuple[str, int, bool]:
    """For a model that encodes the query alone (``limit.query_tokens`` set): the query it reads, its
    token count, and whether it was cut to ``query_tokens`` (``policy.long_query``)."""
    tok = limit.tokenizer
    room = limit.query_tokens
    assert room is not None
    source = query
    if policy.max_chars is not None and len(query) > policy.max_chars:
        source = query[-policy.max_chars :] if policy.long_query == "keep_end" else query[: policy.max_chars]
    offsets = tok.offsets([source])[0]
    tokens = len(offsets)
    if tokens <= room and source is query:
        return query, tokens, False
    if policy.long_query == "error":
        raise InvalidInputError(
            query_argument,
            f"is {'at least ' if source is not query else ''}{tokens} tokens long; the model encodes a "
            f"query in at most {room} tokens. Shorten the query, or let long queries be cut "
            "(long_query='keep_end' or 'keep_start').",
        )
    if tokens <= room:  # a huge query whose kept part fits
        return source, tokens, True
    keep = room
    cut, _ = _cut_query(source, offsets, keep, policy.long_query)
    tokens = len(tok.offsets([cut])[0])
    while tokens > room and keep > 1:  # re-tokenizing the cut gave more tokens: cut more
        keep = max(1, keep - (tokens - room))
        cut, _ = _cut_query(source, offsets, keep, policy.long_query)
        tokens = len(tok.offsets([cut])[0])
    if tokens > room:
        raise InvalidInputError(
            query_argument, f"could not be cut to the model's {room} query tokens ({tokens} after cutting)"
        )
    return cut, tokens, True


def plan(
    query: str,
    texts: Sequence[str],
    limit: PairLimit | None,
    policy: LongTextPolicy,
    *,
    query_argument: str = "query",
    candidate_argument: str = "candidates",
) -> Plan:
    """Split one query's candidate texts into the segments to score, in candidate order, and fit the
    query to the pair budget."""
    if limit is None or not texts:
        return Plan(query, [Segment(i, t) for i, t in enumerate(texts)])
    tok = limit.tokenizer
    if limit.query_tokens is not None:  # the query is encoded on its own: the text has the budget to itself
        scored_query, _, query_cut = _fit_own_query(query, limit, policy, query_argument)
        budget = limit.max_length - limit.special_tokens
    else:
        scored_query, query_tokens, query_cut = _fit_query(query, limit, policy, query_argument)
        budget = limit.max_length - limit.special_tokens - query_tokens
    size = min(policy.window_size or budget, budget)
    stride = min(policy.window_stride or max(1, (size * 3) // 4), size)
    max_chars = policy.max_chars
    capped = [max_chars is not None and len(t) > max_chars for t in texts]
    for i, cut in enumerate(capped):
        if cut and policy.mode == "error":
            raise InvalidInputError(
                f"{candidate_argument}[{i}]",
                f"is {len(texts[i])} characters long, more than max_chars={max_chars} "
                "(long_text='error'); use long_text='window' or 'truncate', or raise max_chars",
            )
    # Only the first max_chars characters of a text are ever tokenized.
    seen = [t[:max_chars] if cut else t for t, cut in zip(texts, capped, strict=True)]
    all_offsets = tok.offsets(seen)
    segments: list[Segment] = []
    for i, (text, offsets) in enumerate(zip(seen, all_offsets, strict=True)):
        n = len(offsets)
        fits = size if policy.mode == "window" else budget
        if n <= fits:
            if capped[i]:
                end = offsets[-1][1] if offsets else len(text)
                segments.append(Segment(i, text[:end], Window(0, 0, end, 1), truncated=True))
            else:
                segments.append(Segment(i, texts[i]))
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
        cut = capped[i]
        if policy.max_windows is not None and len(bounds) > policy.max_windows:
            bounds, cut = bounds[: policy.max_windows], True
        for w, (a, b) in enumerate(bounds):
            start, end = offsets[a][0], offsets[b - 1][1]
            segments.append(Segment(i, text[start:end], Window(w, start, end, len(bounds)), truncated=cut))
    return Plan(scored_query, segments, query_cut)


def plan_segments(
    query: str,
    texts: Sequence[str],
    limit: PairLimit | None,
    policy: LongTextPolicy,
    *,
    query_argument: str = "query",
    candidate_argument: str = "candidates",
) -> list[Segment]:
    """The segments of :func:`plan` (the query they are scored with is ``plan(...).query``)."""
    return plan(
        query, texts, limit, policy, query_argument=query_argument, candidate_argument=candidate_argument
    ).segments


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
        truncated[i] = any(segments[j].truncated for j in idx)  # windows capped by max_windows/max_chars
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

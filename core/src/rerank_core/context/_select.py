"""The context-selection stage: from the reranked results to what reaches the LLM.

Pure (no model, no I/O, nothing the caller passed is changed) and deterministic (ties go to the better rank).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from rerank_core.context._policy import ContextPolicy
from rerank_core.context._similarity import EmbeddingSimilarity, ShingleSimilarity
from rerank_core.errors import InvalidInputError
from rerank_core.types import Candidate, RerankResponse, RerankResult

__all__ = ["ContextItem", "ContextSelection", "DroppedCandidate", "edges_order", "select_context"]


class ContextItem(NamedTuple):
    """One item of the context, in its final place (immutable; a NamedTuple, cheap to build).

    - ``position``: its place in the context (0 first); ``rank``: its best chunk's place in the ranked
      results; ``index``: that chunk's position in the reranker's input (``result.index``).
    - ``text``: what reaches the LLM (merged chunks in document order, consecutive positions joined by the
      policy's ``merge_separator``, a gap between them marked by its ``gap_separator``).
    - ``tokens``: the tokens of ``text`` by the policy's counter (merged: separators included).
    - ``result``: the best chunk's :class:`RerankResult` (its id, metadata and scores).
    - ``chunks`` / ``chunk_ids``: the input positions / ids of the chunks in ``text``, in text order
      (one chunk unless ``group_mode="merge"`` merged several); ``group``: the parent id (``group_by``).
    """

    position: int
    rank: int
    index: int
    text: str
    tokens: int
    result: RerankResult
    chunks: tuple[int, ...]
    chunk_ids: tuple[Any, ...] = ()
    group: Any = None

    @property
    def merged(self) -> bool:
        return len(self.chunks) > 1


class DroppedCandidate(NamedTuple):
    """A ranked result that does not reach the context, and why (immutable; a NamedTuple, the cheapest
    record to build, as most candidates of a budgeted query end up here).

    - ``reason``: ``"budget"`` (it did not fit the tokens left), ``"duplicate"`` (``similarity`` to the
      kept ``of`` is at least ``dedup_threshold``), ``"diversity"`` (MMR picked lower-ranked, more novel
      candidates; ``of`` is the kept one it is most similar to), ``"same_parent"`` (``of`` is the kept chunk
      of its parent) or ``"max_items"``.
    - ``index`` / ``rank``: its position in the reranker's input / in the ranked results; ``of``: the input
      position (``index``) of the kept candidate concerned, or ``None``.
    - ``tokens``: its tokens when they were counted (``None``: not needed to decide).
    """

    rank: int
    index: int
    reason: str
    of: int | None = None
    similarity: float | None = None
    tokens: int | None = None
    result: RerankResult | None = None

    def to_dict(self) -> dict[str, Any]:
        from rerank_core.profiles import json_value

        return {
            "index": self.index,
            "rank": self.rank,
            "id": None if self.result is None else json_value(self.result.id),
            "reason": self.reason,
            "of": self.of,
            "similarity": self.similarity,
            "tokens": self.tokens,
        }


@dataclass(frozen=True, slots=True)
class ContextSelection:
    """What the stage kept (``items``, in their final order) and dropped (``dropped``, in rank order, each
    with its reason): together every ranked result, once. ``tokens_used`` is the sum of the kept items'
    tokens, ``token_budget`` the policy's (``None``: none), ``counter`` names how tokens were counted
    (``"chars/4"``, a tokenizer's class and name, a callable's name). ``no_answer`` is the reranker's
    reason when its no-answer floor left nothing to select. Iterating and ``len()`` go over ``items``."""

    items: tuple[ContextItem, ...]
    dropped: tuple[DroppedCandidate, ...]
    tokens_used: int
    token_budget: int | None
    counter: str
    policy: str
    no_answer: str | None = None

    def __iter__(self) -> Iterator[ContextItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def texts(self) -> list[str]:
        """The items' texts, in context order (what to put in the prompt)."""
        return [item.text for item in self.items]

    @property
    def indices(self) -> list[int]:
        """The input positions of the kept chunks, in context order (merged chunks in text order)."""
        return [i for item in self.items for i in item.chunks]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible summary (what the adapters' events carry)."""
        return {
            "policy": self.policy,
            "counter": self.counter,
            "tokens_used": self.tokens_used,
            "token_budget": self.token_budget,
            "kept": [list(item.chunks) for item in self.items],
            "dropped": [d.to_dict() for d in self.dropped],
            "no_answer": self.no_answer,
        }


def edges_order(n: int) -> list[int]:
    """The "lost in the middle" order of ``n`` items ranked best first: rank 0 first, rank 1 last, rank 2
    second, rank 3 second to last, ..., the weakest in the middle (``[0, 2, 4, 3, 1]`` for 5). The same
    order as Haystack's ``LostInTheMiddleRanker``, which inserts each next rank at ``len // 2 + len % 2``
    of the list built so far (haystack/components/rankers/lost_in_the_middle.py, deepset-ai/haystack at
    03d0a792)."""
    order: list[int] = []
    for rank in range(n):
        order.insert(len(order) // 2 + len(order) % 2, rank)
    return order


def _results(ranked: object, scores: Sequence[float] | None) -> tuple[list[RerankResult], str | None]:
    if isinstance(ranked, RerankResponse):
        if scores is not None:
            raise InvalidInputError("scores", "is only for plain candidates: a RerankResponse has its scores")
        return list(ranked.results), ranked.no_answer
    if isinstance(ranked, list | tuple) and scores is None and all(type(r) is RerankResult for r in ranked):
        return list(ranked), None
    if ranked is None or isinstance(ranked, str | bytes | Mapping) or not isinstance(ranked, Sequence):
        raise InvalidInputError(
            "ranked",
            "must be a RerankResponse or a list of RerankResult, Candidate or str (best first), "
            f"got {type(ranked).__name__}",
        )
    if scores is not None and len(scores) != len(ranked):
        raise InvalidInputError("scores", f"has {len(scores)} values for {len(ranked)} candidates")
    out = []
    for i, item in enumerate(ranked):
        if isinstance(item, RerankResult):
            if scores is not None:
                raise InvalidInputError(
                    "scores", "is only for plain candidates: a RerankResult has its score"
                )
            out.append(item)
            continue
        if isinstance(item, str):
            item = Candidate(item)
        if not isinstance(item, Candidate) or not isinstance(item.text, str):
            raise InvalidInputError(
                f"ranked[{i}]", f"must be a RerankResult, a Candidate or a str, got {type(item).__name__}"
            )
        s = float("nan") if scores is None else float(scores[i])
        out.append(RerankResult(i, s, s, item.text, id=item.id, metadata=item.metadata))
    return out, None


def _relevance(results: list[RerankResult]) -> list[float]:
    """``rel`` of MMR: the relevance scores as they are when all lie in [0, 1] (a calibration, a probability
    back end, the sigmoid), else min-max scaled over the candidates (1 when all equal), so that they are on
    the similarities' scale; rank-derived (``1 - rank / n``) when a score is missing or not finite, or when
    the scores do not follow the rank (a judge stage re-ordered the top slots and left ``relevance_score``
    as the pre-judge score): the rank is the final order, MMR must not undo it."""
    n = len(results)
    s = [r.relevance_score for r in results]
    if not all(math.isfinite(x) for x in s) or any(b > a for a, b in itertools.pairwise(s)):
        return [1.0 - k / n for k in range(n)]
    if all(0.0 <= x <= 1.0 for x in s):
        return s
    lo, hi = min(s), max(s)
    return [1.0 if hi == lo else (x - lo) / (hi - lo) for x in s]


def _position(meta: Mapping[str, Any] | None, key: str) -> float | None:
    value = None if meta is None else meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def select_context(
    ranked: RerankResponse | Sequence[RerankResult | Candidate | str],
    policy: ContextPolicy | Mapping[str, Any] | None = None,
    *,
    embeddings: Sequence[Any] | Mapping[int, Any] | None = None,
    scores: Sequence[float] | None = None,
) -> ContextSelection:
    """Select what reaches the LLM from a ranking (see :class:`ContextPolicy` and docs/context-selection.md).

    ``ranked``: a :class:`RerankResponse` (its ``results``; its ``no_answer`` is carried over), or a list
    best first of :class:`RerankResult`, :class:`Candidate` or texts (for a ranking made elsewhere: pass
    ``scores``, or MMR reads the rank). ``embeddings`` (``similarity="embeddings"``): one vector per
    position of the reranker's input, ``embeddings[result.index]`` (a sequence or a mapping), instead of
    the vectors in metadata under ``policy.embedding_key``. Nothing given is changed.
    """
    policy = ContextPolicy() if policy is None else ContextPolicy.coerce(policy)
    assert policy is not None
    results, no_answer = _results(ranked, scores)
    return _select(results, policy, embeddings, no_answer)


def _select(
    results: list[RerankResult],
    policy: ContextPolicy,
    embeddings: Sequence[Any] | Mapping[int, Any] | None,
    no_answer: str | None,
) -> ContextSelection:
    n = len(results)
    texts = [r.text for r in results]
    count = policy.counter
    tokens: list[int | None] = [None] * n

    def tok(k: int) -> int:
        t = tokens[k]
        if t is None:
            t = tokens[k] = count(texts[k])
        return t

    sim: ShingleSimilarity | EmbeddingSimilarity | None = None
    if policy.needs_similarity():
        if policy.similarity == "shingles":
            sim = ShingleSimilarity(texts, policy.shingle_size)
        else:
            sim = EmbeddingSimilarity(n, _vectors(results, policy.embedding_key, embeddings))

    group_by = policy.group_by
    parents: list[Any] = [
        None if r.metadata is None or group_by is None else r.metadata.get(group_by) for r in results
    ]
    for k, parent in enumerate(parents):
        if parent is not None and not isinstance(parent, Hashable):
            raise InvalidInputError(
                f"results[{k}].metadata[{group_by!r}]",
                f"must be a parent id (a str, an int, ...), got {type(parent).__name__}",
            )
    merge = policy.group_mode == "merge"
    budget, max_items, threshold = policy.token_budget, policy.max_items, policy.dedup_threshold

    def place(k: int) -> tuple[int, float, int]:
        p = _position(results[k].metadata, policy.position_key)
        return (0, p, k) if p is not None else (1, 0.0, k)

    merged_counts: dict[str, int] = {}

    def merged(ks: list[int]) -> tuple[list[int], str, int]:
        """A parent's kept chunks in document order, their text (consecutive positions joined by
        ``merge_separator``, anything else by ``gap_separator``: chunks without a position are never
        taken as adjacent) and its tokens (the whole text counted: separators included)."""
        ks = sorted(ks, key=place)
        parts = [texts[ks[0]]]
        for a, b in itertools.pairwise(ks):
            pa, pb = place(a), place(b)
            adjacent = pa[0] == 0 and pb[0] == 0 and pb[1] == pa[1] + 1
            parts += (policy.merge_separator if adjacent else policy.gap_separator, texts[b])
        text = "".join(parts)
        t = merged_counts.get(text)
        if t is None:
            t = merged_counts[text] = count(text)
        return ks, text, t

    kept: list[int] = []  # ranks, in the order they were kept
    parent_kept: dict[Any, int] = {}
    parent_ranks: dict[Any, list[int]] = {}  # merge: the ranks kept of each parent
    parent_tokens: dict[Any, int] = {}  # merge: the tokens of each parent's merged text so far
    items = 0
    used = 0
    dropped: dict[int, DroppedCandidate] = {}
    # MMR keeps each candidate's best similarity to the kept ones up to date (incremental: O(n) per keep)
    best_sim: list[float] = [-math.inf] * n
    best_of: list[int | None] = [None] * n
    mmr = policy.mmr_lambda

    def drop(k: int, reason: str, of: int | None = None, similarity: float | None = None) -> None:
        dropped[k] = DroppedCandidate(
            k,
            results[k].index,
            reason,
            None if of is None else results[of].index,
            similarity,
            tokens[k],
            results[k],
        )

    def closest(k: int) -> tuple[float | None, int | None]:
        assert sim is not None
        if mmr is not None:  # MMR keeps it up to date
            return (best_sim[k], best_of[k]) if best_of[k] is not None else (None, None)
        assert threshold is not None
        found = sim.closest_kept(k, threshold)
        return (None, None) if found is None else found

    def consider(k: int) -> bool:
        nonlocal items, used
        parent = parents[k]
        known = parent is not None and parent in parent_kept
        if known and not merge:
            drop(k, "same_parent", parent_kept[parent])
            return False
        new_item = not (merge and known)
        if new_item and max_items is not None and items >= max_items:
            drop(k, "max_items")
            return False
        cost = 0
        if budget is not None:
            if used >= budget:
                drop(k, "budget")
                return False
            cost = tok(k)
            if not new_item:  # joining a parent: what its merged text grows by (the separator too)
                cost = merged([*parent_ranks[parent], k])[2] - parent_tokens[parent]
            if cost > budget - used:
                drop(k, "budget")
                return False
        if threshold is not None and kept:
            s, j = closest(k)
            if s is not None and j is not None and s >= threshold:
                drop(k, "duplicate", j, s)
                return False
        kept.append(k)
        if sim is not None and threshold is not None and mmr is None:
            sim.keep(k)
        used += cost
        items += new_item
        if parent is not None:
            parent_kept.setdefault(parent, k)
            if merge:
                parent_ranks.setdefault(parent, []).append(k)
                parent_tokens[parent] = parent_tokens.get(parent, 0) + cost
        return True

    if mmr is None:
        for k in range(n):
            consider(k)
    else:
        assert sim is not None
        rel = _relevance(results)
        pool = list(range(n))
        while pool:
            if (max_items is not None and items >= max_items and not merge) or (
                budget is not None and used >= budget
            ):
                break

            def score(k: int) -> float:
                s = best_sim[k] if best_of[k] is not None else 0.0
                return mmr * rel[k] - (1.0 - mmr) * s

            pick = max(pool, key=lambda k: (score(k), -k))  # ties: the better rank
            pool.remove(pick)
            if consider(pick) and pool:
                for k, s in zip(pool, sim.against_all(pick, pool), strict=True):
                    if s > best_sim[k]:
                        best_sim[k], best_of[k] = s, pick
        worst_kept = max(kept, default=-1)
        for k in pool:  # never picked: passed over for novelty, or below every pick
            if k < worst_kept:
                drop(k, "diversity", best_of[k], None if best_of[k] is None else best_sim[k])
            elif max_items is not None and items >= max_items:
                drop(k, "max_items")
            else:
                drop(k, "budget")

    # context items: one per kept chunk, or per parent when merging, at the place of its best chunk
    groups: dict[Any, list[int]] = {}
    for k in sorted(kept):
        key = ("parent", parents[k]) if merge and parents[k] is not None else ("rank", k)
        groups.setdefault(key, []).append(k)
    ordered = sorted(groups.values(), key=lambda ks: ks[0])
    if policy.order == "edges":
        ordered = [ordered[i] for i in edges_order(len(ordered))]
    out = []
    for position, ks in enumerate(ordered):
        best = ks[0]
        if len(ks) > 1:
            ks, text, tokens_of = merged(ks)
        else:
            text, tokens_of = texts[best], tok(best)
        out.append(
            ContextItem(
                position=position,
                rank=best,
                index=results[best].index,
                text=text,
                tokens=tokens_of,
                result=results[best],
                chunks=tuple(results[k].index for k in ks),
                chunk_ids=tuple(results[k].id for k in ks),
                group=parents[best],
            )
        )
    return ContextSelection(
        items=tuple(out),
        dropped=tuple(dropped[k] for k in sorted(dropped)),
        tokens_used=sum(item.tokens for item in out),
        token_budget=budget,
        counter=count.name,
        policy=policy.describe(),
        no_answer=no_answer,
    )


def _vectors(
    results: list[RerankResult], key: str, embeddings: Sequence[Any] | Mapping[int, Any] | None
) -> Any:
    """A function rank -> the candidate's vector as a flat float array (an :class:`InvalidInputError`
    naming where it is, for a missing vector, one that is not numbers, holds NaN or inf, is empty, or has
    another number of dimensions than the first one compared)."""
    first: list[tuple[int, str]] = []  # (dimensions, where) of the first vector read

    def vector(k: int) -> np.ndarray:
        r = results[k]
        if embeddings is not None:
            try:
                v = embeddings[r.index]  # type: ignore[index]
            except (KeyError, IndexError):
                raise InvalidInputError(f"embeddings[{r.index}]", "is missing") from None
            where = f"embeddings[{r.index}]"
        else:
            v = None if r.metadata is None else r.metadata.get(key)
            where = f"results[{k}].metadata[{key!r}]"
        if v is None:
            raise InvalidInputError(
                where, "is missing: similarity='embeddings' needs a vector for every candidate it compares"
            )
        try:
            array = np.asarray(v, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise InvalidInputError(
                where, f"must be a vector of numbers, got {type(v).__name__} {_short(v)}"
            ) from None
        if array.size == 0:
            raise InvalidInputError(where, "is an empty vector")
        if not np.isfinite(array).all():
            raise InvalidInputError(where, "holds NaN or infinite values")
        if not first:
            first.append((array.size, where))
        elif array.size != first[0][0]:
            raise InvalidInputError(
                where, f"has {array.size} dimensions, {first[0][1]} has {first[0][0]}: vectors must match"
            )
        return array

    return vector


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

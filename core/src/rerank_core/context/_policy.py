"""``ContextPolicy``: the options of the context-selection stage, each checked once, here."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rerank_core.errors import ConfigurationError

__all__ = ["CHARS_PER_TOKEN", "ContextPolicy", "TokenCounter"]

CHARS_PER_TOKEN = 4
"""The character estimate (``tokenizer="chars"``): ``ceil(len(text) / 4)`` tokens, the usual rule of thumb
for English with BPE tokenizers (OpenAI's and Llama's); off by 20-30 % on code or other languages."""

REASONS = ("budget", "duplicate", "diversity", "same_parent", "max_items")
"""Why a candidate was dropped (``DroppedCandidate.reason``)."""


class TokenCounter:
    """Counts the tokens of a text: the character estimate, a callable ``text -> int`` (any integer: a
    numpy integer is taken), or an object with ``encode(text)`` (a Hugging Face tokenizer, tiktoken's
    ``Encoding``), whose length is the count.

    An object with ``encode_ordinary(text)`` (tiktoken's ``Encoding``) is asked for that: a chunk is plain
    text, and a special-token string in it (``"<|endoftext|>"``) is counted as text instead of refused
    (tiktoken's ``encode`` raises ``ValueError`` on it). A Hugging Face tokenizer is asked for
    ``encode(text, add_special_tokens=False)`` (a chunk inside a prompt gets no [CLS]/[SEP] or BOS of its
    own); an ``encode`` that does not take that keyword is called with the text alone (decided at the first
    call)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._plain_encode: bool | None = None
        if isinstance(tokenizer, str):  # "chars" (the policy checked it)
            self.name = f"chars/{CHARS_PER_TOKEN}"
            self.count: Any = _chars
        elif hasattr(tokenizer, "encode"):
            path = getattr(tokenizer, "name_or_path", None) or getattr(tokenizer, "name", None)
            kind = type(tokenizer).__name__
            self.name = f"{kind}({path})" if isinstance(path, str) and path else kind
            ordinary = callable(getattr(tokenizer, "encode_ordinary", None))
            self.count = self._encode_ordinary if ordinary else self._encode
        else:
            self.name = getattr(tokenizer, "__qualname__", None) or type(tokenizer).__name__
            self.count = self._call

    def __call__(self, text: str) -> int:
        return self.count(text)  # type: ignore[no-any-return]

    def _call(self, text: str) -> int:
        count = self.tokenizer(text)
        try:
            n = None if isinstance(count, bool) else operator.index(count)  # an int, a numpy integer
        except TypeError:
            n = None
        if n is None or n < 0:
            raise ConfigurationError(
                "tokenizer", f"a token-counting callable must return an int >= 0, got {count!r}"
            )
        return n

    def _encode_ordinary(self, text: str) -> int:
        return len(self.tokenizer.encode_ordinary(text))

    def _encode(self, text: str) -> int:
        encode = self.tokenizer.encode
        if self._plain_encode is None:
            try:
                ids = encode(text, add_special_tokens=False)
            except TypeError:
                self._plain_encode = True
            else:
                self._plain_encode = False
                return len(ids)
        return len(encode(text) if self._plain_encode else encode(text, add_special_tokens=False))


def _chars(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)  # ceil


def _positive_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(name, f"must be None or an int >= 1, got {value!r}")
    return value


def _unit_float(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= float(value) <= 1:
        raise ConfigurationError(name, f"must be None or a number in [0, 1], got {value!r}")
    return float(value)


def _key(value: object, name: str, *, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        what = "None or a metadata key (a non-empty str)" if optional else "a metadata key (a non-empty str)"
        raise ConfigurationError(name, f"must be {what}, got {value!r}")
    return value


@dataclass(frozen=True)
class ContextPolicy:
    """What reaches the LLM: the context-selection stage after the reranker's ranking.

    See docs/context-selection.md.

    Every step is off by default: ``ContextPolicy()`` keeps every result, in relevance order, and reports
    its tokens. The stage reads the ranked results best first and keeps or drops each one, the first reason
    that applies, cheapest check first: ``same_parent`` (``group_mode="best"``), ``max_items``, ``budget``,
    ``duplicate``; with ``mmr_lambda`` the next candidate considered is the MMR pick instead of the next in
    rank, and those never picked are dropped with reason ``diversity`` (or ``max_items`` / ``budget`` when
    they rank below every pick).

    Args:
        token_budget: the most tokens the kept texts may add up to (``None``: no budget). A candidate that
            does not fit is dropped (``budget``) and the next, smaller ones may still fill what is left
            (skip and continue).
        tokenizer: how tokens are counted: ``"chars"`` (default: ``ceil(len / 4)``, no dependency, an
            estimate), a callable ``text -> int``, or the tokenizer of your LLM (anything with
            ``encode(text)``: a Hugging Face tokenizer, a tiktoken ``Encoding``).
        dedup_threshold: drop a candidate whose similarity to a kept one is at least this (``duplicate``,
            naming the kept one); ``None``: no de-duplication.
        mmr_lambda: Maximal Marginal Relevance (Carbonell & Goldstein 1998): pick next the candidate
            maximising ``lambda * rel - (1 - lambda) * max sim to the kept ones``; ``1.0`` is the
            relevance order, ``0.0`` pure novelty. ``None``: off. It only drops candidates with a
            ``max_items`` or a ``token_budget`` to fill.
        similarity: ``"shingles"`` (default: Jaccard of word 3-shingle sets of the texts, lower-cased) or
            ``"embeddings"`` (cosine of the vectors under ``embedding_key`` in each candidate's metadata,
            or passed to :func:`select_context`).
        embedding_key: the metadata key of the vectors for ``similarity="embeddings"``.
        shingle_size: the words per shingle of ``similarity="shingles"`` (texts shorter than this are one
            shingle).
        group_by: a metadata key holding each chunk's parent (document) id; ``None``: no grouping.
            Candidates without that key are their own group.
        group_mode: ``"best"`` (default: keep the best chunk of each parent, the others dropped as
            ``same_parent``) or ``"merge"`` (the kept chunks of a parent become one context item, in
            document order, at the place of its best chunk; a gap between them is marked by
            ``gap_separator``).
        position_key: the metadata key of a chunk's position in its parent, for ``"merge"`` (chunks without
            it come after those with it, in rank order).
        merge_separator: what joins merged chunks at consecutive positions (``"\\n\\n"``).
        gap_separator: what joins merged chunks that are not known to be adjacent (positions not
            consecutive, or a chunk without a position): ``"\\n\\n[…]\\n\\n"``, so that the LLM does not
            read two distant passages as one. Both separators count toward ``token_budget``.
        order: the final order: ``"relevance"`` (default: best first) or ``"edges"`` (best first and
            second best last, the weakest in the middle: Haystack's ``LostInTheMiddleRanker`` order).
        max_items: keep at most this many context items (``None``: no limit).
    """

    token_budget: int | None = None
    tokenizer: Any = "chars"
    dedup_threshold: float | None = None
    mmr_lambda: float | None = None
    similarity: str = "shingles"
    embedding_key: str = "embedding"
    shingle_size: int = 3
    group_by: str | None = None
    group_mode: str = "best"
    position_key: str = "position"
    merge_separator: str = "\n\n"
    gap_separator: str = "\n\n[…]\n\n"
    order: str = "relevance"
    max_items: int | None = None
    counter: TokenCounter = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("token_budget", _positive_int(self.token_budget, "token_budget"))
        tokenizer = self.tokenizer
        if not (
            tokenizer == "chars"
            if isinstance(tokenizer, str)
            else callable(tokenizer) or hasattr(tokenizer, "encode")
        ):
            raise ConfigurationError(
                "tokenizer",
                f"must be 'chars', a callable text -> int, or an object with encode(text), got {tokenizer!r}",
            )
        put("dedup_threshold", _unit_float(self.dedup_threshold, "dedup_threshold"))
        put("mmr_lambda", _unit_float(self.mmr_lambda, "mmr_lambda"))
        if self.similarity not in ("shingles", "embeddings"):
            raise ConfigurationError(
                "similarity", f"must be 'shingles' or 'embeddings', got {self.similarity!r}"
            )
        _key(self.embedding_key, "embedding_key", optional=False)
        if (
            isinstance(self.shingle_size, bool)
            or not isinstance(self.shingle_size, int)
            or self.shingle_size < 1
        ):
            raise ConfigurationError("shingle_size", f"must be an int >= 1, got {self.shingle_size!r}")
        _key(self.group_by, "group_by", optional=True)
        if self.group_mode not in ("best", "merge"):
            raise ConfigurationError("group_mode", f"must be 'best' or 'merge', got {self.group_mode!r}")
        if self.group_mode == "merge" and self.group_by is None:
            raise ConfigurationError(
                "group_mode", "'merge' needs group_by (the metadata key of the parent id)"
            )
        _key(self.position_key, "position_key", optional=False)
        for name in ("merge_separator", "gap_separator"):
            if not isinstance(getattr(self, name), str):
                raise ConfigurationError(name, f"must be a str, got {getattr(self, name)!r}")
        if self.order not in ("relevance", "edges"):
            raise ConfigurationError("order", f"must be 'relevance' or 'edges', got {self.order!r}")
        put("max_items", _positive_int(self.max_items, "max_items"))
        put("counter", TokenCounter(tokenizer))

    def needs_similarity(self) -> bool:
        return self.dedup_threshold is not None or self.mmr_lambda is not None

    def describe(self) -> str:
        """The fields that differ from the defaults, as ``name=value`` pairs (the tokenizer by name)."""
        default = _DEFAULT
        parts = []
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if f.name == "tokenizer":
                if value != "chars":
                    parts.append(f"tokenizer={self.counter.name}")
            elif value != getattr(default, f.name):
                parts.append(f"{f.name}={value!r}")
        return f"ContextPolicy({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-compatible data; ``LookupError`` when its tokenizer is an object or a callable
        (it cannot be written as JSON)."""
        if self.tokenizer != "chars":
            raise LookupError("context")
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContextPolicy:
        """The policy :meth:`to_dict` wrote (an unknown field is a :class:`ConfigurationError`)."""
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError("context", f"unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def coerce(cls, value: object) -> ContextPolicy | None:
        """A ContextPolicy, a mapping of its fields, or ``None`` (how ``RerankerOptions(context=...)`` takes
        it)."""
        if value is None or isinstance(value, ContextPolicy):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise ConfigurationError(
            "context",
            f"must be a ContextPolicy, a mapping of its fields, or None, got {type(value).__name__}",
        )


_DEFAULT = ContextPolicy()

"""Parsers that turn whatever an LLM wrote into scores and orders, never raising on messy text.

- :func:`parse_permutation`: RankGPT-style ``[2] > [1] > [3]`` with any noise around it → always a full
  permutation of the window: identifiers in the order first written, then the ones never written in
  their previous relative order; repeats and unknown (out-of-range) identifiers dropped and counted.
- :func:`parse_grade`: one graded score from free text ("Relevance: **2**", "8/10", "2 out of 3") →
  a fraction in [0, 1], or ``None`` when no usable number is there.
- :func:`parse_grades`: ``[id] grade`` answers for several passages → a fraction per passage found.
- :func:`yes_probability`: P(yes) / (P(yes) + P(no)) from the first token's top log-probabilities.
- :func:`parse_yes_no`: a yes/no answer read from text, when no log-probabilities came back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rerank_core.llm.base import TokenLogprob

__all__ = [
    "Permutation",
    "parse_grade",
    "parse_grades",
    "parse_permutation",
    "parse_yes_no",
    "yes_probability",
]

# Every pattern runs in time linear in the text (answers may be long or hostile): a number can only start
# where a digit run starts (the look-behinds), and no two unbounded repeats can take the same characters
# (a 16,000-digit answer took 14-21 s when "\d+" could start inside a run and backtrack through it; a run of
# blank lines took hours when "^\s*...\s*...\s*" could split it every way).
# ASCII digits only: an identifier is written [0-9] (an Ahom or Devanagari digit in prose is not one).
_BRACKET_ID = re.compile(r"\[\s*(\d{1,6})\s*\]", re.ASCII)
_BARE_INT = re.compile(r"(?<![\d.])(\d{1,6})(?![\d.])", re.ASCII)
_NUMBER = r"(\d+(?:\.\d+)?)"
_FRACTION = re.compile(r"(?<!\d)" + _NUMBER + r"\s*(?:/|out\s+of|of)\s*" + _NUMBER, re.IGNORECASE)
_KEYED = re.compile(r"(?:score|grade|rating|relevance|relevant)\b[^\d\n]{0,20}?" + _NUMBER, re.IGNORECASE)
_ANY_NUMBER = re.compile(r"(?<![\d.])" + _NUMBER)
_LINE_ID = re.compile(
    r"^[ \t]*(?:[-*•][ \t]*)?(?:(?:passage|document|doc|id)[ \t]*)?(?:#[ \t]*)?"
    r"(\d{1,6})[ \t]*(?:[:.)=\-]|\s)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class Permutation:
    """A parsed listwise answer. ``order`` holds 0-based window positions, best first, every one once.

    ``ranked``: how many came from the answer (the rest kept their previous order after them);
    ``dropped``: repeated or unknown identifiers ignored. ``ranked == 0`` means nothing usable came back.
    """

    order: tuple[int, ...]
    ranked: int
    dropped: int


def parse_permutation(text: str, n: int) -> Permutation:
    """The window order an answer like ``"[2] > [1] > [3]"`` gives, always a permutation of ``range(n)``.

    Identifiers are 1-based and read as ``[N]``; when the text has none, bare integers are read instead
    ("2 > 1 > 3"). Out-of-range and repeated identifiers are dropped (first mention wins); identifiers
    never mentioned follow the mentioned ones in their previous relative (window) order.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    text = text if isinstance(text, str) else ""
    found = [int(m) for m in _BRACKET_ID.findall(text)]
    if not found:
        found = [int(m) for m in _BARE_INT.findall(text)]
    seen: set[int] = set()
    order: list[int] = []
    dropped = 0
    for ident in found:
        pos = ident - 1
        if 0 <= pos < n and pos not in seen:
            seen.add(pos)
            order.append(pos)
        else:
            dropped += 1
    ranked = len(order)
    order.extend(i for i in range(n) if i not in seen)
    return Permutation(tuple(order), ranked, dropped)


def _in_scale(value: float, max_grade: float) -> bool:
    return 0.0 <= value <= max_grade


def parse_grade(text: str, max_grade: int) -> float | None:
    """A graded relevance from free text, as a fraction of the scale in [0, 1]; ``None`` if not found.

    In order of trust: an explicit fraction ("2/3", "8 out of 10": read on its own scale), a number
    after a keyword ("score", "grade", "rating", "relevance"), then the first number on the scale
    ``0..max_grade``. Numbers outside the scale (years, counts) are skipped. Linear in ``len(text)``.
    """
    if not isinstance(text, str) or max_grade <= 0:
        return None
    text = text.replace("*", " ").replace("_", " ")
    for m in _FRACTION.finditer(text):
        value, scale = float(m.group(1)), float(m.group(2))
        if 0 < scale < math.inf and value <= scale:  # (a number too long for a float reads as inf)
            return value / scale
    for m in _KEYED.finditer(text):
        value = float(m.group(1))
        if _in_scale(value, max_grade):
            return value / max_grade
    for m in _ANY_NUMBER.finditer(text):
        value = float(m.group(1))
        if _in_scale(value, max_grade):
            return value / max_grade
    return None


def parse_grades(text: str, n: int, max_grade: int) -> dict[int, float]:
    """Grades for passages ``0..n-1`` from an answer of ``[id] grade`` lines (any noise around them).

    The text after each ``[id]`` (up to the next one) is read with :func:`parse_grade`; without
    bracketed identifiers, lines starting with "1:", "Passage 2 -", "3." are read instead. A single
    passage may be answered with a bare grade. Repeated identifiers: the first one wins. Passages not
    found are absent from the result (the caller decides what to do with them).
    """
    if not isinstance(text, str):
        return {}
    spans = [(int(m.group(1)), m.start(), m.end()) for m in _BRACKET_ID.finditer(text)]
    if not spans:
        spans = [(int(m.group(1)), m.start(), m.end()) for m in _LINE_ID.finditer(text)]
    out: dict[int, float] = {}
    for k, (ident, _start, end) in enumerate(spans):
        pos = ident - 1
        if not 0 <= pos < n or pos in out:
            continue
        stop = spans[k + 1][1] if k + 1 < len(spans) else len(text)
        segment = text[end:stop]
        grade = parse_grade(segment.split("\n\n")[0], max_grade)
        if grade is not None:
            out[pos] = grade
    if not out and n == 1 and not spans:
        grade = parse_grade(text, max_grade)
        if grade is not None:
            out[0] = grade
    return out


def _word(token: str) -> str:
    return re.sub(r"[^a-z]", "", token.lower())


def yes_probability(top_logprobs: Sequence[TokenLogprob] | None) -> float | None:
    """P(yes) / (P(yes) + P(no)) from the first generated token's alternatives; ``None`` if neither
    answer is among them.

    Spellings are merged ("yes", " Yes", "YES", "yes."). When only one of the two is listed, the other's
    probability is taken as the smallest listed one (an upper bound: it would have been listed had it been
    more likely), so candidates still differ instead of all scoring exactly 0 or 1.
    """
    if not top_logprobs:
        return None
    yes = no = 0.0
    seen_yes = seen_no = False
    smallest = math.inf
    for alt in top_logprobs:
        if not math.isfinite(alt.logprob):
            continue
        p = math.exp(alt.logprob)
        smallest = min(smallest, p)
        w = _word(alt.token)
        if w == "yes":
            yes += p
            seen_yes = True
        elif w == "no":
            no += p
            seen_no = True
    if not (seen_yes or seen_no):
        return None
    if not seen_yes:
        yes = smallest
    if not seen_no:
        no = smallest
    total = yes + no
    return 0.5 if total <= 0 else yes / total


_YES_NO_WORD = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def parse_yes_no(text: str) -> bool | None:
    """``True`` / ``False`` for the first "yes" / "no" word in ``text``, ``None`` if there is none."""
    if not isinstance(text, str):
        return None
    m = _YES_NO_WORD.search(text)
    return None if m is None else m.group(1).lower() == "yes"

"""Scoring profiles: declarative business rules over candidate metadata, applied after reranking.

Production reranking is a stack: retrieval, the cross-encoder, fusion with the retrieval score, then the
business logic (fresher articles first, the "docs" category over the forum, authoritative sources up). A
:class:`ScoringProfile` is that last step, written as data so that it can live in a config file::

    profile = ScoringProfile.from_dict({
        "name": "news",
        "rules": [
            {"type": "freshness", "field": "published", "decay": "exp", "half_life": "30d", "weight": 0.5},
            {"type": "match", "field": "category", "op": "eq", "value": "docs", "boost": 1.3},
            {"type": "numeric", "field": "authority", "weight": 0.1, "modifier": "log1p", "default": 0},
        ],
    })
    reranker = Reranker(backend, profile=profile)

Three kinds of rule, each with a ``name`` (reported in the results), a ``field`` (a top-level metadata key),
a ``mode`` and a ``default``:

- :class:`MatchRule`: ``op="eq"`` (``value``), ``"in"`` (``values``) or ``"range"`` (``min`` and/or
  ``max``, both inclusive; numbers, or dates when the bounds are dates) → ``boost``. A list-valued field
  (tags) matches when any of its items does. Fires only when the condition holds.
- :class:`FreshnessRule`: decay over a date field, ``"exp"``, ``"linear"`` or ``"gauss"``, equal to 1 at
  the ``origin`` (default: now, read once per query from the profile's ``clock``; ``offset`` widens the
  window of full freshness) and to 0.5 one ``half_life`` further (linear reaches 0 at two half-lives).
  Dates after the origin follow ``future``: ``"fresh"`` (default: decay 1, e.g. clock skew or scheduled
  publication), ``"decay"`` (distance in either direction, for events around a date) or ``"error"``.
  Dates may be ``datetime`` (naive = UTC), ``date`` (midnight UTC), ISO 8601 strings or epoch numbers
  (``epoch_unit="s"`` or ``"ms"``).
- :class:`NumericRule`: a numeric field (authority, popularity) through ``modifier`` (``"none"``,
  ``"log1p"``, ``"sqrt"``; the last two need a value >= 0) times ``weight``.

How a rule changes the score (``mode``):

- ``"multiply"`` (default): a factor. Match: ``boost`` (> 0). Freshness: ``1 - weight * (1 - decay)``
  (``weight`` in [0, 1]: 1 lets the decay scale the score fully, 0.3 costs at most 30 %). Numeric:
  ``1 + weight * modifier(value)`` (must stay > 0).
- ``"add"``: a term. Match: ``boost``. Freshness: ``weight * decay``. Numeric: ``weight * modifier(value)``.

A candidate's profiled score is ``scale(base, product of factors) + sum of terms``, where ``scale(x, f)`` is
``x * f`` for ``x >= 0`` and ``x / f`` for ``x < 0``: a factor above 1 always raises a score and one below 1
always lowers it, also for the negative scores of raw logits and z-score fusion (plain multiplication would
push a boosted negative score further down). ``base`` is the relevance score after calibration and fusion.

Missing metadata (no metadata, the key absent, or ``None``): the rule's ``default`` is used as the field's
value; with ``default=None`` (the default) the rule does not fire for that candidate. A present value of the
wrong kind (a string where a number or a date is needed, NaN, infinity) is an :class:`InvalidInputError`
naming ``candidates[i].metadata['field']`` and the rule: bad data is reported, not silently skipped.

Rules are validated at construction (:class:`ConfigurationError` naming the rule and the bad value: an
unknown op, a non-positive half-life, a NaN or infinite weight...). Applying a profile never mutates the
scores or metadata it is given; each candidate's score depends only on its own base score and metadata (and
the query's ``now``), so the order of the candidates does not matter, and a profile without rules is the
identity.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rerank_core._validation import finite_float
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.types import RuleEffect

__all__ = [
    "DECAYS",
    "MATCH_OPS",
    "MODES",
    "MODIFIERS",
    "FreshnessRule",
    "MatchRule",
    "NumericRule",
    "ProfileRule",
    "RuleEffect",
    "ScoringProfile",
    "check_profile",
    "json_value",
    "parse_date",
    "parse_duration",
]

MODES = ("multiply", "add")
MATCH_OPS = ("eq", "in", "range")
DECAYS = ("exp", "linear", "gauss")
MODIFIERS = ("none", "log1p", "sqrt")
FUTURE_POLICIES = ("fresh", "decay", "error")
EPOCH_UNITS = ("s", "ms")

_UTC = timezone.utc  # noqa: UP017 (datetime.UTC is Python 3.11+; rerank-core supports 3.10)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


# -- values ------------------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    """A real number (a bool is not one), NaN and infinity included."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def parse_duration(value: object) -> timedelta:
    """A :class:`timedelta`, or a string with a unit (``"30d"``, ``"12h"``, ``"90min"``, ``"2w"``, ``"45s"``).

    A bare number is refused (days? seconds?); the caller turns the ``ValueError`` into an error naming the
    rule.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
    raise ValueError("must be a timedelta or a duration with a unit such as '30d', '12h', '90min' or '2w'")


def _format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("w", 604800.0), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_date(value: object, epoch_unit: str = "s") -> datetime:
    """``value`` as an aware UTC :class:`datetime`.

    ``datetime`` (naive ones are taken as UTC), ``date`` (midnight UTC), ISO 8601 strings (``"2026-05-01"``,
    ``"2026-05-01T12:00:00Z"``, with or without an offset) and epoch numbers (seconds, or milliseconds with
    ``epoch_unit="ms"``). Anything else, NaN and infinity raise ``ValueError``.
    """
    if isinstance(value, datetime):
        out = value
    elif isinstance(value, date):
        out = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"  # Python 3.10's fromisoformat does not read "Z"
        try:
            out = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"is not an ISO 8601 date or datetime: {value!r}") from None
    elif _is_number(value):
        seconds = float(value)  # type: ignore[arg-type]
        if not math.isfinite(seconds):
            raise ValueError(f"must be a finite epoch number, got {value!r}")
        if epoch_unit == "ms":
            seconds /= 1000.0
        try:
            return datetime.fromtimestamp(seconds, tz=_UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"is out of range for an epoch timestamp: {value!r}") from None
    else:
        raise ValueError(
            f"must be a datetime, a date, an ISO 8601 string or an epoch number, got {type(value).__name__}"
        )
    return out.replace(tzinfo=_UTC) if out.tzinfo is None else out.astimezone(_UTC)


def json_value(value: Any) -> Any:
    """``value`` as something JSON can hold (dates as ISO strings, other objects as ``str``)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if _is_number(value):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _format_duration(value)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


# -- rules -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProfileRule:
    """What every rule has: ``field`` (a top-level metadata key), ``name`` (reported in the results; default
    ``"<type>:<field>"``), ``mode`` (``"multiply"`` or ``"add"``) and ``default`` (the field's value when a
    candidate lacks it; ``None``: the rule does not fire for that candidate)."""

    type: ClassVar[str] = ""

    field: str
    name: str | None = None
    mode: str = "multiply"
    default: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not self.field:
            raise ConfigurationError(
                f"{self.type}.field", f"must be a non-empty metadata key string, got {self.field!r}"
            )
        if self.name is None:
            object.__setattr__(self, "name", f"{self.type}:{self.field}")
        elif not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError(f"{self.type}.name", f"must be a non-empty string, got {self.name!r}")
        self._check(self.mode in MODES, "mode", f"must be one of {', '.join(MODES)}", self.mode)

    # -- helpers for the subclasses ---------------------------------------------------------------------

    def _fail(self, attribute: str, message: str, value: Any) -> ConfigurationError:
        """A configuration error naming the rule and the bad value: ``"<name>.<attribute>: ..."``."""
        return ConfigurationError(f"{self.name}.{attribute}", f"{message}, got {value!r}")

    def _check(self, ok: bool, attribute: str, message: str, value: Any) -> None:
        if not ok:
            raise self._fail(attribute, message, value)

    def _finite(self, attribute: str, value: Any) -> float:
        number = finite_float(value)
        self._check(number is not None, attribute, "must be a finite number", value)
        return float(number)  # type: ignore[arg-type]

    def _bad_value(self, where: str, message: str, value: Any) -> InvalidInputError:
        """A candidate's metadata value this rule cannot read."""
        return InvalidInputError(where, f"{message} for rule {self.name!r}, got {value!r}")

    # -- what a profile calls ---------------------------------------------------------------------------

    @property
    def needs_now(self) -> bool:
        """Whether applying this rule needs the current time (a freshness rule without an ``origin``)."""
        return False

    def effect(self, value: Any, defaulted: bool, now: datetime, where: str) -> RuleEffect | None:
        """The rule's effect on one candidate whose field holds ``value`` (not ``None``), or ``None`` when
        it does not fire. ``where`` names the value in errors (``candidates[3].metadata['authority']``)."""
        raise NotImplementedError

    def _made(self, amount: float, value: Any, defaulted: bool) -> RuleEffect:
        return RuleEffect(
            rule=self.name or "", mode=self.mode, amount=amount, value=value, defaulted=defaulted
        )

    def to_dict(self) -> dict[str, Any]:
        """The rule as plain data (JSON-compatible), which :meth:`ScoringProfile.from_dict` reads back."""
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = json_value(value)
        return out


@dataclass(frozen=True, kw_only=True)
class MatchRule(ProfileRule):
    """``field`` equals ``value`` / is in ``values`` / lies in [``min``, ``max``] → ``boost``.

    ``boost`` is a factor (> 0) with ``mode="multiply"`` and a term with ``mode="add"``. Range bounds are
    numbers, or dates (``datetime``, ``date``, ISO strings; then the field is read as a date, see
    :func:`parse_date`). A list, tuple or set field matches when any of its items does.
    """

    type: ClassVar[str] = "match"

    op: str = "eq"
    value: Any = None
    values: Sequence[Any] | None = None
    min: Any = None
    max: Any = None
    boost: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(self.op in MATCH_OPS, "op", f"must be one of {', '.join(MATCH_OPS)}", self.op)
        boost = self._finite("boost", self.boost)
        if self.mode == "multiply":
            self._check(boost > 0, "boost", "must be > 0 for a multiplicative boost (1 = no change)", boost)
        if self.op == "eq":
            self._check(self.value is not None, "value", "is required for op 'eq'", self.value)
            self._only("eq", ("values", "min", "max"))
        elif self.op == "in":
            ok = isinstance(self.values, list | tuple | set | frozenset) and len(self.values) > 0
            self._check(ok, "values", "must be a non-empty list for op 'in'", self.values)
            object.__setattr__(self, "values", tuple(self.values))  # type: ignore[arg-type]
            self._only("in", ("value", "min", "max"))
        else:
            self._only("range", ("value", "values"))
            self._check(
                self.min is not None or self.max is not None, "min", "op 'range' needs min and/or max", None
            )
            kinds = {
                self._bound_kind(b, v) for b, v in (("min", self.min), ("max", self.max)) if v is not None
            }
            self._check(len(kinds) == 1, "max", "must be of the same kind (number or date) as min", self.max)
            if self.min is not None and self.max is not None:
                self._check(self._bound(self.min) <= self._bound(self.max), "max", "must be >= min", self.max)
        if self.default is not None:
            self._read(self.default, f"{self.name}.default", config=True)

    def _only(self, op: str, unused: tuple[str, ...]) -> None:
        for attribute in unused:
            value = getattr(self, attribute)
            self._check(value is None, attribute, f"is not used by op {op!r}; remove it", value)

    def _bound_kind(self, attribute: str, value: Any) -> str:
        if _is_number(value):
            self._check(
                finite_float(value) is not None, attribute, "must be a finite number or a date", value
            )
            return "number"
        try:
            parse_date(value)
        except ValueError:
            raise self._fail(
                attribute, "must be a finite number or a date (datetime, date, ISO string)", value
            ) from None
        return "date"

    @property
    def _dates(self) -> bool:
        bound = self.min if self.min is not None else self.max
        return self.op == "range" and not _is_number(bound)

    def _bound(self, value: Any) -> float:
        return parse_date(value).timestamp() if self._dates else float(value)

    def _read(self, value: Any, where: str, *, config: bool = False) -> list[Any]:
        """The items of a field value (a list's items, or the value itself), checked for a range."""
        items = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
        if self.op != "range":
            return items
        out = []
        for item in items:
            if self._dates:
                try:
                    out.append(parse_date(item).timestamp())
                except ValueError as exc:
                    bad: Exception = (
                        self._fail("default", f"must be a date ({exc})", item)
                        if config
                        else (self._bad_value(where, f"must be a date ({exc})", item))
                    )
                    raise bad from None
            elif finite_float(item) is not None:
                out.append(float(item))
            elif config:
                raise self._fail("default", "must be a finite number for a numeric range", item)
            else:
                raise self._bad_value(where, "must be a finite number for a numeric range", item)
        return out

    def matches(self, value: Any, where: str = "value") -> bool:
        """Whether a (present) field value meets the condition."""
        items = self._read(value, where)
        if self.op == "eq":
            return any(item == self.value for item in items)
        if self.op == "in":
            return any(item in self.values for item in items)  # type: ignore[operator]
        low = -math.inf if self.min is None else self._bound(self.min)
        high = math.inf if self.max is None else self._bound(self.max)
        return any(low <= item <= high for item in items)

    def effect(self, value: Any, defaulted: bool, now: datetime, where: str) -> RuleEffect | None:
        if not self.matches(value, where):
            return None
        return self._made(float(self.boost), value, defaulted)


@dataclass(frozen=True, kw_only=True)
class FreshnessRule(ProfileRule):
    """Decay over the date in ``field``: 1 at ``origin`` (± ``offset``), 0.5 one ``half_life`` further.

    ``decay``: ``"exp"`` (``0.5 ** (age / half_life)``), ``"gauss"`` (``0.5 ** (age / half_life) ** 2``:
    gentle near the origin, steep after) or ``"linear"`` (``1 - age / (2 * half_life)``, 0 from two
    half-lives on), where ``age`` is the distance from ``origin`` minus ``offset`` (never below 0).
    ``origin``: a fixed date, or ``None`` for now (the profile's clock, read once per query). ``future``:
    dates after the origin count as ``"fresh"`` (age 0), ``"decay"`` like past ones, or are an ``"error"``.
    ``weight``: the decay's share of a multiplicative factor (``1 - weight * (1 - decay)``, in [0, 1]) or
    the scale of an additive term.
    """

    type: ClassVar[str] = "freshness"

    half_life: timedelta | str
    decay: str = "exp"
    origin: Any = None
    offset: timedelta | str = timedelta(0)
    future: str = "fresh"
    weight: float = 1.0
    epoch_unit: str = "s"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(self.decay in DECAYS, "decay", f"must be one of {', '.join(DECAYS)}", self.decay)
        self._check(
            self.future in FUTURE_POLICIES,
            "future",
            f"must be one of {', '.join(FUTURE_POLICIES)}",
            self.future,
        )
        self._check(self.epoch_unit in EPOCH_UNITS, "epoch_unit", "must be 's' or 'ms'", self.epoch_unit)
        for attribute in ("half_life", "offset"):
            try:
                value = parse_duration(getattr(self, attribute))
            except ValueError as exc:
                raise self._fail(attribute, str(exc), getattr(self, attribute)) from None
            object.__setattr__(self, attribute, value)
        half_life = self.half_life.total_seconds()  # type: ignore[union-attr]
        self._check(
            math.isfinite(half_life) and half_life > 0,
            "half_life",
            "must be a positive duration",
            self.half_life,
        )
        self._check(self.offset.total_seconds() >= 0, "offset", "must not be negative", self.offset)  # type: ignore[union-attr]
        weight = self._finite("weight", self.weight)
        if self.mode == "multiply":
            self._check(
                0.0 <= weight <= 1.0, "weight", "must be in [0, 1] for a multiplicative decay", weight
            )
        for attribute in ("origin", "default"):
            value = getattr(self, attribute)
            if value is not None:
                try:
                    parse_date(value, self.epoch_unit)
                except ValueError as exc:
                    raise self._fail(attribute, str(exc), value) from None

    @property
    def needs_now(self) -> bool:
        return self.origin is None

    def decay_at(self, age_seconds: float) -> float:
        """The decay (in [0, 1]) of a date ``age_seconds`` from the origin (``offset`` not yet taken off)."""
        offset = self.offset.total_seconds()  # type: ignore[union-attr]
        half_life = self.half_life.total_seconds()  # type: ignore[union-attr]
        x = max(0.0, age_seconds - offset) / half_life
        if self.decay == "exp":
            return 0.5**x
        if self.decay == "gauss":
            return 0.5 ** (x * x)
        return max(0.0, 1.0 - x / 2.0)

    def effect(self, value: Any, defaulted: bool, now: datetime, where: str) -> RuleEffect | None:
        try:
            when = parse_date(value, self.epoch_unit)
        except ValueError as exc:
            raise self._bad_value(where, f"must be a date ({exc})", value) from None
        origin = now if self.origin is None else parse_date(self.origin, self.epoch_unit)
        age = (origin - when).total_seconds()
        if age < 0:
            if self.future == "error":
                raise self._bad_value(
                    where, f"is after the origin {origin.isoformat()} (future='error')", value
                )
            age = -age if self.future == "decay" else 0.0
        d = self.decay_at(age)
        amount = 1.0 - float(self.weight) * (1.0 - d) if self.mode == "multiply" else float(self.weight) * d
        return self._made(amount, value, defaulted)


@dataclass(frozen=True, kw_only=True)
class NumericRule(ProfileRule):
    """A numeric field (authority, popularity) through ``modifier`` times ``weight``.

    ``modifier``: ``"none"``, ``"log1p"`` (``log(1 + v)``: popularity counts) or ``"sqrt"``; the last two need
    ``v >= 0``. ``mode="multiply"``: factor ``1 + weight * modifier(v)`` (an error if it is not > 0);
    ``mode="add"``: term ``weight * modifier(v)``.
    """

    type: ClassVar[str] = "numeric"

    weight: float
    modifier: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._finite("weight", self.weight)
        self._check(
            self.modifier in MODIFIERS, "modifier", f"must be one of {', '.join(MODIFIERS)}", self.modifier
        )
        if self.default is not None:
            try:
                self._amount(self.default, "default")
            except InvalidInputError as exc:
                raise self._fail("default", str(exc).split(": ", 1)[-1], self.default) from None

    def _amount(self, value: Any, where: str) -> float:
        if finite_float(value) is None:
            raise self._bad_value(where, "must be a finite number", value)
        v = float(value)
        if self.modifier != "none" and v < 0:
            raise self._bad_value(where, f"must be >= 0 for modifier {self.modifier!r}", value)
        m = math.log1p(v) if self.modifier == "log1p" else math.sqrt(v) if self.modifier == "sqrt" else v
        amount = float(self.weight) * m
        if self.mode == "add":
            return amount
        if not 1.0 + amount > 0:
            raise self._bad_value(
                where, f"makes the factor 1 + weight * value = {1.0 + amount:g}, not > 0", value
            )
        return 1.0 + amount

    def effect(self, value: Any, defaulted: bool, now: datetime, where: str) -> RuleEffect | None:
        return self._made(self._amount(value, where), value, defaulted)


RULE_TYPES: dict[str, type[ProfileRule]] = {
    MatchRule.type: MatchRule,
    FreshnessRule.type: FreshnessRule,
    NumericRule.type: NumericRule,
}


# -- the profile -------------------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(_UTC)


def _scale(score: float, factor: float) -> float:
    """``score`` scaled by ``factor`` (> 0) so that a factor above 1 always raises it (see the module doc)."""
    return score * factor if score >= 0 else score / factor


@dataclass(frozen=True)
class ScoringProfile:
    """An ordered set of rules applied to each candidate's score (see the module docstring).

    Args:
        rules: :class:`MatchRule`, :class:`FreshnessRule` and :class:`NumericRule` objects (distinct names).
            No rules: the identity.
        name: reported in ``RerankResponse.profile``.
        clock: returns "now" for freshness rules without an ``origin`` (read once per query; naive = UTC).
            Default: the system clock in UTC; tests inject a fixed one.
    """

    rules: tuple[ProfileRule, ...] = ()
    name: str = "profile"
    clock: Callable[[], datetime] = field(default=_utc_now, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.rules, str | bytes | Mapping) or not isinstance(self.rules, Sequence):
            raise ConfigurationError("rules", f"must be a list of rules, got {type(self.rules).__name__}")
        object.__setattr__(self, "rules", tuple(self.rules))
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError("name", f"must be a non-empty string, got {self.name!r}")
        if not callable(self.clock):
            raise ConfigurationError("clock", f"must be a callable returning a datetime, got {self.clock!r}")
        seen: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if not isinstance(rule, ProfileRule):
                raise ConfigurationError(
                    f"rules[{i}]",
                    f"must be a MatchRule, FreshnessRule or NumericRule, got {type(rule).__name__}",
                )
            if rule.name in seen:
                raise ConfigurationError(
                    f"rules[{i}].name",
                    f"{rule.name!r} is also the name of rules[{seen[rule.name]}]; give each rule its own "
                    "name (results report rules by name)",
                )
            seen[rule.name or ""] = i

    # -- from and to plain data -------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, clock: Callable[[], datetime] | None = None
    ) -> ScoringProfile:
        """A profile from plain data: ``{"name": ..., "rules": [{"type": "match" | "freshness" | "numeric",
        ...the rule's fields...}]}`` (what :meth:`to_dict` writes and a JSON or YAML config holds)."""
        if not isinstance(data, Mapping):
            raise ConfigurationError("profile", f"must be a mapping with 'rules', got {type(data).__name__}")
        unknown = sorted(set(data) - {"name", "rules"})
        if unknown:
            raise ConfigurationError("profile", f"unknown key(s) {unknown}; a profile has 'name' and 'rules'")
        raw_rules = data.get("rules", [])
        if isinstance(raw_rules, str | bytes | Mapping) or not isinstance(raw_rules, Sequence):
            raise ConfigurationError(
                "rules", f"must be a list of rule mappings, got {type(raw_rules).__name__}"
            )
        rules = []
        for i, spec in enumerate(raw_rules):
            if not isinstance(spec, Mapping):
                raise ConfigurationError(f"rules[{i}]", f"must be a mapping, got {type(spec).__name__}")
            kind = spec.get("type")
            if kind not in RULE_TYPES:
                raise ConfigurationError(
                    f"rules[{i}].type", f"must be one of {', '.join(RULE_TYPES)}, got {kind!r}"
                )
            rule_cls = RULE_TYPES[kind]
            allowed = {f.name for f in fields(rule_cls)}
            options = {k: v for k, v in spec.items() if k != "type"}
            extra = sorted(set(options) - allowed)
            if extra:
                raise ConfigurationError(
                    f"rules[{i}]", f"unknown key(s) {extra} for a {kind!r} rule; allowed: {sorted(allowed)}"
                )
            try:
                rules.append(rule_cls(**options))
            except TypeError as exc:  # a required key is missing
                raise ConfigurationError(f"rules[{i}]", f"{kind!r} rule: {exc}") from None
        kwargs: dict[str, Any] = {"name": data.get("name", "profile")}
        if clock is not None:
            kwargs["clock"] = clock
        return cls(tuple(rules), **kwargs)

    @classmethod
    def from_json(cls, source: str | Path, *, clock: Callable[[], datetime] | None = None) -> ScoringProfile:
        """A profile from a JSON file path or a JSON string (see :meth:`from_dict`)."""
        text = str(source)
        if isinstance(source, Path) or not text.lstrip().startswith("{"):
            text = Path(source).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError("profile", f"is not valid JSON: {exc}") from None
        return cls.from_dict(data, clock=clock)

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain, JSON-compatible data (the clock is not part of it)."""
        return {"name": self.name, "rules": [rule.to_dict() for rule in self.rules]}

    def describe(self) -> str:
        return self.name

    # -- applying ---------------------------------------------------------------------------------------

    def evaluate(
        self,
        metadata: Sequence[Mapping[str, Any] | None],
        *,
        now: datetime | None = None,
        argument: str = "candidates",
    ) -> tuple[tuple[RuleEffect, ...], ...]:
        """Per candidate, the effects of the rules that fire on its metadata (in rule order).

        ``metadata[i]`` is candidate ``i``'s metadata (``None`` counts as empty); ``now`` overrides the clock
        (read once, for every candidate). Nothing is modified. Errors name ``{argument}[i].metadata[...]``
        for a value a rule cannot read. The reranker calls this before any model work, so that bad metadata
        fails fast, and :meth:`combine` once the scores are known.
        """
        if isinstance(metadata, str | bytes | Mapping) or not isinstance(metadata, Sequence):
            raise InvalidInputError("metadata", f"must be a list of mappings, got {type(metadata).__name__}")
        if now is None and any(rule.needs_now for rule in self.rules):
            now = self.clock()
            if not isinstance(now, datetime):
                raise ConfigurationError("clock", f"must return a datetime, got {type(now).__name__}")
        current = parse_date(now) if now is not None else datetime.fromtimestamp(0, tz=_UTC)
        effects: list[tuple[RuleEffect, ...]] = []
        for i, meta in enumerate(metadata):
            if meta is not None and not isinstance(meta, Mapping):
                raise InvalidInputError(
                    f"{argument}[{i}].metadata", f"must be a mapping, got {type(meta).__name__}"
                )
            fired: list[RuleEffect] = []
            for rule in self.rules:
                value = None if meta is None else meta.get(rule.field)
                defaulted = value is None
                if defaulted:
                    if rule.default is None:
                        continue
                    value = rule.default
                where = f"{argument}[{i}].metadata[{rule.field!r}]"
                effect = rule.effect(value, defaulted, current, where)
                if effect is not None:
                    fired.append(effect)
            effects.append(tuple(fired))
        return tuple(effects)

    def combine(
        self, scores: Sequence[float] | np.ndarray, effects: Sequence[Sequence[RuleEffect]]
    ) -> np.ndarray:
        """The profiled scores: ``scale(score, product of factors) + sum of terms`` per candidate (a new
        array; ``scores`` is not modified)."""
        base = np.asarray(scores, dtype=np.float64)
        if base.ndim != 1 or len(base) != len(effects):
            raise InvalidInputError("scores", f"has {base.size} scores for {len(effects)} candidates")
        if not np.isfinite(base).all():
            raise InvalidInputError("scores", "must be finite numbers (NaN or infinity found)")
        out = base.copy()
        for i, fired in enumerate(effects):
            factor = math.prod(e.amount for e in fired if e.mode == "multiply")
            score = _scale(float(base[i]), factor) + math.fsum(e.amount for e in fired if e.mode == "add")
            if not math.isfinite(score):
                raise InvalidInputError(f"scores[{i}]", f"profile {self.name!r} made it {score}")
            out[i] = score
        return out

    def apply(
        self,
        scores: Sequence[float] | np.ndarray,
        metadata: Sequence[Mapping[str, Any] | None],
        *,
        now: datetime | None = None,
        argument: str = "candidates",
    ) -> tuple[np.ndarray, tuple[tuple[RuleEffect, ...], ...]]:
        """One query's profiled scores and, per candidate, the effects of the rules that fired:
        :meth:`evaluate` then :meth:`combine`. Neither input is modified."""
        effects = self.evaluate(metadata, now=now, argument=argument)
        return self.combine(scores, effects), effects


def check_profile(profile: object, argument: str = "profile") -> ScoringProfile | None:
    """``profile`` as a :class:`ScoringProfile` (a mapping is read with :meth:`ScoringProfile.from_dict`),
    ``None`` for none, or a :class:`ConfigurationError` naming ``argument``."""
    if profile is None or isinstance(profile, ScoringProfile):
        return profile
    if isinstance(profile, Mapping):
        return ScoringProfile.from_dict(profile)
    raise ConfigurationError(
        argument,
        f"must be a ScoringProfile or a mapping (ScoringProfile.from_dict), got {type(profile).__name__}",
    )

"""The one parser of fusion spec strings, ``METHOD[:W]``, used by every option that takes one.

- ``Reranker(fusion="zscore:0.6")`` (:meth:`~rerank_core.fusion.Fusion.parse`): ``W`` is the reranker's
  share against the first stage (1.0 = the reranker alone);
- ``rerank eval --hybrid-fusion zscore:0.3`` (:func:`rerank_core.eval.hybrid.hybrid_fusion_config`): ``W``
  is the dense list's share against BM25.

In both, ``W`` is the weight of the later, stronger signal (the one that re-ranks the other), in [0, 1];
a bare method leaves the weight to the caller's default.
"""

from __future__ import annotations

import math

from rerank_core.errors import ConfigurationError

__all__ = ["FUSION_METHODS", "parse_spec"]

FUSION_METHODS = ("zscore", "minmax", "rrf")


def parse_spec(
    spec: object,
    *,
    argument: str = "fusion",
    weight_argument: str | None = None,
    default_weight: float = 0.5,
) -> tuple[str, float | None]:
    """``"METHOD[:W]"`` as ``(method, W)``, lowercased and checked: the method is one of
    :data:`FUSION_METHODS` and ``W`` a number in [0, 1]. ``W`` is ``None`` when no ``:`` is written, and
    ``default_weight`` for a ``:`` with nothing after it. Errors are :class:`ConfigurationError` naming
    ``argument`` (``argument.method`` / ``weight_argument`` for a bad method / weight, when
    ``weight_argument`` is given)."""
    if not isinstance(spec, str) or (not spec.strip() and not weight_argument):
        raise ConfigurationError(argument, f"must be 'rrf', 'rrf:W', 'zscore:W' or 'minmax:W', got {spec!r}")
    method, sep, weight_text = spec.strip().lower().partition(":")
    method = method.strip()
    if method not in FUSION_METHODS:
        raise ConfigurationError(
            f"{argument}.method" if weight_argument else argument,
            ("" if weight_argument else "method ")
            + f"must be one of {', '.join(FUSION_METHODS)}, got {method!r} in {spec!r}",
        )
    if not sep:
        return method, None
    if not weight_text.strip():
        return method, default_weight
    weight_name = weight_argument or argument
    try:
        weight = float(weight_text)
    except ValueError:
        raise ConfigurationError(
            weight_name, f"is not a number: {weight_text.strip()!r} in {spec!r}"
        ) from None
    if not math.isfinite(weight) or not 0.0 <= weight <= 1.0:
        raise ConfigurationError(weight_name, f"must be a number in [0, 1], got {weight!r} in {spec!r}")
    return method, weight

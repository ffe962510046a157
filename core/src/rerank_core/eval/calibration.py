"""Calibration on a BEIR split: labelled pairs from an evaluation, fitted calibrations, their reliability,
and the transfer of a fitted threshold to another split.

The labelled pairs are every first-stage candidate of every query with the reranker's raw score, labelled
relevant when the qrels grade it 1 or more (unjudged candidates are not relevant, as BEIR scores them).
:func:`fit_on_report` fits each method on one split's pairs (train or dev: never the split you report) and,
given a held-out split, measures each fit there: ECE (10 equal-width bins), Brier, and the F1-optimal
threshold of the fit split applied to the held-out one beside the best threshold chosen on the held-out
split itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rerank_core._pipeline.ranking import gives_probabilities
from rerank_core.calibration import (
    Calibration,
    brier_score,
    expected_calibration_error,
    fit_calibration,
    fit_threshold,
    threshold_curve,
)
from rerank_core.errors import InvalidInputError
from rerank_core.normalization import normalize_scores

__all__ = [
    "CalibrationRun",
    "MethodFit",
    "calibrate_on_beir",
    "calibrate_rows",
    "calibration_summary",
    "fit_on_report",
    "format_fits",
    "labelled_scores",
    "reliability",
    "score_rows",
]


def labelled_scores(
    scores: Mapping[str, Sequence[float]],
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Every candidate's score (``scores[qid][i]`` for ``run[qid][i]``) and its binary label (grade >= 1),
    over the queries that have both; candidates without a score (NaN) are skipped."""
    values: list[float] = []
    labels: list[bool] = []
    for qid, ids in run.items():
        row = scores.get(qid)
        if row is None:
            continue
        judged = qrels.get(qid, {})
        for doc_id, score in zip(ids, row, strict=False):
            if not math.isnan(score):
                values.append(float(score))
                labels.append(judged.get(doc_id, 0) >= 1)
    return np.asarray(values, dtype=np.float64), np.asarray(labels, dtype=bool)


def reliability(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``{"ece", "brier"}`` of probabilities against labels (rounded to 6 digits)."""
    return {
        "ece": round(expected_calibration_error(probabilities, labels), 6),
        "brier": round(brier_score(probabilities, labels), 6),
    }


def _score_label(reranker: Any) -> tuple[str, bool]:
    """What a reranker's calibrated scores are, and whether they are probabilities (the pipeline's own
    test, :func:`~rerank_core._pipeline.ranking.gives_probabilities`)."""
    options = getattr(reranker, "options", None)
    if options is None:
        return "unknown", False
    kind = reranker.backend.peek_score_kind()
    probabilities = gives_probabilities(options, kind)
    if options.calibration is not None:
        return options.calibration.describe(), probabilities
    if options.normalization == "sigmoid":
        return "sigmoid", probabilities
    if probabilities:
        return "the back end's probabilities", probabilities
    return f"{options.normalization} ({kind} scores)", probabilities


def calibration_summary(
    reranker: Any,
    calibrated_scores: Mapping[str, Sequence[float]] | None,
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
) -> dict[str, Any]:
    """The ``"calibration"`` block of ``rerank eval --json``: ``{"method", "ece", "brier", "pairs"}`` for
    the reranker's calibrated scores over all candidates (``ece``/``brier`` ``None`` when those scores
    are not probabilities, e.g. raw logits)."""
    method, probabilities = _score_label(reranker)
    out: dict[str, Any] = {"method": method, "ece": None, "brier": None, "pairs": 0}
    if calibrated_scores is None:
        return out
    p, y = labelled_scores(calibrated_scores, run, qrels)
    out["pairs"] = int(p.size)
    if probabilities and p.size and y.any():
        out.update(reliability(p, y))
    return out


@dataclass
class MethodFit:
    """One method fitted on a split, with its reliability there and, given one, on a held-out split."""

    calibration: Calibration
    fit: dict[str, float]
    threshold: dict[str, float]
    held_out: dict[str, float] | None = None
    transfer: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.calibration.method,
            "calibration": self.calibration.describe(),
            "fit": self.fit,
            "threshold": self.threshold,
            "held_out": self.held_out,
            "threshold_transfer": self.transfer,
        }


def _threshold_record(fit: Any) -> dict[str, float]:
    return {
        "threshold": round(float(fit), 6),
        "precision": round(fit.precision, 6),
        "recall": round(fit.recall, 6),
        "f1": round(fit.f1, 6),
    }


def _f1_at(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    kept = probabilities >= threshold
    tp = float(np.sum(kept & labels))
    precision = tp / max(float(kept.sum()), 1.0)
    recall = tp / max(float(labels.sum()), 1.0)
    return 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)


def fit_on_report(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    score_kind: str,
    methods: Sequence[str] = ("platt", "temperature", "isotonic"),
    held_out: tuple[np.ndarray, np.ndarray] | None = None,
    fitted_on: Mapping[str, Any] | None = None,
) -> dict[str, MethodFit]:
    """Fit each of ``methods`` on raw ``scores``/``labels`` (see the module docstring). A method that
    cannot be fitted here (temperature on rank scores, a reversed ranking) is left out with no error when
    others remain; when none can be fitted the first error is raised."""
    if held_out is not None and (held_out[0].size == 0 or not held_out[1].any()):
        raise InvalidInputError("held_out", "the held-out split has no relevant candidate to measure on")
    fits: dict[str, MethodFit] = {}
    first_error: InvalidInputError | None = None
    for method in methods:
        try:
            calibration = fit_calibration(
                scores, labels, method=method, score_kind=score_kind, fitted_on=fitted_on
            )
        except InvalidInputError as exc:
            first_error = first_error or exc
            continue
        p = calibration.apply(scores)
        threshold = fit_threshold(p, labels)
        record = MethodFit(calibration, reliability(p, labels), _threshold_record(threshold))
        if held_out is not None:
            q = calibration.apply(held_out[0])
            record.held_out = reliability(q, held_out[1])
            best = float(np.max(threshold_curve(q, held_out[1])["f1"]))
            transferred = _f1_at(q, held_out[1], float(threshold))
            record.transfer = {
                "f1_at_fitted_threshold": round(transferred, 6),
                "best_f1": round(best, 6),
                "gap": round(best - transferred, 6),
            }
        fits[method] = record
    if not fits:
        assert first_error is not None
        raise first_error
    return fits


def format_fits(fits: Mapping[str, MethodFit], before: Mapping[str, Any]) -> str:
    """The text table ``rerank calibrate`` prints: one row per method (and ``before``: the uncalibrated
    sigmoid or probabilities, when there are any)."""
    lines = [
        f"{'method':<34} {'ECE fit':>8} {'Brier fit':>9} {'ECE held':>9} {'Brier held':>10} "
        f"{'thr(F1)':>8} {'F1 fit':>7} {'F1 held@thr':>11} {'best F1 held':>12}"
    ]

    def cell(value: Any, width: int) -> str:
        return f"{value:>{width}.4f}" if isinstance(value, float) else f"{'-':>{width}}"

    if before:
        fit, held = before.get("fit") or {}, before.get("held_out") or {}
        lines.append(
            f"{before['label']:<34} {cell(fit.get('ece'), 8)} {cell(fit.get('brier'), 9)} "
            f"{cell(held.get('ece'), 9)} {cell(held.get('brier'), 10)}"
        )
    for fit in fits.values():
        held = fit.held_out or {}
        transfer = fit.transfer or {}
        lines.append(
            f"{fit.calibration.describe():<34} {cell(fit.fit['ece'], 8)} {cell(fit.fit['brier'], 9)} "
            f"{cell(held.get('ece'), 9)} {cell(held.get('brier'), 10)} {cell(fit.threshold['threshold'], 8)} "
            f"{cell(fit.threshold['f1'], 7)} {cell(transfer.get('f1_at_fitted_threshold'), 11)} "
            f"{cell(transfer.get('best_f1'), 12)}"
        )
    return "\n".join(lines)


@dataclass
class CalibrationRun:
    """What :func:`calibrate_on_beir` measured: each method's fit, the uncalibrated scores' reliability
    (``before``: the sigmoid of a logit back end's score, or its probabilities; empty for rank scores), the
    pair counts and the scoring time."""

    fits: dict[str, MethodFit]
    before: dict[str, Any]
    score_kind: str
    fit_pairs: int
    fit_positives: int
    fit_queries: int
    held_out_pairs: int | None
    held_out_positives: int | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "score_kind": self.score_kind,
            "pairs": self.fit_pairs,
            "positives": self.fit_positives,
            "queries": self.fit_queries,
            "held_out_pairs": self.held_out_pairs,
            "held_out_positives": self.held_out_positives,
            "before": self.before or None,
            "methods": {name: fit.to_dict() for name, fit in self.fits.items()},
            "scoring_seconds": round(self.seconds, 3),
        }


def score_rows(
    reranker: Any, rows: Sequence[tuple[str, str, float]], *, chunk_size: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """The raw score of each (query, text, label) row by ``reranker``'s back end (rows of one query scored
    in one call), and its binary label: 0 not relevant, 1 or more relevant (a graded label); a label
    strictly between 0 and 1, or negative, is refused (``InvalidInputError`` naming ``rows``)."""
    from rerank_core import Reranker

    plain = Reranker(reranker.backend)  # every row, raw scores
    labels = np.empty(len(rows), dtype=bool)
    by_query: dict[str, list[int]] = {}
    for i, (query, _, label) in enumerate(rows):
        if not (label == 0 or label >= 1):
            raise InvalidInputError(
                "rows", f"row {i + 1}: label {label!r} must be 0 (not relevant) or 1 or more (relevant)"
            )
        labels[i] = label >= 1
        by_query.setdefault(query, []).append(i)
    scores = np.empty(len(rows), dtype=np.float64)
    queries = list(by_query)
    for start in range(0, len(queries), chunk_size):
        chunk = queries[start : start + chunk_size]
        responses = plain.rerank_many(chunk, [[rows[i][1] for i in by_query[q]] for q in chunk])
        for query, response in zip(chunk, responses, strict=True):
            for result in response.results:
                scores[by_query[query][result.index]] = result.raw_score
    return scores, labels


def calibrate_rows(
    reranker: Any,
    rows: Sequence[tuple[str, str, float]],
    held_out_rows: Sequence[tuple[str, str, float]] | None = None,
    *,
    methods: Sequence[str] = ("platt", "temperature", "isotonic"),
    fitted_on: Mapping[str, Any] | None = None,
) -> CalibrationRun:
    """:func:`calibrate_on_beir` on your own labelled (query, text, label) rows (see :func:`score_rows`)
    instead of a BEIR split: fit on ``rows``, measure on ``held_out_rows`` when given."""
    started = time.perf_counter()
    scores, labels = score_rows(reranker, rows)
    held = None if held_out_rows is None else score_rows(reranker, held_out_rows)
    info = {"data": "rows", "backend": reranker.backend.fingerprint, **dict(fitted_on or {})}
    return _run(
        reranker.backend.score_kind, scores, labels, held, methods, info, len({r[0] for r in rows}), started
    )


def _run(
    kind: str,
    scores: np.ndarray,
    labels: np.ndarray,
    held: tuple[np.ndarray, np.ndarray] | None,
    methods: Sequence[str],
    info: Mapping[str, Any],
    queries: int,
    started: float,
) -> CalibrationRun:
    fits = fit_on_report(scores, labels, score_kind=kind, methods=methods, held_out=held, fitted_on=info)
    before: dict[str, Any] = {}
    if kind in ("logit", "probability"):

        def uncalibrated(x: np.ndarray) -> np.ndarray:
            return normalize_scores(x, "sigmoid") if kind == "logit" else x

        before = {
            "label": "before: sigmoid of the raw score"
            if kind == "logit"
            else "before: the model's probability",
            "fit": reliability(uncalibrated(scores), labels),
            "held_out": None if held is None else reliability(uncalibrated(held[0]), held[1]),
        }
    return CalibrationRun(
        fits=fits,
        before=before,
        score_kind=kind,
        fit_pairs=int(scores.size),
        fit_positives=int(labels.sum()),
        fit_queries=queries,
        held_out_pairs=None if held is None else int(held[0].size),
        held_out_positives=None if held is None else int(held[1].sum()),
        seconds=time.perf_counter() - started,
    )


def calibrate_on_beir(
    reranker: Any,
    fit_data: Any,
    held_out_data: Any = None,
    *,
    top_k: int = 100,
    methods: Sequence[str] = ("platt", "temperature", "isotonic"),
    max_queries: int | None = None,
    held_out_max_queries: int | None = None,
    fitted_on: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> CalibrationRun:
    """Score the BM25 top-``top_k`` of ``fit_data``'s queries (and ``held_out_data``'s) with ``reranker``'s
    back end (its raw score of every candidate: the reranker's own options, such as a ``top_n``, a threshold
    or a no-answer floor, are not applied) and fit ``methods`` on the labelled pairs: see the module
    docstring. The datasets are :class:`~rerank_core.eval.beir.BeirDataset` splits (restrict their
    ``queries`` to fit on a subset)."""
    from rerank_core import Reranker
    from rerank_core.eval.run import run_eval

    started = time.perf_counter()
    reranker = Reranker(reranker.backend)  # every candidate, raw scores: what a calibration is fitted on
    kind = reranker.backend.score_kind

    def pairs(data: Any, limit: int | None) -> tuple[Any, np.ndarray, np.ndarray]:
        report = run_eval(data, reranker=reranker, top_k=top_k, max_queries=limit, progress=progress)
        scores, labels = labelled_scores(report.rerank_scores or {}, report.first_stage_run, data.qrels)
        return report, scores, labels

    fit_report, scores, labels = pairs(fit_data, max_queries)
    held = None
    if held_out_data is not None:
        _, held_scores, held_labels = pairs(held_out_data, held_out_max_queries)
        held = (held_scores, held_labels)
    info = {
        "data": fit_data.name,
        "split": fit_data.split,
        "queries": fit_report.queries,
        "first_stage": f"bm25 top-{top_k}",
        "backend": reranker.backend.fingerprint,
        **dict(fitted_on or {}),
    }
    return _run(kind, scores, labels, held, methods, info, fit_report.queries, started)

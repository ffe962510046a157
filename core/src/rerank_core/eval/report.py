"""The evaluation report: one self-contained HTML file from an :class:`~rerank_core.eval.run.EvalReport`.

```python
from rerank_core.eval import load_beir, run_eval
from rerank_core.eval.report import write_report

dataset = load_beir("../shared/data/scifact", split="test")
report = run_eval(dataset, reranker=reranker, top_k=100)
write_report(report, dataset, "report.html", calibration=reranker.options.calibration,
             score_kind=reranker.backend.score_kind)
```

``rerank eval DATA --model M --report report.html`` writes the same file. It opens from disk and makes no
network request: the styles, the charts (inline SVG, drawn here with numpy) and a little vanilla
JavaScript (the query filter and sort) are all inside it, and a ``Content-Security-Policy`` forbids loading
anything else. What it shows:

1. every query's first-stage top 10 beside its reranked top 10: rank, text (the first 200 characters,
   HTML-escaped), qrels grade, first-stage and rerank score, and how far each document moved; the queries
   are collapsed panels that can be filtered by id or text and sorted by the change in nDCG@10;
2. the distribution of the rerank score (the calibrated one when the reranker had a calibration, else the
   raw one) per relevance grade (unjudged candidates count as grade 0, as BEIR scores them);
3. a reliability diagram (10 equal-width bins, relevant = grade 1 or more): before calibration (the
   sigmoid of a logit back end's raw score, or a probability back end's own score) and after (the
   calibrated scores), each with its ECE;
4. precision, recall and F1 against the threshold, with the calibration's stored F1 threshold
   (``fitted_on["threshold_f1"]``) marked, or the F1-optimal threshold on these data when there is none;
5. nDCG@10 per query, first stage against reranked, and the sorted per-query changes;
6. the timings, with reranked pairs and queries per second.

Only what the panels show is stored (10 documents a side per query, truncated texts; charts as a few SVG
paths), so 300 queries of 100 candidates make about 2.5 MB.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rerank_core.calibration import (
    expected_calibration_error,
    fit_threshold,
    reliability_bins,
    threshold_curve,
)
from rerank_core.errors import ConfigurationError
from rerank_core.eval.beir import BeirDataset, doc_text
from rerank_core.eval.metrics import ndcg_at_k
from rerank_core.normalization import normalize_scores

__all__ = ["TEXT_CHARS", "TOP_N", "build_report", "write_report"]

TOP_N = 10
"""Documents shown per side of a query panel."""
TEXT_CHARS = 200
"""Characters of a document's text shown in a panel (then an ellipsis)."""

_NDCG_K = 10
_ECE_BINS = 10
_STAGE_LABELS = {"bm25": "BM25", "dense": "dense", "hybrid": "hybrid"}
_GRADE_COLORS = ("#8a8f98", "#e09f3e", "#2a9d58", "#1d6fb8", "#8e44ad")
_BEFORE, _AFTER = "#d1495b", "#2e86de"
_CURVE_POINTS = 400


# -- data ----------------------------------------------------------------------------------------------


@dataclass
class _Pairs:
    """Every scored candidate of every query: raw score, calibrated score, qrels grade."""

    raw: np.ndarray
    calibrated: np.ndarray
    grades: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        return self.grades >= 1


def _pairs(report: Any, qrels: Mapping[str, Mapping[str, int]]) -> _Pairs:
    raw: list[float] = []
    calibrated: list[float] = []
    grades: list[int] = []
    cal_scores = report.calibrated_scores or {}
    for qid, ids in report.first_stage_run.items():
        row = (report.rerank_scores or {}).get(qid)
        if row is None:
            continue
        cal = cal_scores.get(qid) or [math.nan] * len(row)
        judged = qrels.get(qid, {})
        for doc_id, r, c in zip(ids, row, cal, strict=False):
            if not math.isnan(r):
                raw.append(float(r))
                calibrated.append(float(c))
                grades.append(max(int(judged.get(doc_id, 0)), 0))
    return _Pairs(
        np.asarray(raw, dtype=np.float64),
        np.asarray(calibrated, dtype=np.float64),
        np.asarray(grades, dtype=np.int64),
    )


def _score_kind(score_kind: str | None, calibration: Any, raw: np.ndarray) -> str:
    """The back end's kind of raw score: given, else the calibration's, else guessed from the scores."""
    if score_kind is not None:
        return score_kind
    if calibration is not None:
        return calibration.score_kind
    return "probability" if raw.size and raw.min() >= 0 and raw.max() <= 1 else "logit"


# -- SVG -----------------------------------------------------------------------------------------------


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not hi > lo:
        return [lo]
    raw_step = (hi - lo) / n
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    first = math.ceil(lo / step - 1e-9) * step
    count = math.floor((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 10) for i in range(count)]


def _fmt_tick(v: float) -> str:
    return f"{v:.4g}"


class _Plot:
    """Maps data to the pixels of one SVG chart and draws its axes."""

    def __init__(
        self,
        xlim: tuple[float, float],
        ylim: tuple[float, float],
        *,
        width: int = 420,
        height: int = 280,
        margin: tuple[int, int, int, int] = (12, 14, 42, 50),  # top, right, bottom, left
    ) -> None:
        self.xlim = xlim if xlim[1] > xlim[0] else (xlim[0] - 0.5, xlim[0] + 0.5)
        self.ylim = ylim if ylim[1] > ylim[0] else (ylim[0] - 0.5, ylim[0] + 0.5)
        self.width, self.height = width, height
        self.top, self.right, self.bottom, self.left = margin
        self.x0, self.x1 = self.left, width - self.right
        self.y0, self.y1 = height - self.bottom, self.top  # y0: the bottom of the plot area

    def x(self, v: Any) -> Any:
        lo, hi = self.xlim
        return self.x0 + (np.asarray(v, dtype=np.float64) - lo) / (hi - lo) * (self.x1 - self.x0)

    def y(self, v: Any) -> Any:
        lo, hi = self.ylim
        return self.y0 - (np.asarray(v, dtype=np.float64) - lo) / (hi - lo) * (self.y0 - self.y1)

    def line(self, xs: Any, ys: Any) -> str:
        """An SVG path ``d`` through the points (NaN points break the line)."""
        px, py = self.x(xs), self.y(ys)
        out: list[str] = []
        pen = "M"
        for a, b in zip(np.atleast_1d(px), np.atleast_1d(py), strict=True):
            if not (math.isfinite(a) and math.isfinite(b)):
                pen = "M"
                continue
            out.append(f"{pen}{a:.1f} {b:.1f}")
            pen = "L"
        return "".join(out)

    def dots(self, xs: Any, ys: Any) -> str:
        """A path ``d`` of zero-length segments: with a round line cap, one dot per point in one element."""
        px, py = self.x(xs), self.y(ys)
        return "".join(
            f"M{a:.1f} {b:.1f}h0" for a, b in zip(np.atleast_1d(px), np.atleast_1d(py), strict=True)
        )

    def axes(self, xlabel: str, ylabel: str) -> str:
        parts = [
            f'<rect class="frame" x="{self.x0}" y="{self.y1}" width="{self.x1 - self.x0}" '
            f'height="{self.y0 - self.y1}"/>'
        ]
        grid: list[str] = []
        for t in _ticks(*self.xlim):
            px = float(self.x(t))
            grid.append(f"M{px:.1f} {self.y0}V{self.y1}")
            parts.append(_text("tick", px, self.y0 + 14, _fmt_tick(t), "middle"))
        for t in _ticks(*self.ylim):
            py = float(self.y(t))
            grid.append(f"M{self.x0} {py:.1f}H{self.x1}")
            parts.append(_text("tick", self.x0 - 5, py + 3.5, _fmt_tick(t), "end"))
        parts.insert(0, f'<path class="grid" d="{"".join(grid)}"/>')
        parts.append(
            f'<text class="label" x="{(self.x0 + self.x1) / 2:.1f}" y="{self.height - 6}" '
            f'text-anchor="middle">{_esc(xlabel)}</text>'
        )
        cy = (self.y0 + self.y1) / 2
        parts.append(
            f'<text class="label" transform="translate(13 {cy:.1f}) rotate(-90)" '
            f'text-anchor="middle">{_esc(ylabel)}</text>'
        )
        return "".join(parts)

    def svg(self, chart_id: str, body: str, title: str) -> str:
        return (
            f'<svg id="{chart_id}" class="chart" viewBox="0 0 {self.width} {self.height}" role="img" '
            f'aria-label="{_esc(title)}">{body}</svg>'
        )


def _text(cls: str, x: float, y: float, text: str, anchor: str = "start") -> str:
    """An SVG ``<text>`` (``text`` is escaped)."""
    return f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{_esc(text)}</text>'


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    """An HTML legend: (colour, label) pairs; labels are escaped."""
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{_esc(label)}</span>' for c, label in items)
        + "</div>"
    )


def _figure(fig_id: str, title: str, svg: str, legend: str = "", note: str = "") -> str:
    return (
        f'<figure id="{fig_id}"><figcaption>{_esc(title)}</figcaption>{svg}{legend}'
        + (f'<p class="note">{_esc(note)}</p>' if note else "")
        + "</figure>"
    )


def _empty_figure(fig_id: str, title: str, why: str) -> str:
    return (
        f'<figure id="{fig_id}" class="empty"><figcaption>{_esc(title)}</figcaption>'
        f'<p class="note">{_esc(why)}</p></figure>'
    )


# -- charts --------------------------------------------------------------------------------------------


def _score_range(scores: np.ndarray, probability: bool) -> tuple[float, float]:
    """The x range of a score axis: probabilities from 0 up to the next tenth above the highest score (so
    scores that all stay low are not squeezed to one side), other scores from their minimum to maximum."""
    if probability:
        return 0.0, min(1.0, max(0.1, math.ceil(float(scores.max()) * 10 - 1e-9) / 10))
    return float(scores.min()), float(scores.max())


def _score_histograms(scores: np.ndarray, grades: np.ndarray, label: str, probability: bool) -> str:
    title = f"{label} per relevance grade"
    if scores.size == 0:
        return _empty_figure("fig-scores", title, "No scored candidates.")
    lo, hi = _score_range(scores, probability)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, 31)
    shares = {}
    for g in np.unique(grades):
        counts, _ = np.histogram(scores[grades == g], bins=edges)
        shares[int(g)] = counts / max(counts.sum(), 1)
    top = max(float(s.max()) for s in shares.values())
    plot = _Plot((lo, hi), (0.0, top * 1.08 or 1.0))
    body = [plot.axes(label, "share of the grade's candidates")]
    legend = []
    for g, share in shares.items():
        color = _GRADE_COLORS[min(g, len(_GRADE_COLORS) - 1)]
        xs = np.repeat(edges, 2)[1:-1]
        ys = np.repeat(share, 2)
        d = plot.line(np.r_[edges[0], xs, edges[-1]], np.r_[0.0, ys, 0.0])
        body.append(
            f'<path class="hist" data-grade="{g}" d="{d}" fill="{color}" fill-opacity="0.22" '
            f'stroke="{color}"/>'
        )
        name = "grade 0 / unjudged" if g == 0 else f"grade {g}"
        legend.append((color, f"{name} ({int(np.sum(grades == g))} candidates)"))
    return _figure(
        "fig-scores",
        title,
        plot.svg("chart-scores", "".join(body), title),
        _legend(legend),
        "Each grade's histogram is normalised to its own candidates (30 bins).",
    )


def _reliability_chart(curves: Sequence[tuple[str, str, np.ndarray]], labels: np.ndarray, why: str) -> str:
    """``curves``: (``"before"`` or ``"after"``, label, probabilities) each."""
    title = f"Reliability ({_ECE_BINS} equal-width bins, relevant = grade ≥ 1)"
    if not curves or labels.size == 0:
        return _empty_figure("fig-reliability", title, why or "No probabilities to plot.")
    plot = _Plot((0.0, 1.0), (0.0, 1.0), height=300)
    body = [plot.axes("predicted probability (bin mean)", "observed share relevant")]
    body.append(f'<path class="diagonal" d="{plot.line([0, 1], [0, 1])}"/>')
    legend = [("#999", "perfect calibration")]
    for name, label, p in curves:
        color = _BEFORE if name == "before" else _AFTER
        bins = reliability_bins(p, labels, _ECE_BINS)
        ece = expected_calibration_error(p, labels, _ECE_BINS)
        mean_p, observed, count = bins["mean_probability"], bins["observed"], bins["count"]
        filled = count > 0
        body.append(
            f'<path class="curve curve-{name}" d="{plot.line(mean_p[filled], observed[filled])}" '
            f'stroke="{color}"/>'
        )
        body.append(
            f'<path class="dots dots-{name}" d="{plot.dots(mean_p[filled], observed[filled])}" '
            f'stroke="{color}"/>'
        )
        # candidates per bin as faint bars along the bottom (log scale, up to a tenth of the height)
        scale = 0.1 / math.log1p(float(count.max()))
        offset = (0.25 if name == "before" else 0.65) / _ECE_BINS
        bars = "".join(
            f"M{float(plot.x(e0 + offset)):.1f} {plot.y0}V{float(plot.y(math.log1p(c) * scale)):.1f}"
            for e0, c in zip(bins["edges"][:-1], count, strict=True)
            if c > 0
        )
        body.append(f'<path class="counts" d="{bars}" stroke="{color}"/>')
        legend.append((color, f"{name}: {label}, ECE {ece:.4f}"))
    return _figure(
        "fig-reliability",
        title,
        plot.svg("chart-reliability", "".join(body), title),
        _legend(legend),
        " ".join(filter(None, [why, "Bars at the bottom: candidates per bin (log scale)."])),
    )


def _downsample(n: int) -> np.ndarray:
    if n <= _CURVE_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, _CURVE_POINTS).round().astype(np.int64))


def _threshold_chart(
    scores: np.ndarray,
    labels: np.ndarray,
    label: str,
    stored: float | None,
    stored_from: str,
    probability: bool,
) -> str:
    title = f"Precision and recall against the threshold ({label})"
    if scores.size == 0 or not labels.any():
        return _empty_figure("fig-threshold", title, "No relevant candidate: no precision/recall curve.")
    curve = threshold_curve(scores, labels)
    keep = _downsample(curve["threshold"].size)
    th = curve["threshold"][keep]
    lo, hi = _score_range(scores, probability)
    plot = _Plot((lo, hi), (0.0, 1.0), height=300)
    body = [plot.axes(f"threshold on the {label}", "precision / recall / F1")]
    legend = []
    for key, color in (("precision", "#2e86de"), ("recall", "#e09f3e"), ("f1", "#2a9d58")):
        body.append(
            f'<path class="curve curve-{key}" d="{plot.line(th, curve[key][keep])}" stroke="{color}"/>'
        )
        legend.append((color, key if key != "f1" else "F1"))
    if stored is not None:
        threshold, source = stored, stored_from
    else:
        threshold, source = float(fit_threshold(scores, labels)), "F1-optimal, fitted here on these data"
    kept = scores >= threshold
    tp = float(np.sum(kept & labels))
    precision = tp / max(float(kept.sum()), 1.0)
    recall = tp / float(labels.sum())
    f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
    px = float(plot.x(min(max(threshold, lo), hi)))
    body.append(f'<path class="marker" d="M{px:.1f} {plot.y0}V{plot.y1}"/>')
    body.append(
        f'<text class="marker-label" x="{px + 4:.1f}" y="{plot.y1 + 12}">{_esc(f"{threshold:.4g}")}</text>'
    )
    legend.append(
        (
            "#222",
            f"threshold {threshold:.4g} ({source}): precision {precision:.3f}, recall {recall:.3f}, "
            f"F1 {f1:.3f} here",
        )
    )
    return _figure("fig-threshold", title, plot.svg("chart-threshold", "".join(body), title), _legend(legend))


def _ndcg_charts(first: np.ndarray, reranked: np.ndarray, stage: str) -> str:
    title = f"nDCG@{_NDCG_K} per query: {stage} against reranked"
    if first.size == 0:
        return _empty_figure("fig-ndcg", title, "No query with a relevant judgment.")
    plot = _Plot((0.0, 1.0), (0.0, 1.0), height=300)
    body = [plot.axes(f"{stage} nDCG@{_NDCG_K}", f"reranked nDCG@{_NDCG_K}")]
    body.append(f'<path class="diagonal" d="{plot.line([0, 1], [0, 1])}"/>')
    delta = reranked - first
    for cls, mask, color in (
        ("gain", delta > 1e-12, "#2a9d58"),
        ("loss", delta < -1e-12, "#d1495b"),
        ("same", np.abs(delta) <= 1e-12, "#8a8f98"),
    ):
        if mask.any():
            body.append(
                f'<path class="dots dots-{cls}" d="{plot.dots(first[mask], reranked[mask])}" '
                f'stroke="{color}"/>'
            )
    better, worse = int(np.sum(delta > 1e-12)), int(np.sum(delta < -1e-12))
    legend = _legend(
        [
            ("#2a9d58", f"better after reranking: {better}"),
            ("#d1495b", f"worse: {worse}"),
            ("#8a8f98", f"unchanged: {first.size - better - worse}"),
        ]
    )
    scatter = _figure("fig-ndcg", title, plot.svg("chart-ndcg", "".join(body), title), legend)

    order = np.sort(delta)[::-1]
    bound = max(float(np.abs(order).max()), 0.05)
    bars = _Plot((0.0, float(order.size)), (-bound, bound), height=300)
    body = [bars.axes("queries, sorted by change", f"reranked − {stage} nDCG@{_NDCG_K}")]
    width = (bars.x1 - bars.x0) / order.size
    zero = float(bars.y(0.0))
    for cls, mask, color in (("gain", order > 0, "#2a9d58"), ("loss", order < 0, "#d1495b")):
        d = "".join(
            f"M{bars.x0 + i * width:.2f} {zero:.1f}h{width:.2f}V{float(bars.y(v)):.1f}h{-width:.2f}Z"
            for i, v in enumerate(order)
            if mask[i]
        )
        if d:
            body.append(f'<path class="bars bars-{cls}" d="{d}" fill="{color}"/>')
    body.append(f'<path class="zero" d="M{bars.x0} {zero:.1f}H{bars.x1}"/>')
    sub = f"Change in nDCG@{_NDCG_K} per query (mean {float(delta.mean()):+.4f})"
    return scatter + _figure("fig-ndcg-delta", sub, bars.svg("chart-ndcg-delta", "".join(body), sub))


def _timings_chart(timings: Mapping[str, float], pairs: int, queries: int) -> str:
    title = "Timings"
    rows = [(name, float(secs)) for name, secs in timings.items()]
    if not rows:
        return _empty_figure("fig-timings", title, "No timings recorded.")
    longest = max(s for _, s in rows) or 1.0
    height = 24 * len(rows) + 40
    plot = _Plot((0.0, longest * 1.25), (0.0, 1.0), height=height, margin=(8, 14, 32, 110))
    body = [
        f'<rect class="frame" x="{plot.x0}" y="{plot.y1}" width="{plot.x1 - plot.x0}" '
        f'height="{plot.y0 - plot.y1}"/>'
    ]
    for i, (name, secs) in enumerate(rows):
        y = plot.y1 + 6 + i * 24
        w = float(plot.x(secs)) - plot.x0
        body.append(f'<rect class="tbar" x="{plot.x0}" y="{y}" width="{w:.1f}" height="16"/>')
        body.append(
            f'<text class="tick" x="{plot.x0 - 6}" y="{y + 12}" text-anchor="end">{_esc(name)}</text>'
        )
        body.append(f'<text class="tick" x="{plot.x0 + w + 4:.1f}" y="{y + 12}">{secs:.2f} s</text>')
    body.append(_text("label", (plot.x0 + plot.x1) / 2, height - 8, "seconds", "middle"))
    rerank = float(timings.get("rerank", 0.0))
    if rerank > 0 and pairs:
        rate = (
            f"Reranked {pairs} pairs of {queries} queries in {rerank:.2f} s: {pairs / rerank:.1f} pairs/s, "
            f"{queries / rerank:.2f} queries/s, {1000 * rerank / max(queries, 1):.0f} ms per query."
        )
    else:
        rate = "No reranking time recorded."
    return _figure("fig-timings", title, plot.svg("chart-timings", "".join(body), title), note=rate)


# -- query panels --------------------------------------------------------------------------------------


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1].rstrip() + "…"


def _num(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.3f}" if abs(v) < 1000 else f"{v:.4g}"


def _at(values: Sequence[float], i: int) -> float:
    return float(values[i]) if i < len(values) else math.nan


def _grade_cell(grade: int | None) -> str:
    if grade is None:
        return '<td class="g gu" title="unjudged">·</td>'
    return f'<td class="g g{min(max(grade, 0), 4)}">{grade}</td>'


def _panel(
    index: int,
    qid: str,
    query: str,
    ids: Sequence[str],
    reranked: Sequence[str],
    first_scores: Sequence[float],
    rerank_scores: Sequence[float],
    calibrated: Sequence[float] | None,
    judged: Mapping[str, int],
    texts: Mapping[str, str],
    ndcg: tuple[float, float] | None,
    stage: str,
) -> str:
    position = {d: i for i, d in enumerate(ids)}
    new_rank = {d: i for i, d in enumerate(reranked)}
    cal_head = "<th>P(rel)</th>" if calibrated is not None else ""
    head = (
        f"<thead><tr><th>#</th><th>document</th><th>grade</th><th>{_esc(stage)}</th><th>rerank</th>"
        f"{cal_head}<th>move</th></tr></thead>"
    )

    def row(rank: int, doc_id: str, move: str) -> str:
        i = position[doc_id]
        cal = f"<td>{_num(_at(calibrated, i))}</td>" if calibrated is not None else ""
        return (
            f'<tr><td>{rank + 1}</td><td class="t" title="{_esc(doc_id)}">{_esc(texts[doc_id])}</td>'
            f"{_grade_cell(judged.get(doc_id))}<td>{_num(_at(first_scores, i))}</td>"
            f"<td>{_num(_at(rerank_scores, i))}</td>"
            f"{cal}{move}</tr>"
        )

    left = []
    for rank, doc_id in enumerate(ids[:TOP_N]):
        to = new_rank.get(doc_id)
        if to is None:
            move = '<td class="same">–</td>'
        else:
            cls = "up" if to < rank else "down" if to > rank else "same"
            move = f'<td class="{cls}" title="reranked at {to + 1}">→ {to + 1}</td>'
        left.append(row(rank, doc_id, move))
    right = []
    for rank, doc_id in enumerate(reranked[:TOP_N]):
        was = position[doc_id]
        if was > rank:
            move = f'<td class="up" title="was {was + 1}">▲ {was - rank}</td>'
        elif was < rank:
            move = f'<td class="down" title="was {was + 1}">▼ {rank - was}</td>'
        else:
            move = '<td class="same">=</td>'
        right.append(row(rank, doc_id, move))
    if ndcg is None:
        nd, delta = "no relevant judgment", ""
    else:
        d = ndcg[1] - ndcg[0]
        cls = "up" if d > 1e-12 else "down" if d < -1e-12 else "same"
        nd = f'nDCG@{_NDCG_K} {ndcg[0]:.3f} → {ndcg[1]:.3f} <b class="{cls}">{d:+.3f}</b>'
        delta = f"{d:.6f}"
    relevant = sum(1 for g in judged.values() if g >= 1)
    return (
        f'<details class="q" id="q{index}" data-i="{index}" data-delta="{delta}" '
        f'data-text="{_esc((qid + " " + query).lower())}"><summary><span class="qid">{_esc(qid)}</span> '
        f'<span class="qt">{_esc(query)}</span> <span class="nd">{nd}</span></summary>'
        f'<p class="note">{len(ids)} candidates, {relevant} judged relevant in the qrels.</p>'
        '<div class="sbs">'
        f"<table><caption>{_esc(stage)} top {TOP_N}</caption>{head}<tbody>{''.join(left)}</tbody></table>"
        f"<table><caption>reranked top {TOP_N}</caption>{head}<tbody>{''.join(right)}</tbody></table>"
        "</div></details>"
    )


# -- page ----------------------------------------------------------------------------------------------

_CSS = """
:root{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f6f7f9}
body{margin:0 auto;padding:14px 22px 40px;max-width:1500px}
h1{font-size:20px;margin:4px 0}h2{font-size:16px;margin:22px 0 8px}
nav{position:sticky;top:0;background:#f6f7f9;padding:6px 0;border-bottom:1px solid #dde1e7;z-index:2}
nav a{margin-right:14px;color:#1d6fb8;text-decoration:none}
.meta{color:#4b5563;margin:2px 0 8px}
table.summary{border-collapse:collapse;background:#fff;margin:6px 0}
table.summary td,table.summary th{border:1px solid #dde1e7;padding:3px 10px;text-align:right}
table.summary th:first-child,table.summary td:first-child{text-align:left}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 10px}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart{width:100%;height:auto;display:block}
.frame{fill:none;stroke:#c4c9d2}.grid{stroke:#eceef2;fill:none}
.tick{font-size:10px;fill:#4b5563}.label{font-size:11px;fill:#1d2330}
.diagonal{stroke:#999;stroke-dasharray:4 3;fill:none}
.curve{fill:none;stroke-width:2}.dots{fill:none;stroke-width:7;stroke-linecap:round;stroke-opacity:.75}
#chart-ndcg .dots{stroke-width:6;stroke-opacity:.45}
.counts{stroke-width:3;stroke-opacity:.45;fill:none}
.marker{stroke:#222;stroke-dasharray:5 3;stroke-width:1.5}.marker-label{font-size:11px;fill:#222}
.zero{stroke:#555}.tbar{fill:#2e86de}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin-top:4px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.note{color:#4b5563;font-size:12px;margin:4px 0}
.controls{display:flex;gap:10px;align-items:center;margin:6px 0 10px;flex-wrap:wrap}
.controls input{flex:1;min-width:240px;padding:5px 8px;border:1px solid #c4c9d2;border-radius:4px}
details.q{background:#fff;border:1px solid #dde1e7;border-radius:5px;margin:4px 0}
details.q>summary{cursor:pointer;padding:5px 10px;display:flex;gap:10px;align-items:baseline}
details.q[open]>summary{border-bottom:1px solid #dde1e7}
.qid{font-family:ui-monospace,monospace;color:#6b7280;min-width:5em}.qt{flex:1}.nd{white-space:nowrap;font-size:12px}
.sbs{display:grid;grid-template-columns:1fr 1fr;gap:10px;padding:6px 10px 10px}
.sbs table{border-collapse:collapse;width:100%;font-size:12px}
.sbs caption{text-align:left;font-weight:600;padding:2px 0}
.sbs th,.sbs td{border-bottom:1px solid #eceef2;padding:3px 5px;text-align:right;vertical-align:top;
white-space:nowrap}
.sbs td.t,.sbs th:nth-child(2){text-align:left;white-space:normal}.sbs td.t{width:60%}
details.q>.note{padding:0 10px}
.g{text-align:center!important;font-weight:600}.g0{color:#8a8f98}.g1{background:#fbe9cf}.g2{background:#d3f0dd}
.g3,.g4{background:#d6e6f7}.gu{color:#b6bbc4}
.up{color:#2a9d58}.down{color:#d1495b}.same{color:#8a8f98}
@media (max-width:900px){.sbs{grid-template-columns:1fr}}
"""

_JS = """
(function(){
var list=document.getElementById('q-list');if(!list)return;
var items=Array.prototype.slice.call(list.children);
var search=document.getElementById('q-search'),sort=document.getElementById('q-sort');
var count=document.getElementById('q-count');
function shown(){var q=search.value.trim().toLowerCase(),n=0;
items.forEach(function(el){var ok=!q||el.getAttribute('data-text').indexOf(q)>=0;el.hidden=!ok;if(ok)n++;});
count.textContent=n+' of '+items.length+' queries';}
function delta(el){var v=el.getAttribute('data-delta');return v===''?NaN:parseFloat(v);}
function order(){var key=sort.value;var s=items.slice();
if(key!=='file'){var sign=key==='gain'?-1:1;s.sort(function(a,b){var x=delta(a),y=delta(b);
if(isNaN(x))return isNaN(y)?0:1;if(isNaN(y))return -1;return sign*(x-y);});}
s.forEach(function(el){list.appendChild(el);});}
function openHash(){var id=location.hash.slice(1);var el=id?document.getElementById(id):null;
if(el&&el.tagName==='DETAILS'){el.open=true;el.scrollIntoView();}}
search.addEventListener('input',shown);sort.addEventListener('change',order);
document.getElementById('q-open').addEventListener('click',function(){items.forEach(function(el){if(!el.hidden)el.open=true;});});
document.getElementById('q-close').addEventListener('click',function(){items.forEach(function(el){el.open=false;});});
window.addEventListener('hashchange',openHash);shown();openHash();
})();
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _summary_table(report: Any, stage: str) -> str:
    rows = [(f"first stage: {stage}", report.first_stage)]
    if report.reranked is not None:
        rows.append(("reranked", report.reranked))
    if report.fused is not None:
        rows.append((f"fused ({report.fusion})", report.fused))
    keys = list(report.first_stage)
    out = ["<table class='summary'><tr><th></th>" + "".join(f"<th>{_esc(k)}</th>" for k in keys) + "</tr>"]
    for label, values in rows:
        out.append(
            f"<tr><td>{_esc(label)}</td>" + "".join(f"<td>{values[k]:.4f}</td>" for k in keys) + "</tr>"
        )
    out.append("</table>")
    return "".join(out)


def build_report(
    report: Any,
    dataset: BeirDataset,
    *,
    calibration: Any = None,
    score_kind: str | None = None,
    title: str | None = None,
) -> str:
    """The report's HTML (see the module docstring) for ``report``, an :class:`EvalReport` of a run with a
    reranker over ``dataset`` (its queries, qrels and document texts).

    ``calibration``: the reranker's :class:`~rerank_core.calibration.Calibration`, when it had one: the
    "after" curve and the score charts then read ``report.calibrated_scores``, and its stored F1 threshold
    is marked. ``score_kind``: the back end's (``"logit"``, ``"probability"``, ``"rank"``), which decides
    the "before" curve; default the calibration's, else ``"probability"`` when every raw score lies in
    [0, 1] and ``"logit"`` otherwise."""
    if report.rerank_scores is None or report.reranked_run is None:
        raise ConfigurationError("report", "has no reranker scores: run run_eval with a reranker")
    stage = _STAGE_LABELS.get(report.first_stage_name, report.first_stage_name)
    qrels = dataset.qrels
    pairs = _pairs(report, qrels)
    kind = _score_kind(score_kind, calibration, pairs.raw)
    labels = pairs.labels
    calibrated = calibration is not None and report.calibrated_scores is not None

    # charts
    curves: list[tuple[str, str, np.ndarray]] = []
    why: list[str] = []
    if kind == "logit":
        curves.append(("before", "sigmoid of the raw score", normalize_scores(pairs.raw, "sigmoid")))
    elif kind == "probability":
        curves.append(("before", "the back end's probability", np.clip(pairs.raw, 0.0, 1.0)))
    else:
        why.append(f"The back end's {kind} scores are not probabilities: no 'before' curve.")
    after = None
    if calibrated and np.all(np.isfinite(pairs.calibrated)):
        after = np.clip(pairs.calibrated, 0.0, 1.0)
        curves.append(("after", calibration.describe(), after))
    elif not calibrated:
        why.append("The reranker had no calibration: no 'after' curve.")
    if after is not None:
        scores, score_label, probability = after, "calibrated score", True
    else:
        scores, score_label, probability = pairs.raw, "raw rerank score", kind == "probability"
    stored = None
    stored_from = ""
    if after is not None:
        fitted = dict(calibration.fitted_on or {})
        th = (fitted.get("threshold_f1") or {}).get("threshold")
        if isinstance(th, int | float) and math.isfinite(th):
            stored = float(th)
            where = " ".join(str(fitted[k]) for k in ("data", "split") if fitted.get(k))
            stored_from = f"F1 threshold stored with the calibration, fitted on {where or 'its own data'}"

    first_nd: list[float] = []
    rerank_nd: list[float] = []
    per_query_nd: dict[str, tuple[float, float]] = {}
    for qid, ids in report.first_stage_run.items():
        judged = qrels.get(qid, {})
        if not any(g >= 1 for g in judged.values()):
            continue
        pair = (
            ndcg_at_k(ids, judged, _NDCG_K),
            ndcg_at_k(report.reranked_run.get(qid, []), judged, _NDCG_K),
        )
        per_query_nd[qid] = pair
        first_nd.append(pair[0])
        rerank_nd.append(pair[1])

    n_pairs = sum(len(report.first_stage_run.get(q, [])) for q in report.rerank_scores)
    n_queries = sum(1 for q in report.rerank_scores if report.first_stage_run.get(q))
    charts = [
        _score_histograms(scores, pairs.grades, score_label, probability),
        _reliability_chart(curves, labels, " ".join(why)),
        _threshold_chart(scores, labels, score_label, stored, stored_from, probability),
        _ndcg_charts(np.asarray(first_nd), np.asarray(rerank_nd), stage),
        _timings_chart(report.timings, n_pairs, n_queries),
    ]

    # panels
    panels = []
    cal_scores = report.calibrated_scores if calibrated else None
    for index, (qid, ids) in enumerate(report.first_stage_run.items()):
        if not ids:
            continue
        shown = set(ids[:TOP_N]) | set(report.reranked_run.get(qid, [])[:TOP_N])
        texts = {d: _truncate(doc_text(dataset.corpus[d])) if d in dataset.corpus else "" for d in shown}
        panels.append(
            _panel(
                index,
                qid,
                dataset.queries.get(qid, ""),
                ids,
                report.reranked_run.get(qid, []),
                report.first_stage_scores.get(qid, []),
                report.rerank_scores.get(qid, []),
                None if cal_scores is None else cal_scores.get(qid),
                qrels.get(qid, {}),
                texts,
                per_query_nd.get(qid),
                stage,
            )
        )

    heading = title or f"Reranking report: {report.dataset} ({report.split})"
    cal_line = ""
    if report.calibration:
        block = report.calibration
        ece = "–" if block.get("ece") is None else f"{block['ece']:.4f}"
        brier = "–" if block.get("brier") is None else f"{block['brier']:.4f}"
        cal_line = (
            f"<p class='meta'>Scores as the reranker gave them: {_esc(block.get('method'))}; ECE {ece}, "
            f"Brier {brier} over {block.get('pairs', 0)} pairs.</p>"
        )
    meta = (
        f"{report.queries} queries, {report.corpus_size} documents, {stage} top-{report.top_k}"
        + (f", reranked by {report.model}" if report.model else "")
        + f"; back-end score kind: {kind}; {report.seconds:.1f} s in all."
    )
    return "".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            "<meta name='viewport' content='width=device-width,initial-scale=1'>",
            '<link rel="icon" href="data:,">',
            f"<title>{_esc(heading)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{_esc(heading)}</h1><p class='meta'>{_esc(meta)}</p>",
            _summary_table(report, stage),
            cal_line,
            "<nav><a href='#charts'>Charts</a><a href='#fig-reliability'>Reliability</a>"
            "<a href='#fig-threshold'>Threshold</a><a href='#fig-ndcg'>nDCG per query</a>"
            "<a href='#fig-timings'>Timings</a><a href='#queries'>Queries</a></nav>",
            "<h2 id='charts'>Charts</h2><div class='charts'>",
            *charts,
            "</div>",
            f"<h2 id='queries'>Queries: {stage} top {TOP_N} and reranked top {TOP_N}</h2>",
            "<div class='controls'>"
            "<input id='q-search' type='search' placeholder='filter by query id or text'>"
            "<label>sort <select id='q-sort'><option value='file'>file order</option>"
            f"<option value='gain'>largest nDCG@{_NDCG_K} gain first</option>"
            f"<option value='loss'>largest nDCG@{_NDCG_K} loss first</option></select></label>"
            "<button id='q-open' type='button'>open shown</button>"
            "<button id='q-close' type='button'>close all</button>"
            "<span id='q-count'></span></div>",
            f"<div id='q-list'>{''.join(panels)}</div>",
            f"<script>{_JS}</script></body></html>",
        ]
    )


def write_report(
    report: Any,
    dataset: BeirDataset,
    path: str | Path,
    *,
    calibration: Any = None,
    score_kind: str | None = None,
    title: str | None = None,
) -> Path:
    """Write :func:`build_report`'s HTML to ``path`` (UTF-8); returns the path."""
    target = Path(path).expanduser()
    target.write_text(
        build_report(report, dataset, calibration=calibration, score_kind=score_kind, title=title),
        encoding="utf-8",
    )
    return target

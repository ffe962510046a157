"""Turn a :class:`~rerank_core.eval.speed.harness.BenchResult` into a Markdown table, a PNG chart and JSON,
and pick the fastest of our configurations that keeps quality (``rerank pick``). Until the restructure of
issue 15 this was ``rerank_core.bench.report``."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from rerank_core.eval.speed.harness import REFERENCE, BenchResult, ContenderResult

__all__ = ["Pick", "markdown", "pick_fastest", "write_chart", "write_outputs"]


def _f(value: float | None, fmt: str, dash: str = "—") -> str:
    return dash if value is None else format(value, fmt)


def _lat(c: ContenderResult, size: int) -> str:
    d = c.latency_ms.get(str(size))
    return "—" if not d else f"{d['p50']:.0f} / {d['p95']:.0f}"


def markdown(result: BenchResult) -> str:
    """The results as Markdown: a header of what ran where, the table, the skipped contenders."""
    m = result.machine
    w = result.workload
    lines = [
        f"Model `{result.model}`, {w['name']}: {w['queries']} queries, {w['first_stage']} "
        f"({w['pairs']} pairs, {result.mean_tokens:.0f} tokens a pair on average after truncation at "
        f"{m.get('model_max_length')}); "
        f"{result.repeats} interleaved rounds; started {result.started}.",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores (torch threads {m.get('torch_threads')}), "
        f"torch {m.get('torch')}, sentence-transformers {m.get('sentence-transformers')}. "
        f"Measured matmul rate (median of the rounds' best): fp32 {result.matmul_fp32 / 1e9:.0f} GFLOP/s"
        + (f", bf16 {result.matmul_bf16 / 1e9:.0f} GFLOP/s" if result.matmul_bf16 else "")
        + f"; {result.flops_per_pair / 1e9:.2f} GFLOP a pair, so the fp32 ceiling is "
        f"{result.ceiling_pairs_per_s_fp32:.1f} pairs/s"
        + (f" (bf16 {result.ceiling_pairs_per_s_bf16:.1f})" if result.ceiling_pairs_per_s_bf16 else "")
        + ".",
        "",
    ]
    sizes = result.latency_sizes
    head = (
        ["contender", "path that ran", "pairs/s", f"× {result.baseline}"]
        + [f"p50 / p95 ms @{n}" for n in sizes]
        + ["peak RSS Δ MB", "nDCG@10", f"max Δscore vs {result.baseline}", "% fp32 peak"]
    )
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    ok = [c for c in result.contenders if c.status == "ok" and c.pairs_per_s is not None]
    best = max((c.pairs_per_s or 0.0 for c in ok), default=0.0)
    for c in ok:
        name = c.name
        runtime = str(c.info.get("runtime", ""))
        pps = f"{c.pairs_per_s:.1f}"
        if c.pairs_per_s == best:
            pps = f"**{pps}**"
        row = (
            [name, runtime, pps, _f(c.speedup, ".2f")]
            + [_lat(c, n) for n in sizes]
            + [
                _f(c.peak_rss_mb, ".0f"),
                _f(c.ndcg10, ".4f"),
                _f(c.max_abs_diff, ".1e"),
                _f(None if c.flops_share_fp32 is None else 100 * c.flops_share_fp32, ".0f"),
            ]
        )
        lines.append("| " + " | ".join(row) + " |")
    if result.bm25_ndcg10 is not None:
        lines.append("")
        lines.append(f"BM25 order alone: nDCG@10 {result.bm25_ndcg10:.4f}.")
    notes = [c for c in ok if c.note]
    if notes:
        lines.append("")
        lines.extend(f"- {c.name}: {c.note}" for c in notes)
    rest = [c for c in result.contenders if c.status != "ok"]
    if rest:
        lines += ["", "| not measured | why |", "|---|---|"]
        lines.extend(f"| {c.name} | {c.status}: {c.reason.replace('|', '/')} |" for c in rest)
    return "\n".join(lines) + "\n"


def write_chart(result: BenchResult, path: Path) -> Path:
    """A PNG: pairs per second per contender (with the ceilings) and p50 latency per candidate count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [c for c in result.contenders if c.status == "ok" and c.pairs_per_s is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, max(3.5, 0.45 * len(ok) + 1.5)))
    names = [c.name for c in ok][::-1]
    values = [c.pairs_per_s or 0.0 for c in ok][::-1]
    colors = ["tab:blue" if c.family == "ours" else "tab:gray" for c in ok][::-1]
    ax1.barh(names, values, color=colors)
    for y, (v, c) in enumerate(zip(values, ok[::-1], strict=True)):
        label = f"{v:.1f}" + (f"  ×{c.speedup:.2f}" if c.speedup is not None else "")
        ax1.text(v, y, " " + label, va="center", fontsize=8)
    ax1.axvline(result.ceiling_pairs_per_s_fp32, color="tab:red", linestyle="--", label="fp32 matmul ceiling")
    if result.ceiling_pairs_per_s_bf16:
        ax1.axvline(
            result.ceiling_pairs_per_s_bf16, color="tab:orange", linestyle=":", label="bf16 matmul ceiling"
        )
    ax1.set_xlabel("pairs per second (higher is better)")
    ax1.set_title(f"Throughput, {result.workload['name']} ({result.workload['pairs']} pairs)")
    ax1.legend(loc="lower right", fontsize=8)
    sizes = result.latency_sizes
    width = 0.8 / max(1, len(sizes))
    for k, n in enumerate(sizes):
        p50 = [c.latency_ms.get(str(n), {}).get("p50", 0.0) for c in ok][::-1]
        ax2.barh(
            [y + (k - (len(sizes) - 1) / 2) * width for y in range(len(ok))], p50, height=width, label=f"{n}"
        )
    ax2.set_yticks(range(len(ok)))
    ax2.set_yticklabels(names)
    ax2.set_xscale("log")  # 10 and 100 candidates differ tenfold
    ax2.set_xlabel("p50 latency of one query, ms, log scale (lower is better)")
    ax2.set_title("Latency by candidate count")
    ax2.legend(title="candidates", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(result: BenchResult, out_dir: Path, *, chart: bool = True) -> dict[str, Path]:
    """Write ``results.md``, ``results.json`` and ``results.png`` into ``out_dir``.

    The PNG needs matplotlib (``benchmarks/requirements.txt``); without it the key ``png`` is absent.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "results.md", "json": out_dir / "results.json"}
    paths["markdown"].write_text(markdown(result))
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if chart and importlib.util.find_spec("matplotlib") is not None:
        paths["png"] = write_chart(result, out_dir / "results.png")
    return paths


@dataclass(frozen=True, slots=True)
class Pick:
    """The fastest of our configurations within the nDCG tolerance, and what it was compared against."""

    contender: ContenderResult
    reference: ContenderResult
    max_ndcg_drop: float
    eligible: list[str]
    baseline: str = REFERENCE  # what the speed ratio is taken against

    def text(self) -> str:
        c, ref = self.contender, self.reference
        return (
            f"fastest within nDCG@10 -{self.max_ndcg_drop:g} of {ref.name} ({_f(ref.ndcg10, '.4f')}): "
            f"{c.name}, {c.pairs_per_s:.1f} pairs/s ({_f(c.speedup, '.2f')}x {self.baseline}), nDCG@10 "
            f"{_f(c.ndcg10, '.4f')}\n{c.call}\n"
        )


def pick_fastest(result: BenchResult, max_ndcg_drop: float = 0.005) -> Pick:
    """The fastest of our measured configurations whose nDCG@10 is within ``max_ndcg_drop`` of fp32 torch.

    Raises ``ValueError`` naming ``max_ndcg_drop`` when it is negative, and one naming ``contenders`` when
    the fp32 reference or any of our configurations is missing from the result.
    """
    if not max_ndcg_drop >= 0:
        raise ValueError(f"max_ndcg_drop: must be >= 0, got {max_ndcg_drop}")
    ours = [c for c in result.contenders if c.family == "ours" and c.status == "ok" and c.pairs_per_s]
    ref = next((c for c in ours if c.name == REFERENCE), None)
    if ref is None or ref.ndcg10 is None:
        raise ValueError(
            f"contenders: the result has no measured {REFERENCE!r} (with nDCG@10) to compare against"
        )
    eligible = [c for c in ours if c.ndcg10 is not None and c.ndcg10 >= ref.ndcg10 - max_ndcg_drop - 1e-12]
    best = max(eligible, key=lambda c: c.pairs_per_s or 0.0)
    return Pick(best, ref, max_ndcg_drop, [c.name for c in eligible], result.baseline)

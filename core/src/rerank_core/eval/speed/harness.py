"""Run every contender on the same model, the same candidates and the same machine, interleaved: the timing
behind ``rerank pick`` (our configurations) and ``python benchmarks/speed.py`` (ours against the incumbents).

One run loads every contender once, then makes ``repeats`` rounds. In each round every contender (in an
order rotated by one each round) reranks every query's candidates one query at a time (the throughput pass:
each call is also a latency sample at the full depth) and then the first ``latency_queries`` queries cut to
each smaller latency size. Interleaving puts every contender under the same background load in each round;
the figures are medians over rounds and speed ratios are taken within a round (baseline time / contender
time) before the median, so a busy moment slows both sides of a ratio; the baseline is
:attr:`BenchConfig.baseline` (``ours torch fp32``; the benchmark script races against ``st predict``). The
machine's matmul rate is measured in every round too (the better of torch and numpy for fp32); the ceiling
uses the median over rounds.

Peak memory is measured in a fresh subprocess per contender (``python -m rerank_core.eval.speed.memory``):
resident set size after importing the contender's libraries, then the peak while loading it and
reranking one query at the largest latency size. nDCG@10 comes from the first round's output order.

Until the restructure of issue 15 this was ``rerank_core.bench.harness``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rerank_core.eval.metrics import ndcg_at_k
from rerank_core.eval.speed.ceiling import ModelShape, matmul_rate, model_shape, workload_flops
from rerank_core.eval.speed.contenders import BenchContext, ContenderSkipped, ContenderSpec, Ranker

__all__ = [
    "REFERENCE",
    "BenchConfig",
    "BenchResult",
    "ContenderResult",
    "Workload",
    "beir_workload",
    "calibration_pairs",
    "run_bench",
]

#: Our reference configuration: the default baseline of every ratio, and what ``rerank pick`` compares
#: nDCG@10 against.
REFERENCE = "ours torch fp32"

#: The baseline of results written before :attr:`BenchResult.baseline` was recorded (the speed race's).
_OLD_BASELINE = "st predict"


@dataclass(slots=True)
class Workload:
    """Queries with their candidates (ids and texts, first-stage order) and relevance judgments."""

    name: str
    query_ids: list[str]
    queries: list[str]
    doc_ids: list[list[str]]
    texts: list[list[str]]
    qrels: dict[str, dict[str, int]]
    first_stage: str = ""

    def __post_init__(self) -> None:
        n = len(self.queries)
        if not (len(self.query_ids) == len(self.doc_ids) == len(self.texts) == n):
            raise ValueError("workload: query_ids, queries, doc_ids and texts must have the same length")
        if n == 0:
            raise ValueError("workload: no queries")
        for i, (ids, texts) in enumerate(zip(self.doc_ids, self.texts, strict=True)):
            if len(ids) != len(texts) or not texts:
                raise ValueError(f"workload: query {i} needs as many ids as texts, and at least one")

    @property
    def pairs(self) -> int:
        return sum(len(t) for t in self.texts)

    @property
    def depth(self) -> int:
        """The smallest candidate count over queries (latency sizes above it cannot be measured)."""
        return min(len(t) for t in self.texts)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queries": len(self.queries),
            "pairs": self.pairs,
            "first_stage": self.first_stage,
        }


def beir_workload(
    data_dir: str | Path, *, split: str = "test", queries: int = 20, top_k: int = 100
) -> Workload:
    """The first ``queries`` queries of a BEIR-layout folder with their BM25 top-``top_k`` documents."""
    from rerank_core.eval import load_beir
    from rerank_core.eval.beir import doc_text
    from rerank_core.eval.bm25 import BM25Retriever

    if queries < 1:
        raise ValueError(f"queries: must be >= 1, got {queries}")
    if top_k < 1:
        raise ValueError(f"top_k: must be >= 1, got {top_k}")
    ds = load_beir(data_dir, split)
    ids = list(ds.corpus)
    texts = {i: doc_text(ds.corpus[i]) for i in ids}
    bm25 = BM25Retriever(ids, [texts[i] for i in ids])
    qids = list(ds.queries)[:queries]
    hits = bm25.retrieve([ds.queries[q] for q in qids], k=top_k)
    doc_ids = [[d for d, _ in h] for h in hits]
    return Workload(
        name=f"{ds.name} {split}",
        query_ids=qids,
        queries=[ds.queries[q] for q in qids],
        doc_ids=doc_ids,
        texts=[[texts[d] for d in ds_ids] for ds_ids in doc_ids],
        qrels={q: ds.qrels.get(q, {}) for q in qids},
        first_stage=f"BM25 top-{top_k}",
    )


def calibration_pairs(
    data_dir: str | Path, *, split: str = "train", queries: int = 20
) -> tuple[list[tuple[str, str]], str]:
    """In-domain (query, text) pairs for a calibrated int8 configuration: the BM25 top-10 of the first
    ``queries`` queries of ``split`` (never the measured split), and a description of them."""
    cal = beir_workload(data_dir, split=split, queries=queries, top_k=10)
    pairs = [(q, t) for q, texts in zip(cal.queries, cal.texts, strict=True) for t in texts]
    return pairs, f"{len(pairs)} pairs: BM25 top-10 of the first {len(cal.queries)} {split} queries"


@dataclass(slots=True)
class BenchConfig:
    """How to run: model, rounds, latency sizes, memory probe, where exports go, the device."""

    model: str
    repeats: int = 3
    latency_sizes: tuple[int, ...] = (10, 50, 100)
    latency_queries: int = 5
    memory: bool = True
    cache_dir: Path | None = None
    device: str = "cpu"
    matmul_size: int = 1024
    matmul_seconds: float = 0.3
    calibration_pairs: Sequence[tuple[str, str]] | None = None  # for "ours openvino int8 calibrated"
    calibration_source: str = ""  # where they came from (recorded in the result)
    baseline: str = REFERENCE  # the contender every ratio (and max_abs_diff) is taken against

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"repeats: must be >= 1, got {self.repeats}")
        if self.latency_queries < 1:
            raise ValueError(f"latency_queries: must be >= 1, got {self.latency_queries}")
        if not self.latency_sizes or any(s < 1 for s in self.latency_sizes):
            raise ValueError(f"latency_sizes: must be positive integers, got {self.latency_sizes}")
        if not str(self.model).strip():
            raise ValueError("model: empty")


@dataclass(slots=True)
class ContenderResult:
    """Everything measured for one contender (``status`` is ok, skipped or failed, with ``reason``)."""

    name: str
    family: str
    call: str
    note: str = ""
    status: str = "ok"
    reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    load_s: float | None = None
    round_s: list[float] = field(default_factory=list)
    pairs_per_s: float | None = None
    speedup: float | None = None  # median over rounds of baseline time / this time
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # size -> p50, p95, n
    peak_rss_mb: float | None = None
    ndcg10: float | None = None
    max_abs_diff: float | None = None  # vs the baseline's scores, where both are on predict's scale
    flops_share_fp32: float | None = None
    flops_share_bf16: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class BenchResult:
    """One run: where and what, the ceiling, and every contender."""

    started: str
    machine: dict[str, Any]
    model: str
    workload: dict[str, Any]
    repeats: int
    latency_sizes: list[int]
    latency_queries: int
    shape: dict[str, Any]
    mean_tokens: float
    flops_per_pair: float
    matmul_fp32: float  # median over rounds of the round's best fp32 rate (torch or numpy)
    matmul_bf16: float | None
    ceiling_pairs_per_s_fp32: float
    ceiling_pairs_per_s_bf16: float | None
    bm25_ndcg10: float | None
    contenders: list[ContenderResult]
    command: str = ""
    wall_s: float = 0.0
    matmul_rounds: dict[str, list[float]] = field(default_factory=dict)
    baseline: str = REFERENCE

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["contenders"] = [c.to_dict() for c in self.contenders]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        data = dict(data)
        data.setdefault("baseline", _OLD_BASELINE)
        data["contenders"] = [ContenderResult(**c) for c in data["contenders"]]
        return cls(**data)


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), ``q`` in [0, 100]."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def machine_info() -> dict[str, Any]:
    """CPU, cores, torch threads and library versions, for the record."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version()}
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["bf16_native"] = bool(flags & {"avx512_bf16", "amx_bf16"})
                info["vnni"] = bool(flags & {"avx512_vnni", "avx_vnni"})
                break
    except OSError:
        pass
    info["cpu"] = cpu
    info["cores"] = os.cpu_count()
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    from importlib import metadata

    for dist in ("sentence-transformers", "transformers", "onnxruntime", "openvino", "optimum"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[dist] = metadata.version(dist)
    return info


def _token_counts(model: str, workload: Workload) -> tuple[ModelShape, list[int], int]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    net = AutoModelForSequenceClassification.from_pretrained(model, dtype=torch.float32)
    limit = min(
        int(tokenizer.model_max_length or 512), int(getattr(net.config, "max_position_embeddings", 512))
    )
    counts: list[int] = []
    for q, texts in zip(workload.queries, workload.texts, strict=True):
        enc = tokenizer([q] * len(texts), list(texts), truncation=True, max_length=limit, padding=False)
        counts.extend(len(ids) for ids in enc["input_ids"])
    shape = model_shape(net)
    del net
    return shape, counts, limit


def _memory_probe(spec: ContenderSpec, ctx: BenchContext, query: str, texts: list[str]) -> float:
    """Peak RSS delta in MB of loading ``spec`` and ranking one query, in a fresh interpreter."""
    payload = json.dumps(
        {
            "name": spec.name,
            "model": ctx.model,
            "device": ctx.device,
            "cache_dir": str(ctx.cache_dir) if ctx.cache_dir else None,
            "calibration_pairs": ctx.calibration_pairs,
            "query": query,
            "texts": texts,
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "rerank_core.eval.speed.memory"],
        input=payload,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"memory probe failed: {tail[0][:200]}")
    data = json.loads(lines[-1])
    return float(data["peak_delta_mb"])


def _log(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _ndcg(workload: Workload, orders: list[list[int]]) -> float | None:
    values = []
    for qid, ids, order in zip(workload.query_ids, workload.doc_ids, orders, strict=True):
        judgments = workload.qrels.get(qid) or {}
        if any(v > 0 for v in judgments.values()):
            values.append(ndcg_at_k([ids[i] for i in order], judgments, 10))
    return statistics.fmean(values) if values else None


def run_bench(
    specs: Sequence[ContenderSpec],
    workload: Workload,
    config: BenchConfig,
    *,
    progress: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> BenchResult:
    """Run ``specs`` on ``workload`` (see the module docstring); unavailable ones are listed as skipped."""
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t_start = clock()
    ctx = BenchContext(
        model=str(config.model),
        device=config.device,
        cache_dir=config.cache_dir,
        calibration_pairs=list(config.calibration_pairs) if config.calibration_pairs else None,
    )
    results: dict[str, ContenderResult] = {}
    rankers: dict[str, Ranker] = {}
    active: list[ContenderSpec] = []
    warm_texts = workload.texts[0][: min(10, len(workload.texts[0]))]
    for spec in specs:
        res = ContenderResult(spec.name, spec.family, spec.call, spec.note, info=dict(spec.info))
        results[spec.name] = res
        reason = spec.unavailable()
        if reason:
            res.status, res.reason = "skipped", reason
            _log(f"skip {spec.name}: {reason}", progress)
            continue
        try:
            t = clock()
            ranker = spec.factory(ctx)
            ranker.rank(workload.queries[0], warm_texts)  # loads lazy models, warms caches
            res.load_s = clock() - t
        except ContenderSkipped as exc:
            res.status, res.reason = "skipped", str(exc)
            _log(f"skip {spec.name}: {res.reason}", progress)
            continue
        except ImportError as exc:  # MissingDependencyError too: an extra that is not installed
            res.status, res.reason = "skipped", f"not installed: {' '.join(str(exc).split())[:300]}"
            _log(f"skip {spec.name}: {res.reason}", progress)
            continue
        except Exception as exc:
            res.status, res.reason = "failed", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            _log(f"failed {spec.name}: {res.reason}", progress)
            continue
        describe = getattr(ranker, "describe", None)
        if callable(describe):
            res.info.update(describe())
        rankers[spec.name] = ranker
        active.append(spec)
        _log(f"loaded {spec.name} in {res.load_s:.1f} s", progress)

    sizes = sorted({s for s in config.latency_sizes if s <= workload.depth})
    lat_n = min(config.latency_queries, len(workload.queries))
    if config.memory:
        probe_size = max(sizes) if sizes else workload.depth
        for spec in active:
            try:
                results[spec.name].peak_rss_mb = _memory_probe(
                    spec, ctx, workload.queries[0], workload.texts[0][:probe_size]
                )
                _log(f"memory {spec.name}: {results[spec.name].peak_rss_mb:.0f} MB", progress)
            except Exception as exc:
                results[spec.name].info["memory_error"] = str(exc)[:300]

    shape, counts, limit = _token_counts(str(config.model), workload)
    total_flops = workload_flops(shape, counts)
    fp32_rates: list[float] = []
    bf16_rates: list[float] = []
    latency: dict[str, dict[int, list[float]]] = {s.name: {n: [] for n in sizes} for s in active}
    first_orders: dict[str, list[list[int]]] = {}
    first_scores: dict[str, list[list[float]] | None] = {}

    for r in range(config.repeats):
        fp32_rates.append(
            max(
                matmul_rate("float32", config.matmul_size, config.matmul_seconds),
                matmul_rate("float32", config.matmul_size, config.matmul_seconds, library="numpy"),
            )
        )
        with contextlib.suppress(RuntimeError, ValueError):  # a torch without bf16 matmul on this CPU
            bf16_rates.append(matmul_rate("bfloat16", config.matmul_size, config.matmul_seconds))
        order = active[r % len(active) :] + active[: r % len(active)] if active else []
        for spec in order:
            res = results[spec.name]
            if res.status != "ok":
                continue
            ranker = rankers[spec.name]
            try:
                orders, scores_all, total = [], [], 0.0
                for q, texts in zip(workload.queries, workload.texts, strict=True):
                    t = clock()
                    idx, scores = ranker.rank(q, texts)
                    dt = clock() - t
                    total += dt
                    if len(texts) in latency[spec.name]:
                        latency[spec.name][len(texts)].append(dt)
                    orders.append(idx)
                    scores_all.append(scores)
                for n in sizes:
                    if n == workload.depth and all(len(t) == n for t in workload.texts):
                        continue  # already sampled by the throughput pass
                    for q, texts in zip(workload.queries[:lat_n], workload.texts[:lat_n], strict=True):
                        t = clock()
                        ranker.rank(q, texts[:n])
                        latency[spec.name][n].append(clock() - t)
            except Exception as exc:
                res.status, res.reason = "failed", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                _log(f"failed {spec.name} in round {r + 1}: {res.reason}", progress)
                continue
            res.round_s.append(total)
            if r == 0:
                first_orders[spec.name] = orders
                first_scores[spec.name] = None if any(s is None for s in scores_all) else scores_all  # type: ignore[assignment]
            _log(f"round {r + 1}/{config.repeats}: {spec.name} {total:.2f} s", progress)

    # The median over rounds: one call in a quiet moment on shared cores is not the machine's rate.
    fp32 = statistics.median(fp32_rates)
    bf16 = statistics.median(bf16_rates) if bf16_rates else None
    flops_pp = total_flops / workload.pairs
    base = results.get(config.baseline)
    base_ok = base is not None and base.status == "ok" and len(base.round_s) == config.repeats
    for spec in active:
        res = results[spec.name]
        if res.status != "ok" or not res.round_s:
            continue
        med = statistics.median(res.round_s)
        res.pairs_per_s = workload.pairs / med
        res.flops_share_fp32 = total_flops / med / fp32
        res.flops_share_bf16 = total_flops / med / bf16 if bf16 else None
        if base_ok and len(res.round_s) == config.repeats:
            assert base is not None
            res.speedup = statistics.median(b / c for b, c in zip(base.round_s, res.round_s, strict=True))
        for n, samples in latency[spec.name].items():
            if samples:
                res.latency_ms[str(n)] = {
                    "p50": 1000 * _percentile(samples, 50),
                    "p95": 1000 * _percentile(samples, 95),
                    "n": len(samples),
                }
        res.ndcg10 = _ndcg(workload, first_orders[spec.name])
        mine, theirs = first_scores.get(spec.name), first_scores.get(config.baseline)
        if mine is not None and theirs is not None:
            res.max_abs_diff = max(
                abs(a - b) for ms, ts in zip(mine, theirs, strict=True) for a, b in zip(ms, ts, strict=True)
            )

    bm25 = _ndcg(workload, [list(range(len(t))) for t in workload.texts])
    machine = machine_info()
    machine["model_max_length"] = limit
    return BenchResult(
        started=started,
        machine=machine,
        model=str(config.model),
        workload={
            **workload.summary(),
            **({"calibration": config.calibration_source} if config.calibration_source else {}),
        },
        repeats=config.repeats,
        latency_sizes=sizes,
        latency_queries=lat_n,
        shape=shape.to_dict(),
        mean_tokens=statistics.fmean(counts),
        flops_per_pair=flops_pp,
        matmul_fp32=fp32,
        matmul_bf16=bf16,
        ceiling_pairs_per_s_fp32=fp32 / flops_pp,
        ceiling_pairs_per_s_bf16=bf16 / flops_pp if bf16 else None,
        bm25_ndcg10=bm25,
        contenders=[results[s.name] for s in specs],
        wall_s=clock() - t_start,
        matmul_rounds={"float32": fp32_rates, "bfloat16": bf16_rates},
        baseline=config.baseline,
    )

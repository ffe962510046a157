"""Load benchmark of ``rerank serve`` against Infinity (``infinity-emb``) serving the same model (issue 19).

    python benchmarks/serve_load.py --quick                       # smoke test, well under 2 minutes
    python benchmarks/serve_load.py --levels 1,4,16,32 --duration 60 --rounds 3 --p95-ms 5000 --name full

Time: each server start is ~10-20 s (model load; Infinity also runs its own warm-up), then ``--warmup`` and
``--check-requests`` requests one at a time, then each level's ``--duration`` plus the drain of the requests
in flight at its deadline. On the 2-core machine a request of 20-100 pairs takes ~1-5 s, so at concurrency
32 a request waits ~30 such services in the queue: the drain of that level can take as long as the level.

Run it with the project's venv (``.venv/bin/python``: stdlib, httpx, and rerank_core's BEIR/BM25 loaders for
the request mix). Infinity runs from its own venv, ``benchmarks/.venv-infinity`` (``bash
benchmarks/setup_infinity.sh``; pins in ``benchmarks/requirements-infinity.txt``).

What it does, for each server in ``--servers`` (one after the other, never both at once):

1. starts the server as a subprocess on 127.0.0.1 (a free port), offline (``HF_HUB_OFFLINE=1``), and waits
   for readiness (ours: ``GET /ready`` 200; Infinity: ``GET /health`` 200, which it answers only after its
   model is loaded and warmed up);
2. warms up with ``--warmup`` requests (not measured);
3. sends the first ``--check-requests`` requests of the mix once each, one at a time, and keeps the returned
   order and scores (the ranking check below);
4. for each concurrency level in ``--levels``: ``N`` httpx.AsyncClient tasks in a closed loop, each sending
   the next request of the mix as soon as its previous one is answered, until ``--duration`` seconds have
   passed or ``--max-requests`` were sent; requests in flight at the deadline are awaited (so no abandoned
   work spills into the next level), and the level's time runs to the last answer. A global cursor walks the
   mix across levels, so both servers see the same sequence of requests;
5. stops the server (SIGTERM to its process group, then SIGKILL after 20 s).

With ``--rounds R`` the servers run R times, alternating, and each level reports the round with the median
pairs/s (all rounds are in the JSON); the ranking check uses the first round. On a machine shared with other
work this damps the noise that running the servers one after the other lets in.

Both servers do the same work: one model pair per (query, document), the document cut to the model's limit
(192 tokens), fp32 on the CPU. Ours is started with ``--config`` holding ``options.long_text = "truncate"``
(``--our-long-text window``, our default, scores long documents in several windows instead: more pairs and
other scores); Infinity with ``--dtype float32 --batch-size 32`` (its default batch), no torch.compile, no
BetterTransformer, no disk cache.

Both servers are asked in the Jina shape, ``{"model", "query", "documents"}`` → ``{"results": [{"index",
"relevance_score"}]}``: ours on ``POST /v1/rerank`` (``--our-api tei`` uses ``POST /rerank`` with ``texts``),
Infinity on ``POST /rerank`` with ``raw_scores`` false (sigmoid scores, as the reference reranker's own
activation gives). An answer counts as an error unless it is 200 and ranks every document sent exactly once.

The request mix (:func:`make_mix`): SciFact *test* queries (the reference reranker was trained on SciFact
train, see models/reference-reranker/rerank_finetune.json and shared/data/scifact/SOURCE.md; nothing here is
evaluated for quality, but the served text is the held-out split), each with its top BM25 candidates
(``rerank_core.eval.BM25Retriever``, title + text as BEIR feeds models), a seeded count between
``--min-docs`` and ``--max-docs`` per request, queries in a seeded order. Same seed, same mix, same bytes.

Output: a Markdown table (server, concurrency, req/s, pairs/s, p50/p95/p99 ms, errors, and the server's CPU
milliseconds per pair, read from /proc for its process group: the figure least moved by other work on a
shared machine, since it counts what the server burned rather than how long it waited), ours/Infinity
ratios at each concurrency both ran, the "same p95" comparison (each server's best throughput at a level
whose p95 is at most ``--p95-ms``), the ranking check (requests whose order is identical, max score
difference), and a JSON file in ``benchmarks/results/serve_load/<name>.json`` with everything plus the
command to rerun.

Machine notes: on the 2-core development machine the client shares the CPU with the server; both servers
get the same client and the same CPU, so the ratio is the figure to read, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

WORKSPACE = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_SHARED_DIR", WORKSPACE.parent / "shared"))
DEFAULT_MODEL = WORKSPACE / "models" / "reference-reranker"
DEFAULT_DATA = SHARED / "data" / "scifact"
DEFAULT_INFINITY_VENV = WORKSPACE / "benchmarks" / ".venv-infinity"
RESULTS_DIR = WORKSPACE / "benchmarks" / "results" / "serve_load"
SERVED_NAME = "reference-reranker"
SERVERS = ("ours", "infinity")

__all__ = [
    "LevelResult",
    "Request",
    "at_p95",
    "compare_rankings",
    "make_mix",
    "markdown_report",
    "matched_ratios",
    "median_rounds",
    "parse_ranking",
    "percentile",
    "summarize_level",
]


# ---------------------------------------------------------------------------------------------------------
# Pure parts (tested in tests/benchmarks/test_serve_load.py without servers)


@dataclass(frozen=True)
class Request:
    """One request of the mix: a query and its candidates (BM25 order)."""

    query_id: str
    query: str
    documents: tuple[str, ...]

    @property
    def pairs(self) -> int:
        return len(self.documents)


def make_mix(
    candidates: Mapping[str, tuple[str, Sequence[str]]],
    n_requests: int,
    *,
    min_docs: int = 20,
    max_docs: int = 100,
    seed: int = 0,
) -> list[Request]:
    """``n_requests`` requests over ``candidates`` (query id → (query text, candidate texts, best first)).

    Queries are visited in a seeded shuffle of the ids (sorted first, so the mapping's order does not
    matter), cycling when ``n_requests`` is larger; each request takes the first ``k`` candidates, ``k``
    drawn uniformly in ``[min_docs, max_docs]`` (capped at the candidates there are). Queries with fewer
    than ``min_docs`` candidates are skipped. Deterministic for a given seed.
    """
    if n_requests < 1:
        raise ValueError(f"n_requests must be at least 1, got {n_requests}")
    if not 1 <= min_docs <= max_docs:
        raise ValueError(f"need 1 <= min_docs <= max_docs, got {min_docs} and {max_docs}")
    rng = random.Random(seed)
    ids = sorted(qid for qid, (_, docs) in candidates.items() if len(docs) >= min_docs)
    if not ids:
        raise ValueError(f"no query has at least {min_docs} candidates")
    rng.shuffle(ids)
    mix = []
    for i in range(n_requests):
        qid = ids[i % len(ids)]
        query, docs = candidates[qid]
        k = rng.randint(min_docs, min(max_docs, len(docs)))
        mix.append(Request(qid, query, tuple(docs[:k])))
    return mix


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks (numpy's default).

    NaN for no values.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class LevelResult:
    """One server at one concurrency level."""

    server: str
    concurrency: int
    requests: int  # answered correctly
    errors: int
    pairs: int  # documents in the requests answered correctly
    seconds: float
    req_per_s: float
    pairs_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    error_kinds: dict[str, int] = field(default_factory=dict)
    server_cpu_s: float = math.nan  # CPU seconds of the server's processes during the level
    cpu_ms_per_pair: float = math.nan  # server_cpu_s per correctly answered pair: robust to a busy machine


def summarize_level(
    server: str,
    concurrency: int,
    latencies_s: Sequence[float],
    pairs: Sequence[int],
    seconds: float,
    errors: Mapping[str, int] | None = None,
    server_cpu_s: float = math.nan,
) -> LevelResult:
    """Throughput and latency percentiles of the correctly answered requests (``latencies_s`` and their
    ``pairs``, in seconds and documents) over ``seconds`` of wall time, and the server's CPU time per pair."""
    if len(latencies_s) != len(pairs):
        raise ValueError("latencies_s and pairs must have the same length")
    errors = dict(errors or {})
    n = len(latencies_s)
    ms = [1000 * x for x in latencies_s]
    rate = (lambda x: x / seconds) if seconds > 0 else (lambda x: math.nan)
    return LevelResult(
        server=server,
        concurrency=concurrency,
        requests=n,
        errors=sum(errors.values()),
        pairs=sum(pairs),
        seconds=seconds,
        req_per_s=rate(n),
        pairs_per_s=rate(sum(pairs)),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
        mean_ms=sum(ms) / n if n else math.nan,
        error_kinds=errors,
        server_cpu_s=server_cpu_s,
        cpu_ms_per_pair=1000 * server_cpu_s / sum(pairs) if sum(pairs) else math.nan,
    )


def median_rounds(results: Sequence[LevelResult]) -> list[LevelResult]:
    """One result per (server, concurrency): the round with the median pairs/s (the lower median for an even
    count), in first-seen order. With one round per level this is ``results`` unchanged."""
    groups: dict[tuple[str, int], list[LevelResult]] = {}
    for r in results:
        groups.setdefault((r.server, r.concurrency), []).append(r)
    out = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: r.pairs_per_s if not math.isnan(r.pairs_per_s) else -1.0)
        out.append(ordered[(len(ordered) - 1) // 2])
    return out


def matched_ratios(results: Sequence[LevelResult], ours: str = "ours", other: str = "infinity") -> list[dict]:
    """ours/other at each concurrency both ran: req/s, pairs/s, p95 and server CPU per pair (ratio > 1: ours
    is faster for throughput, slower for p95, costlier for CPU)."""
    by = {(r.server, r.concurrency): r for r in results}
    rows = []
    for c in sorted({r.concurrency for r in results}):
        a, b = by.get((ours, c)), by.get((other, c))
        if a is None or b is None:
            continue
        rows.append(
            {
                "concurrency": c,
                "req_per_s": _ratio(a.req_per_s, b.req_per_s),
                "pairs_per_s": _ratio(a.pairs_per_s, b.pairs_per_s),
                "p95": _ratio(a.p95_ms, b.p95_ms),
                "cpu_per_pair": _ratio(a.cpu_ms_per_pair, b.cpu_ms_per_pair),
            }
        )
    return rows


def _ratio(a: float, b: float) -> float:
    if b == 0 or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


def at_p95(results: Sequence[LevelResult], server: str, p95_ms: float) -> LevelResult | None:
    """The level of ``server`` with the highest pairs/s among those whose p95 is at most ``p95_ms`` and that
    had no errors (ties: the lower concurrency); None when no level qualifies."""
    ok = [
        r for r in results if r.server == server and r.errors == 0 and r.requests > 0 and r.p95_ms <= p95_ms
    ]
    if not ok:
        return None
    return max(ok, key=lambda r: (r.pairs_per_s, -r.concurrency))


def parse_ranking(body: Any, n_documents: int) -> list[tuple[int, float]]:
    """``[(index, score)]`` best first from a Jina-shaped (``{"results": [{"index", "relevance_score"}]}``)
    or TEI-shaped (``[{"index", "score"}]``) answer; ValueError unless every index ``0..n-1`` is there once
    and every score is a finite number."""
    if isinstance(body, dict):
        items = body.get("results")
        key = "relevance_score"
    else:
        items = body
        key = "score"
    if not isinstance(items, list):
        raise ValueError("no results list")
    out = []
    for item in items:
        if not isinstance(item, dict) or "index" not in item or key not in item:
            raise ValueError(f"result without index/{key}")
        index, score = item["index"], item[key]
        if not isinstance(index, int) or not isinstance(score, int | float) or not math.isfinite(score):
            raise ValueError(f"bad result {item!r}")
        out.append((index, float(score)))
    if sorted(i for i, _ in out) != list(range(n_documents)):
        raise ValueError(f"indices are not each of 0..{n_documents - 1} once")
    if any(out[i][1] < out[i + 1][1] for i in range(len(out) - 1)):
        out.sort(key=lambda x: -x[1])  # a server that answers unsorted: rank by score (stable)
    return out


def compare_rankings(
    a: Sequence[Sequence[tuple[int, float]] | None],
    b: Sequence[Sequence[tuple[int, float]] | None],
    *,
    tie_eps: float = 1e-4,
) -> dict[str, Any]:
    """Agreement of two servers' rankings of the same requests (lists of ``[(index, score)]`` best first;
    None for a failed request, which is counted but not compared).

    ``identical``: requests whose orders are exactly the same; ``identical_up_to_ties``: the same once
    documents whose scores (on each side) are within ``tie_eps`` may swap (an fp32 near-tie can order either
    way); ``top10_identical``: the first 10 are the same in order; ``max_score_diff``: the largest absolute
    difference between the two scores of one document, over all compared requests.
    """
    if len(a) != len(b):
        raise ValueError("both sides need the same number of requests")
    compared = identical = up_to_ties = top10 = 0
    max_diff = 0.0
    first_mismatch: int | None = None
    for i, (ra, rb) in enumerate(zip(a, b, strict=True)):
        if ra is None or rb is None:
            continue
        compared += 1
        order_a, order_b = [x for x, _ in ra], [x for x, _ in rb]
        sa, sb = dict(ra), dict(rb)
        if set(sa) == set(sb):
            max_diff = max([max_diff, *(abs(sa[k] - sb[k]) for k in sa)])
        if order_a == order_b:
            identical += 1
            up_to_ties += 1
        else:
            if first_mismatch is None:
                first_mismatch = i
            if _same_up_to_ties(ra, sb, tie_eps) and _same_up_to_ties(rb, sa, tie_eps):
                up_to_ties += 1
        top10 += order_a[:10] == order_b[:10]
    return {
        "requests": len(a),
        "compared": compared,
        "identical": identical,
        "identical_up_to_ties": up_to_ties,
        "top10_identical": top10,
        "max_score_diff": max_diff,
        "tie_eps": tie_eps,
        "first_mismatch": first_mismatch,
    }


def _same_up_to_ties(ranking: Sequence[tuple[int, float]], other: Mapping[int, float], eps: float) -> bool:
    """Whether ``ranking``'s order is non-increasing under the other side's scores, allowing an increase of
    at most ``eps`` (so the two orders differ only among near-ties)."""
    scores = [other[i] for i, _ in ranking]
    return all(scores[j] >= scores[j + 1] - eps for j in range(len(scores) - 1))


def _f(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def markdown_report(
    results: Sequence[LevelResult],
    *,
    p95_ms: float,
    ranking: Mapping[str, Any] | None = None,
    servers: Sequence[str] = SERVERS,
) -> str:
    """The tables printed at the end of a run."""
    lines = [
        "| server | concurrency | req/s | pairs/s | p50 ms | p95 ms | p99 ms | requests | errors "
        "| CPU ms/pair |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(
        results, key=lambda r: (servers.index(r.server) if r.server in servers else 99, r.concurrency)
    ):
        lines.append(
            f"| {r.server} | {r.concurrency} | {_f(r.req_per_s, 2)} | {_f(r.pairs_per_s)} | {_f(r.p50_ms)} "
            f"| {_f(r.p95_ms)} | {_f(r.p99_ms)} | {r.requests} | {r.errors} | {_f(r.cpu_ms_per_pair)} |"
        )
    ratios = matched_ratios(results)
    if ratios:
        lines += [
            "",
            "ours / Infinity at matched concurrency (throughput > 1: ours faster; p95 and CPU < 1: ours "
            "lower):",
            "",
            "| concurrency | req/s ratio | pairs/s ratio | p95 ratio | CPU/pair ratio |",
            "|---:|---:|---:|---:|---:|",
        ]
        for row in ratios:
            lines.append(
                f"| {row['concurrency']} | {_f(row['req_per_s'], 2)} | {_f(row['pairs_per_s'], 2)} "
                f"| {_f(row['p95'], 2)} | {_f(row['cpu_per_pair'], 2)} |"
            )
    present = [s for s in servers if any(r.server == s for r in results)]
    if present:
        lines += [
            "",
            f"At the same p95 (best pairs/s at a level with p95 <= {p95_ms:g} ms and no errors):",
            "",
            "| server | concurrency | req/s | pairs/s | p95 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        best = {s: at_p95(results, s, p95_ms) for s in present}
        for s in present:
            r = best[s]
            if r is None:
                lines.append(f"| {s} | none qualifies | | | |")
            else:
                lines.append(
                    f"| {s} | {r.concurrency} | {_f(r.req_per_s, 2)} | {_f(r.pairs_per_s)} | {_f(r.p95_ms)} |"
                )
        if best.get("ours") is not None and best.get("infinity") is not None:
            lines.append("")
            lines.append(
                f"ours / Infinity at p95 <= {p95_ms:g} ms: "
                f"{_f(_ratio(best['ours'].pairs_per_s, best['infinity'].pairs_per_s), 2)}x pairs/s"
            )
    if ranking:
        lines += [
            "",
            f"Rankings (same {ranking['compared']} requests, one at a time): "
            f"{ranking['identical']} identical, {ranking['identical_up_to_ties']} identical up to near-ties "
            f"(|score diff| <= {ranking['tie_eps']:g}), "
            f"{ranking['top10_identical']} with the same top 10; max |score difference| "
            f"{ranking['max_score_diff']:.2e}",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Data


def load_candidates(
    data_dir: Path, split: str, n_queries: int, depth: int
) -> dict[str, tuple[str, list[str]]]:
    """query id → (query, BM25 top-``depth`` texts) for the first ``n_queries`` queries of ``split``."""
    from rerank_core.eval import BM25Retriever, load_beir
    from rerank_core.eval.beir import doc_text

    ds = load_beir(data_dir, split)
    ids = list(ds.corpus)
    bm25 = BM25Retriever(ids, [doc_text(ds.corpus[i]) for i in ids])
    qids = list(ds.queries)[:n_queries]
    hits = bm25.retrieve([ds.queries[q] for q in qids], k=depth)
    return {
        q: (ds.queries[q], [doc_text(ds.corpus[d]) for d, _ in h]) for q, h in zip(qids, hits, strict=True)
    }


# ---------------------------------------------------------------------------------------------------------
# Servers


@dataclass
class ServerSpec:
    name: str
    command: list[str]
    ready_path: str
    rerank_path: str
    api: str  # "jina" or "tei"
    extra_body: dict[str, Any] = field(default_factory=dict)

    def body(self, req: Request) -> dict[str, Any]:
        if self.api == "tei":
            return {"query": req.query, "texts": list(req.documents), **self.extra_body}
        return {"model": SERVED_NAME, "query": req.query, "documents": list(req.documents), **self.extra_body}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def our_config(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline file handed to ``rerank serve --config``: ``long_text`` as ``--our-long-text`` says
    (``truncate``: one model pair per document cut to the model's 192 tokens, the work Infinity does;
    ``window``: our default, long documents scored in overlapping windows, several pairs each)."""
    return {"model": str(Path(args.model).resolve()), "options": {"long_text": args.our_long_text}}


def server_spec(name: str, args: argparse.Namespace, port: int, workdir: Path) -> ServerSpec:
    model = str(Path(args.model).resolve())
    if name == "ours":
        config = workdir / "ours-config.json"
        config.write_text(json.dumps(our_config(args), indent=1) + "\n")
        cmd = [
            str(Path(args.rerank_bin)),
            "serve",
            "--config",
            str(config),
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model-name",
            SERVED_NAME,
            "--runtime",
            args.our_runtime,
            "--workers",
            str(args.our_workers),
            "--timeout",
            str(args.server_timeout),
            "--max-queue-requests",
            str(max(256, 2 * max(args.levels))),
            "--no-access-log",
            *shlex.split(args.our_args),
        ]
        if args.our_api == "tei":
            return ServerSpec(name, cmd, "/ready", "/rerank", "tei")
        return ServerSpec(name, cmd, "/ready", "/v1/rerank", "jina")
    if name == "infinity":
        venv = Path(args.infinity_venv)
        cmd = [
            str(venv / "bin" / "infinity_emb"),
            "v2",
            "--model-id",
            model,
            "--served-model-name",
            SERVED_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--engine",
            "torch",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--batch-size",
            str(args.infinity_batch_size),
            "--no-bettertransformer",
            "--no-compile",
            "--no-vector-disk-cache",
            "--log-level",
            "warning",
            *shlex.split(args.infinity_args),
        ]
        return ServerSpec(name, cmd, "/health", "/rerank", "jina", {"raw_scores": False})
    raise ValueError(f"unknown server {name!r}")


class RunningServer:
    """A server subprocess in its own process group, its output in a log file."""

    def __init__(self, spec: ServerSpec, port: int, log_path: Path) -> None:
        self.spec = spec
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        env = dict(os.environ)
        env.update(
            {
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "DO_NOT_TRACK": "1",
                "INFINITY_ANONYMOUS_USAGE_STATS": "0",
            }
        )
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            spec.command, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.started = time.perf_counter()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the live processes in the server's process group (Linux /proc;
        NaN elsewhere). Worker processes that exited are not counted."""
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        total, seen = 0.0, False
        try:
            entries = os.listdir("/proc")
        except OSError:
            return math.nan
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid:  # pgrp: start_new_session made the server its leader
                total += (int(fields[11]) + int(fields[12])) / tick
                seen = True
        return total if seen else math.nan

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float, consecutive: int = 1) -> float:
        """Seconds until ``consecutive`` readiness probes in a row answered 200, each on a new connection
        (so that with several worker processes behind one port, more than one of them is asked)."""
        import httpx

        deadline = time.perf_counter() + timeout
        in_a_row = 0
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.spec.name} exited with {self.proc.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            try:
                ok = httpx.get(self.url + self.spec.ready_path, timeout=5.0).status_code == 200
            except httpx.HTTPError:
                ok = False
            in_a_row = in_a_row + 1 if ok else 0
            if in_a_row >= consecutive:
                return time.perf_counter() - self.started
            time.sleep(0.1 if ok else 0.5)
        raise RuntimeError(f"{self.spec.name} not ready after {timeout:.0f} s:\n" + self.log_tail())

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


# ---------------------------------------------------------------------------------------------------------
# Load


async def _send(client: Any, spec: ServerSpec, req: Request) -> tuple[list[tuple[int, float]] | None, str]:
    """(ranking, "") or (None, error kind)."""
    import httpx

    try:
        resp = await client.post(spec.rerank_path, json=spec.body(req))
    except httpx.TimeoutException:
        return None, "timeout"
    except httpx.HTTPError as exc:
        return None, type(exc).__name__
    if resp.status_code != 200:
        return None, f"http_{resp.status_code}"
    try:
        return parse_ranking(resp.json(), req.pairs), ""
    except ValueError:
        return None, "invalid_answer"


async def run_level(
    client: Any,
    server: RunningServer,
    mix: Sequence[Request],
    cursor: list[int],
    concurrency: int,
    duration: float,
    max_requests: int,
) -> LevelResult:
    spec = server.spec
    latencies: list[float] = []
    pairs: list[int] = []
    errors: dict[str, int] = {}
    sent = 0
    cpu0 = server.cpu_seconds()
    start = time.perf_counter()
    deadline = start + duration

    async def worker() -> None:
        nonlocal sent
        while time.perf_counter() < deadline and sent < max_requests:
            req = mix[cursor[0] % len(mix)]
            cursor[0] += 1
            sent += 1
            t0 = time.perf_counter()
            ranking, error = await _send(client, spec, req)
            elapsed = time.perf_counter() - t0
            if ranking is None:
                errors[error] = errors.get(error, 0) + 1
            else:
                latencies.append(elapsed)
                pairs.append(req.pairs)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    cpu = server.cpu_seconds() - cpu0
    return summarize_level(spec.name, concurrency, latencies, pairs, seconds, errors, server_cpu_s=cpu)


async def drive(
    server: RunningServer, mix: Sequence[Request], args: argparse.Namespace, *, check: bool = True
) -> dict[str, Any]:
    import httpx

    spec = server.spec
    limits = httpx.Limits(
        max_connections=max(args.levels) + 4, max_keepalive_connections=max(args.levels) + 4
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=args.request_timeout, limits=limits) as client:
        # Warm-up: not measured. Requests from the end of the mix, so the check and the load start cold.
        warm_errors = 0
        for req in list(mix)[-args.warmup :] if args.warmup else []:
            ranking, _ = await _send(client, spec, req)
            warm_errors += ranking is None
        if args.warmup and warm_errors == args.warmup:
            raise RuntimeError(f"{spec.name}: every warm-up request failed:\n" + server.log_tail())
        # Ranking check: the first --check-requests requests, one at a time.
        rankings = []
        for req in mix[: args.check_requests if check else 0]:
            ranking, _ = await _send(client, spec, req)
            rankings.append(ranking)
        levels = []
        cursor = [0]
        for c in args.levels:
            result = await run_level(client, server, mix, cursor, c, args.duration, args.max_requests)
            levels.append(result)
            print(
                f"  {spec.name} c={c}: {result.requests} ok, {result.errors} errors in "
                f"{result.seconds:.1f} s, {result.req_per_s:.2f} req/s, {result.pairs_per_s:.1f} pairs/s, "
                f"p50 {result.p50_ms:.0f} ms, p95 {result.p95_ms:.0f} ms, "
                f"server CPU {result.cpu_ms_per_pair:.0f} ms/pair",
                flush=True,
            )
        return {"rankings": rankings, "levels": levels, "requests_sent": cursor[0]}


# ---------------------------------------------------------------------------------------------------------
# Main


def _levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from exc
    if not levels or any(x < 1 for x in levels):
        raise argparse.ArgumentTypeError("levels must be positive integers")
    return levels


def _servers(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in names if x not in SERVERS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"servers: a comma-separated subset of {','.join(SERVERS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Load benchmark: `rerank serve` against Infinity serving the same model (see the module "
        "docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--servers", type=_servers, default=list(SERVERS), help="which servers, in this order")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="the model folder both servers load")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="BEIR SciFact folder")
    p.add_argument("--split", default="test", help="the split whose queries make the mix")
    p.add_argument("--queries", type=int, default=300, help="how many queries of the split (file order)")
    p.add_argument("--mix-size", type=int, default=1000, help="requests in the mix (queries cycle)")
    p.add_argument("--min-docs", type=int, default=20, help="fewest candidates per request")
    p.add_argument("--max-docs", type=int, default=100, help="most candidates per request (BM25 depth)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mix")
    p.add_argument(
        "--levels", type=_levels, default=[1, 4, 16, 32], help="concurrency levels, e.g. 1,4,16,32"
    )
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load per level")
    p.add_argument("--max-requests", type=int, default=10**9, help="most requests sent per level")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the servers this many times, alternating (ours, Infinity, ours, ...); each level reports "
        "the round with the median pairs/s, which damps a shared machine's noise",
    )
    p.add_argument("--warmup", type=int, default=8, help="unmeasured requests after readiness")
    p.add_argument("--check-requests", type=int, default=50, help="requests whose rankings are compared")
    p.add_argument("--tie-eps", type=float, default=1e-4, help="scores this close may swap (ranking check)")
    p.add_argument("--p95-ms", type=float, default=5000.0, help="the p95 bound of the same-p95 comparison")
    p.add_argument("--request-timeout", type=float, default=600.0, help="client timeout per request (s)")
    p.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for readiness")
    p.add_argument("--rerank-bin", default=str(Path(sys.executable).parent / "rerank"), help="our CLI")
    p.add_argument("--our-runtime", default="torch", choices=("torch", "onnx", "openvino"))
    p.add_argument("--our-workers", type=int, default=1, help="worker processes of ours")
    p.add_argument("--our-api", default="jina", choices=("jina", "tei"), help="route used on ours")
    p.add_argument(
        "--our-long-text",
        default="truncate",
        choices=("truncate", "window"),
        help="our long_text mode: truncate does Infinity's work (one pair per document, cut to the model's "
        "limit); window is our default (long documents in several windows: more pairs, other scores)",
    )
    p.add_argument(
        "--server-timeout",
        type=float,
        default=600.0,
        help="our server's --timeout (its default 30 s would fail queued requests Infinity keeps)",
    )
    p.add_argument("--our-args", default="", help="more arguments for `rerank serve` (one string)")
    p.add_argument("--infinity-venv", default=str(DEFAULT_INFINITY_VENV), help="venv with infinity_emb")
    p.add_argument(
        "--infinity-batch-size", type=int, default=32, help="Infinity's --batch-size (its default)"
    )
    p.add_argument("--infinity-args", default="", help="more arguments for `infinity_emb v2` (one string)")
    p.add_argument("--name", default=None, help="result name (default: serve_load, or quick with --quick)")
    p.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 8 queries, 12 requests of 20-30 documents, levels 1,2 (4 s or 4 requests each), "
        "3 checked",
    )
    return p


QUICK = {
    "queries": 8,
    "mix_size": 12,
    "min_docs": 20,
    "max_docs": 30,
    "levels": [1, 2],
    "duration": 4.0,
    "max_requests": 4,
    "warmup": 1,
    "check_requests": 3,
}


def _environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    try:
        import httpx

        env["httpx"] = httpx.__version__
    except ImportError:  # pragma: no cover
        pass
    return env


def _versions(args: argparse.Namespace, servers: Sequence[str]) -> dict[str, str]:
    out = {}
    if "ours" in servers:
        try:
            from importlib.metadata import version

            out["rerank-core"] = version("rerank-core")
        except Exception:  # pragma: no cover - not installed under that name
            pass
    if "infinity" in servers:
        py = Path(args.infinity_venv) / "bin" / "python"
        code = (
            "import infinity_emb, torch, transformers; "
            "print(infinity_emb.__version__, torch.__version__, transformers.__version__)"
        )
        try:
            text = subprocess.run(
                [str(py), "-c", code], capture_output=True, text=True, timeout=120
            ).stdout.split()
            out.update(
                dict(zip(("infinity-emb", "infinity torch", "infinity transformers"), text, strict=False))
            )
        except (OSError, subprocess.TimeoutExpired):
            pass
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    name = args.name or ("quick" if args.quick else "serve_load")
    for flag, value in (
        ("--rounds", args.rounds),
        ("--mix-size", args.mix_size),
        ("--queries", args.queries),
    ):
        if value < 1:
            print(f"{flag} must be at least 1, got {value}", file=sys.stderr)
            return 2
    rerun = shlex.join([sys.executable, str(Path(__file__).resolve().relative_to(WORKSPACE)), *argv])

    if "infinity" in args.servers and not (Path(args.infinity_venv) / "bin" / "infinity_emb").exists():
        print(
            f"no {args.infinity_venv}/bin/infinity_emb: run `bash benchmarks/setup_infinity.sh` first",
            file=sys.stderr,
        )
        return 2
    if "ours" in args.servers and not Path(args.rerank_bin).exists():
        print(
            f"no {args.rerank_bin}: install the project (`rerank serve`) or pass --rerank-bin",
            file=sys.stderr,
        )
        return 2

    t0 = time.perf_counter()
    candidates = load_candidates(Path(args.data), args.split, args.queries, args.max_docs)
    mix = make_mix(candidates, args.mix_size, min_docs=args.min_docs, max_docs=args.max_docs, seed=args.seed)
    total_pairs = sum(r.pairs for r in mix)
    print(
        f"mix: {len(mix)} requests over {len({r.query_id for r in mix})} {args.split} queries, "
        f"{total_pairs} pairs ({total_pairs / len(mix):.1f} per request), "
        f"built in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    log_dir = Path(tempfile.mkdtemp(prefix="serve_load_"))
    runs: dict[str, Any] = {}
    all_rounds: list[LevelResult] = []
    for round_no in range(1, args.rounds + 1):
        for server_name in args.servers:
            port = free_port()
            spec = server_spec(server_name, args, port, log_dir)
            tag = f" (round {round_no}/{args.rounds})" if args.rounds > 1 else ""
            print(f"{server_name}{tag}: {shlex.join(spec.command)}", flush=True)
            server = RunningServer(spec, port, log_dir / f"{server_name}-{round_no}.log")
            try:
                probes = 4 * args.our_workers if server_name == "ours" else 1
                ready_s = server.wait_ready(args.startup_timeout, consecutive=probes)
                print(f"  ready in {ready_s:.1f} s", flush=True)
                outcome = asyncio.run(drive(server, mix, args, check=round_no == 1))
            except (RuntimeError, KeyboardInterrupt) as exc:
                server.stop()
                print(f"{server_name} failed: {exc}\nserver log: {server.log_path}", file=sys.stderr)
                return 1
            server.stop()
            all_rounds.extend(outcome["levels"])
            if round_no == 1:
                runs[server_name] = {
                    "command": spec.command,
                    "config": our_config(args) if server_name == "ours" else None,
                    "route": spec.rerank_path,
                    "api": spec.api,
                    "ready_seconds": ready_s,
                    "requests_sent": outcome["requests_sent"],
                    "rankings": outcome["rankings"],
                    "log": str(server.log_path),
                }
    results = median_rounds(all_rounds)

    ranking = None
    if "ours" in runs and "infinity" in runs and args.check_requests:
        ranking = compare_rankings(
            runs["ours"]["rankings"], runs["infinity"]["rankings"], tie_eps=args.tie_eps
        )
    report = markdown_report(results, p95_ms=args.p95_ms, ranking=ranking, servers=args.servers)
    print()
    print(report)
    print(f"\nrerun: {rerun}")

    if not args.no_json:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"{name}.json"
        doc = {
            "name": name,
            "command": rerun,
            "settings": {k: v for k, v in vars(args).items()},
            "environment": _environment(),
            "versions": _versions(args, args.servers),
            "mix": {
                "requests": len(mix),
                "queries": len({r.query_id for r in mix}),
                "pairs": total_pairs,
                "split": args.split,
                "seed": args.seed,
            },
            "levels": [asdict(r) for r in results],
            "rounds": [asdict(r) for r in all_rounds] if args.rounds > 1 else None,
            "ratios": matched_ratios(results),
            "at_p95": {
                s: (asdict(r) if (r := at_p95(results, s, args.p95_ms)) else None) for s in args.servers
            },
            "ranking_check": ranking,
            "servers": {
                s: {k: v for k, v in run.items() if k != "rankings"}
                | {
                    "check_rankings": [
                        [[i, round(x, 7)] for i, x in r] if r else None for r in run["rankings"]
                    ]
                }
                for s, run in runs.items()
            },
            "report": report,
        }
        out.write_text(json.dumps(_finite(doc), indent=1, default=_json_default, allow_nan=False) + "\n")
        print(f"wrote {out.relative_to(WORKSPACE)}")
    return 0


def _finite(x: Any) -> Any:
    """``x`` with every NaN or infinite float turned into None (strict JSON)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def _json_default(x: Any) -> Any:
    if isinstance(x, Path):
        return str(x)
    raise TypeError(type(x).__name__)


if __name__ == "__main__":
    sys.exit(main())

"""Peak-memory probe for one contender, run in a fresh interpreter by the harness.

Reads ``{"name", "model", "device", "cache_dir", "calibration_pairs", "query", "texts"}`` as JSON on stdin;
imports what the contender needs, reads the resident set size (the baseline), then loads the contender and
ranks the query once while a thread samples RSS every 5 ms. Prints ``{"baseline_mb", "peak_mb",
"peak_delta_mb"}`` as one JSON line. A separate process keeps one contender's allocator caches and shared
libraries out of another's figure; the peak is the larger of the sampled peak and the kernel's high-water
mark (``VmHWM``), reset after the imports.

    echo '{"name": "st predict", "model": "models/reference-reranker", ...}' \\
        | python -m rerank_core.eval.speed.memory

The contender is looked up by name among ours and the plugins of ``$RERANK_BENCH_CONTENDERS`` (how the
incumbents of ``benchmarks/`` reach this process). Until the restructure of issue 15 this was
``rerank_core.bench.memory``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import threading
from pathlib import Path

__all__ = ["main"]


def _reset_high_water_mark() -> None:
    """Reset this process's peak RSS (Linux ``clear_refs`` 5); without it the sampler alone counts."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _high_water_mark() -> int | None:
    """Peak RSS in bytes since the last reset (``VmHWM``), or None off Linux.

    ``ru_maxrss`` is no use here: Linux carries it across ``exec``, so a child of a large parent reports
    the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def main() -> int:
    """Run the probe described in the module docstring; returns the exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import psutil

    from rerank_core.eval.speed.contenders import BenchContext, contender_specs

    request = json.loads(sys.stdin.read())
    specs = {s.name: s for s in contender_specs()}
    spec = specs.get(request["name"])
    if spec is None:
        print(f"name: unknown contender {request['name']!r}", file=sys.stderr)
        return 2
    for module in spec.needs:
        importlib.import_module(module)
    proc = psutil.Process()
    _reset_high_water_mark()
    baseline = proc.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cache = request.get("cache_dir")
    pairs = request.get("calibration_pairs")
    ctx = BenchContext(
        model=request["model"],
        device=request.get("device", "cpu"),
        cache_dir=Path(cache) if cache else None,
        calibration_pairs=[(str(q), str(t)) for q, t in pairs] if pairs else None,
    )
    ranker = spec.factory(ctx)
    ranker.rank(request["query"], request["texts"])
    done.set()
    sampler.join()
    peak = max(peak, proc.memory_info().rss, _high_water_mark() or 0)
    mb = 1024 * 1024
    print(
        json.dumps(
            {"baseline_mb": baseline / mb, "peak_mb": peak / mb, "peak_delta_mb": (peak - baseline) / mb}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

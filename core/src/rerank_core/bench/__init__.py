"""Speed benchmark: our local back end in each configuration against the incumbents (``rerank bench``).

- :mod:`~rerank_core.bench.contenders`: who competes, and how each is built (ours probed from the installed
  ``CrossEncoderBackend`` signature; incumbents skipped with a reason when not installed).
- :mod:`~rerank_core.bench.harness`: the workload (BM25 top-k of a BEIR folder) and the interleaved run.
- :mod:`~rerank_core.bench.ceiling`: FLOPs per pair and the measured matmul rate.
- :mod:`~rerank_core.bench.report`: Markdown, PNG, JSON, and the pick of the fastest path that keeps quality.
"""

from rerank_core.bench.ceiling import ModelShape, flops_per_pair, matmul_rate, workload_flops
from rerank_core.bench.contenders import ContenderSpec, contender_specs, select_specs
from rerank_core.bench.harness import (
    BenchConfig,
    BenchResult,
    ContenderResult,
    Workload,
    beir_workload,
    run_bench,
)
from rerank_core.bench.report import Pick, markdown, pick_fastest, write_outputs

__all__ = [
    "BenchConfig",
    "BenchResult",
    "ContenderResult",
    "ContenderSpec",
    "ModelShape",
    "Pick",
    "Workload",
    "beir_workload",
    "contender_specs",
    "flops_per_pair",
    "markdown",
    "matmul_rate",
    "pick_fastest",
    "run_bench",
    "select_specs",
    "workload_flops",
    "write_outputs",
]

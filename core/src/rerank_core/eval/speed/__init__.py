"""Speed of our local back end in each configuration on your data, and the pick of the fastest that keeps
quality (``rerank pick``).

- :mod:`~rerank_core.eval.speed.contenders`: who is timed (our configurations, probed from the installed
  ``CrossEncoderBackend`` signature; more through the ``$RERANK_BENCH_CONTENDERS`` plugin hook).
- :mod:`~rerank_core.eval.speed.harness`: the workload (BM25 top-k of a BEIR folder) and the interleaved run.
- :mod:`~rerank_core.eval.speed.ceiling`: FLOPs per pair and the measured matmul rate.
- :mod:`~rerank_core.eval.speed.report`: Markdown, PNG, JSON, and the pick of the fastest path that keeps
  quality.

The race against other libraries (sentence-transformers, rerankers, FlashRank, LangChain, LlamaIndex) is not
part of the library: it is ``python benchmarks/speed.py`` in the source repository, which adds those
contenders on top of this package. Until the restructure of issue 15 all of it was ``rerank_core.bench``.
"""

from rerank_core.eval.speed.ceiling import ModelShape, flops_per_pair, matmul_rate, workload_flops
from rerank_core.eval.speed.contenders import (
    PLUGINS_ENV,
    BenchContext,
    ContenderSkipped,
    ContenderSpec,
    Ranker,
    contender_specs,
    our_specs,
    select_specs,
)
from rerank_core.eval.speed.harness import (
    REFERENCE,
    BenchConfig,
    BenchResult,
    ContenderResult,
    Workload,
    beir_workload,
    calibration_pairs,
    run_bench,
)
from rerank_core.eval.speed.report import Pick, markdown, pick_fastest, write_outputs

__all__ = [
    "PLUGINS_ENV",
    "REFERENCE",
    "BenchConfig",
    "BenchContext",
    "BenchResult",
    "ContenderResult",
    "ContenderSkipped",
    "ContenderSpec",
    "ModelShape",
    "Pick",
    "Ranker",
    "Workload",
    "beir_workload",
    "calibration_pairs",
    "contender_specs",
    "flops_per_pair",
    "markdown",
    "matmul_rate",
    "our_specs",
    "pick_fastest",
    "run_bench",
    "select_specs",
    "workload_flops",
    "write_outputs",
]

"""Speed benchmark: our local back end in every configuration against every incumbent, side by side.

A thin script over ``rerank_core.bench`` with exactly the options of ``rerank bench`` (see
``rerank bench --help``). Install the incumbents first (they are not CI requirements):

    pip install -r benchmarks/requirements.txt
    python benchmarks/speed.py ../shared/data/scifact --model models/reference-reranker \\
        --queries 20 --top-k 100 --repeats 3
    python benchmarks/speed.py --list                                  # who can run here, and why not
    python benchmarks/speed.py --pick --max-ndcg-drop 0.005 --from-json benchmarks/results/results.json

Writes ``results.md``, ``results.json`` and ``results.png`` under ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

from rerank_core.bench.cli import main  # after the offline switches
from rerank_core.bench.contenders import PLUGINS_ENV

# The LangChain and LlamaIndex incumbents live next to this script: the core never imports a framework.
_FRAMEWORKS = str(Path(__file__).with_name("framework_contenders.py"))
if _FRAMEWORKS not in os.environ.get(PLUGINS_ENV, "").split(","):
    os.environ[PLUGINS_ENV] = ",".join(p for p in (os.environ.get(PLUGINS_ENV), _FRAMEWORKS) if p)

if __name__ == "__main__":
    sys.exit(main())

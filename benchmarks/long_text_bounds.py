"""What one huge candidate costs to plan: pairs, time and peak RSS of windowing a 5 MB text.

A tiny random cross-encoder built offline (the tests' MiniLM tokenizer) is loaded and its scoring stubbed
out, so the figures are the planning alone (tokenizing and windowing under ``LongTextPolicy``'s caps):

    python benchmarks/long_text_bounds.py
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import build_tiny_cross_encoder

from rerank_core import Reranker
from rerank_core.backends import CrossEncoderBackend


def main() -> None:
    model = Path(tempfile.mkdtemp()) / "tiny"
    build_tiny_cross_encoder(model)
    text = ("the quick brown fox jumps over the lazy dog while reranking passages for retrieval " * 80_000)[
        :5_000_000
    ]
    for max_length in (512, 128):
        backend = CrossEncoderBackend(str(model), max_length=max_length, device="cpu")
        backend.load()
        counted: list[int] = []
        backend.score_pairs = lambda pairs, c=counted: c.append(len(pairs)) or [0.0] * len(pairs)  # type: ignore[method-assign]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        response = Reranker(backend).rerank("what is reranking?", [text, "short text"])
        seconds = time.perf_counter() - started
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(
            f"max_length {max_length}: {sum(counted)} pairs, truncated {response.usage['truncated']}, "
            f"{seconds:.2f} s, peak RSS +{grown:.0f} MB"
        )


if __name__ == "__main__":
    main()

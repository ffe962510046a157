"""A decoder LLM as a zero-shot pointwise reranker through a recipe, beside the reference cross-encoder.

    python benchmarks/recipe_zero_shot.py [--data ../shared/data/scifact] [--queries 30] [--top-k 20]

SmolLM2-135M-Instruct (GGUF, ../shared/models) scored with the Qwen3-Reranker recipe (its ChatML template,
P(yes) from the yes/no logits) reranks the BM25 top-k of the first N SciFact test queries; the reference
cross-encoder (models/reference-reranker) reranks the same candidates. Prints nDCG@10 of BM25, of each
reranker, and each one's pairs per second (median of the per-query rates, same machine, one after the
other). Whatever it gives is reported in docs/results.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rerank_core import Reranker
from rerank_core.backends.cross_encoder import CrossEncoderBackend
from rerank_core.backends.recipe_model import RecipeBackend
from rerank_core.eval.beir import corpus_texts, load_beir
from rerank_core.eval.bm25 import BM25Retriever
from rerank_core.eval.metrics import ndcg_at_k

ROOT = Path(__file__).resolve().parents[1]
SMOL = ROOT.parent / "shared" / "models" / "SmolLM2-135M-Instruct-Q4_1-GGUF"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--top-k", type=int, default=20)
    args = parser.parse_args()
    data = load_beir(args.data, "test")
    texts = corpus_texts(data)
    ids = list(texts)
    bm25 = BM25Retriever(ids, [texts[i] for i in ids])
    qids = [q for q in data.queries if q in data.qrels][: args.queries]
    hits = bm25.retrieve([data.queries[q] for q in qids], k=args.top_k)
    rows = {
        "BM25": [ndcg_at_k([d for d, _ in h], data.qrels[q], 10) for q, h in zip(qids, hits, strict=True)]
    }
    speeds: dict[str, float] = {}
    backends = {
        "reference cross-encoder": CrossEncoderBackend(
            ROOT / "models" / "reference-reranker", dtype="float32"
        ),
        "SmolLM2-135M via qwen3 recipe": RecipeBackend(
            SMOL, recipe="qwen3", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", dtype="float32", max_length=512
        ),
    }
    for name, backend in backends.items():
        reranker = Reranker(backend)
        reranker.rerank("warm up", ["loading the model"])
        ndcgs, rates = [], []
        for q, h in zip(qids, hits, strict=True):
            cands = [texts[d] for d, _ in h]
            start = time.perf_counter()
            response = reranker.rerank(data.queries[q], cands)
            rates.append(len(cands) / (time.perf_counter() - start))
            ndcgs.append(ndcg_at_k([h[r.index][0] for r in response.results], data.qrels[q], 10))
        rows[name] = ndcgs
        speeds[name] = statistics.median(rates)
    print(f"SciFact test, first {len(qids)} queries, BM25 top-{args.top_k}")
    print(f"{'ranker':34} {'nDCG@10':>8} {'pairs/s':>8}")
    for name, values in rows.items():
        rate = f"{speeds[name]:8.1f}" if name in speeds else f"{'':>8}"
        print(f"{name:34} {statistics.fmean(values):8.4f} {rate}")


if __name__ == "__main__":
    main()

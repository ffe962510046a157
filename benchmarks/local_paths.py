"""Speed and quality of each local path of ``CrossEncoderBackend`` against ``CrossEncoder.predict``.

Same model, same candidates (BM25 top-k of SciFact test queries), one process, on the CPU:

- ``st-predict``: sentence-transformers ``CrossEncoder(model).predict(pairs)`` at its default settings
  (on a CPU this keeps a float16 checkpoint, such as the reference reranker, in float16);
- ``st-predict-fp32``: the same, loaded with ``model_kwargs={"dtype": "float32"}``;
- ``torch-fp32``, ``torch-fp32-tokens`` (``batch_tokens``), ``torch-bf16``: our torch path;
- ``onnx-fp32``, ``onnx-int8``, ``openvino-fp32``, ``openvino-int8`` (built-in calibration pairs),
  ``openvino-int8-train`` (calibrated on SciFact *train* BM25 pairs; never test).

Quality: every contender scores all ``--queries`` x ``--top-k`` pairs once; nDCG@10 of the reranked list
(the model alone), and its difference from ``torch-fp32``. Speed: ``--repeats`` interleaved rounds over
the first ``--timing-queries`` queries' pairs (contender order rotated each round), median pairs/s and the
ratio to ``st-predict``. Exports go to ``--cache-dir`` (time to export or load is printed, not counted).

    python benchmarks/local_paths.py --queries 20 --top-k 100 --timing-queries 2 --repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORKSPACE = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_SHARED_DIR", WORKSPACE.parent / "shared"))
ALL = (
    "st-predict",
    "st-predict-fp32",
    "torch-fp32",
    "torch-fp32-tokens",
    "torch-bf16",
    "onnx-fp32",
    "onnx-int8",
    "openvino-fp32",
    "openvino-int8",
    "openvino-int8-train",
)
Scorer = Callable[[Sequence[tuple[str, str]]], Sequence[float]]


def bm25_pairs(data: str, split: str, n_queries: int, top_k: int) -> tuple[Any, list[str], list[list[str]]]:
    """(dataset, query ids, candidate doc ids per query) for the first ``n_queries`` queries."""
    from rerank_core.eval import BM25Retriever, load_beir
    from rerank_core.eval.beir import doc_text

    ds = load_beir(data, split)
    ids = list(ds.corpus)
    bm25 = BM25Retriever(ids, [doc_text(ds.corpus[i]) for i in ids])
    qids = list(ds.queries)[:n_queries]
    hits = bm25.retrieve([ds.queries[q] for q in qids], k=top_k)
    return ds, qids, [[d for d, _ in h] for h in hits]


def make_scorer(name: str, model: str, cache_dir: str, calibration: list[tuple[str, str]]) -> Scorer:
    from rerank_core.backends import CrossEncoderBackend

    if name.startswith("st-predict"):
        from sentence_transformers import CrossEncoder

        kwargs = {"model_kwargs": {"dtype": "float32"}} if name == "st-predict-fp32" else {}
        ce = CrossEncoder(model, **kwargs)
        print(f"  {name}: device {ce.device}, dtype {next(ce.parameters()).dtype}, batch 32")
        return lambda pairs: ce.predict(list(pairs), show_progress_bar=False)
    options: dict[str, Any] = {"device": "cpu", "cache_dir": cache_dir}
    if name == "torch-fp32-tokens":
        options.update(batch_size=64, batch_tokens=32 * 192)
    elif name == "torch-bf16":
        options["dtype"] = "bfloat16"
    elif name != "torch-fp32":
        runtime, precision = name.split("-")[:2]
        options["runtime"] = runtime
        options["quantization"] = "int8" if precision == "int8" else None
        if name == "openvino-int8-train":
            options["calibration_pairs"] = calibration
    backend = CrossEncoderBackend(model, **options)
    t = time.perf_counter()
    backend.load()
    print(
        f"  {name}: runtime {backend.runtime}, load{' + export' if backend.exported else ''} "
        f"{time.perf_counter() - t:.1f} s"
    )
    return backend.score


def padding_stats(model: str, pairs: list[tuple[str, str]], batch_tokens: int) -> dict[str, float]:
    """Real vs padded tokens with fixed batches of 32 and with the token budget (both length-sorted)."""
    from rerank_core.backends import CrossEncoderBackend
    from rerank_core.backends.cross_encoder import _batches

    backend = CrossEncoderBackend(model, device="cpu")
    tok = backend.model.tokenizer
    lengths = [
        len(x) for x in tok(pairs, truncation=True, max_length=backend.model.max_seq_length)["input_ids"]
    ]
    out = {"real_tokens": float(sum(lengths)), "mean_length": sum(lengths) / len(lengths)}
    for label, bs, bt in (("fixed32", 32, None), ("tokens", 64, batch_tokens)):
        batches = _batches(lengths, bs, bt)
        out[f"{label}_padded_tokens"] = float(sum(len(b) * lengths[b[0]] for b in batches))
        out[f"{label}_batches"] = float(len(batches))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(SHARED / "data" / "scifact"))
    parser.add_argument("--model", default=str(WORKSPACE / "models" / "reference-reranker"))
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--timing-queries", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(ALL))
    parser.add_argument("--calibration-queries", type=int, default=20, help="train queries x top-10")
    parser.add_argument("--cache-dir", default=str(WORKSPACE / ".cache" / "exports"))
    parser.add_argument(
        "--quality-contenders",
        default=None,
        help="contenders given the nDCG pass (default all; paths equal to torch-fp32 within 1e-4 may skip)",
    )
    parser.add_argument("--no-quality", action="store_true", help="skip the nDCG pass")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from rerank_core.eval import ndcg_at_k
    from rerank_core.eval.beir import doc_text

    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    ds, qids, cands = bm25_pairs(args.data, "test", args.queries, args.top_k)
    groups = [[(ds.queries[q], doc_text(ds.corpus[d])) for d in c] for q, c in zip(qids, cands, strict=True)]
    calibration: list[tuple[str, str]] = []
    if "openvino-int8-train" in names:
        tr, tq, tc = bm25_pairs(args.data, "train", args.calibration_queries, 10)
        calibration = [
            (tr.queries[q], doc_text(tr.corpus[d])) for q, c in zip(tq, tc, strict=True) for d in c
        ]
    timing_pairs = [p for g in groups[: args.timing_queries] for p in g]
    print(f"model {args.model}; {sum(map(len, groups))} quality pairs, {len(timing_pairs)} timing pairs")
    stats = padding_stats(args.model, timing_pairs, 32 * 192)
    print("padding on the timing pairs:", json.dumps(stats))

    scorers = {n: make_scorer(n, args.model, args.cache_dir, calibration) for n in names}
    for s in scorers.values():
        s(timing_pairs[:8])  # warm up

    results: dict[str, dict[str, Any]] = {n: {} for n in names}
    if not args.no_quality:
        quality = names if args.quality_contenders is None else args.quality_contenders.split(",")
        for n, s in scorers.items():
            if n not in quality:
                continue
            t = time.perf_counter()
            ndcgs = []
            for q, c, g in zip(qids, cands, groups, strict=True):
                scores = list(s(g))
                ranking = [d for _, d in sorted(zip(scores, c, strict=True), key=lambda x: -x[0])]
                ndcgs.append(ndcg_at_k(ranking, ds.qrels.get(q, {}), 10))
            secs = time.perf_counter() - t
            results[n]["ndcg@10"] = sum(ndcgs) / len(ndcgs)
            results[n]["quality_pass_pairs_per_s"] = sum(map(len, groups)) / secs
            rate = results[n]["quality_pass_pairs_per_s"]
            print(f"  {n}: nDCG@10 {results[n]['ndcg@10']:.4f} ({rate:.1f} pairs/s)")

    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            t = time.perf_counter()
            scorers[n](timing_pairs)
            times[n].append(time.perf_counter() - t)
        print(f"  round {r + 1}: " + ", ".join(f"{n} {times[n][-1]:.1f}s" for n in names))
    base = statistics.median(times["st-predict"]) if "st-predict" in times else None
    ref = results.get("torch-fp32", {}).get("ndcg@10")
    print(f"\n| path | pairs/s (median of {args.repeats}) | vs st-predict | nDCG@10 | vs torch-fp32 |")
    print("|---|---|---|---|---|")
    for n in names:
        med = statistics.median(times[n])
        results[n].update(seconds=times[n], pairs_per_s=len(timing_pairs) / med)
        ratio = f"{base / med:.2f}x" if base else "-"
        nd = results[n].get("ndcg@10")
        delta = f"{nd - ref:+.4f}" if nd is not None and ref is not None else "-"
        shown = "-" if nd is None else f"{nd:.4f}"
        print(f"| {n} | {len(timing_pairs) / med:.1f} | {ratio} | {shown} | {delta} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "padding": stats, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()

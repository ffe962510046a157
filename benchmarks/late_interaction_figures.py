"""Late interaction against BM25 and the cross-encoder: quality, latency with and without stored vectors,
memory.

    .venv/bin/python benchmarks/late_interaction_figures.py               # both parts, defaults
    .venv/bin/python benchmarks/late_interaction_figures.py --queries 50  # more test queries

Quality (BM25 top-``--top-k`` of the first ``--queries`` judged test queries of SciFact and NFCorpus, nDCG@10
with ``rerank_core.eval.metrics``): BM25 alone; the late-interaction model alone, reranking all candidates
(MaxSim of the model's ``encode_query`` / ``encode_document`` vectors; each document encoded once, its first
``document_length`` tokens, kept as float16 as ``LateInteractionBackend`` stores them by default); the
cross-encoder alone over all candidates (``Reranker(CrossEncoderBackend(..., runtime="openvino"))``, each
document truncated to the pair's budget, ``--long-text truncate``, as the late-interaction model truncates at
its ``document_length``; ``--long-text window`` for the pipeline's default windows); and the cascade: late
interaction over all candidates, then the cross-encoder over its top ``--cascade-k`` (re-ordered within those
slots; the cross-encoder's scores of those pairs are the ones of its full pass: it scores each pair on its
own). The same document vectors kept as float32 and int8 give the precision rows.

Speed (one process, side by side, the SciFact test query with the most BM25 hits, its top 10/100/1000):
``Reranker(LateInteractionBackend(model, store=...))`` with every document's vectors already in the on-disk
store (memory cache off, so each call reads the store), the same back end cold (no store, no cache: every
call encodes the documents), and ``Reranker(CrossEncoderBackend(reference-reranker, runtime="openvino"))``.
The same ``--long-text`` mode for all three. Median wall time over ``--repeats`` calls (``--repeats-1000``
for 1,000 candidates), after one warm-up call of each contender.
Memory: bytes per stored document and per million tokens, from the store (float16) and the packed sizes.

JSON goes to ``benchmarks/results/late_interaction/`` (``quality.json``, ``speed.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "late_interaction"
DTYPES = ("float16", "float32", "int8")


def machine() -> str:
    """The CPU, its core count and the vector extensions that change the speed figures (AVX2 against
    AVX-512 / AMX): timings from two machines are never compared."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", platform.machine()):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    ext = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name}, {os.cpu_count()} cores" + (f" ({', '.join(ext)})" if ext else "")


def ndcg10(run: dict[str, list[str]], qrels: dict) -> float:
    from rerank_core.eval.metrics import evaluate

    return evaluate(run, qrels, k_values=(10,))["ndcg@10"]


def order(ids: list[str], scores: list[float]) -> list[str]:
    """``ids`` best first by ``scores`` (ties: first-stage order)."""
    return [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-scores[i], i))]


def quality(args: argparse.Namespace, model, ce_reranker) -> dict:
    import torch

    from rerank_core.eval import BM25Retriever, corpus_texts, load_beir
    from rerank_core.late_interaction import pack, unpack

    out = {}
    for name in args.collections:
        started = time.perf_counter()
        ds = load_beir(args.data / name, split="test")
        texts = corpus_texts(ds)
        bm25 = BM25Retriever(list(texts), list(texts.values()))
        qids = [q for q in ds.queries if ds.qrels.get(q)][: args.queries]
        hits = bm25.retrieve([ds.queries[q] for q in qids], k=args.top_k)
        cands = {q: [d for d, _ in h] for q, h in zip(qids, hits, strict=True)}
        qrels = {q: ds.qrels[q] for q in qids}
        runs: dict[str, dict[str, list[str]]] = {"bm25": cands}

        # Late interaction: every distinct candidate encoded once (float32), then kept at each precision.
        t = time.perf_counter()
        used = sorted({d for ids in cands.values() for d in ids})
        vectors = model.encode_document(
            [texts[d] for d in used], batch_size=32, convert_to_numpy=True, show_progress_bar=args.progress
        )
        where = {d: i for i, d in enumerate(used)}
        q_vectors = model.encode_query([ds.queries[q] for q in qids], batch_size=32, show_progress_bar=False)
        li_encode_s = time.perf_counter() - t
        tokens = [int(v.shape[0]) for v in vectors]
        li_scores: dict[str, dict[str, list[float]]] = {}
        packed_bytes = {}
        for dtype in DTYPES:
            kept = [pack(v, dtype) for v in vectors]
            packed_bytes[dtype] = sum(k.nbytes for k in kept)
            docs = [torch.from_numpy(unpack(k)) for k in kept]
            li_scores[dtype] = {
                q: model.similarity([qv.float()], [docs[where[d]] for d in cands[q]])[0].tolist()
                for q, qv in zip(qids, q_vectors, strict=True)
            }
            runs[f"late_interaction_{dtype}"] = {q: order(cands[q], li_scores[dtype][q]) for q in qids}
        runs["late_interaction"] = runs["late_interaction_float16"]

        # Cross-encoder over all candidates, through the pipeline (scores cached: they do not depend on
        # the late-interaction model, so a retrained model is measured without scoring them again).
        t = time.perf_counter()
        ce_scores, ce_scored = cross_encoder_scores(args, ce_reranker, ds.queries, texts, qids, cands)
        ce_s = time.perf_counter() - t
        runs["cross_encoder"] = {q: order(cands[q], ce_scores[q]) for q in qids}

        # Cascade: late interaction's order, its top cascade-k re-ordered by the cross-encoder.
        cascade = {}
        for q in qids:
            li = runs["late_interaction"][q]
            head = li[: args.cascade_k]
            pos = {d: i for i, d in enumerate(cands[q])}
            cascade[q] = order(head, [ce_scores[q][pos[d]] for d in head]) + li[args.cascade_k :]
        runs["cascade"] = cascade

        metrics = {k: round(ndcg10(v, qrels), 4) for k, v in runs.items()}
        out[name] = {
            "queries": len(qids),
            "first_query_ids": qids[:3],
            "top_k": args.top_k,
            "cascade_k": args.cascade_k,
            "ndcg@10": metrics,
            "documents_encoded": len(used),
            "mean_document_tokens": round(sum(tokens) / len(tokens), 1),
            "packed_bytes_per_document": {k: round(v / len(used)) for k, v in packed_bytes.items()},
            "packed_bytes_per_million_tokens": {
                k: round(v * 1_000_000 / sum(tokens)) for k, v in packed_bytes.items()
            },
            "cross_encoder_pairs": {"scored": ce_scored, "cached": sum(map(len, cands.values())) - ce_scored},
            "seconds": {
                "late_interaction_encode": round(li_encode_s, 1),
                "cross_encoder": round(ce_s, 1),  # the pairs scored now; cached ones cost nothing
                "total": round(time.perf_counter() - started, 1),
            },
        }
        print(f"{name}: {json.dumps(out[name]['ndcg@10'])}", file=sys.stderr)
    return out


def cross_encoder_scores(args, ce_reranker, queries, texts, qids, cands, *, chunk: int = 10):
    """The cross-encoder's raw score of every candidate, ``{qid: [score per candidate]}``, and how many
    pairs were scored now. Scores already in ``--ce-cache`` (a JSONL file named after every file of the
    cross-encoder's folder, the long-text mode and the library version; key: sha1 of query and text) are
    reused; new ones are appended after every ``chunk`` queries, so an interrupted run keeps them. Each pair
    is scored on its own (windows included), so scoring a subset gives the scores of the full pass."""
    import hashlib

    import rerank_core
    from rerank_core.backends.late_interaction import _folder_digest  # every file's whole contents

    # The file is named after everything a score depends on besides the pair: every file of the model folder
    # (weights, config, tokenizer), the long-text mode and this library's version (its truncation/windows).
    what = f"{_folder_digest(args.cross_encoder)}-{args.long_text}-{rerank_core.__version__}"
    tag = hashlib.sha1(what.encode()).hexdigest()[:16]
    cache = None if args.no_ce_cache else args.ce_cache / f"cross-encoder-{tag}.jsonl"

    def key(q: str, d: str) -> str:
        return hashlib.sha1(f"{queries[q]}\x00{texts[d]}".encode()).hexdigest()

    known: dict[str, float] = {}
    torn = False  # the file ends inside a line (an interrupted write): the first append ends it
    if cache is not None and cache.is_file():
        text = cache.read_text(encoding="utf-8")
        torn = bool(text) and not text.endswith("\n")
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a torn last line of an interrupted run
                continue
            known[row["k"]] = float(row["s"])
    todo = [q for q in qids if any(key(q, d) not in known for d in cands[q])]
    scored = 0
    started = time.perf_counter()
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        missing = {q: [d for d in cands[q] if key(q, d) not in known] for q in part}
        responses = ce_reranker.rerank_many(
            [queries[q] for q in part], [[texts[d] for d in missing[q]] for q in part]
        )
        lines = []
        for q, resp in zip(part, responses, strict=True):
            for r in resp.results:
                k = key(q, missing[q][r.index])
                known[k] = float(r.raw_score)
                lines.append(json.dumps({"k": k, "s": known[k]}))
            scored += len(missing[q])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with cache.open("a", encoding="utf-8") as fh:  # a torn last line is ended, not glued onto
                fh.write(("\n" if torn else "") + "".join(line + "\n" for line in lines))
            torn = False
        if args.progress:
            rate = scored / max(time.perf_counter() - started, 1e-9)
            print(f"cross-encoder: {i + len(part)}/{len(todo)} queries, {rate:.1f} pairs/s", file=sys.stderr)
    return {q: [known[key(q, d)] for d in cands[q]] for q in qids}, scored


def timed(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls (each contender is warmed up once before, in :func:`speed`)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def speed(args: argparse.Namespace, ce_reranker) -> dict:
    from rerank_core import Reranker
    from rerank_core.backends import LateInteractionBackend
    from rerank_core.chunking import LongTextPolicy
    from rerank_core.eval import BM25Retriever, corpus_texts, load_beir

    ds = load_beir(args.data / "scifact", split="test")
    texts = corpus_texts(ds)
    bm25 = BM25Retriever(list(texts), list(texts.values()))
    qids = list(ds.queries)
    hits = bm25.retrieve([ds.queries[q] for q in qids], k=max(args.sizes))
    best = max(range(len(qids)), key=lambda i: len(hits[i]))
    query, docs = ds.queries[qids[best]], [texts[d] for d, _ in hits[best]]
    sizes = [n for n in args.sizes if n <= len(docs)]

    store_dir = Path(tempfile.mkdtemp(prefix="li-store-"))
    mk = {"model_kwargs": {"dtype": "float32"}, "local_files_only": True}
    stored = LateInteractionBackend(str(args.model), store=store_dir, cache_size=0, **mk)
    cold = LateInteractionBackend(str(args.model), cache_size=0, **mk)
    t = time.perf_counter()
    report = stored.index(docs[: max(sizes)], long_text=LongTextPolicy(args.long_text))  # as reranked
    index_s = time.perf_counter() - t
    stored.store.checkpoint()  # fold the write-ahead log into the file: else its copy is counted twice
    stats = stored.store.stats(stored.vector_space)
    li_stored = Reranker(stored, long_text=args.long_text)
    li_cold = Reranker(cold, long_text=args.long_text)
    for reranker in (li_stored, li_cold, ce_reranker):  # warm-up: model load, export, first allocations
        reranker.rerank(query, docs[:10])

    rows = []
    for n in sizes:
        reps = args.repeats_1000 if n >= 1000 else args.repeats
        part = docs[:n]
        row = {"candidates": n, "repeats": reps}
        row["late_interaction_stored_s"] = timed(lambda p=part: li_stored.rerank(query, p), reps)
        row["late_interaction_cold_s"] = timed(lambda p=part: li_cold.rerank(query, p), reps)
        row["cross_encoder_s"] = timed(lambda p=part: ce_reranker.rerank(query, p), reps)
        row["cross_encoder_over_stored"] = round(row["cross_encoder_s"] / row["late_interaction_stored_s"], 1)
        row["cold_over_stored"] = round(row["late_interaction_cold_s"] / row["late_interaction_stored_s"], 1)
        row["cross_encoder_over_cold"] = round(row["cross_encoder_s"] / row["late_interaction_cold_s"], 2)
        rows.append(row)
        print(f"speed: {json.dumps(row)}", file=sys.stderr)
    out = {
        "query_id": qids[best],
        "rows": rows,
        "store": {
            "documents": report.documents,
            "segments": report.segments,
            "stored_vectors": stats.documents,
            "tokens": stats.tokens,
            "vector_bytes": stats.bytes,
            "file_bytes": stats.file_bytes,
            "bytes_per_document": round(stats.file_bytes / max(report.documents, 1)),
            "vector_bytes_per_document": round(stats.bytes / max(report.documents, 1)),
            "file_bytes_per_million_tokens": round(stats.bytes_per_million_tokens or 0),
            "index_seconds": round(index_s, 1),
        },
        "stored_dtype": stored.stored_dtype,
        "long_text": args.long_text,
        "counters": {"stored": dict(stored.counters), "cold": dict(cold.counters)},
    }
    encoded_after_index = stored.counters["documents_encoded"] - report.encoded
    if encoded_after_index:  # the stored contender must never have encoded a document while timed
        print(f"warning: the stored back end encoded {encoded_after_index} documents", file=sys.stderr)
    stored.close()
    cold.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=ROOT / "models" / "reference-colbert")
    p.add_argument("--cross-encoder", type=Path, default=ROOT / "models" / "reference-reranker")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--collections", nargs="+", default=["scifact", "nfcorpus"])
    p.add_argument("--queries", type=int, default=15, help="first N judged test queries per collection")
    p.add_argument(
        "--long-text",
        default="truncate",
        choices=["truncate", "window"],
        help="the pipeline's long-text mode for the cross-encoder (and the late-interaction back end in the "
        "speed part): truncate = one model input per candidate, as the late-interaction quality rows",
    )
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--cascade-k", type=int, default=20)
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--repeats-1000", type=int, default=1, help="repeats for 1,000 candidates")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--progress", action="store_true")
    p.add_argument(
        "--ce-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "late-interaction-figures",
        help="folder for the cross-encoder's cached scores (independent of the late-interaction model)",
    )
    p.add_argument("--no-ce-cache", action="store_true", help="score every pair again, keep nothing")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    command = "python benchmarks/late_interaction_figures.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )

    import torch
    from sentence_transformers import MultiVectorEncoder

    from rerank_core import Reranker
    from rerank_core.backends import CrossEncoderBackend

    env = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "command": command,
    }
    ce_reranker = Reranker(
        CrossEncoderBackend(str(args.cross_encoder), runtime="openvino"), long_text=args.long_text
    )
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_quality:
        model = MultiVectorEncoder(
            str(args.model), device="cpu", local_files_only=True, model_kwargs={"dtype": torch.float32}
        )
        q = quality(args, model, ce_reranker)
        (args.out / "quality.json").write_text(json.dumps({**env, "collections": q}, indent=2) + "\n")
        print(f"\nnDCG@10, BM25 top-{args.top_k}, first N judged test queries")
        cols = [
            "bm25",
            "late_interaction",
            "cross_encoder",
            "cascade",
            *[f"late_interaction_{d}" for d in DTYPES],
        ]
        print("| collection | N | " + " | ".join(cols) + " |")
        for name, r in q.items():
            print(f"| {name} | {r['queries']} | " + " | ".join(f"{r['ndcg@10'][c]:.4f}" for c in cols) + " |")
    if not args.skip_speed:
        s = speed(args, ce_reranker)
        (args.out / "speed.json").write_text(json.dumps({**env, **s}, indent=2) + "\n")
        print(f"\nmedian seconds per query (candidates: SciFact test query {s['query_id']}, BM25 order)")
        print("| candidates | LI stored | LI cold | cross-encoder (openvino) | CE / stored | cold / stored |")
        for r in s["rows"]:
            print(
                f"| {r['candidates']} | {r['late_interaction_stored_s']:.3f} "
                f"| {r['late_interaction_cold_s']:.3f} | "
                f"{r['cross_encoder_s']:.3f} | {r['cross_encoder_over_stored']}x | {r['cold_over_stored']}x |"
            )
        st = s["store"]
        print(
            f"store ({s['stored_dtype']}): {st['documents']} documents ({st['segments']} windows), "
            f"{st['bytes_per_document']} file bytes per document "
            f"({st['vector_bytes_per_document']} of vectors), "
            f"{st['file_bytes_per_million_tokens']} bytes per million tokens"
        )
    print(f"\nrerun: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

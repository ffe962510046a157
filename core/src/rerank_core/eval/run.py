"""Evaluation runner: BM25 first stage, optional reranking, metrics for both.

```python
from rerank_core.eval import load_beir, run_eval

dataset = load_beir("../shared/data/scifact", split="test")
report = run_eval(dataset, reranker=my_reranker, top_k=100)
report.first_stage["ndcg@10"], report.reranked["ndcg@10"]
```

``reranker`` is anything with ``rerank_many(queries, candidate_texts) -> [response, ...]`` whose responses
hold ``results`` (best first) with ``index`` = the candidate's position in that query's list: a
:class:`rerank_core.Reranker`, or a test double. Every metric dict has the keys ``ndcg@10``, ``mrr@10``
and ``recall@{top_k}``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rerank_core.eval.beir import BeirDataset, corpus_texts
from rerank_core.eval.bm25 import BM25Retriever
from rerank_core.eval.metrics import evaluate
from rerank_core.validation import check_positive_int

__all__ = ["EvalReport", "SupportsRerankMany", "metric_keys", "rerank_run", "retrieve_run", "run_eval"]

NDCG_MRR_K = 10


class SupportsRerankMany(Protocol):
    def rerank_many(self, queries: Sequence[str], documents: Sequence[Sequence[str]], /) -> Sequence[Any]: ...


def metric_keys(top_k: int) -> list[str]:
    """The keys of every metric dict of a run with first-stage depth ``top_k``."""
    return [f"ndcg@{NDCG_MRR_K}", f"mrr@{NDCG_MRR_K}", f"recall@{top_k}"]


def _stage_metrics(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], top_k: int
) -> dict:
    values = evaluate(run, qrels, k_values={NDCG_MRR_K, top_k})
    return {key: values[key] for key in metric_keys(top_k)}


@dataclass
class EvalReport:
    """What :func:`run_eval` measured. :meth:`to_dict` gives the JSON contract of ``rerank eval --json``."""

    dataset: str
    split: str
    top_k: int
    queries: int
    first_stage: dict[str, float]
    reranked: dict[str, float] | None
    seconds: float
    model: str | None = None
    corpus_size: int = 0
    first_stage_config: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    first_stage_run: dict[str, list[str]] = field(default_factory=dict, repr=False)
    reranked_run: dict[str, list[str]] | None = field(default=None, repr=False)
    fusion: str | None = None
    fused: dict[str, float] | None = None
    fused_run: dict[str, list[str]] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """``first_stage``, ``reranked`` (``None`` without a model), ``queries``, ``seconds``, context."""
        return {
            "first_stage": dict(self.first_stage),
            "reranked": None if self.reranked is None else dict(self.reranked),
            "fusion": self.fusion,
            "fused": None if self.fused is None else dict(self.fused),
            "queries": self.queries,
            "seconds": round(self.seconds, 3),
            "dataset": self.dataset,
            "split": self.split,
            "top_k": self.top_k,
            "model": self.model,
            "corpus_size": self.corpus_size,
            "first_stage_config": dict(self.first_stage_config),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def retrieve_run(
    retriever: BM25Retriever, queries: Mapping[str, str], top_k: int
) -> dict[str, list[tuple[str, float]]]:
    """Top ``top_k`` ``(doc_id, score)`` per query id, best first."""
    qids = list(queries)
    hits = retriever.retrieve([queries[q] for q in qids], k=top_k)
    return dict(zip(qids, hits, strict=True))


def rerank_run(
    reranker: SupportsRerankMany,
    queries: Mapping[str, str],
    candidates: Mapping[str, Sequence[str]],
    corpus_texts: Mapping[str, str],
    *,
    chunk_size: int = 8,
    progress: bool = True,
    first_stage_scores: Mapping[str, Sequence[float]] | None = None,
) -> tuple[dict[str, list[str]], dict[str, list[str]] | None]:
    """Rerank each query's candidate doc ids; returns the new order (best first) per query id.

    Queries go to ``reranker.rerank_many`` ``chunk_size`` at a time, under a tqdm bar on stderr. A query
    without candidates is not sent and keeps an empty ranking. With ``first_stage_scores`` (for a
    reranker with a fusion) they are passed on; the first returned run is then the fused order, and the
    second the order by the reranker's own raw score. Without, the second is ``None``.
    """
    from tqdm.auto import tqdm

    check_positive_int(chunk_size, "chunk_size")
    todo = [qid for qid in queries if candidates.get(qid)]
    out: dict[str, list[str]] = {qid: [] for qid in queries}
    raw_out: dict[str, list[str]] | None = (
        None if first_stage_scores is None else {qid: [] for qid in queries}
    )
    with tqdm(total=len(todo), desc="rerank", unit="query", file=sys.stderr, disable=not progress) as bar:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            cand_ids = [list(candidates[qid]) for qid in chunk]
            texts = [[corpus_texts[d] for d in ids] for ids in cand_ids]
            if first_stage_scores is None:
                responses = reranker.rerank_many([queries[qid] for qid in chunk], texts)
            else:
                responses = reranker.rerank_many(  # type: ignore[call-arg]
                    [queries[qid] for qid in chunk],
                    texts,
                    first_stage_scores=[list(first_stage_scores[qid]) for qid in chunk],
                )
            if len(responses) != len(chunk):
                raise RuntimeError(
                    f"rerank_many returned {len(responses)} responses for {len(chunk)} queries"
                )
            for qid, ids, response in zip(chunk, cand_ids, responses, strict=True):
                indices = [result.index for result in response.results]
                if any(not 0 <= i < len(ids) for i in indices):
                    raise RuntimeError(
                        f"the reranker returned an index outside 0..{len(ids) - 1} for query {qid!r}"
                    )
                order = [ids[i] for i in indices]
                if len(set(order)) != len(order):
                    raise RuntimeError(f"the reranker returned a candidate twice for query {qid!r}")
                out[qid] = order
                if raw_out is not None:
                    by_raw = sorted(response.results, key=lambda r: (-r.raw_score, r.index))
                    raw_out[qid] = [ids[r.index] for r in by_raw]
            bar.update(len(chunk))
    return out, raw_out


def run_eval(
    dataset: BeirDataset,
    *,
    reranker: SupportsRerankMany | None = None,
    top_k: int = 100,
    max_queries: int | None = None,
    chunk_size: int = 8,
    progress: bool = True,
    model: str | None = None,
    retriever: BM25Retriever | None = None,
    bm25_kwargs: Mapping[str, Any] | None = None,
) -> EvalReport:
    """BM25 top-``top_k`` over ``dataset``, optionally reranked, with metrics for both stages.

    With a reranker that has a ``fusion``, the BM25 scores are passed as first-stage scores and the report
    has both the reranker's own order (``reranked``) and the fused one (``fused``), from one scoring pass.
    ``max_queries`` keeps the first N queries (file order). ``retriever`` reuses a built index (it must
    cover ``dataset.corpus``); otherwise one is built with ``bm25_kwargs``. ``model`` only labels the report.
    """
    check_positive_int(top_k, "top_k")
    if max_queries is not None:
        check_positive_int(max_queries, "max_queries")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    qids = list(dataset.queries)[:max_queries]
    queries = {qid: dataset.queries[qid] for qid in qids}
    texts = corpus_texts(dataset)

    if retriever is None:
        t = time.perf_counter()
        retriever = BM25Retriever(list(texts), list(texts.values()), **dict(bm25_kwargs or {}))
        timings["index"] = time.perf_counter() - t
    t = time.perf_counter()
    hits = retrieve_run(retriever, queries, top_k)
    timings["retrieve"] = time.perf_counter() - t
    first_run = {qid: [doc_id for doc_id, _ in h] for qid, h in hits.items()}
    first_metrics = _stage_metrics(first_run, dataset.qrels, top_k)

    reranked_run: dict[str, list[str]] | None = None
    reranked_metrics: dict[str, float] | None = None
    fusion = getattr(reranker, "fusion", None)
    fused_run: dict[str, list[str]] | None = None
    if reranker is not None:
        t = time.perf_counter()
        first_scores = {qid: [score for _, score in h] for qid, h in hits.items()} if fusion else None
        reranked_run, raw_run = rerank_run(
            reranker,
            queries,
            first_run,
            texts,
            chunk_size=chunk_size,
            progress=progress,
            first_stage_scores=first_scores,
        )
        if raw_run is not None:  # the reranker fused: its own order is the raw one
            fused_run, reranked_run = reranked_run, raw_run
        timings["rerank"] = time.perf_counter() - t
        reranked_metrics = _stage_metrics(reranked_run, dataset.qrels, top_k)

    return EvalReport(
        dataset=dataset.name,
        split=dataset.split,
        top_k=top_k,
        queries=len(queries),
        first_stage=first_metrics,
        reranked=reranked_metrics,
        seconds=time.perf_counter() - started,
        model=model,
        corpus_size=len(dataset.corpus),
        first_stage_config={
            "retriever": "bm25s",
            "method": retriever.method,
            "k1": retriever.k1,
            "b": retriever.b,
        },
        timings=timings,
        first_stage_run=first_run,
        reranked_run=reranked_run,
        fusion=fusion.describe() if fusion is not None else None,
        fused=None if fused_run is None else _stage_metrics(fused_run, dataset.qrels, top_k),
        fused_run=fused_run,
    )

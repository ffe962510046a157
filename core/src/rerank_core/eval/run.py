"""Evaluation runner: a first stage (BM25, dense or hybrid), optional reranking, metrics for every stage.

```python
from rerank_core.eval import load_beir, run_eval

dataset = load_beir("../shared/data/scifact", split="test")
report = run_eval(dataset, reranker=my_reranker, top_k=100)
report.first_stage["ndcg@10"], report.reranked["ndcg@10"]

# BM25 + dense (all-MiniLM-L6-v2) fused by reciprocal rank fusion, then reranked
report = run_eval(dataset, reranker=my_reranker, first_stage="hybrid", dense_model="path/to/minilm")
report.first_stage_sources["bm25"]["ndcg@10"], report.first_stage_sources["dense"]["ndcg@10"]
report.first_stage["ndcg@10"]  # the hybrid (fused) first stage, the candidates that were reranked
```

``reranker`` is anything with ``rerank_many(queries, candidate_texts) -> [response, ...]`` whose responses
hold ``results`` (best first) with ``index`` = the candidate's position in that query's list: a
:class:`rerank_core.Reranker`, or a test double. Every metric dict has the keys ``ndcg@10``, ``mrr@10``
and ``recall@{top_k}``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rerank_core._validation import check_positive_int
from rerank_core.errors import ConfigurationError
from rerank_core.eval.beir import BeirDataset, corpus_texts
from rerank_core.eval.bm25 import BM25Retriever
from rerank_core.eval.calibration import calibration_summary
from rerank_core.eval.hybrid import describe_hybrid_fusion, fuse_first_stages, hybrid_fusion_config
from rerank_core.eval.metrics import evaluate
from rerank_core.fusion import RetrieverFusionConfig

__all__ = [
    "FIRST_STAGES",
    "EvalReport",
    "SupportsRerankMany",
    "format_table",
    "metric_keys",
    "rerank_run",
    "retrieve_run",
    "run_eval",
    "tune_report_fusion",
    "tuning_record",
]

NDCG_MRR_K = 10
FIRST_STAGES = ("bm25", "dense", "hybrid")
"""What :func:`run_eval` can retrieve with: BM25, the dense bi-encoder, or both fused (``hybrid``)."""


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
    first_stage_name: str = "bm25"
    first_stage_sources: dict[str, dict[str, float]] | None = None
    source_runs: dict[str, dict[str, list[str]]] | None = field(default=None, repr=False)
    first_stage_scores: dict[str, list[float]] = field(default_factory=dict, repr=False)
    rerank_scores: dict[str, list[float]] | None = field(default=None, repr=False)
    calibrated_scores: dict[str, list[float]] | None = field(default=None, repr=False)
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``first_stage``, ``reranked`` (``None`` without a model), ``queries``, ``seconds``, context.

        ``first_stage`` is the stage that was reranked (for ``hybrid``, the fused one);
        ``first_stage_sources`` has each source of a hybrid first stage (``bm25``, ``dense``), cut to the
        same depth, and is ``None`` otherwise."""
        return {
            "first_stage": dict(self.first_stage),
            "first_stage_name": self.first_stage_name,
            "first_stage_sources": None
            if self.first_stage_sources is None
            else {name: dict(values) for name, values in self.first_stage_sources.items()},
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
            "calibration": None if self.calibration is None else dict(self.calibration),
        }


_FIRST_STAGE_LABELS = {"bm25": "BM25", "dense": "dense", "hybrid": "hybrid"}


def format_table(report: EvalReport) -> str:
    """``report`` as the text table ``rerank eval`` prints: a header line, one row of metrics per stage
    (each source of a hybrid first stage, the first stage, reranked, fused), and the timings."""
    keys = list(report.first_stage)
    rows = [
        (f"first stage: {_FIRST_STAGE_LABELS.get(name, name)}", values)
        for name, values in (report.first_stage_sources or {}).items()
    ]
    stage = _FIRST_STAGE_LABELS.get(report.first_stage_name, report.first_stage_name)
    if report.first_stage_name == "hybrid":
        stage += f" ({report.first_stage_config.get('hybrid_fusion', '')})"
    rows.append((f"first stage: {stage}", report.first_stage))
    if report.reranked is not None:
        rows.append(("reranked", report.reranked))
    if report.fused is not None:
        rows.append((f"fused ({report.fusion})", report.fused))
    label_w = max(len(label) for label, _ in rows)
    col_w = max(10, *(len(k) for k in keys))
    lines = [
        f"{report.dataset} ({report.split}): {report.queries} queries, {report.corpus_size} documents, "
        f"{_FIRST_STAGE_LABELS.get(report.first_stage_name, report.first_stage_name)} top-{report.top_k}"
        + (f", reranked by {report.model}" if report.model else ""),
        f"{'':<{label_w}}  " + "  ".join(f"{k:>{col_w}}" for k in keys),
    ]
    for label, values in rows:
        lines.append(f"{label:<{label_w}}  " + "  ".join(f"{values[k]:>{col_w}.4f}" for k in keys))
    parts = ", ".join(f"{name} {secs:.1f}" for name, secs in report.timings.items())
    lines.append(f"time: {report.seconds:.1f} s ({parts})")
    return "\n".join(lines)


def retrieve_run(
    retriever: Any, queries: Mapping[str, str], top_k: int
) -> dict[str, list[tuple[str, float]]]:
    """Top ``top_k`` ``(doc_id, score)`` per query id, best first; ``retriever`` is anything with
    ``retrieve(queries, k)`` (:class:`BM25Retriever`, :class:`rerank_core.eval.DenseRetriever`)."""
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
    raw_scores: dict[str, list[float]] | None = None,
    calibrated_scores: dict[str, list[float]] | None = None,
) -> tuple[dict[str, list[str]], dict[str, list[str]] | None]:
    """Rerank each query's candidate doc ids; returns the new order (best first) per query id.

    Queries go to ``reranker.rerank_many`` ``chunk_size`` at a time, under a tqdm bar on stderr. A query
    without candidates is not sent and keeps an empty ranking. With ``first_stage_scores`` (for a
    reranker with a fusion) they are passed on; the first returned run is then the fused order, and the
    second the order by the reranker's own raw score. Without, the second is ``None``. A ``raw_scores``
    dict is filled with each query's raw reranker scores in candidate (first-stage) order, and a
    ``calibrated_scores`` dict with its calibrated scores (``rerank_score``: after a calibration or
    normalization, before any fusion), in the same order.
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
                if raw_scores is not None:
                    by_position = [float("nan")] * len(ids)
                    for result in response.results:
                        by_position[result.index] = float(result.raw_score)
                    raw_scores[qid] = by_position
                if calibrated_scores is not None:
                    calibrated = [float("nan")] * len(ids)
                    for result in response.results:
                        score = result.rerank_score  # None from a reranker that only ranks
                        calibrated[result.index] = float(result.relevance_score if score is None else score)
                    calibrated_scores[qid] = calibrated
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
    first_stage: str = "bm25",
    dense_model: Any = None,
    dense_kwargs: Mapping[str, Any] | None = None,
    hybrid_fusion: str | RetrieverFusionConfig = "rrf",
    hybrid_depth: int | None = None,
) -> EvalReport:
    """A first stage's top-``top_k`` over ``dataset``, optionally reranked, with metrics for every stage.

    ``first_stage``: ``"bm25"`` (default), ``"dense"`` (``dense_model``'s cosine top-``top_k``) or
    ``"hybrid"``: BM25 and dense top-``hybrid_depth`` (default ``top_k``) fused by ``hybrid_fusion``
    (``"rrf"``, ``"rrf:W"``, ``"zscore:W"``, ``"minmax:W"`` with W the dense share, see
    :mod:`rerank_core.eval.hybrid`) and cut to ``top_k``. A hybrid report also has each source's own
    top-``top_k`` metrics in ``first_stage_sources`` (and runs in ``source_runs``), so BM25, dense and the
    fused first stage can be read side by side; ``first_stage`` is always the stage that gets reranked.

    ``dense_model``: a bi-encoder path or Hugging Face id, a ``SentenceTransformer``, or a built
    :class:`rerank_core.eval.DenseRetriever` over ``dataset.corpus`` (reused as is); ``dense_kwargs`` go to
    ``DenseRetriever`` when one is built (``cache_dir``, ``device``, ``batch_size``).

    With a reranker that has a ``fusion``, the first stage's scores (BM25, cosine, or the hybrid fused score)
    are passed as first-stage scores and the report has both the reranker's own order (``reranked``) and
    the fused one (``fused``), from one scoring pass. ``max_queries`` keeps the first N queries (file
    order). ``retriever`` reuses a built BM25 index (it must cover ``dataset.corpus``); otherwise one is
    built with ``bm25_kwargs``. ``model`` only labels the report.
    """
    check_positive_int(top_k, "top_k")
    if max_queries is not None:
        check_positive_int(max_queries, "max_queries")
    if first_stage not in FIRST_STAGES:
        raise ConfigurationError(
            "first_stage", f"must be one of {', '.join(FIRST_STAGES)}, got {first_stage!r}"
        )
    uses_dense = first_stage != "bm25"
    if uses_dense and dense_model is None:
        raise ConfigurationError(
            "dense_model", f"first_stage={first_stage!r} needs a bi-encoder (a path, an id or a model)"
        )
    depth = top_k
    fusion_config: RetrieverFusionConfig | None = None
    if first_stage == "hybrid":
        if hybrid_depth is not None:
            depth = check_positive_int(hybrid_depth, "hybrid_depth")
        fusion_config = hybrid_fusion_config(hybrid_fusion, top_k=top_k)
        if fusion_config.top_k != top_k:  # a given config: the fused list is cut to the evaluated depth
            fusion_config = dataclasses.replace(fusion_config, top_k=top_k)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    qids = list(dataset.queries)[:max_queries]
    queries = {qid: dataset.queries[qid] for qid in qids}
    texts = corpus_texts(dataset)

    source_hits: dict[str, dict[str, list[tuple[str, float]]]] = {}
    config: dict[str, Any] = {"first_stage": first_stage}
    if first_stage != "dense":
        if retriever is None:
            t = time.perf_counter()
            retriever = BM25Retriever(list(texts), list(texts.values()), **dict(bm25_kwargs or {}))
            timings["index"] = time.perf_counter() - t
        t = time.perf_counter()
        source_hits["bm25"] = retrieve_run(retriever, queries, depth)
        timings["retrieve"] = time.perf_counter() - t
        config.update(retriever="bm25s", method=retriever.method, k1=retriever.k1, b=retriever.b)
    if uses_dense:
        if hasattr(dense_model, "retrieve"):  # a built retriever over this corpus
            dense = dense_model
        else:
            t = time.perf_counter()
            dense = _build_dense(dense_model, texts, dense_kwargs, progress)
            timings["dense_index"] = time.perf_counter() - t
        t = time.perf_counter()
        source_hits["dense"] = retrieve_run(dense, queries, depth)
        timings["dense_retrieve"] = time.perf_counter() - t
        config["dense_model"] = dense_model if isinstance(dense_model, str) else type(dense_model).__name__
        if getattr(dense, "cache_file", None) is not None:
            config["dense_cache"] = "hit" if dense.cache_hit else "written"

    sources_metrics: dict[str, dict[str, float]] | None = None
    source_runs: dict[str, dict[str, list[str]]] | None = None
    if fusion_config is None:
        hits = source_hits[first_stage]
    else:
        t = time.perf_counter()
        hits = fuse_first_stages(source_hits["bm25"], source_hits["dense"], fusion_config)
        timings["fuse"] = time.perf_counter() - t
        source_runs = {
            name: {qid: [doc_id for doc_id, _ in h[:top_k]] for qid, h in per_query.items()}
            for name, per_query in source_hits.items()
        }
        sources_metrics = {name: _stage_metrics(r, dataset.qrels, top_k) for name, r in source_runs.items()}
        config.update(hybrid_fusion=describe_hybrid_fusion(fusion_config), hybrid_depth=depth)
    first_run = {qid: [doc_id for doc_id, _ in h] for qid, h in hits.items()}
    first_metrics = _stage_metrics(first_run, dataset.qrels, top_k)

    all_first_scores = {qid: [float(score) for _, score in h] for qid, h in hits.items()}
    rerank_scores: dict[str, list[float]] | None = None
    calibrated_scores = None
    reranked_run: dict[str, list[str]] | None = None
    reranked_metrics: dict[str, float] | None = None
    fusion = getattr(reranker, "fusion", None)
    fused_run: dict[str, list[str]] | None = None
    if reranker is not None:
        t = time.perf_counter()
        first_scores = all_first_scores if fusion else None
        rerank_scores = {}
        calibrated_scores: dict[str, list[float]] | None = {}
        reranked_run, raw_run = rerank_run(
            reranker,
            queries,
            first_run,
            texts,
            chunk_size=chunk_size,
            progress=progress,
            first_stage_scores=first_scores,
            raw_scores=rerank_scores,
            calibrated_scores=calibrated_scores,
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
        first_stage_config=config,
        timings=timings,
        first_stage_run=first_run,
        reranked_run=reranked_run,
        fusion=fusion.describe() if fusion is not None else None,
        fused=None if fused_run is None else _stage_metrics(fused_run, dataset.qrels, top_k),
        fused_run=fused_run,
        first_stage_name=first_stage,
        first_stage_sources=sources_metrics,
        source_runs=source_runs,
        first_stage_scores=all_first_scores,
        rerank_scores=rerank_scores,
        calibrated_scores=calibrated_scores if reranker is not None else None,
        calibration=None
        if reranker is None
        else calibration_summary(reranker, calibrated_scores, first_run, dataset.qrels),
    )


def tune_report_fusion(report: EvalReport, qrels: Mapping[str, Mapping[str, int]]) -> Any:
    """The fusion of the reranker's raw score with the first-stage score that maximises nDCG@10 over
    ``report``'s judged queries (:func:`rerank_core.eval.fusion_tuning.tune_fusion` on its candidates),
    e.g. a dev split's report, to apply on the test split of the same collection. Returns a
    :class:`~rerank_core.eval.fusion_tuning.FusionFit`."""
    from rerank_core.eval.fusion_tuning import tune_fusion

    if report.rerank_scores is None:
        raise ConfigurationError("report", "has no reranker scores: run run_eval with a reranker")
    qids = [q for q, ids in report.first_stage_run.items() if ids and q in report.rerank_scores]
    return tune_fusion(
        {q: report.first_stage_run[q] for q in qids},
        {q: report.first_stage_scores[q] for q in qids},
        {q: report.rerank_scores[q] for q in qids},
        qrels,
    )


def tuning_record(fit: Any, report: EvalReport, split: str) -> dict[str, Any]:
    """The ``fusion_tuning`` record of ``rerank eval --json``: where ``fit`` (from
    :func:`tune_report_fusion` on ``report``) was tuned, the fusion, and nDCG@10 there (fused, reranked
    alone, first stage alone), with the whole grid."""
    return {
        "split": split,
        "queries": report.queries,
        "fusion": fit.fusion.describe(),
        "ndcg@10": round(fit.ndcg, 4),
        "rerank_only_ndcg@10": round(fit.rerank_only, 4),
        "first_stage_ndcg@10": round(fit.first_stage_only, 4),
        "table": fit.named_table(),
    }


def _build_dense(
    dense_model: Any, texts: Mapping[str, str], dense_kwargs: Mapping[str, Any] | None, progress: bool
) -> Any:
    """A ``DenseRetriever`` over ``texts`` with ``dense_model`` (embedding the corpus, or loading it from
    ``dense_kwargs["cache_dir"]``); imported here so that a BM25-only evaluation never needs torch."""
    from rerank_core.eval.dense import DenseRetriever

    kwargs = {"show_progress": progress, **dict(dense_kwargs or {})}
    return DenseRetriever(list(texts), list(texts.values()), model=dense_model, **kwargs)

"""Evaluation basics: BEIR loading, BM25 / dense / hybrid first stages, ranking metrics and a first-stage +
rerank runner.

``bm25s`` and ``PyStemmer`` (the ``eval`` extra) are imported only when a :class:`BM25Retriever` is built.
"""

from rerank_core.eval.beir import BeirDataset, Doc, available_splits, corpus_texts, doc_text, load_beir
from rerank_core.eval.bm25 import BM25Retriever
from rerank_core.eval.dense import DenseRetriever
from rerank_core.eval.hybrid import HYBRID_SOURCES, fuse_first_stages, hybrid_fusion_config
from rerank_core.eval.metrics import evaluate, mrr_at_k, ndcg_at_k, per_query, recall_at_k
from rerank_core.eval.run import FIRST_STAGES, EvalReport, metric_keys, run_eval, tune_report_fusion

__all__ = [
    "FIRST_STAGES",
    "HYBRID_SOURCES",
    "BM25Retriever",
    "BeirDataset",
    "DenseRetriever",
    "Doc",
    "EvalReport",
    "available_splits",
    "corpus_texts",
    "doc_text",
    "evaluate",
    "fuse_first_stages",
    "hybrid_fusion_config",
    "load_beir",
    "metric_keys",
    "mrr_at_k",
    "ndcg_at_k",
    "per_query",
    "recall_at_k",
    "run_eval",
    "tune_report_fusion",
]

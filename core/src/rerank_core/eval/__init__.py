"""Evaluation basics: BEIR loading, a BM25 first stage, ranking metrics and a first-stage + rerank runner.

``bm25s`` and ``PyStemmer`` (the ``eval`` extra) are imported only when a :class:`BM25Retriever` is built.
"""

from rerank_core.eval.beir import BeirDataset, Doc, available_splits, corpus_texts, doc_text, load_beir
from rerank_core.eval.bm25 import BM25Retriever
from rerank_core.eval.dense import DenseRetriever
from rerank_core.eval.metrics import evaluate, mrr_at_k, ndcg_at_k, per_query, recall_at_k
from rerank_core.eval.run import EvalReport, metric_keys, run_eval

__all__ = [
    "BM25Retriever",
    "BeirDataset",
    "DenseRetriever",
    "Doc",
    "EvalReport",
    "available_splits",
    "corpus_texts",
    "doc_text",
    "evaluate",
    "load_beir",
    "metric_keys",
    "mrr_at_k",
    "ndcg_at_k",
    "per_query",
    "recall_at_k",
    "run_eval",
]

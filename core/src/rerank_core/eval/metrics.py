"""Ranking metrics: nDCG@k, MRR@k and Recall@k, computed the way pytrec_eval / BEIR compute them.

Pure Python; nothing to install. A *run* maps a query id to its ranked document ids (best first); *qrels*
map a query id to ``{doc_id: graded relevance}``.

Conventions (and where they come from):

- **nDCG@k** (``trec_eval``'s ``ndcg_cut``, as reported by BEIR): linear gain ``rel`` (not ``2**rel - 1``),
  discount ``log2(rank + 1)`` with ranks starting at 1, ``DCG@k / IDCG@k`` where the ideal ranking is built
  from *every* judged document of the query with ``rel > 0``, not only from the retrieved ones. Negative
  grades count as 0.
- **MRR@k**: ``1 / rank`` of the first document with ``rel >= 1`` in the top ``k``, 0 if there is none.
- **Recall@k**: relevant documents (``rel >= 1``) in the top ``k`` divided by all relevant documents of the
  query.
- **Which queries are averaged**: every query of the run that has at least one relevant judgment. A query
  without any relevant judgment (no qrels at all, or only ``rel <= 0``) is skipped: no ranking can score on
  it, so counting it as 0 would only shift every system down. This is what BEIR does by loading only the
  queries that have qrels (and the shared SciFact / NFCorpus test qrels hold no all-zero query, so the
  numbers equal pytrec_eval's). A query that has relevant judgments but is missing from the run is *not*
  invented: pass it with an empty list if it should count as 0.
- **k larger than the ranking**: the ranking is used as it is (missing ranks earn nothing); the ideal still
  uses up to ``k`` relevant documents.
- **Duplicates in a ranking**: only the first occurrence of a document id earns gain; a repeat keeps its
  rank but earns nothing, so a duplicated relevant document can never raise a score (``trec_eval``
  refuses such runs outright).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from rerank_core._validation import check_positive_int

__all__ = [
    "DEFAULT_K_VALUES",
    "evaluate",
    "mrr_at_k",
    "ndcg_at_k",
    "per_query",
    "recall_at_k",
]

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[str]]

DEFAULT_K_VALUES: tuple[int, ...] = (10, 100)

_METRICS = ("ndcg", "mrr", "recall")  # key order of evaluate()


def _check_k(k: int) -> None:
    check_positive_int(k, "k")


def _first_occurrences(ranking: Sequence[str], k: int) -> Iterable[tuple[int, str]]:
    """(rank starting at 1, doc id) of the top ``k``, repeats of an id left out (they keep their rank)."""
    seen: set[str] = set()
    for rank, doc_id in enumerate(ranking[:k], start=1):
        if doc_id in seen:
            continue
        seen.add(doc_id)
        yield rank, doc_id


def ndcg_at_k(ranking: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranking (linear gain, log2 discount, ideal from all judged relevant documents).

    Returns 0.0 for a query without relevant judgments (callers that average skip such queries).
    """
    _check_k(k)
    ideal_gains = sorted((rel for rel in judgments.values() if rel > 0), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(ideal_gains, start=1))
    if idcg == 0:
        return 0.0
    dcg = 0.0
    for rank, doc_id in _first_occurrences(ranking, k):
        rel = judgments.get(doc_id, 0)
        if rel > 0:
            dcg += rel / math.log2(rank + 1)
    return dcg / idcg


def mrr_at_k(ranking: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant (``rel >= 1``) document in the top ``k``, else 0."""
    _check_k(k)
    for rank, doc_id in _first_occurrences(ranking, k):
        if judgments.get(doc_id, 0) >= 1:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranking: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    """Share of the query's relevant (``rel >= 1``) documents found in the top ``k`` (0.0 if it has none)."""
    _check_k(k)
    relevant = {doc_id for doc_id, rel in judgments.items() if rel >= 1}
    if not relevant:
        return 0.0
    found = sum(1 for _, doc_id in _first_occurrences(ranking, k) if doc_id in relevant)
    return found / len(relevant)


_FUNCTIONS = {"ndcg": ndcg_at_k, "mrr": mrr_at_k, "recall": recall_at_k}


def _has_relevant(judgments: Mapping[str, int] | None) -> bool:
    return bool(judgments) and any(rel >= 1 for rel in judgments.values())  # type: ignore[union-attr]


def per_query(
    run: Run, qrels: Qrels, k_values: Iterable[int] = DEFAULT_K_VALUES
) -> dict[str, dict[str, float]]:
    """Per-query values, ``{qid: {"ndcg@10": ..., ...}}``, of the queries :func:`evaluate` averages."""
    ks = sorted(set(k_values))
    if not ks:
        raise ValueError("k_values: give at least one cutoff")
    for k in ks:
        _check_k(k)
    out: dict[str, dict[str, float]] = {}
    for qid, ranking in run.items():
        judgments = qrels.get(qid)
        if judgments is None or not _has_relevant(judgments):
            continue
        if isinstance(ranking, str):
            raise ValueError(f"run: the ranking of query {qid!r} must be a sequence of doc ids, not a string")
        out[qid] = {f"{name}@{k}": _FUNCTIONS[name](ranking, judgments, k) for name in _METRICS for k in ks}
    return out


def evaluate(run: Run, qrels: Qrels, k_values: Iterable[int] = DEFAULT_K_VALUES) -> dict[str, float]:
    """Mean nDCG@k, MRR@k and Recall@k over the run's queries that have relevant judgments.

    Keys are ``"ndcg@10"``, ``"mrr@10"``, ``"recall@100"``, ... (metric first, then each k in ascending
    order). All values are 0.0 when no query of the run can be evaluated.
    """
    ks = sorted(set(k_values))
    scores = per_query(run, qrels, ks)
    keys = [f"{name}@{k}" for name in _METRICS for k in ks]
    if not scores:
        return dict.fromkeys(keys, 0.0)
    n = len(scores)
    return {key: sum(values[key] for values in scores.values()) / n for key in keys}

"""Training and dev data for fine-tuning: query groups with hard negatives, and dev rerank sets.

A :class:`TrainingGroup` is one query, one positive and its negatives; the loss asks the model to put the
positive first within its group. Groups come from a BEIR folder (positives from the qrels, negatives mined
with the first stage the user will run, judged positives excluded) or from rows of (query, text, label).

Nothing here imports torch: mining needs a retriever (BM25 from the ``eval`` extra, or a dense one).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rerank_core._validation import check_positive_int
from rerank_core.errors import InvalidInputError
from rerank_core.eval.beir import BeirDataset, _lines, corpus_texts

__all__ = [
    "DevSet",
    "Retriever",
    "TrainingGroup",
    "add_bi_encoder_teacher",
    "add_teacher_scores",
    "dev_set_from_beir",
    "folder_training_data",
    "groups_from_beir",
    "groups_from_rows",
    "read_rows",
    "split_queries",
]


class Retriever(Protocol):
    """A first stage: top ``k`` ``(doc_id, score)`` per query, best first (BM25Retriever, DenseRetriever)."""

    def retrieve(self, queries: Sequence[str], k: int = 100) -> list[list[tuple[str, float]]]: ...


@dataclass(frozen=True)
class TrainingGroup:
    """One query with one positive text and the negatives it must outrank.

    ``teacher_scores``: optional scores of a teacher (another model) for the positive and each negative, in
    that order; :func:`~rerank_core.train.finetune` then also distils the teacher's order within the group
    (see :func:`add_teacher_scores`)."""

    query: str
    positive: str
    negatives: tuple[str, ...]
    source: str = "default"
    teacher_scores: tuple[float, ...] | None = None


def add_teacher_scores(
    groups: Sequence[TrainingGroup], score: Callable[[str, Sequence[str]], Sequence[float]]
) -> list[TrainingGroup]:
    """Copies of ``groups`` with ``teacher_scores`` from ``score(query, [positive, *negatives])``: any
    scorer (a bigger cross-encoder's ``predict``, a bi-encoder's cosine, an LLM judge). The teacher's
    relative scores within a group become soft targets; the judged positive stays the hard target."""
    out = []
    for i, group in enumerate(groups):
        texts = [group.positive, *group.negatives]
        values = [float(v) for v in score(group.query, texts)]
        if len(values) != len(texts):
            raise InvalidInputError(
                "score", f"returned {len(values)} scores for the {len(texts)} texts of group {i}"
            )
        if not all(math.isfinite(v) for v in values):
            raise InvalidInputError("score", f"returned a non-finite score for group {i}: {values}")
        out.append(dataclasses.replace(group, teacher_scores=tuple(values)))
    return out


@dataclass
class DevSet:
    """A dev rerank task: first-stage candidates per query and graded qrels, scored by nDCG@10.

    ``first_stage`` holds the first stage's own metrics; ``candidate_scores`` its score of each candidate
    (used to tune the fusion of first-stage and reranker scores).
    """

    name: str
    queries: dict[str, str]
    candidates: dict[str, list[str]]
    texts: dict[str, str]
    qrels: dict[str, dict[str, int]]
    first_stage: dict[str, float] = field(default_factory=dict)
    candidate_scores: dict[str, list[float]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"DevSet(name={self.name!r}, queries={len(self.queries)})"


def add_bi_encoder_teacher(
    groups: Sequence[TrainingGroup],
    model: object,
    *,
    corpus: Mapping[str, str] | None = None,
    batch_size: int = 64,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
) -> list[TrainingGroup]:
    """:func:`add_teacher_scores` with a sentence-transformers bi-encoder (a path, an id or a loaded model)
    as the teacher: its cosine of the query with every text of each group.

    Without ``corpus`` every distinct text of the groups is embedded once. With ``corpus`` (id -> text, e.g.
    :func:`~rerank_core.eval.corpus_texts` of the collection the groups were mined from) the whole corpus is
    embedded instead and each group text is looked up in it: with ``cache_dir`` those embeddings are the
    ones a dense first stage over the same corpus keeps (:class:`~rerank_core.eval.DenseRetriever`), so they
    are computed once across runs however the groups are sampled."""
    from rerank_core.eval.dense import DenseRetriever

    if corpus is None:
        texts = list(dict.fromkeys(t for g in groups for t in (g.positive, *g.negatives)))
        corpus = {str(i): text for i, text in enumerate(texts)}
    id_of = {text: doc_id for doc_id, text in corpus.items()}
    missing = [t for g in groups for t in (g.positive, *g.negatives) if t not in id_of]
    if missing:
        raise InvalidInputError(
            "corpus", f"{len(missing)} group texts are not in it, e.g. {missing[0][:80]!r}"
        )
    dense = DenseRetriever(
        list(corpus),
        list(corpus.values()),
        model=model,
        batch_size=batch_size,
        device=device,
        cache_dir=cache_dir,
        show_progress=show_progress,
    )
    return add_teacher_scores(groups, lambda query, batch: dense.score(query, [id_of[t] for t in batch]))


def split_queries(
    qids: Sequence[str], fraction: float, *, seed: int, max_dev: int | None = None
) -> tuple[list[str], list[str]]:
    """Hold out a seeded ``fraction`` of ``qids`` (at most ``max_dev``) as dev; returns (train, dev)."""
    if not 0.0 < fraction < 1.0:
        raise InvalidInputError("dev_fraction", f"must be between 0 and 1 (exclusive), got {fraction!r}")
    order = list(qids)
    random.Random(seed).shuffle(order)
    n_dev = max(1, round(len(order) * fraction))
    if max_dev is not None:
        n_dev = min(n_dev, max_dev)
    dev = set(order[:n_dev])
    return [q for q in qids if q not in dev], [q for q in qids if q in dev]


def groups_from_beir(
    dataset: BeirDataset,
    retriever: Retriever,
    *,
    qids: Sequence[str] | None = None,
    negatives_per_query: int = 7,
    depth: int = 30,
    min_relevance: int = 1,
    max_positives_per_query: int = 2,
    seed: int = 12,
    source: str | None = None,
    texts: Mapping[str, str] | None = None,
) -> list[TrainingGroup]:
    """Groups from ``dataset``'s qrels with negatives mined by ``retriever``.

    Positives: documents judged ``>= min_relevance`` (highest grade first, at most
    ``max_positives_per_query``, each in its own group). Negatives: a seeded sample of
    ``negatives_per_query`` from the retriever's top ``depth`` that are not judged relevant (documents
    judged below ``min_relevance`` stay eligible: they are known negatives); topped up at random from the
    rest of the corpus when the first stage finds too few. Queries without a positive are skipped.
    """
    check_positive_int(negatives_per_query, "negatives_per_query")
    check_positive_int(depth, "depth")
    check_positive_int(max_positives_per_query, "max_positives_per_query")
    rng = random.Random(seed)
    texts = dict(texts) if texts is not None else corpus_texts(dataset)
    all_ids = list(texts)
    wanted = list(qids) if qids is not None else list(dataset.queries)
    wanted = [q for q in wanted if any(r >= min_relevance for r in dataset.qrels.get(q, {}).values())]
    if not wanted:
        return []
    hits = retriever.retrieve([dataset.queries[q] for q in wanted], k=depth)
    groups: list[TrainingGroup] = []
    name = source or dataset.name
    for qid, ranked in zip(wanted, hits, strict=True):
        judged = dataset.qrels[qid]
        relevant = {d for d, r in judged.items() if r >= min_relevance and d in texts}
        if not relevant:
            continue
        # Highest grade first; ties in a seeded random order so that no file order leaks in.
        # Sorted before the random keys are drawn: a set of strings iterates in an order that changes with
        # PYTHONHASHSEED, and the same seed must give the same groups in every process.
        positives = sorted(sorted(relevant), key=lambda d: (-judged[d], rng.random()))[
            :max_positives_per_query
        ]
        mined = [d for d, _ in ranked if d not in relevant and d in texts]
        for pos in positives:
            negs = rng.sample(mined, min(negatives_per_query, len(mined)))
            while len(negs) < negatives_per_query and len(negs) + len(relevant) < len(all_ids):
                extra = rng.choice(all_ids)
                if extra not in relevant and extra not in negs:
                    negs.append(extra)
            groups.append(
                TrainingGroup(
                    query=dataset.queries[qid],
                    positive=texts[pos],
                    negatives=tuple(texts[d] for d in negs),
                    source=name,
                )
            )
    return groups


def read_rows(path: str | Path) -> list[tuple[str, str, float]]:
    """Read (query, text, label) rows from a ``.tsv``/``.csv`` (header optional) or ``.jsonl`` file.

    JSONL lines need ``query``, ``text`` and ``label`` keys; TSV/CSV files have three columns in that
    order. ``.gz`` is accepted. Errors name the file and line.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise InvalidInputError("rows", f"{file} is not a file")
    kind = file.name.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    rows: list[tuple[str, str, float]] = []
    if kind == "jsonl":
        for lineno, line in _lines(file, "rows"):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                rows.append((str(record["query"]), str(record["text"]), float(record["label"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidInputError(
                    "rows", f"{file}:{lineno}: expected a JSON object with query, text, label ({exc})"
                ) from None
            if not math.isfinite(rows[-1][2]):
                raise InvalidInputError("rows", f"{file}:{lineno}: label {record['label']!r} is not finite")
    elif kind in ("tsv", "csv"):
        reader = csv.reader(
            (line for _, line in _lines(file, "rows")), delimiter="\t" if kind == "tsv" else ","
        )
        for parts in reader:
            lineno = reader.line_num
            if not parts:
                continue
            if len(parts) != 3:
                raise InvalidInputError(
                    "rows", f"{file}:{lineno}: expected 3 columns (query, text, label), got {len(parts)}"
                )
            try:
                label = float(parts[2])
            except ValueError:
                if lineno == 1:
                    continue  # header
                raise InvalidInputError(
                    "rows", f"{file}:{lineno}: label {parts[2]!r} is not a number"
                ) from None
            if not math.isfinite(label):
                raise InvalidInputError("rows", f"{file}:{lineno}: label {parts[2]!r} is not finite")
            rows.append((parts[0], parts[1], label))
    else:
        raise InvalidInputError("rows", f"{file}: expected a .tsv, .csv or .jsonl file")
    if not rows:
        raise InvalidInputError("rows", f"{file} has no rows")
    return rows


def groups_from_rows(
    rows: Iterable[tuple[str, str, float]],
    *,
    negatives_per_query: int = 7,
    max_positives_per_query: int = 2,
    seed: int = 12,
    source: str = "rows",
) -> list[TrainingGroup]:
    """Groups from labelled rows: label > 0 is a positive, label <= 0 a negative, grouped by query text.

    A query needs at least one positive and one negative; each of its (at most
    ``max_positives_per_query``, highest label first) positives gets a seeded sample of up to
    ``negatives_per_query`` of its negatives. Duplicate rows are counted once.
    """
    check_positive_int(negatives_per_query, "negatives_per_query")
    check_positive_int(max_positives_per_query, "max_positives_per_query")
    rng = random.Random(seed)
    by_query: dict[str, dict[str, float]] = {}
    for i, row in enumerate(rows):
        try:
            query, text, label = row
        except (TypeError, ValueError):
            raise InvalidInputError(f"rows[{i}]", "must be a (query, text, label) triple") from None
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(f"rows[{i}]", "query must be a non-empty string")
        if not isinstance(text, str):
            raise InvalidInputError(f"rows[{i}]", f"text must be a string, got {type(text).__name__}")
        by_query.setdefault(query, {})[text] = max(float(label), by_query.get(query, {}).get(text, -1e30))
    groups: list[TrainingGroup] = []
    for query, labelled in by_query.items():
        positives = [t for t, lab in labelled.items() if lab > 0]
        negatives = [t for t, lab in labelled.items() if lab <= 0]
        if not positives or not negatives:
            continue
        positives.sort(key=lambda t: (-labelled[t], rng.random()))
        for pos in positives[:max_positives_per_query]:
            negs = rng.sample(negatives, min(negatives_per_query, len(negatives)))
            groups.append(TrainingGroup(query=query, positive=pos, negatives=tuple(negs), source=source))
    return groups


def dev_set_from_beir(
    dataset: BeirDataset,
    retriever: Retriever,
    *,
    qids: Sequence[str] | None = None,
    top_k: int = 20,
    max_queries: int | None = None,
    name: str | None = None,
    texts: Mapping[str, str] | None = None,
) -> DevSet:
    """First-stage top ``top_k`` for (the first ``max_queries`` of) ``qids``, with first-stage metrics."""
    from rerank_core.eval.metrics import evaluate

    check_positive_int(top_k, "top_k")
    texts = dict(texts) if texts is not None else corpus_texts(dataset)
    chosen = [q for q in (qids if qids is not None else dataset.queries) if dataset.qrels.get(q)]
    if max_queries is not None:
        chosen = chosen[:max_queries]
    if not chosen:
        raise InvalidInputError("dev", f"{dataset.name}: no judged dev queries")
    queries = {q: dataset.queries[q] for q in chosen}
    hits = retriever.retrieve(list(queries.values()), k=top_k)
    candidates = {q: [d for d, _ in h] for q, h in zip(queries, hits, strict=True)}
    candidate_scores = {q: [float(s) for _, s in h] for q, h in zip(queries, hits, strict=True)}
    qrels = {q: dataset.qrels[q] for q in chosen}
    used = {d for ids in candidates.values() for d in ids}
    return DevSet(
        name=name or f"{dataset.name}-{dataset.split}",
        queries=queries,
        candidates=candidates,
        texts={d: texts[d] for d in used},
        qrels=qrels,
        first_stage=evaluate(candidates, qrels, k_values=(10,)),
        candidate_scores=candidate_scores,
    )


def folder_training_data(
    data_dir: str | Path,
    *,
    first_stage: str = "bm25",
    train_split: str = "train",
    dev_split: str = "dev",
    dev_fraction: float = 0.1,
    negatives: int = 7,
    mining_depth: int = 30,
    max_positives: int | None = 2,
    dev_top_k: int = 20,
    max_dev_queries: int | None = 200,
    seed: int = 0,
) -> tuple[list[TrainingGroup], DevSet, str]:
    """One BEIR folder's training groups (mined from ``train_split`` with the ``first_stage`` the user will
    run: ``"bm25"`` or a bi-encoder path or id), its dev set (the ``dev_split`` when the folder has one,
    else ``dev_fraction`` of the train queries held out), and a one-line description of both; what
    ``rerank finetune DATA_DIR`` trains on."""
    from rerank_core.eval.beir import available_splits, load_beir
    from rerank_core.eval.loading import first_stage_retriever

    train = load_beir(data_dir, split=train_split)
    texts = corpus_texts(train)
    retriever = first_stage_retriever(first_stage, list(texts), list(texts.values()))
    qids = list(train.queries)
    dev_qids: list[str] | None
    if dev_split in available_splits(data_dir):
        dev_data, dev_qids, how = load_beir(data_dir, split=dev_split), None, f"{dev_split} split"
    else:
        qids, dev_qids = split_queries(qids, dev_fraction, seed=seed)
        dev_data, how = train, f"{len(dev_qids)} held-out {train_split} queries"
    groups = groups_from_beir(
        train,
        retriever,
        qids=qids,
        negatives_per_query=negatives,
        depth=mining_depth,
        max_positives_per_query=max_positives,
        seed=seed,
        texts=texts,
    )
    dev = dev_set_from_beir(
        dev_data,
        retriever,
        qids=dev_qids,
        top_k=dev_top_k,
        max_queries=max_dev_queries,
        texts=texts,
        name=f"{train.name}-dev",
    )
    return groups, dev, f"{train.name}: {len(groups)} groups from {train_split}, dev = {how}"

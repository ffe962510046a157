"""BEIR loading and the BM25 first stage: synthetic folders for behaviour, the shared data for quality."""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

import pytest
from conftest import shared_path

from rerank_core.errors import InvalidInputError, MissingDependencyError
from rerank_core.eval import BM25Retriever, Doc, available_splits, doc_text, evaluate, load_beir

DOCS = [
    {"_id": "d1", "title": "Zebra", "text": "zebra stripes are black and white", "metadata": {}},
    {"_id": "d2", "title": "Lion", "text": "the lion mane is golden"},
    {"_id": "d3", "title": "", "text": "penguins live in antarctica"},
    {"_id": "d4", "title": "Stripes", "text": "stripes appear on many animals like tigers"},
]


def write_beir(root: Path, *, gz: bool = False) -> Path:
    """A tiny BEIR folder: queries.jsonl (test) + queries-train.jsonl, qrels for test and train."""
    root.mkdir(parents=True, exist_ok=True)
    corpus = "".join(json.dumps(d) + "\n" for d in DOCS)
    if gz:
        with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.write(corpus)
    else:
        (root / "corpus.jsonl").write_text(corpus)
    test_queries = [
        {"_id": "q9", "text": "no judgments for me"},
        {"_id": "q2", "text": "lion mane"},
        {"_id": "q1", "text": "zebra stripes"},
    ]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in test_queries))
    (root / "queries-train.jsonl").write_text(json.dumps({"_id": "t1", "text": "penguins"}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td4\t1\nq2\td2\t1\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nt1\td3\t1\n")
    return root


# -- loader ----------------------------------------------------------------------------------------


def test_load_beir_test_split(tmp_path: Path) -> None:
    ds = load_beir(write_beir(tmp_path / "mini"))
    assert ds.name == "mini" and ds.split == "test"
    assert list(ds.queries) == ["q2", "q1"]  # file order, q9 dropped (no qrels)
    assert ds.queries["q1"] == "zebra stripes"
    assert ds.qrels == {"q2": {"d2": 1}, "q1": {"d1": 2, "d4": 1}}
    assert list(ds.corpus) == ["d1", "d2", "d3", "d4"]
    assert ds.corpus["d1"] == Doc(text="zebra stripes are black and white", title="Zebra")
    assert available_splits(tmp_path / "mini") == ["test", "train"]


def test_load_beir_other_split_reads_its_queries_file(tmp_path: Path) -> None:
    ds = load_beir(write_beir(tmp_path / "mini"), split="train")
    assert ds.queries == {"t1": "penguins"}
    assert ds.qrels == {"t1": {"d3": 1}}


def test_split_falls_back_to_queries_jsonl_and_reads_gzip(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "official", gz=True)
    (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td2\t1\n")
    ds = load_beir(root, split="dev")  # no queries-dev.jsonl: the official BEIR single queries file
    assert ds.queries == {"q2": "lion mane"}
    assert len(ds.corpus) == 4


def test_doc_text_beir_way() -> None:
    assert doc_text(Doc(title="Zebra", text="zebra stripes")) == "Zebra zebra stripes"
    assert doc_text(Doc(title="", text="  just text ")) == "just text"
    assert doc_text(Doc(title="Only title", text="")) == "Only title"


def test_missing_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(InvalidInputError, match="nowhere") as info:
        load_beir(missing)
    assert info.value.argument == "data_dir"


def test_unknown_split_lists_available(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"no split 'dev'.*available: test, train") as info:
        load_beir(write_beir(tmp_path / "mini"), split="dev")
    assert info.value.argument == "data_dir"


def test_not_a_beir_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match=r"corpus\.jsonl"):
        load_beir(tmp_path / "empty")
    (tmp_path / "empty" / "corpus.jsonl").write_text("")
    with pytest.raises(InvalidInputError, match="available: none"):
        load_beir(tmp_path / "empty")


def test_qrels_query_without_text_and_bad_rows(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "mini")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq404\td1\t1\n")
    with pytest.raises(InvalidInputError, match="q404"):
        load_beir(root)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1 d1 1\n")
    with pytest.raises(InvalidInputError, match=r"test\.tsv:2"):
        load_beir(root)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    with pytest.raises(InvalidInputError, match="'high' is not a number"):
        load_beir(root)


# -- BM25 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mini_bm25() -> BM25Retriever:
    return BM25Retriever([d["_id"] for d in DOCS], [doc_text(Doc(d["text"], d["title"])) for d in DOCS])


def test_bm25_ranks_matching_docs_best_first(mini_bm25: BM25Retriever) -> None:
    hits = mini_bm25.retrieve(["zebra stripes", "lion mane", "penguin"], k=10)
    assert [d for d, _ in hits[0]] == ["d1", "d4"]  # d1 has both terms, d4 only "stripes"
    assert hits[0][0][1] > hits[0][1][1] > 0
    assert [d for d, _ in hits[1]] == ["d2"]  # non-matching docs are not returned
    assert [d for d, _ in hits[2]] == ["d3"]  # "penguin" matches "penguins" through stemming


def test_bm25_k_stopwords_and_unknown_terms(mini_bm25: BM25Retriever) -> None:
    assert len(mini_bm25.retrieve(["zebra stripes"], k=1)[0]) == 1
    assert mini_bm25.retrieve(["the and are", "quantum chromodynamics", ""], k=5) == [[], [], []]
    with pytest.raises(InvalidInputError, match="k"):
        mini_bm25.retrieve(["zebra"], k=0)
    with pytest.raises(InvalidInputError, match="queries"):
        mini_bm25.retrieve("zebra", k=1)  # type: ignore[arg-type]


def test_bm25_ties_follow_corpus_order() -> None:
    retriever = BM25Retriever(["z", "y", "x", "w"], ["alpha beta", "alpha beta", "alpha beta", "gamma delta"])
    assert [d for d, _ in retriever.retrieve(["alpha"], k=2)[0]] == ["z", "y"]
    assert [d for d, _ in retriever.retrieve(["alpha"], k=10)[0]] == ["z", "y", "x"]


def test_bm25_bad_corpus() -> None:
    with pytest.raises(InvalidInputError, match="corpus_ids"):
        BM25Retriever(["a"], ["x", "y"])
    with pytest.raises(InvalidInputError, match="corpus_ids"):
        BM25Retriever(["a", "a"], ["x", "y"])
    with pytest.raises(InvalidInputError, match="corpus_texts"):
        BM25Retriever([], [])


@pytest.mark.parametrize("module", ["bm25s", "Stemmer"])
def test_bm25_missing_package_names_eval_extra(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependencyError, match=r"rerank-core\[eval\]") as info:
        BM25Retriever(["a"], ["alpha"])
    assert info.value.extra == "eval"


# -- the published BEIR BM25 figures, on the shared data -------------------------------------------


def _bm25_metrics(name: str) -> tuple[dict[str, float], int]:
    ds = load_beir(shared_path("data", name), split="test")
    retriever = BM25Retriever(list(ds.corpus), [doc_text(d) for d in ds.corpus.values()])
    qids = list(ds.queries)
    hits = retriever.retrieve([ds.queries[q] for q in qids], k=100)
    run = {q: [d for d, _ in h] for q, h in zip(qids, hits, strict=True)}
    return evaluate(run, ds.qrels, k_values=[10, 100]), len(qids)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("name", "published_ndcg10", "n_queries", "min_recall100"),
    [("scifact", 0.665, 300, 0.88), ("nfcorpus", 0.325, 323, 0.22)],
)
def test_bm25_matches_published_beir(
    name: str, published_ndcg10: float, n_queries: int, min_recall100: float
) -> None:
    started = time.perf_counter()
    metrics, queries = _bm25_metrics(name)
    assert queries == n_queries
    assert metrics["ndcg@10"] == pytest.approx(published_ndcg10, abs=0.02), metrics
    assert metrics["recall@100"] >= min_recall100, metrics  # BEIR paper: 0.908 SciFact, 0.250 NFCorpus
    assert time.perf_counter() - started < 30


@pytest.mark.shared_data
def test_shared_splits_load() -> None:
    scifact = load_beir(shared_path("data", "scifact"), split="train")
    assert (len(scifact.queries), sum(map(len, scifact.qrels.values())), len(scifact.corpus)) == (
        807,
        917,
        5183,
    )
    nfcorpus = load_beir(shared_path("data", "nfcorpus"), split="dev")
    assert (len(nfcorpus.queries), sum(map(len, nfcorpus.qrels.values()))) == (323, 11378)

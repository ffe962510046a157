"""The shipped reference reranker (models/reference-reranker) and the script that reproduces it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WORKSPACE, build_tiny_cross_encoder, shared_path

REFERENCE = WORKSPACE / "models" / "reference-reranker"
BUILD = WORKSPACE / "models" / "build_reference_reranker.py"


def test_reference_reranker_is_shipped_small_and_documented() -> None:
    assert REFERENCE.is_dir(), "models/reference-reranker is missing"
    size = sum(p.stat().st_size for p in REFERENCE.rglob("*") if p.is_file())
    assert size <= 50 * 1024 * 1024, f"{size / 2**20:.1f} MiB on disk; the limit is 50 MB"
    info = json.loads((REFERENCE / "rerank_finetune.json").read_text())
    assert info["settings"]["save_dtype"] == "float16"
    assert "msmarco-train" in info["data"]["groups_per_source"]
    card = (REFERENCE / "README.md").read_text()
    assert "build_reference_reranker.py" in card and "nDCG@10" in card


def test_reference_reranker_loads_by_path_and_ranks_sensibly() -> None:
    from rerank_core import Reranker
    from rerank_core.backends import CrossEncoderBackend

    backend = CrossEncoderBackend(str(REFERENCE), device="cpu")
    reranker = Reranker(backend, top_n=3)
    query = "What causes the seasons on Earth?"
    docs = [
        "The stock market closed higher on Friday after strong earnings reports.",
        "Earth's seasons are caused by the tilt of its rotational axis relative to its orbit around the Sun.",
        "A recipe for banana bread with walnuts and cinnamon.",
        "The distance between Earth and the Sun changes slightly during the year.",
    ]
    response = reranker.rerank(query, docs)
    assert [r.index for r in response.results][:2] == [1, 3]
    assert response.results[0].relevance_score > 0.5 > response.results[-1].relevance_score
    assert str(next(backend.model.parameters()).dtype) == "torch.float32"  # fp16 on disk, fp32 on CPU


@pytest.mark.slow
@pytest.mark.shared_data
def test_build_script_runs_end_to_end_at_a_tiny_scale(tmp_path: Path) -> None:
    data = shared_path("data")
    base = build_tiny_cross_encoder(tmp_path / "base", initializer_range=0.02)
    out = tmp_path / "ref"
    args = ["--output", str(out), "--data", str(data), "--base-model", str(base), "--scale", "0.005"]
    args += ["--dev-queries", "5", "--max-length", "48", "--evals", "1", "--no-progress"]
    proc = subprocess.run(
        [sys.executable, str(BUILD), *args], capture_output=True, text=True, timeout=600, cwd=WORKSPACE
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "rerank_finetune.json").read_text())
    assert set(info["data"]["groups_per_source"]) == {"scifact", "nfcorpus", "msmarco-train"}
    assert set(info["data"]["dev"]) == {"scifact-dev", "nfcorpus-dev"}
    assert info["settings"]["save_dtype"] == "float16" and len(info["dev_history"]) == 1
    assert info["command"].startswith("python models/build_reference_reranker.py --output")
    assert (
        json.loads(proc.stdout.splitlines()[-1])["best_dev"]["mean_ndcg@10"]
        == info["best_dev"]["mean_ndcg@10"]
    )
    assert info["fusion"]["method"] in ("zscore", "minmax", "rrf")  # tuned on the dev sets
    again = ["--data", str(data), "--scale", "0.005", "--dev-queries", "5", "--retune-fusion", str(out)]
    retune = subprocess.run(
        [sys.executable, str(BUILD), *again],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=WORKSPACE,
    )
    assert retune.returncode == 0, retune.stderr[-3000:]
    assert (
        json.loads(retune.stdout.splitlines()[-1])["fusion"]
        == json.loads((out / "rerank_finetune.json").read_text())["fusion"]
    )
    # Training goes on from the first run: the card keeps the earlier stage and both commands.
    out2 = tmp_path / "ref2"
    args2 = ["--output", str(out2), "--data", str(data), "--base-model", str(out), "--scale", "0.005"]
    args2 += ["--dev-queries", "5", "--max-length", "48", "--evals", "1", "--no-progress", "--seed", "13"]
    args2 += ["--mining-depth", "50", "--dev-top-k", "7"]
    # with a teacher (any bi-encoder; the tiny model, mean-pooled, keeps it fast) for both collections
    args2 += [
        "--teacher-model",
        str(base),
        "--distill-sources",
        "scifact,nfcorpus",
        "--distill-weight",
        "0.3",
    ]
    proc2 = subprocess.run(
        [sys.executable, str(BUILD), *args2], capture_output=True, text=True, timeout=600, cwd=WORKSPACE
    )
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    info2 = json.loads((out2 / "rerank_finetune.json").read_text())
    (stage,) = info2["data"]["earlier_stages"]
    assert stage["command"] == info["command"] and stage["best_dev"] == info["best_dev"]
    assert info2["settings"]["train_dtype"] == "float32"  # the float16 folder trains in float32
    assert "BM25 top-50" in info2["data"]["negatives"]
    assert all(d["top_k"] == 7 for d in info2["data"]["dev"].values())
    assert "teacher-scored sources (nfcorpus, scifact)" in info2["settings"]["loss"]
    assert "0.3 x softmax(cosine / 0.05)" in info2["data"]["teacher"]
    assert "teacher" not in info["data"] and "teacher" not in info["settings"]["loss"]
    card = (out2 / "README.md").read_text()
    assert "## Earlier training stages" in card
    assert card.index(info["command"]) < card.index(info2["command"])  # Reproduce lists the stages in order


@pytest.mark.shared_data
def test_demo_uses_the_reference_reranker_by_default() -> None:
    data = shared_path("data", "scifact")
    demo = [sys.executable, str(WORKSPACE / "examples" / "demo.py"), "--no-progress", "--data", str(data)]
    proc = subprocess.run(
        [*demo, "--queries", "2", "--top-k", "5", "--show", "1", "--no-dense"],  # hybrid: test_examples
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "RERANK_MODEL"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "reference-reranker" in proc.stdout and "reranked:" in proc.stdout
    # the model's fusion with BM25, tuned on dev at fine-tuning time, is shown too
    assert "the model's stored fusion" in proc.stdout and "fused:" in proc.stdout
    assert any(line.strip().startswith("fused ") for line in proc.stdout.splitlines())

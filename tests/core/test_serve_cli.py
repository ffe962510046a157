"""``rerank serve`` from the command line: flags and files checked before binding, and a real run of the
reference model with two worker processes (shared metrics, the same ranking as in process, SIGTERM)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("uvicorn", reason="rerank serve needs the serve extra (uvicorn)")

from rerank_core.cli import main

REFERENCE = Path(__file__).resolve().parents[2] / "models" / "reference-reranker"
QUERIES = ["what do cats eat", "why did stocks fall", "how to cook soup"]
DOCS = [
    "Cats are carnivores and eat meat.",
    "The stock market fell on Monday after rate fears.",
    "Kittens drink milk from their mother.",
    "A recipe for vegetable soup with carrots.",
    "Cat food is made mostly of animal protein.",
    "Bond yields rose as investors sold shares.",
]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve"], "--model"),
        (["serve", "--model", "m", "--port", "70000"], "serve.port"),
        (["serve", "--model", "m", "--timeout", "0"], "--timeout"),
        (["serve", "--config", "missing.toml"], "cannot read"),
    ],
)
def test_bad_flags_exit_2_before_binding(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_config_files_mistakes_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    file = tmp_path / "serve.toml"
    file.write_text('model = "m"\n[options]\ntopn = 3\n')
    assert main(["serve", "--config", str(file)]) == 2
    assert "topn" in capsys.readouterr().err
    file.write_text('model = "m"\n[serve]\nprot = 3\n')
    assert main(["serve", "--config", str(file)]) == 2
    assert "serve.prot" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def all_ready(url: str) -> bool:
    """Every worker has loaded its model: the ready gauge is the minimum over live workers."""
    try:
        if httpx.get(url + "/ready", timeout=2).status_code != 200:
            return False
        lines = httpx.get(url + "/metrics", timeout=2).text.splitlines()
    except httpx.TransportError:
        return False
    return any(line.startswith("rerank_ready") and line.endswith(" 1.0") for line in lines)


def test_two_workers_share_metrics_and_stop_on_sigterm(tmp_path: Path) -> None:
    """Two worker processes, each building the described pipeline. The model is a fake: this test is about
    the server (the reference model goes through the same build: test_check_loads_...)."""
    from rerank_core import Reranker
    from rerank_core.integrations import reranker_config
    from tests.fakes import FakeBackend

    port = free_port()
    local = Reranker(FakeBackend(name="workers"), top_n=4)
    config = tmp_path / "serve.json"
    config.write_text(json.dumps({"reranker": reranker_config(local), "serve": {"workers": 2, "port": port}}))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RERANK_API_KEY": "", "PYTHONPATH": str(root)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "rerank_core.cli", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not all_ready(url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all_ready(url), "the workers did not become ready"

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                jobs = [client.post("/v2/rerank", json={"query": q, "documents": DOCS}) for q in QUERIES * 4]
                return await asyncio.gather(*jobs)

        answers = asyncio.run(burst())
        assert [a.status_code for a in answers] == [200] * 12
        for query, answer in zip(QUERIES * 4, answers, strict=True):
            want = local.rerank(query, DOCS)
            got = answer.json()["results"]
            assert [r["index"] for r in got] == want.indices
            sigmoid = [
                1 / (1 + math.exp(-r.relevance_score)) for r in want
            ]  # a logit model, as TEI writes it
            assert [r["relevance_score"] for r in got] == pytest.approx(sigmoid, abs=1e-5)
        metrics = httpx.get(url + "/metrics").text
        total = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith('rerank_requests_total{route="/v2/rerank",status="200"}')
        )
        assert total == 12  # summed over both workers, whichever answered the scrape
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
    assert process.returncode == 0, err[-2000:]
    assert err.count("rerank serve: ready") == 2  # one model per worker
    assert DOCS[0] not in err and QUERIES[0] not in err  # the access log holds no text
    assert '"route": "/v2/rerank", "status": 200' in err


@pytest.mark.slow
def test_check_loads_and_scores_the_reference_model(capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", "--model", str(REFERENCE), "--runtime", "torch", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: cross-encoder:") and "scored one pair" in out

"""``rerank batch`` and :mod:`rerank_core.batch` on the local engine: nothing lost or duplicated, the same
scores as an in-process ``Reranker``, failing rows isolated, resume after an interruption, JSONL and
Parquet in and out, the command's exit codes and errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeBackend, hash_score

from rerank_core import Reranker
from rerank_core.batch import read_output, run_batch
from rerank_core.cli import main
from rerank_core.errors import ConfigurationError, InvalidInputError, MissingDependencyError
from rerank_core.pipeline_config import PipelineConfig

WORKSPACE = Path(__file__).resolve().parents[2]
WORDS = ("zebra", "lion", "penguin", "stripes", "golden", "mane", "ice", "cold")
WORDS += ("tiger", "dog", "cat", "sleeps", "runs", "black", "white")


def make_rows(n: int, *, k: int = 5, scored_every: int = 3) -> list[dict[str, Any]]:
    """``n`` rows of ``k`` candidates; every ``scored_every``-th row carries first-stage scores, every
    fourth an instruction-free row with one candidate more (rows of different lengths share chunks)."""
    rows = []
    for i in range(n):
        m = k + (i % 4 == 0)
        cands: list[dict[str, Any]] = [
            {"id": f"d{i}-{j}", "text": " ".join(WORDS[(i + j + t) % len(WORDS)] for t in range(3 + j))}
            for j in range(m)
        ]
        if i % scored_every == 0:
            for j, c in enumerate(cands):
                c["score"] = float(m - j)
        rows.append(
            {
                "query_id": f"q{i}",
                "query": f"{WORDS[i % len(WORDS)]} {WORDS[(3 * i) % len(WORDS)]}",
                "candidates": cands,
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=7)
    return path


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        assert row["query_id"] not in out, f"query_id {row['query_id']} written twice"
        out[row["query_id"]] = row
    return out


def fake_reranker(fail_on: str | None = None, **options: Any) -> tuple[Reranker, FakeBackend]:
    def score(query: str, text: str) -> float:
        if fail_on is not None and fail_on in query:
            raise RuntimeError(f"back end broke on {query!r}\nsecond line")
        return hash_score(query, text)

    backend = FakeBackend(score)
    return Reranker(backend, **options), backend


def check_complete(inp: list[dict[str, Any]], out: list[dict[str, Any]]) -> None:
    """Exactly the input's rows, each with exactly its candidates, ranked 1..n by descending score."""
    got = by_id(out)
    assert set(got) == {r["query_id"] for r in inp}
    for row in inp:
        result = got[row["query_id"]]
        assert result["error"] is None, result
        ids = [c["id"] for c in result["ranked"]]
        assert sorted(ids) == sorted(c["id"] for c in row["candidates"])
        assert [c["rank"] for c in result["ranked"]] == list(range(1, len(ids) + 1))
        scores = [c["score"] for c in result["ranked"]]
        assert scores == sorted(scores, reverse=True)


# -- the library ---------------------------------------------------------------------------------------


def test_every_row_and_candidate_once_in_input_order(tmp_path: Path) -> None:
    rows = make_rows(23)
    reranker, backend = fake_reranker()
    summary = run_batch(
        write_jsonl(tmp_path / "in.jsonl", rows),
        tmp_path / "out.jsonl",
        reranker=reranker,
        batch_rows=5,
        progress=False,
    )
    out = read_output(tmp_path / "out.jsonl")
    check_complete(rows, out)
    assert [r["query_id"] for r in out] == [r["query_id"] for r in rows]  # the local engine keeps order
    assert (summary.rows, summary.errors, summary.skipped, summary.remaining) == (23, 0, 0, 0)
    # a chunk shares model calls: at most one score_pairs call per (chunk, scores-or-not) group
    assert len(backend.calls) <= 2 * 5
    for result in out:  # the fake's scores, through the default pipeline (logits, no normalization)
        row = next(r for r in rows if r["query_id"] == result["query_id"])
        texts = {c["id"]: c["text"] for c in row["candidates"]}
        for c in result["ranked"]:
            assert c["raw_score"] == pytest.approx(hash_score(row["query"], texts[c["id"]]))


def test_scores_equal_the_in_process_reranker(tmp_path: Path, tiny_ce_path: Path) -> None:
    rows = make_rows(9)
    config = PipelineConfig(model=str(tiny_ce_path), options={"top_n": 4})
    run_batch(
        write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl", config, batch_rows=4, progress=False
    )
    got = by_id(read_output(tmp_path / "out.jsonl"))
    reranker = config.build()
    for row in rows:
        has_scores = "score" in row["candidates"][0]
        response = reranker.rerank(
            row["query"],
            [c["text"] for c in row["candidates"]],
            first_stage_scores=[c["score"] for c in row["candidates"]] if has_scores else None,
        )
        want = [(row["candidates"][r.index]["id"], r.relevance_score, r.raw_score) for r in response]
        ranked = got[row["query_id"]]["ranked"]
        assert len(ranked) == len(want) == 4  # top_n from the configuration
        for c, (cid, score, raw) in zip(ranked, want, strict=True):
            assert c["score"] == pytest.approx(score, abs=1e-5)
            assert c["raw_score"] == pytest.approx(raw, abs=1e-5)
            if abs(c["score"] - score) > 1e-6:  # equal within float noise of batch padding; else same order
                continue
            assert c["id"] == cid


def test_a_failing_row_is_reported_and_the_others_are_kept(tmp_path: Path) -> None:
    rows = make_rows(10)
    rows[4]["query"] = "boom here"
    reranker, _ = fake_reranker(fail_on="boom")
    summary = run_batch(
        write_jsonl(tmp_path / "in.jsonl", rows),
        tmp_path / "out.jsonl",
        reranker=reranker,
        batch_rows=10,
        progress=False,
    )
    got = by_id(read_output(tmp_path / "out.jsonl"))
    assert summary.errors == 1 and summary.rows == 10
    failed = got.pop("q4")
    assert failed["ranked"] is None
    assert failed["error"].endswith("RuntimeError: back end broke on 'boom here' second line")  # one line
    check_complete([r for r in rows if r["query_id"] != "q4"], list(got.values()))


def test_bad_rows_become_error_rows(tmp_path: Path) -> None:
    good = make_rows(2)
    bad = [
        {"query_id": "no-query", "candidates": []},
        {"query_id": "blank-query", "query": "  ", "candidates": []},
        {"query_id": "cands-string", "query": "q", "candidates": "abc"},
        {"query_id": "no-text", "query": "q", "candidates": [{"id": "a"}]},
        {"query_id": "int-id", "query": "q", "candidates": [{"id": 3, "text": "t"}]},
        {
            "query_id": "dup-id",
            "query": "q",
            "candidates": [{"id": "a", "text": "t"}, {"id": "a", "text": "u"}],
        },
        {
            "query_id": "some-scores",
            "query": "q",
            "candidates": [{"id": "a", "text": "t", "score": 1}, {"id": "b", "text": "u"}],
        },
        {"query_id": "nan-score", "query": "q", "candidates": [{"id": "a", "text": "t", "score": "x"}]},
        {"query_id": "instr", "query": "q", "candidates": [{"id": "a", "text": "t"}], "instruction": 5},
    ]
    rows = good[:1] + bad + good[1:]
    reranker, _ = fake_reranker()
    summary = run_batch(
        write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl", reranker=reranker, progress=False
    )
    got = by_id(read_output(tmp_path / "out.jsonl"))
    assert summary.errors == len(bad)
    expected = {
        "no-query": "query must be a non-empty string",
        "blank-query": "query must be a non-empty string",
        "cands-string": "candidates must be a list",
        "no-text": "candidates[0].text must be a string",
        "int-id": "candidates[0].id must be a string",
        "dup-id": "candidates[1].id 'a' repeats",
        "some-scores": "candidates[1] has no score",
        "nan-score": "candidates[0].score must be a finite number",
        "instr": "instruction must be a string",
    }
    for qid, start in expected.items():
        assert got[qid]["ranked"] is None and got[qid]["error"].startswith(start), got[qid]
        assert "\n" not in got[qid]["error"]
    check_complete(good, [got["q0"], got["q1"]])


def test_fusion_without_first_stage_scores_fails_only_those_rows(tmp_path: Path) -> None:
    rows = make_rows(6, scored_every=2)  # q0, q2, q4 have scores
    reranker, _ = fake_reranker(fusion="zscore:0.5")
    run_batch(
        write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl", reranker=reranker, progress=False
    )
    got = by_id(read_output(tmp_path / "out.jsonl"))
    assert {q for q, r in got.items() if r["error"]} == {"q1", "q3", "q5"}
    assert "first_stage_scores" in got["q1"]["error"]
    check_complete(
        [r for r in rows if r["query_id"] in {"q0", "q2", "q4"}], [got[q] for q in ("q0", "q2", "q4")]
    )


@pytest.mark.parametrize("output", ["out.jsonl", "out-parts", "out.parquet"])
@pytest.mark.parametrize("input_format", ["jsonl", "parquet"])
def test_interrupted_run_resumes_to_the_uninterrupted_output(
    tmp_path: Path, output: str, input_format: str
) -> None:
    rows = make_rows(17)
    src = (
        write_jsonl(tmp_path / "in.jsonl", rows)
        if input_format == "jsonl"
        else write_parquet(tmp_path / "in.parquet", rows)
    )
    reranker, _ = fake_reranker()
    full = run_batch(
        src, tmp_path / "full" / output, reranker=reranker, batch_rows=4, part_rows=3, progress=False
    )
    assert full.rows == 17
    first = run_batch(
        src, tmp_path / output, reranker=reranker, batch_rows=4, part_rows=3, limit=7, progress=False
    )
    assert (first.rows, first.remaining) == (7, 10)
    assert len(read_output(tmp_path / output)) == 7  # a folder: parts of 3, the last one shorter
    counting, backend = fake_reranker()
    second = run_batch(src, tmp_path / output, reranker=counting, batch_rows=4, part_rows=3, progress=False)
    assert (second.rows, second.skipped, second.remaining) == (10, 7, 0)
    assert {q for call in backend.calls for q, _ in call} <= {r["query"] for r in rows[7:]}  # none redone
    assert by_id(read_output(tmp_path / output)) == by_id(read_output(tmp_path / "full" / output))
    check_complete(rows, read_output(tmp_path / output))
    again = run_batch(src, tmp_path / output, reranker=counting, progress=False)
    assert (again.rows, again.skipped) == (0, 17)


def test_a_torn_last_line_is_dropped_and_redone(tmp_path: Path) -> None:
    rows = make_rows(6)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    reranker, _ = fake_reranker()
    run_batch(src, tmp_path / "full.jsonl", reranker=reranker, progress=False)
    lines = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)
    torn = "".join(lines[:3]) + lines[3][: len(lines[3]) // 2]
    (tmp_path / "out.jsonl").write_text(torn)
    summary = run_batch(src, tmp_path / "out.jsonl", reranker=reranker, progress=False)
    assert (summary.rows, summary.skipped) == (3, 3)
    assert (tmp_path / "out.jsonl").read_text() == (tmp_path / "full.jsonl").read_text()


def test_leftover_temporary_parts_are_removed_on_resume(tmp_path: Path) -> None:
    rows = make_rows(5)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.parquet"
    out.mkdir()
    (out / ".part-000000.parquet.tmp").write_bytes(b"half a part")
    reranker, _ = fake_reranker()
    run_batch(src, out, reranker=reranker, part_rows=2, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock",  # the run's lock file (stays; the lock itself went with the run)
        "part-000000.parquet",
        "part-000001.parquet",
        "part-000002.parquet",
    ]
    check_complete(rows, read_output(out))


def test_folder_input_of_parquet_files(tmp_path: Path) -> None:
    rows = make_rows(12)
    folder = tmp_path / "in"
    folder.mkdir()
    write_parquet(folder / "a.parquet", rows[:5])
    write_parquet(folder / "b.parquet", rows[5:])
    (folder / "_SUCCESS").write_text("")
    reranker, _ = fake_reranker()
    run_batch(folder, tmp_path / "out.jsonl", reranker=reranker, batch_rows=5, progress=False)
    check_complete(rows, read_output(tmp_path / "out.jsonl"))


def test_parquet_output_schema(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rows = [*make_rows(3), {"query_id": "bad", "query": 1, "candidates": []}]
    reranker, _ = fake_reranker()
    run_batch(
        write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.parquet", reranker=reranker, progress=False
    )
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.names == ["query_id", "ranked", "error"]
    ranked = table.schema.field("ranked").type.value_type
    assert [(f.name, str(f.type)) for f in ranked] == [
        ("id", "string"),
        ("score", "double"),
        ("raw_score", "double"),
        ("rank", "int64"),
    ]
    assert by_id(table.to_pylist())["bad"]["ranked"] is None


def test_input_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    reranker, backend = fake_reranker()
    rows = make_rows(4)
    write_jsonl(tmp_path / "dup.jsonl", [*rows, rows[1]])
    with pytest.raises(InvalidInputError, match=r"dup\.jsonl line 5: query_id 'q1' appears more than once"):
        run_batch(tmp_path / "dup.jsonl", tmp_path / "out.jsonl", reranker=reranker, progress=False)
    (tmp_path / "broken.jsonl").write_text(json.dumps(rows[0]) + "\n\n" + '{"query_id": "x", \n')
    with pytest.raises(InvalidInputError, match=r"broken\.jsonl line 3: not valid JSON"):
        run_batch(tmp_path / "broken.jsonl", tmp_path / "out.jsonl", reranker=reranker, progress=False)
    write_jsonl(tmp_path / "noid.jsonl", [rows[0], {"query": "q", "candidates": []}])
    with pytest.raises(
        InvalidInputError, match=r"noid\.jsonl line 2: each row needs a non-empty string query_id"
    ):
        run_batch(tmp_path / "noid.jsonl", tmp_path / "out.jsonl", reranker=reranker, progress=False)
    write_parquet(tmp_path / "intid.parquet", [{"query_id": 1, "query": "q"}])
    with pytest.raises(InvalidInputError, match=r"intid\.parquet row 1: .*query_id 1"):
        run_batch(tmp_path / "intid.parquet", tmp_path / "out.jsonl", reranker=reranker, progress=False)
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(InvalidInputError, match=r"INPUT: .*data\.csv: expected a \.jsonl or \.parquet"):
        run_batch(tmp_path / "data.csv", tmp_path / "out.jsonl", reranker=reranker, progress=False)
    assert not (tmp_path / "out.jsonl").exists() and backend.calls == []


def test_no_resume_refuses_a_non_empty_output_and_resume_refuses_a_foreign_file(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", make_rows(2))
    reranker, _ = fake_reranker()
    run_batch(src, tmp_path / "out.jsonl", reranker=reranker, progress=False)
    before = (tmp_path / "out.jsonl").read_bytes()
    with pytest.raises(InvalidInputError, match=r"OUTPUT: .* is not empty and --no-resume"):
        run_batch(src, tmp_path / "out.jsonl", reranker=reranker, resume=False, progress=False)
    (tmp_path / "other.jsonl").write_text('{"something": "else"}\n')
    with pytest.raises(InvalidInputError, match=r"other\.jsonl line 1: not a rerank batch result row"):
        run_batch(src, tmp_path / "other.jsonl", reranker=reranker, progress=False)
    with pytest.raises(InvalidInputError, match="is the input"):
        run_batch(src, src, reranker=reranker, progress=False)
    assert (tmp_path / "out.jsonl").read_bytes() == before


def test_arguments_are_checked(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", make_rows(1))
    reranker, _ = fake_reranker()
    with pytest.raises(ConfigurationError, match="engine"):
        run_batch(src, tmp_path / "o.jsonl", reranker=reranker, engine="spark")
    with pytest.raises(ConfigurationError, match="batch_rows"):
        run_batch(src, tmp_path / "o.jsonl", reranker=reranker, batch_rows=0)
    with pytest.raises(ConfigurationError, match="exactly one"):
        run_batch(src, tmp_path / "o.jsonl")
    with pytest.raises(ConfigurationError, match="local engine only"):
        run_batch(src, tmp_path / "o.jsonl", reranker=reranker, engine="ray")


def test_the_ray_engine_without_ray_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    src = write_jsonl(tmp_path / "in.jsonl", make_rows(1))
    with pytest.raises(MissingDependencyError, match=r"rerank-core\[ray\]"):
        run_batch(src, tmp_path / "o.jsonl", {"model": "unused"}, engine="ray", progress=False)
    assert not (tmp_path / "o.jsonl").exists()


def test_importing_the_batch_modules_does_not_import_ray() -> None:
    code = (
        "import sys, rerank_core.batch, rerank_core.batch.local, rerank_core.batch.ray_engine; "
        "import rerank_core.cli; "
        "bad = [m for m in ('ray', 'pyarrow', 'torch') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- the command ---------------------------------------------------------------------------------------


def test_cli_ranks_prints_a_summary_and_resumes(
    tmp_path: Path, tiny_ce_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = make_rows(5)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    args = ["batch", str(src), str(out), "--model", str(tiny_ce_path), "--batch-rows", "2", "--no-progress"]
    assert main([*args, "--limit", "2"]) == 0
    err = capsys.readouterr().err
    assert "rerank batch: 2 rows, 0 errors, 3 left (rerun to go on)" in err and "rows/s (local)" in err
    assert main([*args, "--top-n", "2"]) == 0  # top_n applies to the rows of this run only
    assert "3 rows, 0 errors, 2 already done" in capsys.readouterr().err
    got = by_id(read_output(out))
    assert set(got) == {r["query_id"] for r in rows}
    assert [len(got[q]["ranked"]) for q in ("q2", "q3", "q4")] == [2, 2, 2]
    assert main([*args, "--no-resume"]) == 2
    assert "OUTPUT: " in capsys.readouterr().err


def test_cli_config_file_with_a_batch_table(
    tmp_path: Path, tiny_ce_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = make_rows(4)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    config = tmp_path / "pipeline.json"
    config.write_text(
        json.dumps({"model": str(tiny_ce_path), "options": {"top_n": 3}, "batch": {"part_rows": 2}})
    )
    assert main(["batch", str(src), str(tmp_path / "out"), "--config", str(config), "--no-progress"]) == 0
    parts = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".lock")
    assert parts == ["part-000000.jsonl", "part-000001.jsonl"]
    assert all(len(r["ranked"]) == 3 for r in read_output(tmp_path / "out"))
    capsys.readouterr()
    config.write_text(json.dumps({"model": str(tiny_ce_path), "batch": {"workers": 2}}))
    assert main(["batch", str(src), str(tmp_path / "o2.jsonl"), "--config", str(config)]) == 2
    assert "batch.workers is not a key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "M"], "INPUT: "),  # the input does not exist
        ([], "--model: required"),
        (["--model", "/nonexistent/model-folder"], "model: could not load"),
        (["--model", "M", "--batch-rows", "0"], "--batch-rows: expected a positive integer"),
        (["--model", "M", "--engine", "spark"], "--engine: invalid choice"),
        (["--model", "M", "--config", "/nonexistent.toml"], "--config: cannot read"),
    ],
)
def test_cli_usage_errors_exit_2_in_one_line(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    if message != "INPUT: ":
        write_jsonl(src, make_rows(1))
    assert main(["batch", str(src), str(tmp_path / "out.jsonl"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rerank batch: error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_ray_engine_without_ray_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)
    src = write_jsonl(tmp_path / "in.jsonl", make_rows(1))
    assert main(["batch", str(src), str(tmp_path / "o.jsonl"), "--model", "M", "--engine", "ray"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rerank batch: error: ") and "pip install 'rerank-core[ray]'" in err, err


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_output(tmp_path: Path, tiny_ce_path: Path) -> None:
    rows = make_rows(120)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    run_batch(
        src, tmp_path / "full.jsonl", PipelineConfig(model=str(tiny_ce_path)), batch_rows=2, progress=False
    )
    out = tmp_path / "out.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "rerank_core.cli",
        "batch",
        str(src),
        str(out),
        "--model",
        str(tiny_ce_path),
        "--batch-rows",
        "2",
        "--no-progress",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 10):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    written = out.read_text().count("\n")
    assert 10 <= written < 120, written
    assert subprocess.run(cmd, env=env, stderr=subprocess.DEVNULL, timeout=300).returncode == 0
    assert by_id(read_output(out)) == by_id(read_output(tmp_path / "full.jsonl"))


def test_a_retryable_back_end_error_stops_the_run_and_a_resume_redoes_the_row(tmp_path: Path) -> None:
    from rerank_core.errors import RetryableBackendError

    rows = make_rows(9)
    rows[5]["query"] = "outage now"
    src = write_jsonl(tmp_path / "in.jsonl", rows)

    def down(query: str, text: str) -> float:
        if "outage" in query:
            raise RetryableBackendError("503 from the server", backend="fake")
        return hash_score(query, text)

    reranker = Reranker(FakeBackend(down))
    with pytest.raises(RetryableBackendError, match="503"):
        run_batch(src, tmp_path / "out.jsonl", reranker=reranker, batch_rows=2, progress=False)
    kept = by_id(read_output(tmp_path / "out.jsonl"))
    assert set(kept) == {"q0", "q1", "q2", "q3"}  # the chunks before it; nothing written as an error
    healthy, _ = fake_reranker()
    summary = run_batch(src, tmp_path / "out.jsonl", reranker=healthy, batch_rows=2, progress=False)
    assert (summary.rows, summary.skipped, summary.errors) == (5, 4, 0)
    check_complete(rows, read_output(tmp_path / "out.jsonl"))


# -- review fixes: fail_open, whole-back-end failures, --retry-errors, locks, bounds, validation -----------


class _Result:
    def __init__(self, index: int, score: float, reranked: bool = True) -> None:
        self.index, self.relevance_score, self.raw_score, self.reranked = index, score, score, reranked


class _Response:
    def __init__(self, results: list[_Result], error: str | None = None) -> None:
        self.results, self.error = results, error


class _NaNReranker:
    """Answers a NaN score for the queries holding "nan", as a custom pipeline stage might."""

    def rerank_many(self, queries: list[str], texts: list[list[str]], **_: Any) -> list[_Response]:
        return [
            _Response([_Result(i, float("nan") if "nan" in q else 1.0 - i) for i in range(len(t))])
            for q, t in zip(queries, texts, strict=True)
        ]


def test_fail_open_and_non_finite_scores_become_error_rows(tmp_path: Path) -> None:
    from rerank_core.errors import FailOpenWarning

    rows = make_rows(6)
    rows[2]["query"] = "boom here"
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    reranker, _ = fake_reranker(fail_on="boom", fail_open=True)
    with pytest.warns(FailOpenWarning):
        summary = run_batch(src, tmp_path / "out.jsonl", reranker=reranker, batch_rows=6, progress=False)
    got = by_id(read_output(tmp_path / "out.jsonl"))
    assert (summary.rows, summary.errors) == (6, 1)
    assert got["q2"]["ranked"] is None
    assert got["q2"]["error"].startswith("not reranked (fail_open=True returned the input order): ")
    assert "boom here" in got["q2"]["error"] and "\n" not in got["q2"]["error"]
    check_complete([r for r in rows if r["query_id"] != "q2"], [v for k, v in got.items() if k != "q2"])
    rows[4]["query"] = "a nan query"
    src = write_jsonl(tmp_path / "in-nan.jsonl", rows)
    for out in ("nan.jsonl", "nan.parquet"):
        summary = run_batch(src, tmp_path / out, reranker=_NaNReranker(), batch_rows=3, progress=False)
        got = by_id(read_output(tmp_path / out))
        assert summary.errors == 1 and got["q4"]["ranked"] is None
        assert got["q4"]["error"].startswith("non-finite score for candidate 'd4-")
        assert all(got[q]["error"] is None for q in got if q != "q4")


def _unauthorized(status: int | None) -> Reranker:
    from rerank_core.errors import NonRetryableBackendError

    def score(query: str, text: str) -> float:
        if "cat" in query or status is None:
            raise NonRetryableBackendError("server says no", backend="remote", status_code=status)
        return hash_score(query, text)

    return Reranker(FakeBackend(score))


@pytest.mark.parametrize("status", [401, None])
def test_a_failure_of_the_whole_back_end_stops_the_run_and_writes_nothing_for_its_rows(
    tmp_path: Path, status: int | None
) -> None:
    from rerank_core.errors import NonRetryableBackendError

    rows = make_rows(8)  # q2 asks about cats: a 401 on it; status None: every row fails alike
    rows[2]["query"] = "a cat query"
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    why = "refused the request" if status else r"every row of a chunk \(2 rows\) failed alone"
    with pytest.raises(NonRetryableBackendError, match=why):
        run_batch(src, tmp_path / "out.jsonl", reranker=_unauthorized(status), batch_rows=2, progress=False)
    kept = read_output(tmp_path / "out.jsonl") if (tmp_path / "out.jsonl").exists() else []
    assert {r["query_id"] for r in kept} == ({"q0", "q1"} if status else set())
    assert all(r["error"] is None for r in kept)
    healthy, _ = fake_reranker()
    summary = run_batch(src, tmp_path / "out.jsonl", reranker=healthy, batch_rows=2, progress=False)
    assert summary.errors == 0
    check_complete(rows, read_output(tmp_path / "out.jsonl"))


def test_cli_exits_1_when_the_back_end_fails_for_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rerank_core.errors import NonRetryableBackendError
    from rerank_core.integrations import reranker_config

    def refuse(self: Any, pairs: Any) -> list[float]:
        if pairs == [("warm up", "warm up")]:
            return [0.0]
        raise NonRetryableBackendError("401 Unauthorized", backend="x", status_code=401)

    src = write_jsonl(tmp_path / "in.jsonl", make_rows(4))
    config = tmp_path / "pipeline.json"
    config.write_text(json.dumps({"reranker": reranker_config(Reranker(FakeBackend(name="x")))}))
    monkeypatch.setattr(FakeBackend, "score_pairs", refuse)
    argv = ["batch", str(src), str(tmp_path / "out.jsonl"), "--config", str(config), "--no-progress"]
    assert main(argv) == 1
    assert "refused the request" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("output", ["out.jsonl", "out-parts", "out.parquet"])
def test_retry_errors_replaces_the_error_rows(tmp_path: Path, output: str) -> None:
    rows = make_rows(7)
    rows[3]["query"] = "boom here"
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    broken, _ = fake_reranker(fail_on="boom")
    run_batch(src, tmp_path / output, reranker=broken, batch_rows=3, part_rows=2, progress=False)
    assert by_id(read_output(tmp_path / output))["q3"]["error"] is not None
    healthy, backend = fake_reranker()
    again = run_batch(src, tmp_path / output, reranker=healthy, progress=False)
    assert (again.rows, again.skipped) == (0, 7)  # error rows count as done without --retry-errors
    summary = run_batch(src, tmp_path / output, reranker=healthy, retry_errors=True, progress=False)
    assert (summary.rows, summary.errors, summary.skipped) == (1, 0, 6)
    assert {q for call in backend.calls for q, _ in call} == {"boom here"}
    check_complete(rows, read_output(tmp_path / output))  # each query_id once, none with an error
    assert not [p for p in (tmp_path / output).parent.rglob("*.tmp")]


def test_cli_retry_errors_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", make_rows(2))
    (tmp_path / "out.jsonl").write_text(json.dumps({"query_id": "q1", "ranked": None, "error": "old"}) + "\n")
    assert main(["batch", str(src), str(tmp_path / "out.jsonl"), "--model", "M", "--retry-errors"]) == 2
    assert "model: could not load" in capsys.readouterr().err  # the flag parses; M is no model


def test_an_output_inside_the_input_folder_is_refused_on_the_first_run(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", make_rows(3))
    reranker, _ = fake_reranker()
    for name in ("out.jsonl", "parts"):
        with pytest.raises(InvalidInputError, match="inside the INPUT folder"):
            run_batch(folder, folder / name, reranker=reranker, progress=False)
        assert not (folder / name).exists()


@pytest.mark.parametrize("output", ["out.jsonl", "out.parquet"])
def test_a_second_run_on_a_locked_output_is_refused(tmp_path: Path, output: str) -> None:
    from rerank_core.batch._rows import lock_path, open_output

    src = write_jsonl(tmp_path / "in.jsonl", make_rows(3))
    reranker, _ = fake_reranker()
    held = open_output(tmp_path / output)  # another run, holding the lock
    try:
        lock = lock_path(tmp_path / output)
        with pytest.raises(InvalidInputError, match=rf"another rerank batch run .*{lock.name}"):
            run_batch(src, tmp_path / output, reranker=reranker, progress=False)
        assert not read_output(tmp_path / output) if (tmp_path / output).is_dir() else True
    finally:
        held.close()
        held.release()
    assert run_batch(src, tmp_path / output, reranker=reranker, progress=False).rows == 3


def test_a_second_process_on_a_locked_output_exits_2(tmp_path: Path) -> None:
    from rerank_core.batch._rows import open_output

    src = write_jsonl(tmp_path / "in.jsonl", make_rows(1))
    held = open_output(tmp_path / "out.jsonl")
    try:
        cmd = [sys.executable, "-m", "rerank_core.cli", "batch", str(src), str(tmp_path / "out.jsonl")]
        proc = subprocess.run([*cmd, "--model", "M"], capture_output=True, text=True, timeout=120)
    finally:
        held.release()
    assert proc.returncode == 2 and "out.jsonl.lock" in proc.stderr, proc.stderr


def test_model_flag_replaces_a_described_reranker(
    tmp_path: Path, tiny_ce_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rerank_core.integrations import reranker_config

    src = write_jsonl(tmp_path / "in.jsonl", make_rows(2))
    config = tmp_path / "pipeline.json"
    config.write_text(json.dumps({"reranker": reranker_config(Reranker(FakeBackend(name="x")))}))
    argv = ["batch", str(src), str(tmp_path / "out.jsonl"), "--config", str(config), "--no-progress"]
    assert main([*argv, "--model", str(tiny_ce_path)]) == 0, capsys.readouterr().err
    want = run_batch(src, tmp_path / "want.jsonl", PipelineConfig(model=str(tiny_ce_path)), progress=False)
    assert want.rows == 2
    assert by_id(read_output(tmp_path / "out.jsonl")) == by_id(read_output(tmp_path / "want.jsonl"))


def test_parquet_is_read_batch_rows_at_a_time_and_a_long_jsonl_line_is_an_error_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    sizes: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(kwargs.get("batch_size"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    rows = make_rows(6)
    reranker, _ = fake_reranker()
    run_batch(
        write_parquet(tmp_path / "in.parquet", rows),
        tmp_path / "p.jsonl",
        reranker=reranker,
        batch_rows=3,
        progress=False,
    )
    assert sizes[-1] == 3  # the scan reads query_id alone, in larger batches; the work batch_rows rows
    monkeypatch.undo()
    rows[2]["candidates"][0]["text"] = "long " * 100
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    limit = len(json.dumps(rows[2])) - 1
    summary = run_batch(src, tmp_path / "out.jsonl", reranker=reranker, max_line_bytes=limit, progress=False)
    got = by_id(read_output(tmp_path / "out.jsonl"))
    assert summary.errors == 1 and "q2" not in got
    assert got["in.jsonl line 3"]["error"] == (
        f"{src} line 3 is longer than --max-line-bytes ({limit} bytes); not read"
    )
    check_complete([r for r in rows if r["query_id"] != "q2"], [got[f"q{i}"] for i in (0, 1, 3, 4, 5)])
    assert run_batch(src, tmp_path / "out.jsonl", reranker=reranker, max_line_bytes=limit).skipped == 6


def test_bad_batch_settings_are_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # a Ray start would exit 1 (no extra), not 2
    src = write_jsonl(tmp_path / "in.jsonl", make_rows(1))
    config = tmp_path / "pipeline.json"
    for table, key in [
        ({"actor_gpus": "lots"}, "batch.actor_gpus must be a number >= 0, got 'lots'"),
        ({"engine": "ray", "actor_gpus": -2}, "batch.actor_gpus must be a number >= 0, got -2"),
        ({"address": 5}, "batch.address must be a non-empty string"),
        ({"actors": 0}, "batch.actors must be an integer >= 1"),
        ({"batch_rows": "8"}, "batch.batch_rows must be an integer >= 1"),
        ({"engine": "spark"}, "batch.engine must be one of local, ray"),
        ({"top_n": 0}, "batch.top_n must be an integer >= 1"),
        ({"max_line_bytes": 0}, "batch.max_line_bytes must be an integer >= 1"),
    ]:
        config.write_text(json.dumps({"model": "M", "batch": table}))
        assert main(["batch", str(src), str(tmp_path / "o.jsonl"), "--config", str(config)]) == 2
        err = capsys.readouterr().err.strip()
        assert key in err and "\n" not in err, err
    for kwargs, name in [
        ({"num_cpus": 0}, "num_cpus"),
        ({"num_cpus": "2"}, "num_cpus"),
        ({"address": ""}, "address"),
        ({"actor_gpus": float("nan")}, "actor_gpus"),
        ({"actor_gpus": "1"}, "actor_gpus"),
        ({"max_line_bytes": 0}, "max_line_bytes"),
    ]:
        with pytest.raises(ConfigurationError, match=f"^{name}: "):
            run_batch(src, tmp_path / "o.jsonl", {"model": "M"}, engine="ray", progress=False, **kwargs)
    assert not (tmp_path / "o.jsonl").exists()


def test_a_reranker_built_by_the_run_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rerank_core.integrations import reranker_config

    closed: list[str] = []
    monkeypatch.setattr(FakeBackend, "close", lambda self: closed.append(self.fingerprint))
    src = write_jsonl(tmp_path / "in.jsonl", make_rows(2))
    config = {"reranker": reranker_config(Reranker(FakeBackend(name="built")))}
    run_batch(src, tmp_path / "out.jsonl", config, progress=False)
    assert closed == ["fake:built"]
    given, _ = fake_reranker()
    run_batch(src, tmp_path / "o2.jsonl", reranker=given, progress=False)
    assert closed == ["fake:built"]  # one the caller gave stays open: it is the caller's

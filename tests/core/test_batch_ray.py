"""``rerank batch --engine ray`` on a local Ray (2 CPUs, started once for the module): the same output as
the local engine (rows, candidates, scores), failing rows isolated, resume, Parquet in and out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray.data", reason="the Ray engine needs the ray extra: pip install 'rerank-core[ray]'")

from rerank_core.batch import read_output, run_batch
from rerank_core.cli import main
from rerank_core.pipeline_config import PipelineConfig

pytestmark = [
    pytest.mark.slow,  # a Ray start and each actor's model load take seconds
    # Ray Data's own DataContext warns about its deprecated fields when it is first made
    pytest.mark.filterwarnings(r"ignore:.*deprecated:DeprecationWarning:ray\.data\.context"),
]


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def rows_with_problems() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "query_id": f"q{i}",
            "query": f"query number {i} about zebras",
            "candidates": [
                {"id": f"d{i}-{j}", "text": f"passage {j} of query {i}: " + "zebra lion " * (j + 1)}
                for j in range(4)
            ],
        }
        for i in range(14)
    ]
    for j, c in enumerate(rows[3]["candidates"]):
        c["score"] = float(j)
    rows[5]["candidates"][1].pop("text")  # a bad row shape
    rows[8]["instruction"] = "find zebras"  # a cross-encoder saved without prompts takes none: that row fails
    rows[1]["candidates"][0]["text"] = "para one\u2028para two\u2029para three\x85end"  # not line breaks
    return rows


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {r["query_id"]: r for r in rows}
    assert len(out) == len(rows), "a query_id was written twice"
    return out


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    a, b = by_id(got), by_id(want)
    assert set(a) == set(b)
    for qid, row in b.items():
        assert a[qid]["error"] == row["error"]
        if row["ranked"] is None:
            assert a[qid]["ranked"] is None
            continue
        assert [c["id"] for c in a[qid]["ranked"]] == [c["id"] for c in row["ranked"]]
        for x, y in zip(a[qid]["ranked"], row["ranked"], strict=True):
            assert x["score"] == pytest.approx(y["score"], abs=1e-5)
            assert x["raw_score"] == pytest.approx(y["raw_score"], abs=1e-5)
            assert x["rank"] == y["rank"]


def test_ray_engine_resumes_to_the_local_engine_output_with_failing_rows(
    tmp_path: Path, tiny_ce_path: Path, ray_local: Any
) -> None:
    rows = rows_with_problems()
    src = tmp_path / "in.jsonl"
    # a UTF-8 BOM, raw U+2028/U+2029/U+0085 in a string (both engines split on \n alone), a blank line
    text = "\ufeff" + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "\n"
    src.write_bytes(text.encode("utf-8"))
    config = PipelineConfig(model=str(tiny_ce_path))
    local = run_batch(src, tmp_path / "local.jsonl", config, batch_rows=4, progress=False)
    assert (local.rows, local.errors) == (14, 2)
    # an interrupted run: its first 5 rows written, the 6th torn
    lines = (tmp_path / "local.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "ray.jsonl").write_text("".join(lines[:5]) + lines[5][:20])
    remote = run_batch(src, tmp_path / "ray.jsonl", config, engine="ray", batch_rows=4, progress=False)
    assert (remote.rows, remote.errors, remote.skipped) == (9, 2, 5)  # the actors skip the rows done
    got = read_output(tmp_path / "ray.jsonl")
    assert_same(got, read_output(tmp_path / "local.jsonl"))
    errors = {r["query_id"]: r["error"] for r in got if r["error"]}
    assert set(errors) == {"q5", "q8"}
    assert errors["q5"].startswith("candidates[1].text must be a string")
    assert "takes no instruction" in errors["q8"]
    for row in rows:  # every candidate once
        if row["query_id"] not in errors:
            ranked = by_id(got)[row["query_id"]]["ranked"]
            assert sorted(c["id"] for c in ranked) == sorted(c["id"] for c in row["candidates"])


def test_a_stopped_ray_run_resumes_on_the_local_engine_parquet_in_and_out(
    tmp_path: Path, tiny_ce_path: Path, ray_local: Any
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [r for r in rows_with_problems() if r["query_id"] not in {"q5", "q8"}]
    for row in rows:  # one Parquet schema: every candidate has a (null) score
        for c in row["candidates"]:
            c.setdefault("score", None)
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src, row_group_size=3)
    config = PipelineConfig(model=str(tiny_ce_path), options={"top_n": 3})
    run_batch(src, tmp_path / "local.jsonl", config, progress=False)
    out = tmp_path / "out.parquet"
    first = run_batch(src, out, config, engine="ray", batch_rows=2, part_rows=2, limit=5, progress=False)
    assert (first.rows, first.remaining) == (5, 7)
    assert len(read_output(out)) == 5  # parts of 2; the last, short part is written at the stop
    argv = ["batch", str(src), str(out), "--model", str(tiny_ce_path), "--top-n", "3", "--part-rows", "2"]
    assert main([*argv, "--no-progress"]) == 0  # the same layout whatever the engine
    got = read_output(out)
    assert_same(got, read_output(tmp_path / "local.jsonl"))
    assert all(len(r["ranked"]) == 3 for r in got)


def test_ray_lines_are_the_local_engine_lines_and_bad_lines_are_error_rows() -> None:
    """The read side of the Ray engine without Ray: :func:`split_lines` and the actor's parsing."""
    from rerank_core.batch.ray_engine import RerankActor, split_lines

    rows = [{"query_id": "a", "text": "x\u2028y\u0085z"}, {"query_id": "b"}]
    data = ("\ufeff" + "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n{broken\n").encode()
    data += b'"no id"\n' + b'{"query_id": "long", "pad": "' + b"p" * 100 + b'"}\n'
    lines = split_lines({"bytes": data, "path": "/d/in.jsonl"}, max_line_bytes=100)
    assert [(line["number"], line["long"]) for line in lines] == [
        (1, False),
        (2, False),
        (4, False),
        (5, False),
        (6, True),
    ]
    actor = RerankActor.__new__(RerankActor)
    actor._max_line_bytes = 100
    parsed, failed = actor._parse(lines)
    assert parsed[:2] == rows
    assert parsed[2] == {
        "query_id": "in.jsonl line 6",
        "error": "/d/in.jsonl line 6 is longer than --max-line-bytes (100 bytes); not read",
    }
    assert [(f["query_id"], f["error"]) for f in failed] == [
        (
            "in.jsonl line 4",
            "/d/in.jsonl line 4: not valid JSON (Expecting property name enclosed in double quotes)",
        ),
        ("in.jsonl line 5", "/d/in.jsonl line 5: no string query_id"),
    ]

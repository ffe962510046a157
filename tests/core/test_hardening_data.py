"""Issue 16, item 6: a malformed data file is one line naming the file and line (exit 2), never a traceback
or a silently different score. Real files in tmp_path; the CLI through ``rerank_core.cli.main`` and once as
a process."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rerank_core import cli
from rerank_core.cli._common import EXIT_USAGE, run_handler
from rerank_core.errors import InvalidInputError
from rerank_core.eval import load_beir
from rerank_core.train import read_rows

WORKSPACE = Path(__file__).resolve().parents[2]
DOCS = [
    {"_id": "d1", "title": "Zebra", "text": "zebra stripes are black and white"},
    {"_id": "d2", "title": "Lion", "text": "the lion mane is golden"},
    {"_id": "d3", "title": "", "text": "penguins live in antarctica"},
]
QUERIES = [{"_id": "q1", "text": "zebra stripes"}, {"_id": "q2", "text": "lion mane"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\n"


def write_folder(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES), encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text(QRELS, encoding="utf-8")
    return root


def latin1_byte(root: Path) -> str:
    path = root / "corpus.jsonl"
    path.write_bytes(path.read_bytes().replace(b"golden", b"gold\xe9n"))  # Latin-1 'é' on line 2
    return f"{path}:2:"


def truncated_gz(root: Path) -> str:
    path = root / "corpus.jsonl"
    lines = "".join(
        json.dumps({"_id": f"x{i}", "text": f"filler document number {i}"}) + "\n" for i in range(400)
    )
    data = gzip.compress((path.read_text() + lines).encode())
    path.unlink()
    (root / "corpus.jsonl.gz").write_bytes(data[: len(data) // 2])
    return f"{root / 'corpus.jsonl.gz'}:"


def corrupt_gz(root: Path) -> str:
    path = root / "corpus.jsonl"
    path.unlink()
    (root / "corpus.jsonl.gz").write_bytes(b"this is not gzip at all\n")
    return f"{root / 'corpus.jsonl.gz'}:1:"


def qrels_grade(grade: str) -> Callable[[Path], str]:
    def write(root: Path) -> str:
        (root / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t{grade}\n")
        return f"{root / 'qrels' / 'test.tsv'}:3:"

    return write


def duplicate_doc(root: Path) -> str:
    with (root / "corpus.jsonl").open("a") as fh:
        fh.write(json.dumps({"_id": "d1", "text": "a different zebra"}) + "\n")
    return f"{root / 'corpus.jsonl'}:4:"


def duplicate_query(root: Path) -> str:
    with (root / "queries.jsonl").open("a") as fh:
        fh.write(json.dumps({"_id": "q1", "text": "another question"}) + "\n")
    return f"{root / 'queries.jsonl'}:3:"


def duplicate_judgment(root: Path) -> str:
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\nq1\td1\t0\n")
    return f"{root / 'qrels' / 'test.tsv'}:4:"


def query_text(record: dict) -> Callable[[Path], str]:
    def write(root: Path) -> str:
        (root / "queries.jsonl").write_text(json.dumps(QUERIES[0]) + "\n" + json.dumps(record) + "\n")
        return f"{root / 'queries.jsonl'}:2:"

    return write


CASES = {
    "latin1-byte": latin1_byte,
    "truncated-gz": truncated_gz,
    "corrupt-gz": corrupt_gz,
    "grade-inf": qrels_grade("inf"),
    "grade-nan": qrels_grade("nan"),
    "grade-1.9": qrels_grade("1.9"),
    "grade-word": qrels_grade("high"),
    "duplicate-doc-id": duplicate_doc,
    "duplicate-query-id": duplicate_query,
    "duplicate-judgment": duplicate_judgment,
    "query-without-text": query_text({"_id": "q2"}),
    "query-null-text": query_text({"_id": "q2", "text": None}),
    "query-blank-text": query_text({"_id": "q2", "text": "   "}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_loader_refuses_bad_data_naming_file_and_line(tmp_path: Path, case: str) -> None:
    where = CASES[case](write_folder(tmp_path / "data"))
    with pytest.raises(InvalidInputError) as info:
        load_beir(tmp_path / "data")
    assert info.value.argument == "data_dir"
    assert where in str(info.value)


@pytest.mark.parametrize("case", list(CASES))
def test_cli_eval_bad_data_is_one_line_exit_2(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    where = CASES[case](write_folder(tmp_path / "data"))
    assert cli.main(["eval", str(tmp_path / "data"), "--model", "none", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("rerank eval: error: ") and captured.err.count("\n") == 1, captured.err
    assert where in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_cli_latin1_corpus_as_a_process(tmp_path: Path) -> None:
    where = latin1_byte(write_folder(tmp_path / "data"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(WORKSPACE / "core" / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "rerank_core.cli", "eval", str(tmp_path / "data"), "--model", "none"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and where in proc.stderr and "0xe9" in proc.stderr, proc.stderr


def test_well_formed_variants_still_load(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data")
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2.0\nq1\td3\t-1\nq2\td2\t1\n"
    )
    (root / "queries.jsonl").write_bytes(b"\xef\xbb\xbf" + (root / "queries.jsonl").read_bytes())  # BOM
    corpus = (root / "corpus.jsonl").read_bytes()
    (root / "corpus.jsonl").unlink()
    (root / "corpus.jsonl.gz").write_bytes(gzip.compress(corpus))
    ds = load_beir(root)
    assert ds.qrels == {"q1": {"d1": 2, "d3": -1}, "q2": {"d2": 1}}
    assert ds.queries == {"q1": "zebra stripes", "q2": "lion mane"}
    assert list(ds.corpus) == ["d1", "d2", "d3"]


def test_unused_query_without_text_is_not_refused(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data")
    with (root / "queries.jsonl").open("a") as fh:
        fh.write(json.dumps({"_id": "q-other-split"}) + "\n")
    assert list(load_beir(root).queries) == ["q1", "q2"]


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        (
            "rows.jsonl",
            b'{"query": "q", "text": "t", "label": 1}\n{"query": "q", "text": "caf\xe9", "label": 0}\n',
            2,
        ),
        ("rows.tsv", b"query\ttext\tlabel\nq\tt\t1\nq\tu\tinf\n", 3),
        ("rows.csv", b"q,t,1\nq,u,nan\n", 2),
    ],
    ids=["latin1-jsonl", "inf-label-tsv", "nan-label-csv"],
)
def test_read_rows_names_file_and_line(tmp_path: Path, name: str, content: bytes, line: int) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInputError) as info:
        read_rows(path)
    assert info.value.argument == "rows" and f"{path}:{line}:" in str(info.value)


def test_read_rows_truncated_gz(tmp_path: Path) -> None:
    path = tmp_path / "rows.tsv.gz"
    data = gzip.compress("".join(f"query {i}\ttext {i}\t{i % 2}\n" for i in range(2000)).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=r"rows\.tsv\.gz:\d+: the compressed file ends early"):
        read_rows(path)


def test_cli_finetune_rows_with_latin1_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b'{"query": "q", "text": "caf\xe9", "label": 1}\n')
    code = cli.main(
        [
            "finetune",
            "--rows",
            str(rows),
            "--base-model",
            "unused",
            "--output",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"{rows}:1:" in err, err


def test_run_handler_maps_invalid_input_to_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(_: object) -> int:
        raise InvalidInputError("data_dir", "/data/corpus.jsonl:7: bad\nline")

    assert run_handler("rerank x", handler, None) == EXIT_USAGE
    assert capsys.readouterr().err == "rerank x: error: data_dir: /data/corpus.jsonl:7: bad line\n"

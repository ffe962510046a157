"""Rows of ``rerank batch``: reading the input, ranking a chunk, writing and resuming the output.

Both engines share everything here: the local engine calls :func:`rank_rows` in the driver process, a Ray
actor calls it in its own process, and in both cases the driver alone writes the output
(:func:`open_output`), so that resume works the same way for both.

Input (``INPUT``: a ``.jsonl`` or ``.parquet`` file, or a folder of them, one format per folder) is
read twice, both times streaming: :func:`scan_input` first (every line is valid JSON with a string
``query_id``, and no ``query_id`` repeats: a bad file is refused before any model loads, naming the file and
line), then :func:`iter_rows` for the work itself.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_core._optional import require
from rerank_core.errors import InvalidInputError, RetryableBackendError

__all__ = [
    "Output",
    "Row",
    "RowError",
    "Source",
    "build_reranker",
    "error_record",
    "iter_rows",
    "open_output",
    "open_source",
    "parse_row",
    "rank_rows",
    "scan_input",
]

_FORMATS = {".jsonl": "jsonl", ".parquet": "parquet"}
_PART = re.compile(r"^part-(\d{6})\.(jsonl|parquet)$")
_PARQUET_BATCH = 1024


# -- input ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The input: its format (``"jsonl"`` or ``"parquet"``) and its files, in name order."""

    format: str
    files: tuple[Path, ...]


def open_source(path: str | os.PathLike[str], argument: str = "INPUT") -> Source:
    """The files behind ``path``: itself (a ``.jsonl`` / ``.parquet`` file), or the ``.jsonl`` or
    ``.parquet`` files of a folder (not its subfolders; names starting with ``.`` or ``_`` are skipped)."""
    root = Path(path).expanduser()
    if root.is_dir():
        files = sorted(
            p
            for p in root.iterdir()
            if p.is_file() and p.suffix.lower() in _FORMATS and not p.name.startswith((".", "_"))
        )
        if not files:
            raise InvalidInputError(argument, f"{root} holds no .jsonl or .parquet file")
        formats = {_FORMATS[p.suffix.lower()] for p in files}
        if len(formats) > 1:
            raise InvalidInputError(argument, f"{root} mixes .jsonl and .parquet files; keep one format")
        return Source(formats.pop(), tuple(files))
    if not root.exists():
        raise InvalidInputError(argument, f"{root} does not exist")
    fmt = _FORMATS.get(root.suffix.lower())
    if fmt is None:
        raise InvalidInputError(argument, f"{root}: expected a .jsonl or .parquet file, or a folder of them")
    return Source(fmt, (root,))


def _pyarrow(feature: str = "Parquet files in rerank batch") -> Any:
    require("pyarrow", extra="ray", feature=feature)
    return require("pyarrow.parquet", extra="ray", feature=feature, package="pyarrow")


def _jsonl_objects(file: Path, argument: str) -> Iterator[tuple[str, Any]]:
    with file.open("rb") as stream:
        for number, raw in enumerate(stream, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                why = getattr(exc, "msg", None) or "not UTF-8"
                raise InvalidInputError(argument, f"{file} line {number}: not valid JSON ({why})") from None
            yield f"{file} line {number}", obj


def _parquet_objects(
    file: Path, argument: str, columns: Sequence[str] | None = None
) -> Iterator[tuple[str, Any]]:
    pq = _pyarrow()
    try:
        reader = pq.ParquetFile(file)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise InvalidInputError(argument, f"{file}: not a readable Parquet file ({exc})") from None
    names = set(reader.schema_arrow.names)
    if "query_id" not in names:
        raise InvalidInputError(argument, f"{file}: no query_id column (columns: {', '.join(sorted(names))})")
    wanted = None if columns is None else [c for c in columns if c in names]
    number = 0
    for batch in reader.iter_batches(batch_size=_PARQUET_BATCH, columns=wanted):
        for obj in batch.to_pylist():
            number += 1
            yield f"{file} row {number}", obj


def iter_objects(
    source: Source, argument: str = "INPUT", columns: Sequence[str] | None = None
) -> Iterator[tuple[str, Any]]:
    """``(where, object)`` for every input row, streaming (``where``: "FILE line N" or "FILE row N")."""
    for file in source.files:
        if source.format == "jsonl":
            yield from _jsonl_objects(file, argument)
        else:
            yield from _parquet_objects(file, argument, columns)


def row_query_id(obj: Any, where: str, argument: str = "INPUT") -> str:
    """A row's ``query_id``, or an :class:`InvalidInputError` naming ``where`` (a row without one cannot be
    reported or resumed, so it stops the run rather than becoming an error row)."""
    qid = obj.get("query_id") if isinstance(obj, dict) else None
    if not isinstance(qid, str) or not qid:
        got = "not an object" if not isinstance(obj, dict) else f"query_id {qid!r}"
        raise InvalidInputError(argument, f"{where}: each row needs a non-empty string query_id ({got})")
    return qid


def scan_input(source: Source, argument: str = "INPUT") -> set[str]:
    """Every ``query_id`` of the input, checked: valid rows with a string id, none repeated."""
    seen: set[str] = set()
    for where, obj in iter_objects(source, argument, columns=("query_id",)):
        qid = row_query_id(obj, where, argument)
        if qid in seen:
            raise InvalidInputError(
                argument, f"{where}: query_id {qid!r} appears more than once (query ids must be unique)"
            )
        seen.add(qid)
    return seen


def iter_rows(
    source: Source, skip: set[str] | frozenset[str] = frozenset(), argument: str = "INPUT"
) -> Iterator[dict[str, Any]]:
    """The input's rows (as read: dicts) whose ``query_id`` is not in ``skip``."""
    for where, obj in iter_objects(source, argument):
        if row_query_id(obj, where, argument) not in skip:
            yield obj


# -- one row -------------------------------------------------------------------------------------------


class RowError(ValueError):
    """A row that cannot be ranked; written as that row's ``error``."""


@dataclass(frozen=True)
class Row:
    """A checked input row."""

    query_id: str
    query: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    scores: tuple[float, ...] | None
    instruction: str | None


def parse_row(obj: dict[str, Any]) -> Row:
    """A checked :class:`Row`, or a :class:`RowError` saying what is wrong with it."""
    qid = obj["query_id"]
    query = obj.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RowError(f"query must be a non-empty string, got {_short(query)}")
    candidates = obj.get("candidates")
    if not isinstance(candidates, (list, tuple)):
        raise RowError(f"candidates must be a list of objects, got {_short(candidates)}")
    ids: list[str] = []
    texts: list[str] = []
    scores: list[float | None] = []
    seen: set[str] = set()
    for i, cand in enumerate(candidates):
        if not isinstance(cand, dict):
            raise RowError(f"candidates[{i}] must be an object with id and text, got {_short(cand)}")
        cid, text, score = cand.get("id"), cand.get("text"), cand.get("score")
        if not isinstance(cid, str):
            raise RowError(f"candidates[{i}].id must be a string, got {_short(cid)}")
        if cid in seen:
            raise RowError(f"candidates[{i}].id {cid!r} repeats an earlier candidate's id")
        if not isinstance(text, str):
            raise RowError(f"candidates[{i}].text must be a string, got {_short(text)}")
        if score is not None and (
            isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)
        ):
            raise RowError(f"candidates[{i}].score must be a finite number, got {_short(score)}")
        seen.add(cid)
        ids.append(cid)
        texts.append(text)
        scores.append(None if score is None else float(score))
    given = [s is not None for s in scores]
    if any(given) and not all(given):
        missing = given.index(False)
        raise RowError(f"candidates[{missing}] has no score while others have one; give all or none")
    instruction = obj.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise RowError(f"instruction must be a string, got {_short(instruction)}")
    return Row(
        query_id=qid,
        query=query,
        ids=tuple(ids),
        texts=tuple(texts),
        scores=tuple(s for s in scores if s is not None) if all(given) and scores else None,
        instruction=instruction,
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, RowError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 500 else text[:497] + "..."


def error_record(query_id: str, exc: BaseException | str) -> dict[str, Any]:
    """The output row of a row that failed."""
    message = exc if isinstance(exc, str) else _one_line(exc)
    return {"query_id": query_id, "ranked": None, "error": message}


def _record(row: Row, response: Any) -> dict[str, Any]:
    ranked = [
        {
            "id": row.ids[r.index],
            "score": float(r.relevance_score),
            "raw_score": float(r.raw_score),
            "rank": rank,
        }
        for rank, r in enumerate(response.results, 1)
    ]
    return {"query_id": row.query_id, "ranked": ranked, "error": None}


def _rank_group(reranker: Any, rows: Sequence[Row]) -> list[dict[str, Any]]:
    told: dict[str, Any] = {} if rows[0].instruction is None else {"instruction": rows[0].instruction}
    scores = None if rows[0].scores is None else [list(r.scores or ()) for r in rows]
    responses = reranker.rerank_many(
        [r.query for r in rows], [list(r.texts) for r in rows], first_stage_scores=scores, **told
    )
    return [_record(r, resp) for r, resp in zip(rows, responses, strict=True)]


def _rank_alone(reranker: Any, row: Row) -> dict[str, Any]:
    try:
        return _rank_group(reranker, [row])[0]
    except RetryableBackendError:
        raise  # not the row's fault: stop the run, a resumed one ranks the row again
    except Exception as exc:
        return error_record(row.query_id, exc)


def rank_rows(reranker: Any, objs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One output record per input row, in input order: the rows that share an instruction and the
    presence of first-stage scores go through one ``rerank_many`` call (shared model batches); when such a
    call fails, its rows are ranked one by one so that only the failing row gets an ``error``.

    A :class:`~rerank_core.errors.RetryableBackendError` (a timeout, a 429, a 5xx after the back end's own
    retries) is raised instead of written: it says nothing about the row, and writing it would mark the
    row done; the run stops, and a resumed run ranks the row again."""
    objs = list(objs)
    out: list[dict[str, Any] | None] = [None] * len(objs)
    groups: dict[tuple[str | None, bool], list[tuple[int, Row]]] = {}
    for i, obj in enumerate(objs):
        try:
            row = parse_row(obj)
        except RowError as exc:
            out[i] = error_record(obj["query_id"], exc)
            continue
        groups.setdefault((row.instruction, row.scores is not None), []).append((i, row))
    for members in groups.values():
        rows = [row for _, row in members]
        try:
            records = _rank_group(reranker, rows)
        except RetryableBackendError:
            raise
        except Exception as exc:
            if len(rows) == 1:
                records = [error_record(rows[0].query_id, exc)]
            else:  # which row failed? each alone: only that one gets an error, the others go on
                records = [_rank_alone(reranker, row) for row in rows]
        for (i, _), record in zip(members, records, strict=True):
            out[i] = record
    return [r for r in out if r is not None]


def build_reranker(config: Any) -> Any:
    """The reranker of a pipeline configuration (a ``PipelineConfig.to_dict()`` mapping), warmed up on one
    pair: a model that cannot load fails here, once, rather than as an error on every row."""
    from rerank_core.pipeline_config import PipelineConfig

    reranker = PipelineConfig.from_mapping(config).build()
    reranker.rerank("warm up", ["warm up"], first_stage_scores=[0.0])
    return reranker


# -- output --------------------------------------------------------------------------------------------


def _parquet_schema() -> Any:
    pa = require("pyarrow", extra="ray", feature="Parquet output in rerank batch")
    ranked = pa.struct(
        [("id", pa.string()), ("score", pa.float64()), ("raw_score", pa.float64()), ("rank", pa.int64())]
    )
    return pa.schema([("query_id", pa.string()), ("ranked", pa.list_(ranked)), ("error", pa.string())])


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"


class Output:
    """Where results go; ``done`` holds the query ids already there (what a resumed run skips)."""

    path: Path
    done: set[str]

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class JsonlFileOutput(Output):
    """One JSONL file, appended to and flushed after every write: a resumed run keeps its complete lines
    and truncates a torn last line (the one being written when the run was killed)."""

    def __init__(self, path: Path, argument: str) -> None:
        self.path = path
        self.done = set()
        self.kept = 0
        if path.exists():
            self._recover(argument)
        self._stream: Any = None  # opened at the first write: a run that fails first leaves no file

    def _recover(self, argument: str) -> None:
        end = 0  # the byte just after the last complete line
        with self.path.open("rb") as stream:
            for number, raw in enumerate(stream, 1):
                if not raw.endswith(b"\n"):
                    break  # a torn last line: dropped below
                end += len(raw)
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                    qid = obj["query_id"]
                    if not isinstance(qid, str):
                        raise TypeError
                except (ValueError, KeyError, TypeError):
                    raise InvalidInputError(
                        argument,
                        f"{self.path} line {number}: not a rerank batch result row; refusing to resume",
                    ) from None
                self.done.add(qid)
                self.kept += 1
        if end < self.path.stat().st_size:
            with self.path.open("r+b") as stream:
                stream.truncate(end)

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        if records:
            if self._stream is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._stream = self.path.open("ab")
            self._stream.write("".join(_dumps(r) for r in records).encode("utf-8"))
            self._stream.flush()
            os.fsync(self._stream.fileno())

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


class PartFolderOutput(Output):
    """A folder of part files ``part-NNNNNN.jsonl`` / ``.parquet`` of ``part_rows`` rows each, each written
    under a hidden temporary name and renamed when complete: a resumed run keeps the complete parts,
    deletes leftover temporary files and numbers its parts after the last one."""

    def __init__(self, path: Path, fmt: str, part_rows: int, argument: str) -> None:
        self.path = path
        self.format = fmt
        self.part_rows = part_rows
        self.done = set()
        self.kept = 0
        self._buffer: list[dict[str, Any]] = []
        self._schema = _parquet_schema() if fmt == "parquet" else None
        self._next = 0
        for entry in sorted(path.iterdir()) if path.is_dir() else ():
            if entry.name.startswith(".part-") and entry.name.endswith(".tmp"):
                entry.unlink()  # an unfinished part of an interrupted run
                continue
            match = _PART.match(entry.name)
            if match is None:
                continue
            if match.group(2) != fmt:
                raise InvalidInputError(argument, f"{entry} is not a .{fmt} part; use another OUTPUT folder")
            self._next = max(self._next, int(match.group(1)) + 1)
            for qid in self._part_ids(entry, argument):
                self.done.add(qid)
                self.kept += 1

    def _part_ids(self, part: Path, argument: str) -> Iterator[str]:
        if self.format == "parquet":
            pq = _pyarrow()
            try:
                column = pq.read_table(part, columns=["query_id"]).column("query_id").to_pylist()
            except Exception as exc:
                raise InvalidInputError(argument, f"{part}: not a readable result part ({exc})") from None
            yield from column
        else:
            for where, obj in _jsonl_objects(part, argument):
                yield row_query_id(obj, where, argument)

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        self._buffer.extend(records)
        while len(self._buffer) >= self.part_rows:
            self._flush(self._buffer[: self.part_rows])
            del self._buffer[: self.part_rows]

    def _flush(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"part-{self._next:06d}.{self.format}"
        tmp = self.path / f".{name}.tmp"
        if self.format == "parquet":
            pa = require("pyarrow", extra="ray", feature="Parquet output in rerank batch")
            pq = _pyarrow()
            pq.write_table(pa.Table.from_pylist(list(records), schema=self._schema), tmp)
        else:
            with tmp.open("wb") as stream:
                stream.write("".join(_dumps(r) for r in records).encode("utf-8"))
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(tmp, self.path / name)
        self._next += 1

    def close(self) -> None:
        self._flush(self._buffer)
        self._buffer = []


def output_layout(path: str | os.PathLike[str]) -> str:
    """``"jsonl-file"`` for a ``.jsonl`` OUTPUT, ``"parquet-parts"`` for ``.parquet`` (a folder), else
    ``"jsonl-parts"`` (a folder)."""
    suffix = Path(path).suffix.lower()
    return {".jsonl": "jsonl-file", ".parquet": "parquet-parts"}.get(suffix, "jsonl-parts")


def open_output(
    path: str | os.PathLike[str], *, resume: bool = True, part_rows: int = 1000, argument: str = "OUTPUT"
) -> Output:
    """The output at ``path`` (see :func:`output_layout`), with what an earlier run wrote in ``done``;
    ``resume=False`` refuses an output that is not empty."""
    target = Path(path).expanduser()
    layout = output_layout(target)
    if layout == "jsonl-file":
        if target.is_dir():
            raise InvalidInputError(argument, f"{target} is a folder; a .jsonl OUTPUT is a file")
        nonempty = target.exists() and target.stat().st_size > 0
    else:
        if target.exists() and not target.is_dir():
            raise InvalidInputError(
                argument,
                f"{target} is a file; this OUTPUT is a folder of part files (end it in .jsonl for one file)",
            )
        nonempty = target.is_dir() and any(target.iterdir())
    if nonempty and not resume:
        raise InvalidInputError(argument, f"{target} is not empty and --no-resume was given")
    if layout == "jsonl-file":
        return JsonlFileOutput(target, argument)
    return PartFolderOutput(target, "parquet" if layout == "parquet-parts" else "jsonl", part_rows, argument)


def read_output(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every result row of an output (a ``.jsonl`` file or a folder of parts), in file order."""
    target = Path(path)
    files = [target] if target.is_file() else sorted(p for p in target.iterdir() if _PART.match(p.name))
    rows: list[dict[str, Any]] = []
    for file in files:
        if file.suffix == ".parquet":
            rows.extend(_pyarrow().read_table(file).to_pylist())
        else:
            rows.extend(obj for _, obj in _jsonl_objects(file, "OUTPUT"))
    return rows

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
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_core._optional import require
from rerank_core.errors import (
    ArgumentError,
    BackendError,
    InvalidInputError,
    NonRetryableBackendError,
    RetryableBackendError,
)
from rerank_core.remote.http import excerpt

__all__ = [
    "MAX_LINE_BYTES",
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
_PARQUET_SCAN_BATCH = 1024  # the scan reads the query_id column only
#: The longest JSONL input line read (``--max-line-bytes``); a longer one becomes an error row.
MAX_LINE_BYTES = 64 * 1024 * 1024
_LOCK = ".lock"


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


class LineError(dict):  # type: ignore[type-arg]
    """An input line that cannot be a row (longer than ``max_line_bytes``): ``{"query_id", "error"}``, its
    ``query_id`` made from the file's name and the line number (:func:`line_query_id`), written as an error
    row by :func:`rank_rows`."""


def line_query_id(file: str | os.PathLike[str], number: int) -> str:
    """The ``query_id`` of the error row of an input line too long to read: ``"NAME line N"``."""
    return f"{Path(file).name} line {number}"


def too_long(file: str | os.PathLike[str], number: int, max_line_bytes: int) -> LineError:
    return LineError(
        query_id=line_query_id(file, number),
        error=f"{file} line {number} is longer than --max-line-bytes ({max_line_bytes} bytes); not read",
    )


def parse_line(raw: bytes, first: bool) -> Any:
    """A JSONL line's object (``json.loads`` of the bytes; a UTF-8 BOM at the start of a file is dropped)."""
    if first and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return json.loads(raw)


def _lines(stream: Any, max_line_bytes: int | None) -> Iterator[tuple[int, bytes | None]]:
    """``(number, line)`` for the lines of a binary stream split on ``\\n`` alone; ``line`` is ``None`` for a
    line longer than ``max_line_bytes``, which is skipped in chunks, never held whole."""
    number = 0
    while True:
        raw = stream.readline() if max_line_bytes is None else stream.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if (
            max_line_bytes is not None
            and len(raw) > max_line_bytes
            and not (len(raw) == max_line_bytes + 1 and raw.endswith(b"\n"))
        ):
            while raw and not raw.endswith(b"\n"):  # the rest of the line, 1 MiB at a time
                raw = stream.readline(1 << 20)
            yield number, None
            continue
        yield number, raw


def _jsonl_objects(file: Path, argument: str, max_line_bytes: int | None = None) -> Iterator[tuple[str, Any]]:
    with file.open("rb") as stream:
        for number, raw in _lines(stream, max_line_bytes):
            if raw is None:
                yield f"{file} line {number}", too_long(file, number, max_line_bytes or 0)
                continue
            if not raw.strip():
                continue
            try:
                obj = parse_line(raw, number == 1)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                why = getattr(exc, "msg", None) or "not UTF-8"
                raise InvalidInputError(argument, f"{file} line {number}: not valid JSON ({why})") from None
            yield f"{file} line {number}", obj


def _parquet_objects(
    file: Path, argument: str, columns: Sequence[str] | None = None, batch_rows: int = _PARQUET_SCAN_BATCH
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
    for batch in reader.iter_batches(batch_size=batch_rows, columns=wanted):
        for obj in batch.to_pylist():
            number += 1
            yield f"{file} row {number}", obj


def iter_objects(
    source: Source,
    argument: str = "INPUT",
    columns: Sequence[str] | None = None,
    *,
    batch_rows: int = _PARQUET_SCAN_BATCH,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[tuple[str, Any]]:
    """``(where, object)`` for every input row, streaming (``where``: "FILE line N" or "FILE row N"):
    Parquet ``batch_rows`` rows at a time, JSONL a line at a time (a line longer than ``max_line_bytes``:
    a :class:`LineError`)."""
    for file in source.files:
        if source.format == "jsonl":
            yield from _jsonl_objects(file, argument, max_line_bytes)
        else:
            yield from _parquet_objects(file, argument, columns, batch_rows)


def row_query_id(obj: Any, where: str, argument: str = "INPUT") -> str:
    """A row's ``query_id``, or an :class:`InvalidInputError` naming ``where`` (a row without one cannot be
    reported or resumed, so it stops the run rather than becoming an error row)."""
    qid = obj.get("query_id") if isinstance(obj, dict) else None
    if not isinstance(qid, str) or not qid:
        got = "not an object" if not isinstance(obj, dict) else f"query_id {qid!r}"
        raise InvalidInputError(argument, f"{where}: each row needs a non-empty string query_id ({got})")
    return qid


def scan_input(source: Source, argument: str = "INPUT", max_line_bytes: int = MAX_LINE_BYTES) -> set[str]:
    """Every ``query_id`` of the input, checked: valid rows with a string id, none repeated."""
    seen: set[str] = set()
    for where, obj in iter_objects(source, argument, columns=("query_id",), max_line_bytes=max_line_bytes):
        qid = row_query_id(obj, where, argument)
        if qid in seen:
            raise InvalidInputError(
                argument, f"{where}: query_id {qid!r} appears more than once (query ids must be unique)"
            )
        seen.add(qid)
    return seen


def iter_rows(
    source: Source,
    skip: set[str] | frozenset[str] = frozenset(),
    argument: str = "INPUT",
    *,
    batch_rows: int = _PARQUET_SCAN_BATCH,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[dict[str, Any]]:
    """The input's rows (as read: dicts) whose ``query_id`` is not in ``skip``."""
    for where, obj in iter_objects(source, argument, batch_rows=batch_rows, max_line_bytes=max_line_bytes):
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
    return excerpt(text, limit=500)


def error_record(query_id: str, exc: BaseException | str) -> dict[str, Any]:
    """The output row of a row that failed."""
    message = exc if isinstance(exc, str) else _one_line(exc)
    return {"query_id": query_id, "ranked": None, "error": message}


class NotReranked(RowError):
    """A response that the reranker did not rank (``fail_open=True`` returned the input order after the
    back end failed, with NaN scores): written as the row's error, never as a ranking."""


def _outcome(row: Row, response: Any) -> dict[str, Any] | BaseException:
    """The row's record, or why it cannot have one: not reranked (fail_open), or a non-finite score (NaN
    or infinity, which JSON cannot hold and no ranking can use)."""
    if response.error is not None or any(not r.reranked for r in response.results):
        why = " ".join(str(response.error or "the back end failed").split())
        return NotReranked(f"not reranked (fail_open=True returned the input order): {why}")
    ranked = []
    for rank, r in enumerate(response.results, 1):
        score, raw = float(r.relevance_score), float(r.raw_score)
        if not (math.isfinite(score) and math.isfinite(raw)):
            return RowError(
                f"non-finite score for candidate {row.ids[r.index]!r} (score {score}, raw_score {raw})"
            )
        ranked.append({"id": row.ids[r.index], "score": score, "raw_score": raw, "rank": rank})
    return {"query_id": row.query_id, "ranked": ranked, "error": None}


def _rank_group(reranker: Any, rows: Sequence[Row]) -> list[dict[str, Any] | BaseException]:
    told: dict[str, Any] = {} if rows[0].instruction is None else {"instruction": rows[0].instruction}
    scores = None if rows[0].scores is None else [list(r.scores or ()) for r in rows]
    responses = reranker.rerank_many(
        [r.query for r in rows], [list(r.texts) for r in rows], first_stage_scores=scores, **told
    )
    outcomes = [_outcome(r, resp) for r, resp in zip(rows, responses, strict=True)]
    if len(rows) > 1:
        failed = next((o for o in outcomes if isinstance(o, NotReranked)), None)
        if failed is not None:  # fail_open hid which row failed: rank each alone, as for an exception
            raise failed
    return outcomes


#: HTTP statuses that are about the back end (credentials, permissions, address), never about a row.
_BACKEND_STATUSES = frozenset({401, 403, 404, 407})


def _backend_wide(exc: BaseException) -> bool:
    """A failure that says the back end cannot work at all (authentication, permission, a wrong address)."""
    return isinstance(exc, BackendError) and exc.status_code in _BACKEND_STATUSES


def _stop(exc: BaseException, why: str) -> NonRetryableBackendError:
    return NonRetryableBackendError(
        f"{why}: {_one_line(exc)}; the run stopped without writing those rows (rerun to rank them)"
    )


def _rank_alone(reranker: Any, row: Row) -> dict[str, Any] | BaseException:
    try:
        return _rank_group(reranker, [row])[0]
    except RetryableBackendError:
        raise  # not the row's fault: stop the run, a resumed one ranks the row again
    except Exception as exc:
        if _backend_wide(exc):
            raise _stop(exc, "the back end refused the request") from exc
        return exc


def rank_rows(reranker: Any, objs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One output record per input row, in input order: the rows that share an instruction and the
    presence of first-stage scores go through one ``rerank_many`` call (shared model batches); when such a
    call fails, its rows are ranked one by one so that only the failing row gets an ``error``. A response
    that is not reranked (``fail_open``) or has a non-finite score is the row's error.

    Failures that say nothing about the row are raised instead of written (writing them would mark the row
    done): a :class:`~rerank_core.errors.RetryableBackendError` (a timeout, a 429, a 5xx after the back
    end's own retries); a back-end error about credentials, permissions or the address (HTTP 401, 403, 404,
    407); and a chunk of two or more rows that all failed, each alone, with the same error (other than a
    :class:`~rerank_core.errors.ArgumentError`, which is about what the rows asked for): the back end is
    failing, not the rows. The run stops, and a resumed run ranks those rows again."""
    objs = list(objs)
    out: list[dict[str, Any] | BaseException | None] = [None] * len(objs)
    groups: dict[tuple[str | None, bool], list[tuple[int, Row]]] = {}
    for i, obj in enumerate(objs):
        if isinstance(obj, LineError):
            out[i] = error_record(obj["query_id"], obj["error"])
            continue
        try:
            row = parse_row(obj)
        except RowError as exc:
            out[i] = error_record(obj["query_id"], exc)
            continue
        groups.setdefault((row.instruction, row.scores is not None), []).append((i, row))
    attempted: list[dict[str, Any] | BaseException] = []
    for members in groups.values():
        rows = [row for _, row in members]
        outcomes: list[dict[str, Any] | BaseException]
        try:
            outcomes = _rank_group(reranker, rows)
        except RetryableBackendError:
            raise
        except Exception as exc:
            if _backend_wide(exc):
                raise _stop(exc, "the back end refused the request") from exc
            # which row failed? each alone: only that one gets an error, the others go on
            outcomes = [exc] if len(rows) == 1 else [_rank_alone(reranker, row) for row in rows]
        for (i, _), outcome in zip(members, outcomes, strict=True):
            out[i] = outcome
            attempted.append(outcome)
    failures = [o for o in attempted if isinstance(o, BaseException)]
    if len(attempted) >= 2 and len(failures) == len(attempted):
        first = failures[0]
        same = {(type(f), _one_line(f)) for f in failures} == {(type(first), _one_line(first))}
        if same and not isinstance(first, ArgumentError):
            why = f"every row of a chunk ({len(failures)} rows) failed alone with the same error"
            raise _stop(first, why)
    return [
        error_record(objs[i]["query_id"], o) if isinstance(o, BaseException) else o
        for i, o in enumerate(out)
        if o is not None
    ]


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


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of an OUTPUT: ``OUTPUT.lock`` beside a ``.jsonl`` file, ``.lock`` inside a folder."""
    target = Path(path).expanduser()
    if output_layout(target) == "jsonl-file":
        return target.with_name(target.name + _LOCK)
    return target / _LOCK


class OutputLock:
    """An exclusive ``fcntl.flock`` on the OUTPUT's lock file, held for the whole run, so that two runs never
    write one OUTPUT at once (the second is refused, naming the lock). The file stays when the run ends
    (deleting it would let a waiting run and a new one both lock); the lock goes with the process."""

    def __init__(self, path: Path, argument: str) -> None:
        import fcntl  # POSIX only: imported here so that importing rerank_core.batch works everywhere

        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise InvalidInputError(
                argument,
                f"{path.parent if path.name == _LOCK else path.with_name(path.name[: -len(_LOCK)])} is being "
                f"written by another rerank batch run (it holds the lock {path}); wait for it to end or "
                "choose another OUTPUT",
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


class Output:
    """Where results go; ``done`` holds the query ids already there (what a resumed run skips)."""

    path: Path
    done: set[str]
    retried: int = 0  # error rows removed by retry_errors, to be ranked again
    lock: OutputLock | None = None

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def _replace_file(path: Path, write: Any) -> None:
    """Rewrite ``path`` atomically: ``write(tmp)`` writes a hidden temporary file beside it, then it is
    renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.retry.tmp")
    write(tmp)
    os.replace(tmp, path)


class JsonlFileOutput(Output):
    """One JSONL file, appended to and flushed after every write: a resumed run keeps its complete lines
    and truncates a torn last line (the one being written when the run was killed). ``retry_errors``: the
    error rows of these query ids are removed first (the file is rewritten without them)."""

    def __init__(self, path: Path, argument: str, retry_errors: Container[str] = ()) -> None:
        self.path = path
        self.done = set()
        self.kept = 0
        if path.exists():
            self._recover(argument, retry_errors)
        self._stream: Any = None  # opened at the first write: a run that fails first leaves no file

    def _recover(self, argument: str, retry_errors: Container[str]) -> None:
        end = 0  # the byte just after the last complete line
        retry = 0
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
                if obj.get("error") is not None and qid in retry_errors:
                    retry += 1
                    continue
                self.done.add(qid)
                self.kept += 1
        if retry:
            self._drop_errors(end, retry_errors)
            self.retried = retry
        elif end < self.path.stat().st_size:
            with self.path.open("r+b") as stream:
                stream.truncate(end)

    def _drop_errors(self, end: int, retry_errors: Container[str]) -> None:
        def write(tmp: Path) -> None:
            with self.path.open("rb") as src, tmp.open("wb") as dst:
                for raw in src:
                    if not raw.endswith(b"\n"):
                        break  # the torn last line
                    obj = json.loads(raw) if raw.strip() else None
                    if obj is not None and obj.get("error") is not None and obj["query_id"] in retry_errors:
                        continue
                    dst.write(raw)
                dst.flush()
                os.fsync(dst.fileno())

        _replace_file(self.path, write)

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
    deletes leftover temporary files and numbers its parts after the last one. ``retry_errors``: each part
    holding error rows of these query ids is rewritten without them first."""

    def __init__(
        self, path: Path, fmt: str, part_rows: int, argument: str, retry_errors: Container[str] = ()
    ) -> None:
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
            retry = 0
            for qid, failed in self._part_rows(entry, argument):
                if failed and qid in retry_errors:
                    retry += 1
                    continue
                self.done.add(qid)
                self.kept += 1
            if retry:
                self._drop_errors(entry, retry_errors)
                self.retried += retry

    def _part_rows(self, part: Path, argument: str) -> Iterator[tuple[str, bool]]:
        """``(query_id, has an error)`` for each row of a part."""
        if self.format == "parquet":
            pq = _pyarrow()
            try:
                table = pq.read_table(part, columns=["query_id", "error"])
            except Exception as exc:
                raise InvalidInputError(argument, f"{part}: not a readable result part ({exc})") from None
            ids, errors = table.column("query_id").to_pylist(), table.column("error").to_pylist()
            yield from zip(ids, (e is not None for e in errors), strict=True)
        else:
            for where, obj in _jsonl_objects(part, argument):
                yield row_query_id(obj, where, argument), obj.get("error") is not None

    def _drop_errors(self, part: Path, retry_errors: Container[str]) -> None:
        keep = [r for r in read_output(part) if r.get("error") is None or r["query_id"] not in retry_errors]

        def write(tmp: Path) -> None:
            self._write_part(tmp, keep)

        _replace_file(part, write)  # a part holds at most part_rows rows: read whole

    def _write_part(self, tmp: Path, records: Sequence[dict[str, Any]]) -> None:
        if self.format == "parquet":
            pa = require("pyarrow", extra="ray", feature="Parquet output in rerank batch")
            pq = _pyarrow()
            pq.write_table(pa.Table.from_pylist(list(records), schema=self._schema), tmp)
        else:
            with tmp.open("wb") as stream:
                stream.write("".join(_dumps(r) for r in records).encode("utf-8"))
                stream.flush()
                os.fsync(stream.fileno())

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
        self._write_part(tmp, records)
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
    path: str | os.PathLike[str],
    *,
    resume: bool = True,
    part_rows: int = 1000,
    argument: str = "OUTPUT",
    retry_errors: Container[str] = (),
) -> Output:
    """The output at ``path`` (see :func:`output_layout`), locked for this run (:class:`OutputLock`; call
    ``release()`` after ``close()``), with what an earlier run wrote in ``done``; ``resume=False`` refuses an
    output that is not empty; ``retry_errors``: remove the error rows of these query ids first (so that they
    are not done, and are ranked again)."""
    target = Path(path).expanduser()
    layout = output_layout(target)
    if layout == "jsonl-file":
        if target.is_dir():
            raise InvalidInputError(argument, f"{target} is a folder; a .jsonl OUTPUT is a file")
    elif target.exists() and not target.is_dir():
        raise InvalidInputError(
            argument,
            f"{target} is a file; this OUTPUT is a folder of part files (end it in .jsonl for one file)",
        )
    lock = OutputLock(lock_path(target), argument)  # before anything is read, cut or deleted
    try:
        if layout == "jsonl-file":
            nonempty = target.exists() and target.stat().st_size > 0
        else:
            nonempty = target.is_dir() and any(p.name != _LOCK for p in target.iterdir())
        if nonempty and not resume:
            raise InvalidInputError(argument, f"{target} is not empty and --no-resume was given")
        output: Output
        if layout == "jsonl-file":
            output = JsonlFileOutput(target, argument, retry_errors)
        else:
            fmt = "parquet" if layout == "parquet-parts" else "jsonl"
            output = PartFolderOutput(target, fmt, part_rows, argument, retry_errors)
    except BaseException:
        lock.release()
        raise
    output.lock = lock
    return output


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

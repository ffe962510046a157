"""Offline batch reranking: a JSONL or Parquet file of queries with their candidates in, rankings out.

```python
from rerank_core.batch import run_batch
from rerank_core.pipeline_config import PipelineConfig

summary = run_batch("queries.jsonl", "ranked.jsonl", PipelineConfig(model="models/reference-reranker"))
print(summary.line())  # rows, errors, seconds, rows/s
```

An input row is ``{"query_id", "query", "candidates": [{"id", "text", "score"?}], "instruction"?}``
(:class:`BatchInputRow`); an output row is ``{"query_id", "ranked": [{"id", "score", "raw_score",
"rank"}], "error": null}`` (:class:`BatchOutputRow`), or ``"ranked": null`` and a one-line ``"error"`` for a
row that could not be ranked. The engines are :mod:`rerank_core.batch.local` (one process) and
:mod:`rerank_core.batch.ray_engine` (a Ray actor pool); both stream the input, and the calling process
writes the output, so resume works the same way for both: see ``docs/batch.md``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from rerank_core.batch._rows import (
    MAX_LINE_BYTES,
    open_output,
    open_source,
    output_layout,
    read_output,
    scan_input,
)
from rerank_core.errors import ConfigurationError, InvalidInputError

__all__ = [
    "BatchCandidate",
    "BatchInputRow",
    "BatchOutputRow",
    "BatchSummary",
    "RankedCandidate",
    "output_layout",
    "read_output",
    "run_batch",
]

ENGINES = ("local", "ray")


class BatchCandidate(TypedDict, total=False):
    """A candidate of an input row: ``id`` and ``text`` are required; ``score`` is the first stage's."""

    id: str
    text: str
    score: float


class BatchInputRow(TypedDict, total=False):
    """An input row: ``query_id`` (unique in the input), ``query`` and ``candidates`` are required."""

    query_id: str
    query: str
    candidates: list[BatchCandidate]
    instruction: str


class RankedCandidate(TypedDict):
    """A ranked candidate: ``score`` is the result's ``relevance_score``, ``rank`` counts from 1."""

    id: str
    score: float
    raw_score: float
    rank: int


class BatchOutputRow(TypedDict):
    """An output row: ``ranked`` best first and ``error`` ``None``, or ``ranked`` ``None`` and the error."""

    query_id: str
    ranked: list[RankedCandidate] | None
    error: str | None


@dataclass(frozen=True)
class BatchSummary:
    """What a run did: ``rows`` ranked (or failed) in this run, of which ``errors`` failed; ``skipped``:
    rows already in the output (resume); ``remaining``: rows left undone (``limit`` reached);
    ``seconds``: the whole run, model loading included; ``first_seconds``: until the first rows were
    written (the rest is the steady state: :attr:`steady_rows_per_second`)."""

    rows: int
    errors: int
    skipped: int
    remaining: int
    seconds: float
    output: str
    engine: str
    first_seconds: float | None = None
    steady_rows: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_rows_per_second(self) -> float | None:
        """Rows per second after the first rows were written (without start-up and model loading)."""
        if self.first_seconds is None or self.seconds <= self.first_seconds:
            return None
        return self.steady_rows / (self.seconds - self.first_seconds)

    def line(self) -> str:
        """The one-line summary ``rerank batch`` prints."""
        extra = f", {self.skipped} already done" if self.skipped else ""
        left = f", {self.remaining} left (rerun to go on)" if self.remaining else ""
        return (
            f"{self.rows} rows, {self.errors} errors{extra}{left}, {self.seconds:.1f} s, "
            f"{self.rows_per_second:.2f} rows/s ({self.engine}) -> {self.output}"
        )


def _config_dict(config: Any) -> dict[str, Any]:
    from rerank_core.pipeline_config import PipelineConfig

    if isinstance(config, PipelineConfig):
        return config.to_dict()
    if isinstance(config, Mapping):
        return PipelineConfig.from_mapping(config).to_dict()
    raise ConfigurationError(
        "config", f"must be a PipelineConfig or its mapping, got {type(config).__name__}"
    )


def run_batch(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: Any = None,
    *,
    reranker: Any = None,
    engine: str = "local",
    batch_rows: int = 32,
    part_rows: int = 1000,
    resume: bool = True,
    limit: int | None = None,
    address: str | None = None,
    actors: int = 1,
    actor_gpus: float = 0.0,
    num_cpus: int | None = None,
    progress: bool = True,
    retry_errors: bool = False,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> BatchSummary:
    """Rank every row of ``input`` into ``output`` and return what was done.

    - ``config``: a :class:`~rerank_core.pipeline_config.PipelineConfig` (or its mapping), built once per
      process or actor; or, for the local engine only, ``reranker``: a :class:`~rerank_core.Reranker`
      already built.
    - ``output``: a ``.jsonl`` file, or a folder of part files of ``part_rows`` rows (``.parquet``
      parts when its name ends in ``.parquet``, else ``.jsonl`` parts).
    - ``resume``: skip the query ids already in ``output``; ``False`` refuses a non-empty output.
    - ``retry_errors``: on resume, rank again the rows written with an error (they are removed from
      ``output`` first, then written anew).
    - ``max_line_bytes``: a longer JSONL input line is not read; it is written as an error row whose
      ``query_id`` is ``"FILE_NAME line N"``.
    - ``limit``: stop after this many new rows (the rest are left for a later run).
    - ``engine="ray"``: ``actors`` actors (``actor_gpus`` GPUs each) on the cluster at ``address``, or on
      a local Ray with ``num_cpus``; see :func:`rerank_core.batch.ray_engine.iter_ray`.

    The input is checked first (valid rows, unique query ids: an :class:`InvalidInputError` naming the file
    and line otherwise), then streamed ``batch_rows`` rows at a time. Every argument is checked before
    anything starts (a :class:`~rerank_core.errors.ConfigurationError` naming it).
    """
    check_arguments(
        engine=engine,
        batch_rows=batch_rows,
        part_rows=part_rows,
        actors=actors,
        limit=limit,
        address=address,
        actor_gpus=actor_gpus,
        num_cpus=num_cpus,
        max_line_bytes=max_line_bytes,
    )
    if (config is None) == (reranker is None):
        raise ConfigurationError("config", "give exactly one of config and reranker")
    if reranker is not None and engine != "local":
        raise ConfigurationError("reranker", "a built reranker runs on the local engine only; give config")
    source = open_source(input)
    out_path = Path(output).expanduser()
    _check_apart(Path(input).expanduser(), out_path, source.files)
    config_dict = None if config is None else _config_dict(config)
    ids = scan_input(source, max_line_bytes=max_line_bytes)
    sink = open_output(
        out_path, resume=resume, part_rows=part_rows, retry_errors=ids if retry_errors else frozenset()
    )
    skipped = len(ids & sink.done)
    todo = len(ids) - skipped
    target = todo if limit is None else min(limit, todo)
    started = time.perf_counter()
    rows = errors = 0
    first_rows, first_seconds = 0, None
    bar: Any = None
    records_iter: Any = None
    built: Any = None  # a reranker built here is closed here; one given by the caller is the caller's
    try:
        if target > 0:
            if engine == "local":
                from rerank_core.batch.local import iter_local

                if reranker is None:
                    from rerank_core.batch._rows import build_reranker

                    reranker = built = build_reranker(config_dict)
                records_iter = iter_local(
                    source, sink.done, reranker, batch_rows=batch_rows, max_line_bytes=max_line_bytes
                )
            else:
                from rerank_core.batch.ray_engine import iter_ray, require_ray

                require_ray()  # before the progress bar: a missing extra is one line
                records_iter = iter_ray(
                    source,
                    sink.done & ids,
                    config_dict or {},
                    batch_rows=batch_rows,
                    actors=actors,
                    actor_gpus=actor_gpus,
                    address=address,
                    num_cpus=num_cpus,
                    max_line_bytes=max_line_bytes,
                )
            bar = _progress(target, progress)  # after the local model loaded: its errors stay one line
            for records in records_iter:
                records = records[: target - rows]
                sink.write(records)
                if first_seconds is None:
                    first_rows, first_seconds = len(records), time.perf_counter() - started
                rows += len(records)
                errors += sum(1 for r in records if r["error"] is not None)
                if bar is not None:
                    bar.update(len(records))
                if rows >= target:
                    break
    finally:
        try:
            if records_iter is not None:
                records_iter.close()  # stops the engine (a Ray pipeline included) before the output closes
            sink.close()
        finally:
            sink.release()  # the output's lock
            if built is not None:
                built.backend.close()
            if bar is not None:
                bar.close()
    return BatchSummary(
        rows=rows,
        errors=errors,
        skipped=skipped,
        remaining=todo - rows,
        seconds=time.perf_counter() - started,
        output=str(out_path),
        engine=engine,
        first_seconds=first_seconds,
        steady_rows=rows - first_rows,
    )


def _whole(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigurationError(name, f"must be an integer >= {low}, got {value!r}")


def check_arguments(
    *,
    engine: Any = "local",
    batch_rows: Any = 32,
    part_rows: Any = 1000,
    actors: Any = 1,
    limit: Any = None,
    address: Any = None,
    actor_gpus: Any = 0.0,
    num_cpus: Any = None,
    max_line_bytes: Any = MAX_LINE_BYTES,
) -> None:
    """A :class:`~rerank_core.errors.ConfigurationError` naming the first bad argument of :func:`run_batch`
    (checked before the input is read or Ray starts)."""
    if engine not in ENGINES:
        raise ConfigurationError("engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    for name, value in (
        ("batch_rows", batch_rows),
        ("part_rows", part_rows),
        ("actors", actors),
        ("max_line_bytes", max_line_bytes),
    ):
        _whole(name, value, 1)
    if limit is not None:
        _whole("limit", limit, 0)
    if num_cpus is not None:
        _whole("num_cpus", num_cpus, 1)
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ConfigurationError(
            "address", f"must be a non-empty string (a Ray address or auto), got {address!r}"
        )
    if (
        isinstance(actor_gpus, bool)
        or not isinstance(actor_gpus, (int, float))
        or not math.isfinite(actor_gpus)
        or actor_gpus < 0
    ):
        raise ConfigurationError("actor_gpus", f"must be a number >= 0, got {actor_gpus!r}")


def _check_apart(input_path: Path, out_path: Path, files: tuple[Path, ...]) -> None:
    """OUTPUT must be neither an input file nor inside the INPUT folder (where a .jsonl OUTPUT would become
    an input file of the next run)."""
    out = out_path.resolve()
    inp = input_path.resolve()
    if out == inp or any(out == f.resolve() for f in files):
        raise InvalidInputError("OUTPUT", f"{out_path} is the input; write the results somewhere else")
    if inp.is_dir() and out.is_relative_to(inp):
        raise InvalidInputError(
            "OUTPUT", f"{out_path} is inside the INPUT folder {input_path}; write the results somewhere else"
        )


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="row", desc="rerank batch", file=sys.stderr, dynamic_ncols=True)

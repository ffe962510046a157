"""The Ray engine of ``rerank batch``: Ray Data reads the input on the cluster, a pool of actors
(:class:`RerankActor`, each building its :class:`~rerank_core.Reranker` once from the pipeline's
configuration) ranks it with ``map_batches``, and the results stream back to the driver, which writes them
(so that the output and its resume are the same as the local engine's).

JSONL input is read as bytes (``ray.data.read_binary_files``, a file per read task), split into lines on
``\\n`` alone (:func:`split_lines`: the lines the local engine reads, where ``str.splitlines`` of
``read_text`` would also split on U+2028, U+2029 and U+0085, legal inside JSON strings) and parsed in the
actors (``json.loads`` of the bytes, a UTF-8 BOM dropped), so that one bad row never breaks a block's
schema and a line that does not parse is an error row, not a failed job; Parquet input with
``ray.data.read_parquet``. Importing this module does not
import Ray (it is the ``ray`` extra: ``pip install 'rerank-core[ray]'``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from rerank_core._optional import require
from rerank_core.batch._rows import (
    MAX_LINE_BYTES,
    Source,
    build_reranker,
    error_record,
    line_query_id,
    rank_rows,
    too_long,
)
from rerank_core.errors import BackendError, RerankError

__all__ = ["RerankActor", "iter_ray", "require_ray", "split_lines"]

_FEATURE = "rerank batch --engine ray"


class RerankActor:
    """The ``map_batches`` UDF: builds the reranker once (``config``: a
    :meth:`~rerank_core.pipeline_config.PipelineConfig.to_dict` mapping) and ranks each batch of rows,
    skipping the query ids in the object ``skip[0]`` refers to (those already in the output)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        source_format: str,
        skip: list[Any] | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self._reranker = build_reranker(config)
        self._format = source_format
        self._max_line_bytes = max_line_bytes
        self._skip: frozenset[str] = frozenset()
        if skip:
            import ray

            self._skip = ray.get(skip[0])

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = batch.to_pylist()
        failed: list[dict[str, Any]] = []
        if self._format == "jsonl":
            rows, failed = self._parse(rows)
        rows = [r for r in rows if r["query_id"] not in self._skip]
        records = [r for r in failed if r["query_id"] not in self._skip] + rank_rows(self._reranker, rows)
        return pa.table(
            {
                "query_id": pa.array([r["query_id"] for r in records], pa.string()),
                "record": pa.array([json.dumps(r, ensure_ascii=False) for r in records], pa.string()),
            }
        )

    def _parse(self, lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The objects of :func:`split_lines` rows, and error records for the lines that are not rows (the
        driver's scan checked them, so only a file changed since then gets here)."""
        rows: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for line in lines:
            path, number = line["path"], line["number"]
            if line["long"]:
                rows.append(too_long(path, number, self._max_line_bytes))
                continue
            try:
                obj = json.loads(line["line"])
            except (ValueError, UnicodeDecodeError) as exc:
                why = getattr(exc, "msg", None) or "not UTF-8"
                failed.append(
                    error_record(line_query_id(path, number), f"{path} line {number}: not valid JSON ({why})")
                )
                continue
            qid = obj.get("query_id") if isinstance(obj, dict) else None
            if not isinstance(qid, str) or not qid:
                failed.append(
                    error_record(line_query_id(path, number), f"{path} line {number}: no string query_id")
                )
                continue
            rows.append(obj)
        return rows, failed

    def __del__(self) -> None:  # Ray Data calls it when the actor pool shuts down
        reranker = getattr(self, "_reranker", None)
        if reranker is not None:
            self._reranker = None
            reranker.backend.close()


def split_lines(row: Mapping[str, Any], max_line_bytes: int = MAX_LINE_BYTES) -> list[dict[str, Any]]:
    """The non-blank lines of a file (a ``read_binary_files`` row: ``bytes`` and ``path``), split on
    ``b"\\n"`` alone as the local engine reads them, numbered from 1 (blank lines count), a UTF-8 BOM dropped
    from the first; ``long``: the line is longer than ``max_line_bytes`` (its bytes are not passed on)."""
    out: list[dict[str, Any]] = []
    path = row["path"]
    for number, raw in enumerate(row["bytes"].split(b"\n"), 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        long = len(raw) > max_line_bytes
        out.append({"path": path, "number": number, "line": b"" if long else raw, "long": long})
    return out


def require_ray() -> Any:
    """The ``ray`` module, with Ray Data; a :class:`~rerank_core.errors.MissingDependencyError` naming
    the ``ray`` extra otherwise."""
    ray = require("ray", extra="ray", feature=_FEATURE)
    require("ray.data", extra="ray", feature=_FEATURE, package="ray[data]")
    return ray


def _ray_failure(exc: BaseException) -> BackendError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return BackendError(f"the Ray job failed: {type(exc).__name__}: {last}")


def iter_ray(
    source: Source,
    skip: set[str] | frozenset[str],
    config: Mapping[str, Any],
    *,
    batch_rows: int = 32,
    actors: int = 1,
    actor_gpus: float = 0.0,
    address: str | None = None,
    num_cpus: int | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[list[dict[str, Any]]]:
    """The output records of the input rows not in ``skip``, in the order the actors finish them.

    Connects to ``address`` (``"auto"``: the cluster this driver runs in, as under ``ray job submit``), or
    starts a local Ray with ``num_cpus`` (default ``actors + 1``: one per actor plus one for reading);
    a Ray already initialized in this process is used as it is, and left running."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=num_cpus or actors + 1, include_dashboard=False)
        started = True
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver's own progress bar counts rows
        files = [str(f) for f in source.files]
        if source.format == "jsonl":
            dataset = ray.data.read_binary_files(files, include_paths=True).flat_map(
                split_lines, fn_kwargs={"max_line_bytes": max_line_bytes}
            )
        else:
            dataset = ray.data.read_parquet(files)
        skip_ref = [ray.put(frozenset(skip))] if skip else None
        ranked = dataset.map_batches(
            RerankActor,
            fn_constructor_kwargs={
                "config": dict(config),
                "source_format": source.format,
                "skip": skip_ref,
                "max_line_bytes": max_line_bytes,
            },
            compute=ray.data.ActorPoolStrategy(size=actors),
            batch_size=batch_rows,
            batch_format="pyarrow",
            num_cpus=1,
            num_gpus=actor_gpus or None,
        )
        try:
            for batch in ranked.iter_batches(batch_size=None, batch_format="pyarrow"):
                records = [json.loads(text) for text in batch.column("record").to_pylist()]
                if records:
                    yield records
        except RerankError:
            raise
        except Exception as exc:  # an actor that could not build its reranker, a lost node, ...
            raise _ray_failure(exc) from exc
    finally:
        if started:
            ray.shutdown()

"""The Ray engine of ``rerank batch``: Ray Data reads the input on the cluster, a pool of actors
(:class:`RerankActor`, each building its :class:`~rerank_core.Reranker` once from the pipeline's
configuration) ranks it with ``map_batches``, and the results stream back to the driver, which writes them
(so that the output and its resume are the same as the local engine's).

JSONL input is read as text lines (``ray.data.read_text``) and parsed in the actors, so that one bad row
never breaks a block's schema; Parquet input with ``ray.data.read_parquet``. Importing this module does not
import Ray (it is the ``ray`` extra: ``pip install 'rerank-core[ray]'``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from rerank_core._optional import require
from rerank_core.batch._rows import Source, build_reranker, rank_rows
from rerank_core.errors import BackendError, RerankError

__all__ = ["RerankActor", "iter_ray", "require_ray"]

_FEATURE = "rerank batch --engine ray"


class RerankActor:
    """The ``map_batches`` UDF: builds the reranker once (``config``: a
    :meth:`~rerank_core.pipeline_config.PipelineConfig.to_dict` mapping) and ranks each batch of rows,
    skipping the query ids in the object ``skip[0]`` refers to (those already in the output)."""

    def __init__(self, config: Mapping[str, Any], source_format: str, skip: list[Any] | None = None) -> None:
        self._reranker = build_reranker(config)
        self._format = source_format
        self._skip: frozenset[str] = frozenset()
        if skip:
            import ray

            self._skip = ray.get(skip[0])

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = batch.to_pylist()
        if self._format == "jsonl":  # checked by the driver's scan: valid JSON with a string query_id
            rows = [json.loads(r["text"]) for r in rows if r["text"].strip()]
        rows = [r for r in rows if r["query_id"] not in self._skip]
        records = rank_rows(self._reranker, rows)
        return pa.table(
            {
                "query_id": pa.array([r["query_id"] for r in records], pa.string()),
                "record": pa.array([json.dumps(r, ensure_ascii=False) for r in records], pa.string()),
            }
        )


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
            dataset = ray.data.read_text(files, drop_empty_lines=True)
        else:
            dataset = ray.data.read_parquet(files)
        skip_ref = [ray.put(frozenset(skip))] if skip else None
        ranked = dataset.map_batches(
            RerankActor,
            fn_constructor_kwargs={"config": dict(config), "source_format": source.format, "skip": skip_ref},
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

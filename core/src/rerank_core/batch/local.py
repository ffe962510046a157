"""The local engine of ``rerank batch``: one process, one :class:`~rerank_core.Reranker`, chunks of
``batch_rows`` rows each ranked by one ``rerank_many`` call (so a chunk's pairs share model batches)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rerank_core.batch._rows import MAX_LINE_BYTES, Source, iter_rows, rank_rows

__all__ = ["iter_local"]


def iter_local(
    source: Source,
    skip: set[str] | frozenset[str],
    reranker: Any,
    *,
    batch_rows: int = 32,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[list[dict[str, Any]]]:
    """The output records of the input rows not in ``skip``, one list per chunk, in input order; reads
    one chunk at a time (Parquet ``batch_rows`` rows at a time, within one decoded row group; JSONL a line
    at a time, each at most ``max_line_bytes``), so memory holds about ``batch_rows`` rows."""
    chunk: list[dict[str, Any]] = []
    for obj in iter_rows(source, skip, batch_rows=batch_rows, max_line_bytes=max_line_bytes):
        chunk.append(obj)
        if len(chunk) >= batch_rows:
            yield rank_rows(reranker, chunk)
            chunk = []
    if chunk:
        yield rank_rows(reranker, chunk)

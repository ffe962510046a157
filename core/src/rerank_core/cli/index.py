"""``rerank index``: fill a late-interaction model's document-vector store ahead of time.

```
rerank index --model PATH_OR_ID --store DIR (DATA_DIR [--corpus-limit N] | --jsonl FILE)
             [--stored-dtype float16|int8|float32] [--document-length N] [--batch-size N] [--no-progress]
```

The documents are a BEIR folder's ``corpus.jsonl`` (each document's ``"title text"``, as ``rerank eval``
feeds it) or a JSONL file of ``{"text", "id"?, "title"?}`` objects (``"_id"`` also names the id). Each
document is windowed as a Reranker with the default long-text policy will window it (a Reranker with
another ``long_text`` policy, or a back end with another ``document_length`` than ``--document-length``,
makes other windows or another vector space, and finds nothing stored) and every window's token
vectors are stored in ``DIR`` (one SQLite file, :mod:`rerank_core.late_interaction`), keyed by the sha256 of
its text under the model's vector space; documents already there are skipped, so a rerun after an
interruption only encodes the rest. Reranking those documents later with
``LateInteractionBackend(model, store=DIR)`` then encodes only the query. Progress goes to stderr, then one
summary line (documents, windows, encoded, already stored, store size).

Exit codes: 0 done, 1 a failure while running, 2 bad arguments or bad input (the file and line are named),
or a model that is not a late-interaction model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rerank_core.cli._common import EXIT_OK, UsageError, one_line, positive_int
from rerank_core.errors import ConfigurationError, InvalidInputError

__all__ = ["add_parser", "read_documents", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("index", help="store a late-interaction model's document vectors ahead of time")
    p.add_argument("data_dir", metavar="DATA_DIR", nargs="?", help="a BEIR-layout folder (its corpus.jsonl)")
    p.add_argument("--jsonl", type=Path, help='a JSONL file of {"text", "id"?, "title"?} objects')
    p.add_argument("--model", required=True, help="a late-interaction model: local folder or Hugging Face id")
    p.add_argument("--store", required=True, type=Path, help="the store's folder (created if missing)")
    p.add_argument("--corpus-limit", type=positive_int, help="index only the first N documents")
    p.add_argument(
        "--stored-dtype", choices=("float16", "int8", "float32"), default="float16", help="default: float16"
    )
    p.add_argument("--batch-size", type=positive_int, default=32, help="documents per forward pass")
    p.add_argument(
        "--document-length",
        type=positive_int,
        help="tokens per document (default: the model's); a reranker reading the store must use the same",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps, ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the summary line stays)")
    p.set_defaults(handler=run)


def _corpus_file(data_dir: str) -> Path:
    from rerank_core.eval.beir import _find

    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise UsageError(f"DATA_DIR: {path} is not a folder")
    found = _find(path, "corpus.jsonl")
    if found is None:
        raise UsageError(f"DATA_DIR: {path} has no corpus.jsonl: is it a BEIR-layout folder?")
    return found


def read_documents(path: Path, *, beir: bool) -> Iterator[tuple[str | None, str]]:
    """``(id, text)`` of each line of a BEIR ``corpus.jsonl`` (``beir=True``: ``"_id"`` required, text is
    ``"title text"``) or of a JSONL file of ``{"text", "id"?, "title"?}`` objects."""
    from rerank_core.eval.beir import Doc, _jsonl, _lines, doc_text

    if beir:
        for _, record in _jsonl(path):
            doc = Doc(text=str(record.get("text") or ""), title=str(record.get("title") or ""))
            yield str(record["_id"]), doc_text(doc)
        return
    for lineno, line in _lines(path, "--jsonl"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError("--jsonl", f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InvalidInputError("--jsonl", f'{path}:{lineno}: expected an object with a string "text"')
        doc_id = record.get("id", record.get("_id"))
        title = record.get("title")
        text = f"{title} {record['text']}".strip() if isinstance(title, str) and title else record["text"]
        yield (None if doc_id is None else str(doc_id)), text


def _limited(items: Iterator[tuple[str | None, str]], limit: int | None) -> Iterator[tuple[str | None, str]]:
    for n, item in enumerate(items):
        if limit is not None and n >= limit:
            return
        yield item


def run(args: argparse.Namespace) -> int:
    if (args.data_dir is None) == (args.jsonl is None):
        raise UsageError("give either DATA_DIR (a BEIR folder) or --jsonl FILE, not both or neither")
    if args.jsonl is not None:
        if not args.jsonl.is_file():
            raise UsageError(f"--jsonl: {args.jsonl} is not a file")
        source, beir = args.jsonl, False
    else:
        source, beir = _corpus_file(args.data_dir), True
    if args.store.exists() and not args.store.is_dir():
        raise UsageError(f"--store: {args.store} is not a folder")

    from rerank_core.backends.late_interaction import LateInteractionBackend, is_multi_vector_folder

    model_path = Path(args.model).expanduser()
    if model_path.exists() and not is_multi_vector_folder(model_path):
        raise UsageError(
            f"--model: {args.model} is not a late-interaction model (no MultiVectorEncoder / ColBERT marker "
            "in config_sentence_transformers.json or config.json)"
        )
    try:
        backend = LateInteractionBackend(
            args.model,
            store=args.store,
            stored_dtype=args.stored_dtype,
            batch_size=args.batch_size,
            device=args.device,
            document_length=args.document_length,
        )
        backend.load()
    except ConfigurationError as exc:
        raise UsageError(one_line(exc)) from exc
    total = None
    if args.corpus_limit is not None:
        total = args.corpus_limit
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="doc", desc="index", file=sys.stderr)
    try:
        report = backend.index(
            _limited(read_documents(source, beir=beir), args.corpus_limit),
            chunk_size=256,
            progress=None if bar is None else bar.update,
        )
    finally:
        if bar is not None:
            bar.close()
    stats = backend.store.stats() if backend.store is not None else None
    size = "" if stats is None else f"; store: {stats.documents} vector sets, {stats.tokens} tokens, "
    size += "" if stats is None else f"{stats.file_bytes / 2**20:.1f} MiB on disk"
    print(
        f"indexed {report.documents} documents ({report.segments} windows): {report.encoded} encoded, "
        f"{report.already_stored} already stored{size}",
        file=sys.stderr,
    )
    backend.close()
    return EXIT_OK

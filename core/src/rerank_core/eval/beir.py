"""Load collections in the BEIR layout (corpus, queries and graded qrels per split).

```
DATA_DIR/
    corpus.jsonl            {"_id", "title", "text", "metadata"} per line (metadata is ignored)
    queries.jsonl           {"_id", "text"}: the test queries (official BEIR: every query)
    queries-train.jsonl     optional: the queries of another split (queries-{split}.jsonl)
    qrels/test.tsv          "query-id<TAB>corpus-id<TAB>score" with that header line
    qrels/train.tsv, qrels/dev.tsv, ...
```

``corpus.jsonl.gz`` / ``queries*.jsonl.gz`` are read as well. The queries of a split come from
``queries-{split}.jsonl`` when it exists, else from ``queries.jsonl``; only queries with qrels in the split
are kept, in the order of the queries file.

Files are UTF-8 (a leading byte-order mark is allowed). Anything that would silently change a score is
refused with an :class:`~rerank_core.errors.InvalidInputError` naming the file and line: bytes that are not
UTF-8, a truncated or corrupt ``.gz``, an id repeated in the corpus or a queries file, a (query, document)
pair judged twice, a judged query without text, and a grade that is not a finite integer (``1.9``,
``inf``, ``nan``; ``2.0`` is read as 2).
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rerank_core.errors import InvalidInputError

__all__ = ["BeirDataset", "Doc", "available_splits", "corpus_texts", "doc_text", "load_beir"]


@dataclass(frozen=True, slots=True)
class Doc:
    """One corpus document."""

    text: str
    title: str = ""


@dataclass(slots=True)
class BeirDataset:
    """A BEIR collection restricted to one split."""

    name: str
    split: str
    corpus: dict[str, Doc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    path: Path | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"BeirDataset(name={self.name!r}, split={self.split!r}, docs={len(self.corpus)}, "
            f"queries={len(self.queries)}, judgments={sum(len(j) for j in self.qrels.values())})"
        )


def doc_text(doc: Doc) -> str:
    """The text BEIR feeds to models: ``"title text"`` stripped, or just the text when there is no title."""
    if doc.title:
        return f"{doc.title} {doc.text}".strip()
    return doc.text.strip()


def corpus_texts(dataset: BeirDataset) -> dict[str, str]:
    """Every document's :func:`doc_text` by id, in corpus order (what the first stage indexes)."""
    return {doc_id: doc_text(doc) for doc_id, doc in dataset.corpus.items()}


def _find(path: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (path / name).is_file():
            return path / name
    return None


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _lines(path: Path, argument: str = "data_dir") -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line of ``path`` (gzip when it ends in ``.gz``), decoded as UTF-8
    line by line, so that a bad byte, a truncated or corrupt ``.gz`` or an unreadable file is an
    :class:`InvalidInputError` (of ``argument``) naming the file and the line, never a traceback. Also
    used by :func:`rerank_core.train.read_rows`."""
    lineno = 0
    try:
        with _open_binary(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInputError(
                        argument,
                        f"{path}:{lineno}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                        f"{exc.start + 1}); convert the file to UTF-8",
                    ) from None
                yield lineno, text
    except EOFError:
        raise InvalidInputError(
            argument, f"{path}:{lineno + 1}: the compressed file ends early (truncated download?)"
        ) from None
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InvalidInputError(argument, f"{path}:{lineno + 1}: cannot read it ({reason})") from None


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """The records of a JSONL file with their line numbers; each an object with a string or integer
    ``_id`` that no earlier line had."""
    seen: dict[str, int] = {}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError("data_dir", f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or "_id" not in record:
            raise InvalidInputError("data_dir", f"{path}:{lineno}: expected an object with an '_id'")
        raw_id = record["_id"]
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
            raise InvalidInputError(
                "data_dir", f"{path}:{lineno}: '_id' must be a string or an integer, got {raw_id!r}"
            )
        key = str(raw_id)
        if key in seen:
            raise InvalidInputError(
                "data_dir",
                f"{path}:{lineno}: id {key!r} already appeared on line {seen[key]} (duplicate ids would "
                "silently replace one another)",
            )
        seen[key] = lineno
        yield lineno, record


def available_splits(data_dir: str | Path) -> list[str]:
    """The splits that have a qrels file (``qrels/{split}.tsv``), sorted."""
    qrels_dir = Path(data_dir) / "qrels"
    if not qrels_dir.is_dir():
        return []
    return sorted(p.name.removesuffix(".gz").removesuffix(".tsv") for p in qrels_dir.glob("*.tsv*"))


def _grade(score: str, path: Path, lineno: int) -> int:
    """A qrels grade: an integer (``2.0`` is 2); a fraction, ``inf``, ``nan`` or text is refused."""
    try:
        return int(score)
    except ValueError:
        pass
    try:
        value = float(score)
    except ValueError:
        raise InvalidInputError("data_dir", f"{path}:{lineno}: score {score!r} is not a number") from None
    if not math.isfinite(value) or value != int(value):
        raise InvalidInputError(
            "data_dir", f"{path}:{lineno}: score {score!r} is not an integer relevance grade"
        )
    return int(value)


def _load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """The judgments of ``path`` by query and document, each pair once."""
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for lineno, line in _lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if lineno == 1 and parts[:1] == ["query-id"]:
            continue  # header
        if len(parts) != 3:
            raise InvalidInputError(
                "data_dir", f"{path}:{lineno}: expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}"
            )
        qid, doc_id, score = parts
        rel = _grade(score, path, lineno)
        if (qid, doc_id) in seen:
            raise InvalidInputError(
                "data_dir",
                f"{path}:{lineno}: query {qid!r} and document {doc_id!r} were already judged on line "
                f"{seen[qid, doc_id]}",
            )
        seen[qid, doc_id] = lineno
        qrels.setdefault(qid, {})[doc_id] = rel
    return qrels


def load_beir(data_dir: str | Path, split: str = "test") -> BeirDataset:
    """Load ``data_dir`` (BEIR layout) for ``split``.

    Raises :class:`~rerank_core.errors.InvalidInputError` (argument ``data_dir``) when the folder, a file
    or the split is missing, listing the splits that exist, or when a file is malformed.
    """
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise InvalidInputError("data_dir", f"{path} does not exist")
    if not path.is_dir():
        raise InvalidInputError("data_dir", f"{path} is not a folder")
    corpus_file = _find(path, "corpus.jsonl")
    if corpus_file is None:
        raise InvalidInputError("data_dir", f"{path} has no corpus.jsonl: is it a BEIR-layout folder?")
    splits = available_splits(path)
    qrels_file = _find(path / "qrels", f"{split}.tsv")
    if qrels_file is None:
        have = ", ".join(splits) if splits else f"none (no {path / 'qrels'}/*.tsv)"
        raise InvalidInputError(
            "data_dir", f"{path} has no split {split!r} (qrels/{split}.tsv); available: {have}"
        )
    queries_file = _find(path, f"queries-{split}.jsonl") or _find(path, "queries.jsonl")
    if queries_file is None:
        raise InvalidInputError("data_dir", f"{path} has neither queries-{split}.jsonl nor queries.jsonl")

    qrels = _load_qrels(qrels_file)
    queries: dict[str, str] = {}
    for lineno, record in _jsonl(queries_file):
        qid = str(record["_id"])
        if qid in qrels:
            text = record.get("text")
            if not isinstance(text, str) or not text.strip():
                got = "no 'text'" if text is None or "text" not in record else f"text {text!r}"
                raise InvalidInputError(
                    "data_dir",
                    f"{queries_file}:{lineno}: query {qid!r} (judged in qrels/{qrels_file.name}) has {got}; "
                    "a query needs a non-empty string",
                )
            queries[qid] = text
    missing = [qid for qid in qrels if qid not in queries]
    if missing:
        shown = ", ".join(repr(q) for q in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise InvalidInputError(
            "data_dir",
            f"{len(missing)} quer{'y' if len(missing) == 1 else 'ies'} of qrels/{qrels_file.name} "
            f"not found in {queries_file.name}: {shown}",
        )
    # Keep the qrels in the order of the queries file (which is the evaluation order).
    qrels = {qid: qrels[qid] for qid in queries}

    corpus: dict[str, Doc] = {}
    for _, record in _jsonl(corpus_file):
        corpus[str(record["_id"])] = Doc(
            text=str(record.get("text") or ""), title=str(record.get("title") or "")
        )

    return BeirDataset(name=path.name, split=split, corpus=corpus, queries=queries, qrels=qrels, path=path)

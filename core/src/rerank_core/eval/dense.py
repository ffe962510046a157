"""Dense first stage: a sentence-transformers bi-encoder and exact cosine search (numpy).

Install with ``pip install 'rerank-core[local]'``. Meant for mining hard negatives and for evaluation on
corpora of up to a few hundred thousand documents (the whole index is one matrix in memory).

Embedding a corpus is the slow part (SciFact's 5k abstracts with MiniLM-L6: 581 s on 2 CPU cores shared
with other work), so ``cache_dir`` keeps the corpus embeddings on disk, keyed on what they depend on: the
model's weights and maximum sequence length, and the corpus ids and texts. A changed model or corpus is a
new key, never a stale hit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rerank_core._optional import require
from rerank_core._validation import check_corpus, check_positive_int
from rerank_core.errors import ConfigurationError, InvalidInputError

__all__ = ["DenseRetriever"]


class DenseRetriever:
    """Embed ``corpus_texts`` once with ``model`` (a path, a Hugging Face id or a ``SentenceTransformer``);
    :meth:`retrieve` returns the top ``k`` ``(id, cosine)`` per query, best first (ties by corpus order).

    ``cache_dir``: a folder for the corpus embeddings (created if missing; ``None``: no cache). The key hashes
    the model's weights, its ``max_seq_length`` and the corpus, so a hit is always the same embeddings;
    :attr:`cache_hit` says whether this one was loaded from the cache.
    """

    def __init__(
        self,
        corpus_ids: Sequence[str],
        corpus_texts: Sequence[str],
        *,
        model: Any,
        batch_size: int = 64,
        device: str | None = None,
        show_progress: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        check_corpus(corpus_ids, corpus_texts)
        check_positive_int(batch_size, "batch_size")
        st = require(
            "sentence_transformers", extra="local", feature="Dense retrieval", package="sentence-transformers"
        )
        if isinstance(model, str):
            try:
                model = st.SentenceTransformer(model, device=device)
            except (OSError, ValueError) as exc:
                raise ConfigurationError("model", f"could not load bi-encoder {model!r}: {exc}") from exc
        self.model = model
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.ids = list(corpus_ids)
        self._rows: dict[str, int] | None = None
        self._query_vectors: dict[str, np.ndarray] = {}
        self.cache_hit = False
        self.cache_file: Path | None = None
        if cache_dir is None:
            self.embeddings = self._encode(list(corpus_texts))
            return
        if not isinstance(cache_dir, str | os.PathLike):
            raise ConfigurationError("cache_dir", f"must be a folder path or None, got {cache_dir!r}")
        self.cache_file = Path(cache_dir) / f"{self._cache_key(corpus_texts)}.npy"
        cached = _load_embeddings(self.cache_file, len(self.ids))
        if cached is not None:
            self.embeddings, self.cache_hit = cached, True
            return
        self.embeddings = self._encode(list(corpus_texts))
        _save_embeddings(self.cache_file, self.embeddings)

    def _cache_key(self, corpus_texts: Sequence[str]) -> str:
        """A hash of everything the corpus embeddings depend on (weights, sequence length, ids, texts)."""
        import torch  # present: sentence-transformers needs it

        digest = hashlib.sha256(b"rerank-core dense v1\0")
        digest.update(f"{getattr(self.model, 'max_seq_length', None)}\0".encode())
        state = self.model.state_dict() if hasattr(self.model, "state_dict") else {}
        for name, tensor in state.items():
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\0".encode())
            raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)  # any dtype, bf16 too
            digest.update(raw.numpy().tobytes())
        for doc_id, text in zip(self.ids, corpus_texts, strict=True):
            digest.update(f"{len(doc_id)}:{doc_id}{len(text)}:{text}".encode())
        return digest.hexdigest()[:32]

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=self.show_progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"DenseRetriever(documents={len(self.ids)}, dim={self.embeddings.shape[1]})"

    def score(self, query: str, doc_ids: Sequence[str]) -> list[float]:
        """The cosine of ``query`` with each corpus document in ``doc_ids`` (e.g. as a teacher's scores for
        :func:`rerank_core.train.add_teacher_scores`). Query embeddings are kept, so a query asked again is
        not embedded again."""
        if not isinstance(query, str):
            raise InvalidInputError("query", f"must be a string, got {type(query).__name__}")
        if isinstance(doc_ids, str):
            raise InvalidInputError("doc_ids", "must be a sequence of corpus ids, not one string")
        if self._rows is None:
            self._rows = {doc_id: i for i, doc_id in enumerate(self.ids)}
        missing = [d for d in doc_ids if d not in self._rows]
        if missing:
            raise InvalidInputError("doc_ids", f"not in the corpus: {missing[:5]}")
        vector = self._query_vectors.get(query)
        if vector is None:
            vector = self._query_vectors[query] = self._encode([query])[0]
        return [float(self.embeddings[self._rows[d]] @ vector) for d in doc_ids]

    def retrieve(self, queries: Sequence[str], k: int = 100) -> list[list[tuple[str, float]]]:
        """The top ``k`` ``(doc_id, cosine)`` pairs of each query, best first (ties by corpus order)."""
        check_positive_int(k, "k")
        if isinstance(queries, str):
            raise InvalidInputError("queries", "must be a sequence of strings, not one string")
        if not queries:
            return []
        scores = self._encode(list(queries)) @ self.embeddings.T
        k = min(k, len(self.ids))
        out = []
        for row in scores:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([(self.ids[i], float(row[i])) for i in top])
        return out


def _load_embeddings(path: Path, rows: int) -> np.ndarray | None:
    """The cached matrix at ``path``, or ``None`` when absent or unreadable or of the wrong shape."""
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if matrix.ndim != 2 or matrix.shape[0] != rows or matrix.dtype != np.float32:
        return None
    return matrix


def _save_embeddings(path: Path, matrix: np.ndarray) -> None:
    """Write ``matrix`` to ``path`` atomically (a reader never sees half a file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError("cache_dir", f"cannot create {path.parent}: {exc}") from exc
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, matrix, allow_pickle=False)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is as readable as any other output
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

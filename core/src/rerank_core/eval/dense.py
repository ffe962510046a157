"""Dense first stage: a sentence-transformers bi-encoder and exact cosine search (numpy).

Install with ``pip install 'rerank-core[local]'``. Meant for mining hard negatives and for evaluation on
corpora of up to a few hundred thousand documents (the whole index is one matrix in memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rerank_core._optional import require
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.validation import check_corpus, check_positive_int

__all__ = ["DenseRetriever"]


class DenseRetriever:
    """Embed ``corpus_texts`` once with ``model`` (a path, a Hugging Face id or a ``SentenceTransformer``);
    :meth:`retrieve` returns the top ``k`` ``(id, cosine)`` per query, best first (ties by corpus order)."""

    def __init__(
        self,
        corpus_ids: Sequence[str],
        corpus_texts: Sequence[str],
        *,
        model: Any,
        batch_size: int = 64,
        device: str | None = None,
        show_progress: bool = False,
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
        self.embeddings = self._encode(list(corpus_texts))

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

    def retrieve(self, queries: Sequence[str], k: int = 100) -> list[list[tuple[str, float]]]:
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

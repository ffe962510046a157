"""The physical ceiling: the FLOPs a cross-encoder needs per pair versus the machine's matmul rate.

A transformer encoder spends nearly all of its time in matrix multiplies. For a pair of ``s`` tokens:

- every non-embedding weight of the encoder layers is used once per token in a multiply-add:
  ``2 * params_layers * s`` FLOPs;
- attention adds ``Q @ K^T`` and ``A @ V`` per layer, each ``s * s * hidden`` multiply-adds:
  ``4 * num_layers * hidden * s**2`` FLOPs;
- the pooler and classification head run on one token: ``2 * params_head`` FLOPs.

Embedding lookups, layer norms, softmax and GELU are not counted (memory-bound, small). ``s`` is the real
token count of the pair after truncation to the model's limit, without padding: the useful work. Dividing the
work by the measured matrix-product rate on large square matrices (the better of ``torch.matmul`` and
numpy's BLAS for fp32, ``torch.matmul`` for bf16: the best this machine does in practice) gives the
ceiling in pairs per second; a contender's share of it says how much headroom is left in that precision.
Int8 paths can exceed the fp32 ceiling: that is the point of them. On shared cores the rate is a short
reading under whatever else runs, so a contender can show more than 100%: read the share as approximate.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ModelShape", "flops_per_pair", "matmul_rate", "model_shape", "workload_flops"]


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the FLOP count needs from a model: weights per part and the encoder's size."""

    params_layers: int  # encoder layers (attention + feed-forward + their layer norms)
    params_head: int  # pooler + classifier (run on one token)
    params_embeddings: int  # lookups, not multiplies: reported, not counted
    num_layers: int
    hidden: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def flops_per_pair(shape: ModelShape, tokens: int) -> float:
    """FLOPs to score one pair of ``tokens`` tokens (see the module docstring for the formula)."""
    if tokens < 0:
        raise ValueError(f"tokens: must be >= 0, got {tokens}")
    return (
        2.0 * shape.params_layers * tokens
        + 4.0 * shape.num_layers * shape.hidden * tokens**2
        + (2.0 * shape.params_head)
    )


def workload_flops(shape: ModelShape, token_counts: Iterable[int]) -> float:
    """Total FLOPs of scoring pairs with these token counts."""
    return sum(flops_per_pair(shape, t) for t in token_counts)


def model_shape(model: Any) -> ModelShape:
    """Count a Hugging Face sequence-classification model's weights by part (a loaded ``torch`` module).

    Parameters whose name contains ``embeddings`` are embeddings; ``pooler``/``classifier``/``score`` (and
    any other weight outside the encoder layers) are the head; the rest are the layers.
    """
    config = model.config
    layers = head = emb = 0
    for name, p in model.named_parameters():
        n = p.numel()
        if "embeddings" in name:
            emb += n
        elif ".layer." in name or ".layers." in name:
            layers += n
        else:
            head += n
    return ModelShape(
        params_layers=layers,
        params_head=head,
        params_embeddings=emb,
        num_layers=int(config.num_hidden_layers),
        hidden=int(config.hidden_size),
    )


def matmul_rate(
    dtype: str = "float32", size: int = 1024, seconds: float = 0.5, library: str = "torch"
) -> float:
    """Measured FLOP/s of a ``size`` x ``size`` matrix product in ``dtype`` (best call).

    ``library`` is ``"torch"`` (``torch.matmul``: MKL for fp32, oneDNN for bf16) or ``"numpy"`` (its BLAS,
    OpenBLAS in the wheels; fp32 only). Runs for about ``seconds`` after one warm-up call and returns the
    rate of the fastest call (``2 * size**3`` FLOPs each), the closest reading of what the cores can do on a
    shared machine.
    """
    if library == "numpy":
        return _numpy_rate(dtype, size, seconds)
    if library != "torch":
        raise ValueError(f"library: must be 'torch' or 'numpy', got {library!r}")
    import torch

    if size < 16:
        raise ValueError(f"size: must be >= 16, got {size}")
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ValueError(f"dtype: not a torch dtype: {dtype!r}")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(torch_dtype)
    b = torch.randn(size, size, generator=gen).to(torch_dtype)
    with torch.inference_mode():
        torch.matmul(a, b)
        best = float("inf")
        end = time.perf_counter() + seconds
        calls = 0
        while calls < 3 or time.perf_counter() < end:
            t = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - t)
            calls += 1
    return 2.0 * size**3 / best


def _numpy_rate(dtype: str, size: int, seconds: float) -> float:
    import numpy as np

    if size < 16:
        raise ValueError(f"size: must be >= 16, got {size}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: numpy matmul is measured in float32 or float64, got {dtype!r}")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b
    best = float("inf")
    end = time.perf_counter() + seconds
    calls = 0
    while calls < 3 or time.perf_counter() < end:
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
        calls += 1
    return 2.0 * size**3 / best

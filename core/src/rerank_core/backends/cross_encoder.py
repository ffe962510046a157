"""Local cross-encoder back end on sentence-transformers ``CrossEncoder`` (torch).

Scores are exactly what ``CrossEncoder.predict`` returns for the same pairs (the model's saved
activation unless ``activation`` overrides it), computed batch by batch through the model's own
``preprocess`` and forward, with pairs sorted by real token length so that batches carry little
padding, and the input order restored afterwards.

Loading is lazy: constructing the back end costs nothing; the first call that needs the model or
its tokenizer loads both, once, under a lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_core._optional import require
from rerank_core.backends.base import Backend, PairLimit
from rerank_core.errors import ConfigurationError, NonRetryableBackendError
from rerank_core.types import ScoreKind

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import CrossEncoder

__all__ = ["CrossEncoderBackend"]

_ACTIVATIONS = ("auto", "sigmoid", "identity")
_DTYPES = ("auto", "float32", "float16", "bfloat16")


def _resolve_device(device: str | None) -> str:
    torch = require("torch", extra="local", feature="The local cross-encoder back end")
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    return device


class _HFTokenizer:
    """Adapts a Hugging Face fast tokenizer to :class:`TextTokenizer`, under the back end's lock."""

    def __init__(self, tokenizer: Any, lock: threading.Lock) -> None:
        self._tokenizer = tokenizer
        self._lock = lock

    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        if not texts:
            return []
        with self._lock:
            enc = self._tokenizer(
                list(texts),
                add_special_tokens=False,
                return_offsets_mapping=True,
                truncation=False,
                padding=False,
                verbose=False,
            )
        return [[(int(a), int(b)) for a, b in offs] for offs in enc["offset_mapping"]]


class CrossEncoderBackend(Backend):
    """A local cross-encoder from a Hugging Face id, a local folder, or a loaded ``CrossEncoder``.

    Args:
        model: Hugging Face model id, local path, or an already constructed ``CrossEncoder``.
        device: ``"auto"``/``None`` (cuda, then mps, then cpu) or any torch device string.
        max_length: tokens per (query, text) pair; ``None`` keeps the model's limit.
        batch_size: pairs per forward pass.
        dtype: ``"auto"`` (float16 on CUDA, float32 elsewhere), ``"float32"``, ``"float16"``, ``"bfloat16"``.
        activation: ``"auto"`` (the model's saved activation, as ``CrossEncoder.predict``), ``"sigmoid"``
            or ``"identity"`` (raw logits).
        model_kwargs / tokenizer_kwargs / config_kwargs: passed through to Hugging Face loading.
        trust_remote_code: run code shipped with the model; off by default.
        revision / cache_folder / local_files_only / token: passed through to the loader.
        max_concurrency: threads that may run this model at once from async code.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | CrossEncoder,
        *,
        device: str | None = "auto",
        max_length: int | None = None,
        batch_size: int = 32,
        dtype: str = "auto",
        activation: str = "auto",
        model_kwargs: Mapping[str, Any] | None = None,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
        config_kwargs: Mapping[str, Any] | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        cache_folder: str | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        max_concurrency: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(model, str | os.PathLike):
            if not str(model).strip():
                raise ConfigurationError("model", "must be a Hugging Face model id or a local path, got ''")
            self._model: CrossEncoder | None = None
            path = Path(model).expanduser()
            self._name = str(path.resolve()) if path.exists() else str(model)
        elif type(model).__name__ == "CrossEncoder" or hasattr(model, "predict"):
            self._model = model
            self._name = getattr(getattr(model, "model", None), "name_or_path", None) or type(model).__name__
        else:
            raise ConfigurationError(
                "model", f"expected a model id, a path or a CrossEncoder, got {type(model).__name__}"
            )
        if max_length is not None and (
            not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 8
        ):
            raise ConfigurationError("max_length", f"must be an integer >= 8 or None, got {max_length!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigurationError("batch_size", f"must be an integer >= 1, got {batch_size!r}")
        if dtype not in _DTYPES:
            raise ConfigurationError("dtype", f"must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        if activation not in _ACTIVATIONS:
            raise ConfigurationError(
                "activation", f"must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}"
            )
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError("max_concurrency", f"must be an integer >= 1, got {max_concurrency!r}")
        self._source = model
        self._device_arg = device
        self._max_length = max_length
        self.batch_size = batch_size
        self._dtype_arg = dtype
        self._activation_arg = activation
        self._load_kwargs: dict[str, Any] = {
            "trust_remote_code": trust_remote_code,
            "revision": revision,
            "cache_folder": cache_folder,
            "local_files_only": local_files_only,
            "token": token,
            "model_kwargs": dict(model_kwargs) if model_kwargs else None,
            "processor_kwargs": dict(tokenizer_kwargs) if tokenizer_kwargs else None,
            "config_kwargs": dict(config_kwargs) if config_kwargs else None,
        }
        self.max_concurrency = max_concurrency
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._activation: Any = None
        self._device: str | None = None
        self._dtype_name: str | None = None
        if self._model is not None:
            self._prepare_loaded(self._model)

    # -- loading ---------------------------------------------------------------------------------

    @property
    def model(self) -> CrossEncoder:
        """The underlying ``CrossEncoder`` (loads it on first access)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> CrossEncoder:
        st = require(
            "sentence_transformers",
            extra="local",
            feature="The local cross-encoder back end",
            package="sentence-transformers",
        )
        device = _resolve_device(self._device_arg)
        kwargs = {k: v for k, v in self._load_kwargs.items() if v is not None}
        model_kwargs = dict(kwargs.get("model_kwargs") or {})
        if "dtype" not in model_kwargs and "torch_dtype" not in model_kwargs:
            # Load straight into the precision we run in (half-precision checkpoints would otherwise be
            # loaded as such on CPU, with a warning, and cast afterwards).
            torch = require("torch", extra="local", feature="The local cross-encoder back end")
            model_kwargs["dtype"] = getattr(torch, self._target_dtype(device))
            kwargs["model_kwargs"] = model_kwargs
        try:
            model = st.CrossEncoder(str(self._source), device=device, max_length=self._max_length, **kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                "model", f"could not load cross-encoder {str(self._source)!r}: {exc}"
            ) from exc
        self._prepare_loaded(model)
        return model

    def _target_dtype(self, device: str) -> str:
        if self._dtype_arg != "auto":
            return self._dtype_arg
        # Half-precision weights (as the reference reranker ships) are upcast off CUDA: CPU fp16 is slow.
        return "float16" if device.startswith("cuda") else "float32"

    def _prepare_loaded(self, model: CrossEncoder) -> None:
        torch = require("torch", extra="local", feature="The local cross-encoder back end")
        num_labels = getattr(model, "num_labels", 1)
        if num_labels != 1:
            raise ConfigurationError(
                "model",
                f"has {num_labels} output labels; a reranker needs a model with a single relevance output",
            )
        if self._max_length is not None and model.max_seq_length != self._max_length:
            model.max_seq_length = self._max_length
        device = str(model.device)
        model.to(getattr(torch, self._target_dtype(device)))
        self._dtype_name = str(next(model.parameters()).dtype).removeprefix("torch.")
        model.eval()
        if self._activation_arg == "sigmoid":
            self._activation = torch.nn.Sigmoid()
        elif self._activation_arg == "identity":
            self._activation = torch.nn.Identity()
        else:
            self._activation = model.activation_fn
        self._device = device

    # -- what the back end is ----------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        if self._activation_arg == "auto" and self._model is not None:
            activation = type(self._activation).__name__.lower()
        else:
            activation = self._activation_arg
        dtype = self._dtype_name or self._dtype_arg
        return (
            f"cross-encoder:{self._name}|revision={self._load_kwargs['revision']}|"
            f"max_length={self._max_length}|activation={activation}|dtype={dtype}"
        )

    def peek_score_kind(self) -> ScoreKind | None:
        if self._activation_arg == "sigmoid":
            return "probability"
        if self._activation_arg == "identity":
            return "logit"
        if self._model is not None:
            return self.score_kind
        return None

    @property
    def score_kind(self) -> ScoreKind:
        known = {"sigmoid": "probability", "identity": "logit"}.get(self._activation_arg)
        if known is not None:
            return known  # type: ignore[return-value]
        _ = self.model
        return "probability" if type(self._activation).__name__ == "Sigmoid" else "logit"

    @property
    def device(self) -> str:
        _ = self.model
        assert self._device is not None
        return self._device

    def pair_limit(self) -> PairLimit:
        model = self.model
        tokenizer = model.tokenizer
        max_length = model.max_seq_length or getattr(tokenizer, "model_max_length", None) or 512
        return PairLimit(
            max_length=int(max_length),
            special_tokens=int(tokenizer.num_special_tokens_to_add(pair=True)),
            tokenizer=_HFTokenizer(tokenizer, self._tokenizer_lock),
        )

    # -- scoring -----------------------------------------------------------------------------------

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        torch = require("torch", extra="local", feature="The local cross-encoder back end")
        st_util = require(
            "sentence_transformers.util",
            extra="local",
            feature="The local cross-encoder back end",
            package="sentence-transformers",
        )
        model = self.model
        pair_list = [(q, t) for q, t in pairs]
        with self._tokenizer_lock:
            lengths = model.tokenizer(
                pair_list, truncation=True, max_length=model.max_seq_length, padding=False, verbose=False
            )["input_ids"]
        order = sorted(range(len(pair_list)), key=lambda i: -len(lengths[i]))
        out = [0.0] * len(pair_list)
        try:
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    idx = order[start : start + self.batch_size]
                    with self._tokenizer_lock:
                        features = model.preprocess([pair_list[i] for i in idx])
                    features = st_util.batch_to_device(features, model.device)
                    scores = model(features)["scores"]
                    if torch.is_floating_point(scores) and torch.finfo(scores.dtype).bits < 32:
                        scores = scores.float()
                    if self._activation is not None:
                        scores = self._activation(scores)
                    values = scores.reshape(len(idx), -1)[:, 0].cpu().tolist()
                    for i, v in zip(idx, values, strict=True):
                        out[i] = float(v)
        except RuntimeError as exc:  # out of memory, device errors: not fixed by retrying the same call
            raise NonRetryableBackendError(
                f"model failed while scoring: {exc}", backend=self.fingerprint
            ) from exc
        return out

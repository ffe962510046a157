"""Local cross-encoder back end on sentence-transformers ``CrossEncoder`` (torch).

Scores are exactly what ``CrossEncoder.predict`` returns for the same pairs (the model's saved
activation unless ``activation`` overrides it), computed batch by batch through the model's own
``preprocess`` and forward, with pairs sorted by real token length so that batches carry little
padding, and the input order restored afterwards.

Loading is lazy: constructing the back end costs nothing; the first call that needs the model or
its tokenizer loads both, once, under a lock.

Runtimes (``runtime=``): ``"torch"`` (the ``CrossEncoder`` itself, in ``dtype``), ``"onnx"`` (ONNX Runtime)
and ``"openvino"``, the last two exported once per model into a cache and loaded from it afterwards, each
optionally ``quantization="int8"`` (see :mod:`rerank_core.backends.local_runtimes`). ``backend.runtime``
says which path runs (``"torch-float32"``, ``"onnx-int8"``, ...) and is part of the fingerprint.

Batches: pairs are sorted by token length (longest first); ``batch_tokens`` cuts the sorted list into
batches of at most that many padded tokens (``batch_size`` still caps the count), else fixed
``batch_size`` batches.

Threads: one model call at a time per back end (async calls go through a ``max_concurrency=1`` thread
pool), and that call uses every core the process may run on: torch's own intra-op pool (set
``num_threads`` to change it; this sets torch's process-wide setting), ONNX Runtime with
``intra_op_num_threads=num_threads`` and ``inter_op_num_threads=1``, OpenVINO with one stream and
``INFERENCE_NUM_THREADS=num_threads``. Concurrent requests thus queue for the cores instead of
oversubscribing them.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rerank_core._optional import require
from rerank_core.backends import local_runtimes as lr
from rerank_core.backends.base import Backend, PairLimit
from rerank_core.errors import ConfigurationError, NonRetryableBackendError
from rerank_core.types import ScoreKind

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import CrossEncoder

__all__ = ["CrossEncoderBackend"]

_ACTIVATIONS = ("auto", "sigmoid", "identity")
_DTYPES = ("auto", "float32", "float16", "bfloat16")


def _positive_int_or_none(argument: str, value: Any, minimum: int = 1) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigurationError(argument, f"must be an integer >= {minimum} or None, got {value!r}")
    return value


def _batches(lengths: Sequence[int], batch_size: int, batch_tokens: int | None) -> list[list[int]]:
    """Indices sorted by length (longest first), cut into batches.

    With ``batch_tokens``, a batch grows while ``count * longest <= batch_tokens`` (the padded size of a
    length-sorted batch) and ``count <= batch_size``; a single pair longer than the budget is its own batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if batch_tokens is None:
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    out: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1 > batch_size or (len(current) + 1) * longest > batch_tokens):
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


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
        runtime: ``"torch"`` (default), ``"onnx"`` (ONNX Runtime, extra ``onnx``) or ``"openvino"``
            (extra ``openvino``); the last two run on the CPU from a cached export.
        quantization: ``None`` or ``"int8"`` (onnx: dynamic int8; openvino: static int8 calibrated on
            ``calibration_pairs``). Not for ``runtime="torch"``.
        cache_dir: where exports are cached (default ``$RERANK_CACHE_DIR`` or ``~/.cache/rerank-core``).
        batch_tokens: cut length-sorted batches at this many padded tokens (``batch_size`` stays the cap).
        calibration_pairs: (query, text) pairs for OpenVINO static int8; default a small built-in set.
        num_threads: threads for one model call (default: the cores this process may use).
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
        runtime: str = "torch",
        quantization: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_tokens: int | None = None,
        calibration_pairs: Sequence[tuple[str, str]] | None = None,
        num_threads: int | None = None,
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
        if runtime not in lr.RUNTIMES:
            raise ConfigurationError("runtime", f"must be one of {', '.join(lr.RUNTIMES)}, got {runtime!r}")
        if quantization not in lr.QUANTIZATIONS:
            raise ConfigurationError("quantization", f"must be None or 'int8', got {quantization!r}")
        if quantization is not None and runtime == "torch":
            raise ConfigurationError(
                "quantization", "int8 needs runtime='onnx' or runtime='openvino' (use dtype= for torch)"
            )
        if runtime != "torch":
            if dtype not in ("auto", "float32"):
                raise ConfigurationError(
                    "dtype", f"runtime={runtime!r} runs float32 or int8 (quantization=), got dtype={dtype!r}"
                )
            if device not in (None, "auto", "cpu"):
                raise ConfigurationError("device", f"runtime={runtime!r} runs on the CPU, got {device!r}")
        self._batch_tokens = _positive_int_or_none("batch_tokens", batch_tokens, minimum=8)
        self._num_threads = _positive_int_or_none("num_threads", num_threads)
        self._runtime_arg = runtime
        self._quantization = quantization
        self._cache_dir = cache_dir
        self._calibration_pairs = (
            [(str(q), str(t)) for q, t in calibration_pairs] if calibration_pairs is not None else None
        )
        if self._calibration_pairs is not None and not self._calibration_pairs:
            raise ConfigurationError("calibration_pairs", "must hold at least one (query, text) pair")
        self._runner: Any = None
        self._tokenizer: Any = None
        self._meta: dict[str, Any] | None = None
        self.export_dir: Path | None = None
        self.exported = False
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
        if self._model is not None and runtime == "torch":
            self._prepare_loaded(self._model)

    # -- loading ---------------------------------------------------------------------------------

    @property
    def model(self) -> CrossEncoder:
        """The underlying torch ``CrossEncoder`` (loads it on first access); ``runtime="torch"`` only."""
        if self._runtime_arg != "torch":
            raise ConfigurationError(
                "runtime", f"runtime={self._runtime_arg!r} has no torch model; call load() to load it"
            )
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def load(self) -> None:
        """Load the model now (exporting it first for onnx/openvino when the cache has no export)."""
        if self._runtime_arg == "torch":
            _ = self.model
            return
        if self._runner is None:
            with self._load_lock:
                if self._runner is None:
                    self._load_exported()

    @property
    def is_loaded(self) -> bool:
        return self._model is not None if self._runtime_arg == "torch" else self._runner is not None

    @property
    def runtime(self) -> str:
        """Which path runs: ``"torch-float32"``, ``"onnx-int8"``, ``"openvino-int8"``..."""
        if self._runtime_arg == "torch":
            dtype = self._dtype_name or self._target_dtype(_resolve_device(self._device_arg))
            return f"torch-{dtype}"
        return f"{self._runtime_arg}-{self._quantization or 'float32'}"

    def _export_fields(self) -> dict[str, Any]:
        path = Path(self._name)
        files = (
            lr.model_files_fingerprint(path)
            if path.is_dir()
            else _hub_snapshot(self._name, self._load_kwargs)
        )
        return {
            "model": self._name,
            "revision": self._load_kwargs["revision"],
            "files": files,
            "runtime": self._runtime_arg,
            "quantization": self._quantization,
            "max_length": self._max_length,
            "activation": self._activation_arg,
            "calibration": (
                _hash_pairs(self._calibration_pairs or lr.DEFAULT_CALIBRATION_PAIRS)
                if self._runtime_arg == "openvino" and self._quantization
                else None
            ),
        }

    def _load_exported(self) -> None:
        """Find the export in the cache (or make it from the torch model), then open its runtime."""
        transformers = require("transformers", extra=self._runtime_arg, feature="The exported cross-encoder")
        if self._runtime_arg == "onnx":
            require("onnxruntime", extra="onnx", feature="The ONNX cross-encoder path")
        else:
            require("openvino", extra="openvino", feature="The OpenVINO cross-encoder path")
            if self._quantization:
                require("nncf", extra="openvino", feature="OpenVINO int8 quantization")
        folder = lr.cache_root(self._cache_dir) / lr.export_key(self._export_fields())
        meta = lr.read_meta(folder)
        if meta is None:
            ce = self._model if self._model is not None else self._load(device="cpu", dtype="float32")
            torch_model = _hf_model(ce)
            if self._model is not None:  # the caller's model: export a float32 copy, never change theirs
                torch_model = copy.deepcopy(torch_model)
            saved = type(ce.activation_fn).__name__
            activation = "sigmoid" if saved == "Sigmoid" else "identity"
            if saved not in ("Sigmoid", "Identity") and self._activation_arg == "auto":
                raise ConfigurationError(
                    "activation",
                    f"the model's activation {saved} cannot be exported; "
                    "pass activation='sigmoid' or 'identity'",
                )
            torch_model.float()
            try:
                lr.build_export(
                    hf_model=torch_model,
                    tokenizer=ce.tokenizer,
                    runtime=self._runtime_arg,
                    quantization=self._quantization,
                    max_length=int(ce.max_seq_length or ce.tokenizer.model_max_length),
                    activation=activation,
                    target=folder,
                    calibration_pairs=self._calibration_pairs,
                )
            except ImportError:
                raise
            except Exception as exc:
                raise NonRetryableBackendError(
                    f"could not export {self._name!r} for runtime={self._runtime_arg!r}: {exc}",
                    backend=self.fingerprint,
                ) from exc
            meta = lr.read_meta(folder)
            if meta is None:
                raise NonRetryableBackendError(f"export to {folder} is incomplete", backend=self.fingerprint)
            self.exported = True
            self._model = None  # the torch weights are not needed any more (a caller's model stays theirs)
        threads = self._num_threads or lr.default_num_threads()
        runner_cls = lr.OnnxRunner if self._runtime_arg == "onnx" else lr.OpenVINORunner
        self._tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
        self._runner = runner_cls(folder / meta["file"], threads)
        self._meta = meta
        self.export_dir = folder
        self._dtype_name = "int8" if self._quantization else "float32"

    def _load(self, device: str | None = None, dtype: str | None = None) -> CrossEncoder:
        st = require(
            "sentence_transformers",
            extra="local",
            feature="The local cross-encoder back end",
            package="sentence-transformers",
        )
        device = _resolve_device(device or self._device_arg)
        kwargs = {k: v for k, v in self._load_kwargs.items() if v is not None}
        model_kwargs = dict(kwargs.get("model_kwargs") or {})
        torch = require("torch", extra="local", feature="The local cross-encoder back end")
        if self._num_threads is not None:
            torch.set_num_threads(self._num_threads)
        if "dtype" not in model_kwargs and "torch_dtype" not in model_kwargs:
            # Load straight into the precision we run in (half-precision checkpoints would otherwise be
            # loaded as such on CPU, with a warning, and cast afterwards).
            model_kwargs["dtype"] = getattr(torch, dtype or self._target_dtype(device))
            kwargs["model_kwargs"] = model_kwargs
        if self._runtime_arg != "torch" and "attn_implementation" not in model_kwargs:
            model_kwargs["attn_implementation"] = "eager"  # exports as plain ops the runtimes fuse
            kwargs["model_kwargs"] = model_kwargs
        try:
            model = st.CrossEncoder(str(self._source), device=device, max_length=self._max_length, **kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                "model", f"could not load cross-encoder {str(self._source)!r}: {exc}"
            ) from exc
        if self._runtime_arg == "torch":
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
        if self._activation_arg == "auto" and self._meta is not None:
            activation = self._meta["activation"]
        elif self._activation_arg == "auto" and self._model is not None and self._activation is not None:
            activation = type(self._activation).__name__.lower()
        else:
            activation = self._activation_arg
        runtime = self.runtime
        return (
            f"cross-encoder:{self._name}|revision={self._load_kwargs['revision']}|"
            f"max_length={self._max_length}|activation={activation}|dtype={runtime.split('-', 1)[1]}|"
            f"runtime={runtime}"
        )

    def peek_score_kind(self) -> ScoreKind | None:
        if self._activation_arg == "sigmoid":
            return "probability"
        if self._activation_arg == "identity":
            return "logit"
        if self.is_loaded:
            return self.score_kind
        return None

    @property
    def score_kind(self) -> ScoreKind:
        known = {"sigmoid": "probability", "identity": "logit"}.get(self._activation_arg)
        if known is not None:
            return known  # type: ignore[return-value]
        if self._runtime_arg != "torch":
            self.load()
            assert self._meta is not None
            return "probability" if self._meta["activation"] == "sigmoid" else "logit"
        _ = self.model
        return "probability" if type(self._activation).__name__ == "Sigmoid" else "logit"

    @property
    def device(self) -> str:
        if self._runtime_arg != "torch":
            return "cpu"
        _ = self.model
        assert self._device is not None
        return self._device

    def pair_limit(self) -> PairLimit:
        if self._runtime_arg != "torch":
            self.load()
            assert self._meta is not None
            tokenizer = self._tokenizer
            max_length = self._max_length or self._meta["max_length"]
        else:
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
        if self._runtime_arg != "torch":
            return self._score_exported(pairs)
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
        batches = _batches([len(ids) for ids in lengths], self.batch_size, self._batch_tokens)
        out = [0.0] * len(pair_list)
        try:
            with torch.inference_mode():
                for idx in batches:
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

    def _score_exported(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Score on the ONNX Runtime / OpenVINO model: same tokenization and batching as the torch path."""
        self.load()
        assert self._meta is not None
        max_length = self._max_length or int(self._meta["max_length"])
        queries = [q for q, _ in pairs]
        texts = [t for _, t in pairs]
        with self._tokenizer_lock:
            lengths = self._tokenizer(
                queries, texts, truncation=True, max_length=max_length, padding=False, verbose=False
            )["input_ids"]
        activation = self._activation_arg if self._activation_arg != "auto" else self._meta["activation"]
        out = [0.0] * len(pairs)
        try:
            for idx in _batches([len(ids) for ids in lengths], self.batch_size, self._batch_tokens):
                with self._tokenizer_lock:
                    features = self._tokenizer(
                        [queries[i] for i in idx],
                        [texts[i] for i in idx],
                        padding=True,
                        truncation=True,
                        max_length=max_length,
                        return_tensors="np",
                    )
                logits = self._runner(features).reshape(len(idx), -1)[:, 0].astype(np.float64)
                values = 1.0 / (1.0 + np.exp(-logits)) if activation == "sigmoid" else logits
                for i, v in zip(idx, values.tolist(), strict=True):
                    out[i] = float(v)
        except (RuntimeError, ValueError) as exc:
            raise NonRetryableBackendError(
                f"{self.runtime} model failed while scoring: {exc}", backend=self.fingerprint
            ) from exc
        return out


def _hf_model(ce: Any) -> Any:
    """The Hugging Face ``PreTrainedModel`` inside a sentence-transformers ``CrossEncoder``."""
    direct = getattr(ce, "model", None)
    if direct is not None and hasattr(direct, "config") and hasattr(direct, "save_pretrained"):
        return direct
    for module in ce.modules():
        if module is not ce and hasattr(module, "config") and hasattr(module, "save_pretrained"):
            return module
    raise ConfigurationError("model", "no Hugging Face model found inside the CrossEncoder to export")


def _hub_snapshot(name: str, load_kwargs: Mapping[str, Any]) -> str:
    """For a hub id: the cached snapshot's commit (its folder name), or 'unresolved'."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            name,
            "config.json",
            cache_dir=load_kwargs.get("cache_folder"),
            revision=load_kwargs.get("revision"),
        )
    except Exception:  # a fingerprint, never a reason to fail
        return "unresolved"
    return Path(found).parent.name if isinstance(found, str) else "unresolved"


def _hash_pairs(pairs: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for q, t in pairs:
        h.update(f"{len(q)}:{q}{len(t)}:{t}".encode())
    return h.hexdigest()[:16]

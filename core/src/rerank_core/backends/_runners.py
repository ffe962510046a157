"""The local runtimes of the cross-encoder back end, one class each, chosen once when the back end is made.

- :class:`TorchRunner`: the sentence-transformers ``CrossEncoder`` itself, in ``dtype`` (``"auto"``: float16
  on CUDA, float32 elsewhere), scoring through the model's own ``preprocess``, forward and activation.
- :class:`OnnxRunner` / :class:`OpenVINORunner`: a CPU export of the model (:mod:`._export`), made once per
  model into the cache (from a float32 torch copy) and opened from it afterwards; the activation is applied
  to the exported logits in float64.

Every runner answers the same questions: ``load()`` (once, under a lock), ``runtime`` (``"torch-float32"``,
``"onnx-int8"``, ...: the dtype part is in the back end's fingerprint), ``activation`` (when known),
``score_kind()``, ``device``, ``tokenizer()`` and ``max_length()`` (for windowing), ``lengths(pairs)`` (token
counts, to sort pairs into batches) and ``predict(pairs)`` (the final scores of one batch), with the
errors of a forward pass (``scoring_errors``) and how to name the model in them (``what``).

Prompts: ``lengths`` and ``predict`` take ``prompt=`` (a sentence-transformers prompt, the back end's
instruction), put into the input as ``CrossEncoder.predict(pairs, prompt=...)`` does: the torch runner hands
it to the model's own ``preprocess`` (text pairs: prepended to the query, the pair's first text, with no
separator; chat-template models: a system message); the exported runners prepend it to the query before
tokenizing (their models are plain text-pair classifiers). Without a prompt both are called exactly as before.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rerank_core._optional import require
from rerank_core.backends import _export
from rerank_core.backends._local import model_load_lock
from rerank_core.errors import ConfigurationError, NonRetryableBackendError
from rerank_core.types import ScoreKind

__all__ = [
    "RUNNERS",
    "OnnxRunner",
    "OpenVINORunner",
    "Runner",
    "RunnerOptions",
    "TorchRunner",
    "abandonable",
    "abandoned",
    "prompted",
]

_LOCAL = {"extra": "local", "feature": "The local cross-encoder back end"}
_call = threading.local()


@contextlib.contextmanager
def abandonable(stop: threading.Event) -> Any:
    """Model work run by this thread inside the block stops at its next batch once ``stop`` is set (the
    async caller it runs for stopped waiting: a timeout or a cancellation)."""
    previous = getattr(_call, "stop", None)
    _call.stop = stop
    try:
        yield
    finally:
        _call.stop = previous


def abandoned() -> bool:
    """Whether the caller of this thread's model work has stopped waiting for it (see :func:`abandonable`)."""
    stop = getattr(_call, "stop", None)
    return stop is not None and stop.is_set()


@dataclass(frozen=True)
class RunnerOptions:
    """What a runner needs from the back end's arguments (checked there)."""

    source: Any  # a model id or path, or the caller's CrossEncoder
    name: str  # the resolved model id or path (fingerprints, export keys)
    given: Any  # the caller's CrossEncoder, or None
    device: str | None
    max_length: int | None
    dtype: str
    activation: str
    load_kwargs: Mapping[str, Any]
    num_threads: int | None
    quantization: str | None
    cache_dir: str | os.PathLike[str] | None
    calibration_pairs: Sequence[tuple[str, str]] | None
    tokenizer_lock: threading.Lock  # shared with the back end's windowing tokenizer
    fingerprint: Callable[[], str]  # the back end's, for errors


def prompted(pairs: Sequence[tuple[str, str]], prompt: str | None) -> list[tuple[str, str]]:
    """``pairs`` with ``prompt`` prepended to each query, as sentence-transformers puts a prompt into a text
    pair (``prompt + query``, no separator); the pairs unchanged without one (``None`` or ``""``)."""
    if not prompt:
        return list(pairs)
    return [(prompt + q, t) for q, t in pairs]


def resolve_device(device: str | None) -> str:
    torch = require("torch", **_LOCAL)
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    return device


def target_dtype(dtype: str, device: str) -> str:
    if dtype != "auto":
        return dtype
    # Half-precision weights (as the reference reranker ships) are upcast off CUDA: CPU fp16 is slow.
    return "float16" if device.startswith("cuda") else "float32"


def load_cross_encoder(
    o: RunnerOptions, *, device: str | None = None, dtype: str | None = None, eager: bool = False
) -> Any:
    """A sentence-transformers ``CrossEncoder`` from ``o.source``, loaded straight into its dtype."""
    st = require("sentence_transformers", package="sentence-transformers", **_LOCAL)
    device = resolve_device(device or o.device)
    kwargs = {k: v for k, v in o.load_kwargs.items() if v is not None}
    model_kwargs = dict(kwargs.get("model_kwargs") or {})
    torch = require("torch", **_LOCAL)
    if o.num_threads is not None:
        torch.set_num_threads(o.num_threads)
    if "dtype" not in model_kwargs and "torch_dtype" not in model_kwargs:
        # Load straight into the precision we run in (half-precision checkpoints would otherwise be
        # loaded as such on CPU, with a warning, and cast afterwards).
        model_kwargs["dtype"] = getattr(torch, dtype or target_dtype(o.dtype, device))
        kwargs["model_kwargs"] = model_kwargs
    if eager and "attn_implementation" not in model_kwargs:
        model_kwargs["attn_implementation"] = "eager"  # exports as plain ops the runtimes fuse
        kwargs["model_kwargs"] = model_kwargs
    try:
        with model_load_lock():  # one model build at a time per process
            return st.CrossEncoder(str(o.source), device=device, max_length=o.max_length, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigurationError("model", f"could not load cross-encoder {str(o.source)!r}: {exc}") from exc


class Runner(ABC):
    """One local runtime of the cross-encoder (see the module docstring)."""

    kind: ClassVar[str]  # the back end's ``runtime=`` argument
    scoring_errors: ClassVar[tuple[type[Exception], ...]] = (RuntimeError,)

    def __init__(self, options: RunnerOptions) -> None:
        self.o = options
        self._load_lock = threading.Lock()

    @classmethod
    def check(cls, *, dtype: str, device: str | None, quantization: str | None) -> None:
        """Refuse options this runtime cannot honour (a :class:`ConfigurationError` naming the argument)."""
        return None  # the default: every option is fine

    @property
    @abstractmethod
    def is_loaded(self) -> bool: ...

    def load(self) -> None:
        if not self.is_loaded:
            with self._load_lock:
                if not self.is_loaded:
                    self._load()

    @abstractmethod
    def _load(self) -> None: ...

    @property
    @abstractmethod
    def runtime(self) -> str:
        """``"<kind>-<dtype>"``: what runs, resolved without loading."""

    @property
    @abstractmethod
    def activation(self) -> str | None:
        """The activation applied to the logits, when known without loading (lower-case name)."""

    @abstractmethod
    def score_kind(self) -> ScoreKind:
        """What the model's own activation makes of the scores (loads)."""

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def what(self) -> str:
        """The model, as errors name it."""
        return f"{self.runtime} model"

    export_dir: Path | None = None
    exported: bool = False

    def torch_model(self) -> Any:
        raise ConfigurationError(
            "runtime", f"runtime={self.kind!r} has no torch model; call load() to load it"
        )

    @abstractmethod
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer (loads)."""

    @abstractmethod
    def max_length(self) -> int:
        """Tokens per pair (loads)."""

    def template_tokens(self, prompt: str | None = None) -> int | None:
        """For a model that renders a pair through its chat template (sentence-transformers' ``message``
        modality: causal-LM rerankers with ``LogitScore``), the tokens that template (with ``prompt``) takes
        around an empty pair; ``None`` for a model that reads the plain text pair (loads)."""
        return None

    @abstractmethod
    def lengths(self, pairs: Sequence[tuple[str, str]], prompt: str | None = None) -> list[int]:
        """Token count of each pair (with ``prompt`` in it), truncated to the limit (loaded runner)."""

    def inference(self) -> contextlib.AbstractContextManager[Any]:
        """The context a run of batches needs."""
        return contextlib.nullcontext()

    @abstractmethod
    def predict(self, pairs: Sequence[tuple[str, str]], prompt: str | None = None) -> list[float]:
        """The scores of one batch (loaded runner), with ``prompt`` put into each pair's input."""


class TorchRunner(Runner):
    kind = "torch"

    def __init__(self, options: RunnerOptions) -> None:
        super().__init__(options)
        self._model: Any = None
        self._activation: Any = None
        self._device: str | None = None
        self._dtype_name: str | None = None
        self._st_util: Any = None
        if options.given is not None:
            self._prepare(options.given)

    @classmethod
    def check(cls, *, dtype: str, device: str | None, quantization: str | None) -> None:
        if quantization is not None:
            raise ConfigurationError(
                "quantization", "int8 needs runtime='onnx' or runtime='openvino' (use dtype= for torch)"
            )

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> None:
        self._prepare(load_cross_encoder(self.o))

    def _prepare(self, model: Any) -> None:
        torch = require("torch", **_LOCAL)
        self._st_util = require("sentence_transformers.util", package="sentence-transformers", **_LOCAL)
        num_labels = getattr(model, "num_labels", 1)
        if num_labels != 1:
            raise ConfigurationError(
                "model",
                f"has {num_labels} output labels; a reranker needs a model with a single relevance output",
            )
        device = str(model.device)
        dtype = getattr(torch, target_dtype(self.o.dtype, device))
        if model is self.o.given and self._must_change(model, dtype):
            # Never change the caller's model (its dtype, max_length or training mode): run a copy.
            model = copy.deepcopy(model)
        if self.o.max_length is not None and model.max_seq_length != self.o.max_length:
            model.max_seq_length = self.o.max_length
        if next(model.parameters()).dtype != dtype:
            model.to(dtype)
        self._dtype_name = str(next(model.parameters()).dtype).removeprefix("torch.")
        if any(module.training for module in _export.hf_model(model).modules()):
            model.eval()
        activations = {"sigmoid": torch.nn.Sigmoid, "identity": torch.nn.Identity}
        chosen = activations.get(self.o.activation)
        self._activation = chosen() if chosen is not None else model.activation_fn
        self._device = device
        self._model = model

    def _must_change(self, model: Any, dtype: Any) -> bool:
        """Whether running ``model`` as asked would change it (then the runner works on a copy)."""
        return (
            (self.o.max_length is not None and model.max_seq_length != self.o.max_length)
            or next(model.parameters()).dtype != dtype
            or any(module.training for module in _export.hf_model(model).modules())
        )

    @property
    def runtime(self) -> str:
        return f"torch-{self._dtype_name or target_dtype(self.o.dtype, resolve_device(self.o.device))}"

    @property
    def activation(self) -> str | None:
        if self._model is None or self._activation is None:
            return None
        return type(self._activation).__name__.lower()

    def score_kind(self) -> ScoreKind:
        self.load()
        return "probability" if type(self._activation).__name__ == "Sigmoid" else "logit"

    @property
    def device(self) -> str:
        self.load()
        assert self._device is not None
        return self._device

    @property
    def what(self) -> str:
        return "model"

    def torch_model(self) -> Any:
        self.load()
        return self._model

    def tokenizer(self) -> Any:
        return self.torch_model().tokenizer

    def max_length(self) -> int:
        model = self.torch_model()
        return int(model.max_seq_length or getattr(model.tokenizer, "model_max_length", None) or 512)

    def lengths(self, pairs: Sequence[tuple[str, str]], prompt: str | None = None) -> list[int]:
        model = self._model
        with self.o.tokenizer_lock:
            ids = model.tokenizer(
                prompted(pairs, prompt),
                truncation=True,
                max_length=model.max_seq_length,
                padding=False,
                verbose=False,
            )["input_ids"]
        return [len(i) for i in ids]

    def template_tokens(self, prompt: str | None = None) -> int | None:
        model = self.torch_model()
        if "message" not in (getattr(model[0], "modality_config", None) or {}):
            return None
        with self.o.tokenizer_lock:
            features = model.preprocess([("", "")], prompt=prompt) if prompt else model.preprocess([("", "")])
        return int(features["input_ids"].shape[-1])

    def inference(self) -> contextlib.AbstractContextManager[Any]:
        return require("torch", **_LOCAL).inference_mode()

    def predict(self, pairs: Sequence[tuple[str, str]], prompt: str | None = None) -> list[float]:
        torch = require("torch", **_LOCAL)
        model = self._model
        with self.o.tokenizer_lock:
            # The model's own preprocess puts the prompt where CrossEncoder.predict(prompt=...) does.
            if prompt:
                features = model.preprocess(list(pairs), prompt=prompt)
            else:
                features = model.preprocess(list(pairs))
        features = self._st_util.batch_to_device(features, model.device)
        scores = model(features)["scores"]
        if torch.is_floating_point(scores) and torch.finfo(scores.dtype).bits < 32:
            scores = scores.float()
        if self._activation is not None:
            scores = self._activation(scores)
        return [float(v) for v in scores.reshape(len(pairs), -1)[:, 0].cpu().tolist()]


class _ExportedRunner(Runner):
    """A runtime that runs a cached export on the CPU; subclasses say how to finish the export
    (``finish``), which packages it needs (``_require``) and how to open it (``_open``)."""

    scoring_errors = (RuntimeError, ValueError)
    finish: ClassVar[Callable[..., None]]

    def __init__(self, options: RunnerOptions) -> None:
        super().__init__(options)
        self._session: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None
        self._tokenizer: Any = None
        self._meta: dict[str, Any] | None = None
        self._given = options.given

    @classmethod
    def check(cls, *, dtype: str, device: str | None, quantization: str | None) -> None:
        if dtype not in ("auto", "float32"):
            raise ConfigurationError(
                "dtype", f"runtime={cls.kind!r} runs float32 or int8 (quantization=), got dtype={dtype!r}"
            )
        if device not in (None, "auto", "cpu"):
            raise ConfigurationError("device", f"runtime={cls.kind!r} runs on the CPU, got {device!r}")

    @property
    def is_loaded(self) -> bool:
        return self._session is not None

    @property
    def runtime(self) -> str:
        return f"{self.kind}-{self.o.quantization or 'float32'}"

    @property
    def activation(self) -> str | None:
        return None if self._meta is None else str(self._meta["activation"])

    def score_kind(self) -> ScoreKind:
        self.load()
        return "probability" if self.activation == "sigmoid" else "logit"

    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    def max_length(self) -> int:
        self.load()
        assert self._meta is not None
        return int(self.o.max_length or self._meta["max_length"])

    @abstractmethod
    def _require(self) -> None: ...

    @abstractmethod
    def _open(self, path: Path, num_threads: int) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]: ...

    def _calibration_key(self) -> str | None:
        return None

    def _export_fields(self) -> dict[str, Any]:
        path = Path(self.o.name)
        load_kwargs = self.o.load_kwargs
        return {
            "model": self.o.name,
            "revision": load_kwargs["revision"],
            "files": (
                _export.model_files_fingerprint(path)
                if path.is_dir()
                else _export.hub_snapshot(self.o.name, load_kwargs)
            ),
            "runtime": self.kind,
            "quantization": self.o.quantization,
            "max_length": self.o.max_length,
            "activation": self.o.activation,
            "calibration": self._calibration_key(),
        }

    def _load(self) -> None:
        """Find the export in the cache (or make it from the torch model), then open it."""
        transformers = require("transformers", extra=self.kind, feature="The exported cross-encoder")
        self._require()
        folder = _export.cache_root(self.o.cache_dir) / _export.export_key(self._export_fields())
        meta = _export.read_meta(folder)
        if meta is None:
            self._export(folder)
            meta = _export.read_meta(folder)
            if meta is None:
                raise NonRetryableBackendError(
                    f"export to {folder} is incomplete", backend=self.o.fingerprint()
                )
            self.exported = True
            self._given = None  # the torch weights are not needed any more (a caller's model stays theirs)
        self._tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
        self._meta = meta
        self.export_dir = folder
        self._session = self._open(folder / meta["file"], self.o.num_threads or _export.default_num_threads())

    def _export(self, folder: Path) -> None:
        ce = (
            self._given
            if self._given is not None
            else load_cross_encoder(self.o, device="cpu", dtype="float32", eager=True)
        )
        first = ce[0] if len(ce) else None
        task = getattr(first, "transformer_task", "sequence-classification")
        if (
            len(ce) != 1
            or task != "sequence-classification"
            or "message" in (getattr(first, "modality_config", None) or {})
        ):
            # A causal-LM reranker (Transformer(text-generation) -> LogitScore) or a chat-template model: the
            # export reads logits of a plain text pair, which would be silently wrong scores.
            raise ConfigurationError(
                "runtime",
                f"runtime={self.kind!r} exports cross-encoders that classify a plain text pair; this "
                f"model is {task} with {len(ce)} module(s) (a chat template or a LogitScore head): use "
                "runtime='torch'",
            )
        torch_model = _export.hf_model(ce)
        if self._given is not None:  # the caller's model: export a float32 copy, never change theirs
            torch_model = copy.deepcopy(torch_model)
        saved = type(ce.activation_fn).__name__
        if saved not in ("Sigmoid", "Identity") and self.o.activation == "auto":
            raise ConfigurationError(
                "activation",
                f"the model's activation {saved} cannot be exported; pass activation='sigmoid' or 'identity'",
            )
        torch_model.float()
        try:
            _export.build_export(
                hf_model=torch_model,
                tokenizer=ce.tokenizer,
                runtime=self.kind,
                quantization=self.o.quantization,
                max_length=int(ce.max_seq_length or ce.tokenizer.model_max_length),
                activation="sigmoid" if saved == "Sigmoid" else "identity",
                target=folder,
                calibration_pairs=self.o.calibration_pairs,
                finish=type(self).finish,
            )
        except ImportError:
            raise
        except Exception as exc:
            raise NonRetryableBackendError(
                f"could not export {self.o.name!r} for runtime={self.kind!r}: {exc}",
                backend=self.o.fingerprint(),
            ) from exc

    def lengths(self, pairs: Sequence[tuple[str, str]], prompt: str | None = None) -> list[int]:
        pairs = prompted(pairs, prompt)
        with self.o.tokenizer_lock:
            ids = self._tokenizer(
                [q for q, _ in pairs],
                [t for _, t in pairs],
                truncation=True,
                max_length=self.max_length(),
                padding=False,
                verbose=False,
            )["input_ids"]
        return [len(i) for i in ids]

    def predict(self, pairs: Sequence[tuple[str, str]], prompt: str | None = None) -> list[float]:
        assert self._session is not None
        pairs = prompted(pairs, prompt)
        with self.o.tokenizer_lock:
            features = self._tokenizer(
                [q for q, _ in pairs],
                [t for _, t in pairs],
                padding=True,
                truncation=True,
                max_length=self.max_length(),
                return_tensors="np",
            )
        logits = self._session(features).reshape(len(pairs), -1)[:, 0].astype(np.float64)
        activation = self.o.activation if self.o.activation != "auto" else self.activation
        values = 1.0 / (1.0 + np.exp(-logits)) if activation == "sigmoid" else logits
        return [float(v) for v in values.tolist()]


class OnnxRunner(_ExportedRunner):
    """ONNX Runtime session: intra-op threads = ``num_threads``, inter-op 1, sequential execution."""

    kind = "onnx"
    finish = staticmethod(_export.finish_onnx)

    def _require(self) -> None:
        require("onnxruntime", extra="onnx", feature="The ONNX cross-encoder path")

    def _open(self, path: Path, num_threads: int) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
        ort = require("onnxruntime", extra="onnx", feature="The ONNX cross-encoder path")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run(features: Mapping[str, np.ndarray]) -> np.ndarray:
            feed = {n: np.asarray(features[n], dtype=np.int64) for n in names}
            return np.asarray(session.run(None, feed)[0], dtype=np.float32)

        return run


class OpenVINORunner(_ExportedRunner):
    """OpenVINO CPU model compiled for latency: one stream, ``num_threads`` threads, f32 precision (never a
    silent bf16 downcast on CPUs that support it); int8 is static, calibrated on ``calibration_pairs``."""

    kind = "openvino"
    finish = staticmethod(_export.finish_openvino)

    def _require(self) -> None:
        require("openvino", extra="openvino", feature="The OpenVINO cross-encoder path")
        if self.o.quantization:
            require("nncf", extra="openvino", feature="OpenVINO int8 quantization")

    def _calibration_key(self) -> str | None:
        if not self.o.quantization:
            return None
        return _export.hash_pairs(self.o.calibration_pairs or _export.DEFAULT_CALIBRATION_PAIRS)

    def _open(self, path: Path, num_threads: int) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
        ov = require("openvino", extra="openvino", feature="The OpenVINO cross-encoder path")
        core = ov.Core()
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": str(num_threads),
            "INFERENCE_PRECISION_HINT": "f32",
        }
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        names = [p.get_any_name() for p in compiled.inputs]
        lock = threading.Lock()
        request = compiled.create_infer_request()

        def run(features: Mapping[str, np.ndarray]) -> np.ndarray:
            feed = {n: np.asarray(features[n], dtype=np.int64) for n in names}
            with lock:  # one infer request: calls are serialized (the back end runs one at a time)
                result = request.infer(feed)
                return np.array(result[compiled.outputs[0]], dtype=np.float32)

        return run


RUNNERS: dict[str, type[Runner]] = {r.kind: r for r in (TorchRunner, OnnxRunner, OpenVINORunner)}

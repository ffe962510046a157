"""Local cross-encoder back end on sentence-transformers ``CrossEncoder`` (torch).

Scores are exactly what ``CrossEncoder.predict`` returns for the same pairs (the model's saved
activation unless ``activation`` overrides it), computed batch by batch through the model's own
``preprocess`` and forward, with pairs sorted by real token length so that batches carry little
padding, and the input order restored afterwards.

Loading is lazy: constructing the back end costs nothing; the first call that needs the model or
its tokenizer loads both, once, under a lock.

Runtimes (``runtime=``): ``"torch"`` (the ``CrossEncoder`` itself, in ``dtype``), ``"onnx"`` (ONNX Runtime)
and ``"openvino"``, the last two exported once per model into a cache and loaded from it afterwards, each
optionally ``quantization="int8"`` (see :mod:`rerank_core.backends._export`). The runtime is chosen once,
when the back end is made, as a runner (:mod:`rerank_core.backends._runners`); ``backend.runtime`` says
which path runs (``"torch-float32"``, ``"onnx-int8"``, ...) and is part of the fingerprint.

Batches: pairs are sorted by token length (longest first); ``batch_tokens`` cuts the sorted list into
batches of at most that many padded tokens (``batch_size`` still caps the count), else fixed
``batch_size`` batches.

Threads: one model call at a time per back end (``max_concurrency``, default 1, calls at most): every
call that runs the model, sync or async, from any thread or event loop, first takes one of the back end's
``max_concurrency`` model slots (a semaphore held for the call's whole run of batches; async calls also go
through a ``max_concurrency``-thread pool), and that call uses every core the process may run on: torch's
own intra-op pool (set ``num_threads`` to change it; this sets torch's process-wide setting), ONNX Runtime
with ``intra_op_num_threads=num_threads`` and ``inter_op_num_threads=1``, OpenVINO with one stream and
``INFERENCE_NUM_THREADS=num_threads``. Concurrent requests thus queue for the cores instead of
oversubscribing them. An async call whose caller stops waiting (a timeout, a cancellation) stops at its
next batch, so it keeps the model from the next caller for one batch at most.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_core.backends._export import QUANTIZATIONS
from rerank_core.backends._local import HFTokenizer, ModelSlots, batches, positive_int_or_none
from rerank_core.backends._runners import RUNNERS, RunnerOptions, abandoned
from rerank_core.backends.base import PairLimit, PairwiseBackend
from rerank_core.errors import ConfigurationError, NonRetryableBackendError
from rerank_core.types import ScoreKind

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import CrossEncoder

__all__ = ["CrossEncoderBackend"]

_ACTIVATIONS = ("auto", "sigmoid", "identity")
_DTYPES = ("auto", "float32", "float16", "bfloat16")


class CrossEncoderBackend(PairwiseBackend):
    """A local cross-encoder from a Hugging Face id, a local folder, or a loaded ``CrossEncoder``.

    Args:
        model: Hugging Face model id, local path, or an already constructed ``CrossEncoder``. A caller's
            ``CrossEncoder`` is never changed: when running it as asked would change it (another
            ``dtype``, such as float16 weights run as float32 on the CPU, another ``max_length``, or
            dropout still in training mode), the back end runs a copy (twice the weights in memory; pass
            matching ``dtype`` / ``max_length`` to share the caller's model instead).
        device: ``"auto"``/``None`` (cuda, then mps, then cpu) or any torch device string.
        max_length: tokens per (query, text) pair; ``None`` keeps the model's limit.
        batch_size: pairs per forward pass.
        dtype: ``"auto"`` (float16 on CUDA, float32 elsewhere), ``"float32"``, ``"float16"``, ``"bfloat16"``.
        activation: ``"auto"`` (the model's saved activation, as ``CrossEncoder.predict``), ``"sigmoid"``
            or ``"identity"`` (raw logits).
        model_kwargs / tokenizer_kwargs / config_kwargs: passed through to Hugging Face loading.
        trust_remote_code: run code shipped with the model; off by default.
        revision / cache_folder / local_files_only / token: passed through to the loader.
        max_concurrency: calls that may run this model at once, sync and async together (default 1; each
            call already uses every core, see ``num_threads``).
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
            given = None
            path = Path(model).expanduser()
            self._name = str(path.resolve()) if path.exists() else str(model)
        elif type(model).__name__ == "CrossEncoder" or hasattr(model, "predict"):
            given = model
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
        if runtime not in RUNNERS:
            raise ConfigurationError("runtime", f"must be one of {', '.join(RUNNERS)}, got {runtime!r}")
        if quantization not in QUANTIZATIONS:
            raise ConfigurationError("quantization", f"must be None or 'int8', got {quantization!r}")
        runner_cls = RUNNERS[runtime]
        runner_cls.check(dtype=dtype, device=device, quantization=quantization)
        self._batch_tokens = positive_int_or_none("batch_tokens", batch_tokens, minimum=8)
        num_threads = positive_int_or_none("num_threads", num_threads)
        calibration = (
            [(str(q), str(t)) for q, t in calibration_pairs] if calibration_pairs is not None else None
        )
        if calibration is not None and not calibration:
            raise ConfigurationError("calibration_pairs", "must hold at least one (query, text) pair")
        self._max_length = max_length
        self.batch_size = batch_size
        self._activation_arg = activation
        self._revision = revision
        self.max_concurrency = max_concurrency
        self._model_slots = ModelSlots(max_concurrency)
        self._tokenizer_lock = threading.Lock()
        self._runner = runner_cls(
            RunnerOptions(
                source=model,
                name=self._name,
                given=given,
                device=device,
                max_length=max_length,
                dtype=dtype,
                activation=activation,
                load_kwargs={
                    "trust_remote_code": trust_remote_code,
                    "revision": revision,
                    "cache_folder": cache_folder,
                    "local_files_only": local_files_only,
                    "token": token,
                    "model_kwargs": dict(model_kwargs) if model_kwargs else None,
                    "processor_kwargs": dict(tokenizer_kwargs) if tokenizer_kwargs else None,
                    "config_kwargs": dict(config_kwargs) if config_kwargs else None,
                },
                num_threads=num_threads,
                quantization=quantization,
                cache_dir=cache_dir,
                calibration_pairs=calibration,
                tokenizer_lock=self._tokenizer_lock,
                fingerprint=lambda: self.fingerprint,
            )
        )

    # -- loading ---------------------------------------------------------------------------------

    @property
    def model(self) -> CrossEncoder:
        """The underlying torch ``CrossEncoder`` (loads it on first access); ``runtime="torch"`` only."""
        return self._runner.torch_model()

    def load(self) -> None:
        """Load the model now (exporting it first for onnx/openvino when the cache has no export)."""
        self._runner.load()

    @property
    def is_loaded(self) -> bool:
        return self._runner.is_loaded

    @property
    def runtime(self) -> str:
        """Which path runs: ``"torch-float32"``, ``"onnx-int8"``, ``"openvino-int8"``..."""
        return self._runner.runtime

    @property
    def export_dir(self) -> Path | None:
        """The cache folder of the export in use (onnx/openvino, once loaded)."""
        return self._runner.export_dir

    @property
    def exported(self) -> bool:
        """Whether this back end made its export (rather than finding it in the cache)."""
        return self._runner.exported

    # -- what the back end is ----------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        # The activation as given ("auto": the model's saved one, fixed by the model and revision), never
        # what loading resolved it to: the fingerprint is the same before and after the model loads.
        runtime = self.runtime
        return (
            f"cross-encoder:{self._name}|revision={self._revision}|"
            f"max_length={self._max_length}|activation={self._activation_arg}|"
            f"dtype={runtime.split('-', 1)[1]}|"
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
        return self._runner.score_kind()

    @property
    def device(self) -> str:
        return self._runner.device

    def pair_limit(self) -> PairLimit:
        tokenizer = self._runner.tokenizer()
        return PairLimit(
            max_length=self._runner.max_length(),
            special_tokens=int(tokenizer.num_special_tokens_to_add(pair=True)),
            tokenizer=HFTokenizer(tokenizer, self._tokenizer_lock),
        )

    # -- scoring -----------------------------------------------------------------------------------

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Scores of (query, text) pairs: sorted by token length into batches, input order restored."""
        if not pairs:
            return []
        pairs = [(q, t) for q, t in pairs]
        runner = self._runner
        runner.load()
        planned = batches(runner.lengths(pairs), self.batch_size, self._batch_tokens)
        out = [0.0] * len(pairs)
        with self._model_slots:  # one model call at a time (max_concurrency), whichever path called
            try:
                with runner.inference():
                    for idx in planned:
                        if abandoned():  # the async caller timed out: free the model for the next one
                            raise NonRetryableBackendError(
                                "scoring abandoned: the caller stopped waiting", backend=self.fingerprint
                            )
                        for i, v in zip(idx, runner.predict([pairs[i] for i in idx]), strict=True):
                            out[i] = v
            except runner.scoring_errors as exc:  # out of memory, device errors: retrying will not help
                raise NonRetryableBackendError(
                    f"{runner.what} failed while scoring: {exc}", backend=self.fingerprint
                ) from exc
        return out

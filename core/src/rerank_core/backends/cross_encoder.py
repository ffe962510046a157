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

Instructions (sentence-transformers prompts): a model saved with prompts (``prompts`` in its
``config_sentence_transformers.json``, as ``CrossEncoder(..., prompts=...).save_pretrained`` writes them), or
given ``prompts=`` here, takes ``Reranker(backend, instruction=...)``: the instruction is the prompt text, and
the scores are exactly ``CrossEncoder.predict(pairs, prompt=instruction)``'s (a text pair gets
``instruction + query`` as its first text, no separator added), on every runtime (torch through the model's
own ``preprocess``; onnx/openvino prepend it to the query before tokenizing). Without an instruction the
model's ``default_prompt_name`` applies, as in ``CrossEncoder.predict``; a model without one is run exactly
as before. A model without prompts refuses an instruction (``ConfigurationError`` naming ``instruction``):
it was not trained to read one. Whether a model has prompts is read from that small JSON file (or the
caller's ``CrossEncoder``), never by loading the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_core._optional import require
from rerank_core.backends._export import QUANTIZATIONS
from rerank_core.backends._local import ModelSlots, batches, positive_int_or_none, shared_text_tokenizer
from rerank_core.backends._runners import RUNNERS, RunnerOptions, abandoned
from rerank_core.backends.base import PairLimit, PairwiseBackend
from rerank_core.errors import ConfigurationError, NonRetryableBackendError
from rerank_core.types import ScoreKind

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import CrossEncoder

__all__ = ["CrossEncoderBackend"]

_ACTIVATIONS = ("auto", "sigmoid", "identity")
_DTYPES = ("auto", "float32", "float16", "bfloat16")
_PROMPT_SUPPORT = "a sentence-transformers prompt (prepended to the query)"
_TEMPLATE_MARGIN = 2
"""Tokens left spare beside a chat template in ``pair_limit``: a query and a text rendered inside the template
may take a token more than counted apart (merges at the seams); truncation covers the rest."""
_PROMPT_MARGIN = 2
"""Tokens left spare beside the prompt in ``pair_limit``: the prompt tokenized alone may take a token less
than glued to the query (a merge at the seam); truncation covers the rest."""


@dataclass(frozen=True)
class _Prompts:
    """The model's sentence-transformers prompts (name -> text) and the name of its default one."""

    prompts: Mapping[str, str]
    default_prompt_name: str | None

    @property
    def takes_instruction(self) -> bool:
        return any(self.prompts.values())

    @property
    def default(self) -> str | None:
        """The prompt ``CrossEncoder.predict`` applies when given none (``None``: no default)."""
        if self.default_prompt_name is None:
            return None
        return self.prompts.get(self.default_prompt_name) or None


def _saved_prompts(source: str, load_kwargs: Mapping[str, Any]) -> _Prompts:
    """The prompts sentence-transformers would load with ``CrossEncoder(source)``, read from the small
    ``config_sentence_transformers.json`` only (no weights): a saved sentence-transformers model
    (``modules.json``) whose config says ``"model_type": "CrossEncoder"``; none otherwise (its loader ignores
    the prompts of other model types and of plain Hugging Face checkpoints)."""
    util = require(
        "sentence_transformers.util",
        package="sentence-transformers",
        extra="local",
        feature="The local cross-encoder back end",
    )
    where = {k: load_kwargs.get(k) for k in ("token", "cache_folder", "revision")}
    where["local_files_only"] = bool(load_kwargs.get("local_files_only"))
    if util.load_file_path(source, "modules.json", **where) is None:
        return _Prompts({}, None)
    path = util.load_file_path(source, "config_sentence_transformers.json", **where)
    if path is None:
        return _Prompts({}, None)
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError("model", f"could not read {path}: {exc}") from exc
    if not isinstance(config, dict) or config.get("model_type", "SentenceTransformer") != "CrossEncoder":
        return _Prompts({}, None)
    prompts = config.get("prompts") or {}
    default = config.get("default_prompt_name")
    return _Prompts(
        {str(k): "" if v is None else str(v) for k, v in dict(prompts).items()},
        None if default is None else str(default),
    )


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
        prompts: sentence-transformers prompts (name -> text) over the model's saved ones, as
            ``CrossEncoder(prompts=...)`` takes them. A model with at least one non-empty prompt takes an
            instruction (``instruction_support`` is set); one without refuses it.
        default_prompt_name: the prompt applied when no instruction is given, over the model's saved
            ``default_prompt_name`` (``CrossEncoder(default_prompt_name=...)``).

    An instruction (``Reranker(backend, instruction=...)``) is a sentence-transformers prompt: the scores are
    ``CrossEncoder.predict(pairs, prompt=instruction)``'s, on every runtime. Without one, the model's default
    prompt (``default_prompt_name``) applies as in ``CrossEncoder.predict``; ``backend.prompts`` lists the
    saved ones (pass ``instruction=backend.prompts["name"]`` to use one by name). A model saved without
    prompts takes no instruction (``ConfigurationError`` naming ``instruction``).
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
        prompts: Mapping[str, str] | None = None,
        default_prompt_name: str | None = None,
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
        if prompts is not None and (
            not isinstance(prompts, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items())
        ):
            raise ConfigurationError("prompts", "must map prompt names to prompt texts (str -> str)")
        if default_prompt_name is not None and not isinstance(default_prompt_name, str):
            raise ConfigurationError(
                "default_prompt_name",
                f"must be a prompt name or None, got {type(default_prompt_name).__name__}",
            )
        self._prompts_arg = dict(prompts) if prompts is not None else None
        self._default_prompt_name_arg = default_prompt_name
        self._prompt_config: _Prompts | None = None
        self._prompt_lock = threading.Lock()
        self._source = model
        self._given = given
        self._max_length = max_length
        self.batch_size = batch_size
        self._activation_arg = activation
        self._revision = revision
        self.max_concurrency = max_concurrency
        self._model_slots = ModelSlots(max_concurrency)
        self._tokenizer_lock = threading.Lock()
        self._load_kwargs = {
            "revision": revision,
            "cache_folder": cache_folder,
            "local_files_only": local_files_only,
            "token": token,
        }
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
        # Likewise the model's saved prompts and default prompt (fixed by the model and revision); only
        # prompts given here are added (a hash of them): a back end built without them keeps its fingerprint.
        runtime = self.runtime
        fingerprint = (
            f"cross-encoder:{self._name}|revision={self._revision}|"
            f"max_length={self._max_length}|activation={self._activation_arg}|"
            f"dtype={runtime.split('-', 1)[1]}|"
            f"runtime={runtime}"
        )
        if self._prompts_arg is not None:
            given = json.dumps(self._prompts_arg, sort_keys=True, ensure_ascii=False)
            fingerprint += f"|prompts=sha256:{hashlib.sha256(given.encode('utf-8')).hexdigest()[:16]}"
        if self._default_prompt_name_arg is not None:
            fingerprint += f"|default_prompt_name={self._default_prompt_name_arg}"
        return fingerprint

    @property
    def model_folder(self) -> str | None:
        """The model's local folder (``None`` for a hub id or a caller's loaded model)."""
        return self._name if os.path.isdir(self._name) else None

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

    def pair_limit(self, *, instruction: str | None = None) -> PairLimit:
        """The pair's token budget; the prompt (``instruction``, else the model's default prompt) is counted
        with the model's special tokens, so the query and the text share what it leaves."""
        tokenizer = self._runner.tokenizer()
        max_length = self._runner.max_length()
        special = int(tokenizer.num_special_tokens_to_add(pair=True))
        prompt = self._prompt(instruction)
        template = self._runner.template_tokens(prompt)
        if template is not None:  # a chat-template model: the rendered template (and prompt) around the pair
            special = min(max(special, template + _TEMPLATE_MARGIN), max_length - 1)
        elif prompt:
            with self._tokenizer_lock:
                prompt_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            special = min(special + prompt_tokens + _PROMPT_MARGIN, max_length - 1)
        return PairLimit(
            max_length=max_length,
            special_tokens=special,
            tokenizer=shared_text_tokenizer(self, tokenizer, self._tokenizer_lock),
        )

    # -- prompts (instructions) ----------------------------------------------------------------------

    def _prompts(self) -> _Prompts:
        """The model's prompts (saved, then ``prompts=`` over them), read once from its small JSON config (or
        the caller's ``CrossEncoder``), never from the weights."""
        config = self._prompt_config
        if config is not None:
            return config
        with self._prompt_lock:
            if self._prompt_config is None:
                if self._given is not None:
                    saved = _Prompts(
                        {
                            str(k): "" if v is None else str(v)
                            for k, v in dict(getattr(self._given, "prompts", None) or {}).items()
                        },
                        getattr(self._given, "default_prompt_name", None),
                    )
                else:
                    saved = _saved_prompts(str(self._source), self._load_kwargs)
                prompts = {**saved.prompts, **(self._prompts_arg or {})}
                default = self._default_prompt_name_arg or saved.default_prompt_name
                if default is not None and default not in prompts:
                    raise ConfigurationError(
                        "default_prompt_name",
                        f"{default!r} is not one of the model's prompts ({sorted(prompts)})",
                    )
                self._prompt_config = _Prompts(prompts, default)
            return self._prompt_config

    @property
    def prompts(self) -> dict[str, str]:
        """The model's sentence-transformers prompts (name -> text; reads its small JSON config)."""
        return dict(self._prompts().prompts)

    @property
    def default_prompt_name(self) -> str | None:
        """The prompt applied when no instruction is given (``None``: none)."""
        return self._prompts().default_prompt_name

    @property
    def instruction_support(self) -> str | None:  # type: ignore[override]
        """``"a sentence-transformers prompt ..."`` for a model with prompts, ``None`` for one without (or
        whose config cannot be read now: :meth:`check_instruction` then gives the reason)."""
        try:
            takes = self._prompts().takes_instruction
        except Exception:  # an unreadable config: check_instruction raises the reason
            return None
        return _PROMPT_SUPPORT if takes else None

    def check_instruction(self, instruction: str | None) -> None:
        if instruction is None:
            return
        if not self._prompts().takes_instruction:
            raise ConfigurationError(
                "instruction",
                f"this cross-encoder ({self._name}) takes no instruction: it was saved without "
                'sentence-transformers prompts (no "prompts" in config_sentence_transformers.json), so it '
                "was not trained to read one; leave instruction unset (or pass prompts= to "
                "CrossEncoderBackend if the model does read a prompt)",
            )

    def _prompt(self, instruction: str | None) -> str | None:
        """The prompt put into each pair: the instruction, else the model's default prompt, else none."""
        if instruction is not None:
            self.check_instruction(instruction)
            return instruction
        return self._prompts().default

    # -- scoring -----------------------------------------------------------------------------------

    def score_pairs(self, pairs: Sequence[tuple[str, str]], *, instruction: str | None = None) -> list[float]:
        """Scores of (query, text) pairs: sorted by token length into batches, input order restored.
        ``instruction``: the sentence-transformers prompt (``None``: the model's default prompt, if any)."""
        if instruction is not None:
            self.check_instruction(instruction)  # before any model work
        if not pairs:
            return []
        pairs = [(q, t) for q, t in pairs]
        runner = self._runner
        runner.load()
        prompt = self._prompt(instruction)
        told = {"prompt": prompt} if prompt else {}  # no prompt: the runner is called as it always was
        planned = batches(runner.lengths(pairs, **told), self.batch_size, self._batch_tokens)
        out = [0.0] * len(pairs)
        with self._model_slots:  # one model call at a time (max_concurrency), whichever path called
            try:
                with runner.inference():
                    for idx in planned:
                        if abandoned():  # the async caller timed out: free the model for the next one
                            raise NonRetryableBackendError(
                                "scoring abandoned: the caller stopped waiting", backend=self.fingerprint
                            )
                        scores = runner.predict([pairs[i] for i in idx], **told)
                        for i, v in zip(idx, scores, strict=True):
                            out[i] = v
            except runner.scoring_errors as exc:  # out of memory, device errors: retrying will not help
                raise NonRetryableBackendError(
                    f"{runner.what} failed while scoring: {exc}", backend=self.fingerprint
                ) from exc
        return out

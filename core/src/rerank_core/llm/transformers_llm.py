"""A local Hugging Face causal LM as the judge's :class:`~rerank_core.llm.LLM`, run in-process.

The model and tokenizer load lazily (first call), once, under a lock, from a Hugging Face id or a local
folder; quantized GGUF files load with ``gguf_file=`` (transformers de-quantizes them; needs the ``gguf``
package). Prompts go through the tokenizer's chat template. Log-probabilities come straight from the
logits of the first generated token, so a yes/no judgement is one forward pass (``max_tokens=1``); longer
answers use greedy ``generate``. :meth:`TransformersLLM.complete_many` answers many one-token prompts
in few forward passes: prompts are sorted by length, grouped so that a group's padded size stays within
``max_batch_tokens``, left-padded (with position ids counted from each row's first real token, so
padding does not shift the result) and the last position's logits are read per row. Work runs under
``torch.inference_mode`` and a lock (one forward at a time per model); ``blocking = True``, so async
callers run it on the back end's thread pool. :attr:`TransformersLLM.special_tokens` lists the tokenizer's
special tokens, which the judge defuses in every query and passage it sends.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rerank_core._optional import require
from rerank_core.errors import ConfigurationError, NonRetryableBackendError
from rerank_core.llm.base import (
    LLM,
    ChatMessage,
    LLMBatchResponse,
    LLMResponse,
    TokenLogprob,
    check_messages,
)

__all__ = ["TransformersLLM"]

_FEATURE = "The local transformers LLM"
_DTYPES = ("auto", "float32", "float16", "bfloat16")


class TransformersLLM(LLM):
    """A causal LM from a Hugging Face id or local folder (``gguf_file`` for a GGUF file in it).

    Args:
        model: Hugging Face id, local folder, or a loaded ``PreTrainedModel`` (then pass ``tokenizer``).
        gguf_file: the GGUF file name inside ``model`` (quantized weights; de-quantized at load).
        tokenizer: a loaded tokenizer (default: loaded from ``model``).
        device: ``"auto"`` (cuda, then cpu) or a torch device string.
        dtype: ``"auto"`` (float16 on CUDA, float32 elsewhere), ``"float32"``, ``"float16"``, ``"bfloat16"``.
        model_kwargs / tokenizer_kwargs: passed through to ``from_pretrained``.
        context_window: tokens the model may see (default: its ``max_position_embeddings``).
        max_batch_tokens: most tokens (rows x longest row, padding included) in one batched forward pass
            of :meth:`complete_many`; a larger batch is split into several passes. One prompt longer than
            this still runs, alone.
    """

    blocking = True
    supports_logprobs = True
    supports_batching = True

    def __init__(
        self,
        model: str | os.PathLike[str] | Any,
        *,
        gguf_file: str | None = None,
        tokenizer: Any = None,
        device: str = "auto",
        dtype: str = "auto",
        model_kwargs: Mapping[str, Any] | None = None,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        context_window: int | None = None,
        max_batch_tokens: int = 8192,
    ) -> None:
        if isinstance(model, str | os.PathLike):
            if not str(model).strip():
                raise ConfigurationError("model", "must be a Hugging Face id or a local path, got ''")
            path = Path(model).expanduser()
            self._name = str(path.resolve()) if path.exists() else str(model)
            if gguf_file is not None and path.exists() and not (path / gguf_file).is_file():
                raise ConfigurationError("gguf_file", f"{gguf_file!r} is not a file in {self._name}")
            self._model: Any = None
        elif hasattr(model, "generate") and hasattr(model, "config"):
            if tokenizer is None:
                raise ConfigurationError("tokenizer", "is required when `model` is a loaded model")
            self._model = model
            self._name = getattr(model, "name_or_path", None) or type(model).__name__
        else:
            raise ConfigurationError(
                "model", f"expected a model id, a path or a loaded causal LM, got {type(model).__name__}"
            )
        if dtype not in _DTYPES:
            raise ConfigurationError("dtype", f"must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        if context_window is not None and (not isinstance(context_window, int) or context_window < 64):
            raise ConfigurationError("context_window", f"must be an integer >= 64, got {context_window!r}")
        if type(max_batch_tokens) is not int or max_batch_tokens < 1:
            raise ConfigurationError("max_batch_tokens", f"must be an integer >= 1, got {max_batch_tokens!r}")
        self.max_batch_tokens = max_batch_tokens
        self._source = model
        self._gguf_file = gguf_file
        self._tokenizer = tokenizer
        self._device_arg = device
        self._dtype_arg = dtype
        self._model_kwargs = dict(model_kwargs or {})
        self._tokenizer_kwargs = dict(tokenizer_kwargs or {})
        self._trust_remote_code = trust_remote_code
        self._revision = revision
        self._context_window_arg = context_window
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._device: str | None = None
        self._special_tokens: tuple[str, ...] | None = None
        if self._model is not None:
            self._prepare(self._model)

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> None:
        torch = require("torch", extra="llm", feature=_FEATURE)
        tf = require("transformers", extra="llm", feature=_FEATURE)
        if self._gguf_file is not None:
            require("gguf", extra="llm", feature="Loading a GGUF model")
        common: dict[str, Any] = {"trust_remote_code": self._trust_remote_code}
        if self._revision is not None:
            common["revision"] = self._revision
        if self._gguf_file is not None:
            common["gguf_file"] = self._gguf_file
        device = self._device_arg
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = self._dtype_arg
        if dtype == "auto":
            dtype = "float16" if device.startswith("cuda") else "float32"
        kwargs = {"dtype": getattr(torch, dtype), **common, **self._model_kwargs}
        try:
            if self._tokenizer is None:
                self._tokenizer = tf.AutoTokenizer.from_pretrained(
                    str(self._source), **common, **self._tokenizer_kwargs
                )
            model = tf.AutoModelForCausalLM.from_pretrained(str(self._source), **kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigurationError("model", f"could not load causal LM {self._name!r}: {exc}") from exc
        model.to(device)
        self._prepare(model)
        self._model = model

    def _prepare(self, model: Any) -> None:
        model.eval()
        self._device = str(getattr(model, "device", "cpu"))
        if getattr(self._tokenizer, "chat_template", None) is None:
            raise ConfigurationError(
                "tokenizer",
                f"{self._name!r} has no chat template; the judge needs an instruction-tuned model",
            )

    @property
    def model(self) -> Any:
        """The loaded causal LM (loads it on first access)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    from rerank_core.backends._local import model_load_lock

                    with model_load_lock():  # one model build at a time per process
                        self._load()
        return self._model

    @property
    def tokenizer(self) -> Any:
        _ = self.model
        return self._tokenizer

    @property
    def context_window(self) -> int | None:  # type: ignore[override]
        if self._context_window_arg is not None:
            return self._context_window_arg
        return int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)

    @property
    def fingerprint(self) -> str:
        return (
            f"transformers:{self._name}|gguf={self._gguf_file}|"
            f"revision={self._revision}|dtype={self._dtype_arg}"
        )

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """The tokenizer's own special tokens (``all_special_tokens`` and every added token marked special:
        17 for SmolLM2, ``<|im_start|>`` to ``<empty_output>``). The judge defuses each of them in query and
        passage text (:func:`rerank_core.llm.neutralize`), so a passage cannot write one the model would
        read as a control token. Loads the tokenizer (and model) on first access."""
        if self._special_tokens is None:
            tokenizer = self.tokenizer
            found = set(getattr(tokenizer, "all_special_tokens", None) or ())
            for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
                content = getattr(added, "content", None)
                if getattr(added, "special", False) and isinstance(content, str):
                    found.add(content)
            self._special_tokens = tuple(sorted(t for t in found if isinstance(t, str) and t.strip()))
        return self._special_tokens

    def count_tokens(self, text: str) -> int:
        with self._run_lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- generation ----------------------------------------------------------------------------

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMResponse:
        torch = require("torch", extra="llm", feature=_FEATURE)
        messages = check_messages(messages)
        model, tokenizer = self.model, self.tokenizer
        chat = [{"role": m.role, "content": m.content} for m in messages]
        try:
            with self._run_lock, torch.inference_mode():
                encoded = tokenizer.apply_chat_template(
                    chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
                # only what a causal LM takes (some tokenizers add token_type_ids, which generate refuses)
                inputs = {
                    k: encoded[k].to(model.device) for k in ("input_ids", "attention_mask") if k in encoded
                }
                n_prompt = int(inputs["input_ids"].shape[1])
                if max_tokens <= 1:
                    logits = model(**inputs).logits[0, -1]
                    generated = [int(torch.argmax(logits))]
                else:
                    out = model.generate(
                        **inputs,
                        max_new_tokens=max_tokens,
                        do_sample=False,
                        output_logits=top_logprobs > 0,
                        return_dict_in_generate=True,
                        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                    )
                    generated = [int(t) for t in out.sequences[0, n_prompt:]]
                    logits = out.logits[0][0] if top_logprobs > 0 else None
                tops = self._tops(logits, top_logprobs) if logits is not None else None
        except RuntimeError as exc:  # out of memory, device errors: retrying the same call will not help
            raise NonRetryableBackendError(
                f"model failed while generating: {exc}", backend=self.fingerprint
            ) from exc
        return self._response(generated, tops, n_prompt)

    def _tops(self, logits: Any, top_logprobs: int) -> tuple[TokenLogprob, ...] | None:
        if top_logprobs <= 0:
            return None
        torch = require("torch", extra="llm", feature=_FEATURE)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        best = torch.topk(logprobs, min(top_logprobs, logprobs.shape[-1]))
        return tuple(
            TokenLogprob(self._tokenizer.decode([int(i)]), float(v))
            for v, i in zip(best.values, best.indices, strict=True)
        )

    def _response(self, generated: list[int], tops: Any, n_prompt: int) -> LLMResponse:
        model, tokenizer = self._model, self._tokenizer
        config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = {tokenizer.eos_token_id, *(config_eos if isinstance(config_eos, list) else [config_eos])}
        kept = []
        for t in generated:
            if t in eos:
                break
            kept.append(t)
        text = tokenizer.decode(kept, skip_special_tokens=True)
        completion = min(len(generated), len(kept) + 1)
        return LLMResponse(text, tops, prompt_tokens=n_prompt, completion_tokens=completion)

    def complete_many(
        self, requests: Sequence[Sequence[ChatMessage]], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMBatchResponse:
        """Answers for several prompts; one-token answers (``max_tokens <= 1``) in batched forward passes
        of at most ``max_batch_tokens`` padded tokens each, longer answers one ``generate`` each."""
        if max_tokens > 1:
            return super().complete_many(requests, max_tokens=max_tokens, top_logprobs=top_logprobs)
        torch = require("torch", extra="llm", feature=_FEATURE)
        checked = [check_messages(m, f"requests[{i}]") for i, m in enumerate(requests)]
        model, tokenizer = self.model, self.tokenizer
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        responses: list[LLMResponse | None] = [None] * len(checked)
        call_of = [0] * len(checked)
        try:
            with self._run_lock, torch.inference_mode():
                ids = []
                for messages in checked:
                    chat = [{"role": m.role, "content": m.content} for m in messages]
                    encoded = tokenizer.apply_chat_template(
                        chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
                    )
                    ids.append([int(t) for t in encoded["input_ids"][0]])
                # shortest first, so each pass pads little; a group grows while rows x longest fits
                groups: list[list[int]] = []
                for i in sorted(range(len(ids)), key=lambda i: len(ids[i])):
                    if groups and (len(groups[-1]) + 1) * len(ids[i]) <= self.max_batch_tokens:
                        groups[-1].append(i)
                    else:
                        groups.append([i])
                for call, group in enumerate(groups):
                    width = max(len(ids[i]) for i in group)
                    input_ids = torch.full((len(group), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(group), width), dtype=torch.long)
                    for row, i in enumerate(group):  # left padding: every row ends at the last position
                        input_ids[row, width - len(ids[i]) :] = torch.tensor(ids[i], dtype=torch.long)
                        mask[row, width - len(ids[i]) :] = 1
                    positions = (mask.cumsum(-1) - 1).clamp(min=0)
                    logits = model(
                        input_ids=input_ids.to(model.device),
                        attention_mask=mask.to(model.device),
                        position_ids=positions.to(model.device),
                        logits_to_keep=1,
                    ).logits[:, -1]
                    for row, i in enumerate(group):
                        tops = self._tops(logits[row], top_logprobs)
                        responses[i] = self._response([int(torch.argmax(logits[row]))], tops, len(ids[i]))
                        call_of[i] = call
        except RuntimeError as exc:  # out of memory, device errors: retrying the same call will not help
            raise NonRetryableBackendError(
                f"model failed while scoring a batch: {exc}", backend=self.fingerprint
            ) from exc
        return LLMBatchResponse(tuple(responses), tuple(call_of))  # type: ignore[arg-type]

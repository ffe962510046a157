"""Decoder-LLM and seq2seq rerankers run by their family's recipe (:mod:`rerank_core.recipes`):
Qwen3-Reranker, bge-reranker-v2-gemma, mxbai-rerank-v2, Contextual AI's reranker v2, monoT5, RankT5,
InRanker.

The back end tokenizes each (query, document) through the recipe's template (each part as the card's code
tokenizes it; only the document is ever cut), runs the model once per batch and reads the recipe's
tokens from the next-token logits: at the last position for causal models (inputs padded on the left, so
the last position of every row is real), at the first decoder step for seq2seq models. Scores are the
recipe's formula (``P(yes)``, a raw logit, a logit difference), computed in float32 whatever the model's
dtype.

Batches: inputs sorted by token length (longest first), cut by ``batch_tokens`` padded tokens (and at most
``batch_size`` rows), input order restored. When a batch runs out of accelerator memory it is halved and
each half retried, down to one input, so no pair is lost.

Dtypes (``dtype="auto"``): float16 on CUDA, bfloat16 on a CPU with native bf16 (AVX512-BF16 / AMX; oneDNN
says so), float32 otherwise.

After ``os.fork`` a child starts with free locks (a parent thread may have held one at the fork) and, if a
model ran in the parent, with torch on one CPU thread (its thread pool does not survive a fork; see
:mod:`._local`).

Checkpoints converted for sentence-transformers (a ``modules.json`` with a ``LogitScore`` module) are run
by sentence-transformers itself: :func:`rerank_core.backends.local_backend` sends them to
:class:`~rerank_core.backends.cross_encoder.CrossEncoderBackend`, so our scores are its scores.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rerank_core import recipes as _recipes
from rerank_core._optional import require
from rerank_core.backends._local import (
    ModelSlots,
    batches,
    model_load_lock,
    positive_int_or_none,
    run_halving,
    shared_text_tokenizer,
)
from rerank_core.backends._runners import abandoned, resolve_device
from rerank_core.backends.base import PairLimit, PairwiseBackend
from rerank_core.errors import ConfigurationError, NonRetryableBackendError, RerankError
from rerank_core.recipes import Recipe
from rerank_core.types import ScoreKind

__all__ = ["RecipeBackend", "auto_dtype"]

_DTYPES = ("auto", "float32", "float16", "bfloat16")
_TEMPLATE_MARGIN = 2
"""Tokens left spare beside the template in ``pair_limit``: a query and a document tokenized apart may
take a token more or less than inside the template (merges at the seams); the back end's own cut covers
the rest."""


def auto_dtype(device: str) -> str:
    """float16 on CUDA, bfloat16 on a CPU with native bf16 (oneDNN's check), float32 otherwise."""
    if device.startswith("cuda"):
        return "float16"
    if device == "cpu":
        import torch

        try:
            if torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return "bfloat16"
        except (AttributeError, RuntimeError):  # pragma: no cover - a torch build without oneDNN
            pass
    return "float32"


class RecipeBackend(PairwiseBackend):
    """A decoder-LLM or seq2seq reranker from a Hugging Face id or local folder, scored by its recipe.

    Args:
        model: Hugging Face model id or local folder (``gguf_file`` for a GGUF file in it).
        recipe: a recipe name (``"qwen3"``, ``"bge-gemma"``, ``"mxbai-v2"``, ``"contextual-v2"``,
            ``"zerank"``, ``"monot5"``, ``"rankt5"``, ``"inranker"``), a :class:`~rerank_core.recipes.Recipe`,
            or ``None``: detected from the model's name, else from its config when it loads.
        device: ``"auto"``/``None`` (cuda, then mps, then cpu) or a torch device string.
        dtype: ``"auto"`` (see the module docstring), ``"float32"``, ``"float16"``, ``"bfloat16"``.
        max_length: tokens per input, template included (default: the recipe's, capped by the model's
            ``max_position_embeddings``).
        batch_size: inputs per forward pass at most.
        batch_tokens: cut length-sorted batches at this many padded tokens (default 16,384).
        gguf_file: a GGUF file inside ``model`` (de-quantized at load; extra ``llm``).
        model_kwargs / tokenizer_kwargs: passed to ``from_pretrained``.
        trust_remote_code / revision / cache_folder / local_files_only / token: passed to the loader.
        max_concurrency: calls that may run this model at once (default 1).
    """

    instruction_support = "the recipe's template"

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        recipe: str | Recipe | None = None,
        device: str | None = "auto",
        dtype: str = "auto",
        max_length: int | None = None,
        batch_size: int = 16,
        batch_tokens: int | None = 16_384,
        gguf_file: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        cache_folder: str | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        max_concurrency: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(model, str | os.PathLike) or not str(model).strip():
            raise ConfigurationError(
                "model", f"must be a Hugging Face model id or a local path, got {model!r}"
            )
        path = Path(model).expanduser()
        self._source = str(path) if path.exists() else str(model)
        self._name = str(path.resolve()) if path.exists() else str(model)
        if gguf_file is not None and path.exists() and not (path / gguf_file).is_file():
            raise ConfigurationError("gguf_file", f"{gguf_file!r} is not a file in {self._name}")
        self._recipe_arg = recipe
        self._recipe: Recipe | None = (
            _recipes.get_recipe(recipe) if recipe is not None else _recipes.detect(self._name)
        )
        if dtype not in _DTYPES:
            raise ConfigurationError("dtype", f"must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        self._max_length_arg = positive_int_or_none("max_length", max_length, minimum=16)
        self.batch_size = positive_int_or_none("batch_size", batch_size)
        self._batch_tokens = positive_int_or_none("batch_tokens", batch_tokens, minimum=16)
        self.max_concurrency = positive_int_or_none("max_concurrency", max_concurrency) or 1
        self._device_arg = device
        self._dtype_arg = dtype
        self._gguf_file = gguf_file
        self._revision = revision
        self._load_kwargs = {
            "trust_remote_code": trust_remote_code,
            "revision": revision,
            "cache_dir": cache_folder,
            "local_files_only": local_files_only,
            "token": token,
            **({"gguf_file": gguf_file} if gguf_file else {}),
        }
        self._model_kwargs = dict(model_kwargs or {})
        self._tokenizer_kwargs = dict(tokenizer_kwargs or {})
        ours = {*self._load_kwargs, "gguf_file"}
        for argument, given, taken in (
            ("model_kwargs", self._model_kwargs, ours | {"dtype", "torch_dtype"}),
            ("tokenizer_kwargs", self._tokenizer_kwargs, ours),
        ):
            clash = sorted(taken.intersection(given))
            if clash:  # from_pretrained would get them twice (a TypeError at the first call)
                raise ConfigurationError(
                    argument, f"sets {', '.join(clash)}: pass them as the back end's own arguments"
                )
        self._model_slots = ModelSlots(self.max_concurrency)
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._tokens: _recipes.ScoredTokens | None = None
        self._max_length = 0
        self._keeps_logits = False

    # -- what the back end is ------------------------------------------------------------------------

    @property
    def recipe(self) -> Recipe:
        """The recipe in use (loads the model's config when the name did not tell)."""
        if self._recipe is None:
            self.load()
        assert self._recipe is not None
        return self._recipe

    @property
    def fingerprint(self) -> str:
        # The recipe as given or as the name tells ("auto" when only the config will tell): the same before
        # and after loading.
        recipe = self._recipe_arg if isinstance(self._recipe_arg, str) else None
        if isinstance(self._recipe_arg, Recipe):
            digest = hashlib.sha256(repr(self._recipe_arg).encode("utf-8")).hexdigest()[:12]
            recipe = f"{self._recipe_arg.name}:{digest}"  # a custom recipe: its whole content
        elif recipe is None:
            recipe = self._recipe.name if self._recipe is not None and self._recipe_arg is None else "auto"
        return (
            f"recipe:{recipe}:{self._name}|gguf={self._gguf_file}|revision={self._revision}|"
            f"max_length={self._max_length_arg}|dtype={self.dtype}"
        )

    @property
    def device(self) -> str:
        return resolve_device(self._device_arg)

    @property
    def dtype(self) -> str:
        """The dtype the model runs in (``"auto"`` resolved for the device)."""
        return auto_dtype(self.device) if self._dtype_arg == "auto" else self._dtype_arg

    @property
    def score_kind(self) -> ScoreKind:
        return self.recipe.score_kind  # type: ignore[return-value]

    @property
    def model_folder(self) -> str | None:
        """The model's local folder (``None`` for a hub id)."""
        return self._source if os.path.isdir(self._source) else None

    def peek_score_kind(self) -> ScoreKind | None:
        return None if self._recipe is None else self._recipe.score_kind  # type: ignore[return-value]

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def check_instruction(self, instruction: str | None) -> None:
        if instruction is not None and not self.recipe.takes_instruction:
            raise ConfigurationError(
                "instruction",
                f"the {self.recipe.name} recipe ({self.recipe.family}) takes no instruction: its models were "
                "trained on a fixed input format; leave instruction unset",
            )

    def pair_limit(self, instruction: str | None = None) -> PairLimit:
        self.load()
        with self._tokenizer_lock:
            overhead = _recipes.template_length(self.recipe, self._tokenizer, instruction)
        return PairLimit(
            max_length=self._max_length,
            special_tokens=min(overhead + _TEMPLATE_MARGIN, self._max_length - 1),
            tokenizer=shared_text_tokenizer(self, self._tokenizer, self._tokenizer_lock),
        )

    def _after_fork(self) -> None:
        """In a forked child: another thread of the parent may have held a lock at the fork (tokenizing,
        loading); it does not exist here, so the child starts with free locks."""
        super()._after_fork()
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------------------

    def load(self) -> None:
        """Load the tokenizer and the model now (once; later calls return at once)."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is None:
                with _load_errors(self._name), model_load_lock():  # one model build at a time per process
                    self._load()

    def _load(self) -> None:
        require("transformers", extra="local", feature="The recipe back end")
        if self._gguf_file is not None:
            require("gguf", extra="llm", feature="Loading a GGUF model")
        import torch
        import transformers as tf

        try:
            torch.device(self.device)
        except RuntimeError as exc:  # checked before anything is read or downloaded
            raise ConfigurationError("device", f"{self._device_arg!r} is not a torch device: {exc}") from exc
        config = tf.AutoConfig.from_pretrained(self._source, **self._load_kwargs)
        recipe = self._recipe or _recipes.detect(self._name, config)
        if recipe is None:
            raise ConfigurationError(
                "recipe",
                f"cannot tell the recipe of {self._name} from its name or config "
                f"({getattr(config, 'architectures', None)}); name one: "
                f"{', '.join(sorted(_recipes.RECIPES))}",
            )
        limit = recipe.max_length if self._max_length_arg is None else self._max_length_arg
        positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        if recipe.kind == "causal" and isinstance(positions, int) and positions > 0:
            if limit > positions and self._max_length_arg is not None:
                raise ConfigurationError(
                    "max_length", f"{limit} is more than {self._name} takes ({positions} positions)"
                )
            limit = min(limit, positions)
        tokenizer = tf.AutoTokenizer.from_pretrained(
            self._source, **self._load_kwargs, **self._tokenizer_kwargs
        )
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigurationError(
                "model", f"{self._name}: the recipe back end needs a fast tokenizer (offsets)"
            )
        tokens = _recipes.resolve_tokens(recipe, tokenizer)
        cls = tf.AutoModelForSeq2SeqLM if recipe.kind == "seq2seq" else tf.AutoModelForCausalLM
        device, dtype = self.device, self.dtype
        model = cls.from_pretrained(
            self._source, dtype=getattr(torch, dtype), **self._load_kwargs, **self._model_kwargs
        )
        model.to(device)
        model.eval()
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._recipe, self._tokenizer, self._tokens, self._max_length = recipe, tokenizer, tokens, limit
        self._model = model

    @property
    def model(self) -> Any:
        """The loaded ``transformers`` model (loads it)."""
        self.load()
        return self._model

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    @property
    def max_length(self) -> int:
        self.load()
        return self._max_length

    # -- scoring -------------------------------------------------------------------------------------

    def render(self, query: str, text: str, instruction: str | None = None) -> list[int]:
        """The token ids the model reads for one pair (for inspection and tests)."""
        self.load()
        with self._tokenizer_lock:
            return _recipes.render(
                self.recipe, self._tokenizer, query, text, instruction, self._max_length
            ).ids

    def score_pairs(self, pairs: Sequence[tuple[str, str]], *, instruction: str | None = None) -> list[float]:
        """One score per (query, text) pair in input order, under ``instruction`` (``None``: the recipe's
        default)."""
        if not pairs:
            return []
        self.load()
        self.check_instruction(instruction)
        recipe = self.recipe
        with self._tokenizer_lock:
            inputs = [
                _recipes.render(recipe, self._tokenizer, q, t, instruction, self._max_length).ids
                for q, t in pairs
            ]
        out = [0.0] * len(inputs)
        planned = batches([len(ids) for ids in inputs], self.batch_size or 16, self._batch_tokens)
        with self._model_slots:
            try:
                for idx in planned:
                    if abandoned():  # the async caller timed out: free the model for the next one
                        raise NonRetryableBackendError(
                            "scoring abandoned: the caller stopped waiting", backend=self.fingerprint
                        )
                    for i, value in run_halving(
                        idx, lambda b: self._forward([inputs[i] for i in b]), _empty_cache
                    ):
                        out[i] = value
            except RuntimeError as exc:  # out of memory on one input, device errors: retrying will not help
                raise NonRetryableBackendError(
                    f"{recipe.name} model failed while scoring: {exc}", backend=self.fingerprint
                ) from exc
        return out

    def _forward(self, rows: list[list[int]]) -> list[float]:
        """Scores of one batch of token-id rows."""
        import torch

        recipe, tokens, model = self.recipe, self._tokens, self._model
        assert tokens is not None
        pad = self._tokenizer.pad_token_id
        if pad is None:
            pad = self._tokenizer.eos_token_id if self._tokenizer.eos_token_id is not None else 0
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, row in enumerate(rows):
            if recipe.padding_side == "left":
                ids[k, width - len(row) :] = torch.tensor(row, dtype=torch.long)
                mask[k, width - len(row) :] = 1
            else:
                ids[k, : len(row)] = torch.tensor(row, dtype=torch.long)
                mask[k, : len(row)] = 1
        device = self.device
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode():
            if recipe.kind == "seq2seq":
                start = model.config.decoder_start_token_id
                start = int(start if start is not None else pad)
                decoder = torch.full((len(rows), 1), start, dtype=torch.long, device=device)
                logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder).logits[:, 0, :]
            else:
                extra = {"logits_to_keep": 1} if self._keeps_logits else {}
                logits = model(input_ids=ids, attention_mask=mask, **extra).logits[:, -1, :]
            logits = logits.float()
            true = logits[:, tokens.true_id]
            if recipe.score == "p_true":
                assert tokens.false_id is not None
                pair = torch.stack([logits[:, tokens.false_id], true], dim=1)
                score = torch.nn.functional.log_softmax(pair, dim=1)[:, 1].exp()
            elif recipe.score == "logit_diff":
                assert tokens.false_id is not None
                score = (true - logits[:, tokens.false_id]) * recipe.scale
            else:
                score = true * recipe.scale
        return [float(v) for v in score.cpu()]


@contextlib.contextmanager
def _load_errors(name: str) -> Iterator[None]:
    """A model that cannot be loaded (a wrong path or id, a folder without a config, bad load arguments)
    is a ``ConfigurationError`` naming ``model``: not a scoring failure that ``fail_open`` would hide."""
    try:
        yield
    except RerankError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigurationError("model", f"could not load {name!r}: {exc}") from exc


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()

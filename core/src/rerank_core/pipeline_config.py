"""A whole reranking pipeline described as data: what ``rerank serve`` and ``rerank batch`` run.

A server worker process or a Ray actor cannot be handed a loaded :class:`~rerank_core.Reranker` (a model
is a resource, not a value); it is handed this description and builds its own. The description comes from
a configuration file (JSON, or TOML on Python 3.11+), from command-line flags, or from Python:

```toml
model = "models/reference-reranker"   # a local folder or a Hugging Face id (local_backend decides)
recipe = "qwen3"                      # optional: a decoder-LLM / seq2seq recipe ("auto" detects)

[backend]                             # keyword arguments of the back end's constructor
runtime = "onnx"
batch_size = 32

[options]                             # RerankerOptions, by name (docs/configuration.md)
calibration = "model"
long_text = { mode = "window", max_windows = 4 }
coalesce = { max_wait_ms = 2.0, max_pairs = 512 }
```

Instead of ``model``, ``reranker`` takes a :func:`~rerank_core.integrations.reranker_config` mapping, for
any back end that can be described so (a Cohere, TEI, Jina or vLLM server, a cascade); API keys are never
in it: the back end reads them from the environment where it is built. Other top-level tables (``serve``,
``batch``) belong to the command that reads the file; this module ignores them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank_core.errors import ConfigurationError

__all__ = ["PipelineConfig", "read_config_file"]

#: Top-level keys of a configuration file that belong to a command, not to the pipeline.
COMMAND_TABLES = ("serve", "batch")
_KEYS = ("model", "recipe", "backend", "options", "reranker")


def read_config_file(path: str | os.PathLike[str], argument: str = "--config") -> dict[str, Any]:
    """The mapping in a JSON (``.json``) or TOML (``.toml``) configuration file; a
    :class:`ConfigurationError` naming ``argument`` when it cannot be read or parsed."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(argument, f"cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(argument, f"{file} is not UTF-8 text") from None
    if file.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise ConfigurationError(
                argument, "TOML needs Python 3.11 or later; write the file as JSON"
            ) from None
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(argument, f"{file} is not valid TOML: {exc}") from None
    elif file.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(argument, f"{file} is not valid JSON: {exc}") from None
    else:
        raise ConfigurationError(argument, f"{file}: expected a .json or .toml file")
    if not isinstance(data, dict):
        raise ConfigurationError(argument, f"{file} must hold a mapping at the top level")
    return data


@dataclass(frozen=True)
class PipelineConfig:
    """What to build: a local ``model`` (with an optional ``recipe`` and ``backend`` constructor arguments)
    or a described ``reranker``, plus ``options`` (:class:`~rerank_core.RerankerOptions` by name).

    Validated when made, except what only loading can tell (a model folder that is not a model); the
    options are checked here by building them once, so a typo fails before any model loads.
    """

    model: str | None = None
    recipe: str | None = None
    backend: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    reranker: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if (self.model is None) == (self.reranker is None):
            raise ConfigurationError("model", "give exactly one of a model and a described reranker")
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise ConfigurationError("model", f"must be a non-empty string, got {self.model!r}")
        if self.recipe is not None and (not isinstance(self.recipe, str) or not self.recipe):
            raise ConfigurationError("recipe", f"must be a recipe name or 'auto', got {self.recipe!r}")
        if self.reranker is not None:
            if not isinstance(self.reranker, Mapping):
                raise ConfigurationError(
                    "reranker", f"must be a reranker_config() mapping, got {self.reranker!r}"
                )
            if self.recipe is not None or self.backend:
                raise ConfigurationError("recipe", "recipe and backend go with model, not with reranker")
        if not isinstance(self.backend, Mapping) or not all(isinstance(k, str) for k in self.backend):
            raise ConfigurationError("backend", f"must be a mapping of argument names, got {self.backend!r}")
        from rerank_core.integrations._serialize import options_from_config

        options_from_config(self.options, "options")  # refuses unknown names and bad values now
        # Own copies: a caller's mapping changed later does not change this description.
        object.__setattr__(self, "backend", dict(self.backend))
        object.__setattr__(self, "options", dict(self.options))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], argument: str = "config") -> PipelineConfig:
        """From a configuration file's mapping (its ``serve`` / ``batch`` tables are skipped)."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(argument, f"must be a mapping, got {data!r}")
        unknown = sorted(set(data) - set(_KEYS) - set(COMMAND_TABLES))
        if unknown:
            known = ", ".join((*_KEYS, *COMMAND_TABLES))
            raise ConfigurationError(f"{argument}[{unknown[0]!r}]", f"is not a key; the keys are {known}")
        return cls(
            model=data.get("model"),
            recipe=data.get("recipe"),
            backend={} if data.get("backend") is None else data["backend"],
            options={} if data.get("options") is None else data["options"],
            reranker=data.get("reranker"),
        )

    def replace(self, **changes: Any) -> PipelineConfig:
        """A copy with ``changes`` (``None`` values are ignored; ``options`` are merged by name)."""
        data = self.to_dict()
        for key, value in changes.items():
            if value is None:
                continue
            if key == "options":
                data["options"] = {**data["options"], **value}
            elif key == "model":
                data["model"], data["reranker"] = value, None
            else:
                data[key] = value
        return PipelineConfig.from_mapping(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible data that :meth:`from_mapping` reads back (what a worker or actor is sent)."""
        return {
            "model": self.model,
            "recipe": self.recipe,
            "backend": dict(self.backend),
            "options": dict(self.options),
            "reranker": None if self.reranker is None else dict(self.reranker),
        }

    def build(self) -> Any:
        """The :class:`~rerank_core.Reranker` (loads the model)."""
        from rerank_core.integrations._serialize import options_from_config, reranker_from_config
        from rerank_core.reranker import Reranker

        if self.reranker is not None:
            reranker = reranker_from_config(self.reranker, "reranker")
            extra = options_from_config(self.options, "options")
            if self.options:
                changed = {name: getattr(extra, name) for name in self.options}
                reranker = Reranker(reranker.backend, reranker.options.build(reranker.options, **changed))
            return reranker
        options = options_from_config(self.options, "options")
        if self.recipe == "auto":  # a recipe model whatever its name: detected from its config
            from rerank_core.backends.recipe_model import RecipeBackend

            return Reranker(RecipeBackend(self.model, recipe=None, **self.backend), options)
        from rerank_core.backends.local import local_backend

        recipe = {} if self.recipe is None else {"recipe": self.recipe}
        return Reranker(local_backend(self.model, **recipe, **self.backend), options)

"""One entry point for a local model of any family: :func:`local_backend` picks the back end.

- a folder converted for sentence-transformers (``modules.json``), or any model with no recipe (BERT-style
  classifiers): :class:`~rerank_core.backends.cross_encoder.CrossEncoderBackend`, so sentence-transformers'
  own scores are ours;
- a late-interaction model (a ``MultiVectorEncoder`` folder: ``config_sentence_transformers.json`` says
  ``"model_type": "MultiVectorEncoder"`` or PyLate's ``"ColBERT"``, or ``config.json`` names the Stanford
  ``HF_ColBERT`` architecture; for a Hugging Face id, the same files found in the local Hugging Face cache,
  looked up offline): :class:`~rerank_core.backends.late_interaction.LateInteractionBackend`;
- a decoder-LLM or seq2seq reranker whose recipe is named (``recipe=``) or detected from the name:
  :class:`~rerank_core.backends.recipe_model.RecipeBackend`.

Used by ``rerank rank`` (``rerank eval`` applies the same late-interaction test); a model named nowhere and
without a recipe goes to the cross-encoder, whose loader reads its config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rerank_core import recipes as _recipes
from rerank_core.backends.base import Backend
from rerank_core.backends.late_interaction import is_multi_vector_model
from rerank_core.recipes import Recipe

__all__ = ["local_backend"]


def local_backend(
    model: str | os.PathLike[str], *, recipe: str | Recipe | None = None, **kwargs: Any
) -> Backend:
    """The back end for a local model (a Hugging Face id or a folder); ``kwargs`` go to its constructor."""
    if recipe is None:
        folder = Path(model).expanduser()
        # Checked first (such a folder has a modules.json too); a Hub id by its files already in the Hugging
        # Face cache (never the network).
        if is_multi_vector_model(
            model, revision=kwargs.get("revision"), cache_folder=kwargs.get("cache_folder")
        ):
            from rerank_core.backends.late_interaction import LateInteractionBackend

            return LateInteractionBackend(model, **kwargs)
        if (folder / "modules.json").is_file():  # a sentence-transformers checkpoint: its own pipeline
            from rerank_core.backends.cross_encoder import CrossEncoderBackend

            return CrossEncoderBackend(model, **kwargs)
        name = str(folder.resolve()) if folder.exists() else str(model)
        if _recipes.detect(name) is None:
            from rerank_core.backends.cross_encoder import CrossEncoderBackend

            return CrossEncoderBackend(model, **kwargs)
    from rerank_core.backends.recipe_model import RecipeBackend

    return RecipeBackend(model, recipe=recipe, **kwargs)

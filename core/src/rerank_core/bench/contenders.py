"""The contenders of ``rerank bench``: our local back end in each configuration, and every incumbent.

Each contender is a :class:`ContenderSpec` (a name, a family, the constructor call a user would write, a
check of what it needs, and a factory). A factory returns a :class:`Ranker`: ``rank(query, texts)`` gives the
candidates' indices best first (and the scores, when they live on the same scale as
``CrossEncoder.predict``, so that the harness can compare them).

Our configurations are listed from what the installed :class:`~rerank_core.backends.CrossEncoderBackend`
accepts (its signature is inspected): ``runtime=``, ``quantization=``, ``batch_tokens=`` appear as the local
back end grows them, and a configuration the installed back end cannot express is skipped with that reason.

Every torch-based contender runs the model in float32 on the CPU. The reference reranker is stored in
float16; sentence-transformers' literal default would load it in float16 on a CPU (it warns that this may
be slow), which is not a baseline anyone would ship, so the incumbents get ``dtype=float32`` through their
own documented keyword arguments and are otherwise at their defaults.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "BATCH_TOKENS",
    "CALIBRATED",
    "PLUGINS_ENV",
    "BenchContext",
    "ContenderSkipped",
    "ContenderSpec",
    "Ranker",
    "backend_options",
    "contender_specs",
    "plugin_specs",
    "select_specs",
]

#: Token budget per batch for the ``batch_tokens`` configuration of our back end.
BATCH_TOKENS = 8192


class Ranker(Protocol):
    """One loaded contender: ranks one query's candidates."""

    def rank(self, query: str, texts: Sequence[str]) -> tuple[list[int], list[float] | None]:
        """Indices of ``texts`` best first, and scores on ``CrossEncoder.predict``'s scale (or None)."""
        ...


@dataclass(slots=True)
class BenchContext:
    """What every factory needs: the model, the device, a folder for exports (FlashRank's ONNX file), and
    in-domain (query, text) pairs for the calibrated int8 configuration (``None``: that one is skipped)."""

    model: str
    device: str = "cpu"
    cache_dir: Path | None = None
    calibration_pairs: list[tuple[str, str]] | None = None


class ContenderSkipped(Exception):
    """Raised by a factory that cannot run in this context (the harness lists it as skipped, not failed)."""


#: Placeholder in a configuration's options for the context's calibration pairs.
CALIBRATED = "<calibration pairs>"


@dataclass(slots=True)
class ContenderSpec:
    """A contender: how to build it, what it needs, and how a user would write it."""

    name: str
    family: str  # "ours" or the incumbent's project
    call: str  # the constructor call a user would write (shown by --pick and in the JSON)
    factory: Callable[[BenchContext], Ranker]
    needs: tuple[str, ...] = ()  # importable modules
    skip_reason: str | None = None  # set when the contender cannot run here, whatever is installed
    note: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def unavailable(self) -> str | None:
        """Why this contender cannot run here (a missing package, an option not built yet), or None."""
        if self.skip_reason:
            return self.skip_reason
        missing = [m for m in self.needs if importlib.util.find_spec(m.split(".")[0]) is None]
        if missing:
            return f"not installed: {', '.join(missing)} (pip install -r benchmarks/requirements.txt)"
        for module in self.needs:
            if "." in module:
                try:
                    if importlib.util.find_spec(module) is None:
                        return f"not installed: {module}"
                except ModuleNotFoundError:
                    return f"not installed: {module}"
        return None


def _order(scores: Sequence[float]) -> list[int]:
    """Indices by descending score, ties in input order (a stable sort)."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


# -- ours ----------------------------------------------------------------------------------------------


def backend_options() -> set[str]:
    """Keyword arguments the installed ``CrossEncoderBackend`` accepts (empty if it cannot be imported)."""
    try:
        from rerank_core.backends.cross_encoder import CrossEncoderBackend
    except ImportError:  # pragma: no cover - the module is part of the core
        return set()
    return set(inspect.signature(CrossEncoderBackend.__init__).parameters) - {"self", "model"}


class _OursRanker:
    def __init__(self, ctx: BenchContext, kwargs: dict[str, Any]) -> None:
        from rerank_core import Reranker
        from rerank_core.backends import CrossEncoderBackend

        self.backend = CrossEncoderBackend(ctx.model, device=ctx.device, **kwargs)
        pairs = kwargs.get("calibration_pairs")
        self.calibration_pairs = len(pairs) if pairs is not None else None
        # Every contender scores the same truncated pairs; windows would score more text than the others.
        self.reranker = Reranker(self.backend, long_text="truncate")

    def rank(self, query: str, texts: Sequence[str]) -> tuple[list[int], list[float] | None]:
        response = self.reranker.rerank(query, list(texts))
        order = [r.index for r in response]
        scores = [0.0] * len(texts)
        for r in response:
            scores[r.index] = float(r.raw_score)
        return order, scores

    def describe(self) -> dict[str, Any]:
        """The path that actually ran (``backend.runtime`` where the back end reports it) and the dtype."""
        out: dict[str, Any] = {}
        if self.calibration_pairs is not None:
            out["calibration_pairs"] = self.calibration_pairs
        runtime = getattr(self.backend, "runtime", None)
        if runtime is not None:
            out["runtime"] = str(runtime)
        out["fingerprint"] = self.backend.fingerprint
        return out


def _ours(name: str, kwargs: dict[str, Any], accepted: set[str], note: str = "") -> ContenderSpec:
    missing = sorted(k for k in kwargs if k not in accepted and k != "cache_dir")
    call_kwargs = {k: v for k, v in kwargs.items() if k != "cache_dir"}
    args = "".join(f", {k}={'pairs' if v is CALIBRATED else repr(v)}" for k, v in call_kwargs.items())
    spec = ContenderSpec(
        name=name,
        family="ours",
        call=f"CrossEncoderBackend(model, device='cpu'{args})",
        factory=lambda ctx: _OursRanker(ctx, _options_for(kwargs, accepted, ctx)),
        needs=("torch", "sentence_transformers"),
        note=note,
        info={"options": call_kwargs},
    )
    if missing:
        spec.skip_reason = (
            f"the installed CrossEncoderBackend has no {', '.join(missing)}= option yet (signature inspected)"
        )
    return spec


def _options_for(kwargs: dict[str, Any], accepted: set[str], ctx: BenchContext) -> dict[str, Any]:
    """The back end's keyword arguments in ``ctx``: the calibration pairs filled in, the export folder set."""
    out = {k: v for k, v in kwargs.items() if k != "cache_dir"}
    for key, value in out.items():
        if value is CALIBRATED:
            if not ctx.calibration_pairs:
                raise ContenderSkipped(
                    "no calibration pairs: the data folder has no calibration split "
                    "(rerank bench --calibration-split, default train)"
                )
            out[key] = list(ctx.calibration_pairs)
    if "cache_dir" in accepted and "cache_dir" in kwargs and ctx.cache_dir is not None:
        out["cache_dir"] = str(ctx.cache_dir / "ours")
    return out


def our_specs(accepted: set[str] | None = None) -> list[ContenderSpec]:
    """Our local configurations, each skipped with a reason when the installed back end lacks its option."""
    accepted = backend_options() if accepted is None else accepted
    torch_rt: dict[str, Any] = {"runtime": "torch"} if "runtime" in accepted else {}
    specs = [
        _ours("ours torch fp32", {**torch_rt, "dtype": "float32"}, accepted),
        _ours(
            "ours torch bf16",
            {**torch_rt, "dtype": "bfloat16"},
            accepted,
            note="fast only on CPUs with native bfloat16 (AVX512-BF16/AMX)",
        ),
        _ours(
            "ours torch fp32 batch_tokens",
            {**torch_rt, "dtype": "float32", "batch_tokens": BATCH_TOKENS},
            accepted,
        ),
    ]
    for runtime in ("onnx", "openvino"):
        base = {"runtime": runtime, "cache_dir": None}
        specs.append(_ours(f"ours {runtime}", dict(base), accepted))
        specs.append(_ours(f"ours {runtime} int8", {**base, "quantization": "int8"}, accepted))
    specs.append(
        _ours(
            "ours openvino int8 calibrated",
            {
                "runtime": "openvino",
                "cache_dir": None,
                "quantization": "int8",
                "calibration_pairs": CALIBRATED,
            },
            accepted,
            note="static int8 calibrated on in-domain (query, BM25 candidate) pairs from the calibration "
            "split (never the measured queries)",
        )
    )
    return specs


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
    from rerank_core.backends.local_runtimes import model_files_fingerprint

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


def incumbent_specs() -> list[ContenderSpec]:
    """sentence-transformers, rerankers and FlashRank, at their defaults (fp32). The LangChain and LlamaIndex
    incumbents come from a plugin (see :func:`plugin_specs`): the core never imports a framework."""
    return [
        ContenderSpec(
            "st predict",
            "sentence-transformers",
            "CrossEncoder(model, model_kwargs={'dtype': torch.float32}).predict(pairs)",
            _STPredict,
            ("torch", "sentence_transformers"),
            note="the baseline of every ratio",
            info={"runtime": "torch-float32"},
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


PLUGINS_ENV = "RERANK_BENCH_CONTENDERS"
"""Comma-separated modules or ``.py`` files, each with a ``contender_specs()`` returning more contenders.
``benchmarks/speed.py`` names ``benchmarks/framework_contenders.py`` (LangChain, LlamaIndex) here; being an
environment variable, it also reaches the memory probe's subprocess."""


def plugin_specs() -> list[ContenderSpec]:
    """The contenders of the plugins named in ``$RERANK_BENCH_CONTENDERS`` (each loaded once)."""
    specs: list[ContenderSpec] = []
    for entry in (e.strip() for e in os.environ.get(PLUGINS_ENV, "").split(",")):
        if not entry:
            continue
        if entry.endswith(".py"):
            path = Path(entry)
            if not path.is_file():
                raise ValueError(f"{PLUGINS_ENV}: no such file {entry!r}")
            name = f"rerank_bench_plugin_{path.stem}"
            module = sys.modules.get(name)
            if module is None:
                loader_spec = importlib.util.spec_from_file_location(name, path)
                assert loader_spec is not None and loader_spec.loader is not None
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[name] = module
                loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(entry)
        specs.extend(module.contender_specs())
    return specs


def contender_specs(accepted: set[str] | None = None) -> list[ContenderSpec]:
    """Every contender, ours first, in the order of the table (plugins' incumbents last)."""
    return our_specs(accepted) + incumbent_specs() + plugin_specs()


def select_specs(specs: Sequence[ContenderSpec], selection: str | None) -> list[ContenderSpec]:
    """Filter by a comma-separated list of names or families (case-insensitive).

    An exact name selects that contender alone; otherwise a family or a name prefix selects all it matches.

    ``None`` or ``"all"`` keeps everything. Raises ``ValueError`` naming ``contenders`` for a term that
    matches nothing, with the known names.
    """
    if selection is None or selection.strip().lower() == "all":
        return list(specs)
    terms = [t.strip().lower() for t in selection.split(",") if t.strip()]
    if not terms:
        raise ValueError("contenders: empty selection")
    chosen: list[ContenderSpec] = []
    for term in terms:
        hits = [s for s in specs if s.name.lower() == term] or [
            s for s in specs if s.family.lower() == term or s.name.lower().startswith(term)
        ]
        if not hits:
            known = "; ".join(sorted({s.family for s in specs}) + [s.name for s in specs])
            raise ValueError(f"contenders: {term!r} matches no contender; known: {known}")
        chosen.extend(h for h in hits if h not in chosen)
    return [s for s in specs if s in chosen]

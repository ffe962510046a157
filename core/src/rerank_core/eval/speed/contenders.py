"""Who is timed by :mod:`rerank_core.eval.speed`: our local back end in each configuration (``rerank pick``
chooses among them), plus whatever a plugin adds.

Each contender is a :class:`ContenderSpec` (a name, a family, the constructor call a user would write, a
check of what it needs, and a factory). A factory returns a :class:`Ranker`: ``rank(query, texts)`` gives the
candidates' indices best first (and the scores, when they live on the same scale as
``CrossEncoder.predict``, so that the harness can compare them).

Our configurations are listed from what the installed :class:`~rerank_core.backends.CrossEncoderBackend`
accepts (its signature is inspected): ``runtime=``, ``quantization=``, ``batch_tokens=`` appear as the local
back end grows them, and a configuration the installed back end cannot express is skipped with that reason.

The library never imports a competing library. The incumbents of the speed race (sentence-transformers,
rerankers, FlashRank, LangChain, LlamaIndex) live in ``benchmarks/incumbents.py`` and
``benchmarks/framework_contenders.py`` at the repository root, outside every wheel, and come in through
:data:`PLUGINS_ENV` (``python benchmarks/speed.py`` sets it). Until the restructure of issue 15 this module
was ``rerank_core.bench.contenders`` and held the incumbents too.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
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
    "our_specs",
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
    baseline: bool = False  # the speed ratios are taken against it when it runs (the race's "st predict")

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
                    "(rerank pick --calibration-split, default train)"
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


PLUGINS_ENV = "RERANK_BENCH_CONTENDERS"
"""Comma-separated modules or ``.py`` files, each with a ``contender_specs()`` returning more contenders.
``benchmarks/speed.py`` names ``benchmarks/incumbents.py`` and ``benchmarks/framework_contenders.py`` here;
being an environment variable, it also reaches the memory probe's subprocess."""


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
    """Every contender, ours first, in the order of the table (the plugins' contenders after ours)."""
    return our_specs(accepted) + plugin_specs()


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

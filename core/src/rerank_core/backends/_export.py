"""The exports of the local cross-encoder for ONNX Runtime and OpenVINO: made once, cached, reused.

Why a direct export and not sentence-transformers' ``backend="onnx"/"openvino"``: those load through
``optimum.onnxruntime`` / ``optimum.intel``, which on this project's registry either do not exist for
transformers 5 (``optimum`` 2.x moved its ONNX Runtime part out) or pull a different torch
(``optimum-intel``). The direct route needs only ``torch.onnx`` (the TorchScript exporter, no extra
package), ``onnxruntime`` and ``openvino`` (+ ``nncf`` for int8), and works offline.

- ONNX: the Hugging Face sequence-classification model is exported in fp32 (eager attention, dynamic batch
  and sequence axes, inputs bound by name), then optionally quantized with ONNX Runtime's dynamic int8
  quantization: signed int8 weights on CPUs with VNNI (``avx512_vnni`` / ``avx_vnni``: the U8S8 kernels),
  unsigned weights otherwise (the ``avx2`` setting, which avoids U8S8 saturation without VNNI).
- OpenVINO: converted from that fp32 ONNX file with ``openvino.convert_model``; int8 is NNCF post-training
  static quantization (weights and activations, the fast path on VNNI CPUs) calibrated on caller-given
  (query, text) pairs, or on :data:`DEFAULT_CALIBRATION_PAIRS` (small built-in set; no download).

Each export lands in its own folder under the cache root (``$RERANK_CACHE_DIR`` or
``~/.cache/rerank-core``), named by a hash of everything that changes its scores: the resolved model
path or id, revision, a fingerprint of the model files, runtime, quantization, max_length, activation and
(for static int8) the calibration pairs. Folders are written to a temporary name and renamed into place,
so concurrent processes never read a half-written export. The tokenizer and a ``meta.json`` are saved
alongside, so a cached model loads without torch weights. What opens and runs an export is in
:mod:`rerank_core.backends._runners`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rerank_core._optional import require
from rerank_core.errors import ConfigurationError

__all__ = [
    "DEFAULT_CALIBRATION_PAIRS",
    "QUANTIZATIONS",
    "ExportSpec",
    "build_export",
    "cache_root",
    "cpu_has_vnni",
    "default_num_threads",
    "export_key",
    "finish_onnx",
    "finish_openvino",
    "hash_pairs",
    "hf_model",
    "hub_snapshot",
    "model_files_fingerprint",
    "read_meta",
]

QUANTIZATIONS = (None, "int8")
EXPORT_FORMAT = 2  # bump when the export procedure changes: old cache folders are then not reused

# A small, varied default calibration set for OpenVINO static int8: short and long, on- and off-topic
# pairs in plain English. Pass your own pairs (a few hundred from your corpus) for the best accuracy.
_CAL_QUERIES = [
    "what causes high blood pressure",
    "how do vaccines train the immune system",
    "python list comprehension syntax",
    "effect of interest rates on inflation",
    "symptoms of vitamin d deficiency",
    "who wrote the theory of general relativity",
    "best way to store fresh herbs",
    "does exercise improve memory in older adults",
]
_CAL_TEXTS = [
    "Hypertension is often linked to salt intake, obesity, stress and genetic factors; untreated it raises "
    "the risk of stroke and heart disease.",
    "Vaccines expose the immune system to an antigen so that memory B and T cells respond faster to a "
    "later infection.",
    "A list comprehension builds a new list from an iterable in one expression: [f(x) for x in xs if x].",
    "Central banks raise interest rates to cool demand, which tends to slow inflation with a lag of months.",
    "Low vitamin D levels are associated with fatigue, bone pain and muscle weakness in several cohorts.",
    "Albert Einstein published the general theory of relativity in 1915, describing gravity as curvature.",
    "Wrap soft herbs in a damp paper towel and keep them in the refrigerator; basil likes room temperature.",
    "In a randomized trial, twelve months of aerobic exercise increased hippocampal volume and improved "
    "spatial memory in adults over sixty.",
    "The quarterly report shows revenue growth in the cloud segment while hardware sales declined.",
    "Mitochondria produce ATP through oxidative phosphorylation, a process that depends on an electron "
    "transport chain across the inner membrane. Defects in this chain cause a wide range of disorders, "
    "from myopathies to neurodegeneration, and are studied with patient-derived cell lines and mouse "
    "models. Recent work suggests that mitochondrial dynamics, fission and fusion, also regulate "
    "apoptosis and the response to oxidative stress.",
]
DEFAULT_CALIBRATION_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (q, t) for i, q in enumerate(_CAL_QUERIES) for j, t in enumerate(_CAL_TEXTS) if (i + j) % 2 == 0
)


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The export cache folder: ``cache_dir``, else ``$RERANK_CACHE_DIR``, else ``~/.cache/rerank-core``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("RERANK_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "rerank-core"


def default_num_threads() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def cpu_has_vnni() -> bool:
    """Whether the CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI), from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:  # pragma: no cover - not Linux
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    return False


def model_files_fingerprint(path: Path) -> str:
    """A cheap fingerprint of a local model folder: names, sizes and mtimes of its files."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts):
            st = p.stat()
            h.update(f"{p.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def export_key(fields: Mapping[str, Any]) -> str:
    """Folder name for one export: a readable prefix and a hash of every field that changes scores."""
    blob = json.dumps({**fields, "format": EXPORT_FORMAT}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:20]
    name = Path(str(fields.get("model", "model"))).name or "model"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:48]
    return f"{safe}-{fields['runtime']}-{fields['quantization'] or 'fp32'}-{digest}"


# -- export ---------------------------------------------------------------------------------------------


def _export_onnx_fp32(hf_model: Any, tokenizer: Any, target: Path) -> list[str]:
    """Export a Hugging Face sequence-classification model to ``target`` (fp32 ONNX); return input names."""
    torch = require("torch", extra="onnx", feature="ONNX export of the local cross-encoder")
    sample = tokenizer(
        [("a query", "a passage of text"), ("another", "x")], padding=True, return_tensors="pt"
    )
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class ByName(torch.nn.Module):
        """Binds positional ONNX inputs to keyword arguments (forward's own order varies by model)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs, strict=True))).logits

    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on shape-dependent Python branches (mask helpers): the exported graph is
        # checked against torch on varied batch sizes and lengths in the tests
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ByName(hf_model).eval(),
            tuple(sample[n] for n in names),
            str(target),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    return names


def _shrinking_matmuls(path: Path) -> list[str]:
    """MatMul/Gemm nodes whose constant weight maps more inputs to fewer outputs (in > out features).

    In a transformer these are the feed-forward down-projections, whose inputs (GELU outputs) carry the
    activation outliers that per-tensor dynamic int8 handles worst, plus the tiny classification head.
    Keeping them in fp32 took the reference reranker's Spearman agreement with fp32 from 0.98 to 0.99.
    """
    onnx = require("onnx", extra="onnx", feature="int8 quantization of the ONNX cross-encoder")
    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    out = []
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        dims = shapes.get(node.input[1])
        if dims is None or len(dims) != 2:
            continue
        trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
        in_features, out_features = (dims[1], dims[0]) if trans_b else (dims[0], dims[1])
        if in_features > out_features:
            out.append(node.name)
    return out


def _quantize_onnx_dynamic(source: Path, target: Path) -> str:
    """ONNX Runtime dynamic int8 (per-channel weights); returns the setting used ("avx512_vnni"/"avx2").

    Signed int8 weights where the CPU has VNNI (the U8S8 kernels), unsigned otherwise (the setting
    sentence-transformers / optimum call ``avx2``, which avoids U8S8 saturation without VNNI).
    """
    quant = require(
        "onnxruntime.quantization",
        extra="onnx",
        feature="int8 quantization of the ONNX cross-encoder",
        package="onnxruntime",
    )
    vnni = cpu_has_vnni()
    quant.quantize_dynamic(
        str(source),
        str(target),
        weight_type=quant.QuantType.QInt8 if vnni else quant.QuantType.QUInt8,
        per_channel=True,
        reduce_range=False,
        op_types_to_quantize=["MatMul", "Gemm"],
        nodes_to_exclude=_shrinking_matmuls(source),
        extra_options={"MatMulConstBOnly": True},
    )
    return "avx512_vnni" if vnni else "avx2"


def _calibration_batches(
    tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int, names: Sequence[str]
) -> list[dict[str, np.ndarray]]:
    batches = []
    for q, t in pairs:
        enc = tokenizer([q], [t], truncation=True, max_length=max_length, return_tensors="np")
        batches.append({n: np.asarray(enc[n], dtype=np.int64) for n in names})
    return batches


@dataclass(frozen=True)
class ExportSpec:
    """What the runtime's step of an export (``finish``) may need besides the fp32 ONNX file."""

    tokenizer: Any
    quantization: str | None
    max_length: int
    inputs: Sequence[str]
    calibration_pairs: Sequence[tuple[str, str]] | None


def finish_onnx(folder: Path, onnx_fp32: Path, spec: ExportSpec, meta: dict[str, Any]) -> None:
    """ONNX Runtime: keep the fp32 file, or replace it by its dynamic int8 quantization."""
    if spec.quantization == "int8":
        meta["int8_setting"] = _quantize_onnx_dynamic(onnx_fp32, folder / "model_int8.onnx")
        onnx_fp32.unlink()
        (folder / "model_int8.onnx").rename(folder / "model.onnx")
    meta["file"] = "model.onnx"


def finish_openvino(folder: Path, onnx_fp32: Path, spec: ExportSpec, meta: dict[str, Any]) -> None:
    """OpenVINO: convert the fp32 ONNX file; int8 is NNCF static quantization on ``calibration_pairs``."""
    ov = require("openvino", extra="openvino", feature="The OpenVINO cross-encoder path")
    ov_model = ov.convert_model(str(onnx_fp32))
    if spec.quantization == "int8":
        nncf = require("nncf", extra="openvino", feature="OpenVINO int8 quantization")
        pairs = list(spec.calibration_pairs or DEFAULT_CALIBRATION_PAIRS)
        data = _calibration_batches(spec.tokenizer, pairs, spec.max_length, spec.inputs)
        ov_model = nncf.quantize(
            ov_model,
            nncf.Dataset(data),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(data),
        )
        meta["calibration_pairs"] = len(pairs)
    ov.save_model(ov_model, str(folder / "model.xml"), compress_to_fp16=False)
    onnx_fp32.unlink()
    meta["file"] = "model.xml"


def build_export(
    *,
    hf_model: Any,
    tokenizer: Any,
    runtime: str,
    quantization: str | None,
    max_length: int,
    activation: str,
    target: Path,
    calibration_pairs: Sequence[tuple[str, str]] | None,
    finish: Callable[..., None],
) -> None:
    """Write a complete export (model file, tokenizer, meta.json) to ``target``, atomically: the fp32
    ONNX export, which ``finish`` (:func:`finish_onnx` / :func:`finish_openvino`) makes the runtime's file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        onnx_fp32 = tmp / "model.onnx"
        names = _export_onnx_fp32(hf_model, tokenizer, onnx_fp32)
        meta: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "runtime": runtime,
            "quantization": quantization,
            "max_length": max_length,
            "activation": activation,
            "inputs": names,
        }
        finish(
            tmp, onnx_fp32, ExportSpec(tokenizer, quantization, max_length, names, calibration_pairs), meta
        )
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "meta.json").exists():  # not a concurrent writer that finished first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_meta(folder: Path) -> dict[str, Any] | None:
    """The export's meta.json, or None when the folder is absent or incomplete."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != EXPORT_FORMAT or not (folder / meta.get("file", "")).exists():
        return None
    return meta


def hf_model(ce: Any) -> Any:
    """The Hugging Face ``PreTrainedModel`` inside a sentence-transformers ``CrossEncoder``."""
    direct = getattr(ce, "model", None)
    if direct is not None and hasattr(direct, "config") and hasattr(direct, "save_pretrained"):
        return direct
    for module in ce.modules():
        if module is not ce and hasattr(module, "config") and hasattr(module, "save_pretrained"):
            return module
    raise ConfigurationError("model", "no Hugging Face model found inside the CrossEncoder to export")


def hub_snapshot(name: str, load_kwargs: Mapping[str, Any]) -> str:
    """For a hub id: the cached snapshot's commit (its folder name), or 'unresolved'."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            name,
            "config.json",
            cache_dir=load_kwargs.get("cache_folder"),
            revision=load_kwargs.get("revision"),
        )
    except Exception:  # a fingerprint, never a reason to fail
        return "unresolved"
    return Path(found).parent.name if isinstance(found, str) else "unresolved"


def hash_pairs(pairs: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for q, t in pairs:
        h.update(f"{len(q)}:{q}{len(t)}:{t}".encode())
    return h.hexdigest()[:16]

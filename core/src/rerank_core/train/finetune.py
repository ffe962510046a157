"""Fine-tune a cross-encoder on query groups with hard negatives, keep the best dev checkpoint, write a card.

Built on sentence-transformers' cross-encoder training API (``CrossEncoderTrainer``); the loss and the dev
evaluator live in :mod:`rerank_core.train._torch_parts`. The saved folder loads with
:class:`rerank_core.backends.CrossEncoderBackend` by path, with no other step.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank_core._optional import require
from rerank_core._validation import check_positive_int
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.train.data import DevSet, TrainingGroup

__all__ = [
    "FINETUNE_INFO_FILE",
    "FinetuneResult",
    "check_output_dir",
    "finetune",
    "model_card",
    "stored_fusion",
    "tune_dev_fusion",
    "update_model_fusion",
]

FINETUNE_INFO_FILE = "rerank_finetune.json"
_FEATURE = "fine-tuning"
_SAVE_DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class FinetuneResult:
    """Where the model went, what it scored on dev (at the kept checkpoint), and what was run."""

    output_dir: Path
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    settings: dict[str, Any]
    data: dict[str, Any]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def _check_groups(train: Sequence[TrainingGroup]) -> None:
    if not train:
        raise InvalidInputError("train", "no training groups (every query lacked a positive or negatives?)")
    for i, group in enumerate(train):
        if not isinstance(group, TrainingGroup):
            raise InvalidInputError(f"train[{i}]", f"must be a TrainingGroup, got {type(group).__name__}")
        if not group.negatives:
            raise InvalidInputError(f"train[{i}]", "has no negatives")
        if group.teacher_scores is not None and len(group.teacher_scores) != 1 + len(group.negatives):
            raise InvalidInputError(
                f"train[{i}]",
                f"has {len(group.teacher_scores)} teacher scores for {1 + len(group.negatives)} texts",
            )
    for source in {g.source for g in train}:
        taught = {g.teacher_scores is not None for g in train if g.source == source}
        if len(taught) > 1:
            raise InvalidInputError(
                "train", f"source {source!r} mixes groups with and without teacher_scores; give all or none"
            )


def _datasets(train: Sequence[TrainingGroup], seed: int) -> Any:
    """One ``datasets.Dataset`` per source (so that a batch never mixes sources of very different lengths)."""
    datasets = require("datasets", extra="train", feature=_FEATURE)
    by_source: dict[str, list[TrainingGroup]] = {}
    for group in train:
        by_source.setdefault(group.source, []).append(group)
    out = {}
    for source, groups in by_source.items():
        out[source] = datasets.Dataset.from_dict(
            {
                "query": [g.query for g in groups],
                "documents": [[g.positive, *g.negatives] for g in groups],
                "labels": [[1.0] + [0.0] * len(g.negatives) for g in groups],
                # a source either has a teacher for every group or none (checked in _check_groups)
                **(
                    {"teacher": [list(g.teacher_scores) for g in groups]}
                    if groups[0].teacher_scores is not None
                    else {}
                ),
            }
        ).shuffle(seed=seed)
    return out if len(out) > 1 else next(iter(out.values()))


def _last_checkpoint(out: Path) -> Path | None:
    """The trainer's latest complete checkpoint in ``out/checkpoints`` (``checkpoint-N`` with its
    ``trainer_state.json``), or ``None``."""
    found = []
    folder = out / "checkpoints"
    if folder.is_dir():
        for entry in folder.iterdir():
            step = entry.name.removeprefix("checkpoint-")
            if (
                entry.name.startswith("checkpoint-")
                and step.isdigit()
                and (entry / "trainer_state.json").is_file()
            ):
                found.append((int(step), entry))
    return max(found)[1] if found else None


def check_output_dir(output_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Check ``output_dir`` for :func:`finetune` (the CLI calls it before loading any data) and return the
    checkpoint to resume from (``None``: start afresh). Deletes nothing.

    A new or empty folder starts a run. A non-empty one is refused unless ``overwrite`` (it is deleted and
    the run starts again; only a folder that looks like a fine-tuning output, with ``checkpoints/`` or
    ``rerank_finetune.json``, so a wrong path cannot wipe unrelated files) or ``resume`` (the run continues
    from the trainer's last saved checkpoint in ``checkpoints/``: model, optimizer, scheduler, step and RNG
    state; the trainer saves one at each dev evaluation, so a run without dev sets, or stopped before its
    first evaluation, has none and cannot be resumed).
    """
    if resume and overwrite:
        raise ConfigurationError(
            "resume",
            "resume and overwrite exclude each other (resume continues the run, overwrite deletes it)",
        )
    out = Path(output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigurationError("output_dir", f"{out} exists and is not a folder")
    used = out.is_dir() and any(out.iterdir())
    if resume:
        if (out / FINETUNE_INFO_FILE).is_file():
            raise ConfigurationError(
                "resume", f"{out} holds a finished model ({FINETUNE_INFO_FILE}); there is nothing to resume"
            )
        checkpoint = _last_checkpoint(out)
        if checkpoint is None:
            raise ConfigurationError(
                "resume",
                f"cannot resume: {out / 'checkpoints'} holds no saved checkpoint (one is saved at each dev "
                "evaluation; a run without a dev set, or stopped before its first, has none); start again "
                "with overwrite=True (--overwrite)",
            )
        return checkpoint
    if used and not overwrite:
        raise ConfigurationError(
            "output_dir",
            f"{out} is not empty; choose a new folder, or start again with overwrite=True (--overwrite, "
            "deletes it) or continue from its last saved checkpoint with resume=True (--resume)",
        )
    if used and not ((out / "checkpoints").is_dir() or (out / FINETUNE_INFO_FILE).is_file()):
        raise ConfigurationError(
            "overwrite",
            f"{out} does not look like a fine-tuning output (no checkpoints/ or {FINETUNE_INFO_FILE}); not "
            "deleting it: remove it yourself or choose a new folder",
        )
    return None


def _earlier_history(checkpoint: Path) -> list[dict[str, float]]:
    """The dev evaluations logged before ``checkpoint`` (its ``trainer_state.json``), as the evaluator's
    history records them, so that a resumed run reports every evaluation, not only the new ones."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    skip = {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}
    out = []
    for entry in state.get("log_history", []):
        if isinstance(entry, dict) and "eval_mean_ndcg@10" in entry:
            metrics = {
                k.removeprefix("eval_"): float(v)
                for k, v in entry.items()
                if k.startswith("eval_") and k not in skip
            }
            out.append(
                {"epoch": float(entry.get("epoch", 0.0)), "steps": float(entry.get("step", 0)), **metrics}
            )
    return out


def _resolve_bf16(bf16: bool | str, device: str) -> bool:
    if bf16 == "auto":
        import torch

        if device.startswith("cuda"):
            return bool(torch.cuda.is_bf16_supported())
        if device == "cpu":
            # bfloat16 autocast doubles CPU training speed where the CPU has native bf16 (AVX512-BF16/AMX).
            flags = _cpu_flags()
            return "avx512_bf16" in flags or "amx_bf16" in flags
        return False
    if not isinstance(bf16, bool):
        raise ConfigurationError("bf16", f"must be True, False or 'auto', got {bf16!r}")
    return bf16


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def finetune(
    train: Sequence[TrainingGroup],
    output_dir: str | Path,
    *,
    base_model: str,
    dev_sets: Sequence[DevSet] = (),
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 5e-5,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_length: int = 256,
    bce_weight: float = 0.2,
    distill_weight: float = 0.5,
    distill_temperature: float = 1.0,
    seed: int = 12,
    bf16: bool | str = "auto",
    device: str | None = None,
    evals_per_epoch: int = 1,
    save_dtype: str = "float32",
    eval_batch_size: int = 64,
    progress: bool = True,
    keep_checkpoints: bool = False,
    trust_remote_code: bool = False,
    data_description: Mapping[str, Any] | None = None,
    command: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> FinetuneResult:
    """Train a cross-encoder from ``base_model`` (a Hugging Face id or a local folder) on ``train``.

    ``batch_size`` counts groups (each group is one positive plus its negatives). With ``dev_sets`` the
    model is evaluated ``evals_per_epoch`` times per epoch (nDCG@10 of the reranked first-stage candidates)
    and the best checkpoint is the one saved; without, the last one is. ``bf16="auto"`` uses bfloat16
    autocast where the hardware runs it natively. ``save_dtype="float16"`` halves the saved weights.
    Groups with ``teacher_scores`` are trained towards ``(1 - distill_weight)`` x the judged positive plus
    ``distill_weight`` x the softmax of the teacher's scores divided by ``distill_temperature``.
    The output folder gets the weights, the tokenizer, a model card (``README.md``) and
    ``rerank_finetune.json`` (settings, data, dev metrics).

    An interrupted run: ``resume=True`` continues from the last checkpoint the trainer saved in
    ``output_dir/checkpoints`` (saved at each dev evaluation; give the same data and settings),
    ``overwrite=True`` deletes ``output_dir`` and starts again; see :func:`check_output_dir`.
    """
    _check_groups(train)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("max_length", max_length)):
        check_positive_int(value, name)
    check_positive_int(evals_per_epoch, "evals_per_epoch")
    check_positive_int(eval_batch_size, "eval_batch_size")
    if not isinstance(base_model, str) or not base_model.strip():
        raise ConfigurationError("base_model", "give a Hugging Face model id or a local folder")
    if save_dtype not in _SAVE_DTYPES:
        raise ConfigurationError(
            "save_dtype", f"must be one of {', '.join(_SAVE_DTYPES)}, got {save_dtype!r}"
        )
    if not 0 < learning_rate < 1:
        raise ConfigurationError("learning_rate", f"must be in (0, 1), got {learning_rate!r}")
    if not 0 <= warmup_ratio < 1:
        raise ConfigurationError("warmup_ratio", f"must be in [0, 1), got {warmup_ratio!r}")
    if bce_weight < 0:
        raise ConfigurationError("bce_weight", f"must be >= 0, got {bce_weight!r}")
    if not 0 <= distill_weight <= 1:
        raise ConfigurationError("distill_weight", f"must be in [0, 1], got {distill_weight!r}")
    if not distill_temperature > 0:
        raise ConfigurationError("distill_temperature", f"must be > 0, got {distill_temperature!r}")
    out = Path(output_dir).expanduser()
    resume_from = check_output_dir(out, resume=resume, overwrite=overwrite)
    for i, dev in enumerate(dev_sets):
        if not isinstance(dev, DevSet):
            raise InvalidInputError(f"dev_sets[{i}]", f"must be a DevSet, got {type(dev).__name__}")
    if resume_from is not None and not dev_sets:
        raise ConfigurationError("resume", "a resumed run needs the dev sets it was started with")
    if overwrite and out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)

    require("torch", extra="train", feature=_FEATURE)
    require("accelerate", extra="train", feature=_FEATURE)
    st = require("sentence_transformers", extra="train", feature=_FEATURE, package="sentence-transformers")
    import torch
    import transformers
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )

    from rerank_core.train._torch_parts import DevRerankEvaluator, GroupSoftmaxLoss

    started = time.perf_counter()
    transformers.set_seed(seed)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    use_bf16 = _resolve_bf16(bf16, device)
    model = CrossEncoder(
        base_model,
        num_labels=1,
        max_length=max_length,
        device=device,
        trust_remote_code=trust_remote_code,
        # Master weights train in float32 even when the checkpoint is stored in half precision (the
        # shipped reference reranker is float16 on disk); bf16 autocast does the fast part.
        model_kwargs={"dtype": torch.float32},
    )
    train_dtype = str(next(model.model.parameters()).dtype).removeprefix("torch.")
    if model.num_labels != 1:
        raise ConfigurationError("base_model", f"has {model.num_labels} output labels; expected 1")

    train_data = _datasets(train, seed)
    loss = GroupSoftmaxLoss(
        model,
        bce_weight=bce_weight,
        distill_weight=distill_weight,
        distill_temperature=distill_temperature,
    )
    evaluator = (
        DevRerankEvaluator(list(dev_sets), batch_size=eval_batch_size, bf16=use_bf16) if dev_sets else None
    )

    n_groups = len(train)
    steps_per_epoch = max(1, sum(-(-n // batch_size) for n in Counter(g.source for g in train).values()))
    every = max(1, steps_per_epoch // evals_per_epoch)
    checkpoints = out / "checkpoints"
    strategy = "steps" if evaluator is not None else "no"
    args = CrossEncoderTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=int(warmup_ratio * steps_per_epoch * epochs),
        weight_decay=weight_decay,
        lr_scheduler_type="linear",
        bf16=use_bf16,
        use_cpu=device == "cpu",
        seed=seed,
        data_seed=seed,
        eval_strategy=strategy,
        eval_steps=every if evaluator is not None else None,
        save_strategy=strategy,
        save_steps=every if evaluator is not None else None,
        save_total_limit=2,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model="eval_mean_ndcg@10" if evaluator is not None else None,
        greater_is_better=True,
        logging_steps=max(1, min(50, every)),
        report_to="none",
        disable_tqdm=not progress,
        multi_dataset_batch_sampler="proportional",
        dataloader_num_workers=0,
    )
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=train_data, loss=loss, evaluator=evaluator
    )
    if resume_from is not None and evaluator is not None:
        evaluator.history[:0] = _earlier_history(resume_from)
    trainer.train(resume_from_checkpoint=None if resume_from is None else str(resume_from))
    train_seconds = time.perf_counter() - started

    fusion_info = None
    if dev_sets:
        fit = tune_dev_fusion(model, dev_sets, bf16=use_bf16, batch_size=eval_batch_size)
        fusion_info = _fusion_info(fit)
    history = list(evaluator.history) if evaluator is not None else []
    best_metrics: dict[str, float] = {}
    if history:
        best = max(history, key=lambda h: h["mean_ndcg@10"])
        best_metrics = {k: v for k, v in best.items() if k not in ("epoch",)}

    out.mkdir(parents=True, exist_ok=True)
    if save_dtype != "float32":
        model.model.to(getattr(torch, save_dtype))
    model.save_pretrained(str(out), create_model_card=False)
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)

    sources = Counter(g.source for g in train)
    taught = {g.source for g in train if g.teacher_scores is not None}
    data = {
        "groups": n_groups,
        "pairs": sum(1 + len(g.negatives) for g in train),
        "groups_per_source": dict(sources),
        **(dict(data_description) if data_description else {}),
        "dev": {
            d.name: {
                "queries": len(d.queries),
                "top_k": max((len(c) for c in d.candidates.values()), default=0),
                "first_stage": d.first_stage,
            }
            for d in dev_sets
        },
    }
    settings = {
        "base_model": base_model,
        "epochs": epochs,
        "batch_size_groups": batch_size,
        "learning_rate": learning_rate,
        "warmup_ratio": warmup_ratio,
        "weight_decay": weight_decay,
        "max_length": max_length,
        "loss": f"group softmax cross-entropy + {bce_weight} x BCE"
        + (
            f"; teacher-scored sources ({', '.join(sorted(taught))}): soft targets {distill_weight} x "
            f"softmax(teacher / {distill_temperature:g}) + {1 - distill_weight:g} x the judged positive"
            if taught
            else ""
        ),
        "seed": seed,
        "bf16": use_bf16,
        "train_dtype": train_dtype,
        "device": device,
        "save_dtype": save_dtype,
        "steps": trainer.state.global_step,
        "evals_per_epoch": evals_per_epoch,
        **({"resumed_from": resume_from.name} if resume_from is not None else {}),
    }
    info = {
        "settings": settings,
        "data": data,
        "dev_history": history,
        "best_dev": best_metrics,
        "fusion": fusion_info,
        "train_seconds": round(train_seconds, 1),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sentence_transformers": st.__version__,
            "transformers": transformers.__version__,
            "machine": platform.machine(),
            "cpu_count": _cpu_count(),
        },
        "command": command,
    }
    (out / FINETUNE_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(info), encoding="utf-8")
    return FinetuneResult(
        output_dir=out,
        best_metrics=best_metrics,
        history=history,
        settings=settings,
        data=data,
        seconds=time.perf_counter() - started,
        info=info,
    )


def tune_dev_fusion(
    model: Any, dev_sets: Sequence[DevSet], *, bf16: bool = False, batch_size: int = 64
) -> Any:
    """Score every dev candidate with ``model`` and pick the fusion with the first stage that maximises
    nDCG@10 over all dev queries pooled (:func:`rerank_core.fusion.tune_fusion`).

    A dev set without ``candidate_scores`` contributes its first-stage order as scores (``-position``).
    """
    from rerank_core.eval.fusion_tuning import tune_fusion
    from rerank_core.train._torch_parts import DevRerankEvaluator

    evaluator = DevRerankEvaluator(list(dev_sets), batch_size=batch_size, bf16=bf16)
    candidates: dict[str, list[str]] = {}
    first: dict[str, list[float]] = {}
    rerank: dict[str, list[float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for dev in dev_sets:
        scores = evaluator.scores(model, dev)
        for qid, ids in dev.candidates.items():
            key = f"{dev.name}/{qid}"
            candidates[key] = list(ids)
            rerank[key] = scores[qid]
            first[key] = dev.candidate_scores.get(qid) or [-float(i) for i in range(len(ids))]
            qrels[key] = dict(dev.qrels.get(qid, {}))
    return tune_fusion(candidates, first, rerank, qrels)


def _fusion_info(fit: Any) -> dict[str, Any]:
    return {
        "method": fit.fusion.method,
        "weight": fit.fusion.weight,
        "dev_ndcg@10": round(fit.ndcg, 4),
        "dev_rerank_only_ndcg@10": round(fit.rerank_only, 4),
        "dev_first_stage_ndcg@10": round(fit.first_stage_only, 4),
        "table": fit.named_table(),
    }


def update_model_fusion(
    model_dir: str | Path, dev_sets: Sequence[DevSet], *, bf16: bool = False, device: str | None = None
) -> dict[str, Any]:
    """Tune the fusion for an already fine-tuned model folder and record it in its
    ``rerank_finetune.json`` and model card (what :func:`finetune` does at the end of training)."""
    require("sentence_transformers", extra="train", feature=_FEATURE, package="sentence-transformers")
    from sentence_transformers.cross_encoder import CrossEncoder

    folder = Path(model_dir).expanduser()
    info_file = folder / FINETUNE_INFO_FILE
    if not info_file.is_file():
        raise InvalidInputError("model_dir", f"{folder} has no {FINETUNE_INFO_FILE}: not made by finetune")
    if not dev_sets:
        raise InvalidInputError("dev_sets", "give at least one dev set")
    import torch

    model = CrossEncoder(str(folder), device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.model.float()
    info = json.loads(info_file.read_text(encoding="utf-8"))
    info["fusion"] = _fusion_info(tune_dev_fusion(model, dev_sets, bf16=bf16))
    info_file.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(model_card(info), encoding="utf-8")
    return info["fusion"]


def stored_fusion(model_dir: str | Path) -> Any:
    """The :class:`~rerank_core.fusion.Fusion` tuned at fine-tuning time and stored beside the model
    (``rerank_finetune.json``), or ``None`` when the folder has none (any other model)."""
    from rerank_core.fusion import Fusion

    info_file = Path(model_dir).expanduser() / FINETUNE_INFO_FILE
    try:
        stored = json.loads(info_file.read_text(encoding="utf-8")).get("fusion")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(stored, dict) or "method" not in stored or "weight" not in stored:
        return None
    return Fusion(method=stored["method"], weight=stored["weight"])


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def model_card(info: Mapping[str, Any]) -> str:
    """The Markdown model card written beside the weights (data, settings, dev metrics, how to load)."""
    s, d = info["settings"], info["data"]
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: text-ranking",
        "tags: [cross-encoder, reranker, rerank-core]",
        "---",
        "",
        "# Cross-encoder reranker fine-tuned with rerank-core",
        "",
        f"Fine-tuned from `{s['base_model']}` with `rerank_core.train.finetune` "
        "(sentence-transformers cross-encoder trainer).",
        "",
        "## Load it",
        "",
        "```python",
        "from rerank_core import Reranker",
        "from rerank_core.backends import CrossEncoderBackend",
        "",
        'reranker = Reranker(CrossEncoderBackend("path/to/this/folder"), top_n=5)',
        "```",
        "",
        "## Training data",
        "",
        f"- {d['groups']} query groups, {d['pairs']} (query, text) pairs; one positive per group, the rest "
        "hard negatives.",
    ]
    for source, n in d["groups_per_source"].items():
        lines.append(f"  - `{source}`: {n} groups")
    for key, value in d.items():
        if key not in ("groups", "pairs", "groups_per_source", "dev", "earlier_stages"):
            lines.append(f"- {key}: {value}")
    earlier = list(d.get("earlier_stages") or [])
    if earlier:
        lines += [
            "",
            "## Earlier training stages",
            "",
            "This run went on from an earlier one (oldest first):",
            "",
        ]
        for i, stage in enumerate(earlier, 1):
            groups = ", ".join(f"{k} {v}" for k, v in (stage.get("groups_per_source") or {}).items())
            best = (stage.get("best_dev") or {}).get("mean_ndcg@10")
            lines.append(
                f"{i}. {stage.get('steps')} steps over {groups or 'unknown data'}, "
                f"{stage.get('train_seconds')} s"
                + (f", best dev mean nDCG@10 {best:.4f}" if isinstance(best, float) else "")
                + f": `{stage.get('command')}`"
            )
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in s.items()]
    lines += ["", "## Dev evaluation (nDCG@10 of the reranked first-stage candidates)", ""]
    if info["dev_history"]:
        names = list(d["dev"])
        lines.append("| step | " + " | ".join(f"{n} nDCG@10" for n in names) + " | mean |")
        lines.append("|---" * (len(names) + 2) + "|")
        first = " | ".join(f"{d['dev'][n]['first_stage'].get('ndcg@10', 0.0):.4f}" for n in names)
        lines.append(f"| first stage | {first} | |")
        for h in info["dev_history"]:
            vals = " | ".join(f"{h[f'{n}_ndcg@10']:.4f}" for n in names)
            lines.append(f"| {int(h['steps'])} | {vals} | {h['mean_ndcg@10']:.4f} |")
        lines += [
            "",
            f"Kept: the checkpoint with the best mean ({info['best_dev'].get('mean_ndcg@10', 0):.4f}).",
        ]
    else:
        lines.append("No dev set was given; the last checkpoint was kept.")
    fusion = info.get("fusion")
    if fusion:
        lines += [
            "",
            "## Fusion with the first stage (tuned on dev)",
            "",
            f"Best on the pooled dev queries: `{fusion['method']}` with the reranker's weight "
            f"{fusion['weight']:g}: nDCG@10 {fusion['dev_ndcg@10']:.4f}, against "
            f"{fusion['dev_rerank_only_ndcg@10']:.4f} for the reranker alone and "
            f"{fusion['dev_first_stage_ndcg@10']:.4f} for the first stage alone. "
            'Use it with `Reranker(backend, fusion="%s:%g")` and first-stage scores, or '
            "`rerank eval ... --fusion model`." % (fusion["method"], fusion["weight"]),
        ]
    env = info["environment"]
    lines += [
        "",
        "## Environment",
        "",
        f"Trained in {info['train_seconds']:.0f} s on {env['cpu_count']} CPU cores ({env['machine']}) "
        if s["device"] == "cpu"
        else f"Trained in {info['train_seconds']:.0f} s on {s['device']} ",
        f"with torch {env['torch']}, sentence-transformers {env['sentence_transformers']}, "
        f"transformers {env['transformers']}.",
    ]
    if info.get("command"):
        commands = [str(stage.get("command")) for stage in earlier if stage.get("command")]
        lines += ["", "## Reproduce", ""]
        if commands:
            lines.append(
                "Run the stages in order; each later one's `--base-model` is the previous stage's output "
                "(the folder it names held that output when it ran):"
            )
            lines.append("")
        lines += ["```", *commands, str(info["command"]), "```"]
    return "\n".join(lines) + "\n"

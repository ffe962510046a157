"""The torch-side pieces of fine-tuning: the group loss and the dev evaluator.

Imported only by :func:`rerank_core.train.finetune` (they subclass torch and sentence-transformers types).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator
from sentence_transformers.util import batch_to_device
from torch import nn

from rerank_core.eval.metrics import evaluate
from rerank_core.train.data import DevSet


class GroupSoftmaxLoss(nn.Module):
    """Softmax cross-entropy over each (positive, negatives...) group, plus a weighted pointwise BCE term.

    Inputs are the columns ``query`` and ``documents`` (positive first) with a ``labels`` list column
    (1 for the positive, 0 for negatives), and optionally a ``teacher`` list column (a teacher's score of
    each document, mixed into the listwise target; the BCE term keeps the judged labels). The listwise term
    (a.k.a. localized contrastive estimation) teaches the order; the BCE term, with weight ``bce_weight``,
    anchors the logits so that the sigmoid of the score is a usable probability for thresholds. All pairs of
    a batch go through the model in one forward pass.
    """

    def __init__(
        self,
        model: Any,
        bce_weight: float = 0.2,
        distill_weight: float = 0.5,
        distill_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.bce_weight = float(bce_weight)
        self.distill_weight = float(distill_weight)
        self.distill_temperature = float(distill_temperature)

    def _targets(self, hard: torch.Tensor, teacher: Any) -> torch.Tensor:
        """The listwise target of one group: the judged labels normalised to sum 1, mixed with the
        teacher's softmax (``teacher / distill_temperature``) when the group has teacher scores."""
        weights = hard.clamp(min=0)
        weights = weights / weights.sum()
        if teacher is None:
            return weights
        soft = torch.softmax(
            torch.as_tensor(teacher, dtype=torch.float32, device=hard.device) / self.distill_temperature, 0
        )
        return (1 - self.distill_weight) * weights + self.distill_weight * soft

    def forward(
        self, inputs: list[list[Any]], labels: list[torch.Tensor], prompt: str | None = None, task: Any = None
    ) -> torch.Tensor:
        queries, documents = inputs[0], inputs[1]
        teachers = inputs[2] if len(inputs) > 2 else [None] * len(queries)  # the optional teacher column
        pairs = [(q, d) for q, docs in zip(queries, documents, strict=True) for d in docs]
        features = self.model.preprocess(pairs, prompt=prompt) if prompt else self.model.preprocess(pairs)
        features = batch_to_device(features, self.model.device)
        logits = self.model(features)["scores"].view(-1).float()
        sizes = [len(docs) for docs in documents]
        targets = torch.cat([lab.to(logits.device, torch.float32).view(-1) for lab in labels])
        listwise = logits.new_zeros(())
        for group, target, teacher in zip(
            torch.split(logits, sizes), torch.split(targets, sizes), teachers, strict=True
        ):
            listwise = listwise - (self._targets(target, teacher) * torch.log_softmax(group, dim=0)).sum()
        listwise = listwise / len(sizes)
        if self.bce_weight == 0.0:
            return listwise
        pointwise = nn.functional.binary_cross_entropy_with_logits(logits, (targets > 0).float())
        return listwise + self.bce_weight * pointwise

    def get_config_dict(self) -> dict[str, float]:
        return {
            "bce_weight": self.bce_weight,
            "distill_weight": self.distill_weight,
            "distill_temperature": self.distill_temperature,
        }


class DevRerankEvaluator(BaseEvaluator):
    """nDCG@10 (and MRR@10) of the model's reranking of each dev set's first-stage candidates.

    The primary metric is the mean nDCG@10 over the dev sets (the checkpoint-selection criterion). On CPU
    with ``bf16`` the scoring runs under bfloat16 autocast, as training does.
    """

    def __init__(self, dev_sets: list[DevSet], *, batch_size: int = 64, bf16: bool = False) -> None:
        super().__init__()
        self.dev_sets = dev_sets
        self.batch_size = batch_size
        self.bf16 = bf16
        self.primary_metric = "mean_ndcg@10"
        self.history: list[dict[str, float]] = []

    def scores(self, model: Any, dev: DevSet) -> dict[str, list[float]]:
        """The model's score of every candidate of every dev query, in candidate order."""
        pairs: list[tuple[str, str]] = []
        owners: list[tuple[str, str]] = []
        for qid, ids in dev.candidates.items():
            for doc_id in ids:
                pairs.append((dev.queries[qid], dev.texts[doc_id]))
                owners.append((qid, doc_id))
        autocast: Any = contextlib.nullcontext()
        if self.bf16 and str(model.device).startswith("cpu"):
            autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        with autocast:
            scores = model.predict(
                pairs, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
            )
        out: dict[str, list[float]] = {qid: [] for qid in dev.candidates}
        for (qid, _), score in zip(owners, scores, strict=True):
            out[qid].append(float(score))
        return out

    def rerank(self, model: Any, dev: DevSet) -> dict[str, list[str]]:
        scored = self.scores(model, dev)
        # Stable: equal scores keep first-stage order.
        return {
            qid: [dev.candidates[qid][i] for i in sorted(range(len(s)), key=lambda i: -s[i])]
            for qid, s in scored.items()
        }

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        metrics: dict[str, float] = {}
        ndcgs = []
        for dev in self.dev_sets:
            run = self.rerank(model, dev)
            values = evaluate(run, dev.qrels, k_values=(10,))
            metrics[f"{dev.name}_ndcg@10"] = values["ndcg@10"]
            metrics[f"{dev.name}_mrr@10"] = values["mrr@10"]
            metrics[f"{dev.name}_first_stage_ndcg@10"] = dev.first_stage.get("ndcg@10", 0.0)
            ndcgs.append(values["ndcg@10"])
        metrics["mean_ndcg@10"] = sum(ndcgs) / len(ndcgs)
        self.history.append({"epoch": float(epoch), "steps": float(steps), **metrics})
        return metrics

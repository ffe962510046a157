"""Fine-tuning workflow (``pip install 'rerank-core[train]'``): hard-negative data, training, model card.

Torch, sentence-transformers and datasets are imported only when :func:`finetune` runs.
"""

from rerank_core.train.data import (
    DevSet,
    Retriever,
    TrainingGroup,
    add_bi_encoder_teacher,
    add_teacher_scores,
    dev_set_from_beir,
    folder_training_data,
    groups_from_beir,
    groups_from_rows,
    read_rows,
    split_queries,
)
from rerank_core.train.finetune import (
    FINETUNE_INFO_FILE,
    FinetuneResult,
    finetune,
    model_card,
    stored_fusion,
    tune_dev_fusion,
    update_model_fusion,
)

__all__ = [
    "FINETUNE_INFO_FILE",
    "DevSet",
    "FinetuneResult",
    "Retriever",
    "TrainingGroup",
    "add_bi_encoder_teacher",
    "add_teacher_scores",
    "dev_set_from_beir",
    "finetune",
    "folder_training_data",
    "groups_from_beir",
    "groups_from_rows",
    "model_card",
    "read_rows",
    "split_queries",
    "stored_fusion",
    "tune_dev_fusion",
    "update_model_fusion",
]

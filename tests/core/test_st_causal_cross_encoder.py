"""sentence-transformers >= 6 CrossEncoder checkpoints around a causal LM, run by CrossEncoderBackend.

The form zeroentropy/zerank-2 and converted Qwen3-Reranker checkpoints ship in: ``modules.json`` with
``Transformer(transformer_task="text-generation")`` then ``LogitScore`` (the logit of a token at the last
position, or a logit difference), ``sentence_bert_config.json`` with the ``message`` modality
(``"format": "flat"``) and ``processing_kwargs={"chat_template": {"add_generation_prompt": true}}``, and a
chat template that renders the pair: sentence-transformers turns a (query, document) pair into the messages
``[{"role": "query", ...}, {"role": "document", ...}]`` (a prompt becomes a leading ``system`` message),
left-pads, truncates the rendered sequence on the right and writes the template's suffix back over the last
tokens of a truncated row.

Built offline: tiny random ``Qwen3ForCausalLM`` models with SmolLM2's ChatML tokenizer (../shared/models),
wrapped as CrossEncoders whose chat template reproduces our ``zerank`` and ``qwen3`` recipes token for token,
saved with ``save_pretrained``. Checked: ``local_backend`` sends the folder to CrossEncoderBackend; its scores
are ``CrossEncoder.predict``'s (batched or one by one); they equal RecipeBackend's on the same weights, also
when sentence-transformers truncates; a long document through the Reranker is windowed with room for the
template.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("transformers")
st = pytest.importorskip("sentence_transformers")
pytest.importorskip("sentence_transformers.cross_encoder.modules")

from sentence_transformers.base.modules import Transformer  # noqa: E402
from sentence_transformers.cross_encoder.modules import LogitScore  # noqa: E402
from tiny_models import smol_tokenizer_dir, tiny_causal  # noqa: E402

from rerank_core import Reranker  # noqa: E402
from rerank_core import recipes as R  # noqa: E402
from rerank_core.backends.cross_encoder import CrossEncoderBackend  # noqa: E402
from rerank_core.backends.local import local_backend  # noqa: E402
from rerank_core.backends.recipe_model import RecipeBackend  # noqa: E402

PAIRS = [
    ("what is a cat?", "A cat is a small domesticated carnivorous mammal."),
    ("what is a cat?", "Paris is the capital of France. " * 12),
    ("who wrote Hamlet", "Shakespeare"),
    ("  padded query \n", "\t a document with spaces around  "),
    ("a query with {document} in it", "x"),
]
LONG = ("what is a cat?", "long document about cats and other things " * 80)


def _lit(text: str) -> str:
    """A Jinja string literal (JSON's escapes are Jinja's for these ASCII strings)."""
    assert text.isascii()
    return json.dumps(text)


def _zerank_template() -> str:
    """The zerank recipe as a chat template: the stripped query as the system turn, the stripped document as
    the user turn, then the generation prompt."""
    (part,) = R.RECIPES["zerank"].parts
    assert part == (
        "<|im_start|>system\n{instruction}{query}<|im_end|>\n<|im_start|>user\n{document}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    return (
        "{%- for m in messages -%}"
        "{%- if m.role == 'query' -%}{{ '<|im_start|>system\\n' + (m.content | trim) + '<|im_end|>\\n' }}"
        "{%- elif m.role == 'document' -%}{{ '<|im_start|>user\\n' + (m.content | trim) + '<|im_end|>\\n' }}"
        "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
    )


def _qwen3_template() -> str:
    """The qwen3 recipe as a chat template (the card's prefix, ``<Instruct>/<Query>/<Document>``, suffix); a
    ``system`` message (sentence-transformers' prompt) is the instruction, else the recipe's default."""
    recipe = R.RECIPES["qwen3"]
    prefix, middle, suffix = recipe.parts
    end = "<|im_end|>\n"
    assert middle == "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
    assert suffix.startswith(end)
    body = " + ".join(
        [
            _lit(prefix + "<Instruct>: "),
            "ns.instruction",
            _lit("\n<Query>: "),
            "ns.query",
            _lit("\n<Document>: "),
            "ns.document",
            _lit(end),
        ]
    )
    return (
        "{%- set ns = namespace(instruction=" + _lit(recipe.default_instruction or "") + ", query='', "
        "document='') -%}"
        "{%- for m in messages -%}"
        "{%- if m.role == 'system' -%}{%- set ns.instruction = m.content -%}"
        "{%- elif m.role == 'query' -%}{%- set ns.query = m.content -%}"
        "{%- elif m.role == 'document' -%}{%- set ns.document = m.content -%}{%- endif -%}"
        "{%- endfor -%}"
        "{{- " + body + " -}}"
        "{%- if add_generation_prompt -%}{{- " + _lit(suffix[len(end) :]) + " -}}{%- endif -%}"
    )


@pytest.fixture(scope="module")
def smol_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smol_tokenizer_dir(tmp_path_factory)


def _st_causal(
    tmp: Path, name: str, tokenizer_dir: Path, template: str, true: str, false: str | None, activation: Any
) -> Path:
    """A tiny random Qwen3ForCausalLM saved as a sentence-transformers CrossEncoder (Transformer ->
    LogitScore, ``template`` as its chat template), the way zerank-2's repository is laid out."""
    # initializer_range: scores that differ between pairs by more than the tolerances below
    weights = tiny_causal(tmp / f"{name}-weights", tokenizer_dir, initializer_range=0.2)
    tok = tf.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    transformer = Transformer(
        str(weights),
        transformer_task="text-generation",
        processor_kwargs={"chat_template": template},
        processing_kwargs={"chat_template": {"add_generation_prompt": True}},
    )
    ids = [tok.encode(t, add_special_tokens=False) for t in (true, false) if t is not None]
    assert all(len(i) == 1 for i in ids), ids
    head = LogitScore(true_token_id=ids[0][0], false_token_id=ids[1][0] if false is not None else None)
    folder = tmp / name
    st.CrossEncoder(modules=[transformer, head], activation_fn=activation).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def zerank_st(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer: Path) -> Path:
    # zerank-2: the raw logit of "Yes" (activation Identity), as its LogitScore(true_token_id=9454).
    return _st_causal(
        tmp_path_factory.mktemp("zst"),
        "tiny-zerank-2",
        smol_tokenizer,
        _zerank_template(),
        "Yes",
        None,
        torch.nn.Identity(),
    )


@pytest.fixture(scope="module")
def qwen3_st(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer: Path) -> Path:
    # A converted Qwen3-Reranker: logit(yes) - logit(no), sigmoid = the card's P(yes).
    return _st_causal(
        tmp_path_factory.mktemp("qst"),
        "tiny-Qwen3-Reranker-0.6B",
        smol_tokenizer,
        _qwen3_template(),
        "yes",
        "no",
        torch.nn.Sigmoid(),
    )


@pytest.fixture(params=["zerank", "qwen3"])
def case(request: pytest.FixtureRequest) -> tuple[str, Path]:
    fixture = {"zerank": "zerank_st", "qwen3": "qwen3_st"}[request.param]
    return request.param, request.getfixturevalue(fixture)


def _rendered(ce: Any, query: str, document: str) -> list[int]:
    """The untruncated token ids sentence-transformers renders for one pair (its own messages and kwargs)."""
    messages = ce[0].input_formatter.pair_to_messages((query, document))
    return list(
        ce.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
    )


def test_the_checkpoint_is_a_sentence_transformers_causal_reranker(case: tuple[str, Path]) -> None:
    _, folder = case
    modules = json.loads((folder / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "LogitScore"]
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    assert config["transformer_task"] == "text-generation"
    assert config["modality_config"]["message"]["format"] == "flat"
    assert config["processing_kwargs"] == {"chat_template": {"add_generation_prompt": True}}
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["Qwen3ForCausalLM"]


def test_local_backend_runs_it_through_sentence_transformers(case: tuple[str, Path]) -> None:
    name, folder = case
    # the folder's name matches the recipe (detect() would pick it); modules.json wins
    assert R.detect(str(folder)) is R.RECIPES[name]
    backend = local_backend(folder)
    assert isinstance(backend, CrossEncoderBackend)
    assert backend.score_kind == ("logit" if name == "zerank" else "probability")
    assert backend.runtime == "torch-float32"
    # sentence-transformers pads causal models on the left: the last position of every row is real
    assert backend.model.tokenizer.padding_side == "left"


def test_scores_equal_cross_encoder_predict_batched_or_one_by_one(case: tuple[str, Path]) -> None:
    _, folder = case
    want = st.CrossEncoder(str(folder), device="cpu").predict(PAIRS, batch_size=32).tolist()
    backend = CrossEncoderBackend(folder, device="cpu", batch_size=2)
    assert backend.score_pairs(PAIRS) == pytest.approx(want, abs=1e-5)
    assert [backend.score_pairs([p])[0] for p in PAIRS] == pytest.approx(want, abs=1e-5)
    assert CrossEncoderBackend(folder, device="cpu", batch_tokens=64).score_pairs(PAIRS) == pytest.approx(
        want, abs=1e-5
    )
    assert max(want) - min(want) > 1e-2  # the pairs score apart: the tolerances above mean something


def test_scores_equal_the_recipe_on_the_same_weights(case: tuple[str, Path]) -> None:
    name, folder = case
    backend = CrossEncoderBackend(folder, device="cpu")
    recipe = RecipeBackend(folder, recipe=name, device="cpu", dtype="float32")
    # the same tokens, id for id (the template reproduces the recipe, parts tokenized apart or not) ...
    for query, document in PAIRS:
        ids = backend.model.preprocess([(query, document)])["input_ids"][0].tolist()
        assert ids == recipe.render(query, document)
    # ... so the same scores: sentence-transformers' equal the recipe's
    assert backend.score_pairs(PAIRS) == pytest.approx(recipe.score_pairs(PAIRS), abs=1e-4)


def test_truncation_keeps_the_template_suffix_and_equals_the_recipes_cut(case: tuple[str, Path]) -> None:
    # sentence-transformers cuts the rendered sequence on the right, then writes the template's suffix back
    # over its last tokens: the document loses its end, the scored position still reads the suffix. That is
    # the recipe's cut (only the document's end goes), token for token.
    name, folder = case
    backend = CrossEncoderBackend(folder, device="cpu", max_length=128)
    recipe = RecipeBackend(folder, recipe=name, device="cpu", dtype="float32", max_length=128)
    assert len(_rendered(backend.model, *LONG)) > 128
    ids = backend.model.preprocess([LONG])["input_ids"][0].tolist()
    assert len(ids) == 128 and ids == recipe.render(*LONG)
    pairs = [LONG, *PAIRS]
    assert backend.score_pairs(pairs) == pytest.approx(recipe.score_pairs(pairs), abs=1e-4)


def test_a_long_document_is_windowed_with_room_for_the_template(
    case: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, folder = case
    backend = CrossEncoderBackend(folder, device="cpu", max_length=128)
    seen: list[tuple[str, str]] = []
    score_pairs = backend.score_pairs

    def spy(pairs: Any, **told: Any) -> list[float]:
        seen.extend(pairs)
        return score_pairs(pairs, **told)

    monkeypatch.setattr(backend, "score_pairs", spy)
    response = Reranker(backend).rerank(LONG[0], [LONG[1], "short"])
    assert len(response.results) == 2
    long_result = next(r for r in response.results if r.index == 0)
    assert long_result.window is not None and long_result.window.count > 1
    assert len(seen) > 2
    # every window fits whole: sentence-transformers never has to truncate it
    assert max(len(_rendered(backend.model, q, t)) for q, t in seen) <= 128


def test_an_exported_runtime_refuses_a_causal_reranker(zerank_st: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from rerank_core.errors import ConfigurationError

    backend = CrossEncoderBackend(zerank_st, runtime="onnx", cache_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="runtime"):
        backend.score_pairs(PAIRS[:2])


def test_a_sentence_transformers_prompt_is_the_qwen3_instruction(qwen3_st: Path) -> None:
    # sentence-transformers puts a prompt into a chat-template model's input as a leading system message;
    # this template reads it as the instruction, so CrossEncoder.predict(prompt=...) is the recipe with it.
    rule = "Prefer peer-reviewed sources"
    ce = st.CrossEncoder(str(qwen3_st), device="cpu")
    ids = ce.preprocess([PAIRS[0]], prompt=rule)["input_ids"][0].tolist()
    recipe = RecipeBackend(qwen3_st, recipe="qwen3", device="cpu", dtype="float32")
    assert ids == recipe.render(*PAIRS[0], instruction=rule)
    want = recipe.score_pairs(PAIRS, instruction=rule)
    assert ce.predict(PAIRS, prompt=rule).tolist() == pytest.approx(want, abs=1e-4)

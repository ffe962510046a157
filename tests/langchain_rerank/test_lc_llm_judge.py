"""The LLM judge with a LangChain chat model: LangChainLLM over LangChain's fake chat models and a small
BaseChatModel that answers like a judge (with OpenAI-style logprobs in response_metadata), and
RerankCompressor.from_llm_judge end to end."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from llm_fakes import PASSAGE, grade_of

from langchain_rerank import LangChainLLM, RerankCompressor
from rerank_core import ConfigurationError
from rerank_core.backends.llm_judge import LLMJudgeBackend
from rerank_core.llm import ChatMessage


class JudgeChatModel(BaseChatModel):
    """Answers yes/no with logprobs (when asked), or a ``[2] > [1]`` order, from ``rel=`` markers."""

    seen: ClassVar[list[dict[str, Any]]] = []

    @property
    def _llm_type(self) -> str:
        return "judge-chat-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.seen.append({"messages": messages, "kwargs": kwargs})
        user = messages[-1].content
        passages = PASSAGE.findall(user)
        meta: dict[str, Any] = {}
        if kwargs.get("logprobs"):
            p = min(max(grade_of(passages[0][1]), 1e-4), 1 - 1e-4)
            text = "yes" if p >= 0.5 else "no"
            tops = [{"token": "yes", "logprob": math.log(p)}, {"token": "no", "logprob": math.log(1 - p)}]
            meta["logprobs"] = {"content": [{"token": text, "logprob": 0.0, "top_logprobs": tops}]}
        else:
            ranked = sorted(passages, key=lambda x: -grade_of(x[1]))
            text = " > ".join(f"[{i}]" for i, _ in ranked)
        usage = {"input_tokens": len(user.split()), "output_tokens": len(text.split()), "total_tokens": 0}
        message = AIMessage(content=text, response_metadata=meta, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


DOCS = [
    Document(page_content=f"passage {i} rel={r}", metadata={"n": i})
    for i, r in enumerate([0.3, 0.9, 0.1, 0.6])
]


def test_messages_roles_and_kwargs_reach_the_chat_model() -> None:
    model = JudgeChatModel()
    model.seen.clear()
    llm = LangChainLLM(model, logprobs=True, invoke_kwargs={"temperature": 0})
    answer = llm.complete(
        [ChatMessage("system", "judge"), ChatMessage("user", '<passage id="1">\nx rel=0.8\n</passage>')],
        max_tokens=1,
        top_logprobs=5,
    )
    sent = model.seen[-1]
    assert [type(m) for m in sent["messages"]] == [SystemMessage, HumanMessage]
    assert sent["kwargs"] == {"temperature": 0, "max_tokens": 1, "logprobs": True, "top_logprobs": 5}
    assert answer.text == "yes" and answer.top_logprobs[0].logprob == pytest.approx(math.log(0.8))
    assert answer.prompt_tokens == 5 and answer.completion_tokens == 1  # the fake's word counts


def test_compressor_from_llm_judge_pointwise_with_logprobs() -> None:
    model = JudgeChatModel()
    compressor = RerankCompressor.from_llm_judge(LangChainLLM(model, logprobs=True), top_n=3)
    out = compressor.compress_documents(DOCS, "query")
    assert [d.metadata["n"] for d in out] == [1, 3, 0]
    assert out[0].metadata["relevance_score"] == pytest.approx(0.9)
    assert DOCS[1].metadata == {"n": 1}  # the caller's documents are untouched
    assert compressor.reranker.backend.scoring == "logprobs"


async def test_compressor_wraps_a_plain_chat_model_listwise_async() -> None:
    compressor = RerankCompressor.from_llm_judge(JudgeChatModel(), mode="listwise", window_size=3, step=1)
    assert isinstance(compressor.reranker.backend, LLMJudgeBackend)
    assert compressor.reranker.backend.blocking is False
    out = await compressor.acompress_documents(DOCS, "query")
    assert [d.metadata["n"] for d in out] == [1, 3, 0, 2]


def test_fake_list_chat_model_messy_listwise_answer() -> None:
    model = FakeListChatModel(responses=["Sure! The order is [3] > [3] > [7] > [1]. Hope this helps."])
    compressor = RerankCompressor.from_llm_judge(model, mode="listwise")
    out = compressor.compress_documents(DOCS[:3], "query")
    assert [d.metadata["n"] for d in out] == [2, 0, 1]  # ranked ids, then the missing one in input order


def test_generic_fake_chat_model_graded_text() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="[1] 1\n[2] 3\n[3] 0\n[4] 2")]))
    compressor = RerankCompressor.from_llm_judge(model, batch_size=4)
    assert compressor.reranker.backend.scoring == "graded"
    out = compressor.compress_documents(DOCS, "query")
    assert [d.metadata["n"] for d in out] == [1, 3, 0, 2]
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])


def test_bad_llm_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        RerankCompressor.from_llm_judge("gpt-4o")
    assert info.value.argument == "llm"
    with pytest.raises(ConfigurationError) as info:
        LangChainLLM(object())  # type: ignore[arg-type]
    assert info.value.argument == "model"

"""RerankCompressor takes ``instruction=`` like any Reranker option: in its constructor and every
``from_*`` constructor, and it reaches the back end (and the LLM judge's prompt)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

import pytest
from fakes import FakeBackend
from langchain_core.documents import Document
from llm_fakes import FakeJudgeLLM

from langchain_rerank import RerankCompressor
from rerank_core import ConfigurationError, Reranker, RerankerOptions

SCORES = {"alpha": 1.0, "beta": 4.0, "gamma": -2.0}


class Instructed(FakeBackend):
    """A fake back end that takes an instruction and records the ``instruction`` keyword it got."""

    instruction_support = "a test prefix"

    def __init__(self) -> None:
        super().__init__(SCORES)
        self.told: list[str | None] = []

    def pair_limit(self, **told: Any) -> Any:
        return super().pair_limit()

    def score_pairs(self, pairs: Sequence[tuple[str, str]], **told: Any) -> list[float]:
        self.told.append(told.get("instruction"))
        return super().score_pairs(pairs)


def docs() -> list[Document]:
    return [Document(page_content=t) for t in SCORES]


@pytest.mark.parametrize(
    "make",
    [
        lambda b: RerankCompressor(b, instruction="be strict"),
        lambda b: RerankCompressor(b, options={"instruction": "be strict"}),
        lambda b: RerankCompressor(b, options=RerankerOptions(instruction="be strict")),
        lambda b: RerankCompressor.from_backend(b, instruction="be strict", top_n=2),
        lambda b: RerankCompressor(Reranker(b, instruction="be strict")),
    ],
)
def test_the_constructors_instruction_reaches_the_back_end(make: Any) -> None:
    backend = Instructed()
    compressor = make(backend)
    assert compressor.reranker.instruction == "be strict"
    out = compressor.compress_documents(docs(), "q")
    assert [d.page_content for d in out][:2] == ["beta", "alpha"]
    assert backend.told == ["be strict"]
    asyncio.run(compressor.acompress_documents(docs(), "q"))
    assert backend.told == ["be strict", "be strict"]
    assert copy.deepcopy(compressor).reranker.instruction == "be strict"


def test_without_an_instruction_the_back_end_gets_none() -> None:
    backend = Instructed()
    RerankCompressor(backend).compress_documents(docs(), "q")
    assert backend.told == [None]


def test_a_back_end_without_instructions_refuses_by_name() -> None:
    with pytest.raises(ConfigurationError) as error:
        RerankCompressor(FakeBackend(SCORES), instruction="be strict")
    assert error.value.argument == "instruction"
    with pytest.raises(ConfigurationError) as error:
        RerankCompressor.from_backend(FakeBackend(SCORES), instruction="")
    assert error.value.argument == "instruction"


def test_from_llm_judge_puts_the_instruction_in_the_prompt() -> None:
    llm = FakeJudgeLLM(lambda t: 0.9 if t == "beta" else 0.1, logprobs=False)
    compressor = RerankCompressor.from_llm_judge(llm, scoring="graded", instruction="be strict", top_n=1)
    out = compressor.compress_documents(docs(), "q")
    assert [d.page_content for d in out] == ["beta"]
    assert llm.calls and all(
        call[-1].content.startswith("Relevance for this task: be strict\n\nQuery: ") for call in llm.calls
    )

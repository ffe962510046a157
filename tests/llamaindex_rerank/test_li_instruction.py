"""RerankPostprocessor takes ``instruction=`` like any Reranker option: in its constructor and every
``from_*`` constructor, and it reaches the back end (and the LLM judge's prompt)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

import pytest
from fakes import FakeBackend
from llama_index.core.schema import NodeWithScore, TextNode
from llm_fakes import FakeJudgeLLM

from llamaindex_rerank import RerankPostprocessor
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


def docs() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t), score=None) for t in SCORES]


def texts(nodes: Sequence[NodeWithScore]) -> list[str]:
    return [n.node.get_content() for n in nodes]


@pytest.mark.parametrize(
    "make",
    [
        lambda b: RerankPostprocessor(b, instruction="be strict"),
        lambda b: RerankPostprocessor(b, options={"instruction": "be strict"}),
        lambda b: RerankPostprocessor(b, options=RerankerOptions(instruction="be strict")),
        lambda b: RerankPostprocessor.from_backend(b, instruction="be strict", top_n=2),
        lambda b: RerankPostprocessor(Reranker(b, instruction="be strict")),
    ],
)
def test_the_constructors_instruction_reaches_the_back_end(make: Any) -> None:
    backend = Instructed()
    post = make(backend)
    assert post.reranker.instruction == "be strict"
    out = post.postprocess_nodes(docs(), query_str="q")
    assert texts(out)[:2] == ["beta", "alpha"]
    assert backend.told == ["be strict"]
    asyncio.run(post.apostprocess_nodes(docs(), query_str="q"))
    assert backend.told == ["be strict", "be strict"]
    assert copy.deepcopy(post).reranker.instruction == "be strict"


def test_without_an_instruction_the_back_end_gets_none() -> None:
    backend = Instructed()
    RerankPostprocessor(backend).postprocess_nodes(docs(), query_str="q")
    assert backend.told == [None]


def test_a_back_end_without_instructions_refuses_by_name() -> None:
    with pytest.raises(ConfigurationError) as error:
        RerankPostprocessor(FakeBackend(SCORES), instruction="be strict")
    assert error.value.argument == "instruction"
    with pytest.raises(ConfigurationError) as error:
        RerankPostprocessor.from_backend(FakeBackend(SCORES), instruction="")
    assert error.value.argument == "instruction"


def test_from_llm_judge_puts_the_instruction_in_the_prompt() -> None:
    llm = FakeJudgeLLM(lambda t: 0.9 if t == "beta" else 0.1, logprobs=False)
    post = RerankPostprocessor.from_llm_judge(llm, scoring="graded", instruction="be strict", top_n=1)
    out = post.postprocess_nodes(docs(), query_str="q")
    assert texts(out) == ["beta"]
    assert llm.calls and all(
        call[-1].content.startswith("Relevance for this task: be strict\n\nQuery: ") for call in llm.calls
    )

"""OpenAICompatibleLLM against a real chat-completions server on loopback: logprobs when asked, text
otherwise, retries through the shared remote machinery, malformed answers, bounded concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from llm_server import ChatServer

from rerank_core import ConfigurationError, NonRetryableBackendError, Reranker, RetryableBackendError
from rerank_core.backends.llm_judge import LLMJudgeBackend
from rerank_core.errors import InvalidResponseError
from rerank_core.llm import ChatMessage
from rerank_core.llm.openai_compat import OpenAICompatibleLLM
from rerank_core.remote import RetryPolicy

DOCS = [f"passage {i} rel={r}" for i, r in enumerate([0.2, 0.9, 0.5, 0.1, 0.7])]
FAST = RetryPolicy(max_attempts=3, initial_delay=0.0, max_delay=0.0)


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer() as s:
        yield s


def _llm(server: ChatServer, **kwargs: object) -> OpenAICompatibleLLM:
    kwargs.setdefault("retry", FAST)
    return OpenAICompatibleLLM(server.base_url, "judge-model", **kwargs)  # type: ignore[arg-type]


def test_pointwise_with_logprobs_over_http(server: ChatServer) -> None:
    llm = _llm(server)
    response = Reranker(LLMJudgeBackend(llm)).rerank("q", DOCS)
    assert response.indices == [1, 4, 2, 0, 3]
    assert [r.raw_score for r in response] == pytest.approx([0.9, 0.7, 0.5, 0.2, 0.1], abs=1e-3)
    body = server.requests[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1
    assert body["temperature"] == 0.0 and body["model"] == "judge-model"
    assert body["messages"][0]["role"] == "system"
    assert response.usage["llm_calls"] == 5 and response.usage["llm_estimated_tokens"] == 0
    assert response.usage["llm_prompt_tokens"] == sum(
        len(m["content"].split()) for b in server.requests for m in b["messages"]
    )


def test_graded_when_the_endpoint_has_no_logprobs(server: ChatServer) -> None:
    llm = _llm(server, logprobs=False)
    judge = LLMJudgeBackend(llm, batch_size=5)
    assert judge.scoring == "graded"
    response = Reranker(judge).rerank("q", DOCS)
    assert len(server.requests) == 1 and "logprobs" not in server.requests[0]
    assert response.indices[0] == 1 and set(response.indices[1:3]) == {2, 4}  # grades 3, 2, 2 (0..3 scale)


def test_listwise_over_http(server: ChatServer) -> None:
    response = Reranker(LLMJudgeBackend(_llm(server), mode="listwise", window_size=3, step=1)).rerank(
        "q", DOCS
    )
    assert response.indices[0] == 1
    assert response.usage["llm_calls"] == 3 == len(server.requests)


def test_endpoint_without_logprobs_falls_back_to_the_answer_text(server: ChatServer) -> None:
    server.inject("no_logprobs")
    response = Reranker(LLMJudgeBackend(_llm(server), max_concurrency=1)).rerank("q", DOCS[:2])  # in order
    assert {r.index: r.raw_score for r in response}[0] == 0.0  # said "No" in text, no logprobs
    assert response.usage["llm_unparsed"] == 0 and response.usage["llm_text_fallback"] == 1


@pytest.mark.parametrize("fault", ["http_500", "http_429", "malformed_json", "no_choices"])
def test_transient_and_malformed_answers_are_retried(server: ChatServer, fault: str) -> None:
    llm = _llm(server)
    server.inject(fault)
    response = Reranker(LLMJudgeBackend(llm)).rerank("q", DOCS[:2])
    assert len(server.requests) == 3  # one failed try + two calls
    assert response.indices == [1, 0]
    assert llm.stats.snapshot()["retries"] == 1


def test_retries_exhausted_raise_typed_errors(server: ChatServer) -> None:
    llm = _llm(server)
    server.inject("http_500", "http_500", "http_500")
    with pytest.raises(RetryableBackendError) as info:
        llm.complete([ChatMessage("user", "hi")], max_tokens=4)
    assert info.value.attempts == 3 and info.value.status_code == 500
    server.inject("http_400")
    with pytest.raises(NonRetryableBackendError) as info2:
        llm.complete([ChatMessage("user", "hi")], max_tokens=4)
    assert info2.value.attempts == 1
    server.inject("malformed_json", "malformed_json", "malformed_json")
    with pytest.raises(InvalidResponseError, match="malformed JSON"):
        llm.complete([ChatMessage("user", "hi")], max_tokens=4)


def test_garbage_content_is_not_an_http_error(server: ChatServer) -> None:
    server.inject("garbage")  # the first of two windows
    response = Reranker(LLMJudgeBackend(_llm(server), mode="listwise", window_size=3, step=1)).rerank(
        "q", DOCS[:4]
    )
    assert response.usage["llm_unparsed"] == 1 and sorted(response.indices) == [0, 1, 2, 3]


async def test_async_path_bounded_concurrency_and_usage(server: ChatServer) -> None:
    server.delay = 0.05
    llm = _llm(server, max_concurrency=3)
    judge = LLMJudgeBackend(llm, max_concurrency=8)
    assert judge.blocking is False
    reranker = Reranker(judge)
    responses = await asyncio.gather(*(reranker.arerank(f"q{i}", DOCS[: i + 1]) for i in range(4)))
    assert [r.usage["llm_calls"] for r in responses] == [1, 2, 3, 4]
    assert 1 < server.max_in_flight <= 3
    await llm.aclose()


def test_sync_path_runs_calls_side_by_side(server: ChatServer) -> None:
    server.delay = 0.05
    response = Reranker(LLMJudgeBackend(_llm(server), max_concurrency=4)).rerank("q", DOCS)
    assert 1 < server.max_in_flight <= 4 and response.usage["llm_calls"] == 5


def test_api_key_sent_and_never_shown() -> None:
    with ChatServer(api_key="sk-secret-123") as s:
        good = OpenAICompatibleLLM(s.base_url, "m", api_key="sk-secret-123", retry=FAST)
        assert good.complete([ChatMessage("user", "yes or no")], max_tokens=1).text in ("Yes", "No")
        assert "sk-secret" not in repr(good) and "sk-secret" not in good.fingerprint
        bad = OpenAICompatibleLLM(s.base_url, "m", api_key="wrong", retry=FAST)
        with pytest.raises(NonRetryableBackendError, match="401") as info:
            bad.complete([ChatMessage("user", "hi")], max_tokens=1)
        assert "wrong" not in str(info.value)


def test_connection_refused_is_retryable() -> None:
    llm = OpenAICompatibleLLM(
        "http://127.0.0.1:9/v1", "m", retry=RetryPolicy(max_attempts=2, initial_delay=0.0)
    )
    with pytest.raises(RetryableBackendError, match="connection failed"):
        llm.complete([ChatMessage("user", "hi")], max_tokens=1)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"base_url": "localhost:8000"}, "base_url"),
        ({"model": ""}, "model"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"temperature": -1}, "temperature"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"timeout": 0}, "timeout"),
        ({"retry": 3}, "retry"),
    ],
)
def test_configuration_errors(kwargs: dict, argument: str) -> None:
    args = {"base_url": "http://127.0.0.1:1/v1", "model": "m", **kwargs}
    with pytest.raises(ConfigurationError) as info:
        OpenAICompatibleLLM(**args)
    assert info.value.argument == argument

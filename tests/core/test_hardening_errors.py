"""Errors on every path (issue 16, item 5): whatever goes wrong ends as a RerankError subclass that names
the argument or the back end, and ``fail_open=True`` covers every back-end-side failure (not bad input,
not KeyboardInterrupt / SystemExit / CancelledError)."""

from __future__ import annotations

import asyncio
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest
from fakes import FakeBackend
from test_judge_stage import FIRST, FakeJudge, _docs, _letters, _reranker

from rerank_core import Candidate, Reranker
from rerank_core.backends.llm_judge import LLMJudgeBackend
from rerank_core.errors import (
    ConfigurationError,
    FailOpenWarning,
    InvalidInputError,
    InvalidResponseError,
    NonRetryableBackendError,
    RerankError,
)
from rerank_core.llm import LLM, ChatMessage, LLMResponse, TokenLogprob

DOCS = ["alpha", "beta", "gamma", "delta"]


# -- bad caller input: InvalidInputError naming the argument, never failed open --------------------------


@pytest.mark.parametrize("fail_open", [False, True])
def test_lone_surrogate_is_invalid_input_naming_the_argument(fail_open: bool) -> None:
    reranker = Reranker(FakeBackend(), fail_open=fail_open)
    with pytest.raises(InvalidInputError, match="lone surrogate") as caught:
        reranker.rerank("q\ud800", DOCS)
    assert caught.value.argument == "query"
    for bad in ("x\udc00y", Candidate("x\udc00y"), {"text": "x\udc00y"}):
        with pytest.raises(InvalidInputError) as caught:
            reranker.rerank("q", [*DOCS[:3], bad])
        assert caught.value.argument == "candidates[3]"
    with pytest.raises(InvalidInputError) as caught:
        reranker.rerank_many(["q", "q\udfff"], [DOCS, DOCS])
    assert caught.value.argument == "queries[1]"
    with pytest.raises(InvalidInputError) as caught:
        asyncio.run(reranker.arerank_many(["q", "q"], [DOCS, ["ok", "\ud83d"]]))
    assert caught.value.argument == "candidates[1][1]"
    # valid non-ASCII text (a real emoji, not half of one) is fine
    assert len(reranker.rerank("q \U0001f600 é", ["\U0001f600", "日本"])) == 2


def test_lone_surrogate_with_a_real_tokenizer(tiny_ce_path: Path) -> None:
    """It used to escape as a TypeError from inside the Hugging Face tokenizer."""
    from rerank_core.backends import CrossEncoderBackend

    reranker = Reranker(CrossEncoderBackend(str(tiny_ce_path)), fail_open=True)
    with pytest.raises(InvalidInputError) as caught:
        reranker.rerank("q", ["a", "b", "c", "x\udc00"])
    assert caught.value.argument == "candidates[3]"


@pytest.mark.parametrize(
    "value",
    [10**400, -(10**400), 10**5000, float("inf"), float("nan")],
    ids=["1e400", "-1e400", "1e5000", "inf", "nan"],
)
def test_score_threshold_out_of_the_float_range(value: float) -> None:
    reranker = Reranker(FakeBackend())
    with pytest.raises(InvalidInputError) as caught:
        reranker.rerank("q", DOCS, score_threshold=value)
    assert caught.value.argument == "score_threshold"
    with pytest.raises(ConfigurationError, match="score_threshold"):
        Reranker(FakeBackend(), score_threshold=value)
    assert Reranker(FakeBackend(), score_threshold=10**3).score_threshold == 1000.0


# -- back-end-side failures: a BackendError naming the back end, so fail_open applies ----------------------


class ExplodingBackend(FakeBackend):
    def __init__(self, error: BaseException) -> None:
        super().__init__(kind="probability", name="exploding")
        self.error = error

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise self.error


class GarbageBackend(FakeBackend):
    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return None  # type: ignore[return-value]


@pytest.mark.parametrize(
    "error", [RuntimeError("CUDA error: device-side assert"), TypeError("tokenizer"), KeyError("x")]
)
def test_unexpected_backend_exception_is_a_non_retryable_backend_error(error: Exception) -> None:
    reranker = Reranker(ExplodingBackend(error))
    with pytest.raises(NonRetryableBackendError) as caught:
        reranker.rerank("q", DOCS)
    assert caught.value.backend == "fake:exploding" and caught.value.__cause__ is error
    assert type(error).__name__ in str(caught.value)
    with pytest.raises(NonRetryableBackendError) as caught:
        asyncio.run(reranker.arerank("q", DOCS))
    assert caught.value.__cause__ is error


def test_fail_open_covers_unexpected_backend_exceptions_sync_and_async() -> None:
    reranker = Reranker(ExplodingBackend(RuntimeError("boom")), fail_open=True, top_n=2)
    with pytest.warns(FailOpenWarning, match="RuntimeError: boom"):
        response = reranker.rerank("q", DOCS)
    assert response.indices == [0, 1] and all(not r.reranked for r in response)
    assert "NonRetryableBackendError" in (response.error or "")
    with pytest.warns(FailOpenWarning):
        many = asyncio.run(reranker.arerank_many(["q1", "q2"], [DOCS, DOCS[:1]]))
    assert [r.indices for r in many] == [[0, 1], [0]]
    with pytest.warns(FailOpenWarning):
        garbage = Reranker(GarbageBackend(), fail_open=True).rerank("q", DOCS)
    assert garbage.indices == [0, 1, 2, 3] and garbage.usage["failed"] == 1


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)])
def test_interrupts_are_never_converted_or_failed_open(error: BaseException) -> None:
    reranker = Reranker(ExplodingBackend(error), fail_open=True)
    with pytest.raises(type(error)):
        reranker.rerank("q", DOCS)


def test_cancellation_is_never_converted_or_failed_open() -> None:
    reranker = Reranker(ExplodingBackend(asyncio.CancelledError()), fail_open=True)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(reranker.arerank("q", DOCS))


def test_a_backend_error_without_a_backend_is_given_its_name() -> None:
    reranker = Reranker(ExplodingBackend(NonRetryableBackendError("401 bad key")))
    with pytest.raises(NonRetryableBackendError, match=r"\[fake:exploding\] 401 bad key") as caught:
        reranker.rerank("q", DOCS)
    assert caught.value.backend == "fake:exploding" and caught.value.detail == "401 bad key"


class ExplodingJudge(FakeJudge):
    def _groups(self, groups):  # type: ignore[no-untyped-def]
        raise ValueError("judge went wrong")


@pytest.mark.parametrize("use_async", [False, True])
def test_judge_fail_open_covers_unexpected_exceptions(use_async: bool) -> None:
    reranker = _reranker(ExplodingJudge(), top_k=3)
    with pytest.warns(FailOpenWarning, match="ValueError: judge went wrong"):
        if use_async:
            response = asyncio.run(reranker.arerank("q", _docs(), first_stage_scores=FIRST))
        else:
            response = reranker.rerank("q", _docs(), first_stage_scores=FIRST)
    assert _letters(response) == ["e", "b", "a", "c", "d"] and response.usage["judge_failed"] == 1
    strict = _reranker(ExplodingJudge(), top_k=3, fail_open=False)
    with pytest.raises(NonRetryableBackendError, match="fake-judge") as caught:
        strict.rerank("q", _docs(), first_stage_scores=FIRST)
    assert isinstance(caught.value.__cause__, ValueError)


# -- third-party LLM adapters: their answer is checked once, in LLMResponse ------------------------------


class SloppyLLM(LLM):
    """A third-party adapter that passes the model's answer through unchecked."""

    supports_logprobs = False

    def __init__(self, text: object = "[1] 3", prompt_tokens: object = 5, completion_tokens: object = 1):
        self.text, self.prompt_tokens, self.completion_tokens = text, prompt_tokens, completion_tokens

    @property
    def fingerprint(self) -> str:
        return "sloppy-llm"

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMResponse:
        return LLMResponse(
            self.text,  # type: ignore[arg-type]
            prompt_tokens=self.prompt_tokens,  # type: ignore[arg-type]
            completion_tokens=self.completion_tokens,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    "answer",
    [
        {"text": None},
        {"text": b"yes"},
        {"prompt_tokens": float("nan")},
        {"completion_tokens": float("inf")},
        {"completion_tokens": -1},
        {"prompt_tokens": "12"},
        {"prompt_tokens": True},
    ],
)
def test_bad_llm_answers_are_invalid_responses_naming_the_model(answer: dict[str, object]) -> None:
    reranker = Reranker(LLMJudgeBackend(SloppyLLM(**answer), scoring="graded"))
    with pytest.raises(InvalidResponseError) as caught:
        reranker.rerank("q", DOCS[:2])
    assert "sloppy-llm" in str(caught.value) and "sloppy-llm" in (caught.value.backend or "")
    with pytest.raises(InvalidResponseError):
        asyncio.run(reranker.arerank("q", DOCS[:2]))
    failing_open = Reranker(LLMJudgeBackend(SloppyLLM(**answer), scoring="graded"), fail_open=True)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        response = failing_open.rerank("q", DOCS[:2])
    assert response.indices == [0, 1] and not response[0].reranked
    assert any(issubclass(w.category, FailOpenWarning) for w in seen)


def test_llm_response_checks_and_normalises_once() -> None:
    with pytest.raises(InvalidResponseError, match="text must be a string, got NoneType"):
        LLMResponse(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidResponseError, match="completion_tokens"):
        LLMResponse("x", completion_tokens=float("nan"))  # type: ignore[arg-type]
    with pytest.raises(InvalidResponseError, match="top_logprobs"):
        LLMResponse("x", top_logprobs=[("yes", -0.1)])  # type: ignore[list-item]
    ok = LLMResponse("x", [TokenLogprob("yes", -0.1)], prompt_tokens=12.0, completion_tokens=0)  # type: ignore[arg-type]
    assert ok.prompt_tokens == 12 and isinstance(ok.prompt_tokens, int) and ok.completion_tokens == 0
    assert ok.top_logprobs == (TokenLogprob("yes", -0.1),)
    assert isinstance(InvalidResponseError("x"), RerankError)
    assert math.isfinite(LLMJudgeBackend(SloppyLLM(), scoring="graded").score("q", ["a"]).scores[0])


# -- one "finite number" check everywhere: an integer beyond the float range is refused by name -------------


def test_huge_integers_are_refused_by_name_wherever_a_number_is_read() -> None:
    from rerank_core import ScoringProfile
    from rerank_core.integrations import collect_first_stage_scores

    huge = 10**400
    with pytest.raises(InvalidInputError) as first_stage:
        Reranker(FakeBackend(), fusion="zscore:0.5").rerank("q", ["a", "b"], first_stage_scores=[huge, 1.0])
    assert first_stage.value.argument == "first_stage_scores[0]" and "beyond the float range" in str(
        first_stage.value
    )
    with pytest.raises(ConfigurationError) as temperature:
        Reranker(FakeBackend(), normalization="temperature", temperature=huge)
    assert temperature.value.argument == "temperature"
    assert collect_first_stage_scores([huge, 1.0], None, lambda i: f"docs[{i}]") is None  # no fusion: ignored
    with pytest.raises(ConfigurationError):
        ScoringProfile.from_dict({"rules": [{"type": "numeric", "field": "x", "weight": huge}]})


def test_a_pickled_back_end_keeps_no_credential_written_in_its_url() -> None:
    import pickle

    from rerank_core.backends import RerankAPIBackend

    backend = RerankAPIBackend("http://alice:URLSECRET42@127.0.0.1:9/", protocol="tei")
    data = pickle.dumps(backend)
    assert b"URLSECRET42" not in data and b"alice" not in data
    assert "127.0.0.1:9" in repr(pickle.loads(data))


def test_only_whole_secret_words_are_left_out_of_pickles_and_configs() -> None:
    import pickle

    from rerank_core.backends import CohereBackend, CrossEncoderBackend

    cohere = CohereBackend("rerank-v3.5", api_key="SECRETKEY", max_tokens_per_doc=512)
    _, kwargs = cohere.init_arguments(secrets=False)  # type: ignore[misc]
    assert kwargs["max_tokens_per_doc"] == 512 and "api_key" not in kwargs
    local = CrossEncoderBackend("/no/such/model", batch_tokens=2048, tokenizer_kwargs={"use_fast": True})
    copied = pickle.loads(pickle.dumps(local))
    assert copied.init_arguments() == local.init_arguments()


def test_copy_copy_shares_what_is_loaded() -> None:
    import copy

    backend = FakeBackend({"a": 1.0})
    backend.extra = "set later"  # type: ignore[attr-defined]
    shallow = copy.copy(backend)
    assert shallow is not backend and shallow.extra == "set later"  # type: ignore[attr-defined]
    assert shallow._scores is backend._scores  # the same loaded state, nothing rebuilt

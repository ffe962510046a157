"""Instructions, core plumbing: ``Reranker(instruction=...)`` and per call, what a back end that takes one
receives (and when it receives nothing), the refusal by one that takes none, validation, the cache key,
the response fingerprint, the async and coalesced paths, and ``fail_open`` (which does not swallow a
refusal). Small fake back ends, defined here, whose scores show which instruction they were given."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from rerank_core import ConfigurationError, Reranker
from rerank_core.backends.base import Backend, GroupScores, PairLimit, instructed_fingerprint
from rerank_core.coalescing import Coalescing
from rerank_core.errors import ArgumentError, InvalidInputError
from rerank_core.types import ScoreKind

NOT_GIVEN = "<no keyword>"
DOCS = ["a", "bbb", "cc"]


class Instructed(Backend):
    """Takes an instruction. Records, per ``score`` call, the query, the texts and the ``instruction``
    keyword (``NOT_GIVEN`` when none was passed); the score of a text is its length, negated under the
    instruction ``"short"`` and shifted by 100 under any other, so a score says which instruction made it."""

    instruction_support = "a test prefix"

    def __init__(self, *, blocking: bool = True) -> None:
        super().__init__()
        self.blocking = blocking
        self.calls: list[tuple[str, list[str], str | None]] = []
        self.limits: list[str | None] = []
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return "instructed"

    @property
    def score_kind(self) -> ScoreKind:
        return "logit"

    def pair_limit(self, **told: Any) -> PairLimit | None:
        with self._lock:
            self.limits.append(told.get("instruction", NOT_GIVEN))
        return None

    def score(self, query: str, texts: Sequence[str], **told: Any) -> GroupScores:
        instruction = told.get("instruction", NOT_GIVEN)
        with self._lock:
            self.calls.append((query, list(texts), instruction))
        return GroupScores([expected(t, instruction) for t in texts])


class NativeInstructed(Instructed):
    """The same with a native async path (the scoring stage awaits ``ascore_groups``)."""

    def __init__(self) -> None:
        super().__init__(blocking=False)

    async def ascore(self, query: str, texts: Sequence[str], **told: Any) -> GroupScores:
        await asyncio.sleep(0)
        return self.score(query, texts, **told)


class Plain(Backend):
    """Takes no instruction (``instruction_support`` is ``None``); its ``score`` has no such keyword."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    @property
    def fingerprint(self) -> str:
        return "plain"

    @property
    def score_kind(self) -> ScoreKind:
        return "logit"

    def score(self, query: str, texts: Sequence[str]) -> GroupScores:
        self.calls += 1
        return GroupScores([float(len(t)) for t in texts])


def expected(text: str, instruction: str | None) -> float:
    if instruction == NOT_GIVEN:
        return float(len(text))
    return -float(len(text)) if instruction == "short" else 100.0 + len(text)


def raw(response: Any) -> dict[str, float]:
    return {r.text: r.raw_score for r in response}


# -- option and per call ---------------------------------------------------------------------------------


def test_no_instruction_passes_no_keyword() -> None:
    backend = Instructed()
    response = Reranker(backend).rerank("q", DOCS)
    assert [c[2] for c in backend.calls] == [NOT_GIVEN]
    assert backend.limits == [NOT_GIVEN]
    assert raw(response) == {t: expected(t, NOT_GIVEN) for t in DOCS}
    assert response.backend == "instructed"


def test_the_option_reaches_the_back_end() -> None:
    backend = Instructed()
    reranker = Reranker(backend, instruction="short")
    assert reranker.instruction == "short" and reranker.options.instruction == "short"
    response = reranker.rerank("q", DOCS)
    assert backend.calls == [("q", DOCS, "short")]
    assert list(response.indices) == [0, 2, 1]  # shortest first
    assert raw(response) == {t: expected(t, "short") for t in DOCS}


def test_per_call_instruction_wins_and_per_call_none_is_the_back_ends_default() -> None:
    backend = Instructed()
    reranker = Reranker(backend, instruction="short")
    reranker.rerank("q", DOCS, instruction="long")
    reranker.rerank("q", DOCS, instruction=None)
    reranker.rerank("q", DOCS)
    assert [c[2] for c in backend.calls] == ["long", NOT_GIVEN, "short"]
    assert backend.limits == ["long", NOT_GIVEN, "short"]


def test_setting_the_option_later_replaces_it() -> None:
    backend = Instructed()
    reranker = Reranker(backend)
    reranker.instruction = "short"
    reranker.rerank("q", DOCS)
    assert backend.calls[-1][2] == "short"
    reranker.instruction = None
    reranker.rerank("q", DOCS)
    assert backend.calls[-1][2] == NOT_GIVEN


def test_rerank_many_gives_every_query_the_instruction() -> None:
    backend = Instructed()
    responses = Reranker(backend).rerank_many(["q1", "q2"], [DOCS, ["dd"]], instruction="short")
    assert sorted(backend.calls) == [("q1", DOCS, "short"), ("q2", ["dd"], "short")]
    assert raw(responses[1]) == {"dd": -2.0}
    assert {r.backend for r in responses} == {instructed_fingerprint("instructed", "short")}


@pytest.mark.parametrize("backend_class", [Instructed, NativeInstructed])
async def test_async_paths_pass_the_instruction(backend_class: type[Instructed]) -> None:
    backend = backend_class()
    reranker = Reranker(backend, instruction="short")
    one = await reranker.arerank("q", DOCS)
    many = await reranker.arerank_many(["q1", "q2"], [DOCS, DOCS], instruction="long")
    plain = await reranker.arerank("q", DOCS, instruction=None)
    assert raw(one) == {t: expected(t, "short") for t in DOCS}
    assert [raw(r) for r in many] == [{t: expected(t, "long") for t in DOCS}] * 2
    assert raw(plain) == {t: expected(t, NOT_GIVEN) for t in DOCS}
    assert sorted(c[2] for c in backend.calls) == sorted(["short", "long", "long", NOT_GIVEN])
    assert sorted(backend.limits) == sorted(["short", "long", NOT_GIVEN])


async def test_coalesced_calls_with_different_instructions_each_get_their_own() -> None:
    backend = Instructed()  # blocking: coalesced
    reranker = Reranker(backend, coalesce=Coalescing(max_wait_ms=200))
    assert reranker.coalescer is not None
    batches: list[list[str | None]] = []
    score_jobs = reranker.coalescer._score_jobs

    def recording(jobs: list[Any]) -> None:
        batches.append([job.instruction for job in jobs])
        score_jobs(jobs)

    reranker.coalescer._score_jobs = recording
    short, long, default = await asyncio.gather(
        reranker.arerank("q1", DOCS, instruction="short"),
        reranker.arerank("q2", DOCS, instruction="long"),
        reranker.arerank("q3", DOCS),
    )
    assert [set(b) for b in batches] == [{"short", "long", None}]  # one shared batch
    assert raw(short) == {t: expected(t, "short") for t in DOCS}
    assert raw(long) == {t: expected(t, "long") for t in DOCS}
    assert raw(default) == {t: expected(t, NOT_GIVEN) for t in DOCS}
    assert list(short.indices) == [0, 2, 1] and list(long.indices) == [1, 2, 0]
    assert sorted((c[0], c[2]) for c in backend.calls) == [
        ("q1", "short"),
        ("q2", "long"),
        ("q3", NOT_GIVEN),
    ]
    assert short.backend != long.backend != default.backend == "instructed"


# -- refusal ---------------------------------------------------------------------------------------------


def test_a_back_end_without_instructions_refuses_at_construction_and_per_call() -> None:
    with pytest.raises(ConfigurationError, match="instruction") as error:
        Reranker(Plain(), instruction="short")
    assert error.value.argument == "instruction"
    assert "Plain takes no instruction" in str(error.value)
    reranker = Reranker(Plain())
    with pytest.raises(ConfigurationError) as error:
        reranker.instruction = "short"
    assert error.value.argument == "instruction"
    with pytest.raises(ConfigurationError) as error:
        reranker.rerank("q", DOCS, instruction="short")
    assert error.value.argument == "instruction"
    with pytest.raises(ConfigurationError):
        reranker.rerank_many(["q"], [DOCS], instruction="short")
    with pytest.raises(ConfigurationError):
        asyncio.run(reranker.arerank("q", DOCS, instruction="short"))
    with pytest.raises(ConfigurationError):
        asyncio.run(reranker.arerank_many(["q"], [DOCS], instruction="short"))
    assert reranker.options.instruction is None
    assert reranker.backend.calls == 0  # refused before any model work
    assert len(reranker.rerank("q", DOCS, instruction=None)) == 3  # None is always fine
    assert reranker.backend.calls == 1


def test_fail_open_does_not_swallow_the_refusal() -> None:
    reranker = Reranker(Plain(), fail_open=True)
    with pytest.raises(ConfigurationError, match="instruction"):
        reranker.rerank("q", DOCS, instruction="short")
    with pytest.raises(ConfigurationError, match="instruction"):
        asyncio.run(reranker.arerank("q", DOCS, instruction="short"))
    with pytest.raises(ConfigurationError, match="instruction"):
        asyncio.run(Reranker(Plain(), fail_open=True, coalesce=True).arerank("q", DOCS, instruction="x"))


# -- validation ------------------------------------------------------------------------------------------

BAD = [
    (3, "must be a string or None"),
    (b"short", "must be a string or None"),
    ("", "must not be empty"),
    ("  \n\t", "must not be empty"),
    ("x" * 10_001, "at most 10,000"),
    ("rank \ud800 first", "lone surrogate"),
]


@pytest.mark.parametrize(("bad", "message"), BAD)
def test_bad_instructions_name_the_argument(bad: object, message: str) -> None:
    backend = Instructed()
    with pytest.raises(ConfigurationError, match=message) as at_construction:
        Reranker(backend, instruction=bad)  # type: ignore[arg-type]
    assert at_construction.value.argument == "instruction"
    reranker = Reranker(backend)
    with pytest.raises(ConfigurationError, match=message):
        reranker.instruction = bad
    for call in (
        lambda: reranker.rerank("q", DOCS, instruction=bad),  # type: ignore[arg-type]
        lambda: reranker.rerank_many(["q"], [DOCS], instruction=bad),  # type: ignore[arg-type]
        lambda: asyncio.run(reranker.arerank("q", DOCS, instruction=bad)),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError, match=message) as per_call:
            call()
        assert per_call.value.argument == "instruction"
        assert isinstance(per_call.value, ArgumentError)
    assert backend.calls == []


def test_the_longest_instruction_is_taken() -> None:
    backend = Instructed()
    longest = "y" * 10_000
    Reranker(backend, instruction=longest).rerank("q", DOCS)
    assert backend.calls[0][2] == longest


# -- cache and fingerprint -------------------------------------------------------------------------------


def test_the_cache_is_keyed_by_the_instruction() -> None:
    backend = Instructed()
    reranker = Reranker(backend, cache=True)
    first = reranker.rerank("q", DOCS, instruction="short")
    again = reranker.rerank("q", DOCS, instruction="short")
    other = reranker.rerank("q", DOCS, instruction="long")
    plain = reranker.rerank("q", DOCS)
    plain_again = reranker.rerank("q", DOCS)
    assert [c[2] for c in backend.calls] == ["short", "long", NOT_GIVEN]  # two hits, three misses
    assert raw(again) == raw(first) == {t: expected(t, "short") for t in DOCS}
    assert raw(other) == {t: expected(t, "long") for t in DOCS}
    assert raw(plain_again) == raw(plain) == {t: expected(t, NOT_GIVEN) for t in DOCS}
    assert again.usage.get("cache_hits") == 3 and first.usage.get("cache_hits", 0) == 0


def test_the_response_fingerprint_carries_the_instruction() -> None:
    reranker = Reranker(Instructed())
    short = reranker.rerank("q", DOCS, instruction="short").backend
    long = reranker.rerank("q", DOCS, instruction="long").backend
    plain = reranker.rerank("q", DOCS).backend
    assert plain == "instructed" == reranker.backend.fingerprint
    assert short != long and short.startswith("instructed|instruction=sha256:")
    assert short == instructed_fingerprint("instructed", "short")
    assert "short" not in short  # a hash, not the text
    assert reranker.rerank("q", [], instruction="short").backend == short  # empty calls too


def test_fail_open_responses_carry_the_instructed_fingerprint() -> None:
    class Down(Instructed):
        def score(self, query: str, texts: Sequence[str], **told: Any) -> GroupScores:
            raise RuntimeError("down")

    reranker = Reranker(Down(), fail_open=True)
    with pytest.warns(Warning, match="fail_open"):
        response = reranker.rerank("q", DOCS, instruction="short")
    assert not any(r.reranked for r in response)
    assert response.backend == instructed_fingerprint("instructed", "short")

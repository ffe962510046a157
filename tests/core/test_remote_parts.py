"""The pieces every remote back end shares, tested alone: retry policy, Retry-After, response checks,
request planning, limits, secrets."""

from __future__ import annotations

import asyncio
import email.utils
import math
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rerank_core.errors import (
    ConfigurationError,
    InvalidResponseError,
    NonRetryableBackendError,
    RetryableBackendError,
)
from rerank_core.remote import (
    AsyncConcurrencyLimit,
    ConcurrencyLimit,
    RateLimiter,
    RemoteStats,
    RetryPolicy,
    Secret,
    acall_with_retries,
    call_with_retries,
    check_ranking,
    parse_retry_after,
    plan_requests,
)
from rerank_core.remote.http import error_for_status

# -- RetryPolicy ------------------------------------------------------------------------------------


@given(
    retry=st.integers(1, 12),
    initial=st.floats(0, 5),
    multiplier=st.floats(1, 4),
    cap=st.floats(0, 30),
    retry_after=st.none() | st.floats(0, 100),
)
def test_delay_is_jittered_backoff_capped_and_never_below_retry_after(
    retry: int, initial: float, multiplier: float, cap: float, retry_after: float | None
) -> None:
    policy = RetryPolicy(initial_delay=initial, multiplier=multiplier, max_delay=cap, max_retry_after=10)
    backoff = min(cap, initial * multiplier ** (retry - 1))
    delay = policy.delay(retry, retry_after)
    floor = backoff / 2 if retry_after is None else max(backoff / 2, min(retry_after, 10))
    assert floor - 1e-9 <= delay <= max(backoff, floor) + 1e-9


def test_should_retry_by_error_class_and_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(RetryableBackendError("503"), 1)
    assert not policy.should_retry(RetryableBackendError("503"), 3)
    assert not policy.should_retry(NonRetryableBackendError("401"), 1)
    assert policy.should_retry(InvalidResponseError("bad json"), 2)
    assert not RetryPolicy(retry_invalid_responses=False).should_retry(InvalidResponseError("x"), 1)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_attempts": True}, "retry.max_attempts"),
        ({"initial_delay": -1}, "retry.initial_delay"),
        ({"max_delay": math.inf}, "retry.max_delay"),
        ({"multiplier": 0.5}, "retry.multiplier"),
    ],
)
def test_bad_retry_policy_names_the_field(kwargs: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        RetryPolicy(**kwargs)


def test_call_with_retries_retries_then_succeeds_and_counts() -> None:
    outcomes: list[Exception | str] = [RetryableBackendError("a"), InvalidResponseError("b"), "done"]
    slept: list[float] = []
    stats = RemoteStats()

    def send() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    policy = RetryPolicy(initial_delay=0.1, multiplier=2)
    assert call_with_retries(send, policy, stats=stats, sleep=slept.append) == "done"
    assert len(slept) == 2 and 0.05 <= slept[0] <= 0.1 and 0.1 <= slept[1] <= 0.2
    assert stats.snapshot() == {"retries": 2}


def test_call_with_retries_gives_up_with_attempts_set() -> None:
    calls = []

    def send() -> None:
        calls.append(1)
        raise RetryableBackendError("busy", retry_after=0.0)

    with pytest.raises(RetryableBackendError, match="busy") as info:
        call_with_retries(send, RetryPolicy(max_attempts=3, initial_delay=0), sleep=lambda s: None)
    assert info.value.attempts == 3 and len(calls) == 3


def test_non_retryable_is_raised_at_once() -> None:
    calls = []

    def send() -> None:
        calls.append(1)
        raise NonRetryableBackendError("HTTP 401")

    with pytest.raises(NonRetryableBackendError):
        call_with_retries(send, RetryPolicy(), sleep=lambda s: pytest.fail("must not sleep"))
    assert len(calls) == 1


def test_async_call_with_retries() -> None:
    outcomes: list[Exception | int] = [RetryableBackendError("a"), 7]

    async def send() -> int:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert asyncio.run(acall_with_retries(send, RetryPolicy(initial_delay=0.001))) == 7


# -- Retry-After and status mapping ----------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.25 ") == 0.25
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(s, True) for s in (408, 429, 500, 502, 503, 504)]
    + [(s, False) for s in (400, 401, 403, 404, 413, 422, 501)],
)
def test_status_classification(status: int, retryable: bool) -> None:
    error = error_for_status(status, {"Retry-After": "2"}, "body", backend="b")
    assert error.retryable is retryable and error.status_code == status
    assert error.retry_after == (2.0 if retryable else None)


def test_secret_is_scrubbed_and_never_shown() -> None:
    secret = Secret("sk-live-123")
    assert "sk-live-123" not in repr(secret) and "sk-live-123" not in str(secret)
    assert secret.get() == "sk-live-123"
    error = error_for_status(401, {}, "bad token sk-live-123", backend="b", secret=secret)
    assert "sk-live-123" not in str(error) and "***" in str(error)


# -- response checks --------------------------------------------------------------------------------


def test_check_ranking_reorders_to_input_order() -> None:
    assert check_ranking([(2, 0.9), (0, 0.5), (1, 0.1)], 3, backend="b") == [0.5, 0.1, 0.9]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([(0, 0.5), (3, 0.1), (1, 0.2)], "out of range"),
        ([(0, 0.5), (0, 0.1), (1, 0.2)], "more than once"),
        ([(0, 0.5), (1, 0.1)], "got 2 results for 3"),
        ([(0, 0.5), (1, float("nan")), (2, 0.2)], "not a finite"),
        ([(0, 0.5), (1, "0.1"), (2, 0.2)], "not a finite"),
        ([(0, 0.5), ("1", 0.1), (2, 0.2)], "not an integer"),
        ([(0, 0.5), (True, 0.1), (2, 0.2)], "not an integer"),
        ([(-1, 0.5), (1, 0.1), (2, 0.2)], "out of range"),
        ([(0, 0.5), (1, 0.1), (2, 0.2), (2, 0.2)], "more than once"),
    ],
)
def test_check_ranking_refuses_anything_but_one_finite_score_per_document(
    entries: list, message: str
) -> None:
    with pytest.raises(InvalidResponseError, match=message):
        check_ranking(entries, 3, backend="b")


@given(
    n=st.integers(0, 12),
    entries=st.lists(
        st.tuples(st.integers(-2, 14), st.floats(allow_nan=True, allow_infinity=True)), max_size=16
    ),
)
def test_check_ranking_accepts_exactly_the_valid_answers(n: int, entries: list[tuple[int, float]]) -> None:
    indices = [i for i, _ in entries]
    valid = sorted(indices) == list(range(n)) and all(math.isfinite(s) for _, s in entries)
    if valid:
        scores = check_ranking(entries, n, backend="b")
        assert scores == [dict(entries)[i] for i in range(n)]
    else:
        with pytest.raises(InvalidResponseError):
            check_ranking(entries, n, backend="b")


# -- request planning and limits --------------------------------------------------------------------


@given(
    sizes=st.lists(st.integers(1, 9), max_size=6),
    limit=st.integers(1, 5),
)
def test_plan_requests_covers_every_pair_once_one_query_each(sizes: list[int], limit: int) -> None:
    pairs = [(f"q{k}", f"t{k}-{j}") for k, size in enumerate(sizes) for j in range(size)]
    plan = plan_requests(pairs, limit)
    covered = [i for _, start, end in plan for i in range(start, end)]
    assert covered == list(range(len(pairs)))
    for query, start, end in plan:
        assert 0 < end - start <= limit
        assert all(pairs[i][0] == query for i in range(start, end))
    assert len(plan) == sum(-(-size // limit) for size in sizes)


def test_rate_limiter_spaces_requests_evenly() -> None:
    now = [100.0]
    limiter = RateLimiter(120, clock=lambda: now[0])  # one every 0.5 s
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.5, 1.0, 1.5]
    now[0] = 110.0  # idle for a while: no burst credit is saved up beyond the next slot
    assert limiter.reserve() == 0.0 and limiter.reserve() == 0.5


def test_rate_limiter_really_waits() -> None:
    limiter = RateLimiter(1200)  # 50 ms apart
    start = time.perf_counter()
    for _ in range(5):
        limiter.acquire()
    assert time.perf_counter() - start >= 0.19


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None, "8"])
def test_concurrency_limit_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        ConcurrencyLimit(bad)  # type: ignore[arg-type]


def test_concurrency_limits_cap_what_is_in_flight() -> None:
    limit, peak, current = ConcurrencyLimit(2), [0], [0]
    lock = threading.Lock()

    def work() -> None:
        with limit:
            with lock:
                current[0] += 1
                peak[0] = max(peak[0], current[0])
            time.sleep(0.02)
            with lock:
                current[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2

    alimit, apeak, acur = AsyncConcurrencyLimit(3), [0], [0]

    async def awork() -> None:
        async with alimit:
            acur[0] += 1
            apeak[0] = max(apeak[0], acur[0])
            await asyncio.sleep(0.01)
            acur[0] -= 1

    async def main() -> None:
        await asyncio.gather(*(awork() for _ in range(10)))

    asyncio.run(main())
    asyncio.run(main())  # a second event loop gets its own semaphore (no "bound to a different loop")
    assert apeak[0] == 3

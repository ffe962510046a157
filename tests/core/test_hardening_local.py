"""Production hardening (issue 16), the local part: bounded work per call, long queries, fair coalescing,
one model call at a time, a fingerprint that loading does not change, the caller's model left alone, and
fusion that stays finite on huge first-stage scores. Each test failed on the code before its fix."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeBackend, run_in_threads

from rerank_core import LongTextPolicy, Reranker
from rerank_core.backends import CrossEncoderBackend

# -- 13: fusion of huge but finite first-stage scores -------------------------------------------------


@pytest.mark.parametrize("method", ["zscore", "minmax"])
def test_fusion_of_1e308_scale_first_stage_scores_stays_finite(method: str) -> None:
    backend = FakeBackend({"a": 1.0, "b": 2.0, "c": 3.0})
    reranker = Reranker(backend, fusion=f"{method}:0.5", score_threshold=-10.0)
    first = [1e308, -1e308, 5e307]
    resp = reranker.rerank("q", ["a", "b", "c"], first_stage_scores=first)
    assert len(resp) == 3  # before: NaN relevance, dropped by the threshold without a word
    assert all(math.isfinite(r.relevance_score) for r in resp)
    # The same as the scores scaled down to ordinary numbers (normalisation is scale-invariant).
    small = reranker.rerank("q", ["a", "b", "c"], first_stage_scores=[f / 1e300 for f in first])
    assert resp.indices == small.indices
    np.testing.assert_allclose([r.relevance_score for r in resp], [r.relevance_score for r in small])


def test_fusion_of_ordinary_scores_is_unchanged_bit_for_bit() -> None:
    from rerank_core.fusion._scores import normalised

    x = np.array([0.3, -1.25, 7.5, 2.0])
    assert np.array_equal(normalised(x, "zscore"), (x - x.mean()) / x.std())
    assert np.array_equal(normalised(x, "minmax"), (x - x.min()) / (x.max() - x.min()))


# -- 14: a fingerprint that loading does not change; the caller's CrossEncoder left alone ---------------


def test_cross_encoder_fingerprint_is_the_same_before_and_after_loading(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, max_length=64, device="cpu")
    before = backend.fingerprint
    reranker = Reranker(backend)
    first = reranker.rerank("query", ["a text", "another text"])  # loads the model
    second = reranker.rerank("query", ["a text", "another text"])
    assert backend.is_loaded
    assert before == backend.fingerprint == first.backend == second.backend  # before: activation=sigmoid


def test_a_callers_crossencoder_is_never_changed(tiny_ce_path: Path) -> None:
    import torch
    from sentence_transformers import CrossEncoder

    theirs = CrossEncoder(str(tiny_ce_path), max_length=192, device="cpu")
    theirs.model.half()
    backend = CrossEncoderBackend(theirs, max_length=64, device="cpu")
    pairs = [("query", "some text " * 50), ("query", "other")]
    scores = backend.score_pairs(pairs)
    # before: the caller's model became float32 with max_length 64
    assert next(theirs.parameters()).dtype == torch.float16
    assert theirs.max_seq_length == 192
    assert backend.model is not theirs and backend.runtime == "torch-float32"
    expected = CrossEncoderBackend(tiny_ce_path, max_length=64, device="cpu").score_pairs(pairs)
    np.testing.assert_allclose(scores, expected, atol=1e-2)  # float16-rounded weights


def test_a_callers_crossencoder_that_needs_no_change_is_shared(tiny_ce_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    theirs = CrossEncoder(str(tiny_ce_path), max_length=64, device="cpu")
    backend = CrossEncoderBackend(theirs, device="cpu")
    assert backend.model is theirs  # no copy when nothing would change


# -- 7: bounded work per candidate (max_windows, max_chars) ------------------------------------------

WORDS = [f"w{i}" for i in range(1000)]  # max_length 16, 3 special tokens, 1-token query: 12 per window


class CountingTokenizer:
    """A whitespace tokenizer that remembers the longest text it was given."""

    def __init__(self) -> None:
        self.longest = 0

    def offsets(self, texts):  # type: ignore[no-untyped-def]
        import re

        self.longest = max([self.longest, *(len(t) for t in texts)])
        return [[m.span() for m in re.finditer(r"\S+", t)] for t in texts]


class CountingBackend(FakeBackend):
    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.tokenizer = CountingTokenizer()

    def pair_limit(self):  # type: ignore[no-untyped-def]
        from rerank_core.backends import PairLimit

        return PairLimit(self._max_length, 3, self.tokenizer)


def test_a_huge_candidate_is_scored_in_at_most_max_windows_windows_and_reported() -> None:
    backend = FakeBackend(max_length=16)
    resp = Reranker(backend, long_text=LongTextPolicy(max_windows=32)).rerank("q", [" ".join(WORDS), "w1 w2"])
    assert backend.pairs_scored == 32 + 1  # before: 110 + 1 (one pair per 9 tokens, without end)
    long = next(r for r in resp if r.index == 0)
    assert long.truncated and long.window is not None and long.window.count == 32
    assert not next(r for r in resp if r.index == 1).truncated
    assert resp.usage["truncated"] == 1 and resp.usage["segments"] == 33


def test_the_default_window_cap_leaves_ordinary_long_texts_whole() -> None:
    """The default cap (256) guards against hostile inputs; a text of 111 windows is scored whole."""
    backend = FakeBackend(max_length=16)
    resp = Reranker(backend).rerank("q", [" ".join(WORDS)])
    assert backend.pairs_scored == 111 and not resp[0].truncated
    assert LongTextPolicy().max_windows == 256


def test_max_windows_none_keeps_every_window() -> None:
    backend = FakeBackend(max_length=16)
    policy = LongTextPolicy(max_windows=None)
    resp = Reranker(backend, long_text=policy).rerank("q", [" ".join(WORDS)])
    assert backend.pairs_scored == 111 and not resp[0].truncated


def test_the_tokenizer_never_sees_more_than_max_chars_of_a_candidate() -> None:
    backend = CountingBackend(max_length=16)
    huge = "word " * 1_000_000  # 5 MB
    resp = Reranker(backend).rerank("q", [huge, "short"])
    assert backend.tokenizer.longest <= 100_000  # before: the whole 5,000,000 characters
    assert backend.pairs_scored <= 256 + 1  # the default window cap (before: 666,667 windows)
    assert resp.usage["truncated"] == 1 and next(r for r in resp if r.index == 0).truncated


def test_max_chars_with_long_text_error_refuses_by_name() -> None:
    from rerank_core import InvalidInputError

    policy = LongTextPolicy(mode="error", max_chars=50)
    with pytest.raises(InvalidInputError) as info:
        Reranker(CountingBackend(max_length=200), long_text=policy).rerank("q", ["a", "b " * 40])
    assert info.value.argument == "candidates[1]" and "max_chars=50" in str(info.value)


def test_bounded_windows_with_a_real_tokenizer(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, max_length=64, device="cpu")
    text = "The quick brown fox jumps over the lazy dog. " * 20_000  # 900 KB
    t0 = time.perf_counter()
    resp = Reranker(backend, long_text=LongTextPolicy(max_windows=32)).rerank("fox", [text, "a dog"])
    assert time.perf_counter() - t0 < 60
    assert resp.usage["segments"] == 33 and resp.usage["truncated"] == 1
    window = next(r for r in resp if r.index == 0).window
    assert window is not None and window.count == 32 and window.end <= 100_000


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_windows": 0}, "max_windows"),
        ({"max_chars": -1}, "max_chars"),
        ({"long_query": "x"}, "long_query"),
    ],
)
def test_bad_bounds_are_configuration_errors(kwargs, argument) -> None:  # type: ignore[no-untyped-def]
    from rerank_core import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        LongTextPolicy(**kwargs)
    assert info.value.argument == argument


# -- 8: queries longer than the pair budget ----------------------------------------------------------


def test_a_query_too_long_for_the_model_is_cut_keeping_its_end_and_reported() -> None:
    backend = FakeBackend(max_length=16)
    query = " ".join(f"h{i}" for i in range(20))  # 20 tokens; the pair has 13 after the special tokens
    resp = Reranker(backend).rerank(query, ["w1 w2", "w3"])  # before: InvalidInputError naming query
    assert resp.query == query and resp.query_truncated and resp.usage["query_truncated"] == 1
    scored_queries = {q for q, _ in backend.calls[0]}
    assert scored_queries == {"h14 h15 h16 h17 h18 h19"}  # half the room (6 tokens), the end kept
    assert len(resp) == 2


def test_keep_start_keeps_the_start_and_short_queries_are_untouched() -> None:
    backend = FakeBackend(max_length=16)
    query = " ".join(f"h{i}" for i in range(20))
    policy = LongTextPolicy(long_query="keep_start")
    resp = Reranker(backend, long_text=policy).rerank(query, ["w1"])
    assert resp.query_truncated and {q for q, _ in backend.calls[0]} == {"h0 h1 h2 h3 h4 h5"}
    short = Reranker(backend).rerank("h1 h2", ["w1"])
    assert not short.query_truncated and "query_truncated" not in short.usage


def test_a_long_query_through_a_real_model_and_both_adapters(tiny_ce_path: Path) -> None:
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from langchain_rerank import RerankCompressor
    from llamaindex_rerank import RerankPostprocessor

    backend = CrossEncoderBackend(tiny_ce_path, max_length=192, device="cpu")
    history = " ".join(f"user said thing number {i} and the assistant answered." for i in range(25))
    query = history + " What is the capital of France?"
    assert len(backend.pair_limit().tokenizer.offsets([query])[0]) > 192
    texts = ["Paris is the capital of France.", "Cats sleep a lot."]
    reranker = Reranker(backend)
    resp = reranker.rerank(query, texts)  # before: InvalidInputError (query is N tokens long)
    assert resp.query_truncated and len(resp) == 2
    docs = RerankCompressor(reranker).compress_documents([Document(page_content=t) for t in texts], query)
    assert [d.page_content for d in docs] == [r.text for r in resp]
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.5) for t in texts]
    out = RerankPostprocessor(reranker).postprocess_nodes(nodes, query_bundle=QueryBundle(query))
    assert [n.node.get_content() for n in out] == [r.text for r in resp]


# -- 10: one model call at a time per back end, sync and async together ------------------------------


def _count_overlap(backend: CrossEncoderBackend) -> dict[str, int]:
    """Wrap the runner's forward pass to record how many run at once."""
    runner = backend._runner
    runner.load()
    predict = runner.predict
    seen = {"now": 0, "max": 0, "calls": 0}
    lock = threading.Lock()

    def counting(pairs):  # type: ignore[no-untyped-def]
        with lock:
            seen["calls"] += 1
            seen["now"] += 1
            seen["max"] = max(seen["max"], seen["now"])
        try:
            time.sleep(0.02)  # a forward pass long enough for the others to try to start theirs
            return predict(pairs)
        finally:
            with lock:
                seen["now"] -= 1

    runner.predict = counting  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("max_concurrency", [1, 2])
def test_sync_threads_and_async_calls_share_max_concurrency_model_slots(
    tiny_ce_path: Path, max_concurrency: int
) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, max_length=64, device="cpu", max_concurrency=max_concurrency)
    seen = _count_overlap(backend)
    reranker = Reranker(backend)
    texts = [f"text number {i} about something" for i in range(6)]

    def work(i: int) -> None:
        if i % 2:
            reranker.rerank(f"query {i}", texts)
        else:  # an event loop per thread, like several servers in one process

            async def many() -> None:
                await asyncio.gather(*(reranker.arerank(f"query {i}.{k}", texts) for k in range(2)))

            asyncio.run(many())

    run_in_threads(work, 6)
    assert seen["now"] == 0
    assert seen["max"] == max_concurrency  # before: 4 or more passes at once with max_concurrency=1


def test_a_timed_out_async_call_does_not_overlap_the_next_sync_call(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, max_length=64, device="cpu", batch_size=1)
    seen = _count_overlap(backend)
    reranker = Reranker(backend)
    texts = [f"text {i}" for i in range(10)]  # 10 batches of 20 ms

    async def timed_out() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reranker.arerank("q", texts), 0.05)

    asyncio.run(timed_out())
    reranker.rerank("another", texts[:3])  # waits for the abandoned call's passes instead of running beside
    assert seen["max"] == 1


def test_a_timed_out_async_call_frees_the_model_at_its_next_batch(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, max_length=64, device="cpu", batch_size=1)
    seen = _count_overlap(backend)
    reranker = Reranker(backend)
    texts = [f"text {i}" for i in range(20)]  # 20 batches of 20 ms

    async def timed_out() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reranker.arerank("q", texts), 0.05)

    asyncio.run(timed_out())
    t0 = time.perf_counter()
    reranker.rerank("another", texts[:1])
    waited = time.perf_counter() - t0
    assert waited < 0.3  # with one model call at a time, it would wait for the abandoned call's 20 passes
    time.sleep(0.5)  # longer than the abandoned call's 20 passes would take
    assert seen["calls"] < 20 + 1  # before: all 20 passes ran for nobody (then 1 for "another")
    assert len(reranker.rerank("q", texts[:4])) == 4  # later calls are scored as usual


# -- 9: coalescing counts windows and admits calls first come, first served ---------------------------


class SlowBackend(FakeBackend):
    """Each model call takes 30 ms (in the back end's thread), so small calls keep queueing meanwhile."""

    def score_pairs(self, pairs):  # type: ignore[no-untyped-def]
        time.sleep(0.03)
        return super().score_pairs(pairs)


def test_a_call_larger_than_the_queue_bound_is_not_overtaken_by_a_stream_of_small_calls() -> None:
    from rerank_core.coalescing import Coalescing

    backend = SlowBackend()
    reranker = Reranker(backend, coalesce=Coalescing(max_wait_ms=0, max_pending_pairs=20))
    small = [f"small doc {i}" for i in range(5)]
    big = [f"big doc {i}" for i in range(30)]  # 30 pairs > max_pending_pairs: runs alone, when its turn comes

    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        stream: list[asyncio.Task] = []

        async def keep_arriving() -> None:
            while loop.time() - start < 1.5:  # a steady stream: the queue is never empty for long
                stream.append(asyncio.ensure_future(reranker.arerank("small", small)))
                await asyncio.sleep(0.01)

        producer = asyncio.ensure_future(keep_arriving())
        await asyncio.sleep(0.1)
        await reranker.arerank("big", big)
        big_done = loop.time() - start
        await producer
        await asyncio.gather(*stream)
        return big_done, loop.time() - start

    big_done, stream_done = asyncio.run(scenario())
    assert big_done < 1.0  # before: 1.5 s and more, only once the stream stopped and the queue emptied
    assert big_done < stream_done


def test_coalescing_counts_a_long_candidate_as_its_windows() -> None:
    from rerank_core.coalescing import Coalescing

    backend = FakeBackend(max_length=16)
    reranker = Reranker(backend, coalesce=Coalescing(max_wait_ms=20, max_pairs=8))
    sizes: list[int] = []
    submit = reranker.coalescer.submit

    async def recording(jobs, size):  # type: ignore[no-untyped-def]
        sizes.append(size)
        await submit(jobs, size)

    reranker.coalescer.submit = recording  # type: ignore[method-assign]
    long = "word " * 1_000  # 5,000 characters: an estimated 6 windows (32 real ones, the cap)

    async def two() -> None:
        await asyncio.gather(reranker.arerank("a", [long]), reranker.arerank("b", [long]))

    asyncio.run(two())
    assert sizes == [6, 6]  # before: [1, 1]
    assert len(backend.calls) == 2  # 6 + 6 > max_pairs: not one shared batch (before: one)


def test_a_call_cancelled_while_waiting_in_line_does_not_block_the_next() -> None:
    from rerank_core.coalescing import Coalescing

    reranker = Reranker(SlowBackend(), coalesce=Coalescing(max_wait_ms=0, max_pending_pairs=5))
    docs = [f"doc {i}" for i in range(5)]

    async def scenario() -> None:
        first = asyncio.ensure_future(reranker.arerank("first", docs))
        await asyncio.sleep(0.005)
        second = asyncio.ensure_future(reranker.arerank("second", docs))  # waits for room
        await asyncio.sleep(0.005)
        second.cancel()
        third = await asyncio.wait_for(reranker.arerank("third", docs), 5)
        assert len(third) == 5 and len(await first) == 5
        with pytest.raises(asyncio.CancelledError):
            await second

    asyncio.run(scenario())


def test_the_llamaindex_event_model_name_is_the_same_on_the_first_call(tiny_ce_path: Path) -> None:
    from typing import Any

    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from llamaindex_rerank import RerankPostprocessor

    names: list[str] = []

    class Recorder(BaseEventHandler):
        def handle(self, event: Any, **kwargs: Any) -> None:
            if event.class_name() == "ReRankStartEvent":
                names.append(event.model_name)

    recorder = Recorder()
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        postprocessor = RerankPostprocessor.from_cross_encoder(str(tiny_ce_path), device="cpu")
        for _ in range(2):
            nodes = [NodeWithScore(node=TextNode(text=t), score=0.5) for t in ("a text", "another")]
            postprocessor.postprocess_nodes(nodes, query_bundle=QueryBundle("query"))
    finally:
        root.event_handlers.remove(recorder)
    assert len(names) == 2 and names[0] == names[1]  # before: ...activation=auto, then ...activation=sigmoid


@pytest.mark.parametrize("how", ["keep_end", "keep_start"])
def test_cut_queries_fit_the_real_tokenizer_at_every_length(tiny_ce_path: Path, how: str) -> None:
    from rerank_core.chunking import plan

    limit = CrossEncoderBackend(tiny_ce_path, max_length=48, device="cpu").pair_limit()
    policy = LongTextPolicy(long_query=how)  # type: ignore[arg-type]
    room = limit.max_length - limit.special_tokens
    words = [
        "tokenization",
        "of",
        "unbelievably",
        "hyphenated-words,",
        "numbers",
        "12345",
        "and",
        "émigré",
        "names",
    ]
    for n in range(1, 80):
        query = " ".join(words[i % len(words)] for i in range(n))
        planned = plan(query, ["a candidate text"], limit, policy)
        tokens = len(limit.tokenizer.offsets([planned.query])[0])
        assert room - tokens >= 16  # the text keeps at least 16 tokens of the pair
        full = len(limit.tokenizer.offsets([query])[0])
        assert planned.query_truncated == (room - full < 16)
        if planned.query_truncated:
            assert query.endswith(planned.query) if how == "keep_end" else query.startswith(planned.query)
        else:
            assert planned.query == query

"""RerankCompressor on its own: mapping, copies, options, bad input, callbacks, the async path."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest
from fakes import FakeBackend, NativeAsyncBackend
from langchain_core.documents import BaseDocumentCompressor, Document
from lc_helpers import Recorder

from langchain_rerank import RAW_SCORE_KEY, RELEVANCE_SCORE_KEY, RERANK_EVENT, RerankCompressor
from rerank_core import ConfigurationError, InvalidInputError, NonRetryableBackendError, Reranker
from rerank_core.backends import CrossEncoderBackend

SCORES = {"alpha": 1.0, "beta": 4.0, "gamma": -2.0, "delta": 3.0, "epsilon": 0.5}


def docs() -> list[Document]:
    return [
        Document(page_content=text, metadata={"pos": i, "nested": {"k": [i]}}, id=f"id-{text}")
        for i, text in enumerate(SCORES)
    ]


def test_is_a_langchain_document_compressor() -> None:
    assert issubclass(RerankCompressor, BaseDocumentCompressor)
    assert BaseDocumentCompressor in RerankCompressor.__mro__
    compressor = RerankCompressor(FakeBackend(SCORES))
    assert isinstance(compressor, BaseDocumentCompressor)
    assert isinstance(compressor.reranker, Reranker)


def test_returns_copies_best_first_with_scores_and_ids_and_never_mutates_input() -> None:
    given = docs()
    before = copy.deepcopy(given)
    out = RerankCompressor(FakeBackend(SCORES), top_n=3).compress_documents(given, "q")
    assert [d.page_content for d in out] == ["beta", "delta", "alpha"]
    assert [d.id for d in out] == ["id-beta", "id-delta", "id-alpha"]
    for d in out:
        original = next(g for g in given if g.id == d.id)
        assert d is not original and d.metadata is not original.metadata
        assert d.metadata == {
            **original.metadata,
            RELEVANCE_SCORE_KEY: SCORES[d.page_content],
            RAW_SCORE_KEY: SCORES[d.page_content],
        }
    assert given == before  # deep equality: contents, metadata, ids untouched
    assert all(set(g.metadata) == {"pos", "nested"} for g in given)


def test_relevance_and_raw_scores_differ_under_normalization() -> None:
    out = RerankCompressor(FakeBackend(SCORES), normalization="sigmoid").compress_documents(docs(), "q")
    assert len(out) == 5  # no top_n: every document, reordered
    for d in out:
        raw = SCORES[d.page_content]
        assert d.metadata[RAW_SCORE_KEY] == raw
        assert d.metadata[RELEVANCE_SCORE_KEY] == pytest.approx(1 / (1 + 2.718281828459045 ** (-raw)))


def test_threshold_compares_the_relevance_score() -> None:
    out = RerankCompressor(FakeBackend(SCORES), score_threshold=1.0).compress_documents(docs(), "q")
    assert [d.page_content for d in out] == ["beta", "delta", "alpha"]


def test_a_given_reranker_sets_the_policy_and_top_n_overrides_it_per_call() -> None:
    reranker = Reranker(FakeBackend(SCORES), top_n=2, score_threshold=0.0)
    inherit = RerankCompressor(reranker)
    assert (inherit.top_n, inherit.score_threshold) == (2, 0.0)
    assert [d.page_content for d in inherit.compress_documents(docs(), "q")] == ["beta", "delta"]
    override = RerankCompressor(reranker, top_n=None, score_threshold=None)
    assert len(override.compress_documents(docs(), "q")) == 5
    assert reranker.top_n == 2  # the shared Reranker is not changed
    inherit.top_n = 1  # a field set later applies to the next call
    assert [d.page_content for d in inherit.compress_documents(docs(), "q")] == ["beta"]


def test_documents_with_an_empty_list_and_a_generator() -> None:
    compressor = RerankCompressor(FakeBackend(SCORES), top_n=2)
    assert list(compressor.compress_documents([], "q")) == []
    assert [d.page_content for d in compressor.compress_documents(iter(docs()), "q")] == ["beta", "delta"]


def test_long_texts_report_their_window_and_truncation() -> None:
    long_text = " ".join(f"w{i}" for i in range(40))
    backend = FakeBackend(lambda q, t: float(len(t)), max_length=16)
    windowed = RerankCompressor(backend).compress_documents([Document(page_content=long_text)], "q")
    window = windowed[0].metadata["rerank_window"]
    assert window["count"] > 1 and 0 <= window["start"] < window["end"] <= len(long_text)
    truncated = RerankCompressor(backend, long_text="truncate").compress_documents(
        [Document(page_content=long_text)], "q"
    )
    assert truncated[0].metadata["rerank_truncated"] is True
    assert truncated[0].page_content == long_text  # the document is never cut


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"top_n": 0}, "top_n"),
        ({"top_n": -3}, "top_n"),
        ({"top_n": "3"}, "top_n"),
        ({"score_threshold": float("nan")}, "score_threshold"),
        ({"normalization": "softmax-ish"}, "normalization"),
        ({"reranker_kwargs": {"batch_size": 4}}, "reranker_kwargs"),
        ({"reranker_kwargs": "window"}, "reranker_kwargs"),
    ],
)
@pytest.mark.filterwarnings("ignore:reranker_kwargs is deprecated:DeprecationWarning")
def test_bad_options_name_the_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RerankCompressor(FakeBackend(SCORES), **kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.argument == argument and argument in str(info.value)


def test_reranker_argument_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="reranker") as info:
        RerankCompressor("cross-encoder/ms-marco-MiniLM-L6-v2")  # type: ignore[arg-type]
    assert info.value.argument == "reranker" and "from_cross_encoder" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        RerankCompressor(Reranker(FakeBackend()), normalization="sigmoid")
    assert info.value.argument == "normalization"


@pytest.mark.parametrize(
    ("documents", "query", "argument"),
    [
        (docs(), 42, "query"),
        (docs(), "   ", "query"),
        (docs(), None, "query"),
        ("alpha", "q", "documents"),
        (None, "q", "documents"),
        ([*docs(), "plain string"], "q", "documents[5]"),
        ([{"page_content": "x"}], "q", "documents[0]"),
    ],
)
def test_bad_input_names_the_argument_sync_and_async(documents: object, query: object, argument: str) -> None:
    compressor = RerankCompressor(FakeBackend(SCORES))
    with pytest.raises(InvalidInputError) as info:
        compressor.compress_documents(documents, query)  # type: ignore[arg-type]
    assert info.value.argument == argument and argument in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        asyncio.run(compressor.acompress_documents(documents, query))  # type: ignore[arg-type]
    assert info.value.argument == argument


def test_per_call_top_n_set_to_zero_later_is_refused_by_name() -> None:
    compressor = RerankCompressor(FakeBackend(SCORES))
    compressor.top_n = 0
    with pytest.raises(InvalidInputError, match="top_n"):
        compressor.compress_documents(docs(), "q")


def test_callbacks_see_a_rerank_step_with_backend_counts_and_timing() -> None:
    recorder = Recorder()
    out = RerankCompressor(FakeBackend(SCORES, name="tiny"), top_n=2).compress_documents(
        docs(), "q", callbacks=[recorder]
    )
    kinds = [k for k, _ in recorder.events]
    assert kinds == ["retriever_start", f"custom:{RERANK_EVENT}", "retriever_end"]
    assert recorder.named("retriever_start") == ["RerankCompressor"]
    assert recorder.metadata[0]["rerank_backend"] == "fake:tiny"
    assert recorder.metadata[0]["rerank_top_n"] == 2
    event = recorder.named(f"custom:{RERANK_EVENT}")[0]
    assert event["backend"] == "fake:tiny"
    assert (event["candidates"], event["returned"], event["top_n"]) == (5, 2, 2)
    assert event["seconds"] >= 0 and event["usage"]["pairs_scored"] == 5
    assert recorder.named("retriever_end")[0] == out


async def test_async_callbacks_see_the_same_step() -> None:
    recorder = Recorder()
    out = await RerankCompressor(FakeBackend(SCORES), top_n=2).acompress_documents(
        docs(), "q", callbacks=[recorder]
    )
    assert [k for k, _ in recorder.events] == ["retriever_start", f"custom:{RERANK_EVENT}", "retriever_end"]
    assert recorder.named("retriever_end")[0] == out


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_errors_propagate_through_the_callbacks(mode: str) -> None:
    recorder = Recorder()
    compressor = RerankCompressor(FakeBackend(lambda q, t: float("nan")))
    with pytest.raises(NonRetryableBackendError):
        if mode == "sync":
            compressor.compress_documents(docs(), "q", callbacks=[recorder])
        else:
            asyncio.run(compressor.acompress_documents(docs(), "q", callbacks=[recorder]))
    assert [k for k, _ in recorder.events] == ["retriever_start", "retriever_error"]
    assert isinstance(recorder.named("retriever_error")[0], NonRetryableBackendError)


async def test_acompress_uses_the_core_async_path_not_a_thread_around_sync() -> None:
    compressor = RerankCompressor(NativeAsyncBackend(SCORES), top_n=2)
    compressor.reranker.rerank = None  # type: ignore[method-assign]  # any sync call would fail
    out = await compressor.acompress_documents(docs(), "q")
    assert [d.page_content for d in out] == ["beta", "delta"]


async def test_concurrent_acompress_calls_each_get_their_own_documents() -> None:
    compressor = RerankCompressor(FakeBackend(), top_n=3)
    batches = [[Document(page_content=f"q{i} text {j}", id=f"{i}-{j}") for j in range(6)] for i in range(20)]
    results = await asyncio.gather(
        *(compressor.acompress_documents(b, f"query {i}") for i, b in enumerate(batches))
    )
    for i, (batch, got) in enumerate(zip(batches, results, strict=True)):
        expected = compressor.compress_documents(batch, f"query {i}")
        assert [d.id for d in got] == [d.id for d in expected]
        assert all(d.id.startswith(f"{i}-") for d in got)


def test_from_cross_encoder_matches_the_core(tiny_ce_path: Path) -> None:
    texts = [f"passage {i} about topic {i % 3}" for i in range(7)]
    compressor = RerankCompressor.from_cross_encoder(tiny_ce_path, top_n=4, device="cpu", batch_size=3)
    assert isinstance(compressor.reranker.backend, CrossEncoderBackend)
    out = compressor.compress_documents([Document(page_content=t) for t in texts], "topic 1")
    expected = Reranker(CrossEncoderBackend(tiny_ce_path, device="cpu"), top_n=4).rerank("topic 1", texts)
    assert [d.page_content for d in out] == [r.text for r in expected]
    assert [d.metadata[RELEVANCE_SCORE_KEY] for d in out] == pytest.approx(
        [r.relevance_score for r in expected], abs=1e-5
    )


def test_as_runnable_reports_missing_keys_by_name() -> None:
    step = RerankCompressor(FakeBackend(SCORES)).as_runnable(query_key="question", documents_key="context")
    assert [d.page_content for d in step.invoke({"question": "q", "context": docs()})][:1] == ["beta"]
    with pytest.raises(InvalidInputError) as info:
        step.invoke({"query": "q", "context": docs()})
    assert info.value.argument == "inputs['question']"
    with pytest.raises(InvalidInputError) as info:
        step.invoke("just a string")
    assert info.value.argument == "inputs"

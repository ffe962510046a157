"""The context-selection stage through LangChain: RerankCompressor(context=...) and ContextCompressor as a
second compressor in a DocumentCompressorPipeline."""

from __future__ import annotations

import copy

import pytest
from fakes import FakeBackend
from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline
from langchain_core.documents import Document
from lc_helpers import Recorder

from langchain_rerank import (
    CONTEXT_EVENT,
    CONTEXT_KEY,
    RELEVANCE_SCORE_KEY,
    RERANK_EVENT,
    ContextCompressor,
    RerankCompressor,
)
from rerank_core import ConfigurationError, ContextPolicy
from rerank_core.calibration import Calibration

TEXT = "the reranker scores each query and passage pair jointly and keeps the best few"
SCORES = {TEXT: 3.0, TEXT + " of them": 2.5, "cats nap in the sun": 1.0, "dogs bark": -1.0}


def docs() -> list[Document]:
    return [
        Document(page_content=t, metadata={"n": i, CONTEXT_KEY: "stale"}, id=f"d{i}")
        for i, t in enumerate(SCORES)
    ]


def test_the_compressor_returns_the_context_in_its_order_with_reasons_in_the_event() -> None:
    given = docs()
    before = copy.deepcopy(given)
    recorder = Recorder()
    compressor = RerankCompressor(
        FakeBackend(SCORES), context=ContextPolicy(dedup_threshold=0.8, order="edges")
    )
    out = compressor.compress_documents(given, "q", callbacks=[recorder])
    assert [d.id for d in out] == ["d0", "d3", "d2"]  # ranks 0, 2 (dogs: 3rd kept), 1 (cats) at the end
    assert [d.metadata[CONTEXT_KEY]["position"] for d in out] == [0, 1, 2]
    first = out[0].metadata[CONTEXT_KEY]
    assert first == {
        "position": 0,
        "rank": 0,
        "index": 0,
        "tokens": 20,
        "chunks": [0],
        "chunk_ids": ["d0"],  # Document.id
        "group": None,
        "tokens_used": first["tokens_used"],
        "token_budget": None,
        "counter": "chars/4",
    }
    assert out[0].metadata[RELEVANCE_SCORE_KEY] == 3.0 and out[0].metadata["n"] == 0
    event = recorder.named(f"custom:{RERANK_EVENT}")[0]
    (dropped,) = event["context"]["dropped"]
    assert (dropped["index"], dropped["reason"], dropped["of"]) == (1, "duplicate", 0)
    assert dropped["id"] == "d1"
    assert given == before  # nothing mutated
    plain = RerankCompressor(FakeBackend(SCORES)).compress_documents(out, "q")
    assert all(CONTEXT_KEY not in d.metadata for d in plain)  # a later pass leaves no stale context


def test_merged_chunks_become_one_document() -> None:
    parts = [
        Document(page_content="part two", metadata={"doc": "A", "position": 2}),
        Document(page_content="part one", metadata={"doc": "A", "position": 1}),
        Document(page_content="other doc", metadata={"doc": "B", "position": 1}),
    ]
    scores = {"part two": 3.0, "part one": 2.0, "other doc": 1.0}
    policy = ContextPolicy(group_by="doc", group_mode="merge", token_budget=100)
    out = RerankCompressor(FakeBackend(scores), context=policy).compress_documents(parts, "q")
    assert [d.page_content for d in out] == ["part one\n\npart two", "other doc"]
    assert out[0].metadata[CONTEXT_KEY]["chunks"] == [1, 0] and out[0].metadata["position"] == 2
    assert parts[0].page_content == "part two"


def test_no_answer_gives_an_empty_context_and_says_why() -> None:
    recorder = Recorder()
    platt = Calibration("platt", "logit", params=(1.0, -1.0))
    compressor = RerankCompressor(
        FakeBackend(SCORES), calibration=platt, no_answer_floor=0.99, context=ContextPolicy(max_items=2)
    )
    assert compressor.compress_documents(docs(), "q", callbacks=[recorder]) == []
    context = recorder.named(f"custom:{RERANK_EVENT}")[0]["context"]
    assert context["kept"] == [] and "below 0.99" in context["no_answer"]


def test_context_compressor_after_the_reranker_in_a_pipeline() -> None:
    recorder = Recorder()
    pipeline = DocumentCompressorPipeline(
        transformers=[
            RerankCompressor(FakeBackend(SCORES), top_n=3),
            ContextCompressor(ContextPolicy(mmr_lambda=0.5, max_items=2)),
        ]
    )
    out = pipeline.compress_documents(docs(), "q", callbacks=[recorder])
    assert [d.id for d in out] == ["d0", "d2"]  # MMR passes over the near-copy of d0
    assert out[0].metadata[RELEVANCE_SCORE_KEY] == 3.0 and out[1].metadata[CONTEXT_KEY]["rank"] == 2
    (event,) = recorder.named(f"custom:{CONTEXT_EVENT}")
    assert [(d["index"], d["id"], d["reason"], d["of"]) for d in event["dropped"]] == [
        (1, "d1", "diversity", 0)
    ]
    assert out[0].metadata[CONTEXT_KEY]["chunk_ids"] == ["d0"]
    assert ContextCompressor({"order": "edges"}).policy == ContextPolicy(order="edges")
    with pytest.raises(ConfigurationError, match="policy"):
        ContextCompressor()


def test_the_compressor_dump_keeps_the_policy_through_reranker_config() -> None:
    from rerank_core.integrations import reranker_config, reranker_from_config

    compressor = RerankCompressor(FakeBackend(SCORES), context=ContextPolicy(token_budget=64))
    config = reranker_config(compressor.reranker)
    assert reranker_from_config(config).options.context == ContextPolicy(token_budget=64)
    assert copy.deepcopy(compressor).reranker.options.context == ContextPolicy(token_budget=64)

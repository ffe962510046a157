"""RerankCompressor with a scoring profile: the rules read each Document's metadata, the relevance score is
the profiled one, and the metadata keeps the score before the profile and the rules that fired."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

import pytest
from fakes import FakeBackend, NativeAsyncBackend
from langchain_core.documents import Document
from lc_helpers import Recorder

from langchain_rerank import RELEVANCE_SCORE_KEY, RERANK_EVENT, RerankCompressor, select_tools
from rerank_core import ConfigurationError, InvalidInputError, Reranker, ScoringProfile
from rerank_core.integrations import PRE_PROFILE_SCORE_KEY, PROFILE_EFFECTS_KEY

NOW = datetime(2026, 1, 31, tzinfo=timezone.utc)  # noqa: UP017
SCORES = {"alpha": 3.0, "beta": 2.0, "gamma": 1.0}
PROFILE = {
    "name": "kb",
    "rules": [
        {"type": "match", "field": "category", "op": "eq", "value": "docs", "boost": 2.0, "mode": "add"},
        {"type": "freshness", "field": "published", "half_life": "30d", "name": "fresh"},
    ],
}


def profile() -> ScoringProfile:
    return ScoringProfile.from_dict(PROFILE, clock=lambda: NOW)


def documents() -> list[Document]:
    return [
        Document(page_content="alpha", id="a", metadata={"category": "blog", "published": "2025-12-02"}),
        Document(page_content="beta", id="b", metadata={"category": "docs", "published": "2026-01-31"}),
        Document(page_content="gamma", id="c", metadata={}),
    ]


def test_the_profile_reorders_and_is_reported_in_metadata() -> None:
    compressor = RerankCompressor(FakeBackend(SCORES), profile=profile())
    given = documents()
    before = copy.deepcopy(given)
    out = compressor.compress_documents(given, "q")
    # beta: 2 * 1 (published now) + 2 (docs) = 4; gamma: 1 (no metadata); alpha: 3 * 0.25 (60 days old)
    assert [d.id for d in out] == ["b", "c", "a"]
    beta, gamma, alpha = out
    assert beta.metadata[RELEVANCE_SCORE_KEY] == 4.0 and beta.metadata[PRE_PROFILE_SCORE_KEY] == 2.0
    assert [e["rule"] for e in beta.metadata[PROFILE_EFFECTS_KEY]] == ["match:category", "fresh"]
    assert alpha.metadata[RELEVANCE_SCORE_KEY] == pytest.approx(0.75)
    assert alpha.metadata[PROFILE_EFFECTS_KEY] == [
        {"rule": "fresh", "mode": "multiply", "amount": 0.25, "value": "2025-12-02", "defaulted": False}
    ]
    assert gamma.metadata[PROFILE_EFFECTS_KEY] == [] and gamma.metadata[PRE_PROFILE_SCORE_KEY] == 1.0
    json.dumps([d.metadata for d in out])  # every added key is JSON-compatible
    assert given == before  # the caller's Documents are untouched


async def test_async_path_and_the_trace_event_name_the_profile() -> None:
    compressor = RerankCompressor(NativeAsyncBackend(SCORES), profile=profile(), top_n=1)
    recorder = Recorder()
    out = await compressor.acompress_documents(documents(), "q", callbacks=[recorder])
    assert [d.id for d in out] == ["b"]
    (event,) = recorder.named(f"custom:{RERANK_EVENT}")
    assert event["profile"] == "kb"
    assert recorder.metadata[0]["rerank_profile"] == "kb"


def test_a_ready_reranker_carries_its_profile_and_clashes_are_refused() -> None:
    reranker = Reranker(FakeBackend(SCORES), profile=profile())
    assert RerankCompressor(reranker).compress_documents(documents(), "q")[0].id == "b"
    with pytest.raises(ConfigurationError) as info:
        RerankCompressor(reranker, profile=PROFILE)
    assert info.value.argument == "profile"
    with pytest.raises(ConfigurationError, match=r"rules\[0\]\.type"):
        RerankCompressor(FakeBackend(SCORES), profile={"rules": [{"type": "boost"}]})


def test_metadata_a_rule_cannot_read_is_an_error_naming_the_document() -> None:
    compressor = RerankCompressor(FakeBackend(SCORES), profile=profile())
    bad = [*documents(), Document(page_content="alpha", metadata={"published": "someday"})]
    with pytest.raises(InvalidInputError, match="'fresh'") as info:
        compressor.compress_documents(bad, "q")
    assert info.value.argument == "candidates[3].metadata['published']"


def test_tool_selection_ignores_the_profile() -> None:
    from langchain_core.tools import tool

    @tool
    def alpha(x: str) -> str:
        """alpha"""
        return x

    reranker = Reranker(FakeBackend(lambda q, t: -len(t)), profile=profile())
    assert [t.name for t in select_tools("q", [alpha], reranker)] == ["alpha"]
    assert reranker.profile is not None  # the caller's reranker keeps it

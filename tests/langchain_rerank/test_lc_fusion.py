"""RerankCompressor with score fusion: the first-stage score read from Document metadata, passed to the core,
and all three numbers (fused, reranker, retriever) kept in the output metadata. Expected orders are computed
by hand with ``rerank_core.fuse_scores``; the end-to-end tests take the scores from a real vector store."""

from __future__ import annotations

import asyncio
import copy
import math
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeBackend, NativeAsyncBackend
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from lc_helpers import MiniLMEmbeddings, Recorder, corpus_documents

from langchain_rerank import (
    DEFAULT_FIRST_STAGE_SCORE_KEY,
    FIRST_STAGE_SCORE_KEY,
    RAW_SCORE_KEY,
    RELEVANCE_SCORE_KEY,
    RERANK_EVENT,
    RERANK_SCORE_KEY,
    RerankCompressor,
    documents_with_scores,
)
from rerank_core import ConfigurationError, Fusion, InvalidInputError, Reranker, fuse_scores
from rerank_core.backends import CrossEncoderBackend

SCORES = {"alpha": 1.0, "beta": 4.0, "gamma": -2.0, "delta": 3.0, "epsilon": 0.5}
TEXTS = list(SCORES)
RAW = [SCORES[t] for t in TEXTS]
FIRST = [0.9, 0.1, 0.8, 0.2, 0.5]  # the retriever disagrees with the reranker
FUSIONS = [Fusion("zscore", 0.5), Fusion("minmax", 0.3), Fusion("rrf", 0.5, rrf_k=0)]


def docs(first: list[object] | None = FIRST, key: str = "score") -> list[Document]:
    out = []
    for i, text in enumerate(TEXTS):
        metadata: dict[str, object] = {"pos": i, "nested": {"k": [i]}}
        if first is not None and first[i] is not None:
            metadata[key] = first[i]
        out.append(Document(page_content=text, metadata=metadata, id=f"id-{text}"))
    return out


def by_hand(first: list[float], fusion: Fusion, raw: list[float] = RAW) -> tuple[list[int], np.ndarray]:
    """The fused order (ties keep input order) and the fused scores, from the core's formula."""
    fused = fuse_scores(raw, first, fusion)
    return [int(i) for i in np.argsort(-fused, kind="stable")], fused


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# -- fusion with the scores in metadata ---------------------------------------------------------------------


@pytest.mark.parametrize("fusion", FUSIONS, ids=lambda f: f.describe())
def test_fused_order_and_all_three_numbers_match_the_core_formula(fusion: Fusion) -> None:
    given = docs()
    before = copy.deepcopy(given)
    out = RerankCompressor(FakeBackend(SCORES), fusion=fusion).compress_documents(given, "q")
    order, fused = by_hand(FIRST, fusion)
    assert [d.page_content for d in out] == [TEXTS[i] for i in order]
    assert order != sorted(range(5), key=lambda i: -RAW[i])  # the fusion changed the reranker's order
    for d, i in zip(out, order, strict=True):
        assert d.id == f"id-{TEXTS[i]}"
        assert d.metadata == {
            **given[i].metadata,  # the retriever's "score" stays as it was
            RELEVANCE_SCORE_KEY: pytest.approx(fused[i]),
            RAW_SCORE_KEY: RAW[i],
            RERANK_SCORE_KEY: RAW[i],  # normalization "none": the calibrated score is the raw one
            FIRST_STAGE_SCORE_KEY: FIRST[i],
        }
    assert given == before  # the caller's Documents and metadata are untouched
    assert all(RERANK_SCORE_KEY not in g.metadata for g in given)


def test_rerank_score_is_the_calibrated_score_and_the_threshold_compares_the_fused_one() -> None:
    fusion = Fusion("zscore", 0.6)
    compressor = RerankCompressor(
        FakeBackend(SCORES), normalization="sigmoid", fusion=fusion, score_threshold=0.0
    )
    out = compressor.compress_documents(docs(), "q")
    order, fused = by_hand(FIRST, fusion)  # the core fuses the back end's raw scores
    kept = [i for i in order if fused[i] >= 0.0]
    assert 0 < len(kept) < 5 and [d.page_content for d in out] == [TEXTS[i] for i in kept]
    for d, i in zip(out, kept, strict=True):
        assert d.metadata[RELEVANCE_SCORE_KEY] == pytest.approx(fused[i])
        assert d.metadata[RERANK_SCORE_KEY] == pytest.approx(sigmoid(RAW[i]))
        assert (d.metadata[RAW_SCORE_KEY], d.metadata[FIRST_STAGE_SCORE_KEY]) == (RAW[i], FIRST[i])


def test_a_reranker_with_its_own_fusion_and_a_custom_metadata_key() -> None:
    fusion = Fusion("minmax", 0.5)
    compressor = RerankCompressor(
        Reranker(FakeBackend(SCORES), fusion=fusion, top_n=2), first_stage_score_key="bm25"
    )
    assert compressor.first_stage_score_key == "bm25" and DEFAULT_FIRST_STAGE_SCORE_KEY == "score"
    first = [3, 0, 12, 1, 5]  # integer BM25-like scores are numbers too
    out = compressor.compress_documents(docs(first, key="bm25"), "q")
    order, _ = by_hand([float(v) for v in first], fusion)
    assert [d.page_content for d in out] == [TEXTS[i] for i in order[:2]]
    assert [d.metadata[FIRST_STAGE_SCORE_KEY] for d in out] == [first[i] for i in order[:2]]
    with pytest.raises(InvalidInputError) as info:
        compressor.compress_documents(docs(), "q")  # scores under "score", not "bm25"
    assert info.value.argument == "documents[0].metadata['bm25']"


def test_the_key_is_an_adapter_option_of_the_constructors() -> None:
    compressor = RerankCompressor.from_cross_encoder(
        "/no/such/model", first_stage_score_key="retriever_score", fusion="rrf", device="cpu"
    )
    assert compressor.first_stage_score_key == "retriever_score"
    assert compressor.reranker.fusion == Fusion("rrf", 0.5)
    assert isinstance(compressor.reranker.backend, CrossEncoderBackend)  # not passed to the back end


def test_rrf_without_scores_uses_the_input_order_and_the_event_says_so() -> None:
    fusion = Fusion("rrf", 0.5, rrf_k=0)
    recorder = Recorder()
    out = RerankCompressor(FakeBackend(SCORES), fusion=fusion).compress_documents(
        docs(None), "q", callbacks=[recorder]
    )
    order, fused = by_hand([-float(i) for i in range(5)], fusion)  # earlier is better
    assert [d.page_content for d in out] == [TEXTS[i] for i in order]
    assert [d.metadata[RELEVANCE_SCORE_KEY] for d in out] == pytest.approx([fused[i] for i in order])
    assert all(FIRST_STAGE_SCORE_KEY not in d.metadata and RERANK_SCORE_KEY in d.metadata for d in out)
    event = recorder.named(f"custom:{RERANK_EVENT}")[0]
    assert (event["fusion"], event["first_stage"]) == ("rrf:0.5 (k=0)", "input order")
    assert recorder.metadata[0]["rerank_fusion"] == "rrf:0.5 (k=0)"


def test_the_event_names_where_the_scores_came_from() -> None:
    recorder = Recorder()
    RerankCompressor(FakeBackend(SCORES), fusion="zscore").compress_documents(
        docs(), "q", callbacks=[recorder]
    )
    RerankCompressor(FakeBackend(SCORES)).compress_documents(docs(None), "q", callbacks=[recorder])
    events = recorder.named(f"custom:{RERANK_EVENT}")
    assert [(e["fusion"], e["first_stage"]) for e in events] == [
        ("zscore:0.5", "metadata['score']"),
        (None, None),
    ]


@pytest.mark.parametrize(
    ("first", "fusion", "argument", "message"),
    [
        (None, "zscore:0.6", "documents[0].metadata['score']", "is missing: fusion 'zscore:0.6' needs"),
        ([0.9, 0.1, None, 0.2, 0.5], "minmax", "documents[2].metadata['score']", "is missing"),
        (
            [0.9, 0.1, None, 0.2, 0.5],
            "rrf",
            "documents[2].metadata['score']",
            "only when no candidate has one",
        ),
        ([0.9, "high", 0.8, 0.2, 0.5], "zscore", "documents[1].metadata['score']", "got 'high'"),
        ([0.9, 0.1, 0.8, float("nan"), 0.5], "rrf", "documents[3].metadata['score']", "got nan"),
    ],
)
def test_missing_or_bad_scores_name_the_document_sync_and_async(
    first: list[object] | None, fusion: str, argument: str, message: str
) -> None:
    compressor = RerankCompressor(FakeBackend(SCORES), fusion=fusion)
    recorder = Recorder()
    with pytest.raises(InvalidInputError) as info:
        compressor.compress_documents(docs(first), "q", callbacks=[recorder])
    assert info.value.argument == argument and message in str(info.value)
    assert "first_stage_score_key" in str(info.value)
    assert recorder.named("retriever_error") == [info.value]  # reported to the callbacks, then raised
    with pytest.raises(InvalidInputError) as ainfo:
        asyncio.run(compressor.acompress_documents(docs(first), "q"))
    assert str(ainfo.value) == str(info.value)


def test_without_fusion_scores_are_passed_when_all_present_and_never_an_error() -> None:
    recorder = Recorder()
    compressor = RerankCompressor(FakeBackend(SCORES))
    complete = compressor.compress_documents(docs(), "q", callbacks=[recorder])
    partial = compressor.compress_documents(docs([0.9, None, "x", 0.2, 0.5]), "q", callbacks=[recorder])
    for out in (complete, partial):
        assert [d.page_content for d in out] == [
            "beta",
            "delta",
            "alpha",
            "epsilon",
            "gamma",
        ]  # reranker only
        assert all(
            RERANK_SCORE_KEY not in d.metadata and FIRST_STAGE_SCORE_KEY not in d.metadata for d in out
        )
    assert [e["first_stage"] for e in recorder.named(f"custom:{RERANK_EVENT}")] == ["metadata['score']", None]


def test_fusion_clashes_with_a_ready_reranker() -> None:
    with pytest.raises(ConfigurationError) as info:
        RerankCompressor(Reranker(FakeBackend(SCORES)), fusion="zscore:0.6")
    assert info.value.argument == "fusion" and "fusion" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        RerankCompressor(FakeBackend(SCORES), fusion="sum")
    assert info.value.argument == "fusion.method"


@pytest.mark.parametrize("fusion", [*FUSIONS, None], ids=lambda f: "none" if f is None else f.describe())
def test_async_path_gives_the_same_documents(fusion: Fusion | None) -> None:
    sync = RerankCompressor(FakeBackend(SCORES), fusion=fusion, top_n=4).compress_documents(docs(), "q")
    native = RerankCompressor(NativeAsyncBackend(SCORES), fusion=fusion, top_n=4)
    assert asyncio.run(native.acompress_documents(docs(), "q")) == sync
    rrf_sync = RerankCompressor(FakeBackend(SCORES), fusion="rrf").compress_documents(docs(None), "q")
    rrf_async = asyncio.run(
        RerankCompressor(NativeAsyncBackend(SCORES), fusion="rrf").acompress_documents(docs(None), "q")
    )
    assert rrf_async == rrf_sync


def test_empty_documents_need_no_scores() -> None:
    assert RerankCompressor(FakeBackend(SCORES), fusion="zscore").compress_documents([], "q") == []


def test_documents_with_scores_copies_the_pairs_into_metadata() -> None:
    given = docs(None)
    before = copy.deepcopy(given)
    out = documents_with_scores(zip(given, FIRST, strict=True))
    assert [d.metadata["score"] for d in out] == FIRST and [d.id for d in out] == [g.id for g in given]
    assert given == before
    assert documents_with_scores([(given[0], 2.0)], key="bm25")[0].metadata["bm25"] == 2.0


# -- end to end: scores from a real vector store ------------------------------------------------------------

K = 6
TOP_N = 3


@pytest.fixture(scope="module")
def store() -> InMemoryVectorStore:
    vs = InMemoryVectorStore(MiniLMEmbeddings())
    vs.add_documents(corpus_documents())
    return vs


@pytest.fixture(scope="module")
def backend(tiny_ce_path: Path) -> CrossEncoderBackend:
    return CrossEncoderBackend(tiny_ce_path, device="cpu")


def reranker_alone(backend: CrossEncoderBackend, query: str, retrieved: list[Document]) -> list[str]:
    plain = Reranker(backend, top_n=TOP_N).rerank(query, [d.page_content for d in retrieved])
    return [retrieved[r.index].id for r in plain]


def expected_ids(
    backend: CrossEncoderBackend, query: str, retrieved: list[Document], first: list[float], fusion: Fusion
) -> list[str]:
    """The fused top ``TOP_N`` computed by hand: the reranker's raw scores (from the core, no fusion) and the
    vector store's scores through ``fuse_scores``."""
    plain = Reranker(backend).rerank(query, [d.page_content for d in retrieved])
    raw = [0.0] * len(retrieved)
    for r in plain:
        raw[r.index] = r.raw_score
    order, _ = by_hand(first, fusion, raw)
    return [retrieved[i].id for i in order[:TOP_N]]


@pytest.mark.slow
@pytest.mark.parametrize("fusion", [Fusion("zscore", 0.3), Fusion("rrf", 0.5)], ids=lambda f: f.describe())
def test_similarity_search_with_score_feeds_the_fusion(
    store: InMemoryVectorStore, backend: CrossEncoderBackend, fusion: Fusion
) -> None:
    from adapter_helpers import QUERIES

    compressor = RerankCompressor(backend, fusion=fusion, top_n=TOP_N)
    changed = 0
    for query in QUERIES:
        pairs = store.similarity_search_with_score(query, k=K)
        retrieved = documents_with_scores(pairs)
        first = [score for _, score in pairs]
        out = compressor.compress_documents(retrieved, query)
        assert [d.id for d in out] == expected_ids(backend, query, retrieved, first, fusion)
        assert [d.metadata[FIRST_STAGE_SCORE_KEY] for d in out] == [d.metadata["score"] for d in out]
        assert all(RERANK_SCORE_KEY in d.metadata for d in out)
        assert all("score" not in doc.metadata for doc, _ in pairs)  # the store's Documents were copied
        changed += [d.id for d in out] != reranker_alone(backend, query, retrieved)
    assert changed  # the retriever's scores did move documents


class ScoredRetriever(BaseRetriever):
    """A small custom retriever that puts the vector store's similarity in ``metadata["similarity"]``."""

    store: InMemoryVectorStore
    k: int = K

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return documents_with_scores(
            self.store.similarity_search_with_score(query, k=self.k), key="similarity"
        )


@pytest.mark.slow
def test_contextual_compression_over_a_scoring_retriever_sync_and_async(
    store: InMemoryVectorStore, backend: CrossEncoderBackend
) -> None:
    from adapter_helpers import QUERIES
    from langchain_classic.retrievers import ContextualCompressionRetriever

    fusion = Fusion("minmax", 0.5)
    base = ScoredRetriever(store=store)
    compressor = RerankCompressor(backend, fusion=fusion, top_n=TOP_N, first_stage_score_key="similarity")
    retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base)
    changed = 0
    for query in QUERIES:
        retrieved = base.invoke(query)
        first = [d.metadata["similarity"] for d in retrieved]
        want = expected_ids(backend, query, retrieved, first, fusion)
        got = retriever.invoke(query)
        assert [d.id for d in got] == want
        assert [d.id for d in asyncio.run(retriever.ainvoke(query))] == want
        for d in got:
            assert d.metadata[FIRST_STAGE_SCORE_KEY] == d.metadata["similarity"]
            assert d.metadata[RERANK_SCORE_KEY] == d.metadata[RAW_SCORE_KEY]  # normalization "none"
        changed += want != reranker_alone(backend, query, retrieved)
    assert changed

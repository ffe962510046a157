"""RerankerOptions: every Reranker option in one value, each checked once, reachable the same way from the
Reranker's keywords, ``options=``, both adapters and the shared constructors; and the deprecated spellings
that still work for one release."""

from __future__ import annotations

import importlib
import inspect
import sys
import warnings

import pytest
from fakes import FakeBackend

from rerank_core import (
    ConfigurationError,
    Fusion,
    InvalidInputError,
    JudgeStage,
    LongTextPolicy,
    Reranker,
    RerankerOptions,
    ScoreCache,
)
from rerank_core.coalescing import Coalescing
from rerank_core.eval.hybrid import hybrid_fusion_config
from rerank_core.fusion import parse_spec
from rerank_core.integrations import AdapterConstructors, resolve_reranker


def test_keywords_and_options_build_the_same_reranker() -> None:
    backend = FakeBackend({"a": 1.0, "b": 3.0, "c": 2.0})
    by_keywords = Reranker(backend, top_n=2, fusion="rrf:0.4", window_size=8, aggregate="mean")
    by_options = Reranker(
        backend,
        RerankerOptions(
            top_n=2, fusion=Fusion("rrf", 0.4), long_text=LongTextPolicy(window_size=8, aggregate="mean")
        ),
    )
    assert by_keywords.options == by_options.options
    assert by_keywords.rerank("q", ["a", "b", "c"]).indices == by_options.rerank("q", ["a", "b", "c"]).indices
    # keywords given next to options override them
    assert Reranker(backend, by_options.options, top_n=1).top_n == 1 and by_options.top_n == 2


def test_options_normalise_their_values_once() -> None:
    options = RerankerOptions(cache=True, coalesce=True, long_text="truncate", fusion="minmax:0.3", top_n=3)
    assert isinstance(options.cache, ScoreCache) and isinstance(options.coalesce, Coalescing)
    assert options.long_text == LongTextPolicy("truncate") and options.fusion == Fusion("minmax", 0.3)
    assert options.replace(top_n=None).top_n is None and options.top_n == 3  # frozen: replace copies
    assert RerankerOptions(cache=10).cache.maxsize == 10  # type: ignore[union-attr]
    assert "top_n=3" in options.describe() and "minmax:0.3" in options.describe()


@pytest.mark.parametrize(
    ("values", "argument"),
    [
        ({"top_n": 0}, "top_n"),
        ({"top_n": True}, "top_n"),
        ({"score_threshold": float("inf")}, "score_threshold"),
        ({"normalization": "softmax"}, "normalization"),
        ({"temperature": 0}, "temperature"),
        ({"long_text": "chop"}, "long_text"),
        ({"long_text": 3}, "long_text"),
        ({"cache": "big"}, "cache"),
        ({"fusion": 0.5}, "fusion"),
        ({"fusion": "sum"}, "fusion.method"),
        ({"fail_open": "yes"}, "fail_open"),
        ({"profile": 3}, "profile"),
        ({"coalesce": "on"}, "coalesce"),
        ({"judge": FakeBackend()}, "judge"),
    ],
)
def test_each_bad_option_is_a_configuration_error_naming_it(values: dict, argument: str) -> None:
    for build in (lambda: RerankerOptions(**values), lambda: Reranker(FakeBackend(), **values)):
        with pytest.raises(ConfigurationError) as info:
            build()
        assert info.value.argument == argument


def test_per_call_values_are_input_errors_and_settings_configuration_errors() -> None:
    reranker = Reranker(FakeBackend())
    with pytest.raises(InvalidInputError) as call:
        reranker.rerank("q", ["a"], top_n=0)
    with pytest.raises(ConfigurationError) as setting:
        Reranker(FakeBackend(), top_n=0)
    assert call.value.argument == setting.value.argument == "top_n"
    assert str(call.value).split(": ", 1)[1] == str(setting.value).split(": ", 1)[1]  # one message, one check


def test_unknown_options_are_refused_with_the_known_ones_listed() -> None:
    with pytest.raises(TypeError, match="unexpected keyword") as typo:  # as for any Python signature
        Reranker(FakeBackend(), topn=3)
    assert "top_n" in str(typo.value)
    with pytest.raises(ConfigurationError, match="unknown Reranker option") as info:
        Reranker(FakeBackend(), {"topn": 3})  # a mapping of options (a configuration file) names it
    assert info.value.argument == "options" and "top_n" in str(info.value)
    params = inspect.signature(Reranker).parameters
    assert list(params)[:2] == ["backend", "options"] and {"top_n", "fusion", "judge", "window_size"} <= set(
        params
    )
    assert {"top_n", "judge", "coalesce"} <= set(dir(Reranker(FakeBackend())))
    with pytest.raises(ConfigurationError) as bad:
        RerankerOptions.build(["top_n"])  # type: ignore[arg-type]
    assert bad.value.argument == "options"


def test_setting_an_option_on_a_reranker_replaces_it_checked() -> None:
    reranker = Reranker(FakeBackend({"a": 1.0, "b": 2.0}))
    reranker.top_n = 1
    assert reranker.options.top_n == 1 and reranker.rerank("q", ["a", "b"]).indices == [1]
    with pytest.raises(ConfigurationError):
        reranker.top_n = 0
    assert reranker.top_n == 1


class Model:
    def __init__(self, **fields: object) -> None:
        self.fields = fields


class Adapter(AdapterConstructors, Model):
    adapter_options = ("mode",)


def test_every_option_reaches_the_reranker_an_adapter_builds() -> None:
    judge = JudgeStage(FakeBackend(name="judge"), top_k=2)
    policy = LongTextPolicy("truncate")
    adapter = Adapter(FakeBackend(), judge=judge, coalesce=True, long_text=policy, fail_open=True, mode="m")
    options = adapter.fields["reranker"].options
    assert options.judge is judge and options.coalesce == Coalescing() and options.long_text is policy
    assert options.fail_open is True and adapter.fields["mode"] == "m"
    via_options = Adapter(FakeBackend(), options=RerankerOptions(judge=judge, coalesce=True), top_n=2)
    assert via_options.fields["reranker"].options.judge is judge and via_options.fields["top_n"] == 2
    made = Adapter.from_cross_encoder("/no/such/model", judge=judge, coalesce=True, batch_size=2, mode="x")
    assert made.fields["reranker"].options.judge is judge and made.fields["mode"] == "x"
    assert made.fields["reranker"].backend.batch_size == 2


def test_reranker_kwargs_still_works_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="reranker_kwargs is deprecated"):
        reranker, _, _ = resolve_reranker(FakeBackend(), reranker_kwargs={"cache": True, "window_size": 9})
    assert reranker.cache is not None and reranker.long_text.window_size == 9


def test_one_parser_reads_every_fusion_spec() -> None:
    assert parse_spec("ZScore:0.3") == ("zscore", 0.3) and parse_spec("rrf") == ("rrf", None)
    assert Fusion.parse("zscore:0.3") == Fusion("zscore", 0.3)
    assert hybrid_fusion_config("zscore:0.3").weights == (0.7, 0.3)  # W: the dense share
    assert parse_spec("rrf:") == ("rrf", 0.5) and hybrid_fusion_config("rrf:").weights == (0.5, 0.5)
    assert hybrid_fusion_config("rrf").weights is None and Fusion.parse("zscore:") == Fusion("zscore", 0.5)
    with pytest.raises(ConfigurationError) as empty:
        Fusion.parse("  ")
    assert empty.value.argument == "fusion.method"
    for spec in ("zscore:x", "zscore:1.5", "borda:0.1"):
        with pytest.raises(ConfigurationError) as reranker_side:
            Fusion.parse(spec)
        with pytest.raises(ConfigurationError) as hybrid_side:
            hybrid_fusion_config(spec)
        assert (
            reranker_side.value.argument.startswith("fusion")
            and hybrid_side.value.argument == "hybrid_fusion"
        )
        assert str(reranker_side.value).split(": ", 1)[1].split(" got")[0] in str(hybrid_side.value)


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("rerank_core.adapter_support", "rerank_core.integrations", "resolve_reranker"),
        ("rerank_core.tool_selection", "rerank_core.integrations.tool_selection", "select_tools"),
        ("rerank_core.retriever_fusion", "rerank_core.fusion", "fuse_retrieved"),
        ("rerank_core.bench", "rerank_core.eval.speed", "flops_per_pair"),
        ("rerank_core.judge_stage", "rerank_core.judge", "JudgeStage"),
    ],
)
def test_moved_modules_keep_working_with_a_deprecation_warning(old: str, new: str, name: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    if old == "rerank_core.bench":  # `import rerank_core.bench.ceiling` then attribute access
        assert module.ceiling is importlib.import_module("rerank_core.eval.speed.ceiling")


def test_cascade_backend_is_deprecated_for_the_judge_stage() -> None:
    from rerank_core.backends import CascadeBackend

    with pytest.warns(DeprecationWarning, match="JudgeStage"):
        CascadeBackend(FakeBackend(), FakeBackend(name="judge"), top_k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Reranker(FakeBackend(), judge=JudgeStage(FakeBackend(name="judge"), top_k=2))  # the supported way


def test_the_first_stage_rule_is_worded_once_for_the_core_and_the_adapters() -> None:
    from rerank_core.integrations import collect_first_stage_scores

    for fusion in (Fusion("zscore", 0.5), Fusion("rrf", 0.5)):
        with pytest.raises(InvalidInputError) as adapter:
            collect_first_stage_scores([1.0, None], fusion, lambda i: f"docs[{i}].score")
        assert adapter.value.argument == "docs[1].score" and fusion.first_stage_need() in str(adapter.value)
    zscore = Fusion("zscore", 0.5)
    with pytest.raises(InvalidInputError) as core:
        Reranker(FakeBackend(), fusion=zscore).rerank("q", ["a"])
    assert core.value.argument == "first_stage_scores" and str(core.value).endswith(zscore.first_stage_need())
    assert "only 'rrf' can use the input order" in zscore.first_stage_need()

"""The local cross-encoder back end on tiny random models built offline in fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import build_tiny_cross_encoder
from fakes import run_in_threads

from rerank_core import ConfigurationError, MissingDependencyError, Reranker
from rerank_core.backends import CrossEncoderBackend

QUERY = "how do cross-encoders score query document pairs"
TEXTS = [
    "A cross-encoder reads the query and the document together.",
    "short",
    "Bi-encoders embed texts separately; " * 12,
    "Pairs are sorted by length so that batches carry little padding.",
    "",
    "BM25 is a bag-of-words ranking function used by search engines. " * 5,
    "x",
    "Tokenizers split text into word pieces.",
]
PAIRS = [(QUERY, t) for t in TEXTS] + [("another query", t) for t in TEXTS[:5]]


@pytest.fixture(scope="module")
def st_model(tiny_ce_path: Path):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_ce_path), max_length=64)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 7, 32])
def test_scores_equal_crossencoder_predict(tiny_ce_path: Path, st_model, batch_size: int) -> None:
    expected = st_model.predict(PAIRS, batch_size=batch_size, show_progress_bar=False)
    backend = CrossEncoderBackend(tiny_ce_path, max_length=64, batch_size=batch_size, device="cpu")
    got = np.array(backend.score_pairs(PAIRS))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert np.ptp(got) > 0.05  # the tiny model must actually discriminate, or this proves nothing


def test_logit_model_matches_predict_and_reports_logits(tiny_ce_logit_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    expected = CrossEncoder(str(tiny_ce_logit_path)).predict(PAIRS, show_progress_bar=False)
    backend = CrossEncoderBackend(tiny_ce_logit_path)
    np.testing.assert_allclose(backend.score_pairs(PAIRS), expected, atol=1e-5, rtol=0)
    assert backend.score_kind == "logit"
    assert (np.asarray(expected) < 0).any() or (np.asarray(expected) > 1).any()


def test_activation_override(tiny_ce_logit_path: Path) -> None:
    logits = np.array(CrossEncoderBackend(tiny_ce_logit_path).score_pairs(PAIRS))
    probs = np.array(CrossEncoderBackend(tiny_ce_logit_path, activation="sigmoid").score_pairs(PAIRS))
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits)), atol=1e-6)
    assert CrossEncoderBackend(tiny_ce_logit_path, activation="sigmoid").peek_score_kind() == "probability"


def test_order_is_restored_after_length_sorting(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, max_length=64, batch_size=3)
    base = np.array(backend.score_pairs(PAIRS))
    perm = np.random.default_rng(0).permutation(len(PAIRS))
    permuted = np.array(backend.score_pairs([PAIRS[i] for i in perm]))
    np.testing.assert_allclose(permuted, base[perm], atol=1e-5)


def test_reranker_raw_scores_equal_predict_for_texts_that_fit(tiny_ce_path: Path, st_model) -> None:
    short = [t for t in TEXTS if len(t) < 100]
    resp = Reranker(CrossEncoderBackend(tiny_ce_path, max_length=64)).rerank(QUERY, short)
    expected = st_model.predict([(QUERY, t) for t in short], show_progress_bar=False)
    for r in resp:
        assert r.raw_score == pytest.approx(float(expected[r.index]), abs=1e-5)
        assert r.window is None and not r.truncated
    assert resp.indices == sorted(range(len(short)), key=lambda i: (-expected[i], i))


def test_loading_is_lazy(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path)
    reranker = Reranker(backend, top_n=3)
    assert not backend.is_loaded
    assert reranker.rerank("q", []).results == ()
    assert not backend.is_loaded
    reranker.rerank("q", ["a"])
    assert backend.is_loaded


def test_concurrent_threads_get_their_own_correct_scores(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, max_length=64, batch_size=2)
    jobs = [[(f"query {i}", t) for t in TEXTS] for i in range(8)]
    expected = [backend.score_pairs(job) for job in jobs]
    results: dict[int, list[float]] = {}

    def work(i: int) -> None:
        for _ in range(3):
            results[i] = backend.score_pairs(jobs[i])
            np.testing.assert_allclose(results[i], expected[i], atol=1e-5)

    run_in_threads(work, 8)
    assert sorted(results) == list(range(8))


def test_accepts_a_loaded_crossencoder(st_model) -> None:
    backend = CrossEncoderBackend(st_model)
    assert backend.is_loaded
    np.testing.assert_allclose(
        backend.score_pairs(PAIRS[:3]), st_model.predict(PAIRS[:3], show_progress_bar=False), atol=1e-5
    )


def test_fingerprint_is_stable_and_reflects_settings(tiny_ce_path: Path) -> None:
    a = CrossEncoderBackend(tiny_ce_path, max_length=64)
    b = CrossEncoderBackend(str(tiny_ce_path), max_length=64)
    c = CrossEncoderBackend(tiny_ce_path, max_length=32)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert str(tiny_ce_path.resolve()) in a.fingerprint
    assert "max_length=64" in a.fingerprint


def test_pair_limit_comes_from_the_model(tiny_ce_path: Path) -> None:
    limit = CrossEncoderBackend(tiny_ce_path, max_length=48).pair_limit()
    assert limit.max_length == 48 and limit.special_tokens == 3
    offsets = limit.tokenizer.offsets(["hello world", ""])
    assert offsets == [[(0, 5), (6, 11)], []]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"max_length": 2}, "max_length"),
        ({"dtype": "int8"}, "dtype"),
        ({"activation": "relu"}, "activation"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_bad_options_are_configuration_errors(tiny_ce_path: Path, kwargs: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CrossEncoderBackend(tiny_ce_path, **kwargs)
    assert info.value.argument == argument


def test_bad_model_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="model"):
        CrossEncoderBackend("")
    with pytest.raises(ConfigurationError, match="model"):
        CrossEncoderBackend(123)  # type: ignore[arg-type]
    backend = CrossEncoderBackend(tmp_path / "no-such-model")
    with pytest.raises(ConfigurationError) as info:
        Reranker(backend).rerank("q", ["a"])
    assert info.value.argument == "model" and "no-such-model" in str(info.value)


def test_multi_label_models_are_refused(tmp_path: Path) -> None:
    path = build_tiny_cross_encoder(tmp_path / "two-labels", num_labels=2)
    with pytest.raises(ConfigurationError, match="2 output labels"):
        CrossEncoderBackend(path).score_pairs([("q", "a")])


def test_missing_extra_names_it(tiny_ce_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError) as info:
        CrossEncoderBackend(tiny_ce_path).score_pairs([("q", "a")])
    assert info.value.extra == "local"
    assert "pip install 'rerank-core[local]'" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_device_and_dtype_choice_for_cuda_and_the_cpu_fallback(
    tiny_ce_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GPU here: the loader's choices are checked where it hands them to sentence-transformers."""
    import sentence_transformers as st
    import torch

    seen: list[tuple[str, object]] = []

    class Captured(Exception):
        pass

    def fake_cross_encoder(source: str, *, device: str, max_length=None, **kwargs) -> None:
        seen.append((device, kwargs["model_kwargs"]["dtype"]))
        raise Captured

    monkeypatch.setattr(st, "CrossEncoder", fake_cross_encoder)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for kwargs in ({}, {"device": "cuda:1"}, {"device": "cuda", "dtype": "bfloat16"}):
        with pytest.raises(Captured):
            CrossEncoderBackend(str(tiny_ce_path), **kwargs).load()
    assert seen == [("cuda", torch.float16), ("cuda:1", torch.float16), ("cuda", torch.bfloat16)]
    seen.clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    with pytest.raises(Captured):
        CrossEncoderBackend(str(tiny_ce_path)).load()  # automatic: no CUDA, so the CPU in float32
    assert seen == [("cpu", torch.float32)]

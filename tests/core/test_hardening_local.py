"""Production hardening (issue 16), the local part: bounded work per call, long queries, fair coalescing,
one model call at a time, a fingerprint that loading does not change, the caller's model left alone, and
fusion that stays finite on huge first-stage scores. Each test failed on the code before its fix."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeBackend

from rerank_core import Reranker
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

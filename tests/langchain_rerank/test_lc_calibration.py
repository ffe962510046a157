"""RerankCompressor with a fitted calibration: bands in metadata, "no answer" in the rerank event."""

from __future__ import annotations

import pytest
from fakes import FakeBackend
from langchain_core.documents import Document
from lc_helpers import Recorder

from langchain_rerank import BAND_KEY, RELEVANCE_SCORE_KEY, RERANK_EVENT, RerankCompressor
from rerank_core.calibration import Calibration

SCORES = {"alpha": 1.0, "beta": 4.0, "gamma": -2.0}
PLATT = Calibration("platt", "logit", params=(1.0, -1.0))


def docs() -> list[Document]:
    return [Document(page_content=t, metadata={"rerank_band": "stale"}) for t in SCORES]


def test_calibrated_scores_and_bands_reach_the_metadata() -> None:
    out = RerankCompressor(FakeBackend(SCORES), calibration=PLATT).compress_documents(docs(), "q")
    assert [d.page_content for d in out] == ["beta", "alpha", "gamma"]
    assert [d.metadata[RELEVANCE_SCORE_KEY] for d in out] == pytest.approx(
        [0.952574, 0.5, 0.047426], abs=1e-6
    )
    assert [d.metadata[BAND_KEY] for d in out] == ["highly relevant", "possibly relevant", "not relevant"]


def test_no_answer_returns_no_documents_and_the_event_says_why() -> None:
    recorder = Recorder()
    compressor = RerankCompressor(FakeBackend(SCORES), calibration=PLATT, no_answer_floor=0.6)
    out = compressor.compress_documents([docs()[0], docs()[2]], "q", callbacks=[recorder])
    assert out == []
    event = recorder.named(f"custom:{RERANK_EVENT}")[0]
    assert "below 0.6" in event["no_answer"] and event["calibration"] == "platt(a=1, b=-1)"
    answered = compressor.compress_documents(docs(), "q", callbacks=[recorder])
    assert len(answered) == 3 and recorder.named(f"custom:{RERANK_EVENT}")[1]["no_answer"] is None

"""RerankPostprocessor with a fitted calibration: bands in metadata, "no answer" in the callback payload."""

from __future__ import annotations

import pytest
from fakes import FakeBackend
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from llamaindex_rerank import BAND_KEY, RerankPostprocessor
from rerank_core.calibration import Calibration

SCORES = {"alpha": 1.0, "beta": 4.0, "gamma": -2.0}
PLATT = Calibration("platt", "logit", params=(1.0, -1.0))


def nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t, id_=t), score=0.1) for t in SCORES]


def test_calibrated_scores_and_bands_reach_the_nodes() -> None:
    pp = RerankPostprocessor(FakeBackend(SCORES), metadata_mode=MetadataMode.NONE, calibration=PLATT)
    out = pp.postprocess_nodes(nodes(), query_str="q")
    assert [n.node.get_content() for n in out] == ["beta", "alpha", "gamma"]
    assert [n.score for n in out] == pytest.approx([0.952574, 0.5, 0.047426], abs=1e-6)
    assert [n.node.metadata[BAND_KEY] for n in out] == [
        "highly relevant",
        "possibly relevant",
        "not relevant",
    ]


def test_no_answer_returns_no_nodes_and_the_callback_payload_says_why() -> None:
    debug = LlamaDebugHandler()
    pp = RerankPostprocessor(
        FakeBackend(SCORES),
        metadata_mode=MetadataMode.NONE,
        calibration=PLATT,
        no_answer_floor=0.6,
        callback_manager=CallbackManager([debug]),
    )
    out = pp.postprocess_nodes([nodes()[0], nodes()[2]], query_str="q")
    assert out == []
    payload = debug.get_event_pairs(CBEventType.RERANKING)[0][1].payload
    assert "below 0.6" in payload["no_answer"]

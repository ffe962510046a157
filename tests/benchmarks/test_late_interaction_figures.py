"""benchmarks/late_interaction_figures.py: the cross-encoder's score cache (a retrained late-interaction model
is measured without scoring the cross-encoder's pairs again, and never with another cross-encoder's)."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import late_interaction_figures as figures


class CountingReranker:
    """Scores a pair by its text's length; records every pair it was asked for."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def rerank_many(self, queries, documents):
        out = []
        for q, docs in zip(queries, documents, strict=True):
            self.pairs += [(q, d) for d in docs]
            results = [SimpleNamespace(index=i, raw_score=float(len(q + d))) for i, d in enumerate(docs)]
            out.append(SimpleNamespace(results=results[::-1]))  # results come in any order
        return out


def _args(tmp_path: Path, model: Path, long_text: str = "truncate") -> argparse.Namespace:
    return argparse.Namespace(
        cross_encoder=model,
        long_text=long_text,
        ce_cache=tmp_path / "cache",
        no_ce_cache=False,
        progress=False,
    )


def test_cached_scores_are_reused_and_keyed_by_the_model_files_and_the_long_text_mode(tmp_path: Path) -> None:
    model = tmp_path / "ce"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "config.json").write_text("{}")
    queries = {"q1": "first query", "q2": "second"}
    texts = {"a": "alpha", "b": "beta text", "c": "gamma gamma"}
    cands = {"q1": ["a", "b", "c"], "q2": ["c", "a"]}
    expected = {q: [float(len(queries[q] + texts[d])) for d in cands[q]] for q in cands}

    first = CountingReranker()
    scores, scored = figures.cross_encoder_scores(
        _args(tmp_path, model), first, queries, texts, ["q1", "q2"], cands
    )
    assert scores == expected and scored == 5 and len(first.pairs) == 5

    again = CountingReranker()  # everything cached: nothing scored
    scores, scored = figures.cross_encoder_scores(
        _args(tmp_path, model), again, queries, texts, ["q1", "q2"], cands
    )
    assert scores == expected and scored == 0 and again.pairs == []

    cands["q2"].append("b")  # one new candidate: only it is scored
    expected["q2"].append(float(len(queries["q2"] + texts["b"])))
    one = CountingReranker()
    scores, scored = figures.cross_encoder_scores(
        _args(tmp_path, model), one, queries, texts, ["q1", "q2"], cands
    )
    assert scores == expected and scored == 1 and one.pairs == [("second", "beta text")]

    windowed = CountingReranker()  # another long-text mode is another cache
    figures.cross_encoder_scores(
        _args(tmp_path, model, "window"), windowed, queries, texts, ["q1", "q2"], cands
    )
    assert len(windowed.pairs) == 6

    (model / "config.json").write_text('{"max_length": 64}')  # a changed config file is another model
    changed = CountingReranker()
    figures.cross_encoder_scores(_args(tmp_path, model), changed, queries, texts, ["q1", "q2"], cands)
    assert len(changed.pairs) == 6


def test_a_torn_last_line_is_ended_not_glued_onto(tmp_path: Path) -> None:
    model = tmp_path / "ce"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    queries, texts = {"q": "query"}, {"a": "alpha", "b": "beta"}
    args = _args(tmp_path, model)
    figures.cross_encoder_scores(args, CountingReranker(), queries, texts, ["q"], {"q": ["a"]})
    (cache,) = (tmp_path / "cache").iterdir()
    cache.write_bytes(cache.read_bytes() + b'{"k": "torn')  # an interrupted write
    figures.cross_encoder_scores(args, CountingReranker(), queries, texts, ["q"], {"q": ["a", "b"]})
    again = CountingReranker()
    figures.cross_encoder_scores(args, again, queries, texts, ["q"], {"q": ["a", "b"]})
    assert again.pairs == []  # both scores were kept: the new record did not vanish into the torn line

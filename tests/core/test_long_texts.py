"""Long texts: windows, aggregation, reported truncation, refusal; on a whitespace tokenizer (exact
token arithmetic) and on the real MiniLM tokenizer (windows must fit the model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeBackend

from rerank_core import InvalidInputError, LongTextPolicy, Reranker, Window
from rerank_core.backends import CrossEncoderBackend

# max_length 16 with 3 special tokens and a 1-token query leaves 12 tokens for the text.
WORDS = [f"w{i}" for i in range(30)]
LONG = " ".join(WORDS)


def score_by_best_word(query: str, text: str) -> float:
    """Texts containing w20 score 5, else the number of tokens / 100."""
    return 5.0 if "w20" in text.split() else len(text.split()) / 100


def test_short_texts_are_scored_whole() -> None:
    backend = FakeBackend(score_by_best_word, max_length=16)
    resp = Reranker(backend).rerank("q", ["w1 w2", "w3"])
    assert all(r.window is None and not r.truncated for r in resp)
    assert backend.pairs_scored == 2


def test_long_text_is_split_into_overlapping_windows_that_cover_it() -> None:
    backend = FakeBackend(score_by_best_word, max_length=16)
    resp = Reranker(backend).rerank("q", [LONG])
    windows = [t for _, t in backend.calls[0]]
    assert all(len(w.split()) <= 12 for w in windows)
    covered = {tok for w in windows for tok in w.split()}
    assert covered == set(WORDS)
    assert windows[0].split()[0] == "w0" and windows[-1].split()[-1] == "w29"
    # default stride is 3/4 of the window (9 tokens): starts at 0, 9, 18
    assert [w.split()[0] for w in windows] == ["w0", "w9", "w18"]
    for w in windows:
        assert w in LONG  # windows are substrings of the original text
    (r,) = resp.results
    assert r.raw_score == 5.0 and not r.truncated
    # windows 1 (w9-w20) and 2 (w18-w29) both hold w20: the first best one is reported
    assert r.window == Window(index=1, start=LONG.index("w9 "), end=LONG.index("w20") + 3, count=3)
    assert LONG[r.window.start : r.window.end] == windows[1]
    assert resp.usage["segments"] == 3


@pytest.mark.parametrize(
    ("how", "expected"), [("max", 5.0), ("mean", (0.12 + 5.0 + 5.0) / 3), ("first", 0.12)]
)
def test_aggregation(how: str, expected: float) -> None:
    # windows: w0-w11 (0.12), w9-w20 (5.0), w18-w29 (5.0)
    resp = Reranker(FakeBackend(score_by_best_word, max_length=16), aggregate=how).rerank("q", [LONG])
    assert resp[0].raw_score == pytest.approx(expected)
    assert resp[0].window is not None
    assert resp[0].window.index == (0 if how == "first" else 1)  # max/mean report the first best window


def test_window_size_and_stride_are_configurable() -> None:
    backend = FakeBackend(score_by_best_word, max_length=64)
    Reranker(backend, window_size=10, window_stride=5).rerank("q", [LONG])
    windows = [t.split() for _, t in backend.calls[0]]
    assert [w[0] for w in windows] == ["w0", "w5", "w10", "w15", "w20"]
    assert all(len(w) <= 10 for w in windows)


def test_window_size_is_capped_by_the_model_budget() -> None:
    backend = FakeBackend(score_by_best_word, max_length=16)
    Reranker(backend, window_size=100).rerank("q", [LONG])
    assert all(len(t.split()) <= 12 for _, t in backend.calls[0])


def test_truncation_is_explicit_and_reported() -> None:
    backend = FakeBackend(score_by_best_word, max_length=16)
    resp = Reranker(backend, long_text="truncate").rerank("q", [LONG, "w1"])
    by_index = {r.index: r for r in resp}
    assert by_index[0].truncated and not by_index[1].truncated
    assert backend.calls[0][0][1] == " ".join(WORDS[:12])
    assert by_index[0].window == Window(0, 0, len(" ".join(WORDS[:12])), 1)
    assert by_index[0].text == LONG  # the result carries the caller's full text
    assert resp.usage["truncated"] == 1


def test_error_mode_names_the_candidate() -> None:
    with pytest.raises(InvalidInputError) as info:
        Reranker(FakeBackend(score_by_best_word, max_length=16), long_text="error").rerank("q", ["w1", LONG])
    assert info.value.argument == "candidates[1]"
    with pytest.raises(InvalidInputError) as info:
        Reranker(FakeBackend(score_by_best_word, max_length=16), long_text="error").rerank_many(
            ["q", "q"], [["w1"], ["w2", LONG]]
        )
    assert info.value.argument == "candidates[1][1]"


def test_a_query_too_long_for_the_model_is_refused_by_name_when_the_policy_says_so() -> None:
    query = " ".join(["word"] * 10)
    policy = LongTextPolicy(long_query="error")
    with pytest.raises(InvalidInputError) as info:
        Reranker(FakeBackend(score_by_best_word, max_length=16), long_text=policy).rerank(query, ["w1"])
    assert info.value.argument == "query" and "10 tokens" in str(info.value)


def test_windows_snap_to_word_starts() -> None:
    class PieceTokenizer:
        """Splits every word into 2-character pieces, like word pieces."""

        def offsets(self, texts):  # type: ignore[no-untyped-def]
            import re

            out = []
            for t in texts:
                spans = []
                for m in re.finditer(r"\S+", t):
                    spans += [(s, min(s + 2, m.end())) for s in range(m.start(), m.end(), 2)]
                out.append(spans)
            return out

    class Pieces(FakeBackend):
        def pair_limit(self):  # type: ignore[no-untyped-def]
            from rerank_core.backends import PairLimit

            return PairLimit(24, 3, PieceTokenizer())

    text = " ".join(["abcdef"] * 12)  # 36 pieces
    backend = Pieces(lambda q, t: 0.0)
    Reranker(backend, window_stride=8).rerank("q", [text])
    for _, window in backend.calls[0]:
        assert window.startswith("abcdef")  # never starts inside a word


def test_real_tokenizer_windows_fit_the_model(tiny_ce_path: Path) -> None:
    backend = CrossEncoderBackend(tiny_ce_path, max_length=48)
    text = " ".join(f"token{i} unbelievably-hyphenated, words." for i in range(60))
    query = "which windows fit"
    calls: list[list[tuple[str, str]]] = []
    original = backend.score_pairs

    def spy(pairs):  # type: ignore[no-untyped-def]
        calls.append(list(pairs))
        return original(pairs)

    backend.score_pairs = spy  # type: ignore[method-assign]
    resp = Reranker(backend).rerank(query, [text, "short text"])
    tok = backend.model.tokenizer
    windows = [t for _, t in calls[0] if t != "short text"]
    assert len(windows) > 3
    for w in windows:
        assert len(tok(query, w)["input_ids"]) <= 48  # nothing is cut by the model
        assert w in text
    long_result = next(r for r in resp if r.index == 0)
    assert long_result.window is not None and long_result.window.count == len(windows)
    assert text[long_result.window.start : long_result.window.end] in windows

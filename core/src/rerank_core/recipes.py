"""Model-family recipes: how a decoder-LLM or seq2seq reranker turns (instruction, query, document) into
tokens and its next-token logits into a score.

Each recipe is written from its model card's own reference code (cited in ``source``) and holds:

- the template as ``parts``: strings tokenized one by one, as the reference code tokenizes them, and joined
  (placeholders ``{instruction}``, ``{query}``, ``{document}``; exactly one part holds ``{document}``);
- the default instruction (``None``: the family takes none unless given), and how a given one is written
  (``instruction_format``; ``""`` when none is given and the family has no default);
- the scored tokens as strings (resolved through the model's tokenizer, each must be one token; checked
  against the ids the card publishes when the tokenizer is the family's own: same vocabulary size);
- the score formula: ``"p_true"`` (softmax over [false, true] at the scored position, P(true) =
  sigmoid(logit_true - logit_false)), ``"logit_true"`` (the raw logit of the true token, or of the vocabulary
  index ``true_index``), ``"logit_diff"`` (logit_true - logit_false), each times ``scale``;
- padding side (left for causal models: the scored position is the last one of every row), the longest
  input, and whether a BOS / EOS token is added.

Truncation (see :func:`render`) cuts only the document: the instruction, the query and every template part
after the document stay whole, so the scored position always reads the template's suffix. The core's
windows (:class:`~rerank_core.chunking.LongTextPolicy`) see the template's length through the back end's
``pair_limit`` and split long documents before that is ever needed.

Detection (:func:`detect`): the model's name (a Hugging Face id or folder name) first, then its config's
``_name_or_path`` and ``architectures``; ``recipe=`` names one explicitly.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rerank_core.errors import ConfigurationError, InvalidInputError

__all__ = ["RECIPES", "Recipe", "Rendered", "detect", "get_recipe", "render", "resolve_tokens"]

ScoreFormula = Literal["p_true", "logit_true", "logit_diff"]


@dataclass(frozen=True)
class Recipe:
    """One model family's exact recipe (see the module docstring)."""

    name: str
    family: str
    kind: Literal["causal", "seq2seq"]
    parts: tuple[str, ...]
    score: ScoreFormula
    true_token: str | None
    false_token: str | None = None
    true_index: int | None = (
        None  # a vocabulary index read directly (when the card reads an index, not a token)
    )
    scale: float = 1.0
    default_instruction: str | None = None
    instruction_format: str = "{instruction}"
    takes_instruction: bool = True
    published_ids: Mapping[str, int] = field(default_factory=dict)
    published_vocab_size: int | None = None
    add_bos: bool = False
    add_eos: bool = False
    strip_text: bool = False  # the query and the document are stripped of surrounding whitespace first
    padding_side: Literal["left", "right"] = "left"
    max_length: int = 512
    names: tuple[str, ...] = ()  # lower-case patterns of model names (regular expressions, searched)
    source: str = ""
    servers: str = ""  # where the family is served (docs)

    def __post_init__(self) -> None:
        holding = [p for p in self.parts if "{document}" in p]
        if len(holding) != 1:
            raise ValueError(f"recipe {self.name}: exactly one part must hold {{document}}")
        if self.score == "logit_true" and (self.true_token is None) == (self.true_index is None):
            raise ValueError(f"recipe {self.name}: logit_true reads true_token or true_index, one of them")
        if self.score in ("p_true", "logit_diff") and (self.true_token is None or self.false_token is None):
            raise ValueError(f"recipe {self.name}: {self.score} needs true_token and false_token")

    @property
    def score_kind(self) -> str:
        return "probability" if self.score == "p_true" else "logit"

    def instruction_text(self, instruction: str | None) -> str:
        """What the template's ``{instruction}`` becomes: the given instruction in the family's format, or
        its default, or ``""`` when it has none."""
        chosen = self.default_instruction if instruction is None else instruction
        if chosen is None:
            return ""
        return self.instruction_format.format(instruction=chosen)


_QWEN3_SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)

# https://github.com/castorini/pygaggle (pygaggle/rerank/transformer.py MonoT5): "Query: {q} Document:
# {d} Relevant:", softmax over [false, true] at the first decoder step.
_MONOT5 = Recipe(
    name="monot5",
    family="monoT5 (castorini/monot5-*)",
    kind="seq2seq",
    parts=("Query: {query} Document: {document} Relevant:",),
    score="p_true",
    true_token="true",
    false_token="false",
    takes_instruction=False,
    published_ids={"true": 1176, "false": 6136},
    published_vocab_size=32100,
    add_eos=True,
    padding_side="right",
    max_length=512,
    names=(r"monot5", r"mt5.*msmarco"),
    source="https://github.com/castorini/pygaggle/blob/master/pygaggle/rerank/transformer.py",
    servers="local only",
)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        # https://huggingface.co/Qwen/Qwen3-Reranker-0.6B (model card, "Transformers Usage"): prefix and
        # suffix tokenized apart from the middle, the middle truncated to max_length - len(prefix) -
        # len(suffix), left padding, log_softmax over [no, yes] at the last position, exp.
        Recipe(
            name="qwen3",
            family="Qwen3-Reranker (0.6B / 4B / 8B)",
            kind="causal",
            parts=(
                f"<|im_start|>system\n{_QWEN3_SYSTEM}<|im_end|>\n<|im_start|>user\n",
                "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}",
                "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
            ),
            score="p_true",
            true_token="yes",
            false_token="no",
            default_instruction="Given a web search query, retrieve relevant passages that answer the query",
            published_ids={"yes": 9693, "no": 2152},
            published_vocab_size=151669,
            max_length=8192,
            names=(r"qwen3-reranker",),
            source="https://huggingface.co/Qwen/Qwen3-Reranker-0.6B",
            servers="vLLM (/rerank, /score with the Qwen3 score template); sentence-transformers >= 6 "
            "for converted checkpoints",
        ),
        # https://huggingface.co/BAAI/bge-reranker-v2-gemma (card, get_inputs; FlagEmbedding
        # inference/reranker/decoder_only/base.py): [BOS] "A: {q}" "\n" "B: {d}" "\n" prompt, each tokenized
        # apart; the raw logit of 'Yes' at the last position. The prompt is the instruction (FlagEmbedding's
        # prompt= argument).
        Recipe(
            name="bge-gemma",
            family="bge-reranker-v2-gemma",
            kind="causal",
            parts=("A: {query}", "\n", "B: {document}", "\n", "{instruction}"),
            score="logit_true",
            true_token="Yes",
            default_instruction=(
                "Given a query A and a passage B, determine whether the passage contains an answer to the "
                "query by providing a prediction of either 'Yes' or 'No'."
            ),
            add_bos=True,
            max_length=1024,
            names=(r"bge-reranker-v2-gemma",),
            source="https://huggingface.co/BAAI/bge-reranker-v2-gemma",
            servers="vLLM (/rerank with its bge-gemma score template)",
        ),
        # https://github.com/mixedbread-ai/mxbai-rerank (mxbai_rerank/mxbai_rerank_v2.py): chat prefix,
        # ["instruction: {i}\n"] "query: {q}", "\n", "document: {d}", "\n", task prompt, chat suffix;
        # logit("1") - logit("0") at the last position, left padding.
        Recipe(
            name="mxbai-v2",
            family="mxbai-rerank-v2 (base / large)",
            kind="causal",
            parts=(
                "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                "<|im_end|>\n<|im_start|>user\n",
                "{instruction}query: {query}",
                "\n",
                "document: {document}",
                "\n",
                "You are a search relevance expert who evaluates how well documents match search queries. "
                "For each query-document pair, carefully analyze the semantic relationship between them, "
                "then provide your binary relevance judgment (0 for not relevant, 1 for relevant)."
                "\nRelevance:",
                "<|im_end|>\n<|im_start|>assistant\n",
            ),
            score="logit_diff",
            true_token="1",
            false_token="0",
            instruction_format="instruction: {instruction}\n",
            max_length=8192,
            names=(r"mxbai-rerank-(base|large|xsmall)-v2",),
            source="https://github.com/mixedbread-ai/mxbai-rerank/blob/main/mxbai_rerank/mxbai_rerank_v2.py",
            servers="vLLM (/rerank with its mxbai score template)",
        ),
        # https://huggingface.co/ContextualAI/ctxl-rerank-v2-instruct-multilingual-1b (card code): one prompt,
        # the document before the query, an optional instruction after the query; the logit at vocabulary
        # index 0 at the last position (the card rounds it to bfloat16; we keep float32), left padding.
        Recipe(
            name="contextual-v2",
            family="Contextual AI reranker v2 (1B / 2B / 6B)",
            kind="causal",
            parts=(
                "Check whether a given document contains information helpful to answer the query.\n"
                "<Document> {document}\n<Query> {query}{instruction} ??",
            ),
            score="logit_true",
            true_token=None,
            true_index=0,
            instruction_format=" {instruction}",
            max_length=32768,
            names=(r"ctxl-rerank", r"contextual.*rerank"),
            source="https://huggingface.co/ContextualAI/ctxl-rerank-v2-instruct-multilingual-1b",
            servers="vLLM (the card's logits processor)",
        ),
        # https://huggingface.co/zeroentropy/zerank-2 (card) and the card's earlier modeling_zeranker.py
        # (format_pointwise_datapoints, predict): the stripped query as the system turn, the stripped document
        # as the user turn, the chat template's generation prompt (no think block), the raw logit of "Yes"
        # at the last position. The card returns that logit since May 2026 (sentence-transformers'
        # LogitScore); its earlier 0-1 score is sigmoid(logit / 5). The card shows no instruction; the
        # ZeroEntropy API documents instructions as text the query carries, so a given one is written as a
        # line before the query.
        Recipe(
            name="zerank",
            family="zerank-2 / zerank-1 / zerank-1-small (ZeroEntropy)",
            kind="causal",
            parts=(
                "<|im_start|>system\n{instruction}{query}<|im_end|>\n<|im_start|>user\n{document}<|im_end|>\n"
                "<|im_start|>assistant\n",
            ),
            score="logit_true",
            true_token="Yes",
            instruction_format="{instruction}\n",
            published_ids={"Yes": 9454},
            published_vocab_size=151669,
            strip_text=True,
            max_length=32768,
            names=(r"zerank",),
            source="https://huggingface.co/zeroentropy/zerank-2",
            servers="sentence-transformers >= 6 (CrossEncoder with LogitScore, the card's own path); the "
            "ZeroEntropy API",
        ),
        _MONOT5,
        # https://huggingface.co/unicamp-dl/InRanker-base: monoT5's input, tokens and P(true).
        dataclasses.replace(
            _MONOT5,
            name="inranker",
            family="InRanker (unicamp-dl/InRanker-*)",
            names=(r"inranker",),
            source="https://huggingface.co/unicamp-dl/InRanker-base",
        ),
        # RankT5 (Zhuang et al., SIGIR 2023; the T5X input pipeline): "Query: {q} Document: {d}", the raw
        # logit of <extra_id_10> at the first decoder step.
        Recipe(
            name="rankt5",
            family="RankT5 (encoder-decoder)",
            kind="seq2seq",
            parts=("Query: {query} Document: {document}",),
            score="logit_true",
            true_token="<extra_id_10>",
            takes_instruction=False,
            published_ids={"<extra_id_10>": 32089},
            published_vocab_size=32100,
            add_eos=True,
            padding_side="right",
            max_length=512,
            names=(r"rankt5",),
            source="https://arxiv.org/abs/2210.10634",
            servers="local only",
        ),
    )
}


def get_recipe(recipe: str | Recipe) -> Recipe:
    """A recipe by name (``ConfigurationError`` naming ``recipe`` listing the known ones), or ``recipe``."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str) and recipe in RECIPES:
        return RECIPES[recipe]
    raise ConfigurationError(
        "recipe", f"must be one of {', '.join(sorted(RECIPES))} or a Recipe, got {recipe!r}"
    )


def detect(name: str, config: Any = None) -> Recipe | None:
    """The recipe of a model from its name (id or folder), else its config's ``_name_or_path``; ``None``
    when neither names a known family."""
    candidates = [name]
    if config is not None:
        candidates.append(str(getattr(config, "_name_or_path", "") or ""))
    for text in candidates:
        lowered = text.lower()
        for recipe in RECIPES.values():
            if any(re.search(p, lowered) for p in recipe.names):
                return recipe
    return None


# -- tokens ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredTokens:
    true_id: int
    false_id: int | None


def _one_token(tokenizer: Any, text: str, recipe: Recipe) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ConfigurationError(
            "recipe",
            f"{recipe.name}: the scored token {text!r} is {len(ids)} tokens in this model's tokenizer "
            f"({ids}); the recipe needs it to be one: is this the family's tokenizer?",
        )
    return int(ids[0])


def resolve_tokens(recipe: Recipe, tokenizer: Any) -> ScoredTokens:
    """The ids of the recipe's scored tokens in ``tokenizer``; checked against the ids the card publishes
    when the tokenizer has the family's vocabulary size (a mismatch means a wrong or altered tokenizer, the
    error community GGUF conversions made)."""
    if recipe.true_index is not None:
        return ScoredTokens(recipe.true_index, None)
    assert recipe.true_token is not None
    true_id = _one_token(tokenizer, recipe.true_token, recipe)
    false_id = None if recipe.false_token is None else _one_token(tokenizer, recipe.false_token, recipe)
    if recipe.published_vocab_size is not None and len(tokenizer) == recipe.published_vocab_size:
        for token, got in ((recipe.true_token, true_id), (recipe.false_token, false_id)):
            want = recipe.published_ids.get(token) if token is not None else None
            if want is not None and got != want:
                raise ConfigurationError(
                    "recipe",
                    f"{recipe.name}: {token!r} is id {got} in this tokenizer, but the model card "
                    f"publishes {want} ({recipe.source}); refusing to score the wrong token",
                )
    return ScoredTokens(true_id, false_id)


# -- rendering ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """One input's token ids, and how many document tokens were cut to fit (0: none)."""

    ids: list[int]
    cut: int


def _fill(part: str, values: Mapping[str, str]) -> str:
    # str.format would read braces inside the user's text; replace the three placeholders literally.
    for key, value in values.items():
        part = part.replace("{" + key + "}", value)
    return part


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def render(
    recipe: Recipe,
    tokenizer: Any,
    query: str,
    document: str,
    instruction: str | None,
    max_length: int,
) -> Rendered:
    """The token ids of one (query, document) input, at most ``max_length`` long.

    Each part is tokenized on its own (as the card's code does); only document tokens are cut, from the
    document's end, so the instruction, the query and the template after the document are never lost. An
    input whose template, instruction and query alone exceed ``max_length`` is refused
    (``InvalidInputError`` naming ``query``: the core's long-query policy cuts queries before this)."""
    # Placeholders are filled in one pass per part, the document last, so a query that contains the text
    # "{document}" is never expanded.
    if recipe.strip_text:
        query, document = query.strip(), document.strip()
    values = {"instruction": recipe.instruction_text(instruction), "query": query}
    ids: list[int] = []
    if recipe.add_bos:
        bos = tokenizer.bos_token_id
        if bos is None:
            raise ConfigurationError("recipe", f"{recipe.name} adds a BOS token, and this tokenizer has none")
        ids.append(int(bos))
    doc_at = -1
    doc_part: tuple[list[int], list[int], list[int]] = ([], [], [])
    for part in recipe.parts:
        if "{document}" not in part:
            ids.extend(_encode(tokenizer, _fill(part, values)))
            continue
        before, after = part.split("{document}", 1)
        before, after = _fill(before, values), _fill(after, values)
        text = before + document + after
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        start, end = len(before), len(before) + len(document)
        head, body, tail = [], [], []
        for token, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
            if b <= start and not (a == b == start and document):
                head.append(token)
            elif a >= end and (a > start or not document):
                tail.append(token)
            else:
                body.append(token)
        doc_at = len(ids)
        doc_part = (head, body, tail)
        ids.extend(head + body + tail)
    if recipe.add_eos:
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ConfigurationError(
                "recipe", f"{recipe.name} adds an EOS token, and this tokenizer has none"
            )
        ids.append(int(eos))
    excess = len(ids) - max_length
    if excess <= 0:
        return Rendered(ids, 0)
    head, body, tail = doc_part
    if excess > len(body):
        raise InvalidInputError(
            "query",
            f"the {recipe.name} template, instruction and query take {len(ids) - len(body)} tokens, more "
            f"than the model's {max_length}",
        )
    kept = body[: len(body) - excess]
    start = doc_at + len(head)
    return Rendered(ids[:start] + kept + ids[start + len(body) :], excess)


def template_length(recipe: Recipe, tokenizer: Any, instruction: str | None) -> int:
    """Tokens the template and instruction take around an empty query and document (what the core's
    windows leave room for)."""
    return len(render(recipe, tokenizer, "", "", instruction, 1 << 30).ids)

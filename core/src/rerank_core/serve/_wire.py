"""The three rerank wire formats the server speaks: requests read into one shape, answers written back.

- **Cohere v2**, ``POST /v2/rerank``: ``{"model", "query", "documents": [str], "top_n"?,
  "max_tokens_per_doc"?}`` → ``{"id", "results": [{"index", "relevance_score"}], "meta"}``
  (docs.cohere.com/reference/rerank). The Cohere SDK's ``ClientV2(base_url=...)`` works unchanged.
- **Jina / vLLM / Cohere v1**, ``POST /v1/rerank``: ``{"model"?, "query", "documents": [str | {"text"}],
  "top_n"?, "return_documents"?}`` → ``{"id", "model", "usage": {"total_tokens"}, "results": [{"index",
  "relevance_score", "document"?: {"text"}}], "meta"}``: one answer that each of the three clients reads
  (jina.ai reranker API; vLLM's ``/v1/rerank`` in serving_score.py; Cohere v1). ``return_documents``
  defaults to true here, as Jina and vLLM do.
- **TEI**, ``POST /rerank``: ``{"query", "texts": [str], "raw_scores"?, "return_text"?, "truncate"?}`` →
  ``[{"index", "score", "text"?}]``, best first (text-embeddings-inference's OpenAPI ``RerankRequest``).
  ``score`` is the pipeline's relevance score, or its raw score with ``raw_scores``. A body with
  ``"documents"`` instead of ``"texts"`` (what Infinity's ``/rerank`` takes) is read as the Jina request and
  answered in the Jina shape, as Infinity does.

Every route also takes ``"instruction"`` (for models that take one: docs/instructions.md) and
``"first_stage_scores"`` (one number a document: the retriever's scores, which a pipeline with a fusion
needs). Unknown fields
are ignored, as the reference servers do. ``truncate`` / ``max_tokens_per_doc`` are accepted and do not
change anything: long documents follow the pipeline's long-text policy (windows by default), which never
drops text silently. ``model`` is accepted whatever it names: one server serves one pipeline.

Cohere and Jina answers carry two extra fields when they apply: ``"band"`` on a result (a probability
band) and ``"no_answer"`` (why every candidate was dropped); clients ignore fields they do not know.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from rerank_core.normalization import normalize_scores

__all__ = ["ROUTES", "WireError", "WireRequest", "format_response", "parse_request"]

ROUTES = {"/v2/rerank": "cohere", "/v1/rerank": "jina", "/rerank": "tei"}


class WireError(Exception):
    """A request the server refuses: the HTTP ``status`` and a message naming the field."""

    def __init__(
        self, status: int, message: str, kind: str = "bad_request", shape: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.shape = shape  # the answer's shape, when the request's body decided it


@dataclass(frozen=True)
class WireRequest:
    """A rerank request read from any wire format."""

    shape: str  # "cohere", "jina" or "tei": the answer's shape
    query: str
    documents: list[str]
    top_n: int | None = None
    return_documents: bool = False
    raw_scores: bool = False
    instruction: str | None = None
    model: str | None = None
    first_stage_scores: list[float] | None = None


def parse_request(route: str, body: Any, *, max_documents: int) -> WireRequest:
    """The request a decoded JSON ``body`` on ``route`` (a key of :data:`ROUTES`) asks for, or a
    :class:`WireError` naming the field that is wrong (in the shape the answer would have had)."""
    shape = ROUTES[route]
    if isinstance(body, dict) and shape == "tei" and "texts" not in body and "documents" in body:
        shape = "jina"  # Infinity's /rerank: the Jina body and answer
    try:
        return _parse(route, shape, body, max_documents)
    except WireError as exc:
        exc.shape = shape
        raise


def _parse(route: str, shape: str, body: Any, max_documents: int) -> WireRequest:
    if not isinstance(body, dict):
        raise WireError(400 if shape != "tei" else 422, "the body must be a JSON object")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise WireError(_invalid(shape), "query: must be a non-empty string")
    field = "texts" if shape == "tei" else "documents"
    raw = body.get(field)
    if not isinstance(raw, list):
        raise WireError(_invalid(shape), f"{field}: must be a list of strings")
    if len(raw) > max_documents:
        # TEI answers 413 for too many texts; Cohere and Jina a 400.
        status = 413 if shape == "tei" else 400
        raise WireError(
            status, f"{field}: {len(raw)} documents, more than this server's {max_documents}", "too_large"
        )
    documents: list[str] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict) and shape != "tei" and route != "/v2/rerank":
            item = item.get("text")  # Jina and Cohere v1 take {"text": ...}
        if not isinstance(item, str):
            what = "a string" if shape == "tei" or route == "/v2/rerank" else 'a string or {"text": string}'
            raise WireError(_invalid(shape), f"{field}[{i}]: must be {what}")
        documents.append(item)
    top_n = body.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        raise WireError(_invalid(shape), f"top_n: must be an integer >= 1, got {top_n!r}")
    instruction = body.get("instruction")
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        raise WireError(_invalid(shape), "instruction: must be a non-empty string")
    scores = body.get("first_stage_scores")
    if scores is not None and (
        not isinstance(scores, list)
        or len(scores) != len(documents)
        or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in scores
        )
    ):
        raise WireError(
            _invalid(shape), f"first_stage_scores: must be {len(documents)} finite numbers, one a document"
        )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise WireError(_invalid(shape), "model: must be a string")
    flags: dict[str, bool] = {}
    names = ("raw_scores", "return_text", "truncate") if shape == "tei" else ("return_documents",)
    for name in names:
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise WireError(_invalid(shape), f"{name}: must be true or false, got {value!r}")
        flags[name] = (
            bool(value) if value is not None else (name == "return_documents" and route != "/v2/rerank")
        )
    return WireRequest(
        shape=shape,
        query=query,
        documents=documents,
        top_n=top_n,
        return_documents=flags.get("return_documents", False) or flags.get("return_text", False),
        raw_scores=flags.get("raw_scores", False),
        instruction=instruction,
        model=model,
        first_stage_scores=None if scores is None else [float(x) for x in scores],
    )


def format_response(
    request: WireRequest, response: Any, model_name: str, score_mode: str = "pipeline"
) -> Any:
    """The answer to ``request`` from a :class:`~rerank_core.RerankResponse`, in the request's shape.
    ``score_mode="sigmoid"`` writes the sigmoid of the relevance score (a logit model's raw score, as TEI
    does); otherwise it is written as it is (see :func:`rerank_core.serve._app.score_mode`)."""
    results = response.results
    scores = [r.relevance_score for r in results]
    if score_mode == "sigmoid":
        scores = normalize_scores(scores, "sigmoid").tolist()
    if request.shape == "tei":
        out = []
        for r, score in zip(results, scores, strict=True):
            item: dict[str, Any] = {
                "index": r.index,
                "score": r.raw_score if request.raw_scores else score,
            }
            if request.return_documents:
                item["text"] = request.documents[r.index]
            out.append(item)
        return out
    rows = []
    for r, score in zip(results, scores, strict=True):
        row: dict[str, Any] = {"index": r.index, "relevance_score": score}
        if request.return_documents:
            row["document"] = {"text": request.documents[r.index]}
        if getattr(r, "band", None) is not None:
            row["band"] = r.band
        rows.append(row)
    answer: dict[str, Any] = {"id": str(uuid.uuid4()), "results": rows}
    if request.shape == "jina":
        answer["model"] = request.model or model_name
        answer["usage"] = {"total_tokens": _words(request)}
    answer["meta"] = {
        "api_version": {"version": "2" if request.shape == "cohere" else "1"},
        "billed_units": {"search_units": 1},
    }
    if response.no_answer is not None:
        answer["no_answer"] = response.no_answer
    return answer


def error_body(shape: str, error: WireError | str, kind: str | None = None) -> Any:
    """The error answer each family's clients read: TEI's ``{"error", "error_type"}``, else
    ``{"message"}`` (Cohere) with ``"detail"`` (what Jina / FastAPI clients print)."""
    message = error.message if isinstance(error, WireError) else error
    kind = kind or (error.kind if isinstance(error, WireError) else "error")
    if shape == "tei":
        return {"error": message, "error_type": kind}
    return {"message": message, "detail": message, "error_type": kind}


def _invalid(shape: str) -> int:
    return 422 if shape == "tei" else 400


def _words(request: WireRequest) -> int:
    """``usage.total_tokens`` without a tokenizer: the words of the query and documents (an estimate, the
    same count the project's test server gives)."""
    return len(request.query.split()) + sum(len(d.split()) for d in request.documents)

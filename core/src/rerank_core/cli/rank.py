"""``rerank rank``: score candidates from standard input against one query, for shell users and other tools.

```
rerank rank --model PATH_OR_ID [--recipe NAME] [--instruction TEXT] --query TEXT [--top-n N]
            [--max-candidates 10000] < candidates
```

Standard input holds one candidate per line: a JSON object with a ``"text"`` (other keys are kept and
written back), or a plain line of text. Standard output gets one JSON object per candidate, best first:
``index`` (its line among the candidates, from 0), ``raw_score``, ``relevance_score`` and the object's other
keys. Any local model works: a cross-encoder, a sentence-transformers checkpoint, or a decoder-LLM / seq2seq
reranker by its recipe (:func:`rerank_core.backends.local.local_backend`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rerank_core.cli._common import EXIT_OK, UsageError, one_line, positive_int
from rerank_core.errors import ConfigurationError

__all__ = ["add_parser", "read_candidates", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("rank", help="score candidates from stdin against a query")
    p.add_argument("--model", required=True, help="local folder or Hugging Face id")
    p.add_argument("--recipe", help="a recipe name (default: detected; none for cross-encoders)")
    p.add_argument("--instruction", help="the task's instruction (for models that take one)")
    p.add_argument("--query", required=True, help="the query")
    p.add_argument("--top-n", type=positive_int, help="write only the best N")
    p.add_argument(
        "--max-candidates",
        type=positive_int,
        default=10_000,
        help="refuse more candidates than this (default: 10000)",
    )
    p.set_defaults(handler=run)


def read_candidates(lines: Any, limit: int) -> list[dict[str, Any]]:
    """One candidate per non-empty line: a JSON object with a string ``text``, or the line itself."""
    out: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if len(out) >= limit:
            raise UsageError(f"stdin: more than --max-candidates={limit} candidates")
        if line.lstrip().startswith("{"):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"stdin line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise UsageError(f'stdin line {number}: a JSON candidate needs a string "text"')
            out.append(item)
        else:
            out.append({"text": line})
    return out


def run(args: argparse.Namespace) -> int:
    from rerank_core import Reranker
    from rerank_core.backends.local import local_backend

    candidates = read_candidates(sys.stdin, args.max_candidates)
    kwargs = {} if args.recipe is None else {"recipe": args.recipe}
    told = {} if args.instruction is None else {"instruction": args.instruction}
    try:  # a flag the model cannot take (a recipe name, an instruction) is a usage error
        reranker = Reranker(local_backend(args.model, **kwargs), top_n=args.top_n, **told)
        response = reranker.rerank(args.query, [c["text"] for c in candidates])
    except ConfigurationError as exc:
        raise UsageError(one_line(exc)) from exc
    for result in response.results:
        extra = {k: v for k, v in candidates[result.index].items()}
        row = {
            "index": result.index,
            "raw_score": result.raw_score,
            "relevance_score": result.relevance_score,
            **extra,
        }
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    return EXIT_OK

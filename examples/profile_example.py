"""A scoring profile on top of the reranker: freshness, category boosts and authority.

A support knowledge base answers "How do I rotate an API key that expired?". The reranker (the project's
reference reranker, ``models/reference-reranker``, on the CPU) scores six articles; the profile then applies
the business rules (kept as plain data, as a config file would hold them):

- ``fresh``: exponential decay over ``updated``, half-life 180 days, at most half the score (``weight`` 0.5);
  an article without a date counts as updated on 2020-01-01;
- ``official``: articles in the ``docs`` or ``runbook`` category x1.25;
- ``forum``: forum threads x0.8;
- ``authority``: ``1 + 0.1 * log1p(authority)`` (an editorial score, 0 when missing).

It prints the reranker's order, the order after the profile, and for each article the score before and after
and the rules that fired. "Today" is fixed (2026-11-22) so that the output does not change from day to day;
a real deployment leaves the profile's clock alone (now, in UTC).

Run: ``python examples/profile_example.py`` (``--model PATH_OR_ID`` for another cross-encoder).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common, however this file is loaded
from _common import MODEL_HELP, REFERENCE_MODEL, no_model_notice, resolve_model

TODAY = datetime(2026, 11, 22, tzinfo=timezone.utc)  # noqa: UP017 (rerank-core supports Python 3.10)
QUERY = "How do I rotate an API key that expired?"

PROFILE = {
    "name": "support-kb",
    "rules": [
        {
            "type": "freshness",
            "name": "fresh",
            "field": "updated",
            "decay": "exp",
            "half_life": "180d",
            "weight": 0.5,
            "default": "2020-01-01",
        },
        {
            "type": "match",
            "name": "official",
            "field": "category",
            "op": "in",
            "values": ["docs", "runbook"],
            "boost": 1.25,
        },
        {"type": "match", "name": "forum", "field": "category", "op": "eq", "value": "forum", "boost": 0.8},
        {
            "type": "numeric",
            "name": "authority",
            "field": "authority",
            "weight": 0.1,
            "modifier": "log1p",
            "default": 0,
        },
    ],
}

ARTICLES = [
    {
        "id": "forum-2023",
        "text": "Re: my API key expired. I could not find how to rotate it, so I created a new account and a "
        "new API key there. Works for now.",
        "metadata": {"category": "forum", "updated": "2023-03-14", "authority": 1},
    },
    {
        "id": "docs-keys",
        "text": "Rotating API keys: open Settings > API keys, create a new key, update your services to use "
        "it, then revoke the expired or old key.",
        "metadata": {"category": "docs", "updated": "2026-10-02", "authority": 40},
    },
    {
        "id": "blog-2022",
        "text": "Why you should rotate API keys regularly: expired and leaked keys are a common cause of "
        "incidents, and rotating them limits the damage.",
        "metadata": {"category": "blog", "updated": "2022-06-01", "authority": 5},
    },
    {
        "id": "docs-v1",
        "text": "API keys (v1, deprecated): an expired key could be regenerated from the legacy console "
        "under Account > Keys > Regenerate.",
        "metadata": {"category": "docs", "updated": "2021-01-15", "authority": 20},
    },
    {
        "id": "runbook",
        "text": "Runbook: when a customer's API key has expired, issue a replacement key from the admin "
        "panel and ask them to rotate it in their deployment.",
        "metadata": {"category": "runbook", "updated": "2026-08-20"},
    },
    {
        "id": "billing",
        "text": "Billing: invoices are sent on the first day of each month to the account owner.",
        "metadata": {"category": "docs", "updated": "2026-11-01", "authority": 30},
    },
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=MODEL_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="cross-encoder id or path")
    args = parser.parse_args(argv)
    model = resolve_model(args.model, REFERENCE_MODEL)
    if model is None:
        print(no_model_notice("nothing to rerank, so no profile to show"))
        return 0

    from rerank_core import Reranker, ScoringProfile
    from rerank_core.backends import CrossEncoderBackend

    profile = ScoringProfile.from_dict(PROFILE, clock=lambda: TODAY)
    reranker = Reranker(CrossEncoderBackend(model, device="cpu"), profile=profile)
    response = reranker.rerank(QUERY, ARTICLES)

    print(f"Reranking with {model}, profile {response.profile!r}, today = {TODAY.date()}")
    print(f"Query: {QUERY}\n")
    before = sorted(response, key=lambda r: -(r.pre_profile_score or 0.0))
    print("Reranker alone:  " + " > ".join(str(r.id) for r in before))
    print("With the profile: " + " > ".join(str(r.id) for r in response))
    print()
    print(f"{'article':<11} {'before':>7} {'after':>7}  rules that fired (x factor, + term)")
    for r in response:
        fired = ", ".join(
            f"{e.rule} {'x' if e.mode == 'multiply' else '+'}{e.amount:.3f}"
            + (" (default)" if e.defaulted else "")
            for e in r.profile_effects
        )
        print(f"{r.id!s:<11} {r.pre_profile_score:>7.4f} {r.relevance_score:>7.4f}  {fired or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Load test of the remote back ends against the fault-injecting loopback server, with figures.

    python benchmarks/remote_load.py [--calls 500] [--concurrency 16] [--fault-rate 0.2]

For each back end and policy (Cohere SDK async with ``raise``, TEI sync with ``fail_open``, Jina async
with ``fail_open``) it makes ``--calls`` rerank calls ``--concurrency`` at a time while the server fails
``--fault-rate`` of the HTTP requests at random (429 with Retry-After, 500, 503, answers slower than the
timeout, dropped connections, malformed JSON, out-of-range and duplicated indices), checks every
outcome, and prints a Markdown table. The same run, with assertions, is ``tests/core/test_remote_load.py``.
"""

from __future__ import annotations

import argparse

from rerank_core.testing import RerankServer
from rerank_core.testing.load import LoadReport, load_backend, run_load

RUNS = (("cohere", "async", False), ("tei", "sync", True), ("jina", "async", True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    reports: list[tuple[str, LoadReport]] = []
    for kind, mode, fail_open in RUNS:
        with RerankServer(api_key="k", max_documents=32) as server:
            backend = load_backend(kind, server)
            report = run_load(
                backend,
                server,
                calls=args.calls,
                concurrency=args.concurrency,
                fault_rate=args.fault_rate,
                mode=mode,
                fail_open=fail_open,
                seed=args.seed,
            )
            backend.close()
        reports.append((f"{kind} ({mode})", report))
    names = [name for name, _ in reports]
    print("| figure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for i, (figure, _) in enumerate(reports[0][1].rows()):
        print(f"| {figure} | " + " | ".join(report.rows()[i][1] for _, report in reports) + " |")
    for name, report in reports:
        print(f"\n{name}: faults by kind {dict(report.faults)}; errors {dict(report.errors)}")
    if any(report.violations for _, report in reports):
        raise SystemExit("violations: " + "; ".join(v for _, r in reports for v in r.violations[:5]))


if __name__ == "__main__":
    main()

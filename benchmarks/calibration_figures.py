"""Calibration figures of the reference reranker: ECE / Brier before and after, and threshold transfer.

    python benchmarks/calibration_figures.py [--data ../shared/data] [--runtime openvino]
        [--fit-queries 150] [--test-queries N] [--top-k 100] [--out calibration.json]

For SciFact and NFCorpus, BM25 retrieves the top-k of each query; the reference cross-encoder
(models/reference-reranker) scores them. Calibrations (Platt, temperature, isotonic) are fitted on queries the
model was not trained on and that are not test queries:

- SciFact: the 100 train claims held out as dev when the reference reranker was built
  (models/build_reference_reranker.py: split_queries(train, 0.15, seed=12, max_dev=100));
- NFCorpus: the dev split (its first --fit-queries queries).

Each fit is measured on the test split's pairs (held out): ECE (10 equal-width bins over every candidate,
relevant = grade >= 1) and Brier, beside the model's own sigmoid ("before"); and the F1-optimal threshold of
the fit split applied to test, beside the best threshold chosen on test itself (the gap is what a user loses
by fixing the threshold ahead of time). The runtime defaults to OpenVINO fp32 (scores within 1e-5 of torch's,
docs/results.md) to keep the run near 20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rerank_core import Reranker
from rerank_core.backends import CrossEncoderBackend
from rerank_core.eval.beir import load_beir
from rerank_core.eval.calibration import calibrate_on_beir
from rerank_core.train.data import split_queries

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "reference-reranker")
    parser.add_argument("--runtime", default="openvino", choices=("torch", "onnx", "openvino"))
    parser.add_argument(
        "--fit-queries",
        type=int,
        default=150,
        help="queries fitted on (SciFact: at most its 100 held-out claims)",
    )
    parser.add_argument("--test-queries", type=int, default=None, help="first N test queries (default: all)")
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--collections", default="scifact,nfcorpus")
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    args = parser.parse_args()

    backend = CrossEncoderBackend(args.model, runtime=args.runtime, device="cpu")
    reranker = Reranker(backend)
    results: dict[str, dict] = {}
    for name in [c.strip() for c in args.collections.split(",") if c.strip()]:
        folder = args.data / name
        if name == "scifact":
            train = load_beir(folder, split="train")
            _, dev = split_queries(list(train.queries), 0.15, seed=12, max_dev=100)
            dev = dev[: args.fit_queries]
            fit = dataclasses.replace(train, queries={q: train.queries[q] for q in dev})
            fit_label = f"{len(dev)} of the held-out train claims"
        else:
            dev_data = load_beir(folder, split="dev")
            keep = [q for q in dev_data.queries if q in dev_data.qrels][: args.fit_queries]
            fit = dataclasses.replace(dev_data, queries={q: dev_data.queries[q] for q in keep})
            fit_label = f"first {len(keep)} judged dev queries"
        test = load_beir(folder, split="test")
        if args.test_queries:
            test = dataclasses.replace(test, queries=dict(list(test.queries.items())[: args.test_queries]))
        run = calibrate_on_beir(reranker, fit, test, top_k=args.top_k)
        fits = run.fits
        results[name] = {"fit_on": fit_label, **run.to_dict()}
        print(
            f"\n{name}: fit on {fit_label} ({run.fit_pairs} pairs, {run.fit_positives} relevant), "
            f"measured on test ({run.held_out_pairs} pairs, {run.held_out_positives} relevant), "
            f"BM25 top-{args.top_k}, {args.runtime}; scoring {run.seconds:.0f} s"
        )
        print(
            f"{'scores':<30} {'ECE test':>9} {'Brier test':>10} {'thr (fit)':>9} {'F1 test@thr':>11} "
            f"{'best F1 test':>12} {'gap':>7}"
        )
        b = run.before["held_out"]
        print(f"{'before: the model sigmoid':<30} {b['ece']:>9.4f} {b['brier']:>10.4f}")
        for f in fits.values():
            h, t = f.held_out or {}, f.transfer or {}
            print(
                f"{f.calibration.describe():<30} {h['ece']:>9.4f} {h['brier']:>10.4f} "
                f"{f.threshold['threshold']:>9.4f} {t['f1_at_fitted_threshold']:>11.4f} "
                f"{t['best_f1']:>12.4f} {t['gap']:>7.4f}"
            )
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

"""Wall time, convergence and ESS/s of each global mixer on kejzlar2023.

Usage: python benchmarks/global_mixers.py [--data-dir DIR] [--num-chains 4] [--out results.json]
Runs each mixer once with 4 chains × 1000 warm-up + 1000 draws (the issue's settings) and
prints one JSON line per mixer (the same object as `lbmm fit --json`, plus ESS/s).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

from lbmm.cli import _fit_report


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--dataset", default="kejzlar2023")
    ap.add_argument("--num-chains", type=int, default=4)
    ap.add_argument("--num-warmup", type=int, default=1000)
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--mixers", default="bma,linear,dirichlet")
    ap.add_argument("--likelihoods", default="mean,density")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rows = []
    for mixer in a.mixers.split(","):
        for lik in a.likelihoods.split(",") if mixer != "bma" else ["mean"]:
            ns = argparse.Namespace(
                dataset=a.dataset, data_dir=a.data_dir, mixer=mixer, likelihood=lik,
                num_chains=a.num_chains, num_warmup=a.num_warmup, num_samples=a.num_samples,
                seed=0, target_accept=0.95, json=True, quiet=True, out=None,
            )  # fmt: skip
            t = time.perf_counter()
            rep = _fit_report(ns)
            rep["total_s"] = time.perf_counter() - t
            rep["ess_per_s"] = rep["ess_bulk_min"] / rep["wall_s"]
            rep["machine"] = f"{platform.machine()} {platform.processor()} ({platform.node()})"
            rows.append(rep)
            print(json.dumps(rep), flush=True)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

from lbmm.data import load_dataset
from lbmm.inference import fit
from lbmm.predict import summarize


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
            t = time.perf_counter()
            ds = load_dataset(a.dataset, a.data_dir)
            post = fit(
                ds, mixer, likelihood=lik, num_chains=a.num_chains, num_warmup=a.num_warmup,
                num_samples=a.num_samples, seed=0, target_accept=0.95,
            )  # fmt: skip
            rep = {"mixer": mixer, "likelihood": lik, **summarize(post)}
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

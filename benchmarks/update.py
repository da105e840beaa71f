"""An update with new measurements against a cold refit on the same data.

Usage::

    lbmm update PARENT --observed NEW.csv --out A                   # auto: PSIS / SMC / refit
    lbmm update PARENT --observed NEW.csv --out B --method refit    # the cold refit
    python benchmarks/update.py A B [--out benchmarks/results/update.jsonl]

Per mixer entry: the method the update took and why, k̂ and the importance ESS, the time of
the update against the refit's fit (from the manifests), both fits' convergence bars, the
test-split scores of both (rms, CRPS, calibration score, 95 % coverage), and over the whole
prediction domain the difference of the predictive means in units of its Monte Carlo
standard error, sqrt(sd_A²/ESS_A + sd_B²/ESS_B) with each fit's smallest bulk ESS (a
conservative error): the share of nuclei beyond 3 and the median. One JSON line per entry.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


def main() -> None:
    from lbmm import load_run

    ap = argparse.ArgumentParser()
    ap.add_argument("updated")
    ap.add_argument("refit")
    ap.add_argument("--out", default="benchmarks/results/update.jsonl")
    args = ap.parse_args()
    a, b = load_run(args.updated), load_run(args.refit)
    pa, pb = a.predictions(), b.predictions()
    ma, mb = a.metrics()["mixers"], b.metrics()["mixers"]
    for key in a.keys:
        ra, rb = a.manifest["mixers"][key], b.manifest["mixers"][key]
        da, db = ra["diagnostics"], rb["diagnostics"]
        xa = pa[pa.mixer == key].set_index("nucleus")
        xb = pb[pb.mixer == key].set_index("nucleus").loc[xa.index]
        ess_a = da.get("ess_bulk_min") or ra["predict_draws"]
        ess_b = db.get("ess_bulk_min") or rb["predict_draws"]
        se = np.sqrt(xa["sd"] ** 2 / ess_a + xb["sd"] ** 2 / ess_b)
        z = np.abs(xa["mean"] - xb["mean"]) / se

        def test(m):
            if "test" not in m:  # every test nucleus was added
                return None
            t = m["test"]
            ecp = dict(zip(t["ecp"]["levels"], t["ecp"]["coverage"], strict=True))
            return {k: t[k] for k in ("n", "rms", "crps", "ecp_mean_abs")} | {
                "ecp95": ecp.get(0.95)
            }

        up = a.manifest["update"]["entries"][key]
        rec = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "updated": str(a.path),
            "refit": str(b.path),
            "mixer": key,
            "method": up["method"],
            "why": up["why"],
            "khat": up.get("khat"),
            "importance_ess": up.get("importance_ess"),
            "update_s": ra["fit_s"],
            "refit_s": rb["fit_s"],
            "time_ratio": ra["fit_s"] / rb["fit_s"] if rb["fit_s"] else None,
            "converged": [ra["converged"], rb["converged"]],
            "rhat_max": [da.get("rhat_max"), db.get("rhat_max")],
            "ess_bulk_min": [da.get("ess_bulk_min"), db.get("ess_bulk_min")],
            "test_updated": test(ma[key]),
            "test_refit": test(mb[key]),
            "domain_nuclei": int(z.size),
            "mean_diff_over_3se": float((z > 3).mean()),
            "mean_diff_median_se": float(np.median(z)),
            "run_wall_s": [a.manifest["wall_s"], b.manifest["wall_s"]],
        }
        print(json.dumps(rec), flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()

"""Density mixing (per-model σ_k) by NUTS, adaptive tempered SMC and ChEES-HMC, side by side.

Usage::

    python benchmarks/density.py --dataset kejzlar2023 --mixers linear dirichlet \\
        --methods nuts smc chees [--seed 0] [--particles 500] \\
        [--out benchmarks/results/density.jsonl]

For each mixer × method: one fit of the density likelihood on the dataset's training split
(NUTS: 4 chains × (1000 + ``--draws``); SMC: 4 populations × ``--particles`` with
``--smc-steps`` HMC moves per stage; ChEES: ``--chees-chains`` vectorized chains ×
(``--chees-warmup`` + ``--draws``)), then the convergence bars (largest R-hat, smallest bulk
ESS over the parameters, the predictive mean at the test nuclei and the log density), the
wall time, gradients, and on the test split the rms, CRPS and the calibration score (mean
|ECP − level| over 10–90 %), and the exchange of roles between the two models with the
largest σ_k (per chain, the share of draws in which the first has the larger). For SMC also
the log evidence and its spread over the populations. One JSON line per fit is appended to
``--out`` as it finishes (NUTS and ChEES: up to ``--max-draws`` per chain until the bars
hold).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


def one(ds, mixer: str, method: str, args) -> dict:
    from lbmm.inference import fit
    from lbmm.predict import evaluate, predict

    kw = dict(likelihood="density", num_chains=4, seed=args.seed, warn=False)
    if method == "smc":
        kw.update(method="smc", num_samples=args.particles,
                  smc={"mcmc_steps": args.smc_steps})  # fmt: skip
    elif method == "chees":
        kw.update(method="chees", num_chains=args.chees_chains, num_warmup=args.chees_warmup,
                  num_samples=args.draws, max_samples=args.max_draws)  # fmt: skip
    else:
        kw.update(num_warmup=1000, num_samples=args.draws, max_samples=args.max_draws)
    t0 = time.perf_counter()
    post = fit(ds, mixer, **kw)
    wall = time.perf_counter() - t0
    d = post.diagnostics
    ev = evaluate(predict(post, "test", seed=args.seed))
    row = {
        "dataset": args.dataset, "mixer": mixer, "method": method, "seed": args.seed,
        "wall_s": round(wall, 1), "grad_evals": d.get("grad_evals"),
        "rhat_max": d["rhat_max"], "ess_bulk_min": d["ess_bulk_min"],
        "converged": bool(d["converged"]), "problems": d.get("problems", []),
        "groups": d.get("groups", {}),
        "test_rms": ev["rms"], "test_crps": ev["crps"], "ecp_mean_abs": ev["ecp_mean_abs"],
        "ecp_95": ev["ecp"][0.95], "pit_ks_p": ev["pit_ks_p"],
        "sigma_mean": np.round(post.samples("sigma").mean(0), 4).tolist(),
        "weights_mean": {k: round(v, 4) for k, v in post.weights_mean().items()},
    }  # fmt: skip
    # the exchange: the two models with the largest mean σ_k, and per chain (population) the
    # share of draws in which the first has the larger σ (0.5 when the exchange is even)
    sig = post.idata.posterior["sigma"].values  # (chain, draw, model)
    a, b = np.argsort(sig.mean(axis=(0, 1)))[::-1][:2]
    row["exchange"] = {"models": [ds.models[a], ds.models[b]],
                       "share_per_chain": np.round((sig[..., a] > sig[..., b]).mean(axis=1),
                                                   3).tolist()}  # fmt: skip
    if method == "smc":
        row.update(log_evidence=d["log_evidence"], log_evidence_sd=d["log_evidence_sd"],
                   stages=[p["stages"] for p in d["sampling"]["populations"]],
                   particles=args.particles)  # fmt: skip
    else:
        row["draws_per_chain"] = d["sampling"].get("draws_per_chain")
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="kejzlar2023")
    p.add_argument("--data-dir", default=None, help="MassExplorer CSVs (kejzlar2023)")
    p.add_argument("--mixers", nargs="+", default=["linear", "dirichlet"])
    p.add_argument("--methods", nargs="+", default=["nuts", "smc"],
                   choices=["nuts", "smc", "chees"])  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--max-draws", type=int, default=8000)
    p.add_argument("--particles", type=int, default=500)
    p.add_argument("--smc-steps", type=int, default=10)
    p.add_argument("--chees-chains", type=int, default=8)
    p.add_argument("--chees-warmup", type=int, default=600)
    p.add_argument("--out", default="benchmarks/results/density.jsonl")
    args = p.parse_args(argv)

    from lbmm.data import load_dataset

    ds = load_dataset(args.dataset, args.data_dir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for mixer in args.mixers:
        for method in args.methods:
            row = one(ds, mixer, method, args)
            row["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            row["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
            row["load_1min"] = round(os.getloadavg()[0], 2)
            print(json.dumps(row), flush=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""LBMM+GPD with the HSGP basis against the exact GP on kejzlar2023, at fixed length scales.

With free length scales the exact GP refactorises a 514 × 514 kernel and differentiates through
the Cholesky factor at every gradient (tens of ms each on a 2-core CPU, see BENCHMARKS.md), so
a converged exact fit takes hours there. With the length scales fixed (option ``rho``, e.g. at
the posterior mean of the default HSGP fit) the kernel is factorised once per fit and both
variants cost about the same per gradient: what is left to compare is the basis approximation
itself, which is what the accuracy table of ``hsgp_accuracy.py`` measures on the kernel.

For each variant the script fits the model (4 × 1000 + 1000 by default), predicts train and
test, and computes the posterior mean of ā(x) = E[ω(x) | α(x)] at every nucleus of the domain
from thinned draws. It prints and writes (``--out``) the rms, ECP, convergence and the mean
absolute difference of the two weight maps.

    python benchmarks/hsgp_vs_exact.py --rho 6.5 4.7 --out hsgp_vs_exact.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import jax
import numpy as np

from lbmm.data import load_dataset
from lbmm.inference import fit
from lbmm.mixers.local import mean_weights
from lbmm.predict import summarize


def _run(ds, gp: str, rho, args) -> tuple[dict, np.ndarray]:
    opts = {"gp": gp, "rho": list(rho)}
    if gp == "hsgp" and args.hsgp_m:
        opts["hsgp_m"] = list(args.hsgp_m)
    t0 = time.perf_counter()
    post = fit(
        ds,
        "gp_dirichlet",
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        seed=args.seed,
        options=opts,
        warn=False,
    )
    wall = time.perf_counter() - t0
    summary = summarize(post, seed=0)
    samples = {k: post.samples(k) for k in post.idata.posterior.data_vars}
    S = next(iter(samples.values())).shape[0]
    keep = np.linspace(0, S - 1, min(S, args.map_draws)).astype(int)
    samples = {k: v[keep] for k, v in samples.items()}
    dom = ds.split("domain")
    abar = mean_weights(
        "gp_dirichlet", samples, dom.x, post.settings["options"], jax.random.PRNGKey(2)
    )
    keep_keys = ("train_rms", "test_rms", "sigma_mean", "rhat_max", "ess_bulk_min",
                 "hyper_rhat_max", "hyper_ess_bulk_min", "weights_test_rhat_max",
                 "weights_test_ess_bulk_min", "divergences", "ecp", "weights")  # fmt: skip
    row = {"gp": gp, "rho": list(rho), "wall_s": wall, **{k: summary[k] for k in keep_keys}}
    return row, abar.mean(axis=0)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rho", type=float, nargs=2, default=(6.5, 4.7), help="ρ_Z ρ_N")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hsgp-m", type=int, nargs=2, default=None)
    ap.add_argument("--map-draws", type=int, default=400, help="thinned draws for the maps")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--dataset", default="kejzlar2023")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    ds = load_dataset(args.dataset, args.data_dir)
    rows, maps = [], {}
    for gp in ("hsgp", "exact"):
        row, m = _run(ds, gp, args.rho, args)
        rows.append(row)
        maps[gp] = m
        print(json.dumps(row), flush=True)
    diff = np.abs(maps["hsgp"] - maps["exact"])
    dom = ds.split("domain")
    train_keys = set(zip(ds.split("train").Z, ds.split("train").N, strict=True))
    in_train = np.array([(z, n) in train_keys for z, n in zip(dom.Z, dom.N, strict=True)])
    result = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "settings": vars(args) | {"out": str(args.out)},
        "runs": rows,
        "test_rms_diff": abs(rows[0]["test_rms"] - rows[1]["test_rms"]),
        "map_mad_domain": float(diff.mean()),
        "map_mad_train": float(diff[in_train].mean()),
        "map_max_abs_diff": float(diff.max()),
        "n_domain": len(dom),
    }
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "settings")}))
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=str))
        tmp.replace(args.out)
    return result


if __name__ == "__main__":
    main()

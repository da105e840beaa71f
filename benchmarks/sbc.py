"""Simulation-based calibration of every mixer (:mod:`lbmm.inference.sbc`).

For each case (mixer × likelihood × options) ``--reps`` replications draw parameters and data
from the mixer's own prior on the synthetic design :func:`lbmm.inference.sbc.sbc_design`
(6 × 6 nuclei, 3 models, 2 held-out interior nuclei), fit by NUTS and rank the truth among
99 posterior draws. A χ² test (10 bins, 9 degrees of freedom) of each quantity's ranks gives
its p-value; with ~10 quantities per case, a few p-values below 0.05 are expected by chance,
so the table also gives the smallest p-value times the number of quantities (Bonferroni).

Usage::

    python benchmarks/sbc.py --reps 200 --out benchmarks/results/sbc.json
    python benchmarks/sbc.py --markdown benchmarks/results/sbc.json
    python benchmarks/sbc.py --figure benchmarks/results/sbc.json benchmarks/results/sbc_ranks.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import lbmm._jax  # noqa: F401  (first: float64)
from lbmm._util import write_json
from lbmm.inference.sbc import sbc, sbc_uniformity

#: GPD on the 6 × 6 design: a basis of 8 × 8 functions covers the GP over the ρ prior there.
_GPD = {"hsgp_m": [8, 8]}

#: name → (mixer, likelihood, options)
CASES = {
    "bma": ("bma", "mean", {}),
    "linear": ("linear", "mean", {}),
    "dirichlet": ("dirichlet", "mean", {}),
    "glm_dirichlet": ("glm_dirichlet", "mean", {}),
    "gp_dirichlet": ("gp_dirichlet", "mean", _GPD),
    "dirichlet_spread": ("dirichlet", "mean", {"noise": "spread"}),
    "dirichlet_student_t": ("dirichlet", "mean", {"noise": "student_t"}),
    "dirichlet_gp": ("dirichlet", "mean", {"noise": "gp"}),
    "glm_dirichlet_spread": ("glm_dirichlet", "mean", {"noise": "spread"}),
    "gp_dirichlet_spread": ("gp_dirichlet", "mean", {**_GPD, "noise": "spread"}),
    "glm_dirichlet_latent": ("glm_dirichlet", "mean", {"omega": "latent"}),
    "dirichlet_density": ("dirichlet", "density", {}),
}


def run_case(name: str, reps: int, seed: int, warmup: int, samples: int) -> dict:
    mixer, likelihood, options = CASES[name]
    t0 = time.perf_counter()

    def tick(i, n):
        if i % 20 == 0 or i == n:
            print(f"  {name}: {i}/{n} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    ds = sbc(
        mixer,
        num_reps=reps,
        likelihood=likelihood,
        options=options,
        seed=seed,
        num_warmup=warmup,
        num_samples=samples,
        progress=tick,
    )
    table = sbc_uniformity(ds)
    sampled = "rhat_max" in ds  # BMA is closed form: no sampler diagnostics
    return {
        "mixer": mixer,
        "likelihood": likelihood,
        "options": options,
        "reps": reps,
        "seed": seed,
        "num_warmup": warmup,
        "num_samples": samples,
        "num_chains": int(ds.attrs.get("num_chains", 0)),
        "num_draws": int(ds.attrs["num_draws"]),
        "wall_s": time.perf_counter() - t0,
        "quantities": {
            q: {k: table.loc[q, k] for k in ("chi2", "p", "counts", "mean_shift")}
            for q in table.index
        },
        "p_min": float(table["p"].min()),
        "p_min_bonferroni": float(min(1.0, table["p"].min() * len(table))),
        "sampler": ds.attrs["sampler"],
        "rhat_max_median": float(np.nanmedian(ds["rhat_max"].values)) if sampled else None,
        "share_rhat_over_1_01": float(np.mean(ds["rhat_max"].values > 1.01)) if sampled else None,
        "ess_bulk_min_median": float(np.nanmedian(ds["ess_bulk_min"].values)) if sampled else None,
        "reps_with_divergences": int(np.sum(ds["divergences"].values > 0)) if sampled else None,
    }


def markdown(res: dict) -> str:
    lines = [
        "| case | reps | quantities | smallest χ² p | × quantities | p per quantity | "
        "reps with R-hat > 1.01 | reps with divergences | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in res["cases"].items():
        ps = ", ".join(f"{q} {v['p']:.2f}" for q, v in r["quantities"].items())
        closed = r.get("sampler") == "closed form"
        share = "closed form" if closed else f"{r['share_rhat_over_1_01']:.2f}"
        divs = "closed form" if closed else r["reps_with_divergences"]
        lines.append(
            f"| {name} | {r['reps']} | {len(r['quantities'])} | {r['p_min']:.3f} | "
            f"{r['p_min_bonferroni']:.2f} | {ps} | {share} | {divs} | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def figure(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    cases = list(res["cases"])
    nq = max(len(r["quantities"]) for r in res["cases"].values())
    fig, axes = plt.subplots(
        len(cases), nq, figsize=(1.6 * nq, 1.3 * len(cases)), squeeze=False, sharey=True
    )
    for i, name in enumerate(cases):
        r = res["cases"][name]
        reps, bins = r["reps"], 10
        lo, hi = stats.binom.ppf([0.005, 0.995], reps, 1 / bins)
        for j in range(nq):
            ax = axes[i, j]
            ax.set_xticks([])
            if j >= len(r["quantities"]):
                ax.axis("off")
                continue
            q, v = list(r["quantities"].items())[j]
            ax.axhspan(lo, hi, color="0.85")
            ax.bar(np.arange(bins), v["counts"], width=1.0, color="C0")
            ax.set_title(f"{q}\np={v['p']:.2f}", fontsize=6)
            ax.tick_params(labelsize=5)
        axes[i, 0].set_ylabel(name, fontsize=6)
    fig.suptitle("SBC rank histograms (grey: 99 % band of a uniform bin count)", fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=130)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-warmup", type=int, default=500)
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/sbc.json"))
    ap.add_argument("--markdown", type=Path, help="print the table of a results file")
    ap.add_argument("--figure", nargs=2, type=Path, metavar=("RESULTS", "PNG"))
    a = ap.parse_args()
    if a.markdown:
        print(markdown(json.loads(a.markdown.read_text())))
        return
    if a.figure:
        figure(json.loads(a.figure[0].read_text()), a.figure[1])
        return
    res = json.loads(a.out.read_text()) if a.out.exists() else {}
    res.setdefault("cases", {})
    res.update(
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_start": os.getloadavg(),
        },
    )
    for name in a.cases:
        res["cases"][name] = run_case(name, a.reps, a.seed, a.num_warmup, a.num_samples)
        res["machine"]["load_avg_end"] = os.getloadavg()
        write_json(a.out, res)  # after every case: a long run can be stopped and resumed
    print(markdown(res))


if __name__ == "__main__":
    main()

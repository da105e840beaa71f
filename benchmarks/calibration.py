"""Calibration of every mixer × noise model on validation folds inside the training data.

The noise model of a mixer decides how its predictive law widens where the data end. It is
chosen here, on folds cut from the *training* split (:mod:`lbmm.data.folds`): the fold's
training nuclei fit the mixer, its held-out nuclei score it. The test split is not read.

For each dataset, fold kind, mixer and noise model: rms of the predictive mean, PIT KS p,
share outside the 95 % interval, mean and max |ECP − level| over 10 … 90 %, CRPS, mean log
predictive density, and the fit's R-hat / bulk ESS (parameters, held-out means, log density).
The bars a calibrated predictor meets at the fold's size come from a simulation of uniform
PITs (:func:`ecp_dev_quantiles`).

Usage::

    python benchmarks/calibration.py --dataset default --folds neutron_rich \\
        --mixers dirichlet glm_dirichlet gp_dirichlet \\
        --noise constant spread gp student_t --out benchmarks/results/calibration_default.json

``--data-dir`` (or ``$LBMM_DATA_DIR``) gives the MassExplorer tables for kejzlar2023.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import lbmm._jax  # noqa: F401  (first: float64)
from lbmm._util import write_json
from lbmm.data import apply_fold, load_dataset, make_folds
from lbmm.inference import fit
from lbmm.predict import SUMMARY_ECP_LEVELS, evaluate, predict

SCORES = ("rms", "pit_ks_p", "outside_95", "ecp_mean_abs", "ecp_max_abs", "pit_sd", "crps",
          "mlpd", "interval_score_95", "n")  # fmt: skip


def ecp_dev_quantiles(n: int, reps: int = 20000, seed: int = 0) -> dict[str, float]:
    """Median and 90th percentile of mean |ECP − level| (10 … 90 %) for n uniform PITs: what
    a perfectly calibrated predictor shows on n nuclei."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=(reps, n))
    lv = np.asarray(SUMMARY_ECP_LEVELS)
    # equal-tailed interval at level l covers u when |u − ½| <= l / 2
    cov = (np.abs(u[:, :, None] - 0.5) <= lv[None, None, :] / 2).mean(axis=1)
    dev = np.abs(cov - lv[None, :]).mean(axis=1)
    return {"median": float(np.median(dev)), "p90": float(np.quantile(dev, 0.9))}


def run_one(fd, mixer: str, noise: str, a) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = fit(fd, mixer, num_chains=a.num_chains, num_warmup=a.num_warmup,
                   num_samples=a.num_samples, seed=a.seed, options={"noise": noise},
                   target_accept=a.target_accept)  # fmt: skip
    ev = evaluate(predict(post, "test", seed=a.seed + 1))
    d = post.diagnostics
    return {
        **{k: ev[k] for k in SCORES},
        "pit": ev["pit"],
        "rhat_max": d.get("rhat_max"),
        "ess_bulk_min": d.get("ess_bulk_min"),
        "divergences": d.get("divergences", 0),
        "sigma_mean": float(post.samples("sigma").mean()),
        "wall_s": time.perf_counter() - t0,
    }


def markdown(res: dict) -> str:
    """The results as a markdown table, one row per fold × mixer × noise model."""
    lines = ["| fold (n held out; calibrated 90th pct of mean abs dev) | mixer | noise | rms | "
             "PIT KS p | outside 95 % | mean abs(ECP − level) | CRPS | mlpd | R-hat | ESS |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for key, r in res["results"].items():
        fold, mixer, noise = key.split("|")
        f = res["folds"][fold]
        lines.append(
            f"| {fold} ({f['held_out']}; {f['calibrated_ecp_dev']['p90']:.3f}) | {mixer} | "
            f"{noise} | {r['rms']:.3f} | {r['pit_ks_p']:.3f} | {r['outside_95']:.2f} | "
            f"{r['ecp_mean_abs']:.3f} | {r['crps']:.3f} | {r['mlpd']:.2f} | "
            f"{r['rhat_max']:.3f} | {r['ess_bulk_min']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="default")
    p.add_argument("--data-dir", default=os.environ.get("LBMM_DATA_DIR"))
    p.add_argument("--folds", nargs="+", default=["neutron_rich"])
    p.add_argument("--mixers", nargs="+", default=["dirichlet", "glm_dirichlet", "gp_dirichlet"])
    p.add_argument("--noise", nargs="+", default=["constant", "spread", "gp", "student_t"])
    p.add_argument("--num-chains", type=int, default=2)
    p.add_argument("--num-warmup", type=int, default=500)
    p.add_argument("--num-samples", type=int, default=500)
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--markdown", action="store_true", help="print the table of --out and stop")
    a = p.parse_args()
    if a.markdown:
        print(markdown(json.loads(Path(a.out).read_text())))
        return
    ds = load_dataset(a.dataset, data_dir=a.data_dir)
    out_path = Path(a.out)
    res = json.loads(out_path.read_text()) if out_path.exists() else {}
    res.setdefault("results", {})
    res.update({
        "dataset": a.dataset,
        "settings": {k: getattr(a, k) for k in ("num_chains", "num_warmup", "num_samples",
                                                 "target_accept", "seed")},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    })  # fmt: skip
    res.setdefault("folds", {})
    for kind in a.folds:
        for fold in make_folds(ds, kind):
            fd = apply_fold(ds, fold)
            n = int(np.isfinite(fd.split("test").y).sum())
            res["folds"][fold.name] = {"held_out": n, "train": int(fold.train.size),
                                       "calibrated_ecp_dev": ecp_dev_quantiles(n)}  # fmt: skip
            for mixer in a.mixers:
                for noise in a.noise:
                    key = f"{fold.name}|{mixer}|{noise}"
                    if key in res["results"]:
                        continue
                    r = run_one(fd, mixer, noise, a)
                    res["results"][key] = r
                    print(f"{key}: rms {r['rms']:.3f} KS p {r['pit_ks_p']:.3f} out95 "
                          f"{r['outside_95']:.2f} |ECP-l| {r['ecp_mean_abs']:.3f} CRPS "
                          f"{r['crps']:.3f} mlpd {r['mlpd']:.3f} R-hat {r['rhat_max']:.3f} "
                          f"ESS {r['ess_bulk_min']:.0f} {r['wall_s']:.0f} s",
                          flush=True)  # fmt: skip
                    write_json(out_path, res)


if __name__ == "__main__":
    main()

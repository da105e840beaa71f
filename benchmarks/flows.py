"""Fidelity of normalizing flows fitted to a run's posteriors (``lbmm flow``).

Usage::

    python benchmarks/flows.py RUN [--mixers KEY ...] [--seed 0] [--option rank=128] \\
        [--out benchmarks/results/flows.jsonl]

For each sampled entry of the run: fit the flow (``Run.fit_flows``, written to
``RUN/flows``), then compare, on the run's test split, the posterior predictive from 1,000
flow draws with that from 1,000 MCMC draws (the run's own ``[predict] max_draws`` thinning):
rms of the predictive mean, CRPS, coverage of the 95 % intervals and the calibration score
(mean |ECP − level| over 10–90 %). The Monte Carlo yardstick is the same comparison between
two halves of the MCMC draws (chains 0–1 against chains 2–3, 500 draws each, against 500 flow
draws): a flow is faithful when its differences are of that size. Also: the sidecar's
held-out checks (per-coordinate quantile errors in held-out sds, MMD test against held-out
draws, held-out log density against a Gaussian fitted to the same draws), the fit time and
the file sizes (flow files against the posterior NetCDF). One JSON line per entry.
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


def scores(post, ds, seed):
    from lbmm.predict import mixer_metrics, predict

    where = ds.split_indices("test")
    nuclei = [(int(ds.Z[i]), int(ds.N[i])) for i in where]
    pred = predict(post, nuclei, seed=seed)
    t = mixer_metrics(post, pred, ds, where)["test"]
    ecp = dict(zip(t["ecp"]["levels"], t["ecp"]["coverage"], strict=True))
    return {k: t[k] for k in ("rms", "crps", "mlpd", "ecp_mean_abs")} | {"ecp95": ecp.get(0.95)}


def main() -> None:
    import jax
    from scipy import stats

    from lbmm import load_run
    from lbmm.inference.flow import unconstrained_draws
    from lbmm.results import thin

    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--mixers", nargs="+")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/flows.jsonl")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="flow setting, e.g. rank=128 (value read as JSON)")  # fmt: skip
    args = ap.parse_args()
    options = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.option)}
    run = load_run(args.run)
    keys = [k for k in (args.mixers or run.keys) if run.manifest["mixers"][k]["mixer"] != "bma"]
    for key in keys:
        t0 = time.perf_counter()
        fit = run.fit_flows([key], seed=args.seed, options=options or None, progress=print)[key]
        flow_s = time.perf_counter() - t0
        post = run.posterior(key)
        ds = post.dataset
        flow = run.flow(key)
        seed = int(run.manifest["mixers"][key]["seed"]) + 1
        mc = scores(thin(post, 1000), ds, seed)
        fl = scores(flow.posterior(jax.random.PRNGKey(seed + 1), 1000), ds, seed)
        half_a = thin(type(post)(post.mixer, post.idata.isel(chain=[0, 1]), ds, post.settings,
                                 post.diagnostics), 500)  # fmt: skip
        half_b = thin(type(post)(post.mixer, post.idata.isel(chain=[2, 3]), ds, post.settings,
                                 post.diagnostics), 500)  # fmt: skip
        ha, hb = scores(half_a, ds, seed), scores(half_b, ds, seed)
        fl500 = scores(flow.posterior(jax.random.PRNGKey(seed + 2), 500), ds, seed)
        draws, _, _ = unconstrained_draws(post)
        _, d, dim = draws.shape
        cut = round(d * 0.75)
        gauss = None
        idx = np.asarray(flow.flow_index)
        if idx.size:
            tr = draws[:, :cut].reshape(-1, dim)[:, idx]
            he = draws[:, cut:].reshape(-1, dim)[:, idx]
            gauss = float(
                stats.multivariate_normal(tr.mean(0), np.cov(tr.T), allow_singular=True)
                .logpdf(he)
                .mean()
            )
        base = run.flow_path(key)
        stem = str(base)[: -len(".eqx")]
        sizes = {s: Path(stem + s).stat().st_size for s in (".eqx", ".json", ".data.nc")}
        nc = (run.path / run.manifest["mixers"][key]["posterior"]).stat().st_size
        rec = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "load1": os.getloadavg()[0],
            "run": str(run.path),
            "mixer": key,
            "dim": dim,
            "flow_dim": int(idx.size),
            "latent_dim": len(flow.latent_index),
            "options": options,
            "fit": fit,
            "flow_s": flow_s,
            "gauss_held_out_log_prob": gauss,
            "mcmc_1000": mc,
            "flow_1000": fl,
            "mcmc_half_a_500": ha,
            "mcmc_half_b_500": hb,
            "flow_500": fl500,
            "bytes": {"flow": sum(sizes.values()), **sizes, "posterior_nc": nc},
        }
        print(json.dumps(rec), flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()

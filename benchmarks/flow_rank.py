"""Rank of the Gaussian latent block of an HSGP posterior's flow, judged on the training
nuclei (not the test split): the flow's predictive mean and sd against the MCMC draws'.

Usage::

    python benchmarks/flow_rank.py RUN [--mixer gp_dirichlet_spread] [--ranks 32 128 512 1500]

For each rank: the median over the training nuclei of |Δ mean| / se (se from the MCMC bulk
ESS and 1,000 flow draws), the share beyond 3, and the median ratio of the predictive sds
(flow / MCMC).
"""

from __future__ import annotations

import argparse


def main() -> None:
    import jax
    import numpy as np

    from lbmm import load_run
    from lbmm.inference.flow import fit_flow
    from lbmm.predict import predict
    from lbmm.results import thin

    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--mixer", default="gp_dirichlet_spread")
    ap.add_argument("--ranks", nargs="+", type=int, default=[32, 128, 512, 1500])
    args = ap.parse_args()
    p = load_run(args.run).posterior(args.mixer)
    ds = p.dataset
    nuc = [(int(ds.Z[i]), int(ds.N[i])) for i in ds.split_indices("train")]
    mc = predict(thin(p, 1000), nuc, seed=1)
    for r in args.ranks:
        pf = fit_flow(p, key=jax.random.PRNGKey(0), options={"rank": r})
        fl = predict(pf.posterior(jax.random.PRNGKey(2), 1000), nuc, seed=1)
        se = np.sqrt(mc.sd**2 / p.diagnostics["ess_bulk_min"] + fl.sd**2 / 1000)
        z = np.abs(mc.mean - fl.mean) / se
        print(f"rank {r}: {len(nuc)} training nuclei, median |Δ mean|/se "
              f"{np.median(z):.2f}, share > 3 {(z > 3).mean():.3f}, median sd ratio "
              f"{np.median(fl.sd / mc.sd):.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

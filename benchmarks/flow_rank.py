"""Rank of the Gaussian latent block of an HSGP posterior's flow, judged on the training
nuclei (not the test split): the flow's predictive mean and sd against the MCMC draws'.

Usage: ``python benchmarks/flow_rank.py`` (reads the default study's run at
``/work/reuse/first``; edit RUN for another). For each rank: the median over the training
nuclei of |Δ mean| / se (se from the MCMC bulk ESS and 1,000 flow draws), the share beyond 3,
and the median ratio of the predictive sds (flow / MCMC).
"""

RUN = "/work/reuse/first"

import jax
import numpy as np

from lbmm.inference import Posterior
from lbmm.inference.flow import fit_flow
from lbmm.predict import predict
from lbmm.results import thin

p = Posterior.load(f"{RUN}/posterior/gp_dirichlet_spread.nc")
ds = p.dataset
tr = ds.split_indices("train")
nuc = [(int(ds.Z[i]), int(ds.N[i])) for i in tr]
mc = predict(thin(p, 1000), nuc, seed=1)
for r in (32, 128, 512, 1500):
    pf = fit_flow(p, key=jax.random.PRNGKey(0), options={"rank": r})
    fl = predict(pf.posterior(jax.random.PRNGKey(2), 1000), nuc, seed=1)
    se = np.sqrt(mc.sd**2 / p.diagnostics["ess_bulk_min"] + fl.sd**2 / 1000)
    z = np.abs(mc.mean - fl.mean) / se
    print(
        r,
        "train nuclei",
        len(nuc),
        "median |dmean|/se",
        round(float(np.median(z)), 2),
        "share>3",
        round(float((z > 3).mean()), 3),
        "sd ratio",
        round(float(np.median(fl.sd / mc.sd)), 3),
        flush=True,
    )

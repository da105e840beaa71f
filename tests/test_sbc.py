"""Simulation-based calibration (lbmm.inference.sbc): the suite's small version.

The full check (200 replications of every mixer) is ``benchmarks/sbc.py``; here a few dozen
replications of GBMM+D and of BMA must look uniform, and the same machinery must flag a model
whose fitted density lacks a Jacobian. Seeds are fixed, so each assertion is deterministic;
the thresholds say how unlikely a failure would be for a correct model.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro import handlers

from lbmm.data.errors import OptionError
from lbmm.inference.sbc import sbc, sbc_design, sbc_ranks, sbc_uniformity
from lbmm.mixers import get_mixer
from lbmm.mixers.predictive import predictive_mean

SETTINGS = {"num_warmup": 200, "num_samples": 250, "num_chains": 2, "num_draws": 49}
DESIGN = {"n_z": 4, "n_n": 5}


def _bonferroni_p(ranks) -> float:
    t = sbc_uniformity(ranks, bins=5)
    return float(min(1.0, t["p"].min() * len(t)))


def test_design_holds_out_two_interior_nuclei():
    d = sbc_design(3, n_z=6, n_n=6)
    held = d.split("heldout")
    assert len(held.y) == 2 and len(d.split("train").y) == 34
    for z, n in held.x:  # interior: not on the grid's edge
        assert 20 < z < 25 and 28 < n < 33
    F = d.split("train").F
    assert np.ptp(F - F.mean(axis=1, keepdims=True)) > 0.5  # the models disagree
    with pytest.raises(OptionError, match="num_models"):
        sbc_design(1)


def test_uniformity_counts_and_refuses_bins_that_do_not_divide():
    import xarray as xr

    r = xr.Dataset(
        {"rank": (("rep", "quantity"), np.array([[0], [49], [20], [19]]))},
        coords={"quantity": ["a"]},
        attrs={"num_draws": 49},
    )
    t = sbc_uniformity(r, bins=5)
    assert t.loc["a", "counts"] == [1, 1, 1, 0, 1]  # 0 | 19 | 20 | 49 in bins of 10 ranks
    with pytest.raises(OptionError, match="divisor"):
        sbc_uniformity(r, bins=7)


def test_gbmm_dirichlet_ranks_are_uniform():
    """60 replications of GBMM+D drawn from its own prior: every quantity's ranks (α_k, σ,
    the predictive mean at the two held-out nuclei) pass a χ² test in 5 bins at a
    Bonferroni-corrected 0.001 (a correct model fails this with probability < 0.001)."""
    ranks = sbc("dirichlet", num_reps=60, design=sbc_design(3, **DESIGN), seed=0, **SETTINGS)
    assert set(ranks["quantity"].values) == {
        "alpha[0]",
        "alpha[1]",
        "alpha[2]",
        "sigma",
        "mean[0]",
        "mean[1]",
    }
    assert _bonferroni_p(ranks) >= 1e-3, sbc_uniformity(ranks, bins=5)


def test_bma_ranks_are_uniform():
    """BMA's exact posterior against its conjugate prior (model index with random
    tie-breaking, δ, σ, held-out means): 100 replications, same criterion."""
    ranks = sbc("bma", num_reps=100, design=sbc_design(3, **DESIGN), seed=0, num_draws=49)
    assert _bonferroni_p(ranks) >= 1e-3, sbc_uniformity(ranks, bins=5)


def test_a_wrong_jacobian_is_caught():
    """The fitted density of GBMM+D with the log-Jacobian of α's log transform counted twice
    (density × Π α_k in α-space: a sign slip in a hand-written transform) against the correct
    simulator: the posterior of α sits too high, the ranks of α pile up low, χ² p < 1e-6 at
    the same 60 replications."""
    design = sbc_design(3, **DESIGN)
    spec = get_mixer("dirichlet")
    train, held = design.split("train"), design.split("heldout")
    opts = spec.resolve_options(train, None, "mean")
    model = functools.partial(
        spec.model,
        jnp.asarray(train.F),
        jnp.asarray(train.x),
        likelihood_kind="mean",
        priors=None,
        **opts,
    )

    def broken(y=None):
        with handlers.trace() as tr:
            model(y=y)
        numpyro.factor("jacobian_twice", jnp.sum(jnp.log(tr["alpha"]["value"])))

    def predict(draws, y):
        return predictive_mean("dirichlet", draws, held.F, held.x, opts, "mean")

    import jax

    ranks = sbc_ranks(
        model, broken, predict, num_reps=60, key=jax.random.PRNGKey(0), dense_mass=True, **SETTINGS
    )
    t = sbc_uniformity(ranks, bins=5)
    alpha = t.loc[["alpha[0]", "alpha[1]", "alpha[2]"]]
    assert alpha["p"].min() < 1e-6, t
    assert (alpha["mean_shift"] < 0).all(), t


def test_prior_names_and_bma_settings_are_checked_before_any_fit():
    from numpyro import distributions as dist

    with pytest.raises(OptionError, match="unknown prior 'alpah'"):
        sbc("dirichlet", num_reps=2, priors={"alpah": dist.HalfNormal(1.0)})
    with pytest.raises(OptionError, match="unknown prior 'sigam'"):
        sbc("dirichlet", num_reps=2, fit_priors={"sigam": dist.HalfNormal(1.0)})
    with pytest.raises(OptionError, match="mixer 'bma'"):
        sbc("bma", num_reps=2, options={"noise": "spread"})


def test_bma_reports_no_sampler_diagnostics():
    ranks = sbc("bma", num_reps=3, design=sbc_design(3, **DESIGN), num_draws=49)
    assert ranks.attrs["sampler"] == "closed form"
    assert "rhat_max" not in ranks and "divergences" not in ranks

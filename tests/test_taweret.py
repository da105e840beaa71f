"""lbmm's mixers behind Taweret's ``BaseMixer`` (``lbmm.taweret``).

Where Taweret's own mixer tests apply they are used as they ship: the mixture likelihoods are
checked against the reference functions of ``Taweret/tests/test_bivariate_linear.py``
(``L_BMMoC``: a mixture of densities; ``L_BMMmean``: a mixture of means), and the fits are
checked the way its ``test_trees.py`` checks its mixer (weights, predictions and σ against a
known truth).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

pytest.importorskip("Taweret", reason="the taweret extra is not installed")
from Taweret.core.base_mixer import BaseMixer

from lbmm.data import OptionError
from lbmm.taweret import LbmmMixer

Z, N = np.meshgrid(np.arange(20, 35), np.arange(28, 48), indexing="ij")
X = np.stack([Z.ravel(), N.ravel()], axis=1)  # 300 nuclei


def f1(x):
    return 8.0 + 0.01 * x[:, 0] + 0.3 * np.sin(x[:, 1] / 3.0)


def f2(x):
    return 8.2 - 0.005 * x[:, 1] + 0.3 * np.cos(x[:, 0] / 4.0)


class Model:
    """A model the way Taweret writes them: evaluate(x) returns (mean, sd)."""

    def __init__(self, f):
        self.f = f

    def evaluate(self, x):
        return self.f(x), np.zeros(len(x))


def test_it_is_a_taweret_mixer_with_every_method():
    m = LbmmMixer({"a": Model(f1), "b": f2})
    assert isinstance(m, BaseMixer)  # instantiable: every abstract method is implemented
    assert not type(m).__abstractmethods__  # none of BaseMixer's left unimplemented
    assert set(m.prior) == {"alpha", "sigma"}
    assert m.model_predictions(X[:3]).shape == (3, 2)


def test_density_likelihood_is_taweret_bmmoc():
    """Mixing densities with one σ for both models is Taweret's BMMC likelihood."""
    from Taweret.tests.test_bivariate_linear import L_BMMoC

    x = X[:40]
    y = 0.6 * f1(x) + 0.4 * f2(x) + 0.1 * np.random.default_rng(1).standard_normal(40)
    m = LbmmMixer({"a": f1, "b": f2}, likelihood="density")
    cov = np.diag(np.full(40, 0.15**2))
    for w in (0.2, 0.6, 0.95):
        params = {"weights": np.array([w, 1 - w]), "sigma": np.array([0.15, 0.15]),
                  "alpha": np.ones(2)}  # fmt: skip
        ours = m.mix_loglikelihood(params, x, y)
        assert ours == pytest.approx(L_BMMoC(f1(x) - y, f2(x) - y, cov, w), rel=1e-10)
    # and a σ per model, which Taweret's function does not have, against SciPy
    params = {"weights": np.array([0.3, 0.7]), "sigma": np.array([0.1, 0.3]), "alpha": np.ones(2)}
    ref = np.sum(np.log(0.3 * stats.norm.pdf(y, f1(x), 0.1) + 0.7 * stats.norm.pdf(y, f2(x), 0.3)))
    assert m.mix_loglikelihood(params, x, y) == pytest.approx(ref, rel=1e-10)


def test_mean_likelihood_is_taweret_bmmmean():
    """Mixing means: differences of log likelihood at equal σ equal Taweret's BMMmean (its
    ``gaussian_LL`` writes the normalising constant as −n / (2 log 2π), which cancels in a
    difference); the value itself against SciPy."""
    from Taweret.tests.test_bivariate_linear import L_BMMmean

    x = X[:40]
    y = 0.6 * f1(x) + 0.4 * f2(x) + 0.1 * np.random.default_rng(2).standard_normal(40)
    m = LbmmMixer({"a": f1, "b": f2}, "linear")
    cov = np.diag(np.full(40, 0.1**2))

    def ours(w):
        return m.mix_loglikelihood({"weights": np.array([w, 1 - w]), "sigma": np.array(0.1)}, x, y)

    def taweret(w):
        return L_BMMmean(f1(x) - y, f2(x) - y, cov, w)

    assert ours(0.3) - ours(0.8) == pytest.approx(taweret(0.3) - taweret(0.8), rel=1e-10)
    ref = stats.norm.logpdf(y, 0.3 * f1(x) + 0.7 * f2(x), 0.1).sum()
    assert ours(0.3) == pytest.approx(ref, rel=1e-10)


def test_prior_predict_follows_set_prior():
    """With two equal models y = f + σε, so the prior predictive sd is √E[σ²] = √(a(a+1))/b
    for σ ~ Gamma(a, b). 4000 draws: the sd's Monte Carlo error is < 2 %; tolerance 6 %."""
    m = LbmmMixer({"a": f1, "b": f1})
    x = X[:3]
    _, mean, ci, sd = m.prior_predict(x, n_sample=4000)
    assert mean == pytest.approx(f1(x), abs=0.05)
    assert sd == pytest.approx(np.full(3, np.sqrt(5 * 6) / 10), rel=0.06)  # Gamma(5, 10)
    assert ci.shape == (2, 3)
    m.set_prior({"sigma": "Gamma(50, 1000)"})
    _, _, _, sd = m.prior_predict(x, n_sample=4000)
    assert sd == pytest.approx(np.full(3, np.sqrt(50 * 51) / 1000), rel=0.06)


@pytest.fixture(scope="module")
def trained():
    """GBMM+D on 200 nuclei of y = 0.7 f1 + 0.3 f2 + 0.05 ε; 100 more held out."""
    rng = np.random.default_rng(0)
    y = 0.7 * f1(X) + 0.3 * f2(X) + 0.05 * rng.standard_normal(len(X))
    table = pd.Series(f2(X), index=pd.MultiIndex.from_arrays([X[:, 0], X[:, 1]]))
    m = LbmmMixer({"a": Model(f1), "b": table}, "dirichlet", num_chains=2, num_warmup=500,
                  num_samples=1000, seed=0, warn=False)  # fmt: skip
    post = m.train(X[:200], y[:200])
    return m, post, y


def test_train_recovers_the_weights_and_sigma(trained):
    """Checked the way Taweret's test_trees checks its mixer, with tolerances of four
    posterior sd (the posterior mean differs from the truth by about one)."""
    m, post, _ = trained
    assert post.diagnostics["converged"], post.diagnostics["problems"]
    w = post.samples("weights")
    assert abs(w[:, 0].mean() - 0.7) < 4 * w[:, 0].std()
    s = post.samples("sigma")
    assert abs(s.mean() - 0.05) < 4 * s.std()
    _, wmean, wci, _ = m.predict_weights(X[200:210])
    assert wmean.shape == (10, 2) and wci.shape == (2, 10, 2)
    assert np.allclose(wmean.sum(axis=1), 1.0)
    assert set(m.map) >= {"weights", "sigma"}
    assert m.posterior["weights"].dims == ("chain", "draw", "model")


def test_predict_covers_held_out_nuclei(trained):
    """90 % predictive intervals at 100 held-out nuclei: coverage within 0.9 ± 0.1 (the
    binomial sd is 0.03)."""
    m, _, y = trained
    draws, mean, ci, _ = m.predict(X[200:], CI=(5, 95))
    assert draws.shape[1] == 100 and mean.shape == (100,) and ci.shape == (2, 100)
    inside = (y[200:] >= ci[0]) & (y[200:] <= ci[1])
    assert abs(inside.mean() - 0.9) <= 0.1
    assert np.sqrt(np.mean((mean - y[200:]) ** 2)) < 0.07
    # evaluate at the MAP draw: the noise-free mixture, within the data's noise of the truth
    truth = 0.7 * f1(X[200:]) + 0.3 * f2(X[200:])
    assert np.max(np.abs(m.evaluate(m.map, X[200:], [[], []]) - truth)) < 0.05


def test_a_local_mixer_follows_weights_that_change_over_the_chart():
    """LBMM+GLD on y = ω(Z) f1 + (1 − ω(Z)) f2 with ω rising from 0.1 at Z = 20 to 0.9 at
    Z = 34: the fitted mean weight of f1 is below 0.5 at the low-Z edge and above at the
    high-Z edge."""
    rng = np.random.default_rng(3)
    om = 0.1 + 0.8 * (X[:, 0] - 20) / 14
    y = om * f1(X) + (1 - om) * f2(X) + 0.03 * rng.standard_normal(len(X))
    m = LbmmMixer({"a": f1, "b": f2}, "glm_dirichlet", num_chains=2, num_warmup=300,
                  num_samples=300, seed=0, warn=False)  # fmt: skip
    m.train(X, y)
    lo, hi = X[X[:, 0] == 20], X[X[:, 0] == 34]
    assert m.predict_weights(lo)[1][:, 0].mean() < 0.5 < m.predict_weights(hi)[1][:, 0].mean()


def test_bad_input_is_refused():
    with pytest.raises(OptionError, match="unknown fit setting"):
        LbmmMixer({"a": f1, "b": f2}, num_sample=10)
    with pytest.raises(OptionError, match=r"unknown option\(s\) \['nosie'\]"):
        LbmmMixer({"a": f1, "b": f2}, options={"nosie": "spread"})
    with pytest.raises(OptionError, match="closed form"):
        LbmmMixer({"a": f1, "b": f2}, "bma")
    with pytest.raises(ValueError, match="at least two"):
        LbmmMixer({"a": f1})
    m = LbmmMixer({"a": f1, "b": pd.Series([1.0], index=pd.MultiIndex.from_tuples([(20, 28)]))})
    with pytest.raises(OptionError, match="no prior 'beta'"):
        m.set_prior({"beta": "Normal(0, 1)"})
    with pytest.raises(ValueError, match="model 'b' has no value at Z=20, N=29"):
        m.model_predictions(np.array([[20, 28], [20, 29]]))
    with pytest.raises(ValueError, match=r"\(n, 2\) array"):
        m.model_predictions(np.array([20, 28]))
    with pytest.raises(ValueError, match="non-negative integers"):
        m.model_predictions(np.array([[20.5, 28]]))
    with pytest.raises(ValueError, match="no parameters"):
        m.evaluate({"weights": np.array([0.5, 0.5]), "sigma": np.array(0.1)}, [[20, 28]], [[1.0]])
    with pytest.raises(RuntimeError, match="train"):
        m.predict(np.array([[20, 28]]))
    with pytest.raises(ValueError, match="y_exp: expected 1 values"):
        m.train(np.array([[20, 28]]), [1.0, 2.0])

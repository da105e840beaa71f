"""GP systematic corrections: marginal likelihood, recovery of a known residual, no leakage of
test data, kejzlar2023 against the paper's corrected column, and input errors."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from lbmm.corrections import (
    Corrections,
    _nlml_and_grad,
    _nlml_value,
    correct,
    fit_corrections,
    log_marginal_likelihood,
    se_kernel,
)
from lbmm.data import Dataset, load_dataset

NOISE = 0.05


def smooth_residual(z: np.ndarray, n: np.ndarray) -> np.ndarray:
    """A known residual, smooth on the scale of the even-even grid step (2)."""
    return 0.3 + 0.8 * np.sin(z / 6.0) * np.cos(n / 8.0)


def trend_residual(z: np.ndarray, n: np.ndarray) -> np.ndarray:
    return -0.2 + 0.5 * (z - 25.0) / 15.0 + 0.3 * np.exp(-((n - 35.0) ** 2) / 50.0)


@pytest.fixture(scope="module")
def synthetic() -> Dataset:
    """Even-even grid 10 <= Z <= 40, 10 <= N <= 60; two models whose residuals are known
    smooth functions plus N(0, 0.05^2) noise; 55% train, the rest test."""
    rng = np.random.default_rng(7)
    zz, nn = np.meshgrid(np.arange(10, 41, 2), np.arange(10, 61, 2), indexing="ij")
    Z, N = zz.ravel(), nn.ravel()
    y = 0.1 * (Z + N) + rng.normal(0.0, 1.0, Z.size)
    F = np.stack(
        [
            y - smooth_residual(Z, N) - rng.normal(0.0, NOISE, Z.size),
            y - trend_residual(Z, N) - rng.normal(0.0, NOISE, Z.size),
        ],
        axis=1,
    )
    order = rng.permutation(Z.size)
    n_train = int(0.55 * Z.size)
    return Dataset.from_arrays(
        "synthetic",
        "S2n",
        ("A", "B"),
        Z,
        N,
        y,
        F,
        splits={"train": order[:n_train], "test": order[n_train:]},
    )


@pytest.fixture(scope="module")
def synthetic_fit(synthetic: Dataset) -> Corrections:
    return fit_corrections(synthetic, n_restarts=1, seed=3)


# ------------------------------------------------------------------ marginal likelihood


SMALL_X = np.array([(z, n) for z in range(8, 30, 2) for n in range(8, 40, 2)], float)[::3]
SMALL_R = np.random.default_rng(0).normal(0.2, 0.7, SMALL_X.shape[0])


def test_log_marginal_likelihood_matches_scipy() -> None:
    hp = {"amplitude": 0.9, "rho_z": 3.5, "rho_n": 2.2, "noise": 0.3, "mean": 0.15}
    K = se_kernel(SMALL_X, SMALL_X, amplitude=0.9, rho_z=3.5, rho_n=2.2)
    cov = K + (0.3**2 + 1e-10) * np.eye(SMALL_X.shape[0])
    expected = multivariate_normal(mean=np.full(SMALL_X.shape[0], 0.15), cov=cov).logpdf(SMALL_R)
    assert log_marginal_likelihood(SMALL_X, SMALL_R, **hp) == pytest.approx(expected, rel=1e-10)


def test_closed_form_gradient_matches_finite_differences() -> None:
    # Central differences of the JAX value (the autodiff gradient agrees to 1e-12 as well,
    # but compiling the Cholesky VJP takes seconds).
    x, r = jnp.asarray(SMALL_X), jnp.asarray(SMALL_R)
    theta = np.array([0.1, 1.2, 0.6, -1.3, 0.25])
    value, grad = _nlml_and_grad(jnp.asarray(theta), x, r)
    assert float(value) == pytest.approx(float(_nlml_value(jnp.asarray(theta), x, r)), rel=1e-12)
    h = 1e-5
    fd = [
        (
            float(_nlml_value(jnp.asarray(theta + h * e), x, r))
            - float(_nlml_value(jnp.asarray(theta - h * e), x, r))
        )
        / (2 * h)
        for e in np.eye(5)
    ]
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6, atol=1e-6)


def test_fitted_log_marginal_likelihood_is_consistent(synthetic_fit: Corrections) -> None:
    i = synthetic_fit.models.index("A")
    h = synthetic_fit.hyperparameters[i]
    lml = log_marginal_likelihood(
        synthetic_fit.x_train,
        synthetic_fit.residuals[:, i],
        amplitude=h.amplitude,
        rho_z=h.rho_z,
        rho_n=h.rho_n,
        noise=h.noise,
        mean=h.mean,
    )
    assert lml == pytest.approx(h.log_marginal_likelihood, rel=1e-9)


# ------------------------------------------------------------------ recovery


def test_recovers_known_residual(synthetic: Dataset, synthetic_fit: Corrections) -> None:
    # The held-out error of the posterior mean must be below the noise sd (0.05): a GP that
    # learned the function predicts unseen nuclei better than one noisy observation of them.
    # (Measured: about 0.02 for both models.) The noise sd is recovered within 40%.
    test = synthetic.split_indices("test")
    delta = synthetic_fit.delta(synthetic)
    Z, N = synthetic.Z[test], synthetic.N[test]
    for j, truth in enumerate((smooth_residual(Z, N), trend_residual(Z, N))):
        err = delta[test, j] - truth
        assert np.sqrt(np.mean(err**2)) < NOISE
        assert synthetic_fit.hyperparameters[j].noise == pytest.approx(NOISE, rel=0.4)
    # Correcting makes the test residuals (y - F - delta) pure noise.
    corrected = synthetic_fit.apply(synthetic)
    for m, value in corrected.rms("test").items():
        assert value < 1.5 * NOISE, m


def test_posterior_sd(synthetic: Dataset, synthetic_fit: Corrections) -> None:
    mu, sd = synthetic_fit.delta(synthetic, return_sd=True)
    assert np.array_equal(mu, synthetic_fit.delta(synthetic))
    h = synthetic_fit.hyperparameters[0]
    assert (sd[:, 0] > 0).all() and (sd[:, 0] < h.amplitude).all()
    far_mu, far_sd = synthetic_fit.predict("A", np.array([[200.0, 300.0]]), return_sd=True)
    assert far_mu[0] == pytest.approx(h.mean, abs=1e-8)
    assert far_sd[0] == pytest.approx(h.amplitude, rel=1e-6)


def test_apply_keeps_everything_but_F(synthetic: Dataset, synthetic_fit: Corrections) -> None:
    out = correct(synthetic, n_restarts=1, seed=3)
    assert out.name == "synthetic+corrected"
    assert out.notes[-1].startswith("model predictions corrected by GP fits")
    assert out.models == synthetic.models and out.observable == synthetic.observable
    assert np.array_equal(out.y, synthetic.y) and np.array_equal(out.Z, synthetic.Z)
    assert {k: list(v) for k, v in out.splits.items()} == {
        k: list(v) for k, v in synthetic.splits.items()
    }
    np.testing.assert_allclose(out.F, synthetic.F + synthetic_fit.delta(synthetic), atol=1e-9)
    assert not out.F.flags.writeable


def test_unavailable_model_stays_nan(synthetic: Dataset, synthetic_fit: Corrections) -> None:
    F = synthetic.F.copy()
    test = synthetic.split_indices("test")
    F[test[:5], 1] = np.nan
    ds = dataclasses.replace(synthetic, F=F)
    delta = synthetic_fit.delta(ds)
    assert np.isnan(delta[test[:5], 1]).all() and np.isfinite(delta[test[:5], 0]).all()
    assert np.isnan(synthetic_fit.apply(ds).F[test[:5], 1]).all()


# ------------------------------------------------------------------ no leakage


def test_correction_depends_only_on_training_y(
    synthetic: Dataset, synthetic_fit: Corrections
) -> None:
    train = synthetic.split_indices("train")
    y = synthetic.y.copy()
    outside = np.setdiff1d(np.arange(len(synthetic)), train)
    y[outside] = y[outside] + np.random.default_rng(5).normal(0.0, 3.0, outside.size)
    y[outside[:3]] = np.nan
    other = fit_corrections(dataclasses.replace(synthetic, y=y), n_restarts=1, seed=3)
    assert other.hyperparameters == synthetic_fit.hyperparameters
    assert np.array_equal(other.delta(synthetic), synthetic_fit.delta(synthetic))
    # ... while one changed training value does change it.
    y2 = synthetic.y.copy()
    y2[train[0]] += 1.0
    moved = fit_corrections(dataclasses.replace(synthetic, y=y2), n_restarts=1, seed=3)
    assert not np.array_equal(moved.delta(synthetic), synthetic_fit.delta(synthetic))


# ------------------------------------------------------------------ kejzlar2023

PAPER_CORRECTED = {  # Kejzlar et al. (2023), Table 1, corrected models, test rms (MeV)
    "SKMS": 0.66,
    "SKP": 0.64,
    "SLY4": 0.68,
    "SV": 0.55,
    "UNEDF0": 0.61,
    "UNEDF1": 0.48,
    "UNEDF2": 0.54,
    "FRDM12": 0.38,
    "HFB24": 0.40,
}


def test_kejzlar2023_corrected_test_rms(massexplorer_dir) -> None:
    # The paper's corrections come from an earlier Bayesian GP fit (its Ref. 29) that nearly
    # interpolates the training residuals; the type-II ML fit here keeps a noise sd of
    # 0.25-0.53 MeV and does as well or better on the test set (SkM* 0.48 against 0.66).
    # Hence: every model within 0.2 MeV of the paper, never worse than the paper by more
    # than 0.05 MeV, never worse than the raw model by more than 0.01 MeV. One heuristic
    # start per model keeps this test fast; it reaches the same optimum as six starts.
    ds = load_dataset("kejzlar2023", data_dir=massexplorer_dir)
    corr = fit_corrections(ds, n_restarts=0)
    assert corr.split == "train" and corr.x_train.shape == (514, 2)
    raw = ds.rms("test")
    got = corr.apply(ds).rms("test")
    for m, paper in PAPER_CORRECTED.items():
        assert abs(got[m] - paper) < 0.2, (m, got[m], paper)
        assert got[m] < paper + 0.05, (m, got[m], paper)
        assert got[m] < raw[m] + 0.01, (m, got[m], raw[m])
    assert np.mean(list(got.values())) < np.mean(list(PAPER_CORRECTED.values()))


# ------------------------------------------------------------------ errors


def test_bad_input(synthetic: Dataset, synthetic_fit: Corrections) -> None:
    """User errors are InputErrors (the command line shows them as one line)."""
    from lbmm.data.errors import DataError, OptionError

    with pytest.raises(DataError, match="no split 'fit'"):
        fit_corrections(synthetic, "fit")
    with pytest.raises(TypeError, match="Dataset"):
        fit_corrections(synthetic.F)
    train = synthetic.split_indices("train")
    y = synthetic.y.copy()
    y[train[4]] = np.nan
    with pytest.raises(DataError, match="without an observed value"):
        fit_corrections(dataclasses.replace(synthetic, y=y))
    F = synthetic.F.copy()
    F[train[2], 1] = np.nan
    with pytest.raises(DataError, match="model 'B' gives no value"):
        fit_corrections(dataclasses.replace(synthetic, F=F))
    with pytest.raises(DataError, match="unknown model 'C'"):
        fit_corrections(synthetic, models=["C"])
    with pytest.raises(OptionError, match="n_restarts"):
        fit_corrections(synthetic, n_restarts=-1)
    with pytest.raises(OptionError, match="noise must lie"):
        fit_corrections(synthetic, noise=0.0)
    with pytest.raises(DataError, match="at least 3"):
        fit_corrections(synthetic.with_split("tiny", train[:2]), "tiny")
    with pytest.raises(DataError, match="fitted to 'S2n'"):
        synthetic_fit.delta(dataclasses.replace(synthetic, observable="BE"))
    renamed = dataclasses.replace(synthetic, models=("A", "Z"))
    with pytest.raises(DataError, match="no correction for model 'Z'"):
        synthetic_fit.apply(renamed)


def test_fixed_noise(synthetic: Dataset) -> None:
    corr = fit_corrections(synthetic, models=["A"], n_restarts=0, noise=0.01)
    h = corr.hyperparameter("A")
    assert h.noise_fixed and h.noise == pytest.approx(0.01)
    assert corr.models == ("A",)
    # A model subset corrects a dataset with those models only.
    assert corr.apply(synthetic.select_models(["A"])).models == ("A",)

"""Systematic corrections of each model: a Gaussian process on its training residuals.

For each model ``k``, the residuals ``r_i = y_i - f_k(x_i)`` on the training nuclei
``x_i = (Z_i, N_i)`` are modelled as::

    r_i = m_k + delta_k(x_i) + sigma_k * eps_i,        eps_i ~ Normal(0, 1),
    delta_k ~ GP(0, eta_k**2 * exp(-(Z - Z')**2 / (2 rho_Zk**2) - (N - N')**2 / (2 rho_Nk**2))),

a squared-exponential kernel with one length scale in Z and one in N (in nucleons), an
amplitude ``eta``, a constant mean ``m`` and white noise ``sigma`` (Kejzlar, Neufcourt &
Nazarewicz, Sci. Rep. 13, 19600 (2023), Eq. 2 and the "corrected" columns of Table 1). The
hyperparameters are set by maximum marginal likelihood (type II), with several starts of
L-BFGS-B on the log-parameters; the negative log marginal likelihood and its gradient come
from JAX (Cholesky, float64).

The GP posterior mean of ``m + delta_k`` at any nucleus is then a fixed correction: the
corrected model is ``f_k + delta_k`` (:meth:`Corrections.apply`), on which any mixer can run.
Only the training split's ``y`` enters the fit.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import _jax  # noqa: F401  (float64 and host devices before JAX starts)

# isort: split

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.linalg
import scipy.optimize

from .data import Dataset
from .data.elements import label
from .data.errors import DataError, OptionError
from .mixers import kernels

__all__ = [
    "BOUNDS",
    "Corrections",
    "GPHyperparameters",
    "correct",
    "fit_corrections",
    "log_marginal_likelihood",
    "se_kernel",
]

#: Bounds of the fitted hyperparameters: amplitude and noise in the units of y (MeV for
#: masses), length scales in nucleons. The lower noise bound keeps the covariance well
#: conditioned; the lower length-scale bound is a quarter of the even-even grid step.
BOUNDS: dict[str, tuple[float, float]] = {
    "amplitude": (1e-4, 1e2),
    "rho_z": (0.5, 1e3),
    "rho_n": (0.5, 1e3),
    "noise": (1e-3, 1e1),
}

_JITTER = 1e-10  # added to the diagonal on top of noise**2
_LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------- GP algebra


def se_kernel(
    x1: np.ndarray, x2: np.ndarray, *, amplitude: float, rho_z: float, rho_n: float
) -> np.ndarray:
    """The squared-exponential kernel of :mod:`lbmm.mixers.kernels` (the one kernel of lbmm's
    GPs), parametrised by the GP's standard deviation and one length scale per input.

    Parameters
    ----------
    x1, x2
        Inputs of shape (n1, 2) and (n2, 2), columns (Z, N).
    amplitude
        The GP standard deviation ``eta`` (the kernel is ``eta**2`` at zero distance).
    rho_z, rho_n
        Length scales in Z and N (nucleons).

    Returns
    -------
    numpy.ndarray
        The (n1, n2) covariance matrix.
    """
    rho = np.array([rho_z, rho_n], dtype=np.float64)
    k = kernels.se_kernel(np.asarray(x1, np.float64), np.asarray(x2, np.float64), rho,
                          amplitude**2)  # fmt: skip
    return np.array(k)  # a writable copy (callers add noise to the diagonal in place)


def _nlml(theta: jax.Array, x: jax.Array, r: jax.Array) -> jax.Array:
    """Negative log marginal likelihood at ``theta = (log eta, log rho_z, log rho_n,
    log sigma, mean)`` (differentiable by JAX; :func:`_nlml_and_grad` is the fast form)."""
    eta2 = jnp.exp(2.0 * theta[0])
    scale = jnp.exp(theta[1:3])
    sigma2 = jnp.exp(2.0 * theta[3])
    d = (x[:, None, :] - x[None, :, :]) / scale
    K = eta2 * jnp.exp(-0.5 * jnp.sum(d**2, axis=-1))
    K = K + (sigma2 + _JITTER) * jnp.eye(x.shape[0])
    L = jnp.linalg.cholesky(K)
    a = jax.scipy.linalg.solve_triangular(L, r - theta[4], lower=True)
    return 0.5 * jnp.dot(a, a) + jnp.sum(jnp.log(jnp.diag(L))) + 0.5 * x.shape[0] * _LOG_2PI


@jax.jit
def _nlml_and_grad(theta: jax.Array, x: jax.Array, r: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:func:`_nlml` and its gradient in closed form, ``-1/2 tr((a a^T - K^-1) dK)`` with
    ``a = K^-1 (r - mean)`` (about 2.5 times faster than reverse-mode through the Cholesky
    factor; the tests check it against ``jax.grad(_nlml)``)."""
    n = x.shape[0]
    eta2 = jnp.exp(2.0 * theta[0])
    scale = jnp.exp(theta[1:3])
    sigma2 = jnp.exp(2.0 * theta[3])
    d2 = ((x[:, None, :] - x[None, :, :]) / scale) ** 2
    Kf = eta2 * jnp.exp(-0.5 * jnp.sum(d2, axis=-1))
    L = jnp.linalg.cholesky(Kf + (sigma2 + _JITTER) * jnp.eye(n))
    res = r - theta[4]
    a = jax.scipy.linalg.solve_triangular(L, res, lower=True)
    value = 0.5 * jnp.dot(a, a) + jnp.sum(jnp.log(jnp.diag(L))) + 0.5 * n * _LOG_2PI
    Linv = jax.scipy.linalg.solve_triangular(L, jnp.eye(n), lower=True)
    W = Linv.T @ Linv  # K^-1
    alpha = Linv.T @ a  # K^-1 (r - mean)
    AK = (jnp.outer(alpha, alpha) - W) * Kf
    grad = jnp.stack(
        [
            -jnp.sum(AK),
            -0.5 * jnp.sum(AK * d2[..., 0]),
            -0.5 * jnp.sum(AK * d2[..., 1]),
            -sigma2 * (jnp.dot(alpha, alpha) - jnp.trace(W)),
            -jnp.sum(alpha),
        ]
    )
    return value, grad


_nlml_value = jax.jit(_nlml)


def log_marginal_likelihood(
    x: np.ndarray,
    r: np.ndarray,
    *,
    amplitude: float,
    rho_z: float,
    rho_n: float,
    noise: float,
    mean: float,
) -> float:
    """Log marginal likelihood of residuals ``r`` at inputs ``x`` under the correction GP.

    ``r ~ Normal(mean, K + (noise**2 + 1e-10) I)`` with ``K`` from :func:`se_kernel`.

    Parameters
    ----------
    x
        Inputs (n, 2), columns (Z, N).
    r
        Residuals (n,).
    amplitude, rho_z, rho_n, noise, mean
        The GP hyperparameters (see :class:`GPHyperparameters`).

    Returns
    -------
    float
        The log marginal likelihood.
    """
    theta = np.array(
        [math.log(amplitude), math.log(rho_z), math.log(rho_n), math.log(noise), mean],
        dtype=np.float64,
    )
    x = np.asarray(x, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    return -float(_nlml_value(jnp.asarray(theta), jnp.asarray(x), jnp.asarray(r)))


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class GPHyperparameters:
    """The fitted GP of one model's residuals.

    Attributes
    ----------
    amplitude
        GP standard deviation ``eta`` (units of y, MeV for masses).
    rho_z, rho_n
        Length scales in Z and N (nucleons).
    noise
        White-noise standard deviation ``sigma`` (units of y).
    mean
        Constant mean ``m`` of the residuals (units of y).
    log_marginal_likelihood
        Log marginal likelihood of the training residuals at these values.
    n_starts
        Number of optimiser starts; ``n_converged`` of them reported convergence.
    n_converged
        Starts whose L-BFGS-B run reported success.
    at_bound
        Names of the fitted hyperparameters that ended within 1% of the log-width of their
        :data:`BOUNDS` interval from one of its ends (empty when all are interior).
    noise_fixed
        True where ``noise`` was given, not fitted.
    """

    amplitude: float
    rho_z: float
    rho_n: float
    noise: float
    mean: float
    log_marginal_likelihood: float
    n_starts: int = 1
    n_converged: int = 1
    at_bound: tuple[str, ...] = ()
    noise_fixed: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return {
            "amplitude": self.amplitude,
            "rho_z": self.rho_z,
            "rho_n": self.rho_n,
            "noise": self.noise,
            "mean": self.mean,
            "log_marginal_likelihood": self.log_marginal_likelihood,
            "n_starts": self.n_starts,
            "n_converged": self.n_converged,
            "at_bound": self.at_bound,
            "noise_fixed": self.noise_fixed,
        }


@dataclass(frozen=True, eq=False)
class Corrections:
    """Per-model GP corrections fitted on one split of a dataset (immutable).

    Build one with :func:`fit_corrections`. :meth:`delta` gives the correction at the nuclei
    of any dataset with the same observable and models, :meth:`apply` the corrected dataset.

    Attributes
    ----------
    models
        Model names, in the order of ``hyperparameters`` and of the columns of ``residuals``.
    observable
        The observable the residuals are of (e.g. ``"S2n"``).
    split
        The split of ``dataset_name`` the GPs were fitted on.
    dataset_name
        Name of the dataset the GPs were fitted on.
    x_train
        Training inputs (m, 2), columns (Z, N).
    residuals
        Training residuals ``y - F`` (m, p).
    hyperparameters
        One :class:`GPHyperparameters` per model.
    fit_seconds
        Wall time of the fit (all models, all starts).
    """

    models: tuple[str, ...]
    observable: str
    split: str
    dataset_name: str
    x_train: np.ndarray
    residuals: np.ndarray
    hyperparameters: tuple[GPHyperparameters, ...]
    fit_seconds: float = float("nan")

    def __post_init__(self) -> None:
        for name in ("x_train", "residuals"):
            a = np.array(getattr(self, name), dtype=np.float64, copy=True)
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if self.residuals.shape != (self.x_train.shape[0], len(self.models)):
            raise ValueError(
                f"residuals of shape {self.residuals.shape} do not match "
                f"{self.x_train.shape[0]} training nuclei × {len(self.models)} models"
            )
        if len(self.hyperparameters) != len(self.models):
            raise ValueError(
                f"{len(self.hyperparameters)} hyperparameter sets for {len(self.models)} models"
            )

    def __repr__(self) -> str:
        return (
            f"Corrections({self.observable} of {', '.join(self.models)}; fitted on "
            f"{self.dataset_name!r} split {self.split!r}, {self.x_train.shape[0]} nuclei)"
        )

    def hyperparameter(self, model: str) -> GPHyperparameters:
        """The fitted hyperparameters of one model.

        Raises
        ------
        ValueError
            For a model name not among :attr:`models`.
        """
        if model not in self.models:
            raise OptionError(f"no correction for model {model!r}; models: {list(self.models)}")
        return self.hyperparameters[self.models.index(model)]

    def to_frame(self) -> pd.DataFrame:
        """One row per model with its fitted hyperparameters."""
        return pd.DataFrame(
            [h.as_dict() for h in self.hyperparameters], index=pd.Index(self.models, name="model")
        )

    def predict(
        self, model: str, x: np.ndarray, *, return_sd: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """GP posterior mean (and sd) of one model's correction at inputs ``x``.

        Parameters
        ----------
        model
            Model name.
        x
            Inputs (n, 2), columns (Z, N).
        return_sd
            Also return the posterior standard deviation of the correction (of the latent
            ``m + delta``, with ``m`` fixed; the white noise is not included).

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            The (n,) posterior mean, and the (n,) posterior sd if ``return_sd``.
        """
        h = self.hyperparameter(model)
        j = self.models.index(model)
        x = np.asarray(x, dtype=np.float64).reshape(-1, 2)
        kw = {"amplitude": h.amplitude, "rho_z": h.rho_z, "rho_n": h.rho_n}
        K = se_kernel(self.x_train, self.x_train, **kw)
        K[np.diag_indices_from(K)] += h.noise**2 + _JITTER
        chol = scipy.linalg.cho_factor(K, lower=True)
        alpha = scipy.linalg.cho_solve(chol, self.residuals[:, j] - h.mean)
        Ks = se_kernel(x, self.x_train, **kw)
        mu = h.mean + Ks @ alpha
        if not return_sd:
            return mu
        v = scipy.linalg.solve_triangular(chol[0], Ks.T, lower=True)
        var = h.amplitude**2 - np.sum(v**2, axis=0)
        return mu, np.sqrt(np.clip(var, 0.0, None))

    def _check(self, dataset: Dataset) -> list[int]:
        if not isinstance(dataset, Dataset):
            raise TypeError(f"expected an lbmm.data.Dataset, got {type(dataset).__name__}")
        if dataset.observable != self.observable:
            raise DataError(
                f"corrections were fitted to {self.observable!r} residuals; dataset "
                f"{dataset.name!r} holds {dataset.observable!r}"
            )
        missing = [m for m in dataset.models if m not in self.models]
        if missing:
            raise DataError(
                f"dataset {dataset.name!r}: no correction for model {missing[0]!r}; "
                f"corrected models: {list(self.models)}"
            )
        return [self.models.index(m) for m in dataset.models]

    def delta(
        self, dataset: Dataset, *, return_sd: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The correction of every model at every nucleus of a dataset.

        Parameters
        ----------
        dataset
            Any dataset with the same observable whose models all have a correction.
        return_sd
            Also return the GP posterior sd of the correction (see :meth:`predict`).

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            (n, p) posterior means, in the order of ``dataset.models``, NaN where the model
            gives no value; and the (n, p) posterior sds if ``return_sd``.

        Raises
        ------
        ValueError
            For another observable or a model without a correction.
        """
        self._check(dataset)
        x = dataset.x
        mu = np.full(dataset.F.shape, np.nan)
        sd = np.full(dataset.F.shape, np.nan)
        for j, m in enumerate(dataset.models):
            if return_sd:
                mu[:, j], sd[:, j] = self.predict(m, x, return_sd=True)
            else:
                mu[:, j] = self.predict(m, x)
        unavailable = ~dataset.available
        mu[unavailable] = np.nan
        sd[unavailable] = np.nan
        return (mu, sd) if return_sd else mu

    def apply(self, dataset: Dataset, *, suffix: str = "+corrected") -> Dataset:
        """The dataset with every model prediction ``F`` replaced by ``F + delta``.

        Nuclei, observations, splits and provenance are kept; the name gets ``suffix`` and a
        note says which split the corrections were fitted on.

        Parameters
        ----------
        dataset
            Any dataset with the same observable whose models all have a correction.
        suffix
            Appended to the dataset name.

        Returns
        -------
        Dataset
            The corrected dataset.
        """
        F = dataset.F + self.delta(dataset)
        F.setflags(write=False)
        note = (
            f"model predictions corrected by GP fits to the residuals of each model on split "
            f"{self.split!r} of {self.dataset_name!r} ({self.x_train.shape[0]} nuclei; "
            "squared-exponential kernel in (Z, N), type-II maximum likelihood)"
        )
        return replace(dataset, name=f"{dataset.name}{suffix}", F=F, notes=(*dataset.notes, note))


# ---------------------------------------------------------------------------- fitting


def _optimise(
    x: np.ndarray,
    r: np.ndarray,
    n_restarts: int,
    rng: np.random.Generator,
    noise: float | None = None,
) -> GPHyperparameters:
    """Type-II ML for one residual vector: a heuristic start plus ``n_restarts`` random ones
    (the noise sd fixed where ``noise`` is given)."""
    names = ("amplitude", "rho_z", "rho_n", "noise")
    log_bounds = [(math.log(BOUNDS[k][0]), math.log(BOUNDS[k][1])) for k in names]
    if noise is not None:
        log_bounds[3] = (math.log(noise), math.log(noise))
    spread = max(float(np.std(r)), 1e-3)
    mean0 = float(np.mean(r))
    lo = np.array([b[0] for b in log_bounds])
    hi = np.array([b[1] for b in log_bounds])

    # Heuristic start: most of the residual variance smooth over a few nucleons, the rest noise.
    starts = [
        np.array([math.log(0.8 * spread), math.log(5.0), math.log(3.0), math.log(0.5 * spread)])
    ]
    for _ in range(n_restarts):
        starts.append(
            np.array(
                [
                    math.log(spread) + rng.uniform(-1.0, 1.0),
                    rng.uniform(math.log(1.0), math.log(30.0)),
                    rng.uniform(math.log(1.0), math.log(30.0)),
                    math.log(spread) + rng.uniform(-4.0, -0.5),
                ]
            )
        )

    xj = jnp.asarray(x)
    rj = jnp.asarray(r)

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = _nlml_and_grad(jnp.asarray(theta), xj, rj)
        value = float(value)
        grad = np.asarray(grad, dtype=np.float64)
        if not (math.isfinite(value) and np.isfinite(grad).all()):
            return 1e30, np.zeros_like(theta)
        return value, grad

    best = None
    n_converged = 0
    for s in starts:
        theta0 = np.append(np.clip(s, lo, hi), mean0)
        res = scipy.optimize.minimize(
            fun,
            theta0,
            jac=True,
            method="L-BFGS-B",
            bounds=[*log_bounds, (None, None)],
            options={"maxiter": 500},
        )
        n_converged += bool(res.success)
        if math.isfinite(res.fun) and res.fun < 1e30 and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise RuntimeError("every optimiser start failed (non-finite marginal likelihood)")
    theta = best.x
    at_bound = tuple(
        k
        for k, t, (a, b) in zip(names, theta[:4], log_bounds, strict=True)
        if a < b and min(t - a, b - t) < 0.01 * (b - a)
    )
    return GPHyperparameters(
        amplitude=float(np.exp(theta[0])),
        rho_z=float(np.exp(theta[1])),
        rho_n=float(np.exp(theta[2])),
        noise=float(np.exp(theta[3])),
        mean=float(theta[4]),
        log_marginal_likelihood=-float(best.fun),
        n_starts=len(starts),
        n_converged=n_converged,
        at_bound=at_bound,
        noise_fixed=noise is not None,
    )


def fit_corrections(
    dataset: Dataset,
    split: str = "train",
    *,
    models: Sequence[str] | None = None,
    n_restarts: int = 5,
    seed: int = 0,
    noise: float | None = None,
) -> Corrections:
    """Fit one GP per model to its residuals ``y - F`` on one split (type-II ML).

    Parameters
    ----------
    dataset
        The dataset; only the nuclei of ``split`` (their ``y`` and ``F``) enter the fit.
    split
        The split to fit on (default ``"train"``).
    models
        The models to correct (default: all of ``dataset.models``).
    n_restarts
        Random optimiser starts per model, on top of one heuristic start (length scales of
        5 nucleons in Z and 3 in N, amplitude 0.8 and noise 0.5 times the residual sd). The
        best marginal likelihood wins.
    seed
        Seed of the random starts (each model's starts are drawn from ``seed`` and the
        model's name, so they do not depend on which other models are fitted).
    noise
        Fix the white-noise sd at this value (units of y, within ``BOUNDS["noise"]``)
        instead of fitting it; a small value makes the GP (nearly) interpolate the training
        residuals.

    Returns
    -------
    Corrections
        The fitted corrections.

    Raises
    ------
    ValueError
        For a split the dataset lacks or with fewer than 3 nuclei, an unobserved ``y`` on
        the split, a model prediction missing (NaN) on the split (the message names the
        model and nucleus), an unknown model, or a negative ``n_restarts``.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"expected an lbmm.data.Dataset, got {type(dataset).__name__}")
    if split not in dataset.splits:
        raise DataError(
            f"dataset {dataset.name!r} has no split {split!r}; splits: {sorted(dataset.splits)}"
        )
    if int(n_restarts) != n_restarts or n_restarts < 0:
        raise OptionError(f"n_restarts must be a non-negative integer, got {n_restarts!r}")
    names = tuple(dataset.models if models is None else models)
    unknown = [m for m in names if m not in dataset.models]
    if unknown:
        raise DataError(
            f"dataset {dataset.name!r}: unknown model {unknown[0]!r}; "
            f"models: {list(dataset.models)}"
        )
    if not names:
        raise DataError("no models to correct")
    if noise is not None and not BOUNDS["noise"][0] <= noise <= BOUNDS["noise"][1]:
        raise OptionError(f"noise must lie in {BOUNDS['noise']}, got {noise!r}")
    idx = dataset.split_indices(split)
    if idx.size < 3:
        raise DataError(
            f"dataset {dataset.name!r}: split {split!r} has {idx.size} nuclei; "
            "a correction GP needs at least 3"
        )
    y = dataset.y[idx]
    bad_y = ~np.isfinite(y)
    if bad_y.any():
        i = idx[np.flatnonzero(bad_y)[0]]
        raise DataError(
            f"dataset {dataset.name!r}: split {split!r} has {int(bad_y.sum())} nuclei without an "
            f"observed value (first: {label(dataset.Z[i], dataset.N[i])}); corrections need "
            "observed y on every nucleus of the split"
        )
    cols = [dataset.models.index(m) for m in names]
    F = dataset.F[np.ix_(idx, cols)]
    for j, m in enumerate(names):
        bad = ~np.isfinite(F[:, j])
        if bad.any():
            i = idx[np.flatnonzero(bad)[0]]
            raise DataError(
                f"dataset {dataset.name!r}: model {m!r} gives no value at "
                f"{label(dataset.Z[i], dataset.N[i])} ({int(bad.sum())} nuclei of split "
                f"{split!r}); drop the model (Dataset.select_models) or the nuclei"
            )
    x = dataset.x[idx]
    R = y[:, None] - F
    t0 = time.perf_counter()
    rngs = [np.random.default_rng([seed, zlib.crc32(m.encode())]) for m in names]
    hyper = tuple(_optimise(x, R[:, j], int(n_restarts), rngs[j], noise) for j in range(len(names)))
    seconds = time.perf_counter() - t0
    return Corrections(
        models=names,
        observable=dataset.observable,
        split=split,
        dataset_name=dataset.name,
        x_train=x,
        residuals=R,
        hyperparameters=hyper,
        fit_seconds=seconds,
    )


def correct(dataset: Dataset, split: str = "train", **options: Any) -> Dataset:
    """Fit corrections on ``split`` and return the corrected dataset.

    Shorthand for ``fit_corrections(dataset, split, **options).apply(dataset)``; the
    dataset's models must all be corrected (do not pass ``models``: select them on the
    dataset first with :meth:`Dataset.select_models`).

    Parameters
    ----------
    dataset
        The dataset to correct.
    split
        The split to fit on.
    **options
        Passed to :func:`fit_corrections` (``n_restarts``, ``seed``).

    Returns
    -------
    Dataset
        The dataset with ``F`` replaced by ``F + delta``.
    """
    return fit_corrections(dataset, split, **options).apply(dataset)

"""Prediction at any nuclei from a :class:`~lbmm.inference.Posterior`, and metrics.

:func:`predict` draws from the posterior predictive law (noise included) and returns a
:class:`Prediction` with samples of y and of the weights. Metrics: rms of the posterior-mean
prediction, empirical coverage probability (ECP) of equal-tailed intervals, CRPS and mean log
predictive density, for mixers and, for comparison, for each raw model (Gaussian with its own
σ_k fitted on the training split).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.infer import Predictive
from numpyro.infer.util import log_likelihood
from scipy import stats

from . import _jax  # noqa: F401
from .data import Dataset
from .inference import Posterior
from .mixers import get_mixer
from .mixers.local import local_predictive

__all__ = [
    "ECP_LEVELS",
    "Prediction",
    "crps_samples",
    "ecp",
    "evaluate",
    "model_metrics",
    "predict",
    "summarize",
]

ECP_LEVELS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))


@dataclass(frozen=True, eq=False)
class Prediction:
    """Posterior predictive draws at a set of nuclei.

    Attributes
    ----------
    mixer
        The mixer that made them.
    Z, N, labels
        The nuclei (n,).
    y
        (S, n) draws of y including the noise.
    mu
        (S, n) draws of the noise-free mixture mean.
    weights
        (S, n, p) draws of the weights at each nucleus.
    y_obs
        (n,) observed values where known (NaN elsewhere).
    log_density
        (S, n) log p(y_obs | draw) where y_obs is known (NaN elsewhere).
    models
        Model names (p,).
    """

    mixer: str
    Z: np.ndarray
    N: np.ndarray
    labels: tuple[str, ...]
    y: np.ndarray
    mu: np.ndarray
    weights: np.ndarray
    y_obs: np.ndarray
    log_density: np.ndarray
    models: tuple[str, ...]

    @property
    def mean(self) -> np.ndarray:
        return self.y.mean(axis=0)

    @property
    def median(self) -> np.ndarray:
        return np.median(self.y, axis=0)

    @property
    def sd(self) -> np.ndarray:
        return self.y.std(axis=0, ddof=1)

    def map(self, bins: int = 60) -> np.ndarray:
        """Mode of each predictive law, from a histogram of the draws."""
        out = np.empty(self.y.shape[1])
        for i in range(self.y.shape[1]):
            h, edges = np.histogram(self.y[:, i], bins=bins)
            j = int(np.argmax(h))
            out[i] = 0.5 * (edges[j] + edges[j + 1])
        return out

    def interval(self, level: float = 0.68) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed credible interval at ``level``."""
        lo, hi = np.quantile(self.y, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return lo, hi

    def existence_probability(self) -> np.ndarray:
        """P(y > 0) per nucleus (for S2n: bound against two-neutron emission)."""
        return (self.y > 0).mean(axis=0)

    def weights_mean(self) -> np.ndarray:
        """(n, p) posterior mean of the weights."""
        return self.weights.mean(axis=0)

    def weights_sd(self) -> np.ndarray:
        """(n, p) posterior sd of the weights."""
        return self.weights.std(axis=0, ddof=1)

    def summary(self, levels: Sequence[float] = (0.68, 0.95)):
        """A DataFrame: nucleus, Z, N, y_obs, mean, median, sd, intervals, P(y > 0)."""
        import pandas as pd

        df = pd.DataFrame(
            {
                "nucleus": self.labels,
                "Z": self.Z,
                "N": self.N,
                "y_obs": self.y_obs,
                "mean": self.mean,
                "median": self.median,
                "sd": self.sd,
            }
        )
        for lv in levels:
            lo, hi = self.interval(lv)
            df[f"lo{round(lv * 100)}"] = lo
            df[f"hi{round(lv * 100)}"] = hi
        df["p_exist"] = self.existence_probability()
        return df


def _resolve(
    posterior: Posterior, where: str | Dataset | Iterable | None
) -> tuple[np.ndarray, Dataset]:
    ds = posterior.dataset
    if where is None:
        return np.arange(len(ds)), ds
    if isinstance(where, str):
        return ds.split_indices(where), ds
    if isinstance(where, Dataset):
        return np.arange(len(where)), where
    return ds.index_of(where), ds


def predict(
    posterior: Posterior,
    where: str | Dataset | Iterable | None = "test",
    *,
    seed: int = 1,
) -> Prediction:
    """Posterior predictive draws at some nuclei.

    Parameters
    ----------
    where
        A split name of the posterior's dataset, a list of (Z, N) pairs or labels, a
        :class:`~lbmm.data.Dataset` (with the same models), or None for every nucleus.
    seed
        Seed of the explicit random key of the predictive draws.
    """
    idx, ds = _resolve(posterior, where)
    if tuple(ds.models) != tuple(posterior.models):
        raise ValueError(f"dataset models {ds.models} differ from the fit's {posterior.models}")
    F = ds.F[idx]
    if not np.isfinite(F).all():
        raise ValueError("some model predictions are missing (NaN) at the requested nuclei")
    y_obs = ds.y[idx]
    key = jax.random.PRNGKey(seed)
    labels = tuple(np.asarray(ds.labels)[idx].tolist())
    p = len(ds.models)
    if posterior.mixer == "bma":
        comp = posterior.samples("component").astype(int)
        delta = posterior.samples("delta")
        sig = posterior.samples("sigma_k")
        s_idx = np.arange(comp.size)
        mu = F[:, comp].T + delta[s_idx, comp][:, None]
        sd = sig[s_idx, comp][:, None]
        eps = np.asarray(jax.random.normal(key, mu.shape))
        y = mu + sd * eps
        w = np.broadcast_to(posterior.samples("weights")[:, None, :], (comp.size, idx.size, p))
        # predictive density of y_obs under each draw's mixture component
        logd = stats.norm.logpdf(y_obs[None, :], mu, sd)
        return Prediction(posterior.mixer, ds.Z[idx], ds.N[idx], labels, y, mu, np.array(w),
                          y_obs, logd, ds.models)  # fmt: skip
    spec = get_mixer(posterior.mixer)
    samples = {k: jnp.asarray(posterior.samples(k)) for k in posterior.idata.posterior.data_vars}
    if spec.local:
        out = local_predictive(
            posterior.mixer,
            samples,
            F,
            np.stack([ds.Z[idx], ds.N[idx]], 1).astype(np.float64),
            y_obs,
            posterior.settings.get("options", {}),
            posterior.settings.get("likelihood", "mean"),
            key,
        )
        return Prediction(posterior.mixer, ds.Z[idx], ds.N[idx], labels, out["y"], out["mu"],
                          out["weights"], y_obs, out["log_density"], ds.models)  # fmt: skip
    kw = {
        "likelihood_kind": posterior.settings.get("likelihood", "mean"),
        **posterior.settings.get("options", {}),
    }
    Fj = jnp.asarray(F)
    xj = jnp.asarray(np.stack([ds.Z[idx], ds.N[idx]], 1).astype(np.float64))
    pred = Predictive(spec.model, posterior_samples=samples, return_sites=["y"])
    y = np.asarray(pred(key, Fj, xj, None, **kw)["y"])
    w = np.asarray(samples["weights"])
    if kw["likelihood_kind"] == "density" and posterior.mixer == "linear":
        w = w / w.sum(axis=-1, keepdims=True)
    if w.ndim == 2:
        w = np.broadcast_to(w[:, None, :], (w.shape[0], idx.size, p))
    mu = np.einsum("snp,np->sn", w, F)
    obs_ok = np.isfinite(y_obs)
    logd = np.full(y.shape, np.nan)
    if obs_ok.any():
        ll = log_likelihood(
            spec.model, samples, Fj[obs_ok], xj[obs_ok], jnp.asarray(y_obs[obs_ok]), **kw
        )["y"]
        logd[:, obs_ok] = np.asarray(ll)
    return Prediction(posterior.mixer, ds.Z[idx], ds.N[idx], labels, y, mu, np.array(w),
                      y_obs, logd, ds.models)  # fmt: skip


# ---------------------------------------------------------------------- metrics


def ecp(samples: np.ndarray, y: np.ndarray, levels: Sequence[float] = ECP_LEVELS) -> dict:
    """Empirical coverage: share of y inside the equal-tailed interval at each level."""
    out = {}
    for lv in levels:
        lo, hi = np.quantile(samples, [(1 - lv) / 2, (1 + lv) / 2], axis=0)
        out[float(lv)] = float(np.mean((y >= lo) & (y <= hi)))
    return out


def crps_samples(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of each nucleus from predictive draws: E|X − y| − ½ E|X − X'| (sorted formula)."""
    s = np.sort(samples, axis=0)
    m = s.shape[0]
    term1 = np.mean(np.abs(s - y[None, :]), axis=0)
    i = np.arange(1, m + 1)[:, None]
    term2 = np.sum((2 * i - m - 1) * s, axis=0) / (m * m)
    return term1 - term2


def evaluate(pred: Prediction, levels: Sequence[float] = ECP_LEVELS) -> dict:
    """rms, ECP, CRPS and mean log predictive density of a prediction where y is observed."""
    ok = np.isfinite(pred.y_obs)
    if not ok.any():
        raise ValueError("no observed values at the predicted nuclei")
    y = pred.y_obs[ok]
    ys = pred.y[:, ok]
    lpd = logsumexp(jnp.asarray(pred.log_density[:, ok]), axis=0) - np.log(ys.shape[0])
    return {
        "rms": float(np.sqrt(np.mean((ys.mean(0) - y) ** 2))),
        "ecp": ecp(ys, y, levels),
        "crps": float(np.mean(crps_samples(ys, y))),
        "mlpd": float(np.mean(np.asarray(lpd))),
        "n": int(ok.sum()),
    }


def model_metrics(
    ds: Dataset, *, train: str = "train", test: str = "test", levels=ECP_LEVELS
) -> dict:
    """Metrics of each raw model as a Gaussian N(f_k, σ_k²), σ_k = its rms on ``train``."""
    tr, te = ds.split_indices(train), ds.split_indices(test)
    out = {}
    for j, m in enumerate(ds.models):
        sig = float(np.sqrt(np.mean((ds.F[tr, j] - ds.y[tr]) ** 2)))
        f, y = ds.F[te, j], ds.y[te]
        z = (y - f) / sig
        cov = {
            float(lv): float(np.mean(np.abs(z) <= stats.norm.ppf((1 + lv) / 2))) for lv in levels
        }
        crps = sig * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))
        out[m] = {
            "train_rms": sig,
            "rms": float(np.sqrt(np.mean((f - y) ** 2))),
            "sigma": sig,
            "ecp": cov,
            "crps": float(np.mean(crps)),
            "mlpd": float(np.mean(stats.norm.logpdf(y, f, sig))),
        }
    return out


LOCAL_DIAGNOSTICS = (
    "hyper_rhat_max",
    "hyper_ess_bulk_min",
    "weights_test_rhat_max",
    "weights_test_ess_bulk_min",
)
SUMMARY_ECP_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # members of ECP_LEVELS


def summarize(posterior: Posterior, *, train: str = "train", test: str = "test", seed: int = 0):
    """The paper's Table 1 and Table 2 row of a fit, with its diagnostics, as plain data.

    Parameters
    ----------
    posterior
        A fit.
    train, test
        Split names of the fit's dataset.
    seed
        Seed of the predictive draws (``seed + 1`` for train, ``seed + 2`` for test).

    Returns
    -------
    dict
        ``train_rms`` (of the posterior-mean noise-free mixture, as in Table 1), ``test_rms``,
        ``sigma_mean``, ``sigma_sd``, ``weights`` (posterior means; for local mixers averaged
        over the training nuclei), ``rhat_max``, ``ess_bulk_min``, ``ess_tail_min``,
        ``divergences``, ``ecp`` (test, 10 … 90 %), ``crps``, ``mlpd``, ``train_ecp_0.9``,
        ``wall_s``; for local mixers also ``hyper_rhat_max``, ``hyper_ess_bulk_min`` (all
        but the latent blocks) and ``weights_test_rhat_max``, ``weights_test_ess_bulk_min``
        (of ā at the test nuclei), the bars local mixers are judged by.
    """
    train_pred = predict(posterior, train, seed=seed + 1)
    train_m = evaluate(train_pred)
    test_m = evaluate(predict(posterior, test, seed=seed + 2))
    sigma = posterior.samples("sigma")
    d = posterior.diagnostics
    return {
        "train_rms": float(np.sqrt(np.mean((train_pred.mu.mean(0) - train_pred.y_obs) ** 2))),
        "test_rms": test_m["rms"],
        "sigma_mean": float(sigma.mean()),
        "sigma_sd": float(sigma.std(ddof=1)),
        "weights": posterior.weights_mean(),
        "rhat_max": d["rhat_max"],
        "ess_bulk_min": d["ess_bulk_min"],
        "ess_tail_min": d["ess_tail_min"],
        "divergences": d.get("divergences", 0),
        "ecp": {f"{lv:.1f}": test_m["ecp"][lv] for lv in SUMMARY_ECP_LEVELS},
        "crps": test_m["crps"],
        "mlpd": test_m["mlpd"],
        "train_ecp_0.9": train_m["ecp"].get(0.9),
        "wall_s": d["wall_s"],
        **{k: d[k] for k in LOCAL_DIAGNOSTICS if k in d},
    }

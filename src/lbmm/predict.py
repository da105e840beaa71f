"""Prediction at any nuclei from a :class:`~lbmm.inference.Posterior`, and metrics.

:func:`predict` draws from the posterior predictive law (noise included) and returns a
:class:`Prediction` with samples of y and of the weights. Metrics: rms of the posterior-mean
prediction, empirical coverage probability (ECP) of equal-tailed intervals, CRPS and mean log
predictive density, for mixers and, for comparison, for each raw model (Gaussian with its own
σ_k fitted on the training split).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from scipy import stats

from . import _jax  # noqa: F401
from .data import Dataset
from .data.elements import label
from .inference import Posterior
from .mixers.draws import nucleus_keys, per_nucleus
from .mixers.predictive import posterior_predictive

__all__ = [
    "ECP_LEVELS",
    "SUMMARY_ECP_LEVELS",
    "Prediction",
    "calibration",
    "crps_samples",
    "derivable_nuclei",
    "derive",
    "derive_from",
    "ecp",
    "evaluate",
    "interval_score",
    "model_metrics",
    "pit",
    "predict",
    "summarize",
    "take",
]

ECP_LEVELS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))
#: The levels of the calibration score (members of ECP_LEVELS).
SUMMARY_ECP_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


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
        (S, n) draws of the noise-free signal: the mixed mean ω·f, plus the discrepancy draw
        where the noise model has one. E[y] = E[mu].
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
        """The posterior predictive mean E[y] per nucleus, from the noise-free draws (the
        same expectation as the mean of ``y``, with less Monte Carlo error)."""
        return self.mu.mean(axis=0)

    @property
    def median(self) -> np.ndarray:
        return np.median(self.y, axis=0)

    @property
    def sd(self) -> np.ndarray:
        return self.y.std(axis=0, ddof=1)

    def map(self, bins: int = 60) -> np.ndarray:
        """Mode of each predictive law, from a histogram of the draws."""
        return _modes(self.y, bins)

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


def _modes(draws: np.ndarray, bins: int = 60) -> np.ndarray:
    """Mode of each column of (S, n) draws: the centre of the fullest of ``bins`` bins."""
    out = np.empty(draws.shape[1])
    for i in range(draws.shape[1]):
        h, edges = np.histogram(draws[:, i], bins=bins)
        j = int(np.argmax(h))
        out[i] = 0.5 * (edges[j] + edges[j + 1])
    return out


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
        keys = nucleus_keys(key, np.stack([ds.Z[idx], ds.N[idx]], 1), 3)
        eps = np.asarray(per_nucleus(keys, lambda k: jax.random.normal(k, (comp.size,))))
        y = mu + sd * eps
        w = np.broadcast_to(posterior.samples("weights")[:, None, :], (comp.size, idx.size, p))
        # predictive density of y_obs under each draw's mixture component
        logd = stats.norm.logpdf(y_obs[None, :], mu, sd)
        return Prediction(posterior.mixer, ds.Z[idx], ds.N[idx], labels, y, mu, np.array(w),
                          y_obs, logd, ds.models)  # fmt: skip
    tr = posterior.dataset.split(posterior.settings.get("split", "train"))
    out = posterior_predictive(
        posterior.mixer,
        posterior.all_samples(),
        F,
        np.stack([ds.Z[idx], ds.N[idx]], 1).astype(np.float64),
        y_obs,
        posterior.options,
        posterior.settings.get("likelihood", "mean"),
        key,
        train=(tr.F, tr.x, tr.y),
    )
    return Prediction(posterior.mixer, ds.Z[idx], ds.N[idx], labels, out["y"], out["mu"],
                      out["weights"], y_obs, out["log_density"], ds.models)  # fmt: skip


def derivable_nuclei(quantity: str, have: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The nuclei of ``have`` (Z, N pairs) at which ``quantity`` can be formed from binding
    energies of nuclei in ``have`` (S2n at (Z, N) needs (Z, N − 2) too), sorted."""
    from .data.observables import linear_terms

    terms, _ = linear_terms(quantity)
    have = set(have)
    return [(z, n) for z, n in sorted(have)
            if all((z + dz, n + dn) in have for dz, dn, _ in terms)]  # fmt: skip


def derive(
    posterior: Posterior,
    quantity: str,
    where: Iterable | None = None,
    *,
    seed: int = 1,
) -> Prediction:
    """Predictive draws of a quantity derived from binding energies (S2n, Sn, Qa, ...).

    For a fit whose observable is ``BE``: the binding energies are predicted *jointly* at
    every nucleus the quantity needs (the same posterior draw everywhere), and the quantity
    is formed draw by draw (:func:`derive_from`), e.g. S2n(Z, N) = BE(Z, N) − BE(Z, N − 2),
    so the correlation of the two energies (shared weights, shared parameters) is kept
    rather than the two predictive laws combined as if independent.

    Parameters
    ----------
    quantity
        A name of :data:`lbmm.data.observables.DERIVED`.
    where
        (Z, N) pairs or labels; default every nucleus of the dataset whose neighbours the
        quantity needs are in the dataset too.

    Returns
    -------
    Prediction
        ``y`` and ``mu`` the derived draws; ``weights`` those at the nucleus itself;
        ``y_obs`` the quantity from the observed energies where all are known;
        ``log_density`` NaN (the derived law has no closed form).
    """
    from .data.elements import parse_label
    from .data.errors import DataError
    from .data.observables import linear_terms

    ds = posterior.dataset
    if ds.observable != "BE":
        raise DataError(
            f"derive {quantity!r}: the fit's observable is {ds.observable!r}; deriving needs "
            "a fit of binding energies (observable 'BE')"
        )
    terms, _ = linear_terms(quantity)
    have = list(zip(ds.Z.tolist(), ds.N.tolist(), strict=True))
    if where is None:
        targets = derivable_nuclei(quantity, have)
    else:
        targets = [parse_label(w) if isinstance(w, str) else (int(w[0]), int(w[1]))
                   for w in where]  # fmt: skip
    needed = sorted({(z + dz, n + dn) for z, n in targets for dz, dn, _ in terms})
    missing = sorted(set(needed) - set(have))
    if missing:
        raise DataError(f"derive {quantity!r}: needs BE of {label(*missing[0])}, which is not "
                        "in the dataset")  # fmt: skip
    if not targets:
        raise DataError(f"derive {quantity!r}: no nucleus of the dataset has the neighbours")
    return derive_from(predict(posterior, needed, seed=seed), quantity, targets)


def derive_from(pred: Prediction, quantity: str, targets: Sequence[tuple[int, int]]) -> Prediction:
    """Form a derived quantity draw by draw from a prediction of binding energies that holds
    every nucleus it needs (:func:`derive`).

    Raises
    ------
    DataError
        For a target whose neighbours are not in ``pred``.
    """
    from .data.errors import DataError
    from .data.observables import linear_terms

    terms, const = linear_terms(quantity)
    col = {(int(z), int(n)): i for i, (z, n) in enumerate(zip(pred.Z, pred.N, strict=True))}
    y = np.full((pred.y.shape[0], len(targets)), const)
    mu = np.full_like(y, const)
    y_obs = np.full(len(targets), const)
    for dz, dn, c in terms:
        try:
            idx = [col[(z + dz, n + dn)] for z, n in targets]
        except KeyError as err:
            where = label(*err.args[0])
            raise DataError(f"derive {quantity!r}: no prediction at {where}") from None
        y += c * pred.y[:, idx]
        mu += c * pred.mu[:, idx]
        y_obs += c * pred.y_obs[idx]
    self_idx = [col[zn] for zn in targets]
    Z = np.array([z for z, _ in targets])
    N = np.array([n for _, n in targets])
    labels = tuple(label(z, n) for z, n in targets)
    return Prediction(pred.mixer, Z, N, labels, y, mu, pred.weights[:, self_idx], y_obs,
                      np.full_like(y, np.nan), pred.models)  # fmt: skip


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


def pit(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Probability integral transform: the share of predictive draws below each observed
    value (uniform on (0, 1) for a calibrated predictor)."""
    return np.mean(np.asarray(samples) < np.asarray(y)[None, :], axis=0)


def interval_score(samples: np.ndarray, y: np.ndarray, level: float) -> np.ndarray:
    """Gneiting & Raftery's interval score of the equal-tailed interval at ``level``:
    width + (2 / (1 − level)) × the distance by which y falls outside (lower is better)."""
    a = 1.0 - level
    lo, hi = np.quantile(samples, [a / 2, 1 - a / 2], axis=0)
    return (hi - lo) + (2 / a) * ((lo - y) * (y < lo) + (y - hi) * (y > hi))


def calibration(samples: np.ndarray, y: np.ndarray) -> dict:
    """Calibration of predictive draws (S, n) against observations (n,).

    Returns
    -------
    dict
        ``ecp_mean_abs`` and ``ecp_max_abs`` (mean and max |ECP − level| over 10 … 90 %),
        ``pit`` (the n PIT values), ``pit_ks_p`` (Kolmogorov–Smirnov test of their
        uniformity), ``pit_sd`` (0.289 when uniform), ``outside_95`` (share outside the 95 %
        interval), ``interval_score_90`` and ``interval_score_95`` (means).
    """
    cov = ecp(samples, y, SUMMARY_ECP_LEVELS)
    dev = np.abs(np.array([cov[lv] - lv for lv in SUMMARY_ECP_LEVELS]))
    u = pit(samples, y)
    return {
        "ecp_mean_abs": float(dev.mean()),
        "ecp_max_abs": float(dev.max()),
        "pit": u.tolist(),
        "pit_ks_p": float(stats.kstest(u, "uniform").pvalue),
        "pit_sd": float(u.std(ddof=1)) if u.size > 1 else float("nan"),
        "outside_95": float(1.0 - ecp(samples, y, (0.95,))[0.95]),
        "interval_score_90": float(np.mean(interval_score(samples, y, 0.9))),
        "interval_score_95": float(np.mean(interval_score(samples, y, 0.95))),
    }


def evaluate(pred: Prediction, levels: Sequence[float] = ECP_LEVELS) -> dict:
    """Scores of a prediction where y is observed: rms of the predictive mean (and of the
    median and the mode, ``rms_median``, ``rms_map``), ECP, CRPS, mean log predictive
    density and :func:`calibration`."""
    ok = np.isfinite(pred.y_obs)
    if not ok.any():
        raise ValueError("no observed values at the predicted nuclei")
    y = pred.y_obs[ok]
    ys = pred.y[:, ok]
    lpd = logsumexp(jnp.asarray(pred.log_density[:, ok]), axis=0) - np.log(ys.shape[0])
    return {
        "rms": float(np.sqrt(np.mean((pred.mean[ok] - y) ** 2))),
        "rms_median": float(np.sqrt(np.mean((np.median(ys, axis=0) - y) ** 2))),
        "rms_map": float(np.sqrt(np.mean((_modes(ys) - y) ** 2))),
        "ecp": ecp(ys, y, levels),
        "crps": float(np.mean(crps_samples(ys, y))),
        "mlpd": float(np.mean(np.asarray(lpd))),
        "n": int(ok.sum()),
        **calibration(ys, y),
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


def summarize(posterior: Posterior, *, seed: int = 1) -> dict[str, Any]:
    """The paper's Table 1 and Table 2 row of a fit, with its scores and diagnostics, as
    plain data: the numbers :func:`mixer_metrics` gives a run, on the train and test nuclei.

    Parameters
    ----------
    posterior
        A fit.
    seed
        Seed of the predictive draws (a run uses the entry's seed + 1).

    Returns
    -------
    dict
        ``train_rms``, ``test_rms`` (of the posterior predictive mean), ``sigma_mean``,
        ``sigma_sd``, ``weights`` (Table 2), ``test`` (every score of the test nuclei),
        ``ecp`` (test, 10 … 90 %), ``rhat_max``, ``ess_bulk_min``, ``ess_tail_min``,
        ``divergences``, ``converged``, ``wall_s``.
    """
    ds = posterior.dataset
    where = np.unique(np.concatenate([ds.split_indices(s) for s in ("train", "test")
                                      if s in ds.splits]))  # fmt: skip
    pred = predict(posterior, [(int(ds.Z[i]), int(ds.N[i])) for i in where], seed=seed)
    m = mixer_metrics(posterior, pred, ds, where)
    d = posterior.diagnostics
    test = m.get("test", {})
    ecp_test = dict(zip(test.get("ecp", {}).get("levels", []),
                        test.get("ecp", {}).get("coverage", []), strict=True))  # fmt: skip
    return {
        "train_rms": m.get("train", {}).get("rms", float("nan")),
        "test_rms": test.get("rms", float("nan")),
        "sigma_mean": m["sigma_mean"],
        "sigma_sd": m["sigma_sd"],
        "weights": m["weights"],
        "test": {k: v for k, v in test.items() if k != "nuclei"},
        "ecp": {f"{lv:.1f}": ecp_test[lv] for lv in SUMMARY_ECP_LEVELS if lv in ecp_test},
        "rhat_max": d.get("rhat_max"),
        "ess_bulk_min": d.get("ess_bulk_min"),
        "ess_tail_min": d.get("ess_tail_min"),
        "divergences": d.get("divergences", 0),
        "converged": d.get("converged"),
        "wall_s": d.get("wall_s"),
    }


# ---------------------------------------------------------------------- a run's scores


def take(pred: Prediction, idx: np.ndarray) -> Prediction:
    """A :class:`Prediction` restricted to some of its nuclei."""
    idx = np.asarray(idx, dtype=np.int64)
    return replace(
        pred,
        Z=pred.Z[idx],
        N=pred.N[idx],
        labels=tuple(np.asarray(pred.labels, dtype=object)[idx].tolist()),
        y=pred.y[:, idx],
        mu=pred.mu[:, idx],
        weights=pred.weights[:, idx],
        y_obs=pred.y_obs[idx],
        log_density=pred.log_density[:, idx],
    )


def fitted_nuclei(posterior: Posterior) -> set[str]:
    """Labels of the nuclei whose values the fit saw: its training split, and for BMA its
    evidence nuclei (its only data)."""
    if posterior.mixer == "bma":
        return set(posterior.settings.get("fitted_nuclei", ()))
    ds = posterior.dataset
    return set(ds.split(posterior.settings.get("split", "train")).labels)


def _scores(sub: Prediction) -> dict[str, Any]:
    ev = evaluate(sub)
    return {
        "rms": ev["rms"],
        "rms_median": ev["rms_median"],
        "rms_map": ev["rms_map"],
        "n": ev["n"],
        "nuclei": list(sub.labels),
        "ecp": {"levels": list(ev["ecp"]), "coverage": list(ev["ecp"].values())},
        **{k: ev[k] for k in ("crps", "mlpd", "ecp_mean_abs", "ecp_max_abs", "pit",
                              "pit_ks_p", "pit_sd", "outside_95", "interval_score_90",
                              "interval_score_95")},
    }  # fmt: skip


def mixer_metrics(posterior: Posterior, pred: Prediction, ds: Dataset, where) -> dict[str, Any]:
    """Table 1 and 2 numbers and the scores of one fit, from its prediction over ``where``.

    ``pred`` holds the nuclei ``ds[where]``. ``train`` scores use its training nuclei;
    ``test`` scores the test nuclei the fit did not see (for BMA, the test nuclei that are
    not among its evidence nuclei; ``test.excluded`` lists any left out). rms is that of the
    posterior predictive mean.
    """
    where = np.asarray(where)
    pos = {int(i): j for j, i in enumerate(where.tolist())}
    seen = fitted_nuclei(posterior)
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        if split not in ds.splits:
            continue
        members = [pos[i] for i in ds.split_indices(split).tolist() if i in pos]
        sub = take(pred, np.asarray(members, dtype=np.int64))
        sub = take(sub, np.flatnonzero(np.isfinite(sub.y_obs)))
        excluded: list[str] = []
        if split != "train":
            keep = np.array([lab not in seen for lab in sub.labels], dtype=bool)
            excluded = [lab for lab, k in zip(sub.labels, keep, strict=True) if not k]
            sub = take(sub, np.flatnonzero(keep))
        if sub.y_obs.size == 0:
            continue
        out[split] = _scores(sub)
        if excluded:
            out[split]["excluded"] = excluded
    sigma = posterior.samples("sigma")
    out["sigma_mean"] = float(sigma.mean())
    out["sigma_sd"] = float(sigma.std(ddof=1))
    if sigma.ndim > 1:  # one σ_k per model (density likelihood)
        out["sigma_k"] = dict(zip(ds.models, sigma.mean(axis=0).tolist(), strict=True))
    # Table 2: global weights, or the mean of local weights over the training nuclei (over
    # the predicted nuclei where none of them was predicted, as for a fold's held-out set)
    members = []
    if "train" in ds.splits:
        members = [pos[i] for i in ds.split_indices("train").tolist() if i in pos]
    w = pred.weights[:, members] if members else pred.weights
    wm = w.mean(axis=(0, 1))
    ws = w.mean(axis=1).std(axis=0, ddof=1)
    out["weights"] = dict(zip(ds.models, wm.tolist(), strict=True))
    out["weights_sd"] = dict(zip(ds.models, ws.tolist(), strict=True))
    if posterior.mixer == "bma":
        out["bma_weights"] = {
            meth: dict(zip(ds.models, np.asarray(ws_).tolist(), strict=True))
            for meth, ws_ in posterior.settings["bma_weights"].items()
        }
    return out

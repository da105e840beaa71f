"""lbmm's mixers behind Taweret's interface (BAND's framework for Bayesian model mixing).

Install with ``pip install 'lbmm[taweret]'``. :class:`LbmmMixer` is a subclass of Taweret's
``BaseMixer``: code written against Taweret (``train``, ``predict``, ``predict_weights``,
``evaluate``, ``evaluate_weights``, ``prior_predict``, ``map``, ``posterior``, ``prior``,
``set_prior``) runs lbmm's mixers — BMM with global linear or Dirichlet weights (GBMM+L,
GBMM+D, GBMM+O) and the local Dirichlet mixers (LBMM+GLD, LBMM+GPD) — with NumPyro's NUTS
(or tempered SMC) underneath.

Inputs are nuclei: ``x`` is an (n, 2) array of integer (Z, N). Each model is a Taweret
``BaseModel`` (or any object) whose ``evaluate(x)`` returns its predictions at ``x`` (or a
tuple whose first element is them, as Taweret's models return ``(mean, sd)``), a callable
``f(x)``, or a pandas Series indexed by (Z, N).

Differences from Taweret's own mixers, by design:

- the draws ``predict`` returns are of a new observation (the mixture with its noise), so
  their intervals are predictive intervals; ``evaluate`` gives the noise-free mixture;
- ``y_err`` is stored with the data but the likelihood's noise σ is learned (lbmm's mixers
  model the models' discrepancy, which dwarfs the measurement errors of masses);
- ``posterior`` is the ArviZ posterior group (named dimensions ``chain``, ``draw``,
  ``model``), ``train`` returns lbmm's :class:`~lbmm.inference.Posterior` with its
  convergence diagnostics.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

try:
    from Taweret.core.base_mixer import BaseMixer
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("lbmm.taweret needs Taweret: pip install 'lbmm[taweret]'") from err

from .data import Dataset, OptionError
from .inference import Posterior, fit
from .mixers import get_mixer
from .mixers.predictive import posterior_predictive
from .mixers.priors import parse_prior
from .predict import predict as _predict

__all__ = ["LbmmMixer"]

#: ``fit`` settings that :class:`LbmmMixer` sets itself (everything else may be passed on)
_OWN = ("dataset", "mixer", "split", "likelihood", "priors", "options")


def _nuclei(x, what: str = "x") -> np.ndarray:
    """x as an (n, 2) int64 array of (Z, N), checked."""
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] == 0:
        raise ValueError(f"{what}: expected an (n, 2) array of (Z, N) with n ≥ 1, got shape "
                         f"{a.shape}")  # fmt: skip
    if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: expected finite numbers (Z, N)")
    z = a.astype(np.int64)
    if not np.array_equal(z, a) or (z < 0).any():
        raise ValueError(f"{what}: Z and N must be non-negative integers")
    return z


def _model_fn(name: str, model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The predictions of one model at nuclei (n, 2), as a function."""
    if isinstance(model, pd.Series):
        table = model

        def lookup(x):
            idx = pd.MultiIndex.from_arrays([x[:, 0], x[:, 1]])
            missing = ~idx.isin(table.index)
            if missing.any():
                z, n = x[np.argmax(missing)]
                raise ValueError(f"model {name!r} has no value at Z={z}, N={n}")
            return table.reindex(idx).to_numpy(np.float64)

        return lookup
    if hasattr(model, "evaluate") and callable(model.evaluate):
        return model.evaluate
    if callable(model):
        return model
    raise TypeError(f"model {name!r}: expected an object with evaluate(x), a callable or a "
                    f"pandas Series indexed by (Z, N), got {type(model).__name__}")  # fmt: skip


class LbmmMixer(BaseMixer):
    """An lbmm mixer as a Taweret ``BaseMixer``.

    Parameters
    ----------
    models
        Model name → model (``evaluate(x)``, a callable, or a Series indexed by (Z, N)); at
        least two.
    mixer
        A sampled mixer of :data:`lbmm.mixers.MIXERS`: ``"linear"``, ``"dirichlet"``
        (default), ``"orthogonal"``, ``"glm_dirichlet"``, ``"gp_dirichlet"``.
    likelihood
        ``"mean"`` (mix the predictions) or ``"density"`` (mix the models' densities, a σ
        per model).
    options
        Mixer options (e.g. ``{"noise": "spread"}``); unknown ones are refused.
    observable
        The observable's name, kept with the data.
    **fit_settings
        Settings of :func:`lbmm.inference.fit` (``num_warmup``, ``num_samples``,
        ``num_chains``, ``seed``, ``method``, ``max_samples`` …); unknown ones are refused.
    """

    def __init__(
        self,
        models: Mapping[str, Any],
        mixer: str = "dirichlet",
        *,
        likelihood: str = "mean",
        options: Mapping[str, Any] | None = None,
        observable: str = "y",
        **fit_settings: Any,
    ) -> None:
        if not isinstance(models, Mapping) or len(models) < 2:
            raise ValueError("models: expected a mapping of at least two named models")
        self.spec = get_mixer(mixer)
        if self.spec.model is None:
            raise OptionError(f"mixer {mixer!r} is closed form (it needs an evidence split); "
                              "use lbmm.inference.fit for it")  # fmt: skip
        if likelihood not in ("mean", "density"):
            raise OptionError(f"likelihood: expected 'mean' or 'density', got {likelihood!r}")
        known = set(inspect.signature(fit).parameters) - set(_OWN)
        unknown = sorted(set(fit_settings) - known)
        if unknown:
            raise OptionError(f"unknown fit setting(s) {unknown}; known: {sorted(known)}")
        self.model_names = tuple(str(k) for k in models)
        self._fns = {str(k): _model_fn(str(k), v) for k, v in models.items()}
        self.model_dict = dict(models)
        self.mixer = mixer
        self.likelihood = likelihood
        self.options = dict(options or {})
        self.spec.check_option_names(self.options)
        self.observable = observable
        self.fit_settings = dict(fit_settings)
        self._prior: dict[str, Any] = {}
        self._fit: Posterior | None = None

    # ------------------------------------------------------------------ data

    def model_predictions(self, x) -> np.ndarray:
        """Every model's predictions at the nuclei ``x``: an (n, K) array."""
        z = _nuclei(x)
        cols = []
        for name, fn in self._fns.items():
            out = fn(z)
            if isinstance(out, tuple | list):
                out = out[0]
            v = np.asarray(out, dtype=np.float64).reshape(-1)
            if v.shape != (z.shape[0],):
                raise ValueError(f"model {name!r}: expected {z.shape[0]} predictions, got "
                                 f"shape {np.shape(out)}")  # fmt: skip
            if not np.all(np.isfinite(v)):
                i = int(np.argmax(~np.isfinite(v)))
                raise ValueError(f"model {name!r}: no finite prediction at Z={z[i, 0]}, "
                                 f"N={z[i, 1]}")  # fmt: skip
            cols.append(v)
        return np.stack(cols, axis=1)

    def dataset(self, x, y=None, y_err=None) -> Dataset:
        """The nuclei ``x`` as an lbmm :class:`~lbmm.data.Dataset` (every nucleus in the
        ``train`` split when ``y`` is given)."""
        z = _nuclei(x)
        n = z.shape[0]
        yy = np.full(n, np.nan) if y is None else np.asarray(y, np.float64).reshape(-1)
        if yy.shape != (n,):
            raise ValueError(f"y_exp: expected {n} values (one per nucleus), got {np.shape(y)}")
        if y is not None and not np.all(np.isfinite(yy)):
            raise ValueError(f"y_exp: not finite at row {int(np.argmax(~np.isfinite(yy)))}")
        ye = None if y_err is None else np.broadcast_to(np.asarray(y_err, np.float64), (n,))
        return Dataset.from_arrays(
            "taweret", self.observable, self.model_names, z[:, 0], z[:, 1], yy,
            self.model_predictions(z), y_uncertainty=ye,
            splits={"train": np.arange(n)} if y is not None else None,
        )  # fmt: skip

    # ------------------------------------------------------------------ priors

    @property
    def prior(self) -> dict[str, Any]:
        """Prior name → NumPyro distribution: the mixer's defaults, then :meth:`set_prior`'s."""
        return {**self.spec.default_priors(self.options), **self._prior}

    def set_prior(self, prior_dict: Mapping[str, Any]) -> dict[str, Any]:
        """Set priors by name (NumPyro distributions or text such as ``"HalfNormal(2)"``);
        a name the mixer does not read is refused. Returns :attr:`prior`."""
        known = self.spec.known_priors(self.options)
        out = {}
        for name, d in prior_dict.items():
            if name not in known:
                raise OptionError(f"mixer {self.mixer!r} has no prior {name!r}; known: "
                                  f"{list(known)}")  # fmt: skip
            out[name] = parse_prior(d) if isinstance(d, str) else d
        self._prior = {**self._prior, **out}
        return self.prior

    # ------------------------------------------------------------------ fitting

    def train(self, x_exp, y_exp, y_err=None) -> Posterior:
        """Fit the mixer to observations ``y_exp`` at the nuclei ``x_exp``.

        Returns
        -------
        Posterior
            lbmm's result (draws, diagnostics with ``converged``); also kept as
            :attr:`result`.
        """
        ds = self.dataset(x_exp, y_exp, y_err)
        self._fit = fit(ds, self.mixer, likelihood=self.likelihood, options=self.options,
                        priors=self._prior or None, **self.fit_settings)  # fmt: skip
        return self._fit

    @property
    def result(self) -> Posterior:
        """The last :meth:`train`'s :class:`~lbmm.inference.Posterior`."""
        if self._fit is None:
            raise RuntimeError("no posterior yet: call train(x_exp, y_exp) first")
        return self._fit

    @property
    def posterior(self):
        """The posterior draws (ArviZ's posterior group: dims ``chain``, ``draw``, …)."""
        return self.result.idata.posterior

    @property
    def map(self) -> dict[str, np.ndarray]:
        """The stored draw with the highest log joint density, by site (a point estimate
        among the draws, not an optimisation)."""
        post = self.result
        lp = post.idata.sample_stats["lp"].values.reshape(-1)
        i = int(np.argmax(lp))
        return {k: v[i] for k, v in post.all_samples().items()}

    # ------------------------------------------------------------------ evaluation

    def _context(self, x):
        """(F, x, opts, train arrays) for evaluating one draw at ``x``: the fit's resolved
        options and training data when trained, else options resolved on ``x`` itself."""
        ds = self.dataset(x)
        if self._fit is not None:
            tr = self._fit.dataset.split("train")
            return ds.F, ds.x, self._fit.options, (tr.F, tr.x, tr.y)
        opts = self.spec.resolve_options(ds, self.options, self.likelihood)
        return ds.F, ds.x, opts, (ds.F, ds.x, ds.y)

    def _one(self, mixture_params: Mapping[str, Any], x, y=None, seed: int = 0) -> dict:
        import jax

        F, xf, opts, train = self._context(x)
        yo = np.full(F.shape[0], np.nan) if y is None else np.asarray(y, np.float64).reshape(-1)
        s = {k: np.asarray(v)[None] for k, v in mixture_params.items()}
        out = posterior_predictive(self.mixer, s, F, xf, yo, opts, self.likelihood,
                                   jax.random.PRNGKey(seed), train=train)  # fmt: skip
        return {k: np.asarray(v)[0] for k, v in out.items()}

    def evaluate(self, mixture_params: Mapping[str, Any], x, model_params=None, *,
                 seed: int = 0) -> np.ndarray:  # fmt: skip
        """The mixture Σ ω_k(x) f_k(x) at the nuclei ``x`` for one value of the mixer's
        parameters (by site, e.g. :attr:`map`); (n,). Local Dirichlet weights are drawn
        given the parameters (``seed``). ``model_params`` is Taweret's place for the models'
        own parameters: lbmm mixes fixed model predictions, so it must be empty."""
        if model_params is not None and len(model_params) and any(len(p) for p in model_params):
            raise ValueError("model_params: lbmm mixes fixed model predictions; the models "
                             "have no parameters to calibrate here")  # fmt: skip
        return self._one(mixture_params, x, seed=seed)["mu"]

    def evaluate_weights(self, mixture_params: Mapping[str, Any], x, *,
                         seed: int = 0) -> np.ndarray:  # fmt: skip
        """The weights ω(x) for one value of the parameters: (n, K)."""
        return self._one(mixture_params, x, seed=seed)["weights"]

    def mix_loglikelihood(self, mixture_params: Mapping[str, Any], x, y_exp) -> float:
        """log p(y_exp | parameters), summed over the nuclei ``x``."""
        return float(np.sum(self._one(mixture_params, x, y=y_exp)["log_density"]))

    # ------------------------------------------------------------------ prediction

    @staticmethod
    def _bands(draws: np.ndarray, CI: Sequence[float]):
        return (draws, draws.mean(axis=0), np.percentile(draws, list(CI), axis=0),
                draws.std(axis=0))  # fmt: skip

    def predict(self, x, CI: Sequence[float] = (5, 95), seed: int = 1):
        """Posterior predictive draws of y at the nuclei ``x``.

        Returns
        -------
        (draws, mean, intervals, std)
            draws (S, n); mean (n,); the ``CI`` percentiles (len(CI), n); sd (n,).
        """
        pred = _predict(self.result, self.dataset(x), seed=seed)
        return self._bands(np.asarray(pred.y), CI)

    def predict_weights(self, x, CI: Sequence[float] = (5, 95), seed: int = 1):
        """Posterior draws of the weights at the nuclei ``x``: (S, n, K), their mean (n, K),
        the ``CI`` percentiles (len(CI), n, K) and sd (n, K)."""
        pred = _predict(self.result, self.dataset(x), seed=seed)
        return self._bands(np.asarray(pred.weights), CI)

    def prior_predict(self, x, CI: Sequence[float] = (5, 95), n_sample: int = 1000,
                      seed: int = 2):  # fmt: skip
        """Prior predictive draws of y at the nuclei ``x`` (the mixer's priors with
        :meth:`set_prior`'s; on the training inputs' basis once trained, else on ``x``'s).

        Returns
        -------
        (draws, mean, intervals, std)
            As :meth:`predict`.
        """
        import jax
        import jax.numpy as jnp
        from numpyro.infer import Predictive

        F, xf, opts, (tF, tx, _) = self._context(x)
        if self.likelihood == "mean" and opts.get("noise") == "gp":
            raise OptionError("prior_predict: noise 'gp' is conditioned on the training "
                              "residuals; its prior predictive is not drawn here")  # fmt: skip
        kwargs = {"likelihood_kind": self.likelihood, "priors": self._prior or None, **opts,
                  **self.spec.fit_arrays(tx, opts)}  # fmt: skip
        k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
        draws = Predictive(self.spec.model, num_samples=int(n_sample))(
            k1, jnp.asarray(tF), jnp.asarray(tx), None, **kwargs
        )
        draws = {k: np.asarray(v) for k, v in draws.items() if k != "y"}
        out = posterior_predictive(self.mixer, draws, F, xf, np.full(F.shape[0], np.nan), opts,
                                   self.likelihood, k2, train=None)  # fmt: skip
        return self._bands(np.asarray(out["y"]), CI)

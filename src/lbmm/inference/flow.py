"""A posterior as a distribution: a normalizing flow fitted to the draws.

The flow lives on the sampler's flat unconstrained scale (every latent sample site mapped to
ℝ by NumPyro's bijection of its support, then raveled), so sampling it and mapping back gives
draws of every site, deterministic sites included, and its ``log_prob`` is a density there.

Posteriors with a block of many latent coordinates (HSGP coefficients: basis × model, 3,000
and more) are too high-dimensional for a flow fitted to a few thousand draws. There the
flow models the other sites (hyperparameters, noise: tens of coordinates), and the latent
block given them is a Gaussian law fitted by least squares:
``z = b + A h̃ + V diag(s) ε_r + d ⊙ ε``, h̃ the standardised hyperparameters, ``V`` the
first ``rank`` principal directions of the regression residuals and ``d`` the residual sd
left per coordinate — a low-rank-plus-diagonal covariance, exact in mean and variance of
every coordinate and in the ``rank`` leading correlations.

The fitted object (:class:`PosteriorFlow`) is written as three files: ``KEY.eqx`` (the
arrays, Equinox serialisation), ``KEY.json`` (everything needed to rebuild it: the sites
with shapes and transforms, the architecture, versions, the sha256 of the posterior it was
fitted to, the fit's diagnostics) and ``KEY.data.nc`` (the dataset the posterior was fitted
on, so the flow predicts with no other file).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .. import _jax  # noqa: F401  (float64)
from .._util import jsonable, new_file_mode
from ..data.errors import InputError, OptionError
from ..mixers import get_mixer
from .posterior import DIMS, LATENT_SITES, Posterior, dataset_from_constant_data, make_idata

__all__ = [
    "FLOW_DEFAULTS",
    "FLOW_FORMAT",
    "FlowError",
    "PosteriorFlow",
    "fit_flow",
    "load_flow",
    "mmd_test",
    "model_inputs",
    "unconstrained_draws",
]

FLOW_FORMAT = "lbmm-flow"
FLOW_FORMAT_VERSION = 1

#: Settings of :func:`fit_flow` (unknown names refused).
FLOW_DEFAULTS: dict[str, Any] = {
    "flow_layers": 2,  # masked autoregressive layers
    "nn_width": 16,  # hidden units of each layer's network
    "knots": 4,  # rational-quadratic spline knots of each transformer
    "interval": 5.0,  # spline interval (−interval, interval) on the whitened scale
    "learning_rate": 1e-3,
    "max_epochs": 400,
    "max_patience": 20,  # epochs without a better validation loss before stopping
    "batch_size": 256,
    "val_prop": 0.1,  # share of the training draws that decides when to stop
    "held_out": 0.25,  # share of every chain (its last draws) kept out of the fit, for checks
    "max_flow_dim": 64,  # above this many coordinates the latent block becomes Gaussian
    "rank": 512,  # principal directions of the latent block's conditional law
}


class FlowError(InputError):
    """A flow file is missing, unreadable or does not belong to this posterior."""


def _check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    opts = dict(FLOW_DEFAULTS)
    for k, v in (options or {}).items():
        if k not in FLOW_DEFAULTS:
            raise OptionError(
                f"flow: unknown setting {k!r}; expected one of {sorted(FLOW_DEFAULTS)}"
            )
        opts[k] = v
    for k in ("flow_layers", "nn_width", "knots", "max_epochs", "max_patience", "batch_size",
              "max_flow_dim", "rank"):  # fmt: skip
        v = opts[k]
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise OptionError(f"flow.{k}: expected an integer >= 1, got {v!r}")
    for k in ("val_prop", "held_out"):
        v = opts[k]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1:
            raise OptionError(f"flow.{k}: expected a number in (0, 1), got {v!r}")
    for k in ("learning_rate", "interval"):
        v = opts[k]
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise OptionError(f"flow.{k}: expected a positive number, got {v!r}")
    return opts


def model_inputs(posterior: Posterior, priors: Mapping[str, Any] | None = None,
                 dataset=None):  # fmt: skip
    """The NumPyro model of a fit and its arguments on the fit's training split (of
    ``dataset``, default the fit's own), with the fit's resolved options (so the
    parametrisation is the fit's own).

    Returns
    -------
    (model, model_args, model_kwargs)
    """
    spec = get_mixer(posterior.mixer)
    if spec.model is None:
        raise OptionError(f"mixer {posterior.mixer!r} is closed form: it has no sampled model")
    ds = posterior.dataset if dataset is None else dataset
    train = ds.split(posterior.settings.get("split", "train"), require_observed=True)
    opts = posterior.options
    kwargs = {"likelihood_kind": posterior.settings.get("likelihood", "mean"), "priors": priors,
              **opts, **spec.fit_arrays(train.x, opts)}  # fmt: skip
    return spec.model, (jnp.asarray(train.F), jnp.asarray(train.x), jnp.asarray(train.y)), kwargs


@dataclass(frozen=True)
class _Layout:
    """The latent sample sites of a model on the flat unconstrained scale."""

    sites: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    supports: tuple[str, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(s, dtype=int)) for s in self.shapes)

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    def slices(self) -> dict[str, slice]:
        out, i = {}, 0
        for name, n in zip(self.sites, self.sizes, strict=True):
            out[name] = slice(i, i + n)
            i += n
        return out

    def to_dict(self) -> dict[str, Any]:
        rows = zip(self.sites, self.shapes, self.supports, strict=True)
        return {"sites": [{"name": n, "shape": list(s), "support": t} for n, s, t in rows]}


def _transforms(model, args, kwargs, key):
    """Latent sites (sorted), their shapes and support transforms, and the map from
    unconstrained values to every site (deterministic ones included)."""
    from numpyro import handlers
    from numpyro.infer.util import constrain_fn

    from .smc import latent_point

    z0 = latent_point(model, args, kwargs, key)
    tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **dict(kwargs))

    def post_fn(z):
        return constrain_fn(model, args, dict(kwargs), z, return_deterministic=True)

    sites = tuple(sorted(z0))
    layout = _Layout(
        sites,
        tuple(tuple(int(d) for d in np.shape(z0[s])) for s in sites),
        tuple(repr(tr[s]["fn"].support) for s in sites),
    )
    return layout, post_fn


def _flatten(layout: _Layout, z: Mapping[str, jax.Array]) -> jax.Array:
    """(n, dim) from unconstrained values by site, each (n, *shape)."""
    n = np.shape(z[layout.sites[0]])[0]
    return jnp.concatenate([jnp.reshape(z[s], (n, -1)) for s in layout.sites], axis=1)


def _unflatten(layout: _Layout, v: jax.Array) -> dict[str, jax.Array]:
    sl = layout.slices()
    return {s: v[..., sl[s]].reshape((*v.shape[:-1], *shape))
            for s, shape in zip(layout.sites, layout.shapes, strict=True)}  # fmt: skip


def unconstrained_draws(posterior: Posterior, key=None, priors: Mapping[str, Any] | None = None):
    """Every draw of a posterior on the flat unconstrained scale.

    Returns
    -------
    (draws, layout, postprocess)
        ``draws`` (chain, draw, dim); the layout of the coordinates; the map from a dict of
        unconstrained site values to every site's constrained value.
    """
    from numpyro.infer.util import unconstrain_fn

    model, args, kwargs = model_inputs(posterior, priors)
    key = jax.random.PRNGKey(0) if key is None else key
    layout, post_fn = _transforms(model, args, kwargs, key)
    post = posterior.idata.posterior
    c, d = post.sizes["chain"], post.sizes["draw"]
    missing = [s for s in layout.sites if s not in post.data_vars]
    if missing:
        raise FlowError(f"the stored posterior lacks the latent site(s) {missing}")
    # every latent site's support is fixed (it does not depend on other sites), so its
    # bijection maps all draws at once; checked against NumPyro's unconstrain_fn on the
    # first draw, and that path taken for all draws where they differ. Draws are stored in
    # their constrained shape (a simplex of K has K − 1 unconstrained coordinates).
    from numpyro import handlers
    from numpyro.distributions.transforms import biject_to

    tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **dict(kwargs))
    vals = {s: jnp.asarray(post[s].values.reshape((c * d, *jnp.shape(tr[s]["value"]))))
            for s in layout.sites}  # fmt: skip
    z = {s: biject_to(tr[s]["fn"].support).inv(vals[s]) for s in layout.sites}
    first = unconstrain_fn(model, args, dict(kwargs), {s: v[0] for s, v in vals.items()})
    if not all(np.allclose(first[s], z[s][0], rtol=1e-9, atol=1e-9) for s in layout.sites):

        def one(params):
            return unconstrain_fn(model, args, dict(kwargs), params)

        z = jax.lax.map(one, vals, batch_size=256)
    flat = np.asarray(_flatten(layout, z)).reshape((c, d, layout.dim))
    return flat, layout, post_fn


# ------------------------------------------------------------------------------------- flow


def _make_flow(key, dim: int, opts: Mapping[str, Any], loc=None, chol=None):
    """A masked autoregressive flow with rational-quadratic spline transformers over
    whitened coordinates, then the fixed affine map ``loc + chol @ u`` back (the draws'
    mean and the Cholesky factor of their covariance: a Gaussian posterior needs no
    training at all, and the flow learns only where the posterior departs from one)."""
    import paramax
    from flowjax.bijections import RationalQuadraticSpline, TriangularAffine
    from flowjax.distributions import Normal, Transformed
    from flowjax.flows import masked_autoregressive_flow

    base = masked_autoregressive_flow(
        key,
        base_dist=Normal(jnp.zeros(dim)),
        transformer=RationalQuadraticSpline(knots=opts["knots"], interval=opts["interval"]),
        flow_layers=opts["flow_layers"],
        nn_width=opts["nn_width"],
    )
    loc = jnp.zeros(dim) if loc is None else jnp.asarray(loc)
    chol = jnp.eye(dim) if chol is None else jnp.asarray(chol)
    return Transformed(base, paramax.non_trainable(TriangularAffine(loc, chol)))


def _conditional_fit(h: np.ndarray, z: np.ndarray, rank: int) -> dict[str, np.ndarray]:
    """Least-squares Gaussian law of ``z`` (n, dz) given ``h`` (n, dh): mean b + A h̃ with
    h̃ = (h − hm)/hs, covariance V diag(s²) Vᵀ + diag(d²), V the ``rank`` leading principal
    directions of the residuals."""
    hm, hs = h.mean(0), h.std(0) + 1e-12
    X = np.column_stack([np.ones(len(h)), (h - hm) / hs])
    coef, *_ = np.linalg.lstsq(X, z, rcond=None)
    r = z - X @ coef
    n = len(z)
    _, sv, vt = np.linalg.svd(r / np.sqrt(n - X.shape[1]), full_matrices=False)
    rank = min(rank, vt.shape[0], z.shape[1] - 1)  # keep a residual for the diagonal
    V = vt[:rank].T
    s = sv[:rank]
    rest = r - (r @ V) @ V.T
    d = np.sqrt(np.maximum(rest.var(0, ddof=X.shape[1]), 1e-12))
    return {"hm": hm, "hs": hs, "b": coef[0], "A": coef[1:].T, "V": V, "s": s, "d": d}


def _cond_logpdf(c: Mapping[str, jax.Array], h: jax.Array, z: jax.Array) -> jax.Array:
    from numpyro.distributions import LowRankMultivariateNormal

    mean = c["b"] + ((h - c["hm"]) / c["hs"]) @ c["A"].T
    law = LowRankMultivariateNormal(mean, c["V"] * c["s"], c["d"] ** 2)
    return law.log_prob(z)


def _cond_sample(c: Mapping[str, jax.Array], key, h: jax.Array) -> jax.Array:
    k1, k2 = jax.random.split(key)
    n = h.shape[0]
    mean = c["b"] + ((h - c["hm"]) / c["hs"]) @ c["A"].T
    e_r = jax.random.normal(k1, (n, c["s"].shape[0]))
    e_d = jax.random.normal(k2, (n, c["d"].shape[0]))
    return mean + (e_r * c["s"]) @ c["V"].T + e_d * c["d"]


@dataclass(frozen=True, eq=False)
class PosteriorFlow:
    """A posterior as a distribution over the flat unconstrained scale.

    Attributes
    ----------
    mixer, settings, dataset
        Those of the posterior it was fitted to (``settings`` as stored in its NetCDF).
    layout
        The latent sites: names, shapes, supports; coordinates in this order.
    flow
        The flowjax distribution over the coordinates ``flow_index``.
    conditional
        Arrays of the Gaussian law of the other coordinates (``latent_index``) given them,
        or None when the flow covers every coordinate.
    meta
        The sidecar: architecture, options, versions, source hash, fit diagnostics.
    """

    mixer: str
    settings: Mapping[str, Any]
    dataset: Any
    layout: _Layout
    flow: Any
    conditional: Mapping[str, Any] | None
    flow_index: np.ndarray
    latent_index: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return self.layout.dim

    def _posterior_stub(self) -> Posterior:
        return Posterior(self.mixer, xr.DataTree(), self.dataset, self.settings, {})

    def sample_unconstrained(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` draws (n, dim) on the flat unconstrained scale."""
        k1, k2 = jax.random.split(_typed(key))
        h = self.flow.sample(_typed(k1), (n,))
        out = jnp.zeros((n, self.dim))
        out = out.at[:, self.flow_index].set(h)
        if self.conditional is not None:
            out = out.at[:, self.latent_index].set(_cond_sample(self.conditional, k2, h))
        return out

    def log_prob(self, params: Mapping[str, Any] | jax.Array) -> jax.Array:
        """Log density on the flat unconstrained scale, of an array (..., dim) or of a dict
        of unconstrained site values (each (n, *shape))."""
        v = _flatten(self.layout, params) if isinstance(params, Mapping) else jnp.asarray(params)
        h = v[..., self.flow_index]
        lp = self.flow.log_prob(h)
        if self.conditional is not None:
            lp = lp + _cond_logpdf(self.conditional, h, v[..., self.latent_index])
        return lp

    def constrain(self, v: jax.Array) -> dict[str, np.ndarray]:
        """Every site's value (constrained, deterministic sites included) of flat
        unconstrained draws (n, dim)."""
        model, args, kwargs = model_inputs(self._posterior_stub())
        _, post_fn = _transforms(model, args, kwargs, jax.random.PRNGKey(0))
        z = _unflatten(self.layout, jnp.asarray(v))
        out = jax.lax.map(post_fn, z, batch_size=256)
        return {k: np.asarray(a) for k, a in out.items()}

    def sample(self, key: jax.Array, n: int) -> dict[str, np.ndarray]:
        """``n`` draws of every site, (n, ...) each."""
        return self.constrain(self.sample_unconstrained(key, n))

    def posterior(self, key: jax.Array, n: int, num_chains: int = 1) -> Posterior:
        """A :class:`Posterior` of ``n`` flow draws (``num_chains`` × n/num_chains), usable
        wherever a fitted one is (:func:`lbmm.predict.predict`, metrics)."""
        if n % num_chains:
            raise OptionError(f"n = {n} draws do not split into {num_chains} chains")
        draws = self.sample(key, n)
        samples = {k: v.reshape((num_chains, n // num_chains, *v.shape[1:]))
                   for k, v in draws.items()}  # fmt: skip
        dims = dict(DIMS)
        if self.settings.get("likelihood") == "density":
            dims["sigma"] = ["model"]
        idata = make_idata(samples, self.dataset, self.settings.get("split", "train"), None, dims)
        diag = {"sampler": "normalizing flow", "flow": dict(self.meta.get("fit", {}))}
        return Posterior(self.mixer, idata, self.dataset, dict(self.settings), diag)

    def save(self, path: str | Path) -> Path:
        """Write ``PATH.eqx``, ``PATH.json`` and ``PATH.data.nc`` (``path`` without
        suffix or with ``.eqx``), each atomically."""
        import equinox as eqx

        base = _base(path)
        base.parent.mkdir(parents=True, exist_ok=True)
        _atomic(_with(base, ".eqx"), lambda p: eqx.tree_serialise_leaves(p, self._tree()))
        _atomic(_with(base, ".data.nc"), lambda p: _data_tree(self).to_netcdf(
            p, engine="h5netcdf"))  # fmt: skip
        text = json.dumps(jsonable(dict(self.meta)), indent=1, allow_nan=False)
        _atomic(_with(base, ".json"), lambda p: Path(p).write_text(text, "utf-8"))
        return _with(base, ".eqx")

    def _tree(self):
        return {"flow": self.flow, "conditional": dict(self.conditional or {})}


def _typed(key: jax.Array) -> jax.Array:
    """A new-style typed key (flowjax's requirement) from either kind."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def _base(path: str | Path) -> Path:
    """The path without the flow suffix (``KEY.eqx`` → ``KEY``; a key may hold dots)."""
    p = str(path)
    return Path(p[: -len(".eqx")] if p.endswith(".eqx") else p[: -len(".json")]
                if p.endswith(".json") else p)  # fmt: skip


def _with(base: Path, suffix: str) -> Path:
    return Path(f"{base}{suffix}")


def _atomic(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, new_file_mode())  # files to hand on: readable as any new file is
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _data_tree(pf: PosteriorFlow) -> xr.Dataset:
    """The dataset of a flow as NetCDF variables (as in a posterior's constant data)."""
    from .posterior import constant_data

    cd = xr.Dataset(constant_data(pf.dataset))
    cd.attrs["lbmm"] = json.dumps(
        {"dataset": pf.meta["dataset"], "settings": jsonable(dict(pf.settings)),
         "mixer": pf.mixer}, allow_nan=False)  # fmt: skip
    return cd


def mmd_test(a: np.ndarray, b: np.ndarray, *, key, permutations: int = 200) -> dict[str, float]:
    """Two-sample test of equal laws: the squared maximum mean discrepancy between the rows
    of ``a`` and ``b`` with a Gaussian kernel (bandwidth: the median distance), and its
    permutation p-value."""
    x = jnp.asarray(np.vstack([a, b]))
    n = len(a)
    sq = jnp.sum(x**2, axis=1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    bw = jnp.median(d2[jnp.triu_indices(len(x), 1)])
    k = jnp.exp(-d2 / bw)

    def stat(lab):
        w = jnp.where(lab, 1.0 / n, -1.0 / (len(x) - n))
        return w @ k @ w

    lab = jnp.arange(len(x)) < n
    obs = stat(lab)
    perms = jax.vmap(lambda kk: stat(jax.random.permutation(kk, lab)))(
        jax.random.split(key, permutations))  # fmt: skip
    p = (1 + jnp.sum(perms >= obs)) / (permutations + 1)
    return {"mmd2": float(obs), "p_value": float(p), "permutations": permutations}


def _quantile_errors(flow_draws: np.ndarray, held: np.ndarray, q=(0.05, 0.5, 0.95)) -> dict:
    """Largest |quantile difference| / held-out sd over the coordinates, per quantile."""
    sd = held.std(0) + 1e-12
    out = {}
    for qq in q:
        e = np.abs(np.quantile(flow_draws, qq, axis=0) - np.quantile(held, qq, axis=0)) / sd
        out[f"q{round(qq * 100):02d}_max"] = float(e.max())
        out[f"q{round(qq * 100):02d}_mean"] = float(e.mean())
    return out


def fit_flow(
    posterior: Posterior,
    *,
    key: jax.Array,
    options: Mapping[str, Any] | None = None,
    source_sha256: str | None = None,
    show_progress: bool = False,
) -> PosteriorFlow:
    """Fit a normalizing flow to a posterior's draws.

    The last ``held_out`` share of every chain is kept out of the fit; the flow's fidelity
    is measured against those draws and kept in ``meta["fit"]``: held-out mean log density,
    per-coordinate quantile errors (in held-out sds) and an MMD two-sample test of the flow's
    coordinates against the held-out draws.

    Parameters
    ----------
    posterior
        A fitted (sampled) posterior; BMA's closed form is refused.
    key
        Random key of the fit and its checks.
    options
        :data:`FLOW_DEFAULTS` settings.
    source_sha256
        The sha256 of the posterior's file, recorded in the sidecar.
    """
    import flowjax
    from flowjax.train import fit_to_data

    opts = _check_options(options)
    t0 = time.perf_counter()
    draws, layout, _ = unconstrained_draws(posterior)
    c, d, dim = draws.shape
    cut = round(d * (1 - opts["held_out"]))
    if cut < 10 or d - cut < 10:
        raise OptionError(f"flow: {d} draws per chain are too few to hold out {opts['held_out']}")
    train = draws[:, :cut].reshape((-1, dim))
    held = draws[:, cut:].reshape((-1, dim))
    sl = layout.slices()
    latent = [s for s in layout.sites if s in LATENT_SITES]
    if dim > opts["max_flow_dim"] and latent:
        lat_idx = np.concatenate([np.arange(dim)[sl[s]] for s in latent])
    else:
        lat_idx = np.array([], int)
    flow_idx = np.setdiff1d(np.arange(dim), lat_idx)
    if flow_idx.size > opts["max_flow_dim"]:
        raise OptionError(
            f"flow: {flow_idx.size} coordinates outside the latent sites {latent} exceed "
            f"max_flow_dim = {opts['max_flow_dim']}"
        )
    h = train[:, flow_idx]
    cov = np.atleast_2d(np.cov(h.T)) + 1e-9 * np.eye(flow_idx.size)
    k_init, k_fit, k_check, k_mmd = jax.random.split(_typed(key), 4)
    flow = _make_flow(k_init, flow_idx.size, opts, h.mean(0), np.linalg.cholesky(cov))
    flow, losses = fit_to_data(
        k_fit, flow, jnp.asarray(h), learning_rate=opts["learning_rate"],
        max_epochs=opts["max_epochs"], max_patience=opts["max_patience"],
        batch_size=min(opts["batch_size"], len(h)), val_prop=opts["val_prop"],
        show_progress=show_progress,
    )  # fmt: skip
    cond = None
    if lat_idx.size:
        cond = {k: jnp.asarray(v) for k, v in
                _conditional_fit(h, train[:, lat_idx], opts["rank"]).items()}  # fmt: skip
    fit_s = time.perf_counter() - t0
    meta = {
        "format": FLOW_FORMAT,
        "format_version": FLOW_FORMAT_VERSION,
        "mixer": posterior.mixer,
        "layout": layout.to_dict(),
        "dim": dim,
        "flow_index": flow_idx.tolist(),
        "latent_index": lat_idx.tolist(),
        "architecture": {
            "flow": "masked autoregressive, rational-quadratic spline transformers, "
                    "then the fixed affine map from whitened coordinates",
            "flow_dim": int(flow_idx.size),
            "conditional": None if cond is None else
            f"Gaussian of {lat_idx.size} latent coordinates given the flow's, rank "
            f"{int(cond['s'].shape[0])} plus diagonal",
            "rank": None if cond is None else int(cond["s"].shape[0]),
        },
        "options": opts,
        "versions": {"flowjax": getattr(flowjax, "__version__", None), "jax": jax.__version__},
        "source": {"sha256": source_sha256, "chains": c, "draws": d,
                   "fit_draws": len(train), "held_out_draws": len(held)},
        "dataset": _dataset_meta(posterior),
        "settings": jsonable(dict(posterior.settings)),
    }  # fmt: skip
    pf = PosteriorFlow(posterior.mixer, dict(posterior.settings), posterior.dataset, layout,
                       flow, cond, flow_idx, lat_idx, meta)  # fmt: skip
    sample = np.asarray(pf.sample_unconstrained(k_check, len(held)))
    m = min(len(held), 1000)
    fitd = {
        "seconds": fit_s,
        "epochs": len(losses["train"]),
        "train_loss": float(losses["train"][-1]),
        "val_loss": float(np.min(losses["val"])),
        "held_out_log_prob": float(jnp.mean(pf.log_prob(jnp.asarray(held)))),
        "quantiles_flow_coords": _quantile_errors(sample[:, flow_idx], held[:, flow_idx]),
        "mmd_flow_coords": mmd_test(sample[:m][:, flow_idx], held[:m][:, flow_idx], key=k_mmd),
    }
    if c >= 2:  # the yardstick: the same test between the held-out draws of two chain halves
        ha = draws[: c // 2, cut:].reshape((-1, dim))[:, flow_idx]
        hb = draws[c // 2 :, cut:].reshape((-1, dim))[:, flow_idx]
        k = min(len(ha), len(hb), m // 2)
        fitd["mmd_mcmc_halves"] = mmd_test(ha[:k], hb[:k], key=k_mmd)
        fitd["mmd_flow_vs_half"] = mmd_test(sample[:k][:, flow_idx], hb[:k], key=k_mmd)
    if lat_idx.size:
        fitd["quantiles_latent_coords"] = _quantile_errors(sample[:, lat_idx], held[:, lat_idx])
    return replace(pf, meta={**meta, "fit": fitd})


def _dataset_meta(posterior: Posterior) -> dict[str, Any]:
    ds = posterior.dataset
    return {
        "name": ds.name,
        "observable": ds.observable,
        "models": list(ds.models),
        "provenance": {k: vars(p) for k, p in ds.provenance.items()},
        "notes": list(ds.notes),
        "splits": sorted(ds.splits),
    }


def load_flow(path: str | Path) -> PosteriorFlow:
    """Read a flow written by :meth:`PosteriorFlow.save` (``KEY.eqx`` beside its
    ``KEY.json`` and ``KEY.data.nc``); needs no other file."""
    import equinox as eqx

    base = _base(path)
    files = {s: _with(base, s) for s in (".eqx", ".json", ".data.nc")}
    for f in files.values():
        if not f.is_file():
            raise FlowError(f"flow {base}: {f.name} is missing")
    try:
        meta = json.loads(files[".json"].read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FlowError(f"{files['.json']} is not readable JSON: {err}") from err
    if meta.get("format") != FLOW_FORMAT or meta.get("format_version") != FLOW_FORMAT_VERSION:
        raise FlowError(f'{files[".json"]} is not an lbmm flow sidecar (format "{FLOW_FORMAT}" '
                        f"version {FLOW_FORMAT_VERSION})")  # fmt: skip
    missing = [k for k in ("mixer", "settings", "layout", "flow_index", "latent_index",
                           "options", "architecture") if k not in meta]  # fmt: skip
    if missing:
        raise FlowError(f"{files['.json']} lacks {missing}")
    layout = _Layout(
        tuple(s["name"] for s in meta["layout"]["sites"]),
        tuple(tuple(s["shape"]) for s in meta["layout"]["sites"]),
        tuple(s["support"] for s in meta["layout"]["sites"]),
    )
    flow_idx = np.asarray(meta["flow_index"], int)
    lat_idx = np.asarray(meta["latent_index"], int)
    skeleton = {"flow": _make_flow(jax.random.key(0), flow_idx.size, meta["options"]),
                "conditional": {}}  # fmt: skip
    if lat_idx.size:
        r, dh, dz = meta["architecture"]["rank"], flow_idx.size, lat_idx.size
        skeleton["conditional"] = {
            "hm": jnp.zeros(dh), "hs": jnp.zeros(dh), "b": jnp.zeros(dz),
            "A": jnp.zeros((dz, dh)), "V": jnp.zeros((dz, r)), "s": jnp.zeros(r),
            "d": jnp.zeros(dz),
        }  # fmt: skip
    try:
        tree = eqx.tree_deserialise_leaves(files[".eqx"], skeleton)
    except Exception as err:  # shapes or structure do not match the sidecar
        raise FlowError(f"{files['.eqx']} does not match {files['.json'].name}: {err}") from err
    try:
        with xr.open_dataset(files[".data.nc"], engine="h5netcdf") as f:
            cd = f.load()
        dmeta = json.loads(cd.attrs["lbmm"])
        ds = dataset_from_constant_data(cd, dmeta["dataset"])
    except (OSError, ValueError, KeyError) as err:
        raise FlowError(f"{files['.data.nc']} is not an lbmm flow's dataset: {err!r}") from err
    return PosteriorFlow(meta["mixer"], meta["settings"], ds, layout, tree["flow"],
                         tree["conditional"] or None, flow_idx, lat_idx, meta)  # fmt: skip

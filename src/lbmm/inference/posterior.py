"""The result of a fit: :class:`Posterior`, an ArviZ ``DataTree`` with its dataset and
settings, saved to and read from NetCDF."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arviz as az
import jax
import numpy as np
import xarray as xr

from .. import _jax  # noqa: F401
from .._util import jsonable
from ..data import Dataset
from ..data.tables import Provenance
from ..mixers import get_mixer
from ..mixers.local import mean_weights

__all__ = [
    "DIMS", "LATENT_SITES", "Posterior", "constant_data", "dataset_from_constant_data",
    "make_idata",
]  # fmt: skip

#: Dims of the sample sites (besides ``chain, draw``); a site absent from a fit is skipped.
DIMS = {
    "weights": ["model"], "weight_shares": ["model"], "alpha": ["model"],
    "gamma_inf": ["model"], "eta": ["model"],
    "beta": ["input", "model"], "gp_coef": ["basis", "model"],
    "gp_z": ["obs_nucleus", "model"], "gamma_aux": ["obs_nucleus", "model"],
    "exp_aux": ["obs_nucleus", "model"], "delta_rho": ["coord"],
    "delta": ["model"], "sigma_k": ["model"],
}  # fmt: skip

#: Latent blocks (per basis function or nucleus) and the coordinates of a
#: reparameterisation (GBMM+L's ``sum_simplex``: the weights they make are judged), left out
#: of the convergence bars and of the report's traces.
LATENT_SITES = ("gp_coef", "gp_z", "gamma_aux", "exp_aux", "weight_shares", "weight_total")


@dataclass(frozen=True, eq=False)
class Posterior:
    """The result of a fit: ArviZ's ``DataTree`` plus the dataset and settings behind it.

    Attributes
    ----------
    mixer
        Mixer name (``"linear"``, ``"dirichlet"``, ``"bma"``, ...).
    idata
        ``posterior`` (dims ``chain, draw[, model]``), ``sample_stats`` (samplers),
        ``observed_data`` and ``constant_data`` (dims ``nucleus, model``, coords Z, N).
    dataset
        The whole dataset the fit was made on (all splits).
    settings
        Everything needed to redo the fit (split, likelihood, chains, draws, seed, ...).
    diagnostics
        Convergence diagnostics and timings (:func:`lbmm.inference.diagnostics`).
    """

    mixer: str
    idata: xr.DataTree
    dataset: Dataset
    settings: Mapping[str, Any] = field(default_factory=dict)
    diagnostics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        return self.dataset.models

    @property
    def options(self) -> dict[str, Any]:
        """The fit's resolved mixer options (empty for BMA)."""
        return dict(self.settings.get("options", {}))

    def samples(self, name: str) -> np.ndarray:
        """Draws of one variable with chains flattened: shape (chains·draws, ...)."""
        v = self.idata.posterior[name].values
        return v.reshape((-1, *v.shape[2:]))

    def all_samples(self) -> dict[str, np.ndarray]:
        """Every posterior variable, chains flattened."""
        return {k: self.samples(k) for k in self.idata.posterior.data_vars}

    def weights_mean(self) -> dict[str, float]:
        """Posterior mean of the normalised weights: for global mixers of ω (ω/Σω for GBMM+L
        with the density likelihood, as that likelihood uses them); for a local mixer of
        E[ω(x) | α(x)] averaged over the nuclei of the training split."""
        if get_mixer(self.mixer).local:
            tr = self.dataset.split(self.settings.get("split", "train"))
            w = mean_weights(
                self.mixer, self.all_samples(), tr.x, self.options, jax.random.PRNGKey(0)
            )
            return {m: float(v) for m, v in zip(self.models, w.mean(axis=(0, 1)), strict=True)}
        w = self.samples("weights")
        w = w.reshape(w.shape[0], -1, len(self.models))
        if self.mixer == "linear" and self.settings.get("likelihood") == "density":
            w = w / w.sum(axis=-1, keepdims=True)
        w = w.mean(axis=(0, 1))
        return {m: float(v) for m, v in zip(self.models, w, strict=True)}

    def save(self, path: str | Path) -> Path:
        """Write the posterior to NetCDF atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        idata = self.idata.copy()
        meta = {
            "mixer": self.mixer,
            "settings": jsonable(dict(self.settings)),
            "diagnostics": jsonable(dict(self.diagnostics)),
            "dataset": {
                "name": self.dataset.name,
                "observable": self.dataset.observable,
                "models": list(self.dataset.models),
                "provenance": {k: vars(p) for k, p in self.dataset.provenance.items()},
                "notes": list(self.dataset.notes),
                "splits": sorted(self.dataset.splits),
            },
        }
        idata.posterior.attrs["lbmm"] = json.dumps(meta, allow_nan=False)
        fd, tmp = tempfile.mkstemp(suffix=".nc.tmp", dir=path.parent)
        os.close(fd)
        try:
            idata.to_netcdf(tmp, engine="h5netcdf")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Posterior:
        """Read a posterior written by :meth:`save`."""
        with az.from_netcdf(str(path), engine="h5netcdf") as tree:
            idata = tree.load().copy()  # read everything now, so the file is not held open
        meta = json.loads(idata.posterior.attrs["lbmm"])
        ds = dataset_from_constant_data(idata.constant_data, meta["dataset"])
        return cls(meta["mixer"], idata, ds, meta["settings"], meta["diagnostics"])


def dataset_from_constant_data(cd, dmeta: Mapping[str, Any]) -> Dataset:
    """The :class:`Dataset` of a posterior's (or flow's) constant data and its metadata."""
    splits = {s: np.flatnonzero(cd[f"in_{s}"].values) for s in dmeta["splits"]}
    return Dataset.from_arrays(
        dmeta["name"],
        dmeta["observable"],
        tuple(dmeta["models"]),
        cd["Z"].values,
        cd["N"].values,
        cd["y_all"].values,
        cd["F"].values,
        y_uncertainty=cd["y_uncertainty"].values,
        y_estimated=cd["y_estimated"].values.astype(bool),
        splits=splits,
        provenance={k: Provenance(**v) for k, v in dmeta["provenance"].items()},
        notes=tuple(dmeta["notes"]),
    )


def constant_data(ds: Dataset) -> dict[str, xr.DataArray]:
    """A dataset as NetCDF variables (dims ``nucleus, model``; ``in_SPLIT`` masks)."""
    coords = {"nucleus": list(ds.labels), "model": list(ds.models)}
    out = {
        "F": xr.DataArray(ds.F, dims=("nucleus", "model"), coords=coords),
        "y_all": xr.DataArray(ds.y, dims=("nucleus",), coords={"nucleus": coords["nucleus"]}),
        "y_uncertainty": xr.DataArray(ds.y_uncertainty, dims=("nucleus",)),
        "y_estimated": xr.DataArray(ds.y_estimated.astype(np.int8), dims=("nucleus",)),
        "Z": xr.DataArray(ds.Z, dims=("nucleus",)),
        "N": xr.DataArray(ds.N, dims=("nucleus",)),
    }
    for s, idx in ds.splits.items():
        mask = np.zeros(len(ds), np.int8)
        mask[idx] = 1
        out[f"in_{s}"] = xr.DataArray(mask, dims=("nucleus",))
    return out


def make_idata(
    samples: Mapping[str, np.ndarray],
    ds: Dataset,
    split: str,
    sample_stats: Mapping[str, np.ndarray] | None,
    dims: Mapping[str, list[str]] | None = None,
) -> xr.DataTree:
    """ArviZ's DataTree of draws (chain, draw, ...) with named dims, the observed y of the
    training split and the whole dataset as constant data."""
    idx = ds.split_indices(split)
    labels = np.asarray(ds.labels)
    dims = dict(DIMS if dims is None else dims)
    # a site name can have different shapes in different mixers (gamma_aux: (p,) or (n, p))
    dims = {k: d for k, d in dims.items() if k in samples and samples[k].ndim == len(d) + 2}
    groups = {"posterior": dict(samples), "observed_data": {"y": ds.y[idx]}}
    if sample_stats:
        groups["sample_stats"] = dict(sample_stats)
    idata = az.from_dict(
        groups,
        coords={"model": list(ds.models), "obs_nucleus": labels[idx].tolist()},
        dims={**dims, "y": ["obs_nucleus"]},
    )
    cd = xr.Dataset(constant_data(ds))
    cd = cd.assign_coords(Z=("nucleus", ds.Z), N=("nucleus", ds.N))
    idata["constant_data"] = xr.DataTree(cd)
    return idata

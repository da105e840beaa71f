"""Run folders as results: check a folder against its manifest and read what it holds.

A run folder (written by :func:`lbmm.run.run_study`) is complete when its ``manifest.json``
says so and every file it lists is there with its size and sha256. :func:`load_run` checks
that before anything reads the folder; :class:`Run` reads its parts and predicts from its
stored posteriors. This module reads results only: the report builds on it, and the runner
writes what it reads.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .data.errors import InputError
from .study import Study, study_from_dict

__all__ = [
    "FLOWS_DIR",
    "INTERVAL_LEVELS",
    "RESULT_FILES",
    "RUN_FORMAT",
    "RUN_FORMAT_VERSION",
    "Run",
    "RunError",
    "check_run",
    "file_records",
    "load_run",
    "sha256",
    "thin",
]

RUN_FORMAT = "lbmm-run"
RUN_FORMAT_VERSION = 1
INTERVAL_LEVELS = (0.68, 0.95)
#: Files every run folder has (besides posteriors); ``lbmm report`` needs them all.
RESULT_FILES = ("study.toml", "dataset.csv", "predictions.csv", "metrics.json")
#: Folder of a run's normalizing flows (``lbmm flow``; not in the manifest).
FLOWS_DIR = "flows"


class RunError(InputError):
    """A folder is not a complete lbmm run (or cannot become one); the message says why."""


def sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_records(folder: Path, exclude: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under a folder but the manifest itself (and the
    top-level entries named in ``exclude``), by relative path (the manifest's ``files``)."""
    skip = set(exclude)
    return {
        p.relative_to(folder).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and p.relative_to(folder).parts[0] not in skip
    }


def thin(posterior, max_draws: int):
    """The posterior with at most ``max_draws`` draws in all, every chain thinned alike
    (``max_draws`` 0: unchanged)."""
    from dataclasses import replace

    post = posterior.idata.posterior
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    if not max_draws or chains * draws <= max_draws:
        return posterior
    step = math.ceil(chains * draws / max_draws)
    return replace(posterior, idata=posterior.idata.isel(draw=slice(None, None, step)))


def check_run(path: str | Path, *, verify_hashes: bool = True) -> dict[str, Any]:
    """Check that a folder is a complete lbmm run and return its manifest.

    Every file the manifest lists must be there, with its size and (``verify_hashes``)
    sha256.

    Raises
    ------
    RunError
        Saying what is missing or wrong.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path} is not a folder")
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise RunError(
            f"{path} is not a complete lbmm run: it has no manifest.json (was the run "
            "interrupted, or is this another folder?)"
        )
    try:
        manifest = json.loads(mpath.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{mpath} is not readable JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
        raise RunError(f'{mpath} is not an lbmm run manifest (no "format": "{RUN_FORMAT}")')
    if manifest.get("format_version") != RUN_FORMAT_VERSION:
        raise RunError(
            f"{mpath}: run format version {manifest.get('format_version')!r}; this lbmm reads "
            f"version {RUN_FORMAT_VERSION}"
        )
    if manifest.get("complete") is not True:
        raise RunError(f"{path} is an incomplete run (manifest says complete = false)")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise RunError(f"{mpath} lists no files")
    for rel in (*RESULT_FILES, *(r["posterior"] for r in manifest.get("mixers", {}).values())):
        if rel not in files:
            raise RunError(f"{mpath} does not list {rel}: not a complete run")
    for rel, info in files.items():
        f = path / rel
        if not f.is_file():
            raise RunError(f"incomplete run {path}: {rel} (listed in manifest.json) is missing")
        if f.stat().st_size != info.get("bytes"):
            raise RunError(f"run {path}: {rel} changed since the run (size differs)")
        if verify_hashes and sha256(f) != info.get("sha256"):
            raise RunError(f"run {path}: {rel} changed since the run (sha256 differs)")
    return manifest


@dataclass(frozen=True)
class Run:
    """A finished run folder (see the module docstring for its files).

    Attributes
    ----------
    path
        The folder.
    manifest
        ``manifest.json`` as a dict.
    """

    path: Path
    manifest: Mapping[str, Any]

    @property
    def study(self) -> Study:
        """The study as run (every default explicit)."""
        return study_from_dict(self.manifest["study"], source=str(self.path / "study.toml"))

    @property
    def keys(self) -> list[str]:
        """Mixer entries in run order."""
        return list(self.manifest["mixers"])

    def posterior(self, key: str):
        """The stored :class:`~lbmm.inference.Posterior` of one mixer entry."""
        from .inference import Posterior

        if key not in self.manifest["mixers"]:
            raise RunError(f"run {self.path} has no mixer {key!r}; mixers: {self.keys}")
        return Posterior.load(self.path / self.manifest["mixers"][key]["posterior"])

    def metrics(self) -> dict[str, Any]:
        """``metrics.json``."""
        return json.loads((self.path / "metrics.json").read_text("utf-8"))

    def predictions(self) -> pd.DataFrame:
        """``predictions.csv``: one row per nucleus of the prediction domain and mixer."""
        return pd.read_csv(self.path / "predictions.csv")

    def weights(self) -> pd.DataFrame | None:
        """``weights.csv`` (local mixers' weights per nucleus), or None without local mixers."""
        p = self.path / "weights.csv"
        return pd.read_csv(p) if p.is_file() else None

    def derived(self) -> pd.DataFrame | None:
        """``derived.csv`` (runs of binding energies: S2n and Sn from joint BE draws), or
        None for other runs."""
        p = self.path / "derived.csv"
        return pd.read_csv(p) if p.is_file() else None

    def dataset_frame(self, corrected: bool = False) -> pd.DataFrame:
        """``dataset.csv`` (or ``dataset_corrected.csv``)."""
        name = "dataset_corrected.csv" if corrected else "dataset.csv"
        return pd.read_csv(self.path / name)

    def predict(
        self,
        nuclei: Iterable[tuple[int, int] | str],
        mixers: Iterable[str] | None = None,
        *,
        seed: int | None = None,
        derive: str | None = None,
        from_flow: bool = False,
    ) -> pd.DataFrame:
        """Predictions at some nuclei from the stored posteriors (no sampling).

        Parameters
        ----------
        nuclei
            (Z, N) pairs or labels such as ``"132Sn"``; each must be in the run's dataset
            (the models' predictions are needed there).
        mixers
            Mixer keys; default all.
        seed
            Seed of the predictive draws; default each entry's seed + 1 (as in the run).
        derive
            For a run of binding energies: a quantity of
            :data:`lbmm.data.observables.DERIVED` (``"S2n"``, ``"Sn"``, ...) formed draw by
            draw from the joint BE draws (:func:`lbmm.predict.derive`).
        from_flow
            Predict from draws of the entry's normalizing flow (``flows/KEY.eqx``, written
            by :meth:`fit_flows`) instead of the stored MCMC draws: as many draws as the
            run used (``[predict] max_draws``, 1,000 when unset). BMA's closed-form
            posterior is stored exactly and used as it is.

        Returns
        -------
        DataFrame
            One row per mixer and nucleus: mean, median, sd, 68/95 % intervals, P(y > 0).
            With the default seed these are the numbers of the run's ``predictions.csv``
            at the same nuclei: the same draws (``[predict] max_draws``) and random draws
            keyed by nucleus.
        """
        from .predict import derive as derive_fn
        from .predict import predict

        nuclei = list(nuclei)
        frames = []
        max_draws = int(self.manifest["study"].get("predict", {}).get("max_draws", 0))
        for key in mixers or self.keys:
            s = seed if seed is not None else int(self.manifest["mixers"][key]["seed"]) + 1
            if from_flow and self.manifest["mixers"][key]["mixer"] != "bma":
                post = self.flow(key).posterior(jax_key(s + 1), max_draws or 1000)
            else:
                post = thin(self.posterior(key), max_draws)
            pred = (derive_fn(post, derive, nuclei, seed=s) if derive
                    else predict(post, nuclei, seed=s))  # fmt: skip
            df = pred.summary(levels=INTERVAL_LEVELS)
            df.insert(0, "mixer", key)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def flow_path(self, key: str) -> Path:
        """Where the normalizing flow of an entry is (``flows/KEY.eqx``)."""
        return self.path / FLOWS_DIR / f"{key}.eqx"  # a key may hold dots: not with_suffix

    def flow(self, key: str):
        """The normalizing flow fitted to an entry's posterior (:meth:`fit_flows`),
        checked to be fitted to the posterior the run holds now."""
        from .inference.flow import FlowError, load_flow

        if key not in self.manifest["mixers"]:
            raise RunError(f"run {self.path} has no mixer {key!r}; mixers: {self.keys}")
        path = self.flow_path(key)
        if not path.is_file():
            raise FlowError(f"run {self.path} has no flow for {key!r} ({path.name}): "
                            f"make it with: lbmm flow {self.path} --mixers {key}")  # fmt: skip
        flow = load_flow(path)
        want = self.manifest["files"][self.manifest["mixers"][key]["posterior"]]["sha256"]
        if flow.meta.get("source", {}).get("sha256") != want:
            raise FlowError(f"{path} was fitted to another posterior than {key!r} of "
                            f"{self.path} (sha256 differs): refit it with lbmm flow")  # fmt: skip
        return flow

    def fit_flows(
        self,
        mixers: Iterable[str] | None = None,
        *,
        seed: int = 0,
        options: Mapping[str, Any] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Fit a normalizing flow to each sampled posterior of the run
        (:func:`lbmm.inference.flow.fit_flow`) and write ``flows/KEY.eqx`` with its
        ``KEY.json`` sidecar and ``KEY.data.nc`` (files outside the run's manifest: the run
        itself is unchanged). BMA is closed form and skipped (its stored posterior is exact).

        Returns
        -------
        dict
            Per entry: the sidecar's ``fit`` diagnostics, or ``{"skipped": why}``.
        """
        import jax

        from .inference.flow import fit_flow

        say = progress or (lambda _: None)
        out: dict[str, dict[str, Any]] = {}
        for i, key in enumerate(mixers or self.keys):
            rec = self.manifest["mixers"].get(key)
            if rec is None:
                raise RunError(f"run {self.path} has no mixer {key!r}; mixers: {self.keys}")
            if rec["mixer"] == "bma":
                out[key] = {"skipped": "closed form: the stored posterior is exact"}
                say(f"{key}: skipped (BMA is closed form; its stored posterior is exact)")
                continue
            say(f"{key}: fitting a flow to {rec['posterior']}")
            source = self.manifest["files"][rec["posterior"]]["sha256"]
            pf = fit_flow(self.posterior(key), key=jax.random.PRNGKey(seed + i),
                          options=options, source_sha256=source)  # fmt: skip
            pf.save(self.flow_path(key))
            f = pf.meta["fit"]
            out[key] = f
            say(f"{key}: {f['epochs']} epochs in {f['seconds']:.1f} s, held-out log density "
                f"{f['held_out_log_prob']:.2f}, MMD p = {f['mmd_flow_coords']['p_value']:.3f}"
                f" -> {self.flow_path(key).relative_to(self.path)}")  # fmt: skip
        return out


def jax_key(seed: int):
    """``jax.random.PRNGKey(seed)`` (JAX imported on first use)."""
    import jax

    return jax.random.PRNGKey(seed)


def load_run(path: str | Path, *, verify_hashes: bool = True) -> Run:
    """Open a run folder after checking it against its manifest (:func:`check_run`)."""
    path = Path(path)
    return Run(path, check_run(path, verify_hashes=verify_hashes))

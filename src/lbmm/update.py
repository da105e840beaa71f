"""``lbmm update``: a run given new measurements, as a complete new run folder.

Each mixer entry's stored posterior is updated with the new training nuclei by
:func:`lbmm.inference.update.update_posterior` (PSIS reweighting where k̂ < 0.7, else
data-tempered SMC from the stored draws, else a refit); predictions, metrics and the
report are made anew on the new dataset. The new manifest records the parent run, the
measurements file (sha256) and, per entry, the method used and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data import add_measurements, read_measurements
from .results import Run, RunError, load_run, sha256

__all__ = ["update_run"]


def update_run(
    run: str | Path | Run,
    observed: str | Path,
    *,
    output: str | Path | None = None,
    method: str = "auto",
    overwrite: bool = False,
    progress=None,
    report: bool = True,
    cache_dir: str | Path | None = None,
) -> Run:
    """Add new measurements to a run's training data and write the updated run.

    Parameters
    ----------
    run
        The parent run folder (or :class:`~lbmm.results.Run`).
    observed
        A measurements CSV (:func:`lbmm.data.read_measurements`): every row a nucleus of
        the run's dataset not yet in its training split. Nuclei of the test split that are
        measured now leave it.
    output
        The new run folder; default ``PARENT-updated`` beside the parent.
    method
        ``"auto"``, ``"psis"``, ``"smc"`` or ``"refit"`` for every entry
        (:func:`lbmm.inference.update.update_posterior`). ``"auto"`` takes PSIS where it
        holds; elsewhere entries sampled by SMC are tempered from their stored draws and
        entries sampled by NUTS are refitted (cheaper there, as measured).
    overwrite, progress, report, cache_dir
        As for :func:`lbmm.run.run_study`.

    Returns
    -------
    Run
        The new run; its manifest's ``update`` holds the parent, the file and per entry the
        method, k̂, time and reason.
    """
    from .inference.update import UPDATE_METHODS, UpdateResult, update_posterior
    from .run import run_study
    from .study import parse_prior

    parent = run if isinstance(run, Run) else load_run(run)
    if method not in UPDATE_METHODS:
        raise RunError(f"update: method {method!r}; expected one of {list(UPDATE_METHODS)}")
    st = parent.study
    plain = [k for k in parent.keys if not parent.manifest["mixers"][k].get("corrected")]
    if not plain:
        raise RunError(f"update: every entry of {parent.path} is fitted to corrected models; "
                       "rerun the study with the new measurements instead")  # fmt: skip
    old = parent.posterior(plain[0]).dataset
    new = read_measurements(observed, old.observable)
    ds, added = add_measurements(old, new)
    target = Path(output) if output is not None else parent.path.with_name(
        parent.path.name + "-updated")  # fmt: skip
    entries: dict[str, Any] = {}

    def supply(entry, data) -> UpdateResult:
        if entry.corrected:
            res = UpdateResult(None, {"method": "refit", "why": "the systematic corrections are "
                                      "refitted to the new training data, so the model "
                                      "predictions changed"})  # fmt: skip
        else:
            priors = {k: parse_prior(v) for k, v in entry.priors.items()} or None
            by_smc = entry.sampling.method == "smc"
            res = update_posterior(parent.posterior(entry.key), data, seed=entry.seed,
                                   method=method, priors=priors,
                                   smc=dict(entry.sampling.smc) if by_smc else None,
                                   max_particles=entry.sampling.num_samples if by_smc else 1000,
                                   fallback="smc" if by_smc else "refit")  # fmt: skip
        entries[entry.key] = res.record
        return res

    extra = {
        "update": {
            "parent": str(parent.path.absolute()),
            "parent_manifest_sha256": sha256(parent.path / "manifest.json"),
            "observed": {
                "path": str(Path(observed).absolute()),
                "sha256": sha256(observed),
                **added,
            },
            "method": method,
            "entries": entries,
        }
    }
    return run_study(st, output=target, overwrite=overwrite, progress=progress,
                     cache_dir=cache_dir, report=report, dataset=ds, supply=supply,
                     manifest_extra=extra)  # fmt: skip

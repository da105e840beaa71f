"""lbmm tutorial: load tables, build a dataset, fit a local mixer, predict, plot the weights.

Two-neutron separation energies S2n of even-even nuclei from three mass models (Duflo–Zuker,
FRDM-1995, WS3), all shipped with the ``masstable`` package. We train on the S2n measured in
AME2003 and test on those that AME2012 measured for the first time, then mix the models with
LBMM+GLD: Dirichlet weights whose log-concentrations are linear in (Z, N).

Run it from the repository root::

    python examples/tutorial.py                       # 4 chains × (500 + 500), a few minutes
    python examples/tutorial.py --num-chains 1 --num-warmup 30 --num-samples 30   # smoke test

It prints the test rms and coverage, predictions for two doubly magic nuclei, and writes
``weights.png`` (posterior mean of each model's weight over the nuclear chart) to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from lbmm.data import Dataset, observable, read_table
from lbmm.inference import fit
from lbmm.predict import evaluate, predict
from lbmm.report.figures import chart

MODELS = ("DUZU", "FRDM95", "WS32010")


def build_dataset() -> Dataset:
    """1–2. Load tables, compute S2n, and align data and models on one set of nuclei."""
    # Tables: AME files, MassExplorer CSVs, plain Z,N,BE CSVs or `masstable:NAME`.
    y = observable(read_table("masstable:AME2012"), "S2n")  # observed values (MeV)
    old = observable(read_table("masstable:AME2003").measured(), "S2n")
    models = {m: observable(read_table(f"masstable:{m}"), "S2n") for m in MODELS}

    def keys(obs, mask=None):
        z, n = (obs.Z, obs.N) if mask is None else (obs.Z[mask], obs.N[mask])
        return set(zip(z.tolist(), n.tolist(), strict=True))

    # Even-even nuclei with 8 <= Z <= 100 where every model gives S2n: the prediction domain.
    domain = set.intersection(*(keys(o) for o in models.values()))
    domain = {(z, n) for z, n in domain if z % 2 == 0 and n % 2 == 0 and 8 <= z <= 100}
    measured = keys(y, ~y.estimated)
    train = domain & keys(old) & measured  # measured already in AME2003
    test = {(z, n) for z, n in (domain & measured) - keys(old) if n > z}  # new in AME2012
    return Dataset.from_observables(
        "tutorial", y, models, domain, splits={"train": train, "test": test}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="tutorial-output", help="folder for weights.png")
    args = parser.parse_args()

    ds = build_dataset()
    print(ds.summary())
    print("train rms of each model (MeV):", {m: round(v, 3) for m, v in ds.rms("train").items()})

    # 3. Fit a local mixer (NUTS). The posterior wraps an ArviZ DataTree.
    post = fit(
        ds,
        "glm_dirichlet",
        num_chains=args.num_chains,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        seed=args.seed,
        warn=False,
    )
    d = post.diagnostics
    print(f"R-hat max {d['rhat_max']:.3f}, min bulk ESS {d['ess_bulk_min']:.0f}, "
          f"{d['wall_s']:.1f} s")  # fmt: skip

    # 4. Predict: posterior predictive draws on the test nuclei, and at chosen nuclei.
    test = evaluate(predict(post, "test", seed=args.seed + 1))
    print(f"test rms {test['rms']:.3f} MeV; share of test data inside the 70 % and 95 % "
          f"intervals: {test['ecp'][0.7]:.2f}, {test['ecp'][0.95]:.2f}")  # fmt: skip
    at = predict(post, [(50, 82), (82, 126)], seed=args.seed + 2)
    print(at.summary()[["nucleus", "y_obs", "mean", "sd", "lo95", "hi95"]].round(3))

    # 5. Plot the weights over the nuclear chart (posterior mean per model).
    everywhere = predict(post, None, seed=args.seed + 3)
    w = everywhere.weights_mean()
    fig, axes = plt.subplots(1, len(MODELS), figsize=(4.2 * len(MODELS), 3.2),
                             constrained_layout=True)  # fmt: skip
    for j, (ax, m) in enumerate(zip(axes, MODELS, strict=True)):
        mesh = chart(ax, everywhere.Z, everywhere.N, w[:, j], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{m}: mean weight")
    fig.colorbar(mesh, ax=list(axes), shrink=0.8)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "weights.png", dpi=100)
    print(f"weights: {out / 'weights.png'}; mean over the domain:",
          dict(zip(MODELS, np.round(w.mean(axis=0), 3).tolist(), strict=True)))  # fmt: skip


if __name__ == "__main__":
    main()

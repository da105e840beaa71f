"""The ``lbmm`` command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

import numpy as np

from . import __version__
from .data import RECIPES, DataError, known_tables, load_dataset

__all__ = ["main"]

JSON_ECP_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # members of predict.ECP_LEVELS


def _fmt(v: float) -> str:
    return "   nan" if not math.isfinite(v) else f"{v:6.3f}"


def _data_report(name: str, data_dir: str | None) -> dict:
    ds = load_dataset(name, data_dir)
    splits = [s for s in ("train", "test", "evidence") if s in ds.splits]
    return {
        "dataset": ds.name,
        "observable": ds.observable,
        "models": list(ds.models),
        "counts": ds.counts(),
        "rms": {s: ds.rms(s) for s in splits},
        "tables": {k: {"path": p.path, "sha256": p.sha256} for k, p in ds.provenance.items()},
        "notes": list(ds.notes),
        "summary": ds.summary(),
    }


def _print_data_report(rep: dict) -> None:
    print(rep["summary"])
    splits = list(rep["rms"])
    print()
    print(f"rms deviation of {rep['observable']} from the data (MeV)")
    print(f"{'model':<10}" + "".join(f"{s:>10}" for s in splits))
    for m in rep["models"]:
        print(f"{m:<10}" + "".join(f"{_fmt(rep['rms'][s][m]):>10}" for s in splits))
    print(f"{'nuclei':<10}" + "".join(f"{rep['counts'][s]:>10}" for s in splits))
    for note in rep["notes"]:
        print(f"note: {note}")


def _cmd_data(args: argparse.Namespace) -> int:
    if args.dataset is None:
        listing = {
            "recipes": {n: r.description for n, r in RECIPES.items()},
            "tables": known_tables(args.data_dir),
        }
        if args.json:
            print(json.dumps(listing, indent=2))
            return 0
        print("dataset recipes (lbmm data --dataset NAME):")
        for n, desc in listing["recipes"].items():
            print(f"  {n:<12} {desc}")
        for source, names in listing["tables"].items():
            print(f"tables from {source}:")
            print("  " + " ".join(names))
        return 0
    rep = _data_report(args.dataset, args.data_dir)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        _print_data_report(rep)
    return 0


def _fit_report(args: argparse.Namespace) -> dict:
    # JAX is imported only for the commands that need it.
    from .inference import fit
    from .predict import evaluate, predict

    ds = load_dataset(args.dataset, args.data_dir)
    post = fit(
        ds,
        args.mixer,
        likelihood=args.likelihood,
        num_chains=args.num_chains,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        seed=args.seed,
        target_accept=args.target_accept,
        progress_bar=not args.json and not args.quiet,
    )
    train_pred = predict(post, "train", seed=args.seed + 1)
    train = evaluate(train_pred)
    test = evaluate(predict(post, "test", seed=args.seed + 2))
    sigma = post.samples("sigma")
    d = post.diagnostics
    rep = {
        "mixer": args.mixer,
        "likelihood": args.likelihood,
        "dataset": ds.name,
        # rms of the posterior-mean (noise-free) mixture, as in the paper's Table 1
        "train_rms": float(np.sqrt(np.mean((train_pred.mu.mean(0) - train_pred.y_obs) ** 2))),
        "test_rms": test["rms"],
        "sigma_mean": float(sigma.mean()),
        "sigma_sd": float(sigma.std(ddof=1)),
        "weights": post.weights_mean(),
        "rhat_max": d["rhat_max"],
        "ess_bulk_min": d["ess_bulk_min"],
        "ess_tail_min": d["ess_tail_min"],
        "divergences": d.get("divergences", 0),
        "ecp": {f"{lv:.1f}": test["ecp"][lv] for lv in JSON_ECP_LEVELS},
        "crps": test["crps"],
        "mlpd": test["mlpd"],
        "train_ecp_0.9": train["ecp"].get(0.9),
        "wall_s": d["wall_s"],
    }
    if args.mixer == "bma":
        rep["bma_weights"] = {
            m: dict(zip(ds.models, w, strict=True)) for m, w in post.settings["bma_weights"].items()
        }
    if args.out:
        rep["posterior"] = str(post.save(args.out))
    return rep


def _cmd_fit(args: argparse.Namespace) -> int:
    rep = _fit_report(args)
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    print(f"{rep['mixer']} ({rep['likelihood']} likelihood) on {rep['dataset']}")
    print("Table 1 row:  train rms  test rms  sigma")
    print(
        f"              {rep['train_rms']:9.3f} {rep['test_rms']:9.3f}  "
        f"{rep['sigma_mean']:.3f}({rep['sigma_sd']:.3f})"
    )
    print("Table 2 row (posterior-mean weights):")
    print("  " + "  ".join(f"{m} {w:.3f}" for m, w in rep["weights"].items()))
    if "bma_weights" in rep:
        for meth, ws in rep["bma_weights"].items():
            print(f"  BMA({meth}): " + "  ".join(f"{m} {w:.3f}" for m, w in ws.items()))
    print(
        f"diagnostics: R-hat max {rep['rhat_max']:.4f}, min ESS bulk {rep['ess_bulk_min']:.0f} / "
        f"tail {rep['ess_tail_min']:.0f}, divergences {rep['divergences']}, "
        f"wall {rep['wall_s']:.1f} s"
    )
    print("test ECP: " + "  ".join(f"{k}:{v:.2f}" for k, v in rep["ecp"].items()))
    if "posterior" in rep:
        print(f"posterior saved to {rep['posterior']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lbmm`` (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="lbmm", description="Bayesian mixing of imperfect models."
    )
    parser.add_argument("--version", action="version", version=f"lbmm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="list tables and recipes, or summarise a dataset")
    p.add_argument("--dataset", help="recipe name (default, kejzlar2023)")
    p.add_argument("--data-dir", help="directory of MassExplorer CSVs (kejzlar2023)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("fit", help="fit one mixer and print its Table 1 and Table 2 rows")
    p.add_argument("--dataset", default="default", help="recipe name (default, kejzlar2023)")
    p.add_argument("--data-dir", help="directory of MassExplorer CSVs (kejzlar2023)")
    p.add_argument("--mixer", default="dirichlet", choices=["linear", "dirichlet", "bma"])
    p.add_argument("--likelihood", default="mean", choices=["mean", "density"])
    p.add_argument("--num-chains", type=int, default=4)
    p.add_argument("--num-warmup", type=int, default=1000)
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--target-accept", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="save the posterior as NetCDF here (default: not saved)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lbmm`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, ValueError) as err:
        print(f"lbmm: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

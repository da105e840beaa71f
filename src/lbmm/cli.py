"""The ``lbmm`` command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

from . import __version__
from .data import RECIPES, DataError, known_tables, load_dataset

__all__ = ["main"]


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lbmm`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DataError as err:
        print(f"lbmm: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

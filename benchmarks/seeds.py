"""Convergence of every mixer of the built-in studies across seeds, as shipped.

Usage::

    python benchmarks/seeds.py --studies default kejzlar2023 --seeds 0 1 2 --root runs/seeds
        [--markdown] [--out benchmarks/results/seeds.json]

For each (study, seed) runs ``lbmm run STUDY --seed SEED --no-report`` into
``ROOT/STUDY_sSEED`` with the study's own settings (nothing overridden but the seed), unless
that folder already holds a complete run of the same study and seed (then it is read, not
rerun). Per mixer it reports what the run's manifest recorded: converged or not (R-hat ≤ 1.01
and bulk ESS ≥ 400 on the parameters, the predictive mean at the test nuclei and the log
density), the largest R-hat and smallest bulk ESS over those groups, the draws per chain the
adaptive sampler needed, divergences and the fit time; and the test rms from ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _complete(folder: Path, study: str, seed: int) -> bool:
    man = folder / "manifest.json"
    if not man.is_file():
        return False
    m = json.loads(man.read_text())
    return bool(m.get("complete")) and m.get("seed") == seed and m["study"]["name"] == study


def run_one(study: str, seed: int, root: Path) -> Path:
    """Run ``lbmm run`` for one (study, seed) unless a complete run is already there."""
    folder = root / f"{study}_s{seed}"
    if _complete(folder, study, seed):
        return folder
    cmd = [sys.executable, "-m", "lbmm.cli", "run", study, "--seed", str(seed),
           "--out", str(folder), "--overwrite", "--no-report"]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=REPO)
    return folder


def rows_of(folder: Path) -> list[dict]:
    """One row per mixer entry from a run folder's manifest and metrics."""
    man = json.loads((folder / "manifest.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())["mixers"]
    rows = []
    for key, rec in man["mixers"].items():
        d = rec["diagnostics"]
        closed = d.get("sampler") == "closed form"
        groups = d.get("groups", {})
        rows.append({
            "study": man["study"]["name"],
            "seed": man["seed"],
            "key": key,
            "label": rec["label"],
            "converged": None if closed else bool(rec["converged"]),
            "rhat_max": None if closed else d.get("rhat_max"),
            "ess_bulk_min": None if closed else d.get("ess_bulk_min"),
            "rhat_by_group": {g: v.get("rhat_max") for g, v in groups.items()},
            "ess_by_group": {g: v.get("ess_bulk_min") for g, v in groups.items()},
            "draws_per_chain": d.get("sampling", {}).get("draws_per_chain"),
            "divergences": d.get("divergences"),
            "fit_s": rec["fit_s"],
            "test_rms": metrics[key].get("test", {}).get("rms"),
            "run_wall_s": man["wall_s"],
        })  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> str:
    """One table: a row per (study, mixer), a column per seed."""
    seeds = sorted({r["seed"] for r in rows})
    head = "| study | mixer | " + " | ".join(f"seed {s}" for s in seeds) + " |"
    lines = [head, "|---|---|" + "---|" * len(seeds)]
    order = []
    for r in rows:
        if (r["study"], r["key"]) not in order:
            order.append((r["study"], r["key"]))
    for study, key in order:
        cells, label = [], key
        for s in seeds:
            r = next((x for x in rows if (x["study"], x["key"], x["seed"]) == (study, key, s)),
                     None)  # fmt: skip
            if r is None:
                cells.append("not run")
                continue
            label = r["label"]
            if r["converged"] is None:
                cells.append("closed form")
                continue
            mark = "" if r["converged"] else "**not converged** "
            cells.append(f"{mark}{r['rhat_max']:.4f} / {r['ess_bulk_min']:.0f} / "
                         f"{r['draws_per_chain']} / {r['divergences'] or 0}")  # fmt: skip
        lines.append(f"| {study} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", nargs="+", default=["default", "kejzlar2023"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--root", type=Path, default=REPO / "runs" / "seeds")
    ap.add_argument("--read-only", action="store_true", help="tabulate the folders there only")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    rows = []
    for study in a.studies:
        for seed in a.seeds:
            folder = a.root / f"{study}_s{seed}"
            if not a.read_only:
                folder = run_one(study, seed, a.root)
            elif not _complete(folder, study, seed):
                print(f"{folder}: no complete run, left out", file=sys.stderr)
                continue
            rows.extend(rows_of(folder))
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1))
    if a.markdown:
        print("cells: max R-hat / min bulk ESS (parameters, test predictive mean, log density) /")
        print("draws per chain / divergences\n")
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

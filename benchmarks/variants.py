"""Variants of the mixers on kejzlar2023, one ``lbmm fit --json`` each: what each modelling
choice does to accuracy, calibration and convergence.

Each variant is a name and the ``lbmm fit`` arguments that make it. The table printed (and
written as JSON with ``--out``) has the fit's train/test rms, mean σ, R-hat, min bulk ESS,
divergences, the largest |ECP − nominal| over 10 … 90 % on test, and the wall time.

    python benchmarks/variants.py --only gld --out variants.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

GLD = "--mixer glm_dirichlet"
GPD = "--mixer gp_dirichlet"
VARIANTS: dict[str, str] = {
    # GLD: input scaling and intercept (the default: intercept, (Z, N) standardised on train)
    "gld": GLD,
    "gld-no-intercept": f"{GLD} --option intercept=false",
    "gld-raw-units": f"{GLD} --option x_center=[0,0] --option x_scale=[1,1]",
    # ω integrated out (default) or the paper's per-nucleus latent ω
    "gld-latent": f"{GLD} --option omega=latent",
    # per-model σ_k, mixing densities
    "gld-density": f"{GLD} --likelihood density",
    "gpd-density": f"{GPD} --likelihood density",
    # mixing the GP-corrected models
    "gbmm-d-corrected": "--mixer dirichlet --corrected",
    "gld-corrected": f"{GLD} --corrected",
    "gpd-corrected": f"{GPD} --corrected",
}


def _lbmm() -> list[str]:
    exe = shutil.which("lbmm")
    return [exe] if exe else [sys.executable, "-m", "lbmm"]


def run_variant(name: str, common: list[str]) -> dict:
    cmd = [*_lbmm(), "fit", *VARIANTS[name].split(), *common, "--json", "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"variant": name, "error": out.stderr.strip().splitlines()[-1:]}
    res = json.loads(out.stdout)
    ecp = res.get("ecp", {})
    res["ecp_max_dev"] = max((abs(float(v) - float(k)) for k, v in ecp.items()), default=None)
    return {"variant": name, "args": VARIANTS[name], **res}


def _row(r: dict) -> str:
    if "error" in r:
        return f"| {r['variant']} | failed: {r['error']} |"

    def f(key, fmt):
        v = r.get(key)
        return "" if v is None else format(v, fmt)

    return (
        f"| {r['variant']} | {f('train_rms', '.3f')} | {f('test_rms', '.3f')} | "
        f"{f('sigma_mean', '.3f')} | {f('rhat_max', '.4f')} | {f('ess_bulk_min', '.0f')} | "
        f"{r.get('divergences', '')} | {f('ecp_max_dev', '.3f')} | {f('wall_s', '.0f')} |"
    )


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="*", help=f"names (default: all): {', '.join(VARIANTS)}")
    ap.add_argument("--only", default=None, help="run the variants whose name starts with this")
    ap.add_argument("--dataset", default="kejzlar2023")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--num-chains", default="4")
    ap.add_argument("--num-warmup", default="1000")
    ap.add_argument("--num-samples", default="1000")
    ap.add_argument("--seed", default="0")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    names = args.variants or [v for v in VARIANTS if not args.only or v.startswith(args.only)]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    common = ["--dataset", args.dataset, "--num-chains", args.num_chains]
    common += ["--num-warmup", args.num_warmup, "--num-samples", args.num_samples]
    common += ["--seed", args.seed]
    if args.data_dir:
        common += ["--data-dir", args.data_dir]
    print(f"# {date.today()} · {' '.join(common)}")
    print(
        "| variant | train rms | test rms | σ | max R-hat | min bulk ESS | div | "
        "max abs(ECP−nominal) | wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in names:
        rows.append(run_variant(name, common))
        print(_row(rows[-1]), flush=True)
        if args.out:
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(rows, indent=1))
            tmp.replace(args.out)
    return rows


if __name__ == "__main__":
    main()

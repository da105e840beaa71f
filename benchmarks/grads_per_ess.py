"""Gradients per effective draw of every fit in some run folders (and density-mixing lines).

    python benchmarks/grads_per_ess.py runs/default runs/kejzlar2023 \\
        --density benchmarks/results/density.jsonl

One row per sampled entry of each run's manifest (closed forms have no gradients): the
sampler, the fit's wall time, gradient evaluations (every chain's leapfrog steps, warm-up
included), the smallest bulk ESS over the quantities the bars judge (the parameters, the
predictive mean at the test nuclei and the log density), their ratio, max R-hat and whether
the bars held. With ``--density``, the lines of ``density.py`` are added the same way. Prints
a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _row(study, key, sampler, seed, wall, grads, ess, rhat, converged, draws) -> list[str]:
    ess = ess if ess is not None and math.isfinite(ess) and ess > 0 else None
    ratio = f"{grads / ess:,.0f}" if grads and ess else "—"
    return [study, key, sampler, str(seed), f"{wall:.1f}", f"{grads:,}" if grads else "—",
            f"{ess:.0f}" if ess else "—", ratio, f"{rhat:.4f}" if rhat else "—",
            "yes" if converged else "no", str(draws or "—")]  # fmt: skip


def run_rows(folder: Path) -> list[list[str]]:
    man = json.loads((folder / "manifest.json").read_text("utf-8"))
    rows = []
    for key, rec in man["mixers"].items():
        d = rec["diagnostics"]
        if not d.get("grad_evals") or rec.get("reused_from"):  # reused: not sampled here
            continue
        draws = (d.get("sampling") or {}).get("draws_per_chain")
        rows.append(_row(man["study"]["name"], key, d.get("sampler", ""), rec.get("seed"),
                         rec["fit_s"],
                         int(d["grad_evals"]), d.get("ess_bulk_min"), d.get("rhat_max"),
                         rec["converged"], draws))  # fmt: skip
    return rows


def density_rows(path: Path) -> list[list[str]]:
    rows = []
    for line in path.read_text("utf-8").splitlines():
        r = json.loads(line)
        if not r.get("grad_evals"):
            continue
        draws = r.get("draws_per_chain") or r.get("particles")
        rows.append(_row(r["dataset"], f"{r['mixer']} (density)", r["method"], r.get("seed"),
                         r["wall_s"],
                         int(r["grad_evals"]), r.get("ess_bulk_min"), r.get("rhat_max"),
                         r.get("converged"), draws))  # fmt: skip
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", type=Path, help="run folders")
    p.add_argument("--density", type=Path, help="density.py's JSON lines")
    args = p.parse_args(argv)
    rows = [r for f in args.runs for r in run_rows(f)]
    if args.density:
        rows += density_rows(args.density)
    head = ["study / data", "entry", "sampler", "seed", "fit (s)", "gradients", "min bulk ESS",
            "gradients / ESS", "max R-hat", "converged",
            "draws (SMC: particles) per chain"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()

"""Where `lbmm run` spends its time: phase wall times from the run's own log and manifest,
and a py-spy sample of the Python side (compilation, report, metrics, imports).

    python benchmarks/profile_run.py --study default --out /tmp/prof   # needs py-spy

py-spy samples the Python threads of the run and of its worker processes (``--jobs``);
while XLA executes a compiled sampler the Python thread waits outside the interpreter and is
not sampled, so the samples cover the Python work and
the wall times in the manifest cover everything.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

PHASES = {
    "run_study (main process, all)": lambda x: x.startswith("run_study "),
    "worker processes (all)": lambda x: x.startswith("_worker_job "),
    "fit (_fit_entry)": lambda x: x.startswith("_fit_entry "),
    "JAX compilation": lambda x: "backend_compile" in x or "compile_or_get_cached" in x,
    "predict (domain)": lambda x: x.startswith("predict (lbmm/predict.py"),
    "metrics (mixer_metrics)": lambda x: x.startswith("mixer_metrics "),
    "report (build_report)": lambda x: x.startswith("build_report "),
    "figures drawn early (mixer_figures)": lambda x: x.startswith("mixer_figures "),
    "convergence diagnostics (diagnostics)": lambda x: x.startswith("diagnostics (lbmm/"),
    "imports (importlib, any process)": lambda x: x.startswith("_find_and_load "),
}


def aggregate(raw: Path) -> dict:
    """Inclusive sample counts of the phases in py-spy's raw (collapsed stack) output."""
    rows, total = [], 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        rows.append((stack.split(";"), int(n)))
        total += int(n)
    out = {"samples": total}
    for name, hit in PHASES.items():
        out[name] = sum(n for frames, n in rows if any(hit(f) for f in frames))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", default="default")
    p.add_argument("--out", type=Path, required=True, help="a scratch folder")
    p.add_argument("--rate", type=int, default=25, help="py-spy samples per second")
    args = p.parse_args(argv)
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is needed: pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    run, raw = args.out / "run", args.out / "profile.raw"
    subprocess.run(
        [spy, "record", "-r", str(args.rate), "--format", "raw", "-o", str(raw),
         "--subprocesses", "--",
         sys.executable, "-m", "lbmm.cli", "run", args.study, "--out", str(run),
         "--overwrite", "--cache-dir", str(args.out / "jaxcache")],
        check=True,
    )  # fmt: skip
    man = json.loads((run / "manifest.json").read_text())
    res = {
        "wall_s": man["wall_s"],
        "fit_s": {k: r["fit_s"] for k, r in man["mixers"].items()},
        "predict_s": {k: r["predict_s"] for k, r in man["mixers"].items()},
        "python_samples": aggregate(raw),
        "rate": args.rate,
    }
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()

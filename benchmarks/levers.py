"""Sampler levers, one at a time: gradients per effective draw and time to the bars.

Usage::

    python benchmarks/levers.py --dataset default --mixer linear --option noise=spread \\
        --variant target_accept=0.99 --variant target_accept=0.95 --variant init=map \\
        [--seeds 0 1] [--out benchmarks/results/levers.jsonl]

Each ``--variant`` is a set of :func:`lbmm.inference.fit` settings (``KEY=VALUE``, several
separated by commas) applied on top of the study's shipped sampling (4 chains × (1000 +
1000), up to 4000 draws per chain until the bars hold). For every variant × seed one fit
of the dataset's training split; one JSON line per fit with the wall time, gradient
evaluations, the bars (largest R-hat, smallest bulk ESS over the parameters, the predictive
mean at the test nuclei and the log density), divergences, draws per chain, gradients per
effective draw (gradients / min bulk ESS) and the test rms. Compare variants by gradients
per effective draw (independent of the machine's load) and by whether the bars held.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import time
from datetime import UTC, datetime


def _settings(text: str) -> dict:
    out = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        try:
            out[k.strip()] = ast.literal_eval(v.strip())
        except (ValueError, SyntaxError):
            out[k.strip()] = v.strip()
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="default")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--mixer", default="linear")
    p.add_argument("--option", action="append", default=[], help="mixer option KEY=VALUE")
    p.add_argument("--variant", action="append", required=True, help="fit settings K=V[,K=V]")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--out", default="benchmarks/results/levers.jsonl")
    a = p.parse_args(argv)

    from lbmm.data import load_dataset
    from lbmm.inference import fit
    from lbmm.predict import evaluate, predict

    ds = load_dataset(a.dataset, a.data_dir)
    options = {k: v for o in a.option for k, v in _settings(o).items()}
    base = dict(num_chains=4, num_warmup=1000, num_samples=1000, max_samples=4000)
    for text in a.variant:
        for seed in a.seeds:
            kw = {**base, **_settings(text)}
            t0 = time.perf_counter()
            post = fit(ds, a.mixer, options=options, seed=seed, warn=False, **kw)
            wall = time.perf_counter() - t0
            d = post.diagnostics
            ev = evaluate(predict(post, "test", seed=seed))
            row = {
                "dataset": a.dataset, "mixer": a.mixer, "options": options, "variant": text,
                "seed": seed, "wall_s": round(wall, 1), "grad_evals": d.get("grad_evals"),
                "rhat_max": d["rhat_max"], "ess_bulk_min": d["ess_bulk_min"],
                "converged": bool(d["converged"]), "divergences": d.get("divergences"),
                "draws_per_chain": d["sampling"].get("draws_per_chain"),
                "grads_per_ess": round(d["grad_evals"] / d["ess_bulk_min"], 1),
                "test_rms": ev["rms"],
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "load_1min": round(os.getloadavg()[0], 2),
            }  # fmt: skip
            print(json.dumps(row), flush=True)
            with open(a.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

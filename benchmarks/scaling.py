"""Scaling toward the whole nuclear chart: time and memory per gradient against nuclei × models.

A synthetic study on the real chart: the nuclei are drawn (seeded) from every (Z, N) that
some MassExplorer table (../shared/data/massexplorer, all 15 models) covers, so the inputs
spread like the chart's; y is a smooth function of (Z, N) plus noise, and each of K models is
y plus its own smooth bias and noise. For every mixer (GBMM+L, GBMM+D, LBMM+GLD, LBMM+GPD with
the HSGP approximation and with the exact GP) and size, the log density's value-and-gradient
on the unconstrained scale is compiled once (the time is reported) and timed over repeated
calls (median); the memory is XLA's own account of the compiled gradient (arguments + outputs
+ temporaries, ``compiled.memory_analysis()``) plus the data arrays the model holds (inputs,
model predictions, HSGP basis). Time per fit is the gradients a converged fit
of the mixer took on the default study (BENCHMARKS.md) times the time per gradient: an
estimate, said as such.

    python benchmarks/scaling.py --out benchmarks/results/scaling.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lbmm import _jax  # noqa: F401  (float64)
from lbmm.data import Dataset, read_massexplorer
from lbmm.mixers import get_mixer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "massexplorer"


def chart_nuclei(data_dir: Path) -> np.ndarray:
    """Every (Z, N) that some MassExplorer model table covers."""
    keys = set()
    tables = sorted(p for p in data_dir.glob("*.csv") if not p.stem.upper().startswith("AME"))
    for p in tables:
        t = read_massexplorer(p, name=p.stem)
        keys |= set(zip(t.Z.tolist(), t.N.tolist(), strict=True))
    return np.array(sorted(keys)), len(tables)


def synthetic(nuclei: np.ndarray, n: int, k: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    pick = nuclei[np.sort(rng.choice(len(nuclei), size=n, replace=False))]
    z, nn = pick[:, 0].astype(float), pick[:, 1].astype(float)
    y = 20 * np.exp(-(nn - z) / 40) + 0.05 * z + rng.normal(0, 0.3, n)
    F = np.stack(
        [
            y + a * np.sin(z / (8 + 3 * j)) + b * np.cos(nn / (11 + 2 * j)) + rng.normal(0, 0.2, n)
            for j, (a, b) in enumerate(rng.normal(0, 0.8, (k, 2)))
        ],
        axis=1,
    )
    return Dataset.from_arrays(
        "chart", "S2n", [f"m{j}" for j in range(k)], pick[:, 0], pick[:, 1], y, F,
        splits={"train": np.arange(n)},
    )  # fmt: skip


MIXERS = {
    "GBMM+L": ("linear", {}),
    "GBMM+D": ("dirichlet", {}),
    "LBMM+GLD": ("glm_dirichlet", {}),
    "LBMM+GPD (HSGP)": ("gp_dirichlet", {"gp": "hsgp"}),
    "LBMM+GPD (exact)": ("gp_dirichlet", {"gp": "exact"}),
}


def gradient(ds: Dataset, mixer: str, options: dict):
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import initialize_model

    spec = get_mixer(mixer)
    train = ds.split("train", require_observed=True)
    opts = spec.resolve_options(train, options, "mean")
    args = (jnp.asarray(train.F), jnp.asarray(train.x), jnp.asarray(train.y))
    kwargs = {"likelihood_kind": "mean", "priors": None, **opts,
              **spec.fit_arrays(train.x, opts)}  # fmt: skip
    info = initialize_model(jax.random.PRNGKey(0), spec.model, model_args=args,
                            model_kwargs=kwargs)  # fmt: skip
    flat, unravel = ravel_pytree(info.param_info.z)
    f = jax.value_and_grad(lambda v: info.potential_fn(unravel(v)))
    data = sum(int(a.nbytes) for a in jax.tree.leaves((args, kwargs)) if hasattr(a, "nbytes"))
    return f, flat, data


def measure(ds: Dataset, mixer: str, options: dict, reps: int) -> dict:
    f, x, data_bytes = gradient(ds, mixer, options)
    t0 = time.perf_counter()
    compiled = jax.jit(f).lower(x).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    mem_bytes = None
    if mem is not None:  # the data arrays are constants of the executable: counted apart
        mem_bytes = data_bytes + int(
            mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
        )
    jax.block_until_ready(compiled(x))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(compiled(x))
        times.append(time.perf_counter() - t)
    return {
        "dim": int(x.size),
        "compile_s": compile_s,
        "grad_ms": 1e3 * float(np.median(times)),
        "memory_mb": None if mem_bytes is None else mem_bytes / 2**20,
    }


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=DATA)
    p.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    p.add_argument("--models", type=int, nargs="+", default=[3, 9, 15])
    p.add_argument("--exact-max", type=int, default=2000, help="largest n for the exact GP")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    nuclei, n_tables = chart_nuclei(args.data_dir)
    sizes = sorted({*(s for s in args.sizes if s < len(nuclei)), len(nuclei)})
    print(f"chart: {len(nuclei)} nuclei in {n_tables} model tables; sizes {sizes}")
    rows = []
    for k in args.models:
        for n in sizes:
            ds = synthetic(nuclei, n, k)
            for label, (mixer, opts) in MIXERS.items():
                if opts.get("gp") == "exact" and n > args.exact_max:
                    continue
                reps = max(3, args.reps if n <= 2000 else args.reps // 4)
                r = measure(ds, mixer, opts, reps)
                row = {"date": date.today().isoformat(), "machine": platform.node(),
                       "cpus": os.cpu_count(), "load": os.getloadavg()[0], "mixer": label,
                       "nuclei": n, "models": k, **r}  # fmt: skip
                rows.append(row)
                print(f"{label:18s} n={n:5d} K={k:2d} dim={r['dim']:5d} "
                      f"{r['grad_ms']:9.3f} ms/grad  {r['memory_mb'] or 0:9.1f} MB  "
                      f"compile {r['compile_s']:.1f} s", flush=True)  # fmt: skip
                if args.out:
                    with args.out.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
    return rows


if __name__ == "__main__":
    main()

"""Accuracy of the Hilbert-space GP basis against the exact squared-exponential kernel.

For each (m_Z, m_N, c) and length scales ρ, the approximate covariance Φ diag(S_ρ) Φᵀ is
compared with the exact unit-variance kernel at the training inputs of kejzlar2023: the
largest absolute error of any entry, and the share of the prior variance kept on the diagonal
(mean over the inputs). Run: ``python benchmarks/hsgp_accuracy.py [--data-dir DIR]``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from lbmm.data import load_dataset
from lbmm.mixers.kernels import se_kernel
from lbmm.mixers.local import _hsgp_sqrt_spd, hsgp_basis, prepare_gpd

GRID_M = ((15, 20), (20, 30), (30, 45), (40, 60), (50, 75))
GRID_C = (1.2, 1.3, 1.5)
RHOS = ((2.0, 2.0), (2.5, 2.5), (3.5, 3.5), (5.0, 5.0))


def table(x: np.ndarray, train) -> list[dict]:
    rows = []
    u = jnp.asarray(x)
    for m in GRID_M:
        for c in GRID_C:
            opts = prepare_gpd(train, {"gp": "hsgp", "gp_unit": 1.0, "hsgp_m": m, "hsgp_c": c})
            phi = hsgp_basis(u, opts["hsgp_center"], opts["hsgp_ell"], opts["hsgp_m"])
            for rho in RHOS:
                r = jnp.asarray(rho)
                s2 = _hsgp_sqrt_spd(r, opts["hsgp_ell"], opts["hsgp_m"]) ** 2
                K_hs = (phi * s2) @ phi.T
                K = se_kernel(u, u, r)
                rows.append(
                    {
                        "m": m,
                        "c": c,
                        "rho": rho,
                        "M": int(phi.shape[1]),
                        "max_abs_err": float(jnp.max(jnp.abs(K_hs - K))),
                        "var_kept": float(jnp.mean(jnp.diag(K_hs))),
                    }
                )
    return rows


def grad_cost(x, train, F, m, c, reps=50) -> float:
    """Median seconds of one log-density gradient of the collapsed GPD at the prior draw."""
    from numpyro.infer.util import initialize_model

    from lbmm.mixers.local import gp_dirichlet

    opts = prepare_gpd(train, {"gp": "hsgp", "gp_unit": 1.0, "hsgp_m": m, "hsgp_c": c,
                               "hsgp_center": None, "hsgp_ell": None, "jitter": 1e-6,
                               "x_train": None, "omega": "collapsed"})  # fmt: skip
    info = initialize_model(
        jax.random.PRNGKey(0), gp_dirichlet, model_args=(jnp.asarray(F), jnp.asarray(x),
        jnp.asarray(train.y)), model_kwargs=opts)  # fmt: skip
    pe = jax.jit(jax.value_and_grad(info.potential_fn))
    z = info.param_info.z
    jax.block_until_ready(pe(z))
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(pe(z))
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    ds = load_dataset("kejzlar2023", args.data_dir)
    train = ds.split("train")
    rows = table(train.x, train)
    print("| m_Z × m_N | c | M | ρ | max abs error | variance kept |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['m'][0]} × {r['m'][1]} | {r['c']} | {r['M']} | {r['rho'][0]} | "
              f"{r['max_abs_err']:.3f} | {r['var_kept']:.3f} |")  # fmt: skip
    print()
    print("| m_Z × m_N | M | gradient (ms, median of 50) |")
    print("|---|---|---|")
    for m in GRID_M:
        t = grad_cost(train.x, train, train.F, m, 1.3)
        print(f"| {m[0]} × {m[1]} | {m[0] * m[1]} | {1e3 * t:.2f} |")


if __name__ == "__main__":
    main()

"""Helpers to run the PyMC peer (``../shared/peers/pymc``) next to lbmm's benchmarks.

The peer is a measuring instrument: it runs in its own virtual environment, built from its own
``requirements.txt``, as a separate process, and it is only ever talked to through files (the
train/test CSVs it reads, the JSON it writes). Nothing here imports it.

Functions
---------
``peer_dir()``            where the peer lives (``$LBMM_PEER_DIR`` or ``../shared/peers/pymc``)
``ensure_venv()``         build (once) the peer's venv from its requirements
``export_split()``        write a dataset split as the CSV the peer reads (Z, N, y, models)
``run_fit()``             one peer fit → its JSON (plus the process wall time)
``stored_results()``      the peer's stored result JSONs (``results/*.json``)
``environment()``         versions, C++ compiler and BLAS seen by the peer's venv
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_PEER_DIR = REPO.parent / "shared" / "peers" / "pymc"
DEFAULT_VENV = HERE / ".peer-venv"
ENV_PEER_DIR = "LBMM_PEER_DIR"

# lbmm mixer name → the peer's --model name
PEER_MODEL = {"linear": "L", "dirichlet": "D", "glm_dirichlet": "GLD", "gp_dirichlet": "GPD"}
# The samplers tried per mixer when the peer is run. L and D are cheap, so every sampler is run
# and the best converged one is picked afterwards; for the local mixers the one that did best in
# the peer's own RESULTS.md (GLD: nutpie; GPD: the numpyro back-end had the lower R-hat).
DEFAULT_SAMPLERS = {
    "linear": ("pymc", "nutpie", "numpyro"),
    "dirichlet": ("pymc", "nutpie", "numpyro"),
    "glm_dirichlet": ("nutpie",),
    "gp_dirichlet": ("numpyro",),
}
PEER_MODELS = ("SKMS", "SKP", "SLY4", "SV", "UNEDF0", "UNEDF1", "UNEDF2", "FRDM12", "HFB24")


def peer_dir(path: str | Path | None = None) -> Path:
    """The peer's folder: ``path``, else ``$LBMM_PEER_DIR``, else ``../shared/peers/pymc``."""
    if path is not None:
        return Path(path)
    env = os.environ.get(ENV_PEER_DIR)
    return Path(env) if env else DEFAULT_PEER_DIR


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_venv(
    peer: Path, venv: Path = DEFAULT_VENV, *, python: str | None = None, log=print
) -> Path:
    """Create ``venv`` and install the peer's ``requirements.txt`` into it, unless a previous
    call already did so with the same requirements (a stamp file holds their sha256).

    Returns the venv's python. Raises ``RuntimeError`` with pip's output tail on failure.
    """
    req = peer / "requirements.txt"
    stamp = venv / ".requirements.sha256"
    want = _sha256(req)
    py = venv_python(venv)
    if py.exists() and stamp.is_file() and stamp.read_text().strip() == want:
        return py
    base = python or shutil.which("python3.11") or shutil.which("python3") or sys.executable
    t0 = time.perf_counter()
    if not py.exists():
        log(f"peer: creating {venv} with {base}")
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    log(f"peer: pip install -r {req} (once; takes minutes)")
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "-r", str(req)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise RuntimeError(f"pip install of the peer's requirements failed:\n{r.stderr[-3000:]}")
    stamp.write_text(want + "\n")
    log(f"peer: venv ready in {time.perf_counter() - t0:.0f} s")
    return py


def export_split(ds, split: str, path: Path) -> Path:
    """Write one split of an lbmm dataset in the peer's CSV format: Z, N, y and one column per
    model (the peer requires its nine model names, in any order)."""
    missing = [m for m in PEER_MODELS if m not in ds.models]
    if missing:
        raise ValueError(f"dataset {ds.name!r} lacks the peer's model columns {missing}")
    df = ds.to_frame(split)[["Z", "N", "y", *PEER_MODELS]]
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format="%.9g")
    return path


def run_fit(
    py: Path,
    peer: Path,
    *,
    train: Path,
    test: Path,
    mixer: str,
    sampler: str,
    chains: int,
    tune: int,
    draws: int,
    out: Path,
    seed: int | None = None,
    extra: list[str] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run the peer's ``run.py`` once (a fresh process) and return its JSON, with
    ``process_wall_s`` (start of the process to its end, imports included) added."""
    train, test, out = Path(train).resolve(), Path(test).resolve(), Path(out).resolve()
    cmd = [str(py), str(peer / "run.py"), "--train", str(train), "--test", str(test)]
    cmd += ["--model", PEER_MODEL[mixer], "--sampler", sampler, "--chains", str(chains)]
    cmd += ["--tune", str(tune), "--draws", str(draws), "--out", str(out)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    cmd += list(extra or [])
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=peer)
    wall = time.perf_counter() - t0
    (out.parent / f"{out.stem}.log").write_text(r.stdout + "\n--- stderr ---\n" + r.stderr)
    if r.returncode != 0:
        raise RuntimeError(
            f"peer {PEER_MODEL[mixer]}/{sampler} failed (exit {r.returncode}):\n{r.stderr[-3000:]}"
        )
    res = json.loads(out.read_text())
    res["process_wall_s"] = wall
    res["command"] = " ".join(cmd)
    return res


def stored_results(peer: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The peer's stored fits, ``{lbmm mixer: {sampler: json}}`` (``results/*.json``)."""
    inv = {v: k for k, v in PEER_MODEL.items()}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for f in sorted((peer / "results").glob("*.json")):
        d = json.loads(f.read_text())
        if d.get("mode") == "bench" or d.get("model") not in inv:
            continue
        d["file"] = str(f)
        out.setdefault(inv[d["model"]], {})[d["sampler"]] = d
    return out


_ENV_PROBE = r"""
import json, shutil, warnings
out = {}
for m in ["pymc", "pytensor", "nutpie", "numpyro", "jax", "numba", "arviz", "numpy"]:
    try:
        out[m] = __import__(m).__version__
    except Exception as e:
        out[m] = f"unavailable ({type(e).__name__})"
out["cxx"] = shutil.which("g++")
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    try:
        import pytensor
        out["pytensor_cxx"] = pytensor.config.cxx
        out["blas_ldflags"] = pytensor.config.blas__ldflags
    except Exception as e:
        out["blas_ldflags"] = f"unavailable ({type(e).__name__}: {e})"
out["warnings"] = [str(x.message)[:200] for x in w]
print(json.dumps(out))
"""


def environment(py: Path) -> dict[str, Any]:
    """Versions and toolchain of the peer's venv: pymc, nutpie, ..., the C++ compiler pytensor
    uses and the BLAS flags it found (empty: no BLAS, pytensor falls back to slower code)."""
    r = subprocess.run([str(py), "-c", _ENV_PROBE], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return {"error": r.stderr[-2000:]}
    info = json.loads(r.stdout.strip().splitlines()[-1])
    try:
        libs = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
        info["system_blas"] = sorted(
            {ln.split()[0] for ln in libs.splitlines() if "blas" in ln.lower()}
        )
    except OSError:
        info["system_blas"] = None
    return info

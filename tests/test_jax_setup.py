"""lbmm._jax: float64, and one host device per core whichever library imported JAX first,
unless the caller chose the count or has already started JAX."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PROBE = """
import json, os, sys
os.sched_getaffinity = lambda pid: {{0, 1, 2}}  # three cores, whatever this machine has
{before}
import jax
print(json.dumps({{"devices": len(jax.devices("cpu")), "x64": bool(jax.config.jax_enable_x64)}}))
"""


def _probe(before: str, **env: str) -> dict:
    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", _PROBE.format(before=before)], env=full,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("first", ["import arviz", "import lbmm.inference", "import lbmm.cli"])
def test_one_device_per_core_whoever_imports_jax_first(first):
    # ArviZ imports JAX; lbmm.inference imported ArviZ before lbmm._jax and got one device
    got = _probe(f"{first}\nimport lbmm._jax")
    assert got == {"devices": 3, "x64": True}


def test_the_callers_count_is_kept():
    assert _probe("import lbmm.inference", JAX_NUM_CPU_DEVICES="1")["devices"] == 1
    flags = "--xla_force_host_platform_device_count=3"
    assert _probe("import lbmm.inference", XLA_FLAGS=flags)["devices"] == 3
    # JAX already started by the caller: its single device stays, and lbmm still imports
    assert _probe("import jax; jax.numpy.ones(2)\nimport lbmm.inference") == {
        "devices": 1, "x64": True}  # fmt: skip

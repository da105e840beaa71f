"""JAX set-up shared by the statistical layers: float64 everywhere, one host device per core.

Imported (first) by every module that uses JAX, so that ``jax_enable_x64`` is on before any
array is made, and so that NumPyro can run chains in parallel on the CPU cores.
"""

from __future__ import annotations

import os
import sys

if "jax" not in sys.modules:  # device count only takes effect before JAX starts
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in _flags:
        os.environ["XLA_FLAGS"] = (
            f"{_flags} --xla_force_host_platform_device_count={os.cpu_count() or 1}".strip()
        )

import jax

jax.config.update("jax_enable_x64", True)

__all__ = ["jax"]

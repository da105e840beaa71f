"""JAX set-up shared by the statistical layers: float64 everywhere, one host device per core.

Imported by every module that uses JAX, so that ``jax_enable_x64`` is on before any array is
made, and so that NumPyro can run chains in parallel on the CPU cores (and ChEES-HMC spread
its chains over them). Importing JAX does not start its backends, so the device count can be
set whichever library imported JAX first (ArviZ does); only where the caller has already run
a JAX computation, or chose the count itself (``JAX_NUM_CPU_DEVICES``, or
``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``), is it left as it is.
"""

from __future__ import annotations

import os

import jax

jax.config.update("jax_enable_x64", True)


def _host_devices() -> None:
    chosen = "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    if chosen or jax.config.jax_num_cpu_devices != -1:  # the caller's own count
        return
    try:
        jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
    except RuntimeError:  # JAX has already computed something: its backends keep their count
        pass


_host_devices()

__all__ = ["jax"]

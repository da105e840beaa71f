"""JAX set-up shared by the statistical layers: float64 everywhere, one host device per core.

Imported by every module that uses JAX, so that ``jax_enable_x64`` is on before any array is
made, and so that NumPyro can run chains in parallel on the CPU cores (and ChEES-HMC spread
its chains over them). The device count is set through ``jax_num_cpu_devices``, which holds
until JAX starts its backends: importing JAX alone does not (ArviZ and NumPyro import it),
but importing BlackJAX does, as does any JAX computation. Where JAX has started already, or
the caller chose the count (``JAX_NUM_CPU_DEVICES``, or
``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``), it is left as it is.
"""

from __future__ import annotations

import os

import jax

jax.config.update("jax_enable_x64", True)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def set_host_devices(count: int) -> bool:
    """Ask JAX for ``count`` CPU devices; False where its backends have started already."""
    try:
        jax.config.update("jax_num_cpu_devices", int(count))
    except RuntimeError:  # JAX has already computed something: its backends keep their count
        return False
    return True


def _host_devices() -> None:
    chosen = "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    if chosen or jax.config.jax_num_cpu_devices != -1:  # the caller's own count
        return
    set_host_devices(usable_cores())


_host_devices()

__all__ = ["jax", "set_host_devices", "usable_cores"]

"""How busy this machine's accelerator is, for placing the local backend first or last.

The seed's rule: route to the local stack while the system load is under 80%. With an NVIDIA GPU
that is its utilisation (NVML when the `pynvml`/`nvidia-ml-py` package is installed, else one
`nvidia-smi` query); without one it is the CPU's one-minute load average per core. A reading is
cheap but not free (nvidia-smi takes tens of milliseconds), so a process caches it briefly.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass

CACHE_S = 5.0
# SCHED_LOAD=0.95 pins the reading (0..1): to keep local last (or first) whatever the machine is
# doing, and to make placement reproducible in tests.
LOAD_ENV = "SCHED_LOAD"


@dataclass(frozen=True)
class LoadReading:
    """A load between 0 (idle) and 1 (saturated; CPU load per core may exceed 1) and its source."""

    value: float
    source: str


_cached: tuple[float, LoadReading] | None = None


def read_load() -> LoadReading:
    """The current load of the device local work runs on (cached for a few seconds)."""
    global _cached
    pinned = os.environ.get(LOAD_ENV)
    if pinned:
        return LoadReading(_pinned(pinned), LOAD_ENV)
    now = time.monotonic()
    if _cached is not None and now - _cached[0] < CACHE_S:
        return _cached[1]
    reading = _gpu_load() or _cpu_load()
    _cached = (now, reading)
    return reading


def _pinned(text: str) -> float:
    """SCHED_LOAD's value. A typo is an error, not a silent reading of the machine: the user
    pinned the load to decide where local goes, and would never learn it was ignored."""
    from scheduler.errors import ConfigError

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(
            f"{LOAD_ENV}={text!r}: expected a load from 0 (idle) to 1 (busy), e.g. 0.95"
        )
    return value


def _gpu_load() -> LoadReading | None:
    try:
        import pynvml  # type: ignore[import-not-found]  # optional: nvidia-ml-py

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            busy = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
        finally:
            pynvml.nvmlShutdown()
        return LoadReading(float(busy) / 100, "GPU 0 utilisation (NVML)")
    except Exception:  # noqa: BLE001 - no NVML, no driver or no GPU: try the next source
        pass
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        ).stdout
        return LoadReading(float(out.splitlines()[0]) / 100, "GPU 0 utilisation (nvidia-smi)")
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _cpu_load() -> LoadReading:
    cores = os.cpu_count() or 1
    return LoadReading(os.getloadavg()[0] / cores, f"CPU load average per core ({cores} cores)")


__all__ = ["LOAD_ENV", "LoadReading", "read_load"]

"""How many cores this process may really use: its CPU affinity, capped by a cgroup v2 CPU quota
(a container's `cpus` limit), which the affinity alone does not show."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read: the affinity stands
    return max(1, cores)


def envoy_threads(configured: int | None) -> int:
    """Envoy's worker threads: as configured, else one per usable core. Envoy's own default counts the
    host's cores, so a container limited to 2 CPUs on a 64-core node would run 64 threads."""
    return configured if configured is not None else usable_cores()

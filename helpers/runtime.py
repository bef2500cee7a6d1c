"""Per-run peak memory, measured the same way for every model family, and the cores a run may use.

Cost is part of the paper's argument, so every results row records ``peak_mem_mb``. Runs share one notebook process,
so the process-lifetime maximum (``ru_maxrss``) would charge each run with its predecessors' peaks; instead the
kernel's high-water mark is reset before a run (Linux ``/proc/self/clear_refs``) and ``VmHWM`` read after it.
"""

from __future__ import annotations

import os
import resource


def machine_threads() -> int:
    """CPU cores this process may use (respects affinity masks and container CPU sets, unlike ``cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def reset_peak_memory() -> bool:
    """Reset this process's peak-RSS counter; False where the platform does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb() -> float:
    """Peak resident memory (MiB) since the last reset: ``VmHWM``, else the lifetime ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

"""Per-run peak memory, measured the same way for every model family, and the cores a run may use.

Cost is part of the paper's argument, so every results row records ``peak_mem_mb``. Runs share one notebook process,
so the process-lifetime maximum (``ru_maxrss``) would charge each run with its predecessors' peaks; instead the
kernel's high-water mark is reset before a run (Linux ``/proc/self/clear_refs``) and ``VmHWM`` read after it.
"""

from __future__ import annotations

import os
import resource


def machine_threads() -> int:
    """CPU threads a run here may use: the cores of this thread's affinity mask, at most ``OMP_NUM_THREADS``.

    Affinity masks and container CPU sets are respected (unlike ``cpu_count``), and so is ``OMP_NUM_THREADS``, as
    torch itself does: dask.distributed sets it to 1 in every worker process, so a run on a cluster's worker trains
    with one thread per worker thread instead of one per core of the host.
    """
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        cores = max(1, os.cpu_count() or 1)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(omp)) if omp.isdigit() and int(omp) > 0 else cores


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast pays on CPU.

    Without those instructions torch emulates bfloat16 and autocast is slower than float32, so the CNN defaults
    (:data:`helpers.models.cnn.TRAIN_DEFAULTS`) switch it on only here; the setting is part of every run's stored
    settings and of its results rows' note.
    """
    try:
        with open("/proc/cpuinfo") as fh:
            flags = set(fh.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


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

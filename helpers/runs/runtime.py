"""Per-run peak memory, measured the same way for every model family, and the cores a run may use.

Cost is part of the paper's argument, so every results row records ``peak_mem_mb``. Runs share one notebook process,
so the process-lifetime maximum (``ru_maxrss``) would charge each run with its predecessors' peaks; instead the
kernel's high-water mark is reset before a run (Linux ``/proc/self/clear_refs``) and ``VmHWM`` read after it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import resource
from collections.abc import Iterator


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


@contextlib.contextmanager
def torch_threads(num_threads: int | None = None) -> Iterator[None]:
    """Run the block with ``num_threads`` torch CPU threads (default :func:`machine_threads`), then restore them."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(num_threads or machine_threads())
    try:
        yield
    finally:
        torch.set_num_threads(prev)


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (x86 ``flags``, ARM ``Features``), read once; empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
    except OSError:
        return frozenset()
    words: set[str] = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            words.update(value.split())
    return frozenset(words)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast pays on CPU.

    Without those instructions torch emulates bfloat16 and autocast is slower than float32, so the CNN defaults
    (:data:`helpers.runs.cnn_settings.TRAIN_DEFAULTS`) switch it on only here; the setting is part of every run's stored
    settings and of its results rows' note.
    """
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


#: The bfloat16 instruction sets oneDNN picks its bf16 kernels by, in the order they are named.
_BF16_SETS = {"amx_bf16": "amx", "avx512_bf16": "avx512"}


def _cpu_capability_from_flags(flags: frozenset[str]) -> str:
    """The ATen kernel level (``AVX512``/``AVX2``/``DEFAULT``) as its own dispatch decides it from the flags.

    Used for rows that load no torch (classical): the same spelling as
    ``torch.backends.cpu.get_cpu_capability()`` without importing torch.
    """
    if {"avx512vl", "avx512bw", "avx512dq", "fma"} <= flags:
        return "AVX512"
    if {"avx2", "fma"} <= flags:
        return "AVX2"
    return "DEFAULT"


@functools.cache
def platform_class(torch_kernels: bool = True) -> str:
    """The declared arithmetic platform of this machine: what makes the same run give other numbers elsewhere.

    Deep runs are deterministic on one machine but not across machines: bf16 autocast and oneDNN pick different
    kernels by CPU (AVX2 or AVX512; bfloat16 through AMX, AVX512-BF16 or emulated), and a torch release or a GPU
    changes them again. Measured (issue 27): the same code, data, settings and threads on an AMD EPYC with
    AVX512-BF16 but no AMX moved every one of 126 deep rows (median 0.64, max 20.6 mIoU points) while every classical
    row (scikit-learn, LightGBM) was bit-identical. So every torch-based run (CNN, FM fine-tunes, frozen-FM
    embeddings) puts this string in its ``run_key`` and a table computed on another platform class is rerun, not
    reused; classical keys leave it out. Every row records it in the ``platform`` column.

    The string is short and stable (no core count, no CPU model name: those do not change the kernels), e.g.
    ``"x86_64 AVX512 bf16=amx+avx512 torch=2.13.0+cpu"``; ``cuda=<device name>`` is appended when torch sees a
    GPU (the FM rows train there when one exists; a CNN row on such a machine is declared with it too, which only
    ever reruns a run, never reuses one).

    Args:
        torch_kernels: Describe torch's view of the machine (its kernel level, version and GPU; imports torch).
            False describes the CPU from its flags alone, for rows that never load torch.
    """
    flags = _cpu_flags()
    bf16 = "+".join(v for k, v in _BF16_SETS.items() if k in flags) or "none"
    if not torch_kernels:
        return f"{platform.machine()} {_cpu_capability_from_flags(flags)} bf16={bf16}"
    import torch

    parts = [
        platform.machine(),
        torch.backends.cpu.get_cpu_capability(),
        f"bf16={bf16}",
        f"torch={torch.__version__}",
    ]
    if torch.cuda.is_available():
        parts.append(f"cuda={torch.cuda.get_device_name(0).replace(' ', '_')}")
    return " ".join(parts)


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

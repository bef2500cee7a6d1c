"""Run the study's training jobs on a dask.distributed cluster, or one after another in this process.

Why: the deep rows are ~150 independent jobs of one to five minutes. On a 2-core machine two 1-thread processes
finish two trainings in about two thirds of the time of one 2-thread process after the other
(``benchmarks/train_loop.py``), and notebooks 03 and 04 have very different amounts of work: run as two pinned
notebooks, the CNN notebook finished 33 minutes before the FM one and left its core idle. A shared pool of 1-thread
workers that both notebooks feed keeps every core busy until the last job. The same code reaches a workstation or a
cluster: start a scheduler and workers there (``dask scheduler``, ``dask worker ADDRESS --nthreads 1``, one worker
per core or GPU) and give the notebooks its address as the ``scheduler`` parameter.

How a job runs does not change what it computes: a job is a plain call of a ``helpers`` function (``deep_run.run``,
``fm_finetuned.run_fm_rows``, ...), executed the same way in this process or on a worker. The only difference is the
thread count, which is part of a run's stored settings: workers of :func:`local_cluster` are pinned to one core
each, so their runs train with one thread (what ``python -m helpers.chain`` uses); in a notebook without a
scheduler a run uses every core of the process.

Functions:

* :func:`local_cluster` starts ``n`` 1-thread worker processes on this machine, each pinned to its own core;
* :func:`connect` returns a client for a scheduler address (``None``: no cluster; jobs run in this process);
* :func:`submit` runs ``fn(*args, **kwargs)`` as a job (``after=`` jobs that must finish first);
* :func:`gather` waits for every job, with a progress bar over completions, and returns their values in
  submission order; when jobs failed, it raises :class:`JobsFailed` after the others have finished, naming each
  failed job and its traceback (a failed run costs only itself: every finished run has written its rows).
"""

from __future__ import annotations

import logging
import os
import traceback
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

#: Environment variable a worker of :func:`local_cluster` reads to pin its job threads to one core.
CORE_VARIABLE = "FM_ENGINE_CORE"

#: dask.distributed's setting for the environment its nannies give their worker processes.
PRE_SPAWN = "distributed.nanny.pre-spawn-environ"

#: That environment for the study's workers: one BLAS/OpenMP thread, and *not* dask's default
#: ``MALLOC_TRIM_THRESHOLD_=65536``, under which glibc hands freed memory back after every training step and torch
#: faults it in again on the next (``benchmarks/README.md``, "The engine's workers"). On a cluster of your own, give
#: ``dask worker`` the same environment (README: "Runs are jobs").
WORKER_ENVIRON = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}

#: dask.distributed's scheduler-side queuing, off (``"inf"``): every job goes to a worker as soon as it may run, and
#: each worker starts its waiting jobs by priority. With queuing on (dask's default, 1.1) only "root-ish" jobs wait
#: at the scheduler, and a job stops being root-ish once any job of the same function name waits on another
#: (``after=``): in a from-empty default chain (2026-12-05) the in-study pretraining, submitted at priority 2 before
#: its fine-tunes, waited at the scheduler while the CNN runs submitted after it went straight to the workers, and
#: it started only when they had all finished. A cluster of your own needs the same setting on its scheduler
#: (``DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=inf``; README: "Runs are jobs").
SCHEDULER_CONFIG = {"distributed.scheduler.worker-saturation": "inf"}


@dataclass
class Done:
    """A job already run in this process: the in-process stand-in for a ``distributed.Future``."""

    value: Any
    label: str = ""
    error: BaseException | None = None
    traceback: str = ""

    def result(self) -> Any:
        """The job's return value (re-raises its error)."""
        if self.error is not None:
            raise self.error
        return self.value


class JobsFailed(RuntimeError):
    """Some jobs of a batch raised; every other job ran to its end.

    Attributes:
        failures: ``(label, traceback text)`` per failed job, in submission order.
    """

    def __init__(self, failures: Sequence[tuple[str, str]], n_jobs: int) -> None:
        self.failures = list(failures)
        text = "\n\n".join(f"--- {label}\n{tb.rstrip()}" for label, tb in self.failures)
        super().__init__(f"{len(self.failures)} of {n_jobs} jobs failed (the others finished):\n\n{text}")


def label(fn: Callable, args: tuple, kwargs: Mapping) -> str:
    """A job's name in reports: the function and the dataset / model / seed it was given."""
    parts = []
    for a in (*args, *kwargs.values()):
        if hasattr(a, "fingerprint") and hasattr(a, "name"):
            parts.append(str(a.name))
    for k in ("model_name", "model", "row", "variant", "models", "rows", "seed", "seeds"):
        if k in kwargs:
            parts.append(f"{k}={kwargs[k]}")
    pos = [a for a in args if isinstance(a, (str, int)) and not isinstance(a, bool)]
    parts += [str(a) for a in pos]
    return f"{getattr(fn, '__qualname__', fn)}({', '.join(parts)})"


def _pin_job_thread() -> None:
    """On a worker of :func:`local_cluster`, pin the executing thread to the worker's core, one torch thread.

    ``sched_setaffinity(0, ...)`` applies to the calling thread on Linux, which is the thread that runs the job;
    :func:`helpers.runs.runtime.machine_threads` then reports one core and every run records ``num_threads = 1``.
    """
    core = os.environ.get(CORE_VARIABLE)
    if core is None:
        return
    import torch

    os.sched_setaffinity(0, {int(core)})
    torch.set_num_threads(1)


def _call(fn: Callable, args: tuple, kwargs: dict, after: list, cwd: str) -> Any:
    """Run one job on a worker (``after`` only orders it behind its dependencies; their values are unused).

    The job runs in the submitting notebook's working directory, so the relative paths of a parameters file
    (``../data``, ``../results/results.csv``) mean on a worker what they mean in the notebook. A worker runs one
    job at a time (one thread), so changing its working directory per job is safe.
    """
    del after
    os.chdir(cwd)
    _pin_job_thread()
    return fn(*args, **kwargs)


def connect(scheduler: str | None):
    """A ``distributed.Client`` for the scheduler at ``scheduler``, or ``None`` to run jobs in this process.

    Args:
        scheduler: Address such as ``tcp://127.0.0.1:8786`` (what ``dask scheduler`` prints, or
            :func:`local_cluster`'s ``scheduler_address``); ``None`` or ``""``: no cluster.
    """
    if not scheduler:
        return None
    from distributed import Client

    return Client(scheduler, set_as_default=False)


def submit(client, fn: Callable, /, *args, after: Sequence = (), priority: int = 0, **kwargs):
    """Run ``fn(*args, **kwargs)`` as a job: on the cluster behind ``client``, or now in this process.

    Args:
        client: From :func:`connect` (``None``: call ``fn`` right away and return a :class:`Done`).
        fn: A module-level function (workers import it by name).
        *args: Its positional arguments (datasets and settings travel to the worker by pickling). Relative paths
            are resolved on the worker from this process's working directory, which must exist there (on a
            cluster: a file system every worker sees).
        after: Jobs that must finish before this one starts (e.g. the pretraining a fine-tune reads from the
            cache); a failed one fails this job too.
        priority: Higher runs earlier among the jobs waiting for a worker (submit long jobs with a higher priority
            so the last job to finish is a short one); on a cluster whose scheduler queues jobs (dask's default
            ``worker-saturation``), only among the jobs it queues: :data:`SCHEDULER_CONFIG`.
        **kwargs: Its keyword arguments.
    """
    name = label(fn, args, kwargs)
    if client is None:
        failed = [j for j in after if isinstance(j, Done) and j.error is not None]
        if failed:
            err = RuntimeError(f"not run: it waits for {failed[0].label}, which failed")
            return Done(None, name, err, f"{type(err).__name__}: {err}\n")
        try:
            return Done(fn(*args, **kwargs), name)
        except Exception as err:  # reported by gather once the other jobs have run
            return Done(None, name, err, traceback.format_exc())
    future = client.submit(_call, fn, args, kwargs, list(after), os.getcwd(), pure=False, priority=priority)
    _LABELS[future.key] = name
    return future


#: Labels of submitted futures (by key), for :func:`gather`'s report.
_LABELS: dict[str, str] = {}

#: Values of the jobs :func:`gather` has released, by future, so gathering the same jobs again (a notebook cell run
#: twice) returns them instead of waiting on futures the cluster has forgotten; a value goes when the caller drops its
#: future, as the cluster's copy did before the release.
_GATHERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def gather(jobs: Sequence, desc: str = "jobs") -> list:
    """The jobs' return values in submission order, once every job has ended.

    A tqdm bar counts finished jobs. In-process jobs (:class:`Done`) have already run. Each finished job's value
    is fetched as it ends and its future released, so the worker drops the job's result and its arguments at once
    although the caller still holds the futures (a notebook keeps its ``jobs`` list): a worker otherwise keeps
    every finished job's arguments, and each dataset object among them holds its decoded chips (up to
    ``cache_mb``, 256 MB) from the run. In a from-empty default chain (2026-12-05) each worker grew so from 0.7 to
    2.6 GB over its runs (the rows' ``peak_mem_mb``); releasing keeps it flat (``benchmarks/README.md``, "The
    engine's workers"). A future passed to a later job as ``after=`` stays on the scheduler for that job; the
    values stay in this process (:data:`_GATHERED`), so gathering the same jobs again returns them.

    Raises:
        JobsFailed: One or more jobs raised (or waited for one that did); it names each with its traceback. The
            other jobs ran to their end first, so their results are written.
    """
    jobs = list(jobs)
    pending = [j for j in jobs if not isinstance(j, Done) and j not in _GATHERED]
    failures: dict[int, tuple[str, str]] = {}
    if pending:
        from distributed import as_completed
        from tqdm.auto import tqdm

        index = {id(j): i for i, j in enumerate(jobs)}
        with pending[0].client.as_current(), tqdm(total=len(pending), desc=desc) as bar:
            for job in as_completed(pending):
                if job.status == "finished":
                    _GATHERED[job] = job.result()
                    _LABELS.pop(job.key, None)  # a finished job's label is needed no more
                    job.release()  # the worker keeps nothing of it: this function's docstring
                else:  # kept, so that gathering it again reports its error again
                    err = job.exception()
                    tb = "".join(traceback.format_exception(type(err), err, job.traceback()))
                    failures[index[id(job)]] = (_LABELS.get(job.key, str(job.key)), tb)
                bar.update()
    for i, j in enumerate(jobs):
        if isinstance(j, Done) and j.error is not None:
            failures[i] = (j.label, j.traceback)
    if failures:
        raise JobsFailed([failures[i] for i in sorted(failures)], len(jobs))
    return [j.result() if isinstance(j, Done) else _GATHERED[j] for j in jobs]


class PinToCore(WorkerPlugin):
    """Worker plugin: tell each local worker which core its jobs run on (worker ``i`` gets the ``i``-th core)."""

    def __init__(self, cores: Sequence[int]) -> None:
        self.cores = list(cores)

    def setup(self, worker) -> None:
        """Runs once in each worker process when it starts (or when the plugin is registered)."""
        os.environ[CORE_VARIABLE] = str(self.cores[int(worker.name) % len(self.cores)])


def local_cluster(n_workers: int | None = None, cores: Iterable[int] | None = None):
    """Start ``n_workers`` worker processes on this machine, one thread each, each pinned to its own core.

    Args:
        n_workers: Workers (default: one per core this process may use).
        cores: The cores to use (default: this process's affinity set).

    Returns:
        ``(cluster, client)``; close both when done (the chain does). ``cluster.scheduler_address`` is what the
        notebooks' ``scheduler`` parameter takes.
    """
    import dask
    from distributed import Client, LocalCluster

    cores = sorted(os.sched_getaffinity(0) if cores is None else cores)
    n_workers = n_workers or len(cores)
    saved = dict(os.environ)  # the nannies set OMP_NUM_THREADS=1 etc. here too, before spawning their workers
    try:
        with dask.config.set({PRE_SPAWN: WORKER_ENVIRON, **SCHEDULER_CONFIG}):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: never collides with another cluster on this machine
                memory_limit=0,  # no per-worker cap: the chain's peak is measured, not policed
                silence_logs=logging.ERROR,
            )
    finally:  # this process (and the notebook kernels the chain starts later) keep their own thread settings
        os.environ.clear()
        os.environ.update(saved)
    client = Client(cluster, set_as_default=False)
    client.register_plugin(PinToCore(cores), name="fm-pin-to-core")
    return cluster, client

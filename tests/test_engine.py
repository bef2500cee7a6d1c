"""The run engine: jobs in this process, or on a local dask.distributed cluster of pinned 1-thread workers."""

from __future__ import annotations

import gc
import os
import time
import weakref
from pathlib import Path

import pytest

from helpers.runs import engine


def where_and_threads(tag: str) -> tuple[str, list[int], int, int, str | None]:
    """What a job sees: its tag, its cores, the cores a run would use, torch's threads, the malloc trim setting."""
    import torch

    from helpers.runs import runtime

    time.sleep(0.3)  # long enough that both workers get a job
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    return tag, sorted(os.sched_getaffinity(0)), runtime.machine_threads(), torch.get_num_threads(), trim


def write_after(path: str, text: str, must_exist: str | None = None) -> str:
    if must_exist is not None and not Path(must_exist).exists():
        raise AssertionError(f"{must_exist} should have been written first")
    time.sleep(0.2)
    Path(path).write_text(text)
    return text


def read_relative(path: str) -> str:
    return Path(path).read_text()


def fails(tag: str = "") -> None:
    raise ValueError(f"job {tag} failed on purpose")


def check_failed_batch(client, tmp_path) -> None:
    """A batch with a failing job: the others run to their end, then gather names the failed job and its error."""
    jobs = [
        engine.submit(client, write_after, str(tmp_path / "before"), "b"),
        engine.submit(client, fails, "sim-x/unet/seed 3"),
        engine.submit(client, write_after, str(tmp_path / "after"), "a"),
    ]
    waits = engine.submit(client, write_after, str(tmp_path / "never"), "n", after=[jobs[1]])
    with pytest.raises(engine.JobsFailed) as info:
        engine.gather([*jobs, waits])
    assert (tmp_path / "before").read_text() == "b" and (tmp_path / "after").read_text() == "a"
    assert not (tmp_path / "never").exists()  # it waited for the failed job
    labels = [label for label, _ in info.value.failures]
    assert len(labels) == 2 and labels[0].startswith("fails(sim-x/unet/seed 3")
    assert "ValueError: job sim-x/unet/seed 3 failed on purpose" in info.value.failures[0][1]
    assert "Traceback" in info.value.failures[0][1] and "2 of 4 jobs failed" in str(info.value)


def test_in_process_jobs_run_at_submit_and_gather_in_order(tmp_path):
    a = engine.submit(None, write_after, str(tmp_path / "a"), "A")
    assert (tmp_path / "a").read_text() == "A"  # already ran
    b = engine.submit(None, write_after, str(tmp_path / "b"), "B", must_exist=str(tmp_path / "a"), after=[a])
    assert engine.gather([b, a]) == ["B", "A"]
    assert engine.connect(None) is None and engine.connect("") is None
    check_failed_batch(None, tmp_path)


@pytest.mark.slow
def test_local_cluster_pins_each_worker_to_one_core_and_orders_dependencies(tmp_path, monkeypatch):
    cores = sorted(os.sched_getaffinity(0))
    before = dict(os.environ)
    cluster, client = engine.local_cluster(2)
    # the workers got OMP_NUM_THREADS=1; this process (and the notebooks the chain starts next) keep their own
    assert dict(os.environ) == before
    try:
        seen = engine.gather([engine.submit(client, where_and_threads, str(i)) for i in range(6)])
        assert [s[0] for s in seen] == [str(i) for i in range(6)]  # submission order
        assert all(len(s[1]) == 1 and s[2] == 1 and s[3] == 1 for s in seen)  # one core, one thread
        # not dask's MALLOC_TRIM_THRESHOLD_=65536, which made training steps 1.4x slower
        assert all(s[4] == os.environ.get("MALLOC_TRIM_THRESHOLD_") for s in seen)
        if len(cores) >= 2:
            assert len({s[1][0] for s in seen}) == 2  # the two workers on different cores
        # a job submitted `after` another starts only when that one has finished
        first = engine.submit(client, write_after, str(tmp_path / "first"), "1")
        second = engine.submit(
            client,
            write_after,
            str(tmp_path / "second"),
            "2",
            must_exist=str(tmp_path / "first"),
            after=[first],
        )
        assert engine.gather([second, first]) == ["2", "1"]
        # relative paths mean on a worker what they mean where the job was submitted (the notebooks' ../data)
        (tmp_path / "sub").mkdir()
        (tmp_path / "rel.txt").write_text("found")
        monkeypatch.chdir(tmp_path / "sub")
        assert engine.gather([engine.submit(client, read_relative, "../rel.txt")]) == ["found"]
        # a failed job is reported with its traceback once the other jobs of the batch have finished
        check_failed_batch(client, tmp_path)
        # a client for the same scheduler address sees the same workers
        other = engine.connect(cluster.scheduler_address)
        try:
            assert len(other.scheduler_info()["workers"]) == 2
        finally:
            other.close()
    finally:
        client.close()
        cluster.close()


def log_order(path: str, tag: str, seconds: float = 0.0) -> str:
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(tag + "\n")
    return tag


@pytest.mark.slow
def test_a_higher_priority_job_runs_before_lower_ones_submitted_earlier(tmp_path):
    """The chain's order of submission, on one worker: the pretraining (priority 2) must run next, not last.

    Notebook 03 submits its runs, notebook 04 a pretraining at priority 2 and fine-tunes `after` it. Under dask's
    default scheduler-side queuing the pretraining waited at the scheduler while every later job (no longer
    "root-ish" once a job of the same name waits on another) went straight to the workers and ran first: in a
    from-empty default chain the pretraining started only when every CNN run had finished.
    """
    cluster, client = engine.local_cluster(1)
    log = str(tmp_path / "order.txt")
    try:
        jobs = [engine.submit(client, log_order, log, "blocker", 1.0)]
        jobs += [engine.submit(client, log_order, log, f"early{i}") for i in range(3)]
        jobs.append(engine.submit(client, log_order, log, "top", priority=2))
        jobs.append(engine.submit(client, log_order, log, "waits", after=[jobs[1]]))
        jobs += [engine.submit(client, log_order, log, f"late{i}") for i in range(4)]
        engine.gather(jobs)
    finally:
        client.close()
        cluster.close()
    order = Path(log).read_text().split()
    assert order[:2] == ["blocker", "top"], order
    assert order.index("waits") > order.index("early0")


class Cached:
    """Stands for a dataset object: a job's argument that fills an in-memory cache on the worker while it runs."""

    live: weakref.WeakSet = weakref.WeakSet()

    def fill(self) -> int:
        Cached.live.add(self)
        self.cache = bytearray(1 << 20)
        return len(self.cache)


def fill_cache(obj: Cached) -> int:
    return obj.fill()


def live_caches() -> int:
    gc.collect()
    return len(Cached.live)


@pytest.mark.slow
def test_a_worker_keeps_nothing_of_a_gathered_job_while_the_caller_holds_its_future():
    """A finished job's arguments (and their filled caches) leave the worker once gathered, jobs list or not.

    Before, each worker of a from-empty default chain held every finished run's dataset copy with its decoded
    chips, and grew from 0.7 to 2.6 GB.
    """
    cluster, client = engine.local_cluster(1)
    try:
        jobs = [engine.submit(client, fill_cache, Cached()) for _ in range(3)]
        assert engine.gather(jobs) == [1 << 20] * 3
        assert engine.gather([engine.submit(client, live_caches)]) == [0]
        # the caller still holds the futures, and gathering them again (a notebook cell run twice) gives the values
        assert engine.gather(jobs) == [1 << 20] * 3
        del jobs
        gc.collect()
        assert not engine._GATHERED  # the values go with the caller's futures
    finally:
        client.close()
        cluster.close()


def test_machine_threads_respects_omp_num_threads(monkeypatch):
    from helpers.runs import runtime

    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.machine_threads() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what dask.distributed sets in its workers
    assert runtime.machine_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert runtime.machine_threads() == cores

"""Wall time and peak memory of the whole notebook chain (the study's budget: <= 90 min and < 6 GiB by default).

Runs ``python -m helpers.chain`` as a child process and reports its per-notebook wall times (printed by the chain)
and its memory, sampled every five seconds over the whole process tree it started (the chain, its engine workers, the
notebook kernels): the peak of their summed proportional set size (PSS: a page shared by several processes counts
once in all) and the largest resident size one process reached. Not ``getrusage(RUSAGE_CHILDREN)``: every run resets
its worker's peak (``/proc/self/clear_refs``) to record its own ``peak_mem_mb``, so the lifetime peak a process
reports at exit is its last run's (2026-12-05: 2.7 GiB printed, while the worker holding the pooled pretraining
corpus stood at 4.3 GiB). Run: ``python benchmarks/chain.py [--params notebooks/params/quick.yaml] [chain args]``.

``--compare-workers A B`` (e.g. ``1 2``) instead runs the same chain once per engine-worker count, each from empty
folders of its own (data, results, checkpoints, caches, maps, figures: both pay the same data generation), prints
both wall times and their ratio, and checks that the two results tables hold the
same ``value`` in every row (runtime columns aside): the engine's speed-up, and the evidence that it changes no
number. Example, one dataset of the default chain with one seed::

    python benchmarks/chain.py --compare-workers 1 2 --only 02 03 04 \\
        --set 'dataset_names=[sim-burn]' 'seeds=[0]' 'texture_knobs=[]'
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BUDGET_S = {"default.yaml": 90 * 60, "quick.yaml": 4 * 60}
BUDGET_MB = 6 * 1024
#: Parameters naming where a chain writes; the worker comparison gives each run its own.
OUTPUTS = ("data_dir", "convergence_path", "figures_dir", "cache_dir", "runs_dir", "maps_dir")


def _params_of(args: list[str]) -> str:
    return next(
        (args[i + 1] for i, a in enumerate(args[:-1]) if a == "--params"), "notebooks/params/default.yaml"
    )


def _tree(root: int) -> list[int]:
    """``root`` and every process below it (from each process's parent in ``/proc/<pid>/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _memory_kb(pid: int) -> tuple[int, int]:
    """``(Pss, Rss)`` of one process in KiB (``/proc/<pid>/smaps_rollup``); zeros once it has ended."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


class TreeMemory(threading.Thread):
    """Samples a process tree every ``every`` seconds: the peak summed PSS and the largest single RSS (MiB).

    Five seconds, not one: reading a process's ``smaps_rollup`` walks its page tables in the kernel, and sampling
    every second took 4.4 % of a core through the from-empty chain of 2026-12-05 (3.3 CPU-minutes in its first 74),
    time taken from the two cores the chain it measures runs on. The peaks it looks for last minutes (the pooled
    corpus held through the pretraining), so five seconds still sees them.
    """

    def __init__(self, pid: int, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.total_mb = self.one_mb = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            sizes = [_memory_kb(p) for p in _tree(self.pid)]
            self.total_mb = max(self.total_mb, sum(s[0] for s in sizes) / 1024)
            self.one_mb = max(self.one_mb, max((s[1] for s in sizes), default=0) / 1024)


def _chain(args: list[str]) -> tuple[int, float, TreeMemory]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "helpers.chain", *args])
    memory = TreeMemory(proc.pid)
    memory.start()
    rc = proc.wait()
    memory.done.set()
    memory.join()
    return rc, time.perf_counter() - start, memory


def _with_sets(args: list[str], sets: list[str]) -> list[str]:
    """``args`` with ``sets`` added to its ``--set`` list (one ``--set`` flag: argparse keeps only the last)."""
    if "--set" not in args:
        return [*args, "--set", *sets]
    i = args.index("--set") + 1
    while i < len(args) and not args[i].startswith("--"):
        i += 1
    return [*args[:i], *sets, *args[i:]]


def compare_workers(counts: list[int], args: list[str]) -> int:
    """Run the chain once per worker count into fresh output folders; print the times, ratio and value check."""
    from helpers import results

    root = Path(tempfile.mkdtemp(prefix="chain-workers-"))
    print(f"outputs under {root}")
    walls, tables = {}, {}
    for n in counts:
        out = root / f"workers{n}"
        sets = [f"{k}={out / k}" for k in OUTPUTS] + [f"results_path={out / 'results.csv'}"]
        rc, wall, _ = _chain(
            [*_with_sets(args, sets), "--workers", str(n), "--output", str(out / "notebooks")]
        )
        if rc:
            print(f"chain with {n} worker(s) failed (exit code {rc})")
            return rc
        walls[n] = wall
        tables[n] = results.read(out / "results.csv")
    cols = [*results.RUN_COLUMNS, "split", "metric", "class"]  # a unique index: every label budget apart
    first, *rest = counts
    for n in counts:
        print(f"{n} worker(s)           {walls[n] / 60:8.1f} min   ({len(tables[n])} rows)")
    for n in rest:
        print(f"ratio {first} / {n} workers      {walls[first] / walls[n]:8.2f}x")
        a = tables[first].set_index(cols)["value"].sort_index()
        b = tables[n].set_index(cols)["value"].sort_index()
        same = (
            a.index.equals(b.index) and a.fillna(-1).to_numpy().tolist() == b.fillna(-1).to_numpy().tolist()
        )
        print(f"values {first} vs {n} workers     {'identical' if same else 'DIFFERENT'}")
        if not same:
            return 1
    return 0


def main() -> None:
    args = sys.argv[1:]
    if "--compare-workers" in args:
        i = args.index("--compare-workers")
        j = i + 1
        while j < len(args) and args[j].isdigit():
            j += 1
        counts = [int(a) for a in args[i + 1 : j]]
        if len(counts) < 2:
            sys.exit("--compare-workers needs two or more worker counts, e.g. --compare-workers 1 2")
        sys.exit(compare_workers(counts, args[:i] + args[j:]))
    params = _params_of(args)
    rc, wall, memory = _chain(args)
    budget = BUDGET_S.get(params.rsplit("/", 1)[-1])
    print(f"chain exit code       {rc}")
    print(
        f"wall time             {wall / 60:8.1f} min"
        + (f"   (budget {budget / 60:.0f} min, ratio {wall / budget:.2f})" if budget else "")
    )
    total = memory.total_mb
    print(f"peak PSS (all procs)  {total:8.0f} MiB   (budget {BUDGET_MB} MiB, ratio {total / BUDGET_MB:.2f})")
    print(f"peak RSS (one proc)   {memory.one_mb:8.0f} MiB")
    sys.exit(rc)


if __name__ == "__main__":
    main()

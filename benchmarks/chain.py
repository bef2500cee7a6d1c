"""Wall time and peak memory of the whole notebook chain (the study's budget: <= 90 min and < 6 GiB by default).

Runs ``python -m helpers.chain`` as a child process and reports its per-notebook wall times (printed by the chain)
and the peak resident memory of the largest process it started (notebook kernels included), from
``getrusage(RUSAGE_CHILDREN)``. Run: ``python benchmarks/chain.py [--params notebooks/params/quick.yaml] [chain args]``.
"""

import resource
import subprocess
import sys
import time

BUDGET_S = {"default.yaml": 90 * 60, "quick.yaml": 4 * 60}
BUDGET_MB = 6 * 1024


def main() -> None:
    args = sys.argv[1:]
    params = next(
        (args[i + 1] for i, a in enumerate(args[:-1]) if a == "--params"), "notebooks/params/default.yaml"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "helpers.chain", *args], check=False)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    budget = BUDGET_S.get(params.rsplit("/", 1)[-1])
    print(f"chain exit code       {proc.returncode}")
    print(
        f"wall time             {wall / 60:8.1f} min"
        + (f"   (budget {budget / 60:.0f} min, ratio {wall / budget:.2f})" if budget else "")
    )
    print(
        f"peak RSS (one proc)   {peak_mb:8.0f} MiB   (budget {BUDGET_MB} MiB, ratio {peak_mb / BUDGET_MB:.2f})"
    )
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()

"""Where the default chain's time goes: run seconds per family and label budget, and the convergence checks.

Reads a results table (and its convergence table) and prints, per (family, label budget), the number of runs and
the sum of their ``runtime_s`` (each run's own wall time on its engine worker, one thread), with its share of the
total; the continuation checks of one-cycle runs (:mod:`helpers.runs.convergence`) are estimated from their source
run's time per step times the steps they added (a run trained in cycles is checked by its own last cycle, already in
its ``runtime_s``). Worker-seconds, not wall time: the chain runs notebooks 03 and 04 on two workers at
once, so their wall time is about half their sum. Run after a chain::

    python benchmarks/chain_costs.py [results/results.csv] [results/convergence.csv]

The in-study pretraining runs and their continuation checks come from ``pretraining.csv`` beside the table.
"""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import results  # noqa: E402
from helpers.runs import convergence  # noqa: E402


def costs(table: pd.DataFrame, conv: pd.DataFrame, pre: pd.DataFrame | None = None) -> pd.DataFrame:
    """Runs and worker-seconds per (family, label budget), plus rows for the continuation checks.

    ``pre``: the in-study pretraining table (``results/pretraining.csv``): its runs and their continuation checks
    get a row each (their ``train_s`` and ``continuation_s``, probes included).
    """
    runs = table[table["status"] == "ok"].drop_duplicates(results.RUN_COLUMNS)
    out = (
        runs.groupby(["family", "label_budget"])
        .agg(runs=("model", "size"), worker_s=("runtime_s", "sum"))
        .reset_index()
    )
    if len(conv):
        conv = conv[conv["method"].astype(str) != convergence.LAST_CYCLE]  # no training of their own
    if len(conv):
        src = runs[runs["label_budget"] == "all"].set_index(["dataset", "model", "seed"])
        keyed = conv.set_index(["dataset", "model", "seed"])
        common = keyed.index.intersection(src.index)
        per_step = src.loc[common, "runtime_s"] / src.loc[common, "steps"].clip(lower=1)
        added = keyed.loc[common, "steps_x2"] - keyed.loc[common, "steps"]
        extra = pd.DataFrame(
            [
                {
                    "family": "continuation checks",
                    "label_budget": "all",
                    "runs": len(common),
                    "worker_s": float((per_step * added).sum()),
                }
            ]
        )
        out = pd.concat([out, extra], ignore_index=True)
    if pre is not None and len(pre):
        extra = [
            {
                "family": "in-study pretraining",
                "label_budget": "-",
                "runs": len(pre),
                "worker_s": pre["train_s"].sum(),
            },
            {
                "family": "pretraining continuation checks",
                "label_budget": "-",
                "runs": int(pre["continuation_s"].notna().sum()),
                "worker_s": float(pre["continuation_s"].fillna(0).sum()),
            },
        ]
        out = pd.concat([out, pd.DataFrame(extra)], ignore_index=True)
    out["share_%"] = 100 * out["worker_s"] / out["worker_s"].sum()
    out["worker_min"] = out["worker_s"] / 60
    return out


def main(argv: list[str]) -> int:
    table_path = Path(argv[0]) if argv else Path("results/results.csv")
    conv_path = Path(argv[1]) if len(argv) > 1 else table_path.with_name("convergence.csv")
    table = results.read(table_path)
    conv = convergence.read(conv_path) if conv_path.exists() else pd.DataFrame()
    pre_path = table_path.with_name("pretraining.csv")
    pre = pd.read_csv(pre_path) if pre_path.exists() else None
    c = costs(table, conv, pre)
    print(c[["family", "label_budget", "runs", "worker_min", "share_%"]].round(1).to_string(index=False))
    print(f"total {c['worker_s'].sum() / 60:.1f} worker-minutes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

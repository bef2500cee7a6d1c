"""Whether a rerun reproduced a results table: run by run, per model, and (with ``--verdicts``) verdict by verdict.

After a from-empty chain in a fresh clone (``python benchmarks/chain.py``), or a chain on another CPU, compare its
table with the committed one::

    python benchmarks/reproduce.py NEW/results/results.csv [results/results.csv] [--verdicts]

Prints, per model, the runs both tables hold and how many of their rows differ in ``value``, ``steps``,
``best_step``, ``stopped_by`` and ``run_key``; the platforms on each side; and the ratio of the runs' own seconds
(new over old, and per training step for the deep rows), which is how a machine's speed is compared on the same
work. Runs only the new table holds are listed (the committed table also holds ``full.yaml``'s rows, which a
default run never makes, so runs only it holds are not).

``--verdicts`` answers what a move to another CPU asks (deep rows are platform-specific: README, "What a row
records"): the findings (:func:`helpers.report.verdicts.findings`) on the committed table, and on the committed
table with the new table's runs in place of theirs, and the cells whose verdict moved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import results  # noqa: E402

ROW = [*results.RUN_COLUMNS, "split", "metric", "class"]
COMPARED = ("value", "steps", "best_step", "stopped_by", "run_key")


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a == b) | (a.isna() & b.isna())


def per_model(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    """One row per (family, model): runs in both tables, rows differing per compared column, time ratios."""
    both = new.merge(old, on=ROW, suffixes=("", "_old"))
    out = []
    for (family, model), rows in both.groupby(["family", "model"], sort=True):
        runs = rows.drop_duplicates(results.RUN_COLUMNS)
        rec = {"family": family, "model": model, "runs": len(runs), "rows": len(rows)}
        rec |= {f"{c} differ": int((~_same(rows[c], rows[c + "_old"])).sum()) for c in COMPARED}
        if runs["runtime_s_old"].sum() > 0:  # a not_run row has no time
            rec["seconds new/old"] = runs["runtime_s"].sum() / runs["runtime_s_old"].sum()
        deep = runs[runs["steps"].notna() & runs["steps_old"].notna()]
        if len(deep):
            rec["per step new/old"] = (deep["runtime_s"].sum() / deep["steps"].sum()) / (
                deep["runtime_s_old"].sum() / deep["steps_old"].sum()
            )
        out.append(rec)
    return pd.DataFrame(out)


def merged(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    """``old`` with every run that ``new`` holds replaced by ``new``'s rows of it."""
    ids = set(map(tuple, new[results.RUN_COLUMNS].astype(str).to_numpy()))
    kept = ~old[results.RUN_COLUMNS].astype(str).apply(tuple, axis=1).isin(ids)
    return pd.concat([old[kept], new], ignore_index=True)


def moved_verdicts(new: pd.DataFrame, old: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    """The findings on ``old`` and on :func:`merged`, cell by cell, with ``moved`` where the verdict differs."""
    from helpers.report import verdicts

    cols = ["cell", "dataset", "verdict", "estimate", "lo", "hi", "model_a", "model_b"]
    before = verdicts.findings(old, n_boot=n_boot)[cols]
    after = verdicts.findings(merged(new, old), n_boot=n_boot)[cols]
    out = before.merge(after, on=["cell", "dataset"], suffixes=("_old", "_new"), how="outer")
    out["moved"] = out["verdict_old"] != out["verdict_new"]
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the comparison (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("new", type=Path, help="the rerun's results table")
    ap.add_argument(
        "old", type=Path, nargs="?", default=Path("results/results.csv"), help="the committed one"
    )
    ap.add_argument("--verdicts", action="store_true", help="also compare the findings' verdicts")
    ap.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples per verdict cell")
    args = ap.parse_args(argv)
    new, old = results.read(args.new), results.read(args.old)
    pd.set_option("display.width", 200)
    print(per_model(new, old).round(3).to_string(index=False))
    for name, table in (("new", new), ("old", old)):
        platforms = table.drop_duplicates(["family", "platform"]).groupby("family")["platform"].apply(set)
        print(f"platforms ({name}):", {f: sorted(map(str, p)) for f, p in platforms.items()})
    only = new.merge(old[results.RUN_COLUMNS].drop_duplicates(), how="left", indicator=True)
    only = only.loc[only["_merge"] == "left_only", results.RUN_COLUMNS].drop_duplicates()
    print(f"runs only the new table holds: {len(only)}")
    if len(only):
        print(only.to_string(index=False))
    if args.verdicts:
        moved = moved_verdicts(new, old, args.n_boot)
        print(moved.round(4).to_string(index=False))
        print(f"verdicts moved: {int(moved['moved'].sum())} of {len(moved)} cells")


if __name__ == "__main__":
    main()

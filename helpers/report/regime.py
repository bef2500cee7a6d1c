"""The regime map: who wins as training labels get scarce, per dataset and texture knob.

The rows come from the label-budget runs (:mod:`helpers.data.labels`): the models of each notebook's
``budget_models`` at every budget, beside their full-label (``all``) rows. For each (dataset, budget) the map
compares the best **foundation model** (a model that starts from pretrained weights: published, or pretrained in
the study) with the best **other** row (classical, CNN, or a transformer trained from scratch), each chosen on
validation mIoU (mean over seeds, never test). The comparison is **paired**: one seed draws one set of labels for
every family (the label view is drawn by the run's seed), so the FM advantage is computed per seed on the same
labels, then summarised.

What the intervals are, and are not: with the default's 3 seeds the spread shown is the **range of the paired
differences over seeds** (not a 95 % interval), and the seeds vary the labels drawn and the model seed, not the
simulated data (the companion uncertainty issue adds data replicates). A verdict therefore needs every seed to
agree: ``FM`` (the best FM row ahead on every seed), ``other`` (behind on every seed), or ``not separated`` (mixed
signs, or fewer than :data:`MIN_SEEDS` paired seeds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.data import labels

FM = "FM"
OTHER = "other"
NOT_SEPARATED = "not separated"
#: The rule the regime findings state above their lines.
RULE = (
    "Per dataset and label budget, the best foundation-model row (pretrained weights: published or in-study) against "
    "the best other row (classical, CNN), each chosen on validation mIoU; test mIoU %, difference FM − other paired "
    "by seed (the seed draws the labels, the same for every family), mean [range over seeds, not a 95 % interval]. "
    "A row wins only when it is ahead on every seed, with at least 3 seeds; seeds vary the labels drawn and the model, not the simulated "
    "data. Budgets: points-K = K labelled training pixels per class; all = every label."
)
#: Paired seeds a verdict needs (fewer: :data:`NOT_SEPARATED`, whatever the sign).
MIN_SEEDS = 3
#: Fraction of a model's full-label test score that :func:`labels_to_reach` looks for.
REACH = 0.9


def is_fm(family: str, pretraining: str) -> bool:
    """A foundation model here: an FM-family row that starts from pretrained weights (published or in-study)."""
    return family == "fm" and pretraining not in ("none", "")


def budget_order(tag: str) -> tuple:
    """Sort key of budget tags: by kind (points, chips), then value; ``all`` last."""
    b = labels.LabelBudget.parse(tag)
    return ({"points": 0, "chips": 1, "all": 2}[b.kind], float(b.value))


def curves(df: pd.DataFrame, full_px: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per (dataset, model, budget, seed) of the models that ran at a label budget.

    Columns: ``dataset``, ``model``, ``family``, ``pretraining``, ``group`` (:data:`FM` or :data:`OTHER`),
    ``label_budget``, ``seed``, ``val`` and ``test`` (``miou_macro``, %), ``n_labelled_px``.

    Full-label rows written before rows carried ``n_labelled_px`` take the dataset's value from any full-label row
    that has it, else from ``full_px`` (``{dataset: labelled training pixels}``).

    Args:
        df: The results table (:func:`helpers.results.read`).
        full_px: Labelled training pixels of each dataset at full labels, where the table lacks them.
    """
    ok = df[(df["status"] == "ok") & (df["metric"] == "miou_macro") & (df["class"] == "")]
    if "label_budget" not in ok or ok.empty:
        return pd.DataFrame()
    budgeted = ok.loc[ok["label_budget"] != labels.ALL, ["dataset", "model"]].drop_duplicates()
    if budgeted.empty:
        return pd.DataFrame()
    ok = ok.merge(budgeted, on=["dataset", "model"])
    keys = ["dataset", "model", "family", "pretraining", "label_budget", "seed"]
    wide = ok.pivot_table(index=keys, columns="split", values="value", aggfunc="first").reset_index()
    px = ok.groupby(keys)["n_labelled_px"].first().reset_index()
    out = wide.merge(px, on=keys, how="left")
    for split in ("val", "test"):
        out[split] = 100 * out[split] if split in out else np.nan
    out["n_labelled_px"] = pd.to_numeric(out["n_labelled_px"], errors="coerce").astype(float)
    full = out["label_budget"] == labels.ALL
    known = out[full & out["n_labelled_px"].notna()].groupby("dataset")["n_labelled_px"].max()
    fill = pd.Series({**dict(full_px or {}), **known.to_dict()}, dtype=float)
    missing = full & out["n_labelled_px"].isna()
    if missing.any():
        out.loc[missing, "n_labelled_px"] = out.loc[missing, "dataset"].map(fill).to_numpy(dtype=float)
    out["group"] = [is_fm(f, p) for f, p in zip(out["family"], out["pretraining"], strict=True)]
    out["group"] = out["group"].map({True: FM, False: OTHER})
    cols = ["dataset", "model", "family", "pretraining", "group", "label_budget", "seed", "val", "test"]
    return (
        out[[*cols, "n_labelled_px"]]
        .sort_values(["dataset", "model", "label_budget", "seed"])
        .reset_index(drop=True)
    )


def _best_on_val(cell: pd.DataFrame) -> str | None:
    """The model of ``cell`` with the best mean validation mIoU over seeds (ties: alphabetical first)."""
    means = cell.groupby("model")["val"].mean().dropna()
    if means.empty:
        return None
    top = means.max()
    return sorted(means[means == top].index)[0]


def regime(cv: pd.DataFrame) -> pd.DataFrame:
    """The map: per (dataset, budget) the best FM and best other row (on validation) and their paired test gap.

    Returns one row per (dataset, budget): ``best_fm``, ``best_other``, ``fm_test`` and ``other_test`` (means over
    the paired seeds), ``advantage`` (mean of the per-seed differences FM − other, points), ``adv_min`` and
    ``adv_max`` (their range), ``n`` (seeds paired), ``winner`` (:data:`FM`, :data:`OTHER` or
    :data:`NOT_SEPARATED`: every seed must agree) and ``n_labelled_px`` (median over seeds).
    """
    rows = []
    if cv.empty:
        return pd.DataFrame()
    for (dataset, budget), cell in cv.groupby(["dataset", "label_budget"]):
        fm = _best_on_val(cell[cell["group"] == FM])
        other = _best_on_val(cell[cell["group"] == OTHER])
        row = {"dataset": dataset, "label_budget": budget, "best_fm": fm, "best_other": other}
        row["n_labelled_px"] = float(cell["n_labelled_px"].median())
        if fm is None or other is None:
            rows.append({**row, "n": 0, "winner": "missing"})
            continue
        a = cell[cell["model"] == fm].set_index("seed")["test"]
        b = cell[cell["model"] == other].set_index("seed")["test"]
        paired = (a - b).dropna()
        seeds = paired.index
        winner = NOT_SEPARATED
        if len(paired) >= MIN_SEEDS and (paired > 0).all():
            winner = FM
        elif len(paired) >= MIN_SEEDS and (paired < 0).all():
            winner = OTHER
        rows.append(
            {
                **row,
                "fm_test": float(a.loc[seeds].mean()) if len(seeds) else math.nan,
                "other_test": float(b.loc[seeds].mean()) if len(seeds) else math.nan,
                "advantage": float(paired.mean()) if len(paired) else math.nan,
                "adv_min": float(paired.min()) if len(paired) else math.nan,
                "adv_max": float(paired.max()) if len(paired) else math.nan,
                "n": int(len(paired)),
                "winner": winner,
            }
        )
    out = pd.DataFrame(rows)
    out["_order"] = [budget_order(b) for b in out["label_budget"]]
    return out.sort_values(["dataset", "_order"]).drop(columns="_order").reset_index(drop=True)


def labels_to_reach(cv: pd.DataFrame, fraction: float = REACH) -> pd.DataFrame:
    """Per (dataset, model): the fewest labelled pixels, among the budgets run, that reach ``fraction`` of full.

    ``fraction`` of the model's own full-label test score, means over seeds.

    Returns ``dataset``, ``model``, ``group``, ``full_test``, ``reached_at`` (budget tag, or ``""`` when only the
    full labels reach it), ``n_labelled_px`` (median over seeds at that budget; the full count when only ``all``
    reaches it) and ``fraction_at_smallest`` (the smallest budget's mean as a fraction of the full score).
    """
    if cv.empty:
        return pd.DataFrame()
    rows = []
    for (dataset, model), runs in cv.groupby(["dataset", "model"]):
        means = runs.groupby("label_budget").agg(test=("test", "mean"), px=("n_labelled_px", "median"))
        if labels.ALL not in means.index:
            continue
        full = float(means.loc[labels.ALL, "test"])
        order = sorted(means.index, key=budget_order)
        reached = next((b for b in order if means.loc[b, "test"] >= fraction * full), labels.ALL)
        smallest = order[0]
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "group": runs["group"].iloc[0],
                "full_test": full,
                "reached_at": "" if reached == labels.ALL else reached,
                "n_labelled_px": float(means.loc[reached, "px"]),
                "fraction_at_smallest": float(means.loc[smallest, "test"] / full) if full > 0 else math.nan,
            }
        )
    return pd.DataFrame(rows)


def findings_lines(rg: pd.DataFrame, datasets: Sequence[str] | None = None) -> list[str]:
    """One sentence per dataset: the budgets at which the best FM row beats the best other row, or that none does."""
    lines = []
    names = list(datasets) if datasets is not None else list(dict.fromkeys(rg["dataset"]))
    for name in names:
        cells = rg[rg["dataset"] == name]
        if cells.empty:
            continue
        won = cells[cells["winner"] == FM]

        def fmt(r):
            return (
                f"{r['label_budget']} ({r['best_fm']} {r['fm_test']:.1f} vs {r['best_other']} {r['other_test']:.1f}; "
                f"paired difference {r['advantage']:+.1f} [{r['adv_min']:+.1f}, {r['adv_max']:+.1f}], range over "
                f"{r['n']} seeds)"
            )

        if won.empty:
            best = cells.loc[cells["advantage"].idxmax()] if cells["advantage"].notna().any() else None
            closest = f"; closest: {fmt(best)}" if best is not None else ""
            lines.append(f"- **{name}**: no FM row beats the best other row at any budget{closest}.")
        else:
            lines.append(
                f"- **{name}**: the best FM row wins at " + "; ".join(fmt(r) for _, r in won.iterrows()) + "."
            )
    return lines

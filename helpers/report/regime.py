"""The regime map: who wins as training labels get scarce, per dataset and texture knob.

The rows come from the label-budget runs (:mod:`helpers.data.labels`): the models of each notebook's
``budget_models`` at every budget, beside their full-label (``all``) rows. For each (dataset, budget) the map
compares the best **foundation model** (a model that starts from pretrained weights: published, or pretrained in
the study) with the best **other** row (classical, CNN, or a transformer trained from scratch), each chosen on
validation mIoU (mean over seeds, never test). At full labels every row of the main comparison competes
(:func:`curves` with ``every_full_row``): the map's ``all`` column must agree with the claims, whose best FM row
may be one that never ran at a smaller budget (the fine-tuned Galileo-nano, a ``full.yaml`` row). A smaller budget's
cell holds only the rows run at it, and names the full-label rows it lacks (``fm_not_run``, ``other_not_run``), so a
"no FM row wins at 10 px/class" reads with the FM rows that were never tried there. The comparison is **paired**:
one seed draws one set of labels for every family (the label view is drawn by the run's seed), so the FM advantage
is computed per seed on the same labels, then summarised.

What the intervals are: the paired difference's **t interval over replicates** with a bootstrap standard error in
which the choice of each group's best model is redone in every resample (:func:`helpers.report.stats.paired_effect`).
On simulated data a replicate is a data draw and a model seed (the run of seed ``k`` trains on draw ``k``), so the
interval covers the data; on real data (fixed) it covers model seeds and label draws only, and says so. A cell is
won only when the difference is significant after a Holm correction over the map's cells (``FM`` or ``other``); an
interval inside ``±`` :data:`helpers.report.stats.EQUIVALENCE_MARGIN` (TOST) reads ``level``; anything else is
``not separated``. A run stopped by its step cap scored a lower bound (it was still improving), so a cell whose
decision such a run could have made (anything but its own side winning anyway) reads ``capped``, as a claim's
verdict reads inconclusive (:func:`helpers.report.stats.rests_on_cap`). The individual replicates' differences are
kept (``per_replicate``) for the figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.data import labels
from helpers.report import compare

FM = "FM"
OTHER = "other"
LEVEL_ = "level"
NOT_SEPARATED = "not separated"
#: A cell whose decision rests on a run stopped by its step cap (a lower bound): undecided until that run converges.
CAPPED = "capped"
#: The rule the regime findings state above their lines.
RULE = (
    "Per dataset and label budget, the best foundation-model row (pretrained weights: published or in-study) against "
    "the best other row (classical, CNN, transformer from scratch), each chosen on validation mIoU; test mIoU %, "
    "difference FM − other paired within replicate (a replicate draws the labels, the same for every family, and on "
    "simulated data the data too), mean [95 % t-interval over replicates, bootstrap SE with the choice of each best "
    "row redone in every resample; per cell, not adjusted]. A row wins only when the difference is significant "
    "after a Holm correction over the map's cells; 'level' means the 90 % interval lies within ±2 points "
    "(equivalence); 'capped' where a run stopped by its step cap (still improving: a lower bound) could have made the "
    "decision; else 'not separated'. On real data (Indian Pines) replicates vary the model seed and the "
    "labels drawn only. Budgets: points-K = K labelled training pixels per class; all = every label. At all, every "
    "row of the main comparison competes; at a smaller budget only the rows run at it, and a line names the FM rows "
    "run at full labels only."
)
#: Fraction of a model's full-label test score that :func:`labels_to_reach` looks for.
REACH = 0.9


def is_fm(family: str, pretraining: str) -> bool:
    """A foundation model here: an FM-family row that starts from pretrained weights (published or in-study)."""
    return family == "fm" and pretraining not in ("none", "")


def budget_order(tag: str) -> tuple:
    """Sort key of budget tags: by kind (points, chips), then value; ``all`` last."""
    b = labels.LabelBudget.parse(tag)
    return ({"points": 0, "chips": 1, "all": 2}[b.kind], float(b.value))


def curves(
    df: pd.DataFrame, full_px: Mapping[str, float] | None = None, *, every_full_row: bool = False
) -> pd.DataFrame:
    """One row per (dataset, model, budget, seed) of the models that ran at a label budget.

    Columns: ``dataset``, ``model``, ``family``, ``pretraining``, ``group`` (:data:`FM` or :data:`OTHER`),
    ``label_budget``, ``seed``, ``val`` and ``test`` (``miou_macro``, %), ``n_labelled_px``, ``platform`` (the CPU a
    network trained on; empty for classical rows: :func:`helpers.report.compare.network_platform`), ``stopped_by``
    (``"cap"`` when the run stopped at its step cap, still improving; else the table's value or ``""``).

    Full-label rows written before rows carried ``n_labelled_px`` take the dataset's value from any full-label row
    that has it, else from ``full_px`` (``{dataset: labelled training pixels}``).

    Args:
        df: The results table (:func:`helpers.results.read`).
        full_px: Labelled training pixels of each dataset at full labels, where the table lacks them.
        every_full_row: Also the full-label rows of models that ran at no smaller budget, on the datasets that have
            budget rows: what :func:`regime` compares at ``all`` (the learning curves and
            :func:`labels_to_reach` keep to the models with a curve).
    """
    ok = df[(df["status"] == "ok") & (df["metric"] == "miou_macro") & (df["class"] == "")]
    if "label_budget" not in ok or ok.empty:
        return pd.DataFrame()
    budgeted = ok.loc[ok["label_budget"] != labels.ALL, ["dataset", "model"]].drop_duplicates()
    if budgeted.empty:
        return pd.DataFrame()
    if every_full_row:
        ok = ok[ok["dataset"].isin(set(budgeted["dataset"]))]
    else:
        ok = ok.merge(budgeted, on=["dataset", "model"])
    keys = ["dataset", "model", "family", "pretraining", "label_budget", "seed"]
    wide = ok.pivot_table(index=keys, columns="split", values="value", aggfunc="first").reset_index()
    px = ok.groupby(keys)["n_labelled_px"].first().reset_index()
    out = wide.merge(px, on=keys, how="left")
    plat = ok.assign(platform=compare.network_platform(ok)).groupby(keys)["platform"].first().reset_index()
    out = out.merge(plat, on=keys, how="left")
    stop = ok["stopped_by"].astype(str) if "stopped_by" in ok else pd.Series("", index=ok.index)
    stop = ok.assign(stopped_by=stop.replace("nan", "")).groupby(keys)["stopped_by"].max().reset_index()
    out = out.merge(stop, on=keys, how="left")
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
        out[[*cols, "n_labelled_px", "platform", "stopped_by"]]
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


def regime(cv: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The map: per (dataset, budget) the best FM and best other row (on validation) and their paired test gap.

    Returns one row per (dataset, budget): ``best_fm``, ``best_other`` (chosen on the full data), ``fm_test`` and
    ``other_test`` (their means over the paired replicates, %), ``advantage`` (mean paired difference FM − other,
    points) with ``lo``/``hi`` (its t interval), ``p`` and ``p_holm`` (Holm over the map's cells), ``adv_min`` and
    ``adv_max`` (the range of the replicates' differences, for the figure), ``per_replicate`` (those differences),
    ``n`` (replicates paired), ``winner`` (:data:`FM`, :data:`OTHER`, :data:`LEVEL_`, :data:`NOT_SEPARATED` or
    ``"missing"``), ``interval`` (what the interval is), ``n_labelled_px`` (median over replicates), and
    ``fm_not_run`` / ``other_not_run``: the models of each group with full-label rows on the dataset but none at
    this budget (comma-separated; empty at ``all``), the candidates this cell's choice never saw; ``cpus``: where the
    two chosen rows' networks were trained on different CPUs, what each was (empty otherwise; their paired difference
    then holds the two CPUs' floating-point paths too); ``capped``: the chosen rows with a run stopped by its step
    cap in a paired replicate, and in how many (:func:`helpers.report.compare.capped_sides`; ``""`` if none), where
    ``winner`` is :data:`CAPPED` unless the capped side won anyway.
    """
    from helpers.report import stats

    if cv.empty:
        return pd.DataFrame()
    full = cv[cv["label_budget"] == labels.ALL]
    rows, effects, sides_per_cell = [], [], []  # per cell, which side a capped run sits on
    for (dataset, budget), cell in cv.groupby(["dataset", "label_budget"]):
        at_full = full[full["dataset"] == dataset]
        row = {
            "dataset": dataset,
            "label_budget": budget,
            "n_labelled_px": float(cell["n_labelled_px"].median()),
            **{
                f"{col}_not_run": ", ".join(
                    sorted(set(at_full.loc[at_full["group"] == group, "model"]) - set(cell["model"]))
                )
                for col, group in (("fm", FM), ("other", OTHER))
            },
        }
        fm_models = sorted(set(cell.loc[cell["group"] == FM, "model"]))
        other_models = sorted(set(cell.loc[cell["group"] == OTHER, "model"]))
        if not fm_models or not other_models:
            rows.append({**row, "best_fm": None, "best_other": None, "n": 0, "winner": "missing"})
            effects.append(None)
            sides_per_cell.append("")
            continue
        val = cell.pivot_table(index="seed", columns="model", values="val", aggfunc="first") / 100
        test = cell.pivot_table(index="seed", columns="model", values="test", aggfunc="first") / 100
        eff = stats.paired_effect(val, test, fm_models, other_models, n_boot=n_boot, seed=seed)
        pairs = eff.per_replicate
        seeds = list(pairs.index)
        effects.append(eff)
        sides, capped, _ = compare.capped_sides(cell, eff.a_model, eff.b_model, pairs.index)
        sides_per_cell.append(sides)
        rows.append(
            {
                **row,
                "best_fm": eff.a_model,
                "best_other": eff.b_model,
                "fm_test": float(100 * test.loc[seeds, eff.a_model].mean()) if seeds else math.nan,
                "other_test": float(100 * test.loc[seeds, eff.b_model].mean()) if seeds else math.nan,
                "advantage": 100 * eff.estimate,
                "lo": 100 * eff.lo,
                "hi": 100 * eff.hi,
                "p": eff.p,
                "adv_min": float(100 * pairs.min()) if len(pairs) else math.nan,
                "adv_max": float(100 * pairs.max()) if len(pairs) else math.nan,
                "per_replicate": ", ".join(f"{100 * v:+.1f}" for v in pairs),
                "n": int(eff.n_replicates),
                "interval": eff.interval_name,
                "cpus": compare.cross_cpu(cell, eff.a_model, eff.b_model),
                "capped": capped,
            }
        )
    out = pd.DataFrame(rows)
    tested = [i for i, e in enumerate(effects) if e is not None]
    p_holm = np.full(len(out), np.nan)
    if tested:
        p_holm[tested] = stats.holm([effects[i].p for i in tested])
    out["p_holm"] = p_holm
    decision = {stats.A_GT_B: FM, stats.B_GT_A: OTHER, stats.EQUIVALENT: LEVEL_}
    out["capped"] = out["capped"].fillna("") if "capped" in out else ""
    winners = []
    for i, e in enumerate(effects):
        if e is None:
            winners.append("missing")
            continue
        made = stats.decide(e, p_holm[i])
        winners.append(
            CAPPED if stats.rests_on_cap(made, sides_per_cell[i]) else decision.get(made, NOT_SEPARATED)
        )
    out["winner"] = winners
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
            interval = (
                f"[{r['lo']:+.1f}, {r['hi']:+.1f}], Holm p = {r['p_holm']:.3f}"
                if np.isfinite(r.get("lo", np.nan))
                else f"no interval ({r['n']} replicate{'s' if r['n'] != 1 else ''})"
            )
            return (
                f"{r['label_budget']} ({r['best_fm']} {r['fm_test']:.1f} vs {r['best_other']} {r['other_test']:.1f}; "
                f"paired difference {r['advantage']:+.1f} {interval}; replicates {r['per_replicate']}"
                + (
                    "; the two trained on different CPUs"
                    if isinstance(r.get("cpus"), str) and r["cpus"]
                    else ""
                )
                + ")"
            )

        # where no FM row won, the FM rows never tried there; where one did, the other rows it never met
        untried = _not_run(cells[cells["winner"] != FM], "fm", "FM rows") + _not_run(
            won, "other", "other rows"
        )
        lost = cells[cells["winner"] == OTHER]["label_budget"].tolist()
        verdicts_text = f"; the best other row wins at {', '.join(lost)}" if lost else ""
        level = cells[cells["winner"] == LEVEL_]["label_budget"].tolist()
        verdicts_text += f"; level (within the ±2-point margin) at {', '.join(level)}" if level else ""
        verdicts_text += _capped_clause(cells)
        if won.empty:
            best = cells.loc[cells["advantage"].idxmax()] if cells["advantage"].notna().any() else None
            closest = f"; closest: {fmt(best)}" if best is not None else ""
            lines.append(
                f"- **{name}**: no FM row beats the best other row at any budget{verdicts_text}{closest}{untried}."
            )
        else:
            lines.append(
                f"- **{name}**: the best FM row wins at "
                + "; ".join(fmt(r) for _, r in won.iterrows())
                + verdicts_text
                + untried
                + "."
            )
    return lines


def _capped_clause(cells: pd.DataFrame) -> str:
    """The clause naming the cells with a chosen row stopped by its step cap (empty: none).

    Such a row scored a lower bound; a cell whose decision it could have made reads :data:`CAPPED` and says so here,
    and a cell its side won anyway names it too, so no score that is a lower bound passes for a converged one.
    """
    if "capped" not in cells:
        return ""
    parts = [
        f"{r['label_budget']} ({r['capped']}{'; undecided' if r['winner'] == CAPPED else '; its side wins anyway'})"
        for _, r in cells.iterrows()
        if isinstance(r["capped"], str) and r["capped"]
    ]
    return f"; {compare.CAPPED_NOTE}, at " + ", ".join(parts) if parts else ""


def _not_run(cells: pd.DataFrame, group: str, what: str) -> str:
    """The clause naming the full-label rows a verdict's smaller-budget cells never compared (empty: none).

    A "no FM row wins" is only as wide as the FM rows tried at each budget, and an FM win only as strong as the other
    rows it was up against, so the line names, per budget, the full-label rows of that side missing there.
    """
    col = f"{group}_not_run"
    if col not in cells:
        return ""
    parts = [
        f"{r['label_budget']} ({r[col]})"
        for _, r in cells.iterrows()
        if r["label_budget"] != labels.ALL and isinstance(r[col], str) and r[col]
    ]
    return f"; {what} run at full labels only, not compared at " + ", ".join(parts) if parts else ""

"""Paper-ready tables from the results table: per dataset, side by side with the paper, and the findings.

Every table is written twice under ``<figures_dir>/tables/``: Markdown (for the README and notebooks) and LaTeX
with ``booktabs`` rules (for the paper), atomically and byte-stable (no clock, no random order), so regenerating
them from the same results changes nothing.

Numbers are percentages with one decimal: ``mean [lo, hi]`` is the mean over replicates (the ``seed`` column: a data
draw plus a model seed on simulated data, a model seed on real data) and its 95 % t-interval over replicates
(:mod:`helpers.report.stats`; not the percentile bootstrap, which with three replicates is their range); every caption
and column header says so, and a ``Replicates`` column says how many. One replicate is written
``mean (1 replicate)``: no interval. The best mean of each column is in bold (ties: all of them). Runs that produced
no numbers appear as ``not run`` with their reason in the caption. Verdict cells carry their own named interval
(:func:`helpers.report.stats.format_effect`).

The only hand-typed numbers of the project are the paper's own, in ``helpers/data/paper_reported.csv`` with
their source; tables always label them "reported by Xie et al. 2024" and our numbers "this study, <dataset>,
simulated/real".
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import results as _results
from helpers.report import compare, table_format, verdicts

PAPER_REPORTED = Path(__file__).resolve().parents[1] / "data" / "paper_reported.csv"
PAPER_COLUMNS = [
    "paper_task",
    "dataset",
    "simulated_analogue",
    "metric",
    "role",
    "model",
    "value_pct",
    "scope",
    "source",
    "note",
]
PAPER_CITATION = "reported by Xie et al. 2024"
METRIC_NAMES = {"miou_macro": "mIoU", "f1_macro": "F1", "oa": "OA", "iou_micro": "IoU (micro)"}
NOT_RUN = "not run"
#: What ``mean [lo, hi]`` means in every table of model scores (said in each caption).
INTERVAL_TEXT = "mean over replicates [95 % t-interval over replicates; not the range of the replicates]"


# ----------------------------------------------------------------------------------------------------------------
# summaries of runs and pretraining


def run_summary(
    rows: pd.DataFrame,
    metrics: Sequence[str] = ("miou_macro", "f1_macro", "oa"),
    costs: Sequence[str] = ("n", "n_params", "runtime_s"),
    interval: bool = True,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The test scores of one notebook's runs per (dataset, model), with what they cost: notebooks 02-04's summary.

    Scores are dataset-level (no per-class rows), the mean over replicates and, with ``interval``, the 95 %
    t-interval over replicates (``<metric> lo`` / ``<metric> hi``; :func:`helpers.report.compare.aggregate`). ``costs``
    are columns of the aggregate (``n`` replicates, ``n_params``, ``runtime_s``, ``peak_mem_mb``) or of the rows
    (``n_train_pixels``, ``fit_s``, ...: their mean over replicates). ``models`` orders the models (others dropped).
    """
    ok = rows[rows["status"] == "ok"]
    suffixes = ["", " lo", " hi"] if interval else [""]
    if ok.empty:  # a notebook run with label budgets only (its full-label block empty): nothing to summarise
        index = pd.MultiIndex.from_arrays([[], []], names=["dataset", "model"])
        return pd.DataFrame(columns=[*(f"{m}{s}" for m in metrics for s in suffixes), *costs], index=index)
    summary = compare.aggregate(ok, metrics=list(metrics), splits=["test"])
    summary = summary[summary["class"] == ""]
    stats = ["mean", "lo", "hi"] if interval else ["mean"]
    wide = summary.pivot_table(index=["dataset", "model"], columns="metric", values=stats)
    wide.columns = [m if stat == "mean" else f"{m} {stat}" for stat, m in wide.columns]
    wide = wide[[f"{m}{s}" for m in metrics for s in suffixes if f"{m}{s}" in wide]]
    from_summary = [c for c in costs if c in summary.columns]
    from_rows = [c for c in costs if c not in summary.columns]
    cost = summary.groupby(["dataset", "model"])[from_summary].first()
    if from_rows:  # run-level columns, repeated on every row of a run: one value per run, then the mean
        runs = ok.drop_duplicates(_results.RUN_COLUMNS)
        cost = cost.join(runs.groupby(["dataset", "model"])[from_rows].mean())
    out = wide.join(cost[list(costs)])
    return out.reindex(list(models), level="model") if models is not None else out


def pretraining_table(pre: pd.DataFrame) -> pd.DataFrame:
    """The in-study pretraining runs as a page table: what each cost, where it stopped, what the continuation moved.

    Args:
        pre: The pretraining table (``results/pretraining.csv``, :func:`helpers.runs.pretrain.record`).

    Returns:
        One row per run: pretext, chips read (corpus images and training chips; a multi-date chip is one), steps,
        CPU minutes, stop reason, selected step, best and smoothed probe (validation mIoU of the ridge probe, %),
        the continuation's end and its smoothed best, ``moved`` (points),
        ``plateau`` ("yes" when the continuation to twice the steps moved the smoothed probe by under a point;
        "not checked" before the check has run) and the CPU it ran on (one pretraining key run on two CPUs is two
        encoders, each feeding the fine-tunes of its CPU; :func:`helpers.runs.pretrain.record`).
    """
    out = pd.DataFrame(
        {
            "pretext": pre["pretext"],
            "chips": pre["chips"].astype(int),
            "steps": pre["steps"].astype(int),
            "CPU min": (pre["train_s"] / 60).round(1),
            "stopped by": pre["stopped_by"],
            "selected step": pre["best_step"].astype("Int64"),
            "best probe": (100 * pre["best_probe"]).round(1),
            "smoothed": (100 * pre["best_smoothed"]).round(1),
            "continued to": pre["continued_to"].astype("Int64"),
            "smoothed, continued": (100 * pre["best_smoothed_continued"]).round(1),
            "moved": (100 * pre["moved"]).round(1),
        }
    )
    out["plateau"] = np.where(
        pre["moved"].isna(), "not checked", np.where(100 * pre["moved"] < 1.0, "yes", "no")
    )
    out["CPU"] = [compare.cpu_label(p) for p in compare.platforms(pre)]
    return out.reset_index(drop=True)


#: The pretraining-compute curve's points: the fraction of the selected pretraining step each row starts from, and
#: the column of the pretraining table that holds its step (0: the random-init row; 1: the selected encoder).
COMPUTE_POINTS = ((0.0, None), (0.25, "quarter_step"), (0.5, "half_step"), (1.0, "best_step"))


def pretraining_compute(
    df: pd.DataFrame,
    compute: pd.DataFrame,
    pre: pd.DataFrame,
    curve: pd.DataFrame,
    *,
    arch: str = "prithvi_arch_small",
    metric: str = "miou_macro",
) -> pd.DataFrame:
    """What pretraining buys against its compute, per task, pretext and label budget: scores along the steps.

    Fine-tuned from the random-init encoder (fraction 0: the ``<arch>_random`` row), from the checkpoints at a
    quarter and half of the selected step (the ``<arch>_<pretext>_pt25`` / ``_pt50`` rows of ``compute``) and from
    the selected encoder (the ``<arch>_<pretext>`` row), all at the compute rows' seed (the first replicate) and at
    each label budget the compute rows ran at (every label, and the smallest budget where pretraining should matter
    most); the ridge probe of the same checkpoints on the task's probe draw beside them (none for a task without
    one: a real dataset; the probe never sees a budget).

    Args:
        df: The results table (the random-init and selected-encoder rows).
        compute: The pretraining-compute table (``results/pretraining_compute.csv``).
        pre: The pretraining table (``results/pretraining.csv``): each run's key, pretext and checkpoint steps.
        curve: The probe curves (``results/pretraining_probe.csv``).
        arch: The in-study architecture's row prefix.
        metric: Macro metric of the fine-tuned rows.

    Returns:
        Long: ``task``, ``pretext``, ``labels`` (the budget tag), ``fraction``, ``step``, ``model``, ``fine-tuned val``
        and ``fine-tuned test`` (%), ``probe`` (% on the probe draw); empty without compute rows.
    """
    compute = compare.scored(compute)
    if compute.empty or pre.empty:
        return pd.DataFrame()
    below = sorted(set(compute["label_budget"].dropna().astype(str)) - {"all", ""})
    at = {b: _results.at_budget(compute, b) for b in ["all", *below]}  # every label first, as the table reads
    parts = [_compute_points(df, rows, b, pre, curve, arch, metric) for b, rows in at.items() if len(rows)]
    return pd.concat(parts, ignore_index=True)


def _compute_points(df, compute, budget, pre, curve, arch, metric) -> pd.DataFrame:
    """:func:`pretraining_compute` at one label budget (``compute``: that budget's rows)."""
    # the checkpoints the compute rows started from: their own CPU's pretraining (one key, two CPUs: two encoders)
    if "platform" in pre and "platform" in compute:
        pre = pre[pre["platform"].isin(set(compute["platform"]))]
    seed = int(compute["seed"].min())
    rows = _results.at_budget(pd.concat([compare.scored(df), compute], ignore_index=True), budget)
    rows = rows[(rows["metric"] == metric) & (rows["class"] == "") & (rows["seed"] == seed)]
    score = rows.pivot_table(index=["dataset", "model"], columns="split", values="value", aggfunc="mean")
    if len(curve) and "platform" in curve and "platform" in pre:
        curve = curve[curve["platform"].isin(set(pre["platform"]))]
    probe = curve.set_index(["key", "task", "step"])["probe"] if len(curve) else pd.Series(dtype=float)
    out = []
    for _, run in pre.iterrows():
        models = {0.0: f"{arch}_random", 0.25: f"{arch}_{run['pretext']}_pt25"}
        models.update({0.5: f"{arch}_{run['pretext']}_pt50", 1.0: f"{arch}_{run['pretext']}"})
        if not compute["model"].isin(models.values()).any():
            continue  # this pretext has no compute rows at this budget
        for task in compare.ordered_datasets(compute["dataset"].unique()):
            for fraction, column in COMPUTE_POINTS:
                step = 0 if column is None else run.get(column)
                if step is None or pd.isna(step):
                    continue
                model = models[fraction]
                got = score.loc[(task, model)] if (task, model) in score.index else pd.Series(dtype=float)
                out.append(
                    {
                        "task": task,
                        "pretext": run["pretext"],
                        "labels": budget,
                        "fraction": fraction,
                        "step": int(step),
                        "model": model,
                        "fine-tuned val": 100 * got.get("val", np.nan),
                        "fine-tuned test": 100 * got.get("test", np.nan),
                        "probe": 100 * probe.get((run["key"], task, int(step)), np.nan),
                    }
                )
    return pd.DataFrame(out)


def _study_label(dataset: str, simulated: bool) -> str:
    return f"this study, {dataset}, {'simulated' if simulated else 'real'}"


# ----------------------------------------------------------------------------------------------------------------
# per-dataset tables


def dataset_table(
    df: pd.DataFrame,
    dataset: str,
    *,
    metrics: Sequence[str] = ("miou_macro", "f1_macro"),
    agg: pd.DataFrame | None = None,
    n_boot: int = compare.DEFAULT_N_BOOT,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """One dataset in the paper's shape: models (rows) × test metrics (mean [95 % t-interval over replicates], %).

    The family shown is the comparison family (:func:`helpers.report.compare.comparison_family`): transformers
    trained from scratch are not listed as foundation models.

    Returns:
        ``(table, bold, caption)``: the display table (family, model, pretraining, replicates, one column per metric),
        a same-shaped boolean frame marking the best mean per metric column, and the caption.
    """
    if agg is None:
        agg = compare.aggregate(df, metrics=list(metrics), splits=["test"], n_boot=n_boot, seed=seed)
    a = agg.loc[(agg["dataset"] == dataset) & (agg["split"] == "test") & (agg["class"] == "")]
    a = a.loc[a["metric"].isin(list(metrics))]
    nr = compare.not_run(df)
    nr = nr.loc[(nr["dataset"] == dataset) & ~nr["model"].isin(set(a["model"]))]
    runs = pd.concat([a[["model", "family", "pretraining"]], nr[["model", "family", "pretraining"]]])
    models = compare.ordered_models(runs.drop_duplicates("model"))
    info = runs.drop_duplicates("model").set_index("model")
    headers = [f"{METRIC_NAMES.get(m, m)} (%)" for m in metrics]
    rows, means = [], []
    cfam = compare.comparison_families(info)
    for m in models:
        row = {
            "Family": compare.COMPARISON_FAMILY_LABELS.get(cfam[m], cfam[m]),
            "Model": m,
            "Pretraining": info.loc[m, "pretraining"] or "none",
        }
        hit = a.loc[a["model"] == m]
        row["Replicates"] = str(int(hit["n"].max())) if not hit.empty else "0"
        mrow = []
        for metric, header in zip(metrics, headers, strict=True):
            h = hit.loc[hit["metric"] == metric]
            if h.empty:
                row[header] = NOT_RUN if m in set(nr["model"]) else "–"
                mrow.append(np.nan)
            else:
                r = h.iloc[0]
                row[header] = table_format.format_interval(r["mean"], r["lo"], r["hi"], int(r["n"]))
                mrow.append(float(r["mean"]))
        rows.append(row)
        means.append(mrow)
    table = pd.DataFrame(rows, columns=["Family", "Model", "Pretraining", "Replicates", *headers])
    bold = pd.DataFrame(False, index=table.index, columns=table.columns)
    if means:
        mat = np.array(means, dtype=float)
        for j, header in enumerate(headers):
            col = mat[:, j]
            if np.isfinite(col).any():
                bold[header] = np.round(col, 6) == np.round(np.nanmax(col), 6)
    simulated = bool(compare.scored(df).loc[lambda r: r["dataset"] == dataset, "simulated"].any())
    caption = (
        f"Test scores on {dataset} ({_study_label(dataset, simulated)}): {INTERVAL_TEXT}, in %; "
        f"{'replicate = data draw + model seed' if simulated else 'replicate = model seed on fixed data'}; "
        "best mean per column in bold."
    )
    if not nr.empty:
        reasons = "; ".join(
            f"{r.model}: {r.reason or 'no reason given'}" for r in nr.drop_duplicates("model").itertuples()
        )
        caption += f" Not run: {reasons}."
    return table, bold, caption


# ----------------------------------------------------------------------------------------------------------------
# side by side with the paper


def load_paper_reported(path: str | os.PathLike = PAPER_REPORTED) -> pd.DataFrame:
    """The paper's reported numbers with their source (the only hand-typed numbers of the project).

    Raises:
        ValueError: The file is missing a column, or a value is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"{path}: the paper's reported numbers are missing (expected a CSV with {PAPER_COLUMNS})"
        )
    table = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in PAPER_COLUMNS if c not in table]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {missing}; expected {PAPER_COLUMNS}")
    values = pd.to_numeric(table["value_pct"], errors="coerce")
    if values.isna().any():
        raise ValueError(f"{path}: value_pct must be numbers (percent); got {table['value_pct'].tolist()}")
    table["value_pct"] = values
    return table


def paper_comparison_table(
    df: pd.DataFrame,
    *,
    reported: pd.DataFrame | None = None,
    agg: pd.DataFrame | None = None,
    n_boot: int = compare.DEFAULT_N_BOOT,
    seed: int = 0,
) -> tuple[pd.DataFrame, str]:
    """The paper's reported numbers next to ours, for the three tasks the paper ran.

    For each paper task, one row "reported by Xie et al. 2024", one for the real dataset and one for its simulated
    analogue ("this study, <dataset>, real/simulated"). Our FM column is the best FM (a model starting from
    pretrained weights, :func:`helpers.report.compare.comparison_family`) chosen on validation; our "best other"
    column follows the paper's scope for that task (best classical or CNN model, or best classical model), also
    chosen on validation. The paper grouped ViT and SegFormer trained from scratch with its FMs; here they are in
    neither column, and the caption says so. A dataset absent from the results table is shown as such, never
    filled in.

    Returns:
        ``(table, caption)``.
    """
    reported = load_paper_reported() if reported is None else reported
    metrics = sorted(set(reported["metric"]))
    if agg is None:
        agg = compare.aggregate(df, metrics=metrics, n_boot=n_boot, seed=seed)
    sim = compare.scored(df).drop_duplicates("dataset").set_index("dataset")["simulated"].to_dict()
    rows = []
    for task in list(dict.fromkeys(reported["paper_task"])):
        rep = reported.loc[reported["paper_task"] == task]
        fm_row = rep.loc[rep["role"] == "fm"].iloc[0]
        other_row = rep.loc[rep["role"] == "other"].iloc[0]
        metric = str(fm_row["metric"])
        scope = str(other_row["scope"])
        rows.append(
            {
                "Task (paper)": task,
                "Metric": METRIC_NAMES.get(metric, metric),
                "Source": PAPER_CITATION,
                "FM": f"{fm_row['value_pct']:g} ({fm_row['model']})",
                "Best other": f"{other_row['value_pct']:g} ({other_row['model']})",
                "Other = best of": "classical" if scope == "classical" else "non-FM models",
            }
        )
        for dataset, kind in (
            (fm_row["dataset"], "real"),
            (fm_row["simulated_analogue"], "simulated analogue"),
        ):
            label = f"this study, {dataset}, {'simulated analogue' if kind != 'real' else 'real'}"
            base = {"Task (paper)": task, "Metric": METRIC_NAMES.get(metric, metric), "Source": label}
            base["Other = best of"] = "classical" if scope == "classical" else "classical + CNN"
            if dataset not in sim:
                rows.append({**base, "FM": "not in results", "Best other": "not in results"})
                continue
            a = agg.loc[(agg["dataset"] == dataset) & (agg["metric"] == metric) & (agg["class"] == "")]
            fm = compare.select_best(a, metric=metric, where=compare.comparison_families(a) == "fm")
            other_mask = (
                a["family"] == "classical" if scope == "classical" else a["family"].isin(["classical", "cnn"])
            )
            other = compare.select_best(
                a.assign(group="other"), metric=metric, by=("dataset", "group"), where=other_mask
            )

            def cell(sel: pd.DataFrame) -> str:
                if sel.empty or not sel.iloc[0]["model"]:
                    return "none selectable"
                r = sel.iloc[0]
                return (
                    f"{table_format.format_interval(r['mean'], r['lo'], r['hi'], int(r['n']))} ({r['model']})"
                )

            rows.append({**base, "FM": cell(fm), "Best other": cell(other)})
    table = pd.DataFrame(
        rows, columns=["Task (paper)", "Metric", "Source", "FM", "Best other", "Other = best of"]
    )
    caption = (
        f"Side by side: numbers {PAPER_CITATION} (arXiv 2404.11797; recovered from the abstract and summaries, "
        f"approximate; see helpers/data/paper_reported.csv) and this study's test scores ({INTERVAL_TEXT}, %, "
        "models chosen on validation). " + compare.PAPER_GROUPING_NOTE + " Transformers from scratch are in "
        "neither of this study's columns. Simulated analogues are generated data, not the paper's datasets; their "
        "numbers are not comparable in level, only in pattern."
    )
    return table, caption


# ----------------------------------------------------------------------------------------------------------------
# findings, not-run list


def findings_table(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings (:func:`helpers.report.verdicts.findings`) in display form, one row per verdict cell."""
    sim = findings["simulated"].astype(bool)
    padj = pd.to_numeric(findings["p_adjusted"], errors="coerce")
    return pd.DataFrame(
        {
            "Cell": findings["cell"].astype(str),
            "Dataset": [
                f"{d} ({'simulated' if s else 'real'})" for d, s in zip(findings["dataset"], sim, strict=True)
            ],
            "Setting": findings["setting"],
            "A vs B (expected)": [
                f"{c.split(', test ')[0]} ({e})"
                for c, e in zip(findings["comparison"], findings["expected"], strict=True)
            ],
            "Effect A − B (test, points)": findings["effect"].where(findings["effect"] != "", "–"),
            "p (Holm)": [f"{p:.3f}" if np.isfinite(p) else "–" for p in padj],
            "Decision": findings["decision"].where(findings["decision"] != "", "–"),
            "Verdict": findings["verdict"],
            "Evidence (test means, %)": findings["evidence"],
        }
    )


def findings_preamble(findings: pd.DataFrame, date: str) -> str:
    """The dated note above the findings table: the claims and the rules that decide a verdict."""
    from helpers.report import stats

    claims = "\n".join(f"{k}. {v}" for k, v in verdicts.CLAIMS.items())
    n_tested = int(pd.to_numeric(findings["p_adjusted"], errors="coerce").notna().sum())
    return (
        f"## Findings as of {date} (date of the newest result row)\n\n"
        f"The paper's claims (Xie et al. 2024, as recovered in STUDY.md §1):\n\n{claims}\n\n"
        "Rules: each cell compares the best model of group A with the best of group B, each chosen on mean "
        "validation mIoU (the choice redone in every bootstrap resample, so its uncertainty is in the interval), "
        "by the mean of their per-replicate test differences over the replicates both ran (paired). The effect is "
        "printed with its interval, a t-interval over replicates with a bootstrap standard error (per cell, not "
        "adjusted for the other cells: an interval clear of zero can still be inconclusive). A difference is "
        f"declared when its Holm-adjusted p-value (over the {n_tested} tested cells of this table) is below 0.05; "
        "otherwise the two are *equivalent* when the 90 % interval lies within "
        f"±{100 * stats.EQUIVALENCE_MARGIN:g} mIoU points (a margin fixed before the results were seen), else "
        "*undetermined*. A run stopped by its step cap rather than a plateau scores a lower bound: a cell whose "
        "decision it could have made (anything but its side winning anyway) is inconclusive, and its evidence names "
        "the run. 'FM' means a model that starts from pretrained weights; ViT, SegFormer and the FM "
        "architecture from random init are *transformers (from scratch)*, counted as deep models in 2a but not as "
        'FMs. Claims 1 and 2b accept equivalence ("as good as", "gap not obvious"); 2a and the aligned '
        "pretext of claim 3 need a win; the misaligned pretext must not beat random init. Setting 'spectral' / "
        "'texture' is the paper's reading of the task (or the simulator's knob: 0 spectral, > 0 texture); a cell "
        "outside its setting is not tested. Replicate: a data draw plus a model seed on simulated data, a model "
        "seed on real data (so real-data intervals cover seed variance only, unless test chips are resampled)."
    )


def regime_section(lines: Sequence[str]) -> str:
    """The regime map's findings as a Markdown section (empty without lines)."""
    if not lines:
        return ""
    from helpers.report import regime

    return (
        "\n\n### When does a foundation model win? The regime map (label budgets)\n\n"
        + regime.RULE
        + "\n\n"
        + "\n".join(lines)
    )


#: The rule above the scene protocol's lines (``findings.md`` and the README's results block).
SCENE_RULE = (
    "A scene read as a scene (README: Your own scene) runs under several split protocols, each its own dataset of "
    "the table: spatial blocks (the reference), random pixels (leaky), blocks with a guard, and blocks with the other "
    "splits hidden from the training input (the transductive part). Each variant against its reference, per model "
    "run on both, test overall accuracy paired within replicate (helpers.report.scenes); these datasets are outside "
    "the claims above."
)


def scene_section(lines: Sequence[str]) -> str:
    """The scene protocol's findings as a Markdown section (empty without lines)."""
    if not lines:
        return ""
    return "\n\n### One scene, several split protocols\n\n" + SCENE_RULE + "\n\n" + "\n".join(lines)


#: How each comparison family's settings were chosen, and what it normalises its input with (from the code's own
#: documentation: helpers.runs.classical, helpers.runs.train, helpers.runs.fm_finetuned, helpers.runs.fm_adapters).
FAMILY_PROTOCOL = {
    "classical": (
        "none (trees on raw reflectance and texture features)",
        "RF depth/leaf grid chosen on validation; LightGBM rounds by early stopping on validation, leaf size at "
        "most half the rarest class",
    ),
    "cnn": (
        "the dataset's own training statistics",
        "fixed architecture and AdamW settings; trained to a validation plateau (rate drops, then stop)",
    ),
    "transformer": (
        "ViT/SegFormer: the dataset's training statistics; Prithvi-arch: Prithvi's HLS statistics",
        "fixed settings; trained to a validation plateau",
    ),
    "fm": (
        "the encoder's own pretraining statistics",
        "published or in-study encoder; fine-tuned to a validation plateau, or a frozen encoder with a LightGBM "
        "(validation early stopping) or linear head",
    ),
}

_PRETRAIN_RE = re.compile(r"pretraining ([\d.]+) s, (\d+) steps")
_MONTHS_RE = re.compile(r"months (\[[^\]]*\]) \((.*?)\)(?:;|$)")


def _span_text(values: pd.Series, fmt: str = "{:.0f}") -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return "–"
    lo, med, hi = v.min(), v.median(), v.max()
    return fmt.format(med) if lo == hi else f"{fmt.format(med)} ({fmt.format(lo)}–{fmt.format(hi)})"


def _at_cap(runs: pd.DataFrame) -> str:
    """``"; 3 of 15 runs at the step cap, still improving"``: the runs a "trained to a validation plateau" excludes."""
    if "stopped_by" not in runs:
        return ""
    k = int((runs["stopped_by"].astype(str) == "cap").sum())
    return f"; {k} of {len(runs)} runs at the step cap, still improving" if k else ""


def family_inputs_table(df: pd.DataFrame) -> pd.DataFrame:
    """What each model saw, per row of the main comparison (full labels): the "what each family saw" table.

    Read from the rows themselves (their ``n_train_pixels``, ``steps``, ``n_train_chips``, ``weights`` and
    ``note``), never typed: labelled training pixels used, optimiser steps, pretraining (in-study: steps and seconds
    from the note, on the dataset's training chips; published: the weights), the location and date inputs an
    encoder was given, its input normalisation, its precision, and how its settings were chosen
    (:data:`FAMILY_PROTOCOL`). Medians over runs with the range over datasets and replicates in brackets; the steps
    also count the runs stopped by their step cap rather than a plateau, which the protocol's "trained to a validation
    plateau" does not describe.
    """
    rows = compare.scored(_results.full_labels(df))
    rows = rows[(rows["metric"] == "miou_macro") & (rows["class"] == "") & (rows["split"] == "test")]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(cfam=compare.comparison_families(rows))
    out = []
    for model, r in rows.groupby("model", sort=False):
        fam = str(r["cfam"].iloc[0])
        notes = r["note"].astype(str)
        pre = notes.str.extract(_PRETRAIN_RE).astype(float)
        pretraining = str(r["pretraining"].iloc[0])
        if pretraining == "published":
            pre_text = "published weights"
        elif pre[1].notna().any():
            chips = _span_text(r["n_train_chips"])
            pre_text = f"in study: {_span_text(pre[1])} steps, {_span_text(pre[0])} s on the dataset's " + (
                f"{chips} training chips" if chips != "–" else "training chips"
            )
        elif pretraining not in ("none", ""):
            pre_text = pretraining
        else:
            pre_text = "none"
        months = notes.str.extract(_MONTHS_RE)
        dates = (
            "; ".join(sorted({f"months {m} ({src})" for m, src in months.dropna().itertuples(index=False)}))
            if months[0].notna().any()
            else "none"
        )
        location = "chip centre" if notes.str.contains("location chip centre").any() else "none"
        if model.startswith("galileo"):
            location = "none (Galileo's location group is masked)"
        precision = (
            "bf16 autocast"
            if notes.str.contains("bf16").any()
            else "float32"
            if notes.str.contains("float32").any() or fam != "classical"
            else "float64 trees"
        )
        norm, chosen = FAMILY_PROTOCOL.get(fam, ("", ""))
        out.append(
            {
                "family": compare.COMPARISON_FAMILY_LABELS.get(fam, fam),
                "model": model,
                "labelled px used": _span_text(r["n_train_pixels"]),
                "steps": _span_text(r["steps"]) + _at_cap(r) if fam != "classical" else "–",
                "pretraining": pre_text,
                "dates": dates,
                "location": location if fam == "fm" else "none",
                "normalisation": norm,
                "precision": precision,
                "settings chosen by": chosen,
            }
        )
    table = pd.DataFrame(out)
    table["_k"] = [compare.model_sort_key(m) for m in table["model"]]
    return table.sort_values("_k").drop(columns="_k").reset_index(drop=True)


def not_run_table(df: pd.DataFrame) -> pd.DataFrame:
    """Runs without numbers and why, in display form."""
    nr = compare.not_run(df)
    return pd.DataFrame(
        {
            "Dataset": nr["dataset"],
            "Model": nr["model"],
            "Family": nr["family"],
            "Pretraining": nr["pretraining"],
            "Seed": [str(int(s)) if np.isfinite(s) else "" for s in nr["seed"]],
            "Reason": nr["reason"],
        }
    )


def write_all(
    df: pd.DataFrame,
    figures_dir: str | os.PathLike,
    *,
    datasets: Sequence[str] | None = None,
    n_boot: int = compare.DEFAULT_N_BOOT,
    seed: int = 0,
    findings: pd.DataFrame | None = None,
    regime_lines: Sequence[str] = (),
    scene_lines: Sequence[str] = (),
) -> dict[str, list[Path]]:
    """Write every table of notebook 05 under ``<figures_dir>/tables/``.

    Args:
        df: Results table.
        figures_dir: Figures folder (tables go to its ``tables`` sub-folder).
        datasets: Datasets with a per-dataset table (all scored datasets when ``None``), in canonical order.
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.
        findings: Precomputed :func:`helpers.report.verdicts.findings` (computed when ``None``).
        regime_lines: The regime map's findings, one line per dataset (:func:`helpers.report.regime.findings_lines`),
            written into ``findings.md`` above the claims table (none: no such section).
        scene_lines: The scene protocol's findings (:func:`helpers.report.scenes.findings_lines`), a section of
            ``findings.md`` after the regime map's (none: no such section).

    Returns:
        Table name -> the Markdown and LaTeX paths.
    """
    agg = compare.aggregate(df, metrics=["miou_macro", "f1_macro"], n_boot=n_boot, seed=seed)
    names = compare.ordered_datasets(
        datasets if datasets is not None else compare.scored(df)["dataset"].unique()
    )
    out = {}
    for dataset in names:
        table, bold, caption = dataset_table(df, dataset, agg=agg)
        if table.empty:
            continue
        out[f"results_{dataset}"] = table_format.write_table(
            f"results_{dataset}",
            table,
            figures_dir,
            bold=bold,
            caption=caption,
            align="lllr" + "r" * (table.shape[1] - 4),
        )
    paper, caption = paper_comparison_table(df, agg=agg)
    out["paper_comparison"] = table_format.write_table(
        "paper_comparison", paper, figures_dir, caption=caption, align="llllll"
    )
    f = verdicts.findings(df, agg=agg) if findings is None else findings
    out["findings"] = table_format.write_table(
        "findings",
        findings_table(f),
        figures_dir,
        caption=(
            "Whether each claim of the paper holds on each dataset here: effect size with its named interval, "
            "Holm-adjusted p, decision, verdict and evidence."
        ),
        align="lllp{0.14\\linewidth}p{0.2\\linewidth}rllp{0.22\\linewidth}",
        preamble=findings_preamble(f, verdicts.findings_date(df))
        + regime_section(regime_lines)
        + scene_section(scene_lines),
    )
    out["family_inputs"] = table_format.write_table(
        "family_inputs",
        family_inputs_table(df),
        figures_dir,
        caption=(
            "What each model saw (full-label runs, read from the rows): labelled training pixels used and optimiser "
            "steps (median, range over datasets and replicates), pretraining, the dates and location an encoder was "
            "given, input normalisation, precision, and how its settings were chosen."
        ),
        align="llllp{0.14\\linewidth}p{0.14\\linewidth}lp{0.12\\linewidth}lp{0.16\\linewidth}",
    )
    out["not_run"] = table_format.write_table(
        "not_run",
        not_run_table(df),
        figures_dir,
        caption="Runs that produced no numbers, and why.",
        align="llllll",
    )
    return out

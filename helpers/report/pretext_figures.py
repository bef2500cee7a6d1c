"""Claim 3 as figures: whether pretraining helps as far as its pretext aligns with the task (notebooks 04 and 05).

:func:`pretext_alignment_figure` draws each starting point of the same architecture (random init, the in-study
pretexts, published weights) per dataset; :func:`pretext_gain_figure` the gain of each pretext over random init on
the sweep, and :func:`pretext_gains` the same gains as a table per dataset and label budget (pretraining should pay
most where labels are few), drawn per budget by :func:`pretext_budget_figure`; :func:`write_claim3_at_budgets` writes
claim 3's verdict cells asked again at each smaller budget. Conventions as in :mod:`helpers.report.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from helpers.data import simulate
from helpers.report import compare, figure_parts, plotting, regime, table_format, tables, verdicts


def pretext_alignment_figure(
    df: pd.DataFrame,
    *,
    datasets: Sequence[str] | None = None,
    n_boot: int = compare.DEFAULT_N_BOOT,
    seed: int = 0,
) -> plt.Figure | None:
    """Fine-tuned test mIoU of the FM rows by pretraining (random init / MAE / spectral / published), per dataset.

    Dotted lines mark the best classical and best CNN model of the dataset (chosen on validation), so a reader
    sees whether any pretraining closes the gap.
    """
    agg = compare.aggregate(df, metrics=["miou_macro"], n_boot=n_boot, seed=seed)
    agg = agg.loc[agg["class"] == ""]
    fm = agg.loc[(agg["family"] == "fm") & (agg["split"] == "test")]
    names = [d for d in (datasets or compare.ordered_datasets(fm["dataset"])) if d in set(fm["dataset"])]
    if not names:
        return None
    best = compare.select_best(agg)
    sim = figure_parts.simulated_map(df)
    seeds = figure_parts.seed_values(df, "miou_macro")
    colors = dict(zip(compare.PRETRAINING_ORDER, sns.color_palette("colorblind", 8)[3:7], strict=True))
    fam_pal = plotting.family_palette()
    ncols = min(3, len(names))  # page-sized: datasets wrap into rows of three panels
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=plotting.page_size("full", 2.5 * nrows + 0.6),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    used = []
    for ax, dataset in zip(axes.flat, names, strict=False):
        d = fm.loc[fm["dataset"] == dataset].copy()
        order = {p: i for i, p in enumerate(compare.PRETRAINING_ORDER)}
        d["_k"] = [
            (order.get(p, len(order)), compare.model_sort_key(m, "fm"))
            for p, m in zip(d["pretraining"], d["model"], strict=True)
        ]
        d = d.sort_values("_k", kind="mergesort")
        for x, row in enumerate(d.itertuples(index=False)):
            color = colors.get(row.pretraining, "grey")
            used.append(row.pretraining)
            s = seeds.loc[(seeds["dataset"] == dataset) & (seeds["model"] == row.model)]
            ax.scatter(
                x + figure_parts.seed_jitter(s["seed"].tolist()),
                100 * s["value"].to_numpy(),
                s=7,
                facecolors="none",
                edgecolors=color,
                linewidths=0.6,
                zorder=2,
            )
            figure_parts.errorbar(ax, x, pd.Series(row._asdict()), color)
        for fam in ("classical", "cnn"):
            hit = best.loc[(best["dataset"] == dataset) & (best["family"] == fam)]
            if not hit.empty and np.isfinite(hit.iloc[0]["mean"]):
                ax.axhline(100 * hit.iloc[0]["mean"], color=fam_pal[fam], ls=":", lw=1.0)
        ax.set_xticks(range(len(d)))
        ax.set_xticklabels(d["model"].tolist(), rotation=60, ha="right", rotation_mode="anchor", fontsize=6)
        ax.set_xlim(-0.7, len(d) - 0.3)
        ax.set_title(figure_parts.label(dataset, sim))
    for ax in axes[:, 0]:
        ax.set_ylabel(f"fine-tuned test {figure_parts.METRIC_LABELS['miou_macro']}")
    handles = [
        Line2D([], [], marker="o", ls="", color=colors[p], label=figure_parts.PRETRAINING_LABELS[p])
        for p in compare.PRETRAINING_ORDER
        if p in set(used)
    ]
    handles += [
        Line2D([], [], ls=":", color=fam_pal[f], label=f"best {compare.FAMILY_LABELS[f]} (val-selected)")
        for f in ("classical", "cnn")
    ]
    fig.legend(handles=handles, loc="outside upper center", ncol=3, frameon=False, title=figure_parts.CI_TEXT)
    return fig


def pretext_gain_figure(df: pd.DataFrame) -> plt.Figure | None:
    """What each pretraining buys over random init of the same network, against the texture knob (claim 3).

    Every fine-tuned FM row with a pretraining (in-study MAE or spectral, published weights) is paired with the row
    of the same architecture from random init (:func:`helpers.report.verdicts.architecture`, as claim 3's cells
    pair them); per knob of the SIMULATED sweep, its test ``miou_macro`` minus the twin's, within replicate (same
    data draw and seed). The line joins the means and the dots are the replicates. Claim 3 expects the MAE gain to
    grow with the knob (spatial context) and the spectral gain to shrink.

    Returns:
        A full-page-width figure, or ``None`` when no pair has rows on the sweep.
    """
    vals = figure_parts.seed_values(df, "miou_macro")
    sweep = compare.texture_datasets(vals["dataset"].unique())
    vals = vals[vals["dataset"].isin(sweep) & (vals["family"] == "fm")]
    knob = {d: simulate.parse_name(d)[1] for d in sweep}
    pairs = [(m, r, _pair_label(m, p)) for m, r, p in _random_init_pairs(vals)]
    if not pairs:
        return None
    fig, ax = plt.subplots(figsize=plotting.page_size("full", 3.0))
    for (row, ref, label), colour in zip(pairs, sns.color_palette("colorblind", len(pairs)), strict=True):
        a = vals[vals["model"] == row].set_index(["dataset", "seed"])["value"]
        b = vals[vals["model"] == ref].set_index(["dataset", "seed"])["value"]
        g = (a - b).dropna().reset_index()
        g["knob"] = g["dataset"].map(knob)
        mean = g.groupby("knob")["value"].mean().sort_index()
        ax.plot(mean.index, 100 * mean.values, "-o", color=colour, ms=4, lw=1.2, label=label)
        ax.plot(g["knob"], 100 * g["value"], ".", color=colour, ms=4, alpha=0.6)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel(
        "texture knob (simulated sweep: 0 spectra decide, 1 only spatial pattern separates class pairs)"
    )
    ax.set_ylabel("test mIoU gain over random init (points)")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(
        "Claim 3 on the sweep: pretrained minus random init of the same network, paired by replicate"
    )
    return fig


def _random_init_pairs(vals: pd.DataFrame) -> list[tuple[str, str, str]]:
    """``(pretrained model, its random-init twin, pretraining)``: FM rows paired as claim 3's cells pair them.

    A twin is the row of the same architecture (:func:`helpers.report.verdicts.architecture`) with no pretraining.
    """
    info = vals.drop_duplicates("model").set_index("model")["pretraining"].fillna("none")
    arch = {m: verdicts.architecture(m) for m in info.index}
    return [
        (m, r, str(p))
        for m, p in info.items()
        if p != "none"
        for r in info.index
        if info[r] == "none" and arch[r] == arch[m] and r != m
    ]


def _pair_label(model: str, pretraining: str) -> str:
    return f"{figure_parts.PRETRAINING_LABELS.get(pretraining, pretraining)} ({verdicts.architecture(model)})"


def pretext_gains(df: pd.DataFrame) -> pd.DataFrame:
    """What each pretraining buys over random init of the same network, per dataset and label budget (points).

    Pretraining is supposed to matter most where labels are few, so the gain of every pretrained FM row over its
    random-init twin (:func:`_random_init_pairs`) is shown at each label budget the pretrained row ran: test
    ``miou_macro`` minus the twin's, paired within replicate (same data draw, seed and labels), as the mean and the
    lowest and highest replicate (a range of a few values, not an interval). Where the twin did not run at that
    budget the row says so (``n_replicates`` 0) instead of comparing across budgets, and a pair whose two sides were
    trained on different CPUs says that (``cross_cpu``, :func:`helpers.report.compare.cross_cpu`).

    Args:
        df: Results table as :func:`helpers.results.read` returns it (every label budget).

    Returns:
        One row per ``(dataset, label_budget, model)``: ``reference`` (the twin), ``pretraining``,
        ``n_replicates`` (paired), ``gain_mean``, ``gain_min``, ``gain_max`` (points), ``cross_cpu`` (the two sides'
        networks were trained on different CPUs) and ``note``; empty when the table holds no pair.
    """
    # as helpers.results.read gives it: every row has its label_budget ("all" at full labels)
    rows = compare.scored(df)
    rows = rows.loc[
        (rows["metric"] == "miou_macro")
        & (rows["split"] == "test")
        & (rows["class"] == "")
        & (rows["family"] == "fm")
    ]
    cols = ["dataset", "label_budget", "model", "reference", "pretraining", "n_replicates", "gain_mean", "gain_min",
            "gain_max", "cross_cpu", "note"]  # fmt: skip
    out = []
    for model, ref, pretraining in _random_init_pairs(rows):
        mine = rows[rows["model"] == model].set_index(["dataset", "label_budget", "seed"])["value"]
        twin = rows[rows["model"] == ref].set_index(["dataset", "label_budget", "seed"])["value"]
        for (dataset, budget), a in mine.groupby(level=["dataset", "label_budget"]):
            gain = 100 * (a - twin.reindex(a.index)).dropna()
            note = "" if len(gain) else f"{ref} not run at this budget"
            cell = rows[(rows["dataset"] == dataset) & (rows["label_budget"] == budget)]
            crossed = bool(len(gain)) and bool(compare.cross_cpu(cell, model, ref))
            if crossed:
                note = "trained on different CPUs (path noise in the difference; the findings' evidence names them)"
            stats = (gain.mean(), gain.min(), gain.max()) if len(gain) else (np.nan,) * 3
            out.append((dataset, budget, model, ref, pretraining, len(gain), *stats, crossed, note))
    if not out:
        return pd.DataFrame(columns=cols)
    table = pd.DataFrame(out, columns=cols)
    key = table.apply(
        lambda r: (
            compare.dataset_sort_key(r["dataset"]),
            regime.budget_order(r["label_budget"]),
            r["model"],
        ),
        axis=1,
    )
    return table.loc[key.sort_values().index].reset_index(drop=True)


def write_claim3_at_budgets(
    df: pd.DataFrame, figures_dir: str | Path, **kw
) -> dict[str, tuple[pd.DataFrame, list[Path]]]:
    """Write :func:`helpers.report.verdicts.claim3_at_budgets` as ``tables/findings_<budget>.md`` and ``.tex``.

    Returns ``{budget: (findings, paths)}``.

    The rule above each table says what differs from ``findings.md``: only claim 3, only that budget's runs, and
    its own Holm family.
    """
    out = {}
    for budget, found in verdicts.claim3_at_budgets(df, **kw).items():
        n_tested = int(pd.to_numeric(found["p_adjusted"], errors="coerce").notna().sum())
        preamble = (
            f"## Claim 3 at label budget {budget}\n\n{verdicts.CLAIMS[3]}.\n\n"
            f"The cells, candidates and rule of findings.md (its preamble), asked on the runs at {budget} only "
            "(a budget thins the training labels only; validation and test stay whole), where pretraining is "
            "supposed to pay most. A difference is declared when its Holm-adjusted p-value "
            f"(over the {n_tested} tested cells of this table, a family of its own) is below 0.05. SIMULATED data "
            "except Indian Pines."
        )
        paths = table_format.write_table(
            f"findings_{budget}",
            tables.findings_table(found),
            figures_dir,
            caption=f"Claim 3 at label budget {budget}: effect with its named interval, Holm p, verdict, evidence.",
            align="lllp{0.14\\linewidth}p{0.2\\linewidth}rllp{0.22\\linewidth}",
            preamble=preamble,
        )
        out[budget] = (found, paths)
    return out


def pretext_budget_figure(gains: pd.DataFrame) -> plt.Figure | None:
    """Does pretraining pay more where labels are few? Each pretraining's gain over random init, per label budget.

    One panel per pretraining pair (in-study MAE and spectral pretexts, published weights; each against random init of
    its own network), one column of markers per dataset (main datasets, then the SIMULATED sweep by knob), one marker
    per label budget: the mean paired gain (:func:`pretext_gains`) with a bar over the lowest and highest replicate (a
    range of a few values, not an interval). Pretraining is supposed to matter most with few labels, so the smaller
    budget's marker should sit above the full-label one if it does. A pair whose sides were trained on different
    CPUs is drawn hollow (its difference holds the two CPUs' floating-point paths too).

    Args:
        gains: :func:`pretext_gains` of the results table (every label budget).

    Returns:
        A full-page-width figure, or ``None`` when no pair ran at two budgets.
    """
    g = gains.dropna(subset=["gain_mean"])
    pairs = [p for p, part in g.groupby("pretraining", sort=False) if part["label_budget"].nunique() > 1]
    if not pairs:
        return None
    order = [p for p in figure_parts.PRETRAINING_LABELS if p in pairs] + sorted(
        set(pairs) - set(figure_parts.PRETRAINING_LABELS)
    )
    names = compare.ordered_datasets(g.loc[g["pretraining"].isin(order), "dataset"].unique())
    budgets = sorted(g["label_budget"].unique(), key=regime.budget_order)
    colours = dict(zip(budgets, sns.color_palette("colorblind", len(budgets)), strict=True))
    offsets = dict(zip(budgets, np.linspace(-0.15, 0.15, len(budgets)), strict=True))
    fig, axes = plt.subplots(
        len(order),
        1,
        figsize=plotting.page_size("full", 1.4 + 1.6 * len(order)),
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, pretraining in zip(axes[:, 0], order, strict=True):
        part = g[g["pretraining"] == pretraining]
        for r in part.itertuples(index=False):
            x = names.index(r.dataset) + offsets[r.label_budget]
            c = colours[r.label_budget]
            ax.plot([x, x], [r.gain_min, r.gain_max], color=c, lw=1.0)
            face = "none" if r.cross_cpu else c
            ax.plot([x], [r.gain_mean], "o", ms=4, color=c, markerfacecolor=face)
        ax.axhline(0.0, color="grey", lw=0.8)
        label = figure_parts.PRETRAINING_LABELS.get(pretraining, pretraining)
        arch = verdicts.architecture(part["model"].iloc[0])
        ax.set_title(f"{label} minus random init, both {arch}", fontsize=8)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel("test mIoU gain (points)", fontsize=7)
    labels = [plotting.dataset_label(d) for d in names]
    axes[-1, 0].set_xticks(range(len(names)), labels, fontsize=7, rotation=20, ha="right")
    handles = [Line2D([], [], marker="o", color=colours[b], lw=1.0, label=b) for b in budgets]
    handles.append(
        Line2D(
            [], [], marker="o", color="grey", markerfacecolor="none", lw=0, label="sides on different CPUs"
        )
    )
    fig.legend(
        handles=handles,
        loc="outside upper center",
        ncol=len(handles),
        frameon=False,
        fontsize=7,
        title="label budget: mean paired gain, bar from lowest to highest replicate",
        title_fontsize=7,
    )
    return fig

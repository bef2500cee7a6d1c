"""The study's answers as figures: who wins, by how much, at what cost, and the verdicts (notebooks 02-05).

Each ``*_figure`` function takes the tidy results DataFrame (:func:`helpers.results.read`) and returns a
matplotlib figure (or ``None`` when the table holds nothing it could draw); :func:`draw_all` draws the results
figures in a fixed order and saves each with :func:`helpers.report.plotting.save_figure` (PDF with TrueType fonts +
300-dpi PNG). Here: the main comparison, per-class scores, cost and the verdicts' paired effects. The other figures
live beside this module, grouped by the question they answer: ``texture_figures`` (claim 2: where texture decides),
``pretext_figures`` (claim 3: what pretraining buys), ``regime_figures`` (the label budget and the scene protocol),
``data_figures`` (what the data look like), ``feature_figures`` (what texture features buy), ``map_figures`` (what
the models predict on the same chips) and ``training_figures`` (whether the runs reached a plateau); the pieces they
share (labels, markers, the interval marker, captions) are :mod:`helpers.report.figure_parts`.

Conventions shared by all figures, so a reader can compare them:

* scores are test-split values in percent; means over replicates with their 95 % t-interval over replicates
  (:func:`helpers.report.compare.aggregate`; a replicate is the ``seed`` column: a data draw plus a model seed on
  simulated data), individual replicates as small points; a single replicate has no interval and none is drawn; every
  legend or caption names the interval (:data:`helpers.report.figure_parts.CI_TEXT`);
* verdicts are drawn as paired effects with their own interval and every replicate's paired difference
  (:func:`verdict_effects_figure`);
* colours are families (:func:`helpers.report.plotting.family_palette`), the same everywhere;
* datasets are titled with :func:`helpers.report.plotting.dataset_label`, so simulated data always says so;
* models, datasets and categories are drawn in the canonical order of :mod:`helpers.report.compare` and seed jitter is
  fixed, so the same table gives byte-identical files;
* a model absent from the table is absent from the figure; a ``not_run`` row is never drawn as a number, it is
  listed in the figure's caption (:func:`helpers.report.figure_parts.not_run_caption`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

from helpers.report import (
    compare,
    figure_parts,
    plotting,
    pretext_figures,
    texture_figures,
    verdicts,
)


@dataclass
class FigureResult:
    """A saved figure: its files and the caption text that goes with it (models not run included)."""

    name: str
    paths: list[Path] = field(default_factory=list)
    caption: str = ""


# ----------------------------------------------------------------------------------------------------------------
# helpers


# ----------------------------------------------------------------------------------------------------------------
# 1 main comparison


def main_comparison_figure(
    df: pd.DataFrame,
    *,
    datasets: Sequence[str] | None = None,
    metrics: Sequence[str] = ("miou_macro", "f1_macro"),
    n_boot: int = compare.DEFAULT_N_BOOT,
    seed: int = 0,
) -> plt.Figure | None:
    """Every model's test score per dataset: one row of panels per dataset, one column per metric.

    Models are listed down the y axis in the study's order, grouped by family (gaps, family colour), so twenty
    model names stay readable at print size; the mean over replicates has its t-interval over replicates as whiskers and the
    seeds as open circles. Each panel has its own score axis (datasets differ by tens of points; the models of one
    dataset are what is compared). Page-sized: 7.2 in wide, ~2 in per dataset.
    """
    names = figure_parts.main_datasets(df, datasets)
    if not names:
        return None
    agg = compare.aggregate(df, metrics=list(metrics), splits=["test"], n_boot=n_boot, seed=seed)
    agg = agg.loc[agg["class"] == ""]
    seeds = pd.concat([figure_parts.seed_values(df, m) for m in metrics])
    sim = figure_parts.simulated_map(df)
    pal = plotting.family_palette()
    heights = [0.5 + 0.1 * agg.loc[agg["dataset"] == d, "model"].nunique() for d in names]
    fig, axes = plt.subplots(
        len(names),
        len(metrics),
        figsize=plotting.page_size("full", sum(heights) + 0.6),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
        layout="constrained",
    )
    for r, dataset in enumerate(names):
        d = agg.loc[agg["dataset"] == dataset]
        models = compare.ordered_models(d)
        fam = d.drop_duplicates("model").set_index("model")["family"]
        ys = figure_parts.family_positions(models, fam)
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            for m in models:
                hit = d.loc[(d["model"] == m) & (d["metric"] == metric)]
                if hit.empty:
                    continue
                color = pal.get(fam[m], "grey")
                sv = seeds.loc[
                    (seeds["dataset"] == dataset) & (seeds["model"] == m) & (seeds["metric"] == metric)
                ]
                ax.scatter(
                    100 * sv["value"].to_numpy(),
                    ys[m] + figure_parts.seed_jitter(sv["seed"].tolist()),
                    s=6,
                    facecolors="none",
                    edgecolors=color,
                    linewidths=0.5,
                    zorder=2,
                )
                figure_parts.xerrorbar(ax, ys[m], hit.iloc[0], color)
            ax.set_yticks([ys[m] for m in models])
            ax.set_yticklabels(models if c == 0 else [])
            ax.set_ylim(max(ys.values(), default=0) + 0.7, -0.7)
            ax.tick_params(axis="y", labelsize=6)
            if r == 0:
                ax.set_title(f"test {figure_parts.METRIC_LABELS.get(metric, metric)}", loc="right")
            if r == len(names) - 1:
                ax.set_xlabel(f"test {figure_parts.METRIC_LABELS.get(metric, metric)}")
        axes[r, 0].annotate(
            figure_parts.label(dataset, sim),
            xy=(0, 1),
            xycoords="axes fraction",
            xytext=(0, 2),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize=7,
            fontweight="bold",
        )
    fig.legend(
        handles=figure_parts.family_handles(agg["family"]),
        loc="outside lower center",
        ncol=3,
        frameon=False,
        title=figure_parts.CI_TEXT,
    )
    return fig


# ----------------------------------------------------------------------------------------------------------------
# 2 texture answer


# ----------------------------------------------------------------------------------------------------------------
# 3 pretext alignment


# ----------------------------------------------------------------------------------------------------------------
# 4 cost


def cost_figure(
    df: pd.DataFrame,
    *,
    datasets: Sequence[str] | None = None,
    n_boot: int = compare.DEFAULT_N_BOOT,
    seed: int = 0,
) -> plt.Figure | None:
    """Test mIoU against run time and against parameter count (log x axes), one point per (dataset, model).

    Colour is the family, marker the dataset. Classical models have no parameter count (``n_params`` empty), so
    they appear only in the run-time panel.
    """
    names = figure_parts.main_datasets(df, datasets)
    agg = compare.aggregate(df, metrics=["miou_macro"], splits=["test"], n_boot=n_boot, seed=seed)
    agg = agg.loc[(agg["class"] == "") & agg["dataset"].isin(names)]
    if agg.empty:
        return None
    pal = plotting.family_palette()
    sim = figure_parts.simulated_map(df)
    markers = {d: figure_parts.MARKERS[i % len(figure_parts.MARKERS)] for i, d in enumerate(names)}
    fig, axes = plt.subplots(1, 2, figsize=plotting.page_size("full", 3.3), sharey=True, layout="constrained")
    for ax, col, xlabel in (
        (axes[0], "runtime_s", "run time per run (s, log)"),
        (axes[1], "n_params", "parameters (log)"),
    ):
        d = agg.loc[np.isfinite(pd.to_numeric(agg[col], errors="coerce")) & (agg[col] > 0)]
        for dataset in names:
            for fam in compare.FAMILY_ORDER:
                p = d.loc[(d["dataset"] == dataset) & (d["family"] == fam)]
                if p.empty:
                    continue
                ax.scatter(
                    p[col], 100 * p["mean"], marker=markers[dataset], color=pal[fam], s=18, alpha=0.85, lw=0.3
                )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(EngFormatter(places=0, sep=""))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs="auto"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel(f"test {figure_parts.METRIC_LABELS['miou_macro']}")
    handles = figure_parts.family_handles(agg["family"]) + [
        Line2D([], [], marker=markers[d], ls="", color="grey", label=figure_parts.label(d, sim))
        for d in names
        if d in set(agg["dataset"])
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=4,
        frameon=False,
        title="mean over seeds; one point per (dataset, model)",
    )
    return fig


# ----------------------------------------------------------------------------------------------------------------
# 5 per-class heatmap


def per_class_heatmap_figure(
    df: pd.DataFrame,
    *,
    datasets: Sequence[str] | None = None,
    metric: str = "iou",
    title: str = "",
) -> plt.Figure | None:
    """Mean test IoU per class (columns) and model (rows), one panel per dataset, one shared colour scale.

    Page-sized: two datasets per row of panels; one dataset with few classes takes one column (3.5 in). Notebooks
    02-04 draw it for one dataset and their own families, notebook 05 for every main dataset and model.
    """
    rows = compare.scored(df)
    rows = rows.loc[(rows["metric"] == metric) & (rows["split"] == "test") & (rows["class"] != "")]
    names = [d for d in (datasets or compare.ordered_datasets(rows["dataset"])) if d in set(rows["dataset"])]
    if not names:
        return None
    sim = figure_parts.simulated_map(df)
    means = (
        rows.groupby(["dataset", "model", "family", "pretraining", "class"], sort=False)["value"]
        .mean()
        .reset_index()
    )
    tables = []
    for dataset in names:
        d = means.loc[means["dataset"] == dataset]
        models = compare.ordered_models(d)
        classes = list(
            dict.fromkeys(rows.loc[rows["dataset"] == dataset, "class"])
        )  # the table's class order
        tables.append(
            d.pivot(index="model", columns="class", values="value").reindex(index=models, columns=classes)
        )
    # page-sized: two datasets per row of panels, each row as tall as its longer model list
    ncols = min(2, len(names))
    nrows = -(-len(names) // ncols)
    heights = [
        0.4 + 0.14 * max(t.shape[0] for t in tables[r * ncols : (r + 1) * ncols]) for r in range(nrows)
    ]
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=plotting.page_size(
            "column" if ncols == 1 and tables[0].shape[1] <= 6 else "full", sum(heights) + 1.3 * nrows + 0.6
        ),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
        layout="constrained",
    )
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    image = None
    for ax, dataset, t in zip(axes.flat, names, tables, strict=False):
        values = 100 * t.to_numpy(dtype=float)
        image = ax.imshow(
            np.ma.masked_invalid(values),
            cmap="viridis",
            vmin=0,
            vmax=100,
            aspect="auto",
            interpolation="nearest",
        )
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v) and t.shape[1] <= 16:  # wider tables: the colour scale alone
                ax.text(
                    j,
                    i,
                    f"{v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=plotting.MIN_FONT_PT,
                    color="white" if v < 60 else "black",
                )
        ax.set_xticks(range(t.shape[1]))
        ax.set_xticklabels(t.columns, rotation=60, ha="right", rotation_mode="anchor", fontsize=6)
        ax.set_yticks(range(t.shape[0]))
        ax.set_yticklabels(t.index, fontsize=6)
        ax.grid(False)
        ax.set_title(figure_parts.label(dataset, sim))
    if title:
        fig.suptitle(title)
    cbar = fig.colorbar(image, ax=list(axes.flat), location="bottom", shrink=0.6, aspect=40)
    cbar.set_label(f"test {figure_parts.METRIC_LABELS.get(metric, metric)}, mean over seeds")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# all figures


FIGURE_NAMES = {
    "main_comparison": "05_main_comparison",
    "texture_answer": "05_texture_answer",
    "pretext_alignment": "05_pretext_alignment",
    "pretext_gain": "05_pretext_gain",
    "cost": "05_cost",
    "per_class_iou": "05_per_class_iou",
    "verdict_effects": "05_verdict_effects",
}

VERDICT_COLORS = {
    verdicts.HOLDS: sns.color_palette("colorblind", 8)[2],
    verdicts.FAILS: sns.color_palette("colorblind", 8)[3],
    verdicts.INCONCLUSIVE: (0.45, 0.45, 0.45),
}


def verdict_effects_figure(findings: pd.DataFrame) -> plt.Figure | None:
    """Every tested verdict cell as a paired effect A − B: estimate, interval, and each replicate's difference.

    One row per tested cell (:func:`helpers.report.verdicts.findings`, rows with a Holm-adjusted p), grouped by
    cell; the whisker is the cell's own interval (named in the legend: a t-interval over replicates with a
    bootstrap SE, the per-family selection redone in each resample), open circles are the individual replicates'
    paired differences, and the grey band is the equivalence margin. Colour is the verdict.
    """
    from helpers.report import stats

    f = findings.loc[pd.to_numeric(findings["p_adjusted"], errors="coerce").notna()]
    f = f.loc[np.isfinite(pd.to_numeric(f["estimate"], errors="coerce").to_numpy(dtype=float))]
    if f.empty:
        return None
    n = len(f)
    fig, ax = plt.subplots(figsize=plotting.page_size("full", 1.2 + 0.17 * n), layout="constrained")
    margin = 100 * stats.EQUIVALENCE_MARGIN
    ax.axvspan(-margin, margin, color="0.9", zorder=0, lw=0)
    ax.axvline(0, color="black", lw=0.8, zorder=1)
    labels = []
    for y, r in enumerate(f.itertuples(index=False)):
        color = VERDICT_COLORS.get(r.verdict, "grey")
        per = 100 * np.asarray(r.per_replicate, dtype=float)
        ax.scatter(
            per, np.full(per.size, y) + figure_parts.seed_jitter(list(per)) * 0.8, s=8, facecolors="none",
            edgecolors=color, linewidths=0.6, zorder=2,
        )  # fmt: skip
        figure_parts.xerrorbar(ax, y, pd.Series({"mean": r.estimate, "lo": r.lo, "hi": r.hi}), color)
        labels.append(
            f"{r.cell} · {plotting.dataset_label(r.dataset, bool(r.simulated))}: {r.model_a} − {r.model_b}"
        )
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels, fontsize=6)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("paired test difference A − B (mIoU points)")
    handles = [Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in VERDICT_COLORS.items()]
    handles.append(Line2D([], [], color="0.85", lw=6, label=f"equivalence margin ±{margin:g} points"))
    level = 100 * compare.CI_LEVEL
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=4,
        frameon=False,
        title=(
            f"estimate ± {level:g} % t-interval over replicates (bootstrap SE, selection redone in each resample);"
            "\nopen circles: each replicate's paired difference"
        ),
    )
    return fig


def _pretraining_cost_note(pre: pd.DataFrame | None) -> str:
    """The caption sentence on the in-study pretraining's cost (shared by every in-study row, so in no run time)."""
    if pre is None or pre.empty:
        return ""
    plats = compare.platforms(pre)
    cpu = compare.cpu_names(plats.unique())
    runs = ", ".join(
        f"{r.pretext} {r.train_s / 60:.1f} min" + (f" on {cpu[p]}" if cpu[p] else "")
        for r, p in zip(pre.itertuples(), plats, strict=True)
    )
    checks = pre["continuation_s"].fillna(0).sum() / 60
    return (
        f" In-study rows' run time leaves out their pretraining, done once and shared by every dataset ({runs} of "
        f"CPU; continuation checks {checks:.1f} min more; results/pretraining.csv)."
    )


def draw_all(
    df: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    datasets: Sequence[str] | None = None,
    bayes_limits: Mapping[float, float] | None = None,
    n_boot: int = compare.DEFAULT_N_BOOT,
    seed: int = 0,
    pretraining: pd.DataFrame | None = None,
) -> dict[str, FigureResult]:
    """Draw and save every figure of notebook 05 under ``out_dir`` (PDF + PNG), in a fixed order.

    Args:
        df: Results table.
        out_dir: Figures folder.
        datasets: Datasets of the per-dataset figures, in display order (the texture sweep is always drawn from
            every ``sim-texture-*`` dataset in the table); ``None``: all scored datasets outside the sweep.
        bayes_limits: Knob -> Bayes-optimal per-pixel accuracy for the texture figure (optional).
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.
        pretraining: The in-study pretraining table (``results/pretraining.csv``): the cost figure's caption states
            the shared pretraining's CPU time, which no row's ``runtime_s`` holds.

    Returns:
        Figure key -> :class:`FigureResult` (``paths`` empty when the table had nothing to draw for it; a file of
        that name left by an earlier run is then removed, so the folder never shows results the table lacks).
    """
    plotting.setup_style()
    names = figure_parts.main_datasets(df, datasets)
    sweep = compare.texture_datasets(compare.scored(df)["dataset"].unique())
    limits = dict(bayes_limits) if bayes_limits else texture_figures.bayes_limits_from_table(df)
    bayes_note = (
        "Dashed: Bayes-optimal per-pixel accuracy from the simulator (a ceiling for spectra-only classifiers)."
        if limits
        else "No Bayes limit available for the sweep (not drawn)."
    )
    builders = {
        "main_comparison": (
            lambda: main_comparison_figure(df, datasets=names, n_boot=n_boot, seed=seed),
            f"Test scores per dataset, grouped by family; {figure_parts.CI_TEXT}.",
            names,
        ),
        "texture_answer": (
            lambda: texture_figures.texture_answer_figure(
                df, bayes_limits=limits, gain_datasets=[*names, *sweep], n_boot=n_boot, seed=seed
            ),
            "Texture sweep (simulated) and measured texture gain per dataset, paired by replicate. "
            + bayes_note,
            [*names, *sweep],
        ),
        "pretext_alignment": (
            lambda: pretext_figures.pretext_alignment_figure(
                df, datasets=[*names, *sweep], n_boot=n_boot, seed=seed
            ),
            "Fine-tuned FM test mIoU by pretraining; dotted: best classical and best CNN (chosen on validation).",
            [*names, *sweep],
        ),
        "pretext_gain": (
            lambda: pretext_figures.pretext_gain_figure(df),
            "Claim 3 on the sweep (simulated): test mIoU of each pretraining minus random init of the same network, "
            "paired by replicate (dots), mean joined.",
            sweep,
        ),
        "cost": (
            lambda: cost_figure(df, datasets=names, n_boot=n_boot, seed=seed),
            "Test mIoU against run time and parameter count; classical models have no parameter count."
            + _pretraining_cost_note(pretraining),
            names,
        ),
        "per_class_iou": (
            lambda: per_class_heatmap_figure(df, datasets=names),
            "Per-class test IoU, mean over replicates.",
            names,
        ),
        "verdict_effects": (
            lambda: verdict_effects_figure(verdicts.findings(df, n_boot=n_boot, seed=seed)),
            "The tested verdict cells as paired effects A − B on test mIoU: estimate with its 95 % t-interval over "
            "replicates (bootstrap SE, the per-family selection on validation redone in each resample), every "
            "replicate's paired difference, and the ±2-point equivalence margin; colour is the verdict "
            "(Holm-adjusted over the cells shown).",
            None,
        ),
    }
    out = {}
    for key, (build, text, shown) in builders.items():
        fig = build()
        caption = " ".join(t for t in (text, figure_parts.not_run_caption(df, shown)) if t)
        if fig is None:
            # a file left from an earlier, fuller table would show results this table no longer has
            for ext in ("pdf", "png"):
                (Path(out_dir) / f"{FIGURE_NAMES[key]}.{ext}").unlink(missing_ok=True)
            out[key] = FigureResult(FIGURE_NAMES[key], [], "Nothing to draw: no matching rows. " + caption)
            continue
        paths = plotting.save_figure(fig, FIGURE_NAMES[key], Path(out_dir))
        out[key] = FigureResult(FIGURE_NAMES[key], list(paths), caption)
    return out

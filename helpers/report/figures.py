"""The study's answers as figures: who wins, by how much, where, and at what cost (notebooks 02-05).

Each ``*_figure`` function takes the tidy results DataFrame (:func:`helpers.results.read`) and returns a
matplotlib figure (or ``None`` when the table holds nothing it could draw); :func:`draw_all` draws them all in a
fixed order and saves each with :func:`helpers.report.plotting.save_figure` (PDF with TrueType fonts + 300-dpi PNG).
Figures that answer other questions live beside this module, grouped by question: ``data_figures`` (what the data
look like), ``feature_figures`` (what texture features buy), ``map_figures`` (what the models predict on the same
chips) and ``training_figures`` (whether the runs reached a plateau).

Conventions shared by all figures, so a reader can compare them:

* scores are test-split values in percent; means over replicates with their 95 % t-interval over replicates
  (:func:`helpers.report.compare.aggregate`; a replicate is the ``seed`` column: a data draw plus a model seed on
  simulated data), individual replicates as small points; a single replicate has no interval and none is drawn; every
  legend or caption names the interval (:data:`CI_TEXT`);
* verdicts are drawn as paired effects with their own interval and every replicate's paired difference
  (:func:`verdict_effects_figure`);
* colours are families (:func:`helpers.report.plotting.family_palette`), the same everywhere;
* datasets are titled with :func:`helpers.report.plotting.dataset_label`, so simulated data always says so;
* models, datasets and categories are drawn in the canonical order of :mod:`helpers.report.compare` and seed jitter is
  fixed, so the same table gives byte-identical files;
* a model absent from the table is absent from the figure; a ``not_run`` row is never drawn as a number, it is
  listed in the figure's caption (:func:`not_run_caption`).
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

from helpers.data import simulate
from helpers.report import compare, plotting, verdicts

METRIC_LABELS = {
    "miou_macro": "mIoU (macro, %)",
    "f1_macro": "F1 (macro, %)",
    "oa": "overall accuracy (%)",
    "iou_micro": "IoU (micro, %)",
    "iou": "IoU (%)",
}
PRETRAINING_LABELS = {
    "none": "random init",
    "mae-in-study": "MAE pretext (in study)",
    "spectral-in-study": "spectral pretext (in study)",
    "published": "published weights",
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_LINESTYLES = ("-", "--", ":", "-.")
_SEED_OFFSETS = (-0.12, 0.12, 0.0, -0.06, 0.06, -0.18, 0.18)
CI_TEXT = "mean over replicates ± 95 % t-interval over replicates; small points: individual replicates"


@dataclass
class FigureResult:
    """A saved figure: its files and the caption text that goes with it (models not run included)."""

    name: str
    paths: list[Path] = field(default_factory=list)
    caption: str = ""


# ----------------------------------------------------------------------------------------------------------------
# helpers


def _main_datasets(df: pd.DataFrame, datasets: Sequence[str] | None) -> list[str]:
    """Datasets of the main comparison: those given, else every scored dataset outside the texture sweep."""
    names = compare.scored(df)["dataset"].unique()
    if datasets is not None:
        return [d for d in datasets if d in set(names)]
    return [d for d in compare.ordered_datasets(names) if compare.texture_knob(d) is None]


def _simulated(df: pd.DataFrame) -> dict[str, bool]:
    norm = compare.scored(df)
    return dict(zip(norm["dataset"], norm["simulated"].astype(bool), strict=False))


def _label(dataset: str, simulated: Mapping[str, bool]) -> str:
    return plotting.dataset_label(dataset, simulated.get(dataset))


def _seed_values(df: pd.DataFrame, metric: str, split: str = "test", cls: str = "") -> pd.DataFrame:
    rows = compare.scored(df)
    rows = rows.loc[(rows["metric"] == metric) & (rows["split"] == split) & (rows["class"] == cls)]
    return rows.sort_values(["dataset", "model", "seed"], kind="mergesort")


def _seed_jitter(seeds: Sequence) -> np.ndarray:
    """Fixed horizontal offsets by seed rank (no randomness: reruns draw the same picture)."""
    return np.array([_SEED_OFFSETS[i % len(_SEED_OFFSETS)] for i in range(len(seeds))])


def _errorbar(ax: plt.Axes, x, row: pd.Series, color, scale: float = 100.0, **kw) -> None:
    mean = scale * float(row["mean"])
    if np.isfinite(row["lo"]) and np.isfinite(row["hi"]):
        yerr = [[mean - scale * float(row["lo"])], [scale * float(row["hi"]) - mean]]
        ax.errorbar([x], [mean], yerr=yerr, fmt="o", color=color, ms=5, capsize=2.5, lw=1.2, zorder=3, **kw)
    else:
        ax.plot([x], [mean], "o", color=color, ms=5, zorder=3, **kw)


def _family_handles(families: Sequence[str]) -> list[Line2D]:
    pal = plotting.family_palette()
    return [
        Line2D([], [], marker="o", ls="", color=pal[f], label=compare.FAMILY_LABELS.get(f, f))
        for f in compare.FAMILY_ORDER
        if f in set(families)
    ]


def not_run_caption(df: pd.DataFrame, datasets: Sequence[str] | None = None) -> str:
    """One sentence listing the runs that produced no numbers (and why), for a figure's caption."""
    nr = compare.not_run(df)
    if datasets is not None:
        nr = nr.loc[nr["dataset"].isin(list(datasets))]
    if nr.empty:
        return ""
    grouped = nr.groupby(["dataset", "model", "reason"], sort=False)["seed"].apply(
        lambda s: ",".join(str(int(x)) if np.isfinite(x) else "?" for x in s)
    )
    items = [
        f"{m} on {d} (seed{'s' if ',' in s else ''} {s}: {r or 'no reason given'})"
        for (d, m, r), s in grouped.items()
    ]
    return "Not run, so not shown: " + "; ".join(items) + "."


# ----------------------------------------------------------------------------------------------------------------
# 1 main comparison


def _xerrorbar(ax: plt.Axes, y, row: pd.Series, color, scale: float = 100.0) -> None:
    """A horizontal mean-and-interval marker (the horizontal twin of :func:`_errorbar`)."""
    mean = scale * float(row["mean"])
    if np.isfinite(row["lo"]) and np.isfinite(row["hi"]):
        xerr = [[mean - scale * float(row["lo"])], [scale * float(row["hi"]) - mean]]
        ax.errorbar([mean], [y], xerr=xerr, fmt="o", color=color, ms=3.5, capsize=1.5, lw=1.0, zorder=3)
    else:
        ax.plot([mean], [y], "o", color=color, ms=3.5, zorder=3)


def _family_positions(models: Sequence[str], fam: Mapping[str, str], gap: float = 0.6) -> dict[str, float]:
    """Positions along a model axis: one step per model, a gap between families (colour says which is which)."""
    pos, x, prev = {}, 0.0, None
    for m in models:
        if prev is not None and fam[m] != prev:
            x += gap
        pos[m], prev, x = x, fam[m], x + 1.0
    return pos


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
    names = _main_datasets(df, datasets)
    if not names:
        return None
    agg = compare.aggregate(df, metrics=list(metrics), splits=["test"], n_boot=n_boot, seed=seed)
    agg = agg.loc[agg["class"] == ""]
    seeds = pd.concat([_seed_values(df, m) for m in metrics])
    sim = _simulated(df)
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
        ys = _family_positions(models, fam)
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
                    ys[m] + _seed_jitter(sv["seed"].tolist()),
                    s=6,
                    facecolors="none",
                    edgecolors=color,
                    linewidths=0.5,
                    zorder=2,
                )
                _xerrorbar(ax, ys[m], hit.iloc[0], color)
            ax.set_yticks([ys[m] for m in models])
            ax.set_yticklabels(models if c == 0 else [])
            ax.set_ylim(max(ys.values(), default=0) + 0.7, -0.7)
            ax.tick_params(axis="y", labelsize=6)
            if r == 0:
                ax.set_title(f"test {METRIC_LABELS.get(metric, metric)}", loc="right")
            if r == len(names) - 1:
                ax.set_xlabel(f"test {METRIC_LABELS.get(metric, metric)}")
        axes[r, 0].annotate(
            _label(dataset, sim),
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
        handles=_family_handles(agg["family"]),
        loc="outside lower center",
        ncol=3,
        frameon=False,
        title=CI_TEXT,
    )
    return fig


# ----------------------------------------------------------------------------------------------------------------
# 2 texture answer


def bayes_limits_from_table(df: pd.DataFrame) -> dict[float, float]:
    """Per-knob Bayes-optimal per-pixel accuracy from a ``bayes_oa`` column of the table, if a writer added one."""
    if "bayes_oa" not in df:
        return {}
    rows = compare.normalise(df)
    rows["bayes_oa"] = pd.to_numeric(df["bayes_oa"], errors="coerce").to_numpy()
    out = {}
    for name, v in rows.dropna(subset=["bayes_oa"]).groupby("dataset")["bayes_oa"].first().items():
        knob = compare.texture_knob(name)
        if knob is not None:
            out[knob] = float(v)
    return out


def texture_answer_figure(
    df: pd.DataFrame,
    *,
    bayes_limits: Mapping[float, float] | None = None,
    gain_datasets: Sequence[str] | None = None,
    n_boot: int = compare.DEFAULT_N_BOOT,
    seed: int = 0,
) -> plt.Figure | None:
    """The paper's hypothesis as a figure.

    Panels: (a) test mIoU against the texture knob of the ``sim-texture-<knob>`` sweep, one line per model in its
    family's colour; (b) the same for overall accuracy, with the Bayes-optimal per-pixel accuracy drawn (the ceiling
    of any classifier that sees one pixel's spectrum; it is an accuracy, so it is drawn on the accuracy panel,
    not on mIoU); (c) the measured texture gain per dataset (``*_aug − plain`` and best CNN − best classical,
    paired by seed, :func:`helpers.report.compare.texture_gains`).

    Args:
        df: Results table.
        bayes_limits: Knob -> Bayes per-pixel accuracy in [0, 1]; falls back to :func:`bayes_limits_from_table`.
        gain_datasets: Datasets of panel (c) (all scored datasets when ``None``).
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.
    """
    scored = compare.scored(df)
    sweep = compare.texture_datasets(scored["dataset"].unique())
    gains = compare.texture_gains(df, n_boot=n_boot, seed=seed)
    gains = gains.loc[gains["class"] == ""]
    if gain_datasets is not None:
        gains = gains.loc[gains["dataset"].isin(list(gain_datasets))]
    limits = dict(bayes_limits) if bayes_limits else bayes_limits_from_table(df)
    n_panels = (2 if sweep else 0) + (1 if not gains.empty else 0)
    if n_panels == 0:
        return None
    # page-sized: (a) and (b) side by side, (c) and the legend below them
    mosaic = [["a", "b"], ["c", "legend"]] if n_panels == 3 else [["a", "b"], ["legend", "legend"]]
    if n_panels == 1:
        mosaic = [["c", "legend"]]
    fig, named = plt.subplot_mosaic(
        mosaic,
        figsize=plotting.page_size("full", 3.0 * len(mosaic) + 0.3),
        layout="constrained",
        height_ratios=[1.0] * len(mosaic) if n_panels != 2 else [1.0, 0.35],
    )
    legend_ax = named.pop("legend")
    legend_ax.set_axis_off()
    axes = [named[k] for k in ("a", "b", "c") if k in named]
    pal = plotting.family_palette()
    sim = _simulated(df)
    if sweep:
        agg = compare.aggregate(
            df.loc[df["dataset"].isin(sweep)],
            metrics=["miou_macro", "oa"],
            splits=["test"],
            n_boot=n_boot,
            seed=seed,
        )
        agg = agg.loc[agg["class"] == ""].assign(knob=lambda a: a["dataset"].map(compare.texture_knob))
        _sweep_panels(axes[:2], agg, pal, limits)
    gain_handles = _gain_panel(axes[-1], gains, pal, sim, sweep) if not gains.empty else []
    handles = []
    if sweep:
        handles, _ = axes[0].get_legend_handles_labels()
        handles += [h for h in axes[1].get_lines() if h.get_label().startswith("Bayes")]
    if gain_handles:
        handles += [
            Line2D([], [], ls="", label=" "),
            Line2D([], [], ls="", label="texture gain:"),
            *gain_handles,
        ]
    legend_ax.legend(
        handles=handles,
        loc="center",
        ncol=2 if len(handles) > 8 else 1,
        frameon=False,
        title=("knob 0: spectra decide; 1: texture needed\n" if sweep else "")
        + CI_TEXT.split(";")[0]
        + " (whiskers)",
    )
    return fig


def _sweep_panels(axes, agg: pd.DataFrame, pal: Mapping, limits: Mapping[float, float]) -> None:
    """Panels (a) and (b) of :func:`texture_answer_figure`: test mIoU and accuracy against the knob.

    One line per model in its family's colour, and the Bayes per-pixel accuracy on (b).
    """
    models = compare.ordered_models(agg)
    fam = agg.drop_duplicates("model").set_index("model")["family"]
    rank = {m: sum(fam[o] == fam[m] for o in models[:i]) for i, m in enumerate(models)}
    dodge = {m: 0.008 * (i - (len(models) - 1) / 2) for i, m in enumerate(models)}  # fixed, tiny
    for ax, metric in zip(axes, ("miou_macro", "oa"), strict=True):
        for m in models:
            d = agg.loc[(agg["model"] == m) & (agg["metric"] == metric)].sort_values("knob")
            if d.empty:
                continue
            color = pal.get(fam[m], "grey")
            ls = _LINESTYLES[rank[m] % len(_LINESTYLES)]
            marker = _MARKERS[rank[m] % len(_MARKERS)]
            mean = 100 * d["mean"].to_numpy()
            has_ci = np.isfinite(d["lo"].to_numpy()) & np.isfinite(d["hi"].to_numpy())
            yerr = np.where(has_ci, [mean - 100 * d["lo"].to_numpy(), 100 * d["hi"].to_numpy() - mean], 0.0)
            ax.errorbar(
                d["knob"].to_numpy() + dodge[m],
                mean,
                yerr=yerr,
                ls=ls,
                marker=marker,
                ms=3.5,
                color=color,
                lw=1.1,
                elinewidth=0.8,
                capsize=1.5,
                label=m,
            )
        ax.set_xlim(-0.06, 1.06)
        ax.set_xlabel("texture knob")
        ax.set_ylabel(f"test {METRIC_LABELS[metric]}")
        ax.set_title(
            f"{'(a)' if metric == 'miou_macro' else '(b)'} sim-texture sweep (simulated)", fontsize=8
        )
    if limits:
        knobs = sorted(k for k in limits if any(np.isclose(k, agg["knob"])))
        if knobs:
            axes[1].plot(
                knobs,
                [100 * limits[k] for k in knobs],
                color="black",
                ls="--",
                marker="_",
                ms=12,
                mew=1.5,
                lw=1.0,
                label="Bayes limit, per-pixel accuracy",
            )


def _gain_panel(ax, gains: pd.DataFrame, pal: Mapping, sim: Mapping[str, bool], sweep: Sequence[str]) -> list:
    """Panel (c) of :func:`texture_answer_figure`: the measured texture gain per dataset.

    Returns:
        The panel's legend handles, one per comparison.
    """
    names = compare.ordered_datasets(gains["dataset"])
    comps = list(dict.fromkeys(gains["comparison"]))
    colors = dict(
        zip(comps, [pal["classical"], sns.color_palette("colorblind", 8)[4], pal["cnn"]], strict=False)
    )
    width = 0.8 / max(len(comps), 1)
    for j, comp in enumerate(comps):
        for i, dataset in enumerate(names):
            hit = gains.loc[(gains["dataset"] == dataset) & (gains["comparison"] == comp)]
            if hit.empty:
                continue
            x = i - 0.4 + width * (j + 0.5)
            _errorbar(ax, x, hit.iloc[0], colors.get(comp, "grey"))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([_label(d, sim) for d in names], rotation=60, ha="right", rotation_mode="anchor")
    ax.set_ylabel("texture gain: Δ test mIoU (points)")
    ax.set_title(f"{'(c)' if sweep else ''} measured texture gain".strip(), fontsize=8)
    return [Line2D([], [], marker="o", ls="", color=colors.get(c, "grey"), label=c) for c in comps]


# ----------------------------------------------------------------------------------------------------------------
# 3 pretext alignment


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
    sim = _simulated(df)
    seeds = _seed_values(df, "miou_macro")
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
                x + _seed_jitter(s["seed"].tolist()),
                100 * s["value"].to_numpy(),
                s=7,
                facecolors="none",
                edgecolors=color,
                linewidths=0.6,
                zorder=2,
            )
            _errorbar(ax, x, pd.Series(row._asdict()), color)
        for fam in ("classical", "cnn"):
            hit = best.loc[(best["dataset"] == dataset) & (best["family"] == fam)]
            if not hit.empty and np.isfinite(hit.iloc[0]["mean"]):
                ax.axhline(100 * hit.iloc[0]["mean"], color=fam_pal[fam], ls=":", lw=1.0)
        ax.set_xticks(range(len(d)))
        ax.set_xticklabels(d["model"].tolist(), rotation=60, ha="right", rotation_mode="anchor", fontsize=6)
        ax.set_xlim(-0.7, len(d) - 0.3)
        ax.set_title(_label(dataset, sim))
    for ax in axes[:, 0]:
        ax.set_ylabel(f"fine-tuned test {METRIC_LABELS['miou_macro']}")
    handles = [
        Line2D([], [], marker="o", ls="", color=colors[p], label=PRETRAINING_LABELS[p])
        for p in compare.PRETRAINING_ORDER
        if p in set(used)
    ]
    handles += [
        Line2D([], [], ls=":", color=fam_pal[f], label=f"best {compare.FAMILY_LABELS[f]} (val-selected)")
        for f in ("classical", "cnn")
    ]
    fig.legend(handles=handles, loc="outside upper center", ncol=3, frameon=False, title=CI_TEXT)
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
    vals = _seed_values(df, "miou_macro")
    sweep = compare.texture_datasets(vals["dataset"].unique())
    vals = vals[vals["dataset"].isin(sweep) & (vals["family"] == "fm")]
    knob = {d: simulate.parse_name(d)[1] for d in sweep}
    info = vals.drop_duplicates("model").set_index("model")["pretraining"].fillna("none")
    arch = {m: verdicts.architecture(m) for m in info.index}
    pairs = [
        (m, r, f"{PRETRAINING_LABELS.get(p, p)} ({arch[m]})")
        for m, p in info.items()
        if p != "none"
        for r in info.index
        if info[r] == "none" and arch[r] == arch[m] and r != m
    ]
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
    names = _main_datasets(df, datasets)
    agg = compare.aggregate(df, metrics=["miou_macro"], splits=["test"], n_boot=n_boot, seed=seed)
    agg = agg.loc[(agg["class"] == "") & agg["dataset"].isin(names)]
    if agg.empty:
        return None
    pal = plotting.family_palette()
    sim = _simulated(df)
    markers = {d: _MARKERS[i % len(_MARKERS)] for i, d in enumerate(names)}
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
    axes[0].set_ylabel(f"test {METRIC_LABELS['miou_macro']}")
    handles = _family_handles(agg["family"]) + [
        Line2D([], [], marker=markers[d], ls="", color="grey", label=_label(d, sim))
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
    sim = _simulated(df)
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
        ax.set_title(_label(dataset, sim))
    if title:
        fig.suptitle(title)
    cbar = fig.colorbar(image, ax=list(axes.flat), location="bottom", shrink=0.6, aspect=40)
    cbar.set_label(f"test {METRIC_LABELS.get(metric, metric)}, mean over seeds")
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
            per, np.full(per.size, y) + _seed_jitter(list(per)) * 0.8, s=8, facecolors="none",
            edgecolors=color, linewidths=0.6, zorder=2,
        )  # fmt: skip
        _xerrorbar(ax, y, pd.Series({"mean": r.estimate, "lo": r.lo, "hi": r.hi}), color)
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
    runs = ", ".join(f"{r.pretext} {r.train_s / 60:.1f} min" for r in pre.itertuples())
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
    names = _main_datasets(df, datasets)
    sweep = compare.texture_datasets(compare.scored(df)["dataset"].unique())
    limits = dict(bayes_limits) if bayes_limits else bayes_limits_from_table(df)
    bayes_note = (
        "Dashed: Bayes-optimal per-pixel accuracy from the simulator (a ceiling for spectra-only classifiers)."
        if limits
        else "No Bayes limit available for the sweep (not drawn)."
    )
    builders = {
        "main_comparison": (
            lambda: main_comparison_figure(df, datasets=names, n_boot=n_boot, seed=seed),
            f"Test scores per dataset, grouped by family; {CI_TEXT}.",
            names,
        ),
        "texture_answer": (
            lambda: texture_answer_figure(
                df, bayes_limits=limits, gain_datasets=[*names, *sweep], n_boot=n_boot, seed=seed
            ),
            "Texture sweep (simulated) and measured texture gain per dataset, paired by replicate. "
            + bayes_note,
            [*names, *sweep],
        ),
        "pretext_alignment": (
            lambda: pretext_alignment_figure(df, datasets=[*names, *sweep], n_boot=n_boot, seed=seed),
            "Fine-tuned FM test mIoU by pretraining; dotted: best classical and best CNN (chosen on validation).",
            [*names, *sweep],
        ),
        "pretext_gain": (
            lambda: pretext_gain_figure(df),
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
        caption = " ".join(t for t in (text, not_run_caption(df, shown)) if t)
        if fig is None:
            # a file left from an earlier, fuller table would show results this table no longer has
            for ext in ("pdf", "png"):
                (Path(out_dir) / f"{FIGURE_NAMES[key]}.{ext}").unlink(missing_ok=True)
            out[key] = FigureResult(FIGURE_NAMES[key], [], "Nothing to draw: no matching rows. " + caption)
            continue
        paths = plotting.save_figure(fig, FIGURE_NAMES[key], Path(out_dir))
        out[key] = FigureResult(FIGURE_NAMES[key], list(paths), caption)
    return out


def protocol_figure(frame: pd.DataFrame, floors: Mapping[str, float] | None = None) -> plt.Figure | None:
    """Scenes read as scenes: the best model of each family under every split protocol (test overall accuracy).

    One group of bars per scene dataset, labelled with its protocol; a random-pixel split is hatched and labelled
    LEAKY (its test pixels' neighbours trained the model), so its bars never pass for a held-out score. Whiskers
    are the t-interval over replicates (none for one replicate); a grey tick marks the share of the test split's
    most frequent class, which a model that learnt anything beats.

    Args:
        frame: :func:`helpers.report.scenes.best_per_family`.
        floors: Dataset -> test share of its most frequent class (optional).

    Returns:
        A full-page-width figure, or ``None`` without scene rows.
    """
    if frame.empty:
        return None
    datasets = list(
        dict.fromkeys(frame.sort_values(["leaky", "dataset"], ascending=[False, True])["dataset"])
    )
    families = [f for f in compare.FAMILY_ORDER if f in set(frame["family"])]
    pal = plotting.family_palette()
    fig, axes = plt.subplots(1, 2, figsize=(plotting.PAGE_WIDTH["full"], 4.2), sharey=True)
    width = 0.8 / max(1, len(families))
    for ax, (metric, label) in zip(
        axes, (("oa", "test overall accuracy (%)"), ("miou", "test mIoU (%)")), strict=True
    ):
        bars: list[tuple[float, str]] = []  # (x, model) of every bar: the model names are the bars' ticks
        for i, name in enumerate(datasets):
            rows = frame[frame["dataset"] == name].set_index("family")
            leaky = bool(rows["leaky"].iloc[0])
            for j, fam in enumerate(families):
                if fam not in rows.index or not np.isfinite(rows.loc[fam, metric]):
                    continue
                r = rows.loc[fam]
                x = i + (j - (len(families) - 1) / 2) * width
                ax.bar(
                    x,
                    100 * r[metric],
                    width,
                    color=pal[fam],
                    hatch="///" if leaky else None,
                    edgecolor="white",
                    lw=0,
                )
                lo, hi = r[f"{metric}_lo"], r[f"{metric}_hi"]
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.errorbar(x, 100 * r[metric], yerr=[[100 * (r[metric] - lo)], [100 * (hi - r[metric])]], color="k", lw=0.8, capsize=1.5)  # fmt: skip
                bars.append((x, r["model"]))
            if metric == "oa" and floors and name in floors:
                ax.hlines(100 * floors[name], i - 0.45, i + 0.45, color="0.4", lw=1.0, ls="--")
        first = frame.drop_duplicates("dataset").set_index("dataset")
        ticks = [
            first.loc[name, "protocol"].removeprefix("scene ").replace(" (leaky)", "").replace(", ", "\n")
            + ("\nLEAKY" if first.loc[name, "leaky"] else "")
            for name in datasets
        ]
        # each bar names its model under the axis; the protocol of each group sits below the longest name
        ax.set_xticks([x for x, _ in bars], [m for _, m in bars], rotation=90, fontsize=6)
        ax.tick_params(axis="x", length=0, pad=2)
        longest = max((len(m) for _, m in bars), default=0)
        groups = ax.secondary_xaxis("bottom")
        groups.set_xticks(range(len(datasets)), ticks, fontsize=6)
        groups.tick_params(length=0, pad=6 + 3.4 * longest)
        groups.spines["bottom"].set_visible(False)
        ax.set_ylabel(label, fontsize=7)
        ax.set_ylim(0, 100)
        ax.tick_params(axis="y", labelsize=6)
    handles = _family_handles(families)
    if floors:
        handles.append(Line2D([], [], color="0.4", ls="--", label="most frequent test class"))
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.92),
        ncol=len(handles),
        fontsize=6,
        frameon=False,
    )
    n = sorted(set(int(v) for v in frame["n"].dropna()))
    fig.suptitle(
        "Scenes read as scenes: the best model of each family, chosen on validation mIoU, under each split protocol\n"
        f"(hatched: random pixels, LEAKY); bars are means over {'/'.join(map(str, n))} replicate(s)",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def regime_figure(
    cv: pd.DataFrame, rg: pd.DataFrame, simulated: Mapping[str, bool] | None = None
) -> plt.Figure | None:
    """The regime map on one page: test mIoU against labelled pixels per dataset, and who wins where.

    Top: one panel per dataset (or texture knob), test mIoU against the labelled training pixels (log axis), one
    line per model (mean over seeds; the individual seeds as dots), foundation models solid, every other row dashed.
    Bottom: the FM advantage per (dataset, budget): best FM row minus best other row (each chosen on validation),
    paired within replicate; the cell says the winner (a Holm-corrected significant difference, or "level" within
    the equivalence margin) and the mean difference with its 95 % t-interval over replicates
    (:mod:`helpers.report.regime`). The replicates themselves are the dots of the top panels.

    Args:
        cv: :func:`helpers.report.regime.curves`.
        rg: :func:`helpers.report.regime.regime`.
        simulated: ``{dataset: simulated}`` for the panel titles (default: ``sim-`` names are simulated).

    Returns:
        A full-page-width figure, or ``None`` without budget rows.
    """
    from helpers.report import regime as _regime

    if cv.empty or rg.empty:
        return None
    names = compare.ordered_datasets(cv["dataset"].unique())
    sim = {n: (simulated or {}).get(n, n.startswith("sim-")) for n in names}
    ncol = min(4, len(names))
    nrow = -(-len(names) // ncol)
    height = min(plotting.MAX_HEIGHT, 1.55 * nrow + 0.35 + 0.22 * len(names) + 0.9)
    fig = plt.figure(figsize=(plotting.PAGE_WIDTH["full"], height))
    grid = fig.add_gridspec(nrow + 1, ncol, height_ratios=[1.55] * nrow + [0.35 + 0.22 * len(names)])
    models = sorted(cv["model"].unique(), key=lambda m: compare.model_sort_key(m))
    colours = dict(zip(models, sns.color_palette("colorblind", len(models)), strict=True))
    fm_models = set(cv.loc[cv["group"] == _regime.FM, "model"])
    for i, name in enumerate(names):
        ax = fig.add_subplot(grid[i // ncol, i % ncol])
        d = cv[cv["dataset"] == name]
        for m in models:
            dm = d[(d["model"] == m) & d["n_labelled_px"].notna()]
            if dm.empty:
                continue
            mean = dm.groupby("n_labelled_px")["test"].mean().sort_index()
            ls = "-" if m in fm_models else "--"
            ax.plot(mean.index, mean.values, ls, color=colours[m], lw=1.0, marker="o", ms=2.5, label=m)
            ax.plot(dm["n_labelled_px"], dm["test"], ".", color=colours[m], ms=1.8, alpha=0.6)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(plotting.dataset_label(name, sim[name]), fontsize=7)
        ax.tick_params(labelsize=6)
        if i % ncol == 0:
            ax.set_ylabel("test mIoU (%)", fontsize=6.5)
        if i // ncol == nrow - 1 or i + ncol >= len(names):
            ax.set_xlabel("labelled training pixels", fontsize=6.5)
    handles = [
        Line2D([], [], color=colours[m], ls="-" if m in fm_models else "--", marker="o", ms=2.5, label=m)
        for m in models
    ]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 5), fontsize=6, frameon=False)
    # the map
    ax = fig.add_subplot(grid[nrow, :])
    budgets = sorted(rg["label_budget"].unique(), key=_regime.budget_order)
    mat = np.full((len(names), len(budgets)), np.nan)
    for _, r in rg.iterrows():
        if r["dataset"] in names and pd.notna(r.get("advantage", np.nan)):
            mat[names.index(r["dataset"]), budgets.index(r["label_budget"])] = r["advantage"]
    lim = max(5.0, float(np.nanmax(np.abs(mat)))) if np.isfinite(mat).any() else 5.0
    im = ax.imshow(mat, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for _, r in rg.iterrows():
        if r["dataset"] not in names:
            continue
        y, x = names.index(r["dataset"]), budgets.index(r["label_budget"])
        if r["winner"] == "missing":
            text = r["winner"]
        elif np.isfinite(r.get("lo", np.nan)):
            text = f"{r['winner']}  {r['advantage']:+.1f} [{r['lo']:+.1f}, {r['hi']:+.1f}]"
        else:
            text = f"{r['winner']}  {r['advantage']:+.1f} (no interval)"
        dark = pd.notna(r.get("advantage", np.nan)) and abs(r["advantage"]) > 0.6 * lim
        ax.text(x, y, text, ha="center", va="center", fontsize=6, color="white" if dark else "black")
    ax.set_xticks(range(len(budgets)), budgets, fontsize=6)
    ax.set_yticks(range(len(names)), [plotting.dataset_label(n, sim[n]) for n in names], fontsize=6)
    ax.set_xlabel("label budget (points-K: K labelled pixels per class; all: every label)", fontsize=6.5)
    ax.grid(False)
    cb = fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    cb.set_label("best FM − best other\n(test mIoU points;\n[95 % t-interval])", fontsize=6)
    cb.ax.tick_params(labelsize=6)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / height))
    return fig

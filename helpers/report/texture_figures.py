"""Claim 2 as a figure: where texture decides, along the simulated texture sweep (notebook 05).

:func:`texture_answer_figure` draws every family's best row against the texture knob with the per-pixel Bayes limit
(:func:`bayes_limits_from_table`), and beside it what texture features, and deep models, add over per-pixel ones.
Conventions as in :mod:`helpers.report.figures`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from helpers.report import compare, figure_parts, plotting


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
    sim = figure_parts.simulated_map(df)
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
        + figure_parts.CI_TEXT.split(";")[0]
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
            ls = figure_parts.LINESTYLES[rank[m] % len(figure_parts.LINESTYLES)]
            marker = figure_parts.MARKERS[rank[m] % len(figure_parts.MARKERS)]
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
        ax.set_ylabel(f"test {figure_parts.METRIC_LABELS[metric]}")
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
            figure_parts.errorbar(ax, x, hit.iloc[0], colors.get(comp, "grey"))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(
        [figure_parts.label(d, sim) for d in names], rotation=60, ha="right", rotation_mode="anchor"
    )
    ax.set_ylabel("texture gain: Δ test mIoU (points)")
    ax.set_title(f"{'(c)' if sweep else ''} measured texture gain".strip(), fontsize=8)
    return [Line2D([], [], marker="o", ls="", color=colors.get(c, "grey"), label=c) for c in comps]

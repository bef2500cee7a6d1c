"""What the classical rows' features buy (notebook 02): the gain of texture features per class and feature family."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from helpers.report import plotting

# ----------------------------------------------------------------------------------------------------------------
# notebook 02: what the classical rows use and gain

#: Feature families of :func:`helpers.features.feature_table`, in legend order.
FEATURE_FAMILIES = ("spectra", "local_mean", "local_std", "gradient", "index")


def gain_share_figure(
    importances: Mapping[str, pd.Series], family_of: pd.Series, *, title: str, top: int = 20
) -> plt.Figure | None:
    """The ``top`` features by share of LightGBM's total gain, one panel per model, coloured by feature family.

    Args:
        importances: Model name -> gain importance per feature (``ClassicalRun.importances``).
        family_of: Feature name -> family (``feature_table(...).set_index("name")["family"]``).
        title: Figure title (the dataset label).
        top: Features shown per panel.
    """
    if not importances:
        return None
    colour = dict(zip(FEATURE_FAMILIES, sns.color_palette("colorblind", len(FEATURE_FAMILIES)), strict=True))
    fig, axes = plt.subplots(
        1,
        len(importances),
        figsize=plotting.page_size("full" if len(importances) > 1 else "column", 4.2),
        squeeze=False,
    )
    for ax, (model, imp) in zip(axes[0], importances.items(), strict=True):
        share = (imp / imp.sum()).sort_values(ascending=False).head(top)[::-1]
        ax.barh(share.index, share.values, color=[colour[family_of[f]] for f in share.index])
        ax.set_title(f"{model} · gain share", fontsize=9)
        ax.tick_params(axis="y", labelsize=6)
        ax.set_xlabel("share of total gain")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[f]) for f in FEATURE_FAMILIES]
    fig.legend(
        handles,
        FEATURE_FAMILIES,
        loc="lower center",
        ncol=len(FEATURE_FAMILIES),
        fontsize=7,
        bbox_to_anchor=(0.5, -0.04),
    )
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def texture_gain(test_iou: pd.DataFrame) -> pd.DataFrame:
    """Per-class test IoU gain of each ``*_aug`` row over its plain twin, paired by seed.

    ``test_iou``: results rows with ``metric == "iou"`` on the test split. Returns one row per (dataset, class, seed,
    pair) with the ``gain`` (empty when no pair of rows is there).
    """
    iou = test_iou.pivot_table(index=["dataset", "class", "seed"], columns="model", values="value")
    pairs = [(a, b) for a, b in (("rf_aug", "rf"), ("lgbm_aug", "lgbm")) if {a, b} <= set(iou.columns)]
    if not pairs:
        return pd.DataFrame(columns=["dataset", "class", "seed", "gain", "pair"])
    return pd.concat(
        [(iou[a] - iou[b]).rename("gain").reset_index().assign(pair=f"{a} − {b}") for a, b in pairs],
        ignore_index=True,  # one row per (dataset, class, seed, pair): seaborn needs a unique index
    )


def class_bars_figure(
    d: pd.DataFrame,
    *,
    y: str,
    hue: str,
    classes: Sequence[str],
    ylabel: str,
    title: str,
    hue_order: Sequence[str] | None = None,
    ylim: tuple[float, float] | None = None,
    zero_line: bool = False,
    width_per_class: float = 0.45,
    height: float = 3.0,
    legend_above: bool = False,
) -> plt.Figure | None:
    """Bars of the mean of ``y`` per class and ``hue`` (over seeds), the individual seeds as dots beside them."""
    if d.empty:
        return None
    fig, ax = plt.subplots(figsize=(min(7.2, max(3.5, width_per_class * len(classes) + 1.5)), height))
    sns.barplot(data=d, x="class", y=y, hue=hue, hue_order=hue_order, order=classes, errorbar=None, ax=ax)
    n_hue = len(hue_order) if hue_order is not None else d[hue].nunique()
    sns.stripplot(
        data=d,
        x="class",
        y=y,
        hue=hue,
        hue_order=hue_order,
        order=classes,
        dodge=True,
        palette=["0.15"] * n_hue,
        size=2.5,
        legend=False,
        ax=ax,
    )
    if ylim is not None:
        ax.set_ylim(*ylim)
    if zero_line:
        ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=45 if len(classes) > 4 else 0, labelsize=6)
    if legend_above:
        ax.legend(ncol=n_hue, loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False)
    ax.set_title(title, pad=18 if legend_above else 6)
    return fig

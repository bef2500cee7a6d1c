"""The pieces every results figure of the study shares, so the figures read alike (:mod:`helpers.report.figures`).

Axis labels of metrics and pretraining kinds, markers and line styles, the interval marker (a mean with its interval
over replicates, :func:`errorbar`, and its horizontal twin), the fixed seed jitter, the legend of families and the
caption that lists rows that could not run. Figures of each question (the main comparison, texture, pretraining, the
regime map) import them from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from helpers.report import compare, plotting

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


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


LINESTYLES = ("-", "--", ":", "-.")


_SEED_OFFSETS = (-0.12, 0.12, 0.0, -0.06, 0.06, -0.18, 0.18)


CI_TEXT = "mean over replicates ± 95 % t-interval over replicates; small points: individual replicates"


def main_datasets(df: pd.DataFrame, datasets: Sequence[str] | None) -> list[str]:
    """Datasets of the main comparison: those given, else every scored dataset outside the texture sweep."""
    names = compare.scored(df)["dataset"].unique()
    if datasets is not None:
        return [d for d in datasets if d in set(names)]
    return [d for d in compare.ordered_datasets(names) if compare.texture_knob(d) is None]


def simulated_map(df: pd.DataFrame) -> dict[str, bool]:
    """Each scored dataset of ``df`` and whether it is simulated (every title says so)."""
    norm = compare.scored(df)
    return dict(zip(norm["dataset"], norm["simulated"].astype(bool), strict=False))


def label(dataset: str, simulated: Mapping[str, bool]) -> str:
    """A dataset's title (:func:`helpers.report.plotting.dataset_label`), simulated ones labelled as such."""
    return plotting.dataset_label(dataset, simulated.get(dataset))


def seed_values(df: pd.DataFrame, metric: str, split: str = "test", cls: str = "") -> pd.DataFrame:
    """Every replicate's score of ``metric`` on ``split`` (the small points), in a fixed order."""
    rows = compare.scored(df)
    rows = rows.loc[(rows["metric"] == metric) & (rows["split"] == split) & (rows["class"] == cls)]
    return rows.sort_values(["dataset", "model", "seed"], kind="mergesort")


def seed_jitter(seeds: Sequence) -> np.ndarray:
    """Fixed horizontal offsets by seed rank (no randomness: reruns draw the same picture)."""
    return np.array([_SEED_OFFSETS[i % len(_SEED_OFFSETS)] for i in range(len(seeds))])


def errorbar(ax: plt.Axes, x, row: pd.Series, color, scale: float = 100.0, **kw) -> None:
    """A mean-and-interval marker from an aggregate row (``mean``, ``lo``, ``hi``); no bar where no interval."""
    mean = scale * float(row["mean"])
    if np.isfinite(row["lo"]) and np.isfinite(row["hi"]):
        yerr = [[mean - scale * float(row["lo"])], [scale * float(row["hi"]) - mean]]
        ax.errorbar([x], [mean], yerr=yerr, fmt="o", color=color, ms=5, capsize=2.5, lw=1.2, zorder=3, **kw)
    else:
        ax.plot([x], [mean], "o", color=color, ms=5, zorder=3, **kw)


def family_handles(families: Sequence[str]) -> list[Line2D]:
    """Legend handles of the given families, in the canonical family order and colours."""
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


def xerrorbar(ax: plt.Axes, y, row: pd.Series, color, scale: float = 100.0) -> None:
    """A horizontal mean-and-interval marker (the horizontal twin of :func:`errorbar`)."""
    mean = scale * float(row["mean"])
    if np.isfinite(row["lo"]) and np.isfinite(row["hi"]):
        xerr = [[mean - scale * float(row["lo"])], [scale * float(row["hi"]) - mean]]
        ax.errorbar([mean], [y], xerr=xerr, fmt="o", color=color, ms=3.5, capsize=1.5, lw=1.0, zorder=3)
    else:
        ax.plot([mean], [y], "o", color=color, ms=3.5, zorder=3)


def family_positions(models: Sequence[str], fam: Mapping[str, str], gap: float = 0.6) -> dict[str, float]:
    """Positions along a model axis: one step per model, a gap between families (colour says which is which)."""
    pos, x, prev = {}, 0.0, None
    for m in models:
        if prev is not None and fam[m] != prev:
            x += gap
        pos[m], prev, x = x, fam[m], x + 1.0
    return pos

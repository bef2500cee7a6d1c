"""Prediction maps: how the best model of each family predicts the same test chips (notebooks 02-05).

Drawn from the maps every run saves (:mod:`helpers.prediction_maps`), never by rebuilding a model, so a figure shows
what the run that made the table predicted.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers import prediction_maps
from helpers.report import compare, plotting

# ----------------------------------------------------------------------------------------------------------------
# prediction maps


@dataclass
class MapColumn:
    """One model's column of :func:`prediction_maps_figure`: a title and its saved maps (``None``: none saved)."""

    title: str
    maps: Mapping[str, np.ndarray] | None


def prediction_maps_figure(
    ds,
    chip_ids: Sequence[str],
    columns: Sequence[MapColumn],
    *,
    title: str = "",
) -> plt.Figure | None:
    """Test chips (rows) as true colour, ground truth and each model's predicted map (columns).

    Unlike the other figures this one needs the data and the maps each run saved
    (:mod:`helpers.prediction_maps`), not only the results table. A model without maps of a chip gets an empty
    panel saying so, never another model's map. Ignore pixels are grey in the ground truth; predictions cover
    every pixel.
    """
    chip_ids = list(chip_ids)
    if not chip_ids or not columns:
        return None
    k = ds.num_classes
    n_cols = 2 + len(columns)
    chips = [ds.read_arrays(c) for c in chip_ids]
    aspect = max(y.shape[0] / y.shape[1] for _, y in chips)  # panel height per unit width
    fig, axes = plt.subplots(
        len(chip_ids), n_cols, figsize=(1.35 * n_cols, 1.35 * aspect * len(chip_ids) + 0.9), squeeze=False
    )
    for r, (chip, (x, y)) in enumerate(zip(chip_ids, chips, strict=True)):
        axes[r, 0].imshow(plotting.chip_composite(x, getattr(ds, "bands", None)))
        axes[r, 0].set_axis_off()
        plotting.show_labels(axes[r, 1], y, k, ds.ignore_index)
        axes[r, 0].text(
            -0.06,
            0.5,
            textwrap.fill(
                chip, 20, break_on_hyphens=False
            ),  # long real chip names wrap instead of overlapping
            transform=axes[r, 0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=plotting.MIN_FONT_PT,
        )
        for c, col in enumerate(columns, start=2):
            ax = axes[r, c]
            pred = None if col.maps is None else col.maps.get(chip)
            if pred is None or pred.shape != y.shape:
                ax.set_axis_off()
                ax.text(
                    0.5, 0.5, "no saved map", ha="center", va="center", fontsize=6, transform=ax.transAxes
                )
            else:
                plotting.show_labels(ax, pred, k, ignore_index=None)
    for c, head in enumerate(["true colour (last date)", "ground truth", *[col.title for col in columns]]):
        axes[0, c].set_title(head, fontsize=6)
    cmap = plotting.label_cmap(k)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=cmap(i), label=name) for i, name in enumerate(ds.classes)
    ] + [plt.Rectangle((0, 0), 1, 1, color="#dddddd", label="ignore (not scored)")]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 5),
        fontsize=6,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * (len(handles) // 5), 1, 1))
    return fig


def best_maps_figure(
    ds,
    best: pd.DataFrame,
    maps_dir: str | os.PathLike,
    *,
    chip_ids: Sequence[str] | None = None,
) -> plt.Figure | None:
    """Prediction maps of the best model of each family on ``ds`` (the issue's figure 5, second part).

    Args:
        ds: The dataset (its test chips and class names).
        best: :func:`helpers.report.compare.select_best` output (best per dataset and family, chosen on validation).
        maps_dir: Where the runs saved their maps (:mod:`helpers.prediction_maps`); the lowest seed with maps is
            shown, and named in the column title.
        chip_ids: Chips to draw (default: :func:`helpers.prediction_maps.chip_ids`, the ones every run keeps).
    """
    rows = best.loc[best["dataset"] == ds.name]
    columns = []
    for family in compare.FAMILY_ORDER:
        hit = rows.loc[(rows["family"] == family) & (rows["model"] != "")]
        if hit.empty:
            continue
        model = hit.iloc[0]["model"]
        found = prediction_maps.load_run(maps_dir, ds.name, model)
        columns.append(
            MapColumn(
                f"best {family}: {model}" + (f"\n(seed {found[0]})" if found else ""),
                found[1] if found else None,
            )
        )
    chips = list(chip_ids) if chip_ids is not None else prediction_maps.chip_ids(ds)
    label = plotting.dataset_label(ds.name, bool(getattr(ds, "simulated", False)))
    return prediction_maps_figure(
        ds, chips, columns, title=f"Test predictions, best model per family (chosen on validation) · {label}"
    )


def run_maps_figure(
    ds,
    models: Sequence[str],
    maps_dir: str | os.PathLike,
    *,
    seeds: Sequence[int] | None = None,
    title: str = "",
) -> plt.Figure | None:
    """The saved test maps of ``models`` on ``ds`` (lowest seed among ``seeds`` with maps), one column each.

    Drawn from what the runs saved (:mod:`helpers.prediction_maps`), never by rebuilding a model from its
    checkpoint: a fresh clone has the committed maps but no checkpoints, and its redrawn figure must be the
    committed one. ``None`` when no model has saved maps (the caller leaves an existing figure as it is).
    """
    columns = []
    for model in models:
        found = prediction_maps.load_run(maps_dir, ds.name, model, seeds)
        columns.append(
            MapColumn(model + (f" (seed {found[0]})" if found else ""), found[1] if found else None)
        )
    if all(c.maps is None for c in columns):
        return None
    return prediction_maps_figure(ds, prediction_maps.chip_ids(ds), columns, title=title)

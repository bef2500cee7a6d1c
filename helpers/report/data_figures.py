"""Figures of the data before any model (notebook 01), each drawn from a dataset, not from a model.

Class balance, reflectance per class, example chips, whether the simulated data follow the sources they were built
from, and what makes ``sim-crop`` hard. Each function draws one figure from a dataset (and, where it compares classes, from a pixel sample of
:func:`helpers.data.exploration.sample_per_class`), sized for a page (:mod:`helpers.report.plotting`); the notebook
only picks datasets and saves. Simulated datasets say so in every title (:func:`helpers.report.plotting.dataset_label`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import rasterio
import seaborn as sns

from helpers.data import datasets, exploration, sim_crop, simulate
from helpers.report import plotting


def class_balance_figure(ds) -> tuple[plt.Figure, pd.DataFrame]:
    """Share of valid pixels per class in each split, and the counts behind it (``(figure, counts)``)."""
    counts = pd.DataFrame({s: datasets.class_counts(ds, s) for s in ds.splits}, index=ds.classes)
    share = counts / counts.sum()
    fig, ax = plt.subplots(figsize=(6.5, 0.25 * ds.num_classes + 1.5))
    share.plot.barh(ax=ax)
    ax.set_xlabel("share of valid pixels")
    ax.set_title(f"Class balance · {plotting.dataset_label(ds.name, ds.simulated)}")
    ax.invert_yaxis()
    return fig, counts


def band_distributions_figure(ds, pixels: pd.DataFrame) -> plt.Figure:
    """Reflectance per band and class (boxes without outliers) of a pixel sample (:func:`~helpers.data.exploration.pixel_table`).

    Multi-date data show the last date, the one closest to harvest on the crop task.
    """
    names = exploration.channel_names(ds)
    long = pixels.melt(id_vars="label", var_name="band", value_name="reflectance")
    last_date = [n for n in names if n.startswith(f"t{ds.n_times - 1}_")] if ds.n_times > 1 else names
    fig, ax = plt.subplots(figsize=plotting.page_size("full", 3.2))
    sns.boxplot(
        data=long[long["band"].isin(last_date)],
        x="band",
        y="reflectance",
        hue="label",
        showfliers=False,
        ax=ax,
    )
    ax.legend(fontsize=6, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title(
        f"Reflectance per class · {plotting.dataset_label(ds.name, ds.simulated)}"
        + (" · last date" if ds.n_times > 1 else "")
    )
    return fig


def mean_spectra_figure(ds, pixels: pd.DataFrame) -> plt.Figure:
    """Mean spectrum of each class in a pixel sample, one panel per date."""
    names = exploration.channel_names(ds)
    means = pixels.groupby("label")[names].mean()
    fig, axes = plt.subplots(
        1,
        ds.n_times,
        figsize=plotting.page_size("full" if ds.n_times > 1 else "column", 2.8),
        sharey=True,
        squeeze=False,
    )
    for t, ax in enumerate(axes[0]):
        cols = names[t * len(ds.bands) : (t + 1) * len(ds.bands)]
        for label, row in means[cols].iterrows():
            ax.plot(ds.bands, row.values, marker="o", ms=2, label=label)
        ax.set_title(f"date {t + 1}" if ds.n_times > 1 else "mean spectrum")
        ax.set_xlabel("HLS band" if ds.bands == datasets.HLS_BANDS else "band")
    axes[0, 0].set_ylabel("reflectance")
    axes[0, -1].legend(fontsize=6, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.suptitle(plotting.dataset_label(ds.name, ds.simulated), y=1.04)
    return fig


def example_chips_figure(ds, chips: Sequence[str]) -> plt.Figure:
    """True colour, false colour and labels of a few chips, one row each."""
    fig, axes = plt.subplots(
        len(chips), 3, figsize=plotting.page_size("full", 2.3 * len(chips)), squeeze=False
    )
    for row, chip in zip(axes, chips, strict=True):
        a, y = ds.read_arrays(chip)
        row[0].imshow(plotting.chip_composite(a, ds.bands, "true"))
        row[1].imshow(plotting.chip_composite(a, ds.bands, "false"))
        plotting.show_labels(row[2], y, ds.num_classes, ds.ignore_index)
        for ax, title in zip(row, ["true colour", "false colour", "labels"], strict=True):
            ax.set_title(f"{chip}\n{title}", fontsize=7)
            ax.set_axis_off()
    fig.suptitle(plotting.dataset_label(ds.name, ds.simulated))
    return fig


def real_class_means(folder: str | Path, splits_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """Mean HLS-band reflectance per class of the first real Sen1Floods11 chip in ``folder`` (a sample, not a split)."""
    real = datasets.open("sen1floods11", folder, splits_dir=splits_dir)
    on_disk = sorted(p.name.removesuffix("_S2Hand.tif") for p in Path(folder).glob("**/*_S2Hand.tif"))
    a, y = real.read_arrays(on_disk[0])
    return {c: a[:, y == k].mean(axis=1) for k, c in enumerate(real.classes)}


def simulated_vs_sources_figure(
    opened: Mapping,
    names: Sequence[str],
    per_class: int,
    rng: np.random.Generator,
    max_chips: int = 20,
    real_flood: Mapping[str, np.ndarray] | None = None,
) -> plt.Figure:
    """Each simulated class's mean spectrum (dots, from a training sample) over the source spectrum it was built from.

    Lines are :func:`helpers.data.simulate.reference_class_means` (the crop task: its last date); dashed black lines,
    when ``real_flood`` is given (:func:`real_class_means`), the real Sen1Floods11 chip's classes on ``sim-flood``.
    One panel per dataset of ``names`` (a sample is drawn from ``rng`` for each, in order).
    """
    fig, axes = plt.subplots(
        1,
        max(len(names), 1),
        figsize=plotting.page_size("full" if len(names) > 1 else "column", 3),
        squeeze=False,
    )
    for ax, name in zip(axes[0], names, strict=False):
        d = opened[name]
        reference = simulate.reference_class_means(name)
        xs, ys = exploration.sample_per_class(d, "train", per_class, rng, max_chips)
        colors = sns.color_palette("tab20", d.num_classes)
        for k, cls in enumerate(d.classes):
            ref = np.asarray(reference[cls])
            ref = ref[-1] if ref.ndim == 2 else ref  # crop: compare the last date
            ax.plot(datasets.HLS_BANDS, ref, color=colors[k], lw=1, label=cls)
            if (ys == k).any():
                ax.plot(datasets.HLS_BANDS, xs[ys == k][:, -6:].mean(axis=0), "o", color=colors[k], ms=3)
        if name == "sim-flood" and real_flood is not None:
            for cls, mean in real_flood.items():
                ax.plot(
                    datasets.HLS_BANDS,
                    mean,
                    "k--" if cls == "water" else "k:",
                    lw=1,
                    label=f"real S1F11 chip: {cls}",
                )
        ax.set_title(plotting.dataset_label(name, d.simulated), fontsize=8)
        ax.set_xlabel("HLS band")
        ax.legend(fontsize=5)
    axes[0, 0].set_ylabel("reflectance")
    return fig


def sim_crop_nuisance_figure(ds, max_chips: int = 64, map_chip: str | None = None) -> plt.Figure | None:
    """What makes ``sim-crop`` (generator 2.0) hard, drawn from its files: dates, phenology spread, label noise.

    (a) the three acquisition dates of every tile against the real chip tracker's medians; (b) the NDVI
    (B8A, B04) of every field-dominated chip of corn, soybeans and alfalfa at its own dates, over the class's
    phenology curve (:func:`helpers.data.sim_crop.reference_means`): the same class at different dates and
    seasons; (c) one test chip's true map, the labels the models see, and where they differ. ``None`` when ``ds``
    has no per-chip dates (generator 1.0 data or another dataset).
    """
    ids = [c for s in ("train", "val", "test") for c in ds.chip_ids(s)][:max_chips]
    info = []
    for cid in ids:
        with rasterio.open(ds.paths(cid)[0]) as src:
            tags = src.tags()
        if "ACQUISITION_DOY" not in tags:
            return None
        info.append((cid, tags.get("TILE", ""), [int(d) for d in tags["ACQUISITION_DOY"].split(",")]))
    fig = plt.figure(figsize=plotting.page_size("full", 5.6))
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.1], hspace=0.45, wspace=0.5)
    ax = fig.add_subplot(grid[0, 0])
    tiles = sorted({t for _, t, _ in info})
    for t in tiles:
        doys = next(d for _, tt, d in info if tt == t)
        ax.plot(doys, [tiles.index(t)] * 3, "o-", ms=2.5, lw=0.6, color="0.3")
    for d in (85, 172, 256):
        ax.axvline(d, color="tab:red", lw=0.6, ls="--")
    ax.set(xlabel="day of year", ylabel="tile", title="(a) dates per tile", xlim=(50, 290))
    ax.set_yticks([])
    ndvi_of = lambda m: (m[..., 3] - m[..., 2]) / (m[..., 3] + m[..., 2] + 1e-9)  # noqa: E731
    days = np.arange(60, 300, 5)
    for j, name in enumerate(("corn", "soybeans", "alfalfa")):
        ax = fig.add_subplot(grid[0, j + 1])
        k = ds.classes.index(name)
        curve = [ndvi_of(sim_crop.reference_means((d, d, d))[name][0]) for d in days]
        ax.plot(days, curve, color="tab:green", lw=1.2, label="phenology curve")
        for cid, _, doys in info:
            a, y = ds.read_arrays(cid)
            if (y == k).sum() < 200:
                continue
            px = a.reshape(3, 6, -1)[:, :, y.ravel() == k].mean(axis=2)
            ax.plot(doys, ndvi_of(px), "o", ms=2, color="0.2", alpha=0.6)
        ax.set(title=f"({'bcd'[j]}) {name}: NDVI per chip", xlabel="day of year", ylim=(-0.2, 1.0))
        if j == 0:
            ax.set_ylabel("NDVI (B8A, B04)")
    test = ds.chip_ids("test")
    chip = map_chip or (test[0] if test else ids[0])
    _, labels = ds.read_arrays(chip)
    image_path, mask_path = ds.paths(chip)
    with rasterio.open(mask_path.with_name(f"{chip}.truth.tif")) as src:
        truth = src.read(1).astype(np.int64) - 1
    shown = [(truth, "(e) true map"), (labels, "(f) labels the models see")]
    for j, (m, title) in enumerate(shown):
        ax = fig.add_subplot(grid[1, j])
        plotting.show_labels(ax, m, ds.num_classes, ds.ignore_index)
        ax.set_title(f"{title}\n{chip}", fontsize=7)
    ax = fig.add_subplot(grid[1, 2])
    wrong = (truth != labels) & (labels != ds.ignore_index)
    ax.imshow(wrong, cmap="Greys", interpolation="nearest")
    ax.set_title(f"(g) label errors ({wrong.mean():.0%} of pixels)", fontsize=7)
    ax.set_axis_off()
    cmap = plotting.label_cmap(ds.num_classes)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(k)) for k in range(ds.num_classes)]
    fig.legend(
        handles, ds.classes, loc="lower right", bbox_to_anchor=(0.99, 0.06), ncol=1, fontsize=6, frameon=False
    )
    fig.suptitle(plotting.dataset_label(ds.name, ds.simulated) + ": dates, phenology and label noise", y=0.99)
    return fig


# ---------------------------------------------------------------------------------------------- training curves

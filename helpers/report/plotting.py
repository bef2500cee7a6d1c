"""One place that sets the look of every figure and saves it paper-ready.

Readers copy our figures into their papers, so each is written twice: a PDF with embedded TrueType fonts
(``pdf.fonttype = 42``, editable in Illustrator/Inkscape) and a 300-dpi PNG. File metadata that changes from run to
run (creation dates, software versions) is stripped so regenerating a figure from the same results does not churn
the repository.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from helpers.data.io import atomic_write

FAMILY_ORDER = ["classical", "cnn", "fm"]

#: Printed widths of a journal page (inches): one column, and the full text width (183 mm).
PAGE_WIDTH = {"column": 3.5, "full": 7.2}
#: Tallest figure a page takes (inches), caption aside.
MAX_HEIGHT = 9.0
#: Smallest text a printed figure may hold (points, at its saved size).
MIN_FONT_PT = 6.0
#: Margin ``save_figure`` leaves around the drawn content (inches, each side).
PAD_INCHES = 0.04


def setup_style() -> None:
    """Seaborn paper context, colour-blind palette, print-size fonts (6-8 pt), embedded TrueType fonts.

    The sizes are for figures drawn at their printed size (:data:`PAGE_WIDTH`), so a figure pasted into a paper at
    100 % shows 6-8 pt text: the range journals ask for.
    """
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")
    plt.rcParams.update(
        {
            "pdf.fonttype": 42,
            "ps.fonttype": 42,
            "svg.hashsalt": "fm-suitability",
            "savefig.dpi": 300,
            "figure.dpi": 100,
            "font.family": "DejaVu Sans",
            "font.size": 7,
            "axes.titlesize": 7.5,
            "axes.labelsize": 7,
            "xtick.labelsize": 6.5,
            "ytick.labelsize": 6.5,
            "legend.fontsize": 6.5,
            "legend.title_fontsize": 6.5,
            "figure.titlesize": 8,
            "lines.markersize": 4,
            "lines.linewidth": 1.1,
        }
    )


def page_size(width: str | float = "full", height: float = 4.0) -> tuple[float, float]:
    """``(width, height)`` in inches for a figure printed ``width`` wide (``"column"``, ``"full"`` or inches)."""
    w = PAGE_WIDTH[width] if isinstance(width, str) else float(width)
    return min(w, PAGE_WIDTH["full"]), min(float(height), MAX_HEIGHT)


def _texts(fig: plt.Figure) -> list:
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]


def min_font_pt(fig: plt.Figure) -> float:
    """The smallest font size of any visible text in ``fig`` (points; inf when it has none)."""
    return min((t.get_fontsize() for t in _texts(fig)), default=float("inf"))


def fit_to_page(fig: plt.Figure, width: float = PAGE_WIDTH["full"], height: float = MAX_HEIGHT) -> None:
    """Make ``fig`` print within ``width`` x ``height`` inches with no text under :data:`MIN_FONT_PT`.

    The check every saved figure goes through (:func:`save_figure`): text set smaller than 6 pt is raised to it,
    and when the drawn content (legends and labels included) is larger than the page, the figure is made smaller
    by the excess and laid out again. Fonts keep their size, so shrinking costs room for the data, never
    legibility; the figure functions are written to fit the page in the first place.
    """
    for t in _texts(fig):
        if t.get_fontsize() < MIN_FONT_PT:
            t.set_fontsize(MIN_FONT_PT)
    # the layout drawn again at save time (300 dpi, tight box) can come out a few hundredths of an inch larger
    slack = 0.05
    limit_w, limit_h = width - 2 * PAD_INCHES - slack, height - 2 * PAD_INCHES - slack
    for attempt in range(12):  # a constrained layout gives back part of each cut: cut a little more each time
        fig.canvas.draw()  # the layout as it will be saved (a figure never drawn reports a stale box)
        box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
        over_w, over_h = box.width - limit_w, box.height - limit_h
        if over_w <= 0 and over_h <= 0:
            return
        w, h = fig.get_size_inches()
        margin = 0.02 * (attempt + 1)
        fig.set_size_inches(
            max(1.0, w - (over_w + margin if over_w > 0 else 0)),
            max(1.0, h - (over_h + margin if over_h > 0 else 0)),
        )


def family_palette() -> dict[str, tuple]:
    """A fixed colour per model family, the same in every figure."""
    colors = sns.color_palette("colorblind", 3)
    return dict(zip(FAMILY_ORDER, colors, strict=True))


def dataset_label(name: str, simulated: bool | None = None) -> str:
    """How a dataset is named on a figure: simulated data always says so."""
    simulated = name.startswith("sim-") if simulated is None else simulated
    return f"{name} (simulated)" if simulated else name


def save_figure(
    fig: plt.Figure, name: str, out_dir: str | os.PathLike = "figures", *, width: str | float = "full"
) -> list[Path]:
    """Save ``fig`` page-sized (:func:`fit_to_page`) as ``<out_dir>/<name>.pdf`` and ``.png`` (300 dpi), then close it.

    Args:
        fig: The figure.
        name: File name without extension.
        out_dir: Folder (created if missing); both files are written atomically.
        width: The printed width it must fit: ``"full"`` (7.2 in), ``"column"`` (3.5 in) or inches.

    Returns:
        The two paths written.
    """
    fit_to_page(fig, page_size(width)[0])
    out_dir = Path(out_dir)
    paths = []
    for ext, metadata in (
        ("pdf", {"CreationDate": None, "Producer": None, "Creator": None}),
        ("png", {"Software": None}),
    ):

        def _write(tmp: Path, ext: str = ext, metadata: dict = metadata) -> None:
            fig.savefig(
                tmp, format=ext, dpi=300, bbox_inches="tight", pad_inches=PAD_INCHES, metadata=metadata
            )

        paths.append(atomic_write(out_dir / f"{name}.{ext}", _write))
    plt.close(fig)
    return paths


def rgb_composite(
    x: np.ndarray, bands: tuple[int, int, int] = (2, 1, 0), percentiles: tuple = (2, 98)
) -> np.ndarray:
    """A display-ready ``(H, W, 3)`` composite from ``(C, H, W)`` reflectance with a per-band percentile stretch.

    Default bands (2, 1, 0) are true colour (B04, B03, B02) for the six HLS bands; (3, 2, 1) is the classic
    NIR-red-green false colour.
    """
    img = np.stack([x[b] for b in bands], axis=-1).astype(np.float64)
    out = np.zeros_like(img)
    for i in range(3):
        lo, hi = np.percentile(img[..., i], percentiles)
        out[..., i] = np.clip((img[..., i] - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return out


def chip_composite(a: np.ndarray, band_names: Sequence[str] | None = None, kind: str = "true") -> np.ndarray:
    """A display composite of the last date of a date-major chip ``(n_dates * n_bands, H, W)``, by band name.

    Args:
        a: The chip as :meth:`~helpers.data.datasets.ChipDataset.read_arrays` returns it.
        band_names: Band names of one date (``None``: the six HLS bands).
        kind: ``"true"`` (red, green, blue) or ``"false"`` (NIR, red, green); a dataset without those bands
            gets its first three bands (:func:`helpers.data.bands.rgb`), one band a grey image.
    """
    from helpers.data import bands as _bands

    names = list(_bands.HLS_BANDS if band_names is None else band_names)
    last = a[-len(names) :]
    idx = _bands.rgb(names) if kind == "true" else _bands.false_colour(names)
    return rgb_composite(last, idx)


def label_cmap(num_classes: int):
    """A qualitative colormap for label maps; ignore (-1) pixels are drawn in light grey via masking."""
    base = sns.color_palette("tab20" if num_classes > 10 else "colorblind", num_classes)
    return matplotlib.colors.ListedColormap(base).with_extremes(bad="#dddddd")


def show_labels(ax: plt.Axes, y: np.ndarray, num_classes: int, ignore_index: int | None = -1) -> None:
    """Draw a label map with ignore pixels greyed out (``ignore_index=None``: a prediction, nothing to grey)."""
    ax.imshow(
        y if ignore_index is None else np.ma.masked_equal(y, ignore_index),
        cmap=label_cmap(num_classes),
        vmin=-0.5,
        vmax=num_classes - 0.5,
        interpolation="nearest",
    )
    ax.set_axis_off()

"""One place that sets the look of every figure and saves it paper-ready.

Readers copy our figures into their papers, so each is written twice: a PDF with embedded TrueType fonts
(``pdf.fonttype = 42``, editable in Illustrator/Inkscape) and a 300-dpi PNG. File metadata that changes from run to
run (creation dates, software versions) is stripped so regenerating a figure from the same results does not churn
the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from helpers.io import atomic_write

FAMILY_ORDER = ["classical", "cnn", "fm"]


def setup_style() -> None:
    """Seaborn paper context, colour-blind palette, embedded TrueType fonts and a fixed hash salt."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")
    plt.rcParams.update(
        {
            "pdf.fonttype": 42,
            "ps.fonttype": 42,
            "svg.hashsalt": "fm-suitability",
            "savefig.dpi": 300,
            "figure.dpi": 100,
            "font.family": "DejaVu Sans",
        }
    )


def family_palette() -> dict[str, tuple]:
    """A fixed colour per model family, the same in every figure."""
    colors = sns.color_palette("colorblind", 3)
    return dict(zip(FAMILY_ORDER, colors, strict=True))


def dataset_label(name: str, simulated: bool | None = None) -> str:
    """How a dataset is named on a figure: simulated data always says so."""
    simulated = name.startswith("sim-") if simulated is None else simulated
    return f"{name} (simulated)" if simulated else name


def save_figure(fig: plt.Figure, name: str, out_dir: str | os.PathLike = "figures") -> list[Path]:
    """Save ``fig`` as ``<out_dir>/<name>.pdf`` and ``.png`` (300 dpi), atomically, then close it.

    Returns:
        The two paths written.
    """
    out_dir = Path(out_dir)
    paths = []
    for ext, metadata in (
        ("pdf", {"CreationDate": None, "Producer": None, "Creator": None}),
        ("png", {"Software": None}),
    ):

        def _write(tmp: Path, ext: str = ext, metadata: dict = metadata) -> None:
            fig.savefig(tmp, format=ext, dpi=300, bbox_inches="tight", metadata=metadata)

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

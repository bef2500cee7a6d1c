"""What notebook 01 measures of a dataset before any model: a class-balanced pixel sample and a linear baseline.

Both read the first chips of a split (``max_chips``), so exploring a large real dataset costs seconds, and both take
the caller's random generator, so a notebook that draws several samples in a row reproduces every one of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from helpers import metrics


def sample_per_class(
    ds, split: str, per_class: int, rng: np.random.Generator, max_chips: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_class`` labelled pixels of each class from the first ``max_chips`` chips of ``split``.

    Returns:
        ``(x, y)``: ``x`` of shape ``(n, ds.n_channels)`` (every band of every date), ``y`` the class indices; empty
        arrays when the split has no chip. Classes come in index order, each class's pixels in a random order.
    """
    xs, ys = [], []
    for chip in ds.chip_ids(split)[:max_chips]:
        a, y = ds.read_arrays(chip)
        keep = y.ravel() != ds.ignore_index
        xs.append(a.reshape(a.shape[0], -1)[:, keep].T)
        ys.append(y.ravel()[keep])
    if not xs:
        return np.empty((0, ds.n_channels), np.float32), np.empty(0, np.int64)
    x, y = np.concatenate(xs), np.concatenate(ys)
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == k))[:per_class] for k in range(ds.num_classes)])
    return x[idx], y[idx]


def pixel_table(ds, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """The sample as a table: one column per band and date (``t<k>_<band>`` for several dates) and the class name."""
    names = channel_names(ds)
    return pd.DataFrame(x, columns=names).assign(label=np.asarray(ds.classes)[y])


def channel_names(ds) -> list[str]:
    """Column names of :func:`pixel_table`: the bands, prefixed by their date index when there are several dates."""
    return [f"t{t}_{b}" if ds.n_times > 1 else b for t in range(ds.n_times) for b in ds.bands]


def linear_separability(
    opened: dict, per_class: int, rng: np.random.Generator, max_chips: int = 20
) -> pd.DataFrame:
    """How far a linear discriminant on single pixels gets on each dataset: a floor for every model.

    LDA is fitted on :func:`sample_per_class` of the training split and scores every pixel of the first
    ``max_chips`` validation chips (dataset-level scores, :func:`helpers.metrics.scores`). A dataset with fewer than
    two classes in the sample or no validation chip gets a row saying so.

    Args:
        opened: ``{name: dataset}``, in the order of the rows (and of the draws from ``rng``).
        per_class: Training pixels per class.
        rng: The random generator (one sample is drawn per dataset, in order).
        max_chips: Chips read per split.
    """
    rows = []
    for name, d in opened.items():
        xt, yt = sample_per_class(d, "train", per_class, rng, max_chips)
        if len(np.unique(yt)) < 2 or not d.chip_ids("val"):
            rows.append({"dataset": name, "note": "too few classes or no validation chips"})
            continue
        lda = LinearDiscriminantAnalysis().fit(xt, yt)
        cm = np.zeros((d.num_classes, d.num_classes), np.int64)
        for chip in d.chip_ids("val")[:max_chips]:
            a, y = d.read_arrays(chip)
            pred = lda.predict(a.reshape(a.shape[0], -1).T).reshape(y.shape)
            cm += metrics.confusion_matrix(y, pred, d.num_classes, ignore_index=d.ignore_index)
        s = metrics.scores(cm)
        rows.append(
            {
                "dataset": name,
                "simulated": d.simulated,
                "oa": s["oa"],
                "miou_macro": s["miou_macro"],
                "f1_macro": s["f1_macro"],
            }
        )
    return pd.DataFrame(rows)

"""Predicted label maps of a few fixed test chips, saved by every run for side-by-side figures.

Scores summarise a whole split; a reader deciding *how* two families differ (per-pixel salt-and-pepper against
blocky patch-level output, lost field edges, a missed class) needs the maps of the **same** chips from each model.
Every runner (classical, CNN, foundation model) therefore saves its predictions of the first :data:`N_CHIPS` test
chips of a dataset, one small compressed file per (dataset, model, seed) under ``maps_dir``; notebook 05 draws the
best model of each family from them. The maps are int16 class indices (no ignore value: a model predicts every
pixel; the ground truth shows which pixels are scored).

Files are written atomically and read with ``allow_pickle=False``, so a stale or foreign file is inert.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from helpers.data.io import atomic_write
from helpers.results import RunId

#: Test chips kept per run: the first ones of the test split, in its listed order.
N_CHIPS = 3
FORMAT = 1


def chip_ids(ds, n: int = N_CHIPS) -> list[str]:
    """The test chips every run keeps maps of (the first ``n`` of the test split; empty without one)."""
    if "test" not in ds.splits:
        return []
    return list(ds.chip_ids("test")[:n])


def chips_to_save(ds, split: str, maps_dir: str | os.PathLike | None) -> list[str]:
    """The chips of ``split`` whose maps a run saves (:func:`chip_ids` of the test split; none without a folder).

    Every runner asks this one function, so all families keep the same chips.
    """
    return chip_ids(ds) if split == "test" and maps_dir is not None else []


def map_path(
    maps_dir: str | os.PathLike, dataset: str, model: str, seed: int, label_budget: str = "all"
) -> Path:
    """File of one run's maps: ``maps_dir/<dataset>/<model>/seed<seed>.npz``.

    Built by :meth:`helpers.results.RunId.map_path`: a label budget below ``all`` adds its folder level.
    """
    return RunId(dataset, model, int(seed), label_budget).map_path(maps_dir)


def save(
    maps_dir: str | os.PathLike | None,
    dataset: str,
    model: str,
    seed: int,
    maps: Mapping[str, np.ndarray],
    label_budget: str = "all",
) -> Path | None:
    """Write ``{chip_id: predicted class map (H, W)}`` for one run; nothing when ``maps_dir`` is None or no maps.

    Raises:
        ValueError: A map is not 2-D or holds a class index outside int16.
    """
    if maps_dir is None or not maps:
        return None
    ids = list(maps)
    arrays = {}
    for i, chip in enumerate(ids):
        a = np.asarray(maps[chip])
        if a.ndim != 2:
            raise ValueError(f"{dataset}/{model}: map of chip {chip!r} has shape {a.shape}; expected (H, W)")
        if a.size and (a.min() < np.iinfo(np.int16).min or a.max() > np.iinfo(np.int16).max):
            raise ValueError(f"{dataset}/{model}: map of chip {chip!r} holds values outside int16")
        arrays[f"pred_{i}"] = a.astype(np.int16)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append another ".npz"
            np.savez_compressed(f, format=np.array(FORMAT), chip_ids=np.array(ids, dtype=str), **arrays)

    return atomic_write(map_path(maps_dir, dataset, model, seed, label_budget), write)


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{chip_id: map}`` from a file written by :func:`save`.

    Raises:
        ValueError: The file is unreadable or not in this format (named in the message).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != FORMAT:
                raise ValueError(f"format {int(z['format'])}, expected {FORMAT}")
            ids = [str(c) for c in z["chip_ids"]]
            return {c: z[f"pred_{i}"] for i, c in enumerate(ids)}
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a prediction-map file of this study ({err})") from err


def load_run(
    maps_dir: str | os.PathLike, dataset: str, model: str, seeds=None
) -> tuple[int, dict[str, np.ndarray]] | None:
    """The maps of the lowest seed of ``model`` on ``dataset`` that has a file (among ``seeds`` if given).

    Returns:
        ``(seed, maps)``, or None when no run of that model saved maps there.
    """
    folder = Path(maps_dir) / dataset / model
    found = []
    for p in folder.glob("seed*.npz"):
        suffix = p.stem[len("seed") :]
        if suffix.lstrip("-").isdigit():
            found.append(int(suffix))
    if seeds is not None:
        found = [s for s in found if s in {int(x) for x in seeds}]
    if not found:
        return None
    seed = min(found)
    return seed, load(map_path(maps_dir, dataset, model, seed))


__all__ = ["N_CHIPS", "chip_ids", "chips_to_save", "load", "load_run", "map_path", "save"]

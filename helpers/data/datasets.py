"""Loaders for the study's datasets, real and simulated, in their published on-disk layouts.

One small API serves every dataset, so pointing ``data_dir`` at the real data is all a user changes::

    ds = datasets.open("sen1floods11", root)   # or "burn_scars", "crop", "sim-crop", "indian-pines-hls", ...
    ds.splits                                   # ["train", "val", "test", "bolivia"]
    x, y = ds.read(ds.chip_ids("test")[0])      # DataArray (band, y, x) | (time, band, y, x); int64 labels

Conventions (STUDY.md §2 and §4):

* Images come back as float32 surface reflectance (roughly 0..1.5) in the six HLS bands
  ``B02, B03, B04, B8A, B11, B12``; the multi-temporal crop data as ``(time, band, y, x)``.
* Labels come back as int64 class indices ``0..num_classes-1`` with every invalid pixel (no data, cloud, missing
  label, nodata in the image) set to ``ignore_index`` (-1 for every dataset).
* Crop and burn scars have no validation split apart from the one the paper tests on, so ``val`` is a seeded 10 %
  hold-out of the training chips (``val_seed``, ``val_fraction``), never taken from test. Sen1Floods11 uses its
  official validation list.

Simulated datasets (``sim-*``) and the Indian Pines scene are written by :mod:`helpers.data.simulate` in one of the three
original layouts plus a ``dataset.json`` card (class names, layout, ``simulated`` flag), and read by the same
classes in :mod:`helpers.data.chips`.

This module is the data package's front: opening by name (:mod:`helpers.data.layouts`), generating on first use and
checking every chip once (:func:`prepare`), replicates of the simulated data, and the dataset types re-exported from
:mod:`helpers.data.chips`, so ``datasets.X`` is all a notebook needs. The modules below it never import it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from helpers.data import indian_pines, labels, simulate, validate
from helpers.data.chips import (
    BURN_CLASSES,
    CROP_CLASSES,
    FLOOD_CLASSES,
    HLS_BANDS,
    IGNORE_INDEX,
    REFLECTANCE_RANGE,
    S2_BANDS,
    S2_TO_HLS,
    TRUE_LABELS_SPLIT,
    TRUTH_SUFFIX,
    BandView,
    BurnScarsDataset,
    ChipDataset,
    CropDataset,
    MissingBands,
    Sen1Floods11Dataset,
    bands_of,
    class_counts,
    fingerprint,
    holdout_split,
    read_list,
    with_bands,
)
from helpers.data.io import DataError, atomic_write
from helpers.data.layouts import REAL, generator_facts, open, read_card

#: The dataset API of the notebooks and runs: what this module defines and what it re-exports from the modules below.
__all__ = [
    "BURN_CLASSES",
    "CHECKS_DIR",
    "CROP_CLASSES",
    "FLOOD_CLASSES",
    "HLS_BANDS",
    "IGNORE_INDEX",
    "REAL",
    "REFLECTANCE_RANGE",
    "S2_BANDS",
    "S2_TO_HLS",
    "TRUE_LABELS_SPLIT",
    "TRUTH_SUFFIX",
    "BandView",
    "BurnScarsDataset",
    "ChipDataset",
    "CropDataset",
    "DataError",
    "MissingBands",
    "Sen1Floods11Dataset",
    "bands_of",
    "channel_stats",
    "checked",
    "class_counts",
    "fingerprint",
    "generator_facts",
    "holdout_split",
    "majority_floors",
    "open",
    "prepare",
    "prepare_replicates",
    "read_card",
    "read_list",
    "replicate_root",
    "varies_by_replicate",
    "with_bands",
]


def channel_stats(
    ds: ChipDataset, split: str = "train", max_chips: int = 64
) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of a split's reflectance, for models trained from scratch.

    A model trained from scratch should see inputs standardised with its own training data's statistics; a
    pretrained model keeps the statistics it was pretrained with. Global HLS statistics (Prithvi's) can be far off
    for one scene: Indian Pines' per-band spread is about 4x smaller, so standardised inputs barely vary.
    Nodata pixels (all bands of a date exactly 0, the readers' fill) are left out. At most ``max_chips`` chips,
    evenly spaced over the split list, are read (the real burn-scar training split is 3.4 GB).

    Returns:
        ``(mean, std)``, each a list of ``ds.n_channels`` floats; a constant channel gets std 1.

    Raises:
        ValueError: When the split has no valid pixel.
    """
    ds = labels.unlabelled(ds)  # imagery statistics need no labels: a label budget's view sees every chip
    ids = ds.chip_ids(split)
    if len(ids) > max_chips:
        ids = [ids[i] for i in np.linspace(0, len(ids) - 1, max_chips).round().astype(int)]
    total = np.zeros(ds.n_channels)
    total_sq = np.zeros(ds.n_channels)
    count = np.zeros(ds.n_channels)
    for chip in ids:
        a, _ = ds.read_arrays(chip)
        a = a.reshape(-1, len(bands_of(ds)), *a.shape[1:]).astype(np.float64)  # (dates, bands, H, W)
        valid = (a != 0).any(axis=1, keepdims=True) & np.isfinite(a).all(axis=1, keepdims=True)
        valid = np.broadcast_to(valid, a.shape)
        v = np.where(valid, a, 0.0).reshape(ds.n_channels, -1)
        total += v.sum(axis=1)
        total_sq += (v**2).sum(axis=1)
        count += valid.reshape(ds.n_channels, -1).sum(axis=1)
    if not (count > 0).all():
        raise ValueError(f"{ds.name}: split {split!r} has no valid pixel to compute channel statistics from")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std = np.where(std > 1e-8, std, 1.0)
    return [float(m) for m in mean], [float(s) for s in std]


def majority_floors(
    names: Sequence[str], data_dir: str | os.PathLike, *, split: str = "test", **open_kwargs
) -> tuple[dict[str, float], dict[str, str]]:
    """Share of the most frequent class among each dataset's labelled pixels of ``split``, where its data is readable.

    A map of that one class everywhere reaches this overall accuracy, so a row at or below it has learned nothing
    (notebook 05 checks every deep row and draws it on the scene figure). The report otherwise reads only the results
    table, so a dataset whose folder is absent where the report runs is returned with the reason rather than
    stopping the report; the caller says which floors are missing.

    Args:
        names: Dataset names, each opened at ``data_dir / name``.
        data_dir: The folder holding the datasets.
        split: The split whose labelled pixels are counted.
        **open_kwargs: Passed to :func:`open` (``splits_dir`` for real data stored without its split lists).

    Returns:
        ``(floors, unreadable)``: the share (0..1) per readable dataset, and the :class:`DataError` message per
        dataset that could not be opened.
    """
    floors: dict[str, float] = {}
    unreadable: dict[str, str] = {}
    for name in dict.fromkeys(names):
        try:
            counts = class_counts(open(name, Path(data_dir) / name, **open_kwargs), split)
        except DataError as err:
            unreadable[name] = str(err)
            continue
        floors[name] = float(counts.max() / counts.sum())
    return floors, unreadable


def varies_by_replicate(name: str) -> bool:
    """Whether a replicate of the study draws new data for this dataset (the simulated ones) or reuses it.

    A replicate (README: "Replicates") is a data draw together with a model seed. Only a simulator can draw new
    data; a real dataset, the Indian Pines scene included, is fixed, so its replicates differ by model seed alone and
    its intervals cover model seeds only.
    """
    return str(name).startswith("sim-")


def replicate_root(data_dir: str | os.PathLike, name: str, replicate: int = 0) -> Path:
    """The folder of one replicate's data: ``data_dir/name`` for replicate 0 and fixed data, else ``name.r<k>``.

    Replicate 0 keeps the folder a dataset always had, so a user's own scripts and a single-seed run find it where
    they did; the other draws sit beside it, one folder each, never inside it (a dataset folder holds one dataset).
    """
    if replicate == 0 or not varies_by_replicate(name):
        return Path(data_dir) / name
    return Path(data_dir) / f"{name}.r{int(replicate)}"


def prepare(
    name: str,
    data_dir: str | os.PathLike,
    *,
    size: str = "default",
    seed: int = 0,
    replicate: int = 0,
    **open_kwargs,
) -> ChipDataset:
    """Open ``data_dir/name``, generating it first if it is a generated dataset that is not there yet.

    Generated datasets (``sim-*``, ``indian-pines-hls``) are deterministic in (name, size, seed) and cached, so
    calling this again costs only the check. Real datasets are never downloaded here (tests and the chain run
    offline): a missing one gets a clear error pointing at ``python -m helpers.data.download``.

    Args:
        name: Dataset name.
        data_dir: Folder of the datasets.
        size: Generator size (``"default"``, ``"quick"``, ...) of a generated dataset.
        seed: Base generator seed of the simulated data (``sim_seed`` in the parameter files).
        replicate: Which data draw of a simulated dataset (:func:`varies_by_replicate`): replicate ``k`` is generated
            with generator seed ``seed + k`` into :func:`replicate_root`; ignored for fixed datasets.
        **open_kwargs: Passed to :func:`open`.
    """
    root = replicate_root(data_dir, name, replicate)
    if name.startswith("sim-"):
        simulate.generate(name, root, size=size, seed=seed + int(replicate))
    elif name == "indian-pines-hls":
        indian_pines.generate(root, size=size, seed=seed)
    elif name.startswith("indian-pines-scene"):
        indian_pines.generate_scene(root, name, seed=seed)
    elif name in REAL and not root.is_dir():
        raise DataError(
            f"{root}: real dataset {name!r} not found; download it with "
            f"`python -m helpers.data.download {name} --to {root}` or point data_dir at your copy"
        )
    elif name not in REAL and not root.is_dir():
        raise DataError(
            f"{root}: dataset {name!r} not found; a dataset of your own is a folder data_dir/<name> with a "
            "dataset.json card of the generic layout (README: Your own data; `python -m helpers.data.generic "
            "example DIR` writes a small one)"
        )
    ds = open(name, root, **open_kwargs)
    checked(ds, Path(data_dir))
    return ds


#: Folder under ``data_dir`` holding one marker per dataset content that passed :func:`checked`.
CHECKS_DIR = ".checks"


def checked(ds, data_dir: Path) -> None:
    """Check every chip of ``ds`` once per content (:func:`helpers.data.validate.validate_dataset`) before any run.

    Opening a dataset reads its card and first training chip only; a broken file in a test chip would otherwise
    surface deep inside a run, or never. The full check takes seconds (about 2 s for the default ``sim-crop``), and
    its pass is remembered in ``data_dir/.checks/<name>-<fingerprint>.json``, so the next notebook (or chain)
    reading the same bytes does not repeat it; changed bytes change the fingerprint and are checked again. Warnings
    are shown once, with the check; a folder that cannot be written to is simply checked every time.

    Raises:
        DataError: With the whole report (every problem, each naming its file) when the check finds an error.
    """
    marker = data_dir / CHECKS_DIR / f"{ds.name}-{fingerprint(ds)}.json"
    if marker.is_file():
        return
    report = validate.validate_dataset(ds, progress=False)
    report.raise_for_errors()
    if report.warnings:
        warnings.warn(report.format(), stacklevel=3)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        summary = {
            "name": ds.name,
            "chips": report.chips,
            "labelled": report.labelled,
            "warnings": len(report.warnings),
        }
        atomic_write(marker, lambda tmp: tmp.write_text(json.dumps(summary, sort_keys=True) + "\n"))
    except OSError:
        pass  # a read-only data folder: check again next time


def prepare_replicates(
    name: str,
    data_dir: str | os.PathLike,
    replicates: Sequence[int],
    *,
    size: str = "default",
    seed: int = 0,
    **open_kwargs,
) -> dict[int, ChipDataset]:
    """Every replicate's dataset, ``{replicate: dataset}`` (generated on first use, then only checked).

    A simulated dataset gets one data draw per replicate (:func:`prepare` with ``replicate=k``); a fixed dataset
    maps every replicate to the same opened object, so its runs share one feature and embedding cache and one
    pretraining (:mod:`helpers.runs.matrix` groups jobs by the dataset object).
    """
    reps = [int(r) for r in replicates]
    if not varies_by_replicate(name):
        ds = prepare(name, data_dir, size=size, seed=seed, **open_kwargs)
        return dict.fromkeys(reps, ds)
    return {r: prepare(name, data_dir, size=size, seed=seed, replicate=r, **open_kwargs) for r in reps}

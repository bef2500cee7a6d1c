"""Unlabelled pretraining corpora: the simulator's unlabelled imagery of each task family, read like a dataset.

A foundation model is pretrained once on abundant unlabelled imagery and fine-tuned on many tasks. The study's
in-study pretraining does the same at CPU scale: :func:`helpers.data.simulate.generate_unlabelled` writes images of
each simulated task family (same generators as the labelled chips, streams disjoint from every labelled split, no
masks), and a *pooled corpus* is the list of those families plus the training imagery of any real dataset (a real
scene contributes its own unlabelled pixels).

A :class:`Corpus` offers the two methods pretraining reads (``chip_ids("train")`` and ``read_arrays``) and the
attributes its cache key reads (``name``, ``n_times``), so :mod:`helpers.runs.pretrain` treats it like a dataset
whose every image is a training image. It has no labels: ``read_arrays`` returns ``None`` for them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import rasterio

from helpers.data import simulate
from helpers.data.io import locked

#: Reflectance fill of missing pixels, as the dataset readers write it (all bands 0).
_NODATA_IN_FILE = -9999


class Corpus:
    """One family's unlabelled images on disk (``root/images/*.tif`` and ``root/corpus.json``).

    Attributes:
        root: Corpus folder.
        name: ``<family>-unlabelled``.
        family: Simulated task family.
        n_times: Dates per image (sim-crop 3, the others 1).
        simulated: Always True (the corpus is simulated imagery).
    """

    simulated = True

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        card_path = self.root / "corpus.json"
        if not card_path.is_file():
            raise FileNotFoundError(
                f"{card_path}: corpus card not found; write the corpus first "
                "(helpers.data.simulate.generate_unlabelled)"
            )
        card = json.loads(card_path.read_text())
        missing = {"name", "family", "n_times", "n_images", "chip"} - set(card)
        if missing:
            raise ValueError(f"{card_path}: corpus card lacks {sorted(missing)}")
        self.name, self.family = str(card["name"]), str(card["family"])
        self.n_times = int(card["n_times"])
        #: Every image's shape ``(6 * n_times, chip, chip)``: pretraining reads the corpus into one block.
        self.image_shape = (6 * self.n_times, int(card["chip"]), int(card["chip"]))
        self._ids = sorted(p.stem for p in (self.root / "images").glob("u*.tif"))
        if len(self._ids) != int(card["n_images"]):
            raise ValueError(
                f"{self.root}: corpus card lists {card['n_images']} images but images/ holds {len(self._ids)}"
            )

    def chip_ids(self, split: str = "train") -> list[str]:
        """Every image for ``"train"`` (a corpus is all pretraining imagery); none for another split."""
        return list(self._ids) if split == "train" else []

    def read_arrays(self, chip_id: str) -> tuple[np.ndarray, None]:
        """One image as float32 reflectance ``(6 * n_times, H, W)``, missing pixels 0 (as the dataset readers)."""
        path = self.root / "images" / f"{chip_id}.tif"
        with rasterio.open(path) as src:
            raw = src.read()
        if raw.shape[0] != 6 * self.n_times:
            raise ValueError(
                f"{path}: {raw.shape[0]} bands, expected {6 * self.n_times} (6 HLS bands per date)"
            )
        a = raw.astype(np.float32) * np.float32(1e-4)
        a[:, (raw == _NODATA_IN_FILE).all(axis=0)] = 0.0
        return a, None

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, {len(self._ids)} images, {self.n_times} date(s))"


class UnlabelledImagery:
    """A dataset's own unlabelled images (a generic card's ``unlabelled`` folder) as a pretraining source.

    Offers what pretraining reads (``chip_ids("train")``, ``read_arrays``, ``name``, ``n_times``) and the dataset's
    ``bands``, so :func:`helpers.data.datasets.with_bands` picks a model's bands from it as from the dataset.
    """

    def __init__(self, ds) -> None:
        self._ds = ds
        self.name = f"{ds.name}-unlabelled"
        self.n_times = int(ds.n_times)
        self.bands = list(ds.bands)
        self.simulated = bool(getattr(ds, "simulated", False))
        self._ids = ds.unlabelled_ids()

    def chip_ids(self, split: str = "train") -> list[str]:
        """Every unlabelled image for ``"train"``; none for another split."""
        return list(self._ids) if split == "train" else []

    def read_arrays(self, chip_id: str) -> tuple[np.ndarray, None]:
        """One image as float32 reflectance; no labels."""
        return self._ds.read_unlabelled(chip_id), None

    def __repr__(self) -> str:
        return f"UnlabelledImagery({self.name!r}, {len(self._ids)} images)"


def unlabelled_imagery(ds) -> UnlabelledImagery | None:
    """The unlabelled images a dataset's card names, or ``None`` (views are seen through to the dataset)."""
    base = ds
    while hasattr(base, "_ds") and not hasattr(type(base), "unlabelled_ids"):
        base = base._ds
    if not hasattr(base, "unlabelled_ids") or not base.unlabelled_ids():
        return None
    return UnlabelledImagery(base)


def corpus_root(data_dir: str | os.PathLike, family: str, n: int, size: str, seed: int) -> Path:
    """Folder of one corpus: ``data_dir/corpus/<family>-n<n>-<size>-s<seed>`` (one folder per setting)."""
    return Path(data_dir) / "corpus" / f"{family}-n{int(n)}-{size}-s{int(seed)}"


def prepare_corpus(
    data_dir: str | os.PathLike, family: str, n: int, size: str = "default", seed: int = 0
) -> Corpus:
    """Open one family's corpus, writing it first if it is not there (one writer at a time, others wait)."""
    root = corpus_root(data_dir, family, n, size, seed)
    with locked(root):
        simulate.generate_unlabelled(family, root, n, size=size, seed=seed)
    return Corpus(root)

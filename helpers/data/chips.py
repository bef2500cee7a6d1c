"""The dataset types: chips of the three published layouts, the band view, and a dataset's content hash.

The bottom of the data package: everything here reads files and nothing opens a dataset by name, so the layouts
built on it (:mod:`helpers.data.generic`, :mod:`helpers.data.scene`), the label views (:mod:`helpers.data.labels`)
and the generators import it without a loop. The public API is :mod:`helpers.data.datasets`, which opens a dataset by
name and re-exports these types; conventions (bands, labels, ignore index, splits) are written there.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from helpers.data import bands as _bands
from helpers.data.io import DataError, check_aligned, read_raster

HLS_BANDS = list(_bands.HLS_BANDS)
#: Sentinel-2 L1C band order of Sen1Floods11's S2Hand files.
S2_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
#: Indices of the six HLS-equivalent bands (B2, B3, B4, B8A, B11, B12) in ``S2_BANDS``, as Prithvi uses them.
S2_TO_HLS = [1, 2, 3, 8, 11, 12]
IGNORE_INDEX = -1
#: Held-out split of a simulated dataset with label noise: the test images scored against their true labels.
TRUE_LABELS_SPLIT = "test_true_labels"
TRUTH_SUFFIX = ".truth"

CROP_CLASSES = [
    "natural_vegetation",
    "forest",
    "corn",
    "soybeans",
    "wetlands",
    "developed_barren",
    "open_water",
    "winter_wheat",
    "alfalfa",
    "fallow_idle_cropland",
    "cotton",
    "sorghum",
    "other",
]
BURN_CLASSES = ["not_burned", "burn_scar"]
FLOOD_CLASSES = ["not_water", "water"]

#: Reflectance guard: after scaling, valid pixels must stay inside this range (per-pixel outliers aside).
REFLECTANCE_RANGE = (-0.5, 5.0)


def _first_existing(candidates: Sequence[Path]) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


def read_list(path: Path) -> list[str]:
    """Chip ids from a split list: one per line (``.txt``) or the first column of an official ``.csv``."""
    ids = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        first = line.split(",")[0].strip()
        stem = first.removesuffix(".tif")
        for suffix in ("_S1Hand", "_S2Hand", "_LabelHand"):
            stem = stem.removesuffix(suffix)
        ids.append(stem)
    return ids


def holdout_split(ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split ``ids`` into (train, val) with a seeded hold-out, both kept in the input order.

    Used where a dataset has no validation split of its own: model selection then never sees the test chips.
    """
    ids = list(ids)
    n_val = int(round(fraction * len(ids))) if len(ids) >= 2 else 0
    n_val = min(max(n_val, 1 if len(ids) >= 2 and fraction > 0 else 0), len(ids) - 1 if ids else 0)
    chosen = (
        set(np.random.default_rng(seed).choice(len(ids), size=n_val, replace=False).tolist())
        if n_val
        else set()
    )
    train = [c for i, c in enumerate(ids) if i not in chosen]
    val = [c for i, c in enumerate(ids) if i in chosen]
    return train, val


class ChipDataset:
    """A labelled chip dataset on disk; subclasses know one published layout each.

    Attributes:
        name: Dataset name as used in the results table (e.g. ``"sen1floods11"``, ``"sim-crop"``).
        task: What is being mapped (``"flood"``, ``"burn"``, ``"crop"``, ``"texture"``, ``"landcover"``).
        root: The dataset folder.
        classes: Class names in label order.
        ignore_index: Label value of invalid pixels (-1).
        n_times: Number of dates per chip (3 for crop, else 1).
        bands: Band names of one date, in channel order (:mod:`helpers.data.bands`); the six HLS bands for every
            layout but the generic one.
        simulated: Whether the data is simulated (every table and figure says so).
        scale: Factor from stored values to reflectance.
        cache_mb: Decoded chips of :meth:`read_arrays` kept in memory (least recently used first out). Every row
            of a notebook re-reads the same chips (one fine-tuning run reads the train, val and test splits); on
            the default data decoding the GeoTIFFs again cost ~1.5 s per run. ``0`` turns it off; files changed
            on disk while a dataset object lives are not re-read.
    """

    layout = ""
    image_bands = 6
    offset = 0.0  # reflectance = stored value x scale + offset

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        name: str,
        task: str,
        classes: Sequence[str],
        n_times: int = 1,
        simulated: bool = False,
        scale: float = 1.0,
        splits_dir: str | os.PathLike | None = None,
        val_fraction: float = 0.1,
        val_seed: int = 0,
        cache_mb: float = 256,
        bands: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"{self.root}: dataset root for {name!r} not found (expected a folder in the {self.layout} layout)"
            )
        self.name = name
        self.task = task
        self.classes = list(classes)
        self.ignore_index = IGNORE_INDEX
        self.n_times = n_times
        self.bands = list(HLS_BANDS if bands is None else bands)
        self.simulated = simulated
        self.scale = scale
        self.splits_dir = Path(splits_dir) if splits_dir is not None else None
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.cache_mb = float(cache_mb)
        self._arrays: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._arrays_bytes = 0
        self._splits = self._list_splits()

    # ------------------------------------------------------------------ public API
    @property
    def num_classes(self) -> int:
        """Number of classes (labels ``0..num_classes-1``)."""
        return len(self.classes)

    @property
    def n_channels(self) -> int:
        """Channels of :meth:`read_arrays` output: ``len(bands)`` per date (six HLS bands but for generic data)."""
        return len(self.bands) * self.n_times

    @property
    def splits(self) -> list[str]:
        """Names of the splits, in protocol order."""
        return list(self._splits)

    def chip_ids(self, split: str) -> list[str]:
        """Chip ids of one split, in split-file order."""
        if split not in self._splits:
            raise KeyError(f"{self.name}: no split {split!r}; available: {self.splits}")
        return list(self._splits[split])

    def read(self, chip_id: str) -> tuple[xr.DataArray, np.ndarray]:
        """Read one chip as reflectance and labels.

        Returns:
            ``x``: float32 DataArray ``(band, y, x)`` or ``(time, band, y, x)``, HLS band names, CRS and transform
            kept, nodata pixels filled with 0. ``y``: int64 ``(H, W)`` labels, invalid pixels = ``ignore_index``.

        Raises:
            DataError: Missing/corrupt file, wrong band count, misaligned label, unexpected label values, or values
                that are not reflectance at the layout's scale.
        """
        image_path, label_path = self.paths(chip_id)
        raw = read_raster(image_path, bands=self.image_bands * self.n_times)
        lab = read_raster(label_path, bands=1)
        check_aligned(raw, lab, image_path, label_path)
        data, valid = self._decode_image(raw, image_path)
        labels = self._decode_label(np.asarray(lab.values[0]), label_path)
        labels[~valid] = self.ignore_index
        data = np.where(valid[None], data, np.float32(0))
        self._check_reflectance(data, valid, image_path)
        x = self._to_dataarray(data, raw, chip_id, image_path)
        return x, labels

    def read_arrays(self, chip_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Read one chip as plain arrays for models: float32 ``(6 * n_times, H, W)`` date-major, int64 ``(H, W)``.

        Served from the in-memory cache when the chip was read before (see ``cache_mb``); the caller always gets
        its own copies.
        """
        hit = self._arrays.get(chip_id)
        if hit is not None:
            self._arrays.move_to_end(chip_id)
            return hit[0].copy(), hit[1].copy()
        x, y = self.read(chip_id)
        a = np.ascontiguousarray(x.values.reshape(-1, x.sizes["y"], x.sizes["x"]), dtype=np.float32)
        size = a.nbytes + y.nbytes
        if size <= self.cache_mb * 2**20:
            self._arrays[chip_id] = (a.copy(), y.copy())
            self._arrays_bytes += size
            while self._arrays_bytes > self.cache_mb * 2**20:
                _, (old_a, old_y) = self._arrays.popitem(last=False)
                self._arrays_bytes -= old_a.nbytes + old_y.nbytes
        return a, y

    def paths(self, chip_id: str) -> tuple[Path, Path]:
        """Image and label file of a chip (checked to exist)."""
        image_path, label_path = self._require(chip_id, self._paths(chip_id))
        return image_path, label_path

    def _require(self, chip_id: str, files: Sequence[Path]) -> list[Path]:
        """``files`` of a listed chip, each checked to exist."""
        for p in files:
            if not p.is_file():
                raise DataError(
                    f"{p}: chip {chip_id!r} is listed in a split of {self.name!r} but this file is missing"
                )
        return list(files)

    def fingerprint(self) -> str:
        """16-hex-digit hash of what this dataset feeds a model: its card, split lists and every chip's bytes.

        Part of each run's ``run_key`` (:func:`helpers.results.run_key`): a regenerated dataset (new generator
        version, other seed or size), a changed split list or an edited file changes it, so the runs on it are
        redone; the same bytes under another folder or on another machine give the same value, so a fresh clone
        keeps the committed results. Computed once per dataset object (~0.1 s for the 27 MB of the default
        ``sim-crop``): files changed on disk while the object lives are not seen, as for :meth:`read_arrays`.
        """
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256()
            h.update(json.dumps(self._identity(), sort_keys=True).encode())
            for cid in sorted({c for ids in self._splits.values() for c in ids}):
                for path in self._chip_files(cid):
                    h.update(cid.encode())
                    with path.open("rb") as fh:
                        for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                            h.update(block)
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(v)}" for s, v in self._splits.items())
        sim = ", SIMULATED" if self.simulated else ""
        return f"<{type(self).__name__} {self.name!r} ({self.task}{sim}) {self.num_classes} classes, {sizes} at {self.root}>"

    # ------------------------------------------------------------------ layout hooks
    def _identity(self) -> dict:
        """What of the card enters :meth:`fingerprint` (a layout with more settings adds them)."""
        return {
            "name": self.name,
            "task": self.task,
            "classes": self.classes,
            "n_times": self.n_times,
            "scale": self.scale,
            "ignore_index": self.ignore_index,
            "splits": self._splits,
        }

    def _list_splits(self) -> dict[str, list[str]]:
        raise NotImplementedError

    def _chip_files(self, chip_id: str) -> list[Path]:
        """Every file of one chip, in the order :meth:`fingerprint` hashes them."""
        return list(self.paths(chip_id))

    def _paths(self, chip_id: str) -> tuple[Path, Path]:
        raise NotImplementedError

    def _select_bands(self, values: np.ndarray) -> np.ndarray:
        return values

    def _decode_image(self, raw: xr.DataArray, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """Scaled float32 bands and a per-pixel validity mask (declared nodata or non-finite → invalid)."""
        values = self._select_bands(np.asarray(raw.values))
        valid = (
            np.isfinite(values).all(axis=0) if values.dtype.kind == "f" else np.ones(values.shape[1:], bool)
        )
        nodata = self._image_nodata(raw)
        if nodata is not None and np.isfinite(nodata):
            valid &= ~(values == nodata).any(axis=0)
        data = values.astype(np.float32) * np.float32(self.scale)
        if self.offset:
            data += np.float32(self.offset)
        return data, valid

    def _image_nodata(self, raw: xr.DataArray) -> float | None:
        """The stored image value meaning no data: the file's declaration unless the layout knows better."""
        return raw.rio.nodata

    def _decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ shared checks
    def _check_labels(self, raw: np.ndarray, allowed: Sequence[int], path: Path) -> None:
        bad = np.setdiff1d(np.unique(raw), np.asarray(allowed))
        if bad.size:
            raise DataError(
                f"{path}: label values {bad.tolist()[:10]} outside the class set of {self.name!r}; "
                f"expected values in {sorted(set(int(a) for a in allowed))}"
            )

    def _check_reflectance(self, data: np.ndarray, valid: np.ndarray, path: Path) -> None:
        if not valid.any():
            return
        v = data[:, valid]
        lo, hi = np.percentile(v, [0.1, 99.9])
        if lo < REFLECTANCE_RANGE[0] or hi > REFLECTANCE_RANGE[1]:
            hint = ""
            if hi > 100:
                hint = " The values look like reflectance x 1e4: open the dataset with scale=1e-4."
            elif hi < 0.05 and self.scale < 1:
                hint = " The values look already scaled: open the dataset with scale=1.0."
            raise DataError(
                f"{path}: values after scaling by {self.scale:g} span {lo:.3g}..{hi:.3g} (0.1-99.9 percentile); "
                f"expected surface reflectance within {REFLECTANCE_RANGE}.{hint}"
            )

    def _to_dataarray(self, data: np.ndarray, raw: xr.DataArray, chip_id: str, path: Path) -> xr.DataArray:
        coords = {"band": self.bands, "y": raw["y"].values, "x": raw["x"].values}
        if self.n_times > 1:
            data = data.reshape(self.n_times, len(self.bands), *data.shape[1:])
            dims: tuple[str, ...] = ("time", "band", "y", "x")
            coords["time"] = np.arange(self.n_times)
        else:
            dims = ("band", "y", "x")
        x = xr.DataArray(
            data,
            dims=dims,
            coords=coords,
            name="reflectance",
            attrs={
                "dataset": self.name,
                "chip_id": chip_id,
                "source": str(path),
                "simulated": int(self.simulated),
                "units": "surface reflectance (unitless)",
            },
        )
        if raw.rio.crs is not None:
            x = x.rio.write_crs(raw.rio.crs)
        return x.rio.write_transform(raw.rio.transform())

    def _split_file(self, names: Sequence[str], subdir: str) -> Path:
        """Find a split list in the root, its ``splits/`` folder, or else the user's ``splits_dir``.

        The dataset's own lists win, so one ``splits_dir`` can be passed to every dataset of a run.
        """
        bases = [self.root, self.root / "splits", self.root / "splits" / subdir]
        if self.splits_dir is not None:
            bases += [self.splits_dir, self.splits_dir / subdir]
        found = _first_existing([b / n for b in bases for n in names])
        if found is None:
            raise DataError(
                f"{self.root}: split list not found for {self.name!r}; looked for {list(names)} in "
                f"{[str(b) for b in bases]} (pass splits_dir= to point at the official lists)"
            )
        return found


class CropDataset(ChipDataset):
    """Multi-temporal crop layout: ``training_chips/`` and ``validation_chips/`` with ``chip_<id>_merged.tif``.

    18 bands = 6 HLS bands x 3 dates, band-major per date, reflectance x 1e4; mask 0 = no data (ignored), 1..13 the
    classes (mapped to 0..12). The official "validation" split is the paper's test split; ``val`` is a seeded hold-out
    of training chips, unless the root holds an explicit ``val_data.txt`` (the simulator and Indian Pines write one).
    Where every test chip also has a ``<chip>.truth.tif`` (simulated data with label noise: the true map before the
    noise), the split ``test_true_labels`` scores the same test images against those true labels; its chip ids
    carry the suffix ``.truth``. Every family scores it like any held-out split; selection never sees it.
    """

    layout = "crop"

    def _list_splits(self) -> dict[str, list[str]]:
        sub = "multi_temporal_crop_classification"
        train_all = read_list(self._split_file(["training_data.txt"], sub))
        test = read_list(self._split_file(["validation_data.txt"], sub))
        explicit_val = self.root / "val_data.txt"
        if explicit_val.exists():
            val = read_list(explicit_val)
            unknown = set(val) - set(train_all)
            if unknown:
                raise DataError(
                    f"{explicit_val}: {len(unknown)} chip(s) not in training_data.txt, e.g. {sorted(unknown)[:3]}"
                )
            val_set = set(val)
            train = [c for c in train_all if c not in val_set]
        else:
            train, val = holdout_split(train_all, self.val_fraction, self.val_seed)
        self._dir_of = {c: "training_chips" for c in train_all} | {c: "validation_chips" for c in test}
        out = {"train": train, "val": val, "test": test}
        if test and all((self.root / "validation_chips" / f"{c}{TRUTH_SUFFIX}.tif").is_file() for c in test):
            out[TRUE_LABELS_SPLIT] = [f"{c}{TRUTH_SUFFIX}" for c in test]
            self._dir_of |= {f"{c}{TRUTH_SUFFIX}": "validation_chips" for c in test}
        return out

    def _paths(self, chip_id: str) -> tuple[Path, Path]:
        folder = self.root / self._dir_of.get(chip_id, "training_chips")
        if chip_id.endswith(TRUTH_SUFFIX):  # the same image, scored against the true (noise-free) labels
            stem = chip_id.removesuffix(TRUTH_SUFFIX)
            return folder / f"{stem}_merged.tif", folder / f"{chip_id}.tif"
        return folder / f"{chip_id}_merged.tif", folder / f"{chip_id}.mask.tif"

    def _decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        self._check_labels(raw, range(0, self.num_classes + 1), path)
        return raw.astype(np.int64) - 1  # 0 (no data) -> -1 = ignore


class BurnScarsDataset(ChipDataset):
    """HLS Burn Scars layout: ``training/`` and ``validation/`` folders of ``<stem>_merged.tif`` + ``<stem>.mask.tif``.

    Images are 6-band float32 reflectance; masks int16 with 1 burn scar, 0 not burned, -1 missing (the files declare
    nodata -1000, but missing pixels are stored as -1). ``validation/`` is the paper's test split.
    """

    layout = "burn_scars"

    def _list_splits(self) -> dict[str, list[str]]:
        out = {}
        for folder in ("training", "validation"):
            d = self.root / folder
            if not d.is_dir():
                raise DataError(
                    f"{d}: folder not found; the burn-scar layout needs training/ and validation/"
                )
            out[folder] = sorted(p.name.removesuffix("_merged.tif") for p in d.glob("*_merged.tif"))
        self._dir_of = {c: "training" for c in out["training"]} | {c: "validation" for c in out["validation"]}
        train, val = holdout_split(out["training"], self.val_fraction, self.val_seed)
        return {"train": train, "val": val, "test": out["validation"]}

    def _paths(self, chip_id: str) -> tuple[Path, Path]:
        folder = self.root / self._dir_of.get(chip_id, "training")
        return folder / f"{chip_id}_merged.tif", folder / f"{chip_id}.mask.tif"

    def _decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        self._check_labels(raw, [-1, *range(self.num_classes)], path)
        return raw.astype(np.int64)


class Sen1Floods11Dataset(ChipDataset):
    """Sen1Floods11 hand-labelled layout: ``S2Hand/``, ``LabelHand/`` (and optional ``S1Hand/``).

    S2Hand files hold 13 Sentinel-2 L1C bands as int16 reflectance x 1e4 with nodata 0; the six HLS-equivalent bands
    (B2, B3, B4, B8A, B11, B12) are kept. Labels: 1 water, 0 not water, -1 no data/cloud. Splits come from the
    official CSV lists (``flood_{train,valid,test,bolivia}_data.csv``) or the Prithvi repo's
    ``{train,val,test,bolivia}_split.txt``.
    """

    layout = "sen1floods11"
    image_bands = len(S2_BANDS)
    _split_names = {
        "train": ["flood_train_data.csv", "train_split.txt"],
        "val": ["flood_valid_data.csv", "val_split.txt"],
        "test": ["flood_test_data.csv", "test_split.txt"],
        "bolivia": ["flood_bolivia_data.csv", "bolivia_split.txt"],
    }

    def __init__(self, root: str | os.PathLike, **kwargs) -> None:
        root = Path(root)
        nested = [
            root / "HandLabeled",
            root / "data" / "flood_events" / "HandLabeled",
            root / "v1.1" / "data" / "flood_events" / "HandLabeled",
        ]
        self.hand_dir = root if (root / "S2Hand").is_dir() else (_first_existing(nested) or root)
        super().__init__(root, **kwargs)

    def _list_splits(self) -> dict[str, list[str]]:
        if not (self.hand_dir / "S2Hand").is_dir():
            raise DataError(
                f"{self.root}: no S2Hand/ folder found (looked in {self.hand_dir}); expected the HandLabeled layout"
            )
        out = {}
        for split, names in self._split_names.items():
            try:
                out[split] = read_list(self._split_file(names, "sen1floods11"))
            except DataError:
                if split == "bolivia":
                    continue  # the out-of-distribution hold-out is optional
                raise
        return out

    def _split_file(self, names: Sequence[str], subdir: str) -> Path:
        extra = [
            self.root / "splits" / "flood_handlabeled",
            self.root / "v1.1" / "splits" / "flood_handlabeled",
        ]
        found = _first_existing([b / n for b in extra for n in names])
        return found if found is not None else super()._split_file(names, subdir)

    def _paths(self, chip_id: str) -> tuple[Path, Path]:
        return (
            self.hand_dir / "S2Hand" / f"{chip_id}_S2Hand.tif",
            self.hand_dir / "LabelHand" / f"{chip_id}_LabelHand.tif",
        )

    def s1_path(self, chip_id: str) -> Path:
        """The optional Sentinel-1 (VV, VH dB) file of a chip."""
        return self.hand_dir / "S1Hand" / f"{chip_id}_S1Hand.tif"

    def read_s1(self, chip_id: str) -> xr.DataArray:
        """Sentinel-1 backscatter (VV, VH in dB) of a chip; not used by the HLS models, kept for completeness."""
        return read_raster(self.s1_path(chip_id), bands=2)

    def _select_bands(self, values: np.ndarray) -> np.ndarray:
        return values[S2_TO_HLS]

    def _decode_image(self, raw: xr.DataArray, path: Path) -> tuple[np.ndarray, np.ndarray]:
        data, valid = super()._decode_image(raw, path)
        valid &= ~(data == 0).any(axis=0)  # S2Hand marks no data with 0 whether or not the file declares it
        return data, valid

    def _decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        self._check_labels(raw, [-1, 0, 1], path)
        return raw.astype(np.int64)


class MissingBands(DataError):
    """A model needs bands that a dataset's card does not list (its row is ``not_run``, naming them)."""

    def __init__(self, dataset: str, missing: Sequence[str], have: Sequence[str], needed: Sequence[str]):
        self.missing = list(missing)
        super().__init__(
            f"{dataset}: needs the HLS bands {', '.join(needed)}; the dataset card lacks {', '.join(missing)} "
            f"(it has {', '.join(have)})"
        )


def bands_of(ds) -> list[str]:
    """Band names of one date of ``ds`` (the six HLS bands for a dataset object that does not say)."""
    return list(getattr(ds, "bands", HLS_BANDS))


class BandView:
    """A dataset seen through some of its bands, picked by name, for models pretrained on fixed bands.

    Everything but the bands is the underlying dataset's (splits, classes, ``read_arrays`` cache); its
    :meth:`fingerprint` is the dataset's and the bands chosen, so runs on the view have keys of their own.
    """

    def __init__(self, ds, bands: Sequence[str]) -> None:
        self._ds = ds
        self.bands = list(bands)
        have = bands_of(ds)
        idx = [have.index(b) for b in self.bands]
        self._channels = [t * len(have) + i for t in range(ds.n_times) for i in idx]

    def __getattr__(self, name: str):
        if name.startswith("__") or "_ds" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self._ds, name)

    @property
    def n_channels(self) -> int:
        """Channels of :meth:`read_arrays`: the chosen bands of every date."""
        return len(self._channels)

    def read_arrays(self, chip_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The underlying chip's arrays with only the chosen bands, date-major as ever."""
        a, y = self._ds.read_arrays(chip_id)
        return np.ascontiguousarray(a[self._channels]), y

    def read(self, chip_id: str) -> tuple[xr.DataArray, np.ndarray]:
        """The underlying chip as a DataArray of the chosen bands."""
        x, y = self._ds.read(chip_id)
        return x.sel(band=self.bands), y

    def fingerprint(self) -> str:
        """The dataset's content hash combined with the bands chosen."""
        return hashlib.sha256(f"{fingerprint(self._ds)}/{','.join(self.bands)}".encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"<BandView {','.join(self.bands)} of {self._ds!r}>"


def with_bands(ds, needed: Sequence[str] = HLS_BANDS):
    """``ds`` as a model that takes exactly the bands ``needed`` sees it: itself, or a :class:`BandView`.

    Prithvi, Galileo and Presto know their input bands by name, so a dataset with those bands among others (all
    13 Sentinel-2 bands, say) feeds them the ones they know; a dataset that lacks one is refused, never padded with
    a zero band.

    Raises:
        MissingBands: ``ds`` lacks some of ``needed`` (the message names them).
    """
    have = bands_of(ds)
    if have == list(needed):
        return ds
    lack = _bands.missing(have, needed)
    if lack:
        raise MissingBands(ds.name, lack, have, needed)
    return BandView(ds, needed)


def fingerprint(ds) -> str:
    """A dataset's content hash for run keys (:func:`helpers.results.run_key`).

    :meth:`ChipDataset.fingerprint` where the dataset has it; for any other object with the dataset API (the
    in-memory datasets of the tests) a hash of its name, classes, split lists and every chip's arrays.
    """
    if hasattr(ds, "fingerprint"):
        return ds.fingerprint()
    if getattr(ds, "_fingerprint", None) is not None:
        return ds._fingerprint
    h = hashlib.sha256(json.dumps([ds.name, list(ds.classes)]).encode())
    for split in ds.splits:
        for cid in ds.chip_ids(split):
            a, y = ds.read_arrays(cid)
            h.update(f"{split}/{cid}".encode())
            h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
            h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    ds._fingerprint = h.hexdigest()[:16]  # once per object, as the method does
    return ds._fingerprint


def class_counts(ds: ChipDataset, split: str) -> np.ndarray:
    """Valid pixels per class over a split (ignore excluded), chip by chip."""
    counts = np.zeros(ds.num_classes, dtype=np.int64)
    for chip in ds.chip_ids(split):
        _, y = ds.read(chip)
        counts += np.bincount(y[y != ds.ignore_index].ravel(), minlength=ds.num_classes)
    return counts

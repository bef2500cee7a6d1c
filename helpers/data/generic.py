"""A dataset of your own: any folder of image/mask GeoTIFFs with a small ``dataset.json`` card.

The three original datasets each have a loader for their published layout; everything else opens through this
one, configured by its card rather than by code (as TerraTorch's generic pixel-wise datamodule is), so the whole
study runs on another crop region, a cloud mask or a wetland map with no loader to write::

    {
      "name": "my-wetlands",            # the folder's name and the name in the results table
      "layout": "generic",
      "task": "wetland",                # free text; "flood", "burn" or "crop" test the paper's claims on it
      "bands": ["B02", "B03", "B04", "B08"],   # per date, in file order (helpers.data.bands)
      "n_times": 1,                     # dates per chip; files hold them date-major (all bands of date 1, ...)
      "classes": ["dry", "wet"],
      "class_values": [1, 2],           # mask value(s) of each class: an int or a list of ints (default 0..K-1)
      "ignore_values": [0],             # mask values that are no label (default none)
      "image_nodata": 0,                # stored image value meaning no data (default: the files' declared nodata)
      "scale": 0.0001, "offset": 0,     # reflectance = stored * scale + offset
      "images": "images/{chip}_{band}.tif",    # or "images/{chip}.tif" (one multi-band file); {date}: 1..n_times
      "masks": "masks/{chip}.tif",
      "splits": "splits",               # folder with train.txt, test.txt and, optionally, val.txt
      "crs": "EPSG:32633",              # optional: every file must be in this CRS
      "georeferenced": true,            # false: files without CRS/transform are accepted, with a warning
      "unlabelled": "unlabelled"        # optional: a folder of unlabelled images (one multi-band file each)
    }

Only ``name``, ``layout``, ``bands`` and ``classes`` are required; the rest default as shown (``images`` to
``images/{chip}.tif``, ``masks`` to ``masks/{chip}.tif``, ``task`` to ``"custom"``, ``simulated`` to false). Split
lists hold one chip id per line; without ``val.txt`` validation is a seeded 10 % hold-out of ``train`` (as for the
crop and burn-scar releases), never taken from ``test``.

**Unlabelled imagery.** A foundation model's premise is that imagery is abundant where labels are not: the card may
name a folder (``"unlabelled"``) of images without masks, one multi-band ``.tif`` per image holding every band of every
date in card order, read with the card's scale, offset and no-data value. In-study pretraining reads them beside the
training chips' imagery (:func:`helpers.runs.fm_finetuned.pretraining_inputs`); no run trains a head or scores on them.

Opening checks the card and the files it names, and reads the first training chip, so a mistake surfaces at
``datasets.open`` with the file and what was expected: unknown band names, classes that do not match their mask
values, split lists missing or overlapping, listed chips whose files are missing, wrong band counts, shape or CRS
mismatches, files without a CRS when the card does not say they may lack one, and a scale that puts values
outside the reflectance guard. Every chip read later gets the same checks.

``python -m helpers.data.generic check DIR`` reads every chip of every split (:mod:`helpers.data.validate`) and
reports every problem at once, each with its file: unreadable files, grids, CRS, mask values, undeclared NaN or
fill values, duplicate or missing chips, empty split lists, splits without a labelled pixel, and reflectance that
no real data would give; it exits non-zero on any error, then prints what the folder opens as. ``python -m
helpers.data.generic example DIR`` writes :func:`write_example`'s small dataset (4 bands, one file per band, no CRS,
2 classes), the one the README's worked example and the tests run the study on.

**Digital numbers.** Reflectance is ``stored x scale + offset``; the common products:

* HLS S30/L30, Sentinel-2 L1C/L2A before processing baseline 04.00: ``scale`` 1e-4, ``offset`` 0;
* Sentinel-2 L1C/L2A from baseline 04.00 (acquired from 25 January 2022): 1e-4 and -0.1;
* Landsat 8/9 Collection 2 Level-1 (top of atmosphere, e.g. the 38-Cloud patches): 2e-5 and -0.1;
* Landsat 8/9 Collection 2 Level-2 (surface reflectance): 2.75e-5 and -0.2.

No data is ``image_nodata`` (or the files' own nodata): -9999 (HLS), 0, or ``NaN`` (unquoted in the JSON). An
undeclared fill value, NaN, or pixels with every band 0 are refused by ``check`` rather than read as reflectance.

**Band names.** A card names bands by Sentinel-2 id or STAC common name (:mod:`helpers.data.bands`), whatever
its files are called: ``B08`` / ``nir`` is the broad NIR (842 nm), ``B8A`` / ``nir08`` the narrow one that
Prithvi, Galileo and Presto take. Landsat 8/9 band 5 (and HLS L30's ``B05``) is the narrow NIR: ``nir08``; Landsat
bands 6 and 7 are ``swir16`` and ``swir22``; ``B5``-``B7`` here are Sentinel-2's red edge.
:data:`helpers.data.validate.BAND_FILE_NAMES` lists common file names and their ids; ``check`` warns on a band
called ``nir`` (older Landsat STAC items call band 5 so) and on red-edge ids without a NIR band.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from rasterio.crs import CRS

from helpers.data import bands as _bands
from helpers.data.chips import ChipDataset, holdout_split, read_list
from helpers.data.io import DataError, atomic_write, check_aligned, read_raster, write_geotiff

LAYOUT = "generic"
CARD = "dataset.json"


def _card_error(path: Path, message: str) -> DataError:
    return DataError(f"{path}: {message}")


#: Keys every card of your own knows, whatever its layout (generic chips, or one scene: :mod:`helpers.data.scene`).
COMMON_KEYS = {
    "name",
    "layout",
    "task",
    "simulated",
    "bands",
    "n_times",
    "classes",
    "class_values",
    "ignore_values",
    "image_nodata",
    "scale",
    "offset",
    "crs",
    "georeferenced",
    "description",
    "source",
    "license",
}


_KNOWN_KEYS = COMMON_KEYS | {"images", "masks", "splits", "val_fraction", "unlabelled"}


def load_card(root: str | os.PathLike, layout: str, known: set[str]) -> tuple[Path, dict]:
    """The card of a dataset of your own as JSON, checked for its layout and for keys no layout knows.

    Raises:
        DataError: Missing or invalid JSON, a missing required key, another layout, or an unknown key (a typo
            would otherwise be ignored silently).
    """
    path = Path(root) / CARD
    if not path.is_file():
        raise _card_error(
            path, "dataset card not found (a dataset of your own needs one: README, Your own data)"
        )
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise _card_error(path, f"not valid JSON ({err})") from err
    if not isinstance(card, dict):
        raise _card_error(path, "expected a JSON object")
    for key in ("name", "layout", "bands", "classes"):
        if key not in card:
            raise _card_error(path, f"dataset card lacks {key!r}")
    if card["layout"] != layout:
        raise _card_error(path, f"layout is {card['layout']!r}; this loader reads layout {layout!r}")
    unknown = sorted(set(card) - known - {"generator"})
    if unknown:
        raise _card_error(path, f"unknown keys {unknown}; the {layout} card knows {sorted(known)}")
    return path, card


def check_common(path: Path, card: dict) -> dict:
    """The keys every layout shares (:data:`COMMON_KEYS`), checked and with their defaults filled in.

    Raises:
        DataError: Unknown band names, classes and ``class_values`` that do not match, a mask value both a class
            and ignored, a non-positive scale or ``n_times``, or a CRS rasterio does not know.
    """
    if not isinstance(card["bands"], list) or not card["bands"]:
        raise _card_error(path, "'bands' must be a non-empty list of band names")
    try:
        bands = _bands.canonical_list(card["bands"])
    except DataError as err:
        raise _card_error(path, str(err)) from err
    classes = card["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise _card_error(path, "'classes' must be a list of at least two class names")
    if len(set(classes)) != len(classes):
        raise _card_error(path, f"class names repeat: {classes}")
    values = card.get("class_values", list(range(len(classes))))
    if not isinstance(values, list) or len(values) != len(classes):
        raise _card_error(
            path,
            f"'class_values' has {len(values) if isinstance(values, list) else 'no list of'} entries for "
            f"{len(classes)} classes {classes}; give one mask value (or a list of values) per class",
        )
    per_class = [v if isinstance(v, list) else [v] for v in values]
    if not all(isinstance(v, int) and not isinstance(v, bool) for vs in per_class for v in vs) or not all(
        per_class
    ):
        raise _card_error(path, f"'class_values' must hold integers (or lists of integers); got {values}")
    flat = [v for vs in per_class for v in vs]
    if len(set(flat)) != len(flat):
        raise _card_error(path, f"a mask value maps to two classes in 'class_values': {values}")
    ignore = card.get("ignore_values", [])
    ignore = ignore if isinstance(ignore, list) else [ignore]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ignore):
        raise _card_error(path, f"'ignore_values' must be integers; got {ignore}")
    both = sorted(set(flat) & set(ignore))
    if both:
        raise _card_error(path, f"mask values {both} are both a class value and an ignore value")
    n_times = card.get("n_times", 1)
    if not isinstance(n_times, int) or n_times < 1:
        raise _card_error(path, f"'n_times' must be a positive integer; got {n_times!r}")
    scale = card.get("scale", 1.0)
    if not isinstance(scale, int | float) or not scale > 0:
        raise _card_error(path, f"'scale' must be a positive number; got {scale!r}")
    crs = card.get("crs")
    if crs is not None:
        try:
            CRS.from_user_input(crs)
        except rasterio.errors.CRSError as err:
            raise _card_error(path, f"'crs' {crs!r} is not a CRS rasterio knows ({err})") from err
    return {
        **card,
        "bands": bands,
        "file_bands": [str(b) for b in card["bands"]],
        "task": str(card.get("task", "custom")),
        "simulated": bool(card.get("simulated", False)),
        "n_times": n_times,
        "class_values": per_class,
        "ignore_values": ignore,
        "image_nodata": card.get("image_nodata"),
        "scale": float(scale),
        "offset": float(card.get("offset", 0.0)),
        "crs": crs,
        "georeferenced": bool(card.get("georeferenced", True)),
    }


def read_generic_card(root: str | os.PathLike) -> dict:
    """Read and check a generic card; returns it with every default filled in.

    Raises:
        DataError: What :func:`load_card` and :func:`check_common` refuse, or an image or mask pattern without
            ``{chip}`` (or with placeholders that cannot name its files).
    """
    path, card = load_card(root, LAYOUT, _KNOWN_KEYS)
    out = check_common(path, card)
    n_times = out["n_times"]
    images = card.get("images", "images/{chip}.tif")
    masks = card.get("masks", "masks/{chip}.tif")
    for key, pattern in (("images", images), ("masks", masks)):
        if not isinstance(pattern, str) or "{chip}" not in pattern:
            raise _card_error(path, f"{key!r} must be a path pattern with {{chip}}; got {pattern!r}")
    if "{band}" in masks or "{date}" in masks:
        raise _card_error(path, "'masks' is one file per chip: it cannot use {band} or {date}")
    if "{date}" in images and "{band}" not in images:
        raise _card_error(path, "'images' with {date} must also use {band} (one file per band and date)")
    if n_times > 1 and "{band}" in images and "{date}" not in images:
        raise _card_error(path, f"n_times is {n_times}: one file per band needs {{date}} in 'images'")
    unlabelled = card.get("unlabelled")
    if unlabelled is not None and (not isinstance(unlabelled, str) or not unlabelled):
        raise _card_error(path, f"'unlabelled' must be a folder name; got {unlabelled!r}")
    return {
        **out,
        "images": images,
        "masks": masks,
        "splits": str(card.get("splits", "splits")),
        "val_fraction": float(card.get("val_fraction", 0.1)),
        "unlabelled": unlabelled,
    }


class GenericDataset(ChipDataset):
    """A dataset of your own, laid out as its ``dataset.json`` card says (module docstring).

    Args:
        root: The dataset folder (holds ``dataset.json``).
        name: The name it is opened under; must match the card's.
        **kwargs: ``val_seed``, ``val_fraction``, ``cache_mb``, ``scale`` (override the card's).

    Raises:
        DataError: See :func:`read_generic_card` and the module docstring.
    """

    layout = LAYOUT

    def __init__(self, root: str | os.PathLike, *, name: str | None = None, **kwargs) -> None:
        root = Path(root)
        card = self._read_card(root)
        if name is not None and card["name"] != name:
            raise DataError(f"{root / CARD}: card is for {card['name']!r}, not {name!r}")
        self.card = card
        kwargs.pop("splits_dir", None)  # a generic card names its own split folder
        kwargs.setdefault("val_fraction", card["val_fraction"])
        self.offset = card["offset"]
        self._values = np.asarray([v for vs in card["class_values"] for v in vs], dtype=np.int64)
        self._classes_of = np.asarray(
            [k for k, vs in enumerate(card["class_values"]) for _ in vs], dtype=np.int64
        )
        order = np.argsort(self._values)
        self._values, self._classes_of = self._values[order], self._classes_of[order]
        self._ignore = np.asarray(card["ignore_values"], dtype=np.int64)
        self._warned = False
        super().__init__(
            root,
            name=card["name"],
            task=card["task"],
            classes=card["classes"],
            n_times=card["n_times"],
            simulated=card["simulated"],
            scale=kwargs.pop("scale", card["scale"]),
            bands=card["bands"],
            **kwargs,
        )
        self._check_files()
        first = next((ids[0] for ids in self._splits.values() if ids), None)
        if first is not None:
            self.read(first)  # the card's promises checked on real bytes before any run starts

    # ------------------------------------------------------------------ layout hooks
    @staticmethod
    def _read_card(root: Path) -> dict:
        return read_generic_card(root)

    def _identity(self) -> dict:
        c = self.card
        return {
            **super()._identity(),
            "layout": LAYOUT,
            "bands": self.bands,
            "offset": self.offset,
            "class_values": c["class_values"],
            "ignore_values": c["ignore_values"],
            "image_nodata": c["image_nodata"],
        }

    def _list_splits(self) -> dict[str, list[str]]:
        folder = self.root / self.card["splits"]

        def find(split: str) -> Path | None:
            return next((folder / f"{split}{ext}" for ext in (".txt", ".csv") if (folder / f"{split}{ext}").is_file()), None)  # fmt: skip

        out = {}
        for split in ("train", "test"):
            path = find(split)
            if path is None:
                raise DataError(
                    f"{folder}: split list {split}.txt not found; a generic dataset needs train.txt and test.txt "
                    "(one chip id per line; val.txt optional)"
                )
            out[split] = read_list(path)
            if not out[split]:
                raise DataError(f"{path}: split list is empty")
        val_path = find("val")
        if val_path is not None:
            out["val"] = read_list(val_path)
        else:
            out["train"], out["val"] = holdout_split(out["train"], self.val_fraction, self.val_seed)
        for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
            shared = sorted(set(out[a]) & set(out[b]))
            if shared:
                raise DataError(
                    f"{folder}: {len(shared)} chip(s) in both {a} and {b}, e.g. {shared[:3]}; a chip must be in "
                    "one split only (else the test score is not a held-out score)"
                )
        return {"train": out["train"], "val": out["val"], "test": out["test"]}

    def _image_paths(self, chip_id: str) -> list[Path]:
        pattern = self.card["images"]
        if "{band}" not in pattern:
            return [self.root / pattern.format(chip=chip_id)]
        return [
            self.root / pattern.format(chip=chip_id, band=b, date=t + 1)
            for t in range(self.n_times)
            for b in self.card["file_bands"]  # as the card (and so the file names) spell them
        ]

    def _paths(self, chip_id: str) -> tuple[Path, Path]:
        return self._image_paths(chip_id)[0], self.root / self.card["masks"].format(chip=chip_id)

    def _check_files(self) -> None:
        lacking = []
        for cid in sorted({c for ids in self._splits.values() for c in ids}):
            lacking += [p for p in self._chip_files(cid) if not p.is_file()]
        if lacking:
            raise DataError(
                f"{lacking[0]}: file missing ({len(lacking)} file(s) named by the card's 'images'/'masks' patterns "
                f"for chips in the split lists are missing, e.g. {[str(p) for p in lacking[:3]]})"
            )

    def _chip_files(self, chip_id: str) -> list[Path]:
        return [*self._image_paths(chip_id), self._paths(chip_id)[1]]

    def _check_reflectance(self, data: np.ndarray, valid: np.ndarray, path: Path) -> None:
        try:
            super()._check_reflectance(data, valid, path)
        except DataError as err:
            raise DataError(
                f"{err} Reflectance = stored x scale + offset, with scale {self.scale:g} and offset "
                f"{self.offset:g} from {self.root / CARD}."
            ) from None

    @contextlib.contextmanager
    def _reading(self):
        with warnings.catch_warnings():
            if not self.card["georeferenced"]:
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                # rioxarray builds pixel coordinates from the identity transform with affine's deprecated `*`
                warnings.filterwarnings("ignore", category=PendingDeprecationWarning, module="affine")
            yield

    def _check_georef(self, da: xr.DataArray, path: Path) -> None:
        crs = da.rio.crs
        if crs is None:
            if self.card["georeferenced"]:
                raise DataError(
                    f"{path}: file has no CRS; if the dataset is not georeferenced, say so in its card "
                    f'({self.root / CARD}: "georeferenced": false)'
                )
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.name}: files carry no CRS/transform ({path.name} and others); accepted because the "
                    "card says georeferenced: false. Maps are in pixel coordinates.",
                    UserWarning,
                    stacklevel=4,
                )
            return
        expected = self.card["crs"]
        if expected is not None and CRS.from_user_input(expected) != crs:
            raise DataError(f"{path}: CRS {crs} is not the card's {expected}")

    def _read_image(self, paths: Sequence[Path]) -> xr.DataArray:
        """The stored image of one chip (one multi-band file, or one file per band and date), georeference checked."""
        with self._reading():
            return self._read_image_files(paths)

    def _read_image_files(self, paths: Sequence[Path]) -> xr.DataArray:
        n_bands = len(self.bands) * self.n_times
        if len(paths) == 1:
            raw = read_raster(paths[0], bands=n_bands)
            self._check_georef(raw, paths[0])
            return raw
        parts = []
        for p in paths:
            one = read_raster(p, bands=1)
            self._check_georef(one, p)
            if parts and (one.shape != parts[0].shape or one.rio.crs != parts[0].rio.crs):
                raise DataError(
                    f"{p}: band file is {one.sizes['y']}x{one.sizes['x']} px in CRS {one.rio.crs}, but "
                    f"{paths[0].name} of the same chip is {parts[0].sizes['y']}x{parts[0].sizes['x']} px "
                    f"in CRS {parts[0].rio.crs}"
                )
            parts.append(one)
        raw = xr.concat(parts, dim="band")
        raw = raw.assign_coords(band=np.arange(1, n_bands + 1))
        if parts[0].rio.crs is not None:
            raw = raw.rio.write_crs(parts[0].rio.crs)
        raw = raw.rio.write_transform(parts[0].rio.transform())
        return raw.rio.write_nodata(parts[0].rio.nodata)

    def read(self, chip_id: str) -> tuple[xr.DataArray, np.ndarray]:
        """One chip as reflectance and labels (see :meth:`ChipDataset.read`); the card's checks on every file."""
        *paths, label_path = self._require(chip_id, self._chip_files(chip_id))
        raw = self._read_image(paths)
        with self._reading():
            lab = read_raster(label_path, bands=1)
            self._check_georef(lab, label_path)
        check_aligned(raw, lab, paths[0], label_path)
        data, valid = self._decode_image(raw, paths[0])
        labels = self._decode_label(np.asarray(lab.values[0]), label_path)
        labels[~valid] = self.ignore_index
        data = np.where(valid[None], data, np.float32(0))
        self._check_reflectance(data, valid, paths[0])
        return self._to_dataarray(data, raw, chip_id, paths[0]), labels

    def unlabelled_ids(self) -> list[str]:
        """Ids of the card's unlabelled images (file stems in its ``unlabelled`` folder); none without one.

        Raises:
            DataError: The card names a folder that is missing or holds no ``.tif``.
        """
        if self.card["unlabelled"] is None:
            return []
        folder = self.root / self.card["unlabelled"]
        ids = sorted(p.stem for p in folder.glob("*.tif")) if folder.is_dir() else []
        if not ids:
            raise DataError(
                f"{folder}: the card's 'unlabelled' folder is missing or holds no .tif (one multi-band image each)"
            )
        return ids

    def read_unlabelled(self, image_id: str) -> np.ndarray:
        """One unlabelled image as float32 reflectance ``(bands * n_times, H, W)``, no data 0, checked like a chip."""
        path = self.root / self.card["unlabelled"] / f"{image_id}.tif"
        n_bands = len(self.bands) * self.n_times
        with self._reading():
            raw = read_raster(path, bands=n_bands)
            self._check_georef(raw, path)
        data, valid = self._decode_image(raw, path)
        data = np.where(valid[None], data, np.float32(0))
        self._check_reflectance(data, valid, path)
        return np.ascontiguousarray(data, dtype=np.float32)

    def _image_nodata(self, raw: xr.DataArray) -> float | None:
        return self.card["image_nodata"] if self.card["image_nodata"] is not None else raw.rio.nodata

    def _decode_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        raw = np.asarray(raw)
        if raw.dtype.kind == "f":
            if not np.all(np.isfinite(raw) & (raw == np.round(raw))):
                raise DataError(f"{path}: mask holds non-integer values; expected integer class values")
        raw = raw.astype(np.int64)
        pos = np.clip(np.searchsorted(self._values, raw), 0, len(self._values) - 1)
        is_class = self._values[pos] == raw
        is_ignored = np.isin(raw, self._ignore)
        bad = np.unique(raw[~is_class & ~is_ignored])
        if bad.size:
            raise DataError(
                f"{path}: mask values {bad.tolist()[:10]} are neither a class value nor an ignore value of "
                f"{self.name!r} (class values {dict(zip(self.classes, self.card['class_values'], strict=True))}, "
                f"ignore {self.card['ignore_values']})"
            )
        return np.where(is_class, self._classes_of[pos], self.ignore_index)


# ------------------------------------------------------------------------------------------------ the example
EXAMPLE_NAME = "example-wetlands"
#: Mean surface reflectance of the example's two classes in B02, B03, B04, B08 (rounded from typical values of
#: vegetated land and clear open water; the example is simulated and says so in its card).
EXAMPLE_SPECTRA = {"land": (0.04, 0.07, 0.06, 0.30), "water": (0.06, 0.05, 0.03, 0.02)}


def write_example(
    root: str | os.PathLike,
    *,
    name: str = EXAMPLE_NAME,
    n_chips: int = 20,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write a small generic dataset: 4 bands (B02 B03 B04 B08), one file per band, no CRS, 2 classes.

    Water bodies are smooth random blobs whose shores are mixed pixels (a water fraction that falls from 1 to 0 over
    a few pixels; the label is water where the fraction exceeds one half), so spectra decide most pixels and context
    the shore ones; multiplicative noise of about 30 %, mostly shared by the bands of a pixel. 2 % of pixels are no data in
    the image (stored 0) and some mask pixels are unlabelled (mask 0, ``ignore_values``). Images are uint16
    reflectance x 1e4 (``scale`` 1e-4), masks uint8 with 1 land and 2 water. Splits: ``train.txt`` and
    ``test.txt``, no ``val.txt`` (validation is then held out of train). Deterministic in its arguments; the card
    says ``simulated: true``. Returns the root.
    """
    from scipy import ndimage as ndi

    root = Path(root)
    rng = np.random.default_rng(seed)
    band_names = ["B02", "B03", "B04", "B08"]
    chips = [f"chip_{i:03d}" for i in range(n_chips)]
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    means = np.asarray([EXAMPLE_SPECTRA["land"], EXAMPLE_SPECTRA["water"]], dtype=np.float64)
    for cid in chips:
        field = ndi.gaussian_filter(rng.standard_normal((size, size)), sigma=size / 8, mode="wrap")
        field = (field - np.quantile(field, rng.uniform(0.55, 0.8))) / field.std()
        water_fraction = 1.0 / (1.0 + np.exp(-field / 0.15))  # shores: mixed pixels over a few pixels
        cls = (water_fraction > 0.5).astype(np.int64)
        mixed = (
            water_fraction[None] * means[1][:, None, None]
            + (1 - water_fraction[None]) * means[0][:, None, None]
        )
        # noise mostly shared by the bands of a pixel (illumination, moisture), a little per band
        refl = (
            mixed
            * rng.lognormal(0.0, 0.3, size=(1, size, size))
            * rng.lognormal(0.0, 0.08, size=(4, size, size))
        )
        dn = np.clip(np.round(refl * 1e4), 1, 10000).astype(np.uint16)
        dn[:, rng.random((size, size)) < 0.02] = 0
        mask = (cls + 1).astype(np.uint8)
        mask[rng.random((size, size)) < 0.03] = 0
        for b, band in enumerate(band_names):
            _write_plain_tif(root / "images" / f"{cid}_{band}.tif", dn[b : b + 1], nodata=0)
        _write_plain_tif(root / "masks" / f"{cid}.tif", mask[None], nodata=None)
    n_test = max(2, n_chips // 4)
    (root / "splits" / "train.txt").write_text("\n".join(chips[:-n_test]) + "\n")
    (root / "splits" / "test.txt").write_text("\n".join(chips[-n_test:]) + "\n")
    card = {
        "name": name,
        "layout": LAYOUT,
        "task": "water",
        "simulated": True,
        "description": "Tiny simulated example of the generic layout (helpers.data.generic.write_example).",
        "bands": band_names,
        "classes": ["land", "water"],
        "class_values": [1, 2],
        "ignore_values": [0],
        "image_nodata": 0,
        "scale": 1e-4,
        "images": "images/{chip}_{band}.tif",
        "masks": "masks/{chip}.tif",
        "splits": "splits",
        "val_fraction": 0.2,
        "georeferenced": False,
        "generator": {
            "function": "helpers.data.generic.write_example",
            "n_chips": n_chips,
            "size": size,
            "seed": seed,
        },  # fmt: skip
    }
    atomic_write(root / CARD, lambda tmp: tmp.write_text(json.dumps(card, indent=2) + "\n"))
    return root


def _write_plain_tif(path: Path, data: np.ndarray, nodata: float | None) -> None:
    """A GeoTIFF with no CRS and no transform, as many public datasets ship their chips."""
    write_geotiff(path, data, crs=None, transform=None, nodata=nodata)


if __name__ == "__main__":  # the command line lives above the checks it runs (helpers.data.check)
    from helpers.data import check

    sys.exit(check.generic_main())

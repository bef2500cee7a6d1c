"""One scene of your own, read as a scene: the whole image is every model's input, the splits are label masks.

Why: most people who map land cover have one large scene (or a few) and labels on part of it, polygons digitised by
hand or field points, not a folder of chips. Cutting such a scene into isolated chips, one per spatial block, hides
from every model the context a convolution needs (on Indian Pines cut into 32 px chips every deep row fell below
the share of the most frequent class). The standard protocol of the hyperspectral literature is "whole scene in,
loss on training pixels only"; this layout is that protocol. It is *transductive*: the spectra of the validation and
test blocks pass through a model during training, unlabelled. The card's ``"input": "train-only"`` ablation zeroes
every pixel of another split's region out of the training input, so what that costs or buys is measured, not
assumed. A card::

    {
      "name": "my-scene",
      "layout": "scene",
      "task": "landcover",
      "bands": ["B02", "B03", "B04", "B8A", "B11", "B12"],
      "classes": ["water", "forest", "crop"],
      "class_values": [1, 2, 3],        # label value (raster) or attribute value (polygons) of each class
      "ignore_values": [0],             # raster label values that are no label
      "scale": 0.0001,
      "image": "scene.tif",             # one multi-band file, or "scene_{band}.tif" / "scene_{date}_{band}.tif"
      "labels": "labels.gpkg",          # a label raster on the image grid (.tif), or polygons (.gpkg, .shp, ...)
      "label_attribute": "class",       # polygons: the attribute holding each polygon's class value or class name
      "split": {"kind": "blocks", "block": 32, "guard": 0, "seed": 0, "fractions": [0.6, 0.15, 0.25]},
      "input": "scene"                  # or "train-only" (the ablation above)
    }

``split`` kinds (:mod:`helpers.data.splits`): ``blocks`` (B-px blocks assigned by seed, classes kept in train and
test where the labels allow), ``random`` (labelled pixels one by one; leaky, the reference only), and ``raster``
(``{"kind": "raster", "path": "split.tif", "values": [1, 2, 3]}``: your own split, train / val / test values on the
image grid). ``guard`` drops the labels of a split that lie within that many pixels of another split's region.
The common keys (bands, classes, scale, offset, nodata, CRS) are those of :mod:`helpers.data.generic`.

Polygons are read with pyogrio (GDAL's vector drivers, the engine behind geopandas) and burnt onto the image grid
with ``rasterio.features.rasterize`` (a pixel is labelled when its centre lies in a polygon; where polygons overlap
the later one wins).

The scene opens as one chip per split, ``scene-train``, ``scene-val`` and ``scene-test``, each the *whole* image with
the labels of its split only, so every family runs on it unchanged: classical features are computed on the whole
image (their windows cross block borders as a receptive field does), deep models train on random crops of it with
the loss on training labels only and predict it whole with overlapping windows, frozen FMs embed all of it, and
each split is scored on its own labels. Opening checks the card, the files and the split, and fails naming the file
and what was expected: labels outside the image, a CRS that differs between image and labels, a missing class
attribute, a class with no training label, a split with no label. Classes missing from validation or test are
warned about (their scores are undefined), never hidden.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio.features
import xarray as xr
from rasterio.crs import CRS

from helpers.data import splits
from helpers.data.generic import CARD, COMMON_KEYS, GenericDataset, check_common, load_card
from helpers.data.io import DataError, check_aligned, read_raster

LAYOUT = "scene"
#: The chip id of each split: the whole scene, with that split's labels.
CHIP_IDS = {s: f"scene-{s}" for s in splits.SPLITS}
INPUTS = ("scene", "train-only")
SPLIT_KINDS = ("blocks", "random", "raster")
VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb")
_KNOWN_KEYS = COMMON_KEYS | {"image", "labels", "label_attribute", "split", "input"}
_SPLIT_KEYS = {"kind", "block", "guard", "seed", "fractions", "path", "values"}


def is_scene(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a card of the scene layout (an unreadable card is left to the generic loader)."""
    try:
        card = json.loads((Path(root) / CARD).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(card, dict) and card.get("layout") == LAYOUT


def _int(value, path: Path, what: str, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise DataError(f"{path}: {what} must be an integer >= {low}; got {value!r}")
    return value


def read_scene_card(root: str | os.PathLike) -> dict:
    """Read and check a scene card; returns it with every default filled in.

    Raises:
        DataError: What :func:`helpers.data.generic.check_common` refuses, an image pattern with ``{chip}`` (a
            scene is one image), polygons without ``label_attribute``, or a ``split`` / ``input`` this layout does
            not know.
    """
    path, card = load_card(root, LAYOUT, _KNOWN_KEYS)
    out = check_common(path, card)
    image = card.get("image", "image.tif")
    if not isinstance(image, str) or "{chip}" in image:
        raise DataError(
            f"{path}: 'image' must be a file name (a scene is one image, no {{chip}}); got {image!r}"
        )
    if "{date}" in image and "{band}" not in image:
        raise DataError(f"{path}: 'image' with {{date}} must also use {{band}} (one file per band and date)")
    if out["n_times"] > 1 and "{band}" in image and "{date}" not in image:
        raise DataError(f"{path}: n_times is {out['n_times']}: one file per band needs {{date}} in 'image'")
    labels = card.get("labels", "labels.tif")
    if not isinstance(labels, str) or not labels:
        raise DataError(
            f"{path}: 'labels' must be a file name (a label raster or a vector file); got {labels!r}"
        )
    vector = Path(labels).suffix.lower() in VECTOR_SUFFIXES
    attribute = card.get("label_attribute")
    if vector and (not isinstance(attribute, str) or not attribute):
        raise DataError(
            f"{path}: 'labels' {labels!r} is a vector file: name the attribute holding each polygon's class in "
            "'label_attribute'"
        )
    split = card.get("split", {})
    if not isinstance(split, dict):
        raise DataError(f'{path}: \'split\' must be an object such as {{"kind": "blocks", "block": 32}}')
    unknown = sorted(set(split) - _SPLIT_KEYS)
    if unknown:
        raise DataError(f"{path}: unknown 'split' keys {unknown}; it knows {sorted(_SPLIT_KEYS)}")
    kind = split.get("kind", "blocks")
    if kind not in SPLIT_KINDS:
        raise DataError(f"{path}: split kind {kind!r} unknown; expected one of {list(SPLIT_KINDS)}")
    fractions = split.get("fractions", list(splits.FRACTIONS))
    try:
        splits.check_fractions(fractions)
    except (ValueError, TypeError) as err:
        raise DataError(f"{path}: split {err}") from None
    spec = {
        "kind": kind,
        "guard": _int(split.get("guard", 0), path, "split 'guard' (px)", 0),
        "seed": _int(split.get("seed", 0), path, "split 'seed'", 0),
        "fractions": [float(f) for f in fractions],
    }
    if kind == "blocks":
        spec["block"] = _int(split.get("block", 32), path, "split 'block' (px)", 1)
    if kind == "raster":
        if not isinstance(split.get("path"), str):
            raise DataError(
                f'{path}: a raster split names its file: {{"kind": "raster", "path": "split.tif"}}'
            )
        values = split.get("values", [1, 2, 3])
        if not (isinstance(values, list) and len(values) == 3 and len(set(values)) == 3):
            raise DataError(f"{path}: split 'values' must be three distinct raster values (train, val, test)")
        spec.update(path=split["path"], values=[_int(v, path, "split 'values'", -(2**31)) for v in values])
    inp = card.get("input", "scene")
    if inp not in INPUTS:
        raise DataError(f"{path}: 'input' {inp!r} unknown; expected one of {list(INPUTS)}")
    return {
        **out,
        "image": image,
        "labels": labels,
        "vector": vector,
        "label_attribute": attribute,
        "split": spec,
        "input": inp,
        "val_fraction": 0.1,  # unused: a scene's validation labels are a split of their own
        "unlabelled": None,  # a scene's unlabelled pixels are in its image already
    }


@dataclasses.dataclass(frozen=True)
class Scene:
    """The labels of a scene and where each split's lie.

    Attributes:
        labels: ``(H, W)`` int64 class index, ``ignore_index`` where unlabelled (or no data).
        regions: ``(H, W)`` int8 split region of each pixel (:mod:`helpers.data.splits`).
        label_split: ``(H, W)`` int8 split of each label kept (after the guard), ``splits.NONE`` elsewhere.
        dropped: Labels the guard dropped.
    """

    labels: np.ndarray
    regions: np.ndarray
    label_split: np.ndarray
    dropped: int


class SceneDataset(GenericDataset):
    """One scene of your own, laid out as its ``dataset.json`` card says (module docstring).

    Args:
        root: The dataset folder (holds ``dataset.json``).
        name: The name it is opened under; must match the card's.
        **kwargs: ``val_seed``, ``cache_mb``, ``scale`` (override the card's).

    Raises:
        DataError: See :func:`read_scene_card` and the module docstring.
    """

    layout = LAYOUT
    #: Classical rows sample up to their total pixel cap from the one training "chip" (helpers.runs.classical).
    whole_scene = True

    def __init__(self, root: str | os.PathLike, *, name: str | None = None, **kwargs) -> None:
        self._scene: Scene | None = None
        super().__init__(root, name=name, **kwargs)

    # ------------------------------------------------------------------ layout hooks
    @staticmethod
    def _read_card(root: Path) -> dict:
        return read_scene_card(root)

    def _identity(self) -> dict:
        c = self.card
        return {
            **super()._identity(),
            "layout": LAYOUT,
            "label_attribute": c["label_attribute"],
            "split": c["split"],
            "input": c["input"],
        }

    def _list_splits(self) -> dict[str, list[str]]:
        return {s: [CHIP_IDS[s]] for s in splits.SPLITS}

    def _image_paths(self, chip_id: str) -> list[Path]:
        pattern = self.card["image"]
        if "{band}" not in pattern:
            return [self.root / pattern]
        return [
            self.root / pattern.format(band=b, date=t + 1)
            for t in range(self.n_times)
            for b in self.card["file_bands"]
        ]

    def _label_files(self) -> list[Path]:
        path = self.root / self.card["labels"]
        if path.suffix.lower() != ".shp":
            return [path]
        # a shapefile is several files; those present are hashed with it (the .dbf holds the classes)
        return [path, *(p for p in (path.with_suffix(s) for s in (".shx", ".dbf", ".prj")) if p.is_file())]

    def _chip_files(self, chip_id: str) -> list[Path]:
        extra = [self.root / self.card["split"]["path"]] if self.card["split"]["kind"] == "raster" else []
        return [*self._image_paths(chip_id), *self._label_files(), *extra]

    def _paths(self, chip_id: str) -> tuple[Path, Path]:
        return self._image_paths(chip_id)[0], self.root / self.card["labels"]

    # ------------------------------------------------------------------ reading
    def _split_of(self, chip_id: str) -> int:
        for k, s in enumerate(splits.SPLITS):
            if CHIP_IDS[s] == chip_id:
                return k
        raise DataError(
            f"{self.root}: {self.name!r} is a scene; its chips are {list(CHIP_IDS.values())}, not {chip_id!r}"
        )

    def read(self, chip_id: str) -> tuple[xr.DataArray, np.ndarray]:
        """The whole scene as reflectance, with the labels of ``chip_id``'s split only (the rest ``ignore_index``).

        With ``"input": "train-only"`` the training chip's pixels in another split's region read as no data (0).
        """
        k = self._split_of(chip_id)
        paths = self._require(chip_id, self._image_paths(chip_id))
        raw = self._read_image(paths)
        data, valid = self._decode_image(raw, paths[0])
        scene = self.scene(raw, valid, paths[0])
        labels = np.where(scene.label_split == k, scene.labels, self.ignore_index)
        hide = ~valid
        if self.card["input"] == "train-only" and k == 0:
            hide = hide | ((scene.regions != splits.NONE) & (scene.regions != k))
        data = np.where(hide[None], np.float32(0), data)
        self._check_reflectance(data, valid, paths[0])
        return self._to_dataarray(data, raw, chip_id, paths[0]), labels

    def scene(
        self, raw: xr.DataArray | None = None, valid: np.ndarray | None = None, image_path=None
    ) -> Scene:
        """The scene's labels and split (read, split and checked once per dataset object)."""
        if self._scene is None:
            if raw is None:
                image_path = self._require(CHIP_IDS["train"], self._image_paths(CHIP_IDS["train"]))[0]
                raw = self._read_image(self._image_paths(CHIP_IDS["train"]))
                valid = self._decode_image(raw, image_path)[1]
            labels = self._read_labels(raw, image_path)
            labels[~valid] = self.ignore_index
            regions = self._regions(labels, raw, image_path)
            labelled = labels != self.ignore_index
            label_split = splits.guard_labels(regions, labelled, self.card["split"]["guard"])
            dropped = int((labelled & (regions != splits.NONE) & (label_split == splits.NONE)).sum())
            self._scene = Scene(labels, regions, label_split, dropped)
            self._check_split(self._scene)
        return self._scene

    def _read_labels(self, raw: xr.DataArray, image_path: Path) -> np.ndarray:
        path = self._require("labels", self._label_files())[0]
        if not self.card["vector"]:
            with self._reading():
                lab = read_raster(path, bands=1)
                self._check_georef(lab, path)
            check_aligned(raw, lab, image_path, path)
            return self._decode_label(np.asarray(lab.values[0]), path)
        return self._rasterize(path, raw, image_path)

    def _rasterize(self, path: Path, raw: xr.DataArray, image_path: Path) -> np.ndarray:
        import pyogrio
        import shapely

        attribute = self.card["label_attribute"]
        try:
            info = pyogrio.read_info(path)
        except Exception as err:  # noqa: BLE001 - GDAL's errors name the problem; ours names the file
            raise DataError(f"{path}: not a vector file GDAL can read ({err})") from None
        fields = [str(f) for f in info["fields"]]
        if attribute not in fields:
            raise DataError(
                f"{path}: attribute {attribute!r} (the card's 'label_attribute') not found; the file has {fields}"
            )
        meta, _, wkb, (values,) = pyogrio.raw.read(path, columns=[attribute])
        image_crs = raw.rio.crs
        if (
            meta["crs"] is not None
            and image_crs is not None
            and CRS.from_user_input(meta["crs"]) != image_crs
        ):
            raise DataError(
                f"{path}: labels are in CRS {meta['crs']}, the image {image_path.name} in {image_crs}; reproject "
                "one of them (the labels are burnt onto the image grid as they are)"
            )
        geoms = shapely.from_wkb(wkb)
        index = self._polygon_classes(values, path, attribute)
        keep = index >= 0  # polygons of an ignore value carry no label
        left, bottom, right, top = raw.rio.bounds()
        outside = ~shapely.intersects(geoms, shapely.box(left, bottom, right, top)) & keep
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            raise DataError(
                f"{path}: {int(outside.sum())} of {len(geoms)} labelled polygons lie outside the image "
                f"{image_path.name} (bounds {left:g}, {bottom:g}, {right:g}, {top:g}), e.g. feature {first} at "
                f"{shapely.bounds(geoms[first]).round(3).tolist()}"
            )
        shape = (raw.sizes["y"], raw.sizes["x"])
        if not keep.any():
            return np.full(shape, self.ignore_index, dtype=np.int64)
        burnt = rasterio.features.rasterize(
            zip(geoms[keep], index[keep] + 1, strict=True),
            out_shape=shape,
            transform=raw.rio.transform(),
            fill=0,
            dtype="int32",
        )
        return np.where(burnt > 0, burnt.astype(np.int64) - 1, self.ignore_index)

    def _polygon_classes(self, values: np.ndarray, path: Path, attribute: str) -> np.ndarray:
        """Class index of each polygon from its attribute: a class name, or a class value of the card (-1: ignore)."""
        values = np.asarray(values)
        if values.dtype.kind in "OUS":
            names = np.asarray([str(v) for v in values])
            known = np.isin(names, self.classes)
            if not known.all():
                raise DataError(
                    f"{path}: attribute {attribute!r} holds {sorted(set(names[~known]))[:10]}, which are not classes "
                    f"of the card ({self.classes})"
                )
            return np.asarray([self.classes.index(n) for n in names], dtype=np.int64)
        decoded = self._decode_label(values.reshape(1, -1), path)[0]  # class values, or ignore values (-1)
        return np.where(decoded == self.ignore_index, -1, decoded)

    def _regions(self, labels: np.ndarray, raw: xr.DataArray, image_path: Path) -> np.ndarray:
        spec = self.card["split"]
        if spec["kind"] == "blocks":
            try:
                assignment = splits.assign_blocks(
                    labels,
                    self.num_classes,
                    spec["block"],
                    spec["fractions"],
                    seed=spec["seed"],
                    guard=spec["guard"],
                )
            except ValueError as err:
                raise DataError(
                    f"{self.root / self.card['labels']}: {err} (no labelled pixel on valid image data)"
                ) from None
            return splits.block_regions(labels.shape, spec["block"], assignment)
        if spec["kind"] == "random":
            return splits.random_regions(labels != self.ignore_index, spec["fractions"], seed=spec["seed"])
        path = self._require("split", [self.root / spec["path"]])[0]
        with self._reading():
            split = read_raster(path, bands=1)
            self._check_georef(split, path)
        check_aligned(raw, split, image_path, path)
        values = np.asarray(split.values[0])
        regions = np.full(labels.shape, splits.NONE, dtype=np.int8)
        for k, v in enumerate(spec["values"]):
            regions[values == v] = k
        return regions

    def _check_split(self, scene: Scene) -> None:
        spec, where = self.card["split"], self.root / self.card["labels"]
        how = (
            f"split {spec['kind']}"
            + (f", block {spec['block']} px" if "block" in spec else "")
            + f", guard {spec['guard']} px"
        )
        counts = splits.label_counts(scene.labels, scene.label_split, self.num_classes)
        for s, c in counts.items():
            if not c.sum():
                raise DataError(
                    f"{where}: split {s!r} holds no label ({how}); a smaller block or guard may leave it some"
                )
        lacking = [self.classes[i] for i in np.flatnonzero(counts["train"] == 0)]
        if lacking:
            raise DataError(
                f"{where}: class(es) {lacking} have no training label ({how}); a model cannot learn them: give them "
                "labels in the training region, change the split's seed or block, or drop them from the card"
            )
        for s in ("val", "test"):
            missing = [self.classes[i] for i in np.flatnonzero(counts[s] == 0)]
            if missing:
                warnings.warn(
                    f"{self.name}: class(es) {missing} have no {s} label ({how}); their {s} scores are undefined",
                    UserWarning,
                    stacklevel=3,
                )

    def split_labels(self, chip_id: str) -> np.ndarray:
        """The labels of ``chip_id``'s split only (``ignore_index`` elsewhere), without reading the image again."""
        scene = self.scene()
        return np.where(scene.label_split == self._split_of(chip_id), scene.labels, self.ignore_index)

    def score_units(self, chip_id: str) -> np.ndarray | None:
        """Each pixel's spatial unit (its block) for scoring ``chip_id`` unit by unit; ``None`` without blocks.

        A scene's split is one "chip", so a bootstrap over test chips would have one chip to resample: scored block
        by block, the test split's blocks are its independent units, as a chip dataset's chips are
        (:func:`helpers.runs.runner.units_as_chips`). A random-pixel split has no such unit, nor a split raster of
        your own (its regions need not be blocks): both keep one chip.
        """
        self._split_of(chip_id)
        spec = self.card["split"]
        if spec["kind"] != "blocks":
            return None
        return splits.block_ids(self.scene().labels.shape, spec["block"])

    @property
    def protocol(self) -> str:
        """The split protocol in a few words, as every row of a run on this scene records it (``protocol``)."""
        spec = self.card["split"]
        words = [f"scene {spec['kind']}"]
        if "block" in spec:
            words.append(f"{spec['block']} px")
        words.append(f"guard {spec['guard']} px")
        if self.card["input"] != "scene":
            words.append(f"input {self.card['input']}")
        return ", ".join(words) + (" (leaky)" if spec["kind"] == "random" else "")

    def describe(self) -> str:
        """What the folder opens as: the image, the split, and the labels of each split per class."""
        scene = self.scene()
        counts = splits.label_counts(scene.labels, scene.label_split, self.num_classes)
        spec = self.card["split"]
        h, w = scene.labels.shape
        lines = [
            f"{self.name}: one scene, {h} x {w} px, {len(self.bands)} bands x {self.n_times} date(s), "
            f"{'SIMULATED' if self.simulated else 'real'} data",
            f"split: {spec['kind']}"
            + (f", blocks of {spec['block']} px" if "block" in spec else "")
            + f", guard {spec['guard']} px ({scene.dropped} labels dropped), seed {spec['seed']}; input: {self.card['input']}",
        ]
        width = max(len(c) for c in self.classes)
        lines.append(f"  {'class':<{width}}  " + "  ".join(f"{s:>7}" for s in splits.SPLITS))
        for i, c in enumerate(self.classes):
            lines.append(f"  {c:<{width}}  " + "  ".join(f"{int(counts[s][i]):>7}" for s in splits.SPLITS))
        return "\n".join(lines)


def write_example(
    root: str | os.PathLike, *, size: int = 96, seed: int = 0, block: int = 16, guard: int = 0
) -> Path:
    """Write a small SIMULATED scene with sparse polygon labels: a GeoTIFF and a GeoPackage, and its card.

    Six HLS bands of 0.0001 reflectance in a UTM grid of 20 m pixels, three classes painted as fields (water,
    forest, crop) with a little texture, and one labelled rectangle per field drawn inside it (sparse labels, as a
    person digitising would leave them). The README's worked example and the tests run the study on it.

    Returns:
        The dataset root.
    """
    import pyogrio.raw
    import shapely

    from helpers.data.io import atomic_write, write_geotiff

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    spectra = np.array(
        [
            [0.06, 0.05, 0.03, 0.02, 0.01, 0.01],  # water
            [0.03, 0.05, 0.03, 0.35, 0.17, 0.08],  # forest
            [0.05, 0.09, 0.07, 0.30, 0.25, 0.15],  # crop
        ]
    )
    field = 12
    n = -(-size // field)
    fields = rng.integers(0, 3, size=(n, n))
    cls = np.kron(fields, np.ones((field, field), dtype=np.int64))[:size, :size]
    image = spectra[cls].transpose(2, 0, 1) * (1 + 0.05 * rng.standard_normal((6, size, size)))
    stored = np.clip(np.round(image * 1e4), 1, 10000).astype(np.int16)
    x0, y0, px = 600000.0, 5000020.0, 20.0
    transform = rasterio.transform.from_origin(x0, y0, px, px)
    write_geotiff(root / "scene.tif", stored, crs="EPSG:32633", transform=transform, nodata=-9999)
    boxes, values = [], []
    for r in range(n):
        for c in range(n):
            if rng.random() < 0.25:
                continue  # a field nobody labelled
            top, left = r * field + int(rng.integers(1, 4)), c * field + int(rng.integers(1, 4))
            hgt, wid = int(rng.integers(3, 8)), int(rng.integers(3, 8))
            if top + hgt > size or left + wid > size:
                continue
            boxes.append(
                shapely.box(x0 + left * px, y0 - (top + hgt) * px, x0 + (left + wid) * px, y0 - top * px)
            )
            values.append(int(fields[r, c]) + 1)

    # GDAL stamps a GeoPackage with the time of writing: a fixed stamp keeps the bytes (and so the dataset's
    # fingerprint and every run key on it) the same for the same seed
    before = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2000-01-01T00:00:00.000Z"})
    try:
        # GDAL names the file itself, so the temporary is a folder beside the target
        with tempfile.TemporaryDirectory(dir=root, prefix=".labels.") as tmp:
            pyogrio.raw.write(
                Path(tmp) / "labels.gpkg",
                shapely.to_wkb(np.asarray(boxes, dtype=object)),
                [np.asarray(values, dtype=np.int32)],
                ["class"],
                layer="labels",
                geometry_type="Polygon",
                crs="EPSG:32633",
                driver="GPKG",
            )
            os.replace(Path(tmp) / "labels.gpkg", root / "labels.gpkg")
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": before})
    card = {
        "name": root.name,
        "layout": LAYOUT,
        "task": "landcover",
        "simulated": True,
        "description": "SIMULATED example scene (helpers.data.scene.write_example): fields with sparse polygon labels",
        "bands": ["B02", "B03", "B04", "B8A", "B11", "B12"],
        "classes": ["water", "forest", "crop"],
        "class_values": [1, 2, 3],
        "scale": 0.0001,
        "image_nodata": -9999,
        "crs": "EPSG:32633",
        "image": "scene.tif",
        "labels": "labels.gpkg",
        "label_attribute": "class",
        "split": {"kind": "blocks", "block": block, "guard": guard, "seed": seed},
    }
    atomic_write(root / CARD, lambda tmp: tmp.write_text(json.dumps(card, indent=2) + "\n"))
    return root


if __name__ == "__main__":  # the command line lives above the checks it runs (helpers.data.check)
    from helpers.data import check

    sys.exit(check.scene_main())

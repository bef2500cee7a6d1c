"""Check a whole dataset before any run: every chip of every split, every problem at once, each naming its file.

Opening a dataset (:func:`helpers.data.datasets.open`) checks the card and the first training chip, and every chip
is checked again when it is read; a broken test chip then fails deep inside a notebook, or never (a fill value that
passes the reflectance guard reaches the models as data). :func:`validate` reads every chip of every split once,
vectorised per chip, and collects every problem instead of stopping at the first, so a user fixes a folder in one
pass. ``python -m helpers.data.generic check DIR`` prints its report and exits non-zero on any error.

What it checks, and why each is an error (the run would fail, or silently compute something else) or a warning
(the run is fine, but a user should know):

* **Card** (errors): the card itself (:func:`helpers.data.generic.read_generic_card`), its ``name`` against its
  folder (the chain finds a dataset as ``data_dir/<name>``). Warnings: ``class_values`` left out (it defaults to
  ``0..K-1``), band names that are ambiguous (:data:`BAND_FILE_NAMES`: ``nir`` is the broad Sentinel-2 B08 here;
  ``B5`` is Sentinel-2's red edge, not Landsat's NIR).
* **Split lists** (errors): ``train``/``test`` missing, any list empty (an empty ``val.txt`` fails the deep runs
  much later), a chip listed twice in one list (it also moves the validation hold-out), a chip in two splits, a
  listed chip whose files are missing.
* **Files** (errors): unreadable or truncated files, a text file where a GeoTIFF should be, band counts, grids
  (image and mask size, band files of one chip), CRS and transform mismatches inside a chip, files without CRS
  unless the card says ``"georeferenced": false``, a CRS other than the card's.
* **Masks** (errors): values that are neither a class value nor an ignore value, non-integer values.
* **Image values** (errors): NaN or ±inf not declared as no data; common fill values (:data:`FILL_VALUES`, e.g.
  -9999) or pixels with every band 0 stored as data; any value below -0.5 reflectance (not a reflectance: a fill
  value the card does not declare); more than 0.1 % of a chip above 5.0 (the loaders' guard). Fewer values above
  5.0 are a warning. A chip with no valid pixel at all is a warning (it adds nothing to any score).
* **Labels** (errors): a split with no labelled pixel (its scores cannot be computed), a class that occurs in no
  split. A class absent from one split is a warning.
* **Plausibility** (:func:`plausibility`): the reflectance of the whole dataset after the card's ``scale`` and
  ``offset``, against what real data gives; implausible figures are refused with the measured percentiles and the
  scale/offset conventions (:data:`DN_CONVENTIONS`) that would make the stored values plausible.

Non-generic datasets (the simulated ones, the three originals) are checked through their own loaders
(:func:`validate_dataset`): every chip is read, each failure is collected, and the split, label and plausibility
checks run on what the loader returns.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from tqdm.auto import tqdm

from helpers.data import generic, layouts
from helpers.data.chips import REFLECTANCE_RANGE, holdout_split, read_list
from helpers.data.io import DataError

ERROR, WARNING = "error", "warning"

#: Stored values that mark "no data" in common products when a file forgets to declare it: -9999 (HLS, many
#: float rasters), -10000, the int16 minima, float32's lowest value (GDAL's default fill of float rasters).
FILL_VALUES: tuple[float, ...] = (-9999.0, -10000.0, -32768.0, -32767.0, float(np.finfo(np.float32).min))

#: Reflectance thresholds on the whole dataset (all bands, every valid pixel), after the card's scale and offset,
#: set from the pooled percentiles of every real and simulated dataset of the study (``benchmarks/README.md``,
#: "Reflectance plausibility"): the lowest 99th percentile measured was 0.33, and no value was negative.
LOW_P99_ERROR = 0.05  # 99th percentile below this: 6.6x below the lowest measured (0.33); scale 10x too small
LOW_P99_WARNING = (
    0.15  # below the lowest measured by 2x: a scale too small, or a dataset of dark surfaces only
)
HIGH_P1_ERROR = (
    0.25  # 1st percentile above this: 10x the highest measured (0.024); DNs with too large a scale
)
HIGH_P1_WARNING = 0.08  # no dark pixel at all: an offset missing (Sentinel-2 baseline >= 04.00 adds 0.1)
NEGATIVE = -0.05  # below this a value is negative beyond atmospheric-correction noise (HLS: about -0.01)
NEGATIVE_SHARE = (
    0.01  # share of valid values below NEGATIVE that is refused (measured: 0 in all of the above)
)
ABOVE_RANGE_SHARE = (
    1e-3  # share of a chip's values above REFLECTANCE_RANGE[1] the loaders refuse (0.1-99.9 %)
)
SAMPLE_PER_CHIP = (
    4096  # stored values per chip kept for the dataset's percentiles (a strided, deterministic sample)
)

#: Stored digital numbers and the scale and offset that turn them into reflectance (reflectance = DN x scale +
#: offset), tried in this order when a dataset's values are implausible.
DN_CONVENTIONS: tuple[tuple[str, float, float], ...] = (
    ("Sentinel-2 L1C/L2A (and HLS S30/L30), processing baseline before 04.00", 1e-4, 0.0),
    ("Sentinel-2 L1C/L2A with processing baseline >= 04.00 (acquired from 25 January 2022)", 1e-4, -0.1),
    ("Landsat 8/9 Collection 2 Level-1 (top-of-atmosphere, e.g. 38-Cloud)", 2e-5, -0.1),
    ("Landsat 8/9 Collection 2 Level-2 (surface reflectance)", 2.75e-5, -0.2),
    ("reflectance stored as is (float)", 1.0, 0.0),
)

#: Common band names in file names -> the id a card should give them (:mod:`helpers.data.bands`), with why. The
#: trap: Landsat 8/9 (and HLS L30, which keeps Landsat's numbers) call their narrow NIR band 5 and their SWIR
#: bands 6 and 7, which are Sentinel-2's red-edge bands B05-B07 here; ``nir`` (STAC's broad NIR) is Sentinel-2
#: B08, while older Landsat STAC items also call band 5 ``nir``.
BAND_FILE_NAMES: dict[str, tuple[str, str]] = {
    "nir": ("B08", "STAC 'nir' is the broad NIR, Sentinel-2 B08 (842 nm); a narrow NIR is 'nir08' / 'B8A'"),
    "nir_broad": ("B08", "broad NIR, Sentinel-2 B08"),
    "nir_narrow": ("B8A", "narrow NIR, Sentinel-2 B8A = Landsat 8/9 band 5"),
    "nirn": ("B8A", "narrow NIR, Sentinel-2 B8A = Landsat 8/9 band 5"),
    "landsat b5": ("B8A", "Landsat 8/9 band 5 (865 nm) is the narrow NIR: 'nir08' / 'B8A'"),
    "hls l30 b05": ("B8A", "HLS L30 keeps Landsat's numbers: its B05 is the narrow NIR, 'B8A'"),
    "landsat b6": ("B11", "Landsat 8/9 band 6 (1610 nm) is SWIR 1: 'swir16' / 'B11'"),
    "landsat b7": ("B12", "Landsat 8/9 band 7 (2200 nm) is SWIR 2: 'swir22' / 'B12'"),
    "sr_b1": ("B01", "Landsat Collection 2 Level-2 band 1, coastal aerosol"),
    "sr_b2": ("B02", "Landsat Collection 2 Level-2 band 2, blue"),
    "sr_b3": ("B03", "Landsat Collection 2 Level-2 band 3, green"),
    "sr_b4": ("B04", "Landsat Collection 2 Level-2 band 4, red"),
    "sr_b5": ("B8A", "Landsat Collection 2 Level-2 band 5, narrow NIR"),
    "sr_b6": ("B11", "Landsat Collection 2 Level-2 band 6, SWIR 1"),
    "sr_b7": ("B12", "Landsat Collection 2 Level-2 band 7, SWIR 2"),
    "swir1": ("B11", "SWIR 1 (1610 nm): 'swir16' / 'B11'"),
    "swir2": ("B12", "SWIR 2 (2200 nm): 'swir22' / 'B12'"),
    "aerosol": ("B01", "coastal aerosol: 'coastal' / 'B01'"),
    "rededge1": ("B05", "red edge 1 (705 nm): 'rededge071' / 'B05'"),
    "rededge2": ("B06", "red edge 2 (740 nm): 'rededge075' / 'B06'"),
    "rededge3": ("B07", "red edge 3 (783 nm): 'rededge078' / 'B07'"),
    "watervapour": ("B09", "water vapour: 'nir09' / 'B09'"),
}


@dataclass(frozen=True)
class Problem:
    """One problem found: how bad, which sort (to group the report), the file it is in, what was expected."""

    severity: str
    kind: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


@dataclass
class Report:
    """What :func:`validate` found: every problem, and the figures it measured.

    Attributes:
        root: The dataset folder.
        name: The dataset's name (the card's).
        problems: Every error and warning, in the order found.
        chips: Chips per split (as the loader will use them: ``val`` held out of ``train`` without ``val.txt``).
        labelled: Labelled pixels per split (class pixels where the image is valid).
        class_pixels: Labelled pixels per class, per split.
        reflectance: Pooled percentiles of the valid reflectance ({"p1": ..., "p50": ..., "p99": ...}).
        seconds: Wall time of the check.
    """

    root: Path
    name: str = ""
    problems: list[Problem] = field(default_factory=list)
    chips: dict[str, int] = field(default_factory=dict)
    labelled: dict[str, int] = field(default_factory=dict)
    class_pixels: dict[str, list[int]] = field(default_factory=dict)
    reflectance: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def errors(self) -> list[Problem]:
        """The problems that stop a run."""
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        """The problems a user should know of, which do not stop a run."""
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def ok(self) -> bool:
        """No error (warnings allowed)."""
        return not self.errors

    def add(self, severity: str, kind: str, path: str | Path, message: str) -> None:
        """Record one problem."""
        self.problems.append(Problem(severity, kind, str(path), message))

    def format(self, limit: int = 10) -> str:
        """The report as text: errors first, at most ``limit`` lines per sort of problem (the rest counted)."""
        sizes = ", ".join(f"{s} {n}" for s, n in self.chips.items()) or "none read"
        lines = [
            f"{self.root}: {len(self.errors)} error(s), {len(self.warnings)} warning(s); "
            f"chips per split: {sizes}; {self.seconds:.1f} s"
        ]
        for severity in (ERROR, WARNING):
            groups: dict[str, list[Problem]] = {}
            for p in self.problems:
                if p.severity == severity:
                    groups.setdefault(p.kind, []).append(p)
            for group in groups.values():
                lines += [f"  {p}" for p in group[:limit]]
                if len(group) > limit:
                    lines.append(f"  ... and {len(group) - limit} more {severity}(s) of the same sort")
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        """Raise :class:`~helpers.data.io.DataError` with the whole report when there is any error."""
        if self.errors:
            raise DataError(self.format())


# ------------------------------------------------------------------------------------------------ entry points
def validate(root: str | Path, *, progress: bool = True) -> Report:
    """Check every chip of every split of the dataset in ``root``; never raises for bad data.

    A generic card (``"layout": "generic"``) gets the file-level checks of the module docstring; a generated
    dataset's card (``sim-*``, ``indian-pines-hls``) is opened with its loader and checked by
    :func:`validate_dataset`.

    Args:
        root: The dataset folder (holds ``dataset.json``).
        progress: Show a tqdm bar over the chips.

    Returns:
        The :class:`Report`; ``report.ok`` is false when any error was found.
    """
    start = time.perf_counter()
    root = Path(root)
    report = Report(root=root, name=root.name)
    card_path = root / generic.CARD
    try:
        raw_card = json.loads(card_path.read_text()) if card_path.is_file() else None
    except json.JSONDecodeError:
        raw_card = None  # read_generic_card says what is wrong
    if isinstance(raw_card, dict) and raw_card.get("layout", generic.LAYOUT) != generic.LAYOUT:
        try:
            ds = layouts.open(str(raw_card.get("name", root.name)), root)
        except DataError as err:
            report.add(ERROR, "open", card_path, _strip_path(str(err), card_path))
            report.seconds = time.perf_counter() - start
            return report
        return validate_dataset(ds, progress=progress)
    try:
        card = generic.read_generic_card(root)
    except DataError as err:
        report.add(ERROR, "card", card_path, _strip_path(str(err), card_path) + _band_hint(str(err)))
        report.seconds = time.perf_counter() - start
        return report
    report.name = card["name"]
    _check_card(card, raw_card or {}, root, card_path, report)
    splits, lists = _check_splits(card, root, report)
    chips = sorted({c for ids in splits.values() for c in ids})
    per_chip: dict[str, _ChipResult] = {}
    checker = _GenericChips(card, root, report)
    for cid in tqdm(chips, desc=f"check {card['name']}", unit="chip", disable=not progress, file=sys.stderr):
        per_chip[cid] = checker.check(cid)
    _check_labels(card["classes"], splits, lists, per_chip, card_path, report)
    plausibility(per_chip.values(), card["scale"], card["offset"], card_path, report)
    report.seconds = time.perf_counter() - start
    return report


def validate_dataset(ds, *, progress: bool = True) -> Report:
    """Check an opened dataset of any layout by reading every chip through its own loader.

    A generic dataset gets :func:`validate` on its folder (file-level checks); any other layout has every chip
    read with ``ds.read``, each failure collected (the loaders' messages name the file), then the split, label and
    plausibility checks of :func:`validate` on what the loader returned (no data is the loaders' fill, 0).

    Args:
        ds: A :class:`~helpers.data.datasets.ChipDataset` (or a view with its API).
        progress: Show a tqdm bar over the chips.
    """
    if getattr(ds, "layout", "") == "generic":
        return validate(ds.root, progress=progress)
    start = time.perf_counter()
    root = Path(ds.root)
    card_path = (
        root / "dataset.json" if (root / "dataset.json").is_file() else root
    )  # the originals have none
    report = Report(root=root, name=ds.name)
    _check_folder_name(ds.name, root, card_path, report)
    splits = {s: ds.chip_ids(s) for s in ds.splits}
    lists = {s: f"the {s} split of {ds.name}" for s in splits}
    for split, ids in splits.items():
        _check_duplicates(ids, lists[split], report)
    main_splits = {s: splits[s] for s in ("train", "val", "test") if s in splits}
    _check_overlaps(main_splits, lists, report)
    per_chip: dict[str, _ChipResult] = {}
    chips = sorted({c for ids in splits.values() for c in ids})
    for cid in tqdm(chips, desc=f"check {ds.name}", unit="chip", disable=not progress, file=sys.stderr):
        result = _ChipResult(counts=None)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                x, y = ds.read(cid)
        except DataError as err:
            report.add(
                ERROR, "read", _first_path(str(err), root), _strip_path(str(err), _first_path(str(err), root))
            )
            per_chip[cid] = result
            continue
        a = np.asarray(x.values, dtype=np.float64).reshape(-1, *y.shape)
        valid = (a != 0).any(axis=0) & np.isfinite(a).all(axis=0)
        result.counts = np.bincount(y[(y >= 0) & valid].ravel(), minlength=ds.num_classes)
        result.add_values(a[:, valid].ravel(), 1.0, 0.0)
        per_chip[cid] = result
    _check_labels(list(ds.classes), splits, lists, per_chip, card_path, report, legend=True)
    plausibility(
        per_chip.values(), float(ds.scale), float(getattr(ds, "offset", 0.0)), card_path, report, stored=False
    )
    report.seconds = time.perf_counter() - start
    return report


# ------------------------------------------------------------------------------------------------ card and splits
def _check_card(card: dict, raw: dict, root: Path, card_path: Path, report: Report) -> None:
    _check_folder_name(card["name"], root, card_path, report)
    if "class_values" not in raw:
        k = len(card["classes"])
        report.add(
            WARNING,
            "class_values",
            card_path,
            f"'class_values' is not given, so the classes {card['classes']} defaulted to mask values "
            f'{list(range(k))}; write "class_values": {list(range(k))} into the card if that is meant',
        )
    nodata = card.get("image_nodata")
    if nodata is not None and (isinstance(nodata, bool) or not isinstance(nodata, int | float)):
        report.add(
            ERROR,
            "card",
            card_path,
            f"'image_nodata' must be a number, got {nodata!r} (NaN is written NaN, without quotes)",
        )
    rename = (
        "; with one file per band the file names follow the card's band names, so rename those files too"
        if "{band}" in card["images"]
        else ""
    )
    for given in card["file_bands"]:
        if given.strip().lower() == "nir":
            report.add(
                WARNING,
                "band_name",
                card_path,
                f"band {given!r} is read as the broad NIR B08 (Sentinel-2 B08, 842 nm); if the files hold a narrow "
                "NIR (Sentinel-2 B8A, Landsat 8/9 band 5, HLS L30 B05), name it 'nir08' or 'B8A' (the pretrained "
                f"models take B8A, never B08){rename}",
            )
    have = set(card["bands"])
    if have & {"B05", "B06", "B07"} and not have & {"B08", "B8A"}:
        odd = [
            g for g, c in zip(card["file_bands"], card["bands"], strict=True) if c in {"B05", "B06", "B07"}
        ]
        report.add(
            WARNING,
            "band_name",
            card_path,
            f"bands {odd} are read as Sentinel-2's red-edge bands B05-B07 (705-783 nm), and the card has no NIR; "
            "if these are Landsat 8/9 bands 5, 6, 7 (or HLS L30's B05-B07), name them 'nir08', 'swir16', "
            f"'swir22' (B8A, B11, B12){rename}",
        )


def _check_folder_name(name: str, root: Path, card_path: Path, report: Report) -> None:
    folder = root.resolve().name
    if folder != name and not re.fullmatch(re.escape(name) + r"\.r\d+", folder):
        report.add(
            ERROR,
            "name",
            card_path,
            f"the card's name is {name!r} but its folder is {folder!r}; the chain finds a dataset as "
            "data_dir/<name>, so rename the folder or the card's 'name' to match",
        )


def _band_hint(message: str) -> str:
    match = re.search(r"unknown band name '([^']*)'", message)
    if not match:
        return ""
    key = match.group(1).strip().lower().replace("-", "").replace(" ", "")
    hit = BAND_FILE_NAMES.get(key)
    return f" Files named {match.group(1)!r} usually hold {hit[0]}: {hit[1]}." if hit else ""


def _check_splits(card: dict, root: Path, report: Report) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The splits as the loader builds them, and the list file each comes from; problems into ``report``."""
    folder = root / card["splits"]

    def find(split: str) -> Path | None:
        return next(
            (folder / f"{split}{e}" for e in (".txt", ".csv") if (folder / f"{split}{e}").is_file()), None
        )

    raw: dict[str, list[str]] = {}
    lists: dict[str, str] = {}
    for split in ("train", "val", "test"):
        path = find(split)
        if path is None:
            if split != "val":
                report.add(
                    ERROR,
                    "split_list",
                    folder / f"{split}.txt",
                    "split list not found; a generic dataset needs train.txt and test.txt (one chip id per line; "
                    "val.txt optional)",
                )
            continue
        lists[split] = str(path)
        ids = read_list(path)
        if not ids:
            what = (
                "list its validation chips, or delete it to hold validation out of train.txt"
                if split == "val"
                else "list one chip id per line"
            )
            report.add(ERROR, "split_list", path, f"split list is empty; {what}")
        _check_duplicates(ids, path, report)
        raw[split] = ids
    splits = {s: list(ids) for s, ids in raw.items()}
    if "val" not in raw and "train" in raw:
        splits["train"], splits["val"] = holdout_split(raw["train"], card["val_fraction"], 0)
        lists["val"] = f"{lists['train']} (its seeded {card['val_fraction']:g} validation hold-out)"
    _check_overlaps({s: raw[s] for s in raw}, lists, report)
    listed_in = {c: s for s in ("test", "val", "train") for c in raw.get(s, [])}
    chip_files = _chip_files(card, root)
    for cid in sorted(listed_in):
        for path in chip_files(cid):
            if not path.is_file():
                report.add(
                    ERROR,
                    "missing_file",
                    path,
                    f"file missing: chip {cid!r} is listed in {Path(lists[listed_in[cid]]).name} and the card's "
                    f"'images'/'masks' patterns name this file",
                )
    return {s: splits[s] for s in ("train", "val", "test") if s in splits}, lists


def _chip_files(card: dict, root: Path) -> Callable[[str], list[Path]]:
    """The loader's own naming of a chip's files (image files, then the mask), without opening anything."""
    namer = generic.GenericDataset.__new__(generic.GenericDataset)  # only the attributes _chip_files reads
    namer.root, namer.card, namer.n_times = root, card, card["n_times"]
    return namer._chip_files


def _check_duplicates(ids: Sequence[str], where: str | Path, report: Report) -> None:
    twice = sorted(c for c, n in Counter(ids).items() if n > 1)
    if twice:
        report.add(
            ERROR,
            "duplicate",
            where,
            f"{len(twice)} chip id(s) listed more than once, e.g. {twice[:3]}; each chip once (a repeated chip "
            "weighs double in training and moves the validation hold-out)",
        )


def _check_overlaps(splits: dict[str, list[str]], lists: dict[str, str], report: Report) -> None:
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(set(splits[a]) & set(splits[b]))
            if shared:
                report.add(
                    ERROR,
                    "overlap",
                    lists[a],
                    f"{len(shared)} chip(s) also listed in {lists[b]}, e.g. {shared[:3]}; a chip must be in one "
                    "split only (else the held-out score is not held out)",
                )


# ------------------------------------------------------------------------------------------------ chips
@dataclass
class _ChipResult:
    """What one chip adds to the dataset's figures."""

    counts: np.ndarray | None  # labelled pixels per class, None when the mask could not be read
    n_values: int = 0
    n_negative: int = 0
    sample: np.ndarray = field(default_factory=lambda: np.empty(0))

    def add_values(self, stored: np.ndarray, scale: float, offset: float) -> None:
        """Count one chip's valid stored values and keep a strided sample of them for the percentiles."""
        self.n_values += stored.size
        self.n_negative += int(np.count_nonzero(stored * scale + offset < NEGATIVE))
        step = max(1, stored.size // SAMPLE_PER_CHIP)
        self.sample = np.asarray(stored[::step], dtype=np.float64)


def _looks_like_text(path: Path) -> str | None:
    """The first characters of ``path`` when it is a text file (GDAL reads some as XYZ grids), else ``None``."""
    try:
        with path.open("rb") as fh:
            head = fh.read(256)
    except OSError:
        return None
    if not head or b"\x00" in head or head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text.strip().splitlines()[0][:40] if text.strip() else ""


@dataclass
class _Raster:
    data: np.ndarray
    crs: CRS | None
    transform: rasterio.Affine
    nodata: float | None
    georeferenced: bool


class _GenericChips:
    """Reads the files of one generic chip at a time and checks them against the card."""

    def __init__(self, card: dict, root: Path, report: Report) -> None:
        self.card, self.root, self.report = card, root, report
        self.chip_files = _chip_files(card, root)
        self.crs = CRS.from_user_input(card["crs"]) if card["crs"] is not None else None
        self.n_bands = len(card["bands"]) * card["n_times"]
        values = np.asarray([v for vs in card["class_values"] for v in vs], dtype=np.int64)
        classes_of = np.asarray([k for k, vs in enumerate(card["class_values"]) for _ in vs], dtype=np.int64)
        order = np.argsort(values)
        self.values, self.classes_of = values[order], classes_of[order]
        self.ignore = np.asarray(card["ignore_values"], dtype=np.int64)
        nodata = card["image_nodata"]
        self.card_nodata = (
            float(nodata) if isinstance(nodata, int | float) and not isinstance(nodata, bool) else None
        )

    def _open(self, path: Path, bands: int, what: str) -> _Raster | None:
        if not path.is_file():
            return None  # reported with the split lists
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    r = _Raster(src.read(), src.crs, src.transform, src.nodata, src.crs is not None)
        except (rasterio.errors.RasterioError, OSError, ValueError) as err:
            text = _looks_like_text(path)
            if text is not None:
                msg = f"is a text file (starts {text!r}), not a GeoTIFF; expected the {what} as a GeoTIFF"
            else:
                # GDAL's own words are under rasterio's "Read failed. See previous exception for details."
                cause = err.__cause__ if err.__cause__ is not None else err
                msg = (
                    f"cannot read the {what} ({cause}); the file ({path.stat().st_size} bytes) is truncated or "
                    "corrupt: copy or export it again"
                )
            self.report.add(ERROR, "unreadable", path, msg)
            return None
        if r.data.shape[0] != bands:
            self.report.add(
                ERROR, "band_count", path, f"expected {bands} band(s) in the {what}, found {r.data.shape[0]}"
            )
            return None
        if r.crs is None and self.card["georeferenced"]:
            self.report.add(
                ERROR,
                "no_crs",
                path,
                f"file has no CRS; if the dataset is not georeferenced, say so in its card "
                f'({self.root / "dataset.json"}: "georeferenced": false)',
            )
        elif r.crs is not None and self.crs is not None and r.crs != self.crs:
            self.report.add(ERROR, "crs", path, f"CRS {r.crs} is not the card's {self.card['crs']}")
        return r

    def _same_grid(self, r: _Raster, path: Path, ref: _Raster, ref_path: Path, what: str) -> bool:
        h, w = r.data.shape[1:]
        rh, rw = ref.data.shape[1:]
        if (h, w) != (rh, rw):
            self.report.add(
                ERROR,
                "grid",
                path,
                f"{what} is {h}x{w} px, but {ref_path.name} of the same chip is {rh}x{rw} px",
            )
            return False
        if r.crs is not None and ref.crs is not None and r.crs != ref.crs:
            self.report.add(ERROR, "crs", path, f"{what} is in CRS {r.crs}, but {ref_path.name} in {ref.crs}")
            return False
        if r.georeferenced and ref.georeferenced:
            tol = 1e-3 * max(abs(ref.transform.a), abs(ref.transform.e), 1e-12)
            if not np.allclose(tuple(r.transform)[:6], tuple(ref.transform)[:6], rtol=0, atol=tol):
                self.report.add(
                    ERROR,
                    "transform",
                    path,
                    f"{what}'s transform {tuple(round(v, 6) for v in tuple(r.transform)[:6])} differs from "
                    f"{ref_path.name}'s {tuple(round(v, 6) for v in tuple(ref.transform)[:6])}: the pixels do not "
                    "line up",
                )
                return False
        return True

    def check(self, cid: str) -> _ChipResult:
        """Every check of one chip; its label counts and values for the dataset's figures."""
        *image_paths, mask_path = self.chip_files(cid)
        per_band = len(image_paths) > 1
        rasters = [
            self._open(p, 1 if per_band else self.n_bands, "band" if per_band else "image")
            for p in image_paths
        ]
        image_ok = all(r is not None for r in rasters)
        if image_ok and per_band:
            image_ok = all(
                self._same_grid(r, p, rasters[0], image_paths[0], "band file")
                for r, p in zip(rasters[1:], image_paths[1:], strict=True)
            )
        mask = self._open(mask_path, 1, "mask")
        if mask is not None and image_ok:
            mask_ok = self._same_grid(mask, mask_path, rasters[0], image_paths[0], "mask")
        else:
            mask_ok = mask is not None
        valid = None
        result = _ChipResult(counts=None)
        if image_ok:
            valid = self._check_image(cid, image_paths, rasters, result)
        if mask_ok:
            result.counts = self._check_mask(mask.data[0], mask_path, valid)
        return result

    def _check_image(
        self, cid: str, paths: list[Path], rasters: list[_Raster], result: _ChipResult
    ) -> np.ndarray:
        """The chip's valid pixels, as the loader will see them; undeclared no data and range problems reported."""
        stack = np.concatenate([r.data for r in rasters]) if len(rasters) > 1 else rasters[0].data
        channel_file = paths if len(paths) > 1 else paths * stack.shape[0]
        # the loader's rule: the card's image_nodata, else the first file's declared nodata
        nodata = self.card_nodata if self.card_nodata is not None else rasters[0].nodata
        declared = "the card's 'image_nodata'" if self.card_nodata is not None else "the files' nodata"
        how = f"{declared} is {nodata:g}" if nodata is not None else "no image nodata is declared"
        valid = self._undeclared_nodata(cid, stack, channel_file, nodata, how)
        if not valid.any():
            self.report.add(
                WARNING,
                "empty_chip",
                paths[0],
                f"chip {cid!r} has no valid pixel ({how}): it adds nothing to training or to any score",
            )
            return valid
        self._check_range(stack[:, valid], channel_file)
        result.add_values(stack[:, valid].ravel(), self.card["scale"], self.card["offset"])
        return valid

    def _undeclared_nodata(
        self, cid: str, stack: np.ndarray, channel_file: list[Path], nodata: float | None, how: str
    ) -> np.ndarray:
        """Valid pixels; NaN/inf, common fill values and all-zero pixels that nothing declares are errors."""
        nan_declared = nodata is not None and math.isnan(nodata)
        valid = np.ones(stack.shape[1:], bool)
        if stack.dtype.kind == "f":
            finite = np.isfinite(stack)
            nan = np.isnan(stack)
            valid &= finite.all(axis=0)  # the loader drops these whatever is declared
            bad = ~finite & ~nan if nan_declared else ~finite
            for c in np.flatnonzero(bad.any(axis=(1, 2))):
                kinds = "NaN" if not (bad[c] & ~nan[c]).any() else "NaN or infinite"
                self.report.add(
                    ERROR,
                    "nan",
                    channel_file[c],
                    f"{int(bad[c].sum())} pixel(s) are {kinds}, but {how}; the loader would drop them silently. If "
                    'NaN marks no data, declare it in the card ("image_nodata": NaN); else repair the values',
                )
        if nodata is not None and not nan_declared:
            valid &= ~(stack == nodata).any(axis=0)
        fills = np.isin(stack, FILL_VALUES) & valid[None]
        for c in np.flatnonzero(fills.any(axis=(1, 2))):
            vals = np.unique(stack[c][fills[c]])
            seen = float(vals[0]) * self.card["scale"] + self.card["offset"]
            self.report.add(
                ERROR,
                "fill_value",
                channel_file[c],
                f"{int(fills[c].sum())} pixel(s) store {', '.join(f'{v:g}' for v in vals)}, a common fill value, "
                f"but {how}; they would reach the models as reflectance {seen:g}. If it marks no data, declare it "
                f'in the card ("image_nodata": {float(vals[0]):g})',
            )
        valid &= ~fills.any(axis=0)
        nb = len(self.card["bands"])
        if nb >= 2 and nodata != 0:  # one band alone can be 0 for real; every band of a pixel hardly
            by_date = stack.reshape(self.card["n_times"], nb, *stack.shape[1:])
            zero = (by_date == 0).all(axis=1).any(axis=0) & valid
            if zero.any():
                self.report.add(
                    ERROR,
                    "fill_value",
                    channel_file[0],
                    f"{int(zero.sum())} pixel(s) of chip {cid!r} store 0 in every band of a date, but {how}; the "
                    "study's statistics treat such pixels as no data while the models would read them as data. "
                    'If 0 marks no data, declare it in the card ("image_nodata": 0)',
                )
                valid &= ~zero
        return valid

    def _check_range(self, stored: np.ndarray, channel_file: list[Path]) -> None:
        """Per band file: any value below -0.5 reflectance, or a share above 5.0 the loader refuses."""
        scale, offset = self.card["scale"], self.card["offset"]
        refl = stored.astype(np.float64) * scale + offset
        lo, hi = REFLECTANCE_RANGE
        below = refl < lo
        for c in np.flatnonzero(below.any(axis=1)):
            low = refl[c].min()
            self.report.add(
                ERROR,
                "range",
                channel_file[c],
                f"{int(below[c].sum())} value(s) below {lo:g} reflectance (lowest {low:.4g}, stored "
                f"{(low - offset) / scale:.6g}; scale {scale:g}, offset {offset:g}): not a reflectance. A no-data "
                "value the card does not declare ('image_nodata')?",
            )
        above = refl > hi
        for c in np.flatnonzero(above.any(axis=1)):
            share = above[c].mean()
            self.report.add(
                ERROR if share > ABOVE_RANGE_SHARE else WARNING,
                "range",
                channel_file[c],
                f"{int(above[c].sum())} value(s) ({share:.2%}) above {hi:g} reflectance (highest "
                f"{refl[c].max():.4g}; scale {scale:g}, offset {offset:g}); expected surface reflectance, at most "
                f"{ABOVE_RANGE_SHARE:.1%} of a chip beyond {hi:g}",
            )

    def _check_mask(self, raw: np.ndarray, path: Path, valid: np.ndarray | None) -> np.ndarray | None:
        if raw.dtype.kind == "f":
            if not np.all(np.isfinite(raw) & (raw == np.round(raw))):
                self.report.add(
                    ERROR, "mask_values", path, "mask holds non-integer values; expected integer class values"
                )
                return None
        raw = raw.astype(np.int64)
        pos = np.clip(np.searchsorted(self.values, raw), 0, len(self.values) - 1)
        is_class = self.values[pos] == raw
        bad = np.unique(raw[~is_class & ~np.isin(raw, self.ignore)])
        if bad.size:
            expected = dict(zip(self.card["classes"], self.card["class_values"], strict=True))
            self.report.add(
                ERROR,
                "mask_values",
                path,
                f"mask values {bad.tolist()[:10]} are neither a class value nor an ignore value (class values "
                f"{expected}, ignore {self.card['ignore_values']})",
            )
        labelled = is_class if valid is None else is_class & valid
        return np.bincount(self.classes_of[pos][labelled], minlength=len(self.card["classes"]))


# ------------------------------------------------------------------------------------------------ dataset level
def _check_labels(
    classes: list[str],
    splits: dict[str, list[str]],
    lists: dict[str, str],
    per_chip: dict[str, _ChipResult],
    card_path: Path,
    report: Report,
    legend: bool = False,
) -> None:
    """Labelled pixels per split and class: an unscorable split is an error, a missing class a warning.

    A class in no split at all is an error on a card of your own (the card promises a class the masks never hold),
    and a warning when ``legend`` is set: a generated task's classes are its fixed legend, and a small draw (the
    quick size) may hold no pixel of a rare class.
    """
    seen = np.zeros(len(classes), dtype=np.int64)
    for split, ids in splits.items():
        readable = [
            per_chip[c].counts for c in dict.fromkeys(ids) if c in per_chip and per_chip[c].counts is not None
        ]
        counts = np.sum(readable, axis=0) if readable else np.zeros(len(classes), dtype=np.int64)
        report.chips[split] = len(ids)
        report.labelled[split] = int(counts.sum())
        report.class_pixels[split] = [int(n) for n in counts]
        seen += counts
        if not ids:
            continue
        if len(readable) < len(set(ids)):
            continue  # unreadable masks are errors already; their labels are unknown
        if counts.sum() == 0:
            report.add(
                ERROR,
                "no_labels",
                lists[split],
                f"split {split!r} has no labelled pixel in its {len(ids)} chip(s) (every mask value is an ignore "
                "value or no data in the image): its scores cannot be computed",
            )
            continue
        absent = [c for c, n in zip(classes, counts, strict=True) if n == 0]
        if absent:
            report.add(
                WARNING,
                "absent_class",
                lists[split],
                f"class(es) {absent} have no labelled pixel in split {split!r}"
                + (
                    ": no model can learn them"
                    if split == "train"
                    else ": their per-class scores are undefined"
                ),
            )
    complete = all(c in per_chip and per_chip[c].counts is not None for ids in splits.values() for c in ids)
    never = [c for c, n in zip(classes, seen, strict=True) if n == 0]
    if never and complete:
        report.add(
            WARNING if legend else ERROR,
            "never_class",
            card_path,
            f"class(es) {never} occur in no chip of any split; remove them from 'classes' (and 'class_values') or "
            "check their mask values",
        )


def _percentiles(sample: np.ndarray, scale: float, offset: float) -> dict[str, float]:
    p = np.percentile(sample * scale + offset, [0.1, 1, 50, 99, 99.9])
    return dict(zip(("p0.1", "p1", "p50", "p99", "p99.9"), (float(v) for v in p), strict=True))


def likely_conventions(sample: np.ndarray) -> list[str]:
    """The :data:`DN_CONVENTIONS` under which stored values ``sample`` look like reflectance, with the figures.

    Plausible: 1st percentile >= -0.05, 99th percentile in [0.15, 1.6], median <= 0.6 (the measured real data sit
    well inside; clouds and snow push the 99th percentile toward 1).
    """
    out = []
    for what, scale, offset in DN_CONVENTIONS:
        p = _percentiles(sample, scale, offset)
        if p["p1"] >= NEGATIVE and LOW_P99_WARNING <= p["p99"] <= 1.6 and p["p50"] <= 0.6:
            out.append(f"scale {scale:g}, offset {offset:g} ({what}: 1-99 % {p['p1']:.3f}..{p['p99']:.3f})")
    return out


def plausibility(
    results: Iterable[_ChipResult],
    scale: float,
    offset: float,
    card_path: Path,
    report: Report,
    *,
    stored: bool = True,
) -> None:
    """Whole-dataset reflectance against what real data gives (thresholds above); errors say what scale fits.

    Args:
        results: Per-chip results (their samples of stored values and counts).
        scale: The card's scale.
        offset: The card's offset.
        card_path: The card, named in every message (the scale and offset live there).
        report: Where problems and the measured percentiles go.
        stored: Whether the samples are stored values (a generic card) or already reflectance (a loader's).
    """
    results = list(results)
    samples = [r.sample for r in results if r.sample.size]
    if not samples:
        return
    sample = np.concatenate(samples)
    if not stored:
        scale, offset = 1.0, 0.0
    p = _percentiles(sample, scale, offset)
    report.reflectance = p
    n_values = sum(r.n_values for r in results)
    share_neg = sum(r.n_negative for r in results) / max(n_values, 1)
    figures = (
        f"reflectance = stored x {scale:g} + {offset:g} gives 1 % {p['p1']:.4g}, median {p['p50']:.4g}, "
        f"99 % {p['p99']:.4g} over all bands and valid pixels; {share_neg:.1%} of values below {NEGATIVE:g}"
    )
    likely = likely_conventions(sample) if stored else []

    def hint() -> str:
        if not stored:
            return ""
        if not likely:
            return " No common scale/offset (Sentinel-2 1e-4; Landsat Level-1 2e-5 with -0.1) makes these values plausible."
        return " Stored values look like reflectance with " + "; or ".join(likely) + "."

    if p["p99"] < LOW_P99_ERROR:
        factor = 10 ** round(math.log10(0.45 / max(p["p99"], 1e-12)))
        report.add(
            ERROR,
            "implausible",
            card_path,
            f"reflectance implausibly low: {figures}; real data here give a 99 % of 0.33-0.54 (refused below "
            f"{LOW_P99_ERROR:g}). The scale is likely {factor:g}x too small (scale {scale * factor:g}?).{hint()}",
        )
    elif p["p99"] < LOW_P99_WARNING:
        report.add(
            WARNING,
            "implausible",
            card_path,
            f"reflectance low: {figures}; real data here give a 99 % of 0.33-0.54. Fine for a dataset of dark "
            f"surfaces only (open water); else the scale is too small.{hint()}",
        )
    if share_neg > NEGATIVE_SHARE:
        report.add(
            ERROR,
            "implausible",
            card_path,
            f"reflectance negative on a large share: {figures} (refused above {NEGATIVE_SHARE:.0%}; real data here: "
            f"0 %). A wrong offset (Sentinel-2 before processing baseline 04.00 has offset 0, not -0.1) or "
            f"undeclared no-data values?{hint()}",
        )
    if p["p1"] > HIGH_P1_ERROR:
        report.add(
            ERROR,
            "implausible",
            card_path,
            f"reflectance implausibly high: {figures}; real data here give a 1 % of 0.001-0.024 (refused above "
            f"{HIGH_P1_ERROR:g}): digital numbers with a scale too large?{hint()}",
        )
    elif p["p1"] > HIGH_P1_WARNING:
        report.add(
            WARNING,
            "implausible",
            card_path,
            f"no dark pixel: {figures}; real data here give a 1 % of 0.001-0.024. Sentinel-2 processing baseline "
            ">= 04.00 stores reflectance + 0.1 (offset -0.1 then); top-of-atmosphere data over bright land can be "
            f"this bright.{hint()}",
        )


# ------------------------------------------------------------------------------------------------ message helpers
def _strip_path(message: str, path: str | Path) -> str:
    """``message`` without a leading ``"<path>: "`` (the report prints the path once)."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _first_path(message: str, root: Path) -> str:
    """The file a loader's message starts with (its convention: ``"<path>: what"``), else the dataset folder."""
    head = message.split(": ", 1)[0]
    return head if head and ("/" in head or "\\" in head) else str(root)

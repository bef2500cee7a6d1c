"""The full dataset check (helpers.data.validate, ``python -m helpers.data.generic check``) on broken datasets.

A seeded fixture generator (:func:`make_broken`) writes the generic example and breaks it in one of the ways issue
30 found passing the old check (which read the card and the first training chip only). Every broken dataset must
either fail the check with its file named, or be accepted on purpose with a warning that the test asserts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from helpers.data import check, datasets, generic, validate

NAME = generic.EXAMPLE_NAME
N_CHIPS, SIZE, SEED = 8, 32, 0
CHIPS = [f"chip_{i:03d}" for i in range(N_CHIPS)]
TEST_CHIPS = CHIPS[-2:]  # write_example puts max(2, n // 4) chips in test.txt
BANDS = ["B02", "B03", "B04", "B08"]


# ------------------------------------------------------------------------------------------------ fixture generator
@pytest.fixture(scope="module")
def clean_root(tmp_path_factory) -> Path:
    return generic.write_example(
        tmp_path_factory.mktemp("validate") / NAME, n_chips=N_CHIPS, size=SIZE, seed=SEED
    )


def _edit_card(root: Path, **changes) -> None:
    path = root / "dataset.json"
    card = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    path.write_text(json.dumps(card))


def _read(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read(1)


def _write(
    path: Path, data: np.ndarray, nodata: float | None, crs: str | None = None, transform=None
) -> None:
    """A one-band GeoTIFF; without a CRS as the example writes them, else with ``crs`` and ``transform``."""
    data = np.asarray(data)[None] if np.ndim(data) == 2 else np.asarray(data)
    profile = dict(driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0])
    profile.update(dtype=data.dtype.name, nodata=nodata)
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)


def _band_path(root: Path, cid: str, band: str) -> Path:
    return root / "images" / f"{cid}_{band}.tif"


def _rewrite_chip(
    root: Path, cid: str, change: Callable[[np.ndarray], np.ndarray], dtype: str, nodata: float | None
) -> None:
    """Rewrite one chip's band files: ``change`` gets the stored (4, H, W) values (float64) and returns new ones."""
    stored = np.stack([_read(_band_path(root, cid, b)) for b in BANDS]).astype(np.float64)
    new = change(stored).astype(dtype)
    for b, band in enumerate(BANDS):
        _write(_band_path(root, cid, band), new[b], nodata)


def _mask_path(root: Path, cid: str) -> Path:
    return root / "masks" / f"{cid}.tif"


def _split(root: Path, name: str) -> Path:
    return root / "splits" / f"{name}.txt"


def make_broken(kind: str, root: Path) -> tuple[Path, str, str]:
    """Write the seeded example into ``root`` broken as ``kind``.

    Returns:
        ``(root, needle, severity)``: the dataset, a text the report must contain (the file named, or the warning's
        words) and whether it is an ``"error"`` or a ``"warning"``.
    """
    rng = np.random.default_rng(SEED)
    generic.write_example(root, n_chips=N_CHIPS, size=SIZE, seed=SEED)
    test = TEST_CHIPS[-1]
    if kind == "truncated_band":
        path = _band_path(root, test, "B03")
        path.write_bytes(path.read_bytes()[:200])
        return root, f"{path}: cannot read the band", "error"
    if kind == "text_mask":
        _mask_path(root, test).write_text("land water\n1 2 1\n")
        return root, f"{_mask_path(root, test)}: is a text file", "error"
    if kind == "mask_value":
        mask = _read(_mask_path(root, test))
        mask[:3, :3] = 5
        _write(_mask_path(root, test), mask, None)
        return root, f"{_mask_path(root, test)}: mask values [5] are neither", "error"
    if kind == "mask_size":
        _write(_mask_path(root, test), np.ones((SIZE // 2, SIZE // 2), np.uint8), None)
        return root, f"{_mask_path(root, test)}: mask is 16x16 px, but {test}_B02.tif", "error"
    if (
        kind == "fill_undeclared"
    ):  # -9999 where the example stores 0, and nodata declared nowhere for that chip
        _edit_card(root, image_nodata=None)
        n = int(
            (_read(_band_path(root, test, "B02")) == 0).sum()
        )  # the example's no-data pixels, 0 in every band
        _rewrite_chip(root, test, lambda a: np.where(a == 0, -9999, a), "int16", None)
        return (
            root,
            f"{_band_path(root, test, 'B02')}: {n} pixel(s) store -9999, a common fill value",
            "error",
        )
    if kind == "name_vs_folder":
        _edit_card(root, name="my-wetlands")
        return root, f"{root / 'dataset.json'}: the card's name is 'my-wetlands' but its folder", "error"
    if kind == "scale_10x_small":
        _edit_card(root, scale=1e-5)
        return root, f"{root / 'dataset.json'}: reflectance implausibly low", "error"
    if kind == "negative_30pct":
        for cid in CHIPS:
            hit = rng.random((SIZE, SIZE)) < 0.3
            _rewrite_chip(root, cid, lambda a, hit=hit: np.where(hit[None] & (a != 0), -2000, a), "int16", 0)
        return root, f"{root / 'dataset.json'}: reflectance negative on a large share", "error"
    if kind == "isolated_fill":
        cid = CHIPS[1]

        def few(a: np.ndarray) -> np.ndarray:
            a = a.copy()
            a[3, [1, 9, 20], [4, 15, 30]] = -9999
            return a

        _rewrite_chip(root, cid, few, "int16", 0)
        return root, f"{_band_path(root, cid, 'B08')}: 3 pixel(s) store -9999", "error"
    if kind == "nan_block":
        cid = CHIPS[2]

        def block(a: np.ndarray) -> np.ndarray:
            a = a.copy()
            a[:, 4:12, 8:16] = np.nan
            return a

        _rewrite_chip(root, cid, block, "float32", 0)
        return root, f"{_band_path(root, cid, 'B02')}: 64 pixel(s) are NaN", "error"
    if kind == "nan_chip":
        _rewrite_chip(root, test, lambda a: np.full_like(a, np.nan), "float32", 0)
        return root, f"{_band_path(root, test, 'B04')}: {SIZE * SIZE} pixel(s) are NaN", "error"
    if kind == "nan_chip_declared":  # the chip's files declare NaN as nodata: accepted, but said
        _edit_card(root, image_nodata=None)
        _rewrite_chip(root, test, lambda a: np.full_like(a, np.nan), "float32", float("nan"))
        return root, f"{_band_path(root, test, 'B02')}: chip '{test}' has no valid pixel", "warning"
    if kind == "duplicate_in_train":
        path = _split(root, "train")
        path.write_text(path.read_text() + f"{CHIPS[0]}\n")
        return root, f"{path}: 1 chip id(s) listed more than once", "error"
    if kind == "class_never_occurs":
        _edit_card(root, classes=["land", "water", "reed"], class_values=[1, 2, 3])
        return root, f"{root / 'dataset.json'}: class(es) ['reed'] occur in no chip", "error"
    if (
        kind == "class_values_omitted"
    ):  # masks 0 land, 1 water, 255 no label: the default [0, 1] is right here
        for cid in CHIPS:
            mask = _read(_mask_path(root, cid)).astype(np.int64)
            _write(_mask_path(root, cid), np.where(mask == 0, 255, mask - 1).astype(np.uint8), None)
        _edit_card(root, class_values=None, ignore_values=[255])
        return root, f"{root / 'dataset.json'}: 'class_values' is not given", "warning"
    if (
        kind == "landsat_dn_scale_1"
    ):  # Landsat-8 Level-1 DNs (2e-5 x DN - 0.1 = reflectance), card scale left at 1
        for cid in CHIPS:
            _rewrite_chip(
                root, cid, lambda a: np.where(a == 0, 0, np.round((a * 1e-4 + 0.1) / 2e-5)), "uint16", 0
            )
        _edit_card(root, scale=None)
        return root, f"{root / 'dataset.json'}: reflectance implausibly high", "error"
    if kind == "empty_val":
        _split(root, "val").write_text("")
        return root, f"{_split(root, 'val')}: split list is empty", "error"
    if kind == "unlabelled_split":
        for cid in TEST_CHIPS:
            _write(_mask_path(root, cid), np.zeros((SIZE, SIZE), np.uint8), None)
        return root, f"{_split(root, 'test')}: split 'test' has no labelled pixel", "error"
    if kind == "crs_mismatch":
        cid = CHIPS[3]
        transform = from_origin(500000, 4000000, 30, 30)
        for band in BANDS:
            crs = "EPSG:32634" if band == "B04" else "EPSG:32633"
            _write(_band_path(root, cid, band), _read(_band_path(root, cid, band)), 0, crs, transform)
        _write(_mask_path(root, cid), _read(_mask_path(root, cid)), None, "EPSG:32633", transform)
        return root, f"{_band_path(root, cid, 'B04')}: band file is in CRS EPSG:32634", "error"
    if kind == "missing_file":
        _band_path(root, CHIPS[2], "B04").unlink()
        return root, f"{_band_path(root, CHIPS[2], 'B04')}: file missing", "error"
    if kind == "chip_in_two_splits":
        path = _split(root, "train")
        path.write_text(path.read_text() + f"{test}\n")
        return root, f"{path}: 1 chip(s) also listed in {_split(root, 'test')}", "error"
    raise ValueError(kind)


#: The broken datasets of issue 30 (items 1, 3, 4 and 5's empty val.txt), one per kind of make_broken.
BROKEN = [
    "truncated_band",
    "text_mask",
    "mask_value",
    "mask_size",
    "fill_undeclared",
    "name_vs_folder",
    "scale_10x_small",
    "negative_30pct",
    "isolated_fill",
    "nan_block",
    "nan_chip",
    "nan_chip_declared",
    "duplicate_in_train",
    "class_never_occurs",
    "class_values_omitted",
    "landsat_dn_scale_1",
    "empty_val",
    "unlabelled_split",
    "crs_mismatch",
    "missing_file",
    "chip_in_two_splits",
]


# ------------------------------------------------------------------------------------------------ the broken ones
@pytest.mark.parametrize("kind", BROKEN)
def test_every_broken_dataset_fails_naming_its_file_or_is_accepted_with_a_warning(kind, tmp_path):
    root, needle, severity = make_broken(kind, tmp_path / NAME)
    report = validate.validate(root, progress=False)
    found = [str(p) for p in report.problems if p.severity == severity]
    assert any(needle in line for line in found), f"{kind}: {needle!r} not in\n{report.format(limit=50)}"
    if severity == "warning":
        assert report.ok, report.format()
    else:
        assert not report.ok


def test_fill_values_are_named_with_what_to_declare(tmp_path):
    root, _, _ = make_broken("fill_undeclared", tmp_path / NAME)
    report = validate.validate(root, progress=False)
    (fill,) = [p for p in report.errors if p.path == str(_band_path(root, TEST_CHIPS[-1], "B02"))]
    assert "store -9999, a common fill value, but the files' nodata" not in fill.message  # nothing declared
    assert "store -9999, a common fill value, but no image nodata is declared" in fill.message
    assert '"image_nodata": -9999' in fill.message and "-0.9999" in fill.message  # what the models would see


def test_a_declared_fill_value_is_handled_as_declared(tmp_path):
    root = generic.write_example(tmp_path / NAME, n_chips=N_CHIPS, size=SIZE, seed=SEED)
    for cid in CHIPS:  # HLS style: -9999 marks no data, declared in the card
        _rewrite_chip(root, cid, lambda a: np.where(a == 0, -9999, a), "int16", None)
    _edit_card(root, image_nodata=-9999)
    report = validate.validate(root, progress=False)
    assert report.ok and not report.warnings, report.format()


def test_scale_errors_say_which_scale_and_offset_fit(tmp_path):
    root, _, _ = make_broken("scale_10x_small", tmp_path / "small" / NAME)
    (low,) = [p for p in validate.validate(root, progress=False).errors if p.kind == "implausible"]
    assert "99 % 0.04" in low.message and "10x too small (scale 0.0001?)" in low.message
    root, _, _ = make_broken("landsat_dn_scale_1", tmp_path / "landsat" / NAME)
    report = validate.validate(root, progress=False)
    (high,) = [p for p in report.errors if p.kind == "implausible"]
    assert "scale 2e-05, offset -0.1 (Landsat 8/9 Collection 2 Level-1" in high.message
    assert "scale 0.0001, offset 0 " not in high.message  # the old hint (use 1e-4) does not fit these DNs
    assert any(p.kind == "range" and "above 5 reflectance" in p.message for p in report.errors)


def test_transform_mismatch_inside_a_chip_is_refused(tmp_path):
    root = generic.write_example(tmp_path / NAME, n_chips=N_CHIPS, size=SIZE, seed=SEED)
    cid = CHIPS[4]
    for band in BANDS:
        shift = 15 if band == "B03" else 0  # half a pixel
        transform = from_origin(500000 + shift, 4000000, 30, 30)
        _write(_band_path(root, cid, band), _read(_band_path(root, cid, band)), 0, "EPSG:32633", transform)
    _write(
        _mask_path(root, cid),
        _read(_mask_path(root, cid)),
        None,
        "EPSG:32633",
        from_origin(500000, 4000000, 30, 30),
    )
    errors = [str(p) for p in validate.validate(root, progress=False).errors]
    assert any(f"{_band_path(root, cid, 'B03')}: band file's transform" in e for e in errors), errors


def test_all_problems_are_reported_at_once(tmp_path):
    """Four breakages in one folder: one check names all four files (the loader stops at the first)."""
    root = generic.write_example(tmp_path / NAME, n_chips=N_CHIPS, size=SIZE, seed=SEED)
    _band_path(root, CHIPS[0], "B02").write_bytes(b"II*\x00" + bytes(40))
    _mask_path(root, CHIPS[5]).write_text("not a raster")
    mask = _read(_mask_path(root, TEST_CHIPS[0]))
    mask[0, 0] = 9
    _write(_mask_path(root, TEST_CHIPS[0]), mask, None)
    _band_path(root, CHIPS[3], "B08").unlink()
    report = validate.validate(root, progress=False)
    named = {Path(p.path).name for p in report.errors}
    assert {"chip_000_B02.tif", "chip_005.tif", f"{TEST_CHIPS[0]}.tif", "chip_003_B08.tif"} <= named


# ------------------------------------------------------------------------------------------------ band names
def _rename_bands(root: Path, names: list[str]) -> None:
    for cid in CHIPS:
        for old, new in zip(BANDS, names, strict=True):
            _band_path(root, cid, old).rename(_band_path(root, cid, new))
    _edit_card(root, bands=names)


def test_ambiguous_band_names_are_warned_about(tmp_path):
    root = generic.write_example(tmp_path / "nir" / NAME, n_chips=N_CHIPS, size=SIZE, seed=SEED)
    _rename_bands(root, ["blue", "green", "red", "nir"])
    report = validate.validate(root, progress=False)
    assert report.ok
    (warning,) = [p for p in report.warnings if p.kind == "band_name"]
    assert "'nir' is read as the broad NIR B08" in warning.message and "'nir08' or 'B8A'" in warning.message
    assert "rename those files too" in warning.message
    root = generic.write_example(tmp_path / "landsat" / NAME, n_chips=N_CHIPS, size=SIZE, seed=SEED)
    _rename_bands(root, ["B2", "B3", "B4", "B5"])  # Landsat 8 numbering: band 5 is the narrow NIR
    (warning,) = [p for p in validate.validate(root, progress=False).warnings if p.kind == "band_name"]
    assert "['B5'] are read as Sentinel-2's red-edge" in warning.message and "'nir08'" in warning.message


def test_an_unknown_band_name_gets_the_id_its_files_usually_mean(clean_root, tmp_path):
    root = tmp_path / NAME
    shutil.copytree(clean_root, root)
    _edit_card(root, bands=["B02", "B03", "B04", "swir1"])
    (error,) = validate.validate(root, progress=False).errors
    assert error.path == str(root / "dataset.json")
    assert "unknown band name 'swir1'" in error.message and "usually hold B11" in error.message


# ------------------------------------------------------------------------------------------------ clean data, CLI
def test_the_clean_example_passes_with_its_figures(clean_root):
    report = validate.validate(clean_root, progress=False)
    assert report.ok and not report.warnings, report.format()
    assert report.chips == {"train": 5, "val": 1, "test": 2}
    assert all(n > 0 for n in report.labelled.values())
    assert 0.3 < report.reflectance["p99"] < 0.7 and 0.0 < report.reflectance["p1"] < 0.05


def test_cli_exit_codes(clean_root, tmp_path, capsys):
    assert check.generic_main(["check", str(clean_root)]) == 0
    out = capsys.readouterr().out
    assert "0 error(s), 0 warning(s)" in out and "reflectance of every valid pixel" in out
    root, needle, _ = make_broken("mask_value", tmp_path / "bad" / NAME)
    assert check.generic_main(["check", str(root)]) == 1
    assert needle in capsys.readouterr().out
    root, needle, _ = make_broken("class_values_omitted", tmp_path / "warn" / NAME)
    assert check.generic_main(["check", str(root)]) == 0  # warnings print, the status stays 0
    out = capsys.readouterr().out
    assert "1 warning(s)" in out and needle in out


@pytest.mark.parametrize("layout", ["generic", "scene"])
def test_the_module_commands_reach_the_command_line(clean_root, layout):
    """``python -m helpers.data.<layout> check DIR`` runs :mod:`helpers.data.check` (the entry point is a script block)."""
    done = subprocess.run(
        [sys.executable, "-m", f"helpers.data.{layout}", "check", str(clean_root)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert "0 error(s), 0 warning(s)" in done.stdout


# ------------------------------------------------------------------------------------------------ other layouts
def test_generated_datasets_are_checked_through_their_loader(tmp_path):
    ds = datasets.prepare("sim-flood", tmp_path, size="quick")
    report = validate.validate(ds.root, progress=False)
    assert report.ok and not report.warnings, report.format()
    assert set(report.chips) == {"train", "val", "test"} and report.reflectance["p99"] > 0.15
    label = sorted((ds.root / "LabelHand").glob("*.tif"))[0]
    label.write_bytes(label.read_bytes()[:300])
    report = validate.validate_dataset(datasets.open("sim-flood", ds.root), progress=False)
    assert any(p.path == str(label) for p in report.errors), report.format()


# ------------------------------------------------------------------------------------------------ real bytes
def _real_tiles(shared_dir: Path, root: Path, *, offset: float = 0.0, scale: float = 1e-4) -> Path:
    """The real Sen1Floods11 chip (Sentinel-2 L1C, 2019: before baseline 04.00) as a generic dataset of 4 tiles.

    The shared files are only read; the tiles are written under ``root``.
    """
    sample = shared_dir / "data" / "sen1floods11_sample" / "HandLabeled"
    with rasterio.open(sample / "S2Hand" / "Spain_7370579_S2Hand.tif") as src:
        image, crs, transform = src.read(), src.crs, src.transform
    with rasterio.open(sample / "LabelHand" / "Spain_7370579_LabelHand.tif") as src:
        label = src.read(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "splits").mkdir()
    half = image.shape[1] // 2
    ids = []
    for i, (r, c) in enumerate([(0, 0), (0, half), (half, 0), (half, half)]):
        cid = f"tile{i}"
        ids.append(cid)
        t = transform * rasterio.Affine.translation(c, r)
        profile = dict(driver="GTiff", height=half, width=half, crs=crs, transform=t)
        with rasterio.open(
            root / "images" / f"{cid}.tif", "w", count=13, dtype="int16", nodata=0, **profile
        ) as dst:
            dst.write(image[:, r : r + half, c : c + half])
        with rasterio.open(root / "masks" / f"{cid}.tif", "w", count=1, dtype="int16", **profile) as dst:
            dst.write(label[None, r : r + half, c : c + half])
    _split(root, "train").write_text("tile0\ntile1\n")
    _split(root, "val").write_text("tile2\n")
    _split(root, "test").write_text("tile3\n")
    card = {
        "name": root.name,
        "layout": "generic",
        "task": "flood",
        "bands": datasets.S2_BANDS,
        "classes": ["not_water", "water"],
        "class_values": [0, 1],
        "ignore_values": [-1],
        "scale": scale,
        "offset": offset,
    }
    (root / "dataset.json").write_text(json.dumps(card))
    return root


def test_real_sentinel2_bytes_pass_and_a_wrong_offset_or_scale_is_refused(shared_dir, tmp_path):
    if not (shared_dir / "data" / "sen1floods11_sample").is_dir():
        pytest.skip("shared/data/sen1floods11_sample not found")
    root = _real_tiles(shared_dir, tmp_path / "ok" / "s1f11")
    report = validate.validate(root, progress=False)
    assert report.ok and not report.warnings, report.format()
    assert 0.25 < report.reflectance["p99"] < 0.45  # measured on the whole chip: 0.33 (the thresholds' basis)
    root = _real_tiles(
        shared_dir, tmp_path / "offset" / "s1f11", offset=-0.1
    )  # baseline 04.00 offset on 2019 data
    (error,) = [p for p in validate.validate(root, progress=False).errors if p.kind == "implausible"]
    assert (
        "negative on a large share" in error.message and "scale 0.0001, offset 0 (Sentinel-2" in error.message
    )
    root = _real_tiles(shared_dir, tmp_path / "dn" / "s1f11", scale=1.0)
    errors = validate.validate(root, progress=False).errors
    assert any(
        p.path == str(root / "dataset.json") and "scale 0.0001, offset 0 (Sentinel-2" in p.message
        for p in errors
    )


# ------------------------------------------------------------------------------------------------ before any run
@pytest.mark.parametrize("kind", BROKEN)
def test_the_chain_refuses_every_broken_dataset_before_any_run(kind, tmp_path):
    """``datasets.prepare`` (what notebooks 01-04, and so the chain, open data with) runs the full check first."""
    root, needle, severity = make_broken(kind, tmp_path / NAME)
    if severity == "warning":
        with pytest.warns(UserWarning, match="warning"):
            datasets.prepare(NAME, root.parent)
        return
    with pytest.raises(datasets.DataError) as err:
        datasets.prepare(NAME, root.parent)
    assert needle in str(err.value) or str(root) in str(err.value), str(err.value)
    assert not (root.parent / datasets.CHECKS_DIR).exists()  # a failed check is never remembered


def test_a_passed_check_is_remembered_by_content(clean_root, monkeypatch, tmp_path):
    root = tmp_path / NAME
    shutil.copytree(clean_root, root)
    datasets.prepare(NAME, tmp_path)
    (marker,) = (tmp_path / datasets.CHECKS_DIR).glob(f"{NAME}-*.json")
    calls = []
    real = validate.validate_dataset
    monkeypatch.setattr(validate, "validate_dataset", lambda ds, **kw: (calls.append(1), real(ds, **kw))[1])
    datasets.prepare(NAME, tmp_path)
    assert calls == []  # same bytes: not checked again
    mask = _read(_mask_path(root, TEST_CHIPS[0]))
    mask[0, 0] = 9
    _write(_mask_path(root, TEST_CHIPS[0]), mask, None)
    with pytest.raises(datasets.DataError, match=f"{TEST_CHIPS[0]}.tif"):
        datasets.prepare(NAME, tmp_path)  # changed bytes: checked again, and refused
    assert calls == [1] and marker.exists()

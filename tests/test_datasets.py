import json
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from helpers.data import datasets
from helpers.data.io import DataError


def _copy(fixture_roots, name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(fixture_roots[name], dst)
    return dst


@pytest.mark.parametrize("name", ["crop", "burn_scars", "sen1floods11"])
def test_fixture_layouts_read(fixture_roots, name):
    ds = datasets.open(name, fixture_roots[name])
    assert ds.ignore_index == -1
    assert set(["train", "val", "test"]) <= set(ds.splits)
    chip = ds.chip_ids("train")[0]
    x, y = ds.read(chip)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert list(x["band"].values) == datasets.HLS_BANDS
    assert x.rio.crs is not None and x.rio.transform() is not None
    assert x.dims[-2:] == ("y", "x") and y.shape == (x.sizes["y"], x.sizes["x"])
    assert set(np.unique(y)) <= set(range(-1, ds.num_classes))
    assert 0 <= float(x.max()) < 1.5
    a, y2 = ds.read_arrays(chip)
    assert a.shape == (ds.n_channels, *y.shape) and np.array_equal(y, y2)


def test_crop_dates_and_label_mapping(fixture_roots):
    ds = datasets.open("crop", fixture_roots["crop"])
    assert ds.n_times == 3 and ds.num_classes == 13
    chip = ds.chip_ids("test")[0]
    x, y = ds.read(chip)
    assert x.dims == ("time", "band", "y", "x")
    with rasterio.open(ds.paths(chip)[1]) as src:
        raw = src.read(1)
    np.testing.assert_array_equal(y[raw == 0], -1)
    np.testing.assert_array_equal(y[raw > 0], raw[raw > 0].astype(np.int64) - 1)
    with rasterio.open(ds.paths(chip)[0]) as src:
        img = src.read()
    # band-major per date: date 2 B8A is file band 6 + 4 (1-based 10)
    np.testing.assert_allclose(x.sel(time=1, band="B8A").values, img[9] * 1e-4, rtol=1e-6)
    a, _ = ds.read_arrays(chip)
    np.testing.assert_allclose(a[9], img[9] * 1e-4, rtol=1e-6)


def test_read_arrays_cache_serves_copies_and_respects_its_cap(fixture_roots, monkeypatch):
    ds = datasets.open("crop", fixture_roots["crop"])
    ids = ds.chip_ids("train")[:3]
    first = {c: ds.read_arrays(c) for c in ids}
    calls = []
    monkeypatch.setattr(ds, "read", lambda c: calls.append(c) or pytest.fail("cached chip read from disk"))
    for c in ids:
        a, y = ds.read_arrays(c)
        np.testing.assert_array_equal(a, first[c][0])
        np.testing.assert_array_equal(y, first[c][1])
        a[:] = -7.0  # a caller's edits never reach the cache
        y[:] = 99
    np.testing.assert_array_equal(ds.read_arrays(ids[0])[0], first[ids[0]][0])
    monkeypatch.undo()
    one = sum(a.nbytes + y.nbytes for a, y in [first[ids[0]]])
    small = datasets.open("crop", fixture_roots["crop"], cache_mb=1.5 * one / 2**20)  # room for one chip
    for c in ids:
        small.read_arrays(c)
    assert list(small._arrays) == [ids[-1]] and small._arrays_bytes == one
    off = datasets.open("crop", fixture_roots["crop"], cache_mb=0)
    off.read_arrays(ids[0])
    assert not off._arrays


def test_val_is_seeded_holdout_of_train_never_test(fixture_roots):
    ds = datasets.open("crop", fixture_roots["crop"], val_seed=3)
    again = datasets.open("crop", fixture_roots["crop"], val_seed=3)
    assert ds.chip_ids("val") == again.chip_ids("val")
    all_train = (fixture_roots["crop"] / "training_data.txt").read_text().split()
    assert sorted(ds.chip_ids("train") + ds.chip_ids("val")) == sorted(all_train)
    assert not set(ds.chip_ids("val")) & set(ds.chip_ids("test"))
    assert not set(ds.chip_ids("val")) & set(ds.chip_ids("train"))


def test_holdout_fraction():
    ids = [f"c{i}" for i in range(50)]
    train, val = datasets.holdout_split(ids, 0.1, 0)
    assert len(val) == 5 and len(train) == 45
    assert train == [c for c in ids if c not in val]


def test_sen1floods11_nodata_and_band_selection(fixture_roots):
    ds = datasets.open("sen1floods11", fixture_roots["sen1floods11"])
    assert ds.splits == ["train", "val", "test", "bolivia"]
    chip = ds.chip_ids("train")[0]
    x, y = ds.read(chip)
    with rasterio.open(ds.paths(chip)[0]) as src:
        s2 = src.read()
    assert (y[0, :3] == -1).all()  # S2 no-data corner is ignored
    assert (x.values[:, 0, :3] == 0).all()
    np.testing.assert_allclose(x.sel(band="B8A").values[1:], s2[8, 1:] * 1e-4, rtol=1e-6)
    np.testing.assert_allclose(x.sel(band="B12").values[1:], s2[12, 1:] * 1e-4, rtol=1e-6)


def test_real_sen1floods11_chip(shared_dir):
    root = shared_dir / "data" / "sen1floods11_sample"
    ds = datasets.open("sen1floods11", root, splits_dir=shared_dir / "data" / "splits")
    assert len(ds.chip_ids("train")) == 252 and len(ds.chip_ids("val")) == 89
    assert "Spain_7370579" in ds.chip_ids("test")
    x, y = ds.read("Spain_7370579")
    assert x.shape == (6, 512, 512) and str(x.rio.crs) == "EPSG:4326"
    values, counts = np.unique(y, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {-1: 99, 0: 192010, 1: 70035}
    assert 0.0 < float(x.sel(band="B02").mean()) < 0.3


def test_real_crop_split_lists(shared_dir, tmp_path):
    ds = datasets.open("crop", tmp_path, splits_dir=shared_dir / "data" / "splits")
    assert len(ds.chip_ids("train")) + len(ds.chip_ids("val")) == 3083
    assert len(ds.chip_ids("val")) == 308 and len(ds.chip_ids("test")) == 771


def test_real_burn_scar_masks(shared_dir):
    masks = sorted((shared_dir / "data" / "hls_burn_scars_masks").glob("*.mask.tif"))
    assert len(masks) == 289
    ds = datasets.BurnScarsDataset.__new__(datasets.BurnScarsDataset)
    ds.name, ds.classes = "burn_scars", datasets.BURN_CLASSES
    total = np.zeros(3, dtype=np.int64)
    for path in masks:
        with rasterio.open(path) as src:
            raw = src.read(1)
            assert raw.shape == (512, 512) and src.nodata == -1000
        y = ds._decode_label(raw, path)
        total += np.bincount(y.ravel() + 1, minlength=3)
    assert total.tolist() == [578_766, 62_323_023, 12_857_827]


# ---------------------------------------------------------------- bad input, each with a clear message
def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="not found"):
        datasets.open("burn_scars", tmp_path / "nope")


def test_missing_split_file(fixture_roots, tmp_path):
    root = _copy(fixture_roots, "crop", tmp_path)
    (root / "validation_data.txt").unlink()
    with pytest.raises(DataError, match="validation_data.txt"):
        datasets.open("crop", root)


def test_chip_listed_but_missing(fixture_roots, tmp_path):
    root = _copy(fixture_roots, "crop", tmp_path)
    ds = datasets.open("crop", root)
    chip = ds.chip_ids("test")[0]
    ds.paths(chip)[0].unlink()
    with pytest.raises(DataError, match=f"{chip}.*missing"):
        ds.read(chip)


def _rewrite(path, fn):
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    data, profile = fn(data, profile)
    profile.update(count=data.shape[0], dtype=data.dtype.name)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def test_wrong_band_count(fixture_roots, tmp_path):
    root = _copy(fixture_roots, "burn_scars", tmp_path)
    ds = datasets.open("burn_scars", root)
    chip = ds.chip_ids("train")[0]
    _rewrite(ds.paths(chip)[0], lambda d, p: (d[:4], p))
    with pytest.raises(DataError, match="expected 6 band"):
        ds.read(chip)


def test_shape_mismatch(fixture_roots, tmp_path):
    root = _copy(fixture_roots, "burn_scars", tmp_path)
    ds = datasets.open("burn_scars", root)
    chip = ds.chip_ids("train")[0]
    _rewrite(ds.paths(chip)[1], lambda d, p: (d[:, :16, :], {**p, "height": 16}))
    with pytest.raises(DataError, match="label shape"):
        ds.read(chip)


def test_crs_mismatch(fixture_roots, tmp_path):
    root = _copy(fixture_roots, "burn_scars", tmp_path)
    ds = datasets.open("burn_scars", root)
    chip = ds.chip_ids("train")[0]
    _rewrite(ds.paths(chip)[1], lambda d, p: (d, {**p, "crs": "EPSG:32611"}))
    with pytest.raises(DataError, match="CRS"):
        ds.read(chip)


def test_label_outside_class_set(fixture_roots, tmp_path):
    root = _copy(fixture_roots, "sen1floods11", tmp_path)
    ds = datasets.open("sen1floods11", root)
    chip = ds.chip_ids("train")[0]
    _rewrite(ds.paths(chip)[1], lambda d, p: (np.where(d == 1, 7, d).astype(d.dtype), p))
    with pytest.raises(DataError, match=r"label values \[7\]"):
        ds.read(chip)


def test_corrupt_tiff(fixture_roots, tmp_path):
    root = _copy(fixture_roots, "burn_scars", tmp_path)
    ds = datasets.open("burn_scars", root)
    chip = ds.chip_ids("train")[0]
    path = ds.paths(chip)[0]
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot read"):
        ds.read(chip)


def test_scale_guard(fixture_roots, tmp_path):
    root = _copy(fixture_roots, "burn_scars", tmp_path)
    ds = datasets.open("burn_scars", root)
    chip = ds.chip_ids("train")[0]
    _rewrite(ds.paths(chip)[0], lambda d, p: ((d * 1e4).astype(np.float32), p))
    with pytest.raises(DataError, match="scale=1e-4"):
        ds.read(chip)
    ds_scaled = datasets.open("burn_scars", root, scale=1e-4)
    x, _ = ds_scaled.read(chip)
    assert float(x.max()) < 1.5


def test_card_dataset(tmp_path):
    root = tmp_path / "sim"
    tr = from_origin(500000, 4200000, 30, 30)
    make = __import__("make_fixtures")
    make.make_crop(root)
    card = {
        "name": "sim-crop",
        "layout": "crop",
        "task": "crop",
        "simulated": True,
        "n_times": 3,
        "classes": datasets.CROP_CLASSES,
    }
    (root / "dataset.json").write_text(json.dumps(card))
    ds = datasets.open("sim-crop", root)
    assert ds.simulated and "SIMULATED" in repr(ds)
    x, _ = ds.read(ds.chip_ids("train")[0])
    assert x.attrs["simulated"] == 1
    with pytest.raises(DataError, match="card is for"):
        datasets.open("sim-burn", root)
    with pytest.raises(DataError, match="dataset card not found"):
        datasets.open("sim-flood", tmp_path)
    del tr


def test_unknown_name(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        datasets.open("imagenet", tmp_path)


def test_class_counts(fixture_roots):
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    counts = datasets.class_counts(ds, "test")
    total = sum(int((ds.read(c)[1] >= 0).sum()) for c in ds.chip_ids("test"))
    assert counts.sum() == total and counts.shape == (2,)


def test_majority_floors_name_what_they_could_not_read(fixture_roots):
    """The floor is the most frequent class's share of the split; a missing folder is named, not fatal."""
    data_dir = fixture_roots["burn_scars"].parent
    floors, unreadable = datasets.majority_floors(["burn_scars", "sim-nowhere", "burn_scars"], data_dir)
    counts = datasets.class_counts(datasets.open("burn_scars", fixture_roots["burn_scars"]), "test")
    assert floors == {"burn_scars": pytest.approx(counts.max() / counts.sum())}
    assert 0.5 <= floors["burn_scars"] < 1
    assert list(unreadable) == ["sim-nowhere"] and "sim-nowhere" in unreadable["sim-nowhere"]


def test_generator_facts_read_what_the_simulator_recorded(tmp_path):
    """The report's Bayes limits come from the card the generator wrote, through the data API (notebook 05)."""
    ds = datasets.prepare("sim-texture-0.5", tmp_path, size="quick")
    facts = datasets.generator_facts(ds.root)
    card = json.loads((ds.root / "dataset.json").read_text())
    assert facts["bayes_pixel_accuracy"] == card["generator"]["bayes_pixel_accuracy"]
    assert 0.5 < facts["bayes_pixel_accuracy"] < 1
    assert datasets.generator_facts(tmp_path / "no-such-dataset") == {}
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match="broken/dataset.json: not valid JSON"):
        datasets.generator_facts(tmp_path / "broken")

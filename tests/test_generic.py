"""The generic layout: a dataset of one's own, described by its card, through the same API as the others."""

import json
import shutil
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from helpers import features
from helpers.data import bands, datasets, generic
from helpers.data.io import DataError

S2_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


@pytest.fixture(scope="module")
def example_root(tmp_path_factory):
    return generic.write_example(tmp_path_factory.mktemp("generic") / "example-wetlands", n_chips=8, size=32)


def _copy(root, tmp_path, name="example-wetlands"):
    dst = tmp_path / name
    shutil.copytree(root, dst)
    return dst


def _edit_card(root, **changes):
    path = root / "dataset.json"
    card = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            card.pop(k, None)
        else:
            card[k] = v
    path.write_text(json.dumps(card))


def _open(root, name="example-wetlands"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the example has no CRS, and says so
        return datasets.open(name, root)


def _write_tif(path, data, crs="EPSG:32633", nodata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0])
    profile.update(
        dtype=data.dtype.name, nodata=nodata, crs=crs, transform=from_origin(500000, 4000000, 30, 30)
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _multiband_dataset(root, band_names, *, n_times=1, crs="EPSG:32633", seed=0, **card):
    """A generic dataset with one multi-band file per chip (reflectance x 1e4, uint16) and a CRS."""
    rng = np.random.default_rng(seed)
    chips = [f"c{i}" for i in range(5)]
    for cid in chips:
        img = rng.integers(100, 4000, size=(len(band_names) * n_times, 16, 16)).astype(np.uint16)
        _write_tif(root / "images" / f"{cid}.tif", img, crs=crs)
        _write_tif(
            root / "masks" / f"{cid}.tif", rng.integers(0, 3, size=(1, 16, 16)).astype(np.uint8), crs=crs
        )
    (root / "splits").mkdir(parents=True, exist_ok=True)
    (root / "splits" / "train.txt").write_text("c0\nc1\nc2\n")
    (root / "splits" / "val.txt").write_text("c3\n")
    (root / "splits" / "test.txt").write_text("c4\n")
    base = {
        "name": root.name,
        "layout": "generic",
        "bands": band_names,
        "n_times": n_times,
        "classes": ["a", "b", "c"],
        "scale": 1e-4,
    }
    (root / "dataset.json").write_text(json.dumps({**base, **card}))
    return root


# ------------------------------------------------------------------------------------------------ band names
def test_band_names_are_canonical_and_unknown_ones_refused():
    assert bands.canonical_list(["blue", "green", "red", "nir08", "swir16", "swir22"]) == list(
        bands.HLS_BANDS
    )
    assert (
        bands.canonical("B8") == "B08" and bands.canonical("b8a") == "B8A" and bands.canonical("nir") == "B08"
    )
    assert bands.canonical("pan") == "pan"
    with pytest.raises(DataError, match="unknown band name 'NIR_broad'.*STAC common name"):
        bands.canonical("NIR_broad")
    with pytest.raises(DataError, match="name the same band 'B04'"):
        bands.canonical_list(["B04", "red"])
    assert bands.rgb(bands.HLS_BANDS) == (2, 1, 0) and bands.false_colour(bands.HLS_BANDS) == (3, 2, 1)
    assert bands.rgb(["B08", "B04", "B03", "B02"]) == (1, 2, 3)


# ------------------------------------------------------------------------------------------------ the example
def test_example_opens_with_its_bands_labels_and_derived_validation(example_root):
    with pytest.warns(UserWarning, match="no CRS/transform.*georeferenced: false"):
        ds = datasets.open("example-wetlands", example_root)
    assert ds.bands == ["B02", "B03", "B04", "B08"] and ds.n_channels == 4 and ds.simulated
    assert ds.classes == ["land", "water"] and ds.splits == ["train", "val", "test"]
    train, val, test = (set(ds.chip_ids(s)) for s in ds.splits)
    assert val and not (val & train) and not (val & test) and not (train & test)
    chip = ds.chip_ids("test")[0]
    x, y = ds.read(chip)
    assert list(x["band"].values) == ds.bands and x.rio.crs is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(example_root / "masks" / f"{chip}.tif") as src:
            mask = src.read(1)
        with rasterio.open(example_root / "images" / f"{chip}_B08.tif") as src:
            nir = src.read(1)
    # mask 1 -> land (0), 2 -> water (1), 0 -> ignore; image nodata (stored 0 in any band) -> ignore
    nodata = nir == 0
    np.testing.assert_array_equal(y[(mask == 1) & ~nodata], 0)
    np.testing.assert_array_equal(y[(mask == 2) & ~nodata], 1)
    assert (y[(mask == 0) | nodata] == -1).all() and nodata.any()
    np.testing.assert_allclose(x.sel(band="B08").values[~nodata], nir[~nodata] * 1e-4, rtol=1e-6)
    a, y2 = ds.read_arrays(chip)
    assert a.shape == (4, *y.shape) and np.array_equal(y, y2)
    mean, std = datasets.channel_stats(ds)
    assert len(mean) == len(std) == 4
    assert mean[3] > mean[2]  # land dominates: NIR above red on average


def test_example_is_deterministic_and_its_fingerprint_follows_every_band_file(example_root, tmp_path):
    again = generic.write_example(tmp_path / "again" / "example-wetlands", n_chips=8, size=32)
    assert _open(again).fingerprint() == _open(example_root).fingerprint()
    changed = _copy(example_root, tmp_path)
    band_file = changed / "images" / "chip_000_B03.tif"  # not the first band: every band file is hashed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(band_file, "r+") as dst:
            data = dst.read()
            data[0, 0, 0] += 1
            dst.write(data)
    assert _open(changed).fingerprint() != _open(example_root).fingerprint()


def test_unknown_name_without_a_card_says_how_to_bring_data(tmp_path):
    with pytest.raises(DataError, match="not found; a dataset of your own.*dataset.json"):
        datasets.prepare("mydata", tmp_path)
    (tmp_path / "mydata").mkdir()
    with pytest.raises(DataError, match="no dataset card"):
        datasets.open("mydata", tmp_path / "mydata")


# ------------------------------------------------------------------------------------------------ bad cards
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bands": ["B02", "B03", "B04", "NIR_wide"]}, r"dataset.json: unknown band name 'NIR_wide'"),
        ({"class_values": [1]}, r"'class_values' has 1 entries for 2 classes"),
        ({"class_values": [1, 1]}, r"a mask value maps to two classes"),
        ({"ignore_values": [0, 2]}, r"mask values \[2\] are both a class value and an ignore value"),
        ({"classes": ["land"], "class_values": [1]}, r"at least two class names"),
        ({"bands": None}, r"dataset card lacks 'bands'"),
        ({"scale": 0}, r"'scale' must be a positive number"),
        ({"image_pattern": "x"}, r"unknown keys \['image_pattern'\]"),
        ({"images": "images/chip.tif"}, r"'images' must be a path pattern with \{chip\}"),
        ({"crs": "EPSG:999999"}, r"'crs' 'EPSG:999999' is not a CRS"),
    ],
)
def test_bad_cards_are_refused_naming_the_card(example_root, tmp_path, changes, message):
    root = _copy(example_root, tmp_path)
    _edit_card(root, **changes)
    with pytest.raises(DataError, match=message) as err:
        _open(root)
    assert str(root / "dataset.json") in str(err.value)


def test_mask_values_outside_the_classes_are_refused_naming_the_file(example_root, tmp_path):
    root = _copy(example_root, tmp_path)
    _edit_card(root, class_values=[1, 3])  # the masks hold 2 for water
    with pytest.raises(DataError, match=r"masks/chip_\d+\.tif: mask values \[2\] are neither a class value"):
        _open(root)


def test_missing_or_overlapping_split_lists_are_refused(example_root, tmp_path):
    root = _copy(example_root, tmp_path)
    (root / "splits" / "test.txt").unlink()
    with pytest.raises(DataError, match=r"splits: split list test.txt not found"):
        _open(root)
    root = _copy(example_root, tmp_path / "overlap")
    train = (root / "splits" / "train.txt").read_text().split()
    (root / "splits" / "test.txt").write_text(train[0] + "\n")
    with pytest.raises(DataError, match=r"1 chip\(s\) in both train and test"):
        _open(root)


def test_listed_chip_without_its_files_is_refused(example_root, tmp_path):
    root = _copy(example_root, tmp_path)
    (root / "images" / "chip_001_B04.tif").unlink()
    with pytest.raises(DataError, match=r"chip_001_B04.tif: file missing"):
        _open(root)


def test_a_scale_that_leaves_reflectance_is_refused_with_the_card_hint(example_root, tmp_path):
    root = _copy(example_root, tmp_path)
    _edit_card(root, scale=1.0)  # the files hold reflectance x 1e4
    with pytest.raises(
        DataError, match=r"expected surface reflectance.*scale=1e-4.*scale 1 and offset 0 from"
    ):
        _open(root)


def test_files_without_crs_need_the_card_to_say_so(example_root, tmp_path):
    root = _copy(example_root, tmp_path)
    _edit_card(root, georeferenced=None)
    with pytest.raises(DataError, match=r"_B02.tif: file has no CRS.*\"georeferenced\": false"):
        _open(root)


def test_multiband_files_with_a_crs_expectation_and_wrong_band_counts(tmp_path):
    root = _multiband_dataset(
        tmp_path / "mine", ["red", "green", "blue"], crs="EPSG:32633", class_values=[0, 1, 2]
    )
    ds = datasets.open("mine", root)
    assert ds.bands == ["B04", "B03", "B02"] and ds.chip_ids("val") == ["c3"]
    x, _ = ds.read("c4")
    assert x.rio.crs.to_epsg() == 32633
    _edit_card(root, crs="EPSG:4326")
    with pytest.raises(DataError, match=r"images/c\d.tif: CRS EPSG:32633 is not the card's EPSG:4326"):
        datasets.open("mine", root)
    _edit_card(root, crs=None, bands=["red", "green", "blue", "nir"])
    with pytest.raises(DataError, match=r"images/c\d.tif: expected 4 band\(s\), found 3"):
        datasets.open("mine", root)


def test_multitemporal_generic_dataset_is_date_major(tmp_path):
    root = _multiband_dataset(tmp_path / "mt", ["B02", "B03"], n_times=2, class_values=[0, 1, 2])
    ds = datasets.open("mt", root)
    x, _ = ds.read("c0")
    assert x.dims == ("time", "band", "y", "x") and ds.n_channels == 4
    with rasterio.open(root / "images" / "c0.tif") as src:
        img = src.read()
    np.testing.assert_allclose(x.sel(time=1, band="B02").values, img[2] * 1e-4, rtol=1e-6)


# ------------------------------------------------------------------------------------------------ bands by name
def test_hls_models_pick_their_bands_by_name_or_name_what_is_missing(tmp_path, example_root):
    root = _multiband_dataset(tmp_path / "s2", S2_ORDER, class_values=[0, 1, 2])
    ds = datasets.open("s2", root)
    view = datasets.with_bands(ds)
    assert view.bands == list(bands.HLS_BANDS) and view.n_channels == 6 and view.name == "s2"
    a, y = ds.read_arrays("c1")
    b, y2 = view.read_arrays("c1")
    np.testing.assert_array_equal(b, a[[S2_ORDER.index(n) for n in bands.HLS_BANDS]])
    assert np.array_equal(y, y2) and view.chip_ids("test") == ds.chip_ids("test")
    assert view.fingerprint() != ds.fingerprint()
    assert list(view.read("c1")[0]["band"].values) == list(bands.HLS_BANDS)
    sim = datasets.prepare("sim-flood", tmp_path, size="quick")
    assert (
        datasets.with_bands(sim) is sim
    )  # the six HLS bands already: the dataset itself, its keys unchanged
    with pytest.raises(datasets.MissingBands, match="lacks B8A, B11, B12") as err:
        datasets.with_bands(_open(example_root))
    assert err.value.missing == ["B8A", "B11", "B12"]


def test_features_follow_the_bands_a_dataset_has():
    four = ["B02", "B03", "B04", "B08"]
    assert features.index_bands(four) == {"NDVI": ("B08", "B04"), "NDWI": ("B03", "B08")}  # no SWIR: no NBR
    assert features.index_bands(features.BANDS) == features.INDICES
    rng = np.random.default_rng(0)
    chip = rng.uniform(0.01, 0.5, size=(8, 12, 12)).astype(np.float32)  # two dates of four bands
    stack, names = features.feature_stack(chip, "aug", four)
    assert stack.shape[0] == len(names) == 8 * (1 + 2 * 3 + 1) + 2 * 2
    assert names[:4] == ["t1_B02", "t1_B03", "t1_B04", "t1_B08"] and names[-1] == "t2_NDWI"
    np.testing.assert_allclose(
        stack[names.index("t2_NDVI")], features.normalised_difference(chip[7], chip[6]), rtol=1e-6
    )
    table = features.feature_table(8, "aug", four)
    assert table.loc[table["name"] == "t1_NDVI", "definition"].item() == "(B08-B04)/(B08+B04)"
    with pytest.raises(ValueError, match="expected C = 4 x n_dates"):
        features.feature_stack(chip[:6], "aug", four)


def test_band_files_and_masks_must_share_one_grid(example_root, tmp_path):
    root = _copy(example_root, tmp_path)
    generic._write_plain_tif(root / "masks" / "chip_000.tif", np.ones((1, 16, 16), np.uint8), nodata=None)
    with pytest.raises(DataError, match=r"masks/chip_000.tif: label shape 16x16 does not match image"):
        _open(root)
    root = _copy(example_root, tmp_path / "bands")
    generic._write_plain_tif(root / "images" / "chip_000_B04.tif", np.ones((1, 16, 16), np.uint16), nodata=0)
    with pytest.raises(
        DataError, match=r"chip_000_B04.tif: band file is 16x16 px in CRS None, but chip_000_B02.tif"
    ):
        _open(root)


# ------------------------------------------------------------------------------------------------ unlabelled images
def test_a_cards_unlabelled_folder_joins_the_pretraining_imagery(tmp_path):
    from helpers.data import corpus
    from helpers.runs import fm_finetuned, fm_settings

    s2 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    root = _multiband_dataset(tmp_path / "mine", s2, unlabelled="unlabelled")
    rng = np.random.default_rng(1)
    for i in range(4):
        img = rng.integers(100, 4000, size=(len(s2), 16, 16)).astype(np.uint16)
        _write_tif(root / "unlabelled" / f"u{i}.tif", img)
    ds = datasets.open("mine", root)
    assert ds.unlabelled_ids() == ["u0", "u1", "u2", "u3"]
    with rasterio.open(root / "unlabelled" / "u2.tif") as src:
        stored = src.read()
    np.testing.assert_allclose(ds.read_unlabelled("u2"), stored * 1e-4, rtol=1e-6)  # the card's scale
    extra = corpus.unlabelled_imagery(datasets.with_bands(ds))  # seen through the band view
    assert extra.name == "mine-unlabelled" and extra.chip_ids() == ds.unlabelled_ids()
    settings = fm_settings.quick_settings()
    data, _, probe_on = fm_finetuned.pretraining_inputs(ds, "mae", settings)
    assert [d.name for d in data] == ["mine", "mine-unlabelled"]
    assert data[1].read_arrays("u0")[0].shape == (6, 16, 16)  # the six HLS bands, picked by name
    assert [d.name for d in probe_on] == ["mine"]  # the probe never scores on unlabelled images
    plain = _multiband_dataset(tmp_path / "plain", s2)
    assert corpus.unlabelled_imagery(datasets.open("plain", plain)) is None


def test_a_missing_unlabelled_folder_or_a_wrong_band_count_is_named(tmp_path):
    root = _multiband_dataset(tmp_path / "mine", ["B02", "B03", "B04", "B08"], unlabelled="extra")
    ds = datasets.open("mine", root)
    with pytest.raises(DataError, match="extra: the card's 'unlabelled' folder is missing"):
        ds.unlabelled_ids()
    _write_tif(root / "extra" / "u0.tif", np.ones((3, 16, 16), np.uint16))
    with pytest.raises(DataError, match="u0.tif"):
        ds.read_unlabelled("u0")
    _edit_card(root, unlabelled=7)
    with pytest.raises(DataError, match="'unlabelled' must be a folder name"):
        datasets.open("mine", root)

"""The scene layout: one image, polygon or raster labels, splits as label masks (helpers.data.splits, .scene)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from helpers.data import datasets, splits
from helpers.data import scene as _scene
from helpers.data.io import DataError, read_raster, write_geotiff
from helpers.runs import classical, crops, pixel_samples


@pytest.fixture(scope="module")
def example_root(tmp_path_factory):
    return _scene.write_example(tmp_path_factory.mktemp("scene") / "example-scene")


def _copy(root, tmp_path, **card_changes):
    import shutil

    dst = tmp_path / root.name
    shutil.copytree(root, dst)
    card = json.loads((dst / "dataset.json").read_text())
    card.update(card_changes)
    (dst / "dataset.json").write_text(json.dumps(card))
    return dst


# ---------------------------------------------------------------------------------------------------- splits
def _chebyshev_to_other(regions: np.ndarray, k: int) -> np.ndarray:
    """Brute force: each pixel's Chebyshev distance to the nearest pixel of another split's region."""
    other = np.argwhere((regions != splits.NONE) & (regions != k))
    rows, cols = np.indices(regions.shape)
    d = np.full(regions.shape, np.inf)
    for r, c in other:
        d = np.minimum(d, np.maximum(abs(rows - r), abs(cols - c)))
    return d


@pytest.mark.parametrize("guard", [0, 1, 3])
def test_the_guard_removes_exactly_the_labels_within_g_px_of_another_split(guard):
    rng = np.random.default_rng(guard)
    labels = np.where(rng.random((40, 36)) < 0.6, rng.integers(0, 3, (40, 36)), -1)
    assignment = splits.assign_blocks(labels, 3, block=8, seed=1, tries=50)
    regions = splits.block_regions(labels.shape, 8, assignment)
    kept = splits.guard_labels(regions, labels >= 0, guard)
    for k in range(3):
        own = (labels >= 0) & (regions == k)
        expected = own & (_chebyshev_to_other(regions, k) > guard)
        np.testing.assert_array_equal(kept == k, expected)
    assert guard == 0 or (kept == splits.NONE).sum() > (labels < 0).sum()  # the guard did drop labels


def test_no_label_is_in_two_splits_and_random_split_follows_its_fractions():
    rng = np.random.default_rng(0)
    labelled = rng.random((50, 50)) < 0.5
    regions = splits.random_regions(labelled, (0.6, 0.15, 0.25), seed=3)
    assert ((regions != splits.NONE) == labelled).all()  # every label in exactly one split, nothing else
    shares = np.bincount(regions[labelled], minlength=3) / labelled.sum()
    np.testing.assert_allclose(shares, [0.6, 0.15, 0.25], atol=1e-3)
    np.testing.assert_array_equal(regions, splits.random_regions(labelled, (0.6, 0.15, 0.25), seed=3))


def test_block_assignment_keeps_classes_in_train_and_is_seeded():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, (64, 64))
    a = splits.assign_blocks(labels, 4, block=16, seed=0, tries=200)
    assert a == splits.assign_blocks(labels, 4, block=16, seed=0, tries=200)
    assert len(a) == 16 and set(a.values()) == set(splits.SPLITS)
    with pytest.raises(ValueError, match="fractions"):
        splits.assign_blocks(labels, 4, block=16, fractions=(0.5, 0.5, 0.5))


# ---------------------------------------------------------------------------------------------------- the layout
def test_a_scene_with_polygon_labels_opens_as_one_whole_image_per_split(example_root):
    ds = datasets.open("example-scene", example_root)
    assert isinstance(ds, _scene.SceneDataset) and ds.simulated
    assert {s: ds.chip_ids(s) for s in ds.splits} == {s: [_scene.CHIP_IDS[s]] for s in splits.SPLITS}
    scene = ds.scene()
    arrays = {s: ds.read_arrays(_scene.CHIP_IDS[s]) for s in splits.SPLITS}
    masks = {s: y != ds.ignore_index for s, (_, y) in arrays.items()}
    assert not (masks["train"] & masks["val"]).any() and not (masks["train"] & masks["test"]).any()
    assert not (masks["val"] & masks["test"]).any()
    np.testing.assert_array_equal(
        masks["train"] | masks["val"] | masks["test"], scene.labels != ds.ignore_index
    )
    for x, _ in arrays.values():  # every split sees the same whole image
        np.testing.assert_array_equal(x, arrays["train"][0])
    # the polygons were burnt where they lie: every labelled pixel is inside the image's painted field of its class
    stored = read_raster(example_root / "scene.tif", bands=6).values
    water = scene.labels == 0
    assert water.any() and (stored[3][water] < 500).all()  # water's NIR (x 1e4) is far below land's


def test_a_training_crop_never_puts_a_val_or_test_label_into_the_loss(example_root):
    """The training stream's crops (ChipStore, random_crop, augment) carry training labels only, while their input
    does reach into held-out blocks (the protocol is transductive): a channel marking held-out labels rides along."""
    ds = datasets.open("example-scene", example_root)
    held_out = (ds.scene().label_split > 0).astype(np.float32)
    a, y = crops.ChipStore(ds, ds.chip_ids("train"))[0]
    a = np.concatenate([a, held_out[None]])
    rng = np.random.default_rng(0)
    trained, reached = 0, 0
    for _ in range(300):
        ac, yc = crops.augment(*crops.random_crop(a, y, 32, rng, ds.ignore_index), rng)
        assert not ((yc != ds.ignore_index) & (ac[-1] > 0)).any()
        trained += int((yc != ds.ignore_index).sum())
        reached += int((ac[-1] > 0).any())
    assert trained > 0 and reached > 0


def test_the_input_masking_ablation_hides_other_regions_from_training_only(example_root, tmp_path):
    root = _copy(example_root, tmp_path, input="train-only")
    ds = datasets.open("example-scene", root)
    regions = ds.scene().regions
    x_train, _ = ds.read_arrays("scene-train")
    x_test, _ = ds.read_arrays("scene-test")
    hidden = (regions != splits.NONE) & (regions != 0)
    assert hidden.any() and (x_train[:, hidden] == 0).all()
    assert (x_train[:, regions == 0] > 0).all() and (x_test[:, hidden] > 0).all()
    assert ds.fingerprint() != datasets.open("example-scene", example_root).fingerprint()


def test_classical_rows_sample_a_scene_up_to_the_total_cap(example_root):
    ds = datasets.open("example-scene", example_root)
    budget = classical.budget_for(pixel_samples.Budget(100, 10_000), ds)
    assert budget.per_class_per_chip == 10_000
    sample = pixel_samples.sample_pixels(ds, "train", "spectral", seed=0, budget=budget)
    assert len(sample) == int((ds.read_arrays("scene-train")[1] >= 0).sum()) > 300


def test_a_raster_split_and_raster_labels(example_root, tmp_path):
    ds = datasets.open("example-scene", example_root)
    labels = ds.scene().labels
    root = _copy(example_root, tmp_path)
    with rasterio.open(root / "scene.tif") as src:
        crs, transform = src.crs.to_string(), src.transform
    write_geotiff(
        root / "labels.tif",
        np.where(labels >= 0, labels + 1, 0).astype(np.uint8),
        crs=crs,
        transform=transform,
    )
    split = np.zeros(labels.shape, np.uint8)
    split[:, :48], split[:, 48:64], split[:, 64:] = 1, 2, 3
    write_geotiff(root / "split.tif", split, crs=crs, transform=transform)
    card = json.loads((root / "dataset.json").read_text())
    card.update(
        labels="labels.tif", ignore_values=[0], split={"kind": "raster", "path": "split.tif", "guard": 2}
    )
    del card["label_attribute"]
    (root / "dataset.json").write_text(json.dumps(card))
    ds2 = datasets.open("example-scene", root)
    np.testing.assert_array_equal(ds2.scene().labels, labels)
    kept = ds2.scene().label_split
    assert set(np.unique(np.argwhere(kept == 0)[:, 1])) <= set(range(0, 46))  # 2 px off the val columns
    assert set(np.unique(np.argwhere(kept == 1)[:, 1])) <= set(range(50, 62))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"label_attribute": "klass"}, "attribute 'klass'.*not found; the file has \\['class'\\]"),
        ({"crs": None, "split": {"kind": "blocks", "block": 96}}, "split 'val' holds no label"),
        ({"class_values": [1, 2, 9]}, "neither a class value nor an ignore value"),
        ({"split": {"kind": "stripes"}}, "split kind 'stripes' unknown"),
        ({"labels": "labels.gpkg", "label_attribute": None}, "name the attribute"),
    ],
)
def test_card_and_label_errors_name_the_file(example_root, tmp_path, change, match):
    root = _copy(example_root, tmp_path, **change)
    with pytest.raises(DataError, match=match):
        datasets.open("example-scene", root)


def test_labels_outside_the_image_or_in_another_crs_and_classes_without_training_labels(
    example_root, tmp_path
):
    import pyogrio.raw
    import shapely

    def polygons(root, boxes, values, crs="EPSG:32633"):
        (root / "labels.gpkg").unlink()
        pyogrio.raw.write(
            root / "labels.gpkg", shapely.to_wkb(np.asarray(boxes, dtype=object)), [np.asarray(values, np.int32)],
            ["class"], layer="labels", geometry_type="Polygon", crs=crs, driver="GPKG",
        )  # fmt: skip

    x0, y0 = 600000.0, 5000020.0
    inside = [shapely.box(x0 + 20 * i, y0 - 20 * (i + 40), x0 + 20 * (i + 40), y0 - 20 * i) for i in (0, 40)]
    root = _copy(example_root, tmp_path / "outside")
    polygons(root, [*inside, shapely.box(x0 - 5000, y0, x0 - 4000, y0 + 1000)], [1, 2, 3])
    with pytest.raises(
        DataError, match=r"labels.gpkg: 1 of 3 labelled polygons lie outside the image scene.tif"
    ):
        datasets.open("example-scene", root)
    root = _copy(example_root, tmp_path / "crs")
    polygons(root, inside, [1, 2], crs="EPSG:32632")
    with pytest.raises(DataError, match="labels are in CRS EPSG:32632, the image scene.tif in EPSG:32633"):
        datasets.open("example-scene", root)
    root = _copy(example_root, tmp_path / "names")
    polygons(root, inside, [1, 2])  # no crop polygon at all
    with pytest.raises(DataError, match=r"class\(es\) \['crop'\] have no training label"):
        datasets.open("example-scene", root)


def test_the_example_scene_is_written_byte_identically(example_root, tmp_path):
    again = _scene.write_example(tmp_path / "example-scene")
    assert (
        datasets.open("example-scene", again).fingerprint()
        == datasets.open("example-scene", example_root).fingerprint()
    )


def test_point_budgets_draw_from_the_whole_scene_and_keep_validation_whole(example_root):
    """The regime map's budgets apply to a scene too: points-K keeps K training labels per class over the scene."""
    from helpers.data import labels as _labels

    ds = datasets.open("example-scene", example_root)
    view = _labels.label_view(ds, "points-10", seed=0)
    y = view.read_arrays("scene-train")[1]
    full = ds.read_arrays("scene-train")[1]
    np.testing.assert_array_equal(np.bincount(y[y >= 0], minlength=3), [10, 10, 10])
    assert (full[y >= 0] == y[y >= 0]).all()  # the kept points are training labels of the scene
    np.testing.assert_array_equal(view.read_arrays("scene-val")[1], ds.read_arrays("scene-val")[1])
    assert view.protocol == ds.protocol and _labels.tag_of(view) == "points-10"


def test_a_block_split_is_scored_block_by_block_and_the_blocks_sum_to_the_split(example_root, tmp_path):
    """The crossed bootstrap's test units on a scene are its test blocks, counted from the saved prediction."""
    from helpers import results
    from helpers.runs import runner

    ds = datasets.open("example-scene", example_root)
    truth = ds.split_labels("scene-test")
    c = len(ds.classes)
    rng = np.random.default_rng(0)
    pred = np.where(rng.random(truth.shape) < 0.7, np.maximum(truth, 0), rng.integers(0, c, truth.shape))
    scored = truth >= 0
    cm = np.zeros((c, c), np.int64)
    np.add.at(cm, (truth[scored], pred[scored]), 1)
    chips = {"test": results.chip_counts(["scene-test"], cm[None])}
    out = runner.units_as_chips(ds, chips, {"scene-test": pred})["test"]
    blocks = splits.block_ids(truth.shape, ds.card["split"]["block"])
    tested = sorted(np.unique(blocks[scored]))
    assert list(out["chip_ids"]) == [f"scene-test/b{b}" for b in tested] and len(tested) > 1
    for k in ("tp", "fp", "fn"):
        np.testing.assert_array_equal(out[k].sum(axis=0), chips["test"][k][0])
    first = scored & (blocks == tested[0])  # one block's counts are that block's pixels only
    assert out["tp"][0].sum() == int((truth[first] == pred[first]).sum())
    # no saved prediction, or a random-pixel split (no blocks): the split stays one chip
    assert runner.units_as_chips(ds, chips, {}) == chips
    rnd = datasets.open("example-scene", _copy(example_root, tmp_path, split={"kind": "random"}))
    assert rnd.score_units("scene-test") is None
    assert runner.units_as_chips(rnd, chips, {"scene-test": pred}) == chips

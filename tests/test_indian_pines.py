"""Tests of the real offline task indian-pines-hls (AVIRIS Indian Pines band-integrated to HLS)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from helpers.data import datasets, indian_pines


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return indian_pines.generate(tmp_path_factory.mktemp("ip") / "indian-pines-hls")


def test_wavelengths_are_fixed_and_cover_the_bands():
    cube, labels, wl = indian_pines.load_scene()
    assert cube.shape == (145, 145, 200) and labels.max() == 16 and (labels > 0).sum() == 10249
    s = np.sort(wl)
    assert np.all(np.diff(s) > 0)
    assert np.allclose(wl[170:172], [2212.22, 2222.15], atol=0.01)
    # water-absorption gaps, none under an HLS band (B11 1539-1682 nm, B12 2078-2320 nm)
    gaps = [(a, b) for a, b in zip(s[:-1], s[1:], strict=True) if b - a > 30]
    assert [(round(a), round(b)) for a, b in gaps] == [(1353, 1422), (1819, 1953)]


def test_empirical_line_is_physical():
    refl, labels, calib = indian_pines.reflectance()
    assert all(g > 0 for g in calib["gain"]) and all(o > 0 for o in calib["offset"])  # positive path radiance
    woods = refl[labels == indian_pines.WOODS].mean(axis=0)
    assert woods[3] > 0.4 and woods[2] < 0.05  # red edge of a closed canopy
    lo, hi = np.percentile(refl.reshape(-1, 6), [0.1, 99.9], axis=0)
    assert (lo > -0.01).all() and (hi < 1.0).all()


def test_layout_blocks_and_card(root):
    card = json.loads((root / "dataset.json").read_text())
    assert card["simulated"] is False and card["layout"] == "crop" and card["n_times"] == 1
    assert "CC BY 3.0" in card["licence"] and len(card["classes"]) == 16
    train = (root / "training_data.txt").read_text().split()
    val = (root / "val_data.txt").read_text().split()
    test = (root / "validation_data.txt").read_text().split()
    assert set(val) <= set(train) and not set(train) & set(test)
    assert len(train) + len(test) == 22  # the 32 x 32 blocks with labelled pixels
    for cid in train[:2] + test[:1]:
        folder = "validation_chips" if cid in test else "training_chips"
        with rasterio.open(root / folder / f"{cid}_merged.tif") as src:
            assert src.tags()["SIMULATED"] == "no" and "REAL" in src.tags()["DESCRIPTION"]
            assert (src.count, src.width, src.height, src.res) == (6, 32, 32, (20.0, 20.0))
            assert src.nodata == -9999
    ds = datasets.open("indian-pines-hls", root)
    assert not ds.simulated and ds.num_classes == 16 and ds.splits == ["train", "val", "test"]
    counts = {s: datasets.class_counts(ds, s) for s in ds.splits}
    assert (counts["train"] > 0).all()  # every class is trained on
    assert (counts["test"] > 0).sum() >= 10
    total = sum(c.sum() for c in counts.values())
    assert total == 10249
    assert 0.5 < counts["train"].sum() / total < 0.7
    # padding is nodata with ignore labels
    corner = next(c for c in train + test if c.startswith("chip_004_"))  # bottom row: 17 real rows of 32
    x, y = ds.read_arrays(corner)
    assert (y[17:, :] == ds.ignore_index).all() and (x[:, 17:, :] == 0).all()


def test_deterministic(root, tmp_path):
    again = indian_pines.generate(tmp_path / "again")
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_random_pixel_split_leaks():
    res = indian_pines.split_leakage_demo(n_estimators=30)
    assert res["random_pixel"]["n_train"] == res["block"]["n_train"]
    assert res["random_pixel"]["oa"] > res["block"]["oa"] + 0.15


def test_the_scene_datasets_share_the_chip_datasets_blocks_and_say_their_protocol(root, tmp_path):
    """indian-pines-scene splits the labels by the chip dataset's own blocks (same seed), so the two differ only in
    what a model sees; the random variant assigns pixels; the guard variant keeps no label within 4 px of another
    split; the ablation differs from the scene in its card only."""
    chips = datasets.open("indian-pines-hls", root)
    scene = datasets.prepare("indian-pines-scene", tmp_path)
    for split in ("train", "val", "test"):
        per_chip = sum(int((chips.read_arrays(c)[1] >= 0).sum()) for c in chips.chip_ids(split))
        assert int((scene.read_arrays(f"scene-{split}")[1] >= 0).sum()) == per_chip
    assert scene.protocol == "scene blocks, 32 px, guard 0 px" and not scene.simulated
    random = datasets.prepare("indian-pines-scene-random", tmp_path)
    assert (
        random.protocol.endswith("(leaky)")
        and random.scene().labels.tolist() == scene.scene().labels.tolist()
    )
    guard = datasets.prepare("indian-pines-scene-guard", tmp_path)
    assert (
        0 < guard.scene().dropped and (guard.scene().label_split >= 0).sum() + guard.scene().dropped == 10249
    )
    ablation = datasets.prepare("indian-pines-scene-trainonly", tmp_path)
    assert ablation.protocol.endswith("input train-only") and ablation.fingerprint() != scene.fingerprint()
    assert (ablation.read_arrays("scene-train")[0] == 0).sum() > (
        scene.read_arrays("scene-train")[0] == 0
    ).sum()

"""Saved prediction maps: format, seeds, errors, and the figure that draws them."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from helpers import prediction_maps
from helpers.report import map_figures


class _Chips:
    """The slice of the dataset API the map figure reads."""

    name, simulated = "sim-fake", True
    classes = ["a", "b", "c"]
    num_classes, ignore_index = 3, -1
    splits = ["train", "test"]

    def __init__(self, n_test=4, size=12):
        rng = np.random.default_rng(0)
        self._data = {
            f"t{i}": (rng.random((12, size, size), dtype=np.float32), rng.integers(-1, 3, (size, size)))
            for i in range(n_test)
        }

    def chip_ids(self, split):
        return list(self._data) if split == "test" else ["tr0"]

    def read_arrays(self, chip_id):
        return self._data[chip_id]


def test_save_load_round_trip_and_first_test_chips(tmp_path):
    ds = _Chips()
    assert prediction_maps.chip_ids(ds) == ["t0", "t1", "t2"]
    maps = {c: ds.read_arrays(c)[1].clip(0) for c in prediction_maps.chip_ids(ds)}
    path = prediction_maps.save(tmp_path, ds.name, "unet", 2, maps)
    assert path == tmp_path / "sim-fake" / "unet" / "seed2.npz" and path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    back = prediction_maps.load(path)
    assert list(back) == list(maps)
    for c in maps:
        assert back[c].dtype == np.int16
        np.testing.assert_array_equal(back[c], maps[c])
    assert prediction_maps.save(None, ds.name, "unet", 0, maps) is None
    assert prediction_maps.save(tmp_path, ds.name, "unet", 0, {}) is None


def test_load_run_takes_the_lowest_seed_with_maps(tmp_path):
    assert prediction_maps.load_run(tmp_path, "d", "m") is None
    for seed in (2, 1, 10):
        prediction_maps.save(tmp_path, "d", "m", seed, {"t0": np.full((2, 2), seed)})
    seed, maps = prediction_maps.load_run(tmp_path, "d", "m")
    assert seed == 1 and int(maps["t0"][0, 0]) == 1
    assert prediction_maps.load_run(tmp_path, "d", "m", seeds=[2, 10])[0] == 2
    assert prediction_maps.load_run(tmp_path, "d", "m", seeds=[5]) is None
    assert prediction_maps.load_run(tmp_path, "d", "other") is None


def test_bad_files_and_maps_get_clear_errors(tmp_path):
    bad = tmp_path / "d" / "m" / "seed0.npz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"seed0.npz: not a prediction-map file"):
        prediction_maps.load_run(tmp_path, "d", "m")
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ValueError, match="not a prediction-map file"):
        prediction_maps.load(bad)
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2\); expected \(H, W\)"):
        prediction_maps.save(tmp_path, "d", "m", 0, {"t0": np.zeros((2, 2, 2))})
    with pytest.raises(ValueError, match="outside int16"):
        prediction_maps.save(tmp_path, "d", "m", 0, {"t0": np.full((2, 2), 2**20)})


def test_best_maps_figure_has_one_column_per_family_and_says_when_a_map_is_missing(tmp_path):
    ds = _Chips()
    chips = prediction_maps.chip_ids(ds)
    prediction_maps.save(tmp_path, ds.name, "rf", 0, {c: ds.read_arrays(c)[1].clip(0) for c in chips})
    prediction_maps.save(tmp_path, ds.name, "rf", 1, {c: np.zeros((12, 12)) for c in chips})
    prediction_maps.save(tmp_path, ds.name, "unet", 1, {c: np.zeros((12, 12)) for c in chips[:2]})
    best = pd.DataFrame(
        {
            "dataset": [ds.name, ds.name, ds.name, "other"],
            "family": ["classical", "cnn", "fm", "cnn"],
            "model": ["rf", "unet", "vit", "fcn"],
        }
    )
    fig = map_figures.best_maps_figure(ds, best, tmp_path)
    axes = np.array(fig.axes).reshape(3, 5)  # chips x (rgb, truth, classical, cnn, fm)
    titles = [ax.get_title() for ax in axes[0]]
    assert titles[2:] == ["best classical: rf\n(seed 0)", "best cnn: unet\n(seed 1)", "best fm: vit"]
    texts = [[t.get_text() for t in ax.texts] for ax in axes[:, 4]]
    assert texts == [["no saved map"]] * 3  # vit saved nothing
    assert axes[2, 3].texts[0].get_text() == "no saved map"  # unet kept two chips only
    shown = axes[0, 2].images[0].get_array()
    np.testing.assert_array_equal(shown, ds.read_arrays("t0")[1].clip(0))  # seed 0's map, not seed 1's
    assert "simulated" in fig._suptitle.get_text().lower()
    plt.close(fig)
    assert map_figures.prediction_maps_figure(ds, [], []) is None

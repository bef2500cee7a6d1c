"""Notebook 01's measurements and figures (helpers.data.exploration, helpers.report.data_figures) on generated data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from helpers.data import datasets, exploration, simulate  # noqa: E402
from helpers.report import data_figures, plotting  # noqa: E402


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        name: datasets.open(name, simulate.generate(name, root / name, size="quick"))
        for name in ("sim-flood", "sim-crop")
    }


def test_sample_per_class_is_balanced_and_reproducible(opened):
    ds = opened["sim-crop"]
    x, y = exploration.sample_per_class(ds, "train", 50, np.random.default_rng(0), max_chips=4)
    assert x.shape == (len(y), ds.n_channels)
    counts = np.bincount(y, minlength=ds.num_classes)
    assert counts.max() <= 50 and (counts > 0).sum() >= 2
    assert (np.diff(y) >= 0).all()  # classes in index order
    again, y2 = exploration.sample_per_class(ds, "train", 50, np.random.default_rng(0), max_chips=4)
    assert np.array_equal(again, x) and np.array_equal(y2, y)
    other, _ = exploration.sample_per_class(ds, "train", 50, np.random.default_rng(1), max_chips=4)
    assert not np.array_equal(other, x)
    table = exploration.pixel_table(ds, x, y)
    assert list(table.columns[:2]) == ["t0_B02", "t0_B03"] and set(table["label"]) <= set(ds.classes)


def test_linear_separability_scores_validation_and_says_why_not(opened):
    table = exploration.linear_separability(opened, 50, np.random.default_rng(0), max_chips=4)
    assert list(table["dataset"]) == ["sim-flood", "sim-crop"]
    assert table["oa"].between(0, 1).all() and table["simulated"].all()
    assert table.loc[0, "oa"] > 0.8  # water is linearly separable on reflectance

    class NoVal:
        name, simulated, num_classes, ignore_index = "no-val", True, 2, -1
        ds = opened["sim-flood"]
        n_channels = ds.n_channels

        def chip_ids(self, split):
            return [] if split == "val" else self.ds.chip_ids(split)

        def read_arrays(self, chip):
            return self.ds.read_arrays(chip)

    note = exploration.linear_separability({"no-val": NoVal()}, 20, np.random.default_rng(0), max_chips=2)
    assert note.loc[0, "note"] == "too few classes or no validation chips"


def test_every_data_figure_fits_a_page(opened, tmp_path):
    plotting.setup_style()
    crop = opened["sim-crop"]
    pixels = exploration.pixel_table(
        crop, *exploration.sample_per_class(crop, "train", 30, np.random.default_rng(0))
    )
    builders = {
        "balance": lambda: data_figures.class_balance_figure(crop)[0],
        "bands": lambda: data_figures.band_distributions_figure(crop, pixels),
        "spectra": lambda: data_figures.mean_spectra_figure(crop, pixels),
        "chips": lambda: data_figures.example_chips_figure(crop, crop.chip_ids("test")[:3]),
        "sources": lambda: data_figures.simulated_vs_sources_figure(
            opened, ["sim-crop", "sim-flood"], 30, np.random.default_rng(0), max_chips=4
        ),
    }
    for name, build in builders.items():
        fig = build()
        plotting.fit_to_page(fig)
        png = next(p for p in plotting.save_figure(fig, name, tmp_path) if p.suffix == ".png")
        w, h = Image.open(png).size
        assert w <= 2250 and h <= 2700, (name, w, h)
        assert (
            "(simulated)" in (fig._suptitle.get_text() if fig._suptitle else fig.axes[0].get_title()).lower()
        )


def test_sim_crop_nuisance_figure_reads_dates_and_true_maps(opened, tmp_path):
    fig = data_figures.sim_crop_nuisance_figure(opened["sim-crop"])
    assert fig is not None and len(fig.axes) == 7
    assert "label errors" in fig.axes[6].get_title()
    paths = plotting.save_figure(fig, "nuisances", tmp_path)
    assert all(p.exists() for p in paths)
    assert (
        data_figures.sim_crop_nuisance_figure(opened["sim-flood"]) is None
    )  # no per-chip dates: nothing to draw

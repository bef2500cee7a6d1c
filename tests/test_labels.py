"""Label budgets (helpers.data.labels) and the one run identity they go through (runner.identity, matrix specs)."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_classical import make_fake  # noqa: E402

from helpers import prediction_maps, results  # noqa: E402
from helpers.data import labels  # noqa: E402
from helpers.runs import classical, crops, fm_heads, matrix, pixel_samples, run_folders, runner  # noqa: E402


@pytest.fixture(scope="module")
def fake():
    return make_fake(counts=(8, 2, 2), size=32, n_classes=3)


def _train_labels(ds):
    return {c: ds.read_arrays(c)[1] for c in ds.chip_ids("train")}


def test_budget_tags_round_trip_and_bad_budgets_name_what_was_expected():
    for text in ("all", "points-10", "chips-0.25", "chips-1"):
        assert labels.LabelBudget.parse(text).tag == text
    assert labels.LabelBudget("points", 10.0).tag == "points-10"
    for bad in ("some", "points-0", "points-2.5", "chips-0", "chips-1.5", "pixels-10"):
        with pytest.raises(ValueError, match="label budget|budget kind|fraction|whole number"):
            labels.LabelBudget.parse(bad)
    assert [b.tag for b in labels.parse_all(["points-10", "all", "points-10.0"])] == ["points-10", "all"]


def test_all_is_the_dataset_itself(fake):
    assert labels.label_view(fake, "all", 3) is fake
    assert labels.tag_of(fake) == "all"


def test_points_keep_k_per_class_over_the_split_and_only_there(fake):
    base = _train_labels(fake)
    for k in (1, 10, 100):
        view = labels.label_view(fake, f"points-{k}", 0)
        seen = np.zeros(fake.num_classes, int)
        for cid in view.chip_ids("train"):
            a, y = view.read_arrays(cid)
            a0, y0 = fake.read_arrays(cid)
            np.testing.assert_array_equal(a, a0)  # the imagery is untouched
            assert ((y == -1) | (y == y0)).all()  # kept labels are the true ones
            seen += np.bincount(y[y != -1], minlength=fake.num_classes)
        assert seen.tolist() == [k] * fake.num_classes == view.class_counts.tolist()
        assert view.n_labelled_px == k * fake.num_classes
        # chips without a kept label carry nothing and are left out; validation and test are never subset
        assert set(view.chip_ids("train")) <= set(base)
        for split in ("val", "test"):
            assert view.chip_ids(split) == fake.chip_ids(split)
            for cid in fake.chip_ids(split):
                np.testing.assert_array_equal(view.read_arrays(cid)[1], fake.read_arrays(cid)[1])


def test_a_class_in_one_chip_keeps_k_pixels_too():
    ds = make_fake(counts=(4, 1, 1), size=16, n_classes=3)
    for _a, y in ds._chips["train"].values():
        y[y == 2] = 0
    ds._chips["train"][ds.chip_ids("train")[1]][1][:8, :8] = 2  # 64 pixels of class 2, all in one chip
    view = labels.label_view(ds, "points-10", 0)
    assert view.class_counts.tolist() == [10, 10, 10]
    assert labels.label_view(ds, "points-64", 0).class_counts[2] == 64
    assert labels.label_view(ds, "points-100", 0).class_counts[2] == 64  # all it has


def test_budgets_are_nested_for_one_seed_and_drawn_by_the_seed(fake):
    small, large = labels.label_view(fake, "points-5", 0), labels.label_view(fake, "points-50", 0)
    for cid in small.chip_ids("train"):
        ys, yl = small.read_arrays(cid)[1], large.read_arrays(cid)[1]
        assert (yl[ys != -1] == ys[ys != -1]).all()  # every small-budget label is in the large one
    other = labels.label_view(fake, "points-5", 1)
    kept = {c: small.read_arrays(c)[1] != -1 for c in fake.chip_ids("train") if c in small.chip_ids("train")}
    kept_other = {
        c: other.read_arrays(c)[1] != -1 for c in fake.chip_ids("train") if c in other.chip_ids("train")
    }
    assert kept.keys() != kept_other.keys() or any((kept[c] != kept_other[c]).any() for c in kept)
    quarter, half = labels.label_view(fake, "chips-0.25", 0), labels.label_view(fake, "chips-0.5", 0)
    assert set(quarter.chip_ids("train")) < set(half.chip_ids("train"))
    assert len(quarter.chip_ids("train")) == 2 and len(half.chip_ids("train")) == 4


def test_chip_budgets_cover_every_class_where_the_data_allows():
    ds = make_fake(counts=(8, 2, 2), size=16, n_classes=3)
    # make class 2 live in one training chip only
    for _a, y in ds._chips["train"].values():
        y[y == 2] = 0
    first = ds.chip_ids("train")[5]
    ds._chips["train"][first][1][:4, :4] = 2
    for seed in range(5):
        view = labels.label_view(ds, "chips-0.125", seed)  # a single chip... of 8
        view2 = labels.label_view(ds, "chips-0.25", seed)
        assert (view2.class_counts > 0).all()  # two chips are enough to hold all three classes
        assert set(view.chip_ids("train")) < set(view2.chip_ids("train"))


def test_a_view_has_a_key_of_its_own_and_pretraining_sees_through_it(fake):
    view = labels.label_view(fake, "points-10", 0)
    keys = {results.run_key(d, "rf", 0, {}) for d in (fake, view, labels.label_view(fake, "points-10", 1))}
    assert len(keys) == 3
    assert labels.unlabelled(view) is fake
    assert labels.tag_of(view) == "points-10"


def test_budgets_of_one_run_never_overwrite_each_other(fake, tmp_path):
    path, maps = tmp_path / "r.csv", tmp_path / "maps"
    for budget in ("all", "points-10", "chips-0.5"):
        view = labels.label_view(fake, budget, 0)
        classical.run_classical(view, "rf", 0, path, progress=False, maps_dir=maps)
    df = results.read(path)
    test = df[(df["split"] == "test") & (df["metric"] == "miou_macro")].set_index("label_budget")
    assert sorted(test.index) == ["all", "chips-0.5", "points-10"]
    assert test.loc["points-10", "n_labelled_px"] == 30 and test.loc["all", "n_train_chips"] == 8
    assert test.loc["chips-0.5", "n_train_chips"] == 4
    # a rerun of one budget replaces that budget's rows only
    classical.run_classical(
        labels.label_view(fake, "points-10", 0), "rf", 0, path, progress=False, force=True
    )
    again = results.read(path)
    assert len(again) == len(df)
    assert sorted(again["label_budget"].unique()) == ["all", "chips-0.5", "points-10"]
    # maps and run folders: one per budget, the full-label paths as before
    ids = [runner.identity(labels.label_view(fake, b, 0), "rf", 0) for b in ("all", "points-10")]
    assert ids[0].map_path(maps) == maps / "fake" / "rf" / "seed0.npz"
    assert ids[1].map_path(maps) == maps / "fake" / "rf" / "points-10" / "seed0.npz"
    assert all(i.map_path(maps).is_file() for i in ids)
    assert ids[0].run_dir("runs") == run_folders.run_dir("runs", "fake", "rf", 0) != ids[1].run_dir("runs")
    assert (
        prediction_maps.load_run(maps, "fake", "rf")[0] == 0
    )  # budget maps never stand in for full-label ones


def test_a_table_without_the_budget_column_reads_as_full_labels(tmp_path):
    path = tmp_path / "old.csv"
    pd.DataFrame(
        [
            {
                "task": "t",
                "dataset": "d",
                "model": "rf",
                "family": "classical",
                "seed": 0,
                "metric": "oa",
                "value": 1,
                "status": "ok",
            }
        ]
    ).to_csv(path, index=False)
    df = results.read(path)
    assert df["label_budget"].tolist() == ["all"]
    assert results.has_run("d", "rf", 0, path) and not results.has_run(
        "d", "rf", 0, path, label_budget="points-10"
    )
    assert len(results.full_labels(df)) == 1


@pytest.mark.parametrize("model", ["lgbm", "lgbm_aug", "rf"])
def test_no_head_predicts_a_single_class_at_ten_pixels_per_class(model):
    ds = make_fake(counts=(8, 2, 2), size=32, n_classes=2)
    view = labels.label_view(ds, "points-10", 0)
    run = classical.run_classical(view, model, 0, None, progress=False)
    assert run.n_train_pixels == 20
    for pred, _ in run.predictions.values():
        assert len(np.unique(pred)) == 2
    # the old grid (20 samples per leaf) could not split these 20 pixels: one class everywhere
    sample = pixel_samples.sample_pixels(view, "train", "spectral", seed=0)
    X_test = np.concatenate([ds.read_arrays(c)[0].reshape(ds.n_channels, -1).T for c in ds.chip_ids("test")])
    for grid, n_classes_predicted in ((classical.LGBM_GRID, 1), (classical.lgbm_grid(view.class_counts), 2)):
        head = fm_heads.fit_lgbm(sample.X, sample.y, 2, candidate=grid[0], seed=0, n_jobs=1)
        assert len(np.unique(head.predict(X_test, 1))) == n_classes_predicted


def test_lgbm_grid_is_unchanged_with_enough_pixels_per_class():
    assert classical.lgbm_grid(np.array([40, 500, 0])) == classical.LGBM_GRID
    assert classical.lgbm_grid(np.array([10, 500]))[0]["min_data_in_leaf"] == 5
    assert classical.lgbm_grid(np.array([1, 500]))[0]["min_data_in_leaf"] == 1


def test_chip_budgets_sample_more_pixels_per_chip_up_to_the_same_cap(fake):
    full = pixel_samples.Budget(100, 10_000)
    assert classical.budget_for(full, fake) == full
    assert classical.budget_for(full, labels.label_view(fake, "points-10", 0)) == full
    assert classical.budget_for(full, labels.label_view(fake, "chips-0.25", 0)) == pixel_samples.Budget(
        400, 10_000
    )


def test_anchored_crops_hold_a_labelled_pixel():
    y = np.full((200, 200), -1)
    y[3, 190] = 1
    a = np.zeros((2, 200, 200), np.float32)
    rng = np.random.default_rng(0)
    for _ in range(50):
        _, yc = crops.random_crop(a, y, 32, rng, -1, anchor=True)
        assert (yc == 1).sum() == 1 and yc.shape == (32, 32)
    blind = [(crops.random_crop(a, y, 32, rng, -1)[1] == 1).any() for _ in range(50)]
    assert sum(blind) < 10  # a blind draw rarely finds it: why sparse labels anchor their crops


def test_matrix_specs_and_the_job_that_applies_a_budget(fake):
    specs = matrix.specs(["fake"], ["rf", "unet"], [0, 1], ["all", "points-10.0"])
    assert len(specs) == 8 and {s.label_budget for s in specs} == {"all", "points-10"}
    assert matrix.RunSpec("fake", "rf", 0, "points-10.0") == matrix.RunSpec("fake", "rf", 0, "points-10")
    seen = matrix.at_budget(lambda ds, x: (labels.tag_of(ds), ds.draw_seed, x), fake, "points-10", 2, "arg")
    assert seen == ("points-10", 2, "arg")
    assert matrix.budget_datasets(["fake"], {"fake": 1, "sim-texture-0": 1}, [0.0, 0.5]) == [
        "fake",
        "sim-texture-0",
    ]

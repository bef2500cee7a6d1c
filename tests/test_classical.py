from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest

from helpers import features, prediction_maps, results
from helpers.runs import classical, pixel_samples
from tests.test_train import assert_chips_reproduce_rows

BANDS = 6


class FakeDataset:
    """A tiny in-memory dataset with the helpers.data.datasets interface; records which chips were read."""

    def __init__(self, chips: dict, classes, name="fake", task="crop", n_times=1):
        self._chips = chips  # split -> {chip_id: (array, labels)}
        self.name, self.task, self.classes, self.n_times = name, task, list(classes), n_times
        self.ignore_index = -1
        self.simulated = True
        self.root = f"memory://{name}"
        self.reads: list[str] = []

    splits = property(lambda self: list(self._chips))
    num_classes = property(lambda self: len(self.classes))
    n_channels = property(lambda self: BANDS * self.n_times)

    def chip_ids(self, split):
        return list(self._chips[split])

    def read_arrays(self, chip_id):
        self.reads.append(chip_id)
        for chips in self._chips.values():
            if chip_id in chips:
                a, y = chips[chip_id]
                return a.copy(), y.copy()
        raise KeyError(chip_id)


def make_fake(seed=0, counts=(4, 2, 2), size=16, n_classes=3, n_times=1, name="fake"):
    """Chips whose classes have fixed mean spectra (learnable from spectra) in 4x4 blocks, plus noise."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.05, 0.5, (n_classes, BANDS * n_times))
    chips = {}
    for split, n in zip(("train", "val", "test"), counts, strict=True):
        chips[split] = {}
        for i in range(n):
            lab = np.kron(rng.integers(0, n_classes, (size // 4, size // 4)), np.ones((4, 4), np.int64))
            a = means[lab].transpose(2, 0, 1) + rng.normal(0, 0.03, (BANDS * n_times, size, size))
            lab[0, :3] = -1
            chips[split][f"{split}_{i}"] = (a.astype(np.float32), lab)
    return FakeDataset(chips, [f"class{k}" for k in range(n_classes)], name=name, n_times=n_times)


TINY = pixel_samples.Budget(per_class_per_chip=30, max_pixels=300)
TINY_HALF = pixel_samples.Budget(per_class_per_chip=30, max_pixels=150)


def _values(run):
    return [(r["split"], r["metric"], r["class"], r["value"]) for r in run.rows]


@pytest.mark.parametrize("model", ["rf", "lgbm_aug"])
def test_same_seed_identical_metrics(model, tmp_path):
    ds = make_fake()
    a = classical.run_classical(ds, model, 3, tmp_path / "r.csv", budget=TINY, progress=False)
    b = classical.run_classical(make_fake(), model, 3, None, budget=TINY, progress=False)
    np.testing.assert_equal(_values(a), _values(b))
    np.testing.assert_array_equal(a.test_cm, b.test_cm)
    assert a.test_scores["miou_macro"] > 0.8  # the fake classes are separable from spectra
    table = results.read(tmp_path / "r.csv")
    assert set(table["split"]) == {"val", "test"} and set(table["family"]) == {"classical"}
    assert results.has_run("fake", model, 3, tmp_path / "r.csv")
    row = table.iloc[0]
    assert row["n_train_pixels"] == a.n_train_pixels <= TINY.max_pixels
    assert row["n_features"] == len(features.feature_names(6, MODELS_FS[model]))
    # timings are recorded (rounded to ms, so a fast machine may record 0.0: no test depends on speed)
    assert row["model_size_mb"] > 0 and row["fit_s"] >= 0 and row["predict_s"] >= 0
    assert row["pretraining"] == "none" and row["weights"] == "none"
    # an unchanged rerun refits (the notebook draws from the model) but leaves the table as it was ...
    again = classical.run_classical(make_fake(), model, 3, tmp_path / "r.csv", budget=TINY, progress=False)
    assert a.written and not again.written and results.read(tmp_path / "r.csv").equals(table)
    # ... and a changed setting is another run: its rows, under a new key, replace the old ones
    other = classical.run_classical(ds, model, 3, tmp_path / "r.csv", budget=TINY_HALF, progress=False)
    new = results.read(tmp_path / "r.csv")
    assert other.written and len(new) == len(table) and set(new["run_key"]).isdisjoint(table["run_key"])


MODELS_FS = {m: fs for m, (_, fs) in classical.MODELS.items()}


def test_lightgbm_prediction_threads_change_no_number():
    ds = make_fake(n_classes=4)
    one = classical.run_classical(ds, "lgbm_aug", 1, None, budget=TINY, predict_jobs=1, progress=False)
    two = classical.run_classical(
        make_fake(n_classes=4), "lgbm_aug", 1, None, budget=TINY, predict_jobs=2, progress=False
    )
    assert _values(one) == _values(two)
    for chip, (pred, _) in one.predictions.items():
        np.testing.assert_array_equal(pred, two.predictions[chip][0])


def test_sampling_never_crosses_splits():
    ds = make_fake()
    s = pixel_samples.sample_pixels(ds, "train", "spectral", seed=0, budget=TINY)
    assert set(ds.reads) == set(ds.chip_ids("train"))
    # every sampled row is a real pixel of the chip it is attributed to
    for k, chip_id in enumerate(s.chip_ids):
        a, y = ds._chips["train"][chip_id]
        pix = a.reshape(BANDS, -1).T
        rows = s.X[s.chip == k]
        assert np.all((rows[:, None, :] == pix[None]).all(-1).any(1))
    assert (s.y >= 0).all()  # ignore pixels are never sampled


def test_budget_per_class_per_chip_and_cap():
    ds = make_fake(counts=(6, 1, 1))
    s = pixel_samples.sample_pixels(ds, "train", "spectral", seed=1, budget=pixel_samples.Budget(5, 10_000))
    for k in range(len(s.chip_ids)):
        counts = np.bincount(s.y[s.chip == k], minlength=ds.num_classes)
        present = np.bincount(ds._chips["train"][s.chip_ids[k]][1].ravel() + 1, minlength=4)[1:] > 0
        np.testing.assert_array_equal(counts, np.where(present, 5, 0))  # every present class, 5 pixels
    capped = pixel_samples.sample_pixels(ds, "train", "spectral", seed=1, budget=pixel_samples.Budget(50, 40))
    assert len(capped) <= 40
    assert (
        pixel_samples.sample_pixels(ds, "train", "spectral", seed=2, budget=TINY).X.tobytes() != s.X.tobytes()
    )


def test_balanced_cap_keeps_rare_classes_whole():
    y = np.r_[np.zeros(1000, int), np.ones(10, int), np.full(500, 2)]
    keep = pixel_samples.balanced_cap(y, 210, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(y[keep]), [100, 10, 100])
    assert len(np.unique(keep)) == len(keep)


def test_all_ignore_chips(tmp_path):
    ds = make_fake()
    for split in ("train", "test"):
        a, y = ds._chips[split][f"{split}_0"]
        ds._chips[split][f"{split}_0"] = (a, np.full_like(y, -1))
    run = classical.run_classical(ds, "rf", 0, None, budget=TINY, progress=False)
    note = run.rows[0]["note"]
    assert "1 all-ignore train chip(s) skipped" in note and "1 all-ignore test chip(s)" in note
    assert "test_0" in run.predictions  # still drawn for the figures, scored as nothing
    assert run.test_cm.sum() == sum((y >= 0).sum() for _, y in ds._chips["test"].values())
    only_ignore = make_fake()
    for cid, (a, y) in only_ignore._chips["train"].items():
        only_ignore._chips["train"][cid] = (a, np.full_like(y, -1))
    with pytest.raises(ValueError, match="no valid"):
        classical.run_classical(only_ignore, "lgbm", 0, None, budget=TINY, progress=False)


@pytest.mark.parametrize("model", ["rf", "lgbm"])
def test_class_missing_from_training(model):
    ds = make_fake(n_classes=4)
    for cid, (a, y) in ds._chips["train"].items():  # class 3 exists in val/test only
        y = y.copy()
        y[y == 3] = -1
        ds._chips["train"][cid] = (a, y)
    with pytest.warns(UserWarning, match="class3"):
        run = classical.run_classical(ds, model, 0, None, budget=TINY, progress=False)
    assert run.missing_classes == ["class3"]
    assert "classes absent from training: class3" in run.rows[0]["note"]
    assert run.test_cm[:, 3].sum() == 0  # never predicted
    assert run.test_cm[3].sum() > 0 and run.test_scores["recall"][3] == 0 and run.test_scores["iou"][3] == 0


def test_empty_splits():
    ds = make_fake()
    ds._chips["val"] = {}
    run = classical.run_classical(ds, "lgbm", 0, None, budget=TINY, progress=False)
    assert run.val_scores is None and {r["split"] for r in run.rows} == {"test"}
    assert "no val split" in run.rows[0]["note"]
    assert run.params["rounds"] == classical.LGBM_FIXED["default_rounds"]
    for split in ("train", "test"):
        ds = make_fake()
        ds._chips[split] = {}
        with pytest.raises(ValueError, match=f"the '{split}' split has no chips"):
            classical.run_classical(ds, "rf", 0, None, budget=TINY, progress=False)
    with pytest.raises(ValueError, match="unknown classical model"):
        classical.run_classical(make_fake(), "xgb", 0, None)


def test_feature_cache_reuses_chips_and_changes_nothing():
    cache = pixel_samples.FeatureCache()
    ds = make_fake()
    a = classical.run_classical(ds, "rf_aug", 0, None, budget=TINY, cache=cache, progress=False)
    n_reads = len(ds.reads)
    b = classical.run_classical(ds, "rf_aug", 0, None, budget=TINY, cache=cache, progress=False)
    assert len(ds.reads) == n_reads and cache.hits > 0  # the second run read nothing from "disk"
    c = classical.run_classical(make_fake(), "rf_aug", 0, None, budget=TINY, progress=False)
    np.testing.assert_equal(_values(a), _values(b))
    np.testing.assert_equal(_values(a), _values(c))
    small = pixel_samples.FeatureCache(max_bytes=3 * (51 * 16 * 16 * 4 + 16 * 16 * 8) + 100)
    pixel_samples.sample_pixels(ds, "train", "aug", seed=0, budget=TINY, cache=small)
    assert len(small) == 3 and small.nbytes <= small.max_bytes


def test_importances_and_predictions_for_figures():
    ds = make_fake(n_times=3)
    run = classical.run_classical(ds, "lgbm_aug", 0, None, budget=TINY, n_show=2, progress=False)
    assert run.importance_kind == "gain" and len(run.importances) == 18 * 8 + 9
    assert run.importances.index[0] == "t1_B02" and run.importances.sum() > 0
    assert list(run.predictions) == ds.chip_ids("test")[:2]
    pred, lab = run.predictions["test_0"]
    assert pred.shape == lab.shape == (16, 16)
    assert len(run.search) == len(classical.LGBM_GRID) and "val_miou_macro" in run.search


def test_maps_of_the_first_test_chips_are_saved_as_predicted(tmp_path):
    ds = make_fake(counts=(4, 2, 5))
    run = classical.run_classical(
        ds, "lgbm", 0, None, budget=TINY, n_show=1, progress=False, maps_dir=tmp_path / "maps"
    )
    assert list(run.predictions) == ["test_0"]  # what the notebook keeps in memory is unchanged
    seed, maps = prediction_maps.load_run(tmp_path / "maps", "fake", "lgbm")
    assert seed == 0 and list(maps) == ["test_0", "test_1", "test_2"]
    np.testing.assert_array_equal(maps["test_0"], run.predictions["test_0"][0])
    shown = classical.run_classical(ds, "lgbm", 0, None, budget=TINY, n_show=3, progress=False).predictions
    for chip in maps:
        np.testing.assert_array_equal(maps[chip], shown[chip][0])


@pytest.mark.parametrize(
    "name, model", [("crop", "rf_aug"), ("burn_scars", "lgbm"), ("sen1floods11", "lgbm_aug")]
)
def test_runs_on_layout_fixtures(fixture_roots, name, model, tmp_path):
    from helpers.data import datasets

    ds = datasets.open(name, fixture_roots[name])
    run = classical.run_classical(ds, model, 0, tmp_path / "r.csv", budget=TINY, progress=False)
    assert run.test_cm.sum() == sum((ds.read_arrays(c)[1] >= 0).sum() for c in ds.chip_ids("test"))
    assert np.isfinite(run.test_scores["oa"])
    assert results.has_run(name, model, 0, tmp_path / "r.csv")
    # every held-out split is scored, as for the deep rows (Sen1Floods11: test and bolivia)
    held_out = [s for s in ds.splits if s not in ("train", "val")]
    df = results.read(tmp_path / "r.csv")
    assert set(df["split"]) == {"val", *held_out}
    assert name != "sen1floods11" or "bolivia" in held_out
    counts = assert_chips_reproduce_rows(df, tmp_path / "chips", name, model, 0)
    assert list(counts) == held_out and all(list(counts[s]["chip_ids"]) == ds.chip_ids(s) for s in held_out)


@pytest.mark.slow
def test_notebook_quick_mode_on_fixtures(fixture_roots, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    source = repo / "notebooks" / "02_classical_models.ipynb"
    nb = nbformat.read(source, as_version=4)
    assert [c.metadata.get("tags", []) for c in nb.cells].count(["parameters"]) == 1
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed without outputs
    data_dir = Path(fixture_roots["crop"]).parent
    papermill.execute_notebook(
        str(source),
        str(tmp_path / "out.ipynb"),
        parameters={
            "dataset_names": ["crop"],
            "texture_knobs": [],  # the sweep is covered by the quick chain test
            "data_dir": str(data_dir),
            "seeds": [0],
            "quick": True,
            "results_path": str(tmp_path / "results.csv"),
            "figures_dir": str(tmp_path / "figures"),
            "maps_dir": str(tmp_path / "maps"),  # never the repository's results/maps
        },
        cwd=str(repo / "notebooks"),
        kernel_name="python3",
        progress_bar=False,
    )
    table = results.read(tmp_path / "results.csv")
    assert set(table["model"]) == set(classical.MODELS) and set(table["dataset"]) == {"crop"}
    for kind in ("lgbm_gain", "per_class_iou", "prediction_maps", "aug_gain"):
        assert (tmp_path / "figures" / f"02_{kind}_crop.pdf").is_file()


# ---------------------------------------------------------------------------------------------- per-chip counts


def test_per_chip_counts_keep_all_ignore_chips_and_sum_to_the_rows(tmp_path):
    ds = make_fake(counts=(4, 2, 3))
    a, y = ds._chips["test"]["test_1"]
    ds._chips["test"]["test_1"] = (a, np.full_like(y, -1))
    run = classical.run_classical(ds, "lgbm", 0, tmp_path / "r.csv", budget=TINY, progress=False)
    counts = assert_chips_reproduce_rows(
        results.read(tmp_path / "r.csv"), tmp_path / "chips", "fake", "lgbm", 0
    )
    test = counts["test"]
    assert list(test["chip_ids"]) == ["test_0", "test_1", "test_2"]  # every chip, in the split's order
    assert (
        not test["tp"][1].any() and not test["fp"][1].any() and not test["fn"][1].any()
    )  # scored as nothing
    np.testing.assert_array_equal(test["tp"].sum(axis=0), np.diag(run.test_cm))
    assert not list((tmp_path / "chips").rglob("*.tmp"))


def test_classical_key_leaves_the_platform_out_and_rows_record_it(tmp_path, monkeypatch):
    from helpers.runs import runtime

    ds = make_fake()
    here = classical.run_classical(ds, "rf", 0, tmp_path / "r.csv", budget=TINY, progress=False)
    monkeypatch.setattr(runtime, "platform_class", lambda torch_kernels=True: "aarch64 DEFAULT bf16=none")
    elsewhere = classical.run_classical(make_fake(), "rf", 0, tmp_path / "r.csv", budget=TINY, progress=False)
    # measured bit-identical across platforms: the same key, so a finished row is not rerun
    assert here.run_key == elsewhere.run_key and here.written and not elsewhere.written
    monkeypatch.undo()
    platform = set(results.read(tmp_path / "r.csv")["platform"])
    assert platform == {runtime.platform_class(torch_kernels=False)} and "torch=" not in platform.pop()


def test_unchanged_rerun_backfills_missing_counts_only_when_it_reproduces_the_table(tmp_path):
    path, chips = tmp_path / "r.csv", tmp_path / "chips"
    first = classical.run_classical(make_fake(), "rf", 0, path, budget=TINY, progress=False, chips_dir=None)
    assert first.written and not chips.exists()  # rows written before counts existed
    again = classical.run_classical(make_fake(), "rf", 0, path, budget=TINY, progress=False)
    assert not again.written  # the table is left as it was ...
    assert_chips_reproduce_rows(results.read(path), chips, "fake", "rf", 0)  # ... and gets its counts
    # a table whose numbers this refit does not reproduce gets none
    other = tmp_path / "other.csv"
    classical.run_classical(make_fake(), "rf", 1, other, budget=TINY, progress=False, chips_dir=None)
    table = results.read(other)
    table.loc[(table["metric"] == "miou_macro") & (table["split"] == "test"), "value"] += 0.01
    table.to_csv(other, index=False)
    classical.run_classical(make_fake(), "rf", 1, other, budget=TINY, progress=False)
    assert not (tmp_path / "chips" / "fake" / "rf" / "seed1.npz").exists()

"""The shared run steps (helpers.runs.runner): identity, not_run, rows, maps, seeding, one outcome type."""

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import metrics, prediction_maps, results
from helpers.runs import classical, deep_run, fm_frozen, runner


def _ds(name="sim-fake", splits=("train", "val", "test", "bolivia"), empty=(), **extra):
    chips = {s: [] if s in empty else [f"{s}_0", f"{s}_1"] for s in splits}
    return SimpleNamespace(
        name=name,
        task="flood",
        classes=["land", "water"],
        splits=list(splits),
        chip_ids=chips.__getitem__,
        **extra,
    )


def _scores(tp):
    return metrics.scores(np.array([[10, 0], [10 - tp, tp]]))


def test_outcome_status_is_one_of_three_and_says_what_was_written():
    with pytest.raises(ValueError, match="unknown run status"):
        runner.Outcome(status="done")
    assert runner.Outcome(status="skipped").skipped and not runner.Outcome(status="skipped").written
    assert runner.Outcome(status="ok").written and runner.Outcome(status="not_run").written
    # every family reports through the same type
    for cls in (classical.ClassicalRun, fm_frozen.FMRun, deep_run.RunOutcome):
        assert issubclass(cls, runner.Outcome)


def test_seed_everything_seeds_every_global_rng_and_refuses_non_integers():
    draws = []
    for _ in range(2):
        runner.seed_everything(7)
        draws.append((random.random(), np.random.rand(), torch.rand(1).item()))  # noqa: NPY002
    assert draws[0] == draws[1]
    runner.seed_everything(8)
    assert np.random.rand() != draws[0][1]  # noqa: NPY002
    for bad in (True, 1.0, "1"):
        with pytest.raises(TypeError, match="seed must be an integer"):
            runner.seed_everything(bad)


def test_held_out_splits_are_every_non_empty_split_but_train_and_val_in_dataset_order():
    assert runner.held_out_splits(_ds()) == ["test", "bolivia"]
    assert runner.held_out_splits(_ds(empty=("bolivia",))) == ["test"]


def test_context_decides_simulated_once_from_the_dataset():
    assert runner.context(_ds(), "rf", 0, family="classical")["simulated"] is True  # sim-* name, no flag
    assert (
        runner.context(_ds(name="sim-x", simulated=False), "rf", 0, family="classical")["simulated"] is False
    )
    ctx = runner.context(
        _ds(name="real"), "unet", 2, family="cnn", weights="random-init", steps=5, run_key="k"
    )
    assert list(ctx)[:8] == results.COLUMNS[:8]  # the table's own column order: task ... seed
    assert ctx["simulated"] is False and ctx["steps"] == 5 and ctx["run_key"] == "k"


def test_finish_writes_val_then_held_out_rows_and_the_maps(tmp_path):
    ds, path, maps_dir = _ds(), tmp_path / "r.csv", tmp_path / "maps"
    ctx = runner.context(ds, "rf", 0, family="classical", run_key="key-a")
    scores = {"bolivia": _scores(3), "test": _scores(5), "val": _scores(9)}
    pred = np.ones((4, 4), np.int64)
    rows = runner.finish(
        ds, "rf", 0, scores, ctx, results_path=path, maps_dir=maps_dir, maps={"test_0": pred}
    )
    splits = list(dict.fromkeys(r["split"] for r in rows))
    assert splits == ["val", "test", "bolivia"]  # not the order the scores came in
    table = results.read(path)
    assert len(table) == len(rows) and set(table["run_key"]) == {"key-a"}
    miou = table[(table["metric"] == "miou_macro")].set_index("split")["value"]
    assert miou["test"] == pytest.approx(_scores(5)["miou_macro"])
    assert miou["val"] > miou["test"] > miou["bolivia"]
    seed, saved = prediction_maps.load_run(maps_dir, ds.name, "rf")
    assert seed == 0 and list(saved) == ["test_0"] and np.array_equal(saved["test_0"], pred)


def test_finish_without_validation_scores_writes_no_val_rows_and_without_a_table_writes_nothing(tmp_path):
    ds = _ds()
    ctx = runner.context(ds, "rf", 0, family="classical")
    rows = runner.finish(ds, "rf", 0, {"val": None, "test": _scores(5)}, ctx, results_path=None)
    assert {r["split"] for r in rows} == {"test"}
    assert not list(tmp_path.iterdir())


def test_a_run_is_finished_only_under_its_key_and_not_run_never_replaces_it(tmp_path):
    ds, path = _ds(), tmp_path / "r.csv"
    assert not runner.finished(ds, "unet", 0, path, "key-a")  # no table yet
    assert not runner.finished(ds, "unet", 0, None, "key-a")  # no table at all: every run is new
    ctx = runner.context(ds, "unet", 0, family="cnn", run_key="key-a")
    runner.finish(ds, "unet", 0, {"val": _scores(9), "test": _scores(5)}, ctx, results_path=path)
    assert runner.finished(ds, "unet", 0, path, "key-a")
    assert not runner.finished(ds, "unet", 0, path, "key-b")  # other settings: rerun
    assert not runner.finished(ds, "unet", 1, path, "key-a")  # other seed
    assert runner.finished(ds, "unet", 0, path, None)  # any finished run of it
    before = results.read(path)
    with pytest.warns(UserWarning, match="kept the finished rows"):
        rows = runner.not_run(ds, "unet", 0, "weights missing", path, family="cnn")
    assert rows[0]["status"] == "not_run" and rows[0]["note"] == "weights missing"
    assert results.read(path).equals(before)
    runner.not_run(
        ds, "vit", 0, "weights missing", path, family="fm"
    )  # a run never finished: its row is written
    after = results.read(path)
    assert after.loc[after["model"] == "vit", "status"].tolist() == ["not_run"]
    assert not runner.finished(ds, "vit", 0, path, None)


def test_context_records_the_platform_torch_families_as_torch_sees_it(monkeypatch):
    from helpers.runs import runtime

    assert "torch=" in runner.context(_ds(), "unet", 0, family="cnn")["platform"]
    classical_platform = runner.context(_ds(), "rf", 0, family="classical")["platform"]
    assert (
        "torch=" not in classical_platform
        and classical_platform.split()[0] == runtime.platform_class().split()[0]
    )
    monkeypatch.setattr(runtime, "platform_class", lambda torch_kernels=True: f"declared-{torch_kernels}")
    assert runner.context(_ds(), "unet", 0, family="fm")["platform"] == "declared-True"
    assert runner.context(_ds(), "rf", 0, family="classical")["platform"] == "declared-False"


def test_finish_saves_chip_counts_beside_the_table_with_the_run_key(tmp_path):
    ds, path = _ds(), tmp_path / "r.csv"
    cms = np.array([[[3, 1], [0, 4]], [[7, 0], [2, 1]]])
    chips = {"test": results.chip_counts(ds.chip_ids("test"), cms)}
    ctx = runner.context(ds, "rf", 0, family="classical", run_key="key-a")
    scores = {"test": metrics.scores(cms.sum(axis=0))}
    runner.finish(ds, "rf", 0, scores, ctx, results_path=path, chips=chips)
    assert (tmp_path / "chips" / ds.name / "rf" / "seed0.npz").is_file()  # default: beside the table
    back = results.read_chip_counts(ds.name, "rf", 0, chips_dir=tmp_path / "chips", run_key="key-a")
    assert list(back["test"]["chip_ids"]) == ["test_0", "test_1"]
    np.testing.assert_array_equal(back["test"]["tp"], [[3, 4], [7, 1]])
    # None: no counts; an explicit folder: there, also without a table
    runner.finish(ds, "lgbm", 0, scores, ctx, results_path=path, chips=chips, chips_dir=None)
    assert not (tmp_path / "chips" / ds.name / "lgbm").exists()
    runner.finish(ds, "lgbm", 1, scores, ctx, results_path=None, chips=chips, chips_dir=tmp_path / "c2")
    assert (
        results.read_chip_counts(ds.name, "lgbm", 1, chips_dir=tmp_path / "c2", run_key="key-a") is not None
    )
    runner.finish(ds, "lgbm", 2, scores, ctx, results_path=None, chips=chips)  # no table, default: nowhere
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "c2",
        "chips",
        "r.csv",
    ]


def test_context_records_the_data_draw_whatever_the_label_budget():
    from helpers.data import labels
    from tests.test_train import FakeDataset

    ds, other = FakeDataset(), FakeDataset(seed=1)
    full = runner.context(ds, "rf", 0, family="classical")["data_fingerprint"]
    budget = runner.context(labels.label_view(ds, "points-10", 0), "rf", 0, family="classical")
    assert full and budget["data_fingerprint"] == full  # the same draw seen through fewer labels
    assert runner.context(other, "rf", 0, family="classical")["data_fingerprint"] != full  # another draw

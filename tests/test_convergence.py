import multiprocessing as mp

import pandas as pd
import pytest
import torch

from helpers import results
from helpers.runs import convergence, inference, run_folders, train
from tests.test_train import FIT, FakeDataset, tiny_unet


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_a_run_trained_in_cycles_is_checked_by_its_last_cycle_without_training_more(tmp_path, monkeypatch):
    ds = FakeDataset()
    conv = tmp_path / "convergence.csv"
    kw = {**FIT, "max_steps": 200, "patience": 1, "lr_drops": 1, "cycles": 3, "cycle_gain": 0.01}
    kw = dict(
        seed=0, results_path=tmp_path / "r.csv", runs_dir=tmp_path / "runs", convergence_path=conv, **kw
    )
    out = convergence.run_checked(ds, "unet", lambda: tiny_unet(ds), **kw)
    state = run_folders.load_checkpoint(out.out_dir / run_folders.LAST)
    assert state["cycle"] >= 1  # the first cycle always restarts
    row = convergence.read(conv).iloc[0]
    assert row["method"] == convergence.LAST_CYCLE
    assert not (out.out_dir.parent / "seed0-x2-restart-lr").exists()  # no continuation was trained
    start = state["cycle_start"]
    assert (row["steps"], row["best_step"]) == (start["step"], start["best_step"])
    assert (row["steps_x2"], row["best_step_x2"]) == (out.train.steps, out.train.best_step)
    assert row["val_miou_macro"] == pytest.approx(start["best_score"])
    assert row["val_miou_macro_x2"] == pytest.approx(out.train.best_score)
    assert row["converged"] == (
        out.train.stopped_by == "plateau" and row["delta_val_points"] < convergence.CONVERGED_POINTS
    )
    # the "before" test score is the weights the last cycle started from, scored now
    model = tiny_unet(ds)
    model.load_state_dict(run_folders.load_checkpoint(out.out_dir / run_folders.CYCLE_BEST)["model"])
    model.eval()
    cm = inference.evaluate(model, ds, "test", tile=out.train.eval_tile, overlap=out.train.eval_overlap)
    assert row["test_miou_macro"] == pytest.approx(train.metrics.scores(cm)["miou_macro"])
    test = results.read(tmp_path / "r.csv").query(
        "split == 'test' and metric == 'miou_macro' and `class` == ''"
    )
    assert row["test_miou_macro_x2"] == pytest.approx(test["value"].item())
    # a rerun neither trains nor rechecks
    again = convergence.run_checked(ds, "unet", lambda: tiny_unet(ds), **kw)
    assert again.skipped and len(convergence.read(conv)) == 1


def test_run_checks_convergence_from_the_finished_checkpoint(tmp_path):
    ds = FakeDataset()
    conv = tmp_path / "convergence.csv"
    kw = dict(
        seed=0, results_path=tmp_path / "r.csv", runs_dir=tmp_path / "runs", convergence_path=conv, **FIT
    )
    out = convergence.run_checked(ds, "unet", lambda: tiny_unet(ds), **kw)
    table = convergence.read(conv)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["steps"] == out.train.steps == 8 and row["steps_x2"] == 16
    assert row["val_miou_macro"] == pytest.approx(out.train.best_score)
    assert row["val_miou_macro_x2"] >= row["val_miou_macro"]  # best over a trajectory that contains the first
    assert row["delta_val_points"] == pytest.approx(100 * (row["val_miou_macro_x2"] - row["val_miou_macro"]))
    assert row["converged"] == (abs(row["delta_val_points"]) < convergence.CONVERGED_POINTS)
    # the original test score is the one in the results table
    test = results.read(tmp_path / "r.csv").query(
        "split == 'test' and metric == 'miou_macro' and `class` == ''"
    )
    assert row["test_miou_macro"] == pytest.approx(test["value"].item())
    # the continuation lives beside the run and starts with its history
    cont = pd.read_csv(out.out_dir.parent / "seed0-x2-restart-lr" / run_folders.LOG)
    assert row["method"] == convergence.METHOD
    # the continuation restarts at the base rate (FIT's warmup is long over): never the run's last, decayed one
    assert cont.loc[cont["step"] > row["steps"], "lr"].iloc[0] == pytest.approx(FIT["lr"])
    pd.testing.assert_frame_equal(
        cont[["step", "train_loss", "val_miou_macro"]].iloc[:4],
        out.train.history[["step", "train_loss", "val_miou_macro"]],
        check_exact=True,
    )
    # the check records the continuation's trend itself (the table then needs no run folder)
    after = cont.loc[cont["step"] > row["steps"], "val_miou_macro"]
    assert row["x2_mean_gain_points"] == pytest.approx(100 * (after.mean() - row["val_miou_macro"]))
    # a rerun (skipped run) does not redo the check; a run under other settings (no force needed: another
    # run_key) retrains over the stale checkpoints and replaces the check
    again = convergence.run_checked(ds, "unet", lambda: pytest.fail("no model needed"), **kw)
    assert again.skipped and len(convergence.read(conv)) == 1
    # a check made the old way (constant decayed rate: method "") is not this check
    key = (out.out_dir / run_folders.KEY).read_text().strip()
    assert convergence.has_check("fake", "unet", 0, row["config_sha"], conv, run_key=key)
    old = convergence.read(conv).assign(method="")
    old.to_csv(conv, index=False)
    assert not convergence.has_check("fake", "unet", 0, row["config_sha"], conv, run_key=key)
    old.assign(method=convergence.METHOD).to_csv(conv, index=False)
    other = convergence.run_checked(ds, "unet", lambda: tiny_unet(ds), **{**kw, "lr": 1e-3})
    assert not other.skipped
    table = convergence.read(conv)
    assert len(table) == 1 and table.iloc[0]["config_sha"] == convergence.config_sha(other.train.config)
    assert table.iloc[0]["config_sha"] != row["config_sha"]
    shown = convergence.summary(table)
    assert list(shown["steps"]) == ["8 → 16"] and shown["dataset"].iloc[0] == "fake (simulated)"
    # the same settings on regenerated data (same name, other bytes): a new run, so a new check, not the old row
    regenerated = FakeDataset(seed=1)
    third = convergence.run_checked(regenerated, "unet", lambda: tiny_unet(regenerated), **{**kw, "lr": 1e-3})
    assert not third.skipped
    table = convergence.read(conv)
    assert len(table) == 1 and table.iloc[0]["config_sha"] == convergence.config_sha(third.train.config)
    assert table.iloc[0]["run_key"] == (third.out_dir / run_folders.KEY).read_text().strip()
    assert table.iloc[0]["timestamp"] >= row["timestamp"] and table.iloc[0][
        "test_miou_macro"
    ] == pytest.approx(
        results.read(tmp_path / "r.csv")
        .query("split == 'test' and metric == 'miou_macro' and `class` == ''")["value"]
        .item()
    )


def test_no_checkpoint_no_check(tmp_path):
    ds = FakeDataset()
    got = convergence.check(
        ds, "unet", lambda: tiny_unet(ds), seed=0, runs_dir=tmp_path, path=tmp_path / "c.csv"
    )
    assert got is None and not (tmp_path / "c.csv").exists()


def test_read_refuses_a_foreign_table(tmp_path):
    (tmp_path / "c.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a convergence table"):
        convergence.read(tmp_path / "c.csv")


def _write_many(path, worker):
    for i in range(15):
        row = {"task": "t", "dataset": f"d{worker}", "model": "m", "family": "cnn", "seed": i, "metric": "oa"}
        results.write_run([{**row, "value": 0.5}], path)


def test_side_by_side_writers_lose_no_rows(tmp_path):
    # notebooks 03 and 04 run at once in the chain and write the same table: the lock keeps every row
    path = tmp_path / "results.csv"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(path, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    table = results.read(path)
    assert len(table) == 45 and len(table.drop_duplicates(["dataset", "seed"])) == 45


def test_reason_tells_a_noisy_plateau_from_a_model_still_improving(tmp_path):
    def check_row(model, best, best_x2):
        return dict(dataset="sim-burn", simulated=True, model=model, family="fm", seed=0, steps=100, steps_x2=200,
                    stopped_by="plateau", val_miou_macro=best, val_miou_macro_x2=best_x2, test_miou_macro=0.8,
                    test_miou_macro_x2=0.8, delta_val_points=100 * (best_x2 - best),
                    delta_test_points=0.0, converged=abs(best_x2 - best) < 0.01)  # fmt: skip

    # "noisy": validations scatter around the old best; their maximum is 1.5 points higher, their mean is not
    # "rising": the continued validations are above the old best on average
    curves = {"noisy": [0.80, 0.785, 0.815, 0.79, 0.80], "rising": [0.82, 0.83, 0.84, 0.845, 0.85]}
    for model, vals in curves.items():
        folder = run_folders.run_dir(tmp_path, "sim-burn", model, 0)
        folder = folder.parent / f"{folder.name}-x2"
        folder.mkdir(parents=True)
        steps = [50, 100, 150, 200, 250][: len(vals)]
        pd.DataFrame({"step": [*steps[:1], *[s + 100 for s in steps[:-1]]], "val_miou_macro": vals}).to_csv(
            folder / run_folders.LOG, index=False
        )
    conv = pd.DataFrame(
        [check_row("noisy", 0.80, 0.815), check_row("rising", 0.80, 0.85), check_row("ok", 0.8, 0.8)]
    )
    trend = convergence.continuation_trend(conv, tmp_path)
    assert trend.loc[0, "x2_mean_gain_points"] == pytest.approx(100 * (sum(curves["noisy"][1:]) / 4 - 0.80))
    assert trend.loc[1, "x2_mean_gain_points"] > 2 and trend["x2_mean_gain_points"].isna().tolist()[2]
    table = convergence.summary(conv, tmp_path).set_index("model")
    assert table.loc["noisy", "reason"].startswith("noisy plateau")
    assert table.loc["rising", "reason"] == "still improving"
    assert table.loc["ok", "reason"] == "" and table.loc["ok", "converged"] == "yes"
    assert "reason" not in convergence.summary(conv).columns  # without the run folders: the plain table
    # rows written by check() carry their trend: the reasons need no run folder (a fresh clone has none)
    recorded = pd.concat([conv, trend], axis=1)
    again = convergence.summary(recorded).set_index("model")
    assert again["reason"].to_dict() == table["reason"].to_dict()


def test_the_check_compares_with_its_own_run_not_the_same_model_at_another_budget(tmp_path):
    """The same (dataset, model, seed) also runs at a label budget: the recorded test score is found by run key."""
    path = tmp_path / "r.csv"
    s = {"iou": [0.5, 0.5], "f1": [0.5, 0.5], "precision": [0.5, 0.5], "recall": [0.5, 0.5]}
    for budget, key, value in (("points-10", "k-points", 0.40), ("all", "k-all", 0.90)):
        ctx = dict(
            task="t", dataset="d", model="unet", family="cnn", seed=0, label_budget=budget, run_key=key
        )
        agg = {"miou_macro": value, "f1_macro": value, "iou_micro": value, "oa": value}
        results.write_run(
            results.score_rows({**s, **agg}, split="test", class_names=["a", "b"], context=ctx), path
        )
    assert convergence._recorded_test_miou("d", "unet", 0, path, run_key="k-all") == pytest.approx(0.90)
    assert convergence._recorded_test_miou("d", "unet", 0, path, run_key="k-points") == pytest.approx(0.40)
    assert convergence._recorded_test_miou("d", "unet", 0, path) == pytest.approx(0.90)  # no key: full labels
    assert convergence._recorded_test_miou("d", "unet", 0, path, run_key="other") is None

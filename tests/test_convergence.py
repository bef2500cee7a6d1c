import multiprocessing as mp

import pandas as pd
import pytest
import torch

from helpers import convergence, results, train
from tests.test_train import FIT, FakeDataset, tiny_unet


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_run_checks_convergence_from_the_finished_checkpoint(tmp_path):
    ds = FakeDataset()
    conv = tmp_path / "convergence.csv"
    kw = dict(
        seed=0, results_path=tmp_path / "r.csv", runs_dir=tmp_path / "runs", convergence_path=conv, **FIT
    )
    out = train.run(ds, "unet", lambda: tiny_unet(ds), **kw)
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
    cont = pd.read_csv(out.out_dir.parent / "seed0-x2" / train.LOG)
    pd.testing.assert_frame_equal(
        cont[["step", "train_loss", "val_miou_macro"]].iloc[:4],
        out.train.history[["step", "train_loss", "val_miou_macro"]],
        check_exact=True,
    )
    # a rerun (skipped run) does not redo the check; a run under other settings replaces it
    again = train.run(ds, "unet", lambda: pytest.fail("no model needed"), **kw)
    assert again.skipped and len(convergence.read(conv)) == 1
    other = train.run(ds, "unet", lambda: tiny_unet(ds), force=True, **{**kw, "lr": 1e-3})
    table = convergence.read(conv)
    assert len(table) == 1 and table.iloc[0]["config_sha"] == convergence.config_sha(other.train.config)
    assert table.iloc[0]["config_sha"] != row["config_sha"]
    shown = convergence.summary(table)
    assert list(shown["steps"]) == ["8 → 16"] and shown["dataset"].iloc[0] == "fake (simulated)"


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

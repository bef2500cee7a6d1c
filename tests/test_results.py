import numpy as np
import pandas as pd
import pytest

from helpers import metrics, results


def _rows(seed, value=0.5, model="rf", dataset="sim-flood"):
    cm = np.array([[8, 2], [1, 9]])
    s = metrics.scores(cm)
    ctx = dict(task="flood", dataset=dataset, model=model, family="classical", seed=seed, runtime_s=1.0)
    rows = results.score_rows(s, split="test", class_names=["not_water", "water"], context=ctx)
    rows[0]["value"] = value
    return rows


def test_rows_are_tidy_and_complete(tmp_path):
    path = tmp_path / "r.csv"
    df = results.write_run(_rows(0), path)
    assert list(df.columns[: len(results.COLUMNS)]) == results.COLUMNS
    agg = df[df["class"] == ""]
    assert set(agg["metric"]) == set(metrics.AGGREGATES)
    per_class = df[df["class"] != ""]
    assert len(per_class) == 2 * len(metrics.PER_CLASS)
    assert bool(df["simulated"].all())
    assert (df["status"] == "ok").all() and df["git_sha"].notna().all()


def test_appending_a_new_run_reads_back_as_one_full_write(tmp_path, monkeypatch):
    fast, full = tmp_path / "fast.csv", tmp_path / "full.csv"
    first = _rows(0) + [results.not_run_row("no file", dict(task="flood", dataset="sim-flood", model="x",
                                                           family="fm", seed=0))]  # fmt: skip
    second = [{**r, "note": 'a, "quoted" note', "n_params": 7} for r in _rows(1, model="lgbm")]
    results.write_run(first, fast)
    calls = []
    real = results._append_if_new
    monkeypatch.setattr(
        results, "_append_if_new", lambda new, path: calls.append(real(new, path)) or calls[-1]
    )
    results.write_run(second, fast)
    assert calls == [True]  # a new run took the append path
    results.write_run(first + second, full)
    a, b = (results.read(p).drop(columns="timestamp") for p in (fast, full))
    pd.testing.assert_frame_equal(a, b)
    results.write_run(_rows(1, 0.7, model="lgbm"), fast)  # replacing a run rewrites the table
    assert calls[-1] is False
    df = results.read(fast)
    assert len(df) == len(a) and df.query("model == 'lgbm' and metric == 'miou_macro'")["value"].tolist() == [
        0.7
    ]


def test_rerun_replaces_not_duplicates(tmp_path):
    path = tmp_path / "r.csv"
    results.write_run(_rows(0, 0.1), path)
    results.write_run(_rows(1, 0.2), path)
    results.write_run(_rows(0, 0.9), path)
    df = results.read(path)
    assert len(df) == 2 * len(_rows(0))
    first = df[(df["seed"] == 0) & (df["metric"] == "miou_macro")]["value"]
    assert first.tolist() == [0.9]
    assert results.has_run("sim-flood", "rf", 0, path)
    assert not results.has_run("sim-flood", "lgbm", 0, path)


def test_not_run_row(tmp_path):
    path = tmp_path / "r.csv"
    ctx = dict(task="flood", dataset="sen1floods11", model="prithvi_100m", family="fm", seed=0)
    results.write_run([results.not_run_row("weights file not supplied", ctx)], path)
    df = results.read(path)
    assert df.loc[0, "status"] == "not_run" and "weights" in df.loc[0, "note"]
    assert np.isnan(df.loc[0, "value"])
    assert not results.has_run("sen1floods11", "prithvi_100m", 0, path)


def test_not_run_never_replaces_a_finished_run(tmp_path):
    path = tmp_path / "r.csv"
    ctx = dict(task="flood", dataset="sim-flood", model="rf", family="classical")
    results.write_run(_rows(0, 0.8) + _rows(1, 0.7), path)
    # a rerun without the weights / offline: seed 0 could not run; its finished rows stay
    with pytest.warns(
        UserWarning, match=r"kept the finished rows of sim-flood\|rf\|0\|all .*weights unavailable"
    ):
        results.write_run([results.not_run_row("weights unavailable", {**ctx, "seed": 0})], path)
    df = results.read(path)
    assert (df["status"] == "ok").all() and len(df) == 2 * len(_rows(0))
    assert df.query("seed == 0 and metric == 'miou_macro'")["value"].tolist() == [0.8]
    # in the same write, a run that is new still gets its not_run row, and a finished rerun replaces its old rows
    with pytest.warns(UserWarning, match="kept the finished rows"):
        results.write_run(
            [results.not_run_row("weights unavailable", {**ctx, "seed": s}) for s in (0, 5)] + _rows(1, 0.9),
            path,
        )
    df = results.read(path)
    assert df.query("seed == 5")["status"].tolist() == ["not_run"]
    assert df.query("seed == 1 and metric == 'miou_macro'")["value"].tolist() == [0.9]
    # the same not_run again changes nothing (not even its timestamp); another reason replaces it
    results.write_run([results.not_run_row("weights unavailable", {**ctx, "seed": 5})], path)
    assert results.read(path).equals(df)
    results.write_run([results.not_run_row("no file was given", {**ctx, "seed": 5})], path)
    assert results.read(path).query("seed == 5")["note"].tolist() == ["no file was given"]
    assert df.query("seed == 0 and metric == 'miou_macro'")["value"].tolist() == [0.8]
    # a finished run replaces an earlier not_run row (no warning)
    results.write_run(_rows(5, 0.6), path)
    assert results.read(path).query("seed == 5")["status"].eq("ok").all()


def test_failed_write_leaves_table_intact(tmp_path, monkeypatch):
    path = tmp_path / "r.csv"
    results.write_run(_rows(0), path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(RuntimeError):
        results.write_run(_rows(1), path)
    assert path.read_bytes() == before
    # nothing half-written is left; the empty lock file of the writers' lock stays (helpers.data.io.locked)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.csv.lock", "r.csv"]


def test_bad_rows_rejected(tmp_path):
    with pytest.raises(ValueError, match="family"):
        results.write_run([{**_rows(0)[0], "family": "magic"}], tmp_path / "r.csv")
    with pytest.raises(ValueError, match="lack"):
        results.write_run([{"model": "rf"}], tmp_path / "r.csv")

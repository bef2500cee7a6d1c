import os
import subprocess
from pathlib import Path

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


# ---------------------------------------------------------------------------------------------- chip counts
def test_chip_counts_summed_score_as_the_summed_confusion_matrix():
    rng = np.random.default_rng(0)
    cms = rng.integers(0, 50, (7, 4, 4))
    cms[:, 3, :] = cms[:, :, 3] = 0  # a class never true nor predicted: left out of the macro means
    cms[2] = 0  # a chip without a scored pixel keeps its (zero) row
    c = results.chip_counts([f"c{i}" for i in range(7)], cms)
    assert c["tp"].shape == c["fp"].shape == c["fn"].shape == (7, 4) and c["tp"].dtype == np.int64
    assert list(c["chip_ids"]) == [f"c{i}" for i in range(7)]
    want = metrics.scores(cms.sum(axis=0))
    got = results.counts_scores(*(c[k].sum(axis=0) for k in ("tp", "fp", "fn")))
    assert got == {m: want[m] for m in metrics.AGGREGATES}  # the same numbers, bit for bit
    assert np.isnan(results.counts_scores(*np.zeros((3, 4)))["miou_macro"])
    with pytest.raises(ValueError, match="confusion matrices"):
        results.chip_counts(["a"], cms)


def test_chip_counts_file_layout_round_trip_stale_key_and_atomic_write(tmp_path):
    cms = np.arange(2 * 2 * 2).reshape(2, 2, 2)
    counts = {"test": results.chip_counts(["t0", "t1"], cms), "bolivia": results.chip_counts(["b0"], cms[:1])}
    full = results.RunId("sim-flood", "rf", 3)
    budget = results.RunId("sim-flood", "rf", 3, "px-10")
    for rid in (full, budget):
        path = results.save_chip_counts(tmp_path / "chips", rid, "key-" + rid.label_budget, counts)
        assert path == rid.chips_path(tmp_path / "chips")
    # laid out as the maps: the budget folder only below "all"
    assert (tmp_path / "chips" / "sim-flood" / "rf" / "seed3.npz").is_file()
    assert (tmp_path / "chips" / "sim-flood" / "rf" / "px-10" / "seed3.npz").is_file()
    assert not list((tmp_path / "chips").rglob("*.tmp"))  # written through a renamed temporary file
    back = results.read_chip_counts("sim-flood", "rf", 3, chips_dir=tmp_path / "chips", run_key="key-all")
    assert list(back) == ["test", "bolivia"]
    for split in counts:
        for k in ("chip_ids", "tp", "fp", "fn"):
            np.testing.assert_array_equal(back[split][k], counts[split][k])
    assert results.read_chip_counts("sim-flood", "rf", 3, "px-10", chips_dir=tmp_path / "chips") is not None
    # a file of another run_key (an earlier version of the run) is never used, and says why
    with pytest.warns(UserWarning, match="stale"):
        assert (
            results.read_chip_counts("sim-flood", "rf", 3, chips_dir=tmp_path / "chips", run_key="new")
            is None
        )
    assert results.read_chip_counts("sim-flood", "rf", 4, chips_dir=tmp_path / "chips") is None  # absent
    (tmp_path / "chips" / "sim-flood" / "rf" / "seed3.npz").write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="not a chip-count file"):
        assert results.read_chip_counts("sim-flood", "rf", 3, chips_dir=tmp_path / "chips") is None
    # no folder or nothing to save: nothing written
    assert results.save_chip_counts(None, full, "k", counts) is None
    assert (
        results.save_chip_counts(tmp_path / "none", full, "k", {}) is None
        and not (tmp_path / "none").exists()
    )
    assert results.chips_dir_beside(tmp_path / "r.csv") == tmp_path / "chips"
    assert results.chips_dir_beside(None) is None


def test_failed_chip_counts_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    rid = results.RunId("sim-flood", "rf", 0)
    counts = {"test": results.chip_counts(["t0"], np.eye(2, dtype=int)[None])}
    results.save_chip_counts(tmp_path, rid, "old", counts)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        results.save_chip_counts(tmp_path, rid, "new", counts)
    monkeypatch.undo()
    assert results.read_chip_counts("sim-flood", "rf", 0, chips_dir=tmp_path, run_key="old") is not None
    assert not list(tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------- provenance
def test_platform_is_a_column_and_old_tables_read_it_blank(tmp_path):
    path = tmp_path / "r.csv"
    old = pd.DataFrame(_rows(0)).assign(status="ok", git_sha="x", run_key="k")
    old.reindex(columns=[c for c in results.COLUMNS if c != "platform"]).to_csv(path, index=False)
    assert "platform" in results.COLUMNS
    assert set(results.read(path)["platform"]) == {""}
    new = [dict(r, platform="x86_64 AVX2 bf16=none torch=2") for r in _rows(1)]
    df = results.write_run(new, path)
    assert list(df.columns[: len(results.COLUMNS)]) == results.COLUMNS
    back = results.read(path)
    assert set(back.loc[back["seed"] == 1, "platform"]) == {"x86_64 AVX2 bf16=none torch=2"}
    assert set(back.loc[back["seed"] == 0, "platform"]) == {""}


def test_git_sha_is_dirty_only_for_changed_code_not_the_chains_outputs(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    files = {
        "results/results.csv": "a\n",
        "results/maps/x/seed0.npz": "m\n",
        "figures/tables/findings.md": "f\n",
        "README.md": "r\n",
        "helpers/code.py": "x = 1\n",
        "helpers/notes.md": "n\n",
        "notebooks/params/default.yaml": "a: 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git("init", "-q")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    clean = results.git_sha(tmp_path / "helpers")
    assert clean and not clean.endswith("-dirty") and clean != "unknown"
    for name in (
        "results/results.csv",
        "results/maps/x/seed0.npz",
        "figures/tables/findings.md",
        "README.md",
    ):
        (tmp_path / name).write_text("changed by the chain\n")
    (tmp_path / "results" / "chips").mkdir()
    (tmp_path / "results" / "chips" / "new.npz").write_text("untracked\n")
    assert results.git_sha(tmp_path / "helpers") == clean  # outputs and prose only: still the commit
    for name in ("helpers/code.py", "helpers/notes.md", "notebooks/params/default.yaml"):
        git("checkout", "-q", "--", ".")
        (tmp_path / name).write_text("changed code\n")
        assert results.git_sha(tmp_path) == clean + "-dirty", name
    assert results.git_sha(tmp_path.parent) == "unknown" or not tmp_path.parent.joinpath(".git").exists()


def test_no_committed_row_comes_from_uncommitted_code():
    root = Path(__file__).resolve().parents[1]
    table = results.read(root / "results" / "results.csv")
    assert results.uncommitted_rows(table, root).empty
    # the check can fail: a dirty mark, an unknown sha and a sha the history lacks are each caught
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    planted = pd.DataFrame(
        {
            "git_sha": [head, f"{head}-dirty", "unknown", "0000000", head],
            "data_fingerprint": ["a", "a", "a", "a", ""],  # the last predates the check
        }
    )
    assert list(results.uncommitted_rows(planted, root).index) == [1, 2, 3]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_files_the_study_writes_get_the_users_umask(tmp_path, umask, mode):
    from helpers.data.io import atomic_write

    old = os.umask(umask)
    try:
        results.write_run(_rows(0), tmp_path / "r.csv")
        atomic_write(tmp_path / "f.txt", lambda tmp: tmp.write_text("x"))
    finally:
        os.umask(old)
    for name in ("r.csv", "f.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_an_unscored_split_is_never_stored_as_finished(tmp_path):
    rows = _rows(0)
    empty = [dict(r, value=float("nan")) if r["class"] == "" and r["split"] == "test" else r for r in rows]
    with pytest.raises(ValueError, match="no score on split 'test'.*no labelled pixel"):
        results.write_run(empty, tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()
    # a class absent from the split (its IoU undefined) is a finished run
    absent = [dict(r, value=float("nan")) if r["class"] != "" else r for r in rows]
    results.write_run(absent, tmp_path / "r.csv")
    assert results.has_run("sim-flood", "rf", 0, tmp_path / "r.csv")

"""Run claims (helpers.runs.claims): one process trains a run, every other chain or worker waits for it or skips it."""

import json
import multiprocessing as mp
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import results
from helpers.runs import claims, deep_run, run_folders, runner

REPO = Path(__file__).resolve().parents[1]
FORK = mp.get_context("fork")  # children inherit the test's monkeypatches and need no re-import


def _plant(path: Path, *, host: str, pid: int, age: float, token: str = "someone-else") -> None:
    """Write a claim file as another process would have (heartbeat ``age`` seconds ago)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    then = time.time() - age
    data = {"host": host, "pid": pid, "token": token, "key": path.stem, "started": then, "heartbeat": then}
    path.write_text(json.dumps(data))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------------------------- exclusivity
def _try_once(table, key, barrier, out, hold_s):
    barrier.wait()
    got = claims.try_acquire(table, key)
    if got is not None:
        with got:
            Path(out).write_text(str(os.getpid()))
            time.sleep(hold_s)


def test_one_of_several_processes_wins_a_claim_made_at_the_same_moment(tmp_path):
    table = tmp_path / "results.csv"
    n = 4
    barrier = FORK.Barrier(n)
    procs = [
        FORK.Process(target=_try_once, args=(table, "abc", barrier, tmp_path / f"won{i}", 1.0))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(list(tmp_path.glob("won*"))) == 1
    assert not claims.folder(table).exists()  # released and tidied up: no file left behind


def _hold_in_turn(table, key, barrier, log):
    barrier.wait()
    with claims.claim(table, key, poll=0.05):
        start = time.time()
        time.sleep(0.3)
        with open(log, "a") as fh:
            fh.write(f"{start} {time.time()}\n")


def test_waiting_claims_are_held_one_after_the_other_never_at_once(tmp_path):
    table, log = tmp_path / "results.csv", tmp_path / "log"
    n = 3
    barrier = FORK.Barrier(n)
    procs = [FORK.Process(target=_hold_in_turn, args=(table, "k1", barrier, log)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    spans = sorted(tuple(map(float, line.split())) for line in log.read_text().splitlines())
    assert len(spans) == n
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:], strict=False))


# ------------------------------------------------------------------------------------------- stale claims
def test_a_live_holder_keeps_its_claim_on_this_host_and_elsewhere(tmp_path):
    table = tmp_path / "results.csv"
    path = claims.claim_path(table, "live")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _plant(path, host=socket.gethostname(), pid=sleeper.pid, age=5)
        assert claims.try_acquire(table, "live") is None
        assert claims.stale_reason(claims.read(path)) == ""
    finally:
        sleeper.kill()
        sleeper.wait()
    _plant(path, host="other-host.example", pid=1, age=claims.TIMEOUT_S - 60)  # its pid means nothing here
    assert claims.try_acquire(table, "live") is None
    assert path.exists()


@pytest.mark.parametrize(
    ("holder", "why"),
    [
        ("dead pid", "is gone"),
        ("old heartbeat elsewhere", "no heartbeat for"),
        ("reused pid", "reused pid"),
        ("unreadable", "unreadable"),
    ],
)
def test_a_stale_claim_is_taken_over(tmp_path, holder, why, capfd):
    table = tmp_path / "results.csv"
    path = claims.claim_path(table, "stale")
    if holder == "dead pid":
        _plant(path, host=socket.gethostname(), pid=_dead_pid(), age=1)
    elif holder == "old heartbeat elsewhere":
        _plant(path, host="other-host.example", pid=1, age=claims.TIMEOUT_S + 5)
    elif holder == "reused pid":  # an earlier process with this pid crashed holding it
        _plant(path, host=socket.gethostname(), pid=os.getpid(), age=1)
    else:
        path.parent.mkdir(parents=True)
        path.write_text('{"host": ')
    with claims.claim(table, "stale", poll=0.05) as got:
        assert got is not None and why in got.took_over
        mine = claims.read(path)
        assert (mine.host, mine.pid, mine.key) == (socket.gethostname(), os.getpid(), "stale")
    assert not path.exists()
    assert f"took over the claim of {'' if holder == 'unreadable' else 'process'}" in capfd.readouterr().err


def test_the_heartbeat_is_refreshed_while_held(tmp_path):
    table = tmp_path / "results.csv"
    with claims.claim(table, "beat", heartbeat_s=0.05) as got:
        first = claims.read(got.path).heartbeat
        time.sleep(0.4)
        assert claims.read(got.path).heartbeat > first
        assert claims.read(got.path).token == got.holder.token


# ------------------------------------------------------------------------------------------- release
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_claim_is_released_however_its_block_ends(tmp_path, error):
    table = tmp_path / "results.csv"
    with pytest.raises(error), claims.claim(table, "k") as got:
        assert got.path.exists()
        raise error("boom")
    assert not got.path.exists() and not claims.folder(table).exists() and not got.held

    @runner.claimed
    def family_run():
        claims.hold(table, "k2")
        assert claims.claim_path(table, "k2").exists()
        raise error("boom")

    with pytest.raises(error):
        family_run()
    assert not claims.folder(table).exists()


def test_release_leaves_a_claim_another_process_took_over(tmp_path):
    table = tmp_path / "results.csv"
    got = claims.try_acquire(table, "k")
    _plant(got.path, host="other-host.example", pid=1, age=0)  # taken over while this one was suspended
    got.release()
    assert claims.read(got.path).host == "other-host.example"


def test_misuse_is_refused(tmp_path):
    table = tmp_path / "results.csv"
    with pytest.raises(claims.ClaimError, match="outside claims.scope"):
        claims.hold(table, "k")
    with claims.claim(table, "k"), pytest.raises(claims.ClaimError, match="already holds"):
        claims.try_acquire(tmp_path / "sub" / ".." / "results.csv", "k")  # waiting for itself would never end
    # another thread of this process holding it is a live holder like any other
    box = []
    thread = threading.Thread(target=lambda: box.append(claims.try_acquire(table, "k")))
    with claims.claim(table, "k"):
        thread.start()
        thread.join()
    assert box == [None]
    with pytest.raises(ValueError, match="file name"):
        claims.claim_path(table, "../x")


# ------------------------------------------------------------------------------------------- waiting
def _hold_for(table, key, started, hold_s):
    with claims.claim(table, key):
        started.set()
        time.sleep(hold_s)


def test_a_claimed_run_waits_for_its_holder_and_says_so_once(tmp_path, capfd):
    table = tmp_path / "results.csv"
    started = FORK.Event()
    proc = FORK.Process(target=_hold_for, args=(table, "k", started, 1.0))
    proc.start()
    assert started.wait(30)
    t0 = time.time()
    with claims.claim(table, "k", what="unet seed 0 on sim-crop", poll=0.05):
        waited = time.time() - t0
    proc.join(30)
    assert waited > 0.3
    err = capfd.readouterr().err
    assert err.count("being trained by") == 1 and err.count("released it") == 1
    assert f"process {proc.pid} on {socket.gethostname()}" in err and "unet seed 0 on sim-crop" in err


# ------------------------------------------------------------------------------------------- the runner's rule
def _family_run(table, done, log, barrier):
    @runner.claimed
    def run():
        if not runner.claim_or_skip(SimpleDs(), "m", 0, table, "key0"):
            return "skipped"
        time.sleep(0.5)  # training
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        Path(done).write_text("ok")  # its rows
        return "ok"

    barrier.wait()
    run()


class SimpleDs:
    name, task, classes, splits = "sim-fake", "crop", ["a", "b"], ["train"]

    def chip_ids(self, split):
        return ["c0"]


def test_claim_or_skip_trains_a_run_once_among_processes_that_reach_it_together(tmp_path, monkeypatch):
    table, done, log = tmp_path / "results.csv", tmp_path / "done", tmp_path / "log"
    monkeypatch.setattr(runner, "finished", lambda *a: done.exists())  # the table holds it once "done" exists
    monkeypatch.setattr(claims, "POLL_S", 0.05)
    n = 3
    barrier = FORK.Barrier(n)
    procs = [FORK.Process(target=_family_run, args=(table, done, log, barrier)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(log.read_text().splitlines()) == 1
    # a lone run with nothing in the way: no wait, no file left behind; a finished one takes no claim at all
    done.unlink()

    @runner.claimed
    def alone():
        return runner.claim_or_skip(SimpleDs(), "m", 0, table, "key0"), claims.folder(table).exists()

    assert alone() == (True, True) and not claims.folder(table).exists()
    done.write_text("ok")
    assert alone() == (False, False)
    monkeypatch.undo()
    assert runner.claim_or_skip(SimpleDs(), "m", 0, None, "") is True  # no table: nothing to share, no claim


def _train_both(tmp, barrier):
    from test_train import FIT, FakeDataset

    from helpers.models.unet import UNet

    barrier.wait()
    out = []
    for model in ("unet", "unet2"):
        got = deep_run.run(
            FakeDataset(),
            model,
            lambda: UNet(6, 3, base=4, depth=2),
            seed=0,
            results_path=tmp / "results.csv",
            runs_dir=tmp / "runs",
            **{**FIT, "max_steps": 6},
        )
        out.append(f"{model} {got.status}")
    with open(tmp / "outcomes", "a") as fh:
        fh.write("\n".join(out) + "\n")


def test_two_processes_training_the_same_runs_train_each_once(tmp_path):
    """deep_run.run itself, from two processes started together on one table and one runs folder."""
    barrier = FORK.Barrier(2)
    procs = [FORK.Process(target=_train_both, args=(tmp_path, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    outcomes = pd.Series(Path(tmp_path / "outcomes").read_text().split("\n")).str.split(expand=True).dropna()
    counts = outcomes.groupby(0)[1].apply(sorted).to_dict()
    assert counts == {"unet": ["ok", "skipped"], "unet2": ["ok", "skipped"]}
    for model in ("unet", "unet2"):  # one training in each run log: every step logged once
        log = pd.read_csv(run_folders.run_dir(tmp_path / "runs", "fake", model, 0) / run_folders.LOG)
        assert log["step"].is_unique and log["step"].max() == 6
    table = results.read(tmp_path / "results.csv")
    assert not table.duplicated(["model", "seed", "split", "metric", "class"]).any()
    assert not claims.folder(tmp_path / "results.csv").exists()


# ------------------------------------------------------------------------------------------- two chains
@pytest.mark.slow
def test_two_quick_chains_started_together_train_each_run_once(tmp_path):
    """Issue 30: two quick chains on one results table; their executed notebooks and run logs say who trained what."""
    from helpers.data import datasets

    data = tmp_path / "data"
    # generated once, before both start
    datasets.prepare_replicates("sim-crop", data, [0], size="quick", seed=0)
    models = ["fcn", "unet"]
    sets = {
        "dataset_names": ["sim-crop"],
        "texture_knobs": [],
        "label_budgets": [],
        "model_names": models,
        "texture_models": [],
        "max_steps": 30,  # quick mode's 6 steps, lengthened so that the two chains surely meet at a run
        "data_dir": str(data),
        "results_path": str(tmp_path / "results" / "results.csv"),
        "convergence_path": str(tmp_path / "results" / "convergence.csv"),
        "figures_dir": str(tmp_path / "figures"),
        "maps_dir": str(tmp_path / "maps"),
        "runs_dir": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
    }
    quick = REPO / "notebooks" / "params" / "quick.yaml"
    argv = [sys.executable, "-m", "helpers.chain", "--params", str(quick), "--only", "03"]
    argv += ["--set", *(f"{k}={json.dumps(v)}" for k, v in sets.items())]
    procs = [
        subprocess.Popen(
            [*argv, "--output", str(tmp_path / f"nb{i}")],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in (1, 2)
    ]
    logs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    said = [(tmp_path / f"nb{i}" / "03_cnn_models.ipynb").read_text() for i in (1, 2)]
    done = [re.search(r"(\d+) runs, (\d+) already done", text) for text in said]
    assert all(done), said
    n_runs = [int(m.group(1)) for m in done]
    trained = [int(m.group(1)) - int(m.group(2)) for m in done]
    assert n_runs == [len(models)] * 2 and sum(trained) == len(models), (n_runs, trained)
    assert any("being trained by process" in text for text in said)  # they met: one waited for the other
    for model in models:  # each run log holds one training: every step once, up to the quick cap
        log = pd.read_csv(run_folders.run_dir(tmp_path / "runs", "sim-crop", model, 0) / run_folders.LOG)
        assert log["step"].is_unique, model
    table = results.read(sets["results_path"])
    ok = table[table["status"] == "ok"]
    assert sorted(ok["model"].unique()) == sorted(models)
    assert not ok.duplicated(["model", "seed", "split", "metric", "class"]).any()
    assert not claims.folder(sets["results_path"]).exists()  # every claim released

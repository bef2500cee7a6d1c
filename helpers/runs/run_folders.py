"""A deep run's folder: its checkpoints, validation log and the markers that say which run it holds.

One folder per (dataset, model, seed[, label budget]) (:func:`run_dir`, named by :class:`helpers.results.RunId`):
``last.pt`` (everything to resume), ``best.pt`` (the selected weights), ``cycle_best.pt`` (the best weights before
the last cycle), ``log.csv`` (one row per validation), ``run_key`` and ``trajectory_key`` (which run's checkpoints
these are). :func:`new_state`, :func:`resume_state` and :func:`write_last` are the checkpointing of the training
loop: the state a run starts, resumes or continues from, and its write at every validation. Checkpoints hold tensors and plain values only and are read with ``weights_only=True``; every file is
written atomically. The training loop (:mod:`helpers.runs.train`) and the convergence check read and write here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from helpers import results
from helpers.data.io import atomic_write
from helpers.runs import schedule

LAST = "last.pt"
BEST = "best.pt"
LOG = "log.csv"
CYCLE_BEST = "cycle_best.pt"  # the best weights before the run's last cycle (runs trained in cycles)
KEY = "run_key"  # the run_key of the run whose checkpoints a run folder holds (written by :func:`helpers.runs.deep_run.run`)
TRAJECTORY = (
    "trajectory_key"  # the same run's key without its caps (:func:`helpers.runs.deep_run.trajectory_key`)
)
CHECKPOINT_FORMAT = 2


def save_checkpoint(obj: Mapping, path: Path) -> None:
    """Write a checkpoint atomically (a temporary file renamed over ``path``): a killed run never leaves half a file."""
    atomic_write(path, lambda tmp: torch.save(dict(obj), tmp))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`helpers.runs.train.fit` (tensors and plain values only: ``weights_only=True``)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means the same thing to the user
        raise ValueError(
            f"{path}: not a readable checkpoint of this study ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        raise ValueError(
            f"{path}: expected a checkpoint dict with format={CHECKPOINT_FORMAT} and a 'model' entry "
            "(checkpoints of the older epoch-based loop are not resumable: retrain with force=True)"
        )
    return ckpt


def run_dir(
    runs_dir: str | os.PathLike, dataset: str, model: str, seed: int, label_budget: str = "all"
) -> Path:
    """Folder of one run's checkpoints and log (:meth:`helpers.results.RunId.run_dir`)."""
    return results.RunId(dataset, model, int(seed), label_budget).run_dir(runs_dir)


def read_logs(
    runs_dir: str | os.PathLike, dataset: str, models: Sequence[str], seeds: Sequence[int]
) -> pd.DataFrame:
    """The validation logs (``log.csv``) of the runs of ``models`` x ``seeds`` on ``dataset`` that exist here.

    One row per validation with ``model`` and ``seed`` added, in (model, seed) order; empty when none exists (a
    fresh clone has the results table but not the run folders).
    """
    logs = []
    for model in models:
        for seed in seeds:
            path = run_dir(runs_dir, dataset, model, seed) / LOG
            if path.exists():
                logs.append(pd.read_csv(path).assign(model=model, seed=seed))
    return pd.concat(logs, ignore_index=True) if logs else pd.DataFrame()


def claim_run_dir(out_dir: Path, key: str, trajectory: str | None = None) -> None:
    """Make ``out_dir`` the folder of the run ``key``: checkpoints of another run (other settings) are removed.

    A run folder is named by (dataset, model, seed), so a changed setting meets the checkpoints of the run it
    replaces; those are stale (their rows are replaced when the new run finishes) and :func:`helpers.runs.train.fit` would refuse to
    resume them. Checkpoints of the same key are kept: an interrupted run resumes where it stopped. So are those of
    the same ``trajectory`` (:func:`helpers.runs.deep_run.trajectory_key`: the key without the caps), which :func:`helpers.runs.train.fit` continues under
    the raised caps instead of training the run again.
    """
    marker = out_dir / KEY
    held = marker.read_text().strip() if marker.is_file() else None
    if held != key:
        if trajectory is None or _held_trajectory(out_dir) != trajectory:
            for name in (LAST, BEST, LOG, CYCLE_BEST):
                (out_dir / name).unlink(missing_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(marker, lambda tmp: tmp.write_text(key + "\n"))
    mark_trajectory(out_dir, key, trajectory)


def _held_trajectory(out_dir: Path) -> str | None:
    path = out_dir / TRAJECTORY
    return path.read_text().strip() if path.is_file() else None


def mark_trajectory(out_dir: Path, key: str, trajectory: str | None) -> None:
    """Record the trajectory of the run ``key`` whose checkpoints ``out_dir`` holds (nothing if it holds another)."""
    marker = out_dir / KEY
    if trajectory is None or not marker.is_file() or marker.read_text().strip() != key:
        return
    if _held_trajectory(out_dir) != trajectory:
        atomic_write(out_dir / TRAJECTORY, lambda tmp: tmp.write_text(trajectory + "\n"))


def new_state(config: Mapping, chips: Iterable[tuple[np.ndarray, np.ndarray]], ignore_index: int) -> dict:
    """The state of a run before its first step (what ``last.pt`` holds, less the model and optimiser)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": dict(config),
        "step": 0,
        "history": [],
        "best_step": 0,
        "best_score": -math.inf,
        "plateau_score": -math.inf,
        "plateau_step": 0,
        "lr_scale": 1.0,
        "drops": 0,
        "cycle": 0,
        "cycle_start": {"step": 0, "best_step": 0, "best_score": -math.inf},
        "finished": False,
        "stopped_by": "",
        "train_s": 0.0,
        "eval_s": 0.0,
        "n_train_pixels": sum(int((y != ignore_index).sum()) for _, y in chips),
    }


def resume_state(
    out_dir: Path, trajectory: Mapping, config: Mapping, force: bool, start_from, rule: Mapping
) -> dict | None:
    """The state to resume from: ``out_dir``'s own, a run to continue, or None (fresh).

    ``out_dir``'s own state resumes under the same settings, or under higher caps (:func:`helpers.runs.schedule.extend`).

    Raises:
        ValueError: ``out_dir`` holds a run with other settings (it would mix two configurations).
    """
    if force:
        for name in (LAST, BEST, LOG, CYCLE_BEST):
            (out_dir / name).unlink(missing_ok=True)
    state = load_checkpoint(out_dir / LAST) if (out_dir / LAST).exists() else None
    if state is not None and schedule.raised_caps(state["config"], config):
        if schedule.extend(state, config, rule):  # a new cycle: keep the best weights it has to beat
            save_checkpoint(load_checkpoint(out_dir / BEST), out_dir / CYCLE_BEST)
        save_checkpoint(
            {**load_checkpoint(out_dir / BEST), "config": dict(config)},
            out_dir / BEST,
        )
        save_checkpoint(state, out_dir / LAST)
    elif state is not None:
        diff = schedule.config_diff(state["config"], config)
        if diff:
            raise ValueError(
                f"{out_dir}: holds a run with other settings ({', '.join(diff)}); pass force=True to retrain "
                "or choose another out_dir"
            )
    elif start_from is not None:
        state = start_state(Path(start_from), out_dir, trajectory, config)
    return state


def start_state(src: Path, out_dir: Path, trajectory: Mapping, config: Mapping) -> dict:
    """The state a continuation starts from: ``src``'s finished run, re-labelled with the new stopping rule.

    With ``restart_lr`` in ``config`` the rate goes back to its base value and the plateau rule starts afresh (no drop
    taken, a new patience window from this step): a second full cycle of the schedule from where the run ended.
    """
    if not (src / LAST).exists() or not (src / BEST).exists():
        raise ValueError(f"{src}: no finished run to continue from (expected {LAST} and {BEST})")
    state = load_checkpoint(src / LAST)
    stored = {k: v for k, v in state["config"].items() if k in trajectory}
    diff = schedule.config_diff(stored, trajectory)
    if diff:
        raise ValueError(f"{src}: cannot continue a run with other settings ({', '.join(diff)})")
    if not state["finished"]:
        raise ValueError(f"{src}: the run is not finished; resume it first")
    if state["step"] >= config["max_steps"]:
        raise ValueError(f"{src}: already at step {state['step']} >= max_steps {config['max_steps']}")
    out_dir.mkdir(parents=True, exist_ok=True)
    best = load_checkpoint(src / BEST)
    save_checkpoint({**best, "config": dict(config)}, out_dir / BEST)
    state.update(config=dict(config), finished=False, stopped_by="", continued_from=str(src))
    if config.get("restart_lr"):
        schedule.reset_schedule(state, int(state["step"]))
    return state


def write_last(state: dict, model: nn.Module, optimizer, out_dir: Path) -> None:
    """Write ``last.pt`` (everything a resume needs, RNG state included) and ``log.csv``, each atomically."""
    state.update(model=model.state_dict(), optimizer=optimizer.state_dict(), torch_rng=torch.get_rng_state())
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    save_checkpoint(state, out_dir / LAST)
    log = pd.DataFrame(state["history"])
    atomic_write(out_dir / LOG, lambda tmp: log.to_csv(tmp, index=False))

"""One results row of a deep model: its ``run_key``, training through :func:`helpers.runs.train.fit`, one scoring.

Every deep row of the study (the CNNs of notebook 03, the fine-tuned and in-study foundation models of notebook 04)
goes through :func:`run`: it skips a run the results table already holds under the same key (:func:`key_for`), trains
to the plateau protocol, scores the validation and held-out splits once with the selected weights, and appends the
tidy rows. Apart from the loop (:mod:`helpers.runs.train`) because the loop knows nothing of the results table.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from helpers import metrics, prediction_maps, results
from helpers.runs import inference, run_folders, runner, runtime, schedule
from helpers.runs.runner import seed_everything
from helpers.runs.train import FitSettings, TrainResult, fit


@dataclasses.dataclass(kw_only=True)
class RunOutcome(runner.Outcome):
    """What :func:`run` did for one (dataset, model, seed) (``status``, ``rows``: :class:`helpers.runs.runner.Outcome`).

    Attributes:
        out_dir: The run's checkpoint/log folder (its ``log.csv`` feeds the training curves).
        train: The :class:`helpers.runs.train.TrainResult` (``None`` when skipped or not run).
    """

    out_dir: Path
    train: TrainResult | None = None


#: :func:`helpers.runs.train.fit` arguments that never change a run's numbers, left out of its key.
_NOT_IN_KEY = ("num_threads", "progress", "cache_mb", "force", "start_from")


def key_for(
    ds,
    model_name: str,
    seed: int,
    *,
    family: str = "cnn",
    pretraining: str = "none",
    key_settings: Mapping | None = None,
    **fit_kwargs,
) -> str:
    """The ``run_key`` :func:`run` gives this run (:func:`helpers.results.run_key`), without running it.

    The training settings (the keywords the caller set, each a field of :class:`helpers.runs.train.FitSettings`), the
    threads per run and the caller's ``key_settings`` (what the model is built from:
    architecture settings, pretraining, the sha256 of a weights file) go in. Runners that do expensive work before
    :func:`run` (loading a checkpoint, pretraining) call this first to skip a finished run early.
    """
    threads = int(fit_kwargs.get("num_threads") or runtime.machine_threads())
    fit = {k: v for k, v in fit_kwargs.items() if k not in _NOT_IN_KEY}
    unknown = sorted(set(fit) - {f.name for f in dataclasses.fields(FitSettings)})
    if unknown:  # a misspelt setting would change the key and then fail only when the run starts
        raise TypeError(f"{model_name}: not a training setting (helpers.runs.train.FitSettings): {unknown}")
    settings = {"family": family, "pretraining": pretraining, "threads": threads, "fit": fit}
    # the CPU's kernels, bf16 path, torch version and GPU change every deep row's numbers (issue 27): a row
    # computed on another platform class is rerun here, never reused
    settings["platform"] = runner.platform(family)
    return results.run_key(ds, model_name, seed, {**settings, **dict(key_settings or {})})


def trajectory_key(ds, model_name: str, seed: int, **key_kwargs) -> str:
    """:func:`key_for` without the settings that only cap a run's length (:data:`helpers.runs.schedule.CAPS`).

    Two runs with the same trajectory key follow the same trajectory until the lower caps stop one of them, so a
    finished run's checkpoints serve a rerun with higher caps (:func:`helpers.runs.run_folders.claim_run_dir`, :func:`helpers.runs.train.fit`).
    """
    return key_for(ds, model_name, seed, **{k: v for k, v in key_kwargs.items() if k not in schedule.CAPS})


@runner.claimed  # the claim taken below (runner.claim_or_skip) ends with the run
def run(
    ds,
    model_name: str,
    make_model: Callable[[], nn.Module],
    *,
    seed: int,
    results_path: str | os.PathLike = results.DEFAULT_PATH,
    runs_dir: str | os.PathLike = "runs",
    family: str = "cnn",
    pretraining: str = "none",
    weights: str = "random-init",
    key_settings: Mapping | None = None,
    force: bool = False,
    note: str = "",
    progress: bool = True,
    maps_dir: str | os.PathLike | None = None,
    chips_dir: str | os.PathLike | None = runner.BESIDE_TABLE,
    **fit_kwargs,
) -> RunOutcome:
    """Train, select and test one (dataset, model, seed) and write its rows to the results table.

    Seeds python/numpy/torch with ``seed`` and calls ``make_model()`` (so weight initialisation is reproducible),
    trains with :func:`helpers.runs.train.fit`, reloads the best weights, and scores the validation split and every held-out split
    (``test``, and ``bolivia`` where it exists) once, with the same sliding windows as validation. A run already in
    the results table under the same ``run_key`` (:func:`key_for`) is skipped unless ``force``.

    Args:
        ds: Dataset (``helpers.data.datasets`` API).
        model_name: Name in the results table (``"unet"``, ``"prithvi"``, ...).
        make_model: Builds the untrained (or pretrained) model.
        seed: Run seed.
        results_path: The tidy results CSV.
        runs_dir: Root of the per-run checkpoint folders (:func:`run_dir`).
        family: ``"cnn"`` or ``"fm"``.
        pretraining: ``"none"``, ``"mae-in-study"``, ``"spectral-in-study"`` or ``"published"``.
        weights: Which weights the model started from (``"random-init"``, a file name, ...).
        key_settings: What ``make_model`` builds from, for the run's key (architecture settings, the sha256 of a
            weights file, the pretraining settings); the model name stands for the rest.
        force: Retrain and rewrite even if the run exists.
        note: Free text for the ``note`` column.
        progress: Show tqdm bars.
        maps_dir: Save the test predictions of the first few test chips here
            (:mod:`helpers.prediction_maps`; ``None``: keep none).
        chips_dir: Save the per-chip counts of every held-out split here (:func:`helpers.results.read_chip_counts`;
            default ``chips/`` beside ``results_path``; ``None``: none).
        **fit_kwargs: Passed to :func:`helpers.runs.train.fit` (``max_steps`` is required; ``eval_every``, ``patience``, ``lr``, ...).
    """
    seed = runner.as_seed(seed)
    out_dir = runner.identity(ds, model_name, seed).run_dir(runs_dir)

    key_kw = dict(family=family, pretraining=pretraining, key_settings=key_settings, **fit_kwargs)
    key = key_for(ds, model_name, seed, **key_kw)
    trajectory = trajectory_key(ds, model_name, seed, **key_kw)
    if not runner.claim_or_skip(ds, model_name, seed, results_path, key, force=force):
        run_folders.mark_trajectory(out_dir, key, trajectory)  # checkpoints kept for a rerun with higher caps
        return RunOutcome(status="skipped", run_key=key, out_dir=out_dir)
    run_folders.claim_run_dir(out_dir, key, trajectory)
    peak_reset = runtime.reset_peak_memory()
    t_start = time.perf_counter()
    seed_everything(seed)
    model = make_model()
    tr = fit(model, ds, seed=seed, out_dir=out_dir, force=force, progress=progress, **fit_kwargs)

    prev_threads = torch.get_num_threads()
    torch.set_num_threads(fit_kwargs.get("num_threads") or runtime.machine_threads())
    try:
        eval_kw = dict(tile=tr.eval_tile, overlap=tr.eval_overlap, batch_size=fit_kwargs.get("batch_size", 8))
        t_pred = time.perf_counter()
        held_out = runner.held_out_splits(ds)
        cms, maps, chips = {}, {}, {}
        for s in held_out:
            keep = prediction_maps.chips_to_save(ds, s, maps_dir)
            chip_cms, kept = inference.evaluate_chips(model, ds, s, keep, progress=progress, **eval_kw)
            cms[s], chips[s] = chip_cms.sum(axis=0), results.chip_counts(ds.chip_ids(s), chip_cms)
            maps.update(kept)
        predict_s = time.perf_counter() - t_pred
        # the selected weights' validation matrix is the restored weights' matrix; older checkpoints lack it
        recheck = tr.best_val_cm is None
        cms["val"] = inference.evaluate(model, ds, "val", **eval_kw) if recheck else tr.best_val_cm
    finally:
        torch.set_num_threads(prev_threads)
    val_check = metrics.scores(cms["val"])["miou_macro"]
    if recheck and not math.isclose(val_check, tr.best_score, rel_tol=1e-9, abs_tol=1e-12):
        warnings.warn(
            f"{out_dir}: restored best weights give validation mIoU {val_check:.6f} but {tr.best_score:.6f} was "
            "recorded at selection (resumed on another machine or thread count?)",
            stacklevel=2,
        )
    notes = [note] if note else []
    precision = "bf16 autocast" if tr.config.get("bf16") else "float32"
    if tr.config.get("channels_last"):
        precision += " + channels_last"
    notes.append(f"trained with {tr.config.get('num_threads')} thread(s), {precision}")
    if not peak_reset:
        notes.append("peak_mem_mb is the process peak so far (per-run reset unavailable)")
    ctx = runner.context(
        ds,
        model_name,
        seed,
        family=family,
        pretraining=pretraining,
        weights=weights,
        note="; ".join(notes),
        n_train_pixels=tr.n_train_pixels,
        n_features=ds.n_channels,
        n_params=sum(p.numel() for p in model.parameters()),
        n_trainable_params=tr.config["n_trainable_params"],
        steps=tr.steps,
        best_step=tr.best_step,
        stopped_by=tr.stopped_by,
        # the run's own time: this call's, plus the training an earlier call did (resumed or extended runs)
        runtime_s=time.perf_counter() - t_start + tr.earlier_train_s,
        fit_s=tr.train_s,
        predict_s=predict_s,
        peak_mem_mb=runtime.peak_memory_mb(),
        model_size_mb=sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20,
        run_key=key,
    )
    scores = {split: metrics.scores(cm) for split, cm in cms.items()}
    rows = runner.finish(
        ds,
        model_name,
        seed,
        scores,
        ctx,
        results_path=results_path,
        maps_dir=maps_dir,
        maps=maps,
        chips_dir=chips_dir,
        chips=chips,
    )
    return RunOutcome(status="ok", rows=rows, run_key=key, out_dir=out_dir, train=tr)

"""The one training loop every deep model of the study uses (CNNs here, the foundation models later).

Sharing the loop is what makes the CNN vs. foundation-model comparison fair: same loss, optimiser, schedule,
augmentation, crops, model selection and inference for every deep row of the results table. A model only has to
map reflectance ``float32 [B, C, H, W]`` (``C = 6 * n_dates``, dates stacked as channels, date-major) to logits
``[B, num_classes, H, W]`` and normalise its input itself.

What :func:`fit` does, and why:

* **Loss**: cross-entropy averaged over valid pixels only; pixels labelled ``ds.ignore_index`` (-1) contribute
  neither to the numerator nor to the denominator (:func:`masked_cross_entropy`). Optional class weights (e.g.
  inverse frequency for the imbalanced crop data) weight each valid pixel by its class; off by default, as in the
  paper's baselines.
* **Optimiser**: AdamW; weight decay on convolution/linear weights only, not on biases and norm parameters (the
  usual practice: decaying a BatchNorm scale just fights the normalisation).
* **Schedule**: linear warm-up over ``warmup_steps`` optimiser steps, then a constant rate
  (:func:`warmup_factor`). The run's length is decided by validation, not by a schedule sized to a budget.
* **Data**: a stream of random ``crop_size`` crops (``batch_size`` per step), drawn in whole shuffled passes over
  the training chips, each with a random element of the dihedral group (rot90 x flip): augmentation on train
  only. Chips smaller than the crop are padded with reflectance 0 and label ``ignore_index``. Crops without a
  single valid label are redrawn a few times, as they carry no gradient.
* **Budget and model selection (the plateau protocol)**: every ``eval_every`` steps the model predicts every
  validation chip (:func:`helpers.runs.inference.predict_chip`, sliding windows of the training crop size) and the dataset-level confusion
  matrix gives ``miou_macro``. The best weights so far are kept (``best.pt``). The run stops when the best score
  has not risen by more than ``min_delta`` for ``patience`` validations (``stopped_by = "plateau"``) or at the cap
  ``max_steps`` (``stopped_by = "cap"``, a budget cut that the results rows state). With ``cycles`` > 1 (the
  study's :data:`PLATEAU`) the end of a schedule is followed by a restart at the base rate, and the run finishes
  only when a whole cycle raised the best validation score by less than ``cycle_gain`` (``"cycles"`` when the
  cycles ran out first): every run carries the evidence of its own plateau. The best weights are loaded back
  before :func:`fit` returns. The test split is never looked at here. :func:`continue_run` trains a finished run on
  to twice its steps (the check of runs trained in one cycle).
* **Determinism**: python, numpy and torch are seeded; the crops between validations ``b`` and ``b + 1`` come from a numpy generator
  seeded with ``(seed, b)`` and the torch RNG state (dropout) is checkpointed, so an interrupted run resumes to exactly
  the result of an uninterrupted one. ``torch.use_deterministic_algorithms(True)`` is on during training. On CPU
  the remaining non-determinism is floating-point summation order, which may change with the number of threads,
  the CPU's instruction set (oneDNN picks kernels per CPU) or the torch version; with those fixed, the same seed
  gives bit-identical metrics (tested). On a GPU, some kernels (bilinear upsampling backward) are
  non-deterministic; they warn instead of failing, so GPU runs are close but not bit-identical.
* **Files** (in ``out_dir``): ``last.pt`` (everything needed to resume, written at every validation), ``best.pt``
  (the selected weights), ``log.csv`` (one row per validation: step, losses, validation scores, learning rate,
  time), all
  written atomically. Checkpoints hold tensors and plain Python values only and are read with
  ``weights_only=True``. A finished run is not retrained unless ``force=True``; a run whose settings changed
  raises instead of silently mixing two configurations.

:func:`run` wraps :func:`fit` for one (dataset, model, seed) row of the run matrix: it seeds and builds the model,
trains, evaluates validation and test splits once with the best weights, and writes tidy rows to the results table.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from helpers import metrics, prediction_maps, results
from helpers.data import labels
from helpers.data.io import atomic_write
from helpers.runs import inference, run_folders, runner, runtime
from helpers.runs.runner import seed_everything


# ---------------------------------------------------------------------------------------------- small utilities
def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based): linear warm-up, then cosine to zero."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def masked_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy averaged over valid pixels; ignored pixels add nothing to the sum or the count.

    Unlike ``F.cross_entropy(reduction="mean")`` this returns 0 (with a zero gradient) rather than NaN for a batch
    without any valid pixel, and with class weights it divides by the summed weights of the valid pixels, so the
    loss stays a weighted mean.

    Args:
        logits: ``[B, K, H, W]``.
        target: ``[B, H, W]`` int64, values ``0..K-1`` or ``ignore_index``.
        ignore_index: Label of pixels to leave out.
        weight: Optional ``[K]`` class weights.
    """
    total = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction="sum")
    valid = target != ignore_index
    if weight is None:
        denom = valid.sum().to(total.dtype)
    else:
        denom = weight[target[valid]].sum().to(total.dtype)
    return total / denom.clamp(min=1e-12) if bool(valid.any()) else total * 0.0


def random_crop(
    a: np.ndarray,
    y: np.ndarray,
    size: int,
    rng: np.random.Generator,
    ignore_index: int,
    tries: int = 5,
    anchor: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size x size`` crop of a chip, padded (reflectance 0, label ignore) where the chip is smaller.

    Up to ``tries`` offsets are drawn until the crop holds at least one valid label. With ``anchor`` (sparse point
    labels, :mod:`helpers.data.labels`) the crop is instead placed around one labelled pixel drawn uniformly, at a
    uniformly random position within the crop: a blind draw would almost never hit one of a few labelled pixels,
    so nearly every batch would carry no gradient and the run would "plateau" on nothing.
    """
    h, w = y.shape
    if anchor:
        labelled = np.flatnonzero(y.ravel() != ignore_index)
        if labelled.size:
            r, c = divmod(int(labelled[int(rng.integers(labelled.size))]), w)
            top = int(rng.integers(max(0, r - size + 1), min(r, h - size) + 1)) if h > size else 0
            left = int(rng.integers(max(0, c - size + 1), min(c, w - size) + 1)) if w > size else 0
            tries = 0
            yc = y[top : top + size, left : left + size]
    for _ in range(tries):
        top = int(rng.integers(0, h - size + 1)) if h > size else 0
        left = int(rng.integers(0, w - size + 1)) if w > size else 0
        yc = y[top : top + size, left : left + size]
        if (yc != ignore_index).any():
            break
    ac = a[:, top : top + size, left : left + size]
    ph, pw = size - yc.shape[0], size - yc.shape[1]
    if ph or pw:
        ac = np.pad(ac, ((0, 0), (0, ph), (0, pw)))
        yc = np.pad(yc, ((0, ph), (0, pw)), constant_values=ignore_index)
    return ac, yc


def augment(a: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random one of the 8 dihedral transforms (rot90 k times, then an optional left-right flip).

    Nadir-looking imagery has no preferred orientation, so all eight are label-preserving.
    """
    k = int(rng.integers(4))
    a, y = np.rot90(a, k, axes=(1, 2)), np.rot90(y, k)
    if rng.integers(2):
        a, y = a[:, :, ::-1], y[:, ::-1]
    return a, y


class ChipStore:
    """Chips of one split read through ``ds.read_arrays``, kept in memory when the split is small enough.

    The simulated and fixture datasets fit easily; the real burn-scar training split (about 3.4 GB as float32)
    does not fit the study's 6 GiB budget next to everything else, so above ``cache_mb`` chips are re-read from
    disk each time.
    """

    def __init__(self, ds, ids: Sequence[str], cache_mb: float = 2048) -> None:
        self.ds = ds
        self.ids = list(ids)
        self.cache_mb = cache_mb
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._caching: bool | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        cid = self.ids[i]
        if cid in self._cache:
            return self._cache[cid]
        a, y = self.ds.read_arrays(cid)
        a = np.asarray(a, dtype=np.float32)
        if a.ndim != 3 or a.shape[1:] != y.shape:
            raise ValueError(
                f"{self.ds.name}: chip {cid!r} gave image {a.shape} and labels {y.shape}; expected (C, H, W) and (H, W)"
            )
        if self._caching is None:
            per_chip = a.nbytes + y.size * 2
            self._caching = per_chip * len(self.ids) / 2**20 <= self.cache_mb
        if self._caching:
            y = y.astype(np.int16) if self.ds.num_classes < 2**15 else y
            self._cache[cid] = (a, y)
        return a, y

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]


# ---------------------------------------------------------------------------------------------- training
#: The plateau protocol shared by every deep row (the stopping settings of :func:`fit`): validate every 50 steps;
#: 2 validations without a 0.2-point gain make a plateau; the first two plateaus drop the learning rate 5x, the
#: third ends a cycle; the rate then restarts at its base value for another cycle while the last one raised the
#: best validation score by 1 point or more, within 6,000 steps (the cycles' own cap, 20, does not bind first). Why
#: cycles: a restart from a one-cycle run's end often still raised validation by several points; why no lower cycle
#: cap: runs stopped at a few cycles were still gaining points a cycle, with the mean of each cycle's validations
#: rising too. On a noisy plateau the rule stops by itself: the best of more noisy validations rises by less each
#: cycle. The measurements are in ``benchmarks/README.md`` ("The plateau protocol").
PLATEAU: dict = {
    "max_steps": 6000,
    "eval_every": 50,
    "patience": 2,
    "min_delta": 0.002,
    "lr_drops": 2,
    "drop_factor": 0.2,
    "cycles": 20,
    "cycle_gain": 0.01,
}


#: Datasets whose validation scores swing too much for :data:`PLATEAU`'s single-validation test, and what they use
#: instead (:func:`plateau_for`): on ``sim-crop`` (ten classes, CDL-like label noise) a single validation stopped runs
#: that doubling still improved, while the mean of the last three validations stopped them on a plateau. The other
#: default datasets keep :data:`PLATEAU` and their runs their identity. Measured with ``benchmarks/plateau_rules.py``
#: (``benchmarks/README.md``, "The plateau protocol").
PLATEAU_FOR: dict[str, dict] = {"sim-crop": {"smooth": 3}}


def plateau_for(dataset: str, settings: Mapping) -> dict:
    """``settings`` (:func:`fit` keywords) with ``dataset``'s entry of :data:`PLATEAU_FOR` applied.

    Only runs that stop on a plateau change (``patience`` set): quick runs and continuations train to a fixed step
    count, so the plateau test does not exist for them and their settings (and keys) stay as given.
    """
    out = dict(settings)
    if out.get("patience") is not None:
        out.update(PLATEAU_FOR.get(dataset, {}))
    return out


def plateau_level(scores: Sequence[float], smooth: int = 1) -> float:
    """The validation level the plateau test compares: the mean of the last ``smooth`` scores (NaN if one is NaN).

    With ``smooth = 1`` it is the latest score. A larger window answers noisy validation: one lucky evaluation
    moves the mean by a ``smooth``-th of its luck, so the bar a still-improving model must clear is its level, not
    its best swing.
    """
    recent = np.asarray(list(scores)[-int(smooth) :], dtype=float)
    return float(recent.mean()) if recent.size and np.all(np.isfinite(recent)) else float("nan")


def settings_for(ds, settings: Mapping, max_epochs: float | None = None) -> dict:
    """``settings`` for ``ds``: its plateau settings and, with ``max_epochs``, an epoch cap.

    The plateau settings come from :func:`plateau_for`; the cap is that many passes over its training chips (one
    crop per chip per pass; the paper profile caps at ~100 epochs, as the paper's fine-tuning runs did, while the
    default caps in steps).
    """
    out = plateau_for(ds.name, settings)
    if max_epochs is not None:
        out["max_steps"] = epochs_to_steps(len(ds.chip_ids("train")), max_epochs, int(out["batch_size"]))
    return out


def epochs_to_steps(n_train_chips: int, epochs: float, batch_size: int) -> int:
    """Optimiser steps of ``epochs`` passes over ``n_train_chips`` chips at one crop per chip (at least one)."""
    return max(1, math.ceil(epochs * n_train_chips / batch_size))


@dataclasses.dataclass
class TrainResult:
    """What :func:`fit` returns; the model passed in already holds the best weights.

    Attributes:
        out_dir: Folder with ``best.pt``, ``last.pt`` and ``log.csv``.
        history: The log, one row per validation (also ``log.csv``).
        steps: Optimiser steps actually trained (fewer than ``max_steps`` when the plateau stopped the run).
        best_step: Optimiser step of the selected weights.
        best_score: Validation ``miou_macro`` of the selected weights.
        stopped_by: ``"plateau"`` (``patience`` validations without improvement) or ``"cap"`` (``max_steps``).
        skipped: Whether a finished run was found and only its best weights were loaded.
        train_s: Wall time of training and validation, summed over resumptions.
        eval_s: The part of ``train_s`` spent on validation.
        earlier_train_s: The part of ``train_s`` spent before this call (a resumed, extended or skipped run).
        n_train_chips: Training chips used.
        n_train_pixels: Valid labelled pixels in those chips.
        eval_tile: Window size used for validation (use the same for test); ``None``: whole chips.
        eval_overlap: Window overlap used for validation.
        config: The settings that identify the run (stored in the checkpoint).
        best_val_cm: Validation confusion matrix of the selected weights; :func:`run` reports it instead of
            predicting the validation split once more.
    """

    out_dir: Path
    history: pd.DataFrame
    steps: int
    best_step: int
    best_score: float
    stopped_by: str
    skipped: bool
    train_s: float
    eval_s: float
    n_train_chips: int
    n_train_pixels: int
    eval_tile: int | None
    eval_overlap: int | None
    config: dict
    best_val_cm: np.ndarray | None = None
    earlier_train_s: float = 0.0


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on trainable weights (2-D and up), none on biases and norm parameters."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _crop_order(n_chips: int, n_crops: int, rng: np.random.Generator) -> np.ndarray:
    """Chip index of each crop of a block: whole shuffled passes over the chips, truncated to ``n_crops``.

    Whole passes keep every chip equally often in the training stream however few steps a block has.
    """
    reps = -(-n_crops // n_chips)
    return np.concatenate([rng.permutation(n_chips) for _ in range(reps)])[:n_crops]


def _train_block(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    chips: ChipStore,
    *,
    block: int,
    n_steps: int,
    seed: int,
    batch_size: int,
    crop_size: int,
    ignore_index: int,
    weight: torch.Tensor | None,
    step0: int,
    warmup_steps: int,
    base_lr: float,
    bf16: bool,
    channels_last: bool,
    anchor: bool = False,
) -> float:
    """``n_steps`` optimiser steps (one block between two validations); returns the mean batch loss.

    The crops of block ``b`` come from a generator seeded with ``(seed, b)``, so a run resumed at a validation
    boundary (or continued past its end) draws exactly the crops an uninterrupted run would have.
    """
    model.train()
    device = next(model.parameters()).device
    rng = np.random.default_rng([seed, block])
    order = _crop_order(len(chips), n_steps * batch_size, rng)
    losses = []
    for k in range(n_steps):
        xs, ys = [], []
        for i in order[k * batch_size : (k + 1) * batch_size]:
            a, y = chips[int(i)]
            a, y = augment(*random_crop(a, y, crop_size, rng, ignore_index, anchor=anchor), rng)
            xs.append(a)
            ys.append(y)
        x = torch.from_numpy(np.stack(xs).astype(np.float32, copy=False)).to(device)
        t = torch.from_numpy(np.stack(ys).astype(np.int64)).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for g in optimizer.param_groups:
            g["lr"] = base_lr * warmup_factor(step0 + k, warmup_steps)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = masked_cross_entropy(logits.float(), t, ignore_index, weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses)) if losses else float("nan")


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Learning-rate multiplier of the plateau protocol at step ``step`` (0-based): linear warm-up, then constant.

    A constant rate (not a schedule that decays over a fixed budget) is what makes the stopping point a property of
    the model and the data rather than of the budget: the run ends when validation stops improving, and a
    continuation past that point (:func:`continue_run`) trains at the same rate, so "twice the steps" asks exactly
    "would more of the same training have helped?".
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    return 1.0


def _config_diff(stored: Mapping, current: Mapping) -> list[str]:
    return [k for k in sorted(set(stored) | set(current)) if stored.get(k) != current.get(k)]


def _check_fit_args(ds, max_steps, eval_every, batch_size, patience, smooth, class_weights) -> None:
    """Refuse settings :func:`fit` cannot train with, naming the setting (before anything is read or written)."""
    for split in ("train", "val"):
        if split not in ds.splits or not ds.chip_ids(split):
            raise ValueError(f"{ds.name}: fit needs a non-empty {split!r} split; splits are {ds.splits}")
    if class_weights is not None and len(class_weights) != ds.num_classes:
        raise ValueError(
            f"class_weights has {len(class_weights)} values but {ds.name} has {ds.num_classes} classes"
        )
    if int(max_steps) < 1 or int(eval_every) < 1 or batch_size < 2:
        raise ValueError(
            f"need max_steps >= 1, eval_every >= 1 and batch_size >= 2 (BatchNorm); got {max_steps}, "
            f"{eval_every}, {batch_size}"
        )
    if patience is not None and int(patience) < 1:
        raise ValueError(f"patience must be a positive number of validations or None, got {patience}")
    if int(smooth) < 1:
        raise ValueError(f"smooth must be a positive number of validations, got {smooth}")


def _new_state(config: Mapping, chips: ChipStore, ignore_index: int) -> dict:
    """The state of a run before its first step (what ``last.pt`` holds, less the model and optimiser)."""
    return {
        "format": run_folders.CHECKPOINT_FORMAT,
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


def _resume_state(
    out_dir: Path, trajectory: Mapping, config: Mapping, force: bool, start_from, rule: Mapping
) -> dict | None:
    """The state to resume from: ``out_dir``'s own, a run to continue, or None (fresh).

    ``out_dir``'s own state resumes under the same settings, or under higher caps (:func:`_extend`).

    Raises:
        ValueError: ``out_dir`` holds a run with other settings (it would mix two configurations).
    """
    if force:
        for name in (run_folders.LAST, run_folders.BEST, run_folders.LOG, run_folders.CYCLE_BEST):
            (out_dir / name).unlink(missing_ok=True)
    state = (
        run_folders.load_checkpoint(out_dir / run_folders.LAST)
        if (out_dir / run_folders.LAST).exists()
        else None
    )
    if state is not None and _raised_caps(state["config"], config):
        if _extend(state, config, rule):  # a new cycle: keep the best weights it has to beat
            run_folders.save_checkpoint(
                run_folders.load_checkpoint(out_dir / run_folders.BEST), out_dir / run_folders.CYCLE_BEST
            )
        run_folders.save_checkpoint(
            {**run_folders.load_checkpoint(out_dir / run_folders.BEST), "config": dict(config)},
            out_dir / run_folders.BEST,
        )
        run_folders.save_checkpoint(state, out_dir / run_folders.LAST)
    elif state is not None:
        diff = _config_diff(state["config"], config)
        if diff:
            raise ValueError(
                f"{out_dir}: holds a run with other settings ({', '.join(diff)}); pass force=True to retrain "
                "or choose another out_dir"
            )
    elif start_from is not None:
        state = _start_state(Path(start_from), out_dir, trajectory, config)
    return state


def _record_validation(
    state: dict,
    step: int,
    cm: np.ndarray,
    model: nn.Module,
    config: Mapping,
    out_dir: Path,
    train_loss: float,
    val_loss: float,
    lr: float,
    t0: float,
    eval_s: float,
) -> float:
    """Score one validation: keep the weights if they are the best so far (``best.pt``) and add its history row.

    Returns the seconds the block took (training, validation and the best checkpoint), for the history and the run's
    ``train_s``.
    """
    s = metrics.scores(cm)
    score = s["miou_macro"]
    improved = bool(np.isfinite(score) and score > state["best_score"])
    if improved:
        state["best_score"], state["best_step"] = float(score), step
        state["best_val_cm"] = torch.from_numpy(cm.copy())
        best = {"format": run_folders.CHECKPOINT_FORMAT, "config": config, "step": step}
        run_folders.save_checkpoint({**best, "model": model.state_dict()}, out_dir / run_folders.BEST)
    dt = time.perf_counter() - t0
    state["history"].append(
        {
            "step": step,
            "lr": lr,
            "lr_drops": state["drops"],
            "cycle": state.get("cycle", 0),
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_miou_macro": float(score),
            "val_f1_macro": float(s["f1_macro"]),
            "val_oa": float(s["oa"]),
            "best": improved,
            "block_s": dt,
            "eval_s": eval_s,
        }
    )
    return dt


def _decide_stop(state: dict, step: int, rule: Mapping) -> bool:
    """After a validation at ``step``: move the plateau mark, drop the rate, restart a cycle or finish the run.

    The plateau is judged on the mean of the last ``smooth`` validations (:func:`plateau_level`): it counts as
    risen only by more than ``min_delta``. After ``patience`` validations without a rise (and at least
    ``min_steps`` steps) the rate drops by ``drop_factor`` with a fresh patience window, up to ``lr_drops``
    times. The next plateau ends a *cycle*. With ``cycles`` > 1 the rate then restarts at its base value (drops
    reset, a fresh patience window: what the convergence check used to do after a run) as long as cycles remain
    and the cycle just ended raised the best validation score by more than ``cycle_gain`` (the first cycle always
    restarts: one more cycle is the evidence that the plateau was one). The run finishes when a cycle gains no
    more than that (``stopped_by = "plateau"``), when the cycles are used up while the last still gained
    (``"cycles"``: a model still improving), or at the cap (``"cap"``).

    Returns:
        True when a new cycle started at this validation (the caller keeps the best weights so far apart).
    """
    smooth = rule["smooth"]
    level = plateau_level([h["val_miou_macro"] for h in state["history"][-smooth:]], smooth)
    if np.isfinite(level) and level > state["plateau_score"] + rule["min_delta"]:
        state["plateau_score"], state["plateau_step"] = level, step
    since = (step - state["plateau_step"]) // rule["eval_every"]
    plateau = rule["patience"] is not None and step >= rule["min_steps"] and since >= rule["patience"]
    if plateau and state["drops"] < rule["lr_drops"]:
        state["drops"] += 1
        state["lr_scale"] *= rule["drop_factor"]
        state["plateau_step"] = step  # a fresh patience window at the lower rate
        plateau = False
    restart, stopped_by = False, "plateau"
    if plateau:
        restart, stopped_by = _cycle_decision(state, rule)
    if restart and step < rule["max_steps"]:
        _restart_cycle(state, step, rule)
        return True
    if plateau or step >= rule["max_steps"]:
        state["finished"] = True
        state["stopped_by"] = stopped_by if plateau and not restart else "cap"
        state["restart_due"] = restart  # a run given a higher cap starts that cycle (:func:`_extend`)
    return False


def _flat_cycles(state: Mapping, rule: Mapping) -> int:
    """At the end of a cycle: how many cycles in a row, this one included, gained less than ``cycle_gain``.

    The first cycle never counts (it always gets a second).
    """
    cycle = int(state.get("cycle", 0))
    start = state.get("cycle_start") or {"best_score": -math.inf}
    gain = state["best_score"] - start["best_score"]
    if cycle == 0 or gain >= rule["cycle_gain"]:
        return 0
    return int(state.get("flat_cycles", 0)) + 1  # runs saved before cycle_patience existed hold no count: 0


def _cycle_decision(state: Mapping, rule: Mapping) -> tuple[bool, str]:
    """At the end of a cycle: whether another is due, and how the run stops if none is (:func:`_decide_stop`).

    Another cycle is due while fewer than ``cycle_patience`` cycles in a row have gained less than ``cycle_gain``
    (and cycles remain). The run stops on its ``"plateau"`` once that many have; with cycles used up before, it
    stops on ``"cycles"`` (not shown to be a plateau).
    """
    if rule.get("cycles", 1) <= 1:
        return False, "plateau"
    flat = _flat_cycles(state, rule)
    shown = flat >= int(rule.get("cycle_patience", 1))
    if not shown and int(state.get("cycle", 0)) + 1 < rule["cycles"]:
        return True, ""
    return False, "plateau" if shown else "cycles"


def _restart_cycle(state: dict, step: int, rule: Mapping) -> None:
    """Start the next cycle at ``step``: the base rate, no drop taken, a fresh patience window."""
    state["flat_cycles"] = _flat_cycles(state, rule)
    state["cycle"] = int(state.get("cycle", 0)) + 1
    state["cycle_start"] = {
        "step": int(step),
        "best_step": int(state["best_step"]),
        "best_score": float(state["best_score"]),
    }
    _reset_schedule(state, step)


def _reset_schedule(state: dict, step: int) -> None:
    """The schedule from its start at ``step``: base rate, no drop taken, a fresh patience window."""
    state.update(lr_scale=1.0, drops=0, plateau_score=-math.inf, plateau_step=int(step))


#: Settings that only cap a run's length: raising them continues a finished run instead of retraining it
#: (:func:`_extend`), as its trajectory up to the old cap is the same. ``cycle_patience`` is one: a rule that asks
#: for more flat cycles in a row follows the same trajectory until the first flat cycle, then goes on.
CAPS = ("max_steps", "cycles", "cycle_patience")


def _extend(state: dict, config: Mapping, rule: Mapping) -> bool:
    """Re-label a run trained under lower caps (:data:`CAPS`) with ``config`` and go on where the caps stopped it.

    A run stopped by the step cap continues (starting the cycle that was due, if one was); a run stopped with its
    cycles used up starts the next cycle if the new ``cycles`` allows it; a run stopped on its plateau is finished
    under any higher cap too (a one-cycle run, given cycles, starts its second), unless a higher
    ``cycle_patience`` asks for more flat cycles in a row than it has. Returns True when a new cycle starts here
    (the caller keeps the best weights it has to beat).
    """
    state["config"] = dict(config)
    if not state["finished"]:
        return False
    stopped_by = state["stopped_by"]
    if stopped_by == "cap":
        restart = bool(state.get("restart_due"))
    else:
        restart = stopped_by in ("cycles", "plateau") and _cycle_decision(state, rule)[0]
    if not (restart or stopped_by == "cap") or state["step"] >= rule["max_steps"]:
        return False  # finished as it was: a plateau is one under any cap, and a cap not raised still caps
    state.update(finished=False, stopped_by="", restart_due=False)
    if restart:
        _restart_cycle(state, int(state["step"]), rule)
    return restart


def _raised_caps(stored: Mapping, current: Mapping) -> bool:
    """Whether ``current`` differs from ``stored`` only by higher caps (:data:`CAPS`), so the run can go on."""
    diff = set(_config_diff(stored, current))
    if not diff or not diff <= {*CAPS, "cycle_gain"}:
        return False
    if (
        "cycle_gain" in diff and "cycles" in stored
    ):  # a one-cycle run has no cycle_gain; others must keep theirs
        return False
    return all(int(current.get(k, 1)) >= int(stored.get(k, 1)) for k in CAPS)


def _checkpoint(state: dict, model: nn.Module, optimizer, out_dir: Path) -> None:
    """Write ``last.pt`` (everything a resume needs, RNG state included) and ``log.csv``, each atomically."""
    state.update(model=model.state_dict(), optimizer=optimizer.state_dict(), torch_rng=torch.get_rng_state())
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    run_folders.save_checkpoint(state, out_dir / run_folders.LAST)
    log = pd.DataFrame(state["history"])
    atomic_write(out_dir / run_folders.LOG, lambda tmp: log.to_csv(tmp, index=False))


def fit(
    model: nn.Module,
    ds,
    *,
    seed: int,
    out_dir: str | os.PathLike,
    max_steps: int,
    eval_every: int = 50,
    patience: int | None = 6,
    min_delta: float = 0.002,
    min_steps: int = 0,
    smooth: int = 1,
    lr_drops: int = 2,
    drop_factor: float = 0.2,
    cycles: int = 1,
    cycle_gain: float = 0.01,
    cycle_patience: int = 1,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    warmup_steps: int = 50,
    crop_size: int = 64,
    class_weights: Sequence[float] | None = None,
    num_threads: int | None = None,
    force: bool = False,
    eval_tile: int | None = None,
    eval_overlap: int | None = None,
    bf16: bool = False,
    channels_last: bool = False,
    cache_mb: float = 2048,
    progress: bool = True,
    start_from: str | os.PathLike | None = None,
    restart_lr: bool = False,
) -> TrainResult:
    """Train ``model`` on ``ds``'s train split until validation ``miou_macro`` reaches a plateau (or a step cap).

    Every ``eval_every`` optimiser steps the model predicts every validation chip; the weights with the best
    validation score so far are kept (``best.pt``). The run stops at the first validation after which the best
    score has not risen by more than ``min_delta`` for ``patience`` validations (``stopped_by = "plateau"``), or at
    ``max_steps`` (``stopped_by = "cap"``: a cap reached is a budget cut, reported as such). The best weights are
    loaded back into the model before :func:`fit` returns. The test split is never looked at here.

    Weight initialisation is the caller's business (seed torch before building the model; :func:`run` does).

    Args:
        model: Maps reflectance ``[B, ds.n_channels, H, W]`` to logits ``[B, ds.num_classes, H, W]``.
        ds: Dataset (``helpers.data.datasets`` API) with ``train`` and ``val`` splits.
        seed: Seeds crops, augmentation, chip order and dropout.
        out_dir: Folder for checkpoints and the log; reused to resume or skip.
        max_steps: Step cap (set well past the measured plateau; see the model family's defaults).
        eval_every: Optimiser steps between validations (the checkpoint and resume granularity too).
        patience: Validations without an improvement of more than ``min_delta`` before stopping (``None``: run
            to ``max_steps``).
        min_delta: Smallest rise of the best validation mIoU that counts as progress for ``patience`` (model
            selection itself keeps any strictly better score).
        min_steps: Never stop on the plateau before this many steps (lets a slow start leave its first plateau).
        smooth: Judge progress on the mean of the last ``smooth`` validations instead of the single latest one
            (model selection still keeps the best single validation). Where validation swings by more than the
            progress threshold from one evaluation to the next (many classes, noisy labels), one lucky swing sets a
            bar that a still-improving model cannot pass within ``patience``: the mean is what rises when the
            model improves. ``1``: the latest validation (and the setting is left out of the run's identity).
        lr_drops: Plateaus answered by lowering the learning rate (times ``drop_factor``) before the next one
            stops the run: the usual reduce-on-plateau recipe. At a constant high rate the validation score of
            these small validation splits swings by several points between evaluations; the lower-rate phases
            settle it, so the selected weights are not a lucky swing.
        drop_factor: Learning-rate multiplier at each drop.
        cycles: Cycles of the schedule at most (:func:`_decide_stop`): after the last drop's plateau the rate
            restarts at its base value while the cycle just ended raised the best validation score by more than
            ``cycle_gain``. A single cycle stopped runs early on the study's small validation splits (a restart
            from the end of the first cycle raised validation by 1-9 points in 14 of 35 first-seed runs,
            2026-12-03); the last cycle of a run is the evidence of its plateau (``cycle_best.pt`` keeps the
            weights it had to beat, :mod:`helpers.runs.convergence`). ``1``: one cycle (left out of the identity).
        cycle_gain: Best-validation gain (mIoU fraction) a cycle must exceed for another to follow.
        cycle_patience: Cycles in a row that must gain less than ``cycle_gain`` before the run stops on its plateau
            (with ``cycles`` > 1). ``1``: the first flat cycle ends the run (left out of the identity). More is for
            models that sit on a low plateau for a whole cycle and then leave it (a random-init transformer: see
            :data:`helpers.runs.galileo_finetuned.FINETUNE_DEFAULTS`).
        batch_size: Crops per optimiser step.
        lr: Learning rate after warm-up (AdamW, constant: see :func:`warmup_factor`).
        weight_decay: AdamW weight decay on weights (not biases/norms).
        warmup_steps: Linear warm-up length in optimiser steps.
        crop_size: Side of the random training crops; also the default validation window.
        class_weights: Optional per-class loss weights (length ``ds.num_classes``).
        num_threads: Torch CPU threads; default all cores this process may use. Part of the run's identity: the
            summation order, and so the third decimal of a score, depends on it.
        force: Discard an existing run in ``out_dir`` and train from scratch.
        eval_tile: Validation window size; default ``crop_size`` (the size the model was trained on); ``0``:
            whole chips in one pass, for models that window their input themselves (Galileo-nano).
        eval_overlap: Validation window overlap; default a quarter of the window.
        bf16: Train the forward pass under bfloat16 autocast (loss and optimiser in float32).
        channels_last: Feed training batches in ``channels_last`` memory format (convolutional models).
        cache_mb: Keep train/val chips in memory when a split needs at most this much.
        progress: Show a tqdm bar over steps (train loss and validation mIoU).
        start_from: A finished run's folder to continue from (its last state, history and best weights) when
            ``out_dir`` holds no run yet; used by :func:`continue_run`. Its settings, apart from the stopping
            rule, must equal this call's.
        restart_lr: With ``start_from``: restart the learning rate at its base value and the plateau rule's drops
            (the convergence check's second cycle of the schedule); a setting of the stopping rule.

    Returns:
        A :class:`TrainResult`; ``model`` holds the best weights and is in eval mode.

    Raises:
        ValueError: Missing train/val split, wrong class weights, bad step settings, or an existing run in
            ``out_dir`` with other settings (pass ``force=True`` or use another folder).
    """
    out_dir = Path(out_dir)
    seed = runner.as_seed(seed)
    _check_fit_args(ds, max_steps, eval_every, batch_size, patience, smooth, class_weights)
    if int(cycle_patience) < 1:
        raise ValueError(f"cycle_patience must be a positive number of cycles, got {cycle_patience}")
    max_steps, eval_every = int(max_steps), int(eval_every)
    eval_tile = crop_size if eval_tile is None else int(eval_tile)
    eval_overlap = eval_tile // 4 if eval_overlap is None else eval_overlap
    if eval_tile == 0:  # whole chips: what chip_probabilities calls tile=None
        eval_tile = eval_overlap = None
    threads = int(num_threads or runtime.machine_threads())

    train_ids = ds.chip_ids("train")  # fewer labels: a label budget's view of ds (helpers.data.labels)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # what changes the trajectory; the stopping rule (cap, patience) only decides where it ends
    trajectory = {
        "dataset": ds.name,
        "model_class": type(model).__name__,
        "n_trainable_params": n_trainable,
        "seed": int(seed),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "weight_decay": float(weight_decay),
        "warmup_steps": int(warmup_steps),
        "eval_every": eval_every,
        "crop_size": int(crop_size),
        "class_weights": None if class_weights is None else [float(w) for w in class_weights],
        "n_train_chips": len(train_ids),
        "eval_tile": 0 if eval_tile is None else eval_tile,
        "eval_overlap": 0 if eval_overlap is None else eval_overlap,
        "num_threads": threads,
        "bf16": bool(bf16),
        "channels_last": bool(channels_last),
    }
    # a label budget (helpers.data.labels) is part of the trajectory; absent at full labels, so those runs keep
    # their identity. Sparse point labels get crops anchored on a labelled pixel (random_crop).
    budget = labels.tag_of(ds)
    anchor = budget.startswith("points-")
    if budget != labels.ALL:
        trajectory["label_budget"] = budget
    if anchor:
        trajectory["label_crops"] = True
    stopping = {
        "max_steps": max_steps,
        "patience": None if patience is None else int(patience),
        "min_delta": float(min_delta),
        "min_steps": int(min_steps),
        "lr_drops": int(lr_drops),
        "drop_factor": float(drop_factor),
    }
    # absent at their defaults, so runs stopped by the single-validation, single-cycle rule keep their identity
    if int(smooth) != 1:
        stopping["smooth"] = int(smooth)
    if int(cycles) != 1:
        stopping.update(cycles=int(cycles), cycle_gain=float(cycle_gain))
        if int(cycle_patience) != 1:
            stopping["cycle_patience"] = int(cycle_patience)
    if restart_lr:  # a continuation from a restarted rate (convergence check); absent otherwise
        stopping["restart_lr"] = True
    config = {**trajectory, **stopping}
    rule = {**stopping, "smooth": int(smooth), "eval_every": eval_every, "cycles": int(cycles)}
    rule.update(cycle_gain=float(cycle_gain), cycle_patience=int(cycle_patience))

    state = _resume_state(out_dir, trajectory, config, force, start_from, rule)
    earlier_train_s = 0.0 if state is None or start_from is not None else float(state["train_s"])

    chips = ChipStore(ds, train_ids, cache_mb)

    def _result(state: Mapping, skipped: bool) -> TrainResult:
        best = run_folders.load_checkpoint(out_dir / run_folders.BEST)
        model.load_state_dict(best["model"])
        model.eval()
        return TrainResult(
            out_dir=out_dir,
            history=pd.DataFrame(state["history"]),
            steps=int(state["step"]),
            best_step=int(state["best_step"]),
            best_score=float(state["best_score"]),
            stopped_by=str(state["stopped_by"]),
            skipped=skipped,
            train_s=float(state["train_s"]),
            eval_s=float(state["eval_s"]),
            n_train_chips=len(train_ids),
            n_train_pixels=int(state["n_train_pixels"]),
            eval_tile=eval_tile,
            eval_overlap=eval_overlap,
            config=config,
            best_val_cm=None if state.get("best_val_cm") is None else state["best_val_cm"].numpy(),
            earlier_train_s=earlier_train_s,
        )

    if state is not None and state["finished"]:
        return _result(state, skipped=True)

    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    # warn_only: on CUDA some ops used here (bilinear upsampling backward) have no deterministic kernel; they
    # warn there instead of failing. On CPU nothing warns.
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        seed_everything(seed)
        device = next(model.parameters()).device
        if channels_last:
            model.to(memory_format=torch.channels_last)
        weight = (
            None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32, device=device)
        )
        optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
        val = ChipStore(ds, ds.chip_ids("val"), cache_mb)

        if state is None:
            state = _new_state(config, chips, ds.ignore_index)
        else:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            if "cuda_rng" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])

        bar = tqdm(
            total=max_steps,
            initial=state["step"],
            desc=f"{ds.name} {config['model_class']} seed {seed}",
            disable=not progress,
            unit="step",
        )
        while not state["finished"]:
            t0 = time.perf_counter()
            step0 = int(state["step"])
            n = min(eval_every, max_steps - step0)
            train_loss = _train_block(
                model,
                optimizer,
                chips,
                block=step0 // eval_every,
                n_steps=n,
                seed=seed,
                batch_size=batch_size,
                crop_size=crop_size,
                ignore_index=ds.ignore_index,
                weight=weight,
                step0=step0,
                warmup_steps=warmup_steps,
                base_lr=lr * state["lr_scale"],
                bf16=bf16,
                channels_last=channels_last,
                anchor=anchor,
            )
            step = step0 + n
            t_eval = time.perf_counter()
            cm, val_loss = inference.score_chips(
                model, val, ds.num_classes, ds.ignore_index, eval_tile, eval_overlap, batch_size
            )
            eval_dt = time.perf_counter() - t_eval
            lr_now = optimizer.param_groups[0]["lr"]
            dt = _record_validation(
                state, step, cm, model, config, out_dir, train_loss, val_loss, lr_now, t0, eval_dt
            )
            state["step"] = step
            state["train_s"] += dt
            state["eval_s"] += eval_dt
            if _decide_stop(state, step, rule):  # a new cycle: keep the best weights it has to beat
                run_folders.save_checkpoint(
                    run_folders.load_checkpoint(out_dir / run_folders.BEST), out_dir / run_folders.CYCLE_BEST
                )
            _checkpoint(state, model, optimizer, out_dir)
            bar.update(n)
            score = state["history"][-1]["val_miou_macro"]
            bar.set_postfix(loss=f"{train_loss:.3f}", val_miou=f"{score:.3f}", best=state["best_step"])
        bar.close()
        if state["best_step"] == 0:
            raise RuntimeError(f"{out_dir}: no validation gave a finite mIoU (empty validation labels?)")
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
        return _result(state, skipped=False)
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)


def _start_state(src: Path, out_dir: Path, trajectory: Mapping, config: Mapping) -> dict:
    """The state a continuation starts from: ``src``'s finished run, re-labelled with the new stopping rule.

    With ``restart_lr`` in ``config`` the rate goes back to its base value and the plateau rule starts afresh (no drop
    taken, a new patience window from this step): a second full cycle of the schedule from where the run ended.
    """
    if not (src / run_folders.LAST).exists() or not (src / run_folders.BEST).exists():
        raise ValueError(
            f"{src}: no finished run to continue from (expected {run_folders.LAST} and {run_folders.BEST})"
        )
    state = run_folders.load_checkpoint(src / run_folders.LAST)
    stored = {k: v for k, v in state["config"].items() if k in trajectory}
    diff = _config_diff(stored, trajectory)
    if diff:
        raise ValueError(f"{src}: cannot continue a run with other settings ({', '.join(diff)})")
    if not state["finished"]:
        raise ValueError(f"{src}: the run is not finished; resume it first")
    if state["step"] >= config["max_steps"]:
        raise ValueError(f"{src}: already at step {state['step']} >= max_steps {config['max_steps']}")
    out_dir.mkdir(parents=True, exist_ok=True)
    best = run_folders.load_checkpoint(src / run_folders.BEST)
    run_folders.save_checkpoint({**best, "config": dict(config)}, out_dir / run_folders.BEST)
    state.update(config=dict(config), finished=False, stopped_by="", continued_from=str(src))
    if config.get("restart_lr"):
        _reset_schedule(state, int(state["step"]))
    return state


def continue_run(
    model: nn.Module,
    ds,
    *,
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    factor: float = 2.0,
    restart_lr: bool = False,
    **fit_kwargs,
) -> TrainResult:
    """Continue a finished run to ``factor`` times its steps: the convergence check.

    Starts from ``src``'s last state (weights, optimiser, RNG, history, best so far) and trains on, validating as
    before; the best weights over the whole trajectory are selected. Two ways:

    * ``restart_lr=False``: at the run's last (decayed) rate, ignoring the plateau. Because crops are seeded per
      validation block, this is the run that ``patience=None, max_steps=factor * steps`` would have been; at 1/25 of
      the base rate it can hardly move, so as a check it passes almost by construction.
    * ``restart_lr=True`` (what :mod:`helpers.runs.convergence` uses): the rate restarts at its base value and the
      run's own plateau rule runs a second full cycle (drops reset), up to ``factor`` times the steps. A model
      stopped while still improving gains under it; one on a plateau does not.

    Args:
        model: A freshly built model of the same architecture (its weights are replaced).
        ds: The dataset ``src`` was trained on.
        src: The finished run's folder.
        out_dir: Folder of the continuation (a separate run folder; ``src`` is left untouched).
        factor: Step multiple to train to.
        restart_lr: Restart the rate and the plateau rule (above) instead of going on at the decayed rate.
        **fit_kwargs: The settings ``src`` was trained with (as passed to :func:`fit`); stopping ones are
            replaced.
    """
    src = Path(src)
    state = run_folders.load_checkpoint(src / run_folders.LAST)
    steps = int(state["step"])
    kw = {"seed": state["config"]["seed"], **fit_kwargs, "max_steps": int(math.ceil(factor * steps))}
    if not restart_lr:
        kw["patience"] = None
    return fit(model, ds, out_dir=out_dir, start_from=src, restart_lr=restart_lr, **kw)


# ---------------------------------------------------------------------------------------------- one results row
@dataclasses.dataclass(kw_only=True)
class RunOutcome(runner.Outcome):
    """What :func:`run` did for one (dataset, model, seed) (``status``, ``rows``: :class:`helpers.runs.runner.Outcome`).

    Attributes:
        out_dir: The run's checkpoint/log folder (its ``log.csv`` feeds the training curves).
        train: The :class:`TrainResult` (``None`` when skipped or not run).
    """

    out_dir: Path
    train: TrainResult | None = None


#: :func:`fit` arguments that never change a run's numbers, left out of its key.
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

    The training settings, the threads per run and the caller's ``key_settings`` (what the model is built from:
    architecture settings, pretraining, the sha256 of a weights file) go in. Runners that do expensive work before
    :func:`run` (loading a checkpoint, pretraining) call this first to skip a finished run early.
    """
    threads = int(fit_kwargs.get("num_threads") or runtime.machine_threads())
    fit = {k: v for k, v in fit_kwargs.items() if k not in _NOT_IN_KEY}
    settings = {"family": family, "pretraining": pretraining, "threads": threads, "fit": fit}
    # the CPU's kernels, bf16 path, torch version and GPU change every deep row's numbers (issue 27): a row
    # computed on another platform class is rerun here, never reused
    settings["platform"] = runner.platform(family)
    return results.run_key(ds, model_name, seed, {**settings, **dict(key_settings or {})})


def trajectory_key(ds, model_name: str, seed: int, **key_kwargs) -> str:
    """:func:`key_for` without the settings that only cap a run's length (:data:`CAPS`).

    Two runs with the same trajectory key follow the same trajectory until the lower caps stop one of them, so a
    finished run's checkpoints serve a rerun with higher caps (:func:`claim_run_dir`, :func:`fit`).
    """
    return key_for(ds, model_name, seed, **{k: v for k, v in key_kwargs.items() if k not in CAPS})


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
    trains with :func:`fit`, reloads the best weights, and scores the validation split and every held-out split
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
        **fit_kwargs: Passed to :func:`fit` (``max_steps`` is required; ``eval_every``, ``patience``, ``lr``, ...).
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
    precision = "bf16 autocast + channels_last" if tr.config.get("bf16") else "float32"
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

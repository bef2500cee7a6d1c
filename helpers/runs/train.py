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
  (:func:`helpers.runs.schedule.warmup_factor`). The run's length is decided by validation, not by a schedule sized to a budget.
* **Data**: a stream of random ``crop_size`` crops (``batch_size`` per step), drawn in whole shuffled passes over
  the training chips, each with a random element of the dihedral group (rot90 x flip): augmentation on train
  only. Chips smaller than the crop are padded with reflectance 0 and label ``ignore_index``. Crops without a
  single valid label are redrawn a few times, as they carry no gradient.
* **Budget and model selection (the plateau protocol)**: every ``eval_every`` steps the model predicts every
  validation chip (:func:`helpers.runs.inference.predict_chip`, sliding windows of the training crop size) and the dataset-level confusion
  matrix gives ``miou_macro``. The best weights so far are kept (``best.pt``). The run stops when the best score
  has not risen by more than ``min_delta`` for ``patience`` validations (``stopped_by = "plateau"``) or at the cap
  ``max_steps`` (``stopped_by = "cap"``, a budget cut that the results rows state). With ``cycles`` > 1 (the
  study's :data:`helpers.runs.schedule.PLATEAU`) the end of a schedule is followed by a restart at the base rate, and the run finishes
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

:func:`fit` takes its settings as the fields of :class:`FitSettings`; :func:`helpers.runs.deep_run.run` wraps it for one
(dataset, model, seed) row of the run matrix. The stream of crops is :mod:`helpers.runs.crops`, the plateau rule
:mod:`helpers.runs.schedule`, the checkpoints :mod:`helpers.runs.run_folders`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from helpers import metrics
from helpers.data import labels
from helpers.runs import crops, inference, run_folders, runner, runtime, schedule
from helpers.runs.runner import seed_everything

# ---------------------------------------------------------------------------------------------- small utilities


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


# ---------------------------------------------------------------------------------------------- training


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
        best_val_cm: Validation confusion matrix of the selected weights; :func:`helpers.runs.deep_run.run` reports it instead of
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


def _train_block(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    chips: crops.ChipStore,
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
    order = crops.crop_order(len(chips), n_steps * batch_size, rng)
    losses = []
    for k in range(n_steps):
        xs, ys = [], []
        for i in order[k * batch_size : (k + 1) * batch_size]:
            a, y = chips[int(i)]
            a, y = crops.augment(*crops.random_crop(a, y, crop_size, rng, ignore_index, anchor=anchor), rng)
            xs.append(a)
            ys.append(y)
        x = torch.from_numpy(np.stack(xs).astype(np.float32, copy=False)).to(device)
        t = torch.from_numpy(np.stack(ys).astype(np.int64)).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for g in optimizer.param_groups:
            g["lr"] = base_lr * schedule.warmup_factor(step0 + k, warmup_steps)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = masked_cross_entropy(logits.float(), t, ignore_index, weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses)) if losses else float("nan")


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """The settings of one deep training run: the keywords of :func:`fit` that are not about where it is written.

    One object instead of 28 loose keywords, so the loop, the run's stored identity and the checks read the same
    names. :meth:`trajectory` is what changes the numbers a run computes (written into every checkpoint and compared
    on resume); :meth:`stopping` only decides where that trajectory ends; :meth:`rule` is what the plateau protocol
    (:func:`helpers.runs.schedule.decide_stop`) reads. A run's ``run_key`` holds the keywords its caller set, as set
    (:func:`helpers.runs.deep_run.key_for`), not every field here: that is how the committed rows were keyed, and writing a default out
    would otherwise re-key them.

    Attributes:
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
        cycles: Cycles of the schedule at most (:func:`helpers.runs.schedule.decide_stop`): after the last drop's
            plateau the rate restarts at its base value while the cycle just ended raised the best validation score
            by more than ``cycle_gain``. A single cycle stopped runs early on the study's small validation splits
            (a restart from the end of the first cycle raised validation by 1-9 points in 14 of 35 first-seed runs,
            2026-12-03); the last cycle of a run is the evidence of its plateau (``cycle_best.pt`` keeps the
            weights it had to beat, :mod:`helpers.runs.convergence`). ``1``: one cycle (left out of the identity).
        cycle_gain: Best-validation gain (mIoU fraction) a cycle must exceed for another to follow.
        loss_delta: A fall of the validation loss (mean of the last ``smooth`` validations) by more than this
            fraction of its lowest level so far also counts as progress for ``patience``
            (:func:`helpers.runs.schedule.loss_fell`): the second signal of runs on sparse point labels, whose
            validation mIoU lags their loss (:data:`helpers.runs.schedule.SPARSE_LABELS`). ``0``: the score alone
            (left out of the identity).
        cycle_patience: Cycles in a row that must gain less than ``cycle_gain`` before the run stops on its plateau
            (with ``cycles`` > 1). ``1``: the first flat cycle ends the run (left out of the identity). More is for
            models that sit on a low plateau for a whole cycle and then leave it (a random-init transformer: see
            :data:`helpers.runs.galileo_finetuned.FINETUNE_DEFAULTS`).
        doubling: Also stop on a plateau only where the second half of the run's steps raised its best validation
            score by less than ``cycle_gain`` (:func:`helpers.runs.schedule.second_half_gain`; with ``cycles`` > 1):
            a stop that is its own twice-the-steps check. ``False``: left out of the identity.
        batch_size: Crops per optimiser step.
        lr: Learning rate after warm-up (AdamW, constant: see :func:`helpers.runs.schedule.warmup_factor`).
        weight_decay: AdamW weight decay on weights (not biases/norms).
        warmup_steps: Linear warm-up length in optimiser steps.
        crop_size: Side of the random training crops; also the default validation window.
        class_weights: Optional per-class loss weights (length ``ds.num_classes``).
        num_threads: Torch CPU threads; default all cores this process may use. Part of the run's identity: the
            summation order, and so the third decimal of a score, depends on it.
        eval_tile: Validation window size; default ``crop_size`` (the size the model was trained on); ``0``:
            whole chips in one pass, for models that window their input themselves (Galileo-nano).
        eval_overlap: Validation window overlap; default a quarter of the window.
        bf16: Train the forward pass under bfloat16 autocast (loss and optimiser in float32).
        channels_last: Feed training batches in ``channels_last`` memory format (convolutional models).
        restart_lr: With ``start_from`` (:func:`fit`): restart the learning rate at its base value and the plateau
            rule's drops (the convergence check's second cycle of the schedule); a setting of the stopping rule.
    """

    max_steps: int
    eval_every: int = 50
    patience: int | None = 6
    min_delta: float = 0.002
    min_steps: int = 0
    smooth: int = 1
    loss_delta: float = 0.0
    lr_drops: int = 2
    drop_factor: float = 0.2
    cycles: int = 1
    cycle_gain: float = 0.01
    cycle_patience: int = 1
    doubling: bool = False
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    crop_size: int = 64
    class_weights: Sequence[float] | None = None
    num_threads: int | None = None
    eval_tile: int | None = None
    eval_overlap: int | None = None
    bf16: bool = False
    channels_last: bool = False
    restart_lr: bool = False

    def check(self, ds) -> None:
        """Refuse settings :func:`fit` cannot train with on ``ds``, naming the setting (before anything is read)."""
        for split in ("train", "val"):
            if split not in ds.splits or not ds.chip_ids(split):
                raise ValueError(f"{ds.name}: fit needs a non-empty {split!r} split; splits are {ds.splits}")
        weights = self.class_weights
        if weights is not None and len(weights) != ds.num_classes:
            raise ValueError(
                f"class_weights has {len(weights)} values but {ds.name} has {ds.num_classes} classes"
            )
        if int(self.max_steps) < 1 or int(self.eval_every) < 1 or self.batch_size < 2:
            raise ValueError(
                f"need max_steps >= 1, eval_every >= 1 and batch_size >= 2 (BatchNorm); got {self.max_steps}, "
                f"{self.eval_every}, {self.batch_size}"
            )
        if self.patience is not None and int(self.patience) < 1:
            raise ValueError(
                f"patience must be a positive number of validations or None, got {self.patience}"
            )
        if int(self.smooth) < 1:
            raise ValueError(f"smooth must be a positive number of validations, got {self.smooth}")
        if not 0.0 <= float(self.loss_delta) < 1.0:
            raise ValueError(f"loss_delta must be a fraction in [0, 1), got {self.loss_delta}")
        if int(self.cycle_patience) < 1:
            raise ValueError(f"cycle_patience must be a positive number of cycles, got {self.cycle_patience}")
        if self.doubling and int(self.cycles) <= 1:
            raise ValueError("doubling is a condition on a run's last cycle: it needs cycles > 1")

    @property
    def window(self) -> tuple[int | None, int | None]:
        """Validation window and overlap (``(None, None)``: whole chips, what ``eval_tile = 0`` asks for)."""
        tile = self.crop_size if self.eval_tile is None else int(self.eval_tile)
        overlap = tile // 4 if self.eval_overlap is None else self.eval_overlap
        return (None, None) if tile == 0 else (tile, overlap)

    @property
    def threads(self) -> int:
        """Torch threads of the run: ``num_threads``, or all cores this process may use."""
        return int(self.num_threads or runtime.machine_threads())

    def trajectory(self, ds, model: nn.Module, seed: int) -> dict:
        """What changes the numbers the run computes (checked on resume; the stopping rule only ends them).

        A label budget (:mod:`helpers.data.labels`) is part of it, absent at full labels so those runs keep their
        identity; sparse point labels get crops anchored on a labelled pixel (:func:`helpers.runs.crops.random_crop`).
        """
        tile, overlap = self.window
        out = {
            "dataset": ds.name,
            "model_class": type(model).__name__,
            "n_trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "seed": int(seed),
            "batch_size": int(self.batch_size),
            "lr": float(self.lr),
            "weight_decay": float(self.weight_decay),
            "warmup_steps": int(self.warmup_steps),
            "eval_every": int(self.eval_every),
            "crop_size": int(self.crop_size),
            "class_weights": None if self.class_weights is None else [float(w) for w in self.class_weights],
            "n_train_chips": len(ds.chip_ids("train")),
            "eval_tile": 0 if tile is None else tile,
            "eval_overlap": 0 if overlap is None else overlap,
            "num_threads": self.threads,
            "bf16": bool(self.bf16),
            "channels_last": bool(self.channels_last),
        }
        budget = labels.tag_of(ds)
        if budget != labels.ALL:
            out["label_budget"] = budget
        if budget.startswith("points-"):
            out["label_crops"] = True
        return out

    def stopping(self) -> dict:
        """The stopping rule as stored with the run.

        Settings at their defaults are left out, so runs stopped by the single-validation, single-cycle rule keep
        their identity.
        """
        out = {
            "max_steps": int(self.max_steps),
            "patience": None if self.patience is None else int(self.patience),
            "min_delta": float(self.min_delta),
            "min_steps": int(self.min_steps),
            "lr_drops": int(self.lr_drops),
            "drop_factor": float(self.drop_factor),
        }
        if int(self.smooth) != 1:
            out["smooth"] = int(self.smooth)
        if float(self.loss_delta):
            out["loss_delta"] = float(self.loss_delta)
        if int(self.cycles) != 1:
            out.update(cycles=int(self.cycles), cycle_gain=float(self.cycle_gain))
            if int(self.cycle_patience) != 1:
                out["cycle_patience"] = int(self.cycle_patience)
            if self.doubling:
                out["doubling"] = True
        if self.restart_lr:  # a continuation from a restarted rate (convergence check); absent otherwise
            out["restart_lr"] = True
        return out

    def rule(self) -> dict:
        """What :func:`helpers.runs.schedule.decide_stop` reads: the stopping rule with every default written out."""
        out = {
            **self.stopping(),
            "smooth": int(self.smooth),
            "loss_delta": float(self.loss_delta),
            "eval_every": int(self.eval_every),
        }
        out.update(
            cycles=int(self.cycles),
            cycle_gain=float(self.cycle_gain),
            cycle_patience=int(self.cycle_patience),
        )  # doubling, where set, is in stopping()
        return out


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


def fit(
    model: nn.Module,
    ds,
    *,
    seed: int,
    out_dir: str | os.PathLike,
    force: bool = False,
    cache_mb: float = 2048,
    progress: bool = True,
    start_from: str | os.PathLike | None = None,
    **settings,
) -> TrainResult:
    """Train ``model`` on ``ds``'s train split until validation ``miou_macro`` reaches a plateau (or a step cap).

    Every ``eval_every`` optimiser steps the model predicts every validation chip; the weights with the best
    validation score so far are kept (``best.pt``). The run stops at the first validation after which the best
    score has not risen by more than ``min_delta`` for ``patience`` validations (``stopped_by = "plateau"``), or at
    ``max_steps`` (``stopped_by = "cap"``: a cap reached is a budget cut, reported as such). The best weights are
    loaded back into the model before :func:`fit` returns. The test split is never looked at here.

    Weight initialisation is the caller's business (seed torch before building the model; :func:`helpers.runs.deep_run.run` does).

    Args:
        model: Maps reflectance ``[B, ds.n_channels, H, W]`` to logits ``[B, ds.num_classes, H, W]``.
        ds: Dataset (``helpers.data.datasets`` API) with ``train`` and ``val`` splits.
        seed: Seeds crops, augmentation, chip order and dropout.
        out_dir: Folder for checkpoints and the log; reused to resume or skip.
        force: Discard an existing run in ``out_dir`` and train from scratch.
        cache_mb: Keep train/val chips in memory when a split needs at most this much.
        progress: Show a tqdm bar over steps (train loss and validation mIoU).
        start_from: A finished run's folder to continue from (its last state, history and best weights) when
            ``out_dir`` holds no run yet; used by :func:`continue_run`. Its settings, apart from the stopping
            rule, must equal this call's.
        **settings: The run's settings, the fields of :class:`FitSettings` (``max_steps`` is required).

    Returns:
        A :class:`TrainResult`; ``model`` holds the best weights and is in eval mode.

    Raises:
        ValueError: Missing train/val split, wrong class weights, bad step settings, or an existing run in
            ``out_dir`` with other settings (pass ``force=True`` or use another folder).
        TypeError: A setting :class:`FitSettings` does not have.
    """
    s = FitSettings(**settings)
    out_dir = Path(out_dir)
    seed = runner.as_seed(seed)
    s.check(ds)
    trajectory = s.trajectory(ds, model, seed)
    config = {**trajectory, **s.stopping()}
    state = run_folders.resume_state(out_dir, trajectory, config, force, start_from, s.rule())
    earlier_train_s = 0.0 if state is None or start_from is not None else float(state["train_s"])
    chips = crops.ChipStore(ds, ds.chip_ids("train"), cache_mb)
    skipped = state is not None and state["finished"]
    if not skipped:
        state = _train(
            model, ds, s, state, chips, config, out_dir, seed=seed, cache_mb=cache_mb, progress=progress
        )
    best = run_folders.load_checkpoint(out_dir / run_folders.BEST)
    model.load_state_dict(best["model"])
    model.eval()
    tile, overlap = s.window
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
        n_train_chips=len(chips),
        n_train_pixels=int(state["n_train_pixels"]),
        eval_tile=tile,
        eval_overlap=overlap,
        config=config,
        best_val_cm=None if state.get("best_val_cm") is None else state["best_val_cm"].numpy(),
        earlier_train_s=earlier_train_s,
    )


def _train(
    model: nn.Module,
    ds,
    s: FitSettings,
    state: dict | None,
    chips: crops.ChipStore,
    config: Mapping,
    out_dir: Path,
    *,
    seed: int,
    cache_mb: float,
    progress: bool,
) -> dict:
    """The loop of :func:`fit`: train a block, validate, checkpoint, ask the plateau rule; returns the final state.

    Runs with ``s.threads`` torch threads and deterministic algorithms, both restored afterwards (on CUDA some ops
    used here, bilinear upsampling backward, have no deterministic kernel: they warn instead of failing; on CPU
    nothing warns).
    """
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(s.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        seed_everything(seed)
        device = next(model.parameters()).device
        if s.channels_last:
            model.to(memory_format=torch.channels_last)
        weight = (
            None
            if s.class_weights is None
            else torch.tensor(s.class_weights, dtype=torch.float32, device=device)
        )
        optimizer = torch.optim.AdamW(param_groups(model, s.weight_decay), lr=s.lr)
        val = crops.ChipStore(ds, ds.chip_ids("val"), cache_mb)
        if state is None:
            state = run_folders.new_state(config, chips, ds.ignore_index)
        else:
            _restore(state, model, optimizer)
        bar = tqdm(
            total=int(s.max_steps),
            initial=state["step"],
            desc=f"{ds.name} {config['model_class']} seed {seed}",
            disable=not progress,
            unit="step",
        )
        while not state["finished"]:
            n, train_loss = _block(model, optimizer, ds, s, state, chips, val, config, out_dir, seed, weight)
            bar.update(n)
            score = state["history"][-1]["val_miou_macro"]
            bar.set_postfix(loss=f"{train_loss:.3f}", val_miou=f"{score:.3f}", best=state["best_step"])
        bar.close()
        if state["best_step"] == 0:
            raise RuntimeError(f"{out_dir}: no validation gave a finite mIoU (empty validation labels?)")
        if s.channels_last:
            model.to(memory_format=torch.contiguous_format)
        return state
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)


def _block(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ds,
    s: FitSettings,
    state: dict,
    chips: crops.ChipStore,
    val: crops.ChipStore,
    config: Mapping,
    out_dir: Path,
    seed: int,
    weight: torch.Tensor | None,
) -> tuple[int, float]:
    """One block of :func:`_train`: its steps, the validation after it, the plateau rule and the checkpoint.

    Returns the steps trained and their mean training loss.
    """
    t0 = time.perf_counter()
    step0, eval_every = int(state["step"]), int(s.eval_every)
    n = min(eval_every, int(s.max_steps) - step0)
    train_loss = _train_block(
        model,
        optimizer,
        chips,
        block=step0 // eval_every,
        n_steps=n,
        seed=seed,
        batch_size=s.batch_size,
        crop_size=s.crop_size,
        ignore_index=ds.ignore_index,
        weight=weight,
        step0=step0,
        warmup_steps=s.warmup_steps,
        base_lr=s.lr * state["lr_scale"],
        bf16=s.bf16,
        channels_last=s.channels_last,
        anchor="label_crops" in config,
    )
    step = step0 + n
    t_eval = time.perf_counter()
    tile, overlap = s.window
    cm, val_loss = inference.score_chips(
        model, val, ds.num_classes, ds.ignore_index, tile, overlap, s.batch_size
    )
    eval_dt = time.perf_counter() - t_eval
    lr_now = optimizer.param_groups[0]["lr"]
    dt = _record_validation(
        state, step, cm, model, config, out_dir, train_loss, val_loss, lr_now, t0, eval_dt
    )
    state["step"] = step
    state["train_s"] += dt
    state["eval_s"] += eval_dt
    if schedule.decide_stop(state, step, s.rule()):  # a new cycle: keep the best weights it has to beat
        run_folders.save_checkpoint(
            run_folders.load_checkpoint(out_dir / run_folders.BEST), out_dir / run_folders.CYCLE_BEST
        )
    run_folders.write_last(state, model, optimizer, out_dir)
    return n, train_loss


def _restore(state: Mapping, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load a resumed run's weights, optimiser and RNG state: it goes on exactly where it stopped."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


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

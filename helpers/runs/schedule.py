"""The plateau protocol: the learning-rate schedule of a deep run and the rule that decides where it stops.

Every deep row of the study trains under this rule (:data:`PLATEAU`): a constant rate after a linear warm-up
(:func:`warmup_factor`), lowered at a validation plateau, restarted at its base value for another cycle while a
cycle still raises the best validation score, and stopped when cycles in a row no longer do (:func:`decide_stop`).
The rule lives apart from the loop (:mod:`helpers.runs.train`) and the checkpoints (:mod:`helpers.runs.run_folders`)
because both use it: the loop after every validation, a resumed run with raised caps (:func:`extend`) before its
first step. Its state is the plain dict stored in ``last.pt``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from helpers.data import labels

#: The plateau protocol shared by every deep row (the stopping settings of :func:`helpers.runs.train.fit`): validate every 50 steps;
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


#: What deep runs on sparse point labels (a ``points-K`` label budget, :mod:`helpers.data.labels`) add to the plateau
#: test: a fall of the validation loss by more than 0.5 % of its mark (mean of the last ``smooth`` validations) counts
#: as progress too (:func:`loss_fell`), so the rate is not lowered while the model still improves on the held-out
#: pixels. Why: with ten labelled pixels per class a model starts near its class prior and its validation mIoU, an
#: argmax score, can stand still long after its loss has started to fall (an MAE run on sim-crop: validation loss 2.62
#: to 2.25 over 1,600 steps while its score crept from 2.5 to 9, then rose to 19), and the score-only rule lowered
#: such runs' rate after 100 steps. A model that memorises its few labelled pixels does not gain from it: its validation
#: loss rises. Rerunning all 42 deep runs at 10 px/class of the default under it (2026-12-05): validation higher in 13
#: of 21 MAE runs (up to +25.8) and lower in 3, higher in 5 of 21 U-Net runs and lower in 4; 33 % and 15 % more
#: steps. Every deep row on point labels gets it (the CNNs too, so the families compared at a budget stop by one
#: rule); full-label runs keep :data:`PLATEAU` and their identity. ``benchmarks/README.md`` ("The plateau protocol").
SPARSE_LABELS: dict = {"loss_delta": 0.005}


def plateau_for(dataset: str, settings: Mapping, label_budget: str = "all") -> dict:
    """``settings`` (:func:`helpers.runs.train.fit` keywords) for ``dataset`` at ``label_budget``.

    :data:`PLATEAU_FOR`'s entry of the dataset applies, and on point labels :data:`SPARSE_LABELS`. Only runs that stop
    on a plateau change (``patience`` set): quick runs and continuations train to a fixed step count, so the plateau
    test does not exist for them and their settings (and keys) stay as given.
    """
    out = dict(settings)
    if out.get("patience") is not None:
        out.update(PLATEAU_FOR.get(dataset, {}))
        if str(label_budget).startswith("points"):
            out.update(SPARSE_LABELS)
    return out


def plateau_level(scores: Sequence[float], smooth: int = 1) -> float:
    """The validation level the plateau test compares: the mean of the last ``smooth`` scores (NaN if one is NaN).

    With ``smooth = 1`` it is the latest score. A larger window answers noisy validation: one lucky evaluation
    moves the mean by a ``smooth``-th of its luck, so the bar a still-improving model must clear is its level, not
    its best swing.
    """
    recent = np.asarray(list(scores)[-int(smooth) :], dtype=float)
    return float(recent.mean()) if recent.size and np.all(np.isfinite(recent)) else float("nan")


def settings_for(
    ds, settings: Mapping, max_epochs: float | None = None, label_budget: str | None = None
) -> dict:
    """``settings`` for ``ds``: its plateau settings and, with ``max_epochs``, an epoch cap.

    The plateau settings come from :func:`plateau_for` at ``label_budget`` (default: the budget ``ds`` is a view of,
    :func:`helpers.data.labels.tag_of`); the cap is that many passes over its training chips (one crop per chip per
    pass; the paper profile caps at ~100 epochs, as the paper's fine-tuning runs did, while the default caps in steps).
    """
    budget = label_budget if label_budget is not None else labels.tag_of(ds)
    out = plateau_for(ds.name, settings, budget)
    if max_epochs is not None:
        out["max_steps"] = epochs_to_steps(len(ds.chip_ids("train")), max_epochs, int(out["batch_size"]))
    return out


def epochs_to_steps(n_train_chips: int, epochs: float, batch_size: int) -> int:
    """Optimiser steps of ``epochs`` passes over ``n_train_chips`` chips at one crop per chip (at least one)."""
    return max(1, math.ceil(epochs * n_train_chips / batch_size))


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Learning-rate multiplier of the plateau protocol at step ``step`` (0-based): linear warm-up, then constant.

    A constant rate (not a schedule that decays over a fixed budget) is what makes the stopping point a property of
    the model and the data rather than of the budget: the run ends when validation stops improving, and a
    continuation past that point (:func:`helpers.runs.train.continue_run`) trains at the same rate, so "twice the steps" asks exactly
    "would more of the same training have helped?".
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    return 1.0


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based): linear warm-up, then cosine to zero."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def decide_stop(state: dict, step: int, rule: Mapping) -> bool:
    """After a validation at ``step``: move the plateau mark, drop the rate, restart a cycle or finish the run.

    The plateau is judged on the mean of the last ``smooth`` validations (:func:`plateau_level`): it counts as
    risen only by more than ``min_delta``; with ``loss_delta`` set, a fall of the validation loss counts as progress
    too (:func:`loss_fell`). After ``patience`` validations without a rise (and at least
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
    rose = bool(np.isfinite(level) and level > state["plateau_score"] + rule["min_delta"])
    if rose:
        state["plateau_score"] = level
    fell = loss_fell(state, rule)  # moves the loss mark whether or not the score rose
    if rose or fell:
        state["plateau_step"] = step
    since = (step - state["plateau_step"]) // rule["eval_every"]
    plateau = rule["patience"] is not None and step >= rule["min_steps"] and since >= rule["patience"]
    if plateau and state["drops"] < rule["lr_drops"]:
        state["drops"] += 1
        state["lr_scale"] *= rule["drop_factor"]
        state["plateau_step"] = step  # a fresh patience window at the lower rate
        plateau = False
    restart, stopped_by = False, "plateau"
    if plateau:
        restart, stopped_by = cycle_decision(state, rule)
    if restart and step < rule["max_steps"]:
        restart_cycle(state, step, rule)
        return True
    if plateau or step >= rule["max_steps"]:
        state["finished"] = True
        state["stopped_by"] = stopped_by if plateau and not restart else "cap"
        state["restart_due"] = restart  # a run given a higher cap starts that cycle (:func:`extend`)
    return False


def loss_fell(state: dict, rule: Mapping) -> bool:
    """Whether the validation loss (mean of the last ``smooth`` validations) fell below its mark by ``loss_delta``.

    The second signal of the plateau test where ``loss_delta`` is set (:data:`SPARSE_LABELS`): a fall moves the mark
    (``plateau_loss``) and, in :func:`decide_stop`, restarts the patience window as a rise of the score does. Off
    (``loss_delta`` 0 or absent) it reads nothing and changes nothing, so runs stopped without it keep their trajectory.
    """
    delta = float(rule.get("loss_delta", 0.0))
    if delta <= 0:
        return False
    smooth = int(rule["smooth"])
    level = plateau_level([h["val_loss"] for h in state["history"][-smooth:]], smooth)
    mark = float(state.get("plateau_loss", math.inf))
    if np.isfinite(level) and level < mark * (1.0 - delta):  # a cross-entropy: positive, so a relative fall
        state["plateau_loss"] = level
        return True
    return False


def flat_cycles(state: Mapping, rule: Mapping) -> int:
    """At the end of a cycle: how many cycles in a row, this one included, gained less than ``cycle_gain``.

    The first cycle never counts (it always gets a second).
    """
    cycle = int(state.get("cycle", 0))
    start = state.get("cycle_start") or {"best_score": -math.inf}
    gain = state["best_score"] - start["best_score"]
    if cycle == 0 or gain >= rule["cycle_gain"]:
        return 0
    return int(state.get("flat_cycles", 0)) + 1  # runs saved before cycle_patience existed hold no count: 0


def second_half_gain(state: Mapping) -> float:
    """How much the second half of a run's steps raised its best validation score (mIoU fraction).

    The run's best score so far (``best_score``, what :func:`flat_cycles` reads too) minus the best of the validations
    at or before half the last validation's step; ``inf`` when no validation lies in the first half (a run too short
    to have one).
    """
    history = state["history"]
    if not history:
        return math.inf
    half = int(history[-1]["step"]) / 2
    first = [h["val_miou_macro"] for h in history if h["step"] <= half and np.isfinite(h["val_miou_macro"])]
    if not first:
        return math.inf
    return float(state["best_score"] - max(first))


def cycle_decision(state: Mapping, rule: Mapping) -> tuple[bool, str]:
    """At the end of a cycle: whether another is due, and how the run stops if none is (:func:`decide_stop`).

    Another cycle is due while fewer than ``cycle_patience`` cycles in a row have gained less than ``cycle_gain``
    (and cycles remain). The run stops on its ``"plateau"`` once that many have; with cycles used up before, it
    stops on ``"cycles"`` (not shown to be a plateau). With ``doubling`` set, the plateau also needs the second half
    of the run's steps to have gained less than ``cycle_gain`` (:func:`second_half_gain`): the run stops only where
    its own last half is the convergence check "twice the steps moved validation by less than a point", so a model
    that sat on a low plateau for many cycles gets as many steps again to leave it (patience that grows with the
    run, where a count of flat cycles is a fixed number of steps).
    """
    if rule.get("cycles", 1) <= 1:
        return False, "plateau"
    flat = flat_cycles(state, rule)
    shown = flat >= int(rule.get("cycle_patience", 1))
    if shown and rule.get("doubling"):
        shown = second_half_gain(state) < rule["cycle_gain"]
    if not shown and int(state.get("cycle", 0)) + 1 < rule["cycles"]:
        return True, ""
    return False, "plateau" if shown else "cycles"


def restart_cycle(state: dict, step: int, rule: Mapping) -> None:
    """Start the next cycle at ``step``: the base rate, no drop taken, a fresh patience window."""
    state["flat_cycles"] = flat_cycles(state, rule)
    state["cycle"] = int(state.get("cycle", 0)) + 1
    state["cycle_start"] = {
        "step": int(step),
        "best_step": int(state["best_step"]),
        "best_score": float(state["best_score"]),
    }
    reset_schedule(state, step)


def reset_schedule(state: dict, step: int) -> None:
    """The schedule from its start at ``step``: base rate, no drop taken, a fresh patience window."""
    state.update(
        lr_scale=1.0, drops=0, plateau_score=-math.inf, plateau_loss=math.inf, plateau_step=int(step)
    )


#: Settings that only cap a run's length: raising them continues a finished run instead of retraining it
#: (:func:`extend`), as its trajectory up to the old cap is the same. ``cycle_patience`` is one: a rule that asks
#: for more flat cycles in a row follows the same trajectory until the first flat cycle, then goes on; ``doubling``
#: too (it only asks more of a stop). Each with the value a run stored without it had.
CAP_DEFAULTS: dict[str, int] = {"max_steps": 1, "cycles": 1, "cycle_patience": 1, "doubling": 0}
CAPS = tuple(CAP_DEFAULTS)


def extend(state: dict, config: Mapping, rule: Mapping) -> bool:
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
        restart = stopped_by in ("cycles", "plateau") and cycle_decision(state, rule)[0]
    if not (restart or stopped_by == "cap") or state["step"] >= rule["max_steps"]:
        return False  # finished as it was: a plateau is one under any cap, and a cap not raised still caps
    state.update(finished=False, stopped_by="", restart_due=False)
    if restart:
        restart_cycle(state, int(state["step"]), rule)
    return restart


def raised_caps(stored: Mapping, current: Mapping) -> bool:
    """Whether ``current`` differs from ``stored`` only by higher caps (:data:`CAPS`), so the run can go on."""
    diff = set(config_diff(stored, current))
    if not diff or not diff <= {*CAPS, "cycle_gain"}:
        return False
    if (
        "cycle_gain" in diff and "cycles" in stored
    ):  # a one-cycle run has no cycle_gain; others must keep theirs
        return False
    return all(int(current.get(k, CAP_DEFAULTS[k])) >= int(stored.get(k, CAP_DEFAULTS[k])) for k in CAPS)


def config_diff(stored: Mapping, current: Mapping) -> list[str]:
    """The settings whose values differ between two run configs (sorted names; a missing key counts as None)."""
    return [k for k in sorted(set(stored) | set(current)) if stored.get(k) != current.get(k)]

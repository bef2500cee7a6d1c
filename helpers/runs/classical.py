"""Pixel-wise classical models: RandomForest and LightGBM on spectra, and on spectra plus texture features.

The paper compares foundation models with RF and XGBoost classifying each pixel from its spectral vector, and
with ``RFaug``/``XGBaug`` that add neighbourhood features. Here:

=============  ==========================================  =====================================
model          estimator                                   features (:mod:`helpers.features`)
=============  ==========================================  =====================================
``rf``         scikit-learn ``RandomForestClassifier``     ``spectral`` (6 per date)
``lgbm``       LightGBM (plays the paper's XGBoost role)   ``spectral``
``rf_aug``     scikit-learn ``RandomForestClassifier``     ``aug`` (spectra + neighbourhood/texture)
``lgbm_aug``   LightGBM                                    ``aug``
=============  ==========================================  =====================================

LightGBM stands in for XGBoost: both are histogram gradient-boosted trees with the same model class; LightGBM is
faster on CPU and already a dependency. The paper gives neither budgets nor hyper-parameters, so ours are
documented here and recorded in each results row's ``note``.

Protocol (STUDY.md §4), one :func:`run_classical` call per ``(dataset, model, seed)``:

1. **Training pixels** are sampled chip by chip from the ``train`` split only (:func:`helpers.runs.pixel_samples.sample_pixels`), stratified
   by class: up to ``per_class_per_chip`` random valid pixels of every class present in a chip, then, if the total
   exceeds ``max_pixels``, a class-balanced cut (every class keeps ``min(its count, q)`` pixels, with the largest
   ``q`` that fits the cap). Rare classes thus keep all the pixels they have, and the cut never depends on chip
   order. The per-chip count is also lowered to ``ceil(max_pixels / n_chips)`` when that is smaller, so at most
   ``num_classes x max_pixels`` rows are ever held before the cut; a chip is read, sampled and dropped, so the
   split is never in memory at once. Ignore pixels are never sampled.
2. **Hyper-parameters** are chosen on the ``val`` split. RandomForest: each candidate of :data:`RF_GRID` (depth
   and leaf size) is fitted on the training sample and the one with the best dataset-level val ``miou_macro``
   over every pixel of every val chip wins (ties go to the earlier candidate). LightGBM: the number of boosting
   rounds is chosen by early stopping on a stratified sample of val pixels (log-loss, ``early_stopping_rounds``
   patience, at most ``max_rounds``); :data:`LGBM_GRID` holds one tree shape, but more candidates would be
   selected like RF's. The val rows of the table are the chosen model's scores, so they are optimistic by
   construction; only test is unbiased.
3. **Test** is predicted once, every pixel of every test chip, chip by chip, and scored with one dataset-level
   confusion matrix (:mod:`helpers.metrics`).

Edge cases, each tested: a chip whose labels are all ignore contributes no training pixels and nothing to any
confusion matrix (it is counted in the note); a class absent from the training sample can never be predicted (a
warning and the note name it; its recall is then 0 and its IoU 0 where it occurs in test); an empty ``train`` or
``test`` split raises ``ValueError`` (there is nothing to fit or report); an empty or all-ignore ``val`` split
skips the search (first grid point, LightGBM for ``default_rounds`` rounds), writes no val rows and says so.

Determinism: samples come from ``numpy`` generators seeded by ``(seed, chip id)``; RF gets ``random_state=seed``;
LightGBM ``seed=seed, deterministic=True, force_row_wise=True`` and a fixed thread count. Same seed and thread
count → identical metrics (tested).

Features of val/test chips are recomputed in every run unless a :class:`FeatureCache` is passed. Computing them
is cheap next to fitting and predicting (``benchmarks/classical.py``: ~0.2 s for the ``aug`` set of a 512 x 512
chip vs seconds to predict it), but a notebook runs four models x several seeds over the same chips, so an
in-memory, byte-capped cache keyed by ``(dataset, root, chip, feature set, FEATURE_SET_VERSION)`` lets them share
reading and feature work. An on-disk cache was measured and not adopted: re-reading a chip's ``aug`` matrix from
the page cache is ~10x faster than recomputing it, but that saves only a few per cent of a run while storing 53 MB
per 512 x 512 chip (gigabytes per dataset).
"""

from __future__ import annotations

import math
import os
import pickle
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from tqdm.auto import tqdm

from helpers import features as _features
from helpers import metrics as _metrics
from helpers import prediction_maps
from helpers import results as _results
from helpers.data import labels as _labels
from helpers.runs import pixel_samples, runner, runtime

#: model name -> (estimator kind, feature set).
MODELS = {
    "rf": ("rf", "spectral"),
    "lgbm": ("lgbm", "spectral"),
    "rf_aug": ("rf", "aug"),
    "lgbm_aug": ("lgbm", "aug"),
}

#: RandomForest candidates (shared settings in :data:`RF_FIXED`): fully grown trees vs. shallower, smoother ones.
RF_GRID = ({"max_depth": None, "min_samples_leaf": 1}, {"max_depth": 16, "min_samples_leaf": 5})
#: 50 trees rather than scikit-learn's 100: fit and predict time scale with the tree count, and the study's CPU
#: budget (STUDY.md §6) has room for 50 (see ``benchmarks/classical.py``).
RF_FIXED = {"n_estimators": 50, "max_features": "sqrt"}

#: LightGBM candidates (shared settings in :data:`LGBM_FIXED`). One tree shape; the searched hyper-parameter is the
#: number of boosting rounds, by early stopping on val pixels. Multi-class boosting grows one tree per class and
#: round, so each extra candidate would cost as much as the whole fit (13 classes for crop).
LGBM_GRID = ({"num_leaves": 31, "min_data_in_leaf": 20},)
#: Shared LightGBM settings. At most 100 rounds (XGBoost's default ``n_estimators``) at learning rate 0.2; early
#: stopping ignores val log-loss improvements below ``min_delta``: on the simulated crop task, running on to 200
#: rounds for log-loss gains of 1e-4 moved test mIoU by < 0.005 but tripled prediction time (13 trees per round).
#: ``feature_fraction`` 0.5 samples half the features per tree, which regularises and halves the histogram work on
#: the wide ``aug`` set (153 features for 3-date crop).
LGBM_FIXED = {
    "learning_rate": 0.2,
    "max_bin": 63,
    "feature_fraction": 0.5,
    "lambda_l2": 1.0,
    "max_rounds": 100,
    "early_stopping_rounds": 15,
    "min_delta": 1e-3,
    "default_rounds": 100,
}


# ---------------------------------------------------------------------------------------------------- models
def lgb_params(num_classes: int, cand: dict, seed: int, n_jobs: int) -> dict:
    """LightGBM parameters of one grid candidate: shared by the classical and the frozen-FM rows' heads.

    Deterministic and row-wise, so a head fitted twice on the same pixels with the same seed is the same model.
    """
    params = {
        "learning_rate": LGBM_FIXED["learning_rate"],
        "max_bin": LGBM_FIXED["max_bin"],
        "feature_fraction": LGBM_FIXED["feature_fraction"],
        "lambda_l2": LGBM_FIXED["lambda_l2"],
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": n_jobs,
        "verbose": -1,
        **cand,
    }
    if num_classes == 2:
        params.update(objective="binary", metric="binary_logloss")
    else:
        params.update(objective="multiclass", num_class=num_classes, metric="multi_logloss")
    return params


class _Model:
    """A fitted candidate behind one interface: ``predict(X) -> labels``, importances, size."""

    def __init__(self, kind: str, est, params: dict, rounds: int | None = None):
        self.kind, self.est, self.params, self.rounds = kind, est, params, rounds

    def predict(self, X: np.ndarray, n_jobs: int) -> np.ndarray:
        if self.kind == "rf":
            return self.est.predict(X).astype(np.int64)
        p = self.est.predict(X, num_iteration=self.rounds, num_threads=n_jobs)
        if p.ndim == 1:
            return (p > 0.5).astype(np.int64)
        return p.argmax(axis=1).astype(np.int64)

    def importances(self) -> tuple[np.ndarray, str]:
        if self.kind == "rf":
            return np.asarray(self.est.feature_importances_, dtype=float), "impurity (mean decrease)"
        return np.asarray(self.est.feature_importance("gain", iteration=self.rounds), float), "gain"

    def size_mb(self) -> float:
        if self.kind == "rf":
            return len(pickle.dumps(self.est, protocol=pickle.HIGHEST_PROTOCOL)) / 1e6
        return len(self.est.model_to_string(num_iteration=self.rounds).encode()) / 1e6

    def describe(self) -> str:
        shown = {k: v for k, v in self.params.items() if k in ("max_depth", "min_samples_leaf", "num_leaves")}
        shown |= {k: v for k, v in self.params.items() if k == "min_data_in_leaf"}
        text = ", ".join(f"{k}={v}" for k, v in shown.items())
        return text + (f", rounds={self.rounds}" if self.rounds is not None else "")


def _fit_candidate(kind, cand, train, val, num_classes, seed, n_jobs) -> _Model:
    if kind == "rf":
        params = {**RF_FIXED, **cand}
        est = RandomForestClassifier(**params, n_jobs=n_jobs, random_state=seed).fit(train.X, train.y)
        return _Model("rf", est, params)
    params = lgb_params(num_classes, cand, seed, n_jobs)
    dtrain = lgb.Dataset(train.X, label=train.y, feature_name=train.feature_names, free_raw_data=True)
    if val is not None and len(val):
        dval = lgb.Dataset(val.X, label=val.y, reference=dtrain)
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=LGBM_FIXED["max_rounds"],
            valid_sets=[dval],
            valid_names=["val"],
            callbacks=[
                lgb.early_stopping(
                    LGBM_FIXED["early_stopping_rounds"], min_delta=LGBM_FIXED["min_delta"], verbose=False
                )
            ],
        )
        rounds = booster.best_iteration or booster.current_iteration()
    else:
        booster = lgb.train(params, dtrain, num_boost_round=LGBM_FIXED["default_rounds"])
        rounds = booster.current_iteration()
    return _Model("lgbm", booster, params, rounds)


# ------------------------------------------------------------------------------------------------------- run
@dataclass(kw_only=True)
class ClassicalRun(runner.Outcome):
    """What one :func:`run_classical` call produced (rows are also written to the results table).

    ``status`` (:class:`helpers.runs.runner.Outcome`) is ``"ok"`` when the rows and maps were written and
    ``"skipped"`` when the table held this run under the same key (the model is refitted either way, for the
    notebook's figures, but nothing is written).

    Attributes:
        model: The chosen fitted estimator (``RandomForestClassifier`` or ``lightgbm.Booster``).
        params: Its hyper-parameters (plus ``rounds`` for LightGBM).
        chosen: The chosen candidate in words (also the first item of the rows' ``note``).
        search: One row per candidate: its parameters, val ``miou_macro`` and fit time.
        feature_names: Feature columns.
        importances: Per-feature importances of the chosen model (LightGBM gain, RF impurity decrease).
        importance_kind: Which importance that is.
        val_scores, test_scores: :func:`helpers.metrics.scores` output (``val_scores`` is None without val).
        test_cm: Dataset-level test confusion matrix.
        predictions: ``{chip_id: (prediction, label)}`` for the first ``n_show`` test chips, full-size maps.
        timings: Seconds spent reading, computing features, fitting, predicting; ``runtime_s`` overall.
        n_train_pixels: Training sample size.
        missing_classes: Classes absent from the training sample.
    """

    model: object
    params: dict
    chosen: str
    search: pd.DataFrame
    feature_names: list[str]
    importances: pd.Series
    importance_kind: str
    val_scores: dict | None
    test_scores: dict
    test_cm: np.ndarray
    predictions: dict
    timings: dict
    n_train_pixels: int
    missing_classes: list[str]


def lgbm_grid(class_counts: np.ndarray, grid: Sequence[dict] = LGBM_GRID) -> tuple[dict, ...]:
    """LightGBM candidates whose leaf size fits the training sample: ``min_data_in_leaf`` at most half the rarest class.

    LightGBM's default of 20 samples per leaf cannot split a sample of 10 pixels per class: every tree is one leaf
    and the head predicts one class everywhere (measured at 20 labelled pixels, issue 26). Capping the leaf size at
    half the rarest present class's labelled pixels lets a tree isolate that class; with 40 or more pixels in every
    class the grid is :data:`LGBM_GRID` unchanged, and so is the run key of every run that had that many.

    Args:
        class_counts: Labelled training pixels per class (:func:`helpers.data.labels.labelled_counts`).
        grid: Candidates to adapt.
    """
    counts = np.asarray(class_counts)
    present = counts[counts > 0]
    cap = max(1, int(present.min()) // 2) if present.size else 1
    return tuple({**c, "min_data_in_leaf": min(int(c["min_data_in_leaf"]), cap)} for c in grid)


def budget_for(budget: pixel_samples.Budget, ds) -> pixel_samples.Budget:
    """The pixel budget of a run on ``ds``: per-chip counts scaled up when a label budget keeps fewer chips.

    With a fraction of the training chips (a ``chips-F`` view, :mod:`helpers.data.labels`), the per-class, per-chip
    count grows by the inverse fraction (the total cap is unchanged), so a small budget is not starved twice: two
    chips give up to the same total as every chip would. A scene (one training "chip" holding every training label)
    samples up to the total cap from it. Unchanged for every other dataset.
    """
    if getattr(ds, "whole_scene", False):
        # one scene is one training "chip" (helpers.data.scene): its per-chip count is the total cap, so a scene's
        # rows sample as many pixels as a chip dataset's, class-balanced by the same cap
        return pixel_samples.Budget(budget.max_pixels, budget.max_pixels)
    n_base = getattr(ds, "n_base_train_chips", None)
    n = len(ds.chip_ids("train"))
    if not _labels.tag_of(ds).startswith("chips-") or not n_base or n >= n_base:
        return budget
    return pixel_samples.Budget(math.ceil(budget.per_class_per_chip * n_base / max(n, 1)), budget.max_pixels)


def key_settings(
    model_name: str,
    budget: pixel_samples.Budget,
    val_budget: pixel_samples.Budget,
    n_jobs: int,
    grid: Sequence[dict] | None = None,
) -> dict:
    """What a classical run's numbers depend on besides data, model name and seed (its ``run_key`` settings).

    ``grid`` is the searched grid as fitted (:func:`lgbm_grid` for LightGBM); default the module's grid.
    """
    kind, feature_set = MODELS[model_name]
    if grid is None:
        grid = RF_GRID if kind == "rf" else LGBM_GRID
    return {
        "feature_set": feature_set,
        "feature_set_version": _features.FEATURE_SET_VERSION,
        "grid": tuple(grid),
        "fixed": RF_FIXED if kind == "rf" else LGBM_FIXED,
        "budget": budget,
        "val_budget": val_budget,
        "n_jobs": int(n_jobs),
    }


def _score_split(ds, split, feature_set, models, cache, timer, n_jobs, keep=(), progress=False):
    """Predict every pixel of every chip of a split with each model; per-chip CMs and kept maps.

    Returns ``(chip_cms, kept, predict seconds, all-ignore chips)``; ``chip_cms`` is ``(models, chips, C, C)`` in
    ``ds.chip_ids(split)`` order (a chip without a valid pixel: zeros), summed over chips the split's matrices.
    """
    k = ds.num_classes
    ids = ds.chip_ids(split)
    chip_cms = np.zeros((len(models), len(ids), k, k), np.int64)
    kept: dict = {}
    predict_s = 0.0
    n_all_ignore = 0
    for j, chip_id in enumerate(tqdm(ids, desc=f"predict {split}", disable=not progress, leave=False)):
        stack, y, _ = pixel_samples.chip_features(ds, chip_id, feature_set, cache, timer)
        valid = y != ds.ignore_index
        if not valid.any():
            n_all_ignore += 1
            if chip_id not in keep:
                continue  # nothing to score; predicting it would change no number
        X = np.ascontiguousarray(stack.reshape(stack.shape[0], -1).T)
        for i, m in enumerate(models):
            t0 = time.perf_counter()
            pred = m.predict(X, n_jobs).reshape(y.shape)
            predict_s += time.perf_counter() - t0
            chip_cms[i, j] = _metrics.confusion_matrix(y, pred, k, ds.ignore_index)
            if chip_id in keep and i == 0:
                kept[chip_id] = (pred, y)
    return chip_cms, kept, predict_s, n_all_ignore


@runner.claimed  # the claim taken below (runner.claim_or_skip) ends with the run
def run_classical(
    ds,
    model_name: str,
    seed: int,
    results_path: str | os.PathLike | None = _results.DEFAULT_PATH,
    *,
    budget: pixel_samples.Budget | dict = pixel_samples.DEFAULT_BUDGET,
    val_budget: pixel_samples.Budget | dict = pixel_samples.DEFAULT_VAL_BUDGET,
    n_jobs: int = 1,
    predict_jobs: int | None = None,
    n_show: int = 3,
    cache: pixel_samples.FeatureCache | None = None,
    progress: bool = True,
    maps_dir: str | os.PathLike | None = None,
    force: bool = False,
    chips_dir: str | os.PathLike | None = runner.BESIDE_TABLE,
) -> ClassicalRun:
    """Fit, select on val, and score the held-out splits with one classical model; append its rows to the table.

    A classical run is refitted even when the table already holds it under the same ``run_key``
    (:func:`helpers.results.run_key`): it costs seconds, and notebook 02 draws its importances and maps from the
    fitted model. Its rows and maps are then not written again (``written`` is False), so an unchanged rerun
    leaves the table and the saved maps as they were; ``force`` writes them anyway.

    Args:
        ds: A dataset from :func:`helpers.data.datasets.open` (needs ``train``, ``val`` and ``test`` splits).
        model_name: One of :data:`MODELS` (``rf``, ``lgbm``, ``rf_aug``, ``lgbm_aug``).
        seed: Seeds sampling and the estimators.
        results_path: The results CSV (rows of the same (dataset, model, seed) are replaced); ``None`` writes
            nothing.
        budget: Training-pixel budget (a :class:`Budget` or a dict of its fields).
        val_budget: Budget of val pixels used for LightGBM early stopping.
        n_jobs: Threads for RF and LightGBM, fixed so results are reproducible. The default is 1: LightGBM's
            OpenMP threads slow down several-fold when the cores are shared with other work (measured on the
            study's 2-core machine); raise it on a machine with free cores.
        predict_jobs: LightGBM prediction threads (``None``: every core this process may use). LightGBM predicts
            each pixel in one thread, so the thread count cannot change a prediction (tested); on the study's
            2-core machine two threads halve the prediction time when nothing else runs. RF keeps ``n_jobs``:
            its threads add tree votes in whatever order they finish.
        n_show: Keep full prediction maps of the first ``n_show`` test chips (for figures).
        cache: Optional :class:`FeatureCache` shared across runs.
        progress: Show tqdm bars.
        maps_dir: Also save the test maps of :func:`helpers.prediction_maps.chip_ids` there (for the
            cross-family figures of notebook 05; ``None``: save none).
        force: Write the rows and maps even when the table holds this run under the same key.
        chips_dir: Save the per-chip counts of every held-out split here (:func:`helpers.results.read_chip_counts`;
            default ``chips/`` beside ``results_path``; ``None``: none). An unchanged rerun writes them too where
            they are missing and its rows equal the table's (:func:`helpers.runs.runner.save_missing_chips`).

    Returns:
        A :class:`ClassicalRun`.

    Raises:
        ValueError: Unknown model; empty ``train`` split or no valid training pixel; empty ``test`` split.
    """
    if model_name not in MODELS:
        raise ValueError(f"unknown classical model {model_name!r}; expected one of {list(MODELS)}")
    budget = pixel_samples.Budget(**budget) if isinstance(budget, dict) else budget
    val_budget = pixel_samples.Budget(**val_budget) if isinstance(val_budget, dict) else val_budget
    kind, feature_set = MODELS[model_name]
    _check_splits(ds)
    predict_jobs = runtime.machine_threads() if predict_jobs is None else int(predict_jobs)
    budget = budget_for(budget, ds)
    grid = RF_GRID if kind == "rf" else lgbm_grid(_labels.labelled_counts(ds))
    key = ""  # without a table, every run is new
    if results_path is not None:
        key = _results.run_key(
            ds, model_name, seed, key_settings(model_name, budget, val_budget, n_jobs, grid)
        )
    write = runner.claim_or_skip(ds, model_name, seed, results_path, key, force=force)
    runner.seed_everything(seed)
    t_start = time.perf_counter()
    timer = pixel_samples.Timer()
    notes = [f"budget {budget.per_class_per_chip}/class/chip, cap {budget.max_pixels}"]

    train, missing = _training_sample(
        ds, model_name, feature_set, seed, budget, cache, progress, timer, notes
    )
    chosen, val_scores, search, fit_s = _fit_and_select(
        ds,
        kind,
        feature_set,
        train,
        seed,
        val_budget,
        n_jobs,
        predict_jobs,
        cache,
        timer,
        progress,
        notes,
        grid,
    )
    notes.insert(0, chosen.describe())
    to_save = prediction_maps.chips_to_save(ds, "test", maps_dir)
    show = tuple(dict.fromkeys([*ds.chip_ids("test")[:n_show], *to_save]))
    scores, cms, chips, kept, predict_s = _score_held_out(
        ds, feature_set, chosen, cache, timer, predict_jobs, show, progress, notes
    )
    scores["val"] = val_scores
    runtime_s = time.perf_counter() - t_start

    ctx = runner.context(
        ds,
        model_name,
        seed,
        family="classical",
        n_train_pixels=len(train),
        n_features=len(train.feature_names),
        fit_s=round(fit_s, 3),
        predict_s=round(predict_s, 3),
        runtime_s=round(runtime_s, 3),
        feature_s=round(timer.feature_s, 3),
        model_size_mb=round(chosen.size_mb(), 4),
        note="; ".join(notes),
        run_key=key,
    )
    maps = {c: kept[c][0] for c in to_save if c in kept}
    rows = _rows(ds, model_name, seed, scores, ctx, write, results_path, maps_dir, maps, chips_dir, chips)
    timings = {"read_s": timer.read_s, "feature_s": timer.feature_s, "fit_s": fit_s, "predict_s": predict_s}
    return _outcome(
        ds, write, rows, key, chosen, search, train, scores, cms, kept, n_show, timings, runtime_s, missing
    )


def _rows(
    ds, model_name, seed, scores, ctx, write, results_path, maps_dir, maps, chips_dir, chips
) -> list[dict]:
    """Step 3: the run's rows, written to the table unless it holds them under the same key.

    An unchanged run's rows are the table's own, built and not written again (nor its maps); rows from before
    per-chip counts existed get theirs from this refit if it reproduces them.
    """
    rows = runner.finish(
        ds,
        model_name,
        seed,
        scores,
        ctx,
        results_path=results_path if write else None,
        maps_dir=maps_dir if write else None,
        maps=maps,
        chips_dir=chips_dir if write else None,
        chips=chips,
    )
    if not write:
        runner.save_missing_chips(
            ds, model_name, seed, rows, chips, results_path=results_path, chips_dir=chips_dir
        )
    return rows


def _outcome(
    ds, write, rows, key, chosen, search, train, scores, cms, kept, n_show, timings, runtime_s, missing
) -> ClassicalRun:
    """Step 4: what :func:`run_classical` returns (the fitted model, its search and importances for notebook 02)."""
    imp, imp_kind = chosen.importances()
    return ClassicalRun(
        status="ok" if write else "skipped",
        rows=rows,
        run_key=key,
        model=chosen.est,
        params={**chosen.params, "rounds": chosen.rounds},
        chosen=chosen.describe(),
        search=pd.DataFrame(search),
        feature_names=train.feature_names,
        importances=pd.Series(imp, index=train.feature_names, name=imp_kind),
        importance_kind=imp_kind,
        val_scores=scores["val"],
        test_scores=scores["test"],
        test_cm=cms["test"],
        predictions={c: kept[c] for c in ds.chip_ids("test")[:n_show] if c in kept},
        timings={**timings, "runtime_s": runtime_s},
        n_train_pixels=len(train),
        missing_classes=missing,
    )


def _check_splits(ds) -> None:
    """Refuse a dataset without training or test chips, naming the split (before anything is read)."""
    for split in ("train", "test"):
        if split not in ds.splits or not ds.chip_ids(split):
            raise ValueError(
                f"{ds.name}: the {split!r} split has no chips; nothing to {'fit' if split == 'train' else 'score'}"
            )


def _training_sample(ds, model_name, feature_set, seed, budget, cache, progress, timer, notes):
    """Step 1: the class-balanced training sample, and the classes it lacks (warned and noted)."""
    train = pixel_samples.sample_pixels(
        ds, "train", feature_set, seed=seed, budget=budget, cache=cache, progress=progress, timer=timer
    )
    if len(train) == 0:
        raise ValueError(f"{ds.name}: the train split has no valid (non-ignore) pixel; nothing to fit")
    if train.n_all_ignore:
        notes.append(f"{train.n_all_ignore} all-ignore train chip(s) skipped")
    present = np.bincount(train.y, minlength=ds.num_classes) > 0
    missing = [c for c, p in zip(ds.classes, present, strict=True) if not p]
    if missing:
        warnings.warn(
            f"{ds.name}/{model_name}: classes absent from the training sample, never predicted: {missing}",
            stacklevel=3,
        )
        notes.append(f"classes absent from training: {', '.join(missing)}")
    return train, missing


def _fit_and_select(
    ds, kind, feature_set, train, seed, val_budget, n_jobs, predict_jobs, cache, timer, progress, notes, grid
):
    """Step 2: fit every grid candidate and choose on validation (``miou_macro``; ties to the earlier one).

    Returns ``(chosen, val_scores or None, search rows, fit seconds)``.
    """
    has_val = "val" in ds.splits and bool(ds.chip_ids("val"))
    val = None
    if has_val and kind == "lgbm":
        val = pixel_samples.sample_pixels(
            ds, "val", feature_set, seed=seed, budget=val_budget, cache=cache, progress=progress, timer=timer
        )
    if not has_val:
        grid = grid[:1]

    fit_s = 0.0
    candidates = []
    for cand in grid:
        t0 = time.perf_counter()
        candidates.append(_fit_candidate(kind, cand, train, val, ds.num_classes, seed, n_jobs))
        candidates[-1].fit_s = time.perf_counter() - t0
        fit_s += candidates[-1].fit_s

    if not has_val:
        notes.append("no val split: no selection, first grid point")
        search = [{"candidate": 0, **candidates[0].params, "rounds": candidates[0].rounds, "fit_s": fit_s}]
        return candidates[0], None, search, fit_s
    chip_cms, _, _, _ = _score_split(
        ds, "val", feature_set, candidates, cache, timer, predict_jobs, progress=progress
    )
    scored = [_metrics.scores(cm) for cm in chip_cms.sum(axis=1)]
    mious = [s["miou_macro"] for s in scored]
    search = [
        {"candidate": i, **c.params, "rounds": c.rounds, "val_miou_macro": m, "fit_s": c.fit_s}
        for i, (c, m) in enumerate(zip(candidates, mious, strict=True))
    ]
    if all(np.isnan(m) for m in mious):
        notes.append("val split has no valid pixel: no selection, first grid point")
        return candidates[0], None, search, fit_s
    best = int(np.nanargmax(mious))  # first maximum: ties go to the earlier candidate
    return candidates[best], scored[best], search, fit_s


def _score_held_out(ds, feature_set, chosen, cache, timer, predict_jobs, show, progress, notes):
    """Step 3: predict every held-out split once with the chosen model (``test``, and e.g. ``bolivia``).

    Returns ``({split: scores}, {split: confusion matrix}, {split: per-chip counts}, kept test maps,
    predict seconds)``.
    """
    scores, cms, chips, kept, predict_s = {}, {}, {}, {}, 0.0
    for split in runner.held_out_splits(ds):
        (chip_cms,), split_kept, split_s, n_ign = _score_split(
            ds,
            split,
            feature_set,
            [chosen],
            cache,
            timer,
            predict_jobs,
            keep=show if split == "test" else (),
            progress=progress,
        )
        if split == "test":
            kept = split_kept
            if n_ign:
                notes.append(f"{n_ign} all-ignore test chip(s)")
        predict_s += split_s
        cm = chip_cms.sum(axis=0)
        cms[split], scores[split] = cm, _metrics.scores(cm)
        chips[split] = _results.chip_counts(ds.chip_ids(split), chip_cms)
    return scores, cms, chips, kept, predict_s


def model_names() -> Sequence[str]:
    """The four classical model rows, in table order."""
    return list(MODELS)

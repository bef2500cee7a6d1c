"""Frozen published foundation models (Galileo-nano, Presto) with a head: one function per notebook row.

==============================  ===============  =====================================================
row                             encoder          head
==============================  ===============  =====================================================
``galileo_nano_frozen_lgbm``    Galileo-nano     LightGBM on frozen per-pixel embeddings
``galileo_nano_frozen_linear``  Galileo-nano     linear probe on frozen per-pixel embeddings
``presto_frozen_lgbm``          Presto           LightGBM on frozen per-pixel embeddings
``presto_frozen_linear``        Presto           linear probe on frozen per-pixel embeddings
==============================  ===============  =====================================================

The same Galileo-nano weights fine-tuned end to end (and from random init) are :mod:`helpers.runs.galileo_finetuned`.

The frozen rows follow the classical rows' protocol (:mod:`helpers.runs.classical`) so that ``lgbm`` vs.
``*_frozen_lgbm`` differs only in the features:

1. **Training pixels**: the same stratified per-chip sample as :func:`helpers.runs.pixel_samples.sample_pixels` (same
   seeding by ``(seed, split, chip id)``, same per-class-per-chip count and class-balanced cap), so for one seed
   both rows train on the very same pixels. Galileo embeds whole training chips (it needs the spatial context);
   Presto embeds only the sampled pixels, which is exact for a per-pixel model.
2. **Selection on val**: each head candidate (LightGBM: :data:`helpers.runs.classical.LGBM_GRID`, early-stopped on
   sampled val pixels; linear: :data:`helpers.runs.fm_heads.LINEAR_GRID`) is scored on every valid pixel of every val
   chip, and the best dataset-level ``miou_macro`` wins (ties: the earlier candidate).
3. **Held-out splits** (``test``, and ``bolivia`` where present) are predicted once, every pixel of every chip.

Every row carries ``family="fm"``, ``pretraining="published"``, ``weights=<sha256 of the file>`` and a note
with the pretraining data, the adapter choices (:mod:`helpers.runs.fm_adapters`) and the head. Without the weights
(offline, no local copy) or with a wrong file, one ``not_run`` row says why and the notebook goes on.

Embeddings are cached on disk (:class:`helpers.runs.embeddings.EmbeddingCache`) under ``cache_dir``, so the seeds and
heads of a dataset encode each chip once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from helpers import metrics as _metrics
from helpers import prediction_maps
from helpers import results as _results
from helpers.data.datasets import MissingBands, with_bands
from helpers.data.labels import labelled_counts
from helpers.models import weights as _weights
from helpers.runs import classical as _classical
from helpers.runs import embeddings as _embeddings
from helpers.runs import fm_adapters as _fm_adapters
from helpers.runs import fm_heads as _fm_heads
from helpers.runs import pixel_samples as _pixel_samples
from helpers.runs import runner, runtime

#: row -> (embedding model, head).
ROWS = {
    "galileo_nano_frozen_lgbm": ("galileo_nano", "lgbm"),
    "galileo_nano_frozen_linear": ("galileo_nano", "linear"),
    "presto_frozen_lgbm": ("presto", "lgbm"),
    "presto_frozen_linear": ("presto", "linear"),
}

#: What each model was pretrained on (for the results note; from the papers and the published configs).
PRETRAINING = {
    "galileo_nano": (
        "Galileo-nano published weights (Tseng et al. 2025): self-supervised on 127,155 global samples of "
        "Sentinel-1, Sentinel-2 L1C, ERA5, TerraClimate, VIIRS, SRTM, Dynamic World, WorldCereal, LandScan"
    ),
    "presto": (
        "Presto published weights (Tseng et al. 2023): masked autoencoding of global monthly pixel time series of "
        "Sentinel-1, Sentinel-2 L1C, ERA5, SRTM, Dynamic World"
    ),
}
ENCODER_PARAMS = {"galileo_nano": 1_037_856, "presto": 404_160}


@dataclass(kw_only=True)
class FMRun(runner.Outcome):
    """What a frozen row did (``status``, ``rows``, ``reason``: :class:`helpers.runs.runner.Outcome`).

    Attributes:
        head: The chosen head.
        search: Per head candidate: its settings and val ``miou_macro``.
        scores: ``{split: helpers.metrics.scores(...)}``.
        cms: ``{split: confusion matrix}``.
        timings: Seconds embedding (cache misses only), fitting, predicting, overall.
        cache_stats: Embedding cache hits, misses, writes.
        n_train_pixels: Training sample size.
    """

    head: object = None
    search: list[dict] = field(default_factory=list)
    scores: dict = field(default_factory=dict)
    cms: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    cache_stats: dict = field(default_factory=dict)
    n_train_pixels: int = 0


def init_columns(model: str, pretrained: bool) -> dict:
    """The ``pretraining`` and ``weights`` columns of a row that starts from ``model``'s published weights or not."""
    if pretrained:
        return {"pretraining": "published", "weights": _weights.SPECS[model].sha256}
    return {"pretraining": "none", "weights": "random-init"}


def not_run_rows(
    ds, row: str, seed: int, reason: str, results_path, *, pretrained: bool = True
) -> list[dict]:
    """The ``not_run`` row of a row of this module (weights or bands missing), written."""
    model = ROWS.get(row, ("galileo_nano", ""))[0]
    return runner.not_run(
        ds,
        row,
        seed,
        reason,
        results_path,
        family="fm",
        **init_columns(model, pretrained),
    )


# --------------------------------------------------------------------------------------------------- sampling
def sample_indices(ds, split: str, chip_id: str, y: np.ndarray, seed: int, n_per: int) -> np.ndarray:
    """Flat pixel indices of one chip's training sample: up to ``n_per`` random valid pixels of each class.

    The same generator and ranking as :func:`helpers.runs.pixel_samples.sample_pixels`, so both pick the same pixels.
    """
    flat = np.asarray(y).ravel()
    valid = np.flatnonzero(flat != ds.ignore_index)
    if valid.size == 0:
        return valid
    rng = np.random.default_rng(
        [seed, _pixel_samples.stable_hash(split), _pixel_samples.stable_hash(chip_id)]
    )
    order, rank = _pixel_samples.rank_within_group(flat[valid], rng.random(valid.size))
    return np.sort(valid[order[rank < n_per]])


@dataclass
class _Sample:
    X: np.ndarray
    y: np.ndarray
    n_all_ignore: int = 0


def _sample_split(ds, split, embedder, cache, seed, budget, timer, progress) -> _Sample:
    """Embeddings and labels of a split's sampled pixels (classical budget and class-balanced cap)."""
    from tqdm.auto import tqdm

    chip_ids = ds.chip_ids(split)
    n_per = min(budget.per_class_per_chip, max(1, -(-budget.max_pixels // max(len(chip_ids), 1))))
    xs, ys = [], []
    n_all_ignore = 0
    for chip_id in tqdm(chip_ids, desc=f"{embedder.name} {split}", disable=not progress, leave=False):
        a, y = ds.read_arrays(chip_id)
        idx = sample_indices(ds, split, chip_id, y, seed, n_per)
        if idx.size == 0:
            n_all_ignore += 1
            continue
        t0 = time.perf_counter()
        misses = cache.misses if cache is not None else None
        if isinstance(embedder, _embeddings.PrestoEmbedder):
            rows = _embeddings.embed_pixels(embedder, ds, chip_id, idx, cache, arrays=(a, y))
        else:
            emb, _, _ = _embeddings.embed_chip(embedder, ds, chip_id, cache)
            rows = emb.reshape(emb.shape[0], -1)[:, idx].T
        if cache is None or cache.misses != misses:
            timer["embed_s"] += time.perf_counter() - t0
        xs.append(rows)
        ys.append(np.asarray(y).ravel()[idx])
    if not ys:
        return _Sample(np.zeros((0, _embeddings.EMBED_DIM), np.float32), np.zeros(0, np.int64), n_all_ignore)
    X, y = np.concatenate(xs), np.concatenate(ys).astype(np.int64)
    keep = _pixel_samples.balanced_cap(
        y, budget.max_pixels, np.random.default_rng([seed, _pixel_samples.stable_hash(split), 1])
    )
    return _Sample(np.ascontiguousarray(X[keep], dtype=np.float32), y[keep], n_all_ignore)


def _score_split(
    ds, split, embedder, cache, heads, timer, n_jobs, progress, keep=(), kept=None
) -> np.ndarray:
    """Per-chip confusion matrices ``(heads, chips, C, C)`` of each head over every valid pixel of a split.

    Chips in ``ds.chip_ids(split)`` order (a chip without a valid pixel: zeros); summed over chips, the split's
    matrix of each head. The first head's full maps of the chips in ``keep`` go into the dict ``kept`` (figures).
    """
    from tqdm.auto import tqdm

    k = ds.num_classes
    ids = ds.chip_ids(split)
    chip_cms = np.zeros((len(heads), len(ids), k, k), np.int64)
    for j, chip_id in enumerate(
        tqdm(ids, desc=f"{embedder.name} {split}", disable=not progress, leave=False)
    ):
        t0 = time.perf_counter()
        misses = cache.misses if cache is not None else None
        emb, y, _ = _embeddings.embed_chip(embedder, ds, chip_id, cache)
        if cache is None or cache.misses != misses:
            timer["embed_s"] += time.perf_counter() - t0
        valid = y != ds.ignore_index
        keep_map = kept is not None and chip_id in keep
        if not valid.any() and not keep_map:
            continue
        flat = emb.reshape(emb.shape[0], -1).T
        X = np.ascontiguousarray(flat if keep_map else flat[valid.ravel()])  # a kept chip: every pixel
        for i, head in enumerate(heads):
            t0 = time.perf_counter()
            pred = head.predict(X, n_jobs)
            timer["predict_s"] += time.perf_counter() - t0
            if keep_map:
                if i == 0:
                    kept[chip_id] = pred.reshape(y.shape)
                pred = pred[valid.ravel()]
            chip_cms[i, j] = _metrics.confusion_matrix(y[valid], pred, k, None)
    return chip_cms


def _fit_and_select(
    ds, head_kind, train, es, embedder, cache, seed, n_jobs, predict_jobs, timer, progress, notes, grid
):
    """Fit every head candidate on the training embeddings and choose on validation (``miou_macro``).

    Returns ``(chosen head, search rows, {"val": scores} or {}, {"val": confusion matrix} or {})``.
    """
    has_val = "val" in ds.splits and bool(ds.chip_ids("val"))
    if not has_val:
        grid = grid[:1]
        notes.append("no val split: no selection, first candidate")
    heads = []
    for cand in grid:
        t0 = time.perf_counter()
        if head_kind == "lgbm":
            head = _fm_heads.fit_lgbm(
                train.X,
                train.y,
                ds.num_classes,
                candidate=cand,
                seed=seed,
                X_es=None if es is None else es.X,
                y_es=None if es is None else es.y,
                n_jobs=n_jobs,
            )
        else:
            head = _fm_heads.fit_linear(train.X, train.y, ds.num_classes, seed=seed, **cand)
        timer["fit_s"] += time.perf_counter() - t0
        heads.append(head)
    if not has_val:
        return heads[0], [], {}, {}
    val_cms = _score_split(ds, "val", embedder, cache, heads, timer, predict_jobs, progress).sum(axis=1)
    val_scores = [_metrics.scores(cm) for cm in val_cms]
    mious = [s["miou_macro"] for s in val_scores]
    search = [
        {"candidate": i, **c, "val_miou_macro": m} for i, (c, m) in enumerate(zip(grid, mious, strict=True))
    ]
    if all(np.isnan(m) for m in mious):
        notes.append("val split has no valid pixel: no selection, first candidate")
        return heads[0], search, {}, {}
    best = int(np.nanargmax(mious))
    return heads[best], search, {"val": val_scores[best]}, {"val": val_cms[best]}


# ------------------------------------------------------------------------------------------------------ frozen
@runner.claimed  # the claim taken below (runner.claim_or_skip) ends with the run
def run_frozen(
    ds,
    row: str,
    seed: int,
    results_path: str | os.PathLike | None = _results.DEFAULT_PATH,
    *,
    cache_dir: str | os.PathLike | None = None,
    budget: _pixel_samples.Budget | dict = _pixel_samples.DEFAULT_BUDGET,
    val_budget: _pixel_samples.Budget | dict = _pixel_samples.DEFAULT_VAL_BUDGET,
    embedder: _embeddings.Embedder | None = None,
    weights_path: str | os.PathLike | None = None,
    settings: dict | None = None,
    n_jobs: int = 1,
    predict_jobs: int | None = None,
    force: bool = False,
    progress: bool = True,
    maps_dir: str | os.PathLike | None = None,
    chips_dir: str | os.PathLike | None = runner.BESIDE_TABLE,
) -> FMRun:
    """Run one frozen-embedding row end to end and write its results rows.

    Args:
        ds: A dataset (``helpers.data.datasets`` API) with ``train`` and ``test`` splits (``val`` for selection).
        row: A key of :data:`ROWS`.
        seed: Seeds pixel sampling and the head.
        results_path: Results CSV (``None``: write nothing).
        cache_dir: Folder of the embedding cache (``None``: no disk cache; every chip is encoded each run).
        budget: Training-pixel budget (as the classical rows).
        val_budget: Val pixels for LightGBM early stopping.
        embedder: A loaded embedder to reuse across rows (its model must match ``row``).
        weights_path: Explicit weights file (else :func:`helpers.models.weights.resolve_weights` finds one).
        settings: Embedder settings (Galileo: ``patch_size``, ``window``, ``ndvi``; Presto: ``ndvi``).
        n_jobs: LightGBM training threads.
        predict_jobs: LightGBM prediction threads (``None``: every core this process may use; per-pixel
            predictions do not depend on it, see :func:`helpers.runs.classical.run_classical`).
        force: Rerun even if the results table has this (dataset, row, seed).
        progress: Show tqdm bars.
        maps_dir: Save the test maps of :func:`helpers.prediction_maps.chip_ids` there (``None``: none).
        chips_dir: Save the per-chip counts of every held-out split here (:func:`helpers.results.read_chip_counts`;
            default ``chips/`` beside ``results_path``; ``None``: none).

    Raises:
        ValueError: Unknown row, an embedder for the other model, empty train/test split or no valid training
            pixel.
    """
    if row not in ROWS:
        raise ValueError(f"unknown row {row!r}; expected one of {sorted(ROWS)}")
    model_name, head_kind = ROWS[row]
    try:  # the adapters feed the encoders the six HLS bands, picked by name
        ds = with_bands(ds)
    except MissingBands as err:
        return FMRun(
            status="not_run", rows=not_run_rows(ds, row, seed, str(err), results_path), reason=str(err)
        )
    budget = _pixel_samples.Budget(**budget) if isinstance(budget, dict) else budget
    budget = _classical.budget_for(budget, ds)  # as the classical rows: same pixels at every label budget
    val_budget = _pixel_samples.Budget(**val_budget) if isinstance(val_budget, dict) else val_budget
    grid = _classical.lgbm_grid(labelled_counts(ds)) if head_kind == "lgbm" else _fm_heads.LINEAR_GRID
    key_settings = _key_settings(model_name, head_kind, grid, settings, budget, val_budget, n_jobs)
    key = _results.run_key(ds, row, seed, key_settings)
    if not runner.claim_or_skip(ds, row, seed, results_path, key, force=force):
        return FMRun(status="skipped", run_key=key)
    for split in ("train", "test"):
        if split not in ds.splits or not ds.chip_ids(split):
            raise ValueError(f"{ds.name}: the {split!r} split has no chips")
    t_start = time.perf_counter()
    if embedder is None:
        try:
            embedder = _embeddings.load_embedder(model_name, weights_path, **(settings or {}))
        except _weights.WeightsError as err:
            return FMRun(
                status="not_run", rows=not_run_rows(ds, row, seed, str(err), results_path), reason=str(err)
            )
    elif embedder.name != model_name:
        raise ValueError(f"row {row!r} needs a {model_name} embedder, got {embedder.name}")
    predict_jobs = runtime.machine_threads() if predict_jobs is None else int(predict_jobs)
    runner.seed_everything(seed)
    peak_reset = runtime.reset_peak_memory()
    cache = _embeddings.EmbeddingCache(cache_dir) if cache_dir is not None else None
    timer = {"embed_s": 0.0, "fit_s": 0.0, "predict_s": 0.0}
    notes = [f"budget {budget.per_class_per_chip}/class/chip, cap {budget.max_pixels}"]

    train, es = _samples(ds, head_kind, embedder, cache, seed, budget, val_budget, timer, progress, notes)

    head, search, scores, cms = _fit_and_select(
        ds, head_kind, train, es, embedder, cache, seed, n_jobs, predict_jobs, timer, progress, notes, grid
    )
    maps, chips = _score_held_out(
        ds, embedder, cache, head, timer, predict_jobs, progress, maps_dir, scores, cms
    )

    cache_stats = {"hits": cache.hits, "misses": cache.misses, "writes": cache.writes} if cache else {}
    notes = _run_notes(ds, head, notes, embedder, model_name, cache, peak_reset)
    runtime_s = time.perf_counter() - t_start
    ctx = _context(ds, row, seed, model_name, embedder, train, head, timer, runtime_s, notes, key)
    rows = runner.finish(
        ds,
        row,
        seed,
        scores,
        ctx,
        results_path=results_path,
        maps_dir=maps_dir,
        maps=maps,
        chips_dir=chips_dir,
        chips=chips,
    )
    return FMRun(
        status="ok",
        rows=rows,
        run_key=key,
        head=head,
        search=search,
        scores=scores,
        cms=cms,
        timings={**timer, "runtime_s": ctx["runtime_s"]},
        cache_stats=cache_stats,
        n_train_pixels=len(train.y),
    )


def _samples(ds, head_kind, embedder, cache, seed, budget, val_budget, timer, progress, notes) -> tuple:
    """The embedded training sample and, for a LightGBM head, the validation sample for its early stopping.

    Classes absent from the training sample are noted. Returns ``(train, es)`` (``es`` is ``None`` without one).
    """
    train = _sample_split(ds, "train", embedder, cache, seed, budget, timer, progress)
    if len(train.y) == 0:
        raise ValueError(f"{ds.name}: the train split has no valid (non-ignore) pixel; nothing to fit")
    missing = [
        c for c, n in zip(ds.classes, np.bincount(train.y, minlength=ds.num_classes), strict=True) if n == 0
    ]
    if missing:
        notes.append(f"classes absent from training: {', '.join(missing)}")
    has_val = "val" in ds.splits and bool(ds.chip_ids("val"))
    es = None
    if has_val and head_kind == "lgbm":
        es = _sample_split(ds, "val", embedder, cache, seed, val_budget, timer, progress)
    return train, es


def _context(ds, row, seed, model_name, embedder, train, head, timer, runtime_s, notes, key) -> dict:
    """The row context of a frozen-encoder run (:func:`helpers.runs.runner.context`): sizes, times, its note."""
    head_mb = head.size_mb()
    return runner.context(
        ds,
        row,
        seed,
        family="fm",
        pretraining="published",
        weights=embedder.weights_sha256,
        n_train_pixels=len(train.y),
        n_features=_embeddings.EMBED_DIM,
        n_params=ENCODER_PARAMS[model_name] + (head.n_params() if hasattr(head, "n_params") else 0),
        fit_s=round(timer["fit_s"], 3),
        predict_s=round(timer["predict_s"], 3),
        runtime_s=round(runtime_s, 3),
        embed_s=round(timer["embed_s"], 3),
        peak_mem_mb=round(runtime.peak_memory_mb(), 1),
        model_size_mb=round(ENCODER_PARAMS[model_name] * 4 / 1e6 + head_mb, 4),
        note="; ".join(notes),
        run_key=key,
    )


def _score_held_out(ds, embedder, cache, head, timer, predict_jobs, progress, maps_dir, scores, cms) -> tuple:
    """Every held-out split predicted once by the chosen head, filling ``scores`` and ``cms``.

    Returns:
        ``(maps, chips)``: the test maps kept for the figures and each split's per-chip counts.
    """
    maps: dict = {}
    chips: dict = {}
    for split in runner.held_out_splits(ds):
        keep = prediction_maps.chips_to_save(ds, split, maps_dir)
        (chip_cms,) = _score_split(
            ds, split, embedder, cache, [head], timer, predict_jobs, progress, keep, maps
        )
        cm = chip_cms.sum(axis=0)
        cms[split], scores[split] = cm, _metrics.scores(cm)
        chips[split] = _results.chip_counts(ds.chip_ids(split), chip_cms)
    return maps, chips


def _key_settings(model_name, head_kind, grid, settings, budget, val_budget, n_jobs) -> dict:
    """What a frozen row's run key hashes beyond its dataset, row and seed."""
    key_settings = {
        "weights_sha256": _weights.SPECS[model_name].sha256,  # a loaded file is checked against it
        "embedder": settings or {},
        "adapter": _fm_adapters.ADAPTER_VERSION,
        "budget": budget,
        "val_budget": val_budget,
        "n_jobs": n_jobs,
        # the embeddings are torch outputs: another CPU kernel family, torch or GPU gives other numbers (issue 27)
        "platform": runner.platform("fm"),
    }
    if (
        head_kind == "lgbm" and grid != _classical.LGBM_GRID
    ):  # absent where unchanged: those keys stay as they were
        key_settings["grid"] = grid
    return key_settings


def _run_notes(ds, head, notes, embedder, model_name, cache, peak_reset) -> list[str]:
    """The row's note: the head, the sampling notes, the embedder and adapter, the pretraining, the cache."""
    chip_ctx = _fm_adapters.chip_context(ds, ds.chip_ids("train")[0])
    out = [
        head.describe(),
        *notes,
        f"{embedder.name}: {embedder.describe()}",
        "adapter v"
        + _fm_adapters.ADAPTER_VERSION
        + " (first train chip): "
        + _fm_adapters.describe(chip_ctx, getattr(embedder, "ndvi", "masked")),
        PRETRAINING[model_name],
    ]
    if cache is not None:
        out.append(f"embedding cache: {cache.hits} hits, {cache.misses} misses")
    if not peak_reset:
        out.append("peak_mem_mb is the process peak so far (per-run reset unavailable)")
    return out


def run_galileo_nano_frozen_lgbm(ds, seed: int, results_path=_results.DEFAULT_PATH, **kwargs) -> FMRun:
    """Row ``galileo_nano_frozen_lgbm`` (see :func:`run_frozen` for the arguments)."""
    return run_frozen(ds, "galileo_nano_frozen_lgbm", seed, results_path, **kwargs)


def run_galileo_nano_frozen_linear(ds, seed: int, results_path=_results.DEFAULT_PATH, **kwargs) -> FMRun:
    """Row ``galileo_nano_frozen_linear`` (see :func:`run_frozen`)."""
    return run_frozen(ds, "galileo_nano_frozen_linear", seed, results_path, **kwargs)


def run_presto_frozen_lgbm(ds, seed: int, results_path=_results.DEFAULT_PATH, **kwargs) -> FMRun:
    """Row ``presto_frozen_lgbm`` (see :func:`run_frozen`)."""
    return run_frozen(ds, "presto_frozen_lgbm", seed, results_path, **kwargs)


def run_presto_frozen_linear(ds, seed: int, results_path=_results.DEFAULT_PATH, **kwargs) -> FMRun:
    """Row ``presto_frozen_linear`` (see :func:`run_frozen`)."""
    return run_frozen(ds, "presto_frozen_linear", seed, results_path, **kwargs)


def run_frozen_rows(ds, rows: Sequence[str], seeds: Sequence[int], results_path, **kwargs) -> list[tuple]:
    """Every frozen row of ``rows`` for every seed of one dataset, one after another: one engine job.

    Why one job: the rows of one encoder read the same embedding cache; run as separate jobs at once, two workers
    would encode the same chips side by side. Returns ``(row, seed, status)`` per run (the rows are in the table).

    Args:
        ds: Dataset.
        rows: Keys of :data:`ROWS`.
        seeds: Run seeds.
        results_path: Results CSV.
        **kwargs: Passed to :func:`run_frozen` (``cache_dir``, ``force``, ``maps_dir``, ...).
    """
    return [
        (row, seed, run_frozen(ds, row, seed, results_path, **kwargs).status)
        for seed in seeds
        for row in rows
    ]


def run_frozen_plan(ds, plan: Sequence, results_path, **kwargs) -> list[tuple]:
    """Frozen rows of one dataset at their label budgets, one after another: one engine job.

    Each entry of ``plan`` has ``model`` (a key of :data:`ROWS`), ``seed`` and ``label_budget``
    (:class:`helpers.runs.matrix.RunSpec`); the budget's view is drawn once per (budget, seed) and every row at it
    trains on the same labelled pixels. One job for the same reason as :func:`run_frozen_rows`: one embedding
    cache, encoded once for every budget. Returns ``(row, seed, budget, status)`` per run.
    """
    from helpers.data import labels

    views: dict = {}
    out = []
    for spec in plan:
        vkey = (spec.label_budget, spec.seed)
        if vkey not in views:
            views[vkey] = labels.label_view(ds, spec.label_budget, spec.seed)
        status = run_frozen(views[vkey], spec.model, spec.seed, results_path, **kwargs).status
        out.append((spec.model, spec.seed, spec.label_budget, status))
    return out


def row_names() -> list[str]:
    """All rows this module can write, in table order."""
    return list(ROWS)


__all__ = [
    "FMRun",
    "ROWS",
    "row_names",
    "run_frozen",
    "run_frozen_plan",
    "run_frozen_rows",
    "run_galileo_nano_frozen_lgbm",
    "run_galileo_nano_frozen_linear",
    "run_presto_frozen_lgbm",
    "run_presto_frozen_linear",
    "sample_indices",
]

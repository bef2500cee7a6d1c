"""What every family's run shares, written once.

Its identity and skip rule, its ``not_run`` row, its seeding, the columns of its rows, the scoring of its splits
into rows, its saved maps and its write to the results table.

A family (:mod:`helpers.runs.classical`, :mod:`helpers.runs.train` for every deep row,
:mod:`helpers.runs.fm_frozen` for the frozen published encoders) only fits and predicts; this module owns
what a reader must be able to trust about every row whatever the family:

* **Identity** (:func:`identity`, :func:`finished`): a run is named by (dataset, model, seed, label budget), one
  :class:`helpers.results.RunId` built from the dataset object alone (a label view, :mod:`helpers.data.labels`,
  names its budget), which gives its rows' naming columns, its run folder and its map file for every family. It is
  skipped only when the table holds it finished (``ok``) under the same ``run_key``
  (:func:`helpers.results.run_key`: data, model, seed, settings, threads, weights, package version, and for
  torch-based families the arithmetic platform, :func:`platform`).
* **One trainer per run** (:func:`claim_or_skip`, :func:`claimed`): before it trains, a run is claimed
  (:mod:`helpers.runs.claims`, a file beside the table), so a second chain or cluster client waits for a run in
  progress and then skips it instead of training it again.
* **Per-chip counts** (:func:`finish`): every run's held-out splits' ``tp``/``fp``/``fn`` per chip and class, saved
  beside the table (``chips/<dataset>/<model>/[<budget>/]seed<k>.npz``, :func:`helpers.results.read_chip_counts`)
  under the run's key, so a bootstrap over test chips rescores exactly the rows in the table.
* **Cannot run** (:func:`not_run`): one row with ``status = not_run`` and the reason; it never replaces a finished
  row (:func:`helpers.results.write_run`).
* **Rows** (:func:`context`, :func:`finish`): the same columns for every family (``simulated`` decided in one
  place, :func:`helpers.results.is_simulated`), validation first and then every held-out split (``test``, and
  Sen1Floods11's ``bolivia``), written in one atomic step together with the run's saved test maps.
* **Outcome** (:class:`Outcome`): ``ok``, ``skipped`` or ``not_run``, with the rows and the key; each family's
  outcome adds its own details (fitted model, training history).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
import random
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np

from helpers import prediction_maps, results
from helpers.data import labels
from helpers.runs import claims, runtime

STATUSES = ("ok", "skipped", "not_run")

P = ParamSpec("P")
R = TypeVar("R")


class _Beside(enum.Enum):
    TABLE = "beside the results table"


#: Default ``chips_dir`` of every family's run: ``chips/`` beside its results table
#: (:func:`helpers.results.chips_dir_beside`; no table: none), so every run that writes rows also writes the
#: per-chip counts a bootstrap over test chips needs, without each caller naming the folder.
BESIDE_TABLE = _Beside.TABLE


def chips_dir_for(
    chips_dir: str | os.PathLike | None | _Beside, results_path: str | os.PathLike | None
) -> Path | None:
    """The folder a run's per-chip counts go to: ``chips_dir``, or beside the table for :data:`BESIDE_TABLE`."""
    if chips_dir is BESIDE_TABLE:
        return results.chips_dir_beside(results_path)
    return None if chips_dir is None else Path(chips_dir)


def platform(family: str) -> str:
    """The arithmetic platform a run of ``family`` declares (:func:`helpers.runs.runtime.platform_class`).

    Torch-based families (``cnn``, ``fm``) are described as torch sees the machine, and put it in their run key;
    a classical row's numbers were measured bit-identical across platforms, so it records the CPU without torch
    (not loading it) and leaves it out of its key.
    """
    return runtime.platform_class(torch_kernels=family != "classical")


@dataclasses.dataclass(kw_only=True)
class Outcome:
    """What one run did.

    Attributes:
        status: ``"ok"`` (ran; its rows are in the table unless no table was given), ``"skipped"`` (the table already
            held it finished under the same key: nothing was written) or ``"not_run"`` (it cannot run here;
            ``reason`` says why and ``rows`` is its one ``not_run`` row).
        rows: The rows it wrote (empty when skipped).
        run_key: Its :func:`helpers.results.run_key` (empty when it never got that far or without a table).
        reason: Why it did not run.
    """

    status: str
    rows: list[dict] = dataclasses.field(default_factory=list)
    run_key: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown run status {self.status!r}; expected one of {STATUSES}")

    @property
    def skipped(self) -> bool:
        """True when the run was already in the table under the same key (nothing was written)."""
        return self.status == "skipped"

    @property
    def written(self) -> bool:
        """True when this call wrote rows (a new or changed run, or its ``not_run`` row)."""
        return self.status != "skipped"


def as_seed(seed) -> int:
    """``seed`` as an ``int``; ``True``, ``1.0`` or ``"1"`` raise ``TypeError`` (they would name another run)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, got {seed!r} ({type(seed).__name__})")
    return int(seed)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's global and (when loaded) torch's RNGs: the study's one seeding function.

    Families draw their own samples from seeded ``numpy`` generators; the global states are for third-party code
    that still uses them (weight initialisation, dropout, scikit-learn defaults). torch is seeded when something
    has imported it: a run that builds a torch model imports torch first, and a classical run needs no torch.

    Raises:
        TypeError: ``seed`` is not an integer (``True`` or ``1.0`` would silently seed another run).
    """
    seed = as_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - for third-party code that still uses the global RNG
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def held_out_splits(ds) -> list[str]:
    """The splits a run is scored on besides validation, in the dataset's order (``test``, then e.g. ``bolivia``)."""
    return [s for s in ds.splits if s not in ("train", "val") and ds.chip_ids(s)]


def identity(ds, model: str, seed: int) -> results.RunId:
    """The one name of a run, for every family: dataset, model, seed and the dataset object's label budget.

    Its :meth:`~helpers.results.RunId.columns` name the rows, :meth:`~helpers.results.RunId.run_dir` the
    checkpoints and :meth:`~helpers.results.RunId.map_path` the saved maps; adding an axis to the study is a field
    here plus the dataset view that applies it.
    """
    return results.RunId(str(ds.name), str(model), as_seed(seed), labels.tag_of(ds))


def context(
    ds, model: str, seed: int, *, family: str, pretraining: str = "none", weights: str = "none", **columns
) -> dict:
    """The columns every row of one run shares.

    Who ran (dataset, model, family, seed, label budget, weights; ``simulated`` from
    :func:`helpers.results.is_simulated`), the training labels it saw (``n_labelled_px``, ``n_train_chips``), the
    arithmetic platform it ran on (``platform``: :func:`platform`), the data draw it ran on (``data_fingerprint``:
    the content hash of the dataset under any label budget, so the report can tell replicates that vary the data
    from seeds on fixed data), a scene's split protocol (``protocol``), then ``columns`` (sizes, timings, note, ``run_key``), in that order.
    """
    rid = identity(ds, model, seed)
    return {
        "task": ds.task,
        "dataset": rid.dataset,
        "simulated": results.is_simulated(ds),
        "model": rid.model,
        "family": family,
        "pretraining": pretraining,
        "weights": weights,
        "seed": rid.seed,
        "label_budget": rid.label_budget,
        # what training labels the run saw (a dataset object that cannot be read, e.g. a test stand-in: blank)
        "n_labelled_px": int(labels.labelled_counts(ds).sum()) if hasattr(ds, "read_arrays") else None,
        "n_train_chips": len(ds.chip_ids("train")) if "train" in ds.splits else None,
        "platform": platform(family),
        "data_fingerprint": _data_fingerprint(ds),
        **_protocol(ds),
        **columns,
    }


def _protocol(ds) -> dict:
    """A scene's split protocol as a column (``protocol``: split kind, block, guard, input; helpers.data.scene).

    Chip datasets have none, so the study's table gains the column only once a scene runs.
    """
    protocol = getattr(ds, "protocol", None)
    return {"protocol": protocol} if isinstance(protocol, str) else {}


def _data_fingerprint(ds) -> str:
    """The content hash of the data a run saw, label budget aside (blank for a stand-in that cannot be hashed)."""
    from helpers.data import datasets

    try:
        return datasets.fingerprint(labels.unlabelled(ds))
    except (AttributeError, TypeError):
        return ""


def finished(ds, model: str, seed: int, results_path: str | os.PathLike | None, key: str | None) -> bool:
    """Whether ``results_path`` holds this run finished under ``key`` (no table: never).

    ``key=None`` asks for any finished run of (dataset, model, seed, budget): used only where no key can be formed,
    e.g. a run whose input file is missing, to keep its ``not_run`` row from being written over and over.
    """
    if results_path is None:
        return False
    rid = identity(ds, model, seed)
    return results.has_run(
        rid.dataset, rid.model, rid.seed, results_path, key=key, label_budget=rid.label_budget
    )


def claimed(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a family's run function: the claim it takes (:func:`claim_or_skip`) ends when it returns or raises.

    A run function claims its run in the middle of its body (once its key is known) and must hold it until its rows
    are written; a decorator releases it at the function's end, including on an exception or ``KeyboardInterrupt``,
    without re-indenting each family's body into a ``with`` block.
    """

    @functools.wraps(func)
    def run_claimed(*args: P.args, **kwargs: P.kwargs) -> R:
        with claims.scope():
            return func(*args, **kwargs)

    return run_claimed


def claim_or_skip(
    ds, model: str, seed: int, results_path: str | os.PathLike | None, key: str, *, force: bool = False
) -> bool:
    """Whether to run this run now: ``False`` when it is finished in the table (skip it), else ``True``, claimed.

    The skip rule (:func:`finished`) alone lets two chains on one table (or two cluster clients) both train a run
    neither has finished yet. So a run that is not finished is claimed first (:func:`helpers.runs.claims.hold`, a
    file beside the table): while another live process holds it this waits, then reads the table again and skips
    the run that process finished, or runs it (resuming its checkpoints) when that process died without finishing.
    A finished run is skipped without a claim, and a lone chain never waits, so nothing changes when nobody else
    runs. Call it only inside a function decorated with :func:`claimed`, which releases the claim.

    Args:
        ds: The dataset (the run's identity, :func:`identity`).
        model: The run's model name.
        seed: The run's seed.
        results_path: The results table (``None``: no table, nothing to share: always run, no claim).
        key: The run key.
        force: Run (claimed) even when the table holds it finished.

    Raises:
        helpers.runs.claims.ClaimError: Called outside a :func:`claimed` function.
    """
    if results_path is None or not key:
        return force or not finished(ds, model, seed, results_path, key)
    if not force and finished(ds, model, seed, results_path, key):
        return False
    rid = identity(ds, model, seed)
    budget = "" if rid.label_budget == labels.ALL else f" ({rid.label_budget} labels)"
    claims.hold(results_path, key, what=f"{rid.model} seed {rid.seed} on {rid.dataset}{budget}")
    return force or not finished(ds, model, seed, results_path, key)  # finished while this process waited?


def not_run(
    ds,
    model: str,
    seed: int,
    reason: str,
    results_path: str | os.PathLike | None,
    *,
    family: str,
    pretraining: str = "none",
    weights: str = "none",
) -> list[dict]:
    """Write (and return) the one row saying that this run cannot run here, and why.

    It never replaces a finished row of the same (dataset, model, seed) (:func:`helpers.results.write_run`).
    """
    rid = identity(ds, model, seed)
    ctx = {
        "task": ds.task,
        **rid.columns(),
        "simulated": results.is_simulated(ds),
        "family": family,
        "pretraining": pretraining,
        "weights": weights,
        **_protocol(ds),
    }
    rows = [results.not_run_row(reason, ctx)]
    if results_path is not None:
        results.write_run(rows, results_path)
    return rows


def finish(
    ds,
    model: str,
    seed: int,
    scores: Mapping[str, Mapping],
    ctx: Mapping,
    *,
    results_path: str | os.PathLike | None,
    maps_dir: str | os.PathLike | None = None,
    maps: Mapping | None = None,
    splits: Sequence[str] | None = None,
    chips_dir: str | os.PathLike | None | _Beside = BESIDE_TABLE,
    chips: Mapping[str, Mapping] | None = None,
) -> list[dict]:
    """Turn a finished run's scores into rows, save its maps and chip counts and write them: the last step of every run.

    The per-chip counts are written before the rows: a crash between the two leaves a run that is not in the table
    (rerun, overwriting the counts), never rows without their counts.

    Args:
        ds: The dataset (its class names label the per-class rows).
        model: The run's model name (where its maps go).
        seed: The run's seed.
        scores: ``{split: helpers.metrics.scores(...)}``; a split without scores (no validation) has no rows.
        ctx: The rows' shared columns (:func:`context`); its ``run_key`` is stored with the chip counts.
        results_path: Results CSV (``None``: write no rows; the maps are still saved).
        maps_dir: Folder of saved prediction maps (:mod:`helpers.prediction_maps`; ``None``: none).
        maps: ``{chip_id: prediction}`` to save.
        splits: Row order (default: ``val``, then :func:`held_out_splits`).
        chips_dir: Folder of per-chip counts (:func:`helpers.results.save_chip_counts`): default beside
            ``results_path`` (:data:`BESIDE_TABLE`; no table, no counts); ``None``: none.
        chips: ``{split: helpers.results.chip_counts(...)}`` of the held-out splits scored; their sums must be the
            splits' scored confusion matrices.

    Returns:
        The rows, validation first.
    """
    order = list(splits) if splits is not None else ["val", *held_out_splits(ds)]
    rows: list[dict] = []
    for split in order:
        if split in scores and scores[split] is not None:
            rows += results.score_rows(scores[split], split=split, class_names=ds.classes, context=ctx)
    rid = identity(ds, model, seed)
    prediction_maps.save(
        maps_dir, rid.dataset, rid.model, rid.seed, dict(maps or {}), label_budget=rid.label_budget
    )
    results.save_chip_counts(
        chips_dir_for(chips_dir, results_path),
        rid,
        str(ctx.get("run_key", "")),
        units_as_chips(ds, dict(chips or {}), dict(maps or {})),
    )
    if results_path is not None:
        results.write_run(rows, results_path)
    return rows


def units_as_chips(ds, chips: Mapping[str, Mapping], maps: Mapping[str, np.ndarray]) -> dict[str, Mapping]:
    """A split scored as one chip (a scene) re-counted unit by unit (its blocks), from the run's saved prediction.

    The crossed bootstrap of the findings resamples test chips; a scene's test split is one chip, so its blocks
    stand in for chips (``<chip>/b<block>``), counted from the prediction map the run keeps
    (:func:`helpers.prediction_maps.chips_to_save`) and the split's labels. Used only where the dataset has
    units (:meth:`helpers.data.scene.SceneDataset.score_units`) and the per-unit counts sum to the chip's own;
    otherwise the chip's counts are kept as they are.
    """
    units_of = getattr(ds, "score_units", None)
    if units_of is None:
        return dict(chips)
    out = dict(chips)
    for split, counts in chips.items():
        ids = [str(c) for c in counts["chip_ids"]]
        if len(ids) != 1 or ids[0] not in maps:
            continue
        units = units_of(ids[0])
        if units is None:
            continue
        truth = ds.split_labels(ids[0])
        pred = np.asarray(maps[ids[0]])
        n_classes = len(ds.classes)
        scored = (truth >= 0) & (truth < n_classes)
        if pred.shape != truth.shape or ((pred[scored] < 0) | (pred[scored] >= n_classes)).any():
            continue
        u, inverse = np.unique(units[scored], return_inverse=True)
        flat = (inverse * n_classes + truth[scored]) * n_classes + pred[scored].astype(np.int64)
        cms = np.bincount(flat, minlength=u.size * n_classes * n_classes).reshape(
            u.size, n_classes, n_classes
        )
        per_unit = results.chip_counts([f"{ids[0]}/b{int(b)}" for b in u], cms)
        if all(
            np.array_equal(per_unit[k].sum(axis=0), np.asarray(counts[k]).sum(axis=0))
            for k in ("tp", "fp", "fn")
        ):
            out[split] = per_unit
    return out


def save_missing_chips(
    ds,
    model: str,
    seed: int,
    rows: Sequence[Mapping],
    chips: Mapping[str, Mapping],
    *,
    results_path: str | os.PathLike | None,
    chips_dir: str | os.PathLike | None | _Beside = BESIDE_TABLE,
) -> Path | None:
    """Save the chip counts of an unchanged rerun when the run has none yet and its rows are the table's own.

    A family that refits a run it does not rewrite (classical: seconds) can so give rows written before per-chip
    counts existed their counts. They are written only when every recomputed row value equals the table's (same
    ``run_key``, split, metric, class): counts that did not produce the table's numbers are never saved beside them.

    Returns:
        The file written, or None (no folder, counts already there, or rows that differ from the table).
    """
    folder = chips_dir_for(chips_dir, results_path)
    key = str(rows[0].get("run_key", "")) if rows else ""
    if folder is None or results_path is None or not chips or not key:
        return None
    rid = identity(ds, model, seed)
    with warnings.catch_warnings():  # a stale file is what this replaces: no need to say so
        warnings.simplefilter("ignore")
        found = results.read_chip_counts(
            rid.dataset, rid.model, rid.seed, rid.label_budget, chips_dir=folder, run_key=key
        )
        if found is not None:
            return None
    table = results.read(results_path)
    mine = table[
        (table["dataset"].astype(str) == rid.dataset)
        & (table["model"].astype(str) == rid.model)
        & (table["seed"].astype(str) == str(rid.seed))
        & (table["label_budget"].astype(str) == rid.label_budget)
        & (table["run_key"].astype(str) == key)
        & (table["status"] == "ok")
    ]
    stored = {
        (s, m, c): v
        for s, m, c, v in zip(mine["split"], mine["metric"], mine["class"], mine["value"], strict=True)
    }
    computed = {(r["split"], r["metric"], r["class"]): r["value"] for r in rows}
    if set(stored) != set(computed) or not all(
        np.isclose(stored[k], computed[k], rtol=0, atol=1e-12, equal_nan=True) for k in computed
    ):
        return None
    return results.save_chip_counts(folder, rid, key, dict(chips))

"""The one tidy results table every model run writes to and every figure reads from.

One row per measurement with its whole context (GEO-Bench style): a run of ``(dataset, model, seed, label_budget)``
(:class:`RunId`) writes its
aggregates (``class`` blank) and per-class values (``class`` = class name) for each scored split. Writes are
atomic (temporary file + ``os.replace``) and a rerun of the same run (:data:`RUN_COLUMNS`) replaces its earlier
rows, so the table never holds duplicates or a half-written run.

A model that could not be run (e.g. Prithvi without its weights file) writes one row with ``status="not_run"``
and the reason in ``note``; it is never filled with another model's numbers.

Every row carries the ``run_key`` of its run (:func:`run_key`): a hash of everything that can change its numbers.
A run is skipped only when the table holds it finished under the same key (:func:`has_run`), so a changed setting,
regenerated data or a new package version reruns it, and a rerun with nothing changed recomputes nothing. The new
rows replace the old rows of that run only once the run has finished; a ``not_run`` never replaces
a finished run.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import metrics as _metrics
from helpers.data.io import atomic_write, locked, user_mode

DEFAULT_PATH = Path("results") / "results.csv"

#: Columns in their fixed order. Extra keys given by a caller are kept after these.
COLUMNS = [
    "task",
    "dataset",
    "simulated",
    "model",
    "family",
    "pretraining",
    "weights",
    "seed",
    "label_budget",
    "split",
    "metric",
    "class",
    "value",
    "status",
    "note",
    "n_train_pixels",
    "n_labelled_px",
    "n_train_chips",
    "n_features",
    "n_params",
    "steps",
    "best_step",
    "stopped_by",
    "runtime_s",
    "fit_s",
    "predict_s",
    "peak_mem_mb",
    "model_size_mb",
    "platform",
    "data_fingerprint",
    "git_sha",
    "timestamp",
    "run_key",
]

#: The columns that name a run in the table; writing a run replaces every earlier row with the same values.
#: ``label_budget`` (:mod:`helpers.data.labels`) is ``"all"`` for every full-label run, and for rows written before
#: the column existed.
RUN_COLUMNS = ["dataset", "model", "seed", "label_budget"]

FAMILIES = ("classical", "cnn", "fm")


@dataclasses.dataclass(frozen=True)
class RunId:
    """What names one run: the results rows' :data:`RUN_COLUMNS`, its run folder and its saved maps.

    Built for every family by :func:`helpers.runs.runner.identity` from the dataset object (a label view names its
    budget), so two budgets of one (dataset, model, seed) never share rows, checkpoints or maps. A full-label run
    keeps the paths it always had (``<dataset>/<model>/seed<k>``); a budgeted one gets a folder level of its own
    (``<dataset>/<model>/<budget>/seed<k>``).
    """

    dataset: str
    model: str
    seed: int
    label_budget: str = "all"

    def columns(self) -> dict:
        """The row columns that name the run (:data:`RUN_COLUMNS`)."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "seed": int(self.seed),
            "label_budget": self.label_budget,
        }

    def parts(self) -> list[str]:
        """Path segments under a root: ``dataset/model[/budget]``."""
        extra = [] if self.label_budget == "all" else [self.label_budget]
        return [self.dataset, self.model, *extra]

    def run_dir(self, runs_dir: str | os.PathLike) -> Path:
        """Folder of the run's checkpoints and log."""
        return Path(runs_dir).joinpath(*self.parts(), f"seed{int(self.seed)}")

    def map_path(self, maps_dir: str | os.PathLike) -> Path:
        """File of the run's saved test maps."""
        return Path(maps_dir).joinpath(*self.parts(), f"seed{int(self.seed)}.npz")

    def chips_path(self, chips_dir: str | os.PathLike) -> Path:
        """File of the run's per-chip counts (:func:`save_chip_counts`), laid out as its maps."""
        return self.map_path(chips_dir)


#: Version of the per-chip count files (:func:`save_chip_counts`); a file of another version reads as absent.
CHIPS_FORMAT = 1


def chips_dir_beside(results_path: str | os.PathLike | None) -> Path | None:
    """Where a run's per-chip counts go by default: ``chips/`` beside its results table (no table: nowhere)."""
    return None if results_path is None else Path(results_path).parent / "chips"


def chip_counts(chip_ids: Sequence[str], cms: np.ndarray) -> dict[str, np.ndarray]:
    """Per-chip ``tp``, ``fp``, ``fn`` of every class from per-chip confusion matrices.

    A split's scores come from its summed confusion matrix, and a bootstrap over test chips needs the same counts
    chip by chip; ``tp``/``fp``/``fn`` are all :func:`helpers.metrics.scores`' aggregates need (``oa``'s denominator
    is ``tp + fn``), at ``2C`` fewer numbers per chip than the matrix.

    Args:
        chip_ids: The split's chips, in the order of ``cms``.
        cms: ``(K, C, C)`` int confusion matrices (rows truth, columns prediction), one per chip; a chip without a
            scored pixel has a zero matrix (kept, so every run of a dataset lists the same chips).

    Returns:
        ``{"chip_ids": (K,) str, "tp": (K, C) int64, "fp": (K, C) int64, "fn": (K, C) int64}``.
    """
    cms = np.asarray(cms, dtype=np.int64)
    if cms.ndim != 3 or cms.shape[1] != cms.shape[2] or cms.shape[0] != len(chip_ids):
        raise ValueError(f"expected ({len(chip_ids)}, C, C) confusion matrices, got shape {cms.shape}")
    tp = np.diagonal(cms, axis1=1, axis2=2).copy()
    return {
        "chip_ids": np.array(list(chip_ids), dtype=str),
        "tp": tp,
        "fp": cms.sum(axis=1) - tp,
        "fn": cms.sum(axis=2) - tp,
    }


def counts_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, float]:
    """The aggregate scores (:data:`helpers.metrics.AGGREGATES`) of per-class counts summed over some chips.

    The same formulas as :func:`helpers.metrics.scores` on the summed confusion matrix (a class counts in the macro
    means where it is true or predicted somewhere), so a resample of chips is scored as a split is.
    """
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    if not tp.shape == fp.shape == fn.shape or tp.ndim != 1:
        raise ValueError(
            f"tp, fp, fn must be equal 1-D per-class counts; got {tp.shape}, {fp.shape}, {fn.shape}"
        )
    present = (tp + fp + fn) > 0
    n_valid = tp.sum() + fn.sum()

    def macro(num: np.ndarray, den: np.ndarray) -> float:
        return float(np.mean(num[present] / den[present])) if present.any() else float("nan")

    return {
        "miou_macro": macro(tp, tp + fp + fn),
        "f1_macro": macro(2 * tp, 2 * tp + fp + fn),
        "iou_micro": float(tp.sum() / (tp.sum() + fp.sum() + fn.sum())) if n_valid > 0 else float("nan"),
        "oa": float(tp.sum() / n_valid) if n_valid > 0 else float("nan"),
    }


def save_chip_counts(
    chips_dir: str | os.PathLike | None, rid: RunId, run_key: str, counts: Mapping[str, Mapping]
) -> Path | None:
    """Write one run's per-chip counts (``{split: chip_counts(...)}``) to ``rid.chips_path(chips_dir)``.

    One compressed ``.npz`` per run (no pickle), holding the run's ``run_key`` so that a file left by an earlier
    version of the run is recognised as stale (:func:`read_chip_counts`). Written atomically: a crash leaves the
    previous file or none, never a torn one. Nothing is written without a folder or without counts.
    """
    if chips_dir is None or not counts:
        return None
    splits = list(counts)
    arrays: dict[str, np.ndarray] = {}
    for i, split in enumerate(splits):
        c = counts[split]
        ids = np.asarray(c["chip_ids"], dtype=str)
        tp, fp, fn = (np.asarray(c[k]) for k in ("tp", "fp", "fn"))
        if not (tp.ndim == 2 and tp.shape == fp.shape == fn.shape and tp.shape[0] == ids.shape[0]):
            raise ValueError(
                f"{rid}: split {split!r}: tp/fp/fn must be (chips, classes) for {ids.shape[0]} chips; "
                f"got {tp.shape}, {fp.shape}, {fn.shape}"
            )
        arrays |= {
            f"chip_ids_{i}": ids,
            f"tp_{i}": tp.astype(np.int64),
            f"fp_{i}": fp.astype(np.int64),
            f"fn_{i}": fn.astype(np.int64),
        }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object, so numpy does not append another ".npz"
            np.savez_compressed(
                fh,
                format=np.array(CHIPS_FORMAT),
                run_key=np.array(str(run_key)),
                splits=np.array(splits, dtype=str),
                **arrays,
            )

    return atomic_write(rid.chips_path(chips_dir), write)


def read_chip_counts(
    dataset: str,
    model: str,
    seed: int,
    label_budget: str = "all",
    *,
    chips_dir: str | os.PathLike,
    run_key: str | None = None,
) -> dict[str, dict[str, np.ndarray]] | None:
    """One run's per-chip counts: ``{split: {"chip_ids", "tp", "fp", "fn"}}`` (:func:`chip_counts`), or None.

    None when the run saved none, and (with a warning that says why) when the file is not of this format or was
    written under another ``run_key`` than the one given: counts of an earlier version of the run (other data,
    settings, platform) must never stand in for the rows in the table. Pass the table row's ``run_key``; None
    accepts any.
    """
    path = RunId(str(dataset), str(model), int(seed), str(label_budget)).chips_path(chips_dir)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != CHIPS_FORMAT:
                warnings.warn(
                    f"{path}: chip counts of format {int(z['format'])}, expected {CHIPS_FORMAT}; ignored",
                    stacklevel=2,
                )
                return None
            stored = str(z["run_key"])
            if run_key is not None and stored != str(run_key):
                warnings.warn(
                    f"{path}: chip counts of run_key {stored!r}, not {run_key!r} (stale: an earlier version of the "
                    "run); ignored",
                    stacklevel=2,
                )
                return None
            return {
                str(split): {
                    "chip_ids": z[f"chip_ids_{i}"].astype(str),
                    "tp": z[f"tp_{i}"],
                    "fp": z[f"fp_{i}"],
                    "fn": z[f"fn_{i}"],
                }
                for i, split in enumerate(z["splits"])
            }
    except (OSError, KeyError, ValueError) as err:
        warnings.warn(f"{path}: not a chip-count file of this study ({err}); ignored", stacklevel=2)
        return None


def is_simulated(ds) -> bool:
    """Whether a dataset is simulated: its own ``simulated`` flag, else the ``sim-`` name prefix."""
    return bool(getattr(ds, "simulated", str(ds.name).startswith("sim-")))


#: Tracked paths (git glob pathspecs from the checkout's top) whose changes cannot move a number: what the chain
#: writes (the results table with its maps and chip counts, the figures and tables drawn from it; executed notebooks
#: go to the ignored ``output/``) and the top-level prose (README, STUDY), which notebook 05 may rewrite.
NOT_CODE = ("results", "figures", "*.md")


def git_sha(cwd: str | os.PathLike | None = None) -> str:
    """Short commit of the code that produced a row ("unknown" outside a git checkout).

    ``-dirty`` is appended only when tracked code or configuration differs from that commit: the chain's own
    outputs and the prose (:data:`NOT_CODE`) are left out, or every row written after the first would be marked
    dirty by the rows before it and the mark would say nothing about the code.
    """
    cwd = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        sha = out.stdout.strip()
        excluded = [f":(top,glob,exclude){p}" for p in NOT_CODE]
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def uncommitted_rows(df: pd.DataFrame, repo: str | os.PathLike | None = None) -> pd.DataFrame:
    """Rows whose code was not a commit of ``repo``: a ``-dirty`` or ``unknown`` sha, or one the history lacks.

    Only rows that record their data draw (``data_fingerprint``, written since :func:`git_sha` stopped counting the
    chain's own outputs as changes) are checked: older rows were all marked ``-dirty`` by their own results files,
    so the mark said nothing about their code. A committed table must have none (``tests/test_results.py``).
    """
    if df.empty or "data_fingerprint" not in df:
        return df.iloc[0:0]
    new = df[df["data_fingerprint"].fillna("").astype(str) != ""]
    shas = new["git_sha"].fillna("").astype(str)
    bad = shas.str.endswith("-dirty") | shas.isin(["", "unknown"])
    cwd = repo or Path(__file__).resolve().parent
    missing = set()
    for sha in sorted(set(shas[~bad])):
        found = subprocess.run(
            ["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=cwd, capture_output=True, timeout=10
        )
        if found.returncode != 0:
            missing.add(sha)
    return new[bad | shas.isin(missing)]


def _plain(value):
    """JSON form of a setting: dataclasses as dicts, tuples as lists, paths refused (they differ by machine)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"run_key: setting {value!r} ({type(value).__name__}) is not a plain value; pass what determines the "
        "numbers (a file's sha256, not its path)"
    )


def run_key(ds, model: str, seed: int, settings: Mapping | None = None) -> str:
    """16-hex-digit identity of a run: everything that can change its numbers, hashed.

    It covers the dataset's content (:meth:`helpers.data.datasets.ChipDataset.fingerprint`), the model name, the seed,
    the package version (bumped whenever a code change moves results) and the family's ``settings``: every
    training, feature and model setting, the threads per run (they change results in the third decimal), the
    sha256 of any weights file and, for torch-based runs, the arithmetic platform class
    (:func:`helpers.runs.runtime.platform_class`: a deep row is not reproduced on another CPU kernel family, bf16 path,
    torch or GPU; classical rows are, so theirs leave it out). Settings that only say where things go (paths,
    progress bars) stay out, so the same run in another folder, or on another machine of the same platform class,
    has the same key.

    Raises:
        TypeError: A setting that is not a plain value (e.g. a path or a function).
    """
    from helpers import __version__
    from helpers.data import datasets

    blob = {
        "dataset": datasets.fingerprint(ds),
        "model": str(model),
        "seed": int(seed),
        "version": __version__,
        "settings": _plain(dict(settings or {})),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def score_rows(
    scores: Mapping,
    *,
    split: str,
    class_names: Sequence[str],
    context: Mapping | None = None,
) -> list[dict]:
    """Turn :func:`helpers.metrics.scores` output into tidy rows.

    Args:
        scores: Output of :func:`helpers.metrics.scores`.
        split: The split these scores were computed on (``"val"``, ``"test"``, ...).
        class_names: Names of classes ``0..C-1``, used in the ``class`` column.
        context: Columns shared by every row (task, dataset, model, family, seed, runtime_s, ...).

    Returns:
        One row per aggregate metric and one per (per-class metric, class).
    """
    base = dict(context or {})
    base["split"] = split
    rows = [{**base, "metric": m, "class": "", "value": float(scores[m])} for m in _metrics.AGGREGATES]
    for m in _metrics.PER_CLASS:
        values = np.asarray(scores[m], dtype=float)
        if len(values) != len(class_names):
            raise ValueError(
                f"{len(values)} per-class values for metric {m!r} but {len(class_names)} class names"
            )
        rows += [
            {**base, "metric": m, "class": name, "value": float(v)}
            for name, v in zip(class_names, values, strict=True)
        ]
    return rows


def not_run_row(reason: str, context: Mapping) -> dict:
    """A row stating that a model could not be run, and why (never a stand-in number)."""
    return {
        **context,
        "split": "",
        "metric": "not_run",
        "class": "",
        "value": np.nan,
        "status": "not_run",
        "note": reason,
    }


def _atomic_write_csv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            df.to_csv(fh, index=False)
        user_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read(path: str | os.PathLike = DEFAULT_PATH) -> pd.DataFrame:
    """Read the results table (an empty frame with the standard columns if it does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    df = pd.read_csv(
        path,
        keep_default_na=False,
        na_values=["", "nan", "NaN"],
        low_memory=False,
        dtype={"run_key": str},  # hex digits such as "12e4..." must not become numbers
    )
    for col in ("platform", "data_fingerprint"):  # tables written before rows recorded these
        if col not in df:
            df[col] = ""
    for col in (
        "class",
        "note",
        "status",
        "pretraining",
        "weights",
        "split",
        "stopped_by",
        "run_key",
        "platform",
        "data_fingerprint",
    ):
        if col in df:
            df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    return _with_budget(df)


def budget_tags(df: pd.DataFrame) -> pd.Series:
    """Each row's ``label_budget`` as text, ``"all"`` where a row has none (rows written before budgets existed)."""
    col = df["label_budget"] if "label_budget" in df else pd.Series("", index=df.index, dtype=object)
    return col.astype(object).where(col.notna() & (col.astype(str) != ""), "all").astype(str)


def _with_budget(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its ``label_budget`` column normalised by :func:`budget_tags`."""
    df["label_budget"] = budget_tags(df)
    return df


def full_labels(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of full-label runs (``label_budget == "all"``): the study's main comparison and findings."""
    return at_budget(df, "all")


def at_budget(df: pd.DataFrame, label_budget: str) -> pd.DataFrame:
    """The rows of runs at one label budget (its tag, e.g. ``"points-10"``; ``"all"``: full labels).

    One budget at a time, because a run at 10 labelled pixels per class and the same run with every label share
    (dataset, model, seed): pooling them would pair a model's scarce-label score with another's full-label one.
    """
    return df[_with_budget(df.copy())["label_budget"] == str(label_budget)]


#: Text columns written as empty strings (not NaN) when a row lacks them.
_TEXT_COLUMNS = (
    "class",
    "note",
    "pretraining",
    "weights",
    "stopped_by",
    "run_key",
    "label_budget",
    "platform",
    "data_fingerprint",
)


def _append_if_new(new: pd.DataFrame, path: Path) -> bool:
    """Append ``new`` to an existing table without rewriting it, when none of its runs is there yet.

    The common case (a fresh run) then costs a byte copy of the file instead of parsing and re-serialising the whole
    table (0.4 s per run on the study's 10 MB table, for ~300 runs a chain). Still atomic: the copy plus the new
    rows go to a temporary file that replaces the table. Returns False (nothing written) when a run is being
    replaced, the header is not the standard one, or the file does not end with a newline.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return False
    header = list(pd.read_csv(path, nrows=0).columns)
    if header[: len(COLUMNS)] != COLUMNS or not set(new.columns) <= set(header):
        return False
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) != b"\n":
            return False
    old_keys = pd.read_csv(path, usecols=RUN_COLUMNS, dtype=str, keep_default_na=False).drop_duplicates()
    keys = new[RUN_COLUMNS].astype(str).drop_duplicates()
    if not old_keys.merge(keys, how="inner").empty:
        return False
    out = new.reindex(columns=header)
    for c in _TEXT_COLUMNS:
        out[c] = out[c].astype(object).where(out[c].notna(), "")
    text = out.to_csv(index=False, header=False)

    def write(tmp: Path) -> None:
        shutil.copyfile(path, tmp)
        with open(tmp, "a", newline="") as fh:
            fh.write(text)

    atomic_write(path, write)
    return True


def _refuse_empty_scores(new: pd.DataFrame) -> None:
    """Refuse ``ok`` rows whose aggregate score is NaN: a split that could not be scored is not a finished run.

    An aggregate (``class`` blank) is NaN only when its split had no valid pixel to count (every mask ignore, or no
    chip): storing it as ``ok`` would let the skip rule call the run done and show an empty result as a result.
    Per-class values may be NaN (a class absent from the split) and are kept.

    Raises:
        ValueError: Naming the run and split, and what to check.
    """
    cls = new["class"] if "class" in new else pd.Series("", index=new.index)
    aggregate = cls.fillna("").astype(str) == ""
    value = pd.to_numeric(new["value"], errors="coerce")
    bad = new[(new["status"] == "ok") & aggregate & value.isna()]
    if bad.empty:
        return
    r = bad.iloc[0]
    split = r.get("split", "")
    raise ValueError(
        f"results: run ({r['dataset']}, {r['model']}, seed {r['seed']}) has no score on split {split!r} "
        f"({r['metric']} is NaN): the split has no labelled pixel to score (every mask ignore, or no chip). Check that "
        "split's masks (python -m helpers.data.generic check); an unscored run is never stored as finished"
    )


def write_run(rows: Iterable[Mapping], path: str | os.PathLike = DEFAULT_PATH) -> pd.DataFrame:
    """Append one or more runs' rows, replacing earlier rows of the same run (:data:`RUN_COLUMNS`).

    Columns filled automatically when absent: ``status`` ("ok"), ``git_sha``, ``timestamp`` (UTC ISO),
    ``simulated`` (from the dataset name: ``sim-*`` datasets are simulated).

    Args:
        rows: Tidy rows, each with at least ``task``, ``dataset``, ``model``, ``family``, ``seed``, ``metric``
            and ``value``.
        path: The CSV file (created with its folder if missing).

    Returns:
        The full table as written.
    """
    new = pd.DataFrame(list(rows))
    if new.empty:
        return read(path)
    missing = [c for c in ("task", "dataset", "model", "family", "seed", "metric", "value") if c not in new]
    if missing:
        raise ValueError(f"results rows lack required columns {missing}")
    bad_family = set(new["family"]) - set(FAMILIES)
    if bad_family:
        raise ValueError(f"unknown family {sorted(bad_family)}; expected one of {FAMILIES}")
    if "status" not in new:
        new["status"] = "ok"
    new["status"] = new["status"].fillna("ok")
    _refuse_empty_scores(new)
    if "simulated" not in new:
        new["simulated"] = new["dataset"].astype(str).str.startswith("sim-")
    new = _with_budget(new)
    new["git_sha"] = new["git_sha"] if "git_sha" in new else git_sha()
    new["timestamp"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    path = Path(path)
    with locked(path):
        return _write_locked(new, path)


def _keep_finished(new: pd.DataFrame, old: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Drop the rows of runs that could not run (``not_run``) where the table already holds that run finished.

    A rerun without the weights (offline, no ``FM_WEIGHTS_DIR``) must never replace a finished result with a
    missing one; the finished rows stay and a warning says why the new ones were not written. A ``not_run`` that
    repeats the table's ``not_run`` of the run word for word is dropped too (silently): rewriting it would change
    nothing but its timestamp.
    """
    if old.empty or "status" not in new:
        return new
    key = new[RUN_COLUMNS].astype(str).agg("|".join, axis=1)
    failed = new.assign(_key=key).groupby("_key")["status"].agg(lambda s: bool((s == "not_run").all()))
    old_key = old[RUN_COLUMNS].astype(str).agg("|".join, axis=1)
    if "note" in new:
        same = set(
            old_key[old["status"] == "not_run"]
            + "|"
            + old.loc[old["status"] == "not_run", "note"].astype(str)
        )
        repeated = key[(new["status"] == "not_run") & (key + "|" + new["note"].astype(str)).isin(same)]
        new, key = new.loc[~key.isin(set(repeated))], key.loc[~key.isin(set(repeated))]
    finished = set(old_key[old["status"] == "ok"])
    kept = [k for k in failed.index[failed] if k in finished]
    if kept:
        reason = new.loc[key.isin(kept), "note"].astype(str).iloc[0] if "note" in new else "not_run"
        warnings.warn(
            f"{path}: kept the finished rows of {', '.join(kept)} (dataset|model|seed|label_budget); this rerun could not run "
            f"them: {reason}",
            stacklevel=4,
        )
    return new.loc[~key.isin(kept)]


def _write_locked(new: pd.DataFrame, path: Path) -> pd.DataFrame:
    if _append_if_new(new, path):
        return read(path)
    old = read(path)
    new = _keep_finished(new, old, path)
    if new.empty:
        return old
    if not old.empty:
        keys = new[RUN_COLUMNS].astype(str).drop_duplicates()
        old_keys = old[RUN_COLUMNS].astype(str)
        drop = old_keys.merge(keys, how="left", indicator=True)["_merge"].eq("both").to_numpy()
        old = old.loc[~drop]
    frames = [f for f in (old, new) if not f.empty]
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    cols = [c for c in COLUMNS if c in out] + [c for c in out if c not in COLUMNS]
    for c in COLUMNS:
        if c not in out:
            out[c] = "" if c in _TEXT_COLUMNS else np.nan
    out = out[COLUMNS + [c for c in cols if c not in COLUMNS]]
    _atomic_write_csv(out, path)
    return out


def has_run(
    dataset: str,
    model: str,
    seed: int,
    path: str | os.PathLike = DEFAULT_PATH,
    key: str | None = None,
    label_budget: str = "all",
) -> bool:
    """Whether the table holds ``(dataset, model, seed, label_budget)`` finished (status ``ok``), under ``key`` if given.

    The runners pass their :func:`run_key`: a run finished under other settings, other data or an older package
    version (or written before rows carried keys) does not count, so it is rerun.
    """
    df = read(path)
    if df.empty:
        return False
    sel = (df["dataset"].astype(str) == dataset) & (df["model"].astype(str) == model)
    sel &= (df["seed"].astype(str) == str(seed)) & (df["status"] == "ok")
    sel &= df["label_budget"].astype(str) == str(label_budget)
    if key is not None:
        if "run_key" not in df:
            return False
        sel &= df["run_key"].astype(str) == key
    return bool(sel.any())

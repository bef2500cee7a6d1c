"""Convergence shown, not assumed: every deep row's first-seed run gets a second search from a restarted rate.

A deep model's score counts only if its training reached a validation plateau; a budget that stops a model while it
is still improving measures the budget. :func:`helpers.runs.train.fit` stops on a plateau, and this module checks the
claim, one of two ways:

* Runs trained in **cycles** (the study's protocol, :data:`helpers.runs.schedule.PLATEAU`): the run's own last cycle
  restarted the learning rate at its base value from the end of the one before, and the run stopped because that
  cycle moved the best validation score by less than a point. :func:`check` records it (:data:`LAST_CYCLE`): the
  weights that cycle had to beat (``cycle_best.pt``) against the selected ones, on validation and test, without
  training anything more.
* Runs trained in one cycle: :func:`check` continues the finished run from its own last checkpoint (same weights,
  optimiser state and RNG) with the learning rate **restarted at its base value** and the plateau rule's rate drops
  reset, to at most ``factor`` times its steps (:func:`helpers.runs.train.continue_run`, ``restart_lr=True``), and
  selects the best validation weights over the whole trajectory (:data:`METHOD`).

Either way a row counts as **converged** when the restart moved its validation ``miou_macro`` by less than
:data:`CONVERGED_POINTS` points. Validation decides (the test split plays no part in the verdict); the test change
is reported beside it.

Why a restart: a cycle ends at its last, decayed rate (``drop_factor ** lr_drops`` = 1/25 of the base). A
continuation at that rate can hardly move the weights, so it would pass almost by construction (it did: every
Indian Pines row moved +0.0). A second full cycle of the schedule from the base rate is the same search that found
the first plateau, given again: a model that was stopped early improves under it, one on a plateau does not. With
one cycle per run the restart check failed 14 of 35 first-seed runs of the default (1-9 validation points), which
is why the protocol now trains in cycles. The method is named in every row, so a check made another way is redone,
never read as this one.

The checks are kept in their own tidy table, ``results/convergence.csv`` (one row per checked run), not in the
results table: they are evidence about runs of the matrix, not runs of it. Each row carries the checked run's
identity (its settings' hash and step count), so a rerun under other settings never reuses a stale check.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from helpers import metrics, results
from helpers.data import labels
from helpers.data.io import atomic_write, locked
from helpers.runs import deep_run, inference, run_folders, runner, schedule, train

DEFAULT_PATH = Path("results") / "convergence.csv"

#: Doubling the steps must move validation mIoU by less than this (points, i.e. mIoU x 100) to count as converged.
CONVERGED_POINTS = 1.0

COLUMNS = [
    "task",
    "dataset",
    "simulated",
    "model",
    "family",
    "seed",
    "steps",
    "best_step",
    "stopped_by",
    "val_miou_macro",
    "test_miou_macro",
    "steps_x2",
    "best_step_x2",
    "val_miou_macro_x2",
    "test_miou_macro_x2",
    "delta_val_points",
    "delta_test_points",
    "x2_mean_gain_points",
    "x2_sd_points",
    "converged",
    "config_sha",
    "run_key",
    "method",
    "git_sha",
    "timestamp",
]

KEY = ["dataset", "model", "seed"]

#: How the check continues a run: from a restarted learning rate (module docstring). Rows of another method (the
#: old constant-decayed-rate continuation, read as "") are not this check and are redone.
METHOD = "restart-lr"

#: How runs trained in cycles (``cycles`` > 1, :func:`helpers.runs.train.fit`) are checked: by their own last cycle,
#: a restart of the rate from the end of the previous one, which is what :data:`METHOD` adds after a one-cycle run.
LAST_CYCLE = "last-cycle"

#: Columns added after the first tables were written (read as NaN from an older table).
_LATER_COLUMNS = ("x2_mean_gain_points", "x2_sd_points", "run_key", "method")


def config_sha(config: dict) -> str:
    """Short hash of a run's settings (as stored in its checkpoint)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read(path: str | os.PathLike = DEFAULT_PATH) -> pd.DataFrame:
    """The convergence table (empty, with its columns, when there is none yet)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    hashes = {"config_sha": str, "run_key": str, "git_sha": str}  # hex strings, never numbers
    df = pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"], dtype=hashes)
    for c in _LATER_COLUMNS:  # tables written before these columns existed
        if c not in df:
            df[c] = float("nan")
    for c in ("run_key", "method"):
        df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str)
    missing = [c for c in COLUMNS if c not in df]
    if missing:
        raise ValueError(f"{path}: not a convergence table of this study (missing columns {missing})")
    df["converged"] = df["converged"].astype(str).str.lower().eq("true")
    return df


def _write_row(row: dict, path: Path) -> None:
    with locked(path):
        _write_row_locked(row, path)


def _write_row_locked(row: dict, path: Path) -> None:
    old = read(path)
    if not old.empty:
        same = (
            (old["dataset"].astype(str) == row["dataset"])
            & (old["model"].astype(str) == row["model"])
            & (old["seed"].astype(str) == str(row["seed"]))
        )
        old = old.loc[~same]
    new = pd.DataFrame([row], columns=COLUMNS)
    out = pd.concat([old, new], ignore_index=True) if not old.empty else new
    out = out.sort_values(KEY, kind="stable").reset_index(drop=True)
    atomic_write(path, lambda tmp: out.to_csv(tmp, index=False))


def has_check(
    dataset: str,
    model: str,
    seed: int,
    sha: str,
    path: str | os.PathLike = DEFAULT_PATH,
    run_key: str = "",
    method: str = METHOD,
) -> bool:
    """Whether the table holds a check of exactly this run: same settings hash, ``run_key`` and :data:`METHOD`.

    The settings hash alone does not see the data: a regenerated dataset trains a new run under the same settings,
    and its check must be redone, not read from the old run's row. A check made another way is not this check.
    """
    df = read(path)
    if df.empty:
        return False
    sel = (df["dataset"].astype(str) == dataset) & (df["model"].astype(str) == model)
    sel &= (df["seed"].astype(str) == str(seed)) & (df["config_sha"].astype(str) == sha)
    sel &= df["run_key"].fillna("").astype(str) == run_key
    sel &= df["method"].astype(str) == method
    return bool(sel.any())


def _recorded_test_miou(
    dataset: str, model: str, seed: int, results_path: str | os.PathLike, run_key: str = ""
) -> float | None:
    """The run's test ``miou_macro`` as written to the results table (``None`` when it is not there).

    The run is found by its ``run_key`` (the same model and seed also run at other label budgets, each its own
    run); a run folder without a key marker (written before keys) matches the full-label row.
    """
    df = results.read(results_path)
    if df.empty:
        return None
    sel = df[
        (df["dataset"].astype(str) == dataset)
        & (df["model"].astype(str) == model)
        & (df["seed"].astype(str) == str(seed))
        & (df["status"] == "ok")
        & (df["split"] == "test")
        & (df["metric"] == "miou_macro")
        & (df["class"] == "")
    ]
    if run_key and "run_key" in sel:
        sel = sel[sel["run_key"].fillna("").astype(str) == run_key]
    elif "label_budget" in sel:
        sel = sel[sel["label_budget"].fillna("all").astype(str) == "all"]
    return float(sel["value"].iloc[0]) if len(sel) else None


def run_checked(
    ds,
    model_name: str,
    make_model: Callable[[], nn.Module],
    *,
    convergence_path: str | os.PathLike | None = None,
    **run_kwargs,
) -> deep_run.RunOutcome:
    """:func:`helpers.runs.deep_run.run`, then the run's convergence check (:func:`check`) into ``convergence_path``.

    The check is scheduled here, beside the run, so the training loop knows nothing of it. It is made for
    full-label runs only (the convergence table names runs by dataset, model and seed), also when the run was
    skipped because it is already in the results table (its checkpoints, if there, are checked); ``None``: no check.
    ``run_kwargs`` are :func:`helpers.runs.deep_run.run`'s (its own keywords and the fit settings).
    """
    outcome = deep_run.run(ds, model_name, make_model, **run_kwargs)
    if convergence_path is not None and labels.tag_of(ds) == labels.ALL:
        fit_kwargs = {k: v for k, v in run_kwargs.items() if k not in _RUN_ONLY}
        check(
            ds,
            model_name,
            make_model,
            seed=runner.as_seed(run_kwargs["seed"]),
            runs_dir=run_kwargs.get("runs_dir", _RUN_DEFAULTS["runs_dir"]),
            results_path=run_kwargs.get("results_path", _RUN_DEFAULTS["results_path"]),
            path=convergence_path,
            family=run_kwargs.get("family", _RUN_DEFAULTS["family"]),
            force=run_kwargs.get("force", _RUN_DEFAULTS["force"]),
            progress=run_kwargs.get("progress", _RUN_DEFAULTS["progress"]),
            **fit_kwargs,
        )
    return outcome


#: :func:`helpers.runs.deep_run.run`'s own keywords (the rest of its keywords are fit settings) and their defaults.
_RUN_DEFAULTS = {
    name: param.default
    for name, param in inspect.signature(deep_run.run).parameters.items()
    if param.kind is inspect.Parameter.KEYWORD_ONLY
}
_RUN_ONLY = set(_RUN_DEFAULTS)


def check(
    ds,
    model_name: str,
    make_model: Callable[[], nn.Module],
    *,
    seed: int,
    runs_dir: str | os.PathLike,
    results_path: str | os.PathLike = results.DEFAULT_PATH,
    path: str | os.PathLike = DEFAULT_PATH,
    family: str = "cnn",
    factor: float = 2.0,
    force: bool = False,
    progress: bool = False,
    **fit_kwargs,
) -> dict | None:
    """Continue a finished run to ``factor`` times its steps and record how much validation and test moved.

    Args:
        ds: The dataset the run was trained on.
        model_name: Its results-table name.
        make_model: Builds the architecture (its weights are replaced by the checkpoint's).
        seed: The run's seed.
        runs_dir: Root of the run folders (:func:`helpers.runs.run_folders.run_dir`); the continuation goes to a sibling
            folder ``seed<k>-x<factor>``.
        results_path: The results table holding the run's test score (what the check compares against; the
            finished run is not predicted again).
        path: The convergence table.
        family: ``"cnn"`` or ``"fm"``.
        factor: Step multiple.
        force: Redo a check that is already in the table.
        progress: tqdm bars.
        **fit_kwargs: The settings the run was trained with (as given to :func:`helpers.runs.deep_run.run`).

    Returns:
        The row written, or ``None`` when the run folder holds no finished run (e.g. a fresh clone whose
        results came with the repository but whose checkpoints did not), the results table has no test score of
        the run, or the check is already there.
    """
    src = runner.identity(ds, model_name, seed).run_dir(runs_dir)
    if not (src / run_folders.LAST).exists():
        return None
    state = run_folders.load_checkpoint(src / run_folders.LAST)
    if not state.get("finished"):
        return None
    sha = config_sha(state["config"])
    marker = src / run_folders.KEY
    key = marker.read_text().strip() if marker.is_file() else ""  # the run's identity, data included
    cycled = int(state.get("cycle", 0)) > 0
    method = LAST_CYCLE if cycled else METHOD
    if not force and has_check(ds.name, model_name, seed, sha, path, run_key=key, method=method):
        return None
    test0 = _recorded_test_miou(ds.name, model_name, seed, results_path, run_key=key)
    if test0 is None:
        return None
    if cycled:
        return _last_cycle(
            ds, model_name, make_model, src, state, test0, seed, path, family, sha, key, fit_kwargs
        )

    runner.seed_everything(seed)
    model = make_model()
    out_dir = continuation_dir(src, factor)
    run_folders.claim_run_dir(
        out_dir, f"continuation of {key or sha}"
    )  # a continuation of another run is stale
    tr = train.continue_run(
        model,
        ds,
        src=src,
        out_dir=out_dir,
        factor=factor,
        restart_lr=True,
        force=force,
        progress=progress,
        **fit_kwargs,
    )
    test1 = _test_miou(model, ds, tr.eval_tile, tr.eval_overlap, state["config"], fit_kwargs)
    val0 = float(state["best_score"])
    gain, sd = _trend(out_dir / run_folders.LOG, int(state["step"]), val0)
    row = _row(
        ds, model_name, family, seed,
        before=(int(state["step"]), int(state["best_step"]), val0, test0),
        after=(tr.steps, tr.best_step, tr.best_score, test1),
        stopped_by=str(state["stopped_by"]),
        converged=abs(100 * (tr.best_score - val0)) < CONVERGED_POINTS,
        trend=(gain, sd), ids=(sha, key, METHOD),
    )  # fmt: skip
    _write_row(row, Path(path))
    return row


def _test_miou(model: nn.Module, ds, tile, overlap, config: Mapping, fit_kwargs: Mapping) -> float:
    """Test ``miou_macro`` of ``model`` with the run's windows and thread count (as the run itself scored it)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(config.get("num_threads") or prev)
    try:
        cm = inference.evaluate(
            model, ds, "test", tile=tile, overlap=overlap, batch_size=fit_kwargs.get("batch_size", 8)
        )
    finally:
        torch.set_num_threads(prev)
    return float(metrics.scores(cm)["miou_macro"])


def _row(ds, model_name, family, seed, *, before, after, stopped_by, converged, trend, ids) -> dict:
    """One convergence-table row: ``before``/``after`` are (steps, best step, validation, test) of the check."""
    (steps0, best0, val0, test0), (steps1, best1, val1, test1) = before, after
    sha, key, method = ids
    return {
        "task": ds.task,
        "dataset": ds.name,
        "simulated": results.is_simulated(ds),
        "model": model_name,
        "family": family,
        "seed": int(seed),
        "steps": int(steps0),
        "best_step": int(best0),
        "stopped_by": stopped_by,
        "val_miou_macro": float(val0),
        "test_miou_macro": float(test0),
        "steps_x2": int(steps1),
        "best_step_x2": int(best1),
        "val_miou_macro_x2": float(val1),
        "test_miou_macro_x2": float(test1),
        "delta_val_points": 100 * (val1 - val0),
        "delta_test_points": 100 * (test1 - test0),
        "converged": bool(converged),
        "x2_mean_gain_points": trend[0],
        "x2_sd_points": trend[1],
        "config_sha": sha,
        "run_key": key,
        "method": method,
        "git_sha": results.git_sha(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _last_cycle(
    ds, model_name, make_model, src: Path, state: dict, test1: float, seed, path, family, sha, key, fit_kwargs
) -> dict:
    """The check of a run trained in cycles: its last cycle, against the best weights it started from.

    The last cycle restarted the rate from the end of the one before, so it is the same test as the continuation
    of :func:`check`, made by the run itself: validation and test of ``cycle_best.pt`` (the best before that cycle)
    against the run's selected weights. Converged when the run stopped on its own rule (``stopped_by`` plateau)
    and the cycle moved validation by less than :data:`CONVERGED_POINTS` (the rule's ``cycle_gain``).
    """
    if not (src / run_folders.CYCLE_BEST).is_file():
        raise ValueError(f"{src}: a run trained in cycles without {run_folders.CYCLE_BEST} (retrain it)")
    start = state["cycle_start"]
    config = state["config"]
    runner.seed_everything(seed)
    model = make_model()
    model.load_state_dict(run_folders.load_checkpoint(src / run_folders.CYCLE_BEST)["model"])
    model.eval()
    tile = int(config.get("eval_tile", 0)) or None
    overlap = int(config.get("eval_overlap", 0)) if tile else None
    test0 = _test_miou(model, ds, tile, overlap, config, fit_kwargs)
    val0, val1 = float(start["best_score"]), float(state["best_score"])
    delta = 100 * (val1 - val0)
    row = _row(
        ds, model_name, family, seed,
        before=(start["step"], start["best_step"], val0, test0),
        after=(state["step"], state["best_step"], val1, test1),
        stopped_by=str(state["stopped_by"]),
        converged=state["stopped_by"] == "plateau" and delta < CONVERGED_POINTS,
        trend=_trend_of(pd.DataFrame(state["history"]), int(start["step"]), val0),
        ids=(sha, key, LAST_CYCLE),
    )  # fmt: skip
    _write_row(row, Path(path))
    return row


def continuation_dir(src: Path, factor: float = 2.0, method: str = METHOD) -> Path:
    """The folder of a run's continuation, beside the run: ``seed<k>-x2-restart-lr``.

    The old constant-rate checks (``method`` ``""``) kept theirs in ``seed<k>-x2``, left as they were.
    """
    return src.parent / (f"{src.name}-x{factor:g}" + (f"-{method}" if method else ""))


def continuation_trend(df: pd.DataFrame, runs_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """How the validations of each continuation compare with the run's own best, from the continuation's log.

    Doubling selects the best of about twice as many validations. Where validation scores scatter around a
    plateau (a small validation split), that maximum rises even when the model does not: the expected best of 2n
    noisy draws is higher than the best of n. The *mean* of the continued validations tells the two apart: a model
    still learning scores above its old best on average, one on a noisy plateau does not.

    Args:
        df: The convergence table (:func:`read`); rows written by :func:`check` carry their trend already.
        runs_dir: Root of the run folders, for older rows without it; the continuation logs are
            ``<dataset>/<model>/seed<k>-x2/log.csv``.

    Returns:
        ``df``'s index with ``x2_mean_gain_points`` (mean validation mIoU of the validations after the original
        last step, minus the original best, in points) and ``x2_sd_points`` (their standard deviation); NaN where
        the log is missing.
    """
    out = pd.DataFrame(index=df.index, columns=["x2_mean_gain_points", "x2_sd_points"], dtype=float)
    for i, row in df.iterrows():
        if "x2_mean_gain_points" in row and row["x2_mean_gain_points"] == row["x2_mean_gain_points"]:
            out.loc[i] = [row["x2_mean_gain_points"], row["x2_sd_points"]]  # recorded by the check itself
            continue
        if runs_dir is None:
            continue
        src = run_folders.run_dir(runs_dir, row["dataset"], row["model"], int(row["seed"]))
        log = continuation_dir(src, 2.0, str(row.get("method", "") or "")) / run_folders.LOG
        out.loc[i] = _trend(log, int(row["steps"]), float(row["val_miou_macro"]))
    return out


def _trend(log: Path, steps: int, best: float) -> tuple[float, float]:
    """Mean and SD (points) of a continuation's validations after step ``steps``, minus the old ``best``."""
    if not log.is_file():
        return float("nan"), float("nan")
    return _trend_of(pd.read_csv(log), steps, best)


def _trend_of(history: pd.DataFrame, steps: int, best: float) -> tuple[float, float]:
    """:func:`_trend` of a history already read (one row per validation)."""
    cont = history.loc[history["step"] > steps, "val_miou_macro"]
    if not len(cont):
        return float("nan"), float("nan")
    return 100 * (float(cont.mean()) - best), 100 * float(cont.std(ddof=1)) if len(cont) > 1 else float("nan")


def reason(converged: bool, mean_gain: float) -> str:
    """Why a row is or is not converged, in words (``mean_gain`` from :func:`continuation_trend`)."""
    if converged:
        return ""
    if mean_gain != mean_gain:  # NaN: no continuation log
        return "continuation log missing"
    progress = 100 * schedule.PLATEAU["min_delta"]
    # on average no better than before: the gain is the best of more noisy validations
    if mean_gain <= progress:
        return "noisy plateau: the best of more validations, not a better model"
    return "still improving"


def summary(df: pd.DataFrame, runs_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The convergence table as printed: one line per checked run, points rounded, verdict spelled out.

    With ``runs_dir``, two more columns say why a row did not converge (:func:`continuation_trend`): the mean of the
    continued validations against the old best, and the reason.
    """
    if df.empty:
        return pd.DataFrame(
            columns=[
                "dataset",
                "model",
                "steps",
                "stopped by",
                "val",
                "val x2",
                "Δ val",
                "test",
                "test x2",
                "Δ test",
                "converged",
            ]
        )
    order = df.sort_values(["dataset", "family", "model"], kind="stable")
    out = pd.DataFrame(
        {
            "dataset": [
                f"{d} (simulated)" if s else d
                for d, s in zip(order["dataset"], order["simulated"], strict=True)
            ],
            "model": order["model"],
            "steps": [f"{int(a)} → {int(b)}" for a, b in zip(order["steps"], order["steps_x2"], strict=True)],
            "stopped by": order["stopped_by"],
            "val": (100 * order["val_miou_macro"]).map("{:.1f}".format),
            "val x2": (100 * order["val_miou_macro_x2"]).map("{:.1f}".format),
            "Δ val": order["delta_val_points"].map("{:+.1f}".format),
            "test": (100 * order["test_miou_macro"]).map("{:.1f}".format),
            "test x2": (100 * order["test_miou_macro_x2"]).map("{:.1f}".format),
            "Δ test": order["delta_test_points"].map("{:+.1f}".format),
            "converged": order["converged"].map({True: "yes", False: "no"}),
        }
    )
    recorded = "x2_mean_gain_points" in order and order["x2_mean_gain_points"].notna().any()
    if runs_dir is not None or recorded:
        trend = continuation_trend(order, runs_dir)
        out["x2 mean vs best"] = trend["x2_mean_gain_points"].map(lambda v: "" if v != v else f"{v:+.1f}")
        out["reason"] = [
            reason(bool(c), float(g))
            for c, g in zip(order["converged"], trend["x2_mean_gain_points"], strict=True)
        ]
    return out.reset_index(drop=True)

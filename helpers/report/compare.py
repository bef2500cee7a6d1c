"""The comparison, computed from the results table alone: seed aggregates, selection, texture gains, findings.

Everything notebook 05 shows (figures, tables, the findings note) is a function of the tidy table written by
:mod:`helpers.results`; no number is typed here. The rules, each stated once:

* **Aggregation over seeds.** Every ``(dataset, model, split, metric, class)`` group of ``status == "ok"`` rows is
  summarised by the mean over seeds and a 95 % percentile-bootstrap interval of that mean
  (:func:`bootstrap_groups`). With one seed there is nothing to resample: the interval is reported as NaN (not a
  zero-width interval that would look like certainty), and any comparison that needs it is *inconclusive*. With 3
  seeds the percentile bootstrap can only recombine 3 values and under-covers; read the intervals as descriptive.
* **Selection on validation, report on test.** The best model of a family on a dataset is the one with the highest
  mean *validation* score (:func:`select_best`); its *test* score is what is reported. A model without validation
  rows cannot be selected (it is listed, never silently chosen). Ties go to the earlier model in
  :data:`MODEL_ORDER`.
* **Texture gain** (:func:`texture_gains`): per dataset, ``<m>_aug − <m>`` for every classical model with an
  ``_aug`` twin, and best CNN − best classical (both chosen on val), on test, as the mean of per-seed differences
  over the seeds both models ran (paired), with a bootstrap interval; aggregate metric and per-class IoU.
* **Findings** (:func:`findings`): the paper's three claims (STUDY.md §1) checked per dataset with the overlap rule
  documented there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import results as _results

#: Bootstrap resamples used when a caller does not say.
DEFAULT_N_BOOT = 2000
#: Confidence level of every interval in the study.
CI_LEVEL = 0.95

FAMILY_ORDER = ("classical", "cnn", "fm")
FAMILY_LABELS = {"classical": "classical ML", "cnn": "CNN / regular DL", "fm": "foundation model"}
PRETRAINING_ORDER = ("none", "mae-in-study", "spectral-in-study", "published")

#: Canonical model order (tables, figures, tie-breaks). Entries ending in ``*`` match a prefix; models not listed
#: come after the listed ones of their family, alphabetically.
MODEL_ORDER = (
    "rf",
    "lgbm",
    "rf_aug",
    "lgbm_aug",
    "fcn",
    "unet",
    "deeplabv3plus",
    "vit",
    "segformer",
    "prithvi*",
    "galileo*",
    "presto*",
)

#: Canonical dataset order: the paper's real tasks, their simulated analogues, Indian Pines, then the sweep.
DATASET_ORDER = (
    "crop",
    "burn_scars",
    "sen1floods11",
    "sim-crop",
    "sim-burn",
    "sim-flood",
    "indian-pines-hls",
)

#: The notebook that writes each family's rows (the one to run first when they are missing).
NOTEBOOK_FOR_FAMILY = {"classical": "02", "cnn": "03", "fm": "04"}

#: The paper's reading of each task (STUDY.md §1): texture of little use (spectral) or labels partly need texture.
TASK_SETTING = {"flood": "spectral", "crop": "spectral", "burn": "texture"}

HOLDS = "holds"
FAILS = "does not hold"
PARTLY = "partly holds"
INCONCLUSIVE = "inconclusive"
MISSING = "missing"
NOT_APPLICABLE = "not the paper's setting"

#: The three claims as they are tested here.
CLAIMS = {
    1: "Classical ML is as good as or better than FMs when texture is of little use (flood, multi-temporal crop)",
    2: "CNNs and FMs win when labels partly depend on texture/shape (burn scars); the FM-CNN gap is not obvious",
    3: "An FM helps only as far as its pretext task aligns with the downstream task (MAE suits spatial labels, "
    "not spectral ones)",
}

_TEXTURE_RE = re.compile(r"^sim-texture-(.+)$")
_GROUP_KEYS = ["dataset", "task", "simulated", "model", "family", "pretraining", "split", "metric", "class"]


class MissingResultsError(RuntimeError):
    """Rows that notebook 05 needs are not in the results table; the message names the notebook to run first."""


# ----------------------------------------------------------------------------------------------------------------
# ordering helpers


def texture_knob(dataset: str) -> float | None:
    """The texture knob of a ``sim-texture-<knob>`` dataset name (``None`` for every other dataset)."""
    m = _TEXTURE_RE.match(str(dataset))
    if not m:
        return None
    try:
        return float(m.group(1))
    except ValueError:
        return None


def model_sort_key(model: str, family: str | None = None, pretraining: str | None = None) -> tuple:
    """Sort key giving :data:`MODEL_ORDER` within :data:`FAMILY_ORDER`, unknown models last in their family.

    Models matching the same prefix entry (``prithvi*``) are ordered by :data:`PRETRAINING_ORDER`, then name.
    """
    fam = FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)
    pos = len(MODEL_ORDER)
    for i, entry in enumerate(MODEL_ORDER):
        if (entry.endswith("*") and str(model).startswith(entry[:-1])) or model == entry:
            pos = i
            break
    pre = PRETRAINING_ORDER.index(pretraining) if pretraining in PRETRAINING_ORDER else len(PRETRAINING_ORDER)
    return (fam, pos, pre, str(model))


def dataset_sort_key(dataset: str) -> tuple:
    """Sort key: :data:`DATASET_ORDER`, then other datasets alphabetically, then the texture sweep by knob."""
    knob = texture_knob(dataset)
    if knob is not None:
        return (2, knob, dataset)
    if dataset in DATASET_ORDER:
        return (0, DATASET_ORDER.index(dataset), dataset)
    return (1, 0.0, dataset)


def ordered_datasets(names: Iterable[str]) -> list[str]:
    """Unique dataset names in canonical order."""
    return sorted({str(n) for n in names}, key=dataset_sort_key)


def ordered_models(frame: pd.DataFrame) -> list[str]:
    """Unique models of a frame (with ``model``, ``family`` columns) in canonical order."""
    cols = ["model", "family", "pretraining"] if "pretraining" in frame else ["model", "family"]
    pairs = frame[cols].drop_duplicates()
    pairs = sorted(
        pairs.itertuples(index=False),
        key=lambda r: model_sort_key(r.model, r.family, getattr(r, "pretraining", None)),
    )
    return list(dict.fromkeys(r.model for r in pairs))


# ----------------------------------------------------------------------------------------------------------------
# table access


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with the text columns as ``str`` and ``simulated`` as ``bool`` (CSV round trips vary)."""
    out = df.copy()
    for col in (
        "dataset",
        "task",
        "model",
        "family",
        "pretraining",
        "split",
        "metric",
        "class",
        "status",
        "note",
    ):
        if col not in out:
            out[col] = ""
        out[col] = out[col].astype(object).where(out[col].notna(), "").astype(str)
    if "simulated" not in out:
        out["simulated"] = out["dataset"].str.startswith("sim-")
    sim = out["simulated"]
    if sim.dtype != bool:
        text = sim.astype(str).str.lower()
        out["simulated"] = text.isin(["true", "1", "1.0"]) | (
            text.isin(["nan", ""]) & out["dataset"].str.startswith("sim-")
        )
    out["value"] = pd.to_numeric(out.get("value"), errors="coerce")
    out["seed"] = pd.to_numeric(out.get("seed"), errors="coerce")
    return out


def scored(df: pd.DataFrame) -> pd.DataFrame:
    """The measured rows: ``status == "ok"``, a split, and a finite value (not-run rows are never numbers)."""
    df = _normalise(df)
    keep = (df["status"] == "ok") & (df["split"] != "") & np.isfinite(df["value"].to_numpy(dtype=float))
    return df.loc[keep].reset_index(drop=True)


def not_run(df: pd.DataFrame) -> pd.DataFrame:
    """Every run that did not produce numbers, with its reason, one row per ``(dataset, model, seed)``."""
    df = _normalise(df)
    rows = df.loc[
        df["status"] != "ok", ["dataset", "model", "family", "pretraining", "seed", "status", "note"]
    ]
    rows = rows.drop_duplicates(["dataset", "model", "seed"])
    rows = rows.rename(columns={"note": "reason"})
    key = rows.apply(
        lambda r: (
            dataset_sort_key(r["dataset"]),
            model_sort_key(r["model"], r["family"], r["pretraining"]),
            r["seed"],
        ),
        axis=1,
    )
    order = sorted(range(len(rows)), key=lambda i: key.iloc[i]) if len(rows) else []
    return rows.iloc[order].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# bootstrap


def _group_seed(seed: int, n: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(n), 0x5EED])


def _bootstrap_matrix(
    values: np.ndarray, n_boot: int, level: float, seed: int, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals of the mean for each row of ``values`` (G, n), all rows sharing the resamples.

    The resample indices depend only on ``(seed, n)``, so a group's interval does not change when other groups
    are added to the table (figures and tables stay byte-stable as results accumulate). Resampling is done as a
    matrix product with the resample count matrix, ``chunk`` groups at a time to bound memory.
    """
    g, n = values.shape
    rng = _group_seed(seed, n)
    idx = rng.integers(0, n, size=(n_boot, n))
    counts = np.bincount((idx + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n)
    weights = counts.reshape(n_boot, n).astype(np.float64) / n
    alpha = (1.0 - level) / 2.0
    lo = np.empty(g)
    hi = np.empty(g)
    for start in range(0, g, chunk):
        means = values[start : start + chunk] @ weights.T
        q = np.quantile(means, [alpha, 1.0 - alpha], axis=1)
        lo[start : start + chunk], hi[start : start + chunk] = q[0], q[1]
    return lo, hi


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of the mean of ``values`` (NaNs dropped).

    Returns:
        ``(mean, lo, hi)``. One value: ``(value, nan, nan)`` because a single seed has no spread to resample;
        no value: all NaN; identical values: a zero-width interval at the value.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size == 1:
        return mean, float("nan"), float("nan")
    if np.all(v == v[0]):
        return mean, mean, mean
    lo, hi = _bootstrap_matrix(v[None], n_boot, level, seed)
    return mean, float(lo[0]), float(hi[0])


def bootstrap_groups(
    long: pd.DataFrame,
    keys: Sequence[str],
    *,
    value: str = "value",
    n_boot: int = DEFAULT_N_BOOT,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean, interval, spread and count per group of a long table (one row per seed), vectorised.

    Groups with the same number of finite values are bootstrapped together in one matrix product; rows are sorted
    by ``seed`` (when present) inside each group first, so the result does not depend on row order.

    Returns:
        One row per group: the key columns, ``n``, ``mean``, ``lo``, ``hi``, ``std`` and ``seeds`` (the sorted
        seeds, comma-separated).
    """
    keys = list(keys)
    cols = [*keys, "n", "mean", "lo", "hi", "std", "seeds"]
    data = long.loc[np.isfinite(pd.to_numeric(long[value], errors="coerce").to_numpy(dtype=float))]
    if data.empty:
        return pd.DataFrame(columns=cols)
    if "seed" in data:
        data = data.sort_values([*keys, "seed"], kind="mergesort")
    grouped = data.groupby(keys, sort=True, dropna=False)
    vals = grouped[value].agg(lambda s: np.asarray(s, dtype=np.float64))
    seeds = (
        grouped["seed"].agg(lambda s: ",".join(str(int(x)) if float(x).is_integer() else str(x) for x in s))
        if "seed" in data
        else pd.Series("", index=vals.index)
    )
    out = vals.index.to_frame(index=False)
    arrays = list(vals.to_numpy())
    n = np.array([len(a) for a in arrays])
    mean = np.array([a.mean() for a in arrays])
    std = np.array([a.std(ddof=1) if len(a) > 1 else np.nan for a in arrays])
    lo = np.full(len(arrays), np.nan)
    hi = np.full(len(arrays), np.nan)
    constant = np.array([bool(np.all(a == a[0])) for a in arrays])
    for size in np.unique(n[n > 1]):
        sel = np.flatnonzero((n == size) & ~constant)
        if sel.size:
            mat = np.stack([arrays[i] for i in sel])
            lo[sel], hi[sel] = _bootstrap_matrix(mat, n_boot, level, seed)
    flat = (n > 1) & constant
    lo[flat], hi[flat] = mean[flat], mean[flat]
    out["n"] = n
    out["mean"] = mean
    out["lo"] = lo
    out["hi"] = hi
    out["std"] = std
    out["seeds"] = seeds.to_numpy()
    return out[cols]


def aggregate(
    df: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """Seed aggregates of every measured group, plus mean cost columns per run.

    Args:
        df: The results table (:func:`helpers.results.read`).
        metrics: Metrics to keep (all when ``None``), e.g. ``["miou_macro", "f1_macro"]``.
        splits: Splits to keep (all when ``None``).
        n_boot: Bootstrap resamples.
        level: Interval level.
        seed: Bootstrap seed.

    Returns:
        One row per ``(dataset, task, simulated, model, family, pretraining, split, metric, class)`` with ``n``,
        ``mean``, ``lo``, ``hi``, ``std``, ``seeds`` and the seed-mean ``runtime_s``, ``n_params``,
        ``peak_mem_mb`` of the model on that dataset.
    """
    rows = scored(df)
    if metrics is not None:
        rows = rows.loc[rows["metric"].isin(list(metrics))]
    if splits is not None:
        rows = rows.loc[rows["split"].isin(list(splits))]
    out = bootstrap_groups(rows, _GROUP_KEYS, n_boot=n_boot, level=level, seed=seed)
    cost = cost_per_model(df)
    if not out.empty:
        out = out.merge(cost, on=["dataset", "model"], how="left")
    else:
        out = out.reindex(columns=[*out.columns, *[c for c in cost.columns if c not in out.columns]])
    return sort_frame(out)


def cost_per_model(df: pd.DataFrame) -> pd.DataFrame:
    """Seed-mean cost of each ``(dataset, model)`` run: ``runtime_s``, ``n_params``, ``peak_mem_mb``."""
    rows = scored(df)
    cols = ["runtime_s", "n_params", "peak_mem_mb"]
    for c in cols:
        rows[c] = pd.to_numeric(rows[c], errors="coerce") if c in rows else np.nan
    per_run = rows.drop_duplicates(["dataset", "model", "seed"])
    return per_run.groupby(["dataset", "model"], sort=True)[cols].mean().reset_index()


def sort_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in canonical dataset, family/model, split, metric, class order (the order of every table)."""
    if frame.empty:
        return frame.reset_index(drop=True)
    n = len(frame)
    none = [None] * n
    ds = [dataset_sort_key(d) for d in frame["dataset"]] if "dataset" in frame else [()] * n
    ms = (
        [
            model_sort_key(m, f, p)
            for m, f, p in zip(
                frame["model"], frame.get("family", none), frame.get("pretraining", none), strict=True
            )
        ]
        if "model" in frame
        else [()] * n
    )
    sort_cols = [c for c in ("split", "metric", "class") if c in frame]
    rest = list(zip(*[frame[c].astype(str) for c in sort_cols], strict=True)) if sort_cols else [()] * n
    order = sorted(range(n), key=lambda i: (ds[i], ms[i], rest[i]))
    return frame.iloc[order].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# selection


def select_best(
    agg: pd.DataFrame,
    *,
    metric: str = "miou_macro",
    by: Sequence[str] = ("dataset", "family"),
    select_split: str = "val",
    report_split: str = "test",
    where: pd.Series | None = None,
) -> pd.DataFrame:
    """The best model of each group chosen on ``select_split``, reported on ``report_split``.

    Args:
        agg: Output of :func:`aggregate`.
        metric: Aggregate metric used for both choosing and reporting.
        by: Grouping columns (``("dataset", "family")``: best per family per dataset).
        select_split: Split the choice is made on (validation; never test).
        report_split: Split whose score is reported for the chosen model.
        where: Optional boolean mask over ``agg`` restricting the candidates (e.g. FM rows only).

    Returns:
        One row per group: ``by`` columns, ``model``, ``family``, ``pretraining``, ``select_mean`` (its mean
        validation score), ``n``/``mean``/``lo``/``hi`` on the report split, and ``unselectable`` (models of the
        group with report rows but no selection rows, which could not compete).
    """
    by = list(by)
    cand = agg if where is None else agg.loc[where]
    cand = cand.loc[(cand["metric"] == metric) & (cand["class"] == "")]
    sel = cand.loc[cand["split"] == select_split]
    rep = cand.loc[cand["split"] == report_split]
    cols = [*by, "model", "family", "pretraining", "select_mean", "n", "mean", "lo", "hi", "unselectable"]
    cols = list(dict.fromkeys(cols))
    rows = []
    group_values = pd.concat([sel[by], rep[by]]).drop_duplicates()
    for values in group_values.itertuples(index=False):
        mask_s = np.logical_and.reduce([sel[c] == v for c, v in zip(by, values, strict=True)])
        mask_r = np.logical_and.reduce([rep[c] == v for c, v in zip(by, values, strict=True)])
        s, r = sel.loc[mask_s], rep.loc[mask_r]
        unselectable = sorted(set(r["model"]) - set(s["model"]), key=lambda m: model_sort_key(m))
        row = dict(zip(by, values, strict=True))
        row["unselectable"] = ",".join(unselectable)
        if s.empty:
            row.update(model="", family=row.get("family", ""), pretraining="", select_mean=np.nan)
            row.update(n=0, mean=np.nan, lo=np.nan, hi=np.nan)
            rows.append(row)
            continue
        ranked = sorted(
            s.itertuples(index=False),
            key=lambda t: (-t.mean, model_sort_key(t.model, t.family, t.pretraining)),
        )
        best = ranked[0]
        row.update(model=best.model, family=best.family, pretraining=best.pretraining, select_mean=best.mean)
        hit = r.loc[r["model"] == best.model]
        if hit.empty:
            row.update(n=0, mean=np.nan, lo=np.nan, hi=np.nan)
        else:
            h = hit.iloc[0]
            row.update(n=int(h["n"]), mean=h["mean"], lo=h["lo"], hi=h["hi"])
        rows.append(row)
    out = pd.DataFrame(rows, columns=cols)
    return sort_frame(out) if not out.empty else out


# ----------------------------------------------------------------------------------------------------------------
# texture gains


def _paired_long(a: pd.DataFrame, b: pd.DataFrame, on: Sequence[str]) -> pd.DataFrame:
    m = a.merge(b, on=list(on), suffixes=("_a", "_b"))
    m["value"] = m["value_a"] - m["value_b"]
    return m


def texture_gains(
    df: pd.DataFrame,
    *,
    metric: str = "miou_macro",
    per_class_metric: str = "iou",
    split: str = "test",
    n_boot: int = DEFAULT_N_BOOT,
    level: float = CI_LEVEL,
    seed: int = 0,
    agg: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Measured texture gain per dataset: ``<m>_aug − <m>`` and best CNN − best classical.

    Differences are paired by seed (only seeds both models ran count) and bootstrapped; a positive gain means
    neighbourhood/texture information helped on that dataset. Best CNN and best classical are chosen on the
    validation split (:func:`select_best`).

    Returns:
        Rows with ``dataset``, ``task``, ``simulated``, ``comparison`` (e.g. ``"lgbm_aug − lgbm"``), ``model_a``,
        ``model_b``, ``metric``, ``class`` (``""`` for the aggregate), ``n``, ``mean``, ``lo``, ``hi``.
    """
    rows = scored(df)
    rows = rows.loc[
        (rows["split"] == split)
        & (
            ((rows["metric"] == metric) & (rows["class"] == ""))
            | ((rows["metric"] == per_class_metric) & (rows["class"] != ""))
        )
    ]
    cols = ["dataset", "task", "simulated", "comparison", "model_a", "model_b", "metric", "class"]
    if agg is None:
        agg = aggregate(df, metrics=[metric], n_boot=n_boot, level=level, seed=seed)
    best = select_best(agg, metric=metric)
    pieces = []
    for dataset in ordered_datasets(rows["dataset"]):
        d = rows.loc[rows["dataset"] == dataset]
        pairs = []
        models = set(d["model"])
        for m in sorted(models, key=model_sort_key):
            if m.endswith("_aug") and m[: -len("_aug")] in models:
                fam = d.loc[d["model"] == m, "family"].iloc[0]
                if fam == "classical":
                    pairs.append((f"{m} − {m[: -len('_aug')]}", m, m[: -len("_aug")]))
        b = best.loc[best["dataset"] == dataset].set_index("family")["model"]
        if b.get("cnn") and b.get("classical"):
            pairs.append(("best CNN − best classical", b["cnn"], b["classical"]))
        for label, ma, mb in pairs:
            keys = ["seed", "metric", "class"]
            m = _paired_long(d.loc[d["model"] == ma], d.loc[d["model"] == mb][[*keys, "value"]], keys)
            if m.empty:
                continue
            m = m.assign(comparison=label, model_a=ma, model_b=mb)
            pieces.append(
                m[["dataset", "task", "simulated", "comparison", "model_a", "model_b", *keys, "value"]]
            )
    if not pieces:
        return pd.DataFrame(columns=[*cols, "n", "mean", "lo", "hi", "std", "seeds"])
    long = pd.concat(pieces, ignore_index=True)
    out = bootstrap_groups(long, cols, n_boot=n_boot, level=level, seed=seed)
    comp_order = {c: i for i, c in enumerate(dict.fromkeys(long["comparison"]))}
    out["_k"] = [
        (dataset_sort_key(d), comp_order[c], k != "", k)
        for d, c, k in zip(out["dataset"], out["comparison"], out["class"].astype(str), strict=True)
    ]
    return out.sort_values("_k", kind="mergesort").drop(columns="_k").reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# findings


def dataset_setting(dataset: str, task: str) -> str:
    """How much a dataset's labels depend on texture, as the paper (or the simulator's knob) states it.

    ``"spectral"`` for flood and multi-temporal crop (the paper: texture of little use) and for
    ``sim-texture-0`` (labels decidable from a pixel's spectrum by construction); ``"texture"`` for burn scars
    (the paper: labels partly depend on texture/shape) and every ``sim-texture-<knob>`` with knob > 0 (some
    classes differ only in spatial pattern); ``"unknown"`` otherwise (e.g. Indian Pines land cover: the paper
    makes no prediction).
    """
    knob = texture_knob(dataset)
    if knob is not None:
        return "spectral" if knob == 0 else "texture"
    return TASK_SETTING.get(str(task), "unknown")


def interval_order(a: pd.Series | dict, b: pd.Series | dict) -> str:
    """Compare two summaries (``mean``, ``lo``, ``hi``) by the overlap rule.

    Returns:
        ``"a>b"`` when a's interval lies entirely above b's, ``"b>a"`` for the reverse, ``"overlap"`` when the
        intervals share any point, ``"undefined"`` when either interval is missing (a single seed, or no rows).
    """
    vals = [a.get("lo"), a.get("hi"), b.get("lo"), b.get("hi")]
    if any(v is None or not np.isfinite(float(v)) for v in vals):
        return "undefined"
    if float(a["lo"]) > float(b["hi"]):
        return "a>b"
    if float(b["lo"]) > float(a["hi"]):
        return "b>a"
    return "overlap"


def _fmt(row: pd.Series | dict | None, label: str) -> str:
    if row is None or not row.get("model"):
        return f"{label}: none selectable"
    mean = row.get("mean")
    if mean is None or not np.isfinite(float(mean)):
        return f"{label} {row['model']}: no test score"
    n = int(row.get("n", 0))
    ci = (
        f"[{100 * row['lo']:.1f}, {100 * row['hi']:.1f}]"
        if np.isfinite(float(row.get("lo", np.nan)))
        else "(no interval: 1 seed)"
    )
    return f"{label} {row['model']} {100 * float(mean):.1f} {ci}, n={n}"


def _best(best: pd.DataFrame, dataset: str, family_or_value: str, column: str = "family") -> dict | None:
    hit = best.loc[(best["dataset"] == dataset) & (best[column] == family_or_value)]
    if hit.empty or not hit.iloc[0]["model"]:
        return None
    return hit.iloc[0].to_dict()


def _verdict_from_order(order: str, expected: str) -> str:
    if order == "undefined":
        return INCONCLUSIVE
    if order == "overlap":
        return INCONCLUSIVE
    return HOLDS if order == expected else FAILS


def findings(
    df: pd.DataFrame,
    *,
    metric: str = "miou_macro",
    n_boot: int = DEFAULT_N_BOOT,
    level: float = CI_LEVEL,
    seed: int = 0,
    agg: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Whether each of the paper's three claims holds on each dataset here, with its evidence.

    Every comparison is on the test split, between models chosen on the validation split, by the **overlap
    rule**: two models differ only when their 95 % bootstrap intervals over seeds do not overlap; overlapping
    intervals give ``"inconclusive"`` (consistent with "as good as", but no equivalence is claimed), and so does
    a missing interval (a single seed). The claims as tested (STUDY.md §1):

    1. *Classical ≥ FM where texture is of little use.* Best classical vs best FM. On a ``"spectral"`` dataset:
       holds if classical lies clearly above, does not hold if the FM does, else inconclusive.
    2. *DL wins where labels partly depend on texture; the FM-CNN gap is not obvious.* On a ``"texture"``
       dataset, best deep model (CNN or FM) vs best classical, and best FM vs best CNN: holds if DL is clearly
       above classical and the FM and CNN intervals overlap; partly holds if DL is clearly above but FM and CNN
       separate; does not hold if classical is clearly above; inconclusive otherwise (including a single seed).
    3. *Pretext alignment.* Among FM rows, the best ``spectral-in-study`` vs the best ``mae-in-study``
       pretraining: the alignment argument predicts spectral > MAE on ``"spectral"`` datasets and MAE >
       spectral on ``"texture"`` ones; holds / does not hold / inconclusive accordingly.

    A claim on a dataset outside its setting (see :func:`dataset_setting`) gets ``"not the paper's setting"``
    but still shows the evidence; a comparison lacking a model gets ``"missing"``.

    Returns:
        One row per ``(claim, dataset)``: ``claim``, ``statement``, ``dataset``, ``simulated``, ``setting``,
        ``comparison``, ``verdict``, ``evidence``, ``metric``.
    """
    if agg is None:
        agg = aggregate(df, metrics=[metric], n_boot=n_boot, level=level, seed=seed)
    agg = agg.loc[(agg["metric"] == metric) & (agg["class"] == "")]
    best_fam = select_best(agg, metric=metric)
    deep = agg["family"].isin(["cnn", "fm"])
    best_deep = select_best(agg.assign(group="deep"), metric=metric, by=("dataset", "group"), where=deep)
    fm = agg["family"] == "fm"
    best_pre = select_best(agg, metric=metric, by=("dataset", "pretraining"), where=fm)
    info = agg.drop_duplicates("dataset").set_index("dataset")
    rows = []
    for dataset in ordered_datasets(agg["dataset"]):
        task = str(info.loc[dataset, "task"])
        simulated = bool(info.loc[dataset, "simulated"])
        setting = dataset_setting(dataset, task)
        cls, fmr, cnn = (_best(best_fam, dataset, f) for f in ("classical", "fm", "cnn"))
        dl = _best(best_deep, dataset, "deep", column="group")

        # claim 1
        comp = f"best classical vs best FM, test {metric}"
        if cls is None or fmr is None:
            verdict = MISSING
        else:
            verdict = _verdict_from_order(interval_order(cls, fmr), "a>b")
            verdict = verdict if setting == "spectral" else NOT_APPLICABLE
        evidence = "; ".join([_fmt(cls, "best classical"), _fmt(fmr, "best FM")])
        rows.append((1, dataset, simulated, setting, comp, verdict, evidence))

        # claim 2
        comp = f"best DL (CNN or FM) vs best classical, and best FM vs best CNN, test {metric}"
        if cls is None or dl is None or fmr is None or cnn is None:
            verdict = MISSING
        else:
            main = interval_order(dl, cls)
            gap = interval_order(fmr, cnn)
            if main == "a>b":
                verdict = HOLDS if gap == "overlap" else PARTLY if gap in ("a>b", "b>a") else INCONCLUSIVE
            elif main == "b>a":
                verdict = FAILS
            else:
                verdict = INCONCLUSIVE
            verdict = verdict if setting == "texture" else NOT_APPLICABLE
        evidence = "; ".join(
            [_fmt(dl, "best DL"), _fmt(cls, "best classical"), _fmt(fmr, "best FM"), _fmt(cnn, "best CNN")]
        )
        rows.append((2, dataset, simulated, setting, comp, verdict, evidence))

        # claim 3
        comp = f"FM fine-tuned from spectral-in-study vs mae-in-study pretraining, test {metric}"
        spec = _best(best_pre, dataset, "spectral-in-study", column="pretraining")
        mae = _best(best_pre, dataset, "mae-in-study", column="pretraining")
        none = _best(best_pre, dataset, "none", column="pretraining")
        if spec is None or mae is None:
            verdict = MISSING
        elif setting == "spectral":
            verdict = _verdict_from_order(interval_order(spec, mae), "a>b")
        elif setting == "texture":
            verdict = _verdict_from_order(interval_order(spec, mae), "b>a")
        else:
            verdict = NOT_APPLICABLE
        evidence = "; ".join(
            [_fmt(spec, "spectral pretext"), _fmt(mae, "MAE pretext"), _fmt(none, "random init")]
        )
        rows.append((3, dataset, simulated, setting, comp, verdict, evidence))
    out = pd.DataFrame(
        rows, columns=["claim", "dataset", "simulated", "setting", "comparison", "verdict", "evidence"]
    )
    out.insert(1, "statement", out["claim"].map(CLAIMS))
    out["metric"] = metric
    return out.sort_values(["claim"], kind="mergesort").reset_index(drop=True)


def findings_date(df: pd.DataFrame) -> str:
    """The date of the newest result row (UTC, ``YYYY-MM-DD``): the date a findings note speaks for.

    Taken from the table rather than the clock so that regenerating the note from the same results does not
    change it.
    """
    if "timestamp" not in df or df["timestamp"].dropna().empty:
        return "unknown date"
    stamps = pd.to_datetime(df["timestamp"], errors="coerce", utc=True).dropna()
    return stamps.max().strftime("%Y-%m-%d") if not stamps.empty else "unknown date"


# ----------------------------------------------------------------------------------------------------------------
# missing results


def notebook_name(family: str, notebooks_dir: str | Path | None = None) -> str:
    """The notebook that writes a family's rows, e.g. ``"notebooks/03_cnn_models.ipynb"`` (or ``03_*.ipynb``)."""
    number = NOTEBOOK_FOR_FAMILY[family]
    folder = (
        Path(notebooks_dir)
        if notebooks_dir is not None
        else Path(__file__).resolve().parents[2] / "notebooks"
    )
    found = sorted(folder.glob(f"{number}_*.ipynb")) if folder.is_dir() else []
    return f"notebooks/{found[0].name}" if found else f"notebooks/{number}_*.ipynb"


def check_results(
    df: pd.DataFrame,
    datasets: Sequence[str],
    families: Sequence[str] = FAMILY_ORDER,
    *,
    notebooks_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Which ``(dataset, family)`` pairs have no row at all (neither a score nor a not-run row).

    A family that ran but could not produce numbers (``not_run`` rows) is *not* missing: its rows say why.

    Returns:
        ``dataset``, ``family``, ``notebook`` for each missing pair (empty when nothing is missing).
    """
    df = _normalise(df)
    present = set(zip(df["dataset"], df["family"], strict=True))
    missing = [
        {"dataset": d, "family": f, "notebook": notebook_name(f, notebooks_dir)}
        for d in datasets
        for f in families
        if (d, f) not in present
    ]
    return pd.DataFrame(missing, columns=["dataset", "family", "notebook"])


def require_results(
    df: pd.DataFrame,
    datasets: Sequence[str],
    families: Sequence[str] = FAMILY_ORDER,
    *,
    results_path: str | Path = _results.DEFAULT_PATH,
    notebooks_dir: str | Path | None = None,
) -> None:
    """Raise :class:`MissingResultsError` naming the notebooks to run first when rows are missing."""
    missing = check_results(df, datasets, families, notebooks_dir=notebooks_dir)
    if missing.empty:
        return
    lines = [
        f"  {r.dataset}: no {r.family} rows -> run {r.notebook} first"
        for r in missing.itertuples(index=False)
    ]
    first = sorted(set(missing["notebook"]))
    raise MissingResultsError(
        f"{results_path}: the results table lacks rows notebook 05 needs:\n"
        + "\n".join(lines)
        + f"\nRun {', '.join(first)} (or the whole chain: python -m helpers.chain) before this notebook."
    )


def texture_datasets(names: Iterable[str], knobs: Sequence[float] | None = None) -> list[str]:
    """The ``sim-texture-*`` names among ``names`` (only those whose knob is in ``knobs``, if given), by knob.

    Knobs are matched numerically, so ``sim-texture-0`` and ``sim-texture-0.0`` both match knob ``0.0``.
    """
    out = []
    for name in set(names):
        k = texture_knob(name)
        if k is None:
            continue
        if knobs is None or any(np.isclose(k, float(w)) for w in knobs):
            out.append(name)
    return sorted(out, key=dataset_sort_key)


def texture_dataset_names(knobs: Sequence[float], known: Iterable[str] = ()) -> list[str]:
    """Dataset names for a list of knobs: a ``known`` name with the same knob if there is one, else ``f"{k:g}"``."""
    known = list(known)
    out = []
    for k in knobs:
        hit = [n for n in known if texture_knob(n) is not None and np.isclose(texture_knob(n), float(k))]
        out.append(sorted(hit)[0] if hit else f"sim-texture-{float(k):g}")
    return out


def majority_floor(df: pd.DataFrame, floors: Mapping[str, float], *, split: str = "test") -> pd.DataFrame:
    """Each deep row's seed-mean overall accuracy against the share of its split's most frequent class.

    A model that does not beat "always predict the most frequent class" in overall accuracy has learnt nothing
    usable, whatever its mIoU; such a row needs an explanation before it is reported.

    Args:
        df: Results table.
        floors: Dataset -> share of the split's most frequent class (valid pixels; e.g. from
            :func:`helpers.data.datasets.class_counts`).
        split: The split scored.

    Returns:
        One row per (dataset, model) of the CNN and FM families: ``oa`` (seed mean), ``floor``, ``above``.
    """
    rows = scored(df)
    rows = rows[
        rows["family"].isin(["cnn", "fm"])
        & (rows["split"] == split)
        & (rows["metric"] == "oa")
        & (rows["class"] == "")
        & rows["dataset"].isin(list(floors))
    ]
    out = rows.groupby(["dataset", "model"], as_index=False)["value"].mean().rename(columns={"value": "oa"})
    out["floor"] = out["dataset"].map(floors)
    out["above"] = out["oa"] > out["floor"]
    return out.sort_values(["dataset", "model"], kind="stable").reset_index(drop=True)


def true_label_scores(agg: pd.DataFrame, ceilings: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Each model's test mIoU on the labels it was trained against and on the true labels, side by side (%).

    Datasets with label noise (``sim-crop`` 2.0) have the held-out split ``test_true_labels``: the same test images
    scored against the map before the noise. A model that learned the classes rather than the noise scores higher
    there; ``ceiling`` is the true map scored against the noisy test labels (no model's expected score on ``test``
    is above it).

    Args:
        agg: :func:`aggregate` output holding ``miou_macro`` on ``test`` and ``test_true_labels``.
        ceilings: Noise-free ceiling (mIoU, 0-1) per dataset, from its card.

    Returns:
        One row per (dataset, model): ``test``, ``test_true_labels`` (mean over seeds [interval], %), ``n``, and
        ``ceiling``; empty when no dataset has the split.
    """
    from helpers.data.datasets import TRUE_LABELS_SPLIT

    rows = agg[(agg["metric"] == "miou_macro") & (agg["class"] == "")]
    have = set(rows.loc[rows["split"] == TRUE_LABELS_SPLIT, "dataset"])
    rows = rows[rows["dataset"].isin(have) & rows["split"].isin(["test", TRUE_LABELS_SPLIT])]
    if rows.empty:
        return pd.DataFrame(columns=["dataset", "model", "family", "n", "test", TRUE_LABELS_SPLIT, "ceiling"])

    def fmt(r) -> str:
        return (
            f"{100 * r['mean']:.1f} [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]"
            if r["n"] > 1
            else f"{100 * r['mean']:.1f}"
        )

    rows = rows.assign(text=rows.apply(fmt, axis=1))
    wide = rows.pivot_table(
        index=["dataset", "family", "model"], columns="split", values="text", aggfunc="first"
    )
    n = rows.groupby(["dataset", "family", "model"])["n"].max()
    out = wide.join(n).reset_index()
    out["ceiling"] = out["dataset"].map(
        lambda d: f"{100 * ceilings[d]:.1f}" if ceilings and d in ceilings else ""
    )
    order = {f: i for i, f in enumerate(FAMILY_ORDER)}
    out = out.sort_values(
        ["dataset", "family", "model"], key=lambda s: s.map(order) if s.name == "family" else s
    )
    return out[["dataset", "family", "model", "n", "test", TRUE_LABELS_SPLIT, "ceiling"]].reset_index(
        drop=True
    )

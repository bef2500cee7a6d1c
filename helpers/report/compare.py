"""The comparison, computed from the results table alone: replicate aggregates, selection, gains, orderings.

Everything notebook 05 shows (figures, tables, the findings note) is a function of the tidy table written by
:mod:`helpers.results`; no number is typed here. The statistics live in :mod:`helpers.report.stats`, the claims'
verdicts in :mod:`helpers.report.verdicts`. The rules, each stated once:

* **Replicates.** The unit of replication is a replicate, the ``seed`` column: on simulated data a data draw plus a
  model seed, on real (fixed) data a model seed only, so there an interval covers seed variance only.
* **Model-level intervals** (:func:`aggregate`, :func:`bootstrap_groups`): every ``(dataset, model, split, metric,
  class)`` group of ``status == "ok"`` rows is summarised by its mean over replicates and a **95 % t-interval over
  replicates** (``mean ± t_{n−1} · s / sqrt(n)``, the bootstrap SE at its infinite-resample limit), named in the
  ``interval`` column and in every caption. Not the percentile bootstrap: with three values that is ``[min, max]``
  and covers about 75 %. One replicate has no interval (NaN, never zero width).
* **Families for the verdicts** (:func:`comparison_family`): "FM" means a model that starts from pretrained weights
  (``family == "fm"`` with any ``pretraining`` other than ``none``); ViT, SegFormer and the FM architecture from
  random init (``family == "fm"``, ``pretraining == "none"``) form their own family, *transformer (from scratch)*.
  The table's ``family`` column is not rewritten; the paper grouped these with the FMs, and tables that show its
  numbers say so.
* **Selection on validation, report on test.** The best model of a group on a dataset is the one with the highest
  mean *validation* score (:func:`select_best`; ties to the earlier model in :data:`MODEL_ORDER`, or in a verdict the
  earlier candidate); its *test* score is what is reported. A model without validation rows cannot be selected.
* **Verdicts from paired differences** (:func:`helpers.report.verdicts.findings`): each cell compares the best of two groups by the mean of
  their per-replicate test differences, over the replicates both sides ran (the count is printed), with the
  selection redone in every bootstrap resample (:func:`helpers.report.stats.paired_effect`). A difference is
  declared when its Holm-adjusted p (over every tested cell of the findings table) is below 0.05; *equivalent*
  means the 90 % interval lies within ±2 mIoU points (:data:`helpers.report.stats.EQUIVALENCE_MARGIN`, fixed up
  front). Each cell shows its effect size with its named interval.
* **Texture gain** (:func:`texture_gains`): per dataset, ``<m>_aug − <m>`` for every classical model with an
  ``_aug`` twin, and best CNN − best classical (both chosen on val), on test, as the mean of per-replicate
  differences over the replicates both models ran (paired), with a t-interval over replicates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import results as _results
from helpers.report import stats

#: Bootstrap resamples used when a caller does not say.
DEFAULT_N_BOOT = 2000
#: Confidence level of every interval in the study.
CI_LEVEL = 0.95

FAMILY_ORDER = ("classical", "cnn", "fm")
FAMILY_LABELS = {"classical": "classical ML", "cnn": "CNN / regular DL", "fm": "foundation model"}
#: The families of the verdicts (:func:`comparison_family`): FM means pretrained weights; transformers trained
#: from scratch (ViT, SegFormer, the FM architecture from random init) are their own family.
COMPARISON_FAMILY_ORDER = ("classical", "cnn", "transformer", "fm")
COMPARISON_FAMILY_LABELS = {
    "classical": "classical ML",
    "cnn": "CNN",
    "transformer": "transformer (from scratch)",
    "fm": "FM (pretrained weights)",
}
#: The deep families (claim 2: "DL models").
DEEP_FAMILIES = ("cnn", "transformer", "fm")
#: The paper grouped the transformers trained from scratch with its FMs; said wherever its numbers stand beside ours.
PAPER_GROUPING_NOTE = (
    "The paper grouped ViT and SegFormer trained from scratch with its FMs; this study's FM means a model that "
    "starts from pretrained weights, and counts transformers from scratch as their own family."
)
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

#: Canonical dataset order: the paper's real tasks, their simulated analogues, Indian Pines (the scene, then its chips),
#: then the sweep.
DATASET_ORDER = (
    "crop",
    "burn_scars",
    "sen1floods11",
    "sim-crop",
    "sim-burn",
    "sim-flood",
    "indian-pines-scene",
    "indian-pines-hls",
)

#: The notebook that writes each family's rows (the one to run first when they are missing).
NOTEBOOK_FOR_FAMILY = {"classical": "02", "cnn": "03", "fm": "04"}

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


def comparison_family(row: Mapping | pd.Series) -> str:
    """The family a row competes in for the verdicts: ``classical``, ``cnn``, ``transformer`` or ``fm``.

    "FM" means starting from pretrained weights: a ``family == "fm"`` row with any ``pretraining`` other than
    ``none`` (published weights, or MAE / spectral pretraining in the study). A ``family == "fm"`` row without
    pretraining (ViT, SegFormer, ``prithvi_arch_small_random``) is a transformer trained from scratch: comparing it
    as an FM would credit pretraining with what the architecture does. Classical and CNN rows keep their family
    (a CNN is the paper's "regular DL" whatever its initialisation).
    """
    family = str(row.get("family", "") or "")
    pretraining = str(row.get("pretraining", "") or "").strip().lower()
    if family == "fm":
        return "transformer" if pretraining in ("", "none", "nan") else "fm"
    return family


def comparison_families(frame: pd.DataFrame) -> pd.Series:
    """:func:`comparison_family` of every row of a frame with ``family`` and ``pretraining`` columns."""
    pre = frame["pretraining"] if "pretraining" in frame else pd.Series("", index=frame.index)
    fam = frame["family"].astype(object).where(frame["family"].notna(), "").astype(str)
    pre = pre.astype(object).where(pre.notna(), "").astype(str).str.strip().str.lower()
    scratch = pre.isin(["", "none", "nan"])
    out = fam.where(fam != "fm", np.where(scratch, "transformer", "fm"))
    return out.rename("comparison_family")


# ----------------------------------------------------------------------------------------------------------------
# table access


def normalise(df: pd.DataFrame) -> pd.DataFrame:
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
    df = normalise(df)
    keep = (df["status"] == "ok") & (df["split"] != "") & np.isfinite(df["value"].to_numpy(dtype=float))
    return df.loc[keep].reset_index(drop=True)


def not_run(df: pd.DataFrame) -> pd.DataFrame:
    """Every run that did not produce numbers, with its reason, one row per ``(dataset, model, seed)``."""
    df = normalise(df)
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
# intervals over replicates


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``values`` (NaNs dropped) and its t-interval over replicates (:func:`helpers.report.stats.mean_interval`).

    The name is kept for old callers; ``n_boot`` and ``seed`` are unused: the replicate bootstrap SE of a plain
    mean is ``s / sqrt(n)`` in the limit, which is what is used (no Monte Carlo noise).

    Returns:
        ``(mean, lo, hi)``. One value: ``(value, nan, nan)`` because a single replicate has no spread; no value:
        all NaN; identical values: a zero-width interval at the value.
    """
    del n_boot, seed
    v = np.asarray(values, dtype=np.float64).ravel()
    mean, _, _, lo, hi = stats.mean_intervals([v], level)
    return float(mean[0]), float(lo[0]), float(hi[0])


def bootstrap_groups(
    long: pd.DataFrame,
    keys: Sequence[str],
    *,
    value: str = "value",
    n_boot: int = DEFAULT_N_BOOT,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean, t-interval over replicates, spread and count per group of a long table (one row per replicate).

    The name is kept for its callers; ``n_boot`` and ``seed`` are unused (see :func:`bootstrap_ci`). Rows are
    sorted by ``seed`` (when present) inside each group, so the result does not depend on row order.

    Returns:
        One row per group: the key columns, ``n``, ``mean``, ``lo``, ``hi``, ``std``, ``seeds`` (the sorted
        replicates, comma-separated), ``se`` and ``interval`` (what ``lo``/``hi`` are, e.g. "95 % t-interval over
        3 replicates").
    """
    del n_boot, seed
    keys = list(keys)
    cols = [*keys, "n", "mean", "lo", "hi", "std", "seeds", "se", "interval"]
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
    mean, se, _, lo, hi = stats.mean_intervals(arrays, level)
    n = np.array([len(a) for a in arrays])
    out["n"] = n
    out["mean"] = mean
    out["lo"] = lo
    out["hi"] = hi
    out["std"] = np.array([a.std(ddof=1) if len(a) > 1 else np.nan for a in arrays])
    out["seeds"] = seeds.to_numpy()
    out["se"] = se
    out["interval"] = [stats.interval_name(level, int(k)) for k in n]
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
    """Replicate aggregates (mean, 95 % t-interval over replicates) of every measured group, plus run costs.

    Args:
        df: The results table (:func:`helpers.results.read`).
        metrics: Metrics to keep (all when ``None``), e.g. ``["miou_macro", "f1_macro"]``.
        splits: Splits to keep (all when ``None``).
        n_boot: Unused (kept for callers; see :func:`bootstrap_ci`).
        level: Interval level.
        seed: Unused (kept for callers).

    Returns:
        One row per ``(dataset, task, simulated, model, family, pretraining, split, metric, class)`` with ``n``,
        ``mean``, ``lo``, ``hi`` (the t-interval over replicates), ``std``, ``seeds``, ``se``, ``interval`` (its
        name), ``comparison_family`` (:func:`comparison_family`) and the replicate-mean ``runtime_s``,
        ``n_params``, ``peak_mem_mb`` of the model on that dataset.
    """
    rows = scored(df)
    if metrics is not None:
        rows = rows.loc[rows["metric"].isin(list(metrics))]
    if splits is not None:
        rows = rows.loc[rows["split"].isin(list(splits))]
    out = bootstrap_groups(rows, _GROUP_KEYS, n_boot=n_boot, level=level, seed=seed)
    out["comparison_family"] = comparison_families(out) if not out.empty else pd.Series(dtype=str)
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


def network_platform(frame: pd.DataFrame) -> pd.Series:
    """Each row's ``platform`` where the row is a network's; ``""`` for classical rows and where none is recorded.

    The one rule behind every "trained on different CPUs" the report prints (findings, regime map, pretext gains):
    classical rows reproduce bit for bit on every CPU the study has met, so their platform says nothing about their
    numbers, while a network's floating-point path differs from one CPU to the next (its run key names the platform).
    A committed table can hold the default chain's rows from one machine beside ``full.yaml`` rows computed on
    another; both are valid runs, but a paired difference across them also holds the two CPUs' paths (noise of the
    size two seeds' paths differ by, not a bias), which a reader should know.
    """
    plat = platforms(frame)
    return plat.where(frame["family"].astype(str) != "classical", "") if "family" in frame else plat


def platforms(frame: pd.DataFrame) -> pd.Series:
    """A table's ``platform`` column as text: ``""`` where a row records none or the table predates the column."""
    if "platform" not in frame:
        return pd.Series("", index=frame.index, dtype=object)
    return frame["platform"].astype(object).where(frame["platform"].notna(), "").astype(str)


def network_platforms(frame: pd.DataFrame, model: str) -> set[str]:
    """The CPUs a model's network rows in ``frame`` were trained on (:func:`network_platform`); empty if classical."""
    return {p for p in network_platform(frame)[frame["model"] == model] if p}


def cross_cpu(frame: pd.DataFrame, a: str, b: str) -> str:
    """``"a: CPU; b: CPU"`` when models ``a`` and ``b`` were trained on different CPUs in ``frame``, else ``""``.

    Empty as well when either side is classical or records no platform (:func:`network_platform`).
    """
    pa, pb = network_platforms(frame, a), network_platforms(frame, b)
    if not pa or not pb or pa == pb:
        return ""
    return f"{a}: {'; '.join(sorted(pa))}; {b}: {'; '.join(sorted(pb))}"


#: How the reports name the runs of a cell stopped by their step cap (the README's claim lines, the regime map's
#: findings), one wording wherever such a score is read as the lower bound it is.
CAPPED_NOTE = "stopped by the step cap, still improving (lower bounds)"


def capped_sides(d: pd.DataFrame, a: str, b: str, replicates: pd.Index) -> tuple[str, str, list[str]]:
    """Which side of a cell stopped on its step cap in a paired replicate: ``(sides, brief, evidence)``.

    A run stopped by its cap (``stopped_by == "cap"``) was still improving on validation: its score is a lower bound
    on what the run reaches at a plateau, not a converged score, so neither a claim's verdict nor a cell of the
    regime map may rest on it (:func:`helpers.report.stats.rests_on_cap`). ``sides`` is ``"a"``, ``"b"``, ``"ab"``
    or ``""``; ``brief`` names the capped models with their counts (the README's lines); the evidence also names the
    replicates.
    """
    if "stopped_by" not in d:
        return "", "", []
    runs = d.loc[d["seed"].isin(replicates)].drop_duplicates(["model", "seed"])
    sides, brief, said = "", [], []
    for side, model in (("a", a), ("b", b)):
        hit = runs.loc[(runs["model"] == model) & (runs["stopped_by"].astype(str) == "cap"), "seed"]
        if hit.empty:
            continue
        sides += side
        n = f"{len(hit)} of {len(replicates)} {'replicate' if len(replicates) == 1 else 'replicates'}"
        brief.append(f"{model} in {n}")
        said.append(
            f"{model} stopped by its step cap, not a plateau, in {n.replace(' rep', ' paired rep')} "
            f"({replicate_list(sorted(hit))}): its scores there are lower bounds"
        )
    return sides, "; ".join(brief), said


def replicate_list(replicates) -> str:
    """``"0,1,2"``: replicate ids as the evidence writes them (whole numbers without a decimal point)."""
    return ",".join(str(int(r)) if float(r).is_integer() else str(r) for r in replicates)


def cpu_label(platform: object) -> str:
    """A platform string (:func:`helpers.runs.runtime.platform_class`) short enough for a table cell or a legend.

    The machine token goes (every platform the study has met is ``x86_64``); the kernel level, the bfloat16 units and
    the torch release, which decide a network's floating-point path, stay. ``""`` where none is recorded.
    """
    if not isinstance(platform, str) or not platform:
        return ""
    head, _, rest = platform.partition(" ")
    return rest if head in ("x86_64", "aarch64", "arm64") and rest else platform


def cpu_names(platforms: Iterable[str]) -> dict[str, str]:
    """Each platform's name in a legend or caption: the words that tell it from the others (``""`` when one).

    ``x86_64 AVX512 bf16=amx+avx512 torch=2.13.0+cpu`` beside ``x86_64 AVX512 bf16=avx512 torch=2.13.0+cpu`` reads
    ``bf16=amx+avx512`` and ``bf16=avx512``: a legend entry short enough for one panel.
    """
    words = {p: cpu_label(p).split() for p in platforms}
    if len(words) < 2:
        return {p: "" for p in words}
    shared = set.intersection(*(set(w) for w in words.values()))
    return {p: " ".join(x for x in w if x not in shared) or cpu_label(p) for p, w in words.items()}


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
    df = normalise(df)
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


def val_test_gap(df: pd.DataFrame, metric: str = "miou_macro") -> pd.DataFrame:
    """Each model's drop from validation to test (points, mean over replicates), against the other rows' range.

    A model that alone loses much more than the others from validation to test is seeing a shift the others do not
    (the simulator once laid every test chip far from the training chips; only Presto, given each chip's location,
    could see it). ``outside`` flags a drop beyond the range of the other rows of the same dataset (rows of another
    encoder: the two Presto heads are not each other's reference); the largest and smallest drops of a dataset are
    outside by construction, so read the flag with the size of the excess.

    Returns:
        One row per (dataset, model) with both splits: ``val``, ``test``, ``drop`` (val − test, points), ``n``
        (replicates), ``others_min`` / ``others_max`` (the other models' drops) and ``outside``.
    """
    rows = scored(_results.full_labels(df))
    rows = rows[(rows["metric"] == metric) & (rows["class"] == "") & rows["split"].isin(["val", "test"])]
    if rows.empty:
        return pd.DataFrame(
            columns=["dataset", "model", "val", "test", "drop", "n", "others_min", "others_max", "outside"]
        )
    wide = rows.pivot_table(
        index=["dataset", "model", "seed"], columns="split", values="value", aggfunc="first"
    )
    wide = wide.dropna(subset=[c for c in ("val", "test") if c in wide]).reset_index()
    if "val" not in wide or "test" not in wide:
        return pd.DataFrame(
            columns=["dataset", "model", "val", "test", "drop", "n", "others_min", "others_max", "outside"]
        )
    wide["drop"] = 100 * (wide["val"] - wide["test"])
    out = (
        wide.groupby(["dataset", "model"])
        .agg(val=("val", "mean"), test=("test", "mean"), drop=("drop", "mean"), n=("seed", "nunique"))
        .reset_index()
    )
    out[["val", "test"]] = 100 * out[["val", "test"]]
    # rows sharing an encoder (presto_frozen_lgbm and presto_frozen_linear) see the same inputs: not each other's
    # reference
    encoder = out["model"].map(
        lambda m: m.split("_")[0] if m.split("_")[0] in ("presto", "galileo", "prithvi") else m
    )
    lo, hi = [], []
    for r, enc in zip(out.itertuples(index=False), encoder, strict=True):
        others = out.loc[(out["dataset"] == r.dataset) & (encoder != enc), "drop"]
        lo.append(float(others.min()) if len(others) else np.nan)
        hi.append(float(others.max()) if len(others) else np.nan)
    out["others_min"], out["others_max"] = lo, hi
    out["outside"] = (out["drop"] > out["others_max"]) | (out["drop"] < out["others_min"])
    return sort_frame(out)


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

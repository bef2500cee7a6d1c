"""One scene under several split protocols: what the split decides, computed from the results table alone.

A dataset of the scene layout (:mod:`helpers.data.scene`) records its split in every row (``protocol``). The same
scene can run under several protocols, each its own dataset: spatial blocks (the *reference*: no guard, the whole
scene as input), random pixels (*leaky*: a test pixel's neighbours trained the model), blocks with a guard (labels
near another split dropped), and blocks whose training input hides the other splits (*train-only*: the transductive
part of the protocol, measured rather than assumed). This module says what each variant changes against its
reference, model by model, paired over the replicates both ran:

* :func:`protocols`: the protocol of every scene dataset in the table, and which split leaks;
* :func:`best_per_family`: the best model of each family per scene dataset (chosen on validation), for the figure;
* :func:`effects`: each variant minus its reference, per model, test overall accuracy, with a t-interval over
  replicates (on a real scene the data are fixed, so the replicates are model seeds and the labels drawn only);
* :func:`texture_effects`: the texture features' gain (``<m>_aug − <m>``) under each protocol;
* :func:`findings_lines`: the lines ``findings.md`` and the README's results block print.

A variant's reference is the scene dataset of the table with the reference protocol whose name is the longest prefix
of the variant's name (``indian-pines-scene`` for ``indian-pines-scene-random``): name your variants after the
scene they split.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from helpers.report import compare

#: The metric of the protocol comparison: overall accuracy is what the hyperspectral literature reports per split
#: protocol, and what the most-frequent-class floor is in.
METRIC = "oa"


def protocols(table: pd.DataFrame) -> pd.DataFrame:
    """The split protocol of every scene dataset in the table (``dataset``, ``protocol``, ``leaky``, ``kind``).

    Chip datasets have none and are left out. ``leaky`` marks a random-pixel split: its test pixels' neighbours
    trained the model, so its score is never shown beside a block score without saying so. ``kind`` is
    :func:`variant_kind`.
    """
    cols = ["dataset", "protocol", "leaky", "kind"]
    if "protocol" not in table:
        return pd.DataFrame(columns=cols)
    rows = table.loc[table["protocol"].fillna("").astype(str) != "", ["dataset", "protocol"]]
    out = rows.drop_duplicates("dataset").reset_index(drop=True)
    out["kind"] = out["protocol"].map(variant_kind)
    out["leaky"] = out["kind"] == "random"
    return out[cols]


def variant_kind(protocol: str) -> str:
    """What a protocol varies against the reference: ``random``, ``train-only``, ``guard``, ``reference``."""
    if "random" in protocol:
        return "random"
    if "input train-only" in protocol:
        return "train-only"
    if "guard 0 px" not in protocol:
        return "guard"
    return "reference"


#: What each kind of variant measures, against the reference, as the findings say it.
MEANING = {
    "random": (
        "random pixels (LEAKY): a test pixel's neighbours trained the model, so the gain is leakage through "
        "neighbouring pixels, never a held-out score"
    ),
    "train-only": (
        "validation and test blocks zeroed out of the training input: the drop is the transductive part of the "
        "protocol (what the unlabelled spectra of the held-out blocks gave the model; the model also trains on "
        "zeros where test inputs are real)"
    ),
    "guard": (
        "labels within the guard of another split's block dropped: the change is what labels next to a held-out "
        "block were worth (fewer labels, and the classes they held)"
    ),
}


def references(table: pd.DataFrame) -> dict[str, str]:
    """Each variant scene dataset -> its reference dataset (longest name prefix with the reference protocol)."""
    p = protocols(table)
    refs = sorted(p.loc[p["kind"] == "reference", "dataset"], key=len, reverse=True)
    out = {}
    for name in p.loc[p["kind"] != "reference", "dataset"]:
        match = next((r for r in refs if name.startswith(r)), None)
        if match is not None:
            out[name] = match
    return out


def best_per_family(agg: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The best model of each family on every scene dataset, chosen on validation mIoU, with its test scores.

    Args:
        agg: :func:`helpers.report.compare.aggregate` of the table (``oa`` and ``miou_macro`` among its metrics).
        table: The results table (for each scene dataset's ``protocol``).

    Returns:
        One row per (scene dataset, family): ``protocol``, ``leaky``, ``model``, ``n`` and the test ``oa`` and
        ``miou`` (mean over replicates, with ``_lo``/``_hi``: the t-interval over replicates, NaN for one).
    """
    cols = ["dataset", "protocol", "leaky", "family", "model", "n"]
    cols += ["oa", "oa_lo", "oa_hi", "miou", "miou_lo", "miou_hi"]
    scenes = protocols(table)[["dataset", "protocol", "leaky"]]
    if scenes.empty or agg.empty:
        return pd.DataFrame(columns=cols)
    best = compare.select_best(agg.loc[agg["dataset"].isin(scenes["dataset"])], metric="miou_macro")
    best = best.loc[best["model"] != ""].rename(columns={"mean": "miou", "lo": "miou_lo", "hi": "miou_hi"})
    test_oa = agg.loc[(agg["split"] == "test") & (agg["metric"] == "oa") & (agg["class"] == "")]
    test_oa = test_oa[["dataset", "model", "mean", "lo", "hi"]].rename(
        columns={"mean": "oa", "lo": "oa_lo", "hi": "oa_hi"}
    )
    out = best.merge(test_oa, on=["dataset", "model"], how="left").merge(scenes, on="dataset")
    return compare.sort_frame(out[cols])


def _test_scores(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = compare.scored(table)
    rows = rows.loc[(rows["split"] == "test") & (rows["metric"] == metric) & (rows["class"] == "")]
    return rows[["dataset", "model", "seed", "value"]].drop_duplicates(["dataset", "model", "seed"])


def effects(table: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """Each protocol variant minus its reference, per model, on test, paired over the replicates both ran.

    Args:
        table: Results table (full-label rows; scene datasets are found by their ``protocol``).
        metric: Test metric (overall accuracy by default).

    Returns:
        One row per (variant, model run on both): ``dataset`` (the variant), ``reference``, ``kind``, ``protocol``,
        ``model``, ``reference_mean``, ``variant_mean`` and the paired difference ``n``, ``mean``, ``lo``, ``hi``
        (fractions; the t-interval over replicates, NaN for one), ``seeds``. Empty without variants.
    """
    cols = ["dataset", "reference", "kind", "protocol", "model", "reference_mean", "variant_mean"]
    cols += ["n", "mean", "lo", "hi", "seeds"]
    refs = references(table)
    if not refs:
        return pd.DataFrame(columns=cols)
    scores = _test_scores(table, metric)
    pieces = []
    for variant, reference in refs.items():
        a = scores.loc[scores["dataset"] == variant]
        b = scores.loc[scores["dataset"] == reference, ["model", "seed", "value"]]
        m = a.merge(b, on=["model", "seed"], suffixes=("_v", "_r"))
        if m.empty:
            continue
        m["value"] = m["value_v"] - m["value_r"]
        m["reference"] = reference
        pieces.append(m)
    if not pieces:
        return pd.DataFrame(columns=cols)
    long = pd.concat(pieces, ignore_index=True)
    out = compare.bootstrap_groups(long, ["dataset", "reference", "model"])
    means = long.groupby(["dataset", "model"], as_index=False)[["value_r", "value_v"]].mean()
    out = out.merge(means.rename(columns={"value_r": "reference_mean", "value_v": "variant_mean"}))
    p = protocols(table).set_index("dataset")
    out["kind"] = out["dataset"].map(p["kind"])
    out["protocol"] = out["dataset"].map(p["protocol"])
    order = {k: i for i, k in enumerate(MEANING)}
    out["_k"] = [
        (order.get(k, len(order)), d, compare.model_sort_key(m))
        for k, d, m in zip(out["kind"], out["dataset"], out["model"], strict=True)
    ]
    out = out.sort_values(["reference", "_k"], kind="mergesort").drop(columns="_k")
    return out[cols].reset_index(drop=True)


def texture_effects(table: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """The texture features' gain (``<m>_aug − <m>``, test, paired over replicates) on every scene dataset.

    :func:`helpers.report.compare.texture_gains` on the scene datasets, in ``metric``, the classical pairs only.

    Returns:
        One row per (scene dataset, pair): ``dataset``, ``kind``, ``leaky``, ``comparison``, ``n``, ``mean``,
        ``lo``, ``hi`` (fractions; t-interval over replicates).
    """
    cols = ["dataset", "kind", "leaky", "comparison", "n", "mean", "lo", "hi"]
    p = protocols(table)
    if p.empty:
        return pd.DataFrame(columns=cols)
    gains = compare.texture_gains(table[table["dataset"].isin(p["dataset"])], metric=metric)
    gains = gains[(gains["class"] == "") & gains["model_a"].str.endswith("_aug")]
    return gains.merge(p[["dataset", "kind", "leaky"]], on="dataset")[cols].reset_index(drop=True)


def _pts(mean: float, lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{100 * mean:+.1f}"
    return f"{100 * mean:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def findings_lines(table: pd.DataFrame, floors: Mapping[str, float] | None = None) -> list[str]:
    """The scene protocol's findings, one Markdown line per variant, texture line and floor check.

    Args:
        table: Results table (full-label rows).
        floors: Scene dataset -> share of its test split's most frequent class (optional: without it the floor
            lines are left out; a scene of the table missing from it gets a line saying its floor was not computed,
            so findings written without a scene's data say what they lack).

    Returns:
        Lines starting with ``- ``; empty without scene rows.
    """
    p = protocols(table)
    if p.empty:
        return []
    eff = effects(table)
    lines = []
    for (variant, reference), rows in eff.groupby(["dataset", "reference"], sort=False):
        n = int(rows["n"].max())
        kind = str(rows["kind"].iloc[0])
        ups = int((rows["mean"] > 0).sum())
        per_model = "; ".join(
            f"{m} {100 * r:.1f} → {100 * v:.1f} ({_pts(d, lo, hi)})"
            for m, r, v, d, lo, hi in rows[
                ["model", "reference_mean", "variant_mean", "mean", "lo", "hi"]
            ].itertuples(index=False)
        )
        lines.append(
            f"- **`{variant}`** ({rows['protocol'].iloc[0]}) against `{reference}`: {MEANING.get(kind, kind)}. "
            f"Test OA higher for {ups} of {len(rows)} models; per model, reference → variant (%) and the paired "
            f"difference in points [95 % t-interval over {n} replicates: model seeds on a fixed scene]: {per_model}."
        )
    tex = texture_effects(table)
    if len(tex):
        parts = []
        for name in p.sort_values(["leaky", "dataset"])["dataset"]:
            rows = tex.loc[tex["dataset"] == name]
            if rows.empty:
                continue
            gains = ", ".join(
                f"{c} {_pts(m, lo, hi)}"
                for c, m, lo, hi in rows[["comparison", "mean", "lo", "hi"]].itertuples(index=False)
            )
            parts.append(f"`{name}`{' (LEAKY)' if bool(rows['leaky'].iloc[0]) else ''}: {gains}")
        lines.append(
            "- **Texture features by protocol** (test OA points, paired over replicates, 95 % t-interval): "
            + "; ".join(parts)
            + ". On random pixels a texture window holds labelled pixels of the same field as the test pixel, so "
            "its gain there is inflated by the leak; on blocks it is the texture features' held-out worth."
        )
    if floors is not None:
        floor = compare.majority_floor(table, {k: v for k, v in floors.items() if k in set(p["dataset"])})
        for name, rows in floor.groupby("dataset", sort=False):
            below = rows.loc[~rows["above"]]
            verdict = (
                "every deep row is above it"
                if below.empty
                else "below it: "
                + ", ".join(f"{m} {100 * o:.1f}" for m, o in below[["model", "oa"]].itertuples(index=False))
            )
            leaky = bool(p.set_index("dataset").loc[name, "leaky"])
            lines.append(
                f"- **`{name}`**{' (LEAKY)' if leaky else ''} against its most frequent test class "
                f"({100 * float(rows['floor'].iloc[0]):.1f} % of test pixels; test OA, mean over replicates): "
                f"{verdict} ({len(rows)} CNN and FM rows; lowest {100 * rows['oa'].min():.1f}, "
                f"highest {100 * rows['oa'].max():.1f})."
            )
        # a scene whose data was not readable gets a line saying so, not a silent gap beside its variants' checks
        for name in p.loc[~p["dataset"].isin(list(floors)), "dataset"]:
            lines.append(
                f"- **`{name}`** against its most frequent test class: not computed, its data was not readable where "
                "these findings were written (the scene's folder under `data_dir`)."
            )
    return lines

"""The paper's three claims tested on the results table: one verdict per (claim, dataset or knob) with its effect.

Each cell compares the best of two groups of models (chosen on validation, the choice redone in every resample) by
the mean of their per-replicate test differences, with a named interval and a Holm-adjusted p over every tested cell
(:func:`helpers.report.stats.paired_effect`); a verdict says what the data show for the claim as stated
(:data:`CLAIMS`), never a setting tuned toward it. The statistics live in :mod:`helpers.report.stats` and the
aggregates and selection in :mod:`helpers.report.compare`; this module only decides what each claim's test is.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import results as _results
from helpers.report import stats
from helpers.report.compare import (
    CI_LEVEL,
    COMPARISON_FAMILY_ORDER,
    DEEP_FAMILIES,
    DEFAULT_N_BOOT,
    capped_sides,
    comparison_families,
    cross_cpu,
    ordered_datasets,
    ordered_models,
    replicate_list,
    scored,
    texture_knob,
)
from helpers.report.regime import budget_order

#: The paper's reading of each task (STUDY.md §1): texture of little use (spectral) or labels partly need texture.
TASK_SETTING = {"flood": "spectral", "crop": "spectral", "burn": "texture"}

HOLDS = "holds"
FAILS = "does not hold"
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


#: What each kind of expectation needs (a = the first group of a cell, b = the second).
EXPECTATIONS = {
    ">": "a > b",
    "<": "a < b",
    ">=": "a > b or equivalent",
    "<=": "a < b or equivalent",
    "~": "equivalent (|a − b| within the margin)",
}

_PRETEXT_SUFFIX = re.compile(r"_(random|none|scratch|mae|spectral)$")
_PRETEXTS = {"mae-in-study": "MAE", "spectral-in-study": "spectral"}


def architecture(model: str) -> str:
    """A model's architecture: its name without the pretraining suffix.

    ``prithvi_arch_small_mae`` -> ``prithvi_arch_small``, so each pretext is compared with random init of the same
    network.
    """
    return _PRETEXT_SUFFIX.sub("", str(model))


def _verdict(expect: str, decision: str, effect: stats.Effect) -> str:
    """The verdict of a cell from its decision (:func:`helpers.report.stats.decide`) and what the claim expects.

    ``"~"`` (the FM-CNN gap "is not obvious") is about size, so it holds when the equivalence test does, whether or
    not a difference inside the margin is also significant; it fails on a significant difference outside it.
    """
    if expect == "~":
        if effect.equivalent:
            return HOLDS
        return FAILS if decision in (stats.A_GT_B, stats.B_GT_A) else INCONCLUSIVE
    if decision == stats.UNDETERMINED:
        return INCONCLUSIVE
    wins = {">": {stats.A_GT_B}, "<": {stats.B_GT_A}}
    wins[">="] = {stats.A_GT_B, stats.EQUIVALENT}
    wins["<="] = {stats.B_GT_A, stats.EQUIVALENT}
    return HOLDS if decision in wins[expect] else FAILS


def _wide(rows: pd.DataFrame, split: str) -> pd.DataFrame:
    """Replicate × model scores of one split (one dataset, one metric); duplicates are an error, never averaged."""
    part = rows.loc[rows["split"] == split]
    dup = part.duplicated(["seed", "model"], keep=False)
    if dup.any():
        bad = part.loc[dup, ["model", "seed"]].drop_duplicates().head(3).to_dict("records")
        raise ValueError(
            f"findings: several {split} rows per (model, replicate), e.g. {bad}; pass one label budget "
            "(helpers.results.at_budget) and one row per run"
        )
    return part.pivot(index="seed", columns="model", values="value")


def _chip_counts(
    d: pd.DataFrame, simulated: bool, models: Sequence[str], chips_dir: str | Path | None
) -> dict | None:
    """Per-chip test counts for the crossed bootstrap: **the one place they enter the verdicts**.

    Returns ``(replicate, model) -> (tp, fp, fn)`` (:func:`helpers.results.read_chip_counts`, test split) for a
    dataset whose test chips are the same in every replicate (real data, ``simulated`` False), so
    :func:`helpers.report.stats.paired_effect` resamples test chips too. ``None`` (replicates only) when no
    ``chips_dir`` is given (the default, until every real-data run has saved its counts), for simulated data
    (each replicate has its own test chips, a nested design: its scores already carry test-chip variance), or when
    any run lacks counts under its ``run_key`` or lists other chips: a partial crossed bootstrap would pair
    different test sets. The interval's name says which was done.
    """
    if chips_dir is None or simulated:
        return None
    test = d.loc[d["split"] == "test"]
    run_keys = (
        test["run_key"].astype(object).where(test["run_key"].notna(), "").astype(str)
        if "run_key" in test
        else pd.Series("", index=test.index)
    )
    # each run's counts sit under its own label budget (a budget below `all` adds a folder level): read at the
    # `all` path, a 10 px/class run's key never matches and the crossed bootstrap was silently dropped
    budgets = _results.budget_tags(test)
    keys = dict(
        zip(zip(test["model"], test["seed"], strict=True), zip(run_keys, budgets, strict=True), strict=True)
    )
    out, ids = {}, None
    for (model, rep), (key, budget) in keys.items():
        if model not in models:
            continue
        c = _results.read_chip_counts(
            str(d["dataset"].iloc[0]), model, int(rep), budget, chips_dir=chips_dir, run_key=str(key) or None
        )
        c = (c or {}).get("test")
        if c is None or (ids is not None and not np.array_equal(ids, c["chip_ids"])):
            return None
        ids = c["chip_ids"]
        out[(rep, model)] = (c["tp"], c["fp"], c["fn"])
    return out or None


def _cells(
    setting: str, cand: Mapping[str, list[str]], pretexts: Mapping[str, Mapping[str, list[str]]]
) -> list:
    """The verdict cells of one dataset: ``(claim, cell, comparison, a_label, a, b_label, b, expect, applies)``."""
    cells = [
        (1, "1", "best classical vs best FM", "best classical", cand["classical"], "best FM", cand["fm"],
         ">=", setting == "spectral"),
        (2, "2a", "best deep (CNN, FM or transformer from scratch) vs best classical", "best deep", cand["deep"],
         "best classical", cand["classical"], ">", setting == "texture"),
        (2, "2b", "best FM vs best CNN", "best FM", cand["fm"], "best CNN", cand["cnn"], "~", setting == "texture"),
    ]  # fmt: skip
    aligned = {"spectral": "spectral-in-study", "texture": "mae-in-study"}.get(setting)
    archs = sorted(pretexts) or [""]
    for arch in archs:
        p = pretexts.get(arch, {})
        tag = f" ({arch})" if len(archs) > 1 else ""
        on = f" of {arch}" if arch else ""
        if not arch or set(p) & set(
            _PRETEXTS
        ):  # in-study pretexts (or nothing at all: their cells say "missing")
            for pre in ("mae-in-study", "spectral-in-study"):
                name = _PRETEXTS[pre]
                expect = ">" if pre == aligned else "<="
                cells.append(
                    (3, f"3 {name} vs random{tag}", f"{name} pretext vs random init{on}", f"{name} pretext",
                     p.get(pre, []), "random init", p.get("none", []), expect, aligned is not None)
                )  # fmt: skip
            cells.append(
                (3, f"3 MAE vs spectral{tag}", f"MAE vs spectral pretext{on}", "MAE pretext",
                 p.get("mae-in-study", []), "spectral pretext", p.get("spectral-in-study", []),
                 ">" if setting == "texture" else "<", aligned is not None)
            )  # fmt: skip
        if "published" in p:  # a real FM's published weights against the identical network from random init
            cells.append(
                (3, f"3 published vs random{tag}", f"published pretraining vs random init{on}",
                 "published weights", p["published"], "random init", p.get("none", []), ">", aligned is not None)
            )  # fmt: skip
    return cells


def findings(
    df: pd.DataFrame,
    *,
    metric: str = "miou_macro",
    n_boot: int = DEFAULT_N_BOOT,
    level: float = CI_LEVEL,
    seed: int = 0,
    agg: pd.DataFrame | None = None,
    margin: float = stats.EQUIVALENCE_MARGIN,
    chips_dir: str | Path | None = None,
    label_budget: str = "all",
    claims: Collection[int] | None = None,
) -> pd.DataFrame:
    """Whether each of the paper's three claims holds on each dataset here, tested as stated, with effect sizes.

    Each *cell* compares the best model of group A with the best of group B (each chosen on mean validation
    ``metric``, the choice redone in every bootstrap resample) by their paired test difference A − B over the
    replicates both ran (:func:`helpers.report.stats.paired_effect`: a t-interval with a bootstrap SE). The
    p-values of every tested cell of the table are Holm-adjusted together; the decision is ``a>b`` / ``b>a`` when
    the adjusted p < 1 − ``level``, else ``equivalent`` (TOST within ±``margin``) or ``undetermined``. The cells
    (families by :func:`comparison_family`; STUDY.md §1):

    1. *Classical ≥ FM where texture is of little use* (``"spectral"`` datasets): best classical vs best FM
       (pretrained). Holds if classical > FM or equivalent; does not hold if FM > classical; else inconclusive.
    2. *DL wins where labels partly depend on texture; the FM-CNN gap is not obvious* (``"texture"`` datasets).
       2a: best deep (CNN, FM or transformer from scratch) vs best classical: holds if deep > classical, does not
       hold if classical > deep or equivalent. 2b: best FM vs best CNN: holds if equivalent within the margin
       (the gap is "not obvious"), does not hold on a significant gap outside it.
    3. *An FM helps only as far as its pretext aligns with the task* (``"spectral"`` or ``"texture"``), per
       architecture with in-study pretraining: the aligned pretext (spectral on spectral datasets, MAE on texture
       ones) vs random init of the same architecture must win; the misaligned one vs random init must not
       (random init better or equivalent); MAE vs spectral must have the sign of the setting. Per architecture
       with published weights and a random-init row of the identical network (Galileo-nano fine-tuned), the
       published pretraining vs random init must win in both settings: its pretext (masked modelling of
       multi-sensor space-time data, local and global targets) is built for both spectral and spatial tasks.

    A cell outside its setting (see :func:`dataset_setting`) gets ``"not the paper's setting"`` and is not tested
    (no adjusted p; its effect is still shown); a cell lacking a model on either side gets ``"missing"``. A model
    run on fewer replicates than another candidate of its group is no candidate of that cell (the evidence names
    it): pairing on the replicates it ran would shrink the whole cell to those (:func:`_complete_candidates`). A
    run stopped by its step cap rather than a plateau scores a lower bound: a cell whose decision such a run could
    have made (anything but the capped side winning) is ``"inconclusive"``, and its evidence names the runs
    (:func:`helpers.report.compare.capped_sides`).

    Args:
        df: Results table (the rows of ``label_budget`` are used: :func:`helpers.results.at_budget`).
        metric: The aggregate metric compared (validation for the choice, test for the effect).
        n_boot: Bootstrap resamples per cell.
        level: Interval level; α = 1 − level for the decisions.
        seed: Bootstrap seed.
        agg: Unused (kept for callers that pass :func:`aggregate` output).
        margin: Equivalence margin (fraction), stated up front.
        chips_dir: Folder of the runs' per-chip counts (:func:`helpers.results.read_chip_counts`); given, a real
            dataset whose every compared run saved them gets the crossed bootstrap over test chips too
            (:func:`_chip_counts`). ``None`` (default): replicates only, as the interval's name then says.
        label_budget: The label budget whose runs are compared (``"all"``: full labels, the study's findings). Claim
            3 is also asked at the smallest budget, where pretraining is supposed to pay most; each budget is its own
            table, with its own Holm correction over its own tested cells.
        claims: The claims whose cells are computed (``None``: all three); the others' cells are left out, so they
            take no part in the Holm correction either.

    Returns:
        One row per ``(cell, dataset)``: ``claim``, ``cell``, ``statement``, ``dataset``, ``simulated``,
        ``setting``, ``comparison``, ``expected``, ``model_a``, ``model_b``, ``n_replicates``, ``replicates``,
        ``estimate``, ``se``, ``df``, ``lo``, ``hi``, ``p``, ``p_adjusted``, ``decision``, ``verdict``, ``effect``
        (the effect with its named interval), ``interval``, ``per_replicate`` (tuple of the paired differences),
        ``evidence``, ``capped`` (the compared models with a run stopped by its step cap, and in how many paired
        replicates, e.g. ``"unet in 1 of 3 replicates"``; ``""`` if none:
        :func:`helpers.report.compare.capped_sides`), ``metric``.
    """
    del agg
    alpha = 1.0 - level
    rows_all = scored(_results.at_budget(df, label_budget))
    rows_all = rows_all.loc[
        (rows_all["metric"] == metric) & (rows_all["class"] == "") & rows_all["split"].isin(["val", "test"])
    ]
    rows_all = rows_all.assign(cfam=comparison_families(rows_all))
    out = []
    for dataset in ordered_datasets(rows_all["dataset"]):
        d = rows_all.loc[rows_all["dataset"] == dataset]
        task = str(d["task"].iloc[0])
        simulated = bool(d["simulated"].iloc[0])
        setting = dataset_setting(dataset, task)
        val, test = _wide(d, "val"), _wide(d, "test")
        runnable = [m for m in ordered_models(d) if m in val.columns and m in test.columns]
        n_ran = (val[runnable].notna() & test[runnable].notna()).sum() if runnable else pd.Series(dtype=int)
        cand, pretexts = _candidates(d, runnable)
        chips = _chip_counts(d, simulated, runnable, chips_dir)
        for claim, cell, comp, la, a, lb, b, expect, applies in _cells(setting, cand, pretexts):
            if claims is not None and claim not in claims:
                continue
            (a, b), left_out = _complete_candidates((a, b), n_ran)
            row = dict(
                claim=claim, cell=cell, dataset=dataset, simulated=simulated, setting=setting,
                comparison=f"{comp}, test {metric}", expected=EXPECTATIONS[expect], applies=applies,
            )  # fmt: skip
            if not a or not b:
                missing = ", ".join(lbl for lbl, g in ((la, a), (lb, b)) if not g)
                out.append(
                    row
                    | dict(
                        verdict=MISSING,
                        evidence=f"no {missing} model with validation and test rows{left_out}",
                    )
                )
                continue
            eff = stats.paired_effect(
                val, test, a, b, chips=chips, n_boot=n_boot, seed=seed, level=level, margin=margin
            )
            ran = test.index[test[a + b].notna().any(axis=1)]
            reps = replicate_list(eff.per_replicate.index)
            tm = test.loc[eff.per_replicate.index]
            parts = [
                _side(la, eff.a_model, tm, eff.selected_a),
                _side(lb, eff.b_model, tm, eff.selected_b),
                f"paired over {eff.n_replicates} of {len(ran)} replicate{'' if len(ran) == 1 else 's'} "
                f"({reps or 'none'})",
            ]
            if claim == 3:
                parts += _precision_mismatch(d, eff.a_model, eff.b_model)
            parts += _platform_mismatch(d, eff.a_model, eff.b_model)
            sides, capped, said = capped_sides(d, eff.a_model, eff.b_model, eff.per_replicate.index)
            parts += said
            row |= dict(
                effect=eff, model_a=eff.a_model, model_b=eff.b_model, n_replicates=eff.n_replicates,
                replicates=reps, estimate=eff.estimate, se=eff.se, df=eff.df, lo=eff.lo, hi=eff.hi, p=eff.p,
                interval=eff.interval_name, per_replicate=tuple(float(x) for x in eff.per_replicate),
                evidence="; ".join(parts) + left_out, capped=capped, capped_sides=sides,
            )  # fmt: skip
            out.append(row)
    cols = [
        "claim", "cell", "statement", "dataset", "simulated", "setting", "comparison", "expected", "model_a",
        "model_b", "n_replicates", "replicates", "estimate", "se", "df", "lo", "hi", "p", "p_adjusted", "decision",
        "verdict", "effect", "interval", "per_replicate", "evidence", "capped", "metric",
    ]  # fmt: skip
    if not out:
        return pd.DataFrame(columns=cols)
    frame = _decide(pd.DataFrame(out).reindex(columns=[*cols, "applies", "capped_sides"]), alpha)
    frame["metric"] = metric
    return frame.reindex(columns=cols).reset_index(drop=True)


def claim3_at_budgets(
    df: pd.DataFrame,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    chips_dir: str | Path | None = None,
) -> dict[str, pd.DataFrame]:
    """Claim 3's verdict cells at every label budget below full labels: ``{budget tag: findings}``.

    Pretraining is supposed to pay most where labels are few, so the findings' claim-3 cells (each pretext and the
    published weights against random init of the same network; :func:`helpers.report.verdicts.findings`) are asked
    again on the runs of each smaller budget, with the same candidates, rule and margin. Each budget is its own
    table with its own Holm correction: its cells are a second family of tests, not pooled with the full-label
    findings. An in-study pretext cell whose pretext or random-init twin did not run at that budget says ``missing``;
    a published-weights row whose twin did not run there makes no cell (as at full labels: :func:`_candidates`).

    Args:
        df: Results table as :func:`helpers.results.read` returns it (every label budget).
        n_boot: Bootstrap resamples per cell.
        seed: Bootstrap seed.
        chips_dir: The runs' per-chip counts (real data: test chips resampled too), as for the findings.
    """
    budgets = set(scored(df)["label_budget"].astype(str)) - {"all"}
    return {
        b: findings(df, label_budget=b, claims=(3,), n_boot=n_boot, seed=seed, chips_dir=chips_dir)
        for b in sorted(budgets, key=budget_order)
    }


def _candidates(d: pd.DataFrame, runnable: Sequence[str]) -> tuple[dict[str, list[str]], dict]:
    """The candidates of one dataset's cells: per comparison family (and ``deep``), and per architecture its pretexts.

    Pretexts are ``{architecture: {pretraining: [models]}}``; published weights count only beside the same network
    from random init, and only architectures with something to compare with random init are kept.
    """
    info = d.drop_duplicates("model").set_index("model")
    fam = info["cfam"]
    cand = {f: [m for m in runnable if fam[m] == f] for f in COMPARISON_FAMILY_ORDER}
    cand["deep"] = [m for m in runnable if fam[m] in DEEP_FAMILIES]
    pretexts: dict[str, dict[str, list[str]]] = {}
    for m in runnable:
        pre = str(info.loc[m, "pretraining"] or "none")
        if info.loc[m, "family"] == "fm" and pre in ("none", "published", *_PRETEXTS):
            pretexts.setdefault(architecture(m), {}).setdefault(pre, []).append(m)
    for p in pretexts.values():  # published weights count only beside the same network from random init
        if "none" not in p:
            p.pop("published", None)
    return cand, {a: p for a, p in pretexts.items() if set(p) - {"none"}}


def _decide(frame: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Holm-adjusted p over every tested cell, then each cell's decision, verdict and effect text, in cell order."""
    for c in ("model_a", "model_b", "replicates", "interval", "decision", "capped"):
        frame[c] = frame[c].astype(object).where(frame[c].notna(), "")
    frame["p"] = pd.to_numeric(frame["p"], errors="coerce")
    tested = frame["applies"] & frame["verdict"].isna() & np.isfinite(frame["p"].to_numpy(dtype=float))
    frame["p_adjusted"] = np.nan
    frame.loc[tested, "p_adjusted"] = stats.holm(frame.loc[tested, "p"].to_numpy(dtype=float))
    decisions, verdicts, texts = [], [], []
    for r in frame.itertuples(index=False):
        eff = r.effect if isinstance(r.effect, stats.Effect) else None
        if eff is None:
            decisions.append("")
            verdicts.append(r.verdict)
            texts.append("")
            continue
        texts.append(stats.format_effect(eff))
        if not r.applies:
            decisions.append("")
            verdicts.append(NOT_APPLICABLE)
            continue
        decision = stats.decide(eff, r.p_adjusted, alpha)
        decisions.append(decision)
        verdict = _verdict(_expect_key(r.expected), decision, eff)
        verdicts.append(INCONCLUSIVE if stats.rests_on_cap(decision, r.capped_sides) else verdict)
    frame["decision"], frame["verdict"], frame["effect"] = decisions, verdicts, texts
    frame["statement"] = frame["claim"].map(CLAIMS)
    for c in ("n_replicates", "df"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").fillna(0).astype(int)
    cell_rank = {c: i for i, c in enumerate(dict.fromkeys(frame["cell"]))}
    frame["_k"] = [(cl, cell_rank[c]) for cl, c in zip(frame["claim"], frame["cell"], strict=True)]
    frame = frame.sort_values("_k", kind="mergesort")
    return frame


def _complete_candidates(groups: Sequence[list[str]], ran: pd.Series) -> tuple[list[list[str]], str]:
    """Each group's candidates run on as many replicates as its most complete one, and a note on the rest.

    A model run on fewer replicates than another candidate of its group cannot compete: the comparison pairs only
    the replicates every candidate ran, so one partial row would cut its whole cell down to those replicates. A
    group whose best-covered model is itself partial keeps it (the cell is then paired over fewer replicates, as it
    says).
    """
    kept, dropped = [], []
    for group in groups:
        top = max((int(ran[m]) for m in group), default=0)
        kept.append([m for m in group if int(ran[m]) == top])
        dropped += [f"{m} ({int(ran[m])} of {top})" for m in group if int(ran[m]) < top]
    note = (
        "; left out, run on fewer replicates than its group's others: " + ", ".join(dropped)
        if dropped
        else ""
    )
    return kept, note


def _precisions(d: pd.DataFrame, model: str) -> set[str]:
    """The training precisions a model's rows name in their note (``trained with N thread(s), <precision>``)."""
    notes = d.loc[d["model"] == model, "note"].astype(str) if "note" in d else pd.Series(dtype=str)
    return {"bf16 autocast" if "bf16" in n else "float32" for n in notes if "trained with" in n}


def _precision_mismatch(d: pd.DataFrame, a: str, b: str) -> list[str]:
    """A claim-3 cell compares one network from two starting points, so nothing else may differ between its sides.

    Rows trained before and after a precision change (bf16 autocast against float32) can sit side by side in a
    committed table until the older ones are rerun; the evidence then says so instead of passing the difference off
    as the pretraining's.
    """
    pa, pb = _precisions(d, a), _precisions(d, b)
    if not pa or not pb or pa == pb:
        return []
    return [
        f"fine-tuned in different precisions ({a}: {', '.join(sorted(pa))}; {b}: {', '.join(sorted(pb))})"
    ]


def _platform_mismatch(d: pd.DataFrame, a: str, b: str) -> list[str]:
    """A cell whose two sides' networks were trained on different CPUs says so (:func:`compare.cross_cpu`)."""
    sides = cross_cpu(d, a, b)
    return [f"trained on different CPUs ({sides})"] if sides else []


def _expect_key(text: str) -> str:
    return next(k for k, v in EXPECTATIONS.items() if v == text)


def _side(label: str, model: str, test: pd.DataFrame, shares: Mapping[str, float]) -> str:
    """``"best FM prithvi_mae: test 71.0 (mean of the paired replicates; chosen in 100 % of resamples)"``."""
    if not model:
        return f"{label}: none"
    mean = float(test[model].mean()) if model in test and len(test) else float("nan")
    chosen = ""
    if len(shares) > 1:
        others = ", ".join(f"{m} {100 * v:.0f} %" for m, v in shares.items() if m != model and v > 0)
        chosen = f"; chosen in {100 * shares.get(model, 0.0):.0f} % of resamples" + (
            f" (else {others})" if others else ""
        )
    return f"{label} {model}: test {100 * mean:.1f}{chosen}"


def findings_date(df: pd.DataFrame) -> str:
    """The date of the newest result row (UTC, ``YYYY-MM-DD``): the date a findings note speaks for.

    Taken from the table rather than the clock so that regenerating the note from the same results does not
    change it.
    """
    if "timestamp" not in df or df["timestamp"].dropna().empty:
        return "unknown date"
    stamps = pd.to_datetime(df["timestamp"], errors="coerce", utc=True).dropna()
    return stamps.max().strftime("%Y-%m-%d") if not stamps.empty else "unknown date"

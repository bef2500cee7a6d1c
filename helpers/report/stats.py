"""Intervals over replicates and paired, selection-aware effects: the statistics behind every verdict.

Why this module exists: with three seeds, every percentile-bootstrap interval of a mean is ``[min, max]`` (a
resample of three copies of the minimum has probability 1/27 > 2.5 %), which covers the middle of the seed
distribution about 75 % of the time, not 95 %; and choosing each family's best model on validation is itself
uncertain, which a per-model interval leaves out. The rules here, each stated once:

* **Unit of replication: the replicate** (the ``seed`` column of the results table). On simulated data a replicate
  is a data draw plus a model seed; on real data it is a model seed on fixed data, so there an interval over
  replicates covers seed variance only (and test-chip variance only when per-chip counts are given, below).
* **t interval with a bootstrap standard error.** Over ``R`` replicates the interval is
  ``estimate ± t_{R−1, 1−α/2} · SE`` with ``SE = sd(bootstrap estimates) · sqrt(R / (R − 1))``: the bootstrap
  carries whatever the estimate does (a re-selection, a ratio of summed counts), the factor undoes the plug-in
  shrinkage of resampling ``R`` values, and the t quantile with ``R − 1`` degrees of freedom pays for estimating
  the spread from few replicates (the percentile bootstrap does not, which is why it under-covers). For a plain
  mean, the corrected bootstrap SE *is* ``s / sqrt(R)`` in the limit of infinite resamples, so
  :func:`mean_interval` and :func:`mean_intervals` use that limit directly (no Monte Carlo noise, byte-stable
  tables).
* **Selection inside the resample.** :func:`paired_effect` chooses the best model of each group by mean
  *validation* score, and redoes that choice in every bootstrap resample, so a choice that flips between nearly
  tied models widens the interval instead of hiding in it.
* **Nested vs crossed test chips.** When each replicate has its own test chips (simulated data: a new draw per
  replicate), each replicate's score already carries its test-chip variance and only replicates are resampled
  (Davison & Hinkley 1997, *Bootstrap Methods and their Application*, §3.8: resample the top level only). When the
  test chips are the same in every replicate (real data, a fixed test set), replicate resampling alone would miss
  the test-set variance, so per-chip counts can be given and each resample also draws chips with replacement
  (once, shared by all replicates and models: the comparison stays paired).
* **Decisions.** A difference is declared when its Holm-adjusted p-value (:func:`holm`, over the verdict cells of
  one table) is below α; otherwise two models are *equivalent* when the ``1 − 2α`` interval lies inside
  ``±`` :data:`EQUIVALENCE_MARGIN` (TOST), and *undetermined* when neither. No interval (one replicate, or a
  degenerate bootstrap) is always undetermined.
* **Every printed interval names what it is** (:func:`format_effect`, :attr:`Effect.interval_name`): its level,
  kind, and how many replicates it is over.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as _st

#: Equivalence margin (fraction of mIoU, i.e. 2 points): fixed before any result was looked at, as the largest
#: difference a user choosing between two models would call "not obvious"; never tuned to the results.
EQUIVALENCE_MARGIN = 0.02

#: Default confidence level of every interval.
LEVEL = 0.95

#: Below this (a fraction), a spread is floating-point rounding, not variation.
_TINY = 1e-12

#: Decisions of :func:`decide`.
A_GT_B = "a>b"
B_GT_A = "b>a"
EQUIVALENT = "equivalent"
UNDETERMINED = "undetermined"

#: Per-chip test counts of one (replicate, model): ``(tp, fp, fn)``, each of shape ``(K chips, C classes)``.
ChipCounts = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Effect:
    """A paired difference ``test[a] − test[b]`` between the best models of two groups, with its interval.

    Attributes:
        a_model, b_model: The models selected on the full data (highest mean validation score of each group).
        estimate: Mean over replicates of the paired test difference (a fraction; ×100 for points).
        se: Bootstrap standard error, ``sd(bootstrap estimates) · sqrt(R / (R − 1))`` (NaN: no interval).
        df: Degrees of freedom of the t quantile, ``R − 1``.
        lo, hi: The ``level`` t interval (NaN when there is none).
        p: Two-sided p-value of "no difference" (unadjusted; see :func:`holm`).
        level: Confidence level of ``lo``/``hi``.
        n_replicates: Replicates both groups ran (the pairs).
        equivalent: True when the ``1 − 2α`` interval lies inside ``±margin`` (TOST at α = 1 − level).
        selected_a, selected_b: Candidate -> share of bootstrap resamples in which it was selected.
        per_replicate: The paired differences, indexed by replicate (for figures showing each replicate).
        interval_name: What the interval is, for every place it is printed.
        tost_lo, tost_hi: The ``1 − 2α`` interval the equivalence test uses.
        margin: The equivalence margin used.
        crossed: True when test chips were resampled too (fixed test set).
    """

    a_model: str
    b_model: str
    estimate: float
    se: float
    df: int
    lo: float
    hi: float
    p: float
    level: float
    n_replicates: int
    equivalent: bool
    selected_a: dict[str, float] = field(default_factory=dict)
    selected_b: dict[str, float] = field(default_factory=dict)
    per_replicate: pd.Series = field(
        default_factory=lambda: pd.Series(dtype=float), compare=False, repr=False
    )
    interval_name: str = ""
    tost_lo: float = float("nan")
    tost_hi: float = float("nan")
    margin: float = EQUIVALENCE_MARGIN
    crossed: bool = False


@dataclass(frozen=True)
class Interval:
    """One model's mean over replicates with its t interval (a model against nothing).

    Attributes mirror :class:`Effect`: ``estimate``, ``se``, ``df``, ``lo``, ``hi``, ``level``, ``n_replicates``,
    ``interval_name``.
    """

    estimate: float
    se: float
    df: int
    lo: float
    hi: float
    level: float
    n_replicates: int
    interval_name: str


# ----------------------------------------------------------------------------------------------------------------
# interval machinery


def interval_name(level: float, n: int, *, what: str = "replicates", extra: str = "") -> str:
    """The name printed with an interval, e.g. ``"95 % t-interval over 3 replicates, bootstrap SE over replicates"``.

    One replicate has no spread, so it has no interval: the name says so rather than naming a width of zero.
    """
    if n < 2:
        return f"no interval: {n} {what[:-1] if n == 1 else what}"
    name = f"{100 * level:g} % t-interval over {n} {what}"
    return f"{name}, {extra}" if extra else name


def t_intervals(
    estimate: np.ndarray | float, se: np.ndarray | float, df: np.ndarray | float, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised ``estimate ± t_{df, 1−α/2} · se`` and the two-sided p-value of ``estimate == 0``.

    ``se == 0`` gives a zero-width interval and ``p`` 0 (or 1 for a zero estimate): callers decide beforehand
    whether a zero SE means "no spread" or "degenerate" (see :func:`paired_effect`). Non-finite inputs or
    ``df < 1`` give NaN.
    """
    est = np.asarray(estimate, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    df = np.asarray(df, dtype=np.float64)
    ok = np.isfinite(est) & np.isfinite(se) & (se >= 0) & (df >= 1)
    dfs = np.where(ok, df, 1.0)
    q = _st.t.ppf(1.0 - (1.0 - level) / 2.0, dfs)
    half = q * np.where(ok, se, 0.0)
    lo = np.where(ok, est - half, np.nan)
    hi = np.where(ok, est + half, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(est) / se
    p = np.where(se > 0, 2.0 * _st.t.sf(np.where(se > 0, z, 0.0), dfs), np.where(est == 0, 1.0, 0.0))
    p = np.where(ok, p, np.nan)
    return lo, hi, p


def mean_intervals(
    values: Sequence[np.ndarray], level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, SE, df, lo, hi of many groups at once (each an array of replicate values; NaNs dropped).

    ``SE = s / sqrt(n)``: the replicate bootstrap SE with its ``sqrt(n / (n − 1))`` correction, taken at its
    infinite-resample limit. One value: mean with NaN interval; identical values: zero-width interval.
    """
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    arrays = [a[np.isfinite(a)] for a in arrays]
    n = np.array([a.size for a in arrays], dtype=np.int64)
    mean = np.array([a.mean() if a.size else np.nan for a in arrays])
    sd = np.array([a.std(ddof=1) if a.size > 1 else np.nan for a in arrays])
    with np.errstate(divide="ignore", invalid="ignore"):
        se = sd / np.sqrt(n)
    df = n - 1
    lo, hi, _ = t_intervals(mean, se, df, level)
    return mean, se, df, lo, hi


def mean_interval(
    values: Sequence[float] | np.ndarray | pd.Series,
    *,
    chips: Mapping[Hashable, ChipCounts] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = LEVEL,
) -> Interval:
    """A single model's mean over replicates and its t interval (the machinery of :func:`paired_effect`).

    Args:
        values: The model's score per replicate (NaNs dropped); a Series keeps its index as replicate labels
            (needed with ``chips``).
        chips: Optional per-replicate ``(tp, fp, fn)`` test counts, each ``(K, C)``, for a test set shared by all
            replicates (crossed design): the SE then comes from a bootstrap over replicates and chips, the macro
            mIoU being recomputed from the summed counts in every resample. Without it the SE is the
            infinite-resample limit ``s / sqrt(R)`` (nested design: each replicate's score already carries its
            own test-chip variance).
        n_boot: Resamples (used with ``chips`` only).
        seed: Resampling seed (used with ``chips`` only).
        level: Interval level.
    """
    s = (
        pd.Series(values, dtype=np.float64)
        if not isinstance(values, pd.Series)
        else values.astype(np.float64)
    )
    s = s[np.isfinite(s.to_numpy())]
    if chips is None:
        mean, se, df, lo, hi = (float(x[0]) for x in mean_intervals([s.to_numpy()], level))
        return Interval(mean, se, int(df), lo, hi, level, int(s.size), interval_name(level, int(s.size)))
    frame = s.to_frame("model")
    eff = paired_effect(
        frame,
        frame,
        ["model"],
        [],
        chips={(r, "model"): c for r, c in chips.items()},
        n_boot=n_boot,
        seed=seed,
        level=level,
    )
    return Interval(eff.estimate, eff.se, eff.df, eff.lo, eff.hi, level, eff.n_replicates, eff.interval_name)


# ----------------------------------------------------------------------------------------------------------------
# paired effects


def _resample_weights(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """``(n_boot, n)`` resample counts divided by ``n``: a resampled mean is then one matrix product."""
    idx = rng.integers(0, n, size=(n_boot, n))
    counts = np.bincount((idx + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n)
    return counts.reshape(n_boot, n).astype(np.float64) / n


def _macro_iou(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Macro mIoU over the last axis, as :func:`helpers.metrics.scores`: mean IoU of classes with tp+fp+fn > 0."""
    denom = tp + fp + fn
    present = denom > 0
    iou = np.where(present, tp / np.where(present, denom, 1.0), 0.0)
    n_present = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_present > 0, iou.sum(axis=-1) / n_present, np.nan)


def _stack_chips(
    chips: Mapping[tuple[Hashable, str], ChipCounts], replicates: Sequence[Hashable], models: Sequence[str]
) -> np.ndarray:
    """``(3, K, R·M·C)`` array of tp, fp, fn, chips first (ready for one matrix product with chip weights)."""
    cells = []
    for r in replicates:
        for m in models:
            if (r, m) not in chips:
                raise ValueError(f"chips: no per-chip test counts for replicate {r!r}, model {m!r}")
            tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in chips[(r, m)])
            if not (tp.shape == fp.shape == fn.shape and tp.ndim == 2):
                raise ValueError(f"chips[{r!r}, {m!r}]: tp, fp, fn must share one (K, C) shape")
            cells.append(np.stack([tp, fp, fn]))
    shapes = {c.shape for c in cells}
    if len(shapes) != 1:
        raise ValueError(
            f"chips: every (replicate, model) must have the same (K, C) test chips; got {shapes}"
        )
    arr = np.stack(cells, axis=2)  # (3, K, R·M, C)
    return arr.reshape(arr.shape[0], arr.shape[1], -1)


def _no_interval(
    a: str,
    b: str,
    estimate: float,
    n: int,
    level: float,
    margin: float,
    per: pd.Series,
    why: str,
    crossed: bool,
) -> Effect:
    return Effect(
        a_model=a,
        b_model=b,
        estimate=estimate,
        se=float("nan"),
        df=max(n - 1, 0),
        lo=float("nan"),
        hi=float("nan"),
        p=float("nan"),
        level=level,
        n_replicates=n,
        equivalent=False,
        per_replicate=per,
        interval_name=why,
        margin=margin,
        crossed=crossed,
    )


def _paired_scores(val: pd.DataFrame, test: pd.DataFrame, models: Sequence[str]):
    """``(replicates, V, T)``: the replicates where every model has finite validation and test scores, and those scores.

    Replicates come in sorted order, so the bootstrap draws do not depend on row order; ``V`` and ``T`` are
    replicates x models.
    """
    reps = val.index.intersection(test.index, sort=False)
    V = val.loc[reps, models].to_numpy(dtype=np.float64)
    T = test.loc[reps, models].to_numpy(dtype=np.float64)
    keep = np.isfinite(V).all(axis=1) & np.isfinite(T).all(axis=1)
    reps, V, T = reps[keep], V[keep], T[keep]
    try:
        order = np.argsort(reps.to_numpy(), kind="stable")
    except TypeError:
        order = np.argsort(reps.astype(str).to_numpy(), kind="stable")
    return reps[order], V[order], T[order]


def _crossed_differences(rng, W, chips, reps, models, ia, ib, *, has_b: bool) -> np.ndarray:
    """Bootstrap differences crossed over replicates (weights ``W``) and test chips.

    The chip weights are drawn here, shared by every replicate and model; each resample's difference is the test
    macro IoU of its selected column ``ia`` minus that of ``ib``.
    """
    n_boot, n = W.shape
    arr = _stack_chips(chips, list(reps), models)  # (3, K, R·M·C)
    k = arr.shape[1]
    Wc = _resample_weights(rng, n_boot, k) * k  # chip counts, shared by every replicate and model
    summed = np.einsum("bk,skx->sbx", Wc, arr).reshape(3, n_boot, n, len(models), -1)
    S = _macro_iou(summed[0], summed[1], summed[2])  # (B, R, M)
    if not has_b:
        S = np.concatenate([S, np.zeros((n_boot, n, 1))], axis=2)
    Tm = np.einsum("br,brm->bm", W, S)
    rows = np.arange(n_boot)
    return Tm[rows, ia] - Tm[rows, ib]


def _check_groups(
    val: pd.DataFrame, test: pd.DataFrame, a_models: list[str], b_models: list[str]
) -> list[str]:
    """Refuse groups :func:`paired_effect` cannot compare (no A candidate, a model in both, a missing column).

    Returns every candidate, A's then B's.
    """
    if not a_models:
        raise ValueError("paired_effect: group A has no candidate model")
    if set(a_models) & set(b_models):
        raise ValueError(f"paired_effect: a model cannot be in both groups: {set(a_models) & set(b_models)}")
    models = [*a_models, *b_models]
    absent = [m for m in models if m not in val.columns or m not in test.columns]
    if absent:
        raise ValueError(f"paired_effect: no validation or test column for {absent}")
    return models


def paired_effect(
    val: pd.DataFrame,
    test: pd.DataFrame,
    a_models: Sequence[str],
    b_models: Sequence[str],
    *,
    chips: Mapping[tuple[Hashable, str], ChipCounts] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = LEVEL,
    margin: float = EQUIVALENCE_MARGIN,
) -> Effect:
    """Best of group A minus best of group B on test, chosen on validation, paired within replicate.

    The best model of each group is the one with the highest mean validation score (ties: the first in the given
    order); the effect is the mean over replicates of ``test[a] − test[b]``, so the data draw (or seed) that makes
    both models score high or low cancels. The bootstrap resamples replicates with replacement and **redoes the
    selection on validation in every resample**, so the interval includes the uncertainty of which model is "the
    best" of its family (:attr:`Effect.selected_a` says how often each was chosen).

    Test chips: when each replicate has its own test chips (simulated replicates, a nested design), only
    replicates are resampled: each replicate's score already carries its own test-chip variance, and resampling
    the top level of a nested design is the sound bootstrap (Davison & Hinkley 1997, §3.8). When the test chips
    are the same in every replicate (real data, a crossed design), pass ``chips``: each resample then also draws
    the chips with replacement, once and shared by every replicate and model (paired), and recomputes each macro
    mIoU from the summed counts with the convention of :func:`helpers.metrics.scores`. The estimate itself is
    always computed from ``test`` (the table's scores).

    Args:
        val: Validation scores, index = replicate, columns = model, values = fractions.
        test: Test scores in the same shape.
        a_models: Candidates of group A, in tie-break order.
        b_models: Candidates of group B, in tie-break order; empty: compare A with zero (a single model's mean).
        chips: ``(replicate, model) -> (tp, fp, fn)``, each ``(K chips, C classes)``, the same chips for all;
            ``None`` for the nested design.
        n_boot: Bootstrap resamples.
        seed: Resampling seed (the draws depend only on it and the table's shape).
        level: Interval level; α = 1 − level for the test and the equivalence (TOST) check.
        margin: Equivalence margin (fraction), :data:`EQUIVALENCE_MARGIN` unless a caller states another up front.

    Returns:
        :class:`Effect`. Only replicates in which every candidate of both groups has a finite validation and test
        score count (the selection is redone per resample over the same candidates). With fewer than two such
        replicates, a non-finite bootstrap, or a zero bootstrap SE although the paired differences vary, there is
        no interval (NaN) and :func:`decide` answers "undetermined".
    """
    a_models, b_models = [str(m) for m in a_models], [str(m) for m in b_models]
    models = _check_groups(val, test, a_models, b_models)
    crossed = chips is not None
    reps, V, T = _paired_scores(val, test, models)
    n, na = len(reps), len(a_models)
    # with no B group the "difference" is A against zero
    if b_models:
        Vb, Tb = V[:, na:], T[:, na:]
    else:
        Vb, Tb = np.zeros((n, 1)), np.zeros((n, 1))
    Va, Ta = V[:, :na], T[:, :na]
    if n == 0:
        return _no_interval(
            "",
            "",
            float("nan"),
            0,
            level,
            margin,
            pd.Series(dtype=float),
            "no interval: no paired replicates",
            crossed,
        )
    ia = int(np.argmax(Va.mean(axis=0)))
    ib = int(np.argmax(Vb.mean(axis=0)))
    a_name = a_models[ia]
    b_name = b_models[ib] if b_models else ""
    per = pd.Series(Ta[:, ia] - Tb[:, ib], index=reps, name=f"{a_name} − {b_name}" if b_name else a_name)
    estimate = float(per.mean())
    if n < 2 or not np.isfinite(estimate):
        return _no_interval(a_name, b_name, estimate, n, level, margin, per, interval_name(level, n), crossed)

    rng = np.random.default_rng([int(seed), n, len(models), 0x5EED])
    W = _resample_weights(rng, n_boot, n)  # (B, R)
    sa = np.argmax(W @ Va, axis=1)  # selection redone on each resample's validation means
    sb = np.argmax(W @ Vb, axis=1)
    if crossed:
        boot = _crossed_differences(rng, W, chips, reps, models, sa, na + sb, has_b=bool(b_models))
    else:
        rows = np.arange(n_boot)
        boot = (W @ Ta)[rows, sa] - (W @ Tb)[rows, sb]
    share_a = np.bincount(sa, minlength=na) / n_boot
    share_b = np.bincount(sb, minlength=max(len(b_models), 1)) / n_boot
    selected_a = {m: float(s) for m, s in zip(a_models, share_a, strict=True)}
    selected_b = {m: float(s) for m, s in zip(b_models, share_b[: len(b_models)], strict=True)}

    reselect = len(a_models) > 1 or len(b_models) > 1
    extra = "bootstrap SE over replicates" + (" and test chips" if crossed else "")
    extra += ", selection redone in each resample" if reselect else ""
    name = interval_name(level, n, extra=extra)
    if not np.isfinite(boot).all():
        why = f"no interval: a bootstrap resample gave no score ({n} replicates)"
        return _no_interval(a_name, b_name, estimate, n, level, margin, per, why, crossed)
    se = float(boot.std(ddof=1) * np.sqrt(n / (n - 1)))
    se = 0.0 if se < _TINY else se  # rounding noise of identical differences is not spread
    if se == 0 and (np.ptp(per.to_numpy()) > _TINY or crossed):
        why = f"no interval: degenerate bootstrap (zero SE although the {n} replicates differ)"
        return _no_interval(a_name, b_name, estimate, n, level, margin, per, why, crossed)
    lo, hi, p = (float(x) for x in t_intervals(estimate, se, n - 1, level))
    tlo, thi, _ = (float(x) for x in t_intervals(estimate, se, n - 1, 1.0 - 2.0 * (1.0 - level)))
    return Effect(
        a_model=a_name,
        b_model=b_name,
        estimate=estimate,
        se=se,
        df=n - 1,
        lo=lo,
        hi=hi,
        p=p,
        level=level,
        n_replicates=n,
        equivalent=bool(tlo > -margin and thi < margin),
        selected_a=selected_a,
        selected_b=selected_b,
        per_replicate=per,
        interval_name=name,
        tost_lo=tlo,
        tost_hi=thi,
        margin=margin,
        crossed=crossed,
    )


# ----------------------------------------------------------------------------------------------------------------
# multiplicity and decisions


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (step-down, family-wise error ≤ α over the given tests), in the input order.

    NaN stays NaN and does not count in the number of tests ``m`` (a cell without a test is not a test).
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = np.argsort(p[ok], kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[ok][order])
    out[ok[order]] = np.minimum(adjusted, 1.0)
    return out


def decide(effect: Effect, p_adjusted: float, alpha: float = 0.05) -> str:
    """``"a>b"`` / ``"b>a"`` when the adjusted p is below ``alpha``, else ``"equivalent"`` or ``"undetermined"``.

    A difference is looked for first (with the multiplicity-adjusted p); equivalence (TOST within the margin,
    unadjusted) is the answer only where no difference is declared. No interval: always undetermined.
    """
    if not (np.isfinite(effect.estimate) and np.isfinite(effect.se)):
        return UNDETERMINED
    if np.isfinite(p_adjusted) and p_adjusted < alpha:
        return A_GT_B if effect.estimate > 0 else B_GT_A
    return EQUIVALENT if effect.equivalent else UNDETERMINED


def rests_on_cap(decision: str, capped: object) -> bool:
    """Whether a decision could be the step cap's rather than the models': then the verdict is inconclusive.

    A capped side's scores are lower bounds (:func:`helpers.report.compare.capped_sides`), so the only decision they
    cannot have made is that side winning anyway: ``a>b`` with only ``a`` capped, ``b>a`` with only ``b`` capped.
    Every other decision (the uncapped side ahead, equivalence, or both sides capped) might change once the capped
    runs reach a plateau. Shared by the claims' verdicts and the regime map's cells.
    """
    capped = capped if isinstance(capped, str) else ""
    if not capped:
        return False
    return not ((capped == "a" and decision == A_GT_B) or (capped == "b" and decision == B_GT_A))


# ----------------------------------------------------------------------------------------------------------------
# formatting


def _with_interval(
    estimate: float, lo: float, hi: float, name: str, scale: float, unit: str, signed: bool
) -> str:
    """``estimate [lo, hi] (name)`` scaled, with a sign for differences; ``(name)`` alone when there is no interval."""

    def pts(x: float) -> str:
        return f"{scale * x:+.1f}" if signed else f"{scale * x:.1f}"

    head = f"{pts(estimate)} {unit}".strip()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{head} ({name})"
    return f"{head} [{pts(lo)}, {pts(hi)}] ({name})"


def format_effect(effect: Effect, *, scale: float = 100.0, unit: str = "pts") -> str:
    """``"+3.1 pts [+1.0, +5.2] (95 % t-interval over 5 replicates, …)"``: the interval always says what it is."""
    if not np.isfinite(effect.estimate):
        return "no estimate (no paired replicates)"
    return _with_interval(
        effect.estimate, effect.lo, effect.hi, effect.interval_name, scale, unit, signed=True
    )


def format_interval(iv: Interval, *, scale: float = 100.0, unit: str = "") -> str:
    """``"71.2 [69.0, 73.4] (95 % t-interval over 3 replicates)"`` for a single model's mean."""
    if not np.isfinite(iv.estimate):
        return "–"
    return _with_interval(iv.estimate, iv.lo, iv.hi, iv.interval_name, scale, unit, signed=False)

"""Tests for helpers.report.stats: intervals that cover at their nominal rate, selection inside the resample,
Holm, decisions, and names on every printed interval.

The coverage tests simulate many small tables with a known truth; their tolerance is three Monte Carlo standard
errors of a coverage proportion, so a rule that under-covers (the percentile bootstrap of three seeds covers about
75 %) fails them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from helpers import metrics
from helpers.report import stats

N_TABLES = 400
MC_TOL = 3 * np.sqrt(0.95 * 0.05 / N_TABLES)  # three Monte Carlo SEs of a 95 % coverage proportion


def _frames(val: dict, test: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.DataFrame(val), pd.DataFrame(test)


def _percentile_interval(v: np.ndarray, n_boot: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """The naive percentile bootstrap of a mean (what the study printed before): for contrast only."""
    rng = np.random.default_rng(0)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    a = (1 - level) / 2
    return tuple(np.quantile(means, [a, 1 - a]))


# ---------------------------------------------------------------------------------------------------------------
# (a) coverage, nested design


@pytest.mark.parametrize("n_rep", [3, 5])
def test_nested_coverage_is_nominal(n_rep):
    """Replicates with their own data draws: the t interval covers the true paired effect at 95 %."""
    rng = np.random.default_rng(100 + n_rep)
    delta = 0.03
    covered = naive = 0
    for _ in range(N_TABLES):
        u = rng.normal(0, 0.05, n_rep)  # the data draw moves every model of a replicate together
        e = rng.normal(0, 0.02, (4, n_rep))  # model-specific variation (seed, test chips of that draw)
        val = {"a_good": 0.70 + delta + u + e[0], "a_bad": 0.50 + u + e[1], "b": 0.70 + u + e[2]}
        test = {"a_good": 0.70 + delta + u + e[3], "a_bad": 0.50 + u + e[1], "b": 0.70 + u + e[2] + e[0] * 0}
        v, t = _frames(val, test)
        eff = stats.paired_effect(v, t, ["a_good", "a_bad"], ["b"], n_boot=200, seed=1)
        assert eff.a_model == "a_good" and eff.n_replicates == n_rep
        covered += eff.lo <= delta <= eff.hi
        lo, hi = _percentile_interval(eff.per_replicate.to_numpy(), n_boot=400)
        naive += lo <= delta <= hi
    coverage = covered / N_TABLES
    assert abs(coverage - 0.95) < MC_TOL, coverage
    if n_rep == 3:  # the rule this replaces: [min, max] of three paired differences
        assert naive / N_TABLES < 0.95 - MC_TOL, naive / N_TABLES


# ---------------------------------------------------------------------------------------------------------------
# (b) coverage, crossed design (the same test chips in every replicate)


def _chip_tables(rng, n_tables: int, n_rep: int, k: int, shared_h: bool = True):
    """Per-chip tp/fp/fn of two models on two classes, chips shared across replicates.

    Model × chip interaction (``h``) is fixed by the test set, so resampling replicates alone cannot see it.
    Returns arrays ``(n_tables, R, 2 models, K, 2 classes)`` for tp, fp, fn and the macro mIoU per replicate.
    """
    n_pix = rng.integers(200, 2000, size=(n_tables, 1, 1, k, 2)).astype(float)
    g = rng.normal(0, 0.6, size=(n_tables, 1, 1, k, 2))  # chip difficulty, shared by the models
    h = rng.normal(0, 0.5, size=(n_tables, 1, 2, k, 2))  # model × chip interaction
    s = rng.normal(0, 0.08, size=(n_tables, n_rep, 2, 1, 1))  # seed effect per model
    beta = np.array([1.3, 1.1]).reshape(1, 1, 2, 1, 1)
    acc = expit(beta + g + h + s)
    tp = n_pix * acc
    fn = n_pix - tp
    fp = fn[..., ::-1]  # two classes: what one class misses the other gets
    score = stats._macro_iou(tp.sum(axis=3), fp.sum(axis=3), fn.sum(axis=3))  # (n, R, 2)
    return tp, fp, fn, score


def test_crossed_chip_bootstrap_covers():
    rng = np.random.default_rng(7)
    n_rep, k = 4, 30
    # the truth: the expected paired difference over test sets of K chips and seeds (a large independent batch)
    *_, big = _chip_tables(rng, 4000, n_rep, k)
    truth = float((big[:, :, 0] - big[:, :, 1]).mean())
    tp, fp, fn, score = _chip_tables(rng, N_TABLES, n_rep, k)
    crossed = nested = 0
    for i in range(N_TABLES):
        frame = pd.DataFrame(score[i], columns=["a", "b"])
        chips = {
            (r, m): (tp[i, r, j], fp[i, r, j], fn[i, r, j]) for r in range(n_rep) for j, m in enumerate("ab")
        }
        eff = stats.paired_effect(frame, frame, ["a"], ["b"], chips=chips, n_boot=200, seed=i)
        assert eff.crossed and "and test chips" in eff.interval_name
        crossed += eff.lo <= truth <= eff.hi
        flat = stats.paired_effect(frame, frame, ["a"], ["b"], n_boot=200, seed=i)
        nested += flat.lo <= truth <= flat.hi
    assert crossed / N_TABLES >= 0.95 - MC_TOL, crossed / N_TABLES  # not anti-conservative
    # the test set's own variance is what replicate-only resampling misses on a fixed test set
    assert nested / N_TABLES < 0.95 - MC_TOL, nested / N_TABLES


def test_chip_scores_follow_the_metrics_convention():
    rng = np.random.default_rng(3)
    cm = rng.integers(0, 50, size=(4, 4)).astype(float)
    cm[3, :] = 0
    cm[:, 3] = 0  # a class absent from truth and prediction does not count
    tp = np.diag(cm)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    assert stats._macro_iou(tp, fp, fn) == pytest.approx(metrics.scores(cm)["miou_macro"])


def test_chips_must_cover_every_cell():
    frame = pd.DataFrame({"a": [0.5, 0.6], "b": [0.4, 0.5]})
    one = (np.ones((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="no per-chip test counts"):
        stats.paired_effect(frame, frame, ["a"], ["b"], chips={(0, "a"): one})


# ---------------------------------------------------------------------------------------------------------------
# (c) three values are never [min, max] called a 95 % interval


def test_three_values_are_not_a_range_called_95_percent():
    v = np.array([0.4250, 0.4361, 0.4402])  # RF on sim-crop, the example
    lo, hi = _percentile_interval(v)
    assert (lo, hi) == pytest.approx((v.min(), v.max()))  # what the percentile bootstrap prints
    iv = stats.mean_interval(v)
    assert iv.lo < v.min() and iv.hi > v.max()
    assert iv.interval_name == "95 % t-interval over 3 replicates"
    text = stats.format_interval(iv)
    assert text.startswith("43.4 [") and "t-interval over 3 replicates" in text
    rng = np.random.default_rng(0)
    for _ in range(200):  # with n = 3 the t interval always contains the whole range
        w = rng.normal(0.6, 0.05, 3)
        iv = stats.mean_interval(w)
        assert iv.lo < w.min() and iv.hi > w.max()
    single = stats.mean_interval([0.4])
    assert np.isnan(single.lo) and stats.format_interval(single) == "40.0 (no interval: 1 replicate)"


def test_effect_text_names_its_interval():
    v, t = _frames(
        {"a": [0.8, 0.82, 0.81], "b": [0.7, 0.7, 0.72]}, {"a": [0.8, 0.83, 0.8], "b": [0.7, 0.71, 0.72]}
    )
    eff = stats.paired_effect(v, t, ["a"], ["b"], n_boot=500)
    text = stats.format_effect(eff)
    assert text.startswith(f"{100 * eff.estimate:+.1f} pts [")
    assert text.endswith("(95 % t-interval over 3 replicates, bootstrap SE over replicates)")
    one = stats.paired_effect(v.iloc[:1], t.iloc[:1], ["a"], ["b"])
    assert stats.format_effect(one) == "+10.0 pts (no interval: 1 replicate)"
    assert stats.decide(one, np.nan) == stats.UNDETERMINED


def test_interval_is_reproducible_and_ignores_row_order():
    rng = np.random.default_rng(4)
    v = pd.DataFrame(rng.random((5, 3)), columns=["a1", "a2", "b"], index=[10, 11, 12, 13, 14])
    t = pd.DataFrame(rng.random((5, 3)), columns=["a1", "a2", "b"], index=[10, 11, 12, 13, 14])
    e1 = stats.paired_effect(v, t, ["a1", "a2"], ["b"], n_boot=300, seed=2)
    e2 = stats.paired_effect(
        v.iloc[::-1], t.sample(frac=1, random_state=0), ["a1", "a2"], ["b"], n_boot=300, seed=2
    )
    assert (e1.lo, e1.hi, e1.selected_a) == (e2.lo, e2.hi, e2.selected_a)
    assert e1 == e2


def test_missing_replicates_are_dropped_from_the_pairs():
    v, t = _frames(
        {"a": [0.8, 0.8, 0.9, np.nan], "b": [0.7, 0.7, 0.7, 0.7]}, {"a": [0.8, 0.9, 0.8, 0.8], "b": [0.6] * 4}
    )
    eff = stats.paired_effect(v, t, ["a"], ["b"], n_boot=200)
    assert eff.n_replicates == 3 and list(eff.per_replicate.index) == [0, 1, 2]


# ---------------------------------------------------------------------------------------------------------------
# (d) selection uncertainty is part of the interval


def test_selection_redone_in_each_resample_widens_the_interval():
    # a1 and a2 tie on mean validation (0.80) but differ on test by 20 points
    val = {
        "a1": [0.80, 0.82, 0.78, 0.81, 0.79],
        "a2": [0.81, 0.79, 0.80, 0.80, 0.80],
        "b": [0.70, 0.71, 0.69, 0.70, 0.70],
    }
    test = {
        "a1": [0.90, 0.91, 0.89, 0.90, 0.91],
        "a2": [0.70, 0.71, 0.69, 0.70, 0.71],
        "b": [0.70, 0.70, 0.69, 0.71, 0.70],
    }
    v, t = _frames(val, test)
    both = stats.paired_effect(v, t, ["a1", "a2"], ["b"], n_boot=1000)
    fixed = stats.paired_effect(v, t, ["a1"], ["b"], n_boot=1000)
    assert both.a_model == "a1"  # the tie goes to the first in the given order
    assert both.estimate == pytest.approx(fixed.estimate)
    assert 0.2 < both.selected_a["a1"] < 0.8 and 0.2 < both.selected_a["a2"] < 0.8
    assert both.hi - both.lo > 3 * (fixed.hi - fixed.lo)
    assert "selection redone in each resample" in both.interval_name
    assert "selection redone" not in fixed.interval_name


# ---------------------------------------------------------------------------------------------------------------
# (e) Holm, (f) decisions


def test_holm_matches_a_hand_computed_example():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    got = stats.holm([0.01, np.nan, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, np.nan, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    assert np.isnan(stats.holm([np.nan])).all() and stats.holm([]).size == 0


def _effect(estimate, se, equivalent=False):
    lo, hi, p = (float(x) for x in stats.t_intervals(estimate, se, 4))
    return stats.Effect("a", "b", estimate, se, 4, lo, hi, p, 0.95, 5, equivalent)


def test_decide_cases():
    assert stats.decide(_effect(0.05, 0.01), 0.01) == stats.A_GT_B
    assert stats.decide(_effect(-0.05, 0.01), 0.01) == stats.B_GT_A
    assert stats.decide(_effect(0.05, 0.01), 0.2) == stats.UNDETERMINED  # adjusted p too large
    assert stats.decide(_effect(0.001, 0.002, equivalent=True), 0.6) == stats.EQUIVALENT
    assert stats.decide(_effect(0.01, float("nan")), 0.001) == stats.UNDETERMINED  # no interval


def test_equivalence_is_tost_within_the_margin():
    assert stats.EQUIVALENCE_MARGIN == 0.02
    rng = np.random.default_rng(5)
    base = rng.normal(0.7, 0.03, 8)
    close = pd.DataFrame({"a": base + 0.002 + rng.normal(0, 0.002, 8), "b": base})
    eff = stats.paired_effect(close, close, ["a"], ["b"], n_boot=500)
    assert eff.equivalent and -0.02 < eff.tost_lo < eff.tost_hi < 0.02
    assert eff.lo < eff.tost_lo and eff.tost_hi < eff.hi  # the 90 % interval sits inside the 95 % one
    far = pd.DataFrame({"a": base + 0.05 + rng.normal(0, 0.002, 8), "b": base})
    eff = stats.paired_effect(far, far, ["a"], ["b"], n_boot=500)
    assert not eff.equivalent and stats.decide(eff, stats.holm([eff.p])[0]) == stats.A_GT_B
    wide = pd.DataFrame({"a": base + rng.normal(0, 0.05, 8), "b": base})
    eff = stats.paired_effect(wide, wide, ["a"], ["b"], n_boot=500)
    assert not eff.equivalent  # a wide interval is not evidence of equivalence


def test_constant_differences_give_a_zero_width_interval_not_a_fake_one():
    frame = pd.DataFrame({"a": [0.90, 0.91, 0.92], "b": [0.85, 0.86, 0.87]})
    eff = stats.paired_effect(frame, frame, ["a"], ["b"], n_boot=200)
    assert eff.se == 0 and eff.lo == eff.hi == pytest.approx(0.05) and eff.p == 0
    assert stats.decide(eff, eff.p) == stats.A_GT_B

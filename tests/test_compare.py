"""Tests for helpers.report.compare, on small synthetic results tables written through helpers.results.

``make_results`` is imported by test_figures.py and test_tables.py too, so all three test the same table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import metrics, results
from helpers.report import compare, readme, stats, verdicts

CLASSES = {
    "sim-crop": ["corn", "soy", "forest"],
    "sim-burn": ["not_burned", "burn_scar"],
    "indian-pines-hls": ["corn", "grass", "woods"],
    "sim-texture-0": ["a", "b"],
    "sim-texture-1": ["a", "b"],
}
TASKS = {
    "sim-crop": "crop",
    "sim-burn": "burn",
    "indian-pines-hls": "landcover",
    "sim-texture-0": "texture",
    "sim-texture-1": "texture",
}
#: model -> (family, pretraining, n_params)
MODELS = {
    "rf": ("classical", "none", np.nan),
    "lgbm": ("classical", "none", np.nan),
    "rf_aug": ("classical", "none", np.nan),
    "lgbm_aug": ("classical", "none", np.nan),
    "fcn": ("cnn", "none", 2e5),
    "unet": ("cnn", "none", 5e5),
    "prithvi_none": ("fm", "none", 3e6),
    "prithvi_mae": ("fm", "mae-in-study", 3e6),
    "prithvi_spectral": ("fm", "spectral-in-study", 3e6),
    "galileo_nano": ("fm", "published", 1e6),
}


def _cm(accuracy: float, n_classes: int, n: int = 10_000) -> np.ndarray:
    """A confusion matrix with the given per-class recall, errors spread evenly."""
    per = n // n_classes
    off = (1 - accuracy) / (n_classes - 1)
    cm = np.full((n_classes, n_classes), off) + np.eye(n_classes) * (accuracy - off)
    return np.round(cm * per).astype(np.int64)


def base_accuracy(dataset: str, model: str) -> float:
    """A deterministic, model- and dataset-dependent accuracy (not random: tests can reason about order)."""
    family = MODELS[model][0]
    texture = dataset in ("sim-burn", "sim-texture-1")
    score = {"classical": 0.80, "cnn": 0.78, "fm": 0.76}[family]
    if texture:
        score = {"classical": 0.62, "cnn": 0.80, "fm": 0.79}[family]
    score += 0.03 * model.endswith("_aug") + 0.01 * model.startswith("lgbm") + 0.01 * (model == "unet")
    score += {"prithvi_spectral": 0.02, "prithvi_mae": 0.0, "galileo_nano": 0.01}.get(model, 0.0)
    return score


def make_results(path, seeds=(0, 1, 2), datasets=tuple(CLASSES), models=tuple(MODELS), with_not_run=True):
    """Write a small synthetic table: every (dataset, model, seed), val and test, plus one not-run row."""
    rng = np.random.default_rng(0)
    rows = []
    for dataset in datasets:
        for model in models:
            family, pretraining, n_params = MODELS[model]
            for seed in seeds:
                ctx = dict(
                    task=TASKS[dataset],
                    dataset=dataset,
                    model=model,
                    family=family,
                    pretraining=pretraining,
                    weights="none",
                    seed=seed,
                    n_params=n_params,
                    runtime_s=float(10 + 5 * list(MODELS).index(model) + seed),
                )
                for split, shift in (("val", 0.01), ("test", 0.0)):
                    acc = base_accuracy(dataset, model) + shift + rng.normal(0, 0.004)
                    s = metrics.scores(_cm(acc, len(CLASSES[dataset])))
                    rows += results.score_rows(s, split=split, class_names=CLASSES[dataset], context=ctx)
    results.write_run(rows, path)  # many runs in one atomic write
    if with_not_run:
        ctx = dict(
            task="burn",
            dataset="sim-burn",
            model="prithvi_published",
            family="fm",
            pretraining="published",
            weights="Prithvi_100M.pt",
            seed=0,
        )
        results.write_run([results.not_run_row("weights file not supplied", ctx)], path)
    return results.read(path)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("res") / "results.csv")


# ---------------------------------------------------------------------------------------------------------------
# bootstrap


def test_interval_is_the_t_interval_over_replicates():
    from scipy.stats import t

    rng = np.random.default_rng(1)
    for n in (2, 3, 5, 20):
        for _ in range(20):
            v = rng.normal(0.6, 0.05, n)
            mean, lo, hi = compare.bootstrap_ci(v, n_boot=500, seed=3)
            half = t.ppf(0.975, n - 1) * v.std(ddof=1) / np.sqrt(n)
            assert mean == pytest.approx(v.mean())
            assert (lo, hi) == pytest.approx((v.mean() - half, v.mean() + half))
    v = rng.normal(size=5)
    assert compare.bootstrap_ci(v, seed=1) == compare.bootstrap_ci(v, seed=2)  # no Monte Carlo noise


def test_three_seeds_are_not_printed_as_their_range():
    v = [0.4250, 0.4361, 0.4402]  # RF on sim-crop: the old "95 % interval" was [42.5, 44.0]
    _, lo, hi = compare.bootstrap_ci(v)
    assert lo < min(v) and hi > max(v)


def test_interval_shrinks_with_more_seeds():
    from scipy.stats import norm

    widths = []
    for n in (3, 10, 30, 100):
        v = 0.7 + 0.05 * norm.ppf((np.arange(n) + 0.5) / n)  # same spread, more seeds
        _, lo, hi = compare.bootstrap_ci(v, n_boot=4000, seed=0)
        widths.append(hi - lo)
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False)), widths
    assert widths[-1] < widths[0] / 3


def test_degenerate_cases_are_explicit():
    assert compare.bootstrap_ci([0.4]) == (0.4, *(2 * [pytest.approx(np.nan, nan_ok=True)]))
    mean, lo, hi = compare.bootstrap_ci([0.4])
    assert mean == 0.4 and np.isnan(lo) and np.isnan(hi)
    assert all(np.isnan(compare.bootstrap_ci([])))
    assert compare.bootstrap_ci([0.3, 0.3, 0.3]) == (0.3, 0.3, 0.3)
    assert compare.bootstrap_ci([0.2, np.nan, 0.4], n_boot=200)[0] == pytest.approx(0.3)


def test_grouped_bootstrap_matches_single_and_ignores_row_order():
    rng = np.random.default_rng(0)
    long = pd.DataFrame(
        {
            "g": np.repeat(["a", "b", "c"], [3, 3, 4]),
            "seed": [0, 1, 2, 0, 1, 2, 0, 1, 2, 3],
            "value": rng.random(10),
        }
    )
    out = compare.bootstrap_groups(long, ["g"], n_boot=300, seed=5).set_index("g")
    for g, part in long.groupby("g"):
        mean, lo, hi = compare.bootstrap_ci(part.sort_values("seed")["value"], n_boot=300, seed=5)
        assert out.loc[g, "mean"] == pytest.approx(mean)
        assert (out.loc[g, "lo"], out.loc[g, "hi"]) == pytest.approx((lo, hi))
    shuffled = compare.bootstrap_groups(long.sample(frac=1, random_state=1), ["g"], n_boot=300, seed=5)
    pd.testing.assert_frame_equal(out.reset_index(), shuffled)
    # adding a group does not move the others' intervals
    more = pd.concat([long, pd.DataFrame({"g": ["d"] * 3, "seed": [0, 1, 2], "value": [0.1, 0.5, 0.9]})])
    out2 = compare.bootstrap_groups(more, ["g"], n_boot=300, seed=5).set_index("g")
    pd.testing.assert_frame_equal(out2.loc[["a", "b", "c"]], out)
    assert out.loc["c", "interval"] == "95 % t-interval over 4 replicates"


# ---------------------------------------------------------------------------------------------------------------
# aggregation, selection, gains


def test_aggregate_means_match_table(table):
    agg = compare.aggregate(table, metrics=["miou_macro"], n_boot=200)
    ok = table[(table["status"] == "ok") & (table["metric"] == "miou_macro")]
    expected = ok.groupby(["dataset", "model", "split"])["value"].mean()
    got = agg.set_index(["dataset", "model", "split"])["mean"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    assert (agg["n"] == 3).all()
    assert (agg["lo"] <= agg["mean"]).all() and (agg["mean"] <= agg["hi"]).all()
    assert (agg["interval"] == "95 % t-interval over 3 replicates").all()
    fam = agg.drop_duplicates("model").set_index("model")["comparison_family"]
    assert fam["prithvi_none"] == "transformer" and fam["prithvi_mae"] == "fm" and fam["unet"] == "cnn"
    assert "prithvi_published" not in set(agg["model"])  # not-run rows are never numbers
    assert agg["runtime_s"].notna().all()


def test_not_run_listed_with_reason(table):
    nr = compare.not_run(table)
    assert nr[["dataset", "model", "reason"]].values.tolist() == [
        ["sim-burn", "prithvi_published", "weights file not supplied"]
    ]


def test_selection_uses_validation_not_test(tmp_path):
    # model "a" is best on val, "b" best on test: the selection must pick "a" and report a's test score
    path = tmp_path / "r.csv"
    for model, val, test in (("rf", 0.9, 0.5), ("lgbm", 0.8, 0.95)):
        for seed in range(3):
            ctx = dict(task="flood", dataset="sim-flood", model=model, family="classical", seed=seed)
            rows = []
            for split, v in (("val", val), ("test", test)):
                s = metrics.scores(_cm(v + 0.01 * seed, 2))
                rows += results.score_rows(s, split=split, class_names=["x", "y"], context=ctx)
            results.write_run(rows, path)
    df = results.read(path)
    agg = compare.aggregate(df, metrics=["miou_macro"], n_boot=100)
    best = compare.select_best(agg)
    assert best["model"].tolist() == ["rf"]
    rf_test = agg[(agg["model"] == "rf") & (agg["split"] == "test")]["mean"].iloc[0]
    assert best["mean"].iloc[0] == pytest.approx(rf_test)


def test_model_without_val_rows_cannot_be_selected(tmp_path):
    path = tmp_path / "r.csv"
    for model, splits in (("rf", ("val", "test")), ("lgbm", ("test",))):
        rows = []
        for split in splits:
            s = metrics.scores(_cm(0.9 if model == "lgbm" else 0.6, 2))
            ctx = dict(task="flood", dataset="sim-flood", model=model, family="classical", seed=0)
            rows += results.score_rows(s, split=split, class_names=["x", "y"], context=ctx)
        results.write_run(rows, path)
    best = compare.select_best(compare.aggregate(results.read(path), n_boot=50))
    assert best["model"].tolist() == ["rf"] and best["unselectable"].tolist() == ["lgbm"]


def test_best_per_family(table):
    agg = compare.aggregate(table, metrics=["miou_macro"], n_boot=200)
    best = compare.select_best(agg)
    burn = best[best["dataset"] == "sim-burn"].set_index("family")["model"].to_dict()
    assert burn == {"classical": "lgbm_aug", "cnn": "unet", "fm": "prithvi_spectral"}
    assert len(best) == len(CLASSES) * 3


def test_texture_gains_are_paired_differences(table):
    gains = compare.texture_gains(table, n_boot=200)
    agg_rows = gains[gains["class"] == ""]
    assert set(agg_rows["comparison"]) == {"rf_aug − rf", "lgbm_aug − lgbm", "best CNN − best classical"}
    t = (
        table[(table["split"] == "test") & (table["metric"] == "miou_macro")]
        .set_index(["dataset", "model", "seed"])
        .sort_index()
    )
    row = agg_rows[(agg_rows["dataset"] == "sim-crop") & (agg_rows["comparison"] == "rf_aug − rf")].iloc[0]
    diff = (t.loc["sim-crop", "rf_aug"]["value"] - t.loc["sim-crop", "rf"]["value"]).mean()
    assert row["mean"] == pytest.approx(diff) and row["n"] == 3
    cnn = agg_rows[
        (agg_rows["dataset"] == "sim-burn") & (agg_rows["comparison"] == "best CNN − best classical")
    ]
    assert cnn[["model_a", "model_b"]].values.tolist() == [["unet", "lgbm_aug"]]
    assert cnn["lo"].iloc[0] > 0  # texture helps on the burn analogue in this table
    per_class = gains[(gains["class"] != "") & (gains["dataset"] == "sim-crop")]
    assert set(per_class["class"]) == set(CLASSES["sim-crop"]) and set(per_class["metric"]) == {"iou"}


# ---------------------------------------------------------------------------------------------------------------
# findings


def _write_scores(
    path,
    dataset,
    task,
    model,
    family,
    values,
    pretraining="none",
    splits=("val", "test"),
    note="",
    platform="",
    stopped_by=(),
):
    """Rows whose miou_macro equals ``values[seed]`` exactly (per-class IoU all equal to it).

    ``stopped_by``: the runs' stop reasons by seed (none given: the column stays empty, as for classical rows).
    """
    rows = []
    for seed, v in enumerate(values):
        ctx = dict(task=task, dataset=dataset, model=model, family=family, pretraining=pretraining, seed=seed)
        if note:
            ctx["note"] = note
        if platform:
            ctx["platform"] = platform
        if stopped_by:
            ctx["stopped_by"] = stopped_by[seed]
        s = {
            "iou": np.array([v, v]),
            "f1": np.array([v, v]),
            "precision": np.array([v, v]),
            "recall": np.array([v, v]),
            "miou_macro": v,
            "f1_macro": v,
            "iou_micro": v,
            "oa": v,
        }
        for split in splits:
            rows += results.score_rows(s, split=split, class_names=["x", "y"], context=ctx)
        results.write_run(rows, path)
        rows = []


def _verdict(f, cell, dataset):
    return f[(f["cell"] == str(cell)) & (f["dataset"] == dataset)]["verdict"].iloc[0]


def _row(f, cell, dataset):
    return f[(f["cell"] == str(cell)) & (f["dataset"] == dataset)].iloc[0]


def test_comparison_family_separates_transformers_from_scratch():
    rows = pd.DataFrame(
        [
            ("rf", "classical", "none"),
            ("unet", "cnn", "none"),
            ("vit", "fm", "none"),
            ("segformer", "fm", "none"),
            ("prithvi_arch_small_random", "fm", "none"),
            ("prithvi_arch_small_mae", "fm", "mae-in-study"),
            ("prithvi_arch_small_spectral", "fm", "spectral-in-study"),
            ("galileo_nano_frozen_lgbm", "fm", "published"),
            ("odd_fm", "fm", ""),
        ],
        columns=["model", "family", "pretraining"],
    )
    expected = [
        "classical",
        "cnn",
        "transformer",
        "transformer",
        "transformer",
        "fm",
        "fm",
        "fm",
        "transformer",
    ]
    assert compare.comparison_families(rows).tolist() == expected
    assert [compare.comparison_family(r) for _, r in rows.iterrows()] == expected
    assert rows["family"].tolist()[2] == "fm"  # the table's own column is not rewritten
    assert verdicts.architecture("prithvi_arch_small_mae") == "prithvi_arch_small"


def test_claim1_holds_when_classical_clearly_better(tmp_path):
    p = tmp_path / "r.csv"
    _write_scores(p, "sim-flood", "flood", "lgbm", "classical", [0.90, 0.91, 0.92])
    _write_scores(p, "sim-flood", "flood", "unet", "cnn", [0.85, 0.86, 0.87])
    _write_scores(p, "sim-flood", "flood", "prithvi_mae", "fm", [0.70, 0.71, 0.72], "mae-in-study")
    f = verdicts.findings(results.read(p), n_boot=300)
    row = _row(f, 1, "sim-flood")
    assert row["verdict"] == verdicts.HOLDS and row["decision"] == "a>b"
    assert (row["model_a"], row["model_b"], row["n_replicates"]) == ("lgbm", "prithvi_mae", 3)
    assert row["estimate"] == pytest.approx(0.20)
    assert row["effect"].startswith("+20.0 pts [") and "t-interval over 3 replicates" in row["effect"]
    assert (
        "best classical lgbm: test 91.0" in row["evidence"]
        and "paired over 3 of 3 replicates" in row["evidence"]
    )
    assert _verdict(f, "2a", "sim-flood") == verdicts.NOT_APPLICABLE  # flood is not a texture task
    assert np.isnan(_row(f, "2a", "sim-flood")["p_adjusted"])  # not tested, not counted by Holm
    assert _verdict(f, "3 MAE vs spectral", "sim-flood") == verdicts.MISSING  # no spectral-pretext row


def test_claim1_inconclusive_when_undecided_and_fails_when_fm_better(tmp_path):
    p = tmp_path / "r.csv"
    _write_scores(p, "sim-flood", "flood", "lgbm", "classical", [0.80, 0.85, 0.90])
    _write_scores(p, "sim-flood", "flood", "prithvi_mae", "fm", [0.82, 0.86, 0.88], "mae-in-study")
    _write_scores(p, "sim-crop", "crop", "lgbm", "classical", [0.60, 0.61, 0.62])
    _write_scores(p, "sim-crop", "crop", "prithvi_mae", "fm", [0.70, 0.71, 0.72], "mae-in-study")
    f = verdicts.findings(results.read(p), n_boot=300)
    assert _verdict(f, 1, "sim-flood") == verdicts.INCONCLUSIVE
    assert _row(f, 1, "sim-flood")["decision"] == "undetermined"
    assert _verdict(f, 1, "sim-crop") == verdicts.FAILS


def test_claim1_holds_on_equivalence(tmp_path):
    p = tmp_path / "r.csv"
    rng = np.random.default_rng(0)
    base = rng.normal(0.8, 0.03, 6)
    _write_scores(p, "sim-flood", "flood", "lgbm", "classical", base)
    _write_scores(
        p, "sim-flood", "flood", "prithvi_mae", "fm", base + rng.normal(0, 0.002, 6), "mae-in-study"
    )
    f = verdicts.findings(results.read(p), n_boot=300)
    row = _row(f, 1, "sim-flood")
    assert row["decision"] == "equivalent" and row["verdict"] == verdicts.HOLDS


def test_single_seed_is_inconclusive(tmp_path):
    p = tmp_path / "r.csv"
    _write_scores(p, "sim-flood", "flood", "lgbm", "classical", [0.95])
    _write_scores(p, "sim-flood", "flood", "prithvi_mae", "fm", [0.50], "mae-in-study")
    f = verdicts.findings(results.read(p), n_boot=300)
    assert _verdict(f, 1, "sim-flood") == verdicts.INCONCLUSIVE
    assert _row(f, 1, "sim-flood")["effect"] == "+45.0 pts (no interval: 1 replicate)"


def test_only_replicates_both_sides_ran_are_paired(tmp_path):
    p = tmp_path / "r.csv"
    _write_scores(p, "sim-flood", "flood", "lgbm", "classical", [0.90, 0.91, 0.92])
    _write_scores(p, "sim-flood", "flood", "prithvi_mae", "fm", [0.70, 0.71], "mae-in-study")
    f = verdicts.findings(results.read(p), n_boot=300)
    row = _row(f, 1, "sim-flood")
    assert row["n_replicates"] == 2 and row["replicates"] == "0,1"
    assert "paired over 2 of 3 replicates (0,1)" in row["evidence"]
    assert row["per_replicate"] == pytest.approx((0.20, 0.20))


def test_claim2_cells(tmp_path):
    p = tmp_path / "r.csv"
    # sim-burn: DL clearly above classical, FM and CNN within the margin -> 2a and 2b hold
    _write_scores(p, "sim-burn", "burn", "lgbm_aug", "classical", [0.60, 0.61, 0.62])
    _write_scores(p, "sim-burn", "burn", "unet", "cnn", [0.80, 0.82, 0.84])
    _write_scores(p, "sim-burn", "burn", "prithvi_mae", "fm", [0.81, 0.83, 0.85], "mae-in-study")
    # sim-texture-1: DL above classical but FM clearly below CNN -> 2a holds, 2b does not
    _write_scores(p, "sim-texture-1", "texture", "lgbm", "classical", [0.50, 0.51, 0.52])
    _write_scores(p, "sim-texture-1", "texture", "unet", "cnn", [0.90, 0.91, 0.92])
    _write_scores(p, "sim-texture-1", "texture", "prithvi_mae", "fm", [0.70, 0.71, 0.72], "mae-in-study")
    # sim-texture-0.5: classical clearly above -> 2a does not hold
    _write_scores(p, "sim-texture-0.5", "texture", "lgbm", "classical", [0.90, 0.91, 0.92])
    _write_scores(p, "sim-texture-0.5", "texture", "unet", "cnn", [0.70, 0.71, 0.72])
    _write_scores(p, "sim-texture-0.5", "texture", "prithvi_mae", "fm", [0.60, 0.61, 0.62], "mae-in-study")
    # sim-texture-0.75: a transformer from scratch is the best deep model, but it is not an FM
    _write_scores(p, "sim-texture-0.75", "texture", "lgbm", "classical", [0.60, 0.61, 0.62])
    _write_scores(p, "sim-texture-0.75", "texture", "unet", "cnn", [0.70, 0.71, 0.72])
    _write_scores(p, "sim-texture-0.75", "texture", "vit", "fm", [0.90, 0.91, 0.92])
    _write_scores(p, "sim-texture-0.75", "texture", "prithvi_mae", "fm", [0.71, 0.72, 0.73], "mae-in-study")
    f = verdicts.findings(results.read(p), n_boot=300)
    assert _verdict(f, "2a", "sim-burn") == verdicts.HOLDS
    assert _verdict(f, "2b", "sim-burn") == verdicts.HOLDS
    assert _verdict(f, "2a", "sim-texture-1") == verdicts.HOLDS
    assert _verdict(f, "2b", "sim-texture-1") == verdicts.FAILS
    assert _verdict(f, "2a", "sim-texture-0.5") == verdicts.FAILS
    assert _verdict(f, 1, "sim-burn") == verdicts.NOT_APPLICABLE
    assert _row(f, "2a", "sim-texture-0.75")["model_a"] == "vit"
    assert _row(f, "2b", "sim-texture-0.75")["model_a"] == "prithvi_mae"  # ViT from scratch is no FM
    assert _verdict(f, "2b", "sim-texture-0.75") == verdicts.HOLDS


def test_claim3_each_pretext_against_random_init(tmp_path):
    p = tmp_path / "r.csv"
    for ds, task, spec, mae, rand in (
        # spectral task: spectral pretext helps, MAE does not, spectral > MAE -> all hold
        ("sim-texture-0", "texture", [0.80, 0.81, 0.82], [0.70, 0.71, 0.72], [0.70, 0.71, 0.72]),
        # texture task: MAE helps, spectral does not, MAE > spectral -> all hold
        ("sim-texture-1", "texture", [0.60, 0.61, 0.62], [0.70, 0.71, 0.72], [0.60, 0.61, 0.62]),
        # spectral task, MAE helps and wins: the MAE cells do not hold, spectral vs random does not either
        ("sim-flood", "flood", [0.60, 0.61, 0.62], [0.70, 0.71, 0.72], [0.60, 0.61, 0.62]),
        ("indian-pines-hls", "landcover", [0.80, 0.81, 0.82], [0.70, 0.71, 0.72], [0.60, 0.61, 0.62]),
    ):
        _write_scores(p, ds, task, "prithvi_spectral", "fm", spec, "spectral-in-study")
        _write_scores(p, ds, task, "prithvi_mae", "fm", mae, "mae-in-study")
        _write_scores(p, ds, task, "prithvi_random", "fm", rand, "none")
    f = verdicts.findings(results.read(p), n_boot=300)
    for ds in ("sim-texture-0", "sim-texture-1"):
        for cell in ("3 MAE vs random", "3 spectral vs random", "3 MAE vs spectral"):
            assert _verdict(f, cell, ds) == verdicts.HOLDS, (cell, ds)
    assert _row(f, "3 MAE vs random", "sim-texture-0")["decision"] == "equivalent"
    assert _verdict(f, "3 MAE vs random", "sim-flood") == verdicts.FAILS
    assert (
        _verdict(f, "3 spectral vs random", "sim-flood") == verdicts.FAILS
    )  # equivalent: the aligned one must win
    assert _verdict(f, "3 MAE vs spectral", "sim-flood") == verdicts.FAILS
    assert _verdict(f, "3 MAE vs spectral", "indian-pines-hls") == verdicts.NOT_APPLICABLE
    assert _verdict(f, 1, "sim-flood") == verdicts.MISSING  # no classical row
    assert _row(f, "3 MAE vs random", "sim-flood")["model_b"] == "prithvi_random"


def test_claim3_published_weights_against_the_same_network_from_random_init(tmp_path):
    p = tmp_path / "r.csv"
    # sim-flood: the published weights win clearly; sim-texture-1: they do not (random init ahead)
    for ds, task, pub, rand in (
        ("sim-flood", "flood", [0.80, 0.82, 0.84], [0.60, 0.61, 0.62]),
        ("sim-texture-1", "texture", [0.60, 0.61, 0.62], [0.80, 0.82, 0.84]),
    ):
        _write_scores(p, ds, task, "galileo_nano_finetune", "fm", pub, "published")
        _write_scores(p, ds, task, "galileo_nano_finetune_random", "fm", rand, "none")
        # a frozen row of the same encoder has no random-init twin: it makes no claim-3 cell
        _write_scores(p, ds, task, "galileo_nano_frozen_lgbm", "fm", [0.5, 0.5, 0.5], "published")
    _write_scores(p, "sim-texture-1", "texture", "unet", "cnn", [0.70, 0.71, 0.72])
    f = verdicts.findings(results.read(p), n_boot=300)
    assert _verdict(f, "3 published vs random", "sim-flood") == verdicts.HOLDS
    assert _verdict(f, "3 published vs random", "sim-texture-1") == verdicts.FAILS
    row = _row(f, "3 published vs random", "sim-flood")
    assert (row["model_a"], row["model_b"]) == ("galileo_nano_finetune", "galileo_nano_finetune_random")
    assert not f["cell"].str.contains("frozen").any()
    # no in-study pretext here: their cells are not invented for the published architecture
    assert not f["cell"].str.startswith("3 MAE").any()
    # the random-init network is a transformer from scratch, not an FM, in claim 2b (though it scores highest)
    assert _row(f, "2b", "sim-texture-1")["model_a"] == "galileo_nano_finetune"


def test_holm_runs_over_every_tested_cell(tmp_path):
    p = tmp_path / "r.csv"
    rng = np.random.default_rng(3)
    for ds, task in (("sim-flood", "flood"), ("sim-crop", "crop"), ("sim-burn", "burn")):
        base = rng.normal(0.7, 0.03, 4)
        _write_scores(p, ds, task, "lgbm", "classical", base + rng.normal(0.03, 0.01, 4))
        _write_scores(p, ds, task, "unet", "cnn", base + rng.normal(0.01, 0.01, 4))
        _write_scores(p, ds, task, "prithvi_mae", "fm", base + rng.normal(0, 0.01, 4), "mae-in-study")
    f = verdicts.findings(results.read(p), n_boot=300)
    tested = f["p_adjusted"].notna()
    assert tested.sum() == 4  # claim 1 on flood and crop, 2a and 2b on burn
    np.testing.assert_allclose(f.loc[tested, "p_adjusted"], stats.holm(f.loc[tested, "p"]))
    assert (f.loc[tested, "p_adjusted"] >= f.loc[tested, "p"]).all()


def test_chip_counts_hook_is_consulted_per_dataset(table, monkeypatch):
    calls = []

    def hook(d, simulated, models, chips_dir):
        calls.append((d["dataset"].iloc[0], simulated, chips_dir))
        return None

    monkeypatch.setattr(verdicts, "_chip_counts", hook)
    verdicts.findings(table, n_boot=50)
    assert sorted(calls) == sorted((d, d.startswith("sim-"), None) for d in CLASSES)


def test_real_data_resamples_test_chips_when_every_run_saved_them(tmp_path):
    p, chips_dir = tmp_path / "r.csv", tmp_path / "chips"
    rng = np.random.default_rng(0)
    runs = (
        ("lgbm_aug", "classical", "none", 0.6),
        ("unet", "cnn", "none", 0.8),
        ("prithvi_mae", "fm", "mae-in-study", 0.8),
    )
    for model, family, pre, level in runs:
        _write_scores(p, "burn_scars", "burn", model, family, [level, level + 0.01, level + 0.02], pre)
        for seed in range(3):
            cms = rng.integers(1, 50, size=(6, 2, 2)) + np.eye(2, dtype=int) * int(400 * level)
            counts = {"test": results.chip_counts([f"c{i}" for i in range(6)], cms)}
            if model == "unet" and seed == 2:
                continue  # saved later, below
            results.save_chip_counts(chips_dir, results.RunId("burn_scars", model, seed), "", counts)
    df = results.read(p)
    partial = verdicts.findings(df, n_boot=100, chips_dir=chips_dir)
    assert (
        "test chips" not in _row(partial, "2a", "burn_scars")["effect"]
    )  # one run lacks counts: replicates only
    results.save_chip_counts(chips_dir, results.RunId("burn_scars", "unet", 2), "", counts)
    crossed = verdicts.findings(df, n_boot=100, chips_dir=chips_dir)
    assert "over replicates and test chips" in _row(crossed, "2a", "burn_scars")["effect"]
    assert "test chips" not in _row(verdicts.findings(df, n_boot=100), "2a", "burn_scars")["effect"]


def test_chip_counts_of_budget_runs_are_read_from_their_budget(tmp_path):
    """A run below full labels keeps its counts under its budget's folder; the crossed bootstrap must find them."""
    chips_dir = tmp_path / "chips"
    cms = np.ones((4, 2, 2), dtype=int)
    counts = {"test": results.chip_counts([f"c{i}" for i in range(4)], cms)}
    rows = []
    for model in ("rf", "unet"):
        for seed in range(2):
            key = f"{model}{seed}p10"
            results.save_chip_counts(chips_dir, results.RunId("scene", model, seed, "points-10"), key, counts)
            rows.append({"dataset": "scene", "split": "test", "model": model, "seed": seed, "run_key": key,
                         "label_budget": "points-10"})  # fmt: skip
    d = pd.DataFrame(rows)
    got = verdicts._chip_counts(d, False, ["rf", "unet"], chips_dir)
    assert got is not None and sorted(got) == [(0, "rf"), (0, "unet"), (1, "rf"), (1, "unet")]
    np.testing.assert_array_equal(got[(1, "unet")][0], counts["test"]["tp"])
    # the same runs read as full-label runs find nothing under their keys: replicates only
    assert verdicts._chip_counts(d.assign(label_budget="all"), False, ["rf", "unet"], chips_dir) is None


def test_findings_on_full_table(table):
    f = verdicts.findings(table, n_boot=200)
    assert f.groupby("dataset").size().eq(6).all() and set(f["dataset"]) == set(CLASSES)
    assert _row(f, "2a", "sim-burn")["estimate"] > 0.05  # DL ≈ 0.8 vs classical ≈ 0.65
    assert _row(f, 1, "sim-crop")["model_b"] == "prithvi_spectral"  # the best pretrained FM, not prithvi_none
    assert (
        f["verdict"]
        .isin(
            [
                verdicts.HOLDS,
                verdicts.FAILS,
                verdicts.INCONCLUSIVE,
                verdicts.MISSING,
                verdicts.NOT_APPLICABLE,
            ]
        )
        .all()
    )
    assert f["effect"].str.contains("t-interval over 3 replicates").sum() == f["p"].notna().sum()
    assert verdicts.findings_date(table) != "unknown date"


# ---------------------------------------------------------------------------------------------------------------
# missing results


def test_missing_results_name_the_notebook(table, tmp_path):
    compare.require_results(table, ["sim-crop", "sim-burn"])  # complete: no error
    assert compare.check_results(table, ["sim-crop"]).empty
    only_classical = table[table["family"] == "classical"]
    missing = compare.check_results(only_classical, ["sim-crop"])
    assert missing["family"].tolist() == ["cnn", "fm"]
    with pytest.raises(compare.MissingResultsError, match=r"no cnn rows.*03_") as err:
        compare.require_results(only_classical, ["sim-crop", "sim-flood"], results_path="x/results.csv")
    msg = str(err.value)
    assert "sim-flood: no classical rows" in msg and "02_" in msg and "04_" in msg and "x/results.csv" in msg
    with pytest.raises(compare.MissingResultsError, match="02_"):
        compare.require_results(results.read(tmp_path / "absent.csv"), ["sim-crop"])


def test_not_run_family_counts_as_present(table):
    # sim-burn has a not-run FM row; drop the FM scores: the family ran but produced no numbers -> not missing
    burn = table[(table["dataset"] == "sim-burn") & ((table["family"] != "fm") | (table["status"] != "ok"))]
    assert compare.check_results(burn, ["sim-burn"]).empty


def test_texture_names_and_ordering():
    assert compare.texture_knob("sim-texture-0.25") == 0.25 and compare.texture_knob("sim-crop") is None
    names = ["sim-texture-1", "sim-texture-0.5", "sim-crop", "crop", "sim-texture-0"]
    assert compare.ordered_datasets(names) == [
        "crop",
        "sim-crop",
        "sim-texture-0",
        "sim-texture-0.5",
        "sim-texture-1",
    ]
    assert compare.texture_datasets(names, [0.0, 1.0]) == ["sim-texture-0", "sim-texture-1"]
    assert compare.texture_dataset_names([0.0, 0.25], known=["sim-texture-0"]) == [
        "sim-texture-0",
        "sim-texture-0.25",
    ]
    assert verdicts.dataset_setting("sim-texture-0", "texture") == "spectral"
    assert verdicts.dataset_setting("burn_scars", "burn") == "texture"
    assert verdicts.dataset_setting("indian-pines-hls", "landcover") == "unknown"


def test_majority_floor_flags_deep_rows_that_do_not_beat_the_most_frequent_class():
    base = {"task": "t", "simulated": False, "split": "test", "metric": "oa", "class": "", "status": "ok"}
    rows = [
        {**base, "dataset": "d", "model": "unet", "family": "cnn", "seed": s, "value": v}
        for s, v in enumerate([0.5, 0.6])
    ]
    rows += [{**base, "dataset": "d", "model": "vit", "family": "fm", "seed": 0, "value": 0.2}]
    rows += [{**base, "dataset": "d", "model": "rf", "family": "classical", "seed": 0, "value": 0.1}]
    out = compare.majority_floor(pd.DataFrame(rows), {"d": 0.3})
    assert list(out["model"]) == ["unet", "vit"]  # classical rows are not checked
    assert out.set_index("model")["oa"]["unet"] == pytest.approx(0.55)
    assert list(out["above"]) == [True, False]


def test_true_label_scores_pair_the_noisy_and_true_test_scores():
    rows = []
    for model, family, shift in (("rf", "classical", 0.0), ("unet", "cnn", 0.05)):
        for seed in (0, 1, 2):
            for split, value in (("val", 0.40), ("test", 0.41), ("test_true_labels", 0.52)):
                rows.append(
                    {
                        "dataset": "sim-crop",
                        "task": "crop",
                        "simulated": True,
                        "model": model,
                        "family": family,
                        "pretraining": "none",
                        "seed": seed,
                        "split": split,
                        "metric": "miou_macro",
                        "class": "",
                        "value": value + shift + 0.01 * seed,
                        "status": "ok",
                    }
                )
    df = pd.DataFrame(rows).reindex(columns=results.COLUMNS)
    agg = compare.aggregate(df, metrics=["miou_macro"], splits=["test", "test_true_labels"], n_boot=100)
    out = compare.true_label_scores(agg, {"sim-crop": 0.694})
    assert out["model"].tolist() == ["rf", "unet"] and (out["n"] == 3).all()
    assert out.loc[0, "test"].startswith("42.0 [") and out.loc[1, "test_true_labels"].startswith("58.0 [")
    assert (out["ceiling"] == "69.4").all()
    assert compare.true_label_scores(
        agg[agg["split"] == "test"]
    ).empty  # no true-label split: nothing to pair


def test_val_test_gap_flags_a_model_that_alone_falls_from_validation_to_test():
    rows = []
    for model, family, pre, drop in [
        ("rf", "classical", "none", 0.01),
        ("unet", "cnn", "none", 0.02),
        ("presto_frozen_lgbm", "fm", "published", 0.15),
        ("presto_frozen_linear", "fm", "published", 0.18),
    ]:
        for seed in range(3):
            for split, value in (("val", 0.5), ("test", 0.5 - drop)):
                row = dict(dataset="sim-x", task="crop", simulated=True, model=model, family=family,
                           pretraining=pre, seed=seed, label_budget="all", split=split, metric="miou_macro",
                           value=value, status="ok")  # fmt: skip
                row["class"] = ""
                rows.append(row)
    gap = compare.val_test_gap(pd.DataFrame(rows)).set_index("model")
    assert gap.loc["presto_frozen_lgbm", "drop"] == pytest.approx(15.0) and gap.loc["rf", "n"] == 3
    # the two Presto heads are not each other's reference: both are outside the other encoders' 1-2 points
    assert gap.loc["presto_frozen_lgbm", ["others_min", "others_max"]].tolist() == pytest.approx([1.0, 2.0])
    assert gap.loc["presto_frozen_lgbm", "outside"] and gap.loc["presto_frozen_linear", "outside"]
    assert not gap.loc["unet", "outside"]  # 2 points, inside the range of rf and the Presto rows


def test_a_model_run_on_fewer_replicates_is_no_candidate_and_the_evidence_says_so(tmp_path):
    """One seed of a strong model must not cut the paired comparisons of its family down to that seed."""
    path = tmp_path / "r.csv"
    _write_scores(path, "sim-flood", "flood", "rf", "classical", [0.90, 0.91, 0.92])
    _write_scores(path, "sim-flood", "flood", "unet", "cnn", [0.80, 0.82, 0.81])
    _write_scores(
        path, "sim-flood", "flood", "presto_frozen_lgbm", "fm", [0.85, 0.86, 0.87], pretraining="published"
    )
    _write_scores(path, "sim-flood", "flood", "galileo_nano_finetune", "fm", [0.99], pretraining="published")
    f = verdicts.findings(results.read(path), n_boot=200)
    row = _row(f, "1", "sim-flood")
    assert row["model_b"] == "presto_frozen_lgbm" and row["n_replicates"] == 3
    assert (
        "left out, run on fewer replicates than its group's others: galileo_nano_finetune (1 of 3)"
        in row["evidence"]
    )


def test_claim3_evidence_names_sides_fine_tuned_in_different_precisions(tmp_path):
    """One network from two starts: a table mixing bf16 and float32 rows (before a rerun) says so in the cell."""
    p = tmp_path / "r.csv"
    bf16, f32 = "trained with 1 thread(s), bf16 autocast", "trained with 1 thread(s), float32"
    _write_scores(p, "sim-flood", "flood", "prithvi_mae", "fm", [0.70, 0.71, 0.72], "mae-in-study", note=bf16)
    _write_scores(p, "sim-flood", "flood", "prithvi_random", "fm", [0.60, 0.61, 0.62], "none", note=f32)
    _write_scores(
        p, "sim-flood", "flood", "prithvi_spectral", "fm", [0.6, 0.6, 0.6], "spectral-in-study", note=bf16
    )
    f = verdicts.findings(results.read(p), n_boot=300)
    mixed = "fine-tuned in different precisions (prithvi_mae: bf16 autocast; prithvi_random: float32)"
    assert mixed in _row(f, "3 MAE vs random", "sim-flood")["evidence"]
    assert "different precisions" not in _row(f, "3 MAE vs spectral", "sim-flood")["evidence"]


def test_a_verdict_never_rests_on_a_run_stopped_by_its_step_cap(tmp_path):
    """A capped run still climbed: the cell is inconclusive unless the capped side wins anyway, and says why."""

    def table(random_stops, published_stops, published=(0.95, 0.96, 0.97)):
        p = tmp_path / f"{random_stops[0]}-{published_stops[0]}-{published[0]}.csv"
        _write_scores(p, "sim-burn", "burn", "galileo_nano_finetune", "fm", list(published), "published",
                      stopped_by=published_stops)  # fmt: skip
        _write_scores(p, "sim-burn", "burn", "galileo_nano_finetune_random", "fm", [0.70, 0.72, 0.71], "none",
                      stopped_by=random_stops)  # fmt: skip
        return verdicts.findings(results.read(p), n_boot=300, claims=(3,))

    plateau = ("plateau",) * 3
    cell = "3 published vs random"
    converged = _row(table(plateau, plateau), cell, "sim-burn")
    assert converged["decision"] == "a>b" and converged["verdict"] == verdicts.HOLDS
    assert "step cap" not in converged["evidence"]
    # the random init capped in one replicate: the published lead may be the cap's, so no verdict
    capped = _row(table(("plateau", "cap", "plateau"), plateau), cell, "sim-burn")
    assert capped["decision"] == "a>b" and capped["verdict"] == verdicts.INCONCLUSIVE
    assert (
        "galileo_nano_finetune_random stopped by its step cap, not a plateau, in 1 of 3 paired replicates (1)"
        in capped["evidence"]
    )
    line = readme.verdict_lines(table(("plateau", "cap", "plateau"), plateau))[0]
    assert "**inconclusive**" in line and line.endswith(
        "; stopped by the step cap, still improving (lower bounds): galileo_nano_finetune_random in 1 of 3 replicates."
    )
    assert "step cap" not in readme.verdict_lines(table(plateau, plateau))[0]
    # the published side capped and still ahead: a lower bound that wins stands
    ahead = _row(table(plateau, ("cap",) * 3), cell, "sim-burn")
    assert ahead["verdict"] == verdicts.HOLDS and "in 3 of 3 paired replicates (0,1,2)" in ahead["evidence"]
    # the published side capped and behind: it might catch up, so no verdict where there was one
    behind = table(plateau, ("cap",) * 3, published=(0.60, 0.61, 0.62))
    assert _row(behind, cell, "sim-burn")["decision"] == "b>a"
    assert _row(behind, cell, "sim-burn")["verdict"] == verdicts.INCONCLUSIVE
    uncapped_behind = table(plateau, plateau, published=(0.60, 0.61, 0.62))
    assert _row(uncapped_behind, cell, "sim-burn")["verdict"] == verdicts.FAILS


def test_evidence_names_sides_trained_on_different_cpus(tmp_path):
    """Default rows from one machine beside full.yaml rows from another: the cell says so; classical rows never."""
    p = tmp_path / "r.csv"
    amx, epyc = "x86_64 AVX512 bf16=amx+avx512 torch=2.13.0+cpu", "x86_64 AVX512 bf16=avx512 torch=2.13.0+cpu"
    _write_scores(
        p, "sim-flood", "flood", "prithvi_mae", "fm", [0.70, 0.71, 0.72], "mae-in-study", platform=epyc
    )
    _write_scores(p, "sim-flood", "flood", "prithvi_random", "fm", [0.60, 0.61, 0.62], "none", platform=amx)
    _write_scores(
        p, "sim-flood", "flood", "prithvi_spectral", "fm", [0.6, 0.6, 0.6], "spectral-in-study", platform=epyc
    )
    _write_scores(p, "sim-flood", "flood", "unet", "cnn", [0.80, 0.82, 0.81], platform=epyc)
    _write_scores(p, "sim-flood", "flood", "rf", "classical", [0.5, 0.52, 0.51], platform="x86_64 other")
    f = verdicts.findings(results.read(p), n_boot=300)
    mixed = f"trained on different CPUs (prithvi_mae: {epyc}; prithvi_random: {amx})"
    assert mixed in _row(f, "3 MAE vs random", "sim-flood")["evidence"]
    assert "different CPUs" not in _row(f, "3 MAE vs spectral", "sim-flood")["evidence"]
    assert not f["evidence"].str.contains("x86_64 other").any()  # a classical side's CPU is never named


def test_pretext_gains_pair_within_budget_and_say_where_the_twin_did_not_run(tmp_path):
    """Gains over random init per label budget: paired by replicate at the same budget, never across budgets."""
    from helpers.report import pretext_figures

    p = tmp_path / "r.csv"
    _write_scores(p, "sim-burn", "burn", "prithvi_arch_small_mae", "fm", [0.70, 0.74, 0.72], "mae-in-study")
    _write_scores(p, "sim-burn", "burn", "prithvi_arch_small_random", "fm", [0.60, 0.70, 0.71], "none")
    _write_scores(p, "sim-burn", "burn", "unet", "cnn", [0.9, 0.9, 0.9])
    table = results.read(p)
    sparse = table[table["model"] == "prithvi_arch_small_mae"].assign(label_budget="points-10")
    sparse["value"] = sparse["value"] - 0.5  # the 10 px/class rows: far below, and no twin at that budget
    g = pretext_figures.pretext_gains(pd.concat([table, sparse], ignore_index=True))
    assert list(g["label_budget"]) == ["points-10", "all"]  # smallest budget first
    full = g.iloc[1]
    assert full["reference"] == "prithvi_arch_small_random" and full["n_replicates"] == 3
    assert full["gain_mean"] == pytest.approx(5.0) and (full["gain_min"], full["gain_max"]) == pytest.approx(
        (1.0, 10.0)
    )
    small = g.iloc[0]
    assert small["n_replicates"] == 0 and np.isnan(small["gain_mean"])
    assert small["note"] == "prithvi_arch_small_random not run at this budget"
    assert pretext_figures.pretext_gains(table[table["model"] == "unet"]).empty
    other_cpu = table.assign(platform=table["model"].map({"prithvi_arch_small_mae": "cpu a"}).fillna("cpu b"))
    crossed = pretext_figures.pretext_gains(other_cpu).iloc[0]
    assert crossed["cross_cpu"] and "different CPUs" in crossed["note"]
    same = pretext_figures.pretext_gains(table.assign(platform="cpu a")).iloc[0]
    assert not same["cross_cpu"] and same["note"] == ""
    assert not small["cross_cpu"]  # no pair, no CPUs to compare


def test_claim3_at_a_smaller_budget_uses_only_that_budgets_runs(tmp_path):
    """Claim 3 asked again at 10 px/class: that budget's rows only, claim 3's cells only, a Holm family of its own."""
    from helpers.report import pretext_figures

    p = tmp_path / "r.csv"
    # full labels: the published weights win clearly on both datasets
    for ds, task in (("sim-flood", "flood"), ("sim-texture-1", "texture")):
        _write_scores(p, ds, task, "galileo_nano_finetune", "fm", [0.80, 0.82, 0.84], "published")
        _write_scores(p, ds, task, "galileo_nano_finetune_random", "fm", [0.60, 0.61, 0.62], "none")
        _write_scores(p, ds, task, "rf", "classical", [0.7, 0.7, 0.7])
    full = results.read(p)
    # at 10 px/class the random init wins on sim-flood; sim-texture-1 has no random-init twin there
    small = full[full["model"] != "rf"].assign(label_budget="points-10")
    flood_pub = (small["dataset"] == "sim-flood") & (small["model"] == "galileo_nano_finetune")
    small.loc[flood_pub, "value"] -= 0.4
    small = small[
        ~((small["dataset"] == "sim-texture-1") & (small["model"] == "galileo_nano_finetune_random"))
    ]
    both = pd.concat([full, small], ignore_index=True)
    assert (
        _verdict(verdicts.findings(both, n_boot=300), "3 published vs random", "sim-flood") == verdicts.HOLDS
    )
    out = pretext_figures.write_claim3_at_budgets(both, tmp_path / "fig", n_boot=300)
    assert list(out) == ["points-10"]
    f, paths = out["points-10"]
    assert set(f["claim"]) == {3}  # claims 1 and 2 are the regime map's at a budget
    assert _verdict(f, "3 published vs random", "sim-flood") == verdicts.FAILS
    assert _row(f, "3 published vs random", "sim-flood")["estimate"] == pytest.approx(-0.19)  # 0.42 - 0.61
    # sim-texture-1's published row has no twin at this budget: no cell is invented from the full-label twin
    assert not ((f["dataset"] == "sim-texture-1") & f["cell"].str.startswith("3 published")).any()
    tested = f["p_adjusted"].notna()
    np.testing.assert_allclose(f.loc[tested, "p_adjusted"], stats.holm(f.loc[tested, "p"]))
    md = paths[0].read_text()
    assert paths[0].name == "findings_points-10.md" and "## Claim 3 at label budget points-10" in md
    assert f"over the {int(tested.sum())} tested cells of this table" in md
    assert verdicts.claim3_at_budgets(full) == {}  # full labels only: nothing to ask again

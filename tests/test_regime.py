"""The regime map (helpers.report.regime): paired winners per (dataset, budget), labels to reach 90 %, the figure."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers.report import plotting, regime, regime_figures, tables  # noqa: E402


def _rows(dataset, model, family, pretraining, budget, seed, val, test, px):
    base = dict(
        dataset=dataset,
        model=model,
        family=family,
        pretraining=pretraining,
        label_budget=budget,
        seed=seed,
        metric="miou_macro",
        status="ok",
        n_labelled_px=px,
    )
    base["class"] = ""
    return [{**base, "split": "val", "value": val}, {**base, "split": "test", "value": test}]


def _table(fm_gap_small=(0.05, 0.04, 0.06), n_seeds=3):
    rows = []
    for s in range(n_seeds):
        for budget, px, fm_gap in (("points-10", 20, fm_gap_small[s]), ("all", np.nan, -0.02)):
            rows += _rows("sim-x", "rf", "classical", "none", budget, s, 0.70, 0.70, px)
            rows += _rows(
                "sim-x", "unet", "cnn", "none", budget, s, 0.60, 0.60, px
            )  # worse on val: not chosen
            rows += _rows(
                "sim-x", "presto_frozen_lgbm", "fm", "published", budget, s, 0.72, 0.70 + fm_gap, px
            )
    rows += _rows("sim-x", "vit", "fm", "none", "all", 0, 0.9, 0.9, 5000)  # no budget rows: not in the map
    return pd.DataFrame(rows)


def test_curves_keep_budgeted_models_and_fill_full_label_pixels():
    cv = regime.curves(_table(), {"sim-x": 5000})
    assert set(cv["model"]) == {"rf", "unet", "presto_frozen_lgbm"}
    assert set(cv.loc[cv["label_budget"] == "all", "n_labelled_px"]) == {5000}
    assert set(cv.loc[cv["model"] == "presto_frozen_lgbm", "group"]) == {regime.FM}
    assert not regime.is_fm("fm", "none")  # a transformer from scratch is not a foundation model


def test_winner_needs_a_significant_paired_difference_and_is_chosen_on_validation():
    rg = regime.regime(regime.curves(_table(), {"sim-x": 5000})).set_index("label_budget")
    assert (
        rg.loc["points-10", "best_other"] == "rf" and rg.loc["points-10", "best_fm"] == "presto_frozen_lgbm"
    )
    assert rg.loc["points-10", "winner"] == regime.FM
    assert rg.loc["points-10", "advantage"] == pytest.approx(5.0)
    assert (rg.loc["points-10", "adv_min"], rg.loc["points-10", "adv_max"]) == pytest.approx((4.0, 6.0))
    # a t interval over 3 replicates (t_2 = 4.30 on an SE of about 1/sqrt(3)): wider than their range, not it
    lo, hi = rg.loc["points-10", "lo"], rg.loc["points-10", "hi"]
    assert lo < 4.0 and hi > 6.0 and lo > 0
    assert rg.loc["points-10", "p_holm"] >= rg.loc["points-10", "p"]  # Holm over the map's two cells
    assert "t-interval over 3 replicates" in rg.loc["points-10", "interval"]
    assert rg.loc["all", "winner"] == regime.OTHER
    # mixed signs: the interval covers zero
    mixed = regime.regime(regime.curves(_table((0.05, -0.01, 0.02)), {"sim-x": 5000}))
    assert mixed.set_index("label_budget").loc["points-10", "winner"] == regime.NOT_SEPARATED
    # two replicates ahead by 4 and 5 points: t_1 = 12.7 leaves the difference unresolved
    two = regime.regime(regime.curves(_table(n_seeds=2), {"sim-x": 5000}))
    assert two.set_index("label_budget").loc["points-10", "winner"] == regime.NOT_SEPARATED
    # level: the FM row within a fraction of a point on every replicate
    level = regime.regime(regime.curves(_table((0.001, -0.001, 0.0)), {"sim-x": 5000}))
    assert level.set_index("label_budget").loc["points-10", "winner"] == regime.LEVEL_
    assert "level (within the ±2-point margin) at points-10" in regime.findings_lines(level)[0]


def test_labels_to_reach_and_findings_lines():
    cv = regime.curves(_table(), {"sim-x": 5000})
    reach = regime.labels_to_reach(cv).set_index("model")
    assert reach.loc["rf", "reached_at"] == "points-10" and reach.loc["rf", "n_labelled_px"] == 20
    lines = regime.findings_lines(regime.regime(cv))
    assert len(lines) == 1 and "wins at points-10" in lines[0] and "Holm p" in lines[0]
    assert "replicates +5.0, +4.0, +6.0" in lines[0]  # every replicate's paired difference, by seed
    section = tables.regime_section(lines)
    assert "95 % t-interval over replicates" in section and lines[0] in section
    assert "range over" not in section
    assert tables.regime_section([]) == ""


def test_regime_figure_fits_a_page():
    plotting.setup_style()
    cv = regime.curves(_table(), {"sim-x": 5000})
    fig = regime_figures.regime_figure(cv, regime.regime(cv))
    w, h = fig.get_size_inches()
    assert w <= plotting.PAGE_WIDTH["full"] + 1e-6 and h <= plotting.MAX_HEIGHT
    assert plotting.min_font_pt(fig) >= plotting.MIN_FONT_PT
    cells = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(
        t.endswith("\npresto_frozen_lgbm vs rf") for t in cells
    )  # each cell names the rows it compares
    assert regime_figures.regime_figure(pd.DataFrame(), pd.DataFrame()) is None


def test_full_label_cell_compares_every_row_and_smaller_budgets_name_the_rows_they_lack():
    """The map's ``all`` column must agree with the claims: an FM row run at full labels only competes there."""
    table = _table((-0.05, -0.04, -0.06))  # presto loses at points-10 on every replicate
    table = table[table["model"] != "vit"]
    for s in range(3):  # the fine-tuned FM: best on validation at full labels, never run at points-10
        table = pd.concat(
            [
                table,
                pd.DataFrame(
                    _rows("sim-x", "galileo_nano_finetune", "fm", "published", "all", s, 0.9, 0.9, 5000)
                ),
            ]
        )
    table = pd.concat([table, pd.DataFrame(_rows("sim-y", "rf", "classical", "none", "all", 0, 0.5, 0.5, 9))])
    budgeted = regime.regime(regime.curves(table, {"sim-x": 5000})).set_index("label_budget")
    assert (
        budgeted.loc["all", "best_fm"] == "presto_frozen_lgbm"
    )  # without it: the fine-tuned row is not seen
    cv = regime.curves(table, {"sim-x": 5000}, every_full_row=True)
    assert set(cv["dataset"]) == {"sim-x"}  # a dataset without budget rows stays out of the map
    rg = regime.regime(cv).set_index("label_budget")
    assert rg.loc["all", "best_fm"] == "galileo_nano_finetune" and rg.loc[
        "all", "advantage"
    ] == pytest.approx(20.0)
    assert rg.loc["points-10", "fm_not_run"] == "galileo_nano_finetune"
    assert rg.loc["points-10", "other_not_run"] == "" and rg.loc["all", "fm_not_run"] == ""
    lines = regime.findings_lines(rg.reset_index())
    assert "FM rows run at full labels only, not compared at points-10 (galileo_nano_finetune)" in lines[0]


@pytest.mark.parametrize("n_budgets", [2, 4, 6])
def test_map_cell_texts_fit_their_cells(n_budgets):
    """The full profile's six budgets narrow the cells: their text splits or drops the model names, never overflows."""
    plotting.setup_style()
    budgets = [("points-10", 20), ("points-100", 200), ("points-1000", 2000), ("chips-0.0625", 3000)]
    budgets = [*budgets, ("chips-0.25", 9000)][: n_budgets - 1] + [("all", np.nan)]
    rng = np.random.default_rng(0)
    rows = []
    for d in ("sim-crop", "sim-burn", "sim-texture-0.5"):
        for s in range(3):
            for b, px in budgets:
                rows += _rows(d, "deeplabv3plus", "cnn", "none", b, s, 0.7, 0.7 + rng.normal(0, 0.05), px)
                fm_test = 0.7 + rng.normal(0, 0.05)
                rows += _rows(d, "galileo_nano_frozen_linear", "fm", "published", b, s, 0.72, fm_test, px)
    cv = regime.curves(pd.DataFrame(rows), {"sim-crop": 5000, "sim-burn": 5000, "sim-texture-0.5": 5000})
    fig = regime_figures.regime_figure(cv, regime.regime(cv, n_boot=50))
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[-2]  # the map (the colour bar is last)
    box = ax.get_window_extent(renderer)
    cell_w, cell_h = box.width / n_budgets, box.height / 3
    sizes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(sizes) == 3 * n_budgets
    assert max(b.width for b in sizes) <= cell_w and max(b.height for b in sizes) <= cell_h
    named = any("vs deeplabv3plus" in t.get_text() for t in ax.texts)
    assert named == (n_budgets <= 2)  # names where they fit; regime_map.md keeps them always
    assert fig.get_size_inches()[1] <= plotting.MAX_HEIGHT


def test_a_cell_whose_networks_trained_on_different_cpus_says_so_and_a_classical_side_never_does():
    t = _table()
    t["platform"] = t["model"].map({"presto_frozen_lgbm": "cpu a", "unet": "cpu b", "rf": "cpu c"})
    cv = regime.curves(t, {"sim-x": 5000})
    assert set(cv.loc[cv["model"] == "rf", "platform"]) == {""}  # classical: bit for bit on every CPU
    rg = regime.regime(cv).set_index("label_budget")
    assert rg.loc["points-10", "cpus"] == ""  # against rf: nothing to name
    assert "different CPUs" not in regime.findings_lines(regime.regime(cv))[0]
    # without rf, the FM row meets U-Net, trained on another CPU
    rg = regime.regime(regime.curves(t[t["model"] != "rf"], {"sim-x": 5000}))
    assert rg.set_index("label_budget").loc["points-10", "cpus"] == "presto_frozen_lgbm: cpu a; unet: cpu b"
    assert "; the two trained on different CPUs)" in regime.findings_lines(rg)[0]


def test_a_cell_never_rests_on_a_run_stopped_by_its_step_cap():
    """A capped run scored a lower bound: only its own side winning anyway survives; anything else reads capped."""
    t = _table()  # FM ahead at points-10 on every replicate (significant), other ahead at all
    t["stopped_by"] = "plateau"
    rf_capped = (t["model"] == "rf") & (t["seed"] == 1)
    t.loc[rf_capped, "stopped_by"] = "cap"  # the losing side at points-10, the winning side at all
    cv = regime.curves(t, {"sim-x": 5000})
    assert set(cv.loc[(cv["model"] == "rf") & (cv["seed"] == 1), "stopped_by"]) == {"cap"}
    rg = regime.regime(cv).set_index("label_budget")
    # points-10: rf's replicate 1 might have caught up at a plateau, so the FM's significant lead is undecided
    assert rg.loc["points-10", "winner"] == regime.CAPPED
    assert rg.loc["points-10", "capped"] == "rf in 1 of 3 replicates"
    # all: rf (capped) is ahead anyway; a plateau can only widen that
    assert rg.loc["all", "winner"] == regime.OTHER and rg.loc["all", "capped"] == "rf in 1 of 3 replicates"
    line = regime.findings_lines(rg.reset_index())[0]
    assert (
        "stopped by the step cap, still improving (lower bounds), at points-10 (rf in 1 of 3 replicates; "
        in line
    )
    assert "undecided" in line and "all (rf in 1 of 3 replicates; its side wins anyway)" in line
    # without the column (older tables), or with no capped run, nothing changes
    plain = regime.regime(regime.curves(_table(), {"sim-x": 5000})).set_index("label_budget")
    assert plain.loc["points-10", "winner"] == regime.FM and plain.loc["points-10", "capped"] == ""
    assert "step cap" not in regime.findings_lines(plain.reset_index())[0]

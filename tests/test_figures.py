"""Tests for helpers.report.figures: every figure drawn from a synthetic results table, valid files, byte-stable."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_compare import CLASSES, make_results  # noqa: E402

from helpers.report import (  # noqa: E402
    compare,
    feature_figures,
    figure_parts,
    figures,
    plotting,
    pretext_figures,
    regime_figures,
    texture_figures,
    training_figures,
    verdicts,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAIN = ["sim-crop", "sim-burn"]
SWEEP = ["sim-texture-0", "sim-texture-1"]
#: A smaller model set than test_compare's table keeps the 300-dpi rendering affordable in CI.
MODELS = ("rf", "lgbm", "rf_aug", "unet", "prithvi_none", "prithvi_mae", "prithvi_spectral", "galileo_nano")
BAYES = {0.0: 0.97, 1.0: 0.55}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return make_results(
        tmp_path_factory.mktemp("res") / "results.csv", datasets=(*MAIN, *SWEEP), models=MODELS
    )


@pytest.fixture(scope="module")
def drawn(table, tmp_path_factory):
    out = tmp_path_factory.mktemp("figs")
    return out, figures.draw_all(table, out, bayes_limits=BAYES, n_boot=300)


def _check_files(paths):
    pdf, png = sorted(paths)
    assert pdf.suffix == ".pdf" and png.suffix == ".png"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert b"CreationDate" not in pdf.read_bytes()


def test_all_figures_written_as_pdf_and_png(drawn):
    out, res = drawn
    assert list(res) == list(figures.FIGURE_NAMES)
    for key, r in res.items():
        assert [p.name for p in r.paths] == [
            f"{figures.FIGURE_NAMES[key]}.pdf",
            f"{figures.FIGURE_NAMES[key]}.png",
        ]
        _check_files(r.paths)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for r in res.values() for p in r.paths)


def test_not_run_rows_are_in_captions_not_in_plots(drawn, table):
    _, res = drawn
    for key in ("main_comparison", "pretext_alignment"):
        assert "prithvi_published on sim-burn (seed 0: weights file not supplied)" in res[key].caption
    plotting.setup_style()
    fig = pretext_figures.pretext_alignment_figure(table, n_boot=100)
    labels = {t.get_text() for ax in fig.axes for t in ax.get_xticklabels()}
    plt.close(fig)
    assert "prithvi_published" not in labels and "prithvi_spectral" in labels


def test_figures_are_byte_stable(tmp_path):
    # a small table keeps this fast; the mechanism (fixed order, fixed jitter, stripped metadata) is the same
    small = make_results(
        tmp_path / "r.csv",
        datasets=("sim-burn", *SWEEP),
        models=("rf", "rf_aug", "unet", "prithvi_none", "prithvi_mae"),
    )
    first = figures.draw_all(small, tmp_path / "a", bayes_limits=BAYES, n_boot=200)
    again = figures.draw_all(small, tmp_path / "b", bayes_limits=BAYES, n_boot=200)
    for key in figures.FIGURE_NAMES:
        assert first[key].paths, key
        for a, b in zip(first[key].paths, again[key].paths, strict=True):
            assert a.read_bytes() == b.read_bytes(), f"{a.name} changed on regeneration"


def _panels(fig) -> list:
    """The data panels of a figure (not a legend-only or hidden axes)."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison]


def test_main_comparison_panels(table):
    plotting.setup_style()
    fig = figures.main_comparison_figure(table, n_boot=100)
    assert len(fig.axes) == 2 * len(MAIN)  # one row per non-sweep dataset x the mIoU and F1 columns
    names = [t.get_text() for ax in fig.axes[::2] for t in ax.texts]
    assert names == ["sim-crop (simulated)", "sim-burn (simulated)"]
    ax = fig.axes[0]  # sim-crop, mIoU
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == list(
        MODELS
    )  # canonical order, top to bottom: families, then MODEL_ORDER, FMs by pretraining
    assert not [t.get_text() for t in fig.axes[1].get_yticklabels() if t.get_text()]  # names once per row
    # the plotted means are the table's test means in percent
    means = sorted(
        float(line.get_xdata()[0])
        for line in ax.get_lines()
        if line.get_marker() == "o" and len(line.get_xdata()) == 1
    )
    t = table[
        (table["dataset"] == "sim-crop") & (table["split"] == "test") & (table["metric"] == "miou_macro")
    ]
    expected = sorted(100 * t.groupby("model")["value"].mean())
    assert means == pytest.approx(expected)
    seed_points = sum(len(c.get_offsets()) for c in ax.collections if len(c.get_offsets()) == 3)
    assert seed_points == 3 * t["model"].nunique()
    plt.close(fig)


def test_texture_answer_panels_and_bayes_line(table):
    plotting.setup_style()
    fig = texture_figures.texture_answer_figure(table, bayes_limits=BAYES, n_boot=100)
    assert len(_panels(fig)) == 3
    bayes = [ln for ln in fig.axes[1].get_lines() if ln.get_label().startswith("Bayes")]
    assert len(bayes) == 1 and list(bayes[0].get_ydata()) == pytest.approx([97.0, 55.0])
    assert not [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("Bayes")]  # not on mIoU
    plt.close(fig)
    fig = texture_figures.texture_answer_figure(table, bayes_limits=None, n_boot=100)
    assert not [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label().startswith("Bayes")]
    plt.close(fig)
    no_sweep = table[~table["dataset"].isin(SWEEP)]
    fig = texture_figures.texture_answer_figure(no_sweep, n_boot=100)
    assert len(_panels(fig)) == 1  # only the gain panel
    plt.close(fig)


def test_other_figures_have_one_panel_per_dataset(table):
    plotting.setup_style()
    fig = pretext_figures.pretext_alignment_figure(table, n_boot=100)
    assert len(_panels(fig)) == len(MAIN) + len(SWEEP)
    plt.close(fig)
    fig = figures.cost_figure(table, n_boot=100)
    assert len(fig.axes) == 2 and all(ax.get_xscale() == "log" for ax in fig.axes)
    # classical models have no parameter count: the parameter panel shows CNN and FM points only
    n_points = sum(len(c.get_offsets()) for c in fig.axes[1].collections)
    assert n_points == len(MAIN) * 5
    plt.close(fig)
    fig = figures.per_class_heatmap_figure(table, datasets=MAIN)
    assert len(fig.axes) == len(MAIN) + 1  # one heatmap per dataset plus the shared colour bar
    crop = fig.axes[0].get_images()[0].get_array()
    assert crop.shape == (len(MODELS), len(CLASSES["sim-crop"]))
    assert np.nanmax(crop) <= 100
    plt.close(fig)


def test_absent_models_and_datasets_are_absent(table):
    plotting.setup_style()
    small = table[table["model"].isin(["rf", "unet"]) & (table["dataset"] == "sim-crop")]
    fig = figures.main_comparison_figure(small, n_boot=100)
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["rf", "unet"]
    plt.close(fig)
    assert pretext_figures.pretext_alignment_figure(small, n_boot=100) is None  # no FM rows: nothing to draw


def test_stale_figure_removed_when_nothing_to_draw(tmp_path):
    stale = [tmp_path / f"{figures.FIGURE_NAMES['pretext_alignment']}.{e}" for e in ("pdf", "png")]
    for p in stale:
        p.write_bytes(b"old")
    small = make_results(
        tmp_path / "r.csv", datasets=("sim-crop",), models=("rf", "unet"), with_not_run=False
    )
    res = figures.draw_all(small, tmp_path, n_boot=50)
    assert res["pretext_alignment"].paths == [] and not any(p.exists() for p in stale)
    assert res["main_comparison"].paths and all(p.exists() for p in res["main_comparison"].paths)
    assert compare.texture_datasets(small["dataset"]) == []


def test_verdict_effects_show_each_replicate_and_name_the_interval(table):
    plotting.setup_style()
    f = verdicts.findings(table, n_boot=100)
    fig = figures.verdict_effects_figure(f)
    tested = f[f["p_adjusted"].notna()]
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == len(tested)
    replicate_points = sum(len(c.get_offsets()) for c in ax.collections if len(c.get_offsets()) == 3)
    assert replicate_points == 3 * len(tested)  # every replicate's paired difference is drawn
    title = fig.legends[0].get_title().get_text()
    assert "95 % t-interval over replicates" in title and "each replicate's paired difference" in title
    plt.close(fig)
    assert figures.verdict_effects_figure(f[f["p_adjusted"].isna()]) is None
    assert (
        "bootstrap interval" not in figure_parts.CI_TEXT
        and "t-interval over replicates" in figure_parts.CI_TEXT
    )


@pytest.mark.slow
def test_notebook_05_runs_on_a_results_table(tmp_path):
    import json
    from pathlib import Path

    import papermill as pm

    repo = Path(__file__).resolve().parents[1]
    make_results(
        tmp_path / "results.csv",
        datasets=(*MAIN, *SWEEP),
        models=("rf", "rf_aug", "unet", "prithvi_none", "prithvi_mae"),
    )
    for name, acc in (("sim-texture-0", 0.9731), ("sim-texture-1", 0.5012)):  # dataset cards carry the limits
        (tmp_path / "data" / name).mkdir(parents=True)
        card = {"name": name, "generator": {"bayes_pixel_accuracy": acc}}
        (tmp_path / "data" / name / "dataset.json").write_text(json.dumps(card))
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(
        str(repo / "notebooks" / "05_comparison.ipynb"),
        str(out),
        parameters={
            "results_path": str(tmp_path / "results.csv"),
            "figures_dir": str(tmp_path / "figs"),
            "dataset_names": MAIN,
            "texture_knobs": [0.0, 1.0],
            "data_dir": str(tmp_path / "data"),
            "quick": True,
            # never the repository's own checks, maps and run folders
            "convergence_path": str(tmp_path / "convergence.csv"),
            "maps_dir": str(tmp_path / "maps"),
            "runs_dir": str(tmp_path / "runs"),
        },
        cwd=str(repo / "notebooks"),
        kernel_name="python3",
        progress_bar=False,
    )
    names = {p.name for p in (tmp_path / "figs").iterdir()}
    assert {f"{n}.{e}" for n in figures.FIGURE_NAMES.values() for e in ("pdf", "png")} <= names
    tabs = {p.name for p in (tmp_path / "figs" / "tables").iterdir()}
    assert {
        "findings.md",
        "findings.tex",
        "paper_comparison.md",
        "results_sim-burn.tex",
        "not_run.md",
    } <= tabs
    assert "0.9731" in out.read_text() and "0.5012" in out.read_text()


def test_convergence_figure_fits_a_page_and_marks_unconverged_rows(tmp_path):
    from helpers.runs import convergence

    rows = []
    for i, (model, family) in enumerate([("unet", "cnn"), ("fcn", "cnn"), ("vit", "fm")]):
        dv = [0.3, 2.5, -0.2][i]
        rows.append(
            {c: None for c in convergence.COLUMNS}
            | {"dataset": "sim-burn", "simulated": True, "model": model, "family": family, "seed": 0,
               "delta_val_points": dv, "delta_test_points": 0.1, "converged": abs(dv) < 1}
        )  # fmt: skip
    fig = training_figures.convergence_figure(pd.DataFrame(rows), threshold=1.0)
    w, h = fig.get_size_inches()
    assert w <= 7.2 and h <= 9
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [
        "sim-burn (simulated) · fcn",
        "sim-burn (simulated) · unet",
        "sim-burn (simulated) · vit",
    ]
    assert (
        training_figures.convergence_figure(pd.DataFrame(columns=convergence.COLUMNS), threshold=1.0) is None
    )
    plotting.save_figure(fig, "conv", tmp_path)


def test_every_figure_fits_a_page_with_readable_text(table, tmp_path):
    """Each figure function, saved: at most 7.5 x 9 in (2,250 x 2,700 px at 300 dpi), no text under 6 pt."""
    from PIL import Image

    from helpers.runs import convergence

    plotting.setup_style()
    conv = pd.DataFrame(
        [
            {c: None for c in convergence.COLUMNS}
            | {"dataset": d, "simulated": True, "model": m, "family": f, "seed": 0, "delta_val_points": 0.4,
               "delta_test_points": 0.1, "converged": True}
            for d in (*MAIN, *SWEEP)
            for m, f in (("unet", "cnn"), ("fcn", "cnn"), ("vit", "fm"), ("prithvi_mae", "fm"))
        ]
    )  # fmt: skip
    builders = {
        "main": lambda: figures.main_comparison_figure(table, n_boot=50),
        "texture": lambda: texture_figures.texture_answer_figure(table, bayes_limits=BAYES, n_boot=50),
        "pretext": lambda: pretext_figures.pretext_alignment_figure(table, n_boot=50),
        "cost": lambda: figures.cost_figure(table, n_boot=50),
        "per_class": lambda: figures.per_class_heatmap_figure(table),
        "per_class_one": lambda: figures.per_class_heatmap_figure(table, datasets=["sim-burn"], title="t"),
        "convergence": lambda: training_figures.convergence_figure(
            conv, threshold=convergence.CONVERGED_POINTS
        ),
        "verdicts": lambda: figures.verdict_effects_figure(verdicts.findings(table, n_boot=50)),
        "too_wide": lambda: plt.subplots(1, 8, figsize=(24, 3))[0],  # the check itself: shrunk to the page
    }
    for name, build in builders.items():
        fig = build()
        if name == "too_wide":
            fig.axes[0].set_title("tiny", fontsize=3)
        plotting.fit_to_page(fig)
        assert plotting.min_font_pt(fig) >= plotting.MIN_FONT_PT, name
        png = next(p for p in plotting.save_figure(fig, name, tmp_path) if p.suffix == ".png")
        w, h = Image.open(png).size
        assert w <= 2250 and h <= 2700, (name, w, h)
        assert w <= 300 * plotting.PAGE_WIDTH["full"] + 1, (name, w)  # the full text width of a page


def test_texture_gain_pairs_each_aug_row_with_its_plain_twin_by_seed():
    rows = [
        {"dataset": "d", "class": c, "seed": s, "model": m, "value": v}
        for c in ("a", "b")
        for s in (0, 1)
        for m, v in (("rf", 0.5), ("rf_aug", 0.5 + 0.1 * (s + 1)), ("lgbm", 0.4))
    ]
    gain = feature_figures.texture_gain(pd.DataFrame(rows))
    assert set(gain["pair"]) == {"rf_aug − rf"}  # lgbm has no aug twin here
    assert np.allclose(sorted(gain["gain"]), [0.1, 0.1, 0.2, 0.2])
    assert feature_figures.texture_gain(pd.DataFrame(rows).query("model == 'rf'")).empty
    fig = feature_figures.class_bars_figure(
        gain, y="gain", hue="pair", classes=["a", "b"], ylabel="gain", title="d", zero_line=True
    )
    assert fig is not None and fig.axes[0].get_ylabel() == "gain"
    plt.close(fig)
    assert (
        feature_figures.class_bars_figure(
            gain.iloc[:0], y="gain", hue="pair", classes=["a"], ylabel="", title=""
        )
        is None
    )


def test_gain_share_figure_colours_features_by_family():
    imp = pd.Series({"B02": 5.0, "B02_mean3": 3.0, "ndvi": 2.0})
    family_of = pd.Series({"B02": "spectra", "B02_mean3": "local_mean", "ndvi": "index"})
    fig = feature_figures.gain_share_figure({"lgbm": imp, "lgbm_aug": imp}, family_of, title="d", top=2)
    assert len(fig.axes) == 2
    bars = fig.axes[0].patches
    assert len(bars) == 2 and bars[-1].get_width() == pytest.approx(0.5)  # top bar: B02, half the gain
    plt.close(fig)
    assert feature_figures.gain_share_figure({}, family_of, title="") is None


def _logs(models=("fcn", "unet"), seeds=(0, 1)):
    rows = []
    for m in models:
        for s in seeds:
            for k, step in enumerate((50, 100, 150, 200)):
                rows.append(
                    dict(step=step, train_loss=1.0 / (k + 1), val_loss=1.5 / (k + 1) + s, lr_drops=int(k >= 2),
                         val_miou_macro=[0.3, 0.5 + 0.1 * s, 0.45, 0.48][k], model=m, seed=s)
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_cnn_curves_figure_marks_each_seeds_best_validation_and_rate_drop():
    logs = _logs()
    fig = training_figures.cnn_curves_figure(logs, ["fcn", "unet"], [0, 1], "sim-crop (simulated)")
    axes = np.array(fig.axes).reshape(2, 2)
    assert [a.get_title() for a in axes[0]] == ["fcn", "unet"]
    bottom = axes[1, 0]
    dots = [line for line in bottom.lines if line.get_marker() == "o"]
    assert [(d.get_xdata()[0], d.get_ydata()[0]) for d in dots] == [(100, 0.5), (100, pytest.approx(0.6))]
    drops = [line for line in bottom.lines if line.get_linestyle() == ":"]
    assert [d.get_xdata()[0] for d in drops] == [150, 150]  # one drop per seed, where lr_drops rose
    assert fig._suptitle.get_text() == "sim-crop (simulated)"
    plt.close(fig)


def test_finetune_and_pretraining_curves_draw_one_line_per_seed_or_pool():
    fig = training_figures.finetune_curves_figure(_logs(models=("vit", "segformer")), "indian-pines-hls")
    assert [a.get_title() for a in fig.axes] == ["vit", "segformer"]  # in the logs' order
    # one drawn line per seed (seaborn adds empty legend proxies to the first panel)
    assert all(sum(len(line.get_xdata()) > 0 for line in a.lines) == 2 for a in fig.axes)
    plt.close(fig)
    curves = pd.DataFrame(
        {"step": [1, 2, 1, 2], "loss": [1.0, 0.5, 2.0, 1.0], "pretext": ["mae"] * 2 + ["spectral"] * 2,
         "pretrained on": ["sim-crop"] * 4}
    )  # fmt: skip
    fig = training_figures.pretraining_loss_figure(curves)
    assert len(fig.axes[0].lines) >= 2 and fig.axes[0].get_yscale() == "log"
    plt.close(fig)


def test_training_logs_and_pretraining_curves_are_read_from_the_run_folders(tmp_path):
    import json

    from helpers.runs import pretrain, run_folders

    assert run_folders.read_logs(
        tmp_path / "runs", "sim-crop", ["unet"], [0]
    ).empty  # a fresh clone: no run folders
    assert pretrain.read_loss_curves(tmp_path / "cache").empty
    for seed in (2, 0):
        d = run_folders.run_dir(tmp_path / "runs", "sim-crop", "unet", seed)
        d.mkdir(parents=True)
        pd.DataFrame({"step": [50], "val_miou_macro": [0.1 * seed]}).to_csv(d / run_folders.LOG, index=False)
    logs = run_folders.read_logs(tmp_path / "runs", "sim-crop", ["unet", "fcn"], [0, 1, 2])
    assert logs[["model", "seed"]].values.tolist() == [["unet", 0], ["unet", 2]]  # missing runs left out
    run = tmp_path / "cache" / "pretrain" / "mae-abc"
    run.mkdir(parents=True)
    (run / "config.json").write_text(
        json.dumps({"config": {"pretext": "mae"}, "datasets": ["sim-crop", "sim-burn"]})
    )
    pd.DataFrame({"step": [1, 2], "loss": [1.0, 0.9]}).to_csv(run / "loss.csv", index=False)
    curves = pretrain.read_loss_curves(tmp_path / "cache")
    assert set(curves["pretext"]) == {"mae"} and set(curves["pretrained on"]) == {"sim-crop+sim-burn"}


def test_pretraining_probe_figure_marks_the_selected_step_and_fits_a_page(tmp_path):
    from PIL import Image

    tasks = ("sim-crop", "sim-burn", "sim-flood", "sim-texture-0", "sim-texture-1", "mean")
    rows = []
    for key, pretext in (("k1", "mae"), ("k2", "spectral")):
        for step in (0, 250, 500, 750, 1000):
            for i, task in enumerate(tasks):
                rows.append(
                    {"key": key, "pretext": pretext, "step": step, "task": task, "probe": 0.2 + i / 20}
                )
    curve = pd.DataFrame(rows)
    table = pd.DataFrame({"key": ["k1", "k2"], "steps": [500, 1000], "best_step": [250, 1000]})
    # the same key pretrained on a second CPU: its own line, named by its CPU, its own stop and selected step
    two = pd.concat([curve.assign(platform="x86_64 cpu-a"), curve.assign(platform="x86_64 cpu-b")])
    two_table = pd.concat(
        [table.assign(platform="x86_64 cpu-a"), table.assign(platform="x86_64 cpu-b", steps=750)]
    )
    fig = training_figures.pretraining_probe_figure(two, two_table)
    labels = sorted(ln.get_label() for ln in fig.axes[0].lines if ln.get_linestyle() == "-")
    assert labels == [
        "mae (cpu-a)",
        "mae (cpu-b)",
        "spectral (cpu-a)",
        "spectral (cpu-b)",
    ]  # the words that differ
    b_mae = next(ln for ln in fig.axes[0].lines if ln.get_label() == "mae (cpu-b)")
    assert list(b_mae.get_xdata()) == [0, 250, 500, 750]  # cpu-b's own stop
    plt.close(fig)
    fig = training_figures.pretraining_probe_figure(curve, table)
    titles = [a.get_title() for a in fig.axes if a.get_visible() and a.axison]
    assert titles[-1] == "mean of the tasks" and len(titles) == len(tasks)
    (spare,) = [a for a in fig.axes if a.get_visible() and not a.axison]  # the legend sits in the spare panel
    assert spare.get_legend() is not None and not fig.legends
    mae_lines = [ln for ln in fig.axes[0].lines if ln.get_label() == "mae"]
    assert list(mae_lines[0].get_xdata()) == [0, 250, 500]  # run up to its stop, the rest dashed
    dashed = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [500, 750, 1000]
    plotting.save_figure(fig, "probe", tmp_path)
    w, h = Image.open(
        tmp_path / "probe.png"
    ).size  # as the chain checks every figure: a printed page at 300 dpi
    assert w <= 2250 and h <= 2700, (w, h)
    assert training_figures.pretraining_probe_figure(curve.iloc[:0]) is None


def test_pretraining_compute_pairs_each_checkpoint_with_its_fine_tune_and_probe(tmp_path):
    from PIL import Image

    from helpers.report import tables

    def row(dataset, model, seed, split, value):
        return {"dataset": dataset, "model": model, "seed": seed, "split": split, "metric": "miou_macro",
                "class": "", "value": value, "status": "ok", "label_budget": "all", "family": "fm"}  # fmt: skip

    tasks = ("sim-burn", "indian-pines-hls")
    fine = {"prithvi_arch_small_random": 0.50, "prithvi_arch_small_mae": 0.60}
    df = pd.DataFrame(
        [
            row(t, m, s, sp, v + s / 100)
            for t in tasks
            for m, v in fine.items()
            for s in (0, 1)
            for sp in ("val", "test")
        ]
    )
    compute = pd.DataFrame(
        [row(t, f"prithvi_arch_small_mae_pt{p}", 0, sp, v) for t in tasks for p, v in ((25, 0.55), (50, 0.58))
         for sp in ("val", "test")]
    )  # fmt: skip
    pre = pd.DataFrame(
        {"key": ["k1"], "pretext": ["mae"], "best_step": [1000], "quarter_step": [250], "half_step": [500]}
    )
    curve = pd.DataFrame(
        [{"key": "k1", "pretext": "mae", "step": st, "task": "sim-burn", "probe": 0.3 + st / 10000}
         for st in (0, 250, 500, 750, 1000)]
    )  # fmt: skip
    # the compute rows ran on one CPU: the same key's record and probes from another CPU are not theirs
    plat = {"platform": "cpu a"}
    elsewhere = pre.assign(platform="cpu b", quarter_step=300, half_step=600)
    points = tables.pretraining_compute(
        df.assign(**plat),
        compute.assign(**plat),
        pd.concat([pre.assign(**plat), elsewhere]),
        pd.concat([curve.assign(**plat), curve.assign(platform="cpu b", probe=0.9)]),
    )
    assert points.loc[points["task"] == "sim-burn", "step"].tolist() == [0, 250, 500, 1000]
    assert points["probe"].max() < 90
    points = tables.pretraining_compute(df, compute, pre, curve)
    burn = points[points["task"] == "sim-burn"].set_index("fraction")
    assert burn["step"].tolist() == [0, 250, 500, 1000]
    # the first replicate only (seed 0): random init 50, the checkpoints 55 and 58, the selected encoder 60
    assert burn["fine-tuned val"].tolist() == pytest.approx([50.0, 55.0, 58.0, 60.0])
    assert burn["probe"].tolist() == pytest.approx([30.0, 32.5, 35.0, 40.0])
    assert (
        points.loc[points["task"] == "indian-pines-hls", "probe"].isna().all()
    )  # a real dataset has no probe draw
    # the same curve at the smallest budget: its own rows at both ends, its compute rows between, the same probe
    p10 = {"label_budget": "points-10"}
    small = pd.concat(
        [
            df[df["dataset"] == "sim-burn"].assign(value=lambda d: d["value"] - 0.2, **p10),
            compute[compute["dataset"] == "sim-burn"].assign(value=lambda d: d["value"] - 0.1, **p10),
        ]
    )
    both = tables.pretraining_compute(
        pd.concat([df, small[small["model"].isin(fine)]]),
        pd.concat([compute, small[~small["model"].isin(fine)]]),
        pre,
        curve,
    )
    assert list(dict.fromkeys(both["labels"])) == ["all", "points-10"]
    burn10 = both[(both["labels"] == "points-10")].set_index("fraction")
    assert burn10["task"].unique().tolist() == ["sim-burn"]  # the budget's own tasks only
    assert burn10["fine-tuned val"].tolist() == pytest.approx([30.0, 45.0, 48.0, 40.0])
    assert burn10["probe"].tolist() == pytest.approx(burn["probe"].tolist())
    pd.testing.assert_frame_equal(both[both["labels"] == "all"].reset_index(drop=True), points)
    fig = training_figures.pretraining_compute_figure(both)
    styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert styles == {"mae, all labels": "-", "mae, points-10": ":", "mae, probe": "--"}
    assert "points-10" in fig.texts[0].get_text()  # the title names the budgets
    plt.close(fig)
    fig = training_figures.pretraining_compute_figure(points)
    assert [a.get_title() for a in fig.axes if a.get_visible()] == [
        "sim-burn (simulated)",
        "indian-pines-hls",
    ]
    fig.canvas.draw()  # the legend sits clear of every panel, its tick labels and axis labels included
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    assert not any(legend.overlaps(a.get_tightbbox(renderer)) for a in fig.axes if a.get_visible())
    plotting.save_figure(fig, "compute", tmp_path)
    w, h = Image.open(tmp_path / "compute.png").size
    assert w <= 2250 and h <= 2700, (w, h)
    assert training_figures.pretraining_compute_figure(points.iloc[:0]) is None
    assert tables.pretraining_compute(df, compute.iloc[:0], pre, curve).empty


def test_pretext_gain_figure_pairs_each_pretext_with_its_random_init_by_replicate(tmp_path):
    from helpers import results

    make_results(tmp_path / "r.csv")
    df = results.read(tmp_path / "r.csv")
    fig = pretext_figures.pretext_gain_figure(df)
    means = {ln.get_label(): ln for ln in fig.axes[0].lines if not ln.get_label().startswith("_")}
    # prithvi_mae and prithvi_spectral against prithvi_none; galileo_nano has no random-init twin
    assert len(means) == 2 and all(label.endswith("(prithvi)") for label in means)
    spectral = next(ln for label, ln in means.items() if "spectral" in label.lower())
    assert list(spectral.get_xdata()) == [0.0, 1.0]  # the sweep's knobs
    assert all(v > 0 for v in spectral.get_ydata())  # the synthetic spectral row is 2 accuracy points better
    plt.close(fig)
    assert pretext_figures.pretext_gain_figure(df[~df["dataset"].str.startswith("sim-texture")]) is None


def test_cost_caption_states_the_shared_pretraining_time():
    pre = pd.DataFrame(
        {"pretext": ["spectral", "mae"], "train_s": [600.0, 300.0], "continuation_s": [120.0, None]}
    )
    note = figures._pretraining_cost_note(pre)
    assert "spectral 10.0 min, mae 5.0 min" in note and "continuation checks 2.0 min" in note
    assert figures._pretraining_cost_note(None) == "" and figures._pretraining_cost_note(pre.iloc[:0]) == ""
    two = pre.assign(platform=["x86_64 cpu-a", "x86_64 cpu-b"])
    assert "spectral 10.0 min on cpu-a, mae 5.0 min on cpu-b" in figures._pretraining_cost_note(two)
    assert "on cpu" not in figures._pretraining_cost_note(pre.assign(platform="x86_64 cpu-a"))


def test_protocol_figure_hatches_and_labels_the_leaky_split_and_fits_a_page():
    frame = pd.DataFrame(
        {
            "dataset": ["s", "s", "s-random", "s-random"],
            "protocol": ["scene blocks, 32 px, guard 0 px"] * 2 + ["scene random, guard 0 px (leaky)"] * 2,
            "leaky": [False, False, True, True],
            "family": ["classical", "cnn"] * 2,
            "model": ["rf", "unet", "rf", "unet"],
            "n": [3, 3, 3, 3],
            "oa": [0.41, 0.61, 0.82, 0.99],
            "oa_lo": [0.39, 0.55, 0.8, 0.98],
            "oa_hi": [0.43, 0.67, 0.84, 1.0],
            "miou": [0.2, 0.34, 0.66, 0.99],
            "miou_lo": [np.nan] * 4,
            "miou_hi": [np.nan] * 4,
        }
    )
    fig = regime_figures.protocol_figure(frame, floors={"s": 0.276})
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_height() > 0]
    hatched = sorted(round(p.get_height(), 1) for p in bars if p.get_hatch())
    assert hatched == [82.0, 99.0]  # the random split's bars, and only they
    groups = ax.child_axes[0].get_xticklabels()  # each group of bars is labelled with its protocol
    assert any("LEAKY" in t.get_text() for t in groups)
    assert groups[0].get_text().startswith("random")  # the leaky split first, apart
    # each bar names its model
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rf", "unet", "rf", "unet"]
    assert plotting.min_font_pt(fig) >= plotting.MIN_FONT_PT
    w, h = fig.get_size_inches()
    assert w <= plotting.PAGE_WIDTH["full"] + 1e-6 and h <= plotting.MAX_HEIGHT
    plt.close(fig)
    assert regime_figures.protocol_figure(frame.iloc[:0]) is None


def test_pretext_budget_figure_draws_each_pair_at_every_budget_it_ran():
    gains = pd.DataFrame(
        [
            ("sim-burn", "points-10", "prithvi_mae", "prithvi_random", "mae-in-study", 3, -4.0, -18.0, 6.0, False, ""),
            ("sim-burn", "all", "prithvi_mae", "prithvi_random", "mae-in-study", 3, -1.8, -3.1, -0.6, False, ""),
            # the cross-CPU pair: drawn hollow from the flag, whatever its note says
            ("sim-crop", "points-10", "prithvi_mae", "prithvi_random", "mae-in-study", 3, 2.0, 1.0, 3.0, True, ""),
            # the twin did not run at this budget: nothing to draw
            ("sim-crop", "all", "prithvi_mae", "prithvi_random", "mae-in-study", 0, np.nan, np.nan, np.nan, False,
             "prithvi_random not run at this budget"),
            # a pair at one budget only has no budget to compare: no panel
            ("sim-burn", "all", "galileo_ft", "galileo_ft_random", "published", 3, 6.0, 5.0, 7.0, False, ""),
        ],
        columns=["dataset", "label_budget", "model", "reference", "pretraining", "n_replicates", "gain_mean",
                 "gain_min", "gain_max", "cross_cpu", "note"],
    )  # fmt: skip
    fig = pretext_figures.pretext_budget_figure(gains)
    (ax,) = fig.axes
    markers = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert sorted(round(float(ln.get_ydata()[0]), 1) for ln in markers) == [-4.0, -1.8, 2.0]
    hollow = [ln for ln in markers if ln.get_markerfacecolor() == "none"]
    assert [float(ln.get_ydata()[0]) for ln in hollow] == [2.0]  # the cross-CPU pair
    bars = [ln for ln in ax.lines if ln.get_marker() in ("None", "", None) and len(ln.get_xdata()) == 2]
    assert sorted(tuple(ln.get_ydata()) for ln in bars)[0] == (-18.0, 6.0)  # lowest to highest replicate
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sim-crop (simulated)", "sim-burn (simulated)"]
    plt.close(fig)
    assert pretext_figures.pretext_budget_figure(gains[gains["label_budget"] == "all"]) is None

"""How the runs trained (notebooks 03-05): learning curves, convergence checks, pretraining curves and compute.

These figures answer "did training reach a plateau?", not "who wins?" (:mod:`helpers.report.figures`); each reads a
run's logs or the convergence and pretraining tables, and takes the rule it draws (a threshold) as an argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from helpers.report import compare, plotting


def convergence_figure(conv: pd.DataFrame, threshold: float) -> plt.Figure | None:
    """Change in validation and test mIoU over each checked run's last cycle (or its continuation to twice its steps).

    One row per (dataset, model) checked (the first seed; :mod:`helpers.runs.convergence`), coloured by family. The grey
    band is the convergence criterion (a validation change under one point); the test change is shown beside it but
    is not part of the verdict. Rows outside the band on the validation side were still improving.

    Args:
        conv: The convergence table (:func:`helpers.runs.convergence.read`).
        threshold: The criterion's half-width in validation points (the grey band;
            :data:`helpers.runs.convergence.CONVERGED_POINTS`): the run layer owns the rule, the figure draws it.

    Returns:
        The figure (full page width), or ``None`` for an empty table.
    """
    if conv.empty:
        return None
    d = conv.copy()
    d["_ds"] = d["dataset"].map(compare.dataset_sort_key)
    d["_m"] = [compare.model_sort_key(m, f) for m, f in zip(d["model"], d["family"], strict=True)]
    d = d.sort_values(["_ds", "_m"], kind="stable").reset_index(drop=True)
    sim = dict(zip(d["dataset"], d["simulated"].astype(bool), strict=False))
    labels = [
        f"{plotting.dataset_label(ds, sim[ds])} · {m}" for ds, m in zip(d["dataset"], d["model"], strict=True)
    ]
    palette = plotting.family_palette()
    height = min(9.0, 0.9 + 0.14 * len(d))
    fig, axes = plt.subplots(1, 2, figsize=(7.0, height), sharey=True)
    y = np.arange(len(d))
    for ax, col, title in zip(
        axes,
        ["delta_val_points", "delta_test_points"],
        ["validation (decides)", "test (reported)"],
        strict=True,
    ):
        ax.axvspan(-threshold, threshold, color="0.88", zorder=0, lw=0)
        ax.axvline(0, color="0.5", lw=0.6, zorder=1)
        colors = [palette.get(f, "0.3") for f in d["family"]]
        markers = ["o" if c else "X" for c in d["converged"].astype(bool)]
        for yi, xi, c, mk in zip(y, d[col], colors, markers, strict=True):
            ax.plot(xi, yi, mk, color=c, ms=4, zorder=3)
        ax.set_title(f"Δ mIoU at 2× steps, {title}", fontsize=8)
        ax.set_xlabel("points (mIoU × 100)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].set_yticks(y, labels, fontsize=6)
    axes[0].invert_yaxis()
    handles = [
        Line2D([], [], ls="", marker="o", color=palette[f], label=f)
        for f in plotting.FAMILY_ORDER
        if f in set(d["family"])
    ]
    handles += [
        Line2D([], [], ls="", marker="o", color="0.3", label="converged (|Δ val| < 1 point)"),
        Line2D([], [], ls="", marker="X", color="0.3", label="not converged"),
    ]
    fig.legend(
        handles=handles, loc="lower center", ncol=len(handles), fontsize=6, bbox_to_anchor=(0.5, -0.02)
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def cnn_curves_figure(
    logs: pd.DataFrame, model_names: Sequence[str], seeds: Sequence[int], title: str
) -> plt.Figure:
    """Loss (top) and validation mIoU (bottom) against optimiser steps, one column per model, one colour per seed.

    Each seed's best validation is a dot and each learning-rate drop a dotted line, so a reader sees where the
    plateau rule (:func:`helpers.runs.train.fit`) stopped the run and what it kept.

    Args:
        logs: The runs' ``log.csv`` rows with ``model`` and ``seed`` columns (:func:`helpers.runs.run_folders.read_logs`).
        model_names: Columns, in order.
        seeds: Seeds, in order (a seed's colour is its position).
        title: The figure title (the dataset, labelled simulated where it is).
    """
    fig, axes = plt.subplots(
        2, len(model_names), figsize=plotting.page_size("full", 3.6), sharex="col", squeeze=False
    )
    for col, model_name in enumerate(model_names):
        top, bottom = axes[0, col], axes[1, col]
        for i, seed in enumerate(seeds):
            log = logs[(logs["model"] == model_name) & (logs["seed"] == seed)]
            if log.empty:
                continue
            color = sns.color_palette("colorblind")[i % 10]
            top.plot(log["step"], log["train_loss"], color=color, label=f"seed {seed}")
            top.plot(log["step"], log["val_loss"], color=color, ls="--")
            bottom.plot(log["step"], log["val_miou_macro"], color=color)
            best = log.loc[log["val_miou_macro"].idxmax()]
            bottom.plot(best["step"], best["val_miou_macro"], "o", color=color, ms=4)
            for step in log.loc[log["lr_drops"].diff() > 0, "step"]:
                bottom.axvline(step, color=color, lw=0.5, ls=":")
        top.set_title(model_name)
        top.set_yscale("log")
        bottom.set_xlabel("optimiser step")
    axes[0, 0].set_ylabel("loss (— train, -- val)")
    axes[1, 0].set_ylabel("val miou_macro")
    axes[0, -1].legend(fontsize=6)
    fig.suptitle(title)
    return fig


def finetune_curves_figure(logs: pd.DataFrame, title: str) -> plt.Figure:
    """Validation mIoU against optimiser steps, one panel per fine-tuned row (in ``logs`` order), one line per seed.

    Args:
        logs: The runs' ``log.csv`` rows with ``model`` and ``seed`` columns (:func:`helpers.runs.run_folders.read_logs`).
        title: The figure title (the dataset, labelled simulated where it is).
    """
    data = logs.assign(seed=[f"seed {s}" for s in logs["seed"]])
    grid = sns.relplot(
        data=data,
        x="step",
        y="val_miou_macro",
        hue="seed",
        col="model",
        col_wrap=4,
        kind="line",
        height=1.5,
        aspect=1.15,
        palette="colorblind",
        facet_kws={"sharex": False},
    )
    grid.set_titles("{col_name}", size=7)
    grid.figure.suptitle(title, y=1.02)
    return grid.figure


def pretraining_loss_figure(curves: pd.DataFrame) -> plt.Figure:
    """The in-study pretraining loss against steps, one line per (pretraining pool, pretext).

    Args:
        curves: :func:`helpers.runs.pretrain.read_loss_curves` output.
    """
    fig, ax = plt.subplots(figsize=plotting.page_size("full", 3))
    sns.lineplot(data=curves, x="step", y="loss", hue="pretrained on", style="pretext", ax=ax, errorbar=None)
    ax.set_yscale("log")
    ax.legend(fontsize=6, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title("In-study pretraining of the small Prithvi-arch model")
    return fig


def _label_step_grid(axes: np.ndarray, n_used: int, ylabel: str) -> None:
    """A grid of per-task panels against pretraining steps: spare panels hidden, the outer axes labelled."""
    for ax in axes.flat[n_used:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("pretraining steps", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=7)


def pretraining_compute_figure(points: pd.DataFrame) -> plt.Figure | None:
    """The pretraining-compute curve: fine-tuned and probed validation mIoU from checkpoints along each pretraining.

    One panel per task; per pretext a solid line (fine-tuned end to end from the random-init encoder, the checkpoints
    at a quarter and half of the selected step, and the selected encoder; first replicate, every label), a dotted one
    for each smaller label budget the curve ran at (where pretraining should matter most), and a dashed one (the ridge
    probe of the same checkpoints on the task's probe draw, which never sees a budget; none for a real dataset). If
    pretraining buys a task something, a fine-tuned line rises from its step-0 point.

    Args:
        points: :func:`helpers.report.tables.pretraining_compute`.

    Returns:
        A full-page-width figure, or ``None`` without points.
    """
    if points.empty:
        return None
    tasks = compare.ordered_datasets(points["task"].unique())
    ncol = min(4, len(tasks))
    nrow = -(-len(tasks) // ncol)
    pretexts = list(dict.fromkeys(points["pretext"]))
    budgets = list(dict.fromkeys(points["labels"]))
    # fine-tuned per (pretext, budget) that ran, and each pretext's probe
    n_lines = len(points[["pretext", "labels"]].drop_duplicates()) + len(pretexts)
    ncol_legend = min(n_lines, 3 if len(budgets) > 1 else n_lines)  # one column per pretext's lines
    legend_rows = -(-n_lines // ncol_legend)
    height = (
        1.7 * nrow + 0.72 + 0.13 * legend_rows
    )  # the legend's own strip below the panels, clear of every axis
    fig, axes = plt.subplots(nrow, ncol, figsize=(plotting.PAGE_WIDTH["full"], height), squeeze=False)
    colours = dict(zip(pretexts, sns.color_palette("colorblind", len(pretexts)), strict=True))
    for ax, task in zip(axes.flat, tasks, strict=False):
        for pretext in pretexts:
            c = colours[pretext]
            of = points[(points["task"] == task) & (points["pretext"] == pretext)].sort_values("step")
            for budget in budgets:
                d = of[of["labels"] == budget]
                if d.empty:  # a pretext without compute rows at this budget
                    continue
                style, text = ("o-", "all labels") if budget == "all" else ("s:", budget)
                ax.plot(
                    d["step"], d["fine-tuned val"], style, color=c, ms=3, lw=1.0, label=f"{pretext}, {text}"
                )
            probe = of.drop_duplicates("step")  # the probe is one per checkpoint, whatever the budget
            ax.plot(probe["step"], probe["probe"], "x--", color=c, ms=3, lw=0.8, label=f"{pretext}, probe")
        ax.set_title(plotting.dataset_label(task, task.startswith("sim-")), fontsize=7)
        ax.tick_params(labelsize=6)
    _label_step_grid(axes, len(tasks), "val mIoU (%)")
    lines = {}  # one entry per line drawn in any panel
    for ax in axes.flat:
        lines.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    fig.legend(lines.values(), lines.keys(), loc="lower center", fontsize=6, ncol=ncol_legend, frameon=False)
    budget_words = " and at ".join(["all labels", *[b for b in budgets if b != "all"]])
    fig.suptitle(
        "What in-study pretraining buys against its compute: the small Prithvi-arch model fine-tuned (first replicate;\n"
        f"{budget_words}) and probed (dashed; probe draw) from checkpoints at 0, 1/4, 1/2 and 1 of the selected step",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, (0.12 + 0.13 * legend_rows) / height, 1, 1))
    return fig


def pretraining_probe_figure(curve: pd.DataFrame, table: pd.DataFrame | None = None) -> plt.Figure | None:
    """What in-study pretraining buys, against its compute: the probe's validation mIoU along the steps.

    One panel per probe task (SIMULATED probe draws) and one for their mean; one line per pretraining (pretext, and
    its CPU where the curves come from two), the starting point (step 0) is the random-init encoder. The selected
    encoder's step is marked (filled dot) and a continuation to twice the steps, when checked, is the dashed stretch
    after the stop.

    Args:
        curve: The probe curves (``results/pretraining_probe.csv``: ``key``, ``platform``, ``pretext``, ``step``,
            ``task``, ``probe``).
        table: The pretraining table (``results/pretraining.csv``) for the selected steps (optional).

    Returns:
        A full-page-width figure, or ``None`` without curves.
    """
    if curve.empty:
        return None
    tasks = [*compare.ordered_datasets(curve.loc[curve["task"] != "mean", "task"].unique()), "mean"]
    ncol = min(4, len(tasks))
    nrow = -(-len(tasks) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(plotting.PAGE_WIDTH["full"], 1.6 * nrow + 0.5), squeeze=False, sharex=True
    )
    # a run is one (key, CPU): the same key pretrained on another CPU is another encoder (pretrain.record)
    curve = curve.assign(platform=compare.platforms(curve))
    runs = list(dict.fromkeys(zip(curve["key"], curve["platform"], strict=True)))
    cpu = compare.cpu_names(curve["platform"].unique())
    colours = dict(zip(runs, sns.color_palette("colorblind", len(runs)), strict=True))
    best = pd.DataFrame()
    if table is not None and len(table):
        best = table.assign(platform=compare.platforms(table)).set_index(["key", "platform"])
    for ax, task in zip(axes.flat, tasks, strict=False):
        for run_id in runs:
            d = curve[
                (curve["key"] == run_id[0]) & (curve["platform"] == run_id[1]) & (curve["task"] == task)
            ]
            if d.empty:
                continue
            d = d.sort_values("step")
            label = d["pretext"].iloc[0] + (f" ({cpu[run_id[1]]})" if cpu[run_id[1]] else "")
            stop = int(best.loc[run_id, "steps"]) if run_id in best.index else int(d["step"].max())
            run, cont = d[d["step"] <= stop], d[d["step"] >= stop]
            ax.plot(run["step"], 100 * run["probe"], "-", color=colours[run_id], lw=1.0, label=label)
            if len(cont) > 1:
                ax.plot(cont["step"], 100 * cont["probe"], "--", color=colours[run_id], lw=0.8)
            if run_id in best.index:
                b = d[d["step"] == int(best.loc[run_id, "best_step"])]
                ax.plot(b["step"], 100 * b["probe"], "o", color=colours[run_id], ms=3)
        name = (
            "mean of the tasks" if task == "mean" else plotting.dataset_label(task, task.startswith("sim-"))
        )
        ax.set_title(name, fontsize=7)
        ax.tick_params(labelsize=6)
    _label_step_grid(axes, len(tasks), "probe val mIoU (%)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    legend = {"fontsize": 7, "title": "pretext", "title_fontsize": 7}
    if len(tasks) < axes.size:  # in the spare panel, clear of every curve and axis label
        spare = axes.flat[len(tasks)]
        spare.set_visible(True)
        spare.axis("off")
        spare.legend(handles, labels, loc="center", **legend)
    else:
        fig.legend(handles, labels, loc="lower right", **legend)
    fig.suptitle(
        "In-study pretraining of the small Prithvi-arch model: ridge probe of the frozen encoder\n"
        "on held-out chips of a probe draw (dot: selected encoder; dashed: continuation check)",
        fontsize=7,
    )
    fig.tight_layout()
    return fig

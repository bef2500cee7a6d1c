"""When labels get scarce and how a scene is split: the regime map and the scene protocol as figures (notebook 05).

:func:`regime_figure` draws each family's best row against the label budget (:mod:`helpers.report.regime`);
:func:`protocol_figure` the scores of one scene under random, block and guarded-block splits
(:mod:`helpers.report.scenes`). Conventions as in :mod:`helpers.report.figures`.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import LogLocator, NullFormatter

from helpers.report import compare, figure_parts, plotting


def protocol_figure(frame: pd.DataFrame, floors: Mapping[str, float] | None = None) -> plt.Figure | None:
    """Scenes read as scenes: the best model of each family under every split protocol (test overall accuracy).

    One group of bars per scene dataset, labelled with its protocol; a random-pixel split is hatched and labelled
    LEAKY (its test pixels' neighbours trained the model), so its bars never pass for a held-out score. Whiskers
    are the t-interval over replicates (none for one replicate); a grey tick marks the share of the test split's
    most frequent class, which a model that learnt anything beats.

    Args:
        frame: :func:`helpers.report.scenes.best_per_family`.
        floors: Dataset -> test share of its most frequent class (optional).

    Returns:
        A full-page-width figure, or ``None`` without scene rows.
    """
    if frame.empty:
        return None
    datasets = list(
        dict.fromkeys(frame.sort_values(["leaky", "dataset"], ascending=[False, True])["dataset"])
    )
    families = [f for f in compare.FAMILY_ORDER if f in set(frame["family"])]
    pal = plotting.family_palette()
    fig, axes = plt.subplots(1, 2, figsize=(plotting.PAGE_WIDTH["full"], 4.2), sharey=True)
    width = 0.8 / max(1, len(families))
    for ax, (metric, label) in zip(
        axes, (("oa", "test overall accuracy (%)"), ("miou", "test mIoU (%)")), strict=True
    ):
        bars: list[tuple[float, str]] = []  # (x, model) of every bar: the model names are the bars' ticks
        for i, name in enumerate(datasets):
            rows = frame[frame["dataset"] == name].set_index("family")
            leaky = bool(rows["leaky"].iloc[0])
            for j, fam in enumerate(families):
                if fam not in rows.index or not np.isfinite(rows.loc[fam, metric]):
                    continue
                r = rows.loc[fam]
                x = i + (j - (len(families) - 1) / 2) * width
                ax.bar(
                    x,
                    100 * r[metric],
                    width,
                    color=pal[fam],
                    hatch="///" if leaky else None,
                    edgecolor="white",
                    lw=0,
                )
                lo, hi = r[f"{metric}_lo"], r[f"{metric}_hi"]
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.errorbar(x, 100 * r[metric], yerr=[[100 * (r[metric] - lo)], [100 * (hi - r[metric])]], color="k", lw=0.8, capsize=1.5)  # fmt: skip
                bars.append((x, r["model"]))
            if metric == "oa" and floors and name in floors:
                ax.hlines(100 * floors[name], i - 0.45, i + 0.45, color="0.4", lw=1.0, ls="--")
        first = frame.drop_duplicates("dataset").set_index("dataset")
        ticks = [
            first.loc[name, "protocol"].removeprefix("scene ").replace(" (leaky)", "").replace(", ", "\n")
            + ("\nLEAKY" if first.loc[name, "leaky"] else "")
            for name in datasets
        ]
        # each bar names its model under the axis; the protocol of each group sits below the longest name
        ax.set_xticks([x for x, _ in bars], [m for _, m in bars], rotation=90, fontsize=6)
        ax.tick_params(axis="x", length=0, pad=2)
        longest = max((len(m) for _, m in bars), default=0)
        groups = ax.secondary_xaxis("bottom")
        groups.set_xticks(range(len(datasets)), ticks, fontsize=6)
        groups.tick_params(length=0, pad=6 + 3.4 * longest)
        groups.spines["bottom"].set_visible(False)
        ax.set_ylabel(label, fontsize=7)
        ax.set_ylim(0, 100)
        ax.tick_params(axis="y", labelsize=6)
    handles = figure_parts.family_handles(families)
    if floors:
        handles.append(Line2D([], [], color="0.4", ls="--", label="most frequent test class"))
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.92),
        ncol=len(handles),
        fontsize=6,
        frameon=False,
    )
    n = sorted(set(int(v) for v in frame["n"].dropna()))
    fig.suptitle(
        "Scenes read as scenes: the best model of each family, chosen on validation mIoU, under each split protocol\n"
        f"(hatched: random pixels, LEAKY); bars are means over {'/'.join(map(str, n))} replicate(s)",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


#: Room for the map's y labels and colour bar (inches), and the width of a 6 pt character (points), from which
#: :func:`_cell_texts` sizes the text of a cell before the figure exists.
_MAP_MARGINS_IN, _CHAR_PT = 2.3, 3.6


def _cell_texts(rg: pd.DataFrame, names: list[str], budgets: list[str]) -> dict[tuple[str, str], str]:
    """The text of every cell of the map, in the widest layout whose lines fit the cells' width.

    Each cell says the winner, the mean difference with its interval and the two rows compared (at full labels
    those can be rows the curves above do not draw); with many budgets the cells narrow, so the lines split, and
    where a model name alone is wider than a cell the names go (``figures/tables/regime_map.md`` keeps them).
    """
    fit = (plotting.PAGE_WIDTH["full"] - _MAP_MARGINS_IN) / max(1, len(budgets)) * 72 / _CHAR_PT
    cells = {}
    for _, r in rg.iterrows():
        if r["dataset"] not in names:
            continue
        if r["winner"] == "missing":
            cells[(r["dataset"], r["label_budget"])] = [["missing"]] * 3  # the same in every layout
            continue
        eff = f"{r['advantage']:+.1f}"
        ci = f"[{r['lo']:+.1f}, {r['hi']:+.1f}]" if np.isfinite(r.get("lo", np.nan)) else "(no interval)"
        fm, other = str(r["best_fm"]), str(r["best_other"])
        cells[(r["dataset"], r["label_budget"])] = [
            [f"{r['winner']}  {eff} {ci}", f"{fm} vs {other}"],
            [r["winner"], f"{eff} {ci}", fm, f"vs {other}"],
            [r["winner"], eff, ci],
        ]
    for layout in range(3):  # one layout for every cell: the first whose every line fits
        if all(max(map(len, opts[layout])) <= fit for opts in cells.values()):
            break
    return {k: "\n".join(opts[layout]) for k, opts in cells.items()}


def regime_figure(
    cv: pd.DataFrame, rg: pd.DataFrame, simulated: Mapping[str, bool] | None = None
) -> plt.Figure | None:
    """The regime map on one page: test mIoU against labelled pixels per dataset, and who wins where.

    Top: one panel per dataset (or texture knob), test mIoU against the labelled training pixels (log axis), one
    line per model (mean over seeds; the individual seeds as dots), foundation models solid, every other row dashed.
    Bottom: the FM advantage per (dataset, budget): best FM row minus best other row (each chosen on validation),
    paired within replicate; the cell says the winner (a Holm-corrected significant difference, or "level" within
    the equivalence margin), the mean difference with its 95 % t-interval over replicates and, where the cells are
    wide enough (:func:`_cell_texts`), the two rows compared (at full labels every row of the main comparison
    competes, so they can be rows the curves do not draw)
    (:mod:`helpers.report.regime`). The replicates themselves are the dots of the top panels.

    Args:
        cv: :func:`helpers.report.regime.curves`.
        rg: :func:`helpers.report.regime.regime`.
        simulated: ``{dataset: simulated}`` for the panel titles (default: ``sim-`` names are simulated).

    Returns:
        A full-page-width figure, or ``None`` without budget rows.
    """
    from helpers.report import regime as _regime

    if cv.empty or rg.empty:
        return None
    names = compare.ordered_datasets(cv["dataset"].unique())
    sim = {n: (simulated or {}).get(n, n.startswith("sim-")) for n in names}
    ncol = min(4, len(names))
    nrow = -(-len(names) // ncol)
    budgets = sorted(rg["label_budget"].unique(), key=_regime.budget_order)
    texts = _cell_texts(rg, names, budgets)
    row_h = 0.1 + 0.11 * max((t.count("\n") + 1 for t in texts.values()), default=1)
    height = min(plotting.MAX_HEIGHT, 1.55 * nrow + 0.35 + row_h * len(names) + 0.9)
    fig = plt.figure(figsize=(plotting.PAGE_WIDTH["full"], height))
    grid = fig.add_gridspec(nrow + 1, ncol, height_ratios=[1.55] * nrow + [0.35 + row_h * len(names)])
    models = sorted(cv["model"].unique(), key=lambda m: compare.model_sort_key(m))
    colours = dict(zip(models, sns.color_palette("colorblind", len(models)), strict=True))
    fm_models = set(cv.loc[cv["group"] == _regime.FM, "model"])
    for i, name in enumerate(names):
        ax = fig.add_subplot(grid[i // ncol, i % ncol])
        d = cv[cv["dataset"] == name]
        for m in models:
            dm = d[(d["model"] == m) & d["n_labelled_px"].notna()]
            if dm.empty:
                continue
            mean = dm.groupby("n_labelled_px")["test"].mean().sort_index()
            ls = "-" if m in fm_models else "--"
            ax.plot(mean.index, mean.values, ls, color=colours[m], lw=1.0, marker="o", ms=2.5, label=m)
            ax.plot(dm["n_labelled_px"], dm["test"], ".", color=colours[m], ms=1.8, alpha=0.6)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(plotting.dataset_label(name, sim[name]), fontsize=7)
        ax.tick_params(labelsize=6)
        if i % ncol == 0:
            ax.set_ylabel("test mIoU (%)", fontsize=6.5)
        if i // ncol == nrow - 1 or i + ncol >= len(names):
            ax.set_xlabel("labelled training pixels", fontsize=6.5)
    handles = [
        Line2D([], [], color=colours[m], ls="-" if m in fm_models else "--", marker="o", ms=2.5, label=m)
        for m in models
    ]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 5), fontsize=6, frameon=False)
    # the map
    ax = fig.add_subplot(grid[nrow, :])
    mat = np.full((len(names), len(budgets)), np.nan)
    for _, r in rg.iterrows():
        if r["dataset"] in names and pd.notna(r.get("advantage", np.nan)):
            mat[names.index(r["dataset"]), budgets.index(r["label_budget"])] = r["advantage"]
    lim = max(5.0, float(np.nanmax(np.abs(mat)))) if np.isfinite(mat).any() else 5.0
    im = ax.imshow(mat, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for _, r in rg.iterrows():
        if r["dataset"] not in names:
            continue
        y, x = names.index(r["dataset"]), budgets.index(r["label_budget"])
        text = texts[(r["dataset"], r["label_budget"])]
        dark = pd.notna(r.get("advantage", np.nan)) and abs(r["advantage"]) > 0.6 * lim
        ax.text(x, y, text, ha="center", va="center", fontsize=6, color="white" if dark else "black")
    ax.set_xticks(range(len(budgets)), budgets, fontsize=6)
    ax.set_yticks(range(len(names)), [plotting.dataset_label(n, sim[n]) for n in names], fontsize=6)
    ax.set_xlabel("label budget (points-K: K labelled pixels per class; all: every label)", fontsize=6.5)
    ax.grid(False)
    cb = fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    cb.set_label("best FM − best other\n(test mIoU points;\n[95 % t-interval])", fontsize=6)
    cb.ax.tick_params(labelsize=6)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / height))
    return fig

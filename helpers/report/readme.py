"""The README's results summary, generated from the results table so that prose and table cannot disagree.

Numbers typed into prose go stale the moment a rerun moves a row (issue 27 found seven such disagreements, among
them a claim "not supported" in the README but "holds" in the findings). So the README's results section is a block
that notebook 05 writes between two markers (:func:`write_block`), from the same findings, regime map and convergence
table that ``findings.md`` comes from; the prose around it says what the numbers mean and quotes none
(:func:`typed_numbers` finds any that creep in, and the test suite fails on them).

What the summary holds, each line from a function of the table (no number is typed here):

* what was run: the newest row's date, replicates per dataset and what they vary (:func:`what_was_run`);
* every tested verdict cell of the findings: the paired effect with its named interval, the Holm-adjusted p and the
  verdict (:func:`verdict_lines`);
* the regime map's lines (:func:`helpers.report.regime.findings_lines`);
* the scene protocol's lines, for every scene of the table (:func:`helpers.report.scenes.findings_lines`; without
  the most-frequent-class floor, which needs the data);
* convergence: how every deep row stopped and how many convergence checks (a cycle from a restarted learning rate)
  moved validation by less than a point
  (:func:`convergence_lines`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data.io import atomic_write
from helpers.report import compare, verdicts

#: The block's name in the README (``<!-- BEGIN generated:results -->`` ... ``<!-- END generated:results -->``).
RESULTS = "results"
#: The README section whose prose may quote no result number outside the generated block.
RESULTS_HEADING = "## First results"


def markers(name: str) -> tuple[str, str]:
    """The begin and end marker lines of a generated block."""
    return (
        f"<!-- BEGIN generated:{name} (notebooks/05_comparison.ipynb writes this block from the results table; "
        "edits inside it are overwritten) -->",
        f"<!-- END generated:{name} -->",
    )


def _span(text: str, name: str) -> tuple[int, int] | None:
    begin, end = markers(name)
    i = text.find(begin)
    if i < 0:
        return None
    j = text.find(end, i)
    if j < 0:
        raise ValueError(f"generated block {name!r}: begin marker without its end marker ({end})")
    return i + len(begin), j


def block(text: str, name: str = RESULTS) -> str | None:
    """The body of a generated block (between its markers, stripped), or None when the text has no such block."""
    span = _span(text, name)
    return None if span is None else text[span[0] : span[1]].strip("\n")


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block's body replaced by ``body``.

    Raises:
        ValueError: The text has no block of that name (a README without the markers is not silently extended).
    """
    span = _span(text, name)
    if span is None:
        raise ValueError(f"no generated block {name!r} (expected the marker line {markers(name)[0]!r})")
    return text[: span[0]] + "\n" + body.strip("\n") + "\n" + text[span[1] :]


def write_block(path: str | os.PathLike, body: str, name: str = RESULTS) -> bool:
    """Write the block into the file at ``path`` (atomically); returns whether the file changed.

    A file whose block already holds ``body`` is not rewritten, so regenerating from the same table leaves the
    README byte-for-byte as it was.

    Raises:
        ValueError: The file has no block of that name.
    """
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    try:
        new = replace_block(old, name, body)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if new == old:
        return False
    atomic_write(path, lambda tmp: Path(tmp).write_text(new, encoding="utf-8"))
    return True


def section(text: str, heading: str = RESULTS_HEADING) -> str:
    """The text of the Markdown section starting with ``heading`` (up to the next heading of the same level)."""
    found = re.search(rf"(?:^|\n)({re.escape(heading)})", text)
    if found is None:
        return ""
    start = found.start(1)
    level = heading.split(" ", 1)[0]
    nxt = re.search(rf"\n{re.escape(level)} ", text[start:])
    return text[start : start + nxt.start()] if nxt else text[start:]


#: A result-like number: a decimal (``81.6``, ``+7.6``, ``0.26``) or a percentage (``95 %`` aside: see below).
_NUMBER = re.compile(r"(?<![\w.\-/])[+\-−]?\d+\.\d+(?![\w.])")


def typed_numbers(text: str, heading: str = RESULTS_HEADING, name: str = RESULTS) -> list[str]:
    """Decimal numbers in a README section outside its generated block: numbers typed by hand, which go stale.

    Code spans and generated blocks are skipped; a version (``2.13.0``) or a file name is not a decimal here.
    """
    body = section(text, heading)
    span = _span(body, name)
    if span is not None:
        begin, end = markers(name)
        body = body[: span[0] - len(begin)] + body[span[1] + len(end) :]
    body = re.sub(r"`[^`]*`", "", body)
    return _NUMBER.findall(body)


# ---------------------------------------------------------------------------------------------------- content
def _pct(x: float) -> str:
    return f"{100 * x:.1f}" if np.isfinite(x) else "n/a"


def data_draws(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: replicates (seeds) and the data draws they ran on, from the rows' ``data_fingerprint``.

    Returns ``dataset``, ``replicates``, ``draws`` (distinct data fingerprints across the seeds of one model, the
    largest over models; 0 where no row recorded it) and ``varies`` (``"data and model"`` when every seed had its
    own draw, ``"model only"`` when all shared one, ``"not recorded"`` for rows written before the column existed,
    ``"mixed"`` otherwise).
    """
    ok = df[df["status"] == "ok"]
    fp = ok["data_fingerprint"] if "data_fingerprint" in ok else pd.Series("", index=ok.index)
    ok = ok.assign(_fp=fp.fillna("").astype(str))
    rows = []
    for dataset, d in ok.groupby("dataset"):
        reps = int(d["seed"].nunique())
        known = d[d["_fp"] != ""]
        draws = int(known.groupby("model")["_fp"].nunique().max()) if len(known) else 0
        if not len(known):
            varies = "not recorded"
        elif draws == reps and reps > 1:
            varies = "data and model"
        elif draws == 1:
            varies = "model only"
        else:
            varies = "mixed"
        rows.append({"dataset": dataset, "replicates": reps, "draws": draws, "varies": varies})
    return pd.DataFrame(rows, columns=["dataset", "replicates", "draws", "varies"])


def what_was_run(df: pd.DataFrame, date: str) -> list[str]:
    """What the replicates of each dataset varied, read from the rows (never asserted): one line per kind."""
    from helpers.report import compare

    draws = data_draws(df)
    lines = [
        f"- Results table as of {date}; what each dataset's replicates varied, from the rows' data fingerprints:"
    ]
    for varies, group in draws.groupby("varies", sort=False):
        names = ", ".join(f"`{d}`" for d in compare.ordered_datasets(group["dataset"]))
        counts = " or ".join(str(n) for n in sorted(set(group["replicates"])))
        what = {
            "data and model": "each replicate its own data draw and model seed",
            "model only": "one fixed dataset; replicates vary the model seed only",
            "not recorded": "not recorded (rows written before the data fingerprint was; on this study's earlier "
            "runs the seeds varied the model only)",
            "mixed": "some replicates share a data draw",
        }[varies]
        lines.append(f"  - {names}: {counts} replicate{'' if counts == '1' else 's'}; {what}.")
    return lines


def verdict_lines(findings: pd.DataFrame, source: str = "findings.md") -> list[str]:
    """One line per verdict cell that was tested (not ``missing`` or outside the paper's setting).

    ``source`` is the table that lists every cell, the untested ones included.
    """
    if findings.empty:
        return ["- No verdict cell could be tested (no findings)."]
    tested = findings[~findings["verdict"].isin([verdicts.MISSING, verdicts.NOT_APPLICABLE])]
    lines = []
    for r in tested.itertuples(index=False):
        p = getattr(r, "p_adjusted", np.nan)
        ptext = f"Holm p = {p:.3f}" if p == p else "no test"
        effect = f"{100 * r.estimate:+.1f} points" + (
            f" [{100 * r.lo:+.1f}, {100 * r.hi:+.1f}]" if np.isfinite(r.lo) else " (no interval)"
        )
        crossed = " (interval over replicates and test chips)" if "test chips" in str(r.interval) else ""
        capped = r.capped  # "" where no compared run stopped by its cap (verdicts.findings)
        lines.append(
            f"- Claim {r.cell}, `{r.dataset}`: **{r.verdict}**; {r.model_a} − {r.model_b} {effect}{crossed}, "
            f"{ptext}, {r.n_replicates} replicate{'' if r.n_replicates == 1 else 's'}"
            + (f"; {compare.CAPPED_NOTE}: {capped}." if capped else ".")
        )
    skipped = len(findings) - len(tested)
    if skipped:
        lines.append(
            f"- {skipped} further cells are outside the paper's setting or lack a model (`{source}` lists them)."
        )
    return lines


def convergence_lines(df: pd.DataFrame, conv: pd.DataFrame) -> list[str]:
    """How the deep rows stopped (from the results table) and what the convergence checks found."""
    ok = df[(df["status"] == "ok") & df["family"].isin(["cnn", "fm"])]
    runs = ok.dropna(subset=["stopped_by"]).drop_duplicates(["dataset", "model", "seed", "label_budget"])
    runs = runs[runs["stopped_by"].astype(str) != ""]
    stops = runs["stopped_by"].astype(str).value_counts()
    lines = [
        f"- Deep rows trained by the plateau rule: {len(runs)} runs; stopped by "
        + ", ".join(f"{k}: {int(v)}" for k, v in stops.items())
        + "."
    ]
    method = conv.get("method", pd.Series("", index=conv.index)).astype(str)
    current = conv[method != ""]
    old = len(conv) - len(current)
    if len(current):
        good = int(current["converged"].sum())
        lines.append(
            "- Convergence checks, each a cycle of training from a restarted learning rate "
            f"(`figures/tables/convergence.md`): {good} of {len(current)} moved validation mIoU by less than one point."
        )
    else:
        lines.append("- No convergence check from a restarted learning rate in the table yet.")
    if old:
        lines.append(
            f"- {old} older checks continued at the decayed rate; they could hardly fail and are not counted."
        )
    return lines


def summary(
    df: pd.DataFrame,
    findings: pd.DataFrame,
    regime_lines: Sequence[str],
    conv: pd.DataFrame,
    date: str,
    scene_lines: Sequence[str] = (),
    budget_findings: Mapping[str, pd.DataFrame] | None = None,
) -> str:
    """The README's results block: what was run, every tested verdict, the regime map, the scene, convergence.

    ``budget_findings`` (``{budget tag: findings}``) are claim 3's cells asked again at each smaller label budget
    (:func:`helpers.report.verdicts.claim3_at_budgets`), listed after the regime map.
    """
    parts = [
        *what_was_run(df, date),
        "",
        "**Verdicts** (`findings.md` has the rule, the comparison of every cell and its expected direction): test "
        "`miou_macro` in points, A − B paired within replicate, each side's best row chosen on validation, mean "
        "[95 % t-interval over replicates; bootstrap SE with the choice of each best row redone in every resample; "
        "per cell, not adjusted], p Holm-corrected over the tested cells (a decision needs Holm p < 0.05, so an "
        "interval clear of zero can still be inconclusive):",
        "",
        *verdict_lines(findings),
        "",
        "**The regime map** (label budgets; `figures/05_regime_map`):",
        "",
        *(list(regime_lines) or ["- No label-budget rows in the table."]),
        "",
        *[
            line
            for budget, found in (budget_findings or {}).items()
            for line in (
                f"**Claim 3 at label budget {budget}** (`findings_{budget}.md`: claim 3's cells on the runs at that "
                "budget only, Holm-corrected over its own tested cells):",
                "",
                *verdict_lines(found, f"findings_{budget}.md"),
                "",
            )
        ],
        *(
            [
                "**One scene, several split protocols** (`findings.md` has the rule; `figures/05_scene_protocols`):",
                "",
                *scene_lines,
                "",
            ]
            if scene_lines
            else []
        ),
        "**Convergence**:",
        "",
        *convergence_lines(df, conv),
    ]
    return "\n".join(parts)


def study_datasets(
    df: pd.DataFrame, dataset_names: Sequence[str], texture_knobs: Sequence[float]
) -> list[str]:
    """The datasets notebook 05 reports: the main ones, then the sweep's knobs that the table holds."""
    from helpers.report import compare

    have = set(df["dataset"].dropna())
    sweep = compare.texture_dataset_names(texture_knobs, known=sorted(have))
    return [*dataset_names, *[d for d in sweep if d in have]]


def default_datasets(df: pd.DataFrame, params: str | os.PathLike) -> list[str]:
    """:func:`study_datasets` under a parameter file's ``dataset_names`` and ``texture_knobs`` (the README's).

    Notebook 05's own values win where the file overrides them (``notebooks: 05_comparison:``), as the chain passes
    them: the README reports what notebook 05 reports.
    """
    import yaml

    cfg = yaml.safe_load(Path(params).read_text(encoding="utf-8"))
    cfg = {**cfg, **((cfg.get("notebooks") or {}).get("05_comparison") or {})}
    return study_datasets(df, cfg["dataset_names"], cfg["texture_knobs"])


def results_block(
    df: pd.DataFrame,
    conv: pd.DataFrame,
    datasets: Sequence[str] | None = None,
    *,
    chips_dir: str | os.PathLike | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> str:
    """The README's results block, as notebook 05 writes it: the findings and regime map of ``datasets``.

    ``chips_dir`` (the runs' per-chip counts beside the table) lets the verdicts on real data resample test chips too
    (:func:`helpers.report.verdicts.findings`).

    ``datasets`` are the ones notebook 05 reports (:func:`study_datasets`; None: every dataset in the table), so the
    block's Holm correction runs over the same cells as ``findings.md``'s. One fixed bootstrap (``n_boot``, ``seed``),
    so the test suite can regenerate the block from the committed table under ``default.yaml``
    (:func:`default_datasets`) and compare it with the committed README.
    """
    from helpers import results
    from helpers.report import compare, regime, scenes

    ok = df[df["dataset"].notna()]
    # every scene of the table, main dataset or not: each protocol variant is a dataset of its own
    scene_lines = scenes.findings_lines(results.full_labels(ok))
    if datasets is not None:
        ok = ok[ok["dataset"].isin(list(datasets))]
        conv = conv[conv["dataset"].isin(list(datasets))] if not conv.empty else conv
    table = results.full_labels(ok)
    findings = verdicts.findings(table, n_boot=n_boot, seed=seed, chips_dir=chips_dir)
    # claim 3 at each smaller budget, as notebook 05 writes findings_<budget>.md
    at_budgets = verdicts.claim3_at_budgets(ok, n_boot=n_boot, seed=seed, chips_dir=chips_dir)
    cv = regime.curves(ok, every_full_row=True)  # the map's cells, as notebook 05 computes them
    rg = regime.regime(cv, n_boot=n_boot, seed=seed) if not cv.empty else pd.DataFrame()
    lines = regime.findings_lines(rg, compare.ordered_datasets(rg["dataset"].unique())) if len(rg) else []
    return summary(table, findings, lines, conv, verdicts.findings_date(table), scene_lines, at_budgets)


def mismatches(text: str, expected: str, name: str = RESULTS) -> list[str]:
    """Lines of the README's block that differ from ``expected`` (empty: the README says what the table says)."""
    have = block(text, name)
    if have is None:
        return [f"no generated block {name!r} in the README"]
    want = expected.strip("\n").splitlines()
    got = have.splitlines()
    out = [f"README: {g!r}\ntable:  {w!r}" for g, w in zip(got, want, strict=False) if g != w]
    if len(got) != len(want):
        out.append(f"the README block has {len(got)} lines, the table's summary {len(want)}")
    return out

"""Tests for helpers.report.tables: tables match the numbers they were built from, Markdown and booktabs LaTeX."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_compare import make_results

from helpers.report import compare, table_format, tables, verdicts

DATASETS = ("sim-crop", "sim-burn", "sim-texture-0", "sim-texture-1")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("res") / "results.csv", datasets=DATASETS)


@pytest.fixture(scope="module")
def written(table, tmp_path_factory):
    out = tmp_path_factory.mktemp("figs")
    return out, tables.write_all(table, out, n_boot=300)


def parse_markdown(text: str) -> pd.DataFrame:
    """Read back the pipe table of a Markdown file (the caption and preamble lines are skipped)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(lines[1].replace("|", "")) == {"-"}
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", ln.strip()[1:-1])] for ln in lines[2:]]
    return pd.DataFrame(rows, columns=header)


def parse_cell(cell: str) -> tuple[float, float, float, bool]:
    """``"**71.2** [70.1, 72.3]"`` -> (71.2, 70.1, 72.3, bold)."""
    m = re.fullmatch(r"(\*\*)?([\d.]+)(\*\*)? \[([\d.]+), ([\d.]+)\]", cell)
    assert m, cell
    return float(m.group(2)), float(m.group(4)), float(m.group(5)), bool(m.group(1))


def test_files_written_under_tables(written):
    out, paths = written
    assert set(paths) == {
        *(f"results_{d}" for d in DATASETS),
        "paper_comparison",
        "findings",
        "family_inputs",
        "not_run",
    }
    for md, tex in paths.values():
        assert md.parent == out / "tables" and md.suffix == ".md" and tex.suffix == ".tex"
    assert not [p for p in (out / "tables").iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_dataset_table_matches_the_numbers(written, table):
    out, paths = written
    md = parse_markdown(paths["results_sim-burn"][0].read_text())
    ok = table[(table["dataset"] == "sim-burn") & (table["split"] == "test") & (table["status"] == "ok")]
    agg = compare.aggregate(table, metrics=["miou_macro", "f1_macro"], splits=["test"], n_boot=300)
    agg = agg[(agg["dataset"] == "sim-burn") & (agg["class"] == "")]
    for metric, header in (("miou_macro", "mIoU (%)"), ("f1_macro", "F1 (%)")):
        truth = 100 * ok[ok["metric"] == metric].groupby("model")["value"].mean()
        parsed = {}
        for _, row in md.iterrows():
            if row[header] == tables.NOT_RUN:
                continue
            mean, lo, hi, bold = parse_cell(row[header])
            parsed[row["Model"]] = (mean, bold)
            a = agg[(agg["model"] == row["Model"]) & (agg["metric"] == metric)].iloc[0]
            assert (lo, hi) == pytest.approx((round(100 * a["lo"], 1), round(100 * a["hi"], 1)), abs=0.051)
            assert lo <= mean <= hi
        assert set(parsed) == set(truth.index)
        for model, (mean, _) in parsed.items():
            assert mean == pytest.approx(truth[model], abs=0.051)
        bold = [m for m, (_, b) in parsed.items() if b]
        assert bold == [truth.idxmax()]
    assert md["Replicates"].tolist().count("3") == len(md) - 1
    text = paths["results_sim-burn"][0].read_text()
    assert "95 % t-interval over replicates" in text and "bootstrap interval" not in text
    assert md.set_index("Model").loc["prithvi_none", "Family"] == "transformer (from scratch)"
    not_run = md[md["mIoU (%)"] == tables.NOT_RUN]
    assert not_run["Model"].tolist() == ["prithvi_published"]
    assert "weights file not supplied" in paths["results_sim-burn"][0].read_text()
    # model order: families, canonical order, FMs by pretraining
    assert md["Model"].tolist()[:4] == ["rf", "lgbm", "rf_aug", "lgbm_aug"]
    assert md["Model"].tolist()[6:9] == ["prithvi_none", "prithvi_mae", "prithvi_spectral"]


def test_latex_is_booktabs_and_escaped(written):
    _, paths = written
    tex = paths["results_sim-burn"][1].read_text()
    assert tex.count("\\toprule") == tex.count("\\midrule") == tex.count("\\bottomrule") == 1
    assert "rf\\_aug" in tex and "rf_aug" not in tex.replace("rf\\_aug", "")
    assert "\\textbf{" in tex and "(\\%)" in tex
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    n_cols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1))
    assert all(line.count(" & ") == n_cols - 1 and line.endswith("\\\\") for line in body)
    assert table_format.latex_escape("a_b & 5% − x") == "a\\_b \\& 5\\% $-$ x"


def test_paper_table_labels_sources(written, table):
    _, paths = written
    md = parse_markdown(paths["paper_comparison"][0].read_text())
    reported = tables.load_paper_reported()
    rep_rows = md[md["Source"] == "reported by Xie et al. 2024"]
    assert len(rep_rows) == 3
    fm_values = {float(c.split(" ")[0]) for c in rep_rows["FM"]}
    assert fm_values == set(reported.loc[reported["role"] == "fm", "value_pct"])
    other = {float(c.split(" ")[0]) for c in rep_rows["Best other"]}
    assert other == set(reported.loc[reported["role"] == "other", "value_pct"])
    # the real datasets are not in this table: said so, never filled in
    real = md[md["Source"].str.endswith(", real")]
    assert (real["FM"] == "not in results").all() and len(real) == 3
    sim = md[md["Source"] == "this study, sim-burn, simulated analogue"].iloc[0]
    agg = compare.aggregate(table, metrics=["miou_macro"], n_boot=300)
    best = compare.select_best(agg, by=("dataset", "comparison_family"))
    fm = best[(best["dataset"] == "sim-burn") & (best["comparison_family"] == "fm")].iloc[0]
    assert sim["FM"].endswith(f"({fm['model']})")
    assert parse_cell(sim["FM"].rsplit(" (", 1)[0])[0] == pytest.approx(100 * fm["mean"], abs=0.051)
    cls = best[(best["dataset"] == "sim-burn") & (best["comparison_family"] == "classical")].iloc[0]
    assert sim["Best other"].endswith(f"({cls['model']})")  # burn: the paper compares with best traditional
    caption = paths["paper_comparison"][0].read_text()
    assert "grouped ViT and SegFormer trained from scratch with its FMs" in caption
    assert "t-interval over replicates" in caption
    flood = md[md["Source"] == "this study, sim-flood, simulated analogue"].iloc[0]
    assert flood["FM"] == "not in results"


def test_paper_numbers_come_from_study_md(shared_dir):
    text = (shared_dir / "STUDY.md").read_text()
    reported = tables.load_paper_reported()
    assert len(reported) == 6 and set(reported["role"]) == {"fm", "other"}
    for v in reported["value_pct"]:
        assert f"{v:g}" in text, v
    assert reported["source"].str.contains("Xie et al. 2024, arXiv 2404.11797").all()
    assert reported["source"].str.contains("approximate").all()


def test_bad_paper_file_is_named(tmp_path):
    bad = tmp_path / "paper.csv"
    bad.write_text("paper_task,value_pct\nx,1\n")
    with pytest.raises(ValueError, match=r"paper\.csv.*lacks column"):
        tables.load_paper_reported(bad)
    with pytest.raises(ValueError, match="missing"):
        tables.load_paper_reported(tmp_path / "absent.csv")


def test_findings_table_and_dated_note(written, table):
    _, paths = written
    text = paths["findings"][0].read_text()
    assert f"Findings as of {verdicts.findings_date(table)}" in text
    md = parse_markdown(text)
    f = verdicts.findings(table, n_boot=300)
    assert md["Verdict"].tolist() == f["verdict"].tolist()
    assert md["Cell"].tolist() == f["cell"].tolist()
    row = md[(md["Cell"] == "2b") & (md["Dataset"] == "sim-burn (simulated)")].iloc[0]
    assert "best CNN unet" in row.iloc[-1] and "best FM prithvi_spectral" in row.iloc[-1]
    tested = md[md["p (Holm)"] != "–"]
    assert (
        len(tested)
        and tested["Effect A − B (test, points)"].str.contains("t-interval over 3 replicates").all()
    )
    assert "Holm-adjusted" in text and "±2 mIoU points" in text


def test_not_run_table(written):
    _, paths = written
    md = parse_markdown(paths["not_run"][0].read_text())
    assert md[["Dataset", "Model", "Seed", "Reason"]].values.tolist() == [
        ["sim-burn", "prithvi_published", "0", "weights file not supplied"]
    ]


def test_tables_are_byte_stable(written, table, tmp_path):
    out, paths = written
    again = tables.write_all(table, tmp_path, n_boot=300)
    for name, files in paths.items():
        for a, b in zip(files, again[name], strict=True):
            assert a.read_bytes() == b.read_bytes(), name


def test_format_interval():
    assert table_format.format_interval(0.7123, 0.701, 0.7234) == "71.2 [70.1, 72.3]"
    assert table_format.format_interval(0.5, np.nan, np.nan, 1) == "50.0 (1 replicate)"
    assert table_format.format_interval(np.nan, np.nan, np.nan) == "–"


def test_family_inputs_table_reads_what_each_model_saw_from_the_rows():
    base = dict(
        dataset="sim-x", split="test", metric="miou_macro", value=0.5, status="ok", label_budget="all"
    )
    base["class"] = ""
    rows = [
        {**base, "model": "rf", "family": "classical", "pretraining": "none", "seed": 0, "n_train_pixels": 100,
         "steps": None, "note": "max_depth=None; budget 100/class/chip"},
        {**base, "model": "unet", "family": "cnn", "pretraining": "none", "seed": 0, "n_train_pixels": 5000,
         "steps": 600, "note": "trained with 1 thread(s), bf16 autocast + channels_last"},
        {**base, "model": "unet", "family": "cnn", "pretraining": "none", "seed": 1, "n_train_pixels": 5000,
         "steps": 800, "note": "trained with 1 thread(s), bf16 autocast + channels_last"},
        {**base, "model": "prithvi_arch_small_mae", "family": "fm", "pretraining": "mae-in-study", "seed": 0,
         "n_train_pixels": 5000, "steps": 700, "n_train_chips": 32,
         "note": "pretraining 10 s, 72 steps, stopped by plateau; trained with 1 thread(s), float32"},
        {**base, "model": "vit", "family": "fm", "pretraining": "none", "seed": 0, "n_train_pixels": 5000,
         "steps": 500, "note": "plain ViT-seg from scratch; float32"},
        {**base, "model": "presto_frozen_lgbm", "family": "fm", "pretraining": "published", "seed": 0,
         "n_train_pixels": 900, "note": "lgbm; months [3, 6, 8] (file tags (ACQUISITION_DATES)); location chip centre; Presto"},
    ]  # fmt: skip
    t = tables.family_inputs_table(pd.DataFrame(rows)).set_index("model")
    assert t.loc["unet", "steps"] == "700 (600–800)" and t.loc["unet", "precision"] == "bf16 autocast"
    capped = pd.DataFrame(rows).assign(stopped_by=["", "plateau", "cap", "plateau", "plateau", ""])
    at_cap = tables.family_inputs_table(capped).set_index("model")
    assert at_cap.loc["unet", "steps"] == "700 (600–800); 1 of 2 runs at the step cap, still improving"
    assert at_cap.loc["vit", "steps"] == "500"  # a run that reached its plateau says nothing more
    assert t.loc["rf", "steps"] == "–" and t.loc["rf", "precision"] == "float64 trees"
    assert (
        t.loc["prithvi_arch_small_mae", "pretraining"]
        == "in study: 72 steps, 10 s on the dataset's 32 training chips"
    )
    assert t.loc["vit", "family"] == "transformer (from scratch)" and t.loc["vit", "pretraining"] == "none"
    assert t.loc["presto_frozen_lgbm", "dates"] == "months [3, 6, 8] (file tags (ACQUISITION_DATES))"
    assert t.loc["presto_frozen_lgbm", "location"] == "chip centre" and t.loc["unet", "location"] == "none"
    assert list(t.index[:2]) == ["rf", "unet"]  # canonical model order


def test_pretraining_table_says_whether_the_continuation_moved_the_probe():
    pre = pd.DataFrame(
        {
            "key": ["a", "b", "c"], "pretext": ["mae", "spectral", "mae"], "pretrained_on": ["x"] * 3,
            "chips": [10, 10, 10], "steps": [3000, 4000, 500], "train_s": [120.0, 180.0, 30.0],
            "stopped_by": ["probe plateau", "probe plateau", "cap"], "best_step": [1000, 2000, 500],
            "best_probe": [0.51, 0.55, 0.5], "best_smoothed": [0.505, 0.545, 0.5],
            "continued_to": [6000, 8000, np.nan], "best_smoothed_continued": [0.512, 0.561, np.nan],
            "moved": [0.007, 0.016, np.nan],
            "platform": ["x86_64 AVX512 bf16=amx+avx512 torch=2.13.0+cpu", "x86_64 AVX512 bf16=avx512 torch=2.13.0+cpu",
                         np.nan],
        }
    )  # fmt: skip
    t = tables.pretraining_table(pre)
    assert t["CPU"].tolist() == [
        "AVX512 bf16=amx+avx512 torch=2.13.0+cpu",
        "AVX512 bf16=avx512 torch=2.13.0+cpu",
        "",
    ]
    assert t["plateau"].tolist() == ["yes", "no", "not checked"]
    assert t["moved"].tolist()[:2] == [0.7, 1.6] and t["CPU min"].tolist() == [2.0, 3.0, 0.5]
    assert t["best probe"].tolist() == [51.0, 55.0, 50.0]


def test_run_summary_is_the_replicate_mean_with_its_interval_and_costs(table):
    models = sorted(set(table.loc[table["status"] == "ok", "model"]))[:2]
    rows = table[table["model"].isin(models)]
    out = tables.run_summary(rows, costs=("n", "runtime_s"), models=models[::-1])
    assert list(out.columns) == [
        f"{m}{s}" for m in ("miou_macro", "f1_macro", "oa") for s in ("", " lo", " hi")
    ] + ["n", "runtime_s"]
    assert list(out.index.get_level_values("model").unique()) == models[::-1]  # ordered as asked
    d, m = out.index[0]
    test = rows[(rows["dataset"] == d) & (rows["model"] == m) & (rows["split"] == "test")]
    by_seed = test[(test["metric"] == "miou_macro") & (test["class"] == "")]["value"]
    assert out.loc[(d, m), "miou_macro"] == pytest.approx(by_seed.mean())
    assert out.loc[(d, m), "miou_macro lo"] < by_seed.mean() < out.loc[(d, m), "miou_macro hi"]
    assert out.loc[(d, m), "n"] == len(by_seed)
    runtime = test.drop_duplicates("seed")["runtime_s"].mean()
    assert out.loc[(d, m), "runtime_s"] == pytest.approx(runtime)
    plain = tables.run_summary(rows, metrics=("oa",), costs=("n_params",), interval=False)
    assert list(plain.columns) == ["oa", "n_params"]
    # a run-level column of the rows (not of the aggregate): one value per run, then the mean over runs
    timed = rows.assign(fit_s=rows["seed"].astype(float) * 2)
    fit = tables.run_summary(timed, costs=("fit_s",), interval=False)["fit_s"]
    assert fit.loc[(d, m)] == pytest.approx(2 * test.drop_duplicates("seed")["seed"].mean())


def test_run_summary_of_no_full_label_rows_is_empty_with_the_same_columns(table):
    """A notebook run with label budgets only (``models: []``) has no row to summarise: an empty table, no error."""
    out = tables.run_summary(table.iloc[:0], costs=("n", "fit_s"), interval=False, models=[])
    assert out.empty and list(out.columns) == ["miou_macro", "f1_macro", "oa", "n", "fit_s"]
    assert list(out.index.names) == ["dataset", "model"]

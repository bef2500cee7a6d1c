"""The README's results summary is the table's (helpers.report.readme): generated, regenerated, never typed."""

from pathlib import Path

import pandas as pd
import pytest

from helpers import results
from helpers.report import readme
from helpers.runs import convergence

ROOT = Path(__file__).resolve().parents[1]


def test_block_round_trip_and_refusals(tmp_path):
    begin, end = readme.markers("results")
    text = f"# T\n\n## First results\n\nprose\n\n{begin}\nold\n{end}\n\nafter\n"
    new = readme.replace_block(text, "results", "- new 1.5")
    assert readme.block(new) == "- new 1.5" and new.endswith("after\n") and "old" not in new
    path = tmp_path / "R.md"
    path.write_text(text)
    assert readme.write_block(path, "- new 1.5") is True
    assert readme.write_block(path, "- new 1.5") is False  # same table, same bytes: not rewritten
    assert not list(tmp_path.glob(".*tmp*"))
    with pytest.raises(ValueError, match="no generated block 'results'"):
        readme.replace_block("# no markers\n", "results", "x")
    with pytest.raises(ValueError, match="without its end marker"):
        readme.block(f"{begin}\nunterminated", "results")


def test_typed_numbers_are_found_outside_the_block_only():
    begin, end = readme.markers("results")
    text = (
        "## First results\n\nU-Net scores 81.6 here (`torch==2.13.0` aside), see `figures/05_x.pdf`.\n"
        f"{begin}\n- 94.0 [91.5, 95.4]\n{end}\n\n## Next\n\n12.5 elsewhere is not this section's\n"
    )
    assert readme.typed_numbers(text) == ["81.6"]
    assert readme.typed_numbers(text.replace("81.6", "eighty")) == []


def test_the_committed_readme_says_what_the_committed_table_says():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.typed_numbers(text) == [], "numbers typed into the README's results section"
    table = results.read(ROOT / "results" / "results.csv")
    conv = convergence.read(ROOT / "results" / "convergence.csv")
    # what notebook 05 writes under default.yaml (the profile that sets readme_path)
    datasets = readme.default_datasets(table, ROOT / "notebooks" / "params" / "default.yaml")
    expected = readme.results_block(table, conv, datasets, chips_dir=ROOT / "results" / "chips")
    assert readme.mismatches(text, expected) == [], (
        "README results block differs from the table: rerun notebook 05"
    )
    # a number planted in the README's block is caught, and so is one typed beside it
    line = next(ln for ln in readme.block(text).splitlines() if "[" in ln)
    planted = text.replace(line, line.replace("[", "[1", 1), 1)
    assert readme.mismatches(planted, expected)
    prose = text.replace("How to read it", "How to read it (U-Net scores 94.0)", 1)
    assert readme.typed_numbers(prose) == ["94.0"]


def test_what_was_run_is_read_from_the_rows():
    def rows(dataset, fps):
        return [
            {"dataset": dataset, "model": "rf", "seed": s, "status": "ok", "data_fingerprint": fp}
            for s, fp in enumerate(fps)
        ]

    df = pd.DataFrame(
        [*rows("sim-a", ["a0", "a1", "a2"]), *rows("real-b", ["b", "b", "b"]), *rows("old", ["", "", ""])]
    )
    draws = readme.data_draws(df).set_index("dataset")
    assert draws.loc["sim-a", "varies"] == "data and model" and draws.loc["sim-a", "draws"] == 3
    assert draws.loc["real-b", "varies"] == "model only"
    assert draws.loc["old", "varies"] == "not recorded"
    text = "\n".join(readme.what_was_run(df, "2026-12-03"))
    assert "each replicate its own data draw" in text and "replicates vary the model seed only" in text

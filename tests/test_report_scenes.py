"""The scene protocol's comparison (helpers.report.scenes): each split variant against its reference, paired."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import metrics, results
from helpers.report import compare, scenes, tables
from tests.test_compare import _cm, _write_scores

BLOCKS = "scene blocks, 32 px, guard 0 px"
PROTOCOLS = {
    "my-scene": BLOCKS,
    "my-scene-random": "scene random, guard 0 px (leaky)",
    "my-scene-trainonly": BLOCKS + ", input train-only",
    "my-scene-guard": "scene blocks, 32 px, guard 4 px",
    "other-scene": BLOCKS,  # a second scene: its rows must never pair with my-scene's variants
}


def _scene_rows(values: dict) -> pd.DataFrame:
    """A table of test and val OA rows: ``values[(dataset, model)]`` is the per-seed test OA."""
    rows = []
    for (dataset, model), per_seed in values.items():
        family = {"rf": "classical", "rf_aug": "classical", "unet": "cnn"}.get(model, "fm")
        for seed, v in enumerate(per_seed):
            for split in ("val", "test"):
                rows.append(
                    dict(dataset=dataset, task="landcover", simulated=False, model=model, family=family,
                         pretraining="published" if family == "fm" else "none", seed=seed, label_budget="all",
                         split=split, metric="oa", value=v, status="ok", protocol=PROTOCOLS[dataset])
                )  # fmt: skip
                rows[-1]["class"] = ""
    return pd.DataFrame(rows)


def test_each_variant_pairs_with_its_own_scenes_reference_per_model_and_seed():
    table = _scene_rows(
        {
            ("my-scene", "rf"): [0.40, 0.42, 0.44],
            ("my-scene", "unet"): [0.50, 0.60, 0.70],
            ("my-scene-random", "rf"): [0.80, 0.83, 0.86],  # +0.40, +0.41, +0.42
            ("my-scene-random", "unet"): [0.99, 0.99],  # two seeds: paired over those only
            ("my-scene-trainonly", "unet"): [0.40, 0.45, 0.50],
            ("my-scene-guard", "presto_frozen_lgbm"): [0.3, 0.3, 0.3],  # no reference row of this model
            ("other-scene", "rf"): [0.9, 0.9, 0.9],
        }
    )
    assert scenes.references(table) == {
        "my-scene-random": "my-scene",
        "my-scene-trainonly": "my-scene",
        "my-scene-guard": "my-scene",
    }
    eff = scenes.effects(table).set_index(["dataset", "model"])
    assert set(eff.index) == {
        ("my-scene-random", "rf"),
        ("my-scene-random", "unet"),
        ("my-scene-trainonly", "unet"),
    }
    rf = eff.loc[("my-scene-random", "rf")]
    assert rf["mean"] == pytest.approx(0.41) and rf["n"] == 3 and rf["kind"] == "random"
    assert rf["reference_mean"] == pytest.approx(0.42) and rf["lo"] < 0.41 < rf["hi"]
    unet = eff.loc[("my-scene-random", "unet")]
    assert unet["n"] == 2 and unet["seeds"] == "0,1" and unet["mean"] == pytest.approx((0.49 + 0.39) / 2)
    assert eff.loc[("my-scene-trainonly", "unet"), "mean"] == pytest.approx(-0.15)
    # variants sorted by what they vary: random first, then train-only, then guard
    assert list(dict.fromkeys(scenes.effects(table)["dataset"])) == ["my-scene-random", "my-scene-trainonly"]


def test_findings_lines_say_the_random_split_leaks_and_the_floor_check_names_rows_below_it():
    table = _scene_rows(
        {
            ("my-scene", "rf"): [0.40, 0.42, 0.44],
            ("my-scene", "rf_aug"): [0.38, 0.40, 0.42],
            ("my-scene", "unet"): [0.20, 0.22, 0.24],
            ("my-scene-random", "rf"): [0.80, 0.83, 0.86],
            ("my-scene-random", "rf_aug"): [0.95, 0.97, 0.99],
        }
    )
    lines = scenes.findings_lines(table, {"my-scene": 0.25, "my-scene-random": 0.25})
    random_line = next(line for line in lines if line.startswith("- **`my-scene-random`** (scene random"))
    assert "LEAKY" in random_line and "rf 42.0 → 83.0 (+41.0 [" in random_line
    texture = next(line for line in lines if "Texture features" in line)
    # rf_aug − rf: -2.0 on blocks (the same every seed: zero width), +14.0 on the leaky random split
    assert "`my-scene`: rf_aug − rf -2.0 [-2.0, -2.0]" in texture
    assert "`my-scene-random` (LEAKY): rf_aug − rf +14.0 [" in texture
    floor = next(line for line in lines if line.startswith("- **`my-scene`** against"))
    assert "below it: unet 22.0" in floor and "25.0 % of test pixels" in floor
    assert not any("not computed" in line for line in lines)
    # a scene whose data was not readable: its floor line says so instead of vanishing
    lacking = scenes.findings_lines(table, {"my-scene": 0.25})
    assert "- **`my-scene-random`** against its most frequent test class: not computed" in "\n".join(lacking)
    assert not any("not computed" in line for line in scenes.findings_lines(table))
    assert scenes.findings_lines(table[table["dataset"] == "my-scene"].drop(columns="protocol")) == []
    # findings.md gains the section only with lines
    assert "### One scene, several split protocols" in tables.scene_section(lines)
    assert tables.scene_section([]) == ""


def test_best_per_family_picks_each_familys_best_on_validation_and_mark_the_random_split_leaky(tmp_path):
    """Scene rows carry their split protocol; the comparison keeps chip datasets out and says which split leaks."""
    path = tmp_path / "r.csv"
    for dataset, protocol, scale in (
        ("my-scene", "scene blocks, 32 px, guard 0 px", 0.5),
        ("my-scene-random", "scene random, guard 0 px (leaky)", 0.95),
    ):
        for model, family, (val, test) in (
            ("rf", "classical", (0.6, 0.7)),
            ("lgbm", "classical", (0.5, 0.9)),  # better on test only: never chosen
            ("unet", "cnn", (0.7, 0.8)),
        ):
            for seed in range(2):
                ctx = dict(
                    task="landcover",
                    dataset=dataset,
                    model=model,
                    family=family,
                    seed=seed,
                    protocol=protocol,
                )
                rows = []
                for split, v in (("val", val), ("test", test)):
                    s = metrics.scores(_cm(min(0.99, scale * v + 0.01 * seed), 2))
                    rows += results.score_rows(s, split=split, class_names=["x", "y"], context=ctx)
                results.write_run(rows, path)
    _write_scores(path, "sim-flood", "flood", "rf", "classical", [0.9, 0.91])  # a chip dataset: no protocol
    df = results.read(path)
    agg = compare.aggregate(df, metrics=["miou_macro", "oa"], n_boot=50)
    out = scenes.best_per_family(agg, df)
    assert set(out["dataset"]) == {"my-scene", "my-scene-random"}
    assert out.set_index(["dataset", "family"])["model"].to_dict() == {
        ("my-scene", "classical"): "rf",
        ("my-scene", "cnn"): "unet",
        ("my-scene-random", "classical"): "rf",
        ("my-scene-random", "cnn"): "unet",
    }
    assert out.groupby("dataset")["leaky"].first().to_dict() == {"my-scene": False, "my-scene-random": True}
    assert (out["n"] == 2).all() and out["oa"].between(0, 1).all() and (out["oa_lo"] < out["oa"]).all()
    assert scenes.best_per_family(agg, df[df["dataset"] == "sim-flood"]).empty

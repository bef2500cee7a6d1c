"""FM rows end to end on the fixture layouts (quick settings): columns, shared pretraining, not_run, real-file path."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import metrics, results
from helpers.data import datasets
from helpers.models import prithvi
from helpers.runs import fm_finetuned, fm_settings, runtime
from helpers.runs import pretrain as pretrain

torch.set_num_threads(1)

MODELS = (
    "prithvi_arch_small_random",
    "prithvi_arch_small_mae",
    "prithvi_arch_small_mae_probe",
    "prithvi_arch_small_spectral",
    "vit",
    "segformer",
    "prithvi_100m",
)


@pytest.fixture
def quick():
    s = fm_settings.quick_settings()
    return dataclasses.replace(s, finetune={**s.finetune, "max_steps": 2, "eval_every": 2}, num_threads=1)


@pytest.mark.parametrize("name", ["crop", "burn_scars"])  # 3 dates / 1 date
def test_fm_rows_on_fixture(fixture_roots, tmp_path, quick, name):
    ds = datasets.open(name, fixture_roots[name])
    paths = dict(results_path=tmp_path / "r.csv", runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    out = fm_finetuned.run_fm_rows(ds, 0, models=MODELS, settings=quick, progress=False, **paths)
    assert set(out) == set(MODELS)
    df = results.read(paths["results_path"])
    assert set(df["model"]) == set(MODELS)
    assert set(df["family"]) == {"fm"}
    ok = df[df["status"] == "ok"]
    assert set(ok["split"]) == {"val", "test"}
    by_model = ok.drop_duplicates("model").set_index("model")
    assert by_model.loc["prithvi_arch_small_random", "pretraining"] == "none"
    assert by_model.loc["prithvi_arch_small_mae", "pretraining"] == "mae-in-study"
    assert by_model.loc["prithvi_arch_small_spectral", "pretraining"] == "spectral-in-study"
    assert by_model.loc["vit", "weights"] == "random-init"
    # full fine-tune and probe start from the same cached MAE run; the probe trains only its head
    assert (
        by_model.loc["prithvi_arch_small_mae", "weights"]
        == by_model.loc["prithvi_arch_small_mae_probe", "weights"]
    )
    trainable = by_model["n_trainable_params"]
    assert trainable["prithvi_arch_small_mae_probe"] < trainable["prithvi_arch_small_mae"] / 10
    assert (
        by_model.loc["prithvi_arch_small_mae_probe", "n_params"] > trainable["prithvi_arch_small_mae_probe"]
    )
    assert len([p for p in (tmp_path / "cache" / "pretrain").iterdir() if p.is_dir()]) == 2  # mae, spectral
    for model in ("prithvi_arch_small_mae", "prithvi_arch_small_random"):
        assert "NOT Prithvi-100M" in by_model.loc[model, "note"]
    missing = df[df["model"] == "prithvi_100m"]
    assert (
        missing["status"].tolist() == ["not_run"]
        and "Prithvi_100M.pt not available" in missing["note"].iloc[0]
    )
    # every fine-tuned row saves its per-chip counts beside the table, summing exactly to its test rows
    for model in set(ok["model"]):
        run = ok[ok["model"] == model]
        (key,) = set(run["run_key"])
        counts = results.read_chip_counts(ds.name, model, 0, chips_dir=tmp_path / "chips", run_key=key)
        assert counts is not None and list(counts["test"]["chip_ids"]) == ds.chip_ids("test"), model
        summed = [counts["test"][k].sum(axis=0) for k in ("tp", "fp", "fn")]
        rows = run[(run["split"] == "test") & (run["class"] == "")].set_index("metric")["value"]
        assert results.counts_scores(*summed) == rows[list(metrics.AGGREGATES)].to_dict(), model
    assert set(ok["platform"]) == {runtime.platform_class()}
    again = fm_finetuned.run_fm_rows(ds, 0, models=MODELS[:2], settings=quick, progress=False, **paths)
    assert all(o.skipped for o in again.values())


def test_pooled_pretraining_is_shared_by_every_dataset_of_the_pool(fixture_roots, tmp_path, quick):
    crop = datasets.open("crop", fixture_roots["crop"])
    burn = datasets.open("burn_scars", fixture_roots["burn_scars"])
    paths = dict(results_path=tmp_path / "r.csv", runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    kw = dict(models=(), settings=quick, progress=False, pooled=["prithvi_arch_small_mae"], pool=[crop, burn])
    for ds in (crop, burn):  # 3 dates and 1 date fine-tune from the same 1-frame encoder
        out = fm_finetuned.run_fm_rows(ds, 0, **kw, **paths)
        assert (
            list(out) == ["prithvi_arch_small_mae_pooled"]
            and not out["prithvi_arch_small_mae_pooled"].skipped
        )
    assert (
        len([p for p in (tmp_path / "cache" / "pretrain").iterdir() if p.is_dir()]) == 1
    )  # one pooled MAE run for both
    df = results.read(paths["results_path"])
    rows = df.drop_duplicates("dataset").set_index("dataset")
    assert set(rows["model"]) == {"prithvi_arch_small_mae_pooled"}
    assert set(rows["pretraining"]) == {"mae-in-study"}
    assert rows["weights"].str.contains("crop train imagery + burn_scars train imagery", regex=False).all()
    assert rows["weights"].nunique() == 1
    with pytest.raises(ValueError, match="pretext"):
        fm_finetuned.run_fm_rows(crop, 0, models=(), pooled=["vit"], pool=[crop], **paths)
    with pytest.raises(ValueError, match="pool="):
        fm_finetuned.run_fm_rows(crop, 0, models=(), pooled=["prithvi_arch_small_mae"], **paths)


def test_a_compute_row_fine_tunes_from_the_checkpoint_part_of_the_way(
    fixture_roots, tmp_path, quick, monkeypatch
):
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    paths = dict(results_path=tmp_path / "r.csv", runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    loaded = []
    real = prithvi.PrithviSegmenter.load_encoder_state
    monkeypatch.setattr(
        prithvi.PrithviSegmenter,
        "load_encoder_state",
        lambda m, state, cfg: (loaded.append(state), real(m, state, cfg)),
    )
    kw = dict(settings=quick, progress=False, **paths)
    full = fm_finetuned.run_prithvi_small(ds, 0, "prithvi_arch_small_mae", **kw)
    half = fm_finetuned.run_prithvi_small(ds, 0, "prithvi_arch_small_mae", pretraining_fraction=0.5, **kw)
    assert half.run_key != full.run_key and half.out_dir != full.out_dir
    pre = fm_finetuned.pretrain_for(ds, "mae", quick, cache_dir=paths["cache_dir"], progress=False)
    step, encoder = pretrain.checkpoint_encoder(pre, 0.5)
    assert all(torch.equal(loaded[-1][k], v) for k, v in encoder.items())  # the checkpoint, not the selection
    assert all(torch.equal(loaded[0][k], v) for k, v in pre.encoder_state.items())
    rows = results.read(paths["results_path"]).drop_duplicates("model").set_index("model")
    assert (
        f"checkpoint at step {step} (0.5 of the selected step)"
        in rows.loc["prithvi_arch_small_mae_pt50", "weights"]
    )
    assert fm_finetuned.run_prithvi_small(
        ds, 0, "prithvi_arch_small_mae", pretraining_fraction=0.5, **kw
    ).skipped
    with pytest.raises(ValueError, match="no pretraining"):
        fm_finetuned.run_prithvi_small(ds, 0, "prithvi_arch_small_random", pretraining_fraction=0.5, **kw)


def test_published_checkpoint_path(fixture_roots, tmp_path, quick):
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    cfg = prithvi.PrithviConfig(
        img_size=32,
        patch_size=16,
        num_frames=3,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    ckpt = tmp_path / "Prithvi_100M.pt"
    torch.save(prithvi.native_to_v1(prithvi.PrithviMAE(cfg).state_dict()), ckpt)  # EO-1.0 layout, tiny widths
    settings = dataclasses.replace(quick, published_config=cfg)
    paths = dict(results_path=tmp_path / "r.csv", runs_dir=tmp_path / "runs")
    res = fm_finetuned.run_prithvi_published(ds, 0, ckpt, settings=settings, progress=False, **paths)
    assert not res.skipped and res.rows
    row = res.rows[0]
    assert row["pretraining"] == "published" and row["weights"].startswith("Prithvi_100M.pt sha256:")
    truncated = tmp_path / "bad.pt"
    truncated.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(prithvi.PrithviCheckpointError, match="bad.pt"):
        fm_finetuned.run_prithvi_published(ds, 1, truncated, settings=settings, progress=False, **paths)
    gone = fm_finetuned.run_prithvi_published(ds, 2, tmp_path / "nowhere.pt", settings=settings, **paths)
    assert gone.rows[0]["status"] == "not_run" and "nowhere.pt does not exist" in gone.rows[0]["note"]


def test_prithvi_arch_fine_tunes_share_one_precision_and_probes_keep_float32(fixture_roots, tmp_path, quick):
    """``small_bf16`` puts every init of the Prithvi-arch fine-tunes under bf16 autocast (so the in-study rows still
    differ only in their starting weights), never the probes or the plain ViT, and is part of the run key."""
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    paths = dict(results_path=tmp_path / "r.csv", runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    models = ("prithvi_arch_small_random", "prithvi_arch_small_mae", "prithvi_arch_small_mae_probe", "vit")
    on = dataclasses.replace(quick, small_bf16=True)
    out = fm_finetuned.run_fm_rows(ds, 0, models=models, settings=on, progress=False, **paths)
    notes = results.read(paths["results_path"]).drop_duplicates("model").set_index("model")["note"]
    for model in models[:2]:
        assert "bf16 autocast" in notes[model] and "float32" not in notes[model], model
    for model in models[2:]:
        assert "float32" in notes[model] and "bf16" not in notes[model], model
    off = dataclasses.replace(quick, small_bf16=False)
    again = fm_finetuned.run_fm_rows(ds, 0, models=models, settings=off, progress=False, **paths)
    for model in models[:2]:  # float32 is another run, never the bf16 one reused
        assert not again[model].skipped and again[model].run_key != out[model].run_key, model
    for model in models[2:]:
        assert again[model].skipped and again[model].run_key == out[model].run_key, model

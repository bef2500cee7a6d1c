"""In-study pretraining: masking ratios and targets as configured, loss goes down, cache and resume work."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from helpers.data import datasets
from helpers.models.prithvi import PrithviConfig
from helpers.runs import fm_settings, pretexts
from helpers.runs import pretrain as pretrain

torch.set_num_threads(1)

TINY = PrithviConfig(
    img_size=32,
    patch_size=8,
    embed_dim=32,
    depth=1,
    num_heads=2,
    decoder_embed_dim=16,
    decoder_depth=1,
    decoder_num_heads=2,
)


def cfg(**kw) -> pretexts.PretrainConfig:
    base = dict(model=TINY, crop_size=32, epochs=6, crops_per_chip=4, batch_size=4, lr=2e-3, patience=None)
    return pretexts.PretrainConfig(**(base | kw))


@pytest.fixture
def crop(fixture_roots):
    return datasets.open("crop", fixture_roots["crop"])  # 3 dates, 18 channels, 32 px chips


@pytest.fixture
def burn(fixture_roots):
    return datasets.open("burn_scars", fixture_roots["burn_scars"])  # 1 date, 6 channels


def reflectance(b: int, frames: int, size: int = 32) -> torch.Tensor:
    return torch.rand(b, 6 * frames, size, size) * 0.4 + 0.01


@pytest.mark.parametrize("ratio", [0.75, 0.5])
def test_mae_masks_the_configured_fraction_and_targets_normalised_patches(ratio):
    c = cfg(mask_ratio=ratio)
    model = pretexts.Pretrainer(c.model_config(3), "mae")
    x = reflectance(2, 3)
    x[0, 6:12, :8, :8] = 0.0  # date 2 nodata in the first token of that date
    out = model(x, c)
    n_tokens = 3 * 4 * 4
    assert out["mask"].shape == (2, n_tokens)
    assert out["mask"].sum(1).tolist() == [n_tokens - int(n_tokens * (1 - ratio))] * 2
    # target: Prithvi-normalised reflectance, patchified (values ordered tubelet, row, col, band)
    norm = (x - model.normalize.mean) / model.normalize.std
    cube = norm.reshape(2, 3, 6, 32, 32).permute(0, 2, 1, 3, 4)
    assert torch.allclose(out["target"], model.mae.patchify(cube))
    assert out["target"][1, 16 + 5, (3 * 8 + 2) * 6 + 4] == cube[1, 4, 1, 8 + 3, 8 + 2]
    # loss counts hidden tokens only, and never nodata pixels
    w = out["weights"]
    assert torch.equal(w.amax(-1), out["mask"] * (w.amax(-1) > 0))
    assert w[0, 16].sum() == 0
    manual = (((out["pred"] - out["target"]) ** 2) * w).sum() / w.sum()
    assert torch.allclose(out["loss"], manual)


def test_spectral_pretext_hides_bands_and_dates_as_configured():
    c = cfg(pretext="spectral", band_mask_ratio=0.5, date_mask_ratio=0.25)
    model = pretexts.Pretrainer(c.model_config(3), "spectral")
    x = reflectance(2, 3)
    out = model(x, c)
    hidden = out["hidden"]
    n_tokens = 48
    assert hidden.shape == (2, n_tokens, 6)
    whole = hidden.all(-1)
    assert whole.sum(1).tolist() == [int(n_tokens * 0.25)] * 2  # whole dates hidden
    assert (hidden[~whole].sum(-1) == 3).all()  # otherwise exactly half of the six bands
    # the encoder sees 0 (= band mean) exactly where bands are hidden, the true values elsewhere
    norm = (x - model.normalize.mean) / model.normalize.std
    cube = norm.reshape(2, 3, 6, 32, 32).permute(0, 2, 1, 3, 4)
    px = hidden.reshape(2, 3, 4, 4, 6).permute(0, 4, 1, 2, 3)
    px = px.repeat_interleave(8, 3).repeat_interleave(8, 4)
    assert torch.equal(out["input"][px], torch.zeros(int(px.sum())))
    assert torch.equal(out["input"][~px], cube[~px])
    # target is the unmasked cube; the loss weights are the hidden (pixel, band) slots
    assert torch.allclose(out["target"], model.mae.patchify(cube))
    slots = out["weights"].reshape(2, n_tokens, 64, 6)
    assert torch.equal(slots.bool(), hidden[:, :, None, :].expand(-1, -1, 64, -1))
    single = pretexts.spectral_masks(4, 16, 6, 1, c)  # one date: bands only, never whole tokens
    assert (single.sum(-1) == 3).all()


def test_config_is_checked():
    with pytest.raises(ValueError, match="pretext"):
        pretexts.PretrainConfig(pretext="jigsaw")
    with pytest.raises(ValueError, match="multiple of the patch size"):
        cfg(crop_size=36)
    with pytest.raises(ValueError, match="mask_ratio"):
        cfg(mask_ratio=1.0)


@pytest.mark.parametrize("pretext", ["mae", "spectral"])
def test_pretraining_loss_decreases_and_is_cached(crop, tmp_path, pretext):
    c = cfg(pretext=pretext)
    res = pretrain.pretrain(crop, c, seed=0, cache_dir=tmp_path, num_threads=1, progress=False)
    per_epoch = res.history.groupby("epoch")["loss"].mean()
    assert len(res.history) == 6 * (5 * 4 // 4)  # epochs x steps (5 chips x 4 crops / batch 4)
    assert per_epoch.iloc[-1] < 0.85 * per_epoch.iloc[0]
    curve = pd.read_csv(res.out_dir / "loss.csv")
    assert list(curve.columns) == ["step", "epoch", "loss", "lr", "elapsed_s"] and len(curve) == len(
        res.history
    )
    assert res.model_config.num_frames == 3 and res.out_dir.name == f"{pretext}-{res.key}"
    again = pretrain.pretrain(crop, c, seed=0, cache_dir=tmp_path, num_threads=1, progress=False)
    assert again.skipped and again.key == res.key
    for k, v in res.encoder_state.items():
        assert torch.equal(again.encoder_state[k], v)
    assert (
        pretrain.pretrain(crop, c, seed=1, cache_dir=tmp_path, progress=False, num_threads=1).key != res.key
    )
    with pytest.raises(ValueError, match="epoch-mode pretraining keeps no checkpoints"):
        pretrain.checkpoint_encoder(res, 0.5)


def test_pretraining_stops_on_its_loss_plateau(crop, tmp_path):
    # no epoch can beat the first by 50 %: patience 2 stops after epoch 3 instead of running all 20
    c = cfg(epochs=20, patience=2, min_rel_improvement=0.5)
    res = pretrain.pretrain(crop, c, seed=0, cache_dir=tmp_path, num_threads=1, progress=False)
    assert res.stopped_by == "plateau" and res.history["epoch"].max() == 3
    again = pretrain.pretrain(crop, c, seed=0, cache_dir=tmp_path, num_threads=1, progress=False)
    assert again.skipped and again.stopped_by == "plateau"
    capped = pretrain.pretrain(crop, cfg(epochs=2), seed=0, cache_dir=tmp_path, num_threads=1, progress=False)
    assert capped.stopped_by == "cap"


def test_cache_key_depends_on_config_data_and_seed(crop, burn):
    data = pretrain.fingerprint([crop])
    key = pretrain.run_key(cfg(), data, 0)
    assert pretrain.run_key(cfg(), data, 0) == key
    assert pretrain.run_key(cfg(mask_ratio=0.6), data, 0) != key
    assert pretrain.run_key(cfg(), data, 1) != key
    fewer = [{**data[0], "chips": data[0]["chips"][:-1]}]
    assert pretrain.run_key(cfg(), fewer, 0) != key
    assert pretrain.run_key(cfg(), pretrain.fingerprint([burn]), 0) != key


def test_interrupted_run_resumes_to_the_same_result(crop, tmp_path, monkeypatch):
    c = cfg(epochs=3)
    whole = pretrain.pretrain(crop, c, cache_dir=tmp_path / "a", num_threads=1, progress=False)
    real_save, calls = pretrain._save, []

    def save_then_stop(obj, path):
        real_save(obj, path)
        calls.append(path.name)
        if calls.count("last.pt") == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(pretrain, "_save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain(crop, c, cache_dir=tmp_path / "b", num_threads=1, progress=False)
    monkeypatch.setattr(pretrain, "_save", real_save)
    resumed = pretrain.pretrain(crop, c, cache_dir=tmp_path / "b", num_threads=1, progress=False)
    assert not resumed.skipped
    assert resumed.history["step"].tolist() == whole.history["step"].tolist()
    assert torch.allclose(
        torch.tensor(resumed.history["loss"].values), torch.tensor(whole.history["loss"].values)
    )
    for k, v in whole.encoder_state.items():
        assert torch.equal(resumed.encoder_state[k], v), k


def test_pooled_pretraining_splits_dates(crop, burn, tmp_path):
    with pytest.raises(ValueError, match="single_date=True"):
        pretrain.pretrain([crop, burn], cfg(epochs=1), cache_dir=tmp_path, progress=False)
    images = pretexts.load_images([crop, burn], single_date=True)
    assert len(images) == 3 * len(crop.chip_ids("train")) + len(burn.chip_ids("train"))
    assert {a.shape[0] for a in images} == {6}
    res = pretrain.pretrain(
        [crop, burn], cfg(epochs=1, single_date=True), cache_dir=tmp_path, num_threads=1, progress=False
    )
    assert res.model_config.num_frames == 1
    enc, mcfg = pretrain.load_pretrained_encoder(res.out_dir)
    assert mcfg == res.model_config and enc.keys() == res.encoder_state.keys()


def probe_cfg(**kw) -> pretexts.PretrainConfig:
    base = dict(
        probe_every=3, probe_patience=2, max_steps=60, warmup_steps=2, probe_chips=2, probe_pixels=500
    )
    return cfg(single_date=True, **(base | kw))


def test_probe_mode_needs_probe_tasks_and_keys_them(crop, burn, tmp_path):
    with pytest.raises(ValueError, match="probe_on"):
        pretrain.pretrain(crop, probe_cfg(), cache_dir=tmp_path, progress=False)
    data = pretrain.fingerprint([crop])
    probe_a = [{"dataset": crop.name, "content": datasets.fingerprint(crop)}]
    probe_b = [{"dataset": burn.name, "content": datasets.fingerprint(burn)}]
    assert pretrain.run_key(probe_cfg(), data, 0, probe_a) != pretrain.run_key(probe_cfg(), data, 0, probe_b)
    # the epoch mode's keys do not depend on probe tasks it never uses
    assert pretrain.run_key(cfg(), data, 0) == pretrain.run_key(cfg(), data, 0, None)


def test_probe_plateau_stops_keeps_the_best_probe_and_prunes(crop, burn, tmp_path):
    # a rise of 0.5 mIoU per probe is out of reach: patience 2 stops after the starting probe and two more
    c = probe_cfg(probe_min_delta=0.5)
    res = pretrain.pretrain(
        [crop, burn], c, probe_on=[crop, burn], cache_dir=tmp_path, num_threads=1, progress=False
    )
    assert res.stopped_by == "probe plateau"
    assert res.probe["step"].tolist() == [0, 3, 6]
    assert {"mean", f"probe {crop.name}", f"probe {burn.name}", "loss"} <= set(res.probe.columns)
    assert res.probe["mean"].between(0, 1).all()
    best = int(res.probe.loc[res.probe["mean"].idxmax(), "step"])
    kept = torch.load(res.out_dir / pretrain.CHECKPOINTS / f"step-{best:07d}.pt", weights_only=True)[
        "encoder"
    ]
    for k, v in res.encoder_state.items():
        assert torch.equal(kept[k], v), k
    assert pd.read_csv(res.out_dir / "probe.csv")["step"].tolist() == [0, 3, 6]
    # the compute curve's starting points: the kept checkpoints, the selected one at fraction 1
    assert pretrain.checkpoint_encoder(res, 1.0)[0] == best and pretrain.checkpoint_encoder(res, 0.0)[0] == 0
    step, half = pretrain.checkpoint_encoder(res, 0.5)
    assert step == pretrain.compute_checkpoints([0, 3, 6], best, (0.5,))[0]
    saved = torch.load(res.out_dir / pretrain.CHECKPOINTS / f"step-{step:07d}.pt", weights_only=True)[
        "encoder"
    ]
    assert all(torch.equal(saved[k], v) for k, v in half.items())
    again = pretrain.pretrain(
        [crop, burn], c, probe_on=[crop, burn], cache_dir=tmp_path, num_threads=1, progress=False
    )
    assert again.skipped and again.stopped_by == "probe plateau" and len(again.probe) == 3
    capped = pretrain.pretrain(
        [crop, burn],
        probe_cfg(max_steps=6, probe_patience=50),
        probe_on=[crop],
        cache_dir=tmp_path,
        progress=False,
    )
    assert capped.stopped_by == "cap" and capped.probe["step"].max() == 6


def test_compute_checkpoints_pick_the_probes_nearest_each_fraction():
    steps = [0, 100, 200, 300, 400, 500, 600, 700, 800]
    assert pretrain.compute_checkpoints(steps, 800) == [0, 200, 400, 800]
    assert pretrain.compute_checkpoints(steps, 500) == [
        0,
        100,
        200,
        500,
    ]  # 125 -> 100, 250 -> 200 (ties: earlier)
    assert pretrain.compute_checkpoints([0, 100], 0) == [0]


def test_interrupted_probe_run_resumes_bit_identically(crop, burn, tmp_path, monkeypatch):
    c = probe_cfg(probe_patience=3, max_steps=12)
    kw = dict(probe_on=[crop, burn], num_threads=1, progress=False)
    whole = pretrain.pretrain([crop, burn], c, cache_dir=tmp_path / "a", **kw)
    real_save, calls = pretrain._save, []

    def save_then_stop(obj, path):
        real_save(obj, path)
        calls.append(path.name)
        if calls.count("last.pt") == 3:  # after the starting probe and two chunks
            raise KeyboardInterrupt

    monkeypatch.setattr(pretrain, "_save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain([crop, burn], c, cache_dir=tmp_path / "b", **kw)
    monkeypatch.setattr(pretrain, "_save", real_save)
    resumed = pretrain.pretrain([crop, burn], c, cache_dir=tmp_path / "b", **kw)
    assert not resumed.skipped and resumed.stopped_by == whole.stopped_by
    pd.testing.assert_frame_equal(
        resumed.probe.drop(columns="elapsed_s"), whole.probe.drop(columns="elapsed_s"), check_exact=True
    )
    assert resumed.history["loss"].tolist() == whole.history["loss"].tolist()
    for k, v in whole.encoder_state.items():
        assert torch.equal(resumed.encoder_state[k], v), k


def test_continuation_doubles_the_steps_and_leaves_the_run_alone(crop, burn, tmp_path):
    c = probe_cfg(probe_min_delta=0.5)  # stops at step 6 (see above)
    kw = dict(probe_on=[crop, burn], cache_dir=tmp_path, num_threads=1, progress=False)
    res = pretrain.pretrain([crop, burn], c, **kw)
    enc_bytes = (res.out_dir / "encoder.pt").read_bytes()
    check = pretrain.continuation([crop, burn], c, factor=2.0, **kw)
    assert check["steps"] == 6 and check["continued_to"] == 12
    assert check["best_smoothed_continued"] >= check["best_smoothed"]
    assert check["moved"] == pytest.approx(check["best_smoothed_continued"] - check["best_smoothed"])
    assert (res.out_dir / "encoder.pt").read_bytes() == enc_bytes
    assert not list((res.out_dir / "continuation" / pretrain.CHECKPOINTS).glob("*.pt"))
    assert pretrain.continuation([crop, burn], c, factor=2.0, **kw) == check  # cached
    table = pretrain.record(res, tmp_path / "pretraining.csv", check)
    assert list(table.columns) == list(pretrain.RECORD_COLUMNS) and len(table) == 1
    assert table.loc[0, "continuation_s"] == round(check["cpu_s"], 1)
    assert table.loc[0, "stopped_by"] == "probe plateau" and table.loc[0, "continued_to"] == 12
    assert table.loc[0, "half_step"] == pretrain.checkpoint_encoder(res, 0.5)[0]
    assert table.loc[0, "quarter_step"] == pretrain.checkpoint_encoder(res, 0.25)[0]
    curve = pd.read_csv(tmp_path / "pretraining_probe.csv")
    assert set(curve["task"]) == {crop.name, burn.name, "mean"}
    assert sorted(set(curve["step"])) == [0, 3, 6, 9, 12]  # the continuation's probes follow the stop
    again = pretrain.record(res, tmp_path / "pretraining.csv", check)  # same key: replaced, not added
    assert len(again) == 1 and len(pd.read_csv(tmp_path / "pretraining_probe.csv")) == len(curve)
    # the same key pretrained on another CPU is another encoder: a record of its own, beside this one
    both = pretrain.record(res, tmp_path / "pretraining.csv", None, platform="another cpu")
    assert list(both["platform"]) == [table.loc[0, "platform"], "another cpu"]
    assert both.loc[0, "continued_to"] == 12 and pd.isna(both.loc[1, "continued_to"])  # this CPU's check kept
    curves = pd.read_csv(tmp_path / "pretraining_probe.csv")
    assert (curves["platform"] == "another cpu").sum() < len(curves) and set(curves["key"]) == {res.key}
    assert pretrain.recorded_check(tmp_path / "pretraining.csv", res.key)["continued_to"] == 12
    assert pretrain.recorded_check(tmp_path / "pretraining.csv", res.key, "another cpu") is None
    # its check, recorded after a row without one
    pretrain.record(res, tmp_path / "pretraining.csv", check, platform="another cpu")
    assert ",12," in (tmp_path / "pretraining.csv").read_text().splitlines()[2]  # a count, not "12.0"
    with pytest.raises(ValueError, match="probe-plateau"):
        pretrain.continuation([crop], cfg(), probe_on=[crop], cache_dir=tmp_path)


def test_torch_threads_sets_and_restores_the_thread_count():
    from helpers.runs.runtime import torch_threads

    before = torch.get_num_threads()
    for _ in range(2):  # a fresh context each time (a cached one cannot be entered twice)
        with torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == before
    with pytest.raises(KeyboardInterrupt), torch_threads(2):
        raise KeyboardInterrupt
    assert torch.get_num_threads() == before


def test_a_check_on_record_under_the_same_key_is_not_redone(tmp_path, monkeypatch):
    """A clone with the committed pretraining table does not spend a continuation on evidence it has."""
    import types

    from helpers.runs import fm_finetuned

    path = tmp_path / "pretraining.csv"
    from helpers.runs.runtime import platform_class

    row = dict(key="k1", pretext="mae", steps=3250, best_smoothed=0.49, continued_to=6500,
               best_smoothed_continued=0.49, moved=0.0, continuation_s=385.2, platform=platform_class())  # fmt: skip
    other_cpu = {**row, "key": "k3", "platform": "another cpu"}
    pd.DataFrame([row, {**row, "key": "k2", "moved": None}, other_cpu]).to_csv(path, index=False)
    assert pretrain.recorded_check(path, "k1")["continued_to"] == 6500
    assert pretrain.recorded_check(path, "k2") is None  # pretrained, not yet checked
    assert pretrain.recorded_check(path, "k3") is None  # checked on another CPU: another encoder
    assert pretrain.recorded_check(path, "k3", "another cpu")["continued_to"] == 6500
    assert pretrain.recorded_check(tmp_path / "none.csv", "k1") is None
    cfg = types.SimpleNamespace(probe_every=250)
    monkeypatch.setattr(fm_finetuned, "pretraining_inputs", lambda *a, **k: ([], cfg, []))
    monkeypatch.setattr(fm_finetuned.pretrain, "key_for", lambda *a, **k: "k1")

    def never(*a, **k):
        raise AssertionError("the recorded check was redone")

    monkeypatch.setattr(fm_finetuned, "_pretrain", never)
    out = fm_finetuned.check_pretraining(
        None, "prithvi_arch_small_mae", fm_settings.FMSettings(), pretraining_path=path
    )
    assert out["moved"] == 0.0 and out["cpu_s"] == 385.2
    monkeypatch.setattr(fm_finetuned.pretrain, "key_for", lambda *a, **k: "k2")
    with pytest.raises(AssertionError, match="redone"):  # no check on record for this key: it runs
        fm_finetuned.check_pretraining(
            None, "prithvi_arch_small_mae", fm_settings.FMSettings(), pretraining_path=path
        )

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from helpers import metrics, prediction_maps, results
from helpers.data import datasets, labels
from helpers.models.cnn import build_model
from helpers.models.unet import UNet
from helpers.runs import crops, deep_run, inference, run_folders, schedule, train


class FakeDataset:
    """In-memory stand-in with the ``helpers.data.datasets`` API: class patches with distinct spectra, some ignore pixels."""

    def __init__(self, n=(4, 2, 2), size=32, n_times=1, num_classes=3, seed=0):
        rng = np.random.default_rng(seed)
        self.name, self.task, self.simulated = "fake", "texture", True
        self.classes = [f"c{i}" for i in range(num_classes)]
        self.num_classes, self.ignore_index = num_classes, -1
        self.n_times, self.n_channels = n_times, 6 * n_times
        self.splits = ["train", "val", "test"]
        means = rng.uniform(0.05, 0.4, size=(num_classes, self.n_channels))
        self._ids, self._data = {}, {}
        for split, count in zip(self.splits, n, strict=True):
            self._ids[split] = [f"{split}{i}" for i in range(count)]
            for cid in self._ids[split]:
                y = np.kron(rng.integers(0, num_classes, (size // 8, size // 8)), np.ones((8, 8), np.int64))
                a = means[y].transpose(2, 0, 1) + rng.normal(0, 0.02, (self.n_channels, size, size))
                y[0, :5] = -1
                self._data[cid] = (a.astype(np.float32), y)

    def chip_ids(self, split):
        return list(self._ids[split])

    def read_arrays(self, chip_id):
        a, y = self._data[chip_id]
        return a.copy(), y.copy()


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def tiny_unet(ds, seed=0):
    torch.manual_seed(seed)
    return UNet(ds.n_channels, ds.num_classes, base=4, depth=2)


FIT = dict(
    max_steps=8,
    eval_every=2,
    warmup_steps=2,
    batch_size=2,
    lr=5e-3,
    crop_size=16,
    patience=None,
    num_threads=1,
    progress=False,
)


# ------------------------------------------------------------------------------------------- pieces
def test_masked_cross_entropy_ignores_ignored_pixels():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 5, requires_grad=True)
    target = torch.randint(0, 3, (2, 5, 5))
    target[0, :2] = -1
    loss = train.masked_cross_entropy(logits, target, -1)
    valid = target != -1
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid])
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.all(logits.grad.permute(0, 2, 3, 1)[~valid] == 0)  # no gradient from ignored pixels
    # Whatever the logits at ignored pixels, the loss is the same.
    other = logits.detach().clone()
    other[0, :, :2] = 1e4 * torch.randn(3, 2, 5)
    assert torch.allclose(train.masked_cross_entropy(other, target, -1), loss)
    # Weighted: a weighted mean over valid pixels.
    w = torch.tensor([1.0, 2.0, 5.0])
    wl = train.masked_cross_entropy(logits, target, -1, w)
    per_pixel = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid], reduction="none")
    assert torch.allclose(wl, (per_pixel * w[target[valid]]).sum() / w[target[valid]].sum())
    # A batch without valid pixels gives 0, not NaN.
    empty = train.masked_cross_entropy(logits, torch.full_like(target, -1), -1)
    assert empty.item() == 0.0


def test_lr_factor_warmup_then_cosine_to_zero():
    f = [schedule.lr_factor(s, 100, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[9:], f[10:], strict=False))
    assert f[-1] < 0.001
    assert schedule.lr_factor(5, 10, 0) == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.5)))


def test_random_crop_and_augment():
    rng = np.random.default_rng(0)
    a = np.arange(2 * 20 * 30, dtype=np.float32).reshape(2, 20, 30)
    y = (a[0] % 7).astype(np.int64)
    ac, yc = crops.random_crop(a, y, 16, rng, -1)
    assert ac.shape == (2, 16, 16) and yc.shape == (16, 16)
    assert np.array_equal(ac[0] % 7, yc)  # image and label cut at the same place
    ap, yp = crops.random_crop(a, y, 24, rng, -1)  # taller than the chip: padded
    assert ap.shape == (2, 24, 24)
    assert np.all(yp[20:] == -1) and np.all(ap[:, 20:] == 0)
    seen = set()
    for _ in range(64):
        aa, yy = crops.augment(ac, yc, rng)
        assert np.array_equal(aa[0] % 7, yy)  # the same transform for image and labels
        seen.add(aa[0].tobytes())
    assert len(seen) == 8  # all eight dihedral transforms occur
    # A crop without valid labels is redrawn.
    y2 = np.full((40, 40), -1)
    y2[30:, 30:] = 1
    hits = [
        (crops.random_crop(a[:, :1, :1].repeat(40, 1).repeat(40, 2), y2, 16, rng, -1, tries=50)[1] == 1).any()
    ]
    assert all(hits)


class PerPixel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(6, 3, 1)

    def forward(self, x):
        return self.conv(x)


def test_sliding_window_matches_whole_chip_for_a_per_pixel_model():
    torch.manual_seed(0)
    model = PerPixel()
    a = np.random.default_rng(0).random((6, 45, 70), dtype=np.float32)
    whole = inference.chip_probabilities(model, a)
    for tile, overlap in [(16, 4), (32, 0), (64, 16), (80, 8)]:
        tiled = inference.chip_probabilities(model, a, tile=tile, overlap=overlap, batch_size=3)
        assert tiled.shape == (3, 45, 70)
        np.testing.assert_allclose(tiled, whole, atol=1e-6)
    pred = inference.predict_chip(model, a, tile=16)
    assert pred.dtype == np.int64 and pred.shape == (45, 70)
    assert np.array_equal(pred, whole.argmax(0))
    with pytest.raises(ValueError, match="overlap"):
        inference.predict_chip(model, a, tile=16, overlap=16)


def test_evaluate_sums_chip_confusion_matrices():
    ds = FakeDataset()
    model = tiny_unet(ds)
    cm = inference.evaluate(model, ds, "test", tile=16)
    expected = sum(
        metrics.confusion_matrix(y, inference.predict_chip(model, a, tile=16), 3, ignore_index=-1)
        for a, y in (ds.read_arrays(c) for c in ds.chip_ids("test"))
    )
    assert np.array_equal(cm, expected)
    assert cm.sum() == sum(int((ds.read_arrays(c)[1] != -1).sum()) for c in ds.chip_ids("test"))


# ------------------------------------------------------------------------------------------- fit
def test_tiny_model_overfits_one_chip(tmp_path):
    ds = FakeDataset(n=(1, 1, 1))
    ds._ids["val"] = ds._ids["train"]  # score on the very chip it trains on
    torch.manual_seed(0)
    model = UNet(ds.n_channels, ds.num_classes, base=8, depth=2)
    before = metrics.scores(inference.evaluate(model, ds, "val"))["miou_macro"]
    res = train.fit(
        model,
        ds,
        seed=0,
        out_dir=tmp_path,
        **{**FIT, "max_steps": 40, "eval_every": 4, "lr": 1e-2, "crop_size": 32},
    )
    after = metrics.scores(inference.evaluate(model, ds, "val"))["miou_macro"]
    assert res.steps == 40 and len(res.history) == 10 and res.stopped_by == "cap"
    assert list(res.history["step"]) == list(range(4, 41, 4))
    assert after > 0.9 > before
    assert res.history["train_loss"].iloc[-1] < 0.5 * res.history["train_loss"].iloc[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 8-step run (4 validations) that other tests compare against."""
    torch.set_num_threads(1)
    ds = FakeDataset()
    out = tmp_path_factory.mktemp("ref")
    model = tiny_unet(ds)
    res = train.fit(model, ds, seed=0, out_dir=out, **FIT)
    return ds, model, res


def test_log_and_checkpoint_round_trip(reference):
    ds, model, res = reference
    log = pd.read_csv(res.out_dir / run_folders.LOG)
    assert list(log["step"]) == [2, 4, 6, 8]
    assert {"train_loss", "val_loss", "val_miou_macro", "lr", "lr_drops", "block_s", "eval_s"} <= set(
        log.columns
    )
    assert res.best_step == int(log.loc[log["val_miou_macro"].idxmax(), "step"])
    assert res.best_score == pytest.approx(log["val_miou_macro"].max())
    assert res.steps == 8 and res.stopped_by == "cap" and 0 < res.eval_s < res.train_s
    assert res.config["num_threads"] == 1  # part of the run's identity
    assert res.n_train_pixels == sum(int((ds.read_arrays(c)[1] != -1).sum()) for c in ds.chip_ids("train"))
    # The model holds the best weights; a fresh model loads them (weights_only) and predicts identically.
    ckpt = run_folders.load_checkpoint(res.out_dir / run_folders.BEST)
    assert ckpt["step"] == res.best_step
    fresh = tiny_unet(ds, seed=123)
    fresh.load_state_dict(ckpt["model"])
    a, _ = ds.read_arrays("test0")
    np.testing.assert_array_equal(
        inference.chip_probabilities(fresh, a), inference.chip_probabilities(model, a)
    )
    val = metrics.scores(inference.evaluate(fresh, ds, "val", tile=res.eval_tile, overlap=res.eval_overlap))
    assert val["miou_macro"] == res.best_score
    torch.save({"x": object()}, res.out_dir / "bad.pt")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        run_folders.load_checkpoint(res.out_dir / "bad.pt")


def test_same_seed_same_metrics_other_seed_differs(reference, tmp_path):
    ds, _, ref = reference
    again = train.fit(tiny_unet(ds), ds, seed=0, out_dir=tmp_path / "a", **FIT)
    cols = ["train_loss", "val_loss", "val_miou_macro", "lr"]
    pd.testing.assert_frame_equal(again.history[cols], ref.history[cols], check_exact=True)
    other = train.fit(tiny_unet(ds), ds, seed=1, out_dir=tmp_path / "b", **FIT)
    assert not np.array_equal(other.history["train_loss"], ref.history["train_loss"])


def test_resume_after_interruption_equals_uninterrupted(reference, tmp_path, monkeypatch):
    ds, ref_model, ref = reference
    real = train._train_block
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(kwargs["block"])
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user stops the notebook during the third block of steps
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "_train_block", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.fit(tiny_unet(ds), ds, seed=0, out_dir=tmp_path, **FIT)
    assert run_folders.load_checkpoint(tmp_path / run_folders.LAST)["step"] == 4
    assert len(pd.read_csv(tmp_path / run_folders.LOG)) == 2

    calls.clear()
    monkeypatch.setattr(train, "_train_block", lambda *a, **k: (calls.append(k["block"]), real(*a, **k))[1])
    model = tiny_unet(ds, seed=99)  # a fresh process would rebuild the model: its init must not matter
    res = train.fit(model, ds, seed=0, out_dir=tmp_path, **FIT)
    assert calls == [2, 3]  # only the missing blocks (0-based) were trained
    cols = ["step", "train_loss", "val_loss", "val_miou_macro", "lr"]
    pd.testing.assert_frame_equal(res.history[cols], ref.history[cols], check_exact=True)
    for k, v in ref_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_finished_run_skipped_unless_forced_and_settings_checked(reference, monkeypatch):
    ds, _, ref = reference
    real = train._train_block
    calls = []
    monkeypatch.setattr(train, "_train_block", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    model = tiny_unet(ds, seed=5)
    res = train.fit(model, ds, seed=0, out_dir=ref.out_dir, **FIT)
    assert res.skipped and not calls and res.best_score == ref.best_score
    with pytest.raises(ValueError, match="other settings \\(lr\\)"):
        train.fit(model, ds, seed=0, out_dir=ref.out_dir, **{**FIT, "lr": 0.1})
    with pytest.raises(ValueError, match="other settings \\(num_threads\\)"):
        train.fit(model, ds, seed=0, out_dir=ref.out_dir, **{**FIT, "num_threads": 2})
    with pytest.raises(ValueError, match="class_weights"):
        train.fit(model, ds, seed=0, out_dir=ref.out_dir, **FIT, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="other settings \\(max_steps\\)"):
        train.fit(model, ds, seed=0, out_dir=ref.out_dir, **{**FIT, "max_steps": 4})  # a lower cap: retrain
    with pytest.raises(TypeError, match="seed must be an integer"):
        train.fit(model, ds, seed="0", out_dir=ref.out_dir, **FIT)  # e.g. a papermill string parameter
    with pytest.raises(ValueError, match="batch_size >= 2"):
        train.fit(model, ds, seed=0, out_dir=ref.out_dir, **{**FIT, "batch_size": 1})
    forced = train.fit(tiny_unet(ds), ds, seed=0, out_dir=ref.out_dir, **{**FIT, "max_steps": 2}, force=True)
    assert not forced.skipped and len(calls) == 1 and forced.steps == 2


def test_plateau_stops_after_patience_and_lr_drops(tmp_path):
    ds = FakeDataset()
    torch.manual_seed(0)
    # With lr 0 a model without BatchNorm never changes: the first validation stays best. Patience 2 answers the
    # first plateau with a drop of the (zero) rate, restarts the count, and the second plateau stops the run.
    kw = {**FIT, "lr": 0.0, "max_steps": 100, "patience": 2, "lr_drops": 1}
    res = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path, **kw)
    assert res.stopped_by == "plateau" and res.best_step == 2
    assert list(res.history["step"]) == [2, 4, 6, 8, 10]  # 2 validations w/o gain, drop, 2 more: stop
    assert list(res.history["lr_drops"]) == [0, 0, 0, 1, 1]  # drops made before each block was trained
    assert len(pd.read_csv(tmp_path / run_folders.LOG)) == 5
    last = run_folders.load_checkpoint(tmp_path / run_folders.LAST)
    assert last["finished"] and last["stopped_by"] == "plateau" and last["lr_scale"] == pytest.approx(0.2)
    # min_steps holds the plateau off
    late = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "late", **{**kw, "min_steps": 14})
    assert (
        late.stopped_by == "plateau" and late.steps == 18
    )  # the first plateau only counts at 14: drop, 2 more


def test_plateau_level_is_the_mean_of_the_last_validations():
    assert schedule.plateau_level([0.1, 0.5, 0.2]) == pytest.approx(0.2)
    assert schedule.plateau_level([0.1, 0.5, 0.2, 0.5], smooth=3) == pytest.approx(0.4)
    assert schedule.plateau_level([0.3], smooth=3) == pytest.approx(
        0.3
    )  # fewer than the window: what there is
    assert np.isnan(schedule.plateau_level([0.2, float("nan")], smooth=2))


def test_smoothed_plateau_outlasts_one_lucky_validation(tmp_path, monkeypatch):
    # scripted validation scores: a lucky 0.40 at the second validation, then a model still improving
    script = [0.30, 0.40, 0.34, 0.36, 0.38, 0.40, 0.42, 0.43, 0.44] + [0.44] * 20
    real = train.metrics.scores

    def scores(cm):
        calls.append(1)
        return {**real(cm), "miou_macro": script[len(calls) - 1]}

    ds = FakeDataset()
    kw = {**FIT, "lr": 0.0, "max_steps": 100, "patience": 2, "lr_drops": 0}
    calls: list = []
    monkeypatch.setattr(train.metrics, "scores", scores)
    single = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "single", **kw)
    # single-validation rule: the lucky 0.40 sets the bar and the run stops two validations later
    assert single.stopped_by == "plateau" and single.steps == 8 and single.best_step == 4
    assert "smooth" not in single.config  # the default leaves the identity of existing runs unchanged
    calls.clear()
    smooth = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "smooth", **{**kw, "smooth": 3})
    # the mean of three rises until the window is all 0.44 (step 22: 0.4367 -> 0.44); two validations later it stops
    assert (
        smooth.stopped_by == "plateau" and smooth.best_step == 18 and smooth.best_score == pytest.approx(0.44)
    )
    assert smooth.steps == 26 and smooth.config["smooth"] == 3
    with pytest.raises(ValueError, match="smooth must be a positive"):
        train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "bad", **{**kw, "smooth": 0})


def _scripted(monkeypatch, script):
    """Make validation return ``script``'s scores in order (the model's own scores are ignored)."""
    real = train.metrics.scores
    calls: list = []

    def scores(cm):
        calls.append(1)
        return {**real(cm), "miou_macro": script[min(len(calls), len(script)) - 1]}

    monkeypatch.setattr(train.metrics, "scores", scores)
    return calls


@pytest.mark.parametrize(("third", "stopped_by"), [(0.355, "plateau"), (0.40, "cycles")])
def test_cycles_restart_the_rate_until_a_cycle_gains_less_than_cycle_gain(
    tmp_path, monkeypatch, third, stopped_by
):
    # cycle 0 plateaus at 0.30 (always restarts), cycle 1 gains 5 points (restarts again), cycle 2 gains
    # 0.5 points (< 1: a plateau, the run's convergence evidence) or 5 (still gaining, but no cycle is left)
    ds = FakeDataset()
    kw = {**FIT, "lr": 1e-3, "warmup_steps": 0, "max_steps": 100, "patience": 1, "lr_drops": 1}
    kw.update(cycles=3, cycle_gain=0.01)
    _scripted(monkeypatch, [0.30, 0.30, 0.30, 0.35, 0.35, 0.35, third, third, third])
    res = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path, **kw)
    hist = res.history
    # per cycle: a plateau (1 validation without a rise), a drop, another plateau: 3 validations
    assert list(hist["cycle"]) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert list(hist["lr"]) == pytest.approx([1e-3, 1e-3, 2e-4] * 3)  # the rate restarts at its base value
    assert res.stopped_by == stopped_by and res.steps == 18 and res.config["cycles"] == 3
    last = run_folders.load_checkpoint(tmp_path / run_folders.LAST)
    assert last["cycle_start"] == {"step": 12, "best_step": 8, "best_score": pytest.approx(0.35)}
    assert (
        run_folders.load_checkpoint(tmp_path / run_folders.CYCLE_BEST)["step"] == 8
    )  # the weights the last cycle had to beat
    assert res.best_step == 14 and res.best_score == pytest.approx(third)


def test_raised_caps_continue_a_finished_run_to_what_a_fresh_run_gives(tmp_path, monkeypatch):
    ds = FakeDataset()
    cols = ["step", "train_loss", "val_loss", "val_miou_macro", "lr", "cycle"]
    # the step cap: 8 steps, then 16 in the same folder, is the 16-step run
    short = train.fit(tiny_unet(ds), ds, seed=0, out_dir=tmp_path / "cap", **FIT)
    assert short.stopped_by == "cap" and short.steps == 8
    calls = []
    real = train._train_block
    monkeypatch.setattr(train, "_train_block", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    longer = train.fit(
        tiny_unet(ds, seed=3), ds, seed=0, out_dir=tmp_path / "cap", **{**FIT, "max_steps": 16}
    )
    assert len(calls) == 4 and longer.config["max_steps"] == 16  # only the 4 blocks after step 8 were trained
    fresh = train.fit(tiny_unet(ds), ds, seed=0, out_dir=tmp_path / "fresh", **{**FIT, "max_steps": 16})
    pd.testing.assert_frame_equal(longer.history[cols], fresh.history[cols], check_exact=True)
    assert longer.best_score == fresh.best_score and longer.best_step == fresh.best_step
    # the cycles cap: a run stopped with its cycles used up (still gaining) starts the next one when allowed
    script = [0.30, 0.30, 0.30, 0.35, 0.35, 0.35, 0.355, 0.355, 0.355]
    kw = {**FIT, "lr": 1e-3, "warmup_steps": 0, "max_steps": 100, "patience": 1, "lr_drops": 1}
    calls.clear()
    _scripted(monkeypatch, script)
    two = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "cycles", **kw, cycles=2, cycle_gain=0.01)
    assert two.stopped_by == "cycles" and two.steps == 12
    _scripted(monkeypatch, script[6:])
    three = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "cycles", **kw, cycles=3, cycle_gain=0.01)
    _scripted(monkeypatch, script)
    ref = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "three", **kw, cycles=3, cycle_gain=0.01)
    assert three.stopped_by == ref.stopped_by == "plateau" and three.steps == ref.steps == 18
    assert list(three.history["cycle"]) == list(ref.history["cycle"]) == [0] * 3 + [1] * 3 + [2] * 3
    assert three.history["lr"].tolist() == pytest.approx(ref.history["lr"].tolist())
    last = run_folders.load_checkpoint(tmp_path / "cycles" / run_folders.LAST)
    assert last["cycle_start"]["step"] == 12 and (tmp_path / "cycles" / run_folders.CYCLE_BEST).exists()
    # a run finished on its plateau is finished under any higher cap
    calls.clear()
    again = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "cycles", **kw, cycles=5, cycle_gain=0.01)
    assert again.stopped_by == "plateau" and again.steps == 18 and not calls


def test_cycle_patience_waits_out_a_flat_cycle_and_continues_a_run_stopped_before(tmp_path, monkeypatch):
    # cycle 1 is flat (+0.2 points), cycle 2 leaves the plateau (+10), cycles 3 and 4 are flat: one flat cycle ends
    # the run at patience 1 (the late rise never seen), two flat cycles in a row end it at patience 2
    ds = FakeDataset()
    kw = {**FIT, "lr": 1e-3, "warmup_steps": 0, "max_steps": 100, "patience": 1, "lr_drops": 1}
    kw.update(cycles=10, cycle_gain=0.01)
    script = [v for v in (0.30, 0.302, 0.40, 0.401, 0.402) for _ in range(3)]
    _scripted(monkeypatch, script)
    one = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "run", **kw)
    assert one.stopped_by == "plateau" and one.steps == 12 and "cycle_patience" not in one.config
    _scripted(monkeypatch, script)
    two = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "fresh", **kw, cycle_patience=2)
    assert two.stopped_by == "plateau" and two.steps == 30 and two.config["cycle_patience"] == 2
    assert list(two.history["cycle"]) == [c for c in range(5) for _ in range(3)]
    assert two.best_score == pytest.approx(0.402) and two.best_step == 26
    # the patience-1 run, given patience 2 in its folder, goes on from where it stopped to the fresh run's end
    _scripted(monkeypatch, script[6:])
    went_on = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "run", **kw, cycle_patience=2)
    cols = ["step", "val_miou_macro", "lr", "cycle"]
    pd.testing.assert_frame_equal(went_on.history[cols], two.history[cols], check_exact=True)
    assert went_on.stopped_by == "plateau" and went_on.config == two.config
    assert (
        run_folders.load_checkpoint(tmp_path / "run" / run_folders.CYCLE_BEST)["step"] == 20
    )  # what cycle 4 had to beat
    # with cycles used up inside a flat streak, the plateau is not shown
    _scripted(monkeypatch, script)
    short = train.fit(
        PerPixel(), ds, seed=0, out_dir=tmp_path / "short", **{**kw, "cycles": 2}, cycle_patience=2
    )
    assert short.stopped_by == "cycles" and short.steps == 12
    with pytest.raises(ValueError, match="cycle_patience must be a positive"):
        train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "bad", **kw, cycle_patience=0)


def test_doubling_stops_only_where_the_runs_second_half_gained_less_than_cycle_gain(tmp_path, monkeypatch):
    # a slow climb over cycles 0-3, two flat cycles (4 and 5), a late rise in cycle 6, then flat: two flat cycles
    # in a row end the run at step 36 on the low plateau; with doubling it goes on while its second half still
    # gained, sees the rise at step 38 and stops at step 78, the first cycle end past twice that step
    ds = FakeDataset()
    kw = {**FIT, "lr": 1e-3, "warmup_steps": 0, "max_steps": 200, "patience": 1, "lr_drops": 1}
    kw.update(cycles=50, cycle_gain=0.01, cycle_patience=2)
    script = [v for v in (0.10, 0.12, 0.14, 0.30, 0.30, 0.30, 0.50) for _ in range(3)] + [0.50] * 60
    _scripted(monkeypatch, script)
    two = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "run", **kw)
    assert two.stopped_by == "plateau" and two.steps == 36 and two.best_score == pytest.approx(0.30)
    assert "doubling" not in two.config
    _scripted(monkeypatch, script)
    fresh = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "fresh", **kw, doubling=True)
    assert fresh.stopped_by == "plateau" and fresh.steps == 78 and fresh.config["doubling"] is True
    assert fresh.best_score == pytest.approx(0.50) and fresh.best_step == 38
    assert (
        schedule.second_half_gain(
            {"history": fresh.history.to_dict("records"), "best_score": fresh.best_score}
        )
        < 0.01
    )
    # the two-flat-cycle run, given doubling in its folder, goes on from its stop to the fresh run's end
    _scripted(monkeypatch, script[18:])
    went_on = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "run", **kw, doubling=True)
    cols = ["step", "val_miou_macro", "lr", "cycle"]
    pd.testing.assert_frame_equal(went_on.history[cols], fresh.history[cols], check_exact=True)
    assert went_on.stopped_by == "plateau" and went_on.config == fresh.config
    # ... and a doubling run is never taken for a run of the rule without it (dropping doubling is no raised cap)
    assert schedule.raised_caps(two.config, fresh.config)
    assert not schedule.raised_caps(fresh.config, two.config)
    with pytest.raises(ValueError, match="doubling is a condition"):
        train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "bad", **{**kw, "cycles": 1}, doubling=True)


def test_second_half_gain_reads_the_best_score_on_each_side_of_half_the_steps():
    def hist(pairs):  # the loop's state: every validation, and the best finite score of them
        scores = [v for _, v in pairs if math.isfinite(v)]
        return {
            "history": [{"step": s, "val_miou_macro": v} for s, v in pairs],
            "best_score": max(scores, default=-math.inf),
        }

    assert schedule.second_half_gain(hist([])) == math.inf
    assert schedule.second_half_gain(hist([(50, 0.2)])) == math.inf  # no validation in its first half
    assert schedule.second_half_gain(hist([(50, 0.2), (100, 0.5)])) == pytest.approx(0.3)
    assert schedule.second_half_gain(hist([(50, 0.6), (100, float("nan")), (150, 0.5)])) == 0.0


def test_run_keeps_checkpoints_of_its_trajectory_when_only_caps_change(tmp_path):
    ds = FakeDataset()
    kw = dict(results_path=tmp_path / "r.csv", runs_dir=tmp_path / "runs", seed=0)
    first = deep_run.run(ds, "unet", lambda: tiny_unet(ds), **kw, **FIT)
    assert (first.out_dir / run_folders.TRAJECTORY).is_file()
    second = deep_run.run(ds, "unet", lambda: tiny_unet(ds), **kw, **{**FIT, "max_steps": 12})
    assert second.run_key != first.run_key and second.train.steps == 12
    assert list(second.train.history["step"][:4]) == [2, 4, 6, 8]  # continued, not retrained
    assert second.train.earlier_train_s == pytest.approx(first.train.train_s)
    rows = results.read(tmp_path / "r.csv").query(
        "split == 'test' and metric == 'miou_macro' and `class` == ''"
    )
    assert (
        rows["runtime_s"].item() >= second.train.train_s
    )  # the run's time includes the first call's training
    patient = {**FIT, "max_steps": 12, "cycles": 3, "cycle_patience": 2}  # cycle_patience only caps a run too
    assert deep_run.trajectory_key(ds, "unet", 0, **patient) == deep_run.trajectory_key(ds, "unet", 0, **FIT)
    assert deep_run.key_for(ds, "unet", 0, **patient) != deep_run.key_for(
        ds, "unet", 0, **{**patient, "cycle_patience": 1}
    )
    other = deep_run.run(ds, "unet", lambda: tiny_unet(ds), **kw, **{**FIT, "max_steps": 12, "lr": 1e-3})
    assert other.train.steps == 12 and other.run_key != second.run_key  # another trajectory: trained afresh


def test_one_cycle_keeps_the_identity_and_writes_no_cycle_best(tmp_path):
    ds = FakeDataset()
    kw = {**FIT, "lr": 0.0, "max_steps": 100, "patience": 1, "lr_drops": 0}
    res = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path, **kw)
    assert "cycles" not in res.config and not (tmp_path / run_folders.CYCLE_BEST).exists()
    assert set(res.history["cycle"]) == {0}


def test_plateau_for_applies_only_to_its_dataset_and_to_plateau_runs():
    base = {"patience": 2, "lr": 1e-3}
    assert schedule.plateau_for("sim-crop", base) == {**base, **schedule.PLATEAU_FOR["sim-crop"]}
    assert schedule.plateau_for("sim-burn", base) == base
    assert schedule.plateau_for("sim-crop", {**base, "patience": None}) == {**base, "patience": None}


def test_runs_on_point_labels_also_count_a_falling_validation_loss_and_others_keep_their_rule():
    base = {"patience": 2, "lr": 1e-3}
    points = schedule.plateau_for("sim-burn", base, "points-10")
    assert points == {**base, **schedule.SPARSE_LABELS} and points["loss_delta"] > 0
    assert schedule.plateau_for("sim-burn", base, "all") == schedule.plateau_for("sim-burn", base) == base
    assert schedule.plateau_for("sim-burn", base, "chips-0.25") == base
    assert schedule.plateau_for("sim-burn", {**base, "patience": None}, "points-10") == {
        **base,
        "patience": None,
    }

    class View:  # a dataset seen through a label budget (helpers.data.labels.LabelView)
        name, label_budget = "sim-crop", "points-10"

    seen = schedule.settings_for(View(), base)
    assert seen["loss_delta"] > 0 and seen["smooth"] == schedule.PLATEAU_FOR["sim-crop"]["smooth"]
    assert "loss_delta" not in schedule.settings_for(View(), base, label_budget="all")


def _ruled(losses, **rule):
    """The plateau rule's state after validations with a flat score and these validation losses."""
    rule = {**schedule.PLATEAU, "smooth": 1, "min_steps": 0, "cycle_patience": 1, **rule}
    state = run_folders.new_state({}, [], -1)
    for i, loss in enumerate(losses):
        state["history"].append({"val_miou_macro": 0.03, "val_loss": loss})
        state["best_score"] = 0.03
        schedule.decide_stop(state, 50 * (i + 1), rule)
    return state


def test_a_falling_validation_loss_holds_the_rate_and_a_rising_or_flat_one_does_not():
    # the score never moves (a model still at its class prior); the loss falls 1 % a validation
    falling = [2.6 * 0.99**i for i in range(12)]
    held = _ruled(falling, loss_delta=0.005)
    assert held["drops"] == 0 and held["lr_scale"] == 1.0 and not held["finished"] and held["cycle"] == 0
    assert held["plateau_step"] == 600 and held["plateau_loss"] == pytest.approx(falling[-1])
    # a fall of 0.3 % a validation clears 0.5 % within the patience window of two validations: held too
    assert _ruled([2.6 * 0.997**i for i in range(12)], loss_delta=0.005)["drops"] == 0
    # without the signal, or with a loss that rises (memorised labels) or only jitters, the rule is the score's
    score_only = _ruled(falling)
    assert (score_only["cycle"], score_only["drops"]) == (1, 2)  # two drops, a new cycle, two drops again
    for losses in ([2.6 * 1.01**i for i in range(12)], [2.6 + 0.004 * (-1) ** i for i in range(12)]):
        st = _ruled(losses, loss_delta=0.005)
        assert (st["cycle"], st["drops"], st["plateau_step"]) == (
            score_only["cycle"],
            score_only["drops"],
            score_only["plateau_step"],
        )
    # the signal is part of the run's stopping rule (its identity) only where it is set
    assert "loss_delta" not in train.FitSettings(max_steps=10).stopping()
    assert train.FitSettings(max_steps=10, loss_delta=0.005).stopping()["loss_delta"] == 0.005
    with pytest.raises(ValueError, match="loss_delta must be a fraction"):
        train.FitSettings(max_steps=10, loss_delta=1.5).check(FakeDataset())


def test_lr_is_warmed_up_then_constant_then_dropped(tmp_path):
    ds = FakeDataset()
    assert [schedule.warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert schedule.warmup_factor(0, 0) == 1.0
    seen = []
    real = train._train_block
    monkey = pytest.MonkeyPatch()
    monkey.setattr(train, "_train_block", lambda *a, **k: (seen.append(k["base_lr"]), real(*a, **k))[1])
    try:
        kw = {**FIT, "lr": 0.0, "max_steps": 100, "patience": 1, "lr_drops": 2}
        train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path, **{**kw, "lr": 1e-3})
    finally:
        monkey.undo()
    assert len(seen) >= 3 and seen[0] == pytest.approx(1e-3)
    assert any(v == pytest.approx(2e-4) for v in seen) or any(v == pytest.approx(4e-5) for v in seen)


def test_continuation_starts_from_the_finished_run_and_equals_a_longer_run(tmp_path):
    ds = FakeDataset()
    ref = train.fit(tiny_unet(ds), ds, seed=0, out_dir=tmp_path / "src", **FIT)
    model = tiny_unet(ds, seed=7)
    cont = train.continue_run(model, ds, src=ref.out_dir, out_dir=tmp_path / "x2", **FIT)
    assert cont.steps == 16 and cont.config["max_steps"] == 16 and cont.config["patience"] is None
    cols = ["step", "train_loss", "val_loss", "val_miou_macro", "lr"]
    # the first four validations are the finished run's own: it continued from its checkpoint
    pd.testing.assert_frame_equal(cont.history[cols].iloc[:4], ref.history[cols], check_exact=True)
    assert cont.best_score >= ref.best_score
    # and it is the run that a 16-step cap would have been from the start
    longer = train.fit(tiny_unet(ds), ds, seed=0, out_dir=tmp_path / "long", **{**FIT, "max_steps": 16})
    pd.testing.assert_frame_equal(cont.history[cols], longer.history[cols], check_exact=True)
    assert (
        run_folders.load_checkpoint(ref.out_dir / run_folders.LAST)["step"] == 8
    )  # the source is left untouched
    with pytest.raises(ValueError, match="cannot continue a run with other settings \\(lr\\)"):
        train.continue_run(tiny_unet(ds), ds, src=ref.out_dir, out_dir=tmp_path / "bad", **{**FIT, "lr": 1.0})


def test_restarted_continuation_can_fail_a_run_the_decayed_one_passes(tmp_path):
    # a run stopped early by a strict rule (no validation counts as a rise): it ends at 1/25 of its rate
    ds = FakeDataset()
    kw = {**FIT, "lr": 0.025, "max_steps": 200, "patience": 1, "lr_drops": 2, "min_delta": 0.5}
    torch.manual_seed(
        0
    )  # the initial weights (fit seeds the crops and the run, not the model built before it)
    src = train.fit(PerPixel(), ds, seed=0, out_dir=tmp_path / "src", **kw)
    assert src.stopped_by == "plateau" and src.history["lr"].iloc[-1] == pytest.approx(0.025 / 25)
    gains = {}
    for restart in (False, True):
        cont = train.continue_run(
            PerPixel(),
            ds,
            src=src.out_dir,
            out_dir=tmp_path / f"x4-{restart}",
            factor=4,
            restart_lr=restart,
            **kw,
        )
        after = cont.history.loc[cont.history["step"] > src.steps, "lr"]
        gains[restart] = 100 * (cont.best_score - src.best_score)
        if restart:  # a second cycle of the schedule: the base rate again, then its drops
            assert after.iloc[0] == pytest.approx(0.025) and after.min() == pytest.approx(0.025 / 25)
            assert cont.config["restart_lr"] is True
        else:  # the old check: on at the decayed rate
            assert np.allclose(after, 0.025 / 25) and "restart_lr" not in cont.config
    # the restart finds the run was far from converged; at the decayed rate it moves much less
    assert gains[True] > 2 * gains[False] and gains[True] > 10.0


def test_class_weights_and_a_chip_budget(tmp_path):
    ds = FakeDataset(n=(5, 1, 1))
    view = labels.label_view(ds, "chips-0.4", 0)  # 2 of the 5 training chips
    res = train.fit(
        tiny_unet(ds),
        view,
        seed=0,
        out_dir=tmp_path,
        **{**FIT, "max_steps": 2},
        class_weights=[1.0, 2.0, 3.0],
    )
    assert res.n_train_chips == 2 and res.config["class_weights"] == [1.0, 2.0, 3.0]
    assert res.config["label_budget"] == "chips-0.4" and "label_crops" not in res.config
    assert np.isfinite(res.history["train_loss"]).all()


def test_point_labels_train_on_their_pixels_with_anchored_crops(tmp_path):
    ds = FakeDataset(n=(4, 1, 1))
    view = labels.label_view(ds, "points-3", 0)
    res = train.fit(tiny_unet(ds), view, seed=0, out_dir=tmp_path, **{**FIT, "max_steps": 4})
    assert res.config["label_budget"] == "points-3" and res.config["label_crops"] is True
    assert res.n_train_pixels == 3 * ds.num_classes
    assert (res.history["train_loss"] > 0).all()  # every batch held labelled pixels
    full = train.fit(tiny_unet(ds), ds, seed=0, out_dir=tmp_path / "full", **{**FIT, "max_steps": 4})
    assert "label_budget" not in full.config and "label_crops" not in full.config  # full-label keys unchanged


def test_bf16_and_channels_last_train_and_are_recorded(tmp_path):
    ds = FakeDataset(n=(2, 1, 1))
    res = train.fit(
        tiny_unet(ds), ds, seed=0, out_dir=tmp_path, **{**FIT, "max_steps": 4}, bf16=True, channels_last=True
    )
    assert res.config["bf16"] and res.config["channels_last"]
    assert np.isfinite(res.history["train_loss"]).all()


def test_frozen_parameters_stay_frozen(tmp_path):
    # Foundation-model rows freeze (part of) an encoder: the loop must train only what requires grad.
    ds = FakeDataset(n=(2, 1, 1))
    model = tiny_unet(ds)
    for p in model.down.parameters():
        p.requires_grad_(False)
    frozen = {
        k: v.clone()
        for k, v in model.down.state_dict().items()
        if "running" not in k and "num_batches" not in k
    }
    res = train.fit(model, ds, seed=0, out_dir=tmp_path, **{**FIT, "max_steps": 4})
    assert res.config["n_trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    for k, v in frozen.items():
        assert torch.equal(model.down.state_dict()[k], v), k


# ------------------------------------------------------------------------------------------- run
def test_run_writes_rows_and_skips_finished_runs(tmp_path):
    ds = FakeDataset()
    path = tmp_path / "results.csv"
    kw = dict(seed=0, results_path=path, runs_dir=tmp_path / "runs", **{**FIT, "max_steps": 4})
    out = deep_run.run(ds, "unet", lambda: UNet(6, 3, base=4, depth=2), **kw)
    assert not out.skipped and out.out_dir == run_folders.run_dir(tmp_path / "runs", "fake", "unet", 0)
    table = results.read(path)
    assert set(table["split"]) == {"val", "test"}
    agg = table[(table["class"] == "") & (table["split"] == "test")].set_index("metric")["value"]
    assert set(agg.index) == set(metrics.AGGREGATES)
    row = table.iloc[0]
    assert row["family"] == "cnn" and row["pretraining"] == "none" and row["weights"] == "random-init"
    assert row["steps"] == 4 and row["best_step"] in (2, 4) and row["stopped_by"] == "cap"
    assert row["n_features"] == 6
    assert (
        row["n_params"]
        == row["n_trainable_params"]
        == sum(p.numel() for p in UNet(6, 3, base=4, depth=2).parameters())
    )
    assert row["peak_mem_mb"] > 0 and row["fit_s"] > 0 and row["runtime_s"] >= row["fit_s"]
    assert len(table) == 2 * (len(metrics.AGGREGATES) + len(metrics.PER_CLASS) * ds.num_classes)
    # The recorded test score is the model's real test score with the selected weights.
    cm = inference.evaluate(_load(out, ds), ds, "test", tile=16)
    assert agg["miou_macro"] == pytest.approx(metrics.scores(cm)["miou_macro"])
    # the val rows come from the selected epoch's stored matrix: the same as predicting val with those weights
    np.testing.assert_array_equal(
        out.train.best_val_cm, inference.evaluate(_load(out, ds), ds, "val", tile=16)
    )
    val = table[(table["class"] == "") & (table["split"] == "val")].set_index("metric")["value"]
    assert val["miou_macro"] == pytest.approx(out.train.best_score)
    again = deep_run.run(ds, "unet", lambda: pytest.fail("a finished run must not build a model"), **kw)
    assert again.skipped and not again.rows
    fm = deep_run.run(
        ds,
        "unet-fm",
        lambda: UNet(6, 3, base=4, depth=2),
        family="fm",
        pretraining="published",
        weights="x.pt",
        **kw,
    )
    assert fm.rows[0]["family"] == "fm" and fm.rows[0]["weights"] == "x.pt"


def test_run_key_skips_unchanged_reruns_changed_and_keeps_finished_rows(tmp_path):
    ds = FakeDataset()
    path = tmp_path / "results.csv"
    kw = dict(seed=0, results_path=path, runs_dir=tmp_path / "runs", **{**FIT, "max_steps": 4})
    build = lambda: UNet(6, 3, base=4, depth=2)  # noqa: E731
    first = deep_run.run(ds, "unet", build, **kw)
    key = deep_run.key_for(ds, "unet", 0, **{**FIT, "max_steps": 4})
    table = results.read(path)
    assert set(table["run_key"]) == {key} and len(key) == 16 and first.rows[0]["run_key"] == key
    assert (first.out_dir / run_folders.KEY).read_text().strip() == key
    # unchanged: skipped; the same settings in another folder or with other progress bars: the same key
    assert deep_run.run(ds, "unet", lambda: pytest.fail("must not build"), **{**kw, "progress": True}).skipped
    # a changed setting reruns (the stale checkpoints make way) and its rows replace the old ones once finished
    changed = {**kw, "lr": kw["lr"] / 2}
    calls = []

    def failing():
        calls.append(1)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        deep_run.run(ds, "unet", failing, **changed)
    assert calls and results.read(path).equals(table)  # an interrupted rerun loses no finished row
    second = deep_run.run(ds, "unet", build, **changed)
    assert not second.skipped
    new = results.read(path)
    assert len(new) == len(table) and new["run_key"].nunique() == 1 and key not in set(new["run_key"])
    assert deep_run.run(ds, "unet", lambda: pytest.fail("must not build"), **changed).skipped
    # other threads per run, other data: other runs
    assert deep_run.key_for(ds, "unet", 0, **{**FIT, "num_threads": 2}) != deep_run.key_for(
        ds, "unet", 0, **FIT
    )
    assert deep_run.key_for(FakeDataset(seed=1), "unet", 0, **FIT) != deep_run.key_for(ds, "unet", 0, **FIT)
    assert deep_run.key_for(ds, "unet", 1, **FIT) != deep_run.key_for(ds, "unet", 0, **FIT)
    with pytest.raises(TypeError, match="not a plain value"):
        results.run_key(ds, "unet", 0, {"weights": tmp_path / "w.pt"})
    # a misspelt setting is refused when the key is made, not after a run has started
    with pytest.raises(TypeError, match="not a training setting.*'learning_rate'"):
        deep_run.key_for(ds, "unet", 0, **{**FIT, "learning_rate": 1e-3})


def test_fit_settings_hold_what_fit_stored_before_the_split():
    """The trajectory, stopping rule and rule of a FitSettings are the dicts fit stored with every run (run keys and
    checkpoints of the committed rows depend on them): defaults left out of the stopping rule, written out in the
    rule."""
    ds = FakeDataset()
    model = torch.nn.Conv2d(ds.n_channels, ds.num_classes, 1)
    one = train.FitSettings(max_steps=10)
    assert one.stopping() == {
        "max_steps": 10, "patience": 6, "min_delta": 0.002, "min_steps": 0, "lr_drops": 2, "drop_factor": 0.2
    }  # fmt: skip
    assert one.rule() == {
        **one.stopping(), "smooth": 1, "loss_delta": 0.0, "eval_every": 50, "cycles": 1, "cycle_gain": 0.01,
        "cycle_patience": 1,
    }  # fmt: skip
    cycles = train.FitSettings(max_steps=10, cycles=20, cycle_patience=2, smooth=3, restart_lr=True)
    assert cycles.stopping() == {
        **one.stopping(), "smooth": 3, "cycles": 20, "cycle_gain": 0.01, "cycle_patience": 2, "restart_lr": True
    }  # fmt: skip
    traj = train.FitSettings(max_steps=10, crop_size=32, num_threads=1).trajectory(ds, model, 3)
    assert traj["eval_tile"] == 32 and traj["eval_overlap"] == 8 and traj["num_threads"] == 1
    assert (
        traj["seed"] == 3
        and traj["n_train_chips"] == len(ds.chip_ids("train"))
        and "label_budget" not in traj
    )
    assert train.FitSettings(max_steps=1, eval_tile=0).window == (None, None)
    doubled = train.FitSettings(max_steps=10, cycles=20, doubling=True)
    assert doubled.stopping()["doubling"] is True and doubled.rule()["doubling"] is True
    with pytest.raises(ValueError, match="cycle_patience"):
        train.FitSettings(max_steps=10, cycle_patience=0).check(ds)


def test_run_saves_maps_of_the_first_test_chips_as_scored(tmp_path):
    ds = FakeDataset(n=(4, 2, 4))
    kw = dict(seed=0, results_path=tmp_path / "r.csv", runs_dir=tmp_path / "runs", **{**FIT, "max_steps": 4})
    out = deep_run.run(ds, "unet", lambda: UNet(6, 3, base=4, depth=2), maps_dir=tmp_path / "maps", **kw)
    seed, maps = prediction_maps.load_run(tmp_path / "maps", "fake", "unet")
    assert seed == 0 and list(maps) == ds.chip_ids("test")[:3]
    model = _load(out, ds)
    for chip, pred in maps.items():
        a, _ = ds.read_arrays(chip)
        np.testing.assert_array_equal(pred, inference.predict_chip(model, a, tile=16))
    cm, kept = inference.evaluate_keeping(model, ds, "test", ["test3"], tile=16)
    np.testing.assert_array_equal(cm, inference.evaluate(model, ds, "test", tile=16))
    assert list(kept) == ["test3"]
    deep_run.run(ds, "fcn", lambda: UNet(6, 3, base=4, depth=2), **kw)
    assert not (tmp_path / "maps" / "fake" / "fcn").exists()  # no maps_dir: nothing saved


def test_eval_tile_zero_validates_and_tests_whole_chips(tmp_path):
    ds = FakeDataset()
    path = tmp_path / "r.csv"
    out = deep_run.run(
        ds, "unet", lambda: tiny_unet(ds), seed=0, results_path=path, runs_dir=tmp_path / "runs",
        **{**FIT, "max_steps": 4, "eval_tile": 0},
    )  # fmt: skip
    assert out.train.eval_tile is None and out.train.eval_overlap is None
    assert out.train.config["eval_tile"] == 0
    model = _load(out, ds)
    whole = metrics.scores(inference.evaluate(model, ds, "test", tile=None))["miou_macro"]
    tiled = metrics.scores(inference.evaluate(model, ds, "test", tile=16))["miou_macro"]
    table = results.read(path)
    recorded = table.query("split == 'test' and metric == 'miou_macro' and `class` == ''")["value"].item()
    assert recorded == pytest.approx(whole) and recorded != pytest.approx(tiled, abs=1e-9)


def _load(out, ds):
    model = UNet(6, 3, base=4, depth=2)
    model.load_state_dict(run_folders.load_checkpoint(out.out_dir / run_folders.BEST)["model"])
    return model


def test_run_on_fixture_crop_layout_with_18_bands(fixture_roots, tmp_path):
    ds = datasets.open("crop", fixture_roots["crop"])
    assert ds.n_channels == 18
    out = deep_run.run(
        ds,
        "fcn",
        lambda: build_model("fcn", ds.n_channels, ds.num_classes, widths=(8, 8, 8, 8, 8), head_width=8),
        seed=0,
        results_path=tmp_path / "r.csv",
        runs_dir=tmp_path / "runs",
        **{**FIT, "max_steps": 2, "crop_size": 32},
    )
    table = results.read(tmp_path / "r.csv")
    assert set(table["dataset"]) == {"crop"} and set(table["split"]) == {"val", "test"}
    assert out.train.n_train_chips == len(ds.chip_ids("train"))
    per_class = table[(table["metric"] == "iou") & (table["split"] == "test")]
    assert list(per_class["class"]) == ds.classes


# ---------------------------------------------------------------------------------------------- per-chip counts
def assert_chips_reproduce_rows(table, chips_dir, dataset, model, seed, label_budget="all"):
    """The run's sidecar, read under the table's run_key, sums to exactly the table's held-out scores (every family's
    tests use this one check)."""
    run = table[
        (table["dataset"] == dataset)
        & (table["model"] == model)
        & (table["seed"] == seed)
        & (table["label_budget"] == label_budget)
    ]
    (key,) = set(run["run_key"])
    counts = results.read_chip_counts(dataset, model, seed, label_budget, chips_dir=chips_dir, run_key=key)
    assert counts is not None and set(counts) == set(run["split"]) - {"val"}
    for split, c in counts.items():
        summed = [c[k].sum(axis=0) for k in ("tp", "fp", "fn")]
        rows = run[(run["split"] == split) & (run["class"] == "")].set_index("metric")["value"]
        assert results.counts_scores(*summed) == rows[list(metrics.AGGREGATES)].to_dict()  # exactly
        iou = run[(run["split"] == split) & (run["metric"] == "iou")]["value"].to_numpy()
        tp, fp, fn = summed
        np.testing.assert_array_equal(
            np.where(tp + fp + fn > 0, tp / np.maximum(tp + fp + fn, 1), np.nan), iou
        )
    return counts


def test_run_saves_per_chip_counts_that_reproduce_its_rows(tmp_path):
    ds = FakeDataset(n=(4, 2, 3))
    path = tmp_path / "results.csv"
    kw = dict(seed=0, results_path=path, runs_dir=tmp_path / "runs", **{**FIT, "max_steps": 4})
    out = deep_run.run(ds, "unet", lambda: UNet(6, 3, base=4, depth=2), **kw)
    counts = assert_chips_reproduce_rows(results.read(path), tmp_path / "chips", "fake", "unet", 0)
    assert list(counts["test"]["chip_ids"]) == ds.chip_ids("test") and counts["test"]["tp"].dtype == np.int64
    # chip by chip, each chip's own matrix
    chip_cms, _ = inference.evaluate_chips(_load(out, ds), ds, "test", tile=16)
    np.testing.assert_array_equal(counts["test"]["tp"], np.diagonal(chip_cms, axis1=1, axis2=2))
    assert not list((tmp_path / "chips").rglob("*.tmp"))
    # a rerun under other settings leaves the old file stale until it finishes: never read under the new key
    new_key = deep_run.key_for(ds, "unet", 0, **{**FIT, "max_steps": 4, "lr": 1e-3})
    with pytest.warns(UserWarning, match="stale"):
        assert (
            results.read_chip_counts("fake", "unet", 0, chips_dir=tmp_path / "chips", run_key=new_key) is None
        )
    deep_run.run(ds, "fcn", lambda: UNet(6, 3, base=4, depth=2), chips_dir=None, **kw)
    assert not (tmp_path / "chips" / "fake" / "fcn").exists()


def test_deep_run_key_includes_the_platform(tmp_path, monkeypatch):
    from helpers.runs import runtime

    ds = FakeDataset()
    here = deep_run.key_for(ds, "unet", 0, **FIT)
    for family in ("cnn", "fm"):
        monkeypatch.setattr(
            runtime, "platform_class", lambda torch_kernels=True: "x86_64 AVX2 bf16=none torch=2.0"
        )
        elsewhere = deep_run.key_for(ds, "unet", 0, family=family, **FIT)
        monkeypatch.undo()
        assert elsewhere != deep_run.key_for(ds, "unet", 0, family=family, **FIT)
    assert deep_run.key_for(ds, "unet", 0, **FIT) == here  # stable on one machine
    path = tmp_path / "r.csv"
    kw = dict(seed=0, results_path=path, runs_dir=tmp_path / "runs", **{**FIT, "max_steps": 2})
    deep_run.run(ds, "unet", lambda: UNet(6, 3, base=4, depth=2), **kw)
    assert set(results.read(path)["platform"]) == {runtime.platform_class()}
    # the same table on another platform class: rerun, not reused
    monkeypatch.setattr(
        runtime, "platform_class", lambda torch_kernels=True: "x86_64 AVX2 bf16=none torch=2.0"
    )
    again = deep_run.run(ds, "unet", lambda: UNet(6, 3, base=4, depth=2), force=False, **kw)
    assert not again.skipped and set(results.read(path)["platform"]) == {"x86_64 AVX2 bf16=none torch=2.0"}

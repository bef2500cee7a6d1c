"""Published-FM rows end to end on the tiny fixture datasets: sampling parity, rows, cache reuse, not_run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import metrics, prediction_maps, results
from helpers.data import datasets
from helpers.models import weights
from helpers.runs import embeddings, fm_frozen, galileo_finetuned, pixel_samples

REPO = Path(__file__).resolve().parents[1]
SMALL = {"per_class_per_chip": 40, "max_pixels": 300}
WEIGHTS_DIR = Path(os.environ.get("FM_WEIGHTS_DIR", REPO.parent / "shared" / "weights"))


@pytest.fixture(scope="module")
def embedders() -> dict:
    if not (WEIGHTS_DIR / "galileo_nano" / "encoder.pt").is_file():
        pytest.skip(f"published weights not found under {WEIGHTS_DIR} (set FM_WEIGHTS_DIR)")
    torch.set_num_threads(1)
    return {
        "galileo_nano": embeddings.load_embedder(
            "galileo_nano", WEIGHTS_DIR / "galileo_nano" / "encoder.pt", patch_size=8, window=32
        ),
        "presto": embeddings.load_embedder("presto", WEIGHTS_DIR / "presto" / "default_model.pt"),
    }


class _Identity:
    """An 'embedder' returning the reflectance itself: makes the FM sampler comparable to the classical one."""

    name = "identity"
    weights_sha256 = "0" * 64

    def settings(self) -> dict:
        return {}

    def encode(self, a, ctx):
        return a

    def to_pixels(self, stored, shape):
        return np.asarray(stored, dtype=np.float32)


def test_training_sample_is_the_classical_one(fixture_roots: dict) -> None:
    ds = datasets.open("crop", fixture_roots["crop"])
    budget = pixel_samples.Budget(**SMALL)
    ref = pixel_samples.sample_pixels(ds, "train", "spectral", seed=3, budget=budget)
    timer = {"embed_s": 0.0}
    ours = fm_frozen._sample_split(ds, "train", _Identity(), None, 3, budget, timer, False)
    np.testing.assert_array_equal(ours.y, ref.y)
    np.testing.assert_allclose(ours.X, ref.X, rtol=1e-3, atol=1e-4)  # float16 storage of the embeddings
    assert len(ours.y) <= SMALL["max_pixels"]


def test_frozen_rows_end_to_end_with_cache(embedders: dict, fixture_roots: dict, tmp_path: Path) -> None:
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    path = tmp_path / "results.csv"
    cache = tmp_path / "cache"
    for row, model in (("galileo_nano_frozen_lgbm", "galileo_nano"), ("presto_frozen_lgbm", "presto")):
        run = fm_frozen.run_frozen(
            ds, row, 0, path, cache_dir=cache, budget=SMALL, embedder=embedders[model], progress=False
        )
        assert run.status == "ok"
        assert run.n_train_pixels == len(
            pixel_samples.sample_pixels(ds, "train", "spectral", seed=0, budget=pixel_samples.Budget(**SMALL))
        )
        assert set(run.scores) == {"val", "test"}
        assert 0 <= run.scores["test"]["miou_macro"] <= 1
        assert run.cms["test"].sum() == sum(
            int((ds.read_arrays(c)[1] != ds.ignore_index).sum()) for c in ds.chip_ids("test")
        )
    df = results.read(path)
    assert set(df["model"]) == {"galileo_nano_frozen_lgbm", "presto_frozen_lgbm"}
    assert set(df["family"]) == {"fm"} and set(df["pretraining"]) == {"published"}
    assert set(df["weights"]) == {
        weights.SPECS["galileo_nano"].sha256,
        weights.SPECS["presto"].sha256,
    }
    assert df["note"].str.contains("published weights").all()
    assert df["note"].str.contains("NDVI masked").all()

    # the same row again is skipped; a new seed reuses every cached val/test chip
    same = dict(budget=SMALL, embedder=embedders["galileo_nano"], progress=False)
    assert fm_frozen.run_frozen(ds, "galileo_nano_frozen_lgbm", 0, path, **same).status == "skipped"
    # another budget is another run: it reruns, and its rows (new key) replace the old ones
    keys = set(df.loc[df["model"] == "galileo_nano_frozen_lgbm", "run_key"])
    other = {**same, "budget": {**SMALL, "max_pixels": SMALL["max_pixels"] // 2}}
    assert (
        fm_frozen.run_frozen(ds, "galileo_nano_frozen_lgbm", 0, path, cache_dir=cache, **other).status == "ok"
    )
    new = results.read(path).query("model == 'galileo_nano_frozen_lgbm'")
    assert len(keys) == 1 and new["run_key"].nunique() == 1 and set(new["run_key"]).isdisjoint(keys)
    assert fm_frozen.run_frozen(ds, "galileo_nano_frozen_lgbm", 0, path, **other).status == "skipped"
    again = fm_frozen.run_frozen(
        ds, "galileo_nano_frozen_linear", 1, path, cache_dir=cache, budget=SMALL, embedder=embedders["galileo_nano"],
        progress=False, maps_dir=tmp_path / "maps",
    )  # fmt: skip
    assert again.status == "ok" and again.cache_stats["misses"] == 0 and again.cache_stats["hits"] > 0
    # maps cover every pixel of the first test chips; their valid pixels are part of the scored test matrix
    seed, maps = prediction_maps.load_run(tmp_path / "maps", ds.name, "galileo_nano_frozen_linear")
    assert seed == 1 and list(maps) == prediction_maps.chip_ids(ds)
    sub = np.zeros_like(again.cms["test"])
    for chip, pred in maps.items():
        y = ds.read_arrays(chip)[1]
        assert pred.shape == y.shape and 0 <= pred.min() and pred.max() < ds.num_classes
        sub += metrics.confusion_matrix(y, pred, ds.num_classes, ds.ignore_index)
    assert (sub <= again.cms["test"]).all() and sub.sum() > 0
    if len(ds.chip_ids("test")) == len(maps):
        np.testing.assert_array_equal(sub, again.cms["test"])
    assert again.timings["embed_s"] == 0.0
    with pytest.raises(ValueError, match="needs a presto embedder"):
        fm_frozen.run_frozen(ds, "presto_frozen_lgbm", 0, None, embedder=embedders["galileo_nano"])


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine without the published weights, offline: no local copy, no cache, no download."""
    monkeypatch.setenv("FM_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("FM_CACHE_DIR", str(tmp_path / "user-cache"))
    monkeypatch.setenv("FM_OFFLINE", "1")


def test_missing_weights_write_a_not_run_row(no_weights, fixture_roots: dict, tmp_path: Path):
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    path = tmp_path / "results.csv"
    run = fm_frozen.run_presto_frozen_lgbm(ds, 0, path, progress=False)
    assert run.status == "not_run" and "presto weights unavailable" in run.reason
    ft = galileo_finetuned.run_galileo_nano_finetune(
        ds, 0, path, runs_dir=tmp_path / "runs", max_steps=1, progress=False
    )
    assert ft.status == "not_run" and "galileo_nano weights unavailable" in ft.reason
    df = results.read(path)
    assert list(df["status"]) == ["not_run", "not_run"]
    assert set(df["model"]) == {"presto_frozen_lgbm", "galileo_nano_finetune"}
    assert df["note"].str.contains("downloading disabled").all()


def test_random_init_finetune_needs_no_weights_and_is_keyed_apart(
    no_weights, fixture_roots: dict, tmp_path: Path
):
    """The random-init twin runs without any weights file, as its own row and run, the same network."""
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    path, runs = tmp_path / "results.csv", tmp_path / "runs"
    kw = dict(runs_dir=runs, max_steps=2, eval_every=1, patience=None, progress=False)
    rnd = galileo_finetuned.run_galileo_nano_finetune_random(ds, 0, path, **kw)
    pub = galileo_finetuned.run_galileo_nano_finetune(ds, 0, path, **kw)
    assert rnd.status == "ok" and pub.status == "not_run"
    df = results.read(path)
    ok = df[df["status"] == "ok"]
    assert set(ok["model"]) == {galileo_finetuned.FINETUNE_RANDOM_ROW}
    assert set(ok["pretraining"]) == {"none"} and set(ok["weights"]) == {"random-init"}
    assert set(ok["family"]) == {"fm"} and rnd.out_dir != pub.out_dir
    note = ok["note"].iloc[0]
    assert (
        f"patch {galileo_finetuned.FINETUNE_ARCH['patch_size']} px" in note
        and "random initialisation" in note
    )
    # the same network as the published row: same parameter count as the encoder + decoder built from the file
    model = galileo_finetuned.make_galileo_segmenter(
        datasets.with_bands(ds), pretrained=False, **galileo_finetuned.FINETUNE_ARCH
    )()
    assert int(ok["n_params"].iloc[0]) == sum(p.numel() for p in model.parameters())


def test_galileo_finetunes_on_point_labels_stop_by_the_point_label_rule(
    no_weights, fixture_roots: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The Galileo pair at a point budget gets the deep rows' point-label plateau signal; at every label it does not."""
    from helpers.data import labels
    from helpers.runs import schedule

    seen = []
    monkeypatch.setattr(galileo_finetuned._deep_run, "run", lambda *a, **k: seen.append(k))
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    kw = dict(runs_dir=tmp_path / "runs", progress=False)
    galileo_finetuned.run_galileo_nano_finetune_random(ds, 0, tmp_path / "r.csv", **kw)
    galileo_finetuned.run_galileo_nano_finetune_random(
        labels.label_view(ds, "points-10", 0), 0, tmp_path / "r.csv", **kw
    )
    assert "loss_delta" not in seen[0] and seen[0]["patience"] is not None
    assert seen[1]["loss_delta"] == schedule.SPARSE_LABELS["loss_delta"]


def test_frozen_rows_save_chip_counts_and_key_on_the_platform(
    embedders: dict, fixture_roots: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers.runs import runtime

    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    path, cache = tmp_path / "results.csv", tmp_path / "cache"
    kw = dict(cache_dir=cache, budget=SMALL, embedder=embedders["galileo_nano"], progress=False)
    run = fm_frozen.run_frozen(ds, "galileo_nano_frozen_linear", 0, path, **kw)
    table = results.read(path)
    (key,) = set(table["run_key"])
    counts = results.read_chip_counts(
        ds.name, "galileo_nano_frozen_linear", 0, chips_dir=tmp_path / "chips", run_key=key
    )
    assert list(counts) == ["test"] and list(counts["test"]["chip_ids"]) == ds.chip_ids("test")
    summed = [counts["test"][k].sum(axis=0) for k in ("tp", "fp", "fn")]
    np.testing.assert_array_equal(summed[0], np.diag(run.cms["test"]))
    rows = table[(table["split"] == "test") & (table["class"] == "")].set_index("metric")["value"]
    assert results.counts_scores(*summed) == rows[list(metrics.AGGREGATES)].to_dict()  # exactly
    assert not list((tmp_path / "chips").rglob("*.tmp"))
    assert set(table["platform"]) == {runtime.platform_class()} and "torch=" in runtime.platform_class()
    # the embeddings are torch outputs: on another platform class the row is rerun under another key
    monkeypatch.setattr(
        runtime, "platform_class", lambda torch_kernels=True: "x86_64 AVX2 bf16=none torch=2.0"
    )
    other = fm_frozen.run_frozen(ds, "galileo_nano_frozen_linear", 0, path, **kw)
    assert other.status == "ok" and other.run_key != key
    with pytest.warns(UserWarning, match="stale"):
        assert (
            results.read_chip_counts(
                ds.name, "galileo_nano_frozen_linear", 0, chips_dir=tmp_path / "chips", run_key=key
            )
            is None
        )

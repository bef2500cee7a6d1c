"""Heads on foundation-model embeddings: LightGBM, linear/MLP probe, and the Galileo fine-tuning model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.data import datasets
from helpers.models import galileo
from helpers.runs import classical, fm_heads, inference, runner, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def encoder_path() -> Path:
    d = Path(os.environ.get("FM_WEIGHTS_DIR", REPO.parent / "shared" / "weights"))
    path = d / "galileo_nano" / "encoder.pt"
    if not path.is_file():
        pytest.skip(f"Galileo-nano weights not found under {d} (set FM_WEIGHTS_DIR)")
    return path


def _toy(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    return X, y


def test_lgbm_head_uses_the_classical_settings_and_learns() -> None:
    X, y = _toy()
    head = fm_heads.fit_lgbm(
        X[:1000], y[:1000], 3, candidate=classical.LGBM_GRID[0], seed=0, X_es=X[1000:], y_es=y[1000:]
    )
    assert (head.predict(X[1000:]) == y[1000:]).mean() > 0.9
    for k in ("learning_rate", "max_bin", "feature_fraction", "lambda_l2"):
        assert head.params[k] == classical.LGBM_FIXED[k]
    assert head.params["deterministic"] and head.params["seed"] == 0
    again = fm_heads.fit_lgbm(
        X[:1000], y[:1000], 3, candidate=classical.LGBM_GRID[0], seed=0, X_es=X[1000:], y_es=y[1000:]
    )
    np.testing.assert_array_equal(head.predict(X), again.predict(X))
    binary = fm_heads.fit_lgbm(X, (y > 0).astype(np.int64), 2, candidate=classical.LGBM_GRID[0], seed=0)
    assert (
        set(np.unique(binary.predict(X))) <= {0, 1}
        and binary.rounds == classical.LGBM_FIXED["default_rounds"]
    )


def test_linear_and_mlp_heads_learn_and_are_seeded() -> None:
    X, y = _toy()
    X = X * 50 + 7  # standardisation inside the head makes scale irrelevant
    lin = fm_heads.fit_linear(X, y, 3, seed=0, steps=300)
    assert (lin.predict(X) == y).mean() > 0.75 and lin.n_params() == 8 * 3 + 3
    np.testing.assert_array_equal(lin.predict(X), fm_heads.fit_linear(X, y, 3, seed=0, steps=300).predict(X))
    mlp = fm_heads.fit_linear(X, y, 3, seed=0, hidden=32, steps=300)
    assert (mlp.predict(X) == y).mean() > 0.9 and "MLP" in mlp.describe()
    with pytest.raises(ValueError, match="no training rows"):
        fm_heads.fit_linear(X[:0], y[:0], 3, seed=0)


def test_galileo_segmenter_contract_forward_backward(encoder_path: Path) -> None:
    torch.manual_seed(0)
    model = fm_heads.GalileoSegmenter(galileo.load_galileo_nano(encoder_path), 4, [3, 6, 8], window=16)
    x = torch.rand(2, 18, 20, 24) * 0.3
    out = model(x)
    assert out.shape == (2, 4, 20, 24)
    out.logsumexp(1).mean().backward()
    assert model.encoder.space_time_embed["S2_RGB"].proj.weight.grad.abs().sum() > 0
    assert model.encoder.blocks[3].mlp.fc2.weight.grad.abs().sum() > 0
    # normalisation and months travel with the checkpoint
    state = model.state_dict()
    assert {"norm_shift", "norm_div", "months"} <= set(state)
    assert state["months"].tolist() == [3, 6, 8]


def test_galileo_segmenter_trains_with_the_shared_loop(
    encoder_path: Path, fixture_roots: dict, tmp_path
) -> None:
    torch.set_num_threads(1)
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    runner.seed_everything(0)
    model = fm_heads.GalileoSegmenter(galileo.load_galileo_nano(encoder_path), ds.num_classes, [6], window=32)
    before = model.encoder.blocks[0].attn.q.weight.detach().clone()
    result = train.fit(
        model, ds, seed=0, max_steps=1, out_dir=tmp_path / "run", crop_size=32, batch_size=4, progress=False
    )
    assert result.steps == 1
    assert not torch.equal(before, model.encoder.blocks[0].attn.q.weight)  # the encoder was trained too
    pred = inference.predict_chip(model, ds.read_arrays(ds.chip_ids("test")[0])[0], tile=32)
    assert pred.shape == (32, 32) and set(np.unique(pred)) <= {0, 1}

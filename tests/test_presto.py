"""Presto: strict load, golden outputs of the official code, wrong files, HLS adapter."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.models import presto

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-4


@pytest.fixture(scope="module")
def weights_dir() -> Path:
    d = Path(os.environ.get("FM_WEIGHTS_DIR", REPO.parent / "shared" / "weights"))
    if not (d / "presto" / "default_model.pt").is_file():
        pytest.skip(f"Presto weights not found under {d} (set FM_WEIGHTS_DIR)")
    return d


@pytest.fixture(scope="module")
def model(weights_dir: Path) -> presto.PrestoEncoder:
    torch.set_num_threads(1)
    return presto.load_presto(weights_dir / "presto" / "default_model.pt")


def test_strict_load_matches_published_encoder_keys(model: presto.PrestoEncoder, weights_dir: Path) -> None:
    state = model.state_dict()
    rows = (weights_dir / "presto" / "golden" / "keys.tsv").read_text().splitlines()
    listed = {
        r.split("\t")[0].removeprefix("encoder."): json.loads(r.split("\t")[1])
        for r in rows[2:]
        if r.startswith("encoder.")
    }
    assert set(listed) == set(state)
    assert all(list(state[k].shape) == shape for k, shape in listed.items())
    assert sum(v.numel() for v in state.values()) == 404_160


def test_fixed_tables_equal_our_formulas(model: presto.PrestoEncoder) -> None:
    fresh = presto.PrestoEncoder()
    assert torch.allclose(fresh.pos_embed, model.pos_embed, atol=1e-6)
    assert torch.allclose(fresh.month_embed.weight, model.month_embed.weight, atol=1e-6)


@pytest.mark.parametrize("case", ["A", "B"])
def test_golden_outputs(model: presto.PrestoEncoder, weights_dir: Path, case: str) -> None:
    d = np.load(weights_dir / "presto" / "golden" / f"case{case}.npz")
    month = int(d["in_month"]) if bool(d["arg_month_is_int"]) else torch.from_numpy(d["in_month"])
    x, dw, ll, mask = (torch.from_numpy(d[k]) for k in ("in_x", "in_dynamic_world", "in_latlons", "in_mask"))
    with torch.no_grad():
        pooled = model(x, dw, ll, mask, month)
        h, kept, valid = model.forward_tokens(x, dw, ll, mask, month)
        # our extension: the same months given per timestep give the same result
        pooled_2d = model(x, dw, ll, mask, torch.from_numpy(d["aux_months_expanded"]))
    assert np.abs(pooled.numpy() - d["out_pooled"]).max() <= TOL
    assert np.abs(model.norm(h).detach().numpy() - d["out_tokens"]).max() <= TOL
    np.testing.assert_array_equal(kept.numpy(), d["out_kept_indices"])
    assert bool(valid.all())
    assert np.abs(pooled_2d.numpy() - d["out_pooled"]).max() <= TOL
    np.testing.assert_array_equal(
        presto.expand_months(month, x.shape[0], x.shape[1]).numpy(), d["aux_months_expanded"]
    )


def test_unequal_masks_pad_and_match_per_sample(model: presto.PrestoEncoder) -> None:
    # a batch whose pixels hide different groups must give each pixel the result it gets alone
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 17, generator=g)
    mask = torch.zeros(3, 4, 17)
    mask[0, :, 0:2] = 1
    mask[1, 1:, 5:12] = 1
    dw = torch.tensor([[9, 9, 9, 9], [1, 2, 9, 9], [3, 3, 3, 3]])
    ll = torch.tensor([[10.0, 20.0], [-5.0, 100.0], [45.0, -90.0]])
    with torch.no_grad():
        batch = model(x, dw, ll, mask, 3)
        alone = torch.cat(
            [model(x[i : i + 1], dw[i : i + 1], ll[i : i + 1], mask[i : i + 1], 3) for i in range(3)]
        )
    assert torch.allclose(batch, alone, atol=1e-5)


def test_wrong_or_truncated_file_gives_clear_error(weights_dir: Path, tmp_path: Path) -> None:
    src = (weights_dir / "presto" / "default_model.pt").read_bytes()
    cut = tmp_path / "default_model.pt"
    cut.write_bytes(src[:1000])
    with pytest.raises(ValueError, match=r"default_model\.pt: not a readable torch state dict"):
        presto.load_presto(cut)
    with pytest.raises(ValueError, match="not a Presto encoder-decoder"):
        presto.load_presto(weights_dir / "galileo_nano" / "encoder.pt")


def test_month_validation() -> None:
    with pytest.raises(ValueError, match="0 \\(January\\)"):
        presto.expand_months(12, 2, 3)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        presto.expand_months(torch.zeros(2, 4, dtype=torch.long), 2, 3)


@pytest.mark.parametrize("case", ["A", "B"])
def test_hls_adapter_reproduces_golden_inputs_and_outputs(
    model: presto.PrestoEncoder, weights_dir: Path, case: str
) -> None:
    from helpers.runs import fm_adapters

    d = np.load(weights_dir / "presto" / "golden" / f"case{case}.npz")
    assert [str(b) for b in d["raw_s2_bands"]] == [fm_adapters.HLS_TO_S2[b] for b in fm_adapters.HLS_BANDS]
    raw = d["raw_s2"]
    b, t, _ = raw.shape
    x, mask, dw = fm_adapters.presto_inputs(torch.from_numpy(raw.reshape(b, 6 * t) / 1e4).float(), n_times=t)
    np.testing.assert_array_equal(mask.numpy(), d["in_mask"])
    np.testing.assert_array_equal(dw.numpy(), d["in_dynamic_world"])
    np.testing.assert_allclose(x.numpy() * (1 - d["in_mask"]), d["in_x"] * (1 - d["in_mask"]), atol=1e-6)
    month = int(d["in_month"]) if bool(d["arg_month_is_int"]) else torch.from_numpy(d["in_month"])
    with torch.no_grad():
        pooled = model(x, dw, torch.from_numpy(d["in_latlons"]), mask, month)
    assert np.abs(pooled.numpy() - d["out_pooled"]).max() <= TOL

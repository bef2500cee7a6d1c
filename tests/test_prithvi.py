"""Prithvi architecture, key layout, strict loading and position-embedding resizing."""

from __future__ import annotations

import pytest
import torch

from helpers.models import prithvi

torch.set_num_threads(1)

TINY = prithvi.PrithviConfig(
    img_size=32,
    patch_size=8,
    num_frames=1,
    embed_dim=32,
    depth=1,
    num_heads=2,
    decoder_embed_dim=16,
    decoder_depth=1,
    decoder_num_heads=2,
)


def published_v1_shapes() -> dict[str, tuple[int, ...]]:
    """Prithvi_100M.pt as published (ViT-B encoder, 8-block 512-wide decoder), written out independently."""
    d, dd, tokens = 768, 512, 1 + 3 * 14 * 14

    def block(prefix: str, dim: int) -> dict[str, tuple[int, ...]]:
        return {
            f"{prefix}.norm1.weight": (dim,),
            f"{prefix}.norm1.bias": (dim,),
            f"{prefix}.attn.qkv.weight": (3 * dim, dim),
            f"{prefix}.attn.qkv.bias": (3 * dim,),
            f"{prefix}.attn.proj.weight": (dim, dim),
            f"{prefix}.attn.proj.bias": (dim,),
            f"{prefix}.norm2.weight": (dim,),
            f"{prefix}.norm2.bias": (dim,),
            f"{prefix}.mlp.fc1.weight": (4 * dim, dim),
            f"{prefix}.mlp.fc1.bias": (4 * dim,),
            f"{prefix}.mlp.fc2.weight": (dim, 4 * dim),
            f"{prefix}.mlp.fc2.bias": (dim,),
        }

    shapes = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, tokens, d),
        "patch_embed.proj.weight": (d, 6, 1, 16, 16),
        "patch_embed.proj.bias": (d,),
        "norm.weight": (d,),
        "norm.bias": (d,),
        "decoder_embed.weight": (dd, d),
        "decoder_embed.bias": (dd,),
        "mask_token": (1, 1, dd),
        "decoder_pos_embed": (1, tokens, dd),
        "decoder_norm.weight": (dd,),
        "decoder_norm.bias": (dd,),
        "decoder_pred.weight": (16 * 16 * 6, dd),
        "decoder_pred.bias": (16 * 16 * 6,),
    }
    for i in range(12):
        shapes |= block(f"blocks.{i}", d)
    for i in range(8):
        shapes |= block(f"decoder_blocks.{i}", dd)
    return shapes


def test_published_layout_matches_our_model():
    with torch.device("meta"):
        model = prithvi.PrithviMAE(prithvi.PRITHVI_100M)
    ours = {k: tuple(v.shape) for k, v in prithvi.native_to_v1(model.state_dict()).items()}
    assert ours == published_v1_shapes()


def test_strict_load_of_full_size_checkpoint_in_published_layout(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=gen) for k, s in published_v1_shapes().items()}
    state["pos_embed"] = prithvi.sincos_3d(768, (3, 14, 14))
    state["decoder_pos_embed"] = prithvi.sincos_3d(512, (3, 14, 14))
    path = tmp_path / "Prithvi_100M.pt"
    torch.save(state, path)
    model, info = prithvi.load_prithvi_checkpoint(path)
    assert info["layout"] == "eo1" and info["n_tensors"] == 254 and len(info["sha256"]) == 64
    assert info["config"] == prithvi.PRITHVI_100M
    loaded = prithvi.native_to_v1(model.state_dict())
    assert loaded.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k
    # the same file serves one 32-pixel frame: pos embeddings resized, every other tensor identical
    small, _ = prithvi.load_prithvi_checkpoint(path, img_size=32, num_frames=1)
    assert small.encoder.pos_embed.shape == (1, 1 + 4, 768)
    assert torch.equal(small.encoder.blocks[5].attn.qkv.weight, state["blocks.5.attn.qkv.weight"])
    seg = prithvi.segmenter_from_mae(small, num_classes=2, num_frames=1, neck_dim=16, head_channels=8)
    with torch.no_grad():
        assert seg.eval()(torch.rand(1, 6, 32, 32)).shape == (1, 2, 32, 32)


def test_eo2_layout_with_coordinate_encoders(tmp_path):
    cfg = TINY.replace(num_frames=2, coords_encoding=("time", "location"), coords_scale_learn=True)
    src = prithvi.PrithviMAE(cfg)
    state = src.state_dict()
    assert {
        "encoder.temporal_embed_enc.scale",
        "encoder.location_embed_enc.scale",
        "decoder.temporal_embed_dec.scale",
        "decoder.location_embed_dec.scale",
    } <= set(state)
    with pytest.raises(KeyError):
        prithvi.native_to_v1(state)  # EO-1.0 has no coordinate encoders
    torch.save(state, tmp_path / "eo2.pt")
    model, info = prithvi.load_prithvi_checkpoint(tmp_path / "eo2.pt", config=cfg)
    assert info["layout"] == "eo2"
    x = torch.randn(1, 6, 2, 32, 32)
    tc = torch.tensor([[[2020.0, 100.0], [2020.0, 200.0]]])
    lc = torch.tensor([[38.9, -77.0]])
    with torch.no_grad():
        plain = model.encoder(x)[0]
        coded = model.encoder(x, temporal_coords=tc, location_coords=lc)[0]
        assert torch.equal(plain, src.encoder(x)[0])
    assert not torch.allclose(plain, coded)


def test_key_mapping_round_trip_and_unknown_keys():
    state = prithvi.PrithviMAE(TINY).state_dict()
    v1 = prithvi.native_to_v1(state)
    assert "patch_embed.proj.weight" in v1 and "decoder_pred.bias" in v1 and "encoder.norm.weight" not in v1
    back = prithvi.v1_to_native(v1)
    assert back.keys() == state.keys()
    assert prithvi.detect_layout(v1) == "eo1" and prithvi.detect_layout(state) == "eo2"
    with pytest.raises(KeyError, match="head.weight"):
        prithvi.v1_to_native({**v1, "head.weight": torch.zeros(1)})


def test_bad_files_give_clear_errors(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(prithvi.native_to_v1(prithvi.PrithviMAE(TINY).state_dict()), good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(prithvi.PrithviCheckpointError, match="truncated.pt.*could not be read"):
        prithvi.load_prithvi_checkpoint(truncated, config=TINY)
    text = tmp_path / "page.pt"
    text.write_text("<html>404 Not Found</html>")
    with pytest.raises(prithvi.PrithviCheckpointError, match="page.pt"):
        prithvi.load_prithvi_checkpoint(text, config=TINY)
    foreign = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3), "fc.bias": torch.zeros(2)}, foreign)
    with pytest.raises(prithvi.PrithviCheckpointError, match="not a Prithvi MAE state dict"):
        prithvi.load_prithvi_checkpoint(foreign, config=TINY)
    with pytest.raises(prithvi.PrithviCheckpointError, match="does not exist"):
        prithvi.load_prithvi_checkpoint(tmp_path / "missing.pt", config=TINY)
    with pytest.raises(prithvi.PrithviCheckpointError, match="shape mismatches.*encoder.cls_token"):
        prithvi.load_prithvi_checkpoint(good, config=TINY.replace(embed_dim=48, num_heads=2))
    with pytest.raises(prithvi.PrithviCheckpointError, match="sha256"):
        prithvi.load_prithvi_checkpoint(good, config=TINY, sha256="0" * 64)
    model, info = prithvi.load_prithvi_checkpoint(good, config=TINY)  # and the intact file loads
    assert info["layout"] == "eo1"


def test_sincos_3d_layout():
    dim, grid = 64, (2, 3, 4)
    pe = prithvi.sincos_3d(dim, grid)[0]
    assert pe.shape == (1 + 24, dim) and torch.equal(pe[0], torch.zeros(dim))
    tok = pe[1:].reshape(*grid, dim)
    dw, dh = dim // 16 * 6, dim // 16 * 6
    # w channels vary only with w, h channels only with h, t channels only with t
    assert torch.equal(tok[1, 2, :, :dw], tok[0, 0, :, :dw])
    assert torch.equal(tok[1, :, 3, dw : dw + dh], tok[0, :, 0, dw : dw + dh])
    assert torch.equal(tok[:, 2, 1, dw + dh :], tok[:, 0, 0, dw + dh :])
    assert not torch.equal(tok[0, 0, 0, dw + dh :], tok[1, 0, 0, dw + dh :])


def test_pos_embed_resizing():
    pe = prithvi.sincos_3d(64, (3, 6, 6))
    assert prithvi.resize_pos_embed(pe, (3, 6, 6), (3, 6, 6)) is pe
    assert torch.allclose(
        prithvi.resize_pos_embed(pe, (3, 6, 6), (1, 6, 6)), prithvi.sincos_3d(64, (1, 6, 6))
    )
    assert torch.allclose(
        prithvi.resize_pos_embed(pe, (3, 6, 6), (4, 6, 6)), prithvi.sincos_3d(64, (4, 6, 6)), atol=1e-6
    )
    big = prithvi.resize_pos_embed(pe, (3, 6, 6), (3, 11, 11))
    assert big.shape == (1, 1 + 3 * 121, 64)
    grid_old, grid_new = pe[0, 1:].reshape(3, 6, 6, 64), big[0, 1:].reshape(3, 11, 11, 64)
    for corner_old, corner_new in (((0, 0), (0, 0)), ((5, 5), (10, 10)), ((0, 5), (0, 10))):
        assert torch.allclose(
            grid_old[:, corner_old[0], corner_old[1]], grid_new[:, corner_new[0], corner_new[1]], atol=1e-5
        )
    assert torch.equal(big[:, 0], pe[:, 0])
    learned = torch.randn(1, 1 + 3 * 36, 64)
    with pytest.raises(ValueError, match="not Prithvi's fixed sin-cos"):
        prithvi.resize_pos_embed(learned, (3, 6, 6), (5, 6, 6))
    with pytest.raises(ValueError, match="rows"):
        prithvi.resize_pos_embed(learned, (2, 6, 6), (1, 6, 6))


def test_encoder_runs_on_other_grids_than_native():
    enc = prithvi.PrithviEncoder(TINY)
    with torch.no_grad():
        out = enc(torch.randn(2, 6, 3, 48, 24))[0]
    assert out.shape == (2, 1 + 3 * 6 * 3, 32)
    with pytest.raises(ValueError, match="not divisible"):
        enc(torch.randn(1, 6, 1, 30, 32))


@pytest.mark.parametrize("frames", [1, 3])
@pytest.mark.parametrize("head", ["fcn", "linear"])
def test_segmenter_shapes(frames, head):
    model = prithvi.PrithviSegmenter(4, frames, TINY, neck_dim=16, head_channels=8, head=head).eval()
    with torch.no_grad():
        for hw in ((32, 32), (37, 45)):
            x = torch.rand(2, 6 * frames, *hw)
            assert model(x).shape == (2, 4, *hw)
    with pytest.raises(ValueError, match=rf"expected reflectance \[B, {6 * frames}"):
        model(torch.rand(1, 6 * frames + 1, 32, 32))


def test_segmenter_dates_are_date_major():
    """Swapping two dates in the channel stack must matter, and the model must see dates in the given order."""
    model = prithvi.PrithviSegmenter(3, 3, TINY, neck_dim=16, head_channels=8).eval()
    x = torch.rand(1, 18, 32, 32) * 0.5
    cube = model.normalize(x).reshape(1, 3, 6, 32, 32)
    assert torch.allclose(cube[0, 1, 2], (x[0, 8] - model.normalize.mean[0, 8]) / model.normalize.std[0, 8])
    swapped = torch.cat([x[:, 6:12], x[:, :6], x[:, 12:]], dim=1)
    with torch.no_grad():
        assert not torch.allclose(model(x), model(swapped))


def test_normalisation_uses_published_stats_and_guards_scale():
    norm = prithvi.HLSNormalize(2)
    assert norm.mean.shape == (1, 12, 1, 1)
    assert norm.mean[0, 3, 0, 0].item() == pytest.approx(2497.2022620507532 / 1e4)
    assert norm.std[0, 11, 0, 0].item() == pytest.approx(1154.505683480695 / 1e4)
    x = torch.full((1, 12, 2, 2), 0.2497202262)
    assert norm(x)[0, 3].abs().max() < 1e-5
    with pytest.raises(ValueError, match="Divide by 10000"):
        norm(torch.full((1, 12, 2, 2), 2500.0))
    with pytest.raises(ValueError, match="NaN"):
        norm(torch.full((1, 12, 2, 2), float("nan")))


def test_linear_probe_freezes_encoder():
    model = prithvi.PrithviSegmenter(2, 1, TINY, head="linear", freeze_encoder=True)
    model.train()
    assert not model.encoder.training and model.head.training
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(not n.startswith("encoder.") for n in trainable)
    loss = model(torch.rand(2, 6, 32, 32)).mean()
    loss.backward()
    assert model.head.weight.grad is not None


def test_patchify_order_and_mae_target():
    mae = prithvi.PrithviMAE(TINY.replace(num_frames=2))
    x = torch.randn(2, 6, 2, 32, 32)
    patches = mae.patchify(x)
    assert patches.shape == (2, 2 * 4 * 4, 8 * 8 * 6)
    # token (t=1, h=2, w=3), value (p=5, q=1, c=4)
    tok, val = 1 * 16 + 2 * 4 + 3, (5 * 8 + 1) * 6 + 4
    assert patches[1, tok, val] == x[1, 4, 1, 2 * 8 + 5, 3 * 8 + 1]
    assert torch.equal(mae.unpatchify(patches, (2, 4, 4)), x)
    noise = torch.rand(2, 32)
    loss, pred, mask = mae(x, mask_ratio=0.75, noise=noise)
    assert mask.sum(1).tolist() == [24.0, 24.0]  # 75 % of 32 tokens hidden
    hidden = noise.argsort(1)[:, 8:]
    assert torch.equal(mask.gather(1, hidden), torch.ones(2, 24))
    manual = ((pred - patches) ** 2).mean(-1)[mask.bool()].mean()
    assert torch.allclose(loss, manual)

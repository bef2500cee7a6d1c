"""ViT-seg and SegFormer: shapes for 1 and 3 dates, the architectural pieces, and that they learn."""

from __future__ import annotations

import pytest
import torch

from helpers.models.segformer import EfficientSelfAttention, MixTransformer, SegFormer
from helpers.models.vit import ViTSegmenter, resize_pos_embed_2d

torch.set_num_threads(1)

TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, head_channels=16)
TINY_SEG = dict(embed_dims=(8, 16, 24, 32), num_heads=(1, 2, 3, 4), depths=(1, 1, 1, 1), decoder_dim=16)


@pytest.mark.parametrize("channels", [6, 18])
@pytest.mark.parametrize("hw", [(32, 32), (45, 38)])
def test_vit_shapes(channels, hw):
    model = ViTSegmenter(channels, 5, **TINY_VIT).eval()
    with torch.no_grad():
        assert model(torch.rand(2, channels, *hw)).shape == (2, 5, *hw)


@pytest.mark.parametrize("channels", [6, 18])
@pytest.mark.parametrize("hw", [(32, 32), (45, 38), (64, 96)])
def test_segformer_shapes(channels, hw):
    model = SegFormer(channels, 5, **TINY_SEG).eval()
    with torch.no_grad():
        assert model(torch.rand(2, channels, *hw)).shape == (2, 5, *hw)


def test_inputs_are_checked():
    for model in (ViTSegmenter(18, 2, **TINY_VIT), SegFormer(18, 2, **TINY_SEG)):
        with pytest.raises(ValueError, match=r"\[B, 18, H, W\]"):
            model(torch.rand(1, 6, 32, 32))
        with pytest.raises(ValueError, match="Divide by 10000"):
            model(torch.full((1, 18, 32, 32), 3000.0))
    with pytest.raises(ValueError, match="6 \\* n_dates"):
        SegFormer(7, 2)
    with pytest.raises(ValueError, match="power of two"):
        ViTSegmenter(6, 2, patch_size=12)


def test_mit_pyramid_and_reduction():
    enc = MixTransformer(6, **{k: v for k, v in TINY_SEG.items() if k != "decoder_dim"})
    feats = enc(torch.rand(1, 6, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 16, 16), (16, 8, 8), (24, 4, 4), (32, 2, 2)]
    # overlapping patch embeddings: kernel larger than stride
    for pe in enc.patch_embeds:
        assert pe.proj.kernel_size[0] > pe.proj.stride[0]
    # efficient attention: keys/values from an 8x-reduced map, and the Mix-FFN has a depth-wise 3x3 conv
    attn = EfficientSelfAttention(8, 1, 8)
    seen = {}
    attn.kv.register_forward_hook(lambda m, i, o: seen.update(kv_tokens=o.shape[1]))
    attn(torch.rand(1, 256, 8), 16, 16)
    assert seen["kv_tokens"] == 4
    mlp = enc.stages[0][0].mlp
    assert mlp.dwconv.groups == mlp.dwconv.in_channels and mlp.dwconv.kernel_size == (3, 3)


def test_segformer_b0_default_size():
    n = sum(p.numel() for p in SegFormer(6, 2).encoder.parameters())
    assert 3.0e6 < n < 3.7e6  # MiT-b0's encoder is ~3.3 M parameters


def test_vit_position_embedding_resizing():
    pe = torch.randn(1, 16, 8)
    assert resize_pos_embed_2d(pe, (4, 4), (4, 4)) is pe
    assert resize_pos_embed_2d(pe, (4, 4), (6, 3)).shape == (1, 18, 8)


@pytest.mark.parametrize("name", ["vit", "segformer"])
def test_models_learn_a_tiny_task(name):
    torch.manual_seed(0)
    # fields of 8x8 pixels whose class sets the spectrum (plus noise): learnable, but not by chance
    y = torch.randint(0, 2, (4, 4, 4)).repeat_interleave(8, 1).repeat_interleave(8, 2)
    spectra = torch.tensor([[0.05, 0.08, 0.06, 0.35, 0.2, 0.1], [0.1, 0.12, 0.15, 0.2, 0.3, 0.25]])
    x = spectra[y].permute(0, 3, 1, 2) + 0.02 * torch.randn(4, 6, 32, 32)
    model = ViTSegmenter(6, 2, **TINY_VIT) if name == "vit" else SegFormer(6, 2, **TINY_SEG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]

"""Plain ViT segmentation model (SETR-PUP style): 2-D patches over all dates' bands, progressive upsampling head.

The paper's "ViT" row. Unlike Prithvi, which gives every date its own tokens (3-D tubelets), this ViT stacks the
dates as channels and cuts 2-D patches through all of them, so comparing the two from scratch isolates the value
of Prithvi's space-time tokenisation. No pretrained weights for a 6/18-band ViT exist offline (ImageNet RGB
weights would not fit these inputs anyway), so it always trains from scratch here, and the tables say so.

Defaults match the encoder of the study's small Prithvi-architecture model (embed 128, depth 4, 4 heads, patch 16)
so the two differ in tokenisation and pretraining, not in size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from helpers.models.cnn_layers import InputNorm
from helpers.models.prithvi import HLS_BANDS, Block, HLSNormalize


def resize_pos_embed_2d(
    pos_embed: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """Bicubic resize of a learned ``(1, h*w, D)`` position embedding to another patch grid."""
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    d = pos_embed.shape[-1]
    x = pos_embed.reshape(1, *old_grid, d).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=tuple(new_grid), mode="bicubic", align_corners=False)
    return x.permute(0, 2, 3, 1).reshape(1, -1, d)


class ViTSegmenter(nn.Module):
    """ViT encoder + progressive-upsampling head: reflectance ``[B, 6*T, H, W]`` → logits ``[B, K, H, W]``.

    Args:
        in_channels: Bands x dates (dates stacked date-major as channels); ``6 * n_dates`` without ``mean``/``std``.
        num_classes: Output classes ``K``.
        img_size: Chip size the learned position embedding is laid out for; other sizes are served by bicubic
            resizing of the embedding.
        patch_size: Patch side; a power of two (the head doubles resolution ``log2(patch_size)`` times).
        embed_dim: Token width.
        depth: Transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: Feed-forward expansion.
        head_channels: Channels of the first upsampling stage; each later stage halves them (at least 16).
        dropout: Dropout before the classifier.
        mean: Per-channel input mean (reflectance) for training from scratch, e.g. the dataset's training
            statistics (:func:`helpers.data.datasets.channel_stats`); default Prithvi's HLS statistics.
        std: Per-channel input std, with ``mean``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        img_size: int = 64,
        patch_size: int = 16,
        embed_dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        head_channels: int = 64,
        dropout: float = 0.1,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if mean is None and in_channels % len(HLS_BANDS):
            raise ValueError(
                f"the default (HLS) normalisation needs in_channels = 6 * n_dates, got {in_channels}; "
                "pass the data's own mean/std"
            )
        if patch_size < 2 or patch_size & (patch_size - 1):
            raise ValueError(f"patch_size must be a power of two >= 2, got {patch_size}")
        self.patch_size = patch_size
        self.grid = (img_size // patch_size, img_size // patch_size)
        self.normalize = (
            HLSNormalize(in_channels // len(HLS_BANDS)) if mean is None else InputNorm(in_channels, mean, std)
        )
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        stages, cin = [], embed_dim
        for i in range(int(math.log2(patch_size))):
            cout = max(head_channels // 2**i, 16)
            stages.append(
                nn.Sequential(
                    nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(),
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                )
            )
            cin = cout
        self.head = nn.Sequential(*stages)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(cin, num_classes, 1)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at input resolution (inputs padded to a multiple of the patch size, logits cropped back)."""
        x = self.normalize(x)
        h, w = x.shape[-2:]
        p = self.patch_size
        ph, pw = -h % p, -w % p
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        fmap = self.patch_embed(x)
        grid = tuple(fmap.shape[-2:])
        tokens = fmap.flatten(2).transpose(1, 2) + resize_pos_embed_2d(self.pos_embed, self.grid, grid)
        for block in self.blocks:
            tokens = block(tokens)
        fmap = self.norm(tokens).transpose(1, 2).reshape(x.shape[0], -1, *grid)
        logits = self.classifier(self.dropout(self.head(fmap)))
        return logits[:, :, :h, :w]

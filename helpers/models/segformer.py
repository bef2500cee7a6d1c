"""SegFormer in plain torch: Mix-Transformer (MiT) encoder and the all-MLP decoder (Xie et al. 2021).

The paper's "SegFormer" row. MiT differs from a plain ViT in three ways that matter for pixel labels: overlapping
patch embeddings (strided convolutions, so neighbouring tokens share pixels), a four-stage pyramid (1/4 … 1/32
resolution) whose efficient self-attention shrinks keys/values by a reduction ratio, and Mix-FFN (a 3×3 depth-wise
convolution inside the feed-forward, which replaces position embeddings). The decoder projects every stage to one
width with a linear layer, upsamples to 1/4, concatenates and fuses. MiT-b0 widths by default; ImageNet weights are
neither obtainable offline nor made for 6/18-band inputs, so it trains from scratch here and the tables say so.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from helpers.models.cnn_layers import InputNorm
from helpers.models.prithvi import HLS_BANDS, HLSNormalize


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample with probability ``p`` during training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale kept samples by ``1/(1-p)`` so the expectation is unchanged."""
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.ndim - 1)), device=x.device) >= self.p
        return x * keep / (1 - self.p)


class OverlapPatchEmbed(nn.Module):
    """Strided convolution with kernel > stride (overlapping patches), then LayerNorm over channels."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """``(B, C, H, W)`` → tokens ``(B, h*w, C')`` and the grid ``h, w``."""
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientSelfAttention(nn.Module):
    """Self-attention whose keys/values come from a map shrunk ``sr_ratio`` times per side by a strided conv."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.num_heads, self.sr_ratio = num_heads, sr_ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Attend from every token to the reduced key/value set."""
        b, n, d = x.shape
        hd = d // self.num_heads
        q = self.q(x).reshape(b, n, self.num_heads, hd).transpose(1, 2)
        if self.sr_ratio > 1:
            kv_in = self.sr(x.transpose(1, 2).reshape(b, d, h, w)).flatten(2).transpose(1, 2)
            kv_in = self.norm(kv_in)
        else:
            kv_in = x
        kv = self.kv(kv_in).reshape(b, -1, 2, self.num_heads, hd).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MixFFN(nn.Module):
    """Feed-forward with a 3×3 depth-wise convolution between the two linear layers (positional cue)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``(B, h*w, C)`` → same shape."""
        x = self.fc1(x)
        b, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(self.act(x))


class MiTBlock(nn.Module):
    """Pre-norm block: efficient self-attention and Mix-FFN, each with stochastic depth."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientSelfAttention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Two residual updates of the token sequence."""
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class MixTransformer(nn.Module):
    """Four-stage MiT encoder; returns feature maps at 1/4, 1/8, 1/16 and 1/32 of the input."""

    def __init__(
        self,
        in_channels: int,
        embed_dims: Sequence[int] = (32, 64, 160, 256),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        depths: Sequence[int] = (2, 2, 2, 2),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        mlp_ratio: float = 4.0,
        drop_path: float = 0.1,
    ) -> None:
        super().__init__()
        rates = torch.linspace(0, drop_path, sum(depths)).tolist()
        self.patch_embeds, self.stages, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin, k = in_channels, 0
        for i, (dim, heads, depth, sr) in enumerate(
            zip(embed_dims, num_heads, depths, sr_ratios, strict=True)
        ):
            self.patch_embeds.append(OverlapPatchEmbed(cin, dim, 7 if i == 0 else 3, 4 if i == 0 else 2))
            self.stages.append(
                nn.ModuleList(MiTBlock(dim, heads, sr, mlp_ratio, rates[k + j]) for j in range(depth))
            )
            self.norms.append(nn.LayerNorm(dim))
            cin, k = dim, k + depth
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature pyramid ``[(B, C_i, H/s_i, W/s_i)]`` for strides 4, 8, 16, 32."""
        feats = []
        for embed, blocks, norm in zip(self.patch_embeds, self.stages, self.norms, strict=True):
            tokens, h, w = embed(x)
            for block in blocks:
                tokens = block(tokens, h, w)
            x = norm(tokens).transpose(1, 2).reshape(tokens.shape[0], -1, h, w)
            feats.append(x)
        return feats


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, std=(2.0 / fan_out) ** 0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class SegFormer(nn.Module):
    """MiT encoder + all-MLP decoder: reflectance ``[B, 6*T, H, W]`` → logits ``[B, K, H, W]``.

    Inputs are padded to a multiple of 32 (so every reduction-ratio convolution tiles its map exactly) and the
    logits cropped back.

    Args:
        in_channels: Bands x dates (dates stacked date-major as channels); ``6 * n_dates`` without ``mean``/``std``.
        num_classes: Output classes ``K``.
        embed_dims: Stage widths (MiT-b0: 32, 64, 160, 256).
        num_heads: Stage heads (b0: 1, 2, 5, 8).
        depths: Blocks per stage (b0: 2, 2, 2, 2).
        sr_ratios: Key/value reduction per stage (8, 4, 2, 1).
        decoder_dim: Width of the all-MLP decoder (b0: 256).
        drop_path: Maximum stochastic-depth rate (linearly increasing over blocks).
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
        embed_dims: Sequence[int] = (32, 64, 160, 256),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        depths: Sequence[int] = (2, 2, 2, 2),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        decoder_dim: int = 256,
        drop_path: float = 0.1,
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
        self.normalize = (
            HLSNormalize(in_channels // len(HLS_BANDS)) if mean is None else InputNorm(in_channels, mean, std)
        )
        self.encoder = MixTransformer(
            in_channels, embed_dims, num_heads, depths, sr_ratios, drop_path=drop_path
        )
        self.linear_c = nn.ModuleList(nn.Linear(d, decoder_dim) for d in embed_dims)
        self.linear_fuse = nn.Sequential(
            nn.Conv2d(decoder_dim * len(embed_dims), decoder_dim, 1, bias=False),
            nn.BatchNorm2d(decoder_dim),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout2d(dropout)
        self.linear_pred = nn.Conv2d(decoder_dim, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at input resolution."""
        x = self.normalize(x)
        h, w = x.shape[-2:]
        ph, pw = -h % 32, -w % 32
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        feats = self.encoder(x)
        size = feats[0].shape[-2:]
        ups = []
        for f, lin in zip(feats, self.linear_c, strict=True):
            g = lin(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(f.shape[0], -1, *f.shape[-2:])
            ups.append(
                F.interpolate(g, size=size, mode="bilinear", align_corners=False)
                if g.shape[-2:] != size
                else g
            )
        fused = self.linear_fuse(torch.cat(ups[::-1], dim=1))
        logits = self.linear_pred(self.dropout(fused))
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[:, :, :h, :w]

"""Prithvi (EO-1.0 / EO-2.0) in plain torch: encoder, MAE decoder, checkpoint loader and segmentation model.

Prithvi is a ViT over space-time *tubelets*: each frame of a ``(bands, time, y, x)`` cube is cut into 16×16
patches by a 3-D convolution of kernel ``(1, 16, 16)``, a fixed 3-D sin-cos position embedding is added, and the
model was pretrained as a masked autoencoder (MAE, 75 % of tokens hidden) on HLS imagery. This module re-implements
the architecture from the published description and state-dict layout (learned from public model code, not copied),
so that the real ``Prithvi_100M.pt`` loads with ``strict=True`` when a user has it, while the study itself trains a
*small* model of the same architecture from scratch or after in-study pretraining (see :mod:`helpers.runs.pretrain`).

Key layouts (both load into the one class :class:`PrithviMAE`):

* **EO-1.0** (``Prithvi_100M.pt``): flat keys ``patch_embed.proj.*``, ``cls_token``, ``pos_embed``,
  ``blocks.{i}.*``, ``norm.*`` for the encoder and ``decoder_embed.*``, ``mask_token``, ``decoder_pos_embed``,
  ``decoder_blocks.{i}.*``, ``decoder_norm.*``, ``decoder_pred.*`` for the decoder.
* **EO-2.0** (native here): the same names under ``encoder.`` / ``decoder.``, plus the optional temporal and
  location coordinate encoders ``encoder.temporal_embed_enc.scale``, ``encoder.location_embed_enc.scale`` and their
  decoder twins ``decoder.temporal_embed_dec.scale``, ``decoder.location_embed_dec.scale`` (one scalar each).

:func:`v1_to_native` / :func:`native_to_v1` are the explicit, tested mapping between the two.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from helpers.data.io import sha256_file

#: The six HLS bands Prithvi was pretrained on, in its channel order.
HLS_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")

#: Prithvi-EO-1.0 pretraining band means and standard deviations, in reflectance × 1e4 (Prithvi_100M config).
PRITHVI_MEAN = (
    775.2290211032589,
    1080.992780391705,
    1228.5855250417867,
    2497.2022620507532,
    2204.2139147975554,
    1610.8324823273745,
)
PRITHVI_STD = (
    1281.526139861424,
    1270.0297974547493,
    1399.4802505642526,
    1368.3446143747644,
    1291.6764008585435,
    1154.505683480695,
)

#: Reflectance scale of the published statistics: our data are reflectance (0..~1.5), Prithvi's stats are ×1e4.
REFLECTANCE_SCALE = 10_000.0

#: Inputs whose absolute value exceeds this cannot be surface reflectance (which tops out near 1.6 for bright
#: clouds and snow); they are almost surely DN scaled by 1e4, and normalising them would silently give garbage.
MAX_REFLECTANCE = 20.0


class PrithviCheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, truncated or not a Prithvi state dict."""


@dataclass(frozen=True)
class PrithviConfig:
    """Architecture of a Prithvi model (encoder + MAE decoder).

    ``img_size`` and ``num_frames`` fix the *native* token grid of the stored position embeddings; other input
    sizes and frame counts are served by resizing them (:func:`resize_pos_embed`).
    """

    img_size: int = 224
    patch_size: int = 16
    num_frames: int = 3
    tubelet_size: int = 1
    in_chans: int = 6
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    #: Prithvi-EO-2.0 coordinate encodings: any of ``"time"`` (year, day of year) and ``"location"`` (lat, lon).
    coords_encoding: tuple[str, ...] = ()
    coords_scale_learn: bool = False

    def __post_init__(self) -> None:
        if self.embed_dim % 16 or self.decoder_embed_dim % 16:
            raise ValueError(
                "embed dims must be multiples of 16 (the 3-D sin-cos embedding splits them 6:6:4)"
            )
        if self.embed_dim % self.num_heads or self.decoder_embed_dim % self.decoder_num_heads:
            raise ValueError("embed dims must be divisible by their number of heads")
        if self.img_size % self.patch_size or self.num_frames % self.tubelet_size:
            raise ValueError("img_size / num_frames must be multiples of patch_size / tubelet_size")
        bad = set(self.coords_encoding) - {"time", "location"}
        if bad:
            raise ValueError(f"unknown coords_encoding {sorted(bad)}; expected 'time' and/or 'location'")

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """Native token grid ``(t, h, w)``."""
        n = self.img_size // self.patch_size
        return (self.num_frames // self.tubelet_size, n, n)

    def replace(self, **changes) -> PrithviConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


#: Prithvi-EO-1.0-100M as published (Prithvi_100M_config.yaml): ViT-B, 3 frames of 224×224, 6 bands.
PRITHVI_100M = PrithviConfig()
#: Prithvi-EO-2.0-300M (ViT-L, 4 frames) and its temporal/location ("TL") variant.
PRITHVI_EO2_300M = PrithviConfig(num_frames=4, embed_dim=1024, depth=24, num_heads=16)
PRITHVI_EO2_300M_TL = PRITHVI_EO2_300M.replace(coords_encoding=("time", "location"), coords_scale_learn=True)
#: The small Prithvi-architecture model the study pretrains itself on CPU ("prithvi-arch small"). NOT Prithvi-100M.
#: Sized for the study's CPU budget (benchmarks/fm.py): 0.99 M encoder parameters, 87x fewer than Prithvi-100M's.
PRITHVI_SMALL = PrithviConfig(
    img_size=64,
    num_frames=1,
    embed_dim=128,
    depth=4,
    num_heads=4,
    decoder_embed_dim=128,
    decoder_depth=2,
    decoder_num_heads=4,
)

#: Attention heads of the published models, by encoder width (heads cannot be read from a state dict).
_PUBLISHED_HEADS = {768: 12, 1024: 16, 1280: 16}


# ----------------------------------------------------------------------------------------------------------------
# Fixed sin-cos position embeddings
# ----------------------------------------------------------------------------------------------------------------
def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """1-D sin-cos embedding ``(M, dim)``: first half sines, second half cosines (MAE convention)."""
    if dim % 2:
        raise ValueError("sin-cos embedding dimension must be even")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = positions.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_3d(dim: int, grid: Sequence[int], cls_token: bool = True) -> torch.Tensor:
    """Prithvi's fixed 3-D sin-cos embedding, ``(1, [1+] t*h*w, dim)`` float32.

    Tokens are ordered ``(t, h, w)`` with ``w`` fastest (the 3-D patch embedding's flatten order); channels are
    ``[w (6/16), h (6/16), t (4/16)]`` as in the published model, so a recomputed embedding equals the stored one.
    The cls token's row is zero.
    """
    if dim % 16:
        raise ValueError("3-D sin-cos embedding needs dim divisible by 16")
    t, h, w = (int(g) for g in grid)
    dw, dh, dt = dim // 16 * 6, dim // 16 * 6, dim // 16 * 4
    ew = sincos_1d(dw, torch.arange(w)).repeat(t * h, 1)
    eh = sincos_1d(dh, torch.arange(h)).repeat_interleave(w, dim=0).repeat(t, 1)
    et = sincos_1d(dt, torch.arange(t)).repeat_interleave(h * w, dim=0)
    emb = torch.cat([ew, eh, et], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb], dim=0)
    return emb.float().unsqueeze(0)


def resize_pos_embed(
    pos_embed: torch.Tensor, old_grid: Sequence[int], new_grid: Sequence[int]
) -> torch.Tensor:
    """Adapt a ``(1, 1 + t*h*w, D)`` position embedding (cls row first) to another token grid.

    * Fewer frames: the first ``t`` frames are kept (frame ``i`` keeps its embedding, as a recomputed sin-cos
      embedding would give). More frames: the embedding is recomputed as sin-cos, which is exact for Prithvi's fixed
      embedding; a stored embedding that is not the sin-cos one is refused rather than guessed.
    * Other height/width: bicubic interpolation of the spatial grid (``align_corners=True``), as Prithvi-EO-2.0's
      code does, so a 224-pixel checkpoint serves 64-pixel chips and vice versa.

    Args:
        pos_embed: Stored embedding with a leading cls row.
        old_grid: Its ``(t, h, w)`` grid.
        new_grid: The grid wanted.

    Returns:
        The embedding for ``new_grid`` (same dtype and device).

    Raises:
        ValueError: If the shapes disagree with ``old_grid`` or frames must be added to a non-sin-cos embedding.
    """
    old_grid, new_grid = tuple(int(g) for g in old_grid), tuple(int(g) for g in new_grid)
    dim = pos_embed.shape[-1]
    if pos_embed.shape[-2] != 1 + math.prod(old_grid):
        raise ValueError(
            f"position embedding has {pos_embed.shape[-2]} rows; grid {old_grid} needs {1 + math.prod(old_grid)}"
        )
    if old_grid == new_grid:
        return pos_embed
    cls, patch = pos_embed[:, :1], pos_embed[0, 1:].reshape(*old_grid, dim)
    t_old, t_new = old_grid[0], new_grid[0]
    if t_new <= t_old:
        patch = patch[:t_new]
    else:
        ref = sincos_3d(dim, old_grid, cls_token=False).to(pos_embed)
        if not torch.allclose(pos_embed[:, 1:], ref, atol=1e-4):
            raise ValueError(
                "cannot add frames to a position embedding that is not Prithvi's fixed sin-cos one"
            )
        patch = (
            sincos_3d(dim, (t_new, *old_grid[1:]), cls_token=False)
            .to(pos_embed)[0]
            .reshape(t_new, *old_grid[1:], dim)
        )
    if tuple(patch.shape[1:3]) != new_grid[1:]:
        x = patch.permute(0, 3, 1, 2).float()  # (t, D, h, w)
        x = F.interpolate(x, size=new_grid[1:], mode="bicubic", align_corners=True)
        patch = x.permute(0, 2, 3, 1).to(pos_embed.dtype)
    return torch.cat([cls, patch.reshape(1, -1, dim)], dim=1)


# ----------------------------------------------------------------------------------------------------------------
# Building blocks (names follow the published state dict)
# ----------------------------------------------------------------------------------------------------------------
class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection (timm layout: q, k, v then heads)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """Transformer feed-forward: ``fc1`` → GELU → ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (``norm1``, ``attn``, ``norm2``, ``mlp``)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed3D(nn.Module):
    """Tubelet embedding: a 3-D convolution with kernel = stride = ``(tubelet, patch, patch)``."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        k = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=k, stride=k)

    def grid(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """Token grid ``(t, h, w)`` for an input of shape ``(..., T, H, W)``; refuses sizes that lose pixels."""
        t, h, w = (int(s) for s in shape[-3:])
        if t % self.tubelet_size or h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"input (T, H, W) = {(t, h, w)} is not divisible by the tubelet {self.tubelet_size} and patch "
                f"{self.patch_size}; pad it (the segmentation model does this for you)"
            )
        return (t // self.tubelet_size, h // self.patch_size, w // self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, L, D), L ordered (t, h, w)


class _ScaledCoordEncoder(nn.Module):
    """Shared part of Prithvi-EO-2.0's coordinate encoders: the output width and a ``scale`` (trainable or fixed 1)."""

    def __init__(self, dim: int, trainable_scale: bool) -> None:
        super().__init__()
        self.dim = dim
        if trainable_scale:
            self.scale = nn.Parameter(torch.full((1,), 0.1))
        else:
            self.register_buffer("scale", torch.ones(1))


class TemporalEncoder(_ScaledCoordEncoder):
    """Prithvi-EO-2.0 time encoding: sin-cos of (year, day of year), half the channels each, times ``scale``."""

    def forward(self, coords: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
        """``coords`` ``(B, T, 2)`` (year, day of year) → ``(B, T*tokens_per_frame, dim)``."""
        b, t, _ = coords.shape
        half = self.dim // 2
        year = sincos_1d(half, coords[..., 0].detach().cpu()).reshape(b, t, half)
        doy = sincos_1d(self.dim - half, coords[..., 1].detach().cpu()).reshape(b, t, self.dim - half)
        emb = torch.cat([year, doy], dim=-1).to(self.scale) * self.scale
        return emb.repeat_interleave(tokens_per_frame, dim=1)


class LocationEncoder(_ScaledCoordEncoder):
    """Prithvi-EO-2.0 location encoding: sin-cos of (lat, lon), half the channels each, times ``scale``."""

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """``coords`` ``(B, 2)`` (lat, lon) → ``(B, 1, dim)``, broadcast over tokens."""
        half = self.dim // 2
        lat = sincos_1d(half, coords[:, 0].detach().cpu())
        lon = sincos_1d(self.dim - half, coords[:, 1].detach().cpu())
        return (torch.cat([lat, lon], dim=-1).to(self.scale) * self.scale).unsqueeze(1)


def _init_linear_and_norm(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def random_masking(
    tokens: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE per-sample random masking: keep ``int(L * (1 - mask_ratio))`` tokens.

    Returns:
        ``(kept tokens (B, L_keep, D), mask (B, L) with 1 = hidden, ids_restore (B, L))``.
    """
    b, n, d = tokens.shape
    keep = int(n * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(b, n, device=tokens.device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    kept = torch.gather(tokens, 1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
    mask = torch.ones(b, n, device=tokens.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return kept, mask, ids_restore


# ----------------------------------------------------------------------------------------------------------------
# Encoder, decoder, MAE
# ----------------------------------------------------------------------------------------------------------------
class PrithviEncoder(nn.Module):
    """Prithvi ViT encoder over space-time tubelets (state-dict names of the published encoder)."""

    def __init__(self, config: PrithviConfig = PRITHVI_100M) -> None:
        super().__init__()
        c = self.config = config
        self.grid_size = c.grid_size
        self.patch_embed = PatchEmbed3D(c.patch_size, c.tubelet_size, c.in_chans, c.embed_dim)
        if "time" in c.coords_encoding:
            self.temporal_embed_enc = TemporalEncoder(c.embed_dim, c.coords_scale_learn)
        if "location" in c.coords_encoding:
            self.location_embed_enc = LocationEncoder(c.embed_dim, c.coords_scale_learn)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        # A buffer, not a parameter: the embedding is fixed (never trained) but is saved under the published key.
        self.register_buffer("pos_embed", sincos_3d(c.embed_dim, self.grid_size))
        self.blocks = nn.ModuleList(Block(c.embed_dim, c.num_heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.embed_dim)
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        self.apply(_init_linear_and_norm)

    def pos_embed_for(self, grid: Sequence[int]) -> torch.Tensor:
        """Position embedding for a token grid (resized from the stored one when it differs)."""
        return resize_pos_embed(self.pos_embed, self.grid_size, grid)

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask_ratio: float = 0.0,
        noise: torch.Tensor | None = None,
        token_bias: torch.Tensor | None = None,
        temporal_coords: torch.Tensor | None = None,
        location_coords: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Encode a normalised cube ``(B, C, T, H, W)``.

        Args:
            x: Normalised input; ``T``, ``H``, ``W`` multiples of the tubelet / patch size.
            mask_ratio: Fraction of tokens hidden MAE-style (0 = encode all).
            noise: Optional ``(B, L)`` noise fixing which tokens are hidden (tests, reproducibility).
            token_bias: Optional ``(B, L, D)`` added to the patch tokens (used by the spectral pretext).
            temporal_coords: ``(B, T, 2)`` year and day of year (EO-2.0 models with ``"time"``).
            location_coords: ``(B, 2)`` latitude and longitude (EO-2.0 models with ``"location"``).

        Returns:
            ``(tokens (B, 1 + L_kept, D) with the cls token first, mask or None, ids_restore or None)``.
        """
        grid = self.patch_embed.grid(x.shape)
        tokens = self.patch_embed(x)
        pos = self.pos_embed_for(grid)
        tokens = tokens + pos[:, 1:]
        if token_bias is not None:
            tokens = tokens + token_bias
        if temporal_coords is not None and hasattr(self, "temporal_embed_enc"):
            tokens = tokens + self.temporal_embed_enc(temporal_coords, grid[1] * grid[2])
        if location_coords is not None and hasattr(self, "location_embed_enc"):
            tokens = tokens + self.location_embed_enc(location_coords)
        mask = ids_restore = None
        if mask_ratio > 0:
            tokens, mask, ids_restore = random_masking(tokens, mask_ratio, noise)
        cls = (self.cls_token + pos[:, :1]).expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore


class MAEDecoder(nn.Module):
    """Prithvi's MAE decoder: a narrower transformer that predicts every token's pixels."""

    def __init__(self, config: PrithviConfig = PRITHVI_100M) -> None:
        super().__init__()
        c = self.config = config
        self.grid_size = c.grid_size
        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim)
        if "time" in c.coords_encoding:
            self.temporal_embed_dec = TemporalEncoder(c.decoder_embed_dim, c.coords_scale_learn)
        if "location" in c.coords_encoding:
            self.location_embed_dec = LocationEncoder(c.decoder_embed_dim, c.coords_scale_learn)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))
        self.register_buffer("decoder_pos_embed", sincos_3d(c.decoder_embed_dim, self.grid_size))
        self.decoder_blocks = nn.ModuleList(
            Block(c.decoder_embed_dim, c.decoder_num_heads, c.mlp_ratio) for _ in range(c.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(c.decoder_embed_dim)
        self.decoder_pred = nn.Linear(c.decoder_embed_dim, c.tubelet_size * c.patch_size**2 * c.in_chans)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(_init_linear_and_norm)

    def forward(
        self,
        tokens: torch.Tensor,
        grid: Sequence[int],
        ids_restore: torch.Tensor | None = None,
        temporal_coords: torch.Tensor | None = None,
        location_coords: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict patch pixels ``(B, L, tubelet*p*p*C)`` from encoder tokens (cls first).

        With ``ids_restore`` the encoder saw only the kept tokens: mask tokens fill the hidden places. Without it
        every token was encoded (the spectral pretext hides bands, not tokens).
        """
        x = self.decoder_embed(tokens)
        cls, x = x[:, :1], x[:, 1:]
        if ids_restore is not None:
            fill = self.mask_token.expand(x.shape[0], ids_restore.shape[1] - x.shape[1], -1)
            x = torch.cat([x, fill], dim=1)
            x = torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))
        pos = resize_pos_embed(self.decoder_pos_embed, self.grid_size, grid)
        cls, x = cls + pos[:, :1], x + pos[:, 1:]
        if temporal_coords is not None and hasattr(self, "temporal_embed_dec"):
            x = x + self.temporal_embed_dec(temporal_coords, int(grid[1]) * int(grid[2]))
        if location_coords is not None and hasattr(self, "location_embed_dec"):
            x = x + self.location_embed_dec(location_coords)
        x = torch.cat([cls, x], dim=1)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]


class PrithviMAE(nn.Module):
    """Prithvi masked autoencoder: :class:`PrithviEncoder` + :class:`MAEDecoder` (EO-2.0 key layout)."""

    def __init__(self, config: PrithviConfig = PRITHVI_100M) -> None:
        super().__init__()
        self.config = config
        self.encoder = PrithviEncoder(config)
        self.decoder = MAEDecoder(config)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` → ``(B, L, tubelet*p*p*C)``; tokens ``(t, h, w)``, values ``(tubelet, p, q, c)``."""
        c, s, p = self.config.in_chans, self.config.tubelet_size, self.config.patch_size
        b, _, t, h, w = imgs.shape
        x = imgs.reshape(b, c, t // s, s, h // p, p, w // p, p)
        return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, (t // s) * (h // p) * (w // p), s * p * p * c)

    def unpatchify(self, x: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
        """Inverse of :meth:`patchify` for a token grid ``(t, h, w)``."""
        c, s, p = self.config.in_chans, self.config.tubelet_size, self.config.patch_size
        t, h, w = (int(g) for g in grid)
        x = x.reshape(x.shape[0], t, h, w, s, p, p, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(x.shape[0], c, t * s, h * p, w * p)

    def forward(
        self,
        imgs: torch.Tensor,
        mask_ratio: float = 0.75,
        *,
        noise: torch.Tensor | None = None,
        norm_pix_loss: bool = False,
        temporal_coords: torch.Tensor | None = None,
        location_coords: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """MAE step on a normalised cube: ``(loss on hidden patches, prediction (B, L, P), mask (B, L))``.

        The target is the (normalised) input's patches; ``norm_pix_loss`` additionally standardises each target
        patch (MAE's option; Prithvi-100M was trained without it).
        """
        grid = self.encoder.patch_embed.grid(imgs.shape)
        coords = {"temporal_coords": temporal_coords, "location_coords": location_coords}
        latent, mask, ids_restore = self.encoder(imgs, mask_ratio=mask_ratio, noise=noise, **coords)
        pred = self.decoder(latent, grid, ids_restore, **coords)
        target = self.patchify(imgs)
        if norm_pix_loss:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        per_patch = ((pred - target) ** 2).mean(-1)
        return (per_patch * mask).sum() / mask.sum().clamp_min(1), pred, mask


# ----------------------------------------------------------------------------------------------------------------
# Key mapping and checkpoint loading
# ----------------------------------------------------------------------------------------------------------------
_V1_ENCODER_PREFIXES = ("patch_embed.", "blocks.", "norm.")
_V1_ENCODER_KEYS = ("cls_token", "pos_embed")
_V1_DECODER_PREFIXES = ("decoder_embed.", "decoder_blocks.", "decoder_norm.", "decoder_pred.")
_V1_DECODER_KEYS = ("mask_token", "decoder_pos_embed")


def v1_to_native(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a Prithvi-EO-1.0 state dict (flat keys) to this module's (EO-2.0) layout.

    Encoder tensors go under ``encoder.``, decoder tensors under ``decoder.``; names are otherwise unchanged.

    Raises:
        KeyError: For a key that is neither (so nothing is dropped silently).
    """
    out, unknown = {}, []
    for key, value in state.items():
        if key in _V1_ENCODER_KEYS or key.startswith(_V1_ENCODER_PREFIXES):
            out["encoder." + key] = value
        elif key in _V1_DECODER_KEYS or key.startswith(_V1_DECODER_PREFIXES):
            out["decoder." + key] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f"keys that are not part of a Prithvi-EO-1.0 MAE: {unknown[:10]}")
    return out


def native_to_v1(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`v1_to_native` (export to the ``Prithvi_100M.pt`` layout; EO-1.0 has no coords encoders)."""
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head not in ("encoder", "decoder") or "_embed_enc." in key or "_embed_dec." in key:
            raise KeyError(f"{key!r} has no Prithvi-EO-1.0 equivalent")
        out[rest] = value
    return out


def detect_layout(state: Mapping[str, torch.Tensor]) -> str:
    """``"eo1"`` (flat ``Prithvi_100M.pt`` keys) or ``"eo2"`` (``encoder.``/``decoder.`` prefixes)."""
    if "encoder.patch_embed.proj.weight" in state:
        return "eo2"
    if "patch_embed.proj.weight" in state:
        return "eo1"
    sample = list(state)[:5]
    raise PrithviCheckpointError(
        f"not a Prithvi MAE state dict (no 'patch_embed.proj.weight' or 'encoder.patch_embed.proj.weight'; "
        f"first keys: {sample}). Fine-tuned mmseg checkpoints ('backbone.*') are not supported."
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise PrithviCheckpointError(f"Prithvi checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        size = path.stat().st_size
        raise PrithviCheckpointError(
            f"{path} ({size:,} bytes) could not be read as a torch checkpoint: {type(err).__name__}: "
            f"{str(err)[:200]}. Expected a state dict saved with torch.save (Prithvi_100M.pt is ~450 MB); "
            "the file may be truncated (interrupted download) or not a checkpoint."
        ) from err
    for wrapper in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise PrithviCheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise PrithviCheckpointError(f"{path}: entries that are not tensors: {bad[:5]}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def infer_config(state: Mapping[str, torch.Tensor], img_size: int = 224) -> PrithviConfig:
    """Architecture of a native-layout state dict, from tensor shapes (heads from the published models' table).

    The native token grid is ``(t, img_size/p, img_size/p)`` with ``t`` from the length of ``pos_embed``, so
    ``img_size`` is the only thing that must be known (224 for every published Prithvi).
    """
    w = state["encoder.patch_embed.proj.weight"]
    embed_dim, in_chans, tubelet, patch = w.shape[0], w.shape[1], w.shape[2], w.shape[3]
    depth = len({k.split(".")[2] for k in state if k.startswith("encoder.blocks.")})
    dec_depth = len({k.split(".")[2] for k in state if k.startswith("decoder.decoder_blocks.")})
    dec_dim = state["decoder.decoder_embed.weight"].shape[0]
    hidden = state["encoder.blocks.0.mlp.fc1.weight"].shape[0]
    per_frame = (img_size // patch) ** 2
    n_tokens = state["encoder.pos_embed"].shape[1] - 1
    if n_tokens % per_frame:
        raise PrithviCheckpointError(
            f"pos_embed has {n_tokens} patch tokens, not a multiple of {per_frame} ({img_size}px)"
        )
    if embed_dim not in _PUBLISHED_HEADS:
        raise PrithviCheckpointError(f"embed_dim {embed_dim} is not a published Prithvi width; pass config=")
    coords = tuple(
        n
        for n, k in (
            ("time", "encoder.temporal_embed_enc.scale"),
            ("location", "encoder.location_embed_enc.scale"),
        )
        if k in state
    )
    return PrithviConfig(
        img_size=img_size,
        patch_size=patch,
        num_frames=n_tokens // per_frame * tubelet,
        tubelet_size=tubelet,
        in_chans=in_chans,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=_PUBLISHED_HEADS[embed_dim],
        decoder_embed_dim=dec_dim,
        decoder_depth=dec_depth,
        decoder_num_heads=16,
        mlp_ratio=hidden / embed_dim,
        coords_encoding=coords,
        coords_scale_learn=bool(coords),
    )


def adapt_pos_embeds(
    state: dict[str, torch.Tensor], src: PrithviConfig, dst: PrithviConfig
) -> dict[str, torch.Tensor]:
    """Resize the stored position embeddings of a native-layout state dict from ``src``'s grid to ``dst``'s."""
    out = dict(state)
    for key in ("encoder.pos_embed", "decoder.decoder_pos_embed"):
        if key in out:
            out[key] = resize_pos_embed(out[key], src.grid_size, dst.grid_size)
    return out


def load_prithvi_checkpoint(
    path: str | os.PathLike,
    *,
    config: PrithviConfig | None = None,
    img_size: int | None = None,
    num_frames: int | None = None,
    sha256: str | None = None,
) -> tuple[PrithviMAE, dict]:
    """Load a published Prithvi MAE checkpoint (EO-1.0 or EO-2.0 layout) with ``strict=True``.

    The file is read with ``weights_only=True`` (no code runs), mapped explicitly to the native layout, checked
    tensor by tensor against the architecture, its position embeddings resized when ``img_size``/``num_frames``
    differ from the checkpoint's, and loaded strictly: every tensor of the model comes from the file and every
    tensor of the file is used.

    Args:
        path: ``Prithvi_100M.pt`` or an EO-2.0 ``.pt`` file.
        config: Architecture; inferred from tensor shapes when omitted (published head counts).
        img_size: Chip size the returned model is natively built for (default: the checkpoint's, 224).
        num_frames: Frames the returned model is natively built for (default: the checkpoint's).
        sha256: Expected hex digest; a mismatch is an error.

    Returns:
        ``(model, info)`` with ``info`` = ``{"path", "sha256", "layout", "n_tensors", "n_params", "config"}``.

    Raises:
        PrithviCheckpointError: Missing, truncated, foreign or mismatching file (the message names the file).
    """
    path = Path(path)
    raw = _read_state_dict(path)
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256.lower():
        raise PrithviCheckpointError(f"{path}: sha256 {digest} differs from the expected {sha256}")
    layout = detect_layout(raw)
    try:
        state = v1_to_native(raw) if layout == "eo1" else dict(raw)
    except KeyError as err:
        raise PrithviCheckpointError(f"{path}: {err.args[0]}") from err
    src = config if config is not None else infer_config(state)
    dst = src.replace(
        img_size=img_size if img_size is not None else src.img_size,
        num_frames=num_frames if num_frames is not None else src.num_frames,
    )
    with torch.device("meta"):  # no memory or random init for tensors that the file replaces anyway
        model = PrithviMAE(dst)
    expected = model.state_dict()
    try:
        state = adapt_pos_embeds(state, src, dst)
    except ValueError as err:
        raise PrithviCheckpointError(f"{path}: {err}") from err
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        raise PrithviCheckpointError(
            f"{path} ({layout} layout) does not match the Prithvi architecture {dst}: "
            f"missing {missing[:6]} ({len(missing)}), unexpected {unexpected[:6]} ({len(unexpected)}), "
            f"shape mismatches {wrong[:4]} ({len(wrong)})"
        )
    state = {
        k: v.float() if v.is_floating_point() else v for k, v in state.items()
    }  # e.g. half-precision files
    model.load_state_dict(state, strict=True, assign=True)
    info = {
        "path": str(path),
        "sha256": digest,
        "layout": layout,
        "n_tensors": len(raw),
        "n_params": sum(v.numel() for v in raw.values()),
        "config": dst,
    }
    return model, info


# ----------------------------------------------------------------------------------------------------------------
# Normalisation and the segmentation model
# ----------------------------------------------------------------------------------------------------------------
def check_reflectance(x: torch.Tensor, name: str = "input") -> None:
    """Refuse inputs that are obviously not surface reflectance (NaN, or DN scaled by 1e4).

    Raises:
        ValueError: With the offending statistic and the likely fix.
    """
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN; fill nodata (the dataset readers use 0 with label = ignore)")
    peak = float(x.detach().abs().amax()) if x.numel() else 0.0
    if peak > MAX_REFLECTANCE:
        raise ValueError(
            f"{name} has |values| up to {peak:.4g}: this model takes surface reflectance (about 0-1.5), not "
            f"reflectance x 1e4 / DN. Divide by {REFLECTANCE_SCALE:g} first."
        )


class HLSNormalize(nn.Module):
    """Guarded per-band standardisation of reflectance with dates stacked as channels (date-major).

    The statistics live in buffers so saved models are self-contained. Defaults are Prithvi's published
    pretraining means/stds (converted from ×1e4 to reflectance), the field's standard for the six HLS bands.
    """

    def __init__(
        self,
        num_frames: int,
        mean: Sequence[float] = PRITHVI_MEAN,
        std: Sequence[float] = PRITHVI_STD,
        scale: float = REFLECTANCE_SCALE,
    ) -> None:
        super().__init__()
        m = torch.tensor(mean, dtype=torch.float32) / scale
        s = torch.tensor(std, dtype=torch.float32) / scale
        self.num_frames = num_frames
        self.register_buffer("mean", m.repeat(num_frames)[None, :, None, None])
        self.register_buffer("std", s.repeat(num_frames)[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"expected reflectance [B, {self.mean.shape[1]}, H, W] ({self.num_frames} date(s) x "
                f"{self.mean.shape[1] // self.num_frames} bands, date-major), got {tuple(x.shape)}"
            )
        check_reflectance(x)
        return (x - self.mean) / self.std


class Norm2d(nn.Module):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _up2(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)


class TokensToMapNeck(nn.Module):
    """The official fine-tuning neck: tokens → ``(D*T, h, w)`` map → four 2× transposed convolutions (16×).

    As in Prithvi's ``ConvTransformerTokensToEmbeddingNeck``: ``fpn1`` and ``fpn2`` are each
    ConvT → LayerNorm → GELU → ConvT, so the map returns to pixel resolution for a 16-pixel patch.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fpn1 = nn.Sequential(_up2(in_dim, out_dim), Norm2d(out_dim), nn.GELU(), _up2(out_dim, out_dim))
        self.fpn2 = nn.Sequential(_up2(out_dim, out_dim), Norm2d(out_dim), nn.GELU(), _up2(out_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        return self.fpn2(self.fpn1(x))


class FCNHead(nn.Module):
    """mmseg-style FCN head of the official configs: 3×3 conv-BN-ReLU (``num_convs=1``), dropout, 1×1 classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        return self.conv_seg(self.dropout(self.convs(x)))


class PrithviSegmenter(nn.Module):
    """Prithvi encoder + tokens-to-map neck + FCN head, for reflectance ``[B, 6*T, H, W]`` → logits ``[B, K, H, W]``.

    The input is reflectance with dates stacked date-major as channels (``date1 B02..B12, date2 ...``); the
    model normalises it (buffers), reshapes it to ``(B, 6, T, H, W)``, pads H and W to multiples of the patch size,
    encodes, and crops the logits back. ``head="linear"`` gives the frozen-encoder *linear probe*: a 1×1
    classifier on the (frozen) token map, upsampled bilinearly, so the probe measures the features themselves.

    Args:
        num_classes: Output classes ``K``.
        num_frames: Dates ``T`` stacked in the input channels.
        config: Encoder architecture (its ``in_chans`` must be 6; ``num_frames`` is overridden by ``num_frames``).
        neck_dim: Channels of the neck; default ``embed_dim * T`` as in the official configs.
        head_channels: Channels of the FCN head (official: 256).
        head: ``"fcn"`` (neck + FCN head, full fine-tuning) or ``"linear"`` (probe).
        dropout: FCN head dropout (official: 0.1).
        freeze_encoder: Keep the encoder fixed (no gradients, eval mode).
    """

    def __init__(
        self,
        num_classes: int,
        num_frames: int = 1,
        config: PrithviConfig = PRITHVI_SMALL,
        *,
        neck_dim: int | None = None,
        head_channels: int = 256,
        head: str = "fcn",
        dropout: float = 0.1,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__()
        if config.in_chans != len(HLS_BANDS):
            raise ValueError(
                f"Prithvi segmentation expects {len(HLS_BANDS)} HLS bands per date, config has {config.in_chans}"
            )
        if head not in ("fcn", "linear"):
            raise ValueError(f"head must be 'fcn' or 'linear', got {head!r}")
        self.config = config.replace(num_frames=num_frames)
        self.num_frames, self.num_classes, self.head_kind = num_frames, num_classes, head
        self.normalize = HLSNormalize(num_frames)
        self.encoder = PrithviEncoder(self.config)
        feat = self.config.embed_dim * (num_frames // self.config.tubelet_size)
        if head == "fcn":
            neck_dim = neck_dim or feat
            self.neck = TokensToMapNeck(feat, neck_dim)
            self.head = FCNHead(neck_dim, head_channels, num_classes, dropout)
        else:
            self.neck = nn.BatchNorm2d(feat)  # a per-feature standardisation keeps the probe a linear model
            self.head = nn.Conv2d(feat, num_classes, 1)
        self.encoder_frozen = False
        if freeze_encoder:
            self.freeze_encoder()

    def freeze_encoder(self) -> None:
        """Fix the encoder: no gradients and always eval mode (the linear-probe protocol)."""
        self.encoder_frozen = True
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> PrithviSegmenter:
        """Switch train/eval mode, keeping a frozen encoder in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def load_encoder_state(self, state: Mapping[str, torch.Tensor], source_config: PrithviConfig) -> None:
        """Load encoder weights (keys without the ``encoder.`` prefix) strictly, resizing the position embedding."""
        state = dict(state)
        state["pos_embed"] = resize_pos_embed(
            state["pos_embed"], source_config.grid_size, self.encoder.grid_size
        )
        self.encoder.load_state_dict(state, strict=True)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Normalised, padded cube → token map ``(B, D*T', h, w)`` and the original ``(H, W)``."""
        x = self.normalize(x)
        b, _, h, w = x.shape
        p = self.config.patch_size
        ph, pw = -h % p, -w % p
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        cube = x.reshape(b, self.num_frames, -1, h + ph, w + pw).permute(0, 2, 1, 3, 4)  # (B, 6, T, H, W)
        tokens = self.encoder(cube)[0][:, 1:]
        grid = self.encoder.patch_embed.grid(cube.shape)
        fmap = tokens.permute(0, 2, 1).reshape(b, -1, grid[1], grid[2])  # channel = d * T' + t
        return fmap, (h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        fmap, (h, w) = self.features(x)
        if self.head_kind == "fcn":
            logits = self.head(self.neck(fmap))
        else:
            logits = self.head(self.neck(fmap))
            logits = F.interpolate(
                logits, scale_factor=self.config.patch_size, mode="bilinear", align_corners=False
            )
        return logits[:, :, :h, :w]


def segmenter_from_mae(
    mae: PrithviMAE, num_classes: int, num_frames: int, img_size: int | None = None, **kwargs
) -> PrithviSegmenter:
    """A :class:`PrithviSegmenter` whose encoder is ``mae``'s (pos embedding resized to ``img_size``/frames)."""
    cfg = mae.config.replace(img_size=img_size or mae.config.img_size)
    seg = PrithviSegmenter(num_classes, num_frames, cfg, **kwargs)
    seg.load_encoder_state(mae.encoder.state_dict(), mae.config)
    return seg

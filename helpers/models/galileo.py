"""Galileo-nano encoder (Tseng et al. 2025), re-implemented in plain torch, key-compatible with the published file.

Galileo is a multimodal, spatio-temporal ViT. Inputs come as four arrays (space-time, space-only, time-only,
static), each split into *band groups*; every group at every patch (and timestep) becomes one token. Tokens whose
group is masked (a modality we do not have, or a cloud) are dropped before attention, so a model fed only the
six HLS bands sees exactly three tokens per patch and timestep: ``S2_RGB``, ``S2_NIR_20m`` and ``S2_SWIR``.

What this module reproduces of the reference code (``single_file_galileo.py`` at nasaharvest/galileo
0f0b5b95, read to learn the architecture; no code copied), checked against the golden outputs in
``weights/galileo_nano/golden`` (``tests/test_galileo.py``):

* Patch embedding by a conv whose 8x8 kernel is resized on the fly to the requested patch size ``p`` (1-8)
  with the FlexiViT rule: the new kernel is the pseudo-inverse of "bicubic, antialiased resize 8x8 -> pxp"
  applied to the stored kernel. Token masks are the pixel masks sampled at the top-left pixel of each patch.
* Each token gets a 128-d sum of its projection and four 32-d encodings concatenated: a learned group
  ("channel") embedding, a 1-D sin-cos encoding of the timestep index, a sin-cos month table, and a 2-D sin-cos
  encoding of the patch position scaled by ``input_resolution_m * p / 10`` (10 m is the model's base GSD, so
  30 m HLS pixels must be passed as 30). Space tokens carry no time/month part, time tokens no space part, static
  tokens only the group part.
* Visible tokens are packed to the front (stable order), padded per batch to the longest sequence, and the
  padding is excluded as attention keys. Masked positions come back as zero vectors before the final LayerNorm,
  so they equal ``norm.bias`` in the output, as in the reference.

The state dict loads with ``strict=True``; every name and shape matches ``encoder.pt``.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from helpers.models import state_dicts

#: Base ground sample distance (m) of the position encoding: a token covers ``res * p / BASE_GSD`` units.
BASE_GSD = 10

SPACE_TIME_BANDS = ("VV", "VH", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12", "NDVI")
SPACE_BANDS = (
    ("elevation", "slope")
    + tuple(f"DW_{c}" for c in range(9))  # Dynamic World class probabilities
    + tuple(f"WC_{c}" for c in range(5))  # WorldCereal layers
)
TIME_BANDS = ("temperature_2m", "total_precipitation_sum", "def", "soil", "aet", "avg_rad")
STATIC_BANDS = (
    ("landscan", "x", "y", "z")
    + tuple(f"DW_static_{c}" for c in range(9))
    + tuple(f"WC_static_{c}" for c in range(5))
)

#: Band groups (token types) of each input array: name -> channel indices, in the model's token order.
SPACE_TIME_GROUPS: dict[str, tuple[int, ...]] = {
    "S1": (0, 1),
    "S2_RGB": (2, 3, 4),
    "S2_Red_Edge": (5, 6, 7),
    "S2_NIR_10m": (8,),
    "S2_NIR_20m": (9,),
    "S2_SWIR": (10, 11),
    "NDVI": (12,),
}
SPACE_GROUPS: dict[str, tuple[int, ...]] = {
    "SRTM": (0, 1),
    "DW": tuple(range(2, 11)),
    "WC": tuple(range(11, 16)),
}
TIME_GROUPS: dict[str, tuple[int, ...]] = {"ERA5": (0, 1), "TC": (2, 3, 4), "VIIRS": (5,)}
STATIC_GROUPS: dict[str, tuple[int, ...]] = {
    "LS": (0,),
    "location": (1, 2, 3),
    "DW_static": tuple(range(4, 13)),
    "WC_static": tuple(range(13, 18)),
}

#: Architecture of the published nano checkpoint (config.json "model"/"encoder").
NANO_CONFIG = {
    "embed_dim": 128,
    "depth": 4,
    "num_heads": 8,
    "mlp_ratio": 4,
    "max_seq_len": 24,
    "max_patch": 8,
}

WEIGHTS_SHA256 = "eab6acacf527886a508a555bc24efe4b4a2cf91b162e84cd1c4a1807e942180c"


# ---------------------------------------------------------------------------------------------------------------
# Fixed encodings
# ---------------------------------------------------------------------------------------------------------------
def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """Sin-cos encoding ``[..., dim]`` of positions ``pos``: first half sines, second half cosines.

    The frequencies are ``10000 ** -(i / (2 * dim))`` for ``i < dim / 2``; this is what the published model was
    trained with (it differs from the usual MAE ``i / (dim / 2)`` exponent, so it is spelled out here).
    """
    if dim % 2:
        raise ValueError(f"sin-cos encoding needs an even dimension, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float32, device=pos.device) / dim / 2.0
    omega = 1.0 / 10000**omega
    angles = pos.to(torch.float32)[..., None] * omega
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def month_table(dim: int) -> torch.Tensor:
    """``[12, dim]`` month encoding: sin then cos of ``2*pi*month/12``, the same angle in every column."""
    angles = torch.arange(12, dtype=torch.float32) / (12 / (2 * math.pi))
    angles = angles[:, None].expand(12, dim // 2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def spatial_encoding(dim: int, h: int, w: int, gsd_ratio: float, device=None) -> torch.Tensor:
    """``[h, w, dim]`` 2-D encoding of a patch grid: half from the column index, half from the row index.

    Positions are patch indices times ``gsd_ratio`` (ground size of a token over the 10 m base), which is how the
    model learned to tell a 30 m, 4-pixel patch from a 10 m one.
    """
    rows = torch.arange(h, dtype=torch.float32, device=device) * float(gsd_ratio)
    cols = torch.arange(w, dtype=torch.float32, device=device) * float(gsd_ratio)
    col_enc = sincos_1d(dim // 2, cols)[None, :, :].expand(h, w, dim // 2)
    row_enc = sincos_1d(dim // 2, rows)[:, None, :].expand(h, w, dim // 2)
    return torch.cat([col_enc, row_enc], dim=-1)


_PINV_CACHE: dict[tuple[int, int], torch.Tensor] = {}


def kernel_resize_pinv(old: int, new: int) -> torch.Tensor:
    """``[new*new, old*old]`` pseudo-inverse of the bicubic antialiased resize ``old x old -> new x new``.

    Applying it to a flattened ``old x old`` kernel gives the kernel whose response to a resized patch best matches
    the original kernel's response to the original patch (FlexiViT). Computed in float32 like the reference, once
    per size.
    """
    key = (old, new)
    if key not in _PINV_CACHE:
        # built outside inference mode, so a table first made while embedding can later take part in fine-tuning
        with torch.inference_mode(False), torch.no_grad():
            _PINV_CACHE[key] = _resize_pinv(old, new)
    return _PINV_CACHE[key]


def _resize_pinv(old: int, new: int) -> torch.Tensor:
    basis = torch.eye(old * old, dtype=torch.float32).reshape(old * old, 1, old, old)
    resized = F.interpolate(basis, size=(new, new), mode="bicubic", antialias=True)
    return torch.linalg.pinv(resized.reshape(old * old, new * new))


def resize_kernel(weight: torch.Tensor, new: int) -> torch.Tensor:
    """Resize a conv kernel ``[O, C, k, k]`` to ``[O, C, new, new]`` (differentiable in ``weight``)."""
    k = weight.shape[-1]
    if new == k:
        return weight
    pinv = kernel_resize_pinv(k, new).to(device=weight.device, dtype=weight.dtype)
    flat = weight.reshape(weight.shape[0], weight.shape[1], k * k)
    return torch.einsum("nk,ock->ocn", pinv, flat).reshape(weight.shape[0], weight.shape[1], new, new)


# ---------------------------------------------------------------------------------------------------------------
# Transformer parts (names follow the checkpoint)
# ---------------------------------------------------------------------------------------------------------------
class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape
        heads = [
            t(x).reshape(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)
            for t in (self.q, self.k, self.v)
        ]
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(*heads, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    """Pre-norm transformer block. The checkpoint was trained with drop-path 0.1; at inference it is identity."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = drop_path

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_path == 0.0:
            return x
        keep = 1.0 - self.drop_path
        mask = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype) < keep
        return x * mask / keep

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self._drop(self.attn(self.norm1(x), key_mask))
        return x + self._drop(self.mlp(self.norm2(x)))


class _PatchEmbed(nn.Module):
    """One group's patch projection: an 8x8 conv kernel, resized for other patch sizes."""

    def __init__(self, in_ch: int, dim: int, max_patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, kernel_size=max_patch, stride=max_patch)

    def forward(self, x: torch.Tensor, patch: int) -> torch.Tensor:
        """``x [N, C, H, W]`` -> ``[N, H/p, W/p, D]``."""
        out = F.conv2d(x, resize_kernel(self.proj.weight, patch), self.proj.bias, stride=patch)
        return out.permute(0, 2, 3, 1)


class GalileoOutput(NamedTuple):
    """Encoder outputs, token masks (1 = masked) alongside; shapes with ``h = H/p``, ``w = W/p``."""

    s_t_x: torch.Tensor  # [B, h, w, T, 7, D]
    sp_x: torch.Tensor  # [B, h, w, 3, D]
    t_x: torch.Tensor  # [B, T, 3, D]
    st_x: torch.Tensor  # [B, 4, D]
    s_t_m: torch.Tensor  # [B, h, w, T, 7]
    sp_m: torch.Tensor  # [B, h, w, 3]
    t_m: torch.Tensor  # [B, T, 3]
    st_m: torch.Tensor  # [B, 4]


class GalileoEncoder(nn.Module):
    """The Galileo encoder with the nano defaults; ``load_state_dict(torch.load(encoder.pt), strict=True)`` works.

    Args:
        embed_dim, depth, num_heads, mlp_ratio, max_seq_len, max_patch: Architecture (defaults: nano).
        drop_path: Stochastic depth during training (the checkpoint was pretrained with 0.1; we default to 0 for
            fine-tuning on small data; it never acts in ``eval()``).
    """

    def __init__(
        self,
        embed_dim: int = 128,
        depth: int = 4,
        num_heads: int = 8,
        mlp_ratio: float = 4,
        max_seq_len: int = 24,
        max_patch: int = 8,
        drop_path: float = 0.0,
    ):
        super().__init__()
        if embed_dim % 8:
            raise ValueError(f"embed_dim must be a multiple of 8 (four sin-cos parts), got {embed_dim}")
        self.embed_dim = embed_dim
        self.max_patch = max_patch
        q = embed_dim // 4
        self.blocks = nn.ModuleList(_Block(embed_dim, num_heads, mlp_ratio, drop_path) for _ in range(depth))
        self.pos_embed = nn.Parameter(sincos_1d(q, torch.arange(max_seq_len)), requires_grad=False)
        self.month_embed = nn.Embedding.from_pretrained(month_table(q), freeze=True)
        self.s_t_channel_embed = nn.Parameter(torch.zeros(len(SPACE_TIME_GROUPS), q))
        self.sp_channel_embed = nn.Parameter(torch.zeros(len(SPACE_GROUPS), q))
        self.t_channel_embed = nn.Parameter(torch.zeros(len(TIME_GROUPS), q))
        self.st_channel_embed = nn.Parameter(torch.zeros(len(STATIC_GROUPS), q))
        self.space_time_embed = nn.ModuleDict(
            {g: _PatchEmbed(len(i), embed_dim, max_patch) for g, i in SPACE_TIME_GROUPS.items()}
        )
        self.space_embed = nn.ModuleDict(
            {g: _PatchEmbed(len(i), embed_dim, max_patch) for g, i in SPACE_GROUPS.items()}
        )
        self.time_embed = nn.ModuleDict({g: nn.Linear(len(i), embed_dim) for g, i in TIME_GROUPS.items()})
        self.static_embed = nn.ModuleDict({g: nn.Linear(len(i), embed_dim) for g, i in STATIC_GROUPS.items()})
        self.norm = nn.LayerNorm(embed_dim)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    # -- tokenisation ----------------------------------------------------------------------------------------------
    def _tokens(self, s_t_x, sp_x, t_x, st_x, s_t_m, sp_m, t_m, st_m, months, patch, res):
        b, hh, ww, t, _ = s_t_x.shape
        if hh % patch or ww % patch:
            raise ValueError(f"image size {hh}x{ww} is not a multiple of the patch size {patch}")
        h, w = hh // patch, ww // patch
        if h != w:
            raise ValueError(f"the spatial encoding needs a square patch grid, got {h}x{w} patches")
        if t > self.pos_embed.shape[0]:
            raise ValueError(f"{t} timesteps exceed the model's maximum of {self.pos_embed.shape[0]}")
        s_t_tm = s_t_m[:, ::patch, ::patch]
        sp_tm = sp_m[:, ::patch, ::patch]

        s_t, sp, tt, st = self._group_tokens(s_t_x, sp_x, t_x, st_x, s_t_tm, sp_tm, t_m, st_m, patch)
        enc_st, enc_sp, enc_t, enc_c = self._encodings(
            s_t_x, t_x, st_x, months, (h, w), res * patch / BASE_GSD
        )
        d = self.embed_dim
        tokens = torch.cat(
            [
                (s_t + enc_st).reshape(b, -1, d),
                (sp + enc_sp).reshape(b, -1, d),
                (tt + enc_t).reshape(b, -1, d),
                st + enc_c,
            ],
            dim=1,
        )
        masks = torch.cat(
            [s_t_tm.reshape(b, -1), sp_tm.reshape(b, -1), t_m.reshape(b, -1), st_m.reshape(b, -1)], 1
        )
        return tokens, masks >= 1, (h, w, t), (s_t_tm, sp_tm, t_m, st_m)

    def _group_tokens(self, s_t_x, sp_x, t_x, st_x, s_t_tm, sp_tm, t_m, st_m, patch) -> tuple:
        """One token per channel group (and patch, date), projected only where some token of the group is visible.

        Returns the space-time, space, time and static tokens, ``[B, h, w, T, G, D]``, ``[B, h, w, G, D]``,
        ``[B, T, G, D]`` and ``[B, G, D]``.
        """
        b, hh, ww, t, _ = s_t_x.shape
        h, w, d = hh // patch, ww // patch, self.embed_dim
        zeros = s_t_x.new_zeros(b, h, w, t, d)
        st_tok = []
        for gi, (g, idx) in enumerate(SPACE_TIME_GROUPS.items()):
            if bool((s_t_tm[..., gi] == 0).any()):  # projected only if some token of the group is visible
                xg = s_t_x[..., list(idx)].permute(0, 3, 4, 1, 2).reshape(b * t, len(idx), hh, ww)
                st_tok.append(
                    self.space_time_embed[g](xg, patch).reshape(b, t, h, w, d).permute(0, 2, 3, 1, 4)
                )
            else:
                st_tok.append(zeros)
        s_t = torch.stack(st_tok, dim=-2)
        sp_tok = []
        for gi, (g, idx) in enumerate(SPACE_GROUPS.items()):
            if bool((sp_tm[..., gi] == 0).any()):
                sp_tok.append(self.space_embed[g](sp_x[..., list(idx)].permute(0, 3, 1, 2), patch))
            else:
                sp_tok.append(zeros[:, :, :, 0])
        sp = torch.stack(sp_tok, dim=-2)
        t_tok = [
            self.time_embed[g](t_x[..., list(idx)])
            if bool((t_m[..., gi] == 0).any())
            else t_x.new_zeros(b, t, d)
            for gi, (g, idx) in enumerate(TIME_GROUPS.items())
        ]
        tt = torch.stack(t_tok, dim=-2)
        c_tok = [
            self.static_embed[g](st_x[..., list(idx)])
            if bool((st_m[..., gi] == 0).any())
            else st_x.new_zeros(b, d)
            for gi, (g, idx) in enumerate(STATIC_GROUPS.items())
        ]
        st = torch.stack(c_tok, dim=-2)
        return s_t, sp, tt, st

    def _encodings(self, s_t_x, t_x, st_x, months, grid: tuple[int, int], gsd_ratio: float) -> tuple:
        """What is added to each token kind: [group | time index | month | space], each a quarter of the width."""
        b, _, _, t, _ = s_t_x.shape
        h, w = grid
        q = self.embed_dim // 4
        month = self.month_embed(months.long())  # [B, T, q]
        pos = self.pos_embed[:t]  # [T, q]
        space = spatial_encoding(q, h, w, gsd_ratio, device=s_t_x.device)
        n_st, n_sp, n_t, n_c = (
            len(SPACE_TIME_GROUPS),
            len(SPACE_GROUPS),
            len(TIME_GROUPS),
            len(STATIC_GROUPS),
        )
        enc_st = torch.cat(
            [
                self.s_t_channel_embed[None, None, None, None].expand(b, h, w, t, n_st, q),
                pos[None, None, None, :, None].expand(b, h, w, t, n_st, q),
                month[:, None, None, :, None].expand(b, h, w, t, n_st, q),
                space[None, :, :, None, None].expand(b, h, w, t, n_st, q),
            ],
            dim=-1,
        )
        enc_sp = torch.cat(
            [
                self.sp_channel_embed[None, None, None].expand(b, h, w, n_sp, q),
                s_t_x.new_zeros(b, h, w, n_sp, 2 * q),
                space[None, :, :, None].expand(b, h, w, n_sp, q),
            ],
            dim=-1,
        )
        enc_t = torch.cat(
            [
                self.t_channel_embed[None, None].expand(b, t, n_t, q),
                pos[None, :, None].expand(b, t, n_t, q),
                month[:, :, None].expand(b, t, n_t, q),
                t_x.new_zeros(b, t, n_t, q),
            ],
            dim=-1,
        )
        enc_c = torch.cat(
            [self.st_channel_embed[None].expand(b, n_c, q), st_x.new_zeros(b, n_c, 3 * q)], dim=-1
        )
        return enc_st, enc_sp, enc_t, enc_c

    def _transform(self, tokens: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Run the blocks on the visible tokens only; masked positions return as zeros (then LayerNorm)."""
        b, n, d = tokens.shape
        visible = ~masked
        counts = visible.sum(1)
        if bool((counts == n).all()):
            x = tokens
            for blk in self.blocks:
                x = blk(x, None)
            return self.norm(x)
        length = int(counts.max())
        if (
            length == 0
        ):  # nothing visible anywhere (e.g. windows of pure nodata): all outputs are masked slots
            return self.norm(tokens.new_zeros(b, n, d))
        # pack visible tokens to the front, keeping their order
        order = torch.sort(masked.to(torch.uint8), dim=1, stable=True).indices
        idx = order[:, :length]
        x = tokens.gather(1, idx[..., None].expand(b, length, d))
        keys = torch.arange(length, device=tokens.device)[None, :] < counts[:, None]
        keys[:, 0] |= counts == 0  # an all-masked sample attends to one dummy key (its outputs are discarded)
        x = x * keys[..., None]
        same_len = bool((counts == length).all())
        for blk in self.blocks:
            x = blk(x, None if same_len else keys)
        out = tokens.new_zeros(b, n, d).scatter(1, idx[..., None].expand(b, length, d), x)
        # padding rows were scattered onto masked slots; zero them so masked tokens leave the norm as its bias
        return self.norm(out * visible[..., None])

    def forward(
        self,
        s_t_x: torch.Tensor,
        sp_x: torch.Tensor,
        t_x: torch.Tensor,
        st_x: torch.Tensor,
        s_t_m: torch.Tensor,
        sp_m: torch.Tensor,
        t_m: torch.Tensor,
        st_m: torch.Tensor,
        months: torch.Tensor,
        patch_size: int,
        input_resolution_m: float = BASE_GSD,
    ) -> GalileoOutput:
        """Encode normalised inputs (pixel masks: 1 = hidden) into tokens after the final LayerNorm.

        Args:
            s_t_x: ``[B, H, W, T, 13]`` space-time bands (:data:`SPACE_TIME_BANDS`).
            sp_x: ``[B, H, W, 16]`` space bands (:data:`SPACE_BANDS`).
            t_x: ``[B, T, 6]`` time bands (:data:`TIME_BANDS`).
            st_x: ``[B, 18]`` static bands (:data:`STATIC_BANDS`).
            s_t_m: ``[B, H, W, T, 7]`` space-time group mask.
            sp_m: ``[B, H, W, 3]`` space group mask.
            t_m: ``[B, T, 3]`` time group mask.
            st_m: ``[B, 4]`` static group mask.
            months: ``[B, T]`` month index per timestep, 0 = January.
            patch_size: Pixels per patch side, 1 to 8; ``H`` and ``W`` must be multiples, ``H/p == W/p``.
            input_resolution_m: Pixel size in metres (30 for HLS).

        Returns:
            :class:`GalileoOutput` with tokens and token-level masks.
        """
        if not 1 <= patch_size <= self.max_patch:
            raise ValueError(f"patch_size must be 1..{self.max_patch}, got {patch_size}")
        tokens, masked, (h, w, t), tm = self._tokens(
            s_t_x, sp_x, t_x, st_x, s_t_m, sp_m, t_m, st_m, months, patch_size, input_resolution_m
        )
        out = self._transform(tokens, masked)
        b, d = out.shape[0], self.embed_dim
        n1 = h * w * t * len(SPACE_TIME_GROUPS)
        n2 = n1 + h * w * len(SPACE_GROUPS)
        n3 = n2 + t * len(TIME_GROUPS)
        return GalileoOutput(
            out[:, :n1].reshape(b, h, w, t, len(SPACE_TIME_GROUPS), d),
            out[:, n1:n2].reshape(b, h, w, len(SPACE_GROUPS), d),
            out[:, n2:n3].reshape(b, t, len(TIME_GROUPS), d),
            out[:, n3:],
            *tm,
        )


def average_tokens(out: GalileoOutput) -> torch.Tensor:
    """``[B, D]`` mean of every visible token of a sample (all four token families)."""
    b, d = out.st_x.shape[0], out.st_x.shape[-1]
    x = torch.cat(
        [out.s_t_x.reshape(b, -1, d), out.sp_x.reshape(b, -1, d), out.t_x.reshape(b, -1, d), out.st_x], 1
    )
    m = torch.cat([out.s_t_m.reshape(b, -1), out.sp_m.reshape(b, -1), out.t_m.reshape(b, -1), out.st_m], 1)
    keep = (m < 1).to(x.dtype)
    return (x * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)


def pool_per_patch(out: GalileoOutput) -> torch.Tensor:
    """``[B, h, w, D]`` per patch: mean of its visible space-time and space tokens plus all visible time/static tokens.

    This is Galileo's own per-patch pooling for dense tasks. A patch with no visible token gets NaN (0/0), like
    the reference; callers that need finite values fill it.
    """
    b, h, w, t, g, d = out.s_t_x.shape
    keep_st = (out.s_t_m < 1).to(out.s_t_x.dtype).reshape(b, h, w, t * g, 1)
    keep_sp = (out.sp_m < 1).to(out.s_t_x.dtype)[..., None]
    keep_t = (out.t_m < 1).to(out.s_t_x.dtype).reshape(b, 1, 1, -1, 1)
    keep_c = (out.st_m < 1).to(out.s_t_x.dtype).reshape(b, 1, 1, -1, 1)
    total = (
        (out.s_t_x.reshape(b, h, w, t * g, d) * keep_st).sum(3)
        + (out.sp_x * keep_sp).sum(3)
        + (out.t_x.reshape(b, 1, 1, -1, d) * keep_t).sum(3)
        + (out.st_x.reshape(b, 1, 1, -1, d) * keep_c).sum(3)
    )
    count = keep_st.sum(3) + keep_sp.sum(3) + keep_t.sum(3) + keep_c.sum(3)
    return total / count


def load_galileo_nano(path: str | os.PathLike, *, drop_path: float = 0.0) -> GalileoEncoder:
    """Build the nano encoder and load ``encoder.pt`` strictly (inert load: ``weights_only=True``, CPU).

    Raises:
        ValueError: The file is not a loadable torch state dict, or its keys/shapes do not match the nano encoder
            (e.g. a truncated download or another model's file); the message names the file.
    """
    model = GalileoEncoder(**NANO_CONFIG, drop_path=drop_path)
    state = state_dicts.load(path)
    state_dicts.check_and_load(model, state, path)
    return model.eval()

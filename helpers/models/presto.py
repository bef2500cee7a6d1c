"""Presto encoder (Tseng et al. 2023), re-implemented in plain torch, key-compatible with the published file.

Presto is a per-pixel time-series transformer: one pixel's monthly series of Sentinel-1/2, ERA5, SRTM, NDVI and
Dynamic World values becomes one token per (band group, timestep), plus a location token. It never sees a
neighbouring pixel, which is why it is the study's "spectral-temporal only" foundation model, the counterpart of
Galileo's spatial tokens.

What this module reproduces of the reference (``single_file_presto.py`` and ``presto/presto.py`` at
nasaharvest/presto 13173d02, read to learn the architecture; no code copied), checked against the golden outputs
in ``weights/presto/golden`` (``tests/test_presto.py``):

* Nine band groups, each projected by its own linear layer per timestep; SRTM is static and gives one token
  (from timestep 0); Dynamic World classes are embedded (class 9 = "not available" = masked).
* Token encodings are concatenated ``[month (32) | group (32) | timestep index (64)]`` and added; the SRTM token
  has only the group part.
* A group token is masked when any band of the group is masked; masked tokens are dropped, a location token
  (lat/lon -> unit sphere -> linear) is put in front, and two pre-norm blocks run over what is left. Samples with
  different numbers of visible tokens are padded and the padding excluded as attention keys (the package
  version's behaviour; the single-file version requires equal counts, and both agree when counts are equal).
* The pooled output is the LayerNorm of the mean over the location token and the visible tokens.

One extension: ``months`` may be a ``[B, T]`` array of the true month of each timestep. The reference takes only a
start month and assumes consecutive months; the study's crop chips have three dates months apart, so their real
months are passed (the timestep index still runs 0, 1, 2). With an int or ``[B]`` start month the reference
behaviour is kept.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from helpers.models import state_dicts

BANDS = (
    "VV", "VH", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12",
    "temperature_2m", "total_precipitation", "elevation", "slope", "NDVI",
)  # fmt: skip

#: Band groups in token order: name -> indices into :data:`BANDS`.
GROUPS: dict[str, tuple[int, ...]] = {
    "S1": (0, 1),
    "S2_RGB": (2, 3, 4),
    "S2_Red_Edge": (5, 6, 7),
    "S2_NIR_10m": (8,),
    "S2_NIR_20m": (9,),
    "S2_SWIR": (10, 11),
    "ERA5": (12, 13),
    "SRTM": (14, 15),
    "NDVI": (16,),
}
STATIC_GROUP = "SRTM"
DW_MISSING = 9  # Dynamic World "not available"; its tokens are masked

#: Per-band pretraining normalisation ``x = (raw + ADD) / DIV`` (S1 in dB, S2 reflectance x 1e4, ERA5 in K and m).
NORM_ADD = (25.0, 25.0) + (0.0,) * 10 + (-272.15, 0.0, 0.0, 0.0, 0.0)
NORM_DIV = (25.0, 25.0) + (1e4,) * 10 + (35.0, 0.03, 2000.0, 50.0, 1.0)

WEIGHTS_SHA256 = "559c9d76f525bdf2dd3774da8b1e7f1510769b73baacac12e9e4d8d5c67fbe65"


def sinusoid_table(n: int, dim: int, base: float = 1000.0) -> torch.Tensor:
    """``[n, dim]`` transformer position table, interleaved: even columns sine, odd columns cosine, base 1000."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    expo = 2 * (torch.arange(dim) // 2).to(torch.float64) / dim
    angles = pos / base**expo
    table = torch.where(torch.arange(dim) % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.to(torch.float32)


def month_table(dim: int) -> torch.Tensor:
    """``[12, dim]``: sin then cos of ``2*pi*month/12``, repeated over each half."""
    angles = torch.arange(12, dtype=torch.float64) / (12 / (2 * math.pi))
    angles = angles[:, None].expand(12, dim // 2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).to(torch.float32)


def expand_months(month: int | torch.Tensor, batch: int, steps: int, device=None) -> torch.Tensor:
    """``[B, T]`` month of every timestep from an int start month, ``[B]`` start months, or ``[B, T]`` months."""
    if isinstance(month, int):
        month = torch.full((batch,), month, dtype=torch.long, device=device)
    month = torch.as_tensor(month, device=device).long()
    if month.ndim == 0:
        month = month.expand(batch)
    if int(month.min()) < 0 or int(month.max()) > 11:
        raise ValueError(f"months must be 0 (January) .. 11 (December), got {month.min()}..{month.max()}")
    if month.ndim == 1:
        return (month[:, None] + torch.arange(steps, device=month.device)[None]) % 12
    if tuple(month.shape) != (batch, steps):
        raise ValueError(f"months must be int, [B] or [B, T] = [{batch}, {steps}], got {tuple(month.shape)}")
    return month


def latlon_to_xyz(latlons: torch.Tensor) -> torch.Tensor:
    """Degrees ``[B, 2]`` (lat, lon) -> unit-sphere ``[B, 3]``, the form of the location token's input."""
    rad = latlons * (math.pi / 180)
    lat, lon = rad[:, 0], rad[:, 1]
    return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon), torch.sin(lat)], -1)


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_mask)
        return x + self.mlp(self.norm2(x))


class PrestoEncoder(nn.Module):
    """The Presto encoder with the published defaults (128-d, 2 blocks, 8 heads, MLP ratio 4, 24 timesteps)."""

    def __init__(
        self,
        embed_dim: int = 128,
        depth: int = 2,
        num_heads: int = 8,
        mlp_ratio: float = 4,
        max_seq_len: int = 24,
        channel_ratio: float = 0.25,
        month_ratio: float = 0.25,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        ch, mo = int(embed_dim * channel_ratio), int(embed_dim * month_ratio)
        self.eo_patch_embed = nn.ModuleDict({g: nn.Linear(len(i), embed_dim) for g, i in GROUPS.items()})
        self.dw_embed = nn.Embedding(DW_MISSING + 1, embed_dim)
        self.latlon_embed = nn.Linear(3, embed_dim)
        self.blocks = nn.ModuleList(_Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        pos_dim = embed_dim - ch - mo
        self.pos_embed = nn.Parameter(sinusoid_table(max_seq_len, pos_dim)[None], requires_grad=False)
        self.month_embed = nn.Embedding.from_pretrained(month_table(mo), freeze=True)
        self.channel_embed = nn.Embedding(len(GROUPS) + 1, ch)  # + Dynamic World
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _tokens(self, x, dynamic_world, mask, months):
        """Tokens and masks of the groups that are visible somewhere in the batch, and their full-list positions.

        A group hidden for every sample can never be kept, so it is not projected at all (the result is the same;
        for HLS input this skips six of ten projections).
        """
        b, t, _ = x.shape
        month = self.month_embed(months)  # [B, T, mo]
        pos = self.pos_embed[0, :t][None].expand(b, t, -1)
        tokens, masks, where = [], [], []
        offset = 0
        for gi, (g, idx) in enumerate(list(GROUPS.items()) + [("dynamic_world", ())]):
            steps = 1 if g == STATIC_GROUP else t
            if g == "dynamic_world":
                gm = dynamic_world == DW_MISSING
            else:
                gm = mask[:, :steps, list(idx)].amax(-1) >= 1
            positions = torch.arange(offset, offset + steps, device=x.device)
            offset += steps
            if bool(gm.all()):
                continue
            chan = self.channel_embed.weight[gi][None, None].expand(b, steps, -1)
            if g == "dynamic_world":
                tok = self.dw_embed(dynamic_world.long())
            else:
                tok = self.eo_patch_embed[g](x[:, :steps, list(idx)])
            if g == STATIC_GROUP:
                enc = torch.cat([torch.zeros_like(month[:, :1]), chan, torch.zeros_like(pos[:, :1])], -1)
            else:
                enc = torch.cat([month, chan, pos], -1)
            tokens.append(tok + enc)
            masks.append(gm)
            where.append(positions)
        if not tokens:
            empty = x.new_zeros(b, 0, self.embed_dim)
            return (
                empty,
                torch.zeros(b, 0, dtype=torch.bool, device=x.device),
                torch.zeros(0, dtype=torch.long),
            )
        return torch.cat(tokens, 1), torch.cat(masks, 1), torch.cat(where)

    def forward_tokens(
        self,
        x: torch.Tensor,
        dynamic_world: torch.Tensor,
        latlons: torch.Tensor,
        mask: torch.Tensor | None = None,
        month: int | torch.Tensor = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Visible tokens after the blocks (before the final LayerNorm), with their positions.

        Returns:
            ``x [B, 1 + K, D]`` (location token first, then visible tokens in token order, padded to the longest
            sample), ``kept [B, K]`` positions of those tokens in the full ``9T + 1`` token list (-1 for padding),
            and ``valid [B, 1 + K]`` (False for padding).
        """
        b, t, nb = x.shape
        if nb != len(BANDS):
            raise ValueError(f"x must have {len(BANDS)} bands in the order {BANDS}, got {nb}")
        if t > self.pos_embed.shape[1]:
            raise ValueError(f"{t} timesteps exceed the model's maximum of {self.pos_embed.shape[1]}")
        if mask is None:
            mask = torch.zeros_like(x)
        months = expand_months(month, b, t, device=x.device)
        tokens, masked, where = self._tokens(x, dynamic_world, mask, months)
        d = tokens.shape[2]
        counts = (~masked).sum(1)
        if bool((masked == masked[:1]).all()):  # one mask pattern for the whole batch: plain column selection
            cols = torch.nonzero(~masked[0]).flatten()
            tokens = tokens[:, cols]
            kept = where[cols][None].expand(b, -1)
            valid = torch.ones(b, len(cols), dtype=torch.bool, device=x.device)
        else:
            order = torch.sort(masked.to(torch.uint8), dim=1, stable=True).indices
            length = int(counts.max())
            order = order[:, :length]
            tokens = tokens.gather(1, order[..., None].expand(b, length, d))
            kept = where[order]
            valid = torch.arange(length, device=x.device)[None] < counts[:, None]
        loc = self.latlon_embed(latlon_to_xyz(latlons.to(x.dtype)))[:, None]
        h = torch.cat([loc, tokens * valid[..., None]], 1)
        valid = torch.cat([torch.ones_like(valid[:, :1]), valid], 1)
        key_mask = None if bool(valid.all()) else valid
        for blk in self.blocks:
            h = blk(h, key_mask)
        kept = torch.where(valid[:, 1:], kept, torch.full_like(kept, -1))
        return h, kept, valid

    def forward(
        self,
        x: torch.Tensor,
        dynamic_world: torch.Tensor,
        latlons: torch.Tensor,
        mask: torch.Tensor | None = None,
        month: int | torch.Tensor = 0,
    ) -> torch.Tensor:
        """Pooled ``[B, D]`` embedding: LayerNorm of the mean over the location token and the visible tokens.

        Args:
            x: ``[B, T, 17]`` normalised bands in :data:`BANDS` order.
            dynamic_world: ``[B, T]`` class 0-8, or 9 for "not available".
            latlons: ``[B, 2]`` latitude, longitude in degrees.
            mask: ``[B, T, 17]``, 1 = value missing (its group's token is dropped); ``None`` = all present.
            month: Start month (int or ``[B]``, later steps consecutive) or ``[B, T]`` months; 0 = January.
        """
        h, _, valid = self.forward_tokens(x, dynamic_world, latlons, mask, month)
        w = valid.to(h.dtype)[..., None]
        return self.norm((h * w).sum(1) / w.sum(1))


def load_presto(path: str | os.PathLike) -> PrestoEncoder:
    """Build the encoder and load the ``encoder.*`` half of ``default_model.pt`` strictly (inert, CPU).

    The published file holds encoder and decoder; the decoder keys are checked to be present (so a wrong file is
    caught) and then left out.

    Raises:
        ValueError: The file is not a loadable state dict or not the Presto encoder-decoder; the message names it.
    """
    state = state_dicts.load(path)
    if not any(k.startswith("decoder.") for k in state):
        raise ValueError(f"{path}: not a Presto encoder-decoder checkpoint (no 'decoder.*' keys)")
    enc = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    model = PrestoEncoder()
    state_dicts.check_and_load(model, enc, path)
    return model.eval()

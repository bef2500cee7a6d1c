"""What an in-study pretraining optimises: its settings, the crops it reads, the model and the two pretext losses.

:mod:`helpers.runs.pretrain` runs, caches, probes and records a pretraining; this module holds the parts a reader
checks to know *what* was pretrained: :class:`PretrainConfig` (model size, budget, stopping rule, mask ratios), the
unlabelled images as int16 reflectance and their random crops (:func:`load_images`, :func:`sample_crops`), the small
Prithvi-architecture MAE with a band-mask embedding (:class:`Pretrainer`), and the losses of the ``"mae"`` and
``"spectral"`` pretexts (:func:`mae_step`, :func:`spectral_step`), nodata pixels left out of both.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.models.prithvi import HLS_BANDS, PRITHVI_SMALL, HLSNormalize, PrithviConfig, PrithviMAE

PRETEXTS = ("mae", "spectral")


@dataclass(frozen=True)
class PretrainConfig:
    """Pretraining settings (all of them enter the cache key).

    Attributes:
        pretext: ``"mae"`` or ``"spectral"``.
        model: Architecture; ``img_size`` and ``num_frames`` are overridden by ``crop_size`` and the data.
        crop_size: Side of the random training crops (a multiple of the patch size).
        mask_ratio: MAE: fraction of tokens hidden (Prithvi: 0.75).
        band_mask_ratio: Spectral: fraction of each token's bands hidden (rounded to whole bands, at least one).
        date_mask_ratio: Spectral, multi-date data only: fraction of tokens whose bands are all hidden.
        epochs: Cap on passes over the crops (``crops_per_chip`` random crops per image per epoch); the run
            stops earlier on its own loss plateau (``patience``).
        crops_per_chip: Random crops drawn per training image and epoch.
        batch_size: Crops per optimiser step.
        lr: Peak AdamW learning rate (linear warm-up, cosine decay).
        weight_decay: AdamW weight decay on weight matrices (MAE: 0.05).
        warmup_epochs: Warm-up length in epochs.
        norm_pix_loss: Standardise each target patch (MAE option; Prithvi-100M did not).
        single_date: Split multi-date chips into single dates (a 1-frame model; used to pool tasks).
        patience: Stop after this many epochs whose mean loss is not ``min_rel_improvement`` below the best
            epoch mean so far (``None``: run every epoch). Pretraining has no labels to validate on, so its
            plateau is the training loss's; the cosine schedule spans ``epochs``, so a plateau before the cap is
            a plateau at a still-high learning rate.
        min_rel_improvement: Relative fall of the epoch-mean loss that counts as progress.
        probe_every: Probe-plateau mode (``None``: the epoch loss rule above). Every ``probe_every`` optimiser
            steps the frozen encoder is scored by a ridge linear probe on the validation split of each probe task
            (:mod:`helpers.runs.probe`); the run stops when the mean probe score, smoothed over ``probe_smooth``
            probes, has not risen by ``probe_min_delta`` for ``probe_patience`` probes, or at ``max_steps``, and
            keeps the encoder of the best probe. The learning rate warms up over ``warmup_steps`` and then stays
            constant, so where the run stops does not depend on the cap (``epochs`` and ``warmup_epochs`` are unused
            in this mode).
        probe_patience: Probes without progress before the run stops.
        probe_min_delta: Rise of the mean probe ``miou_macro`` (a fraction) that counts as progress.
        max_steps: Cap of the probe-plateau mode, set well past the measured plateau (a run that reaches it says
            ``stopped by cap``).
        warmup_steps: Linear warm-up of the probe-plateau mode.
        probe_chips: Training chips per probe task the ridge head is fitted on.
        probe_pixels: Labelled training pixels per probe task the ridge head is fitted on.
        probe_smooth: The plateau rule reads the mean of the last ``probe_smooth`` probes: one probe moves by a
            point or two between neighbouring checkpoints (measured), more than the progress it must detect.
        probe_held_out: Splits of the probe tasks the probe is scored on (:func:`helpers.runs.probe.probe_tasks`).
    """

    pretext: str = "mae"
    model: PrithviConfig = field(default_factory=lambda: PRITHVI_SMALL)
    crop_size: int = 64
    mask_ratio: float = 0.75
    band_mask_ratio: float = 0.5
    date_mask_ratio: float = 0.25
    epochs: int = 30
    crops_per_chip: int = 4
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    norm_pix_loss: bool = False
    single_date: bool = False
    patience: int | None = 3
    min_rel_improvement: float = 0.01
    probe_every: int | None = None
    probe_patience: int = 6
    probe_min_delta: float = 0.005
    max_steps: int = 20_000
    warmup_steps: int = 200
    probe_chips: int = 8
    probe_pixels: int = 20_000
    probe_smooth: int = 3
    probe_held_out: tuple[str, ...] = ("val",)

    def __post_init__(self) -> None:
        if self.pretext not in PRETEXTS:
            raise ValueError(f"pretext must be one of {PRETEXTS}, got {self.pretext!r}")
        if self.crop_size % self.model.patch_size:
            raise ValueError(
                f"crop_size {self.crop_size} is not a multiple of the patch size {self.model.patch_size}"
            )
        for name in ("mask_ratio", "band_mask_ratio", "date_mask_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")
        if self.probe_every is not None and (self.probe_every < 1 or self.max_steps < self.probe_every):
            raise ValueError("probe_every must be at least 1 and at most max_steps")

    def model_config(self, num_frames: int) -> PrithviConfig:
        """The architecture at the pretraining crop size and frame count."""
        return self.model.replace(img_size=self.crop_size, num_frames=num_frames, in_chans=len(HLS_BANDS))

    def to_dict(self) -> dict:
        """Plain JSON-able form (for the cache key and ``config.json``)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


#: Pretraining imagery is held in memory as int16 reflectance x 1e4 (the files' own precision), half of float32:
#: the pooled corpus is thousands of images.
_SCALE = 1e4


def load_images(datasets: Sequence, single_date: bool = False) -> list[np.ndarray]:
    """Training imagery (labels unused) as int16 ``(6*T, H, W)`` reflectance x 1e4; multi-date chips split if asked.

    :func:`sample_crops` turns crops back into float32 reflectance. Values are rounded to 1e-4, the precision of
    the HLS files every dataset here is read from. A source that declares one ``image_shape`` for all its images (a
    :class:`helpers.data.corpus.Corpus`) is read into one block: a single allocation that goes back to the system
    when the run ends, where thousands of separate arrays leave an engine worker's memory fragmented and held
    (measured on the default corpus of 6,144 images: 1.37 of 1.46 GB still resident after freeing per-image arrays,
    0.34 GB after freeing the block, the process's start being 0.32 GB).

    Raises:
        ValueError: A chip of the wrong shape, or with values that cannot be reflectance (beyond +-3.27).
    """
    images = []
    nb = len(HLS_BANDS)
    for ds in datasets:
        ids = list(ds.chip_ids("train"))
        shape = getattr(ds, "image_shape", None)
        block = np.empty((len(ids), *shape), np.int16) if shape is not None else None
        arrays = []
        for k, cid in enumerate(tqdm(ids, desc=f"{ds.name} imagery", leave=False, disable=None)):
            a, _ = ds.read_arrays(cid)
            a = np.asarray(a, dtype=np.float32)
            if a.ndim != 3 or a.shape[0] % nb or (shape is not None and a.shape != tuple(shape)):
                expected = tuple(shape) if shape is not None else "(6*T, H, W)"
                raise ValueError(f"{ds.name}: chip {cid!r} has shape {a.shape}; expected {expected}")
            if np.abs(a).max(initial=0.0) * _SCALE > np.iinfo(np.int16).max:
                raise ValueError(f"{ds.name}: chip {cid!r} has values beyond +-3.27: not surface reflectance")
            if block is not None:
                np.rint(a * _SCALE, out=a)
                block[k] = a
                arrays.append(block[k])
            else:
                arrays.append(np.rint(a * _SCALE).astype(np.int16))
        for q in arrays:
            images += [q[i : i + nb] for i in range(0, q.shape[0], nb)] if single_date else [q]
    return images


def sample_crops(images: Sequence[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random ``size``-pixel crops (zero-padded where an image is smaller), each randomly rotated/flipped.

    Float32 reflectance, from the images of :func:`load_images` (int16 x 1e4) or float images as they are.
    """
    out = np.zeros((n, images[0].shape[0], size, size), dtype=np.float32)
    order = np.concatenate([rng.permutation(len(images)) for _ in range(-(-n // len(images)))])[:n]
    for k, i in enumerate(order):
        a = images[int(i)]
        h, w = a.shape[1:]
        top = int(rng.integers(0, h - size + 1)) if h > size else 0
        left = int(rng.integers(0, w - size + 1)) if w > size else 0
        c = np.rot90(a[:, top : top + size, left : left + size], int(rng.integers(4)), axes=(1, 2))
        if rng.integers(2):
            c = c[:, :, ::-1]
        out[k, :, : c.shape[1], : c.shape[2]] = c
    if images[0].dtype == np.int16:
        out *= np.float32(1.0 / _SCALE)
    return out


class Pretrainer(nn.Module):
    """A :class:`PrithviMAE` with in-model normalisation, plus the spectral pretext's band-mask embedding."""

    def __init__(self, config: PrithviConfig, pretext: str) -> None:
        super().__init__()
        self.pretext = pretext
        self.normalize = HLSNormalize(config.num_frames)
        self.mae = PrithviMAE(config)
        if pretext == "spectral":
            self.band_mask_embed = nn.Parameter(torch.randn(config.in_chans, config.embed_dim) * 0.02)

    def cube(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reflectance ``[B, 6T, H, W]`` → normalised cube ``(B, 6, T, H, W)`` and pixel validity ``(B, T, H, W)``."""
        b, _, h, w = x.shape
        t = self.mae.config.num_frames
        valid = (x.reshape(b, t, -1, h, w) != 0).any(dim=2)
        cube = self.normalize(x).reshape(b, t, -1, h, w).permute(0, 2, 1, 3, 4)
        return cube, valid

    def forward(self, x: torch.Tensor, cfg: PretrainConfig, noise: torch.Tensor | None = None) -> dict:
        """One pretext step; returns ``loss`` and the pieces the tests check (mask, target, prediction, weights)."""
        if cfg.pretext == "mae":
            return mae_step(self, x, cfg, noise)
        return spectral_step(self, x, cfg, noise)


def _patch_valid(model: Pretrainer, valid: torch.Tensor) -> torch.Tensor:
    """Pixel validity broadcast to the decoder's ``(B, L, tub*p*p*C)`` layout (values ordered tub, p, q, c)."""
    cfg = model.mae.config
    b, t, h, w = valid.shape
    s, p = cfg.tubelet_size, cfg.patch_size
    v = valid.reshape(b, t // s, s, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
    v = v.reshape(b, -1, s * p * p, 1).expand(-1, -1, -1, cfg.in_chans)
    return v.reshape(b, v.shape[1], -1).float()


def _target(model: Pretrainer, cube: torch.Tensor, cfg: PretrainConfig) -> torch.Tensor:
    target = model.mae.patchify(cube)
    if cfg.norm_pix_loss:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    return target


def mae_step(
    model: Pretrainer, x: torch.Tensor, cfg: PretrainConfig, noise: torch.Tensor | None = None
) -> dict:
    """MAE pretext: hide ``cfg.mask_ratio`` of the tokens, reconstruct their normalised pixels.

    Returns:
        ``loss``; ``mask`` ``(B, L)`` (1 = hidden token); ``target`` and ``pred`` ``(B, L, tub*p*p*C)``;
        ``weights`` (same shape: hidden token × valid pixel, the entries the loss averages over).
    """
    cube, valid = model.cube(x)
    grid = model.mae.encoder.patch_embed.grid(cube.shape)
    latent, mask, ids_restore = model.mae.encoder(cube, mask_ratio=cfg.mask_ratio, noise=noise)
    pred = model.mae.decoder(latent, grid, ids_restore)
    target = _target(model, cube, cfg)
    weights = mask[..., None] * _patch_valid(model, valid)
    loss = (((pred - target) ** 2) * weights).sum() / weights.sum().clamp_min(1.0)
    return {"loss": loss, "mask": mask, "target": target, "pred": pred, "weights": weights}


def spectral_masks(
    batch: int,
    n_tokens: int,
    n_bands: int,
    frames: int,
    cfg: PretrainConfig,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Hidden (token, band) slots ``(B, L, C)`` of the spectral pretext.

    Exactly ``round(band_mask_ratio * C)`` (at least one) bands per token, and for multi-date data
    ``int(date_mask_ratio * L)`` tokens with every band hidden (a whole date at one place).
    """
    k = max(1, round(cfg.band_mask_ratio * n_bands))
    rank = torch.rand(batch, n_tokens, n_bands, device=device).argsort(-1).argsort(-1)
    hidden = rank < k
    n_dates = int(n_tokens * cfg.date_mask_ratio) if frames > 1 else 0
    if n_dates:
        whole = torch.rand(batch, n_tokens, device=device).argsort(-1) < n_dates  # n_dates random tokens each
        hidden |= whole[..., None]
    return hidden


def spectral_step(
    model: Pretrainer, x: torch.Tensor, cfg: PretrainConfig, hidden: torch.Tensor | None = None
) -> dict:
    """Spectral pretext: hide bands per token (and whole dates), reconstruct the hidden bands at every pixel.

    Args:
        model: The pretrainer (spectral).
        x: Reflectance ``[B, 6T, H, W]``.
        cfg: Settings (``band_mask_ratio``, ``date_mask_ratio``).
        hidden: Optional ``(B, L, C)`` bool mask to use instead of a random one (tests).

    Returns:
        ``loss``; ``hidden`` ``(B, L, C)``; ``target``/``pred``/``weights`` ``(B, L, tub*p*p*C)``; ``input`` the
        masked normalised cube the encoder saw.
    """
    mcfg = model.mae.config
    cube, valid = model.cube(x)
    grid = model.mae.encoder.patch_embed.grid(cube.shape)
    b, c = cube.shape[:2]
    n_tokens = math.prod(grid)
    if hidden is None:
        hidden = spectral_masks(b, n_tokens, c, grid[0], cfg, cube.device)
    s, p = mcfg.tubelet_size, mcfg.patch_size
    px = hidden.reshape(b, *grid, c).permute(0, 4, 1, 2, 3)  # (B, C, t, h, w)
    px = px.repeat_interleave(s, 2).repeat_interleave(p, 3).repeat_interleave(p, 4)
    masked = cube.masked_fill(px, 0.0)  # 0 = the band's mean after normalisation
    bias = hidden.float() @ model.band_mask_embed  # tells the encoder which bands are missing
    latent, _, _ = model.mae.encoder(masked, token_bias=bias)
    pred = model.mae.decoder(latent, grid, None)
    target = _target(model, cube, cfg)
    slot = hidden[:, :, None, :].expand(-1, -1, s * p * p, -1).reshape(b, n_tokens, -1).float()
    weights = slot * _patch_valid(model, valid)
    loss = (((pred - target) ** 2) * weights).sum() / weights.sum().clamp_min(1.0)
    return {
        "loss": loss,
        "hidden": hidden,
        "target": target,
        "pred": pred,
        "weights": weights,
        "input": masked,
    }

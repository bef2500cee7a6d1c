"""In-study self-supervised pretraining of a *small* Prithvi-architecture model on the study's own imagery.

The paper explains its results by pretext-task alignment: Prithvi's masked-autoencoder (MAE) objective rewards
reconstructing spatial context, which helps texture-dependent labels but not spectral ones. The real Prithvi-100M
cannot be retrained on a 2-core CPU, so this module makes the claim testable at CPU scale: the same architecture
(3-D tubelet ViT, fixed sin-cos positions, MAE decoder), much smaller (default embed 128, depth 4), pretrained on
the **unlabelled training imagery** of a task (or of several tasks pooled) with one of two pretexts:

* ``"mae"`` — Prithvi's recipe: hide 75 % of the tokens (``mask_ratio``), encode the visible ones, reconstruct the
  hidden patches' normalised pixels; the loss is the MSE on hidden patches only.
* ``"spectral"`` — a pretext built for pixel-level spectral labels: every token stays visible, but within each
  token a random ``band_mask_ratio`` of the bands is hidden (set to the band mean) and, for multi-date inputs,
  ``date_mask_ratio`` of the tokens lose all their bands (a whole date at that place). The encoder is told which
  bands are hidden (a learned per-band embedding added to the token, dropped at fine-tuning) and the decoder
  reconstructs the hidden bands at every pixel; the loss is the MSE on hidden (pixel, band) entries only. To solve
  it the encoder must model how a pixel's bands relate to each other, which is what spectral labels need.

Both use the same model, data, optimiser and budget, so the two fine-tuned rows differ only in the pretext.
Pixels that are nodata (all six bands of a date exactly 0, the readers' fill) are left out of both losses.

Two stopping rules. The epoch mode stops when the epoch-mean loss stops falling. The probe-plateau mode
(``PretrainConfig.probe_every``) judges pretraining on what it is for: every ``probe_every`` steps a ridge linear
probe of the frozen encoder is scored on the validation split of each task (:mod:`helpers.runs.probe`), the run
stops when the mean probe score has stopped rising, and the encoder of the best probe is kept.

Runs are cached and resumable: the folder ``<cache_dir>/pretrain/<pretext>-<key>`` is keyed by a hash of the
config, the dataset names, their training chip lists (plus a content fingerprint of a few chips), the seed and (probe
mode) the probe tasks' content; it holds ``last.pt`` (resume state, written after every epoch or probe),
``encoder.pt`` (the final encoder), ``loss.csv`` (one row per optimiser step: the loss curve), ``probe.csv`` (probe
mode: one row per probe), ``checkpoints/`` (probe mode: the encoders at the probes nearest 0, 1/4, 1/2 and all of
the selected step, and the last) and ``config.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.data.io import atomic_write, locked
from helpers.models.prithvi import HLS_BANDS, PRITHVI_SMALL, HLSNormalize, PrithviConfig, PrithviMAE
from helpers.runs import probe
from helpers.runs.runner import seed_everything
from helpers.runs.runtime import torch_threads
from helpers.runs.schedule import lr_factor
from helpers.runs.train import param_groups

PRETEXTS = ("mae", "spectral")
FORMAT = 1


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


# ---------------------------------------------------------------------------------------------- data
def _as_list(datasets) -> list:
    return list(datasets) if isinstance(datasets, list | tuple) else [datasets]


def _frames_of(datasets: Sequence, cfg: PretrainConfig) -> int:
    if cfg.single_date:
        return 1
    frames = {int(ds.n_times) for ds in datasets}
    if len(frames) > 1:
        raise ValueError(
            f"datasets have different date counts {sorted(frames)}; pool them with single_date=True (1-frame model)"
        )
    return frames.pop()


def fingerprint(datasets: Sequence) -> list[dict]:
    """What the cache key must know about the data: names, training chip lists, a content hash of three chips.

    Chip lists catch changed splits; the content hash catches regenerated data behind unchanged chip names.
    """
    out = []
    for ds in datasets:
        ids = list(ds.chip_ids("train"))
        if not ids:
            raise ValueError(f"{ds.name}: no training chips to pretrain on")
        h = hashlib.sha256()
        for cid in sorted({ids[0], ids[len(ids) // 2], ids[-1]}):
            a, _ = ds.read_arrays(cid)
            h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
        out.append({"dataset": ds.name, "chips": ids, "content": h.hexdigest()[:16]})
    return out


def run_key(cfg: PretrainConfig, data: list[dict], seed: int, probe_data: list[dict] | None = None) -> str:
    """16-hex-digit hash of (config, data fingerprint, seed, probe tasks): the cache folder's name.

    The probe tasks enter only in the probe-plateau mode (they decide where the run stops).
    """
    body = {"config": cfg.to_dict(), "data": data, "seed": int(seed)}
    if probe_data is not None:
        body["probe"] = probe_data
    blob = json.dumps(body, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _probe_data(cfg: PretrainConfig, probe_on: Sequence | None) -> list[dict] | None:
    """What the cache key must know of the probe tasks (probe-plateau mode only): names and content hashes."""
    from helpers.data.datasets import fingerprint as content_fingerprint

    if cfg.probe_every is None:
        return None
    if not probe_on:
        raise ValueError("the probe-plateau mode (probe_every) needs the probe tasks (probe_on)")
    return [{"dataset": d.name, "content": content_fingerprint(d)} for d in probe_on]


def _probe_tasks(probe_on: Sequence, cfg: PretrainConfig, seed: int) -> list:
    """The fixed probe data of a probe-plateau run (:func:`helpers.runs.probe.probe_tasks` with its settings)."""
    return probe.probe_tasks(
        probe_on,
        max_train_chips=cfg.probe_chips,
        pixels=cfg.probe_pixels,
        seed=seed,
        held_out=cfg.probe_held_out,
    )


def key_for(datasets, cfg: PretrainConfig, seed: int, probe_on: Sequence | None = None) -> str:
    """The cache key :func:`pretrain` gives these inputs, without pretraining (a fine-tune's run key holds it)."""
    return run_key(cfg, fingerprint(_as_list(datasets)), seed, _probe_data(cfg, probe_on))


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


# ---------------------------------------------------------------------------------------------- model and losses
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


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class PretrainResult:
    """A finished (or cached) pretraining run.

    Attributes:
        out_dir: Cache folder (``encoder.pt``, ``last.pt``, ``loss.csv``, ``config.json``).
        key: Cache key (hash of config, data and seed).
        encoder_state: Encoder weights (keys as in :class:`~helpers.models.prithvi.PrithviEncoder`).
        model_config: Architecture the encoder was trained with (crop size, frames).
        history: Per-step loss curve.
        skipped: True when the run was found finished in the cache.
        train_s: Wall time of the pretraining, summed over resumptions.
        stopped_by: ``"plateau"`` (loss plateau), ``"probe plateau"`` or ``"cap"`` (``epochs`` or ``max_steps``
            reached); empty for old caches.
        probe: The probe-plateau mode's probe curve: one row per probe (``step``, ``mean``, ``probe <task>``,
            the chunk's mean ``loss``, ``elapsed_s``); empty in the epoch mode.
    """

    out_dir: Path
    key: str
    encoder_state: dict
    model_config: PrithviConfig
    history: pd.DataFrame
    skipped: bool
    train_s: float
    stopped_by: str = ""
    probe: pd.DataFrame = field(default_factory=pd.DataFrame)

    def describe(self) -> str:
        """One line for the results table's ``weights`` column."""
        c = self.model_config
        return (
            f"in-study {self.history.attrs.get('pretext', '')} pretraining {self.key} "
            f"(embed {c.embed_dim}, depth {c.depth}, {int(self.history['step'].max()) if len(self.history) else 0} steps)"
        )


def _save(obj: dict, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _load(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means the same: unusable cache file
        raise ValueError(f"{path}: unreadable pretraining checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pretraining checkpoint of format {FORMAT}")
    return obj


def _history_frame(history: list[dict], pretext: str) -> pd.DataFrame:
    df = pd.DataFrame(history, columns=["step", "epoch", "loss", "lr", "elapsed_s"])
    df.attrs["pretext"] = pretext
    return df


def load_pretrained_encoder(out_dir: str | os.PathLike) -> tuple[dict, PrithviConfig]:
    """Encoder weights and architecture of a finished pretraining run folder."""
    obj = _load(Path(out_dir) / "encoder.pt")
    return obj["encoder"], PrithviConfig(
        **{**obj["model_config"], "coords_encoding": tuple(obj["model_config"]["coords_encoding"])}
    )


def _optimizer(model: nn.Module, cfg: PretrainConfig) -> torch.optim.AdamW:
    """AdamW with the fine-tuning loop's decay groups and the MAE recipe's betas (0.9, 0.95).

    The groups are :func:`helpers.runs.train.param_groups` (every parameter of the pretrainer is trainable).
    """
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))


def _train_epoch(model, opt, crops, state: dict, cfg, epoch: int, lr_at, device, t0: float):
    """One pass over these crops, one optimiser step per batch at ``cfg.lr * lr_at(step)``; losses to the history."""
    losses = []
    for i in range(len(crops) // cfg.batch_size):
        x = torch.from_numpy(crops[i * cfg.batch_size : (i + 1) * cfg.batch_size]).to(device)
        lr = cfg.lr * lr_at(state["step"])
        for g in opt.param_groups:
            g["lr"] = lr
        loss = model(x, cfg)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        losses.append(float(loss.detach()))
        state["history"].append(
            {
                "step": state["step"],
                "epoch": epoch + 1,
                "loss": losses[-1],
                "lr": lr,
                "elapsed_s": state["train_s"] + time.perf_counter() - t0,
            }
        )
    return losses


def _end_epoch(state: dict, losses: list[float], cfg, epoch: int) -> float:
    """Close an epoch and return its mean loss.

    The run is finished at a loss plateau (``patience`` epochs without a relative gain of
    ``min_rel_improvement``) or at the epoch cap.
    """
    state["epoch"] = epoch + 1
    mean_loss = float(np.mean(losses))
    if mean_loss < state["best_loss"] * (1.0 - cfg.min_rel_improvement):
        state["best_loss"], state["best_loss_epoch"] = mean_loss, epoch + 1
    plateau = cfg.patience is not None and epoch + 1 - state["best_loss_epoch"] >= cfg.patience
    state["finished"] = plateau or epoch + 1 == cfg.epochs
    state["stopped_by"] = ("plateau" if plateau else "cap") if state["finished"] else ""
    return mean_loss


def pretrain(
    datasets,
    cfg: PretrainConfig = PretrainConfig(),  # noqa: B008 - frozen dataclass, safe as a default
    *,
    probe_on: Sequence | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike = "cache",
    device: str | torch.device | None = None,
    num_threads: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> PretrainResult:
    """Pretrain (or fetch from the cache, or resume) a small Prithvi-architecture model on unlabelled imagery.

    Args:
        datasets: One dataset, corpus (:class:`helpers.data.corpus.Corpus`) or a list (pooled). Only
            ``chip_ids("train")`` and ``read_arrays`` are used; labels are never looked at.
        cfg: Settings; see :class:`PretrainConfig`.
        probe_on: Probe-plateau mode (``cfg.probe_every``): the datasets (six HLS bands) whose validation split the
            linear probe scores; they enter the cache key.
        seed: Seeds initialisation, crops and masks (part of the cache key).
        cache_dir: Root of the cache (``<cache_dir>/pretrain/<pretext>-<key>``).
        device: Torch device; default CUDA when available, else CPU.
        num_threads: CPU threads; default all cores this process may use.
        force: Ignore a cached or partial run and start over.
        progress: Show a tqdm bar.

    Returns:
        A :class:`PretrainResult` with the encoder weights and the loss curve (and the probe curve in the
        probe-plateau mode).
    """
    datasets = _as_list(datasets)
    frames = _frames_of(datasets, cfg)
    data = fingerprint(datasets)
    probe_data = _probe_data(cfg, probe_on)
    key = run_key(cfg, data, seed, probe_data)
    out_dir = Path(cache_dir) / "pretrain" / f"{cfg.pretext}-{key}"
    # one process trains a cache entry; another one (an engine worker, a second notebook) waits, then finds it
    with locked(out_dir):
        mcfg = cfg.model_config(frames)
        last, enc_path = out_dir / "last.pt", out_dir / "encoder.pt"
        if force:
            for f in (last, enc_path):
                f.unlink(missing_ok=True)
        if enc_path.exists():
            state = _load(last) if last.exists() else {"history": [], "train_s": float("nan")}
            encoder, _ = load_pretrained_encoder(out_dir)
            return PretrainResult(
                out_dir,
                key,
                encoder,
                mcfg,
                _history_frame(state["history"], cfg.pretext),
                True,
                state["train_s"],
                state.get("stopped_by", ""),
                _probe_frame(state.get("probe", [])),
            )
        meta = {
            "config": cfg.to_dict(),
            "datasets": [d["dataset"] for d in data],
            "n_chips": [len(d["chips"]) for d in data],
            "probe_on": [d["dataset"] for d in probe_data or []],
            "seed": seed,
            "key": key,
        }
        atomic_write(out_dir / "config.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))

        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        with torch_threads(num_threads):
            seed_everything(seed)
            model = Pretrainer(mcfg, cfg.pretext).to(device)
            opt = _optimizer(model, cfg)
            images = load_images(datasets, cfg.single_date)
            desc = f"pretrain {cfg.pretext} {'+'.join(meta['datasets'])}"
            if cfg.probe_every is None:
                state = _run_epochs(model, opt, images, cfg, key, seed, last, out_dir, device, desc, progress)
                encoder = {k: v.detach().cpu() for k, v in model.mae.encoder.state_dict().items()}
            else:
                tasks = _probe_tasks(probe_on, cfg, seed)
                state = _run_probed(
                    model, opt, images, tasks, cfg, key, seed, last, out_dir, device, desc, progress
                )
                encoder = _load(out_dir / CHECKPOINTS / f"step-{state['best_step']:07d}.pt")["encoder"]
                _prune_checkpoints(out_dir, state)
            _save(
                {
                    "format": FORMAT,
                    "key": key,
                    "model_config": json.loads(json.dumps(dataclasses.asdict(mcfg))),
                    "encoder": encoder,
                },
                enc_path,
            )
            return PretrainResult(
                out_dir,
                key,
                encoder,
                mcfg,
                _history_frame(state["history"], cfg.pretext),
                False,
                state["train_s"],
                state["stopped_by"],
                _probe_frame(state.get("probe", [])),
            )


def _new_state(key: str) -> dict:
    return {
        "format": FORMAT,
        "key": key,
        "epoch": 0,
        "step": 0,
        "history": [],
        "train_s": 0.0,
        "finished": False,
        "best_loss": math.inf,
        "best_loss_epoch": 0,
        "stopped_by": "",
        "probe": [],
        "best_probe": -math.inf,
        "best_step": 0,
        "ref_probe": -math.inf,
        "since_progress": 0,
    }


def _resume(state: dict, last: Path, key: str, model: nn.Module, opt) -> dict:
    """The saved state of an interrupted run (model, optimiser and torch RNG restored), else ``state``."""
    if not last.exists():
        return state
    state = _load(last)
    if state.get("key") != key:
        raise ValueError(f"{last}: belongs to run {state.get('key')}, not {key}")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return state


def _checkpoint(state: dict, model: nn.Module, opt, last: Path, out_dir: Path, pretext: str) -> None:
    """Save the resume state and the loss curve (and the probe curve) after an epoch or a probe."""
    state.update(model=model.state_dict(), optimizer=opt.state_dict(), torch_rng=torch.get_rng_state())
    _save(state, last)
    hist = _history_frame(state["history"], pretext)
    atomic_write(out_dir / "loss.csv", lambda tmp, h=hist: h.to_csv(tmp, index=False))
    if state["probe"]:
        frame = _probe_frame(state["probe"])
        atomic_write(out_dir / "probe.csv", lambda tmp, f=frame: f.to_csv(tmp, index=False))


def _run_epochs(model, opt, images, cfg, key, seed, last, out_dir, device, desc, progress) -> dict:
    """The epoch mode: epochs of random crops under a cosine schedule, stopped by the loss plateau or the cap."""
    n_crops = len(images) * cfg.crops_per_chip
    steps_per_epoch = max(1, n_crops // cfg.batch_size)
    total, warm = cfg.epochs * steps_per_epoch, int(round(cfg.warmup_epochs * steps_per_epoch))
    state = _resume(_new_state(key), last, key, model, opt)
    bar = tqdm(
        range(state["epoch"], cfg.epochs),
        initial=state["epoch"],
        total=cfg.epochs,
        disable=not progress,
        desc=desc,
        unit="epoch",
    )
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        rng = np.random.default_rng([seed, epoch])
        crops = sample_crops(images, steps_per_epoch * cfg.batch_size, cfg.crop_size, rng)
        losses = _train_epoch(
            model, opt, crops, state, cfg, epoch, lambda s: lr_factor(s, total, warm), device, t0
        )
        state["train_s"] += time.perf_counter() - t0
        mean_loss = _end_epoch(state, losses, cfg, epoch)
        _checkpoint(state, model, opt, last, out_dir, cfg.pretext)
        bar.set_postfix(loss=f"{mean_loss:.4f}")
        if state["finished"]:
            break
    bar.close()
    return state


#: Folder of the probe-plateau mode's encoder checkpoints (``step-<step>.pt``), inside the run's cache folder.
CHECKPOINTS = "checkpoints"


def _probe(model: Pretrainer, tasks, state: dict, out_dir: Path, t0: float, loss: float) -> float:
    """Score the current encoder on every probe task, save it as a checkpoint, record the scores; their mean.

    The probe builds throw-away heads; the torch RNG is forked so that it does not move the pretraining's masks.
    """
    encoder = {k: v.detach().cpu().clone() for k, v in model.mae.encoder.state_dict().items()}
    with torch.random.fork_rng(devices=[]):
        scores = probe.probe_scores(tasks, encoder, model.mae.config)
    mean = float(np.nanmean(list(scores.values())))
    state["probe"].append(
        {
            "step": state["step"],
            "mean": mean,
            **{f"probe {k}": v for k, v in scores.items()},
            "loss": loss,
            "elapsed_s": state["train_s"] + time.perf_counter() - t0,
        }
    )
    _save({"format": FORMAT, "key": state["key"], "step": state["step"], "encoder": encoder},
          out_dir / CHECKPOINTS / f"step-{state['step']:07d}.pt")  # fmt: skip
    return mean


def _end_probe(state: dict, mean: float, cfg: PretrainConfig) -> None:
    """Update the selection (best probe) and the plateau rule (on the smoothed probe) after a probe."""
    if mean > state["best_probe"]:
        state["best_probe"], state["best_step"] = mean, state["step"]
    smoothed = float(np.mean([r["mean"] for r in state["probe"][-cfg.probe_smooth :]]))
    state["probe"][-1]["smoothed"] = smoothed
    if smoothed >= state["ref_probe"] + cfg.probe_min_delta:
        state["ref_probe"], state["since_progress"] = smoothed, 0
    else:
        state["since_progress"] += 1
    plateau = state["since_progress"] >= cfg.probe_patience
    capped = state["step"] >= cfg.max_steps
    state["finished"] = plateau or capped
    state["stopped_by"] = ("probe plateau" if plateau else "cap") if state["finished"] else ""


def _run_probed(model, opt, images, tasks, cfg, key, seed, last, out_dir, device, desc, progress) -> dict:
    """The probe-plateau mode: chunks of ``probe_every`` steps at a warmed-up constant rate, a probe after each."""
    state = _resume(_new_state(key), last, key, model, opt)

    def warm_then_constant(step: int) -> float:
        return min(1.0, (step + 1) / max(cfg.warmup_steps, 1))

    if not state["probe"]:  # the starting point: a random-init encoder's probe
        t0 = time.perf_counter()
        _end_probe(state, _probe(model, tasks, state, out_dir, t0, float("nan")), cfg)
        state["train_s"] += time.perf_counter() - t0
        _checkpoint(state, model, opt, last, out_dir, cfg.pretext)
    bar = tqdm(total=cfg.max_steps, initial=state["step"], disable=not progress, desc=desc, unit="step")
    while not state["finished"]:
        t0 = time.perf_counter()
        model.train()
        chunk = state["step"] // cfg.probe_every
        rng = np.random.default_rng([seed, chunk])
        crops = sample_crops(images, cfg.probe_every * cfg.batch_size, cfg.crop_size, rng)
        losses = _train_epoch(model, opt, crops, state, cfg, chunk, warm_then_constant, device, t0)
        model.eval()
        mean = _probe(model, tasks, state, out_dir, t0, float(np.mean(losses)))
        state["train_s"] += time.perf_counter() - t0
        _end_probe(state, mean, cfg)
        state["epoch"] = chunk + 1
        _checkpoint(state, model, opt, last, out_dir, cfg.pretext)
        bar.update(len(losses))
        bar.set_postfix(probe=f"{mean:.3f}", best=f"{state['best_probe']:.3f}")
    bar.close()
    return state


#: The continuation check's summary file, in the run's cache folder (:func:`continuation`).
CONTINUATION = "continuation.json"


def continuation_summary(result: PretrainResult) -> dict | None:
    """A finished run's continuation summary (:func:`continuation`), or ``None`` before its check has run."""
    path = result.out_dir / CONTINUATION
    return json.loads(path.read_text()) if path.exists() else None


def continuation(
    datasets,
    cfg: PretrainConfig,
    *,
    probe_on: Sequence,
    seed: int = 0,
    cache_dir: str | os.PathLike = "cache",
    factor: float = 2.0,
    device: str | torch.device | None = None,
    num_threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Continue a finished probe-plateau pretraining to ``factor`` times its steps and say how far the probe moves.

    The check of a plateau that means something: the run is resumed from its last state (same rate, same crops
    and masks it would have drawn), without a stopping rule, to ``factor`` times the steps it ran, probing as before.
    The finished run's encoder is not touched; the continuation lives in ``<run>/continuation/`` and its summary in
    ``<run>/continuation.json`` (cached: a second call reads it).

    Returns:
        ``steps`` (of the finished run), ``continued_to``, ``best_smoothed`` / ``best_smoothed_continued`` (the best
        smoothed mean probe up to the stop and up to the continuation's end), ``moved`` (their difference, a
        fraction), ``best_probe`` / ``best_probe_continued`` (single probes) and ``cpu_s`` of the continuation.
    """
    datasets = _as_list(datasets)
    if cfg.probe_every is None:
        raise ValueError("the continuation check needs the probe-plateau mode (probe_every)")
    key = key_for(datasets, cfg, seed, probe_on)
    out_dir = Path(cache_dir) / "pretrain" / f"{cfg.pretext}-{key}"
    summary_path = out_dir / CONTINUATION
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    if not (out_dir / "encoder.pt").exists():
        raise FileNotFoundError(f"{out_dir}: no finished pretraining to continue; run pretrain() first")
    done = _load(out_dir / "last.pt")
    cont_dir = out_dir / "continuation"
    longer = dataclasses.replace(
        cfg, probe_patience=2**31 - 1, max_steps=int(math.ceil(factor * done["step"]))
    )
    with locked(cont_dir):
        last = cont_dir / "last.pt"
        if not last.exists():
            _save({**done, "finished": False, "stopped_by": ""}, last)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        with torch_threads(num_threads):
            model = Pretrainer(cfg.model_config(_frames_of(datasets, cfg)), cfg.pretext).to(device)
            opt = _optimizer(model, cfg)
            images = load_images(datasets, cfg.single_date)
            tasks = _probe_tasks(probe_on, cfg, seed)
            desc = f"continue {cfg.pretext} to {longer.max_steps} steps"
            state = _run_probed(
                model, opt, images, tasks, longer, key, seed, last, cont_dir, device, desc, progress
            )
        for path in (cont_dir / CHECKPOINTS).glob("step-*.pt"):
            path.unlink()
    before = [r for r in state["probe"] if r["step"] <= done["step"]]
    summary = {
        "key": key,
        "steps": int(done["step"]),
        "continued_to": int(state["step"]),
        "best_smoothed": max(r["smoothed"] for r in before),
        "best_smoothed_continued": max(r["smoothed"] for r in state["probe"]),
        "best_probe": max(r["mean"] for r in before),
        "best_probe_continued": max(r["mean"] for r in state["probe"]),
        "cpu_s": state["train_s"] - done["train_s"],
    }
    summary["moved"] = summary["best_smoothed_continued"] - summary["best_smoothed"]
    atomic_write(summary_path, lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))
    return summary


#: Columns of the pretraining table (:func:`record`): one row per in-study pretraining run.
RECORD_COLUMNS = (
    "key", "pretext", "pretrained_on", "chips", "steps", "train_s", "stopped_by", "best_step", "best_probe",
    "best_smoothed", "continued_to", "best_smoothed_continued", "moved", "continuation_s", "quarter_step",
    "half_step",
)  # fmt: skip


def recorded_check(path: str | os.PathLike, key: str) -> dict | None:
    """The continuation check the pretraining table (:func:`record`) holds for ``key``, or ``None`` if none.

    Returns what the table keeps of :func:`continuation`'s summary: ``key``, ``steps``, ``continued_to``,
    ``best_smoothed``, ``best_smoothed_continued``, ``moved`` and ``cpu_s`` (its ``continuation_s``).
    """
    path = Path(path)
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"key": str})
    rows = table[(table["key"] == str(key)) & table["moved"].notna()] if "moved" in table else table.iloc[:0]
    if rows.empty:
        return None
    row = rows.iloc[-1]
    return {
        "key": str(key),
        "steps": int(row["steps"]),
        "continued_to": int(row["continued_to"]),
        "best_smoothed": float(row["best_smoothed"]),
        "best_smoothed_continued": float(row["best_smoothed_continued"]),
        "moved": float(row["moved"]),
        "cpu_s": float(row["continuation_s"]),
    }


def record(result: PretrainResult, path: str | os.PathLike, check: dict | None = None) -> pd.DataFrame:
    """Add (or update, by key) a pretraining's row in the pretraining table, and its probe curve beside it.

    The table (``path``, e.g. ``results/pretraining.csv``) says what each in-study pretraining cost and where it
    stopped; ``<stem>_probe.csv`` beside it holds every probe (tidy: ``key``, ``pretext``, ``step``, ``task``,
    ``probe``), the continuation check's included once it has run, the curves notebook 04 draws. Both are small and
    committed with the results, so figures and the convergence evidence survive a fresh clone without the cache. A
    row is replaced only by a row of the same key. ``quarter_step`` and ``half_step`` are the kept checkpoints at a
    quarter and half of the selected step (:func:`checkpoint_encoder`).
    """
    path = Path(path)
    meta = json.loads((result.out_dir / "config.json").read_text())
    pr = result.probe
    best = int(pr.loc[pr["mean"].idxmax(), "step"]) if len(pr) else None
    # the kept checkpoints part of the way (the pretraining-compute curve's starting points)
    part = [compute_checkpoints(pr["step"], best, (f,))[0] if len(pr) else None for f in (0.25, 0.5)]
    row = {
        "key": result.key,
        "pretext": meta["config"]["pretext"],
        "pretrained_on": " + ".join(meta["datasets"]),
        "chips": int(sum(meta["n_chips"])),
        "steps": int(result.history["step"].max()) if len(result.history) else 0,
        "train_s": round(float(result.train_s), 1),
        "stopped_by": result.stopped_by,
        "best_step": best,
        "best_probe": float(pr["mean"].max()) if len(pr) else None,
        "best_smoothed": float(pr["smoothed"].max()) if len(pr) else None,
        **{k: (check or {}).get(k) for k in ("continued_to", "best_smoothed_continued", "moved")},
        "continuation_s": round(float(check["cpu_s"]), 1) if check else None,
        "quarter_step": part[0],
        "half_step": part[1],
    }
    curve = pd.DataFrame()
    cont_path = result.out_dir / "continuation" / "probe.csv"
    # the continuation's probes after the stop: the figure's dashed stretch
    if len(pr) and check and cont_path.exists():
        cont = pd.read_csv(cont_path)
        pr = pd.concat([pr, cont[cont["step"] > pr["step"].max()]], ignore_index=True)
    if len(pr):
        tasks = [c for c in pr.columns if c.startswith("probe ")]
        curve = pr.melt(id_vars=["step"], value_vars=[*tasks, "mean"], var_name="task", value_name="probe")
        curve["task"] = curve["task"].str.removeprefix("probe ")
        curve.insert(0, "pretext", row["pretext"])
        curve.insert(0, "key", result.key)
    probe_path = path.with_name(f"{path.stem}_probe.csv")
    with locked(path):
        table = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=RECORD_COLUMNS)
        table = pd.concat([table[table["key"] != result.key], pd.DataFrame([row])], ignore_index=True)
        atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
        if len(curve):
            old = pd.read_csv(probe_path) if probe_path.exists() else curve.iloc[:0]
            both = pd.concat([old[old["key"] != result.key], curve], ignore_index=True)
            atomic_write(probe_path, lambda tmp: both.to_csv(tmp, index=False))
    return table


def compute_checkpoints(steps: Sequence[int], stop_step: int, fractions=(0.0, 0.25, 0.5, 1.0)) -> list[int]:
    """The probed steps nearest each fraction of ``stop_step`` (the selected encoder's step), in order, unique.

    They are what the pretraining-compute curve fine-tunes from (the rest of the checkpoints are dropped).
    """
    steps = sorted(int(s) for s in steps)
    return sorted({min(steps, key=lambda s, f=f: (abs(s - f * stop_step), s)) for f in fractions})


def checkpoint_encoder(result: PretrainResult, fraction: float) -> tuple[int, dict]:
    """The encoder a probe-plateau pretraining had at ``fraction`` of its selected step: ``(step, weights)``.

    The step is :func:`compute_checkpoints`' (the probed step nearest ``fraction`` of the best probe's step), one
    of the checkpoints the run keeps; what the pretraining-compute curve fine-tunes from.

    Raises:
        ValueError: The run has no probe curve (epoch mode) or lacks that checkpoint (``fraction`` not one of the
            kept ones: 0, 1/4, 1/2, 1).
    """
    if result.probe.empty:
        raise ValueError(f"{result.out_dir}: an epoch-mode pretraining keeps no checkpoints along the way")
    best = int(result.probe.loc[result.probe["mean"].idxmax(), "step"])
    step = compute_checkpoints(result.probe["step"], best, (float(fraction),))[0]
    path = result.out_dir / CHECKPOINTS / f"step-{step:07d}.pt"
    if not path.is_file():
        raise ValueError(f"{path}: no checkpoint at {fraction:g} of step {best} (kept: 0, 1/4, 1/2, 1)")
    return step, _load(path)["encoder"]


def _prune_checkpoints(out_dir: Path, state: dict) -> None:
    """Keep the checkpoints of :func:`compute_checkpoints` and the last probe's; delete the others."""
    steps = [int(r["step"]) for r in state["probe"]]
    keep = {*compute_checkpoints(steps, state["best_step"]), steps[-1]}
    for path in (out_dir / CHECKPOINTS).glob("step-*.pt"):
        if int(path.stem.split("-")[1]) not in keep:
            path.unlink()


def _probe_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def read_loss_curves(cache_dir: str | os.PathLike) -> pd.DataFrame:
    """Every cached pretraining run's loss per step, with its ``pretext``, ``pretrained on`` (the pool) and ``key``.

    Empty when the cache holds none (a fresh clone: the cache is not committed).
    """
    curves = []
    for loss_csv in sorted(Path(cache_dir, "pretrain").glob("*/loss.csv")):
        meta = json.loads((loss_csv.parent / "config.json").read_text())
        frame = pd.read_csv(loss_csv)
        frame["pretext"] = meta["config"]["pretext"]
        frame["pretrained on"] = "+".join(meta["datasets"])
        frame["key"] = meta.get("key", loss_csv.parent.name.split("-")[-1])
        curves.append(frame)
    return pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()

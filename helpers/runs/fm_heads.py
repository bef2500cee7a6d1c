"""Heads on top of the published foundation models: frozen-embedding classifiers and a fine-tuning model.

Frozen heads answer "how much does the pretrained representation already separate the classes?": the encoder is
fixed, per-pixel embeddings (:mod:`helpers.runs.embeddings`) are the features, and a pixel classifier is fitted on
sampled training pixels.

* :func:`fit_lgbm` - LightGBM with exactly the settings of the classical ``lgbm`` row
  (:data:`helpers.runs.classical.LGBM_FIXED` and one candidate of :data:`helpers.runs.classical.LGBM_GRID`), so
  ``lgbm`` vs ``galileo_nano_frozen_lgbm`` differs only in the features.
* :func:`fit_linear` - a linear (``hidden=0``) or one-hidden-layer MLP classifier in torch on standardised
  embeddings (the linear probe is the usual way to judge a representation).

Fine-tuning answers "is the pretrained encoder a good starting point?": :class:`GalileoSegmenter` puts a light
convolutional decoder on Galileo-nano's patch grid and trains end to end through :func:`helpers.runs.train.fit` (it
follows the shared model contract: reflectance ``[B, 6T, H, W]`` in, logits ``[B, K, H, W]`` out, normalisation
inside as buffers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.models import galileo as _galileo
from helpers.runs import classical as _classical
from helpers.runs import embeddings as _emb
from helpers.runs import fm_adapters as _fm_adapters


# -------------------------------------------------------------------------------------------------- LightGBM
@dataclass
class LgbmHead:
    """A fitted LightGBM pixel classifier (``predict`` returns labels)."""

    booster: lgb.Booster
    params: dict
    rounds: int
    num_classes: int

    def predict(self, X: np.ndarray, n_jobs: int = 1) -> np.ndarray:
        """Labels ``(n,)`` int64 for feature rows ``(n, F)``."""
        p = self.booster.predict(
            np.asarray(X, dtype=np.float32), num_iteration=self.rounds, num_threads=n_jobs
        )
        if p.ndim == 1:
            return (p > 0.5).astype(np.int64)
        return p.argmax(axis=1).astype(np.int64)

    def size_mb(self) -> float:
        """Size of the saved model text."""
        return len(self.booster.model_to_string(num_iteration=self.rounds).encode()) / 1e6

    def describe(self) -> str:
        """Hyper-parameters for the results note."""
        shown = {k: self.params[k] for k in ("num_leaves", "min_data_in_leaf") if k in self.params}
        return "lgbm " + ", ".join(f"{k}={v}" for k, v in shown.items()) + f", rounds={self.rounds}"


def lgbm_params(num_classes: int, candidate: dict, seed: int, n_jobs: int = 1) -> dict:
    """LightGBM parameters: exactly the classical row's (deterministic, fixed threads) for one grid candidate."""
    return _classical.lgb_params(num_classes, candidate, seed, n_jobs)


def fit_lgbm(
    X: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    candidate: dict,
    seed: int,
    X_es: np.ndarray | None = None,
    y_es: np.ndarray | None = None,
    n_jobs: int = 1,
) -> LgbmHead:
    """Fit LightGBM on embedding rows; early stopping on ``(X_es, y_es)`` (sampled val pixels) when given.

    Args:
        X: ``(n, F)`` training embeddings.
        y: ``(n,)`` labels ``0..num_classes-1``.
        num_classes: Number of classes.
        candidate: One entry of :data:`helpers.runs.classical.LGBM_GRID` (``num_leaves``, ``min_data_in_leaf``).
        seed: LightGBM seed.
        X_es: Rows for early stopping (never the test split).
        y_es: Their labels.
        n_jobs: Threads.
    """
    fixed = _classical.LGBM_FIXED
    params = lgbm_params(num_classes, candidate, seed, n_jobs)
    dtrain = lgb.Dataset(np.asarray(X, np.float32), label=y, free_raw_data=True)
    if X_es is not None and len(X_es):
        dval = lgb.Dataset(np.asarray(X_es, np.float32), label=y_es, reference=dtrain)
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=fixed["max_rounds"],
            valid_sets=[dval],
            valid_names=["val"],
            callbacks=[lgb.early_stopping(fixed["early_stopping_rounds"], verbose=False)],
        )
        rounds = booster.best_iteration or booster.current_iteration()
    else:
        booster = lgb.train(params, dtrain, num_boost_round=fixed["default_rounds"])
        rounds = booster.current_iteration()
    return LgbmHead(booster, params, int(rounds), num_classes)


# ------------------------------------------------------------------------------------------------ linear / MLP
class _PixelNet(nn.Module):
    def __init__(self, mean: np.ndarray, std: np.ndarray, num_classes: int, hidden: int):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        dim = len(mean)
        if hidden:
            self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, num_classes))
        else:
            self.net = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


@dataclass
class TorchHead:
    """A fitted linear or MLP pixel classifier on standardised features."""

    net: _PixelNet
    hidden: int
    weight_decay: float
    steps: int

    @torch.inference_mode()
    def predict(self, X: np.ndarray, n_jobs: int = 1, batch: int = 65536) -> np.ndarray:
        """Labels ``(n,)`` int64 for feature rows ``(n, F)``."""
        self.net.eval()
        X = np.asarray(X, dtype=np.float32)
        out = np.empty(len(X), dtype=np.int64)
        for s in range(0, len(X), batch):
            out[s : s + batch] = self.net(torch.from_numpy(X[s : s + batch])).argmax(1).numpy()
        return out

    def size_mb(self) -> float:
        """Parameter bytes."""
        return sum(p.numel() * p.element_size() for p in self.net.state_dict().values()) / 1e6

    def n_params(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.net.parameters())

    def describe(self) -> str:
        """Hyper-parameters for the results note."""
        kind = f"MLP hidden={self.hidden}" if self.hidden else "linear"
        return f"{kind}, AdamW wd={self.weight_decay:g}, {self.steps} steps"


def fit_linear(
    X: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    seed: int,
    hidden: int = 0,
    weight_decay: float = 1e-4,
    steps: int = 300,
    lr: float = 1e-2,
    batch_size: int = 4096,
) -> TorchHead:
    """Fit a linear (``hidden=0``) or one-hidden-layer MLP classifier with AdamW and a cosine schedule.

    Features are standardised with the training mean and standard deviation (kept inside the head), so the
    learning rate means the same for Galileo and Presto embeddings. Training runs a fixed number of optimiser
    steps over shuffled passes of the rows (full batch when there are fewer rows than ``batch_size``), so small
    and large samples are both fitted to convergence. Batches come from a generator seeded with ``seed``; weights
    are initialised under ``torch.manual_seed(seed)``.

    Args:
        X: ``(n, F)`` training embeddings.
        y: ``(n,)`` labels.
        num_classes: Number of classes.
        seed: Seeds initialisation and batch order.
        hidden: Hidden width (0 = linear).
        weight_decay: AdamW weight decay.
        steps: Optimiser steps.
        lr: Peak learning rate.
        batch_size: Rows per step.
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(X) == 0:
        raise ValueError("no training rows for the linear head")
    mean = X.mean(0)
    std = X.std(0) + 1e-6
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = _PixelNet(mean, std, num_classes, hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    rng = np.random.default_rng(seed)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    net.train()
    order = torch.from_numpy(rng.permutation(len(X)))
    pos = 0
    for _ in range(steps):
        if pos >= len(X):
            order, pos = torch.from_numpy(rng.permutation(len(X))), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        loss = F.cross_entropy(net(Xt[idx]), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    return TorchHead(net, hidden, weight_decay, steps)


#: Candidates searched on val for the torch heads (linear probe, and a small MLP).
LINEAR_GRID: tuple[dict, ...] = ({"hidden": 0, "weight_decay": 1e-4}, {"hidden": 0, "weight_decay": 1e-2})
MLP_GRID: tuple[dict, ...] = ({"hidden": 256, "weight_decay": 1e-4}, {"hidden": 256, "weight_decay": 1e-2})


# --------------------------------------------------------------------------------------------- fine-tuning model
class GalileoSegmenter(nn.Module):
    """Galileo-nano encoder + light convolutional decoder: reflectance ``[B, 6T, H, W]`` -> logits ``[B, K, H, W]``.

    The encoder runs exactly as for the frozen embeddings (windows, patch size, HLS adapter; see
    :mod:`helpers.runs.embeddings`), giving a ``128 x H/p x W/p`` patch grid. The decoder is deliberately small so
    that what is learned lives mostly in the encoder: a 3x3 conv (128 -> ``width``) with BatchNorm and ReLU on the
    patch grid, bilinear upsampling to pixels, a second 3x3 conv + BatchNorm + ReLU and a 1x1 conv to the classes.
    Without ``pixel_skip`` it never sees the raw pixels, so pixel detail below the patch size must come through the
    encoder; with it, the second conv also reads the normalised input bands of each pixel (a one-level skip, as a
    U-Net decoder has), so coarse patches keep pixel-sharp boundaries.

    The normalisation constants and the months of each date are buffers, so a checkpoint is self-contained.

    Args:
        encoder: A loaded :class:`~helpers.models.galileo.GalileoEncoder` (it is trained too).
        num_classes: Output classes.
        months: Month (0-11) of each date; one entry per date (``T = len(months)``).
        patch_size: Pixels per token side.
        window: Encoder window in pixels.
        resolution_m: Pixel size in metres.
        ndvi: ``"masked"`` or ``"b8a"``.
        width: Decoder channels.
        pixel_skip: Concatenate the normalised input bands to the upsampled features before the second conv.
    """

    def __init__(
        self,
        encoder: _galileo.GalileoEncoder,
        num_classes: int,
        months: Sequence[int],
        *,
        patch_size: int = 4,
        window: int = 64,
        resolution_m: float = 30.0,
        ndvi: str = "masked",
        width: int = 64,
        pixel_skip: bool = False,
    ):
        super().__init__()
        self.encoder = encoder
        self.n_times = len(months)
        self.patch_size = patch_size
        self.window = window
        self.resolution_m = float(resolution_m)
        self.ndvi = ndvi
        self.register_buffer("months", _fm_adapters.months_tensor(tuple(months), 1)[0])
        self.register_buffer("norm_shift", torch.tensor(_fm_adapters.GALILEO_SHIFT, dtype=torch.float32))
        self.register_buffer("norm_div", torch.tensor(_fm_adapters.GALILEO_DIV, dtype=torch.float32))
        dim = encoder.embed_dim
        self.grid_conv = nn.Sequential(
            nn.Conv2d(dim, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.pixel_skip = bool(pixel_skip)
        skip = 6 * self.n_times if self.pixel_skip else 0
        self.pixel_conv = nn.Sequential(
            nn.Conv2d(width + skip, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K, H, W]`` for reflectance ``x [B, 6T, H, W]``."""
        b, _, h, w = x.shape
        grid = _emb.galileo_patch_grid(
            self.encoder,
            x,
            self.months[None].expand(b, -1),
            n_times=self.n_times,
            patch_size=self.patch_size,
            window=self.window,
            resolution_m=self.resolution_m,
            ndvi=self.ndvi,
            shift=self.norm_shift,
            div=self.norm_div,
        )
        f = _emb.upsample_grid(self.grid_conv(grid), (h, w), self.patch_size)
        if self.pixel_skip:  # the bands in Galileo's normalisation (the encoder's inputs, before its masking)
            t = self.n_times
            bands = x.reshape(b, t, -1, h, w) * 1e4
            z = (bands - self.norm_shift[None, None, :, None, None]) / self.norm_div[
                None, None, :, None, None
            ]
            f = torch.cat([f, z.reshape(b, -1, h, w)], 1)
        return self.classifier(self.pixel_conv(f))

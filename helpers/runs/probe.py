"""A cheap linear probe of a pretraining encoder: what in-study pretraining is judged on.

Pretraining has no labels of its own, so its loss says how well the pretext is solved, not whether the encoder has
learned anything the tasks need. The probe asks the second question directly and cheaply: the frozen encoder embeds
a few training chips and the held-out chips of each task; every pixel takes its token map's bilinearly upsampled
feature (multi-date tasks: the encoder's own multi-frame tokens, as fine-tuning sees them); a ridge classifier on
one-hot targets is solved in closed form on a fixed class-balanced sample of labelled training pixels; the score is
the held-out ``miou_macro`` of each task (a single confusion matrix over the chips, :mod:`helpers.metrics`). Nothing
is trained by gradient, so a probe is deterministic and costs seconds.

Chips, pixel samples and the ridge strength are fixed when the tasks are built (:func:`probe_tasks`), so the scores
of two checkpoints differ only through their encoders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from helpers import metrics
from helpers.models import prithvi as _prithvi


@dataclass
class ProbeTask:
    """One task's fixed probe data.

    Attributes:
        name: Dataset name.
        n_times: Dates per chip.
        num_classes: Classes.
        train_x: Training chips ``(N, 6T, H, W)`` float32 reflectance.
        train_pix: Per training chip, the flat indices of its sampled labelled pixels.
        train_y: Labels of the sampled pixels, concatenated in chip order.
        val_x: Validation chips ``(M, 6T, H, W)``.
        val_y: Validation labels ``(M, H, W)`` (``ignore_index`` where unlabelled).
        ignore_index: Label of unlabelled pixels.
    """

    name: str
    n_times: int
    num_classes: int
    train_x: np.ndarray
    train_pix: list[np.ndarray]
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    ignore_index: int


def probe_tasks(
    datasets: Sequence,
    *,
    max_train_chips: int = 8,
    pixels: int = 20_000,
    seed: int = 0,
    held_out: Sequence[str] = ("val",),
) -> list[ProbeTask]:
    """Fixed probe data of each dataset: up to ``max_train_chips`` training chips and every held-out chip.

    Args:
        datasets: Datasets with the six HLS bands (``helpers.data.datasets.with_bands``) and a validation split.
        max_train_chips: Training chips embedded per task (a seeded choice).
        pixels: Labelled training pixels the ridge head is fitted on, per task: a seeded class-balanced sample (up to
            ``pixels // num_classes`` of each class).
        seed: Seeds the chip and pixel choices.
        held_out: Splits the probe is scored on: the validation split of a run's own data; a draw that no run
            uses (the pooled corpus's probe draw) can give its test chips too, which halves the probe's noise.

    Raises:
        ValueError: A dataset has no held-out chips or no labelled training pixel in the chosen chips.
    """
    tasks = []
    for ds in datasets:
        rng = np.random.default_rng([seed, len(tasks)])
        ids = list(ds.chip_ids("train"))
        val_ids = [c for split in held_out for c in ds.chip_ids(split)]
        if not val_ids:
            raise ValueError(f"{ds.name}: no {'/'.join(held_out)} chips to probe on")
        pick = sorted(rng.choice(len(ids), size=min(max_train_chips, len(ids)), replace=False))
        train = [ds.read_arrays(ids[i]) for i in pick]
        val = [ds.read_arrays(c) for c in val_ids]
        # a class-balanced pixel sample: a ridge head on a sample dominated by one class predicts that class
        labels = np.concatenate([y.ravel() for _, y in train])
        offsets = np.cumsum([0, *[y.size for _, y in train]])
        keep = []
        for k in range(int(ds.num_classes)):
            where = np.flatnonzero(labels == k)
            keep.append(rng.choice(where, size=min(pixels // int(ds.num_classes), len(where)), replace=False))
        keep = np.sort(np.concatenate(keep))
        if not len(keep):
            raise ValueError(f"{ds.name}: no labelled pixel in the probe's training chips")
        train_pix = [
            keep[(keep >= offsets[i]) & (keep < offsets[i + 1])] - offsets[i] for i in range(len(train))
        ]
        train_y = np.concatenate([y.ravel()[p] for (_, y), p in zip(train, train_pix, strict=True)])
        tasks.append(
            ProbeTask(
                name=ds.name,
                n_times=int(ds.n_times),
                num_classes=int(ds.num_classes),
                train_x=np.stack([x for x, _ in train]).astype(np.float32),
                train_pix=train_pix,
                train_y=train_y.astype(np.int64),
                val_x=np.stack([x for x, _ in val]).astype(np.float32),
                val_y=np.stack([y for _, y in val]),
                ignore_index=int(ds.ignore_index),
            )
        )
    return tasks


@torch.no_grad()
def _pixel_features(model: _prithvi.PrithviSegmenter, x: np.ndarray, batch: int = 8) -> list[torch.Tensor]:
    """Per chip, the ``(D', H, W)`` feature map: tokens upsampled bilinearly to the pixel grid."""
    out = []
    for i in range(0, len(x), batch):
        fmap, (h, w) = model.features(torch.from_numpy(x[i : i + batch]))
        p = model.config.patch_size
        up = F.interpolate(fmap, scale_factor=p, mode="bilinear", align_corners=False)[:, :, :h, :w]
        out += list(up)
    return out


def score_task(
    task: ProbeTask,
    encoder_state: Mapping[str, torch.Tensor],
    config: _prithvi.PrithviConfig,
    ridge: float = 1e-2,
) -> float:
    """Validation ``miou_macro`` of the ridge probe on one task's frozen features (a fraction, 0-1)."""
    model = _prithvi.PrithviSegmenter(
        task.num_classes, task.n_times, config, neck_dim=8, head_channels=8, head="linear"
    )
    model.load_encoder_state(encoder_state, config)
    model.eval()
    feats = _pixel_features(model, task.train_x)
    x = torch.cat(
        [f.flatten(1)[:, torch.from_numpy(p)] for f, p in zip(feats, task.train_pix, strict=True)], dim=1
    ).T
    x = x.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / std
    y = F.one_hot(torch.from_numpy(task.train_y), task.num_classes).double()
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    reg = ridge * len(x1) * torch.eye(x1.shape[1], dtype=x.dtype)
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    w = torch.linalg.solve(x1.T @ x1 + reg, x1.T @ y)
    cm = np.zeros((task.num_classes, task.num_classes), np.int64)
    for f, y_val in zip(_pixel_features(model, task.val_x), task.val_y, strict=True):
        z = (f.flatten(1).T.double() - mean) / std
        pred = (torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1) @ w).argmax(1).numpy()
        cm += metrics.confusion_matrix(y_val.ravel(), pred, task.num_classes, task.ignore_index)
    return float(metrics.scores(cm)["miou_macro"])


def probe_scores(
    tasks: Sequence[ProbeTask], encoder_state: Mapping[str, torch.Tensor], config: _prithvi.PrithviConfig
) -> dict[str, float]:
    """Each task's probe validation ``miou_macro`` (fractions), by task name."""
    return {t.name: score_task(t, encoder_state, config) for t in tasks}

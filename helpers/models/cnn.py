"""The regular-size deep models of the study (the paper's "DL" family) and how to build them by name.

Three architectures, written in plain torch because torchvision/timm/segmentation-models-pytorch are not
available here: :class:`~helpers.models.fcn.FCN` (FCN-8s), :class:`~helpers.models.unet.UNet` and
:class:`~helpers.models.deeplab.DeepLabV3Plus`. All take reflectance ``[B, 6 * n_dates, H, W]`` with dates
stacked as channels (date-major: date1 B02..B12, date2 B02..B12, ...), normalise it inside the model and return
logits ``[B, num_classes, H, W]``. Widths default to small values that train on a 2-core CPU within the study's
budget; the paper's backbones are far larger, which :func:`count_parameters` lets every table state.

Parameter counts of the defaults (6 / 18 input bands, 2 classes) are printed by ``python -m helpers.models.cnn``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from helpers.models.deeplab import DeepLabV3Plus
from helpers.models.fcn import FCN
from helpers.models.resnet import ResNetDeepLabV3Plus, ResNetFCN, ResNetUNet
from helpers.models.unet import UNet
from helpers.runs.runtime import native_bf16
from helpers.runs.train import PLATEAU

#: Model name (as written in the results table) -> constructor ``(in_channels, num_classes, **kw)``.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "fcn": FCN,
    "unet": UNet,
    "deeplabv3plus": DeepLabV3Plus,
}

#: The same rows at the paper's size (``size="paper"``): ResNet-34 encoders (:mod:`helpers.models.resnet`), 23.7 M
#: (FCN), 24.4 M (U-Net) and 26.7 M (DeepLabV3+) parameters for 6 bands, against 0.48-0.65 M at the CPU size.
PAPER_MODELS: dict[str, Callable[..., nn.Module]] = {
    "fcn": ResNetFCN,
    "unet": ResNetUNet,
    "deeplabv3plus": ResNetDeepLabV3Plus,
}

#: Model sizes: ``cpu`` (the default, sized for a 2-core CPU) and ``paper`` (the paper's backbones, for a GPU).
SIZES = ("cpu", "paper")


#: Training settings of the CNN rows (passed to :func:`helpers.runs.train.fit`): the plateau protocol.
#:
#: Sized from learning curves measured on the default data (seed 0, batch 8 of 64 px crops, validation every 50
#: steps; 2026-12-01). At a constant 3e-3 without drops, 1,500 steps: FCN on sim-flood rose from 0.93 val mIoU at
#: step 50 to 0.96 at 1,250; DeepLabV3+ on sim-burn swung between 0.63 and 0.87 from one validation to the next all
#: the way to 1,500; U-Net on Indian Pines peaked at 0.34 (step 1,050) between values of 0.06-0.23. Those swings are
#: why the rate drops twice (x0.2) at a plateau before the run stops: with the drops, FCN on sim-crop went 0.61 ->
#: 0.89 (drops at steps 600 and 850), DeepLabV3+ on Indian Pines 0.02 -> 0.20 (drops at 500 and 800), U-Net on
#: sim-texture-1 0.37 -> 0.94 by step 600. The old budget of 40-120 steps (one crop per chip and epoch) stopped all
#: of these on the rising part of their curves. Validation every 50 steps costs about 5 % of a run
#: (``benchmarks/train_loop.py``); patience 2 (100 steps without a 0.2-point gain) per phase; runs train in
#: cycles of that schedule until one gains less than a point (:data:`helpers.runs.train.PLATEAU`), within a cap of
#: 6,000 steps, so a run stopped by the cap (``stopped_by = "cap"``) is a finding about that run, not the usual
#: case. ``notebooks/03_cnn_models.ipynb`` draws every run's curve, and :mod:`helpers.runs.convergence` records
#: each first-seed run's last cycle.
#:
#: bf16 autocast with ``channels_last`` batches, on CPUs that compute bfloat16 natively
#: (:func:`helpers.runs.runtime.native_bf16`; GPUs too): measured on sim-burn with 1 thread per run, seeds 0-2 trained to
#: their plateau (``benchmarks/train_loop.py --seed-noise --threads 1``, 2026-12-02), validation mIoU float32 vs bf16:
#: U-Net 0.8665 +- 0.0084 vs 0.8676 +- 0.0068 (1.75x faster per run), FCN 0.8414 +- 0.0109 vs 0.8439 +- 0.0135
#: (1.55x per step), DeepLabV3+ 0.8240 +- 0.0132 vs 0.8307 +- 0.0194 (1.40x per step). Within the seed spread, so the CNNs use it; ViT and SegFormer
#: are slower under bf16 on this CPU (0.73x, 0.90x) and stay in float32. Elsewhere the CNNs train in float32; either
#: way the setting is stored with the run and written in its rows' note.
TRAIN_DEFAULTS: dict = {
    **PLATEAU,
    "batch_size": 8,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "warmup_steps": 50,
    "crop_size": 64,
    "bf16": native_bf16(),
    "channels_last": native_bf16(),
}

#: Quick mode (CI, fixtures): a few steps prove the code path, not the science.
QUICK_TRAIN: dict = {**TRAIN_DEFAULTS, "max_steps": 6, "eval_every": 3, "patience": None, "crop_size": 32}

#: The paper size (:data:`PAPER_MODELS`, for a GPU): the plateau protocol on 224 px crops and windows (Prithvi's
#: native tile, the official configs' size) in batches of 16, under bf16 autocast on a GPU (and on CPUs that compute
#: bfloat16 natively); the paper profile caps it at 100 epochs (``max_epochs`` in ``notebooks/params/paper.yaml``).
#: The learning rate is the CPU size's, not measured at this size here (no GPU was available): a starting point,
#: with the plateau protocol guarding each run's length.
_BF16 = native_bf16() or torch.cuda.is_available()
PAPER_TRAIN: dict = {
    **TRAIN_DEFAULTS,
    "batch_size": 16,
    "crop_size": 224,
    "bf16": _BF16,
    "channels_last": _BF16,
}


def train_defaults(size: str = "cpu", quick: bool = False) -> dict:
    """The fit settings of notebook 03 for a model size; quick mode keeps the size's models and runs a few steps."""
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {SIZES}")
    if quick:  # at paper size one validation per run: each writes a checkpoint of hundreds of MB
        return (
            dict(QUICK_TRAIN)
            if size == "cpu"
            else {**QUICK_TRAIN, "max_steps": 2, "eval_every": 2, "batch_size": 2}
        )
    return dict(TRAIN_DEFAULTS if size == "cpu" else PAPER_TRAIN)


def build_model(name: str, in_channels: int, num_classes: int, size: str = "cpu", **kwargs) -> nn.Module:
    """Build one of :data:`MODELS` (or, at ``size="paper"``, :data:`PAPER_MODELS`) by its results-table name.

    Args:
        name: ``"fcn"``, ``"unet"`` or ``"deeplabv3plus"``.
        in_channels: Input channels (``ds.n_channels``: 6 per date).
        num_classes: Output classes (``ds.num_classes``).
        size: ``"cpu"`` or ``"paper"`` (:data:`SIZES`).
        **kwargs: Passed to the constructor (widths, depth, normalisation statistics, ...).

    Raises:
        ValueError: For an unknown name or size.
    """
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {SIZES}")
    table = PAPER_MODELS if size == "paper" else MODELS
    if name not in table:
        raise ValueError(f"unknown CNN {name!r}; choose one of {sorted(table)}")
    return table[name](in_channels, num_classes, **kwargs)


def build_for(name: str, ds, size: str = "cpu", **kwargs) -> nn.Module:
    """Build a CNN for ``ds`` trained from scratch: its input standardised with ``ds``'s training statistics.

    A model trained from scratch has no statistics of its own to keep, and global HLS statistics can be far off for
    one scene (Indian Pines' per-band spread is about 4x smaller than Prithvi's pretraining data), so the
    dataset's own per-channel mean and std are used (:func:`helpers.data.datasets.channel_stats`).
    """
    from helpers.data.datasets import channel_stats

    mean, std = channel_stats(ds)
    return build_model(name, ds.n_channels, ds.num_classes, size, mean=mean, std=std, **kwargs)


def key_settings(size: str = "cpu") -> dict:
    """What a CNN row's run key needs beyond its name and training settings.

    Nothing at the CPU size (the name stands for the architecture, so existing runs keep their keys); the size
    otherwise, so a paper-size run is never mistaken for a CPU-size one.
    """
    return {} if size == "cpu" else {"size": size}


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; buffers such as the normalisation statistics are not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def model_size_mb(model: nn.Module) -> float:
    """Size of the state dict in MiB (parameters and buffers as stored in a checkpoint)."""
    n_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return n_bytes / 2**20


if __name__ == "__main__":
    for _size in SIZES:
        for _name in MODELS:
            _counts = [count_parameters(build_model(_name, c, 2, _size)) for c in (6, 18)]
            print(f"{_size:5s} {_name:14s} 6 bands: {_counts[0]:>11,d}   18 bands: {_counts[1]:>11,d}")

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

from torch import nn

from helpers.data.datasets import channel_stats
from helpers.models.deeplab import DeepLabV3Plus
from helpers.models.fcn import FCN
from helpers.models.resnet import ResNetDeepLabV3Plus, ResNetFCN, ResNetUNet
from helpers.models.unet import UNet

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

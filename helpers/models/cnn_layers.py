"""Building blocks shared by the plain-torch CNNs (FCN, U-Net, DeepLabV3+).

A ResNet basic block (:class:`BasicBlock`) serves DeepLabV3+'s small encoder and the paper-size ResNet-34
(:mod:`helpers.models.resnet`). The one block every model here needs is :class:`InputNorm`: the models consume reflectance (about 0..1.5) with
dates stacked as channels, and standardise it themselves with a per-channel mean/std held in buffers. Keeping the
normalisation inside the model makes each checkpoint self-contained: nobody has to remember which statistics a
run was trained with, and the foundation models, whose published recipes fix their own statistics, plug into the
same training loop unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: The six HLS bands every dataset in the study uses, in this order (one date).
HLS_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")

#: Prithvi-100M's published HLS statistics (reflectance x 1e4, STUDY.md section 3) converted to reflectance.
#: Used as the default normalisation of every CNN so that CNNs and Prithvi see identically scaled inputs.
PRITHVI_HLS_MEAN = (0.0775, 0.1081, 0.1229, 0.2497, 0.2204, 0.1611)
PRITHVI_HLS_STD = (0.1282, 0.1270, 0.1399, 0.1368, 0.1292, 0.1155)


def default_stats(in_channels: int) -> tuple[list[float], list[float]]:
    """Prithvi's per-band mean/std repeated once per date for ``in_channels = 6 * n_dates`` inputs.

    Inputs stack dates as channels date-major (date1 B02..B12, date2 B02..B12, ...), so the six-band statistics
    are tiled, not interleaved.

    Raises:
        ValueError: If ``in_channels`` is not a multiple of 6 (pass explicit ``mean``/``std`` then).
    """
    if in_channels <= 0 or in_channels % len(HLS_BANDS):
        raise ValueError(
            f"default HLS normalisation needs in_channels = 6 * n_dates, got {in_channels}; "
            "pass explicit per-channel mean and std instead"
        )
    reps = in_channels // len(HLS_BANDS)
    return list(PRITHVI_HLS_MEAN) * reps, list(PRITHVI_HLS_STD) * reps


class InputNorm(nn.Module):
    """Standardise reflectance per channel with fixed statistics stored as buffers (saved in the state dict).

    Args:
        in_channels: Number of input channels.
        mean: Per-channel mean in reflectance units; default :func:`default_stats`.
        std: Per-channel standard deviation; default :func:`default_stats`.
    """

    def __init__(
        self, in_channels: int, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        if mean is None or std is None:
            d_mean, d_std = default_stats(in_channels)
            mean = d_mean if mean is None else mean
            std = d_std if std is None else std
        mean_t = torch.as_tensor(list(mean), dtype=torch.float32)
        std_t = torch.as_tensor(list(std), dtype=torch.float32)
        if mean_t.numel() != in_channels or std_t.numel() != in_channels:
            raise ValueError(
                f"mean/std need {in_channels} values each, got {mean_t.numel()} and {std_t.numel()}"
            )
        if not bool((std_t > 0).all()):
            raise ValueError("every std value must be positive")
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(x - mean) / std``; raises if the channel count does not match."""
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"expected input [B, {self.mean.shape[1]}, H, W] (reflectance, dates stacked as channels); "
                f"got {tuple(x.shape)}"
            )
        return (x - self.mean) / self.std


def conv_bn_relu(
    in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    """Convolution (no bias, 'same' padding for odd kernels) + BatchNorm + ReLU: the unit all three CNNs use."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs + identity/projection shortcut) with optional stride or dilation."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(in_ch, out_ch, 3, stride=stride, dilation=dilation)
        self.conv2 = nn.Sequential(
            nn.Conv2d(out_ch, out_ch, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual update ``relu(f(x) + shortcut(x))``."""
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


def resize_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize ``x`` to the spatial size of ``ref`` (no-op when sizes already match)."""
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def init_weights(module: nn.Module) -> None:
    """He-normal convolutions (fan-out, ReLU), unit BatchNorm: the usual from-scratch CNN initialisation.

    Applied with ``model.apply(init_weights)``; it uses the global torch RNG, so seeding torch before building
    the model makes the initial weights reproducible.
    """
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def init_classifier(conv: nn.Conv2d) -> None:
    """Re-initialise a final 1x1 classifier with PyTorch's default (uniform, bound ``1/sqrt(fan_in)``).

    He initialisation assumes a ReLU after the layer; on the logits it gives initial losses several times
    ``log(num_classes)``. Near-zero init (FCN's choice with SGD) fixes the loss but starves the features of
    gradient for the first epochs. The LeCun-scaled default starts near ``log(num_classes)`` and learns fast.
    """
    conv.reset_parameters()

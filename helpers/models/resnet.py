"""The paper-size CNNs: FCN, U-Net and DeepLabV3+ on a ResNet-34 encoder, in plain torch.

The paper's CNN baselines are ResNet-class segmentation models (the usual ``segmentation-models-pytorch`` and
torchvision builds); neither library installs beside the CPU torch wheel here, so the encoder is written out:
ResNet-34 (He et al. 2016) is a 7x7 stride-2 stem, 3x3 max-pooling, and four stages of basic residual blocks
(3, 4, 6, 3 blocks of 64, 128, 256, 512 channels at strides 4, 8, 16, 32). Its parameter count without the ImageNet
classifier, 21,284,672 for three input channels, is checked in the tests; the first convolution takes
``6 * n_dates`` channels instead. No ImageNet weights are used (none exist offline, and none for 6- or 18-band
input), so these models train from scratch like the CPU-sized ones.

The three decoders follow the published designs at their usual widths:

* :class:`ResNetFCN`: FCN-8s score heads on the stride-8, -16 and -32 features, fused coarse-to-fine;
* :class:`ResNetUNet`: the U-Net decoder of ``segmentation-models-pytorch`` (blocks of 256, 128, 64, 32, 16
  channels, each upsampling 2x and concatenating the encoder features of that stride);
* :class:`ResNetDeepLabV3Plus`: output stride 16 (the last stage dilated), ASPP with rates (6, 12, 18) and 256
  channels, the stride-4 features reduced to 48 channels for the decoder.

They are the ``paper`` size of :func:`helpers.models.cnn.build_model` (``size="paper"``); the defaults of
:mod:`helpers.models.fcn`, :mod:`~helpers.models.unet` and :mod:`~helpers.models.deeplab` are the CPU size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from helpers.models.cnn_layers import (
    BasicBlock,
    InputNorm,
    conv_bn_relu,
    init_classifier,
    init_weights,
    resize_to,
)
from helpers.models.deeplab import ASPP

#: ResNet-34: blocks per stage and their widths.
RESNET34_BLOCKS = (3, 4, 6, 3)
RESNET34_WIDTHS = (64, 128, 256, 512)


class ResNetEncoder(nn.Module):
    """ResNet with basic blocks; returns the features at strides 2, 4, 8, 16 and 32 (or 16 with ``dilate_last``).

    Args:
        in_channels: Input channels (already standardised).
        blocks: Basic blocks per stage (ResNet-34: 3, 4, 6, 3; ResNet-18: 2, 2, 2, 2).
        widths: Channels per stage.
        dilate_last: Keep the last stage at the stride of the one before and dilate it instead (DeepLab's output
            stride 16).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        blocks: Sequence[int] = RESNET34_BLOCKS,
        widths: Sequence[int] = RESNET34_WIDTHS,
        dilate_last: bool = False,
    ) -> None:
        super().__init__()
        if len(blocks) != 4 or len(widths) != 4:
            raise ValueError(
                f"a ResNet has four stages; got blocks {tuple(blocks)} and widths {tuple(widths)}"
            )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        stages = []
        prev = widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths, strict=True)):
            dilated = dilate_last and i == 3
            stride = 1 if i == 0 or dilated else 2
            dilation = 2 if dilated else 1
            layers = [BasicBlock(prev, w, stride=stride, dilation=dilation)]
            layers += [BasicBlock(w, w, dilation=dilation) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            prev = w
        self.stages = nn.ModuleList(stages)
        self.widths = (widths[0], *widths)  # channels of the five returned feature maps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features ``[stride 2 (stem), stride 4, 8, 16, 32]`` (the last at 16 when dilated)."""
        h = self.stem(x)
        feats = [h]
        h = self.pool(h)
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats


class _ResNetSegmenter(nn.Module):
    """Shared front: input standardisation, the encoder, padding to a multiple of 32, and the final crop."""

    def __init__(self, in_channels, mean, std, dilate_last: bool) -> None:
        super().__init__()
        self.norm = InputNorm(in_channels, mean, std)
        self.encoder = ResNetEncoder(in_channels, dilate_last=dilate_last)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.norm(x)
        pad_h, pad_w = (-h.shape[-2]) % 32, (-h.shape[-1]) % 32
        # zero after standardisation = the dataset mean, the most neutral filler
        return self.encoder(F.pad(h, (0, pad_w, 0, pad_h)))

    def _finish(self) -> None:
        self.apply(init_weights)
        init_classifier(self.classifier)


class ResNetFCN(_ResNetSegmenter):
    """FCN-8s on ResNet-34: a 3x3 head on the stride-32 features, 1x1 scores on strides 8 and 16, fused and upsampled.

    Args:
        in_channels: Input channels (``6 * n_dates``).
        num_classes: Output classes.
        dropout: Channel dropout in the head.
        mean: Per-channel input mean (reflectance); default Prithvi's HLS statistics repeated per date.
        std: Per-channel input std; default as ``mean``.
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, dropout: float = 0.1, mean=None, std=None
    ) -> None:
        super().__init__(in_channels, mean, std, dilate_last=False)
        w = self.encoder.widths
        self.head = nn.Sequential(conv_bn_relu(w[4], w[4]), nn.Dropout2d(dropout))
        self.classifier = nn.Conv2d(w[4], num_classes, 1)
        self.score16 = nn.Conv2d(w[3], num_classes, 1)
        self.score8 = nn.Conv2d(w[2], num_classes, 1)
        self._finish()
        for score in (self.score16, self.score8):
            init_classifier(score)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map reflectance ``[B, C, H, W]`` to class logits ``[B, num_classes, H, W]``."""
        _, _, s8, s16, s32 = self._features(x)
        score = self.classifier(self.head(s32))
        score = resize_to(score, s16) + self.score16(s16)
        score = resize_to(score, s8) + self.score8(s8)
        full = F.interpolate(score, scale_factor=8, mode="bilinear", align_corners=False)
        return full[..., : x.shape[-2], : x.shape[-1]]


class ResNetUNet(_ResNetSegmenter):
    """U-Net decoder on ResNet-34 (blocks of 256, 128, 64, 32, 16 channels, as ``segmentation-models-pytorch``).

    Args:
        in_channels: Input channels (``6 * n_dates``).
        num_classes: Output classes.
        decoder_channels: Output channels of the five decoder blocks (strides 16, 8, 4, 2, 1).
        mean: Per-channel input mean (reflectance); default Prithvi's HLS statistics repeated per date.
        std: Per-channel input std; default as ``mean``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        mean=None,
        std=None,
    ) -> None:
        super().__init__(in_channels, mean, std, dilate_last=False)
        if len(decoder_channels) != 5:
            raise ValueError(f"decoder_channels needs five values, got {len(decoder_channels)}")
        w = self.encoder.widths
        skips = (w[3], w[2], w[1], w[0], 0)  # stride 16, 8, 4, 2, then none at full resolution
        prev = w[4]
        self.blocks = nn.ModuleList()
        for skip, out in zip(skips, decoder_channels, strict=True):
            self.blocks.append(nn.Sequential(conv_bn_relu(prev + skip, out), conv_bn_relu(out, out)))
            prev = out
        self.classifier = nn.Conv2d(prev, num_classes, 3, padding=1)
        self._finish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map reflectance ``[B, C, H, W]`` to class logits ``[B, num_classes, H, W]``."""
        feats = self._features(x)
        h = feats[-1]
        skips = [*reversed(feats[:-1]), None]
        for block, skip in zip(self.blocks, skips, strict=True):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = block(h if skip is None else torch.cat([h, skip], dim=1))
        return self.classifier(h)[..., : x.shape[-2], : x.shape[-1]]


class ResNetDeepLabV3Plus(_ResNetSegmenter):
    """DeepLabV3+ on ResNet-34 at output stride 16: ASPP (6, 12, 18) of 256 channels and a 48-channel skip.

    Args:
        in_channels: Input channels (``6 * n_dates``).
        num_classes: Output classes.
        atrous_rates: Dilation rates of the ASPP 3x3 branches (the published ones for output stride 16).
        aspp_channels: Channels of every ASPP branch and of the decoder.
        low_level_channels: Channels the stride-4 features are reduced to.
        dropout: Channel dropout after the ASPP projection.
        mean: Per-channel input mean (reflectance); default Prithvi's HLS statistics repeated per date.
        std: Per-channel input std; default as ``mean``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        atrous_rates: Sequence[int] = (6, 12, 18),
        aspp_channels: int = 256,
        low_level_channels: int = 48,
        dropout: float = 0.1,
        mean=None,
        std=None,
    ) -> None:
        super().__init__(in_channels, mean, std, dilate_last=True)
        w = self.encoder.widths
        self.aspp = ASPP(w[4], aspp_channels, atrous_rates, dropout)
        self.low_level = conv_bn_relu(w[1], low_level_channels, 1)
        self.decoder = nn.Sequential(
            conv_bn_relu(aspp_channels + low_level_channels, aspp_channels),
            conv_bn_relu(aspp_channels, aspp_channels),
        )
        self.classifier = nn.Conv2d(aspp_channels, num_classes, 1)
        self._finish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map reflectance ``[B, C, H, W]`` to class logits ``[B, num_classes, H, W]``."""
        _, s4, _, _, s16 = self._features(x)
        low = self.low_level(s4)
        h = self.decoder(torch.cat([resize_to(self.aspp(s16), low), low], dim=1))
        full = F.interpolate(self.classifier(h), scale_factor=4, mode="bilinear", align_corners=False)
        return full[..., : x.shape[-2], : x.shape[-1]]

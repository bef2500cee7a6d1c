"""FCN-8s (Long, Shelhamer & Darrell 2015) in plain torch, narrow by default so it trains on a CPU.

A VGG-style encoder of five conv stages, each ending in 2x2 max-pooling (strides 2, 4, 8, 16, 32), a
convolutional "fc6/fc7" head, and 1x1 classifiers on the stride-32 head and on the stride-16 and stride-8 stage
outputs. The three score maps are fused coarse-to-fine by bilinear upsampling and addition (the FCN-8s skips),
and the stride-8 result is upsampled bilinearly to the input size. The original learns its upsampling with
bilinear-initialised deconvolutions; fixed bilinear upsampling is used here, as in most modern re-implementations,
which keeps the model smaller and changes little.

Dates are stacked as channels (``in_channels = 6 * n_dates``), so the first convolution mixes all dates at once,
as a CNN baseline without a temporal module would.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from helpers.models.cnn_layers import InputNorm, conv_bn_relu, init_classifier, init_weights, resize_to


class FCN(nn.Module):
    """FCN-8s with BatchNorm and bilinear upsampling.

    Args:
        in_channels: Input channels (6 for one date, 18 for three dates stacked).
        num_classes: Output classes.
        widths: Channels of the five encoder stages (stride 2..32).
        convs_per_stage: 3x3 convolutions per stage (VGG-16 uses 2, 2, 3, 3, 3).
        head_width: Channels of the two-layer convolutional head that replaces VGG's fc6/fc7.
        dropout: Channel dropout in the head (FCN uses 0.5 with 4096-wide layers; less suits a narrow head).
        mean: Per-channel input mean (reflectance); default Prithvi's HLS statistics repeated per date.
        std: Per-channel input std; default as ``mean``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        widths: Sequence[int] = (16, 32, 64, 96, 128),
        convs_per_stage: int = 2,
        head_width: int = 128,
        dropout: float = 0.1,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"FCN-8s needs five stage widths (strides 2..32), got {len(widths)}")
        self.norm = InputNorm(in_channels, mean, std)
        stages = []
        prev = in_channels
        for w in widths:
            layers = [conv_bn_relu(prev if i == 0 else w, w) for i in range(convs_per_stage)]
            # ceil_mode keeps a non-empty map even when the input is not a multiple of 32.
            stages.append(nn.Sequential(*layers, nn.MaxPool2d(2, ceil_mode=True)))
            prev = w
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(
            conv_bn_relu(widths[4], head_width, 3),
            nn.Dropout2d(dropout),
            conv_bn_relu(head_width, head_width, 1),
            nn.Dropout2d(dropout),
        )
        self.score_head = nn.Conv2d(head_width, num_classes, 1)
        self.score_pool4 = nn.Conv2d(widths[3], num_classes, 1)
        self.score_pool3 = nn.Conv2d(widths[2], num_classes, 1)
        self.apply(init_weights)
        for score in (self.score_head, self.score_pool4, self.score_pool3):
            init_classifier(score)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map reflectance ``[B, C, H, W]`` to class logits ``[B, num_classes, H, W]``."""
        h = self.norm(x)
        feats = []
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        pool3, pool4 = feats[2], feats[3]
        score = self.score_head(self.head(h))
        score = resize_to(score, pool4) + self.score_pool4(pool4)
        score = resize_to(score, pool3) + self.score_pool3(pool3)
        return resize_to(score, x)

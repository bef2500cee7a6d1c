"""U-Net (Ronneberger, Fischer & Brox 2015) in plain torch with configurable depth and width.

Encoder: ``depth`` down-steps of 2x2 max-pooling, each preceded by two 3x3 conv-BN-ReLU layers, channels
doubling from ``base``. Decoder: 2x2 transposed convolutions that halve the channels, concatenation with the
encoder feature map of the same resolution (the skip), two 3x3 conv-BN-ReLU layers; a 1x1 classifier at full
resolution. Unlike the original (valid convolutions, output smaller than input) this uses 'same' padding and pads
the input to a multiple of ``2**depth``, so logits match the input size exactly: what a segmentation loss on
whole chips needs.

The default (``base=16``, ``depth=3``) is about 0.47 M parameters for 6 input bands, sized for a 2-core CPU;
the original is ``base=64``, ``depth=4`` (31 M).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from helpers.models.cnn_layers import InputNorm, conv_bn_relu, init_classifier, init_weights


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_ch, out_ch), conv_bn_relu(out_ch, out_ch))


class UNet(nn.Module):
    """U-Net with 'same' convolutions, BatchNorm and transposed-convolution up-sampling.

    Args:
        in_channels: Input channels (6 for one date, 18 for three dates stacked).
        num_classes: Output classes.
        base: Channels of the first (full-resolution) level; level ``i`` has ``base * 2**i``.
        depth: Number of 2x down-samplings (the bottleneck runs at stride ``2**depth``).
        mean: Per-channel input mean (reflectance); default Prithvi's HLS statistics repeated per date.
        std: Per-channel input std; default as ``mean``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        base: int = 16,
        depth: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = depth
        self.norm = InputNorm(in_channels, mean, std)
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        prev = in_channels
        for w in widths[:-1]:
            self.down.append(_double_conv(prev, w))
            prev = w
        self.bottleneck = _double_conv(prev, widths[-1])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_hi, w_lo in zip(reversed(widths[1:]), reversed(widths[:-1]), strict=True):
            self.up.append(nn.ConvTranspose2d(w_hi, w_lo, kernel_size=2, stride=2))
            self.dec.append(_double_conv(2 * w_lo, w_lo))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)
        self.apply(init_weights)
        init_classifier(self.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map reflectance ``[B, C, H, W]`` to class logits ``[B, num_classes, H, W]``."""
        h = self.norm(x)
        height, width = h.shape[-2:]
        m = 2**self.depth
        pad_h, pad_w = (-height) % m, (-width) % m
        # Zero padding after normalisation is padding with the dataset mean: the most neutral filler.
        h = F.pad(h, (0, pad_w, 0, pad_h))
        skips = []
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.bottleneck(h)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            h = dec(torch.cat([up(h), skip], dim=1))
        return self.classifier(h)[..., :height, :width]

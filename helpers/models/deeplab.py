"""DeepLabV3+ (Chen et al. 2018) in plain torch with a small residual encoder.

* Encoder: a two-conv stem at stride 2, then three residual stages (one ResNet basic block each) at strides 4,
  8 and 16. With ``output_stride=8`` the last stage keeps stride 8 and uses dilation 2 instead (DeepLab's
  "atrous" trick: a larger receptive field without losing resolution).
* ASPP: a 1x1 branch, one 3x3 branch per atrous rate, and an image-pooling branch, concatenated and projected.
* Decoder: the ASPP output upsampled to stride 4, concatenated with a 1x1-reduced copy of the stride-4 encoder
  features (the "low-level features"), two 3x3 convolutions, a 1x1 classifier, bilinear upsampling to the input.

The published model uses ResNet-101/Xception at output stride 16 with rates (6, 12, 18) on 513-pixel crops
(feature maps of about 33x33). Our crops are small (64-256 pixels), so the default is output stride 8 with
rates (2, 4, 6): the widest branch then spans 13 feature cells (104 px, about 3 km at 30 m), comparable in
relative terms to the original. Both are parameters.

The image-pooling branch has no BatchNorm: with a batch of one, BatchNorm over a 1x1 map has a single value per
channel and cannot normalise in training mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from helpers.models.cnn_layers import (
    BasicBlock,
    InputNorm,
    conv_bn_relu,
    init_classifier,
    init_weights,
    resize_to,
)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: parallel dilated views of the same features, fused by a 1x1 conv."""

    def __init__(self, in_ch: int, out_ch: int, rates: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_ch, out_ch, 1)] + [conv_bn_relu(in_ch, out_ch, 3, dilation=r) for r in rates]
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_ch, out_ch, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(
            conv_bn_relu(out_ch * (len(rates) + 2), out_ch, 1),
            nn.Dropout2d(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate all branches (image pooling broadcast back to the map size) and project."""
        outs = [branch(x) for branch in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ with a small dilated residual encoder, ASPP and the low-level-feature decoder.

    Args:
        in_channels: Input channels (6 for one date, 18 for three dates stacked).
        num_classes: Output classes.
        widths: Channels of the stem and the three residual stages (strides 2, 4, 8, 16/8).
        output_stride: 8 or 16: stride of the features ASPP sees.
        atrous_rates: Dilation rates of the ASPP 3x3 branches.
        aspp_channels: Channels of every ASPP branch and of the decoder.
        low_level_channels: Channels the stride-4 features are reduced to before the decoder concatenation
            (the paper reduces 256 to 48, keeping the high-level features dominant).
        dropout: Channel dropout after the ASPP projection.
        mean: Per-channel input mean (reflectance); default Prithvi's HLS statistics repeated per date.
        std: Per-channel input std; default as ``mean``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        widths: Sequence[int] = (16, 32, 64, 128),
        output_stride: int = 8,
        atrous_rates: Sequence[int] = (2, 4, 6),
        aspp_channels: int = 64,
        low_level_channels: int = 16,
        dropout: float = 0.1,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        if len(widths) != 4:
            raise ValueError(
                f"widths needs 4 values (stem, stride 4, stride 8, stride 8/16), got {len(widths)}"
            )
        w0, w1, w2, w3 = widths
        self.norm = InputNorm(in_channels, mean, std)
        self.stem = nn.Sequential(conv_bn_relu(in_channels, w0, stride=2), conv_bn_relu(w0, w0))
        self.layer1 = BasicBlock(w0, w1, stride=2)  # stride 4: the low-level features
        self.layer2 = BasicBlock(w1, w2, stride=2)  # stride 8
        if output_stride == 16:
            self.layer3 = BasicBlock(w2, w3, stride=2)
        else:
            self.layer3 = BasicBlock(w2, w3, dilation=2)
        self.aspp = ASPP(w3, aspp_channels, atrous_rates, dropout)
        self.low_level = conv_bn_relu(w1, low_level_channels, 1)
        self.decoder = nn.Sequential(
            conv_bn_relu(aspp_channels + low_level_channels, aspp_channels),
            conv_bn_relu(aspp_channels, aspp_channels),
        )
        self.classifier = nn.Conv2d(aspp_channels, num_classes, 1)
        self.apply(init_weights)
        init_classifier(self.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map reflectance ``[B, C, H, W]`` to class logits ``[B, num_classes, H, W]``."""
        h = self.stem(self.norm(x))
        low = self.layer1(h)
        high = self.aspp(self.layer3(self.layer2(low)))
        low = self.low_level(low)
        h = self.decoder(torch.cat([resize_to(high, low), low], dim=1))
        return resize_to(self.classifier(h), x)

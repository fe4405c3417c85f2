"""The reference architectures of the engine's first round (small configurations): ESPCN,
FSRCNN, SRVGGNetCompact, DnCNN and a two-level UNet with seeded random weights.

Each is the published network's structure: what matters is that the exported graph has the
ops and patterns a real checkpoint produces (PixelShuffle, PReLU, eval-mode BatchNorm,
ConvTranspose upsampling, bilinear Resize, skip Concat).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ESPCN(nn.Module):
    """Shi et al. 2016: three convs with tanh, then a sub-pixel (PixelShuffle) upscale."""

    def __init__(self, channels: int = 3, scale: int = 2, manual_shuffle: bool = False) -> None:
        super().__init__()
        self.scale = scale
        self.manual_shuffle = manual_shuffle
        self.body = nn.Sequential(
            nn.Conv2d(channels, 64, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(32, channels * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if not self.manual_shuffle:
            return self.shuffle(y)
        # the pixel shuffle as many codebases write it: exported as Reshape-Transpose-Reshape
        n, c, h, w = y.shape
        r = self.scale
        y = y.reshape(n, c // (r * r), r, r, h, w).permute(0, 1, 4, 2, 5, 3)
        return y.reshape(n, c // (r * r), h * r, w * r)


class FSRCNN(nn.Module):
    """Dong et al. 2016: extract (5x5), shrink (1x1), m maps (3x3), expand (1x1), each with
    PReLU, then a 9x9 stride-2 ConvTranspose for the x2 upscale."""

    def __init__(
        self, channels: int = 3, d: int = 56, s: int = 12, m: int = 4, scale: int = 2
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, d, 5, padding=2), nn.PReLU(d)]
        layers += [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(
            d, channels, 9, stride=scale, padding=4, output_padding=scale - 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.body(x))


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact net (realesr-general-x4v3 / animevideov3 family): a plain conv
    stack with per-channel PReLU, PixelShuffle, plus the nearest-upsampled input as a base."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 4,
        upscale: int = 2,
    ) -> None:
        super().__init__()
        self.upscale = upscale
        body: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            body += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        body += [nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1)]
        self.body = nn.ModuleList(body)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        return out + base


class DnCNN(nn.Module):
    """Zhang et al. 2017: conv+ReLU, (depth-2) x conv+BN+ReLU, conv; predicts the noise,
    which is subtracted from the input (residual learning)."""

    def __init__(self, channels: int = 3, features: int = 64, depth: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(features, features, 3, padding=1, bias=False),
                nn.BatchNorm2d(features),
                nn.ReLU(),
            ]
        layers += [nn.Conv2d(features, channels, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


class UNet(nn.Module):
    """A two-level U-Net: conv+ReLU encoder, MaxPool 2 (ceil mode, so odd sizes work), and two
    upsampling paths back to full resolution, a 2x2 stride-2 ConvTranspose and a bilinear
    nn.Upsample + conv, each cropped to the skip's size and concatenated with it."""

    def __init__(self, channels: int = 3, f: int = 16) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(
            nn.Conv2d(channels, f, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(f, f, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.enc2 = nn.Sequential(nn.Conv2d(f, 2 * f, 3, padding=1), nn.ReLU())
        self.up_t = nn.ConvTranspose2d(2 * f, f, 2, stride=2)
        self.up_b = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(2 * f, f, 3, padding=1),
            nn.ReLU(),
        )
        self.dec = nn.Sequential(nn.Conv2d(3 * f, f, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(f, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        h, w = e1.shape[2], e1.shape[3]
        a = self.up_t(e2)[:, :, :h, :w]
        b = self.up_b(e2)[:, :, :h, :w]
        return self.head(self.dec(torch.cat([e1, a, b], dim=1)))


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "espcn": ESPCN,
    "espcn_manual_shuffle": lambda: ESPCN(manual_shuffle=True),
    "fsrcnn": FSRCNN,
    "srvgg": SRVGGNetCompact,
    "dncnn": DnCNN,
    "unet": UNet,
}


def build_reference(name: str, seed: int = 0) -> nn.Module:
    """The architecture in eval mode with seeded random weights (and BN running stats)."""
    torch.manual_seed(seed)
    model = ARCHITECTURES[name]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                # non-trivial statistics, so that folding BN into the conv really matters
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.normal_(0.0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
            elif isinstance(m, nn.PReLU):
                m.weight.uniform_(0.05, 0.4)
    return model.eval()

"""The conv-only architectures: RRDBNet (ESRGAN / Real-ESRGAN, x4 and the x2 that starts with
pixel-unshuffle), SRVGGNetCompact (Real-ESRGAN compact) and SPAN (NTIRE 2024 efficient SR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import mean_buffer

# ---------------------------------------------------------------------------------------------
# RRDBNet (ESRGAN / Real-ESRGAN), basicsr/archs/rrdbnet_arch.py
# ---------------------------------------------------------------------------------------------


def pixel_unshuffle_basicsr(x: Tensor, scale: int) -> Tensor:
    """basicsr.archs.arch_util.pixel_unshuffle: what Real-ESRGAN's RRDBNet really calls."""
    b, c, hh, hw = x.size()
    out_channel = c * (scale**2)
    h = hh // scale
    w = hw // scale
    x_view = x.view(b, c, h, scale, w, scale)
    return x_view.permute(0, 1, 3, 5, 2, 4).reshape(b, out_channel, h, w)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the concat of the input and all previous outputs; x0.2 + x."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three RDBs, then x0.2 + x."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator as in basicsr. scale 2 / 1 pixel-unshuffle the input by 2 / 4 first and
    then run the x4 body (so the output is x2 / x1). ``unshuffle`` picks torch's
    F.pixel_unshuffle ("torch") or basicsr's view/permute/reshape function ("basicsr")."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 16,
        num_block: int = 2,
        num_grow_ch: int = 8,
        unshuffle: str = "torch",
    ) -> None:
        super().__init__()
        self.scale = scale
        self.unshuffle = unshuffle
        if scale == 2:
            num_in_ch = num_in_ch * 4
        elif scale == 1:
            num_in_ch = num_in_ch * 16
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def _unshuffle(self, x: Tensor, r: int) -> Tensor:
        if self.unshuffle == "basicsr":
            return pixel_unshuffle_basicsr(x, r)
        return F.pixel_unshuffle(x, r)

    def forward(self, x: Tensor) -> Tensor:
        if self.scale == 2:
            feat = self._unshuffle(x, 2)
        elif self.scale == 1:
            feat = self._unshuffle(x, 4)
        else:
            feat = x
        feat = self.conv_first(feat)
        body_feat = self.conv_body(self.body(feat))
        feat = feat + body_feat
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


# ---------------------------------------------------------------------------------------------
# SRVGGNetCompact (Real-ESRGAN compact), realesrgan/archs/srvgg_arch.py
# ---------------------------------------------------------------------------------------------


class SRVGGNetCompact(nn.Module):
    """Plain conv + PReLU stack, conv to 3*s*s, PixelShuffle, plus the nearest-upsampled input."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 16,
        num_conv: int = 4,
        upscale: int = 4,
    ) -> None:
        super().__init__()
        self.upscale = upscale
        body: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            body += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(body)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        out += base
        return out


# ---------------------------------------------------------------------------------------------
# SPAN (Swift Parameter-free Attention Network), hongyuanyu/SPAN basicsr/archs/span_arch.py
# ---------------------------------------------------------------------------------------------


class Conv3XC(nn.Module):
    """SPAN's re-parameterisable conv. At inference (and so in every exported checkpoint) the
    1x1 -> 3x3 -> 1x1 + 1x1-skip branches are merged into ``eval_conv``, a plain 3x3 conv;
    only that inference form is kept here."""

    def __init__(self, c_in: int, c_out: int, relu: bool = False) -> None:
        super().__init__()
        self.has_relu = relu
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1, stride=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.eval_conv(x)
        if self.has_relu:
            out = F.leaky_relu(out, negative_slope=0.05)
        return out


class SPAB(nn.Module):
    """Three Conv3XC with SiLU between; parameter-free attention sigmoid(out3) - 0.5."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.c1_r = Conv3XC(channels, channels)
        self.c2_r = Conv3XC(channels, channels)
        self.c3_r = Conv3XC(channels, channels)
        self.act1 = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out1 = self.c1_r(x)
        out1_act = self.act1(out1)
        out2 = self.c2_r(out1_act)
        out2_act = self.act1(out2)
        out3 = self.c3_r(out2_act)
        sim_att = torch.sigmoid(out3) - 0.5
        out = (out3 + x) * sim_att
        return out, out1, sim_att


class SPAN(nn.Module):
    """SPAN: mean shift and x255, Conv3XC, 6 SPABs, conv, concat 4 features, 1x1, conv+shuffle."""

    mean: Tensor

    def __init__(
        self, num_in_ch: int = 3, num_out_ch: int = 3, feat: int = 16, upscale: int = 4
    ) -> None:
        super().__init__()
        self.img_range = 255.0
        self.register_buffer("mean", mean_buffer())
        self.conv_1 = Conv3XC(num_in_ch, feat)
        self.block_1 = SPAB(feat)
        self.block_2 = SPAB(feat)
        self.block_3 = SPAB(feat)
        self.block_4 = SPAB(feat)
        self.block_5 = SPAB(feat)
        self.block_6 = SPAB(feat)
        self.conv_cat = nn.Conv2d(feat * 4, feat, 1, bias=True)
        self.conv_2 = Conv3XC(feat, feat)
        self.upsampler = nn.Sequential(
            nn.Conv2d(feat, num_out_ch * upscale**2, 3, 1, 1), nn.PixelShuffle(upscale)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = (x - self.mean) * self.img_range
        out_feature = self.conv_1(x)
        out_b1, _, _ = self.block_1(out_feature)
        out_b2, _, _ = self.block_2(out_b1)
        out_b3, _, _ = self.block_3(out_b2)
        out_b4, _, _ = self.block_4(out_b3)
        out_b5, _, _ = self.block_5(out_b4)
        out_b6, out_b5_2, _ = self.block_6(out_b5)
        out_b6 = self.conv_2(out_b6)
        out = self.conv_cat(torch.cat([out_feature, out_b6, out_b1, out_b5_2], 1))
        return self.upsampler(out)

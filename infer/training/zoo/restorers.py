"""The restorers and their blocks: SAFMN and NAFNet (UNet restorer and NAFSSR-style SR), with
the channel LayerNorm written out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import LayerNorm2d

# ---------------------------------------------------------------------------------------------
# SAFMN (sunny2109/SAFMN basicsr/archs/safmn_arch.py)
# ---------------------------------------------------------------------------------------------


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation. Level 0: depthwise 3x3 on its chunk; level i > 0:
    adaptive_max_pool2d to (h // 2^i, w // 2^i), depthwise 3x3, nearest back to (h, w). Concat,
    1x1 conv, GELU, multiply with the input.

    ``pool="adaptive"`` is the reference code. The TorchScript exporter cannot export
    adaptive_max_pool2d with a dynamic output size, so ``pool="max"`` (the default here) uses
    max_pool2d(2^i, 2^i), identical to the adaptive pool when h and w are multiples of 2^i
    (i.e. of 2^(levels-1) = 8 here); this is how exportable SAFMN ports do it.
    """

    def __init__(self, dim: int, n_levels: int = 4, pool: str = "max") -> None:
        super().__init__()
        self.n_levels = n_levels
        self.pool = pool
        chunk_dim = dim // n_levels
        self.mfr = nn.ModuleList(
            [nn.Conv2d(chunk_dim, chunk_dim, 3, 1, 1, groups=chunk_dim) for _ in range(n_levels)]
        )
        self.aggr = nn.Conv2d(dim, dim, 1, 1, 0)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.size()[-2:]
        xc = x.chunk(self.n_levels, dim=1)
        out = []
        for i in range(self.n_levels):
            if i > 0:
                if self.pool == "adaptive":
                    s = F.adaptive_max_pool2d(xc[i], (h // 2**i, w // 2**i))
                else:
                    s = F.max_pool2d(xc[i], kernel_size=2**i, stride=2**i)
                s = self.mfr[i](s)
                s = F.interpolate(s, size=(h, w), mode="nearest")
            else:
                s = self.mfr[i](xc[i])
            out.append(s)
        out_t = self.aggr(torch.cat(out, dim=1))
        return self.act(out_t) * x


class CCM(nn.Module):
    """Convolutional channel mixer: conv3x3 (dim -> dim*ffn) -> GELU -> conv1x1."""

    def __init__(self, dim: int, growth_rate: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * growth_rate)
        self.ccm = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, 1, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1, 1, 0)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.ccm(x)


class SAFMNBlock(nn.Module):
    def __init__(self, dim: int, ffn_scale: float, pool: str) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.norm2 = LayerNorm2d(dim)
        self.safm = SAFM(dim, pool=pool)
        self.ccm = CCM(dim, ffn_scale)

    def forward(self, x: Tensor) -> Tensor:
        x = self.safm(self.norm1(x)) + x
        return self.ccm(self.norm2(x)) + x


class SAFMN(nn.Module):
    """SAFMN: conv3x3, AttBlocks, + skip, conv3x3 to 3*s*s, PixelShuffle."""

    def __init__(
        self,
        dim: int = 16,
        n_blocks: int = 2,
        ffn_scale: float = 2.0,
        upscaling_factor: int = 4,
        pool: str = "max",
    ) -> None:
        super().__init__()
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(*[SAFMNBlock(dim, ffn_scale, pool) for _ in range(n_blocks)])
        self.to_img = nn.Sequential(
            nn.Conv2d(dim, 3 * upscaling_factor**2, 3, 1, 1), nn.PixelShuffle(upscaling_factor)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.to_feat(x)
        x = self.feats(x) + x
        return self.to_img(x)


# ---------------------------------------------------------------------------------------------
# NAFNet (megvii-research/NAFNet basicsr/models/archs/NAFNet_arch.py, NAFSSR_arch.py)
# ---------------------------------------------------------------------------------------------


class SimpleGate(nn.Module):
    """chunk into 2 along channels, multiply."""

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return x1 * x2


class NAFBlock(nn.Module):
    """LN2d, 1x1 (c -> 2c), dw 3x3, SimpleGate, SCA (AvgPool(1) -> 1x1, multiply), 1x1,
    y = inp + x * beta; LN2d, 1x1 (c -> 2c), SimpleGate, 1x1, y + x * gamma."""

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2) -> None:
        super().__init__()
        dw = c * dw_expand
        self.conv1 = nn.Conv2d(c, dw, 1, 1, 0, bias=True)
        self.conv2 = nn.Conv2d(dw, dw, 3, 1, 1, groups=dw, bias=True)
        self.conv3 = nn.Conv2d(dw // 2, c, 1, 1, 0, bias=True)
        self.sca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1, 1, 0, bias=True)
        )
        self.sg = SimpleGate()
        ffn = ffn_expand * c
        self.conv4 = nn.Conv2d(c, ffn, 1, 1, 0, bias=True)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1, 1, 0, bias=True)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros((1, c, 1, 1)))
        self.gamma = nn.Parameter(torch.zeros((1, c, 1, 1)))

    def forward(self, inp: Tensor) -> Tensor:
        x = self.norm1(inp)
        x = self.conv2(self.conv1(x))
        x = self.sg(x)
        x = x * self.sca(x)
        x = self.conv3(x)
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """NAFNet UNet restorer: intro 3x3, encoders + stride-2 conv down, middle blocks,
    1x1 conv + PixelShuffle(2) up + skip add, decoders, ending 3x3, + input, crop."""

    def __init__(
        self,
        width: int = 8,
        middle_blk_num: int = 1,
        enc_blk_nums: tuple[int, ...] = (1, 1),
        dec_blk_nums: tuple[int, ...] = (1, 1),
    ) -> None:
        super().__init__()
        self.intro = nn.Conv2d(3, width, 3, 1, 1, bias=True)
        self.ending = nn.Conv2d(width, 3, 3, 1, 1, bias=True)
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan = chan * 2
        self.middle_blks = nn.Sequential(*[NAFBlock(chan) for _ in range(middle_blk_num)])
        for num in dec_blk_nums:
            self.ups.append(
                nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2))
            )
            chan = chan // 2
            self.decoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
        self.padder_size = 2 ** len(self.encoders)

    def check_image_size(self, x: Tensor) -> Tensor:
        _, _, h, w = x.size()
        mod_pad_h = (self.padder_size - h % self.padder_size) % self.padder_size
        mod_pad_w = (self.padder_size - w % self.padder_size) % self.padder_size
        return F.pad(x, (0, mod_pad_w, 0, mod_pad_h))

    def forward(self, inp: Tensor) -> Tensor:
        _, _, h, w = inp.shape
        inp = self.check_image_size(inp)
        x = self.intro(inp)
        encs = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            encs.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, enc_skip in zip(self.decoders, self.ups, encs[::-1], strict=True):
            x = up(x)
            x = x + enc_skip
            x = decoder(x)
        x = self.ending(x)
        x = x + inp
        return x[:, :, :h, :w]


class NAFNetSR(nn.Module):
    """NAFSSR-style single-view SR: intro 3x3, NAFBlocks, conv to 3*s*s + PixelShuffle, plus
    the bilinear-upsampled input."""

    def __init__(self, width: int = 16, num_blks: int = 2, up_scale: int = 2) -> None:
        super().__init__()
        self.up_scale = up_scale
        self.intro = nn.Conv2d(3, width, 3, 1, 1, bias=True)
        self.body = nn.Sequential(*[NAFBlock(width) for _ in range(num_blks)])
        self.up = nn.Sequential(
            nn.Conv2d(width, 3 * up_scale**2, 3, 1, 1, bias=True), nn.PixelShuffle(up_scale)
        )

    def forward(self, inp: Tensor) -> Tensor:
        inp_hr = F.interpolate(inp, scale_factor=self.up_scale, mode="bilinear")
        return self.up(self.body(self.intro(inp))) + inp_hr

"""Omni-SR, approximate: block and grid self-attention (einsum), windowed channel attention
(F.normalize, temperature), gated conv feed-forward, ESA."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import LayerNorm2d

# ---------------------------------------------------------------------------------------------
# Omni-SR (Francis0625/Omni-SR ops/OSA.py, OSAG.py, esa.py, OmniSR.py), approximate
# ---------------------------------------------------------------------------------------------


class SqueezeExcitation(nn.Module):
    """Reduce mean over (h, w) -> Linear -> SiLU -> Linear -> Sigmoid -> (b, c, 1, 1) gate."""

    def __init__(self, dim: int, shrinkage_rate: float = 0.25) -> None:
        super().__init__()
        hidden = int(dim * shrinkage_rate)
        self.gate = nn.Sequential(
            nn.Linear(dim, hidden, bias=False),
            nn.SiLU(),
            nn.Linear(hidden, dim, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        g = self.gate(x.mean(dim=(2, 3)))
        return x * g[:, :, None, None]


class MBConv(nn.Module):
    """1x1 -> GELU -> depthwise 3x3 -> GELU -> SE -> 1x1, residual (expansion_rate=1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(dim, dim, 1),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, stride=1, padding=1, groups=dim),
            nn.GELU(),
            SqueezeExcitation(dim, 0.25),
            nn.Conv2d(dim, dim, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x) + x


class OmniAttention(nn.Module):
    """Omni-SR's window self-attention on (b, x, y, w1, w2, d) windows: Linear qkv, chunk,
    einsum, relative position bias from an nn.Embedding, Softmax, einsum, Linear."""

    rel_pos_indices: Tensor

    def __init__(self, dim: int, dim_head: int, window_size: int) -> None:
        super().__init__()
        self.heads = dim // dim_head
        self.scale = dim_head**-0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.rel_pos_bias = nn.Embedding((2 * window_size - 1) ** 2, self.heads)
        pos = torch.arange(window_size)
        grid = torch.stack(torch.meshgrid(pos, pos, indexing="ij"))
        grid = grid.permute(1, 2, 0).reshape(-1, 2)  # (i j) c
        rel_pos = grid[:, None, :] - grid[None, :, :] + window_size - 1
        idx = (rel_pos * torch.tensor([2 * window_size - 1, 1])).sum(dim=-1)
        self.register_buffer("rel_pos_indices", idx, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, wh, ww, _ = x.shape
        h = self.heads
        x = x.reshape(batch * height * width, wh * ww, -1)  # 'b x y w1 w2 d -> (b x y) (w1 w2) d'
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(t.shape[0], t.shape[1], h, -1).permute(0, 2, 1, 3) for t in (q, k, v))
        q = q * self.scale
        sim = torch.einsum("bhid,bhjd->bhij", q, k)
        bias = self.rel_pos_bias(self.rel_pos_indices)
        sim = sim + bias.permute(2, 0, 1)
        attn = sim.softmax(dim=-1)
        out = torch.einsum("bhij,bhjd->bhid", attn, v)
        out = out.permute(0, 2, 1, 3).reshape(
            out.shape[0], wh, ww, -1
        )  # 'b h (w1 w2) d -> b w1 w2 (h d)'
        out = self.to_out(out)
        return out.reshape(batch, height, width, wh, ww, -1)


class OmniChannelAttention(nn.Module):
    """Windowed channel attention (Restormer MDTA per window): 1x1 + depthwise 3x3 qkv, split
    into ps x ps windows ('block') or strided windows ('grid'), F.normalize q/k, q @ k^T *
    temperature, Softmax, @ v, merge, 1x1."""

    def __init__(self, dim: int, heads: int, window_size: int, grid: bool) -> None:
        super().__init__()
        self.heads = heads
        self.ps = window_size
        self.grid = grid
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, 1, 1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def _split(self, t: Tensor) -> Tensor:
        b, c, hh, ww = t.shape
        ps, hd = self.ps, self.heads
        if not self.grid:  # 'b (head d) (h ph) (w pw) -> b (h w) head d (ph pw)'
            t = t.view(b, hd, c // hd, hh // ps, ps, ww // ps, ps).permute(0, 3, 5, 1, 2, 4, 6)
        else:  # 'b (head d) (ph h) (pw w) -> b (h w) head d (ph pw)'
            t = t.view(b, hd, c // hd, ps, hh // ps, ps, ww // ps).permute(0, 4, 6, 1, 2, 3, 5)
        return t.reshape(b, (hh // ps) * (ww // ps), hd, c // hd, ps * ps)

    def _merge(self, t: Tensor, b: int, c: int, hh: int, ww: int) -> Tensor:
        ps, hd = self.ps, self.heads
        t = t.view(b, hh // ps, ww // ps, hd, c // hd, ps, ps)
        perm = (0, 3, 4, 5, 1, 6, 2) if self.grid else (0, 3, 4, 1, 5, 2, 6)
        t = t.permute(*perm)
        return t.reshape(b, c, hh, ww)

    def forward(self, x: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = self._split(q), self._split(k), self._split(v)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        attn = attn.softmax(dim=-1)
        return self.project_out(self._merge(attn @ v, b, c, hh, ww))


class GatedConvFeedForward(nn.Module):
    """1x1 to 2*hidden, depthwise 3x3, chunk, GELU(x1) * x2, 1x1."""

    def __init__(self, dim: int, mult: int = 1) -> None:
        super().__init__()
        hidden = int(dim * mult)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, 1, 1, groups=hidden * 2)
        self.project_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class PreNormResidual(nn.Module):
    """nn.LayerNorm over the last (channel) dim of (b, x, y, w1, w2, d), fn, + x."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x)) + x


class ConvPreNormResidual(nn.Module):
    """LayerNorm2d (channels first, written out), fn, + x."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x)) + x


class BlockPartition(nn.Module):
    """'b d (x w1) (y w2) -> b x y w1 w2 d' (block) or 'b d (w1 x) (w2 y) -> ...' (grid)."""

    def __init__(self, ws: int, grid: bool) -> None:
        super().__init__()
        self.ws, self.grid = ws, grid

    def forward(self, t: Tensor) -> Tensor:
        b, d, hh, ww = t.shape
        ws = self.ws
        if not self.grid:
            return t.view(b, d, hh // ws, ws, ww // ws, ws).permute(0, 2, 4, 3, 5, 1)
        return t.view(b, d, ws, hh // ws, ws, ww // ws).permute(0, 3, 5, 2, 4, 1)


class BlockMerge(nn.Module):
    """Inverse of BlockPartition: (b, x, y, w1, w2, d) -> (b, d, H, W)."""

    def __init__(self, grid: bool) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, t: Tensor) -> Tensor:
        b, x, y, w1, w2, d = t.shape
        if not self.grid:
            return t.permute(0, 5, 1, 3, 2, 4).reshape(b, d, x * w1, y * w2)
        return t.permute(0, 5, 3, 1, 4, 2).reshape(b, d, w1 * x, w2 * y)


class OSABlock(nn.Module):
    """Omni self-attention block, the reference layer sequence: MBConv; block attention; FFN;
    block channel attention; FFN; grid attention; FFN; grid channel attention; FFN."""

    def __init__(self, dim: int, window_size: int) -> None:
        super().__init__()
        w = window_size
        self.layer = nn.Sequential(
            MBConv(dim),
            BlockPartition(w, grid=False),
            PreNormResidual(dim, OmniAttention(dim, dim // 4, w)),
            BlockMerge(grid=False),
            ConvPreNormResidual(dim, GatedConvFeedForward(dim)),
            ConvPreNormResidual(dim, OmniChannelAttention(dim, 4, w, grid=False)),
            ConvPreNormResidual(dim, GatedConvFeedForward(dim)),
            BlockPartition(w, grid=True),
            PreNormResidual(dim, OmniAttention(dim, dim // 4, w)),
            BlockMerge(grid=True),
            ConvPreNormResidual(dim, GatedConvFeedForward(dim)),
            ConvPreNormResidual(dim, OmniChannelAttention(dim, 4, w, grid=True)),
            ConvPreNormResidual(dim, GatedConvFeedForward(dim)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class ESA(nn.Module):
    """Enhanced spatial attention (RFDN/RLFN form): 1x1, 3x3 stride 2, max_pool(7, 3), 3x3,
    bilinear back to (H, W), + 1x1 branch, 1x1, Sigmoid, multiply."""

    def __init__(self, esa_channels: int, n_feats: int) -> None:
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        v_max = F.max_pool2d(c1, kernel_size=7, stride=3)
        c3 = self.conv3(v_max)
        c3 = F.interpolate(c3, (x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        cf = self.conv_f(c1_)
        c4 = self.conv4(c3 + cf)
        return x * self.sigmoid(c4)


class OSAG(nn.Module):
    """Omni-scale aggregation group: OSA blocks, 1x1 conv, + x, ESA."""

    def __init__(self, dim: int, block_num: int, window_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [OSABlock(dim, window_size) for _ in range(block_num)]
        layers.append(nn.Conv2d(dim, dim, 1, 1, 0))
        self.residual_layer = nn.Sequential(*layers)
        self.esa = ESA(max(dim // 4, 16), dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.esa(self.residual_layer(x) + x)


class OmniSR(nn.Module):
    """Omni-SR: zero pad to a multiple of the window, conv, OSAGs, conv + skip, conv +
    PixelShuffle, crop."""

    def __init__(
        self,
        dim: int = 16,
        res_num: int = 1,
        block_num: int = 1,
        window_size: int = 8,
        upscale: int = 2,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.up_scale = upscale
        self.input = nn.Conv2d(3, dim, 3, 1, 1)
        self.residual_layer = nn.Sequential(
            *[OSAG(dim, block_num, window_size) for _ in range(res_num)]
        )
        self.output = nn.Conv2d(dim, dim, 3, 1, 1)
        self.up = nn.Sequential(nn.Conv2d(dim, 3 * upscale**2, 3, 1, 1), nn.PixelShuffle(upscale))

    def check_image_size(self, x: Tensor) -> Tensor:
        _, _, h, w = x.size()
        mod_pad_h = (self.window_size - h % self.window_size) % self.window_size
        mod_pad_w = (self.window_size - w % self.window_size) % self.window_size
        return F.pad(x, (0, mod_pad_w, 0, mod_pad_h), "constant", 0)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[2:]
        x = self.check_image_size(x)
        residual = self.input(x)
        out = self.residual_layer(residual)
        out = torch.add(self.output(out), residual)
        out = self.up(out)
        return out[:, :, : h * self.up_scale, : w * self.up_scale]

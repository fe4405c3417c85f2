"""SwinIR (lightweight, pixelshuffledirect) and HAT: window attention on token sequences,
shifted windows with a mask built from the input size, HAT's overlapping cross-attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import (
    Mlp,
    WindowAttention,
    calculate_mask,
    mean_buffer,
    relative_position_index,
    window_partition,
    window_reverse,
)


class SwinTransformerBlock(nn.Module):
    """LN -> (roll) -> window partition -> W-MSA -> window reverse -> (roll back) -> residual;
    LN -> MLP(GELU) -> residual. Tokens are (B, H*W, C)."""

    def __init__(
        self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        h, w = x_size
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x)
        x = x.view(b, h, w, c)
        if self.shift_size > 0:
            shifted_x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            mask = calculate_mask(x_size, self.window_size, self.shift_size)
        else:
            shifted_x = x
            mask = None
        x_windows = window_partition(shifted_x, self.window_size)
        x_windows = x_windows.view(-1, self.window_size * self.window_size, c)
        attn_windows = self.attn(x_windows, mask=mask)
        attn_windows = attn_windows.view(-1, self.window_size, self.window_size, c)
        shifted_x = window_reverse(attn_windows, self.window_size, h, w)
        if self.shift_size > 0:
            x = torch.roll(shifted_x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        else:
            x = shifted_x
        x = x.view(b, h * w, c)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, H*W, C): flatten(2).transpose(1, 2), then LayerNorm (patch_norm)."""

    def __init__(self, dim: int, norm: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class PatchUnEmbed(nn.Module):
    """(B, H*W, C) -> (B, C, H, W): transpose(1, 2).view(B, C, H, W)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        return x.transpose(1, 2).view(x.shape[0], self.dim, x_size[0], x_size[1])


class RSTB(nn.Module):
    """Residual Swin Transformer block: blocks (alternating shift 0 / ws//2), unembed, 3x3 conv,
    embed (no norm), + input."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                SwinTransformerBlock(
                    dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio
                )
                for i in range(depth)
            ]
        )
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(dim, norm=False)
        self.patch_unembed = PatchUnEmbed(dim)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        y = x
        for blk in self.blocks:
            y = blk(y, x_size)
        return self.patch_embed(self.conv(self.patch_unembed(y, x_size))) + x


class SwinIR(nn.Module):
    """SwinIR, lightweight-SR configuration (upsampler 'pixelshuffledirect')."""

    mean: Tensor

    def __init__(
        self,
        embed_dim: int = 16,
        depths: tuple[int, ...] = (2,),
        num_heads: int = 2,
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        upscale: int = 2,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.upscale = upscale
        self.img_range = 1.0
        self.register_buffer("mean", mean_buffer())
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=True)
        self.patch_unembed = PatchUnEmbed(embed_dim)
        self.layers = nn.ModuleList(
            [RSTB(embed_dim, d, num_heads, window_size, mlp_ratio) for d in depths]
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.upsample = nn.Sequential(
            nn.Conv2d(embed_dim, 3 * upscale**2, 3, 1, 1), nn.PixelShuffle(upscale)
        )

    def check_image_size(self, x: Tensor) -> Tensor:
        _, _, h, w = x.size()
        mod_pad_h = (self.window_size - h % self.window_size) % self.window_size
        mod_pad_w = (self.window_size - w % self.window_size) % self.window_size
        return F.pad(x, (0, mod_pad_w, 0, mod_pad_h), "reflect")

    def forward_features(self, x: Tensor) -> Tensor:
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, x_size)
        x = self.norm(x)
        return self.patch_unembed(x, x_size)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[2:]
        x = self.check_image_size(x)
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.upsample(x)
        x = x / self.img_range + self.mean
        return x[:, :, : h * self.upscale, : w * self.upscale]


# ---------------------------------------------------------------------------------------------
# HAT (XPixelGroup/HAT hat/archs/hat_arch.py)
# ---------------------------------------------------------------------------------------------


class ChannelAttention(nn.Module):
    """AdaptiveAvgPool2d(1) -> 1x1 conv -> ReLU -> 1x1 conv -> Sigmoid, multiplied in."""

    def __init__(self, num_feat: int, squeeze_factor: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)


class CAB(nn.Module):
    """HAT's channel attention block: conv3x3 (squeeze) -> GELU -> conv3x3 -> ChannelAttention."""

    def __init__(self, num_feat: int, compress_ratio: int, squeeze_factor: int) -> None:
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat // compress_ratio, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(num_feat // compress_ratio, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.cab(x)


class HAB(nn.Module):
    """Hybrid attention block: (shifted) window attention + 0.01 * CAB on the same LN'd input."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int,
        compress_ratio: int,
        squeeze_factor: int,
        conv_scale: float,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.conv_scale = conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(
        self, x: Tensor, x_size: tuple[int, int], rpi_sa: Tensor, attn_mask: Tensor
    ) -> Tensor:
        h, w = x_size
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x)
        x = x.view(b, h, w, c)
        conv_x = self.conv_block(x.permute(0, 3, 1, 2))
        conv_x = conv_x.permute(0, 2, 3, 1).contiguous().view(b, h * w, c)
        if self.shift_size > 0:
            shifted_x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            mask: Tensor | None = attn_mask
        else:
            shifted_x = x
            mask = None
        x_windows = window_partition(shifted_x, self.window_size)
        x_windows = x_windows.view(-1, self.window_size * self.window_size, c)
        attn_windows = self.attn(x_windows, mask=mask, rpi=rpi_sa)
        attn_windows = attn_windows.view(-1, self.window_size, self.window_size, c)
        shifted_x = window_reverse(attn_windows, self.window_size, h, w)
        if self.shift_size > 0:
            attn_x = torch.roll(shifted_x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        else:
            attn_x = shifted_x
        attn_x = attn_x.view(b, h * w, c)
        x = shortcut + attn_x + conv_x * self.conv_scale
        return x + self.mlp(self.norm2(x))


def relative_position_index_oca(window_size: int, overlap_ratio: float) -> Tensor:
    ws_ori = window_size
    ws_ext = window_size + int(overlap_ratio * window_size)
    coords_ori = torch.stack(
        torch.meshgrid([torch.arange(ws_ori), torch.arange(ws_ori)], indexing="ij")
    ).flatten(1)
    coords_ext = torch.stack(
        torch.meshgrid([torch.arange(ws_ext), torch.arange(ws_ext)], indexing="ij")
    ).flatten(1)
    rel = coords_ext[:, None, :] - coords_ori[:, :, None]
    rel = rel.permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws_ori - ws_ext + 1
    rel[:, :, 1] += ws_ori - ws_ext + 1
    rel[:, :, 0] *= ws_ori + ws_ext - 1
    return rel.sum(-1)


class OCAB(nn.Module):
    """Overlapping cross-attention: queries from ws x ws windows, keys/values from overlapping
    (ws * (1 + overlap)) windows taken with nn.Unfold (im2col)."""

    def __init__(
        self, dim: int, window_size: int, overlap_ratio: float, num_heads: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.overlap_win_size = int(window_size * overlap_ratio) + window_size
        ows = self.overlap_win_size
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.unfold = nn.Unfold(
            kernel_size=(ows, ows), stride=window_size, padding=(ows - window_size) // 2
        )
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((window_size + ows - 1) * (window_size + ows - 1), num_heads)
        )
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, x_size: tuple[int, int], rpi: Tensor) -> Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, ows = self.window_size, self.overlap_win_size
        shortcut = x
        x = self.norm1(x)
        x = x.view(b, h, w, c)
        qkv = self.qkv(x).reshape(b, h, w, 3, c).permute(3, 0, 4, 1, 2)
        q = qkv[0].permute(0, 2, 3, 1)
        kv = torch.cat((qkv[1], qkv[2]), dim=1)
        q_windows = window_partition(q, ws).view(-1, ws * ws, c)
        kv_windows = self.unfold(kv)  # b, 2*c*ows*ows, nw
        # rearrange 'b (nc ch owh oww) nw -> nc (b nw) (owh oww) ch'
        nw = kv_windows.shape[-1]
        kv_windows = kv_windows.view(b, 2, c, ows, ows, nw).permute(1, 0, 5, 3, 4, 2)
        kv_windows = kv_windows.reshape(2, b * nw, ows * ows, c).contiguous()
        k_windows, v_windows = kv_windows[0], kv_windows[1]
        b_, nq, _ = q_windows.shape
        _, n, _ = k_windows.shape
        d = self.dim // self.num_heads
        q = q_windows.reshape(b_, nq, self.num_heads, d).permute(0, 2, 1, 3)
        k = k_windows.reshape(b_, n, self.num_heads, d).permute(0, 2, 1, 3)
        v = v_windows.reshape(b_, n, self.num_heads, d).permute(0, 2, 1, 3)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[rpi.view(-1)].view(ws * ws, ows * ows, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        attn = self.softmax(attn)
        attn_windows = (attn @ v).transpose(1, 2).reshape(b_, nq, self.dim)
        attn_windows = attn_windows.view(-1, ws, ws, self.dim)
        x = window_reverse(attn_windows, ws, h, w).view(b, h * w, self.dim)
        x = self.proj(x) + shortcut
        return x + self.mlp(self.norm2(x))


class RHAG(nn.Module):
    """Residual hybrid attention group: HABs (shift 0 / ws//2), OCAB, unembed, conv, embed, + x."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float, ocab: bool
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                HAB(
                    dim,
                    num_heads,
                    window_size,
                    0 if i % 2 == 0 else window_size // 2,
                    compress_ratio=4,
                    squeeze_factor=4,
                    conv_scale=0.01,
                    mlp_ratio=mlp_ratio,
                )
                for i in range(depth)
            ]
        )
        self.overlap_attn = OCAB(dim, window_size, 0.5, num_heads, mlp_ratio) if ocab else None
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(dim, norm=False)
        self.patch_unembed = PatchUnEmbed(dim)

    def forward(self, x: Tensor, x_size: tuple[int, int], params: dict[str, Tensor]) -> Tensor:
        y = x
        for blk in self.blocks:
            y = blk(y, x_size, params["rpi_sa"], params["attn_mask"])
        if self.overlap_attn is not None:
            y = self.overlap_attn(y, x_size, params["rpi_oca"])
        return self.patch_embed(self.conv(self.patch_unembed(y, x_size))) + x


class HAT(nn.Module):
    """HAT with the classical 'pixelshuffle' upsampler (conv + LeakyReLU, then (conv +
    PixelShuffle(2)) x log2(scale), conv_last). H and W must be multiples of window_size."""

    mean: Tensor
    relative_position_index_SA: Tensor
    relative_position_index_OCA: Tensor

    def __init__(
        self,
        embed_dim: int = 16,
        depths: tuple[int, ...] = (2,),
        num_heads: int = 2,
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        upscale: int = 4,
        ocab: bool = True,
        num_feat: int = 16,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.img_range = 1.0
        self.register_buffer("mean", mean_buffer())
        self.register_buffer("relative_position_index_SA", relative_position_index(window_size))
        self.register_buffer(
            "relative_position_index_OCA", relative_position_index_oca(window_size, 0.5)
        )
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=True)
        self.patch_unembed = PatchUnEmbed(embed_dim)
        self.layers = nn.ModuleList(
            [RHAG(embed_dim, d, num_heads, window_size, mlp_ratio, ocab) for d in depths]
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_before_upsample = nn.Sequential(
            nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
        )
        up: list[nn.Module] = []
        for _ in range(int(math.log2(upscale))):
            up += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        self.upsample = nn.Sequential(*up)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward_features(self, x: Tensor) -> Tensor:
        x_size = (x.shape[2], x.shape[3])
        attn_mask = calculate_mask(x_size, self.window_size, self.shift_size)
        params = {
            "attn_mask": attn_mask,
            "rpi_sa": self.relative_position_index_SA,
            "rpi_oca": self.relative_position_index_OCA,
        }
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, x_size, params)
        x = self.norm(x)
        return self.patch_unembed(x, x_size)

    def forward(self, x: Tensor) -> Tensor:
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_before_upsample(x)
        x = self.conv_last(self.upsample(x))
        return x / self.img_range + self.mean

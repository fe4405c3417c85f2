"""Small CNNs for real-time x2 upscaling and denoising, built from ops the engine runs.

Every model exports to Conv, Relu / PRelu / Tanh, DepthToSpace (PixelShuffle), Resize
(the upsampled base image) and Add / Sub only.

- `espcn`: conv5x5 -> (`extra_convs` conv3x3 at full width) -> conv3x3 -> conv3x3 to 3*4
  channels -> PixelShuffle(2), added to an upsampled copy of the input (the network predicts
  the residual over it).
- `srvgg`: SRVGGNetCompact-style: conv3x3 + PReLU, then `num_conv` conv3x3 + PReLU, conv3x3
  to 3*4 channels, PixelShuffle(2), plus an upsampled base.
- `denoise`: DnCNN-style residual denoiser at full resolution, no BatchNorm:
  output = x - net(x).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ACTIVATIONS, ARCHS, BASES

__all__ = ["ACTIVATIONS", "ARCHS", "BASES", "build_model", "count_flops", "count_params"]


def _act(kind: str, channels: int) -> nn.Module:
    if kind == "relu":
        return nn.ReLU(inplace=False)
    if kind == "prelu":
        return nn.PReLU(channels, init=0.1)
    if kind == "tanh":
        return nn.Tanh()
    raise ValueError(f"activation must be one of {ACTIVATIONS}, not {kind!r}")


class _Upscaler(nn.Module):
    """body(x) -> PixelShuffle(scale), plus an upsampled base of x (if any)."""

    scale = 2

    def __init__(self, body: nn.Sequential, base: str) -> None:
        super().__init__()
        if base not in BASES:
            raise ValueError(f"base must be one of {BASES}, not {base!r}")
        self.body = body
        last = [m for m in body if isinstance(m, nn.Conv2d)][-1]
        if base != "none":  # start as exactly the base upsampling; learn the residual
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)
        self.shuffle = nn.PixelShuffle(self.scale)
        self.base_mode = base
        if base == "none":
            self.base = None
        else:
            kw = {} if base == "nearest" else {"align_corners": False}
            self.base = nn.Upsample(scale_factor=self.scale, mode=base, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shuffle(self.body(x))
        return y if self.base is None else y + self.base(x)


class ESPCN(_Upscaler):
    def __init__(
        self,
        features: int = 48,
        mid_features: int = 32,
        activation: str = "tanh",
        base: str = "bicubic",
        extra_convs: int = 0,
        **unused: object,
    ) -> None:
        wide: list[nn.Module] = []
        for _ in range(extra_convs):
            wide += [nn.Conv2d(features, features, 3, padding=1), _act(activation, features)]
        body = nn.Sequential(
            nn.Conv2d(3, features, 5, padding=2),
            _act(activation, features),
            *wide,
            nn.Conv2d(features, mid_features, 3, padding=1),
            _act(activation, mid_features),
            nn.Conv2d(mid_features, 3 * self.scale**2, 3, padding=1),
        )
        super().__init__(body, base)


class SRVGG(_Upscaler):
    def __init__(
        self,
        features: int = 32,
        num_conv: int = 6,
        activation: str = "prelu",
        base: str = "bilinear",
        **unused: object,
    ) -> None:
        layers: list[nn.Module] = [nn.Conv2d(3, features, 3, padding=1), _act(activation, features)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(features, features, 3, padding=1), _act(activation, features)]
        layers.append(nn.Conv2d(features, 3 * self.scale**2, 3, padding=1))
        super().__init__(nn.Sequential(*layers), base)


class DnCNN(nn.Module):
    """Residual denoiser: predicts the noise and subtracts it. depth counts all convs."""

    scale = 1

    def __init__(
        self, features: int = 32, num_conv: int = 7, activation: str = "relu", **unused: object
    ) -> None:
        super().__init__()
        if num_conv < 2:
            raise ValueError("denoise needs num_conv >= 2")
        layers: list[nn.Module] = [nn.Conv2d(3, features, 3, padding=1), _act(activation, features)]
        for _ in range(num_conv - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1), _act(activation, features)]
        last = nn.Conv2d(features, 3, 3, padding=1)
        layers.append(last)
        self.body = nn.Sequential(*layers)
        nn.init.zeros_(last.weight)  # starts as the identity
        if last.bias is not None:
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


def deepen_from(model: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Start an espcn from a trained shallower one (fewer extra_convs, the same widths):
    Net2Net's deeper network (Chen, Goodfellow and Shlens, ICLR 2016). Its layers are
    copied; each added conv3x3 starts as the identity and its PReLU with slope 1, so the
    deeper model computes exactly what the trained one did and training goes on from there.
    Returns the number of layers added."""
    if not isinstance(model, ESPCN):
        raise ValueError("model.init deepens an espcn model only")
    body = list(model.body)
    src = sorted({int(k.split(".")[1]) for k in state if k.startswith("body.")})
    added = len(body) - (src[-1] + 1)
    if added < 0 or added % 2:
        raise ValueError(f"model.init has {src[-1] + 1} body layers; this model has {len(body)}")
    with torch.no_grad():
        for i, layer in enumerate(body):
            if 2 <= i < 2 + added:  # a new layer: conv = identity, PReLU slope 1
                if isinstance(layer, nn.Conv2d):
                    layer.weight.zero_()
                    c = layer.weight.shape[2] // 2
                    for ch in range(layer.out_channels):
                        layer.weight[ch, ch, c, c] = 1.0
                    if layer.bias is not None:
                        layer.bias.zero_()
                elif isinstance(layer, nn.PReLU):
                    layer.weight.fill_(1.0)
                else:
                    raise ValueError("model.init needs prelu activations (identity at slope 1)")
                continue
            j = i if i < 2 else i - added
            for name, p in layer.named_parameters():
                key = f"body.{j}.{name}"
                if key not in state or state[key].shape != p.shape:
                    raise ValueError(f"model.init: no {key} of shape {tuple(p.shape)}")
                p.copy_(state[key])
    return added // 2


def narrow_from(model: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Start a narrower espcn (fewer features / mid_features, the same depth and kernels) from
    a trained wider one: each hidden layer keeps the channels whose weights in and out weigh
    most (|w_in| * |w_out|, magnitude pruning after Li et al., ICLR 2017) and the next layer
    reads only those. Converges in a fraction of a from-scratch run, which is what lets a
    model sized for CPU devices be trained on a shared build machine. Returns the number of
    channels dropped."""
    if not isinstance(model, ESPCN):
        raise ValueError("model.init narrows an espcn model only")
    convs = [i for i, m in enumerate(model.body) if isinstance(m, nn.Conv2d)]
    dropped, keep_in = 0, None
    with torch.no_grad():
        for n, i in enumerate(convs):
            conv = model.body[i]
            assert isinstance(conv, nn.Conv2d)
            w, b = state.get(f"body.{i}.weight"), state.get(f"body.{i}.bias")
            if w is None or b is None or w.shape[2:] != conv.weight.shape[2:]:
                raise ValueError(f"model.init: no body.{i} conv of kernel {conv.kernel_size}")
            if keep_in is not None:
                w = w[:, keep_in]
            if w.shape[1] != conv.in_channels or w.shape[0] < conv.out_channels:
                raise ValueError(f"model.init: body.{i} is {tuple(w.shape[:2])}, not wider")
            keep = torch.arange(conv.out_channels)
            if n + 1 < len(convs):  # a hidden layer: keep its weightiest channels
                nxt = state[f"body.{convs[n + 1]}.weight"]
                score = w.abs().sum(dim=(1, 2, 3)) * nxt.abs().sum(dim=(0, 2, 3))
                keep = torch.sort(torch.topk(score, conv.out_channels).indices).values
            dropped += w.shape[0] - conv.out_channels
            conv.weight.copy_(w[keep])
            if conv.bias is not None:
                conv.bias.copy_(b[keep])
            act = model.body[i + 1] if i + 1 < len(model.body) else None
            if isinstance(act, nn.PReLU):
                slope = state.get(f"body.{i + 1}.weight")
                if slope is None:
                    raise ValueError(f"model.init: no PReLU body.{i + 1}")
                act.weight.copy_(slope.reshape(-1)[keep])
            keep_in = keep
    return dropped


def load_init(path: str | Path) -> dict[str, torch.Tensor]:
    """A model.init's weights by torch name: a run's checkpoint.pt, or an exported ONNX file
    (a bundled model: its initializers, PReLU slopes matched to the PReLU nodes' order)."""
    path = Path(path)
    if path.suffix != ".onnx":
        return dict(torch.load(path, weights_only=False)["model"])
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state = {k: torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith("body.")}
    for node in graph.node:
        if node.op_type == "PRelu":  # /body/body.N/PRelu: its slope is body.N.weight
            layer = node.name.split("/")[2] if node.name.count("/") >= 2 else ""
            slope = arrays.get(node.input[1])
            if slope is not None and layer.startswith("body."):
                state[f"{layer}.weight"] = torch.from_numpy(slope.reshape(-1).copy())
    return state


def build_model(arch: str, **kw: Any) -> nn.Module:
    if arch == "espcn":
        return ESPCN(**kw)
    if arch == "srvgg":
        return SRVGG(**kw)
    if arch == "denoise":
        return DnCNN(**kw)
    raise ValueError(f"arch must be one of {ARCHS}, not {arch!r}")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, out_hw: tuple[int, int] = (1080, 1920)) -> dict[str, float]:
    """FLOPs (multiply and add counted as 2) to produce one output frame of `out_hw`.

    Convolutions are counted exactly (2 * MACs + bias adds, from forward hooks on a real
    pass); activations, the upsampled base, PixelShuffle's copy and the residual add are
    counted as one op per output element ("other"). Input size = output / model scale.
    """
    scale = getattr(model, "scale", 1)
    h, w = out_hw[0] // scale, out_hw[1] // scale
    conv = 0.0
    other = 0.0

    def on_conv(m: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal conv
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        conv += out.numel() * (2 * k + (1 if m.bias is not None else 0))

    def on_other(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal other
        other += out.numel() * (8 if isinstance(_m, nn.Upsample) else 1)

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.ReLU | nn.PReLU | nn.Tanh | nn.Upsample):
            hooks.append(m.register_forward_hook(on_other))
    # one probe at a small size, scaled up (conv cost is linear in pixels)
    ph, pw = 36, 64
    try:
        with torch.no_grad():
            y = model.eval()(torch.zeros(1, 3, ph, pw))
    finally:
        for hk in hooks:
            hk.remove()
    other += y.numel() * (2 if getattr(model, "base", None) is not None or scale == 1 else 1)
    ratio = (h * w) / (ph * pw)
    return {"conv": conv * ratio, "other": other * ratio, "total": (conv + other) * ratio}

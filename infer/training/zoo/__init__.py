"""The architectures users bring, as small PyTorch definitions with fixed-seed weights, and
their ONNX export (torch: the train extra). `python -m infer bench --zoo` and the engine's
tests use the same definitions.

Each network is written from its paper / reference repository (basicsr, Real-ESRGAN, SPAN,
SwinIR, HAT, SAFMN, Omni-SR, NAFNet), with small widths and few blocks so that it exports in
seconds and runs on a CPU Vulkan device, and with seeded random weights (no checkpoint is
downloaded). What must match the real thing is the op pattern the exporter emits (which ONNX
ops, which reshape / permute / shape chains), not the accuracy.

- ``rrdb_x4``: RRDBNet (ESRGAN / Real-ESRGAN x4), basicsr code. 16 features, 8 growth
  channels, 2 RRDBs (real: 64 / 32 / 23).
- ``rrdb_x2``: RealESRGAN_x2plus: ``F.pixel_unshuffle(x, 2)``, then the x4 body. Even H, W.
- ``rrdb_x2_basicsr``: the same with basicsr's own view / permute / reshape pixel_unshuffle,
  which the Real-ESRGAN repository actually calls.
- ``srvgg_x4``: SRVGGNetCompact (realesr-general-x4v3 / animevideov3). 16 features, 4 convs.
- ``span_x4``: SPAN, inference form (Conv3XC as its merged 3x3), SiLU, ``sigmoid(x) - 0.5``
  attention, mean shift and x255. 16 features (real: 48), 6 SPABs.
- ``swinir_x2``: SwinIR lightweight (pixelshuffledirect): window attention with relative
  position bias, shifted windows with the mask built from the input size, GELU MLP, reflect
  padding to a multiple of the window, crop. Embed 16, 2 heads, 1 RSTB of 2 blocks, window 8.
- ``hat_x4``: HAT: (shifted) window attention + channel attention block, overlapping
  cross-attention (``nn.Unfold``). No padding inside (as in HAT's arch): H, W multiples of 8.
- ``safmn_x4``: SAFMN: written-out channel LayerNorm, SAFM (max-pooled levels, depthwise conv,
  nearest back, GELU gate), CCM. H, W multiples of 8 (max_pool stands in for the adaptive pool,
  which the exporter cannot export with a dynamic size).
- ``omnisr_x2``: Omni-SR, approximate: block / grid self-attention (einsum), windowed channel
  attention (F.normalize, temperature), gated conv FFN, ESA; zero padding to a multiple of 8.
- ``nafnet``: NAFNet restorer (output size = input size): LayerNorm2d, SimpleGate, channel
  attention, stride-2 down, 1x1 + PixelShuffle up, zero pad to a multiple of 4, crop.
- ``nafnet_sr_x2``: NAFSSR-style single-view SR: NAFBlocks, conv + PixelShuffle, + bilinear.

``reference`` holds the engine's first-round reference architectures (ESPCN, FSRCNN,
SRVGGNetCompact, DnCNN, UNet).
"""

from __future__ import annotations

import functools
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .blocks import LayerNorm2d, WindowAttention
from .convnets import SPAN, RRDBNet, SRVGGNetCompact
from .omnisr import OmniChannelAttention, OmniSR
from .reference import ARCHITECTURES as REFERENCE_ARCHITECTURES
from .reference import build_reference
from .restorers import SAFMN, NAFBlock, NAFNet, NAFNetSR
from .swin import HAT, OCAB, SwinIR

INPUT, OUTPUT = "input", "output"
EXPORT_OPSET = 17  # the opset every zoo model is exported at, besides newest_opset()


@dataclass(frozen=True)
class Spec:
    factory: Callable[[], nn.Module]
    scale: int
    sizes: tuple[tuple[int, int], ...]  # (H, W) test sizes that respect `constraint`
    constraint: str
    multiple: int = 1  # H and W must be multiples of this
    trace_size: tuple[int, int] = (48, 40)  # deliberately no test size


_ANY = ((27, 19), (21, 29))
_WINDOW_PADDED = ((27, 19), (21, 29))
_WINDOW_STRICT = ((32, 24), (40, 16))
_EVEN = ((30, 18), (26, 22))

ARCHS: dict[str, Spec] = {
    "rrdb_x4": Spec(lambda: RRDBNet(scale=4), 4, _ANY, "any H, W"),
    "rrdb_x2": Spec(lambda: RRDBNet(scale=2), 2, _EVEN, "H, W even (pixel_unshuffle 2)", 2),
    "rrdb_x2_basicsr": Spec(
        lambda: RRDBNet(scale=2, unshuffle="basicsr"), 2, _EVEN, "H, W even", 2
    ),
    "srvgg_x4": Spec(SRVGGNetCompact, 4, _ANY, "any H, W"),
    "span_x4": Spec(SPAN, 4, _ANY, "any H, W"),
    "swinir_x2": Spec(SwinIR, 2, _WINDOW_PADDED, "any H, W (reflect-padded to a multiple of 8)"),
    "hat_x4": Spec(HAT, 4, _WINDOW_STRICT, "H, W multiples of 8 (no padding inside)", 8),
    "safmn_x4": Spec(SAFMN, 4, _WINDOW_STRICT, "H, W multiples of 8 (max_pool 2/4/8)", 8),
    "omnisr_x2": Spec(OmniSR, 2, _WINDOW_PADDED, "any H, W (zero-padded to a multiple of 8)"),
    "nafnet": Spec(NAFNet, 1, _ANY, "any H, W (zero-padded to a multiple of 4 inside)"),
    "nafnet_sr_x2": Spec(NAFNetSR, 2, _ANY, "any H, W"),
}


def _randomise(model: nn.Module) -> None:
    """Non-trivial values for the parameters that are constants at init (LN weight 1 / bias 0,
    zero bias tables, zero NAFNet beta/gamma, PReLU 0.25), so that every op really matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm | LayerNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
            elif isinstance(m, nn.PReLU):
                m.weight.uniform_(0.05, 0.4)
            elif isinstance(m, WindowAttention | OCAB):
                m.relative_position_bias_table.normal_(0.0, 0.5)
            elif isinstance(m, NAFBlock):
                m.beta.uniform_(0.2, 1.0)
                m.gamma.uniform_(0.2, 1.0)
            elif isinstance(m, OmniChannelAttention):
                m.temperature.uniform_(0.5, 2.0)


def build(name: str, seed: int = 0) -> nn.Module:
    """The architecture in eval mode with seeded random weights."""
    if name not in ARCHS:
        raise KeyError(f"unknown architecture {name!r}; known: {sorted(ARCHS)}")
    torch.manual_seed(seed)
    model = ARCHS[name].factory()
    _randomise(model)
    return model.eval()


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@functools.cache
def newest_opset() -> int:
    """The newest opset the TorchScript exporter offers (20 in torch 2.x), asked of the exporter
    itself: asked for a newer one it warns "The highest opset version supported is N" (and
    writes the opset-N graph under the newer number). The dynamo exporter, which goes
    further, needs the onnxscript package, which the train extra does not bring."""
    import onnx

    for opset in range(onnx.defs.onnx_opset_version(), EXPORT_OPSET, -1):
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                torch.onnx.export(
                    nn.Identity(), (torch.zeros(1),), str(Path(tmp) / "probe.onnx"),
                    opset_version=opset, dynamo=False,
                )  # fmt: skip
            except RuntimeError:  # beyond even what its serialiser knows
                continue
        for w in seen:
            found = re.search(r"highest opset version supported is (\d+)", str(w.message))
            if found:
                return int(found.group(1))
        return opset
    return EXPORT_OPSET


def _export(
    model: nn.Module, x: torch.Tensor, path: Path, opset: int, preserve: bool = False
) -> None:
    dyn = {INPUT: {2: "height", 3: "width"}, OUTPUT: {2: "out_height", 3: "out_width"}}
    mode = torch.onnx.TrainingMode.PRESERVE if preserve else torch.onnx.TrainingMode.EVAL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings (int() of sizes), deprecations
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=[INPUT],
            output_names=[OUTPUT],
            opset_version=opset,
            dynamic_axes=dyn,
            training=mode,
            dynamo=False,
        )


def export(name: str, path: str | Path, opset: int = EXPORT_OPSET, seed: int = 0) -> Path:
    """Export a user architecture with dynamic H and W (batch 1), the TorchScript exporter.

    Traced at ``Spec.trace_size`` (48x40), deliberately no test size, so that a size wrongly
    baked into the graph shows up as a mismatch with onnxruntime.
    """
    path = Path(path)
    torch.set_num_threads(1)
    model = build(name, seed)
    _export(model, torch.rand(1, 3, *ARCHS[name].trace_size), path, opset)
    return path


def export_reference(
    name: str, path: str | Path, seed: int = 0, size: tuple[int, int] = (24, 32)
) -> Path:
    """Export a reference architecture at opset 17 with dynamic height / width.

    Exported in TrainingMode.PRESERVE so that the exporter's own Conv+BatchNorm fusion (its
    eval-mode peephole) does not run: the engine's BN fold is what gets tested.
    """
    path = Path(path)
    torch.set_num_threads(1)
    model = build_reference(name, seed)
    _export(model, torch.rand(1, 3, *size), path, 17, preserve=True)
    return path


__all__ = [
    "ARCHS",
    "EXPORT_OPSET",
    "INPUT",
    "OUTPUT",
    "REFERENCE_ARCHITECTURES",
    "Spec",
    "build",
    "build_reference",
    "export",
    "export_reference",
    "newest_opset",
    "param_count",
]

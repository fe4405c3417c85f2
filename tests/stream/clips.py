"""Small generated clips and models for the stream tests (no downloads)."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
from onnx import TensorProto, helper, numpy_helper


def smooth_rgb(width: int, height: int, t: float = 0.0) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.4 * np.sin(xx / 23.0 + t)
    g = 0.5 + 0.4 * np.cos(yy / 17.0 - t)
    b = 0.5 + 0.4 * np.sin((xx + yy) / 31.0 + 2 * t)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def make_clip(
    path: Path,
    frames: int = 64,
    width: int = 256,
    height: int = 144,
    fps: int = 30,
    audio: bool = True,
) -> Path:
    """An H.264 clip of a moving smooth pattern with a sine AAC track."""
    # moov atom first, so a truncated copy still opens (like a download cut short)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"preset": "ultrafast"}
        a = None
        if audio:
            a = out.add_stream("aac", rate=48000)
            a.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(smooth_rgb(width, height, i * 0.2), format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame.reformat(format="yuv420p")))
        out.mux(v.encode(None))
        if a is not None:
            n = int(48000 * frames / fps)
            samples = (0.2 * np.sin(2 * math.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
            for k in range(0, n, 1024):
                chunk = samples[k : k + 1024][None]
                af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                af.sample_rate = 48000
                af.pts = k
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return path


def espcn_shaped(w1: np.ndarray, w2: np.ndarray, name: str = "tiny_x2"):
    """Conv(3->8)-Relu-Conv(8->12)-DepthToSpace(CRD, 2): the smallest ESPCN-shaped x2."""
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")]
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("DepthToSpace", ["c"], ["output"], blocksize=2, mode="CRD"),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def tiny_upscaler(seed: int = 0):
    """An ESPCN-shaped x2 upscaler with random weights."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((12, 8, 3, 3)).astype(np.float32) * 0.2
    return espcn_shaped(w1, w2)

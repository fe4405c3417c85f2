"""The `edge` mode (FSR 1's EASU + RCAS in WGSL) against its numpy reference, which the
training evaluation uses: what the tables say about the mode is what the GPU runs."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from infer.training import edge_adaptive
from infer.training.dataset import draw_frame
from stream.pipeline import FramePipeline, edge

pytestmark = pytest.mark.gpu


def test_the_mode_and_the_reference_share_their_constants():
    assert edge.SHARPNESS == edge_adaptive.SHARPNESS
    assert edge.RCAS_LIMIT == edge_adaptive.RCAS_LIMIT


@pytest.mark.parametrize(("width", "height"), [(98, 62), (61, 37)])
async def test_gpu_output_matches_the_numpy_reference(width, height):
    rgb = draw_frame(np.random.default_rng(width), height, width)  # hard edges, text, sprites
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    pipe = FramePipeline(mode="edge", keep_tensors=True)
    try:
        out = await pipe.process(frame)
    finally:
        pipe.close()
    assert (out.width, out.height) == (2 * width, 2 * height)
    x = pipe.last_tensors["rgb_in"][0].transpose(1, 2, 0)
    got = pipe.last_tensors["rgb_out"][0].transpose(1, 2, 0)
    want = edge_adaptive.rcas(edge_adaptive.easu(x, 2 * height, 2 * width))
    err = np.abs(got - want)
    assert err.max() < 1e-5, (err.max(), np.unravel_index(err.argmax(), err.shape))
    assert err.mean() < 1e-6
    # not the identity of something simpler: the mode differs from the unsharpened EASU
    assert np.abs(got - edge_adaptive.easu(x, 2 * height, 2 * width)).max() > 0.05


def test_stream_process_runs_the_edge_mode(tmp_path, capsys):
    from stream.process import main as process_main

    from .clips import make_clip

    clip = make_clip(tmp_path / "in.mp4", frames=6, width=128, height=72, audio=False)
    out = tmp_path / "out.mp4"
    rc = process_main([str(clip), str(out), "--mode", "edge", "--crf", "12", "--no-progress"])
    assert rc == 0, capsys.readouterr()
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (144, 256, 3)
    # the picture made it through: close to the input's first frame upscaled by PIL bicubic
    with av.open(str(clip)) as c:
        first = next(iter(c.decode(video=0))).to_image()
    want = np.asarray(first.resize((256, 144), Image.Resampling.BICUBIC), float)
    psnr = 10 * np.log10(255**2 / np.mean((frames[0].astype(float) - want) ** 2))
    assert psnr > 25, psnr

import av
import pytest

from stream.process import main as process_main

from .clips import make_clip, tiny_upscaler

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "in.mp4", frames=64, width=256, height=144)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import onnx

    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    onnx.save(tiny_upscaler(), str(path))
    return path


def _count(path, kind):
    with av.open(str(path)) as c:
        streams = getattr(c.streams, kind)
        if not streams:
            return 0, None
        n = sum(1 for p in c.demux(streams[0]) if p.size)
        return n, streams[0]


def test_process_upscales_every_frame_and_copies_audio(clip, model_path, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    rc = process_main([str(clip), str(out), "--model", str(model_path), "--no-progress"])
    assert rc == 0
    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
        assert (frames[0].width, frames[0].height) == (512, 288)
    assert len(frames) == 64
    a_in, _ = _count(clip, "audio")
    a_out, a_stream = _count(out, "audio")
    assert a_in > 0 and a_out == a_in and a_stream.codec_context.name == "aac"
    summary = capsys.readouterr().out
    assert "64 frames" in summary and "gpu" in summary.replace("upload", "")


@pytest.mark.parametrize("codec", ["vp9", "hevc"])
def test_process_other_codecs_with_baseline(clip, tmp_path, codec):
    out = tmp_path / f"out-{codec}.mkv"
    rc = process_main(
        [
            str(clip),
            str(out),
            "--mode",
            "bilinear",
            "--codec",
            codec,
            "--crf",
            "30",
            "--no-progress",
        ]
    )
    assert rc == 0
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name in ("vp9", "libvpx-vp9", "hevc")
        assert sum(1 for _ in c.decode(video=0)) == 64


def test_truncated_input_names_the_frame_and_leaves_a_valid_file(clip, tmp_path, capsys):
    data = clip.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "partial.mp4"
    rc = process_main([str(broken), str(out), "--mode", "bypass", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "frame" in err and "truncated" in err
    with av.open(str(out)) as c:  # what was written before the error plays
        n = sum(1 for _ in c.decode(video=0))
    assert 0 < n < 64


def test_missing_input_is_a_clear_error(tmp_path, capsys):
    rc = process_main([str(tmp_path / "nope.mp4"), str(tmp_path / "o.mp4"), "--mode", "bypass"])
    assert rc == 2
    assert "cannot open" in capsys.readouterr().err

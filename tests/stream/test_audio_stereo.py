"""Stereo game sound: the answer's Opus fmtp says stereo, and a real viewer decodes two
different channels (pacat plays 440 Hz left, 660 Hz right into a real PulseAudio daemon)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import numpy as np
import pytest

from .pulse import peak_hz, playing, pulse_daemon, stereo_sine
from .rtc import small_config, start_server
from .test_audio import viewer

pytestmark = [pytest.mark.gpu]


async def receive_stereo(track, seconds: float) -> np.ndarray:
    """(channels, samples) of `seconds` of decoded audio."""
    out = []
    got = 0.0
    while got < seconds:
        frame = await asyncio.wait_for(track.recv(), 10)
        channels = len(frame.layout.channels)
        pcm = frame.to_ndarray().reshape(-1, channels).T  # packed s16: interleaved
        out.append(pcm)
        got += pcm.shape[1] / frame.sample_rate
    return np.concatenate(out, axis=1)


def opus_fmtp(sdp: str) -> str:
    pt = re.search(r"a=rtpmap:(\d+) opus/48000/2", sdp)
    assert pt is not None, sdp
    line = re.search(rf"a=fmtp:{pt.group(1)} (.*)", sdp)
    return line.group(1).strip() if line else ""


async def test_stereo_capture_is_answered_and_heard_in_stereo(tmp_path, monkeypatch) -> None:
    with pulse_daemon(tmp_path / "pulse") as pulse:
        monkeypatch.setenv("PULSE_SERVER", pulse.server)
        raw = stereo_sine(tmp_path / "tones.raw", 440.0, 660.0, 30.0)
        with playing(pulse, raw):
            srv = await start_server(small_config(**{"audio.source": "pulse"}))
            try:
                async with aiohttp.ClientSession() as http:
                    pc, answer, tracks = await viewer(http, srv.url)
                    pcm = await receive_stereo(tracks["audio"], 2.5)
                    await pc.close()
            finally:
                await srv.close()
    params = dict(p.split("=", 1) for p in opus_fmtp(answer).split(";") if "=" in p)
    assert params.get("stereo") == "1" and params.get("sprop-stereo") == "1", opus_fmtp(answer)
    assert pcm.shape[0] == 2, pcm.shape
    tail = pcm[:, pcm.shape[1] // 2 :].astype(float)  # past the silence before pacat's stream
    peaks = [peak_hz(ch) for ch in tail]
    print(f"answer fmtp {opus_fmtp(answer)!r}; viewer's peaks L {peaks[0]:.1f} R {peaks[1]:.1f}")
    assert np.abs(tail).max() > 3000, "the tones are too quiet or missing"
    assert abs(peaks[0] - 440) < 5 and abs(peaks[1] - 660) < 5, peaks
    # different content: each channel's tone is far weaker on the other channel
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(tail.shape[1]), axis=1))
    at = [round(hz * tail.shape[1] / 48000) for hz in (440, 660)]
    assert spectrum[0, at[0]] > 10 * spectrum[1, at[0]], "440 Hz is on the right channel too"
    assert spectrum[1, at[1]] > 10 * spectrum[0, at[1]], "660 Hz is on the left channel too"

"""The game's sound on the pushes: a real PulseAudio daemon with pacat playing a different
tone on each channel, `serve --audio pulse` pushing to nginx-rtmp (FLV) and to
srt-live-transmit (MPEG-TS over SRT); both read back with PyAV must hold an AAC stream with
the tones, from one AAC encode. A whip+ push carries the viewers' Opus as it is into a
second `serve --source webrtc`, whose own viewer hears the tones."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import av
import numpy as np
import pytest

from stream.auth import Role

from ..pulse import peak_hz, playing, pulse_daemon, stereo_sine
from ..rtc import small_config, start_server
from ..test_audio import viewer
from ..test_audio_stereo import receive_stereo
from .servers import Nginx, SrtListener, stop_process
from .test_rtmp_srt import wait_live
from .test_whip_push import pusher_config, start_ingest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def read_audio(url: str, seconds: float, timeout: float) -> tuple[str, np.ndarray]:
    """(codec, (channels, samples) float PCM) of the first audio stream of `url`: up to
    `seconds` of it, decoded by PyAV."""
    options = {"analyzeduration": "2000000"} if "://" in url else {}
    deadline = time.monotonic() + timeout
    error = ""
    while time.monotonic() < deadline:
        try:
            container = av.open(url, options=options, timeout=(timeout, 5.0))
        except av.error.FFmpegError as e:
            error = str(e)
            time.sleep(0.3)
            continue
        with container:
            if not container.streams.audio:
                return "", np.zeros((0, 0))
            stream = container.streams.audio[0]
            chunks = []
            got = 0
            for frame in container.decode(stream):
                pcm = frame.to_ndarray().reshape(len(frame.layout.channels), -1)
                chunks.append(pcm)
                got += pcm.shape[1]
                if got >= seconds * frame.sample_rate or time.monotonic() > deadline:
                    break
            return stream.codec_context.name, np.concatenate(chunks, axis=1)
    raise AssertionError(f"could not read {url}: {error}")


def assert_tones(pcm: np.ndarray, where: str) -> None:
    """Left 440 Hz, right 660 Hz, loud enough (past the first half: the capture starts with
    the silence before pacat's stream)."""
    assert pcm.shape[0] == 2, (where, pcm.shape)
    tail = pcm[:, pcm.shape[1] // 2 :]
    assert np.abs(tail).max() > 0.1, f"{where}: the tone is too quiet or missing"
    peaks = [peak_hz(ch) for ch in tail]
    print(f"{where}: peaks {peaks[0]:.1f} / {peaks[1]:.1f} Hz over {tail.shape[1]} samples")
    assert abs(peaks[0] - 440) < 5 and abs(peaks[1] - 660) < 5, (where, peaks)


@pytest.mark.timeout(150)
async def test_game_sound_reaches_rtmp_and_srt_pushes_from_one_aac_encode(
    tmp_path, monkeypatch
) -> None:
    nginx = Nginx.create(tmp_path)
    nginx.start()
    srt = SrtListener.start(tmp_path)
    urls = [nginx.url("game"), f"srt://127.0.0.1:{srt.port}?latency=120"]
    try:
        with pulse_daemon(tmp_path / "pulse") as pulse:
            monkeypatch.setenv("PULSE_SERVER", pulse.server)
            raw = stereo_sine(tmp_path / "tones.raw", 440.0, 660.0, 60.0)
            with playing(pulse, raw):
                cfg = small_config(**{"audio.source": "pulse", "push.urls": urls})
                srv = await start_server(cfg)
                try:
                    await wait_live(srv.service, 2)
                    codec, rtmp = await asyncio.to_thread(read_audio, nginx.url("game"), 3.0, 40)
                    audio = srv.service.audio.stats()
                    pushes = srv.service.push.stats()
                finally:
                    await srv.close()
    finally:
        srt.stop()
        nginx.stop()
    assert codec == "aac", (codec, pushes)
    assert_tones(rtmp, "rtmp (FLV)")
    assert [(p["kind"], p["audio"]) for p in pushes] == [("rtmp", "aac"), ("srt", "aac")]
    assert all(p["audio_packets"] > 40 for p in pushes), pushes
    # one AAC encode for both pushes: at most about 47 packets per captured second, not 94
    enc = audio["push_encoder"]
    seconds = audio["chunks"] * 0.02
    print("push encoder:", enc, "captured", seconds, "s;", [p["audio_packets"] for p in pushes])
    assert enc["pushes"] == 2
    assert 0 < enc["packets"] <= 1.2 * seconds * 48000 / 1024 + 5, (enc, seconds)
    codec, ts = read_audio(str(srt.out), 1000, 10)
    assert codec == "aac"
    assert_tones(ts, "srt (MPEG-TS)")
    # on one clock: the recording's audio ends with its video (0.5 s: well over a push's
    # interleaving, far under what a wrong clock would put between them; the start is when
    # parec came up, which can be a second after the push's first picture on a busy host),
    # and its timestamps span as long as its packets last (none squeezed or stretched)
    with av.open(str(srt.out)) as c:
        spans, count = {}, 0
        for s in (c.streams.audio[0], c.streams.video[0]):
            pts = [p.pts for p in c.demux(s) if p.pts is not None]
            c.seek(0)
            spans[s.type] = (float(min(pts) * s.time_base), float(max(pts) * s.time_base))
            count = count or len(pts)
    lasts = (count - 1) * 1024 / 48000
    print("SRT recording's audio and video spans (s):", spans, f"{count} AAC frames, {lasts} s")
    assert abs(spans["audio"][1] - spans["video"][1]) < 0.5, spans
    assert abs((spans["audio"][1] - spans["audio"][0]) - lasts) < 0.1 * lasts, (spans, count)


@pytest.mark.timeout(180)
async def test_a_whip_push_carries_the_game_sound_as_opus_to_the_next_server(
    tmp_path, monkeypatch
) -> None:
    proc, base, authority = await start_ingest(tmp_path)
    try:
        with pulse_daemon(tmp_path / "pulse") as pulse:
            monkeypatch.setenv("PULSE_SERVER", pulse.server)
            raw = stereo_sine(tmp_path / "tones.raw", 440.0, 660.0, 60.0)
            with playing(pulse, raw):
                cfg = pusher_config(tmp_path, base, authority.mint(Role.PUBLISHER, 600))
                cfg = cfg.model_copy(
                    update={"audio": cfg.audio.model_copy(update={"source": "pulse"})}
                )
                srv = await start_server(cfg)
                try:
                    await wait_live(srv.service, 1, 40)
                    async with aiohttp.ClientSession() as http:
                        token = authority.mint(Role.VIEWER, 600)
                        pc, answer, tracks = await viewer(http, base, token=token)
                        await asyncio.wait_for(tracks["audio"].recv(), 30)
                        pcm = await receive_stereo(tracks["audio"], 3.0)
                        await pc.close()
                    pushes = srv.service.push.stats()
                    audio = srv.service.audio.stats()
                finally:
                    await srv.close()
    finally:
        stop_process(proc)
    assert pushes[0]["kind"] == "whip" and pushes[0]["audio"] == "opus", pushes
    # the push's Opus is the viewers' encode: the pushes' AAC never ran
    assert audio["push_encoder"]["packets"] == 0, audio["push_encoder"]
    assert_tones(pcm.astype(float) / 32768, "whip push -> second server -> its viewer")

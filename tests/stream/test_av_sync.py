"""Audio-video sync a viewer sees (issue 26): `[audio] source = "beep"` flashes the test
scene and beeps at the same instant; a real aiortc viewer receives both and places them on
the sender's clock through the RTCP sender reports, as a browser does (stream/tools/avsync)."""

from __future__ import annotations

import asyncio
import time
import types

import pytest

from stream.audio.opus import OpusTrack
from stream.encode import PacketTrack, SharedEncoder
from stream.tools import avsync
from stream.tools.soak import av

from .rtc import small_config, start_server

pytestmark = [pytest.mark.gpu]  # the servers run their pipeline on a GPU adapter (lavapipe)


async def test_beep_and_flash_play_together() -> None:
    cfg = small_config(**{"audio.source": "beep", "source.fps": 30.0})
    srv = await start_server(cfg)
    try:
        cap = await avsync.capture(srv.url, seconds=6.0, settle_s=2.0)
    finally:
        await srv.close()
    found = avsync.pairs(cap)
    result = avsync.summary(found, cap)
    assert result["pairs"] >= 4, result
    # the goal is |offset| <= 40 ms p95 (python -m stream.tools.avsync measures it over a
    # soak); on a busy CI machine a frame the encoder gets late is shown late, so the
    # test holds the median to the goal and most pairs to twice it
    assert abs(result["sync_ms"]["p50"]) <= 40, result
    near = [p for p in found if abs(p["sync_ms"]) <= 80]
    assert len(near) >= 0.75 * len(found), found


async def test_audio_is_held_by_the_video_latency(monkeypatch) -> None:
    """The video made 150 ms slower (every processed frame reaches its encoder that much
    later, as a heavy model would make it): the sound is held by as much and still plays
    with its flash; without the hold ([audio] sync = false) it plays 150 ms early."""
    submit = SharedEncoder.submit

    def late(self, frame, meta) -> None:
        asyncio.get_running_loop().call_later(0.15, submit, self, frame, meta)

    monkeypatch.setattr(SharedEncoder, "submit", late)
    offsets = {}
    for sync in (True, False):
        srv = await start_server(small_config(**{"audio.source": "beep", "audio.sync": sync}))
        try:
            cap = await avsync.capture(srv.url, seconds=4.0, settle_s=2.0)
        finally:
            await srv.close()
        result = avsync.summary(avsync.pairs(cap), cap)
        assert result["pairs"] >= 2, result
        offsets[sync] = result["sync_ms"]["p50"]
    assert abs(offsets[True]) <= 60, offsets
    assert offsets[False] < -100, offsets


@pytest.mark.slow
async def test_sound_sent_late_still_plays_with_its_flash(monkeypatch) -> None:
    """A busy loop gets to every sound packet 150 ms after it was due (the video on time):
    the audio's sender reports pair each RTP time with when its packet was due, so the
    viewer still plays the beep with its flash. Before, they paired it with the late send,
    and the sound played 150 ms late."""
    recv = OpusTrack.recv
    late_s: list[float] = []

    async def late(self: OpusTrack):
        packet = await recv(self)
        await asyncio.sleep(max(0.0, self.due + 0.15 - time.monotonic()))
        late_s.append(time.monotonic() - self.due)
        return packet

    monkeypatch.setattr(OpusTrack, "recv", late)
    srv = await start_server(small_config(**{"audio.source": "beep", "source.fps": 30.0}))
    try:
        cap = await avsync.capture(srv.url, seconds=5.0, settle_s=2.0)
    finally:
        await srv.close()
    result = avsync.summary(avsync.pairs(cap), cap)
    assert result["pairs"] >= 3, result
    # the sound did go out late (the stated 150 ms, more on a busy machine) ...
    assert len(late_s) > 100 and min(late_s) >= 0.149, (len(late_s), min(late_s, default=0))
    # ... and plays with its flash: the median as the test above holds it (the same
    # machine's frame jitter), far from the 150 ms the late sends would make it
    assert abs(result["sync_ms"]["p50"]) <= 60, result


@pytest.mark.slow
async def test_the_video_reports_say_when_a_frame_left_the_encoder(monkeypatch) -> None:
    """The video's RTP time is when a frame left the encoder ([encoder] rtp_clock = "send");
    a loop that is busy every other 1.5 s sends the frames then 150 ms after that. Each
    sender report must still pair an RTP time with that moment, so every report maps the
    RTP clock onto the wall clock alike; before, they paired it with the last packet's send,
    and the picture's place on the clock jumped by 150 ms from one report to the next (the
    sound's hold, a median over 2 s of frames, cannot follow that). A stall alone does not
    show: the frames queued behind it go out at once, and the last is on time."""
    recv = PacketTrack.recv
    late_s: list[float] = []

    async def late(self: PacketTrack):
        packet = await recv(self)
        due = self.encoder._clock0 + packet.pts / 90000  # its RTP time on the monotonic clock
        if int(due / 1.5) % 2:  # every other 1.5 s
            await asyncio.sleep(max(0.0, due + 0.15 - time.monotonic()))
        late_s.append(time.monotonic() - due)
        return packet

    monkeypatch.setattr(PacketTrack, "recv", late)
    over = {"audio.source": "beep", "source.fps": 30.0, "encoder.viewer_queue": 30}
    srv = await start_server(small_config(**over))
    try:
        cap = await avsync.capture(srv.url, seconds=8.0, settle_s=2.0)
    finally:
        await srv.close()
    reports = cap.video.reports[1:]  # (the first may precede the first frame)
    assert len(reports) >= 4, reports
    assert max(late_s) >= 0.149, max(late_s)  # frames did go out late
    # each report's wall time less its RTP time (s): one constant when they say when the
    # frame left the encoder, whatever the send; a millisecond or two of rounding and the
    # NTP clock's own steps (a slewed system clock) aside
    r0 = reports[0][2]
    place = [
        (ntp >> 32) + (ntp & 0xFFFFFFFF) / 2**32 - ((rtp - r0) & 0xFFFFFFFF) / 90000
        for _, ntp, rtp in reports
    ]
    spread_ms = (max(place) - min(place)) * 1000
    assert spread_ms < 20, (spread_ms, sorted(round(x * 1000, 1) for x in late_s)[-5:])


async def _until(cond, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_the_soak_sync_viewer_connects_again_when_the_server_drops_it(monkeypatch) -> None:
    """An hour-long soak on a loaded host lost its sync viewer at minute 7 (ICE consent
    missed for 3 s): the capture slept on with dead tracks and the drift figure covered 7
    minutes. Now the watch sees its tracks end, connects again and keeps both connections'
    pairs."""
    monkeypatch.setattr(av, "RECONNECT_S", 0.2)
    srv = await start_server(small_config(**{"audio.source": "beep", "source.fps": 30.0}))
    opts = types.SimpleNamespace(duration_s=60.0, warmup_s=0.0)
    run = types.SimpleNamespace(base=srv.url, opts=opts, now=lambda: 0.0, token=lambda r: "")
    w = av.AvWatch("beep", time.monotonic())
    task = asyncio.ensure_future(av.watch(run, w))  # type: ignore[arg-type]
    try:
        await _until(lambda: len(avsync.pairs(w.cap)) >= 2, 60)
        for s in srv.service.sessions.viewers:
            await srv.service.sessions.close(s.id, "test: dropped")
        await _until(lambda: w.reconnects == 1 and len(avsync.pairs(w.cap)) >= 2, 60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await srv.close()
    fig = av.figures("beep", w)
    assert fig["reconnects"] == 1 and "ended early" in fig["error"], fig
    first = len(avsync.pairs(w.done[0]))
    assert first >= 1 and fig["pairs"] > first, (first, fig)

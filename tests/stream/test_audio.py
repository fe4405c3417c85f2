"""Game audio (issue 26): `[audio] source`, a real PulseAudio daemon and a real app playing
into it, Opus encoded once and received by real aiortc WHEP viewers."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from stream import config as config_mod
from stream.audio import parse, resolve
from stream.auth import Role
from stream.tools.xvfb import Xvfb

from .pulse import peak_hz, playing, pulse_daemon, sine
from .rtc import NO_STUN, bearer, small_config, start_server, with_auth
from .xhelpers import needs_xvfb

pytestmark = [pytest.mark.gpu]  # the servers run their pipeline on a GPU adapter (lavapipe)


async def viewer(
    http: aiohttp.ClientSession,
    base: str,
    audio: str | None = "recvonly",
    token: str | None = None,
) -> tuple[RTCPeerConnection, str, dict]:
    """A WHEP viewer whose offer has one video and (unless None) one audio m-line with this
    direction; returns its pc, the answer and its tracks by kind."""
    pc = RTCPeerConnection(NO_STUN)
    tracks: dict = {}
    pc.on("track", lambda t: tracks.__setitem__(t.kind, t))
    pc.addTransceiver("video", direction="recvonly")
    if audio is not None:
        pc.addTransceiver("audio", direction=audio)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", **bearer(token)}
    async with http.post(base + "/whep", data=pc.localDescription.sdp, headers=headers) as r:
        body = await r.text()
        assert r.status == 201, (r.status, body)
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return pc, body, tracks


def audio_direction(sdp: str) -> str | None:
    media = sdp.split("\nm=")
    for m in media[1:]:
        if m.startswith("audio"):
            for d in ("sendonly", "recvonly", "sendrecv", "inactive"):
                if f"a={d}" in m:
                    return d
    return None


async def receive_pcm(track, seconds: float) -> np.ndarray:
    """Left channel of `seconds` of decoded audio."""
    out = []
    got = 0.0
    while got < seconds:
        frame = await asyncio.wait_for(track.recv(), 10)
        pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
        out.append(pcm)
        got += len(pcm) / frame.sample_rate
    return np.concatenate(out)


# -- the spec and what /healthz says --------------------------------------------------------


def test_spec_grammar_and_config_errors() -> None:
    assert parse("pulse").kind == "pulse" and parse("pulse").device == ""
    assert parse("pulse:game.monitor").device == "game.monitor"
    assert parse("none").kind == "none"
    for bad in ("alsa", "pulse:", "none:x", "pulse:a b"):
        with pytest.raises(ValueError):
            parse(bad)
    with pytest.raises(config_mod.ConfigError, match=r"^audio\.source: must be auto, none"):
        config_mod.load(None, {"audio.source": "jack"})
    assert config_mod.load(None, {}).audio.source == "auto"


def test_no_server_means_no_audio_and_healthz_says_why(tmp_path, monkeypatch) -> None:
    """auto with an x11 source and no PulseAudio server answering (a real pactl against a
    socket nobody listens on): none, and the reason names no socket."""
    dead = tmp_path / "nobody-here" / "native"
    monkeypatch.setenv("PULSE_SERVER", f"unix:{dead}")
    plan = resolve("auto", "x11")
    assert plan.kind == "none"
    assert "no PulseAudio server answered" in plan.reason
    assert str(dead) not in plan.reason and "nobody-here" not in plan.reason
    # an explicit pulse is kept (the capture retries until the server comes)
    assert resolve("pulse", "x11").kind == "pulse"
    assert resolve("auto", "testsrc").kind == "none"
    with pytest.raises(ValueError, match="beep needs source testsrc"):
        resolve("beep", "x11")


async def test_healthz_audio_none_for_testsrc() -> None:
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(srv.url + "/healthz") as r:
                health = await r.json()
            assert health["audio"]["source"] == "none"
            assert "testsrc" in health["audio"]["reason"]
            # a viewer asking for audio gets its video and an inactive audio m-line
            pc, answer, tracks = await viewer(http, srv.url)
            assert audio_direction(answer) == "inactive"
            assert "audio" not in tracks
            await pc.close()
    finally:
        await srv.close()


# -- a real PulseAudio server, a real app, real viewers -----------------------------------


async def test_pulse_tone_reaches_every_viewer_encoded_once(tmp_path, monkeypatch) -> None:
    """pacat plays 440 Hz into the `game` sink; `[audio] source = "pulse"` (the default
    sink's monitor on $PULSE_SERVER) reaches two viewers, each decoding a 440 Hz tone, from
    one Opus encode; /healthz names no server."""
    with pulse_daemon(tmp_path / "pulse") as pulse:
        monkeypatch.setenv("PULSE_SERVER", pulse.server)
        # auto picks pulse for an x11 source when the server answers
        assert resolve("auto", "x11").kind == "pulse"
        raw = sine(tmp_path / "a440.raw", 440.0, 30.0)
        with playing(pulse, raw):
            srv = await start_server(small_config(**{"audio.source": "pulse"}))
            try:
                async with aiohttp.ClientSession() as http:
                    views = [await viewer(http, srv.url) for _ in range(2)]
                    for _, answer, tracks in views:
                        assert audio_direction(answer) == "sendonly"
                        assert "opus/48000/2" in answer
                        assert "audio" in tracks
                    t0 = time.monotonic()
                    pcms = await asyncio.gather(
                        *(receive_pcm(tracks["audio"], 2.0) for _, _, tracks in views)
                    )
                    elapsed = time.monotonic() - t0
                    for pcm in pcms:
                        tail = pcm[len(pcm) // 2 :]  # past the start (silence, then the tone)
                        assert np.abs(tail).max() > 3000, "the tone is too quiet or missing"
                        assert abs(peak_hz(tail) - 440.0) < 5, peak_hz(tail)
                    async with http.get(srv.url + "/healthz") as r:
                        health = await r.json()
                    assert health["audio"] == {"source": "pulse", "state": "live", "listeners": 2}
                    assert pulse.server.split(":", 1)[1] not in json.dumps(health)
                    stats = srv.service.audio.stats()
                    enc = stats["encoder"]
                    # one encode for both: about 50 packets a second, not 100
                    seconds = stats["chunks"] * 0.02
                    assert enc["packets"] <= 1.2 * seconds / 0.02 + 5, (enc, seconds, elapsed)
                    sent = [v["sent"] for v in stats["viewers"]]
                    assert all(s > 50 for s in sent), sent
                    for pc, _, _ in views:
                        await pc.close()
            finally:
                await srv.close()
            assert srv.service.audio.tracks == set()


async def test_named_source_and_server_restart(tmp_path, monkeypatch) -> None:
    """`pulse:game.monitor` captures that source; a server that goes away shows in /healthz
    (state "retrying"), and the capture comes back when a server answers again."""
    folder = tmp_path / "pulse"
    srv = None
    try:
        with pulse_daemon(folder) as pulse:
            monkeypatch.setenv("PULSE_SERVER", pulse.server)
            assert resolve("pulse:nope.monitor", "x11").detail.startswith("the PulseAudio")
            srv = await start_server(small_config(**{"audio.source": "pulse:game.monitor"}))
            audio = srv.service.audio
            await until(lambda: audio.live, 10)
            assert audio.stats()["device"] == "game.monitor"
        await until(lambda: audio.capture.state == "retrying", 10)
        async with aiohttp.ClientSession() as http, http.get(srv.url + "/healthz") as r:
            assert (await r.json())["audio"]["state"] == "retrying"
        with pulse_daemon(folder):
            await until(lambda: audio.live, 30)
    finally:
        if srv is not None:
            await srv.close()


async def test_only_watchers_get_sound_and_never_send_it(tmp_path) -> None:
    """Audio goes with the watch right (a publisher token cannot POST /whep), and what a
    viewer would send on its audio m-line is never received: sendrecv is answered sendonly,
    sendonly inactive (no track of ours for it)."""
    cfg, authority = with_auth(small_config(**{"audio.source": "beep"}), tmp_path)
    srv = await start_server(cfg)
    try:
        async with aiohttp.ClientSession() as http:
            publisher = authority.mint(Role.PUBLISHER, 60)
            pc = RTCPeerConnection(NO_STUN)
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            headers = {"Content-Type": "application/sdp", **bearer(publisher)}
            async with http.post(
                srv.url + "/whep", data=pc.localDescription.sdp, headers=headers
            ) as r:
                assert r.status == 403
            await pc.close()
            assert srv.service.audio.tracks == set()

            token = authority.mint(Role.VIEWER, 60)
            pc1, answer, tracks = await viewer(http, srv.url, "sendrecv", token)
            assert audio_direction(answer) == "sendonly"
            pcm = await receive_pcm(tracks["audio"], 1.5)
            assert np.abs(pcm).max() > 3000  # the beep (once a second)
            pc2, answer, _ = await viewer(http, srv.url, "sendonly", token)
            assert audio_direction(answer) == "inactive"
            assert len(srv.service.audio.tracks) == 1  # pc1's only
            await pc1.close()
            await pc2.close()
    finally:
        await srv.close()


async def until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.1)


async def test_a_slow_viewer_loses_its_oldest_packets_and_nobody_waits() -> None:
    """One libopus encode for two tracks: a viewer that never reads holds at most its queue
    (the oldest dropped, counted), the other gets every packet."""
    from stream.audio import OpusTrack, SharedOpus

    enc = SharedOpus()
    slow, fast = OpusTrack(enc, maxlen=5), OpusTrack(enc, maxlen=5)
    got = []
    t = time.monotonic()
    tone = (np.sin(np.arange(960 * 40) * 2 * np.pi * 440 / 48000) * 8000).astype(np.int16)
    for k in range(40):  # 0.8 s of audio in 20 ms chunks
        block = np.repeat(tone[k * 960 : (k + 1) * 960, None], 2, axis=1)
        enc.submit(block, t + k * 0.02)
        while fast.queue:
            got.append(await fast.recv())
    assert enc.packets >= 38  # once per 20 ms, whatever the number of tracks
    assert len(got) == enc.packets
    assert len(slow.queue) == 5 and slow.dropped == enc.packets - 5
    slow.stop()
    fast.stop()
    assert enc.subscribers == set()


async def test_late_reads_keep_the_sample_clock_and_a_real_gap_skips_it() -> None:
    """parec's chunks read late by a busy loop (then in a burst) are contiguous samples: RTP
    time goes on by 960 a packet and the capture times stay those of the early reads; a
    capture that stopped for a second (parec restarted) skips the RTP clock by as much."""
    from stream.audio import OpusTrack, SharedOpus

    enc = SharedOpus()
    track = OpusTrack(enc, maxlen=500)
    silence = np.zeros((960, 2), np.int16)
    t0 = 1000.0
    lateness = [0, 0, 0.06, 0.04, 0.02, 0, 0, 0.08, 0.06, 0.0] * 3  # late, then caught up
    for k, late in enumerate(lateness):
        enc.submit(silence, t0 + k * 0.02 + late)
    k = len(lateness)
    enc.submit(silence, t0 + k * 0.02 + 1.0)  # a second not captured
    enc.submit(silence, t0 + (k + 1) * 0.02 + 1.0)
    got = list(track.queue)
    steps = [b[0].pts - a[0].pts for a, b in zip(got, got[1:], strict=False)]
    assert set(steps[: k - 2]) == {960}, steps
    assert max(steps) >= 960 + 48000 - 960, steps  # the gap: about a second of RTP time
    assert enc.reanchors == 1
    for (packet, t_cap), _ in zip(got[: k - 2], range(k - 2), strict=False):
        assert abs(t_cap - (t0 + packet.pts / 48000)) < 0.005  # the early reads' clock
    track.stop()


@needs_xvfb
@pytest.mark.timeout(120)
async def test_x11_source_picks_the_pulse_server_and_says_so(tmp_path, monkeypatch, caplog):
    """`--source x11` with no `--audio`: a real Xvfb display, a real PulseAudio server (named
    by $PULSE_SERVER) with pacat playing 660 Hz into its default sink: the log says pulse is
    captured and a viewer decodes the tone."""
    caplog.set_level("INFO", logger="stream.audio.game")
    with Xvfb(320, 180) as x, pulse_daemon(tmp_path / "pulse") as pulse:
        monkeypatch.setenv("PULSE_SERVER", pulse.server)
        with playing(pulse, sine(tmp_path / "a660.raw", 660.0, 30.0)):
            srv = await start_server(small_config(**{"source.uri": f"x11:{x.display}"}))
            try:
                assert srv.service.audio.plan.kind == "pulse"
                assert any(
                    "audio: PulseAudio: the default sink's monitor" in r.getMessage()
                    for r in caplog.records
                ), [r.getMessage() for r in caplog.records]
                async with aiohttp.ClientSession() as http:
                    pc, answer, tracks = await viewer(http, srv.url)
                    assert audio_direction(answer) == "sendonly"
                    pcm = await receive_pcm(tracks["audio"], 2.0)
                    tail = pcm[len(pcm) // 2 :]
                    assert abs(peak_hz(tail) - 660.0) < 5, peak_hz(tail)
                    await pc.close()
            finally:
                await srv.close()
